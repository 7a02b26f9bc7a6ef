"""/api/v1/schedules: create, list, show, pause, resume, delete (admin); the scheduler fires them."""

# No `from __future__ import annotations`: FastAPI reads the endpoint signatures at runtime.

from fastapi import APIRouter, Response
from sqlalchemy.orm import Session

from credo.server import limits, scheduling
from credo.server.api import API
from credo.server.dependencies import Admin, AppState
from credo.server.gate import Access, guard
from credo.server.schemas import ScheduleIn, ScheduleOut

__all__ = ["router"]

router = APIRouter(prefix=f"{API}/schedules", tags=["schedules"], dependencies=[Admin])


@router.post("", status_code=201)
@guard(Access.ADMIN, limits.JOB_BODY)
async def create_schedule(body: ScheduleIn, state: AppState) -> ScheduleOut:
    def op(session: Session) -> ScheduleOut:
        return scheduling.schedule_view(session, scheduling.create_schedule(session, body), detail=True)

    return await state.run(op)


@router.get("")
@guard(Access.ADMIN, limits.NO_BODY)
async def list_schedules(state: AppState) -> list[ScheduleOut]:
    return await state.run(scheduling.list_schedules)


@router.get("/{name}")
@guard(Access.ADMIN, limits.NO_BODY)
async def show_schedule(name: str, state: AppState) -> ScheduleOut:
    return await state.run(
        lambda s: scheduling.schedule_view(s, scheduling.get_schedule(s, name), detail=True)
    )


@router.post("/{name}/pause")
@guard(Access.ADMIN, limits.NO_BODY)
async def pause_schedule(name: str, state: AppState) -> ScheduleOut:
    return await state.run(lambda s: scheduling.schedule_view(s, scheduling.set_enabled(s, name, False)))


@router.post("/{name}/resume")
@guard(Access.ADMIN, limits.NO_BODY)
async def resume_schedule(name: str, state: AppState) -> ScheduleOut:
    return await state.run(lambda s: scheduling.schedule_view(s, scheduling.set_enabled(s, name, True)))


@router.delete("/{name}", status_code=204, response_class=Response)
@guard(Access.ADMIN, limits.NO_BODY)
async def delete_schedule(name: str, state: AppState) -> Response:
    await state.run(scheduling.delete_schedule, name)
    return Response(status_code=204)
