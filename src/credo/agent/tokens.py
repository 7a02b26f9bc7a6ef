"""Token outputs: a cloud token kept fresh in a file for a systemd service (issue 14, point 5).

An ``[[account.token]]`` output asks the credo server for a token of a worker group's identity
(``ServerClient.host_token``: Negotiate as this host's computer account, which must be an allowed
worker of the group), with the same subject as the group's jobs, ``credo:group:<group>``. The file
is 0600, owned by the service's user, written atomically (a new file renamed over the old one)
and rewritten at about half the token's lifetime, as the worker does for jobs. A failed refresh
keeps the old file and is retried with backoff; ``credo agent status`` shows each output's expiry
and the named cause of its last failure. Nothing here logs a token.

A service points its SDK at the file the way a job's environment does, e.g. in its unit
``Environment=AZURE_FEDERATED_TOKEN_FILE=/run/credo/web-sync.token`` (``credo systemd service
--env``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from credo.agent import schedule
from credo.agent.config import AgentConfig, TokenOutput
from credo.agent.refresh import Cause, cause_of
from credo.automation.identity import IssuedToken
from credo.errors import CredoError, EnvironmentProblem, NotFoundError, NotPermittedError, UnreachableError

__all__ = ["TokenFetch", "TokenKeeper", "TokenState", "server_fetch", "token_cause", "write_token_file"]

log = logging.getLogger(__name__)

# Asks the server for one output's token (the agent's is ``server_fetch``; tests give their own).
TokenFetch = Callable[[TokenOutput], IssuedToken]
MIN_INTERVAL = 1.0


@dataclass
class TokenState:
    """What ``credo agent status`` shows of one token output (never the token)."""

    account: str
    output: TokenOutput
    next_refresh: datetime = field(default_factory=lambda: datetime.now(UTC))
    expires_at: datetime | None = None
    last_refresh: datetime | None = None
    subject: str | None = None
    failures: int = 0
    error: Cause | None = None
    refreshing: bool = False

    def view(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.astimezone(UTC).isoformat() if value else None

        return {
            "path": str(self.output.path),
            "group": self.output.group,
            "audience": self.output.audience,
            "service": self.output.service,
            "subject": self.subject,
            "expires_at": iso(self.expires_at),
            "last_refresh": iso(self.last_refresh),
            "next_refresh": iso(self.next_refresh),
            "failures": self.failures,
            "error": None
            if self.error is None
            else {"cause": self.error.name, "message": self.error.message, "hint": self.error.hint},
        }


def token_cause(exc: CredoError, output: TokenOutput) -> Cause:
    """Name a failed token request, with its fix."""
    if isinstance(exc, NotPermittedError):
        return Cause(
            "token-refused",
            exc.message,
            f"this host must be an allowed worker of group {output.group}, and the group must list "
            f"{output.audience}: credo group show {output.group}",
        )
    if isinstance(exc, NotFoundError):
        return Cause("group-not-found", exc.message, f"check group = {output.group!r}: credo group list")
    if isinstance(exc, UnreachableError) and "server" in exc.message:
        return Cause(
            "server-unreachable", exc.message, exc.hint or "check [server] url and that credo server runs"
        )
    return cause_of(exc)


def write_token_file(output: TokenOutput, token: str) -> None:
    """Write ``token`` to ``output.path``: a new 0600 file of its user, renamed over the old one."""
    directory = output.path.parent
    tmp = directory / f".{output.path.name}.credo-{secrets.token_hex(6)}"
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.fchown(fd, output.uid, output.gid)
            os.fchmod(fd, 0o600)
            view = memoryview(token.encode())
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, output.path)
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot write token file {output.path}: {exc.strerror}", hint="check the directory and its owner"
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def server_fetch(config: AgentConfig) -> TokenFetch:
    """Tokens from the configured credo server, asked as this host's computer account."""

    def fetch(output: TokenOutput) -> IssuedToken:
        from credo.krb.host import HostIdentity
        from credo.worker.client import ServerClient

        assert config.server.url is not None  # checked with the configuration
        host = HostIdentity.resolve(config.directory.host_keytab, config.directory.host_principal)
        # One attempt (retry_for=0): the agent's own backoff retries, and keeps the loop free.
        client = ServerClient(
            config.server.url, host, output.group, 0, ca_file=config.server.ca_file, retry_for=0
        )
        try:
            return client.host_token(output.group, output.audience, output.service)
        finally:
            client.close()

    return fetch


class TokenKeeper:
    """The token outputs of the configured accounts and when each is due."""

    def __init__(self, fetch: Callable[[AgentConfig], TokenFetch] = server_fetch) -> None:
        self._make_fetch = fetch
        self._fetch: TokenFetch | None = None
        self._lock = threading.Lock()
        self._states: dict[Path, TokenState] = {}
        self.rng = random.Random()  # noqa: S311 (scheduling jitter, not a secret)

    def configure(self, config: AgentConfig) -> None:
        """Take a (re)loaded configuration: new or changed outputs are due now; the file of an
        output no longer configured is removed (a credential nobody refreshes)."""
        wanted = {t.path: (a.name, t) for a in config.accounts for t in a.tokens}
        with self._lock:
            self._fetch = self._make_fetch(config) if wanted else None
            for path in list(self._states):
                if path not in wanted:
                    del self._states[path]
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            for path, (account, output) in wanted.items():
                state = self._states.get(path)
                if state is None or state.output != output:
                    self._states[path] = TokenState(account, output)

    def due(self) -> list[Path]:
        """Outputs to refresh now (marked as refreshing)."""
        now = datetime.now(UTC)
        with self._lock:
            found = [p for p, s in self._states.items() if not s.refreshing and s.next_refresh <= now]
            for path in found:
                self._states[path].refreshing = True
        return found

    def refresh(self, path: Path) -> None:
        with self._lock:
            state, fetch = self._states.get(path), self._fetch
        if state is None or fetch is None:
            return
        output = state.output
        try:
            issued = fetch(output)
            write_token_file(output, issued.token)
        except CredoError as exc:
            self._failed(state, token_cause(exc, output))
            return
        except Exception:
            log.exception("token %s: refresh failed with an internal error", output.path)
            self._failed(state, Cause("internal-error", "internal error (see the agent's log)", None))
            return
        now = datetime.now(UTC)
        left = (issued.expires_at - now).total_seconds()
        with self._lock:
            state.expires_at, state.subject, state.last_refresh = issued.expires_at, issued.subject, now
            state.failures, state.error = 0, None
            # Half the lifetime (as for jobs), a few percent earlier at random so that many outputs
            # of one host do not ask the server at the same second.
            state.next_refresh = now + timedelta(
                seconds=max(MIN_INTERVAL, left / 2 * self.rng.uniform(0.9, 1.0))
            )
            state.refreshing = False
        log.info(
            "token %s (%s, subject %s, for %s): refreshed, valid until %s; next at %s",
            output.path, output.audience, issued.subject, output.user, issued.expires_at.isoformat(),
            state.next_refresh.isoformat(),
        )  # fmt: skip

    def _failed(self, state: TokenState, cause: Cause) -> None:
        now = datetime.now(UTC)
        with self._lock:
            state.failures += 1
            state.error = cause
            delay = schedule.retry_delay(state.failures, self.rng)
            if state.expires_at is not None and state.expires_at > now:
                # Retry well before the file's token expires, however many failures came before.
                delay = min(delay, max(MIN_INTERVAL, (state.expires_at - now).total_seconds() / 2))
            state.next_refresh = now + timedelta(seconds=delay)
            state.refreshing = False
        left = f"valid until {state.expires_at.isoformat()}" if state.expires_at else "no token yet"
        log.warning(
            "token %s: refresh failed (%s): %s; the file's token: %s; retrying in %.0f s",
            state.output.path, cause.name, cause.message, left, delay,
        )  # fmt: skip

    def view(self, account: str) -> list[dict[str, Any]]:
        with self._lock:
            return [s.view() for s in self._states.values() if s.account.lower() == account.lower()]

    def failing(self) -> int:
        with self._lock:
            return sum(1 for s in self._states.values() if s.error is not None)
