"""Fast lane: wake-ups of waiting claims, one waiter per queued job (credo.server.notifier), and
the payload that carries them between server processes (credo.server.wakeups)."""

from __future__ import annotations

import asyncio

from credo.server.notifier import EVERYONE, Notifier
from credo.server.wakeups import parse_payload, payload


async def _waiters(notifier: Notifier, group: int, count: int, timeout: float) -> list[asyncio.Task[bool]]:
    tasks = [asyncio.create_task(notifier.wait(group, timeout)) for _ in range(count)]
    await asyncio.sleep(0)  # all are waiting
    return tasks


def test_a_queued_job_wakes_one_waiter_the_one_waiting_longest() -> None:
    async def scenario() -> None:
        notifier = Notifier()
        tasks = await _waiters(notifier, 1, 3, 0.3)
        notifier.wake(1)
        await asyncio.sleep(0.01)
        assert [t.done() for t in tasks] == [True, False, False]
        assert tasks[0].result() is True
        assert notifier.waiters(1) == 2
        assert await asyncio.gather(*tasks[1:]) == [False, False]  # timed out, and gone
        assert notifier.waiters(1) == 0

    asyncio.run(scenario())


def test_a_wake_up_with_no_waiter_is_kept_for_the_next_wait_of_its_group() -> None:
    async def scenario() -> None:
        notifier = Notifier()
        notifier.wake(1, 2)  # two jobs queued while the claim was looking
        assert await notifier.wait(1, 5) is True
        assert await notifier.wait(1, 5) is True
        assert await notifier.wait(1, 0.05) is False
        assert await notifier.wait(2, 0.05) is False  # another group's is not taken

    asyncio.run(scenario())


def test_a_drain_wakes_every_waiter_of_the_group_and_no_other() -> None:
    async def scenario() -> None:
        notifier = Notifier()
        draining = await _waiters(notifier, 1, 4, 1)
        other = await _waiters(notifier, 2, 1, 0.2)
        notifier.wake(1, EVERYONE)
        assert await asyncio.gather(*draining) == [True] * 4
        assert await asyncio.gather(*other) == [False]
        assert await notifier.wait(1, 0.05) is False  # nothing kept

    asyncio.run(scenario())


def test_a_waiter_cancelled_while_waiting_takes_no_wake_up() -> None:
    async def scenario() -> None:
        notifier = Notifier()
        gone, stays = await _waiters(notifier, 1, 2, 1)
        gone.cancel()
        await asyncio.sleep(0)
        notifier.wake(1)
        assert await stays is True

    asyncio.run(scenario())


def test_payloads_round_trip_and_junk_is_ignored() -> None:
    for group, count in [(1, 1), (7, 3), (9, EVERYONE)]:
        assert parse_payload(payload(group, count)) == (group, count)
    assert payload(4, 1) == "4"  # what a replica of the previous release sends and reads
    for junk in ["", "x", "1:", "1:x", "1:0", "1:-3", ":2", "1:*:2"]:
        assert parse_payload(junk) is None, junk
