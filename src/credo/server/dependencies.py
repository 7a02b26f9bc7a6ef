"""What routes get injected: the server's state, and who the caller is.

The gate (credo.server.gate) has checked the credentials before the body was read; ``authorize``
and ``worker_principal`` repeat the check, cheaply, so that a route never runs without it, and
``authorize`` checks the route's permission (credo.server.access) for the caller.
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at runtime.

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.routing import Route

from credo.automation.rbac import Permission
from credo.defaults import MAX_POSITION
from credo.server.access import NEEDS, Forbidden, decide, decide_on, job_target
from credo.server.gate import CALLER, NEGOTIATE_REPLY, PRINCIPAL, Access, Caller, Unauthenticated
from credo.server.state import State

T = TypeVar("T")

__all__ = [
    "Admin",
    "AppState",
    "Principal",
    "RowId",
    "SignedIn",
    "authorize",
    "check_target",
    "get_state",
    "negotiate_reply",
    "visible",
    "worker_principal",
]


def get_state(request: Request) -> State:
    state: State = request.app.state.credo
    return state


async def authorize(request: Request, response: Response) -> Caller:
    """The caller the gate signed in, if the route's permission is theirs (403 naming what is
    missing otherwise); a Negotiate reply token goes back with the answer. A route whose body names
    its target is checked by the route itself (``check_target``)."""
    caller = request.scope.get(CALLER)
    route = request.scope.get("route")
    if not isinstance(caller, Caller) or not isinstance(route, Route):
        raise Unauthenticated(Access.ADMIN)
    state = get_state(request)
    need = NEEDS[(request.method, route.path)]
    target = None
    if need.job is not None:
        target = await state.run(job_target, request.path_params.get(need.job, ""))
    # (A route whose body names its target is checked here for the permission anywhere, then by
    # the route.)
    decision = await _decided(
        state,
        caller,
        lambda: decide(
            caller, request.method, route.path, request.path_params, state.grants, state.groups_of,
            target=target,
        ),
    )  # fmt: skip
    if not decision and target is not None:
        # Refused a job: word it as for a job that does not exist, so that a refusal does not tell
        # a caller which runbook and worker group another team's job has.
        decision = decide(
            caller, request.method, route.path, {}, state.grants, lambda _p: frozenset(), target=(None, None)
        )
    if not decision:
        raise Forbidden(caller, decision)
    negotiate_reply(request, response)
    return caller


async def visible(state: State, caller: Caller, targets: list[tuple[str | None, str | None]]) -> list[bool]:
    """For a list route: which of the items (runbook, worker group) may ``caller`` see?"""

    def check() -> list[bool]:
        return [
            bool(decide_on(caller, Permission.READ, runbook, group, state.grants, state.groups_of))
            for runbook, group in targets
        ]

    return await _decided(state, caller, check)


async def _decided(state: State, caller: Caller, decision: Callable[[], T]) -> T:
    """``decision()`` at once when nothing in it blocks (``State.decides_at_once``), else on a
    thread: the grants may have to be read, or the directory asked for the caller's groups."""
    if state.decides_at_once(caller):
        return decision()
    return await run_in_threadpool(decision)


async def check_target(
    state: State, caller: Caller, permission: Permission, runbook: str | None, worker_group: str | None
) -> None:
    """For a route whose body names its target: may ``caller`` do ``permission`` there?"""
    decision = await _decided(
        state,
        caller,
        lambda: decide_on(caller, permission, runbook, worker_group, state.grants, state.groups_of),
    )
    if not decision:
        raise Forbidden(caller, decision)


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
Admin = Depends(authorize)
SignedIn = Annotated[Caller, Depends(authorize)]

# A row id in a path (a worker's, a grant's): a larger number than SQL's BIGINT names no row, and
# SQLite fails to bind it (a 500, found by schemathesis); FastAPI answers 422 instead.
RowId = Annotated[int, Path(ge=1, le=MAX_POSITION)]
