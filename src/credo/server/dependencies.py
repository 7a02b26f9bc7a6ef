"""What routes get injected: the server's state, and who the caller is.

The gate (credo.server.gate) has checked the credentials before the body was read; ``admin`` and
``worker_principal`` repeat the check, cheaply, so that a route never runs without it.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at runtime.

from typing import Annotated

from fastapi import Depends, Header, Request, Response

from credo.server.gate import NEGOTIATE_REPLY, PRINCIPAL, Access, Unauthenticated
from credo.server.state import State

__all__ = ["Admin", "AppState", "Principal", "admin", "get_state", "negotiate_reply", "worker_principal"]


def get_state(request: Request) -> State:
    state: State = request.app.state.credo
    return state


async def admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not get_state(request).admin.check(value.strip()):
        raise Unauthenticated(Access.ADMIN)


async def worker_principal(request: Request) -> str:
    """The computer account the gate authenticated (worker session or Negotiate)."""
    principal = request.scope.get(PRINCIPAL)
    if not isinstance(principal, str):
        raise Unauthenticated(Access.WORKER)
    return principal


def negotiate_reply(request: Request, response: Response) -> None:
    """Send the Negotiate exchange's reply token back (RFC 4559 §5: mutual authentication)."""
    reply = request.scope.get(NEGOTIATE_REPLY)
    if reply:
        response.headers["WWW-Authenticate"] = f"Negotiate {reply}"


AppState = Annotated[State, Depends(get_state)]
Principal = Annotated[str, Depends(worker_principal)]
Admin = Depends(admin)
