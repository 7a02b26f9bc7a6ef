"""Read models: what the API answers about runbooks, groups, workers, jobs and their output.

Reads only: every function takes a session and returns the response models of
``credo.server.schemas``, built with a fixed number of queries (not one per row).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Executable, func, select
from sqlalchemy.orm import Session

from credo.automation.jobs import TERMINAL, JobState, Stream
from credo.errors import NotFoundError
from credo.server import identity
from credo.server.clock import aware, now
from credo.server.metrics import QueueSnapshot
from credo.server.models import Job, JobOutput, JobTransition, Runbook, RunbookVersion, Worker, WorkerGroup
from credo.server.schemas import (
    ChunkOut,
    GroupIdentity,
    GroupOut,
    JobOut,
    OutputPage,
    RunbookDetail,
    RunbookOut,
    RunbookVersionOut,
    Transition,
    WorkerOut,
)

__all__ = [
    "get_job",
    "group_view",
    "job_from_parts",
    "job_view",
    "job_views",
    "list_groups",
    "list_jobs",
    "list_runbooks",
    "list_workers",
    "output_page",
    "queue_snapshot",
    "runbook_detail",
    "runbook_view",
    "worker_view",
]


# -- runbooks ----------------------------------------------------------------------------------------


def runbook_view(session: Session, runbook: Runbook) -> RunbookOut:
    return RunbookOut(**_runbook_fields(session, runbook))


def runbook_detail(session: Session, runbook: Runbook) -> RunbookDetail:
    """The runbook with its draft's content (base64)."""
    return RunbookDetail(
        **_runbook_fields(session, runbook), draft_content=base64.b64encode(runbook.draft_content).decode()
    )


def _runbook_fields(session: Session, runbook: Runbook) -> dict[str, Any]:
    versions = session.scalars(
        select(RunbookVersion)
        .where(RunbookVersion.runbook_id == runbook.id, RunbookVersion.version > 0)
        .order_by(RunbookVersion.version)
    ).all()
    return {
        "name": runbook.name,
        "type": runbook.type,
        "description": runbook.description,
        "parameters": runbook.draft_parameters,
        "published_version": runbook.published_version,
        "own_token_subject": bool(runbook.own_token_subject),
        "versions": [
            RunbookVersionOut(version=v.version, content_hash=v.content_hash, created_at=v.created_at)
            for v in versions
        ],
        "updated_at": runbook.updated_at,
    }


def list_runbooks(session: Session) -> list[RunbookOut]:
    return [runbook_view(session, r) for r in session.scalars(select(Runbook).order_by(Runbook.name)).all()]


# -- worker groups and workers -----------------------------------------------------------------------


def group_view(session: Session, group: WorkerGroup, lost_after: float) -> GroupOut:
    workers = session.scalars(select(Worker).where(Worker.group_id == group.id)).all()
    return GroupOut(
        name=group.name,
        run_as=group.run_as,
        local_user=group.local_user,
        max_concurrent=group.max_concurrent,
        allowed_workers=group.allowed_workers,
        allow_system_user=group.allow_system_user,
        workers=[worker_view(w, group, lost_after) for w in workers],
        identity=GroupIdentity(**identity.identity_json(identity.group_identity(group))),
    )


def list_groups(session: Session, lost_after: float) -> list[GroupOut]:
    groups = session.scalars(select(WorkerGroup).order_by(WorkerGroup.name)).all()
    return [group_view(session, g, lost_after) for g in groups]


def worker_view(worker: Worker, group: WorkerGroup, lost_after: float) -> WorkerOut:
    """A worker; an online one not heard from for ``lost_after`` seconds shows as lost."""
    last = aware(worker.last_heartbeat)
    assert last is not None
    lost = (now() - last).total_seconds() > lost_after
    status = worker.status if worker.status != "online" else ("lost" if lost else "online")
    return WorkerOut(
        id=worker.id,
        principal=worker.principal,
        group=group.name,
        hostname=worker.hostname,
        slots=worker.slots,
        last_heartbeat=last,
        status=status,
    )


def list_workers(session: Session, lost_after: float) -> list[WorkerOut]:
    rows = session.execute(
        select(Worker, WorkerGroup).join(WorkerGroup, Worker.group_id == WorkerGroup.id)
    ).all()
    return [worker_view(w, g, lost_after) for w, g in rows]


# -- jobs and their output ---------------------------------------------------------------------------


def get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} does not exist")
    return job


def list_jobs(session: Session, state: str | None, group_id: int | None, limit: int) -> list[JobOut]:
    """The newest ``limit`` jobs, optionally of one state and one group."""
    query = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if state:
        query = query.where(Job.state == state)
    if group_id is not None:
        query = query.where(Job.group_id == group_id)
    return job_views(session, session.scalars(query).all())


def output_page(session: Session, job_id: str, stream: Stream | None, after: int, limit: int) -> OutputPage:
    """Output chunks after ``after``: a seq of ``stream``, or (all streams) a chunk id."""
    job = get_job(session, job_id)
    query = select(JobOutput).where(JobOutput.job_id == job_id).order_by(JobOutput.id).limit(limit)
    if stream is not None:
        query = query.where(JobOutput.stream == stream.value, JobOutput.seq > after)
    else:
        query = query.where(JobOutput.id > after)
    chunks = session.scalars(query).all()
    return OutputPage(
        job_id=job_id,
        state=job.state,
        complete=JobState(job.state) in TERMINAL,
        chunks=[
            ChunkOut(id=c.id, stream=c.stream, seq=c.seq, attempt=c.attempt, text=c.text, at=c.at)
            for c in chunks
        ],
    )


def job_view(session: Session, job: Job) -> JobOut:
    """The API's view of a job (the README documents its fields)."""
    return job_views(session, [job])[0]


def _pairs(session: Session, query: Executable) -> dict[int, str]:
    return {row[0]: row[1] for row in session.execute(query)}


def job_views(session: Session, jobs: Sequence[Job]) -> list[JobOut]:
    """Views of several jobs with four queries in all, not five per job (``credo job list``)."""
    if not jobs:
        return []
    names = _pairs(
        session, select(Runbook.id, Runbook.name).where(Runbook.id.in_({j.runbook_id for j in jobs}))
    )
    versions = {
        row[0]: (row[1], row[2])
        for row in session.execute(
            select(RunbookVersion.id, RunbookVersion.version, RunbookVersion.content_hash).where(
                RunbookVersion.id.in_({j.version_id for j in jobs})
            )
        )
    }
    groups = _pairs(
        session,
        select(WorkerGroup.id, WorkerGroup.name).where(WorkerGroup.id.in_({j.group_id for j in jobs})),
    )
    worker_ids = {j.worker_id for j in jobs if j.worker_id}
    workers = (
        _pairs(session, select(Worker.id, Worker.principal).where(Worker.id.in_(worker_ids)))
        if worker_ids
        else {}
    )
    transitions: dict[str, list[dict[str, Any]]] = {j.id: [] for j in jobs}
    for row in session.execute(
        select(JobTransition.job_id, JobTransition.state, JobTransition.at, JobTransition.attempt,
               JobTransition.worker, JobTransition.detail)
        .where(JobTransition.job_id.in_(list(transitions)))
        .order_by(JobTransition.id)
    ):  # fmt: skip
        transitions[row[0]].append(
            {"state": row[1], "at": row[2], "attempt": row[3], "worker": row[4], "detail": row[5]}
        )
    return [
        job_from_parts(
            job,
            names.get(job.runbook_id),
            versions[job.version_id][0] if job.version_id in versions else None,
            versions[job.version_id][1] if job.version_id in versions else None,
            groups.get(job.group_id),
            workers.get(job.worker_id) if job.worker_id else None,
            transitions[job.id],
        )
        for job in jobs
    ]


def job_from_parts(
    job: Job,
    runbook: str | None,
    version: int | None,
    content_hash: str | None,
    group: str | None,
    worker: str | None,
    transitions: list[dict[str, Any]],
) -> JobOut:
    """A job's view from what was read (or, at submission, just written) of it."""
    last_worker = next((t["worker"] for t in reversed(transitions) if t["worker"]), None)
    return JobOut(
        id=job.id,
        runbook=runbook,
        version=version,
        content_hash=content_hash,
        group=group,
        test=job.is_test,
        state=job.state,
        parameters=job.parameters,
        attempts=job.attempts,
        worker=worker or last_worker,
        exit_code=job.exit_code,
        reason=job.reason,
        timeout_seconds=job.timeout_seconds,
        created_at=aware(job.created_at),
        updated_at=aware(job.updated_at),
        transitions=[Transition(**(t | {"at": aware(t["at"])})) for t in transitions],
    )


# -- metrics -----------------------------------------------------------------------------------------


def queue_snapshot(session: Session, lost_after: float) -> QueueSnapshot:
    """What /metrics reads at scrape time: three grouped counts; every group appears, at 0 if idle."""
    by_state = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
    names = {gid: name for gid, name in session.execute(select(WorkerGroup.id, WorkerGroup.name)).all()}
    queued = session.execute(
        select(Job.group_id, func.count()).where(Job.state == JobState.QUEUED.value).group_by(Job.group_id)
    ).all()
    # Online as ``worker_view`` has it: says online, and heard from within ``lost_after``.
    online = session.execute(
        select(Worker.group_id, func.count())
        .where(Worker.status == "online", Worker.last_heartbeat > now() - timedelta(seconds=lost_after))
        .group_by(Worker.group_id)
    ).all()
    queued_by_group = dict.fromkeys(names.values(), 0) | {names[g]: n for g, n in queued if g in names}
    online_by_group = dict.fromkeys(names.values(), 0) | {names[g]: n for g, n in online if g in names}
    return QueueSnapshot(
        jobs_by_state={state: count for state, count in by_state},
        queued_by_group=queued_by_group,
        workers_online_by_group=online_by_group,
    )
