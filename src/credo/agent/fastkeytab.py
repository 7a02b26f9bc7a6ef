"""``credo gmsa keytab NAME --out FILE`` through a running agent: one socket round trip.

Loaded before click and the rest of credo (``credo.launch``), and importing only the standard
library and ``credo.agent.wire``, for the same reason as ``credo.agent.fastrun``: interpreter
start-up and imports are most of a one-shot command's time, and the agent already holds the
account's keys. It handles ``NAME --out FILE`` with ``--spn``, ``--enctypes`` and ``--json``;
any other option (``--owner``, ``--server``, ...), no agent socket, or an agent that does not
serve NAME (or does not keep the asked enctype) falls back to the full command, unchanged.

The keytab is written as the full command writes it: a new file next to FILE, created here
(``O_EXCL``, 0600, so owned by the caller), which the agent fills through the descriptor (it
never opens a caller's path); then fsync, rename onto FILE and fsync of the directory, so a
reader sees the old keytab or the new one. The current FILE, if any, is handed over read-only:
the agent keeps its other principals' entries and the kvno-1 keys the DC no longer returns,
as ``credo gmsa keytab`` does. The agent decides who may have keys: ``export_keytab``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys

from credo.agent.wire import EXIT_CODES, recv_message, send_message

__all__ = ["try_keytab"]

_VALUED = ("--out", "--spn", "--enctypes")


def _parse(args: list[str]) -> tuple[str, str, list[str], str | None, bool] | None:
    """``NAME --out FILE [--spn SPN]... [--enctypes LIST] [--json]`` in any order (``--opt=V``
    too) -> (NAME, FILE, SPNS, ENCTYPES, JSON); None for anything else."""
    names: list[str] = []
    values: dict[str, list[str]] = {option: [] for option in _VALUED}
    as_json = False
    i = 0
    while i < len(args):
        arg = args[i]
        option, equals, value = arg.partition("=")
        if option in _VALUED and equals:
            values[option].append(value)
        elif arg in _VALUED and i + 1 < len(args):
            values[arg].append(args[i + 1])
            i += 1
        elif arg == "--json":
            as_json = True
        elif arg.startswith("-"):
            return None  # --owner, --server, --help, "--", ...: the full command
        else:
            names.append(arg)
        i += 1
    if (
        len(names) != 1
        or len(values["--out"]) != 1
        or len(values["--enctypes"]) > 1
        or not values["--out"][0]
    ):
        return None
    enctypes = values["--enctypes"][0] if values["--enctypes"] else None
    return names[0], values["--out"][0], values["--spn"], enctypes, as_json


def _shown(path: str) -> str:
    """``str(pathlib.Path(path))`` (what the full command prints) without importing pathlib."""
    root = (
        "//" if path.startswith("//") and not path.startswith("///") else "/" if path.startswith("/") else ""
    )
    return root + "/".join(p for p in path.split("/") if p and p != ".") or "."


def try_keytab(args: list[str]) -> None:
    """Write the keytab with the agent's keys and exit, or return to let the full command run."""
    parsed = _parse(args)
    path = os.environ.get("CREDO_AGENT_SOCKET") or "/run/credo/agent.sock"
    if parsed is None or not os.path.exists(path):
        return
    account, out, spns, enctypes, as_json = parsed
    if os.path.isdir(out):
        return  # the full command says so
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(120)
        sock.connect(path)
    except OSError:
        sock.close()
        return  # a stale socket: no agent, the full command does the job
    directory = os.path.dirname(os.path.abspath(out))
    tmp = os.path.join(directory, f".{os.path.basename(out)}.credo-{os.urandom(6).hex()}.tmp")
    fds: list[int] = []
    try:
        fds.append(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        with contextlib.suppress(FileNotFoundError):
            fds.append(os.open(out, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC))
    except OSError:
        _close(sock, fds, tmp if fds else None)
        return  # an unwritable directory, an unreadable keytab: the full command reports it
    request: dict[str, object] = {"op": "keytab", "account": account, "path": _shown(out), "spns": spns}
    if enctypes is not None:
        request["enctypes"] = enctypes
    try:
        send_message(sock, request, fds)
        answer, _ = recv_message(sock)
    except (OSError, ValueError) as exc:
        answer = {"ok": False, "error": "UnreachableError", "message": f"the agent at {path} failed: {exc}"}
    if answer.get("ok"):
        try:
            os.fsync(fds[0])
            os.replace(tmp, out)
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            answer = {"ok": False, "error": "EnvironmentProblem", "message": f"cannot write keytab {_shown(out)}: "
                      f"{exc.strerror}", "hint": "check permissions (changing the owner needs root)"}  # fmt: skip
    _close(sock, fds, None if answer.get("ok") else tmp)
    if not answer.get("ok"):
        if answer.get("error") == "NotFoundError":
            return  # the agent does not serve this account or keep that enctype: the full command does
        sys.stderr.write(f"credo: error: {answer.get('message')}\n")
        if answer.get("hint"):
            sys.stderr.write(f"credo: hint: {answer['hint']}\n")
        sys.exit(EXIT_CODES.get(str(answer.get("error")), 1))
    report = answer["report"]
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(
            f"wrote {report['path']}: {', '.join(report['principals'])} at kvno "
            f"{', '.join(map(str, report['kvnos']))}; refresh after {report['refresh_after']}\n"
        )
    sys.stdout.flush()
    sys.exit(0)


def _close(sock: socket.socket, fds: list[int], remove: str | None) -> None:
    sock.close()
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    if remove is not None:
        with contextlib.suppress(OSError):
            os.unlink(remove)
