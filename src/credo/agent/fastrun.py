"""``credo run --as NAME -- CMD`` through a running agent: one socket round trip, then exec.

Loaded before click and the rest of credo (``credo.launch``), and importing only the standard
library and ``credo.agent.wire``, because interpreter start-up and imports are most of a one-shot
run's time. It handles the plain form only; any other option (``--user``, ``--env``,
``--timeout``, ...) or no agent socket falls back to the full command, unchanged.

The ccache lives in a private directory (0700) in $XDG_RUNTIME_DIR or /tmp, in a file this process
creates (0600); the agent writes the ticket into it through the descriptor and removes it, and
the directory, when this process (by then CMD, after exec) ends. CMD keeps the caller's
environment, with KRB5CCNAME set; exit status and signals are CMD's own.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile

from credo.agent.wire import EXIT_CODES, recv_message, send_message

__all__ = ["try_run"]


def _parse(args: list[str]) -> tuple[str, list[str]] | None:
    """``--as NAME -- CMD...`` (or ``--as=NAME``) -> (NAME, CMD); None for anything else."""
    if len(args) >= 3 and args[0] == "--as" and args[2] == "--" and len(args) > 3:
        return args[1], args[3:]
    if len(args) >= 2 and args[0].startswith("--as=") and args[1] == "--" and len(args) > 2:
        return args[0][5:], args[2:]
    return None


def try_run(args: list[str]) -> None:
    """Exec the command with the agent's ticket, or return to let the full command run."""
    parsed = _parse(args)
    path = os.environ.get("CREDO_AGENT_SOCKET") or "/run/credo/agent.sock"
    if parsed is None or not os.path.exists(path):
        return
    account, command = parsed
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return  # a stale socket: no agent, the full command does the job
    base = os.environ.get("XDG_RUNTIME_DIR") or None
    directory = tempfile.mkdtemp(prefix="credo-run-", dir=base if base and os.path.isdir(base) else None)
    ccache = os.path.join(directory, "krb5cc")
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    file_fd = os.open(ccache, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        request = {"op": "ccache", "account": account, "cleanup": True, "dir": directory, "name": "krb5cc"}
        send_message(sock, request, [dir_fd, file_fd])
        answer, _ = recv_message(sock)
    except (OSError, ValueError) as exc:
        answer = {"ok": False, "error": "UnreachableError", "message": f"the agent at {path} failed: {exc}"}
    finally:
        sock.close()
        os.close(dir_fd)
        os.close(file_fd)
    if not answer.get("ok"):
        _remove(ccache, directory)
        if answer.get("error") == "NotFoundError":
            return  # the agent does not serve this account: the full command does
        sys.stderr.write(f"credo: error: {answer.get('message')}\n")
        if answer.get("hint"):
            sys.stderr.write(f"credo: hint: {answer['hint']}\n")
        sys.exit(EXIT_CODES.get(str(answer.get("error")), 1))
    env = dict(os.environ, KRB5CCNAME=f"FILE:{ccache}")
    try:
        os.execvpe(command[0], command, env)  # noqa: S606 (the caller's argv, no shell: the point of run)
    except OSError as exc:
        _remove(ccache, directory)
        sys.stderr.write(f"credo: error: cannot run {command[0]}: {exc.strerror}\n")
        sys.exit(2 if isinstance(exc, FileNotFoundError) else 3)


def _remove(ccache: str, directory: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(ccache)
    with contextlib.suppress(OSError):
        os.rmdir(directory)
