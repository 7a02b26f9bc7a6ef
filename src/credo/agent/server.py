"""The agent's unix socket: who asks (SO_PEERCRED), what they may have, and tickets by descriptor.

The socket is 0666: anyone may connect, but each request is decided by the caller's kernel
credentials (uid, gid and supplementary groups of the connecting process) against the account's
``allow_users``/``allow_groups``; a refusal is logged and counted. A ccache travels into a file
the caller opened itself and passed as a descriptor: the agent never opens a caller's path.
With ``cleanup``, the agent removes that file (and its then empty private directory) when the
caller's process ends, watched through a pidfd (pidfd_open(2)): a command exec'd by ``credo run
--as`` leaves no ticket behind (amazon-ecs-agent PR #4490's complaint).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import stat
import struct
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from credo import security_events as events
from credo.agent.refresh import ccache_bytes
from credo.agent.wire import recv_message, send_message
from credo.errors import CredoError
from credo.gmsa.credentials import parse_enctypes
from credo.krb.keytab import KeytabEntry, merge_entries, read_keytab, write_keytab_to_fd
from credo.security_events import Outcome, SecurityEvent, Severity

if TYPE_CHECKING:
    from credo.agent.daemon import Agent

__all__ = ["Peer", "SocketServer"]

log = logging.getLogger(__name__)
MAX_KEYTAB = 1 << 20  # a current keytab to merge: thousands of entries at most
MAX_LIFETIME = 8 * 86400  # a job may last 7 days; the KDC caps a ticket at its own max life


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int
    groups: frozenset[int]

    @classmethod
    def of(cls, sock: socket.socket) -> Peer:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, gid = struct.unpack("3i", raw)
        groups = {gid}
        # The connecting process's own supplementary groups (not the account database's).
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("Groups:"):
                    groups |= {int(g) for g in line.split()[1:]}
        return cls(pid, uid, gid, frozenset(groups))


@dataclass
class _Cleanup:
    pidfd: int
    dir_fd: int
    dir_path: str
    dir_id: tuple[int, int]
    name: str
    file_id: tuple[int, int]


class SocketServer:
    def __init__(self, agent: Agent, path: Path) -> None:
        self.agent = agent
        self.path = path
        self.sock: socket.socket | None = None
        self._cleanups: list[_Cleanup] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o666)  # noqa: S103 (authorisation is per request, from SO_PEERCRED)
        sock.listen(64)
        self.sock = sock
        threading.Thread(target=self._accept, name="agent-socket", daemon=True).start()
        threading.Thread(target=self._reap, name="agent-cleanup", daemon=True).start()

    def stop(self) -> None:
        self._stopping = True
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.write(self._wake_w, b"x")

    def _accept(self) -> None:
        assert self.sock is not None
        while not self._stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        fds: list[int] = []
        with conn:
            try:
                conn.settimeout(30)
                peer = Peer.of(conn)
                request, fds = recv_message(conn, max_fds=2)
                if request.get("op") == "endpoint":
                    from credo.agent.endpoints import serve_endpoint

                    serve_endpoint(self.agent, conn, peer, request, fds)
                    return
                answer = self._handle(peer, request, fds)
            except CredoError as exc:
                answer = {"ok": False, "error": type(exc).__name__, "message": exc.message, "hint": exc.hint}
            except (ValueError, ConnectionError, OSError) as exc:
                answer = {"ok": False, "error": "InputError", "message": f"bad request: {exc}", "hint": None}
            except Exception:
                log.exception("socket request failed")
                answer = {
                    "ok": False,
                    "error": "CredoError",
                    "message": "internal error in the agent",
                    "hint": None,
                }
            finally:
                kept = {c.dir_fd for c in self._cleanups} | {c.pidfd for c in self._cleanups}
                for fd in fds:
                    if fd not in kept:
                        with contextlib.suppress(OSError):
                            os.close(fd)
            with contextlib.suppress(OSError):
                send_message(conn, answer)

    def _refuse(
        self, peer: Peer, op: str, account: str, keys: str = "allow_users/allow_groups"
    ) -> dict[str, Any]:
        log.warning(
            "refused %s of %s to uid %d (pid %d): not in its %s",
            op,
            account,
            peer.uid,
            peer.pid,
            keys,
            extra={"account": account},
        )
        self.agent.metrics.refused_request()
        events.emit(
            SecurityEvent(
                "agent", "agent.socket.refused", Outcome.DENIED, Severity.WARNING, f"uid {peer.uid}", account,
                {"operation": op, "pid": peer.pid, "rule": keys},
            )
        )  # fmt: skip
        if op == "keytab":
            return {
                "ok": False, "error": "NotPermittedError",
                "message": f"this agent does not give a keytab of {account} to uid {peer.uid}",
                "hint": "add the user (or a %group) to the account's export_keytab in the agent's config",
            }  # fmt: skip
        return {
            "ok": False, "error": "NotPermittedError",
            "message": f"this agent does not give {account}'s tickets to uid {peer.uid}",
            "hint": "add the user to the account's allow_users (or a group to allow_groups) in the agent's config",
        }  # fmt: skip

    def _handle(self, peer: Peer, request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        op = request.get("op")
        config = self.agent.config
        if op == "status":
            groups = set(peer.groups)
            allowed = {
                a.name.lower()
                for a in config.accounts
                if a.allows(peer.uid, groups) or a.allows_export(peer.uid, groups)
            }
            return {"ok": True, "accounts": self.agent.status(allowed)}
        name = str(request.get("account") or "").lower().rstrip("$")
        account = config.account(name)
        if account is None:
            return {"ok": False, "error": "NotFoundError", "message": f"this agent serves no account {name!r}",
                    "hint": "add an [[account]] for it to the agent's config"}  # fmt: skip
        if op == "keytab":
            # Keys, unlike tickets, outlive a removal from allow_users: their own list.
            if not account.allows_export(peer.uid, set(peer.groups)):
                return self._refuse(peer, "keytab", account.name, "export_keytab")
            return self._keytab(peer, account.name, request, fds)
        if not account.allows(peer.uid, set(peer.groups)):
            return self._refuse(peer, str(op), account.name)
        if op == "refresh":
            state = self.agent.refresh_now(account.name)
            return {"ok": True, "account": state.view() if state else None}
        if op == "refresh-async":
            self.agent.refresh_now(account.name, wait=0)
            return {"ok": True}
        if op == "ccache":
            return self._ccache(peer, account.name, request, fds)
        return {"ok": False, "error": "InputError", "message": f"unknown operation {op!r}", "hint": None}

    def _ccache(self, peer: Peer, name: str, request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        if len(fds) not in (1, 2):
            return {
                "ok": False,
                "error": "InputError",
                "message": "send the ccache file's descriptor",
                "hint": None,
            }
        file_fd = fds[-1]
        info = os.fstat(file_fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != peer.uid or info.st_mode & 0o077:
            return {"ok": False, "error": "NotPermittedError",
                    "message": "the descriptor must be a regular file of yours that only you can read", "hint": None}  # fmt: skip
        lifetime = request.get("lifetime")
        if lifetime is not None and (not isinstance(lifetime, int) or not 0 < lifetime <= MAX_LIFETIME):
            return {
                "ok": False,
                "error": "InputError",
                "message": f"lifetime: 1..{MAX_LIFETIME} seconds",
                "hint": None,
            }
        with self.agent.lock:
            keys = self.agent.keys.get(name.lower())
        if keys is None:
            state = self.agent.states.get(name.lower())
            why = state.error.message if state and state.error else "its first refresh has not finished"
            return {"ok": False, "error": "UnreachableError", "message": f"no tickets of {name} yet: {why}",
                    "hint": "credo agent status shows why"}  # fmt: skip
        data = ccache_bytes(keys, self.agent.work_dir, lifetime)
        os.ftruncate(file_fd, 0)
        os.pwrite(file_fd, data, 0)
        if request.get("cleanup") and len(fds) == 2:
            self._watch(peer, fds[0], file_fd, str(request.get("dir") or ""), str(request.get("name") or ""))
        log.info("gave a ccache of %s to uid %d (pid %d)", name, peer.uid, peer.pid, extra={"account": name})
        _issued(peer, name, "ccache")
        return {"ok": True, "account": name}

    def _keytab(self, peer: Peer, name: str, request: dict[str, Any], fds: list[int]) -> dict[str, Any]:
        """The account's keys (as ``credo gmsa keytab`` writes them) into the caller's new file
        ``fds[0]``; ``fds[1]``, when given, is the caller's current keytab (read only: its other
        principals and the kvno-1 keys the DC no longer returns are kept, as the CLI keeps them)."""
        if len(fds) not in (1, 2):
            return {"ok": False, "error": "InputError", "message": "send the new keytab file's descriptor",
                    "hint": None}  # fmt: skip
        file_fd = fds[0]
        info = os.fstat(file_fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != peer.uid or info.st_mode & 0o077:
            return {"ok": False, "error": "NotPermittedError",
                    "message": "the descriptor must be a regular file of yours that only you can read", "hint": None}  # fmt: skip
        existing: list[KeytabEntry] = []
        if len(fds) == 2:
            old = os.fstat(fds[1])
            if not stat.S_ISREG(old.st_mode) or old.st_size > MAX_KEYTAB:
                return {"ok": False, "error": "InputError",
                        "message": "the current keytab's descriptor is not a regular file of a keytab's size",
                        "hint": None}  # fmt: skip
            existing = read_keytab(f"/proc/self/fd/{fds[1]}")
        spns, enctypes = request.get("spns") or [], request.get("enctypes")
        if not isinstance(spns, list) or not all(isinstance(s, str) and s for s in spns):
            return {"ok": False, "error": "InputError", "message": "spns: a list of SPNs", "hint": None}
        wanted = parse_enctypes(enctypes if isinstance(enctypes, str) else None)
        with self.agent.lock:
            keys = self.agent.keys.get(name.lower())
        if keys is None or keys.kept is None:
            state = self.agent.states.get(name.lower())
            why = state.error.message if state and state.error else "its first refresh has not finished"
            return {"ok": False, "error": "UnreachableError", "message": f"no keys of {name} yet: {why}",
                    "hint": "credo agent status shows why"}  # fmt: skip
        material, entries = keys.kept.keytab_entries(wanted, spns, existing)
        write_keytab_to_fd(file_fd, merge_entries(existing, entries))
        report = keys.kept.report(str(request.get("path") or ""), material, entries)
        log.info("gave a keytab of %s (kvno %s) to uid %d (pid %d)", name,
                 ", ".join(map(str, report.kvnos)), peer.uid, peer.pid, extra={"account": name})  # fmt: skip
        _issued(peer, name, "keytab")
        return {"ok": True, "report": asdict(report)}

    def _watch(self, peer: Peer, dir_fd: int, file_fd: int, dir_path: str, name: str) -> None:
        info = os.fstat(dir_fd)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != peer.uid or "/" in name or not name:
            return
        try:
            pidfd = os.pidfd_open(peer.pid)
        except OSError:
            return
        file_info = os.fstat(file_fd)
        with self._lock:
            self._cleanups.append(
                _Cleanup(
                    pidfd,
                    dir_fd,
                    dir_path,
                    (info.st_dev, info.st_ino),
                    name,
                    (file_info.st_dev, file_info.st_ino),
                )
            )
        os.write(self._wake_w, b"x")

    def _reap(self) -> None:
        """Remove the files of callers that ended (their pidfd becomes readable)."""
        while not self._stopping:
            with self._lock:
                watched = {c.pidfd: c for c in self._cleanups}
            ready, _, _ = select.select([self._wake_r, *watched], [], [], 5)
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
            for fd in ready:
                cleanup = watched.get(fd)
                if cleanup is None:
                    continue
                with self._lock:
                    self._cleanups.remove(cleanup)
                _remove(cleanup)


def _remove(c: _Cleanup) -> None:
    """Unlink the ticket file, and the directory if it is still the one we were given and empty."""
    try:
        info = os.stat(c.name, dir_fd=c.dir_fd, follow_symlinks=False)
        if (info.st_dev, info.st_ino) == c.file_id:
            os.unlink(c.name, dir_fd=c.dir_fd)
        if c.dir_path:
            # Through the directory's own parent, not by path: under systemd's PrivateTmp or
            # ProtectHome the agent does not see the caller's /tmp or /run/user.
            parent = os.open("..", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=c.dir_fd)
            try:
                name = os.path.basename(c.dir_path)
                dir_info = os.stat(name, dir_fd=parent, follow_symlinks=False)
                if (dir_info.st_dev, dir_info.st_ino) == c.dir_id:
                    os.rmdir(name, dir_fd=parent)
            finally:
                os.close(parent)
    except OSError:
        pass
    finally:
        for fd in (c.pidfd, c.dir_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _issued(peer: Peer, account: str, what: str) -> None:
    events.emit(
        SecurityEvent(
            "agent", "agent.credential.issued", Outcome.SUCCESS, Severity.NOTICE, f"uid {peer.uid}", account,
            {"credential": what, "pid": peer.pid},
        )
    )  # fmt: skip
