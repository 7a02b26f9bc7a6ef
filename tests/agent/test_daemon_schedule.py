"""The agent's scheduler with a stand-in for the DC (no lab): a request for a refresh that arrives
while that account's refresh runs is not lost, an answer for the same keys that moves a passed
refresh time later is read again soon, and an error in a refresh's bookkeeping never leaves the
account marked as refreshing. The scheduler's loop is driven by hand (``_schedule_due``), each
refresh waits on events: the interleavings are forced, not hoped for.

The first was the bench's stall (benchmarks/bench_agent.py): it saw every keytab written while the
last accounts' refreshes were still getting their TGTs, asked for all 100 again (refresh-async),
and those refreshes, ending, set their next refresh a rotation away over the request: a few
keytabs were never written again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from credo.agent import daemon
from credo.agent.daemon import AccountState, Agent
from credo.agent.refresh import RefreshResult
from credo.agent.schedule import MIN_INTERVAL

NAME = "svcsched"


class _Keys:
    """What the daemon uses of AccountKeys."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.ticket_end: datetime | None = None

    def carrying(self, older: Any) -> _Keys:
        if self.fail:
            raise RuntimeError("bookkeeping broke")
        return self

    def close(self) -> None:
        pass


class _DC:
    """refresh_account's stand-in: each call takes the next answer, after ``gate`` opens if one
    is set for it."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = threading.Event()
        self.gates: dict[int, threading.Event] = {}
        self.answers: list[Callable[[], RefreshResult]] = []
        self.lock = threading.Lock()

    def __call__(self, account: Any, settings: Any, work_dir: Path) -> RefreshResult:
        with self.lock:
            self.calls += 1
            n = self.calls
        self.entered.set()
        gate = self.gates.get(n)
        if gate is not None:
            assert gate.wait(10), "the test never let the refresh go on"
        return self.answers[min(n, len(self.answers)) - 1]()


def answer(
    refresh_after: timedelta, kvno: int = 1, key_kvnos: tuple[int, ...] = (1,), keys: _Keys | None = None
) -> Callable[[], RefreshResult]:
    def make() -> RefreshResult:
        now = datetime.now(UTC)
        return RefreshResult(
            keys=keys or _Keys(),  # type: ignore[arg-type]
            kvno=kvno,
            key_kvnos=key_kvnos,
            refresh_after=now + refresh_after,
            next_rotation=now + refresh_after + timedelta(minutes=5),
            dc="ldap://dc.example.test",
            outputs=(),
        )

    return make


@pytest.fixture
def dc(monkeypatch: pytest.MonkeyPatch) -> _DC:
    stand_in = _DC()
    monkeypatch.setattr(daemon, "refresh_account", stand_in)
    return stand_in


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    config = tmp_path / "agent.toml"
    config.write_text(
        f'socket = "{tmp_path}/agent.sock"\n\n[directory]\nservers = ["ldap://dc.example.test"]\n'
        f'host_keytab = "{tmp_path}/host.keytab"\nhost_principal = "HOST$@EXAMPLE.TEST"\n\n'
        f'[[account]]\nname = "{NAME}"\n\n[[account.keytab]]\npath = "{tmp_path}/out/{NAME}.keytab"\n'
    )
    the_agent = Agent(config)
    yield the_agent
    the_agent.pool.shutdown(wait=True, cancel_futures=True)


def until(what: str, check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        threading.Event().wait(0.005)


def settled(state: AccountState) -> bool:
    return not state.refreshing


def test_a_request_while_the_refresh_runs_gets_a_refresh_of_its_own(agent: Agent, dc: _DC) -> None:
    dc.answers = [answer(timedelta(days=30))]
    dc.gates[1] = threading.Event()
    state = agent.states[NAME]
    agent._schedule_due()
    assert dc.entered.wait(10)
    # The refresh has begun (it may have read the password): the request comes after.
    agent.refresh_now(NAME, wait=0)
    dc.gates[1].set()
    until("the first refresh to end", lambda: settled(state))
    agent._schedule_due()
    until("the refresh asked for", lambda: dc.calls == 2 and settled(state))
    # Then the schedule is the DC's again.
    assert state.next_refresh > datetime.now(UTC) + timedelta(days=29)
    agent._schedule_due()
    assert dc.calls == 2


def test_a_request_before_the_queued_refresh_starts_is_met_by_it(agent: Agent, dc: _DC) -> None:
    dc.answers = [answer(timedelta(days=30))]
    state = agent.states[NAME]
    with agent.lock:  # queued, as _schedule_due leaves it, but not begun
        state.refreshing = True
    agent.refresh_now(NAME, wait=0)
    agent.pool.submit(agent._refresh, NAME)
    until("the refresh", lambda: dc.calls == 1 and settled(state))
    agent._schedule_due()
    assert dc.calls == 1 and state.next_refresh > datetime.now(UTC) + timedelta(days=29)


def test_a_waiting_refresh_answers_after_a_refresh_that_began_after_it(agent: Agent, dc: _DC) -> None:
    dc.answers = [answer(timedelta(days=30), kvno=n, key_kvnos=(n,)) for n in (1, 2, 3)]
    dc.gates[2] = threading.Event()
    state = agent.states[NAME]
    agent._schedule_due()
    until("the first refresh", lambda: dc.calls == 1 and settled(state) and state.done.is_set())
    with agent.lock:  # due again, as at its time
        state.next_refresh = datetime.now(UTC)
    agent._schedule_due()
    until("the second refresh to begin", lambda: dc.calls == 2)
    answered: list[int | None] = []
    waiter = threading.Thread(target=lambda: answered.append(agent.refresh_now(NAME, wait=10) and state.kvno))
    waiter.start()
    until("the request", lambda: not state.done.is_set())
    dc.gates[2].set()
    until("the second refresh to end", lambda: settled(state) and state.kvno == 2)
    assert waiter.is_alive()  # the refresh that ended began before the request
    agent._schedule_due()
    waiter.join(10)
    assert answered == [3] and dc.calls == 3


def test_a_request_from_a_reload_while_the_refresh_runs_is_kept(agent: Agent, dc: _DC) -> None:
    dc.answers = [answer(timedelta(days=30))]
    dc.gates[1] = threading.Event()
    state = agent.states[NAME]
    agent._schedule_due()
    assert dc.entered.wait(10)
    assert agent.reload()
    dc.gates[1].set()
    until("the first refresh to end", lambda: settled(state))
    agent._schedule_due()
    until("the refresh after the reload", lambda: dc.calls == 2 and settled(state))


def test_an_answer_that_moves_a_passed_refresh_time_later_is_read_again_soon(agent: Agent, dc: _DC) -> None:
    # Inside the window: refresh right after the rotation, which the agent's clock has passed when
    # the next answer comes; that DC, a clock step behind, still answers from inside the window.
    dc.answers = [
        answer(timedelta(seconds=-1), kvno=1, key_kvnos=(2, 1)),
        answer(timedelta(seconds=200), kvno=1, key_kvnos=(2, 1)),
        answer(timedelta(seconds=200), kvno=1, key_kvnos=(2, 1)),
    ]
    state = agent.states[NAME]
    agent._schedule_due()
    until("the refresh in the window", lambda: dc.calls == 1 and settled(state))
    agent.refresh_now(NAME, wait=0)
    agent._schedule_due()
    until("the refresh after the rotation", lambda: dc.calls == 2 and settled(state))
    assert state.next_refresh <= datetime.now(UTC) + MIN_INTERVAL
    # A second answer agreeing with it is trusted.
    agent.refresh_now(NAME, wait=0)
    agent._schedule_due()
    until("the next refresh", lambda: dc.calls == 3 and settled(state))
    assert state.next_refresh >= datetime.now(UTC) + timedelta(seconds=190)


def test_an_error_in_the_bookkeeping_leaves_the_account_schedulable(
    agent: Agent, dc: _DC, caplog: pytest.LogCaptureFixture
) -> None:
    dc.answers = [answer(timedelta(days=30), keys=_Keys(fail=True))]
    state = agent.states[NAME]
    with caplog.at_level(logging.ERROR, logger="credo.agent.daemon"):
        agent._schedule_due()
        until("the refresh", lambda: dc.calls == 1 and settled(state))
        until("the error in the log", lambda: "bookkeeping broke" in caplog.text)
    assert state.next_refresh < datetime.now(UTC) + timedelta(minutes=5)
