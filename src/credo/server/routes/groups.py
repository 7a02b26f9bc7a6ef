"""/api/v1/groups and /api/v1/workers: worker groups, their identity settings, their workers (admin)."""

# No `from __future__ import annotations`: FastAPI reads the endpoint signatures at runtime.

from fastapi import APIRouter, Response
from sqlalchemy.orm import Session

from credo.server import catalog, identity, limits, views
from credo.server.api import API
from credo.server.dependencies import Admin, AppState
from credo.server.gate import Access, guard
from credo.server.schemas import GroupIn, GroupOut, GroupUpdate, WorkerOut

__all__ = ["router", "workers_router"]

router = APIRouter(prefix=f"{API}/groups", tags=["groups"], dependencies=[Admin])
workers_router = APIRouter(prefix=f"{API}/workers", tags=["workers"], dependencies=[Admin])


@router.post("", status_code=201)
@guard(Access.ADMIN)
async def create_group(body: GroupIn, state: AppState) -> GroupOut:
    def op(session: Session) -> GroupOut:
        group = catalog.create_group(
            session, body.name, body.run_as, body.local_user, body.max_concurrent, body.workers,
            body.allow_system_user,
        )  # fmt: skip
        return views.group_view(session, group, state.config.lost_after_seconds)

    return await state.run(op)


@router.get("")
@guard(Access.ADMIN, limits.NO_BODY)
async def list_groups(state: AppState) -> list[GroupOut]:
    return await state.run(views.list_groups, state.config.lost_after_seconds)


@router.get("/{name}")
@guard(Access.ADMIN, limits.NO_BODY)
async def show_group(name: str, state: AppState) -> GroupOut:
    lost_after = state.config.lost_after_seconds
    return await state.run(lambda s: views.group_view(s, catalog.get_group(s, name), lost_after))


@router.patch("/{name}")
@guard(Access.ADMIN)
async def update_group(name: str, body: GroupUpdate, state: AppState) -> GroupOut:
    """Set the group's workload identity settings (the fields sent; null clears one)."""

    def op(session: Session) -> GroupOut:
        group = catalog.get_group(session, name)
        identity.set_group_identity(session, group, {f: getattr(body, f) for f in body.model_fields_set})
        return views.group_view(session, group, state.config.lost_after_seconds)

    result = await state.run(op)
    state.identities.clear()
    return result


@router.delete("/{name}", status_code=204, response_class=Response)
@guard(Access.ADMIN, limits.NO_BODY)
async def delete_group(name: str, state: AppState) -> Response:
    await state.run(catalog.delete_group, name)
    state.forget_groups()
    return Response(status_code=204)


@workers_router.get("")
@guard(Access.ADMIN, limits.NO_BODY)
async def list_workers(state: AppState) -> list[WorkerOut]:
    return await state.run(views.list_workers, state.config.lost_after_seconds)
