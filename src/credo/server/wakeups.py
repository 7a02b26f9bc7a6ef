"""Wake-ups between server processes on one PostgreSQL: LISTEN/NOTIFY (issue 16 point 1).

A job queued through one server process must wake the claims that workers long-poll on every
other process of the deployment at once, not at their next periodic look. Each process keeps two
connections of its own beside the pool: one that LISTENs on ``CHANNEL`` and wakes local claims
(credo.server.notifier) for each notification, and one that sends ``pg_notify(CHANNEL, payload)``
for the wake-ups of this process. PostgreSQL delivers a notification to every listener, the
sender's own session too: a listener skips those of its own sender (same backend PID), whose
claims were woken already.

The payload is ``GROUP`` or ``GROUP:COUNT`` (jobs queued) or ``GROUP:*`` (a worker drains: wake
all). Nothing secret, nothing a listener trusts beyond "look now"; a malformed one is ignored.

When the listening connection breaks (PostgreSQL restarted), claims look again every
CLAIM_RECHECK_SECONDS; once it is back, every local waiter is woken, since notifications sent
meanwhile are lost. SQLite deployments are one process: this module is not used.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg

from credo.server.notifier import EVERYONE

__all__ = ["CHANNEL", "PgWakeups", "parse_payload", "payload"]

log = logging.getLogger(__name__)

CHANNEL = "credo_queue"
# Pause before connecting again after a failure: doubled each time up to the maximum.
_RETRY_FIRST, _RETRY_MAX = 0.5, 5.0


class PgWakeups:
    """LISTEN for wake-ups from the other processes and NOTIFY them of this one's."""

    def __init__(self, url: str, wake: Callable[[int, int], None], wake_all: Callable[[], None]) -> None:
        # psycopg takes libpq URLs; SQLAlchemy's carry the driver's name.
        self.url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.wake, self.wake_all = wake, wake_all
        self._sender: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._sending = asyncio.Lock()
        self.listening = asyncio.Event()  # set while the LISTEN connection is up

    async def run(self) -> None:
        """Listen until cancelled, connecting again after failures."""
        retry = _RETRY_FIRST
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    retry = _RETRY_FIRST
                    self.wake_all()  # whatever was sent while not listening is lost: look now
                    async for notice in conn.notifies():
                        if self._sender is not None and notice.pid == self._sender.info.backend_pid:
                            continue
                        wakeup = parse_payload(notice.payload)
                        if wakeup is not None:
                            self.wake(*wakeup)
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning(
                    "wake-ups from other server processes paused (%s); retrying in %.1f s", exc, retry
                )
                await asyncio.sleep(retry)
                retry = min(retry * 2, _RETRY_MAX)

    def publish(self, group_id: int, count: int = 1) -> None:
        """Tell every server process (on the event loop; returns at once)."""
        task = asyncio.get_running_loop().create_task(self._send(payload(group_id, count)))
        task.add_done_callback(_log_failure)

    async def _send(self, message: str) -> None:
        async with self._sending:
            for attempt in (1, 2):  # a broken connection (PostgreSQL restarted) is made again once
                try:
                    if self._sender is None or self._sender.closed:
                        self._sender = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                    await self._sender.execute("SELECT pg_notify(%s, %s)", (CHANNEL, message))
                    return
                except psycopg.Error:
                    if self._sender is not None:
                        await self._sender.close()
                    self._sender = None
                    if attempt == 2:
                        raise

    async def close(self) -> None:
        if self._sender is not None:
            await self._sender.close()


def payload(group_id: int, count: int) -> str:
    if count == EVERYONE:
        return f"{group_id}:*"
    return str(group_id) if count == 1 else f"{group_id}:{count}"


def parse_payload(text: str) -> tuple[int, int] | None:
    """(group id, count) of a notification's payload; None when it is not one of ours."""
    group, colon, count = text.partition(":")
    try:
        wakeup = int(group), EVERYONE if count == "*" else int(count) if colon else 1
    except ValueError:
        return None
    return wakeup if wakeup[1] == EVERYONE or wakeup[1] > 0 else None


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not wake the other server processes: %s", task.exception())
