"""A client of the agent's socket for credo's own commands and the worker (typed errors)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from credo import errors
from credo.agent.config import socket_path
from credo.agent.wire import recv_message, send_message
from credo.errors import CredoError, UnreachableError

__all__ = ["AgentClient"]


class AgentClient:
    def __init__(self, path: Path | None = None, timeout: float = 120.0) -> None:
        self.path = path or socket_path()
        self.timeout = timeout

    def available(self) -> bool:
        return self.path.is_socket()

    def call(self, request: dict[str, Any], fds: list[int] | None = None) -> dict[str, Any]:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(self.timeout)
                sock.connect(str(self.path))
                send_message(sock, request, fds)
                answer, _ = recv_message(sock)
        except (OSError, ValueError) as exc:
            raise UnreachableError(
                f"no credo agent answers on {self.path}: {exc}",
                hint="start it: credo agent run (or systemctl start credo-agent)",
            ) from None
        if not answer.get("ok"):
            raise _error(answer)
        return answer

    def status(self) -> list[dict[str, Any]]:
        accounts: list[dict[str, Any]] = self.call({"op": "status"})["accounts"]
        return accounts

    def refresh(self, account: str) -> dict[str, Any]:
        state: dict[str, Any] = self.call({"op": "refresh", "account": account})["account"]
        return state

    def write_ccache(self, account: str, path: Path, lifetime: int | None = None) -> None:
        """A fresh ccache of ``account`` into a new file at ``path`` (created here, 0600, ours)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            request: dict[str, Any] = {"op": "ccache", "account": account}
            if lifetime is not None:
                request["lifetime"] = lifetime
            self.call(request, [fd])
        finally:
            os.close(fd)


def _error(answer: dict[str, Any]) -> CredoError:
    kind = getattr(errors, str(answer.get("error")), CredoError)
    if not (isinstance(kind, type) and issubclass(kind, CredoError)):
        kind = CredoError
    return kind(str(answer.get("message") or "the agent refused"), hint=answer.get("hint"))
