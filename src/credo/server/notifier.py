"""Wake-ups of long-polling claims, one waiter per queued job (issue 16 points 1 and 3).

A claim that finds no job waits here. When a job of its group is queued, one waiter wakes, the
one waiting longest, and looks again; the others sleep on. Waking every waiter of the group
instead (an event) costs one claim transaction per idle worker per job: with 1,000 idle workers
in one group, a second of database work for each job (measured in BENCHMARKS.md, "Scale-out").

Nothing is lost between a claim's look and its wait: a wake-up that finds no waiter is kept
(``_pending``) and the next wait of that group returns at once. A waiter that wakes and cannot
use it (its worker went away) hands it on (``wake``). Draining a worker wakes all of its group
(``notify(group, everyone=True)``), since its own claim must see it is draining.

Other server processes on the same PostgreSQL learn of wake-ups through ``publish``
(credo.server.wakeups); each wakes one waiter of its own, so a job costs at most one look per
replica.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

__all__ = ["EVERYONE", "Notifier"]

# ``count`` meaning every waiter of the group.
EVERYONE = -1
# Wake-ups kept for a group with no waiter; more than a worker claims in one go is no use.
_MAX_PENDING = 64


class Notifier:
    """Wakes long-polling claims when jobs are queued: in this process at once, and in the other
    server processes on the same PostgreSQL through ``publish`` (set by the app's lifespan)."""

    def __init__(self) -> None:
        self._waiting: dict[int, deque[asyncio.Future[None]]] = {}
        self._pending: dict[int, int] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.publish: Callable[[int, int], None] | None = None

    async def wait(self, group_id: int, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a wake-up of ``group_id`` (on the event loop): whether one came."""
        pending = self._pending.get(group_id, 0)
        if pending:
            self._pending[group_id] = pending - 1
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault(group_id, deque())
        waiting.append(future)
        try:
            done, _ = await asyncio.wait({future}, timeout=timeout)
            return bool(done)
        finally:
            if not future.done():
                future.cancel()
                waiting.remove(future)
            if not waiting and self._waiting.get(group_id) is waiting:
                del self._waiting[group_id]

    def waiters(self, group_id: int) -> int:
        return len(self._waiting.get(group_id, ()))

    def wake(self, group_id: int, count: int = 1) -> None:
        """Wake ``count`` of this process's claims of ``group_id`` (or all: EVERYONE), on the loop."""
        waiting = self._waiting.get(group_id)
        while waiting and count:
            future = waiting.popleft()
            if not future.done():
                future.set_result(None)
                count -= 1
        if count > 0:
            self._pending[group_id] = min(_MAX_PENDING, self._pending.get(group_id, 0) + count)

    def wake_all(self) -> None:
        """Every waiter of every group looks again (the wake-ups of other processes may be lost)."""
        for group_id in list(self._waiting):
            self.wake(group_id, EVERYONE)

    def notify(self, group_id: int, count: int = 1, *, everyone: bool = False) -> None:
        """``count`` jobs of ``group_id`` were queued (``everyone``: a worker drains): wake claims
        everywhere. From any thread."""
        if self.loop is None:
            return
        self.loop.call_soon_threadsafe(self._notify, group_id, EVERYONE if everyone else count)

    def _notify(self, group_id: int, count: int) -> None:
        self.wake(group_id, count)
        if self.publish is not None:
            self.publish(group_id, count)
