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
import ipaddress
import logging
import os
import pwd
import socket
import stat
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from credo import security_events as events
from credo.agent.refresh import session_settings
from credo.agent.wire import EXIT_CODES, recv_message, send_message
from credo.endpoint.definition import (
    EndpointDefinition,
    definition_path,
    endpoints_dir,
    list_endpoints,
    load_definition,
)
from credo.endpoint.directory import account_resolver, resolve_token
from credo.endpoint.matching import Granted, Refused
from credo.endpoint.runner import run_granted
from credo.endpoint.session import EndpointSession
from credo.endpoint.transcript import TranscriptUnavailable
from credo.errors import CredoError, InputError, NotPermittedError, UnreachableError
from credo.gmsa.session import HostSession, SessionSettings
from credo.security_events import Outcome, SecurityEvent, Severity

if TYPE_CHECKING:
    from credo.agent.daemon import Agent
    from credo.agent.server import Peer

__all__ = ["DirectoryLink", "serve_endpoint", "source_address"]

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
    # The nearest class the clients map to an exit code (TranscriptUnavailable -> EnvironmentProblem: 3).
    name = next((k.__name__ for k in type(exc).__mro__ if k.__name__ in EXIT_CODES), type(exc).__name__)
    return {"ok": False, "error": name, "message": exc.message, "hint": exc.hint}


def serve_endpoint(
    agent: Agent, conn: socket.socket, peer: Peer, request: dict[str, Any], fds: list[int]
) -> None:
    """Hold one session to its end; every answer goes over ``conn``."""
    try:
        session = _open(agent, peer, request, fds)
    except CredoError as exc:
        named = str(request.get("endpoint") or request.get("config"))[:300]
        log.warning("endpoint %s: refused uid %d: %s", _shown(named), peer.uid, exc.message)
        agent.metrics.refused_request()
        send_message(conn, _answer_error(exc))
        return
    reason = "exit"
    try:
        hello = {
            "ok": True,
            "endpoint": session.definition.name,
            "principal": session.token.principal,
            "roles": list(session.capability.role_names),
            "run_as": session.definition.run_as or session.definition.user,
            "commands": session.commands(),
        }
        try:
            send_message(conn, hello)
        except OSError:
            reason = "disconnected"
            return  # the finally below still ends the transcript
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
            answer = _one_line(agent, session, line, fds)
            try:
                send_message(conn, answer)
            except OSError:  # the caller went away while the command ran (its end is recorded)
                reason = "disconnected"
                break
    except CredoError as exc:  # the transcript failed: the session ends (fail closed)
        reason = "transcript unavailable"
        log.error("endpoint %s: %s", session.definition.name, exc.message)
        with contextlib.suppress(Exception):
            send_message(conn, _answer_error(exc) | {"ended": True})
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


_SSHD = ("sshd", "sshd-session")  # sshd-session: OpenSSH 9.8's per-connection binary
_ESTABLISHED = "01"


def _address(hex_address: str) -> str:
    """``0100007F:D431`` (/proc/net/tcp: each 32-bit word in host byte order) -> ``127.0.0.1 54321``."""
    host, port = hex_address.split(":")
    words = [bytes.fromhex(host[i : i + 8])[::-1] for i in range(0, len(host), 8)]
    raw = b"".join(words)
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return f"{ip} {int(port, 16)}"


def _connection_of(pid: int) -> str | None:
    """The remote end of the established TCP connection process ``pid`` holds, if any."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes and fields[3] == _ESTABLISHED:
                    return _address(fields[2])
    return None


def source_address(pid: int, claimed: str) -> str:
    """The client address of the ssh connection the socket peer runs under, as the agent sees it.

    ``serve`` sends $SSH_CONNECTION, which the user controls (any process of theirs can connect
    with any claim). So the agent walks up from the peer's pid to the first root-owned sshd
    process, the per-connection monitor that holds the client's TCP socket, and reads the remote
    end from its descriptors and /proc/PID/net/tcp{,6}: a user cannot place a process under a
    root sshd of a connection they do not hold. With no such ancestor (a local process talking to
    the socket) the claim is kept, marked ``unverified:``."""
    current = pid
    for _ in range(16):  # sshd -> [priv] -> user@notty -> sh -> serve: a few levels at most
        try:
            with open(f"/proc/{current}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            owner = os.stat(f"/proc/{current}").st_uid
            program = os.path.basename(os.readlink(f"/proc/{current}/exe"))
        except (OSError, ValueError, IndexError):
            break
        if owner == 0 and program in _SSHD:
            found = _connection_of(current)
            if found is not None:
                return found
        if parent <= 1:
            break
        current = parent
    return f"unverified: {claimed}" if claimed else "local"


def _shown(path: str) -> str:
    return path if path.isprintable() else repr(path)  # an error is one line


def _definition(agent: Agent, name: str | None, config: str | None) -> EndpointDefinition:
    """The definition a request names: NAME.toml in the agent's endpoints directory or, with
    ``config`` (`serve --config FILE`), that file only if it is one the agent serves: in that
    directory or listed under [endpoints] files. The caller chooses among the administrator's
    files, never a file of its own, and the file must be root's and not writable by others."""
    settings = agent.config.endpoints
    directory = settings.directory or endpoints_dir()
    if config is None:
        path = directory / definition_path(name or "").name  # the name is checked there
    else:
        if not os.path.isabs(config) or len(config) > 4096 or "\0" in config:
            raise InputError(f"--config {_shown(config[:200])}: give an absolute path")
        served = {os.path.realpath(p) for p in (*settings.files, *list_endpoints(directory))}
        real = os.path.realpath(config)
        if real not in served:
            raise NotPermittedError(
                f"{_shown(config)} is not an endpoint definition this agent serves",
                hint=f"the agent serves {directory}/NAME.toml and the files its config lists under "
                "[endpoints] files",
            )
        path = Path(real)  # the resolved file: a link the caller swaps after this is not followed
    # The file and every directory above it root's and writable by root only (as sshd's
    # StrictModes checks authorized_keys): otherwise whoever may write one of them could swap the
    # file between this check and the read below. A sticky directory (/tmp) is safe above a
    # root-owned entry: others may not rename or remove what they do not own (chmod(2), S_ISVTX).
    for checked in (path, *path.parents):
        try:
            info = checked.stat()
        except OSError:
            continue  # a missing file: load_definition reports it in its words
        writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if checked != path and info.st_mode & stat.S_ISVTX:
            writable = 0
        if info.st_uid != 0 or writable:
            what = "an endpoint definition" if checked == path else f"the directory above {path}"
            raise NotPermittedError(
                f"{checked}: {what} must be root's and writable by root only",
                hint=f"chown root {checked} && chmod go-w {checked}",
            )
    definition = load_definition(path)
    if config is not None and name and name != definition.name:
        raise InputError(f"{_shown(config)} defines endpoint {definition.name}, not {name}")
    return definition


def _open(agent: Agent, peer: Peer, request: dict[str, Any], fds: list[int]) -> EndpointSession:
    name = request.get("endpoint")
    mode = request.get("mode")
    config = request.get("config")
    if (
        not isinstance(name, str)
        or not (config is None or isinstance(config, str))
        or mode not in ("shell", "command")
        or len(fds) != 2
    ):
        raise InputError("an endpoint request names the endpoint and the mode and sends two descriptors")
    try:
        user = pwd.getpwuid(peer.uid).pw_name
    except KeyError:
        raise NotPermittedError(f"uid {peer.uid} has no user name") from None
    definition = _definition(agent, name, config)
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
    claimed = request.get("source")
    origin = source_address(peer.pid, claimed if isinstance(claimed, str) else "")
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

    try:
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
    except TranscriptUnavailable:
        raise  # the session ends (serve_endpoint)
    except CredoError as exc:  # it did not start; the transcript says so, the session goes on
        log.info("endpoint %s: %s: %s not started: %s", definition.name, session.token.principal,
                 granted.command, exc.message)  # fmt: skip
        return _answer_error(exc)
    log.info(
        "endpoint %s: %s ran %s: exit %d",
        definition.name,
        session.token.principal,
        granted.command,
        outcome.exit_status,
    )
    return {"ok": True, "exit": outcome.exit_status, "timed_out": outcome.timed_out}
