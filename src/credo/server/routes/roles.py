"""/api/v1/roles: role grants to AD groups (role admin): grant, list, revoke."""

# No `from __future__ import annotations`: FastAPI reads the endpoint signatures at runtime.

from fastapi import APIRouter

from credo.server import grants, limits
from credo.server.api import API
from credo.server.clock import aware
from credo.server.dependencies import AppState, RowId, SignedIn
from credo.server.gate import Access, guard
from credo.server.models import RoleGrant
from credo.server.schemas import GrantIn, GrantOut

__all__ = ["router"]

router = APIRouter(prefix=f"{API}/roles", tags=["roles"])


def _view(row: RoleGrant) -> GrantOut:
    return GrantOut(
        id=row.id, role=row.role, group=row.group, runbooks=row.runbooks, worker_groups=row.worker_groups,
        created_by=row.created_by, created_at=aware(row.created_at) or row.created_at,
    )  # fmt: skip


@router.post("", status_code=201)
@guard(Access.ADMIN, limits.DEFAULT_BODY)
async def grant_role(body: GrantIn, caller: SignedIn, state: AppState) -> GrantOut:
    view = await state.run(
        lambda s: _view(
            grants.add_grant(s, body.role, body.group, body.runbooks, body.worker_groups, caller.name)
        )
    )
    state.forget_grants()
    return view


@router.get("")
@guard(Access.ADMIN, limits.NO_BODY)
async def list_roles(caller: SignedIn, state: AppState) -> list[GrantOut]:
    return await state.run(lambda s: [_view(row) for row in grants.list_grants(s)])


@router.delete("/{grant_id}")
@guard(Access.ADMIN, limits.NO_BODY)
async def revoke_role(grant_id: RowId, caller: SignedIn, state: AppState) -> GrantOut:
    view = await state.run(lambda s: _view(grants.revoke_grant(s, grant_id)))
    state.forget_grants()
    return view
