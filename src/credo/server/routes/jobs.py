"""/api/v1/jobs: start, list, show, stop, resume; output pages and their live feed (admin)."""

# No `from __future__ import annotations`: FastAPI reads the endpoint signatures at runtime.

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from credo.automation.jobs import Stream
from credo.automation.rbac import Permission
from credo.defaults import MAX_JOB_LIST, MAX_OUTPUT_PAGE, MAX_POSITION
from credo.server import audit, catalog, limits, queue, views
from credo.server.api import API
from credo.server.dependencies import Admin, AppState, SignedIn, check_target, visible
from credo.server.gate import Access, guard
from credo.server.schemas import JobIn, JobOut, OutputPage

__all__ = ["SSE_PAGE", "router", "sse_events"]

router = APIRouter(prefix=f"{API}/jobs", tags=["jobs"], dependencies=[Admin])

# Chunks read per round of the live feed; an idle feed looks again every SSE_IDLE seconds.
SSE_PAGE = 1000
SSE_IDLE = 0.1


@router.post("", status_code=201, responses={200: {"model": JobOut, "description": "Started before"}})
@guard(Access.ADMIN, limits.JOB_BODY)
async def start_job(
    body: JobIn, request: Request, response: Response, state: AppState, caller: SignedIn, test: bool = False
) -> JobOut:
    """Queue a job (201); with an idempotency key already used, the first job (200)."""
    await check_target(state, caller, Permission.RUN, body.runbook, body.group)

    def op(session: Session) -> tuple[JobOut, bool, int]:
        started = queue.start_job(
            session, body.runbook, body.group, body.parameters,
            idempotency_key=body.idempotency_key, timeout_seconds=body.timeout_seconds, test=test,
        )  # fmt: skip
        # The job and the record of its start commit together (credo.server.audit).
        audit.record_in(session, request, 201 if started.created else 200, target=f"job/{started.job_id}",
                        runbook=body.runbook, group=body.group)  # fmt: skip
        return started.view, started.created, started.group_id

    view, created, group_id = await state.run(op)
    if created:
        state.notifier.notify(group_id)
    else:
        response.status_code = 200
    return view


@router.get("")
@guard(Access.ADMIN, limits.NO_BODY)
async def list_jobs(
    state: AppState,
    caller: SignedIn,
    state_filter: Annotated[str | None, Query(alias="state")] = None,
    group: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_JOB_LIST)] = 50,
) -> list[JobOut]:
    def op(session: Session) -> list[JobOut]:
        group_id = catalog.get_group(session, group).id if group else None
        return views.list_jobs(session, state_filter, group_id, limit)

    jobs = await state.run(op)
    # Only the jobs of runbooks and worker groups the caller may read (a page may come out short).
    seen = await visible(state, caller, [(job.runbook, job.group) for job in jobs])
    return [job for job, shown in zip(jobs, seen, strict=True) if shown]


@router.get("/{job_id}")
@guard(Access.ADMIN, limits.NO_BODY)
async def show_job(job_id: str, state: AppState) -> JobOut:
    return await state.run(lambda s: views.job_view(s, views.get_job(s, job_id)))


@router.post("/{job_id}/stop")
@guard(Access.ADMIN)
async def stop_job(job_id: str, state: AppState) -> JobOut:
    return await state.run(lambda s: views.job_view(s, queue.stop_job(s, job_id)))


@router.post("/{job_id}/resume")
@guard(Access.ADMIN, limits.NO_BODY)
async def resume_job(job_id: str, state: AppState) -> JobOut:
    """Queue a Suspended job again (from the start), with three more attempts."""

    def op(session: Session) -> tuple[JobOut, int]:
        job = queue.resume_job(session, job_id)
        return views.job_view(session, job), job.group_id

    view, group_id = await state.run(op)
    state.notifier.notify(group_id)
    return view


@router.get("/{job_id}/output")
@guard(Access.ADMIN, limits.NO_BODY)
async def job_output(
    job_id: str,
    state: AppState,
    stream: Stream | None = None,
    after: Annotated[
        int, Query(ge=0, le=MAX_POSITION, description="seq (with stream) or id (all streams) already seen")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_OUTPUT_PAGE)] = 1000,
) -> OutputPage:
    return await state.run(views.output_page, job_id, stream, after, limit)


_SSE_DOC = (
    "`event: chunk` (`id:` the cursor, `data:` a chunk as in the output page) per chunk, then one "
    '`event: end` with `data: {"state": ...}` once the job has ended and every chunk was sent.'
)


@router.get(
    "/{job_id}/output/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": _SSE_DOC}},
)
@guard(Access.ADMIN, limits.NO_BODY)
async def job_output_events(
    job_id: str,
    state: AppState,
    stream: Stream | None = None,
    after: Annotated[int, Query(ge=0, le=MAX_POSITION)] = 0,
) -> StreamingResponse:
    """Server-Sent Events: one ``chunk`` event per chunk, then ``end`` with the final state."""
    await state.run(views.get_job, job_id)
    return StreamingResponse(sse_events(state, job_id, stream, after), media_type="text/event-stream")


async def sse_events(state: AppState, job_id: str, stream: Stream | None, after: int) -> AsyncIterator[str]:
    """The feed (WHATWG HTML §9.2 event stream format); its ``id`` is the ``after`` to resume from."""
    cursor = after
    while True:
        page = await state.run(views.output_page, job_id, stream, cursor, SSE_PAGE)
        for chunk in page.chunks:
            cursor = chunk.seq if stream is not None else chunk.id
            # The chunk as the output page has it, so that a client reads both alike.
            yield f"event: chunk\nid: {cursor}\ndata: {chunk.model_dump_json()}\n\n"
        if page.complete and not page.chunks:
            yield f"event: end\ndata: {json.dumps({'state': page.state})}\n\n"
            return
        if not page.chunks:
            await asyncio.sleep(SSE_IDLE)
