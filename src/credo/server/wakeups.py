"""Wake-ups between server processes on one PostgreSQL: LISTEN/NOTIFY (issue 16 point 1).

A job queued through one server process must wake the claims that workers long-poll on every
other process of the deployment at once, not at their next periodic look (5 s). Each process
keeps two connections of its own beside the pool: one that LISTENs on ``CHANNEL`` and sets the
local event of the group named in each notification's payload, and one that sends
``pg_notify(CHANNEL, group id)`` for the wake-ups of this process (PostgreSQL delivers it to
every listener, this process's too, which is harmless: a claim that wakes for nothing looks and
waits again). A notification carries a group id only: nothing secret, nothing a listener trusts
beyond "look now".

When the listening connection breaks (PostgreSQL restarted), claims still look every 5 s; once
it is back, every local waiter is woken, since notifications sent meanwhile are lost.
SQLite deployments are one process: the local events suffice and this module is not used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg

__all__ = ["CHANNEL", "PgWakeups"]

log = logging.getLogger(__name__)

CHANNEL = "credo_queue"
# Pause before connecting again after a failure: doubled each time up to the maximum.
_RETRY_FIRST, _RETRY_MAX = 0.5, 5.0


class PgWakeups:
    """LISTEN for wake-ups from the other processes and NOTIFY them of this one's."""

    def __init__(self, url: str, wake: Callable[[int], None], wake_all: Callable[[], None]) -> None:
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
                        with contextlib.suppress(ValueError):
                            self.wake(int(notice.payload))
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning(
                    "wake-ups from other server processes paused (%s); retrying in %.1f s", exc, retry
                )
                await asyncio.sleep(retry)
                retry = min(retry * 2, _RETRY_MAX)

    def publish(self, group_id: int) -> None:
        """Tell every server process (on the event loop; returns at once)."""
        task = asyncio.get_running_loop().create_task(self._send(group_id))
        task.add_done_callback(_log_failure)

    async def _send(self, group_id: int) -> None:
        async with self._sending:
            for attempt in (1, 2):  # a broken connection (PostgreSQL restarted) is made again once
                try:
                    if self._sender is None or self._sender.closed:
                        self._sender = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
                    await self._sender.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(group_id)))
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


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not wake the other server processes: %s", task.exception())
