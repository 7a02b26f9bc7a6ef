"""The agent's socket protocol, shared by the agent and its clients: one JSON line each way.

Standard library only: ``credo run --as`` loads this module on its fast path, which must not load
python-ldap, krb5, gssapi, click or the rest of credo (each costs start-up time).

A request is ``{"op": ..., ...}`` on a SOCK_STREAM unix socket; descriptors travel beside it
(SCM_RIGHTS, unix(7)). The agent learns who asks from the kernel (SO_PEERCRED), never from the
request. Operations:

- ``status``: ``{"accounts": [...]}`` (those the caller may use; root sees all)
- ``refresh`` ``{"account"}``: refresh now, answer when done (``refresh-async``: at once)
- ``ccache`` ``{"account", "lifetime"?, "cleanup"?}`` with descriptors ``[file]`` or
  ``[directory, file]``: the agent writes a fresh ccache of the account into the caller's open
  file (it never opens a caller's path). With ``cleanup``, the agent removes that file (and the
  then empty directory) when the caller's process ends, so an exec'd command leaves no ticket.
- ``keytab`` ``{"account", "path", "spns"?, "enctypes"?}`` with descriptors ``[new file]`` or
  ``[new file, current keytab]``: the agent writes the account's keys (kvno, kvno-1, and kvno+1
  inside the pre-rotation window: what ``credo gmsa keytab`` writes) into the caller's new file,
  keeping the current keytab's other principals; answers ``{"report": ...}`` (no key). Allowed to
  root and the account's ``export_keytab`` only.

An answer is ``{"ok": true, ...}`` or ``{"ok": false, "error": CLASS, "message", "hint"}``.
"""

from __future__ import annotations

import json
import socket
from typing import Any

__all__ = ["EXIT_CODES", "MAX_LINE", "recv_message", "send_message"]

MAX_LINE = 1 << 20
# An answer's error class -> its exit code (credo.errors), for the fast clients.
EXIT_CODES = {"InputError": 2, "EnvironmentProblem": 3, "UnreachableError": 4, "NotPermittedError": 5,
              "NotFoundError": 6}  # fmt: skip


def send_message(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
    if fds:
        socket.send_fds(sock, [data[:1]], fds)
        data = data[1:]
    sock.sendall(data)


def recv_message(sock: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any], list[int]]:
    """One JSON line (and up to ``max_fds`` descriptors sent with its first byte)."""
    fds: list[int] = []
    buffer = b""
    if max_fds:
        data, fds, _flags, _addr = socket.recv_fds(sock, 65536, max_fds)
        buffer = data
    while not buffer.endswith(b"\n"):
        if len(buffer) > MAX_LINE:
            raise ValueError("message too long")
        data = sock.recv(65536)
        if not data:
            break
        buffer += data
    if not buffer:
        raise ConnectionError("the peer closed the connection")
    message = json.loads(buffer)
    if not isinstance(message, dict):
        raise ValueError("not a JSON object")
    return message, fds
