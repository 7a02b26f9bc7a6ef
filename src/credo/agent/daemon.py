"""``credo agent run``: the resident credential daemon.

One process serves many accounts. A scheduler (the main thread) refreshes each account ahead of
its ``refresh_after`` on a small thread pool; a failed refresh is retried with backoff while the
last good outputs stay in place. The socket API (``credo.agent.server``) hands the accounts'
tickets to allowed local users. Signals only set flags (a handler must not take a lock the main
thread may hold): SIGHUP reloads the configuration (a bad one is refused and the old one kept),
SIGTERM/SIGINT stop.
"""

from __future__ import annotations

import contextlib
import faulthandler
import glob
import json
import logging
import os
import random
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from credo import security_events as events
from credo.agent import schedule
from credo.agent.config import AgentConfig, ConfigError, load_config, socket_path
from credo.agent.endpoints import DirectoryLink
from credo.agent.metrics import Metrics
from credo.agent.notify import notify, watchdog_interval
from credo.agent.refresh import (
    AccountKeys,
    Cause,
    cause_of,
    private_work_dir,
    refresh_account,
    run_hook,
    session_settings,
)
from credo.agent.tokens import TokenKeeper
from credo.errors import CredoError
from credo.security_events import Outcome, SecurityEvent, Severity

__all__ = ["AccountState", "Agent"]

log = logging.getLogger(__name__)
TICK = 0.25
REFRESH_THREADS = 4
# READY=1 at the latest this long after start, even if some first refreshes have not ended (every
# DC silent, each attempt waiting ldap_timeout per DC, 100 accounts on REFRESH_THREADS threads):
# below systemd's default TimeoutStartSec of 90 s, which would kill and restart the agent in a
# loop for the whole outage (systemd-system.conf(5), DefaultTimeoutStartSec).
READY_WITHIN = 60.0


@dataclass
class AccountState:
    """What ``credo agent status`` shows of one account (no key, no ticket)."""

    name: str
    kvno: int | None = None
    key_kvnos: tuple[int, ...] = ()
    last_refresh: datetime | None = None
    last_attempt: datetime | None = None
    next_refresh: datetime = field(default_factory=lambda: datetime.now(UTC))
    refresh_after: datetime | None = None
    password_expires: datetime | None = None
    dc: str | None = None
    outputs: tuple[str, ...] = ()
    error: Cause | None = None
    failures: int = 0
    # Queued or running: the scheduler does not queue the account again (cleared by _settle).
    refreshing: bool = False
    # Running: past the point where a request for a refresh is met by this one (it may have read
    # the password already). A request then sets ``again``: one more refresh as soon as it ends.
    running: bool = False
    again: bool = False
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def view(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.astimezone(UTC).isoformat() if value else None

        return {
            "account": self.name,
            "kvno": self.kvno,
            "key_kvnos": list(self.key_kvnos),
            "last_refresh": iso(self.last_refresh),
            "next_refresh": iso(self.next_refresh),
            "refresh_after": iso(self.refresh_after),
            "password_expires": iso(self.password_expires),
            "dc": self.dc,
            "outputs": list(self.outputs),
            "failures": self.failures,
            "error": None
            if self.error is None
            else {"cause": self.error.name, "message": self.error.message, "hint": self.error.hint},
        }


class Agent:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.config: AgentConfig = load_config(config_path)
        self.socket = socket_path(self.config.socket)
        self.lock = threading.Lock()
        self.states: dict[str, AccountState] = {}
        self.keys: dict[str, AccountKeys] = {}
        self.rng = random.Random()  # noqa: S311 (scheduling jitter, not a secret)
        self.pool = ThreadPoolExecutor(REFRESH_THREADS, thread_name_prefix="refresh")
        self.metrics = Metrics(self.config.metrics_listen)
        self.work_dir = private_work_dir(self.socket.parent / ".agent-work")
        self.directory_link = DirectoryLink()  # restricted endpoints' logins (credo.agent.endpoints)
        self.tokens = TokenKeeper()  # [[account.token]] outputs (credo.agent.tokens)
        self._reload = False
        self._stop = False
        # The loop's pause. Not time.sleep: under libfaketime (the rotation tests) with a real
        # monotonic clock, clock_nanosleep fails with EINVAL; a condition wait does not.
        self._pause = threading.Event()
        self._apply(self.config)
        # Before any refresh runs: what a killed agent was writing (keys, tickets) goes.
        for account in self.config.accounts:
            for path in (
                [o.path for o in account.keytabs]
                + [o.path for o in account.ccaches]
                + [o.path for o in account.tokens]
            ):
                remove_leftovers(path)

    # -- configuration ----------------------------------------------------------------------------

    def _apply(self, config: AgentConfig) -> None:
        """Take ``config``: new accounts are due now, removed ones forget their keys."""
        try:
            events.configure(config.events.sinks())
        except CredoError as exc:  # an events file that cannot be opened must not stop the agent
            log.error("security events not written: %s", exc.message)
        if config.directory.krb5_config is not None:
            # Read by libkrb5 when a context is made: every refresh makes new ones.
            os.environ["KRB5_CONFIG"] = str(config.directory.krb5_config)
        with self.lock:
            names = {a.name.lower(): a.name for a in config.accounts}
            for key in list(self.states):
                if key not in names:
                    self.states.pop(key).done.set()  # a caller waiting for its refresh: none comes
                    old = self.keys.pop(key, None)
                    if old is not None:
                        old.close()
            for key, name in names.items():
                if key not in self.states:
                    self.states[key] = AccountState(name)
                else:
                    self._request(self.states[key])  # outputs may have changed
            self.config = config
        self.tokens.configure(config)

    def reload(self) -> bool:
        try:
            config = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload refused, the running configuration stays: %s", exc.message)
            return False
        self._apply(config)
        log.info("configuration reloaded: %d account(s)", len(config.accounts))
        return True

    # -- refreshing -------------------------------------------------------------------------------

    def _refresh(self, key: str) -> None:
        with self.lock:
            state = self.states.get(key)
            account = self.config.account(key)
            settings = session_settings(self.config.directory)
            if state is not None and account is None:  # removed by a reload since it was queued
                self._settle(state, datetime.now(UTC))
            if state is None or account is None:
                return
            # A request from now on is not met by this refresh (see _request).
            state.running = True
            state.again = False
        settled = False
        started = datetime.now(UTC)
        try:
            try:
                result = refresh_account(account, settings, self.work_dir)
            except CredoError as exc:
                cause = cause_of(exc)
                with self.lock:
                    state.failures += 1
                    state.error = cause
                    state.last_attempt = started
                    delay = schedule.retry_delay(state.failures, self.rng)
                    self._settle(state, datetime.now(UTC) + timedelta(seconds=delay))
                    settled = True
                self.metrics.failed(account.name, cause.name)
                events.emit(
                    SecurityEvent(
                        "agent", "agent.password.retrieved", Outcome.FAILURE, Severity.WARNING, "agent",
                        account.name, {"reason": cause.name, "message": cause.message},
                    )
                )  # fmt: skip
                log.warning(
                    "%s: refresh failed (%s): %s; retrying in %.0f s",
                    account.name,
                    cause.name,
                    cause.message,
                    delay,
                )
                return
            except Exception:
                log.exception("%s: refresh failed with an internal error", account.name)
                with self.lock:
                    state.failures += 1
                    state.error = Cause("internal-error", "internal error (see the agent's log)", None)
                    state.last_attempt = started
                    delay = schedule.retry_delay(state.failures, self.rng)
                    self._settle(state, datetime.now(UTC) + timedelta(seconds=delay))
                    settled = True
                return
            with self.lock:
                previous_newest = state.key_kvnos[0] if state.key_kvnos else None
                # The previous answer's refresh time when this one is for the same keys.
                same_keys = (state.kvno, state.key_kvnos) == (result.kvno, result.key_kvnos)
                earlier = state.refresh_after if same_keys else None
                old = self.keys.get(key)
                self.keys[key] = result.keys.carrying(old)
                state.kvno = result.kvno
                state.key_kvnos = result.key_kvnos
                state.last_refresh = state.last_attempt = started
                state.refresh_after = result.refresh_after
                state.password_expires = result.next_rotation
                state.dc = result.dc
                state.outputs = result.outputs
                state.error = None
                state.failures = 0
                self._settle(
                    state,
                    schedule.next_refresh(
                        datetime.now(UTC),
                        result.refresh_after,
                        account.refresh_jitter,
                        result.keys.ticket_end,
                        self.rng,
                        earlier=earlier,
                    ),
                )
                settled = True
                next_at = state.next_refresh
            if old is not None:
                old.close()
            servers = self.config.directory.servers
            self.metrics.refreshed(
                account.name, result.next_rotation, failover=bool(servers) and result.dc != servers[0]
            )
            events.emit(
                SecurityEvent(
                    "agent", "agent.password.retrieved", Outcome.SUCCESS, Severity.INFO, "agent", account.name,
                    {"kvno": result.kvno, "dc": result.dc},
                )
            )  # fmt: skip
            log.info(
                "%s: refreshed (kvno %d, from %s); next at %s",
                account.name,
                result.kvno,
                result.dc,
                next_at.isoformat(),
            )
            newest = result.key_kvnos[0]
            if previous_newest is not None and newest != previous_newest:
                # A new key is in the outputs: inside the pre-rotation window that is the next
                # password's key, in place before the KDC uses it, so a hook that makes a service
                # re-read its keytab runs while tickets for the old key are still the only ones.
                for hook in account.hooks:
                    run_hook(hook, account.name, newest, previous_newest)
        finally:
            if not settled:
                # An error in the bookkeeping itself: the account must not stay marked as
                # refreshing, or the scheduler would never queue it again (and say nothing).
                with self.lock:
                    state.failures += 1
                    state.last_attempt = started  # it was one: READY=1 must not wait for it
                    delay = schedule.retry_delay(state.failures, self.rng)
                    self._settle(state, datetime.now(UTC) + timedelta(seconds=delay))

    def _settle(self, state: AccountState, next_refresh: datetime) -> None:
        """End a refresh of ``state`` (under the lock): due at ``next_refresh``, or at once when a
        refresh was asked for while it ran (the waiters of ``refresh_now`` wait for that one)."""
        state.refreshing = False
        state.running = False
        if state.again:
            state.again = False
            state.next_refresh = datetime.now(UTC)
            return
        state.next_refresh = next_refresh
        state.done.set()

    def _request(self, state: AccountState) -> None:
        """Make ``state`` due now (under the lock). A running refresh may have read the password
        before the request came, and it sets the next refresh when it ends: it must not swallow
        the request (a ``refresh-async`` of every account once waited forever for a few), so the
        request is kept for when it ends. A queued one reads after the request: it meets it."""
        if state.running:
            state.again = True
        else:
            state.next_refresh = datetime.now(UTC)

    def refresh_now(self, name: str, wait: float = 60.0) -> AccountState | None:
        key = name.lower().rstrip("$")
        with self.lock:
            state = self.states.get(key)
            if state is None:
                return None
            state.done.clear()
            self._request(state)
        state.done.wait(wait)
        return state

    def _schedule_due(self) -> None:
        now = datetime.now(UTC)
        with self.lock:
            due = [k for k, s in self.states.items() if not s.refreshing and s.next_refresh <= now]
            for key in due:
                self.states[key].refreshing = True
        for key in due:
            self.pool.submit(self._refresh, key).add_done_callback(_log_failure)
        for path in self.tokens.due():
            self.pool.submit(self.tokens.refresh, path).add_done_callback(_log_failure)

    # -- views for the socket ---------------------------------------------------------------------

    def status(self, allowed: set[str] | None = None) -> list[dict[str, Any]]:
        with self.lock:
            views = [s.view() for k, s in sorted(self.states.items()) if allowed is None or k in allowed]
        for view in views:
            view["tokens"] = self.tokens.view(view["account"])
        return views

    # -- main loop --------------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        else:
            self._stop = True

    def run(self) -> None:
        from credo.agent.server import SocketServer

        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        # `kill -USR1 <agent>` writes every thread's stack to the log: what a refresh that seems
        # stuck is waiting on (a DC, a KDC, a hook), without stopping the agent.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        server = SocketServer(self, self.socket)
        server.start()
        self.metrics.start()
        watchdog = watchdog_interval()
        last_ping = 0.0
        # READY=1 waits for the first refresh of every account to end, so that units ordered
        # After= the agent find their keytab and ccache in place. Success or failure alike: an
        # account its DCs refuse must not hold the agent (and every unit after it) in
        # "activating" until systemd's start timeout kills it; its error is in `status`.
        ready = False
        ready_by = time.monotonic() + READY_WITHIN
        notify(f"STATUS=refreshing {len(self.states)} account(s); socket {self.socket}")
        log.info("agent started: %d account(s), socket %s", len(self.states), self.socket)
        try:
            while not self._stop:
                if self._reload:
                    self._reload = False
                    # A reload before the first READY=1 must not announce readiness early.
                    if ready:
                        notify("RELOADING=1")
                    self.reload()
                    if ready:
                        notify("READY=1", f"STATUS=serving {len(self.states)} account(s)")
                self._schedule_due()
                if not ready and (self._first_pass_done() or time.monotonic() >= ready_by):
                    ready = True
                    notify("READY=1", f"STATUS={self._summary()}")
                    log.info("agent ready: %s, socket %s", self._summary(), self.socket)
                if watchdog is not None and time.monotonic() - last_ping >= watchdog:
                    notify("WATCHDOG=1", f"STATUS={self._summary()}")
                    last_ping = time.monotonic()
                self._pause.wait(TICK)
        finally:
            notify("STOPPING=1")
            server.stop()
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.directory_link.close()
            with self.lock:
                for keys in self.keys.values():
                    keys.close()
                self.keys.clear()

    def _first_pass_done(self) -> bool:
        with self.lock:
            return all(s.last_attempt is not None for s in self.states.values())

    def _summary(self) -> str:
        with self.lock:
            failing = sum(1 for s in self.states.values() if s.error is not None)
        return f"{len(self.states)} account(s), {failing} failing"


def _log_failure(future: Future[None]) -> None:
    """A refresh's own errors are handled where it runs; anything else would vanish in its future."""
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.error("a refresh task failed", exc_info=exc)


def status_json(agent: Agent) -> str:
    return json.dumps(agent.status(), indent=2)


def remove_leftovers(path: Path) -> None:
    """Remove what a killed writer of ``path`` left beside it: the ``.NAME.credo-*`` file it was
    writing before the atomic rename (credo.krb.keytab, credo.agent.refresh, credo.agent.tokens).
    Such a file may hold keys or a ticket. Only this agent writes its outputs, so one found when
    it starts, before any refresh, is an orphan."""
    with contextlib.suppress(OSError):
        for leftover in path.parent.glob(f".{glob.escape(path.name)}.credo-*"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
                log.info("removed %s, left by a writer that was killed", leftover)
