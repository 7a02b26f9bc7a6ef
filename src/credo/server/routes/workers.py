"""/api/v1/workers/...: the worker protocol (register with Negotiate, then a session token).

Claims long-poll: an idle worker's request waits until a job of its group is queued (or
``wait`` seconds pass), so a job starts as soon as it is submitted.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoint signatures at runtime.

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from credo.defaults import CLAIM_WAIT_SECONDS, MAX_CLAIM_WAIT_SECONDS, MAX_POSITION, MAX_SLOTS
from credo.server import audit, identity, limits, queue
from credo.server.api import API
from credo.server.dependencies import AppState, Principal, RowId, negotiate_reply, worker_principal
from credo.server.gate import Access, guard
from credo.server.models import WorkerGroup
from credo.server.schemas import (
    ClaimAnswer,
    ClaimedJob,
    DrainAnswer,
    DrainIn,
    FinishAnswer,
    FinishIn,
    HeartbeatAnswer,
    HeartbeatIn,
    JobTokenIn,
    OutputAnswer,
    OutputIn,
    RegisterIn,
    Registration,
    TokenAnswer,
)

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix=f"{API}/workers", tags=["worker protocol"])


@router.post("/register", dependencies=[Depends(negotiate_reply)])
@guard(Access.NEGOTIATE)
async def register(body: RegisterIn, request: Request, state: AppState) -> Registration:
    # The gate accepted the Negotiate token before reading the body.
    principal = await worker_principal(request)

    def op(session: Session) -> tuple[dict[str, object], list[str], int]:
        worker, requeued = queue.register_worker(
            session, principal, body.group, body.hostname, body.slots, body.instance
        )
        group = session.get(WorkerGroup, worker.group_id)
        assert group is not None
        return {"worker_id": worker.id, "principal": principal, "group": group.name, "run_as": group.run_as,
                "local_user": group.local_user, "max_concurrent": group.max_concurrent,
                "allow_system_user": group.allow_system_user}, requeued, group.id  # fmt: skip

    view, requeued, group_id = await state.run(op)
    if requeued:
        state.notifier.notify(group_id, len(requeued))
        log.info("worker %s restarted: %d job(s) requeued", principal, len(requeued))
    return Registration.model_validate(
        view | {"session_token": state.sessions.issue(principal), "lease_seconds": state.config.lease_seconds}
    )


@router.post("/{worker_id}/heartbeat")
@guard(Access.WORKER)
async def worker_heartbeat(
    worker_id: RowId, body: HeartbeatIn, principal: Principal, state: AppState
) -> HeartbeatAnswer:
    def op(session: Session) -> HeartbeatAnswer:
        worker = queue.get_worker(session, worker_id, principal)
        leases = [(lease.job_id, lease.lease_token) for lease in body.leases]
        return HeartbeatAnswer(stop=queue.heartbeat(session, worker, leases, state.config.lease_seconds))

    return await state.run(op)


@router.post("/{worker_id}/drain")
@guard(Access.WORKER)
async def worker_drain(worker_id: RowId, body: DrainIn, principal: Principal, state: AppState) -> DrainAnswer:
    """The worker is stopping (``final``: has stopped): no new jobs; jobs it does not hold go back."""

    def op(session: Session) -> tuple[int, list[str]]:
        worker = state.worker(session, worker_id, principal)
        leases = [(lease.job_id, lease.lease_token) for lease in body.leases]
        return worker.group_id, queue.drain_worker(session, worker, leases, body.final)

    group_id, requeued = await state.run(op)
    # Also ends the worker's own pending long-poll: its claim loop sees it is no longer online.
    state.notifier.notify(group_id, everyone=True)
    return DrainAnswer(requeued=requeued)


@router.post("/{worker_id}/claim", response_model_exclude_unset=True)
@guard(Access.WORKER)
async def claim(
    request: Request,
    worker_id: RowId,
    principal: Principal,
    state: AppState,
    slots: Annotated[int, Query(ge=1, le=MAX_SLOTS)] = 1,
    wait: Annotated[float, Query(ge=0, le=MAX_CLAIM_WAIT_SECONDS)] = CLAIM_WAIT_SECONDS,
) -> ClaimAnswer:
    """Up to ``slots`` queued jobs of the worker's group, waiting up to ``wait`` seconds for one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    group_id: int | None = None
    woken = False
    while True:

        def op(session: Session, again: bool) -> tuple[int, list[ClaimedJob], bool]:
            worker = state.worker(session, worker_id, principal)
            # Not the first look: a worker that said it is stopping waits no more.
            if again and not queue.worker_online(session, worker_id):
                return worker.group_id, [], False
            if not again:
                queue.claimed_alive(session, worker_id)
            claimed = queue.claim_jobs(session, worker, slots, state.config.lease_seconds, state.db.dialect)
            if claimed:
                state.identity(session, worker.group_id)
                state.observe_claims(session, worker.group_id, claimed)
            return worker.group_id, queue.claim_payloads(session, claimed, state.versions), True

        # A worker that went away (killed, restarted) must not be handed a job it will never run;
        # the wake-up it got goes to another waiter.
        if group_id is not None and await request.is_disconnected():
            if woken:
                state.notifier.wake(group_id)
            return ClaimAnswer(jobs=[])
        group, jobs, online = await state.run(op, group_id is not None)
        group_id = group
        remaining = deadline - loop.time()
        if jobs or not online or remaining <= 0:
            return ClaimAnswer(jobs=jobs, identity=state.identities.get(group) if jobs else None)
        woken = await state.notifier.wait(group, min(remaining, state.claim_recheck()))
        if not woken and loop.time() >= deadline:
            # Nothing came: the worker's next long-poll looks anyway; one look less per poll.
            return ClaimAnswer(jobs=[])


@router.get(
    "/{worker_id}/jobs/{job_id}/content",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The runbook's script"}},
)
@guard(Access.WORKER, limits.NO_BODY)
async def job_content(
    worker_id: RowId,
    job_id: str,
    lease_token: Annotated[int, Query(ge=0, le=MAX_POSITION)],
    principal: Principal,
    state: AppState,
) -> Response:
    def op(session: Session) -> bytes:
        return queue.job_content(session, state.worker(session, worker_id, principal), job_id, lease_token)

    return Response(await state.run(op), media_type="application/octet-stream")


@router.post("/{worker_id}/jobs/{job_id}/output")
@guard(Access.WORKER, limits.WORKER_REPORT_BODY)
async def job_append(
    worker_id: RowId, job_id: str, body: OutputIn, principal: Principal, state: AppState
) -> OutputAnswer:
    def op(session: Session) -> OutputAnswer:
        worker = state.worker(session, worker_id, principal)
        chunks = [(c.stream.value, c.text) for c in body.chunks]
        return OutputAnswer(stop=queue.append_output(session, worker, job_id, body.lease_token, chunks))

    return await state.run(op)


@router.post("/{worker_id}/jobs/{job_id}/finish", response_model_exclude_unset=True)
@guard(Access.WORKER, limits.WORKER_REPORT_BODY)
async def job_finish(
    request: Request,
    worker_id: RowId,
    job_id: str,
    body: FinishIn,
    principal: Principal,
    state: AppState,
    claim: Annotated[
        int, Query(ge=0, le=MAX_SLOTS, description="Also claim up to this many queued jobs (no waiting)")
    ] = 0,
) -> FinishAnswer:
    def op(session: Session) -> FinishAnswer:
        worker = state.worker(session, worker_id, principal)
        if body.chunks:
            chunks = [(c.stream.value, c.text) for c in body.chunks]
            queue.append_output(session, worker, job_id, body.lease_token, chunks)
        finished, ended_now = queue.finish_job(
            session, worker, job_id, body.lease_token, body.exit_code, body.reason, body.stopped,
            body.handback,
        )  # fmt: skip
        if not claim:
            audit.record_in(session, request, 200, target=f"job/{job_id}", state=finished)
            return FinishAnswer(state=finished)
        # The slot this job leaves goes to the next queued job in the same round trip.
        claimed = queue.claim_jobs(
            session,
            worker,
            claim,
            state.config.lease_seconds,
            state.db.dialect,
            handover=ended_now and claim == 1,
        )
        state.observe_claims(session, worker.group_id, claimed)
        # The report and its record commit together (credo.server.audit); appended last, since
        # the append holds the log's lock until the commit.
        audit.record_in(session, request, 200, target=f"job/{job_id}", state=finished)
        return FinishAnswer(
            state=finished,
            jobs=queue.claim_payloads(session, claimed, state.versions),
            identity=state.identity(session, worker.group_id) if claimed else None,
        )

    return await state.run(op)


@router.post("/{worker_id}/jobs/{job_id}/token")
@guard(Access.WORKER, limits.TOKEN_BODY)
async def job_token(
    worker_id: RowId, job_id: str, body: JobTokenIn, principal: Principal, state: AppState, response: Response
) -> TokenAnswer:
    """A token for one of the worker's running jobs (403: not its lease, or an unlisted audience)."""

    def op(session: Session) -> TokenAnswer:
        worker = state.worker(session, worker_id, principal)
        issued = identity.job_token(
            session, state.issuer, worker.id, worker.principal, job_id, body.lease, body.audience,
            body.runbook_subject, body.gmsa_sid,
        )  # fmt: skip
        return TokenAnswer(**identity.token_answer(issued))

    answer = await state.run(op)
    no_store(response)
    return answer


def no_store(response: Response) -> None:
    """A token answer: no cache may keep it (RFC 9111 §5.2.2.5)."""
    response.headers["Cache-Control"] = "no-store"
