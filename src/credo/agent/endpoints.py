"""The agent as the endpoints' broker: a login's session over the socket, commands run as the gMSA.

``credo endpoint serve NAME`` runs as the login user (sshd's ForceCommand) and holds nothing:
it connects here and sends its stdout and stderr descriptors, then the lines the user types.
The decisions are made here, as root, from what the kernel and the directory say, never from
what the client claims: the user is the socket peer's uid (SO_PEERCRED), their groups are the
directory's tokenGroups for the AD account of that name, the definition is the administrator's
file, the transcript is written by this process into a directory the user cannot write. So a
user who bypasses ``serve`` and talks to the socket directly gains nothing: the same checks,
the same transcript. The login user never holds the gMSA's keys; each command gets a ticket of
its own that is removed when it ends (``credo.endpoint.runner``).

Protocol (after the ``endpoint`` request with descriptors ``[stdout, stderr]``): the agent
answers ``{"ok": true, "principal", "roles", "run_as", "commands": [...]}`` or a refusal; then
each ``{"line": ...}`` gets ``{"ok": true, "exit": N}`` (the output went to the descriptors) or
``{"ok": false, "refused": true, "message", "hint"}``; ``{"end": true}`` or a closed connection
ends the session.
"""

from __future__ import annotations

import contextlib
import logging
import pwd
import socket
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from credo import security_events as events
from credo.agent.refresh import session_settings
from credo.agent.wire import recv_message, send_message
from credo.endpoint.definition import definition_path, load_definition
from credo.endpoint.directory import account_resolver, resolve_token
from credo.endpoint.matching import Granted, Refused
from credo.endpoint.runner import run_granted
from credo.endpoint.session import EndpointSession
from credo.errors import CredoError, InputError, NotPermittedError, UnreachableError
from credo.gmsa.session import HostSession, SessionSettings
from credo.security_events import Outcome, SecurityEvent, Severity

if TYPE_CHECKING:
    from credo.agent.daemon import Agent
    from credo.agent.server import Peer

__all__ = ["DirectoryLink", "serve_endpoint"]

log = logging.getLogger(__name__)
# An interactive session that sends nothing for this long is ended (sshd's ClientAlive settings
# end dead connections sooner; this bounds what an idle one costs).
SESSION_IDLE = 3600.0
# The directory connection is made again this long before the host's ticket ends.
TICKET_MARGIN = timedelta(minutes=5)
T = TypeVar("T")
CALLER_ENV = ("LANG", "LANGUAGE", "TERM", "TZ")


class DirectoryLink:
    """One directory connection as the host, kept open across endpoint logins.

    A login then costs one tokenGroups search instead of a Kerberos exchange, an LDAP bind and
    the search (about 80 ms of a 300 ms login, BENCHMARKS.md). The groups are still read fresh
    at every login: nothing about the user is cached. The connection is made again when the
    settings change, when the host's ticket nears its end, and once when a query fails (the DC
    dropped an idle connection, or failed over).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: HostSession | None = None
        self._settings: SessionSettings | None = None

    def query(self, settings: SessionSettings, use: Callable[[HostSession], T]) -> T:
        with self._lock:
            for attempt in (1, 2):
                session = self._session
                if session is None or self._settings != settings or _ending(session):
                    self._close()
                    session = self._session = HostSession(settings)
                    self._settings = settings
                try:
                    return use(session)
                except (CredoError, OSError):
                    self._close()
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")

    def _close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def close(self) -> None:
        with self._lock:
            self._close()


def _ending(session: HostSession) -> bool:
    return session.ticket.end - datetime.now(UTC) < TICKET_MARGIN


def _answer_error(exc: CredoError) -> dict[str, Any]:
    return {"ok": False, "error": type(exc).__name__, "message": exc.message, "hint": exc.hint}


def serve_endpoint(
    agent: Agent, conn: socket.socket, peer: Peer, request: dict[str, Any], fds: list[int]
) -> None:
    """Hold one session to its end; every answer goes over ``conn``."""
    try:
        session = _open(agent, peer, request, fds)
    except CredoError as exc:
        log.warning("endpoint %s: refused uid %d: %s", request.get("endpoint"), peer.uid, exc.message)
        agent.metrics.refused_request()
        send_message(conn, _answer_error(exc))
        return
    send_message(
        conn,
        {
            "ok": True,
            "endpoint": session.definition.name,
            "principal": session.token.principal,
            "roles": list(session.capability.role_names),
            "run_as": session.definition.run_as or session.definition.user,
            "commands": session.commands(),
        },
    )
    reason = "exit"
    try:
        conn.settimeout(SESSION_IDLE)
        while True:
            try:
                message, _ = recv_message(conn)
            except (ConnectionError, OSError):
                reason = "disconnected"
                break
            except ValueError:
                reason = "bad message"
                break
            if message.get("end"):
                break
            line = message.get("line")
            if not isinstance(line, str):
                send_message(conn, _answer_error(InputError("send a line of text")))
                continue
            send_message(conn, _one_line(agent, session, line, fds))
    except CredoError as exc:  # the transcript failed: the session ends (fail closed)
        reason = "transcript unavailable"
        log.error("endpoint %s: %s", session.definition.name, exc.message)
        with contextlib.suppress(Exception):
            send_message(conn, _answer_error(exc))
    finally:
        with contextlib.suppress(Exception):
            session.close(reason)
        events.emit(
            SecurityEvent(
                "agent", "endpoint.session.ended", Outcome.SUCCESS, Severity.INFO, session.token.principal,
                session.definition.name, {"reason": reason},
            )
        )  # fmt: skip
        log.info(
            "endpoint %s: session of %s ended (%s)", session.definition.name, session.token.principal, reason
        )


def _open(agent: Agent, peer: Peer, request: dict[str, Any], fds: list[int]) -> EndpointSession:
    name = request.get("endpoint")
    mode = request.get("mode")
    if not isinstance(name, str) or mode not in ("shell", "command") or len(fds) != 2:
        raise InputError("an endpoint request names the endpoint and the mode and sends two descriptors")
    try:
        user = pwd.getpwuid(peer.uid).pw_name
    except KeyError:
        raise NotPermittedError(f"uid {peer.uid} has no user name") from None
    definition = load_definition(definition_path(name))
    settings = session_settings(agent.config.directory)
    link = agent.directory_link
    # The Kerberos name sshd authenticated (auth_to_local maps USER@REALM to USER).
    token = link.query(
        settings, lambda host: replace(resolve_token(host.directory, user), principal=f"{user}@{host.realm}")
    )
    if definition.run_as is not None:
        key = definition.run_as.lower().rstrip("$")
        if agent.config.account(key) is None:
            raise UnreachableError(
                f"endpoint {definition.name} runs as {definition.run_as}, which this agent does not serve",
                hint=f'add [[account]] name = "{key}" to the agent\'s config',
            )
    sent = request.get("env")
    caller_env: dict[str, Any] = sent if isinstance(sent, dict) else {}
    source = request.get("source")
    origin = source if isinstance(source, str) else ""
    try:
        session = EndpointSession.open(
            definition,
            token,
            source=origin,
            local_user=user,
            mode=mode,
            account_exists=lambda account, kind: link.query(
                settings, lambda host: account_resolver(host.directory)(account, kind)
            ),
            caller_env={k: str(v) for k, v in caller_env.items() if k in CALLER_ENV},
        )
    except NotPermittedError as exc:
        events.emit(
            SecurityEvent(
                "agent", "endpoint.session.started", Outcome.DENIED, Severity.WARNING, token.principal,
                definition.name, {"source": origin, "local_user": user, "mode": mode, "reason": exc.message},
            )
        )  # fmt: skip
        raise
    events.emit(
        SecurityEvent(
            "agent", "endpoint.session.started", Outcome.SUCCESS, Severity.NOTICE, token.principal,
            definition.name,
            {"source": origin, "local_user": user, "mode": mode, "roles": list(session.capability.role_names),
             "run_as": definition.run_as or definition.user},
        )
    )  # fmt: skip
    log.info(
        "endpoint %s: session of %s (uid %d, pid %d) with roles %s",
        definition.name,
        token.principal,
        peer.uid,
        peer.pid,
        ", ".join(session.capability.role_names),
    )
    return session


def _one_line(agent: Agent, session: EndpointSession, line: str, fds: list[int]) -> dict[str, Any]:
    result = session.submit(line)
    if isinstance(result, Refused):
        events.emit(
            SecurityEvent(
                "agent", "endpoint.command.refused", Outcome.DENIED, Severity.WARNING, session.token.principal,
                session.definition.name, {"reason": result.reason},
            )
        )  # fmt: skip
        log.info(
            "endpoint %s: refused %s: %s", session.definition.name, session.token.principal, result.reason
        )
        return {"ok": False, "refused": True, "error": "NotPermittedError", "message": result.reason,
                "hint": result.hint}  # fmt: skip
    granted: Granted = result
    definition = session.definition
    write_ticket: Callable[[str], None] | None = None
    if definition.run_as is not None:
        key = definition.run_as.lower().rstrip("$")
        with agent.lock:
            keys = agent.keys.get(key)
        if keys is None:
            error = UnreachableError(
                f"no tickets of {definition.run_as} yet", hint="credo agent status shows why"
            )
            session.transcript.refused(line, error.message)
            return _answer_error(error)

        def write_ticket(ccache: str) -> None:
            keys.ticket(ccache)

    outcome = session.run(
        granted,
        lambda record: run_granted(
            granted,
            definition.user,
            runtime_dir=agent.work_dir.parent / ".endpoint-runs",
            write_ticket=write_ticket,
            stdout_fd=fds[0],
            stderr_fd=fds[1],
            record=record,
        ),
    )
    log.info(
        "endpoint %s: %s ran %s: exit %d",
        definition.name,
        session.token.principal,
        granted.command,
        outcome.exit_status,
    )
    return {"ok": True, "exit": outcome.exit_status, "timed_out": outcome.timed_out}
