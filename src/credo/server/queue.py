"""The queue: jobs from submission to their end, workers, claims, leases, fences and handbacks.

Every function takes a SQLAlchemy session inside a transaction (``Database.session``) and raises
credo errors; the routes turn them into problem documents.

Claiming is one UPDATE ... WHERE id = (SELECT ... LIMIT 1 [FOR UPDATE SKIP LOCKED]) RETURNING:
atomic on SQLite (one writer at a time) and on PostgreSQL (row locks, skipped by concurrent
claimers). Each claim bumps ``lease_token``, the fencing token every worker report must carry: a
report from an earlier attempt, or from a worker whose lease expired, is refused.
"""

from __future__ import annotations

import base64
import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, case, exists, func, insert, or_, select, update
from sqlalchemy.orm import Session

from credo.automation.jobs import (
    MAX_ATTEMPTS,
    MAX_STREAM_BYTES,
    TERMINAL,
    TRUNCATION_MARKER,
    JobState,
    Stream,
    can_transition,
)
from credo.automation.parameters import validate_parameters
from credo.defaults import DEFAULT_JOB_TIMEOUT, MAX_JOB_TIMEOUT
from credo.errors import Conflict, InputError, NotFoundError, NotPermittedError
from credo.server import views
from credo.server.catalog import draft_snapshot, get_group, get_runbook
from credo.server.clock import now
from credo.server.models import (
    Job,
    JobOutput,
    JobStream,
    JobTransition,
    Runbook,
    RunbookVersion,
    Worker,
    WorkerGroup,
)
from credo.server.schemas import ClaimedJob, JobOut
from credo.server.views import get_job

__all__ = [
    "Claimed",
    "Started",
    "VersionCache",
    "WorkerRef",
    "append_output",
    "claim_jobs",
    "claim_payloads",
    "drain_worker",
    "expire_leases",
    "expire_queued",
    "fenced",
    "finish_job",
    "get_job",
    "get_worker",
    "grace_leases",
    "heartbeat",
    "job_content",
    "register_worker",
    "resume_job",
    "start_job",
    "stop_job",
    "worker_online",
    "worker_ref",
]

_ACTIVE = (JobState.RUNNING.value, JobState.STOPPING.value)


# -- jobs ------------------------------------------------------------------------------------------


def _transition(
    session: Session, job: Job, state: JobState, worker: str | None = None, detail: str | None = None
) -> None:
    if not can_transition(JobState(job.state), state):
        raise Conflict(f"job {job.id} cannot go from {job.state} to {state.value}")
    job.state = state.value
    job.updated_at = now()
    session.add(
        JobTransition(
            job_id=job.id,
            state=state.value,
            at=job.updated_at,
            attempt=job.attempts,
            worker=worker,
            detail=detail,
        )
    )


@dataclass(frozen=True)
class Started:
    """A submission's outcome: the job, whether this call created it (else an idempotency key
    found the first), and its view."""

    job_id: str
    group_id: int
    created: bool
    view: JobOut


# Submissions are the hot path of the API (the submission benchmark in BENCHMARKS.md): their
# statements are built once, with bound parameters, instead of at each call (building them cost
# about as much as running them), and the job is inserted with Core, as nothing reads it back.
_BY_KEY = select(Job).where(Job.idempotency_key == bindparam("key"))
_GROUP_ID = select(WorkerGroup.id).where(WorkerGroup.name == bindparam("name"))
_PUBLISHED = (
    select(Runbook.id, Runbook.published_version, RunbookVersion.id, RunbookVersion.version,
           RunbookVersion.content_hash, RunbookVersion.schema)
    .outerjoin(RunbookVersion, and_(RunbookVersion.runbook_id == Runbook.id,
                                    RunbookVersion.version == Runbook.published_version))
    .where(Runbook.name == bindparam("name"))
)  # fmt: skip
_JOBS = cast(Table, Job.__table__)
_TRANSITIONS = cast(Table, JobTransition.__table__)


def start_job(
    session: Session,
    runbook_name: str,
    group_name: str,
    parameters: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    timeout_seconds: int | None = None,
    test: bool = False,
) -> Started:
    """Validate and queue a job; with an idempotency key already used, the first job."""
    if idempotency_key is not None:
        existing = session.scalar(_BY_KEY, {"key": idempotency_key})
        if existing is not None:
            return Started(existing.id, existing.group_id, False, views.job_view(session, existing))
    target = _test_target(session, runbook_name) if test else _published_target(session, runbook_name)
    group_id = session.scalar(_GROUP_ID, {"name": group_name})
    if group_id is None:
        raise NotFoundError(f"worker group {group_name!r} does not exist")
    values = validate_parameters(target.schema, parameters)
    timeout = timeout_seconds or DEFAULT_JOB_TIMEOUT
    if timeout < 1 or timeout > MAX_JOB_TIMEOUT:
        raise InputError("timeout must be between 1 s and 7 days")
    stamp = now()
    job_id = str(uuid.uuid4())
    # Written once, already Queued, with both transitions: New -> Queued happens in this same
    # transaction anyway.
    job = Job(
        id=job_id, runbook_id=target.runbook_id, version_id=target.version_id, group_id=group_id,
        is_test=test, parameters=values, state=JobState.QUEUED.value, idempotency_key=idempotency_key,
        attempts=0, max_attempts=MAX_ATTEMPTS, lease_token=0, timeout_seconds=timeout, stop_requested=False,
        queue_deadline=stamp + timedelta(seconds=timeout), created_at=stamp, updated_at=stamp,
    )  # fmt: skip
    session.execute(_JOBS.insert(), {c.key: getattr(job, c.key) for c in _JOBS.columns})
    transitions = [
        {"job_id": job_id, "state": state.value, "at": stamp, "attempt": 0, "worker": None, "detail": None}
        for state in (JobState.NEW, JobState.QUEUED)
    ]
    session.execute(_TRANSITIONS.insert(), transitions)
    view = views.job_from_parts(
        job, runbook_name, target.version, target.content_hash, group_name, None, transitions
    )
    return Started(job_id, group_id, True, view)


@dataclass(frozen=True)
class _Target:
    """What a submission needs of the runbook version it runs."""

    runbook_id: int
    version_id: int
    version: int
    content_hash: str
    schema: dict[str, Any]


def _published_target(session: Session, runbook_name: str) -> _Target:
    row = session.execute(_PUBLISHED, {"name": runbook_name}).first()
    if row is None:
        raise NotFoundError(f"runbook {runbook_name!r} does not exist")
    if not row[1] or row[2] is None:
        raise Conflict(f"runbook {runbook_name!r} has no published version", hint="publish it first")
    return _Target(row[0], row[2], row[3], row[4], row[5])


def _test_target(session: Session, runbook_name: str) -> _Target:
    runbook = get_runbook(session, runbook_name)
    version = draft_snapshot(session, runbook, 0)
    return _Target(runbook.id, version.id, version.version, version.content_hash, version.schema)


def stop_job(session: Session, job_id: str) -> Job:
    job = get_job(session, job_id)
    state = JobState(job.state)
    if state in TERMINAL:
        return job
    if state in (JobState.NEW, JobState.QUEUED):
        _transition(session, job, JobState.STOPPED, detail="stopped before it ran")
    elif state == JobState.RUNNING:
        job.stop_requested = True
        _transition(session, job, JobState.STOPPING)
    return job


def resume_job(session: Session, job_id: str) -> Job:
    """Queue a Suspended job again, from the start, with three more attempts (Azure's Resume)."""
    job = get_job(session, job_id)
    if JobState(job.state) != JobState.SUSPENDED:
        raise Conflict(
            f"job {job_id} is {job.state}: only a Suspended job can be resumed",
            hint="start it again instead: credo job start RUNBOOK --group G",
        )
    job.max_attempts = job.attempts + MAX_ATTEMPTS
    _requeue(session, job, f"resumed: {MAX_ATTEMPTS} more attempts")
    return job


def _requeue(session: Session, job: Job, detail: str) -> None:
    job.worker_id = None
    job.lease_expires_at = None
    job.queue_deadline = now() + timedelta(seconds=job.timeout_seconds)
    _transition(session, job, JobState.QUEUED, detail=detail)


def _release(session: Session, job: Job, why: str) -> bool:
    """A running job lost its worker (``why``): requeue it, or end it. True if it was requeued.

    A job being stopped is Stopped; one that has used its attempts is Suspended (Azure's rule:
    restarted up to three times in all, then Suspended); any other goes back to the queue.
    """
    job.worker_id = None
    job.lease_expires_at = None
    if JobState(job.state) == JobState.STOPPING:
        _transition(session, job, JobState.STOPPED, detail=f"{why} while stopping")
        return False
    if job.attempts >= job.max_attempts:
        _transition(session, job, JobState.SUSPENDED, detail=f"{why}; {job.attempts} attempts made")
        return False
    _requeue(session, job, f"{why}: restarting")
    return True


# -- workers and the queue ---------------------------------------------------------------------------


def register_worker(
    session: Session,
    principal: str,
    group_name: str,
    hostname: str | None,
    slots: int,
    instance: str | None = None,
) -> tuple[Worker, list[str]]:
    """Register (or re-register) a worker process; return it and the jobs requeued.

    A registration from another process (``instance``) of the same worker is a restart: the
    previous process is gone and its jobs died with it (they die with their worker, and a stalled
    one kills them itself), so their leases end now and the jobs are requeued, instead of holding
    the worker's slots until the leases expire.
    """
    group = get_group(session, group_name)
    if principal.lower() not in group.allowed_workers:
        raise NotPermittedError(
            f"{principal} may not serve worker group {group_name!r}",
            hint=f"add it: credo group create {group_name} --worker {principal} (or recreate the group)",
        )
    worker = session.scalar(select(Worker).where(Worker.principal == principal, Worker.group_id == group.id))
    stamp = now()
    requeued: list[str] = []
    if worker is None:
        worker = Worker(
            principal=principal, group_id=group.id, hostname=hostname, slots=slots, registered_at=stamp,
            last_heartbeat=stamp, instance=instance, status="online",
        )  # fmt: skip
        session.add(worker)
        session.flush()
        return worker, requeued
    restarted = instance is not None and worker.instance != instance
    worker.hostname, worker.slots, worker.last_heartbeat = hostname, slots, stamp
    worker.status = "online"
    if restarted:
        worker.instance = instance
        jobs = session.scalars(select(Job).where(Job.worker_id == worker.id, Job.state.in_(_ACTIVE))).all()
        requeued = [job.id for job in jobs if _release(session, job, "its worker restarted")]
    return worker, requeued


def drain_worker(
    session: Session, worker: Worker | WorkerRef, leases: list[tuple[str, int]], final: bool
) -> list[str]:
    """The worker is stopping: it takes no new job; jobs claimed for it that it does not hold
    (a claim answered on a connection it had closed) are requeued. ``final``: it has stopped.
    Returns the requeued job ids."""
    row = session.get(Worker, worker.id)
    assert row is not None
    row.status = "offline" if final else "draining"
    held = {job_id for job_id, _ in leases}
    jobs = session.scalars(select(Job).where(Job.worker_id == worker.id, Job.state.in_(_ACTIVE))).all()
    return [
        job.id
        for job in jobs
        if (final or job.id not in held) and _release(session, job, "its worker stopped without running it")
    ]


def get_worker(session: Session, worker_id: int, principal: str) -> Worker:
    worker = session.get(Worker, worker_id)
    if worker is None or worker.principal != principal:
        raise NotPermittedError(f"worker {worker_id} is not registered for {principal}")
    return worker


@dataclass(frozen=True)
class WorkerRef:
    """Who a worker is, for the requests that only need to know that (claims, output, finish)."""

    id: int
    principal: str
    group_id: int


def worker_ref(session: Session, worker_id: int, principal: str) -> WorkerRef:
    row = session.execute(select(Worker.principal, Worker.group_id).where(Worker.id == worker_id)).first()
    if row is None or row[0] != principal:
        raise NotPermittedError(f"worker {worker_id} is not registered for {principal}")
    return WorkerRef(worker_id, row[0], row[1])


def worker_online(session: Session, worker_id: int) -> bool:
    """Whether the worker still takes jobs (not draining, not stopped)."""
    return session.scalar(select(Worker.status).where(Worker.id == worker_id)) == "online"


def heartbeat(
    session: Session, worker: Worker, leases: list[tuple[str, int]], lease_seconds: float
) -> list[str]:
    """Renew the leases the worker holds; return the ids of its jobs it must stop."""
    stamp = now()
    worker.last_heartbeat = stamp
    to_stop: list[str] = []
    for job_id, token in leases:
        job = session.get(Job, job_id)
        if job is None or job.worker_id != worker.id or job.lease_token != token:
            to_stop.append(job_id)  # no longer ours: another attempt owns it, or it is gone
            continue
        if JobState(job.state) in TERMINAL:
            to_stop.append(job_id)
            continue
        job.lease_expires_at = stamp + timedelta(seconds=lease_seconds)
        if job.stop_requested:
            to_stop.append(job_id)
    return to_stop


# A claim is a sign of life: it refreshes the worker's heartbeat, at most this often (a write).
_ALIVE_WRITE_SECONDS = 10.0
_ALIVE = (
    update(Worker)
    .where(Worker.id == bindparam("b_worker"), Worker.last_heartbeat < bindparam("b_stale"))
    .values(last_heartbeat=bindparam("b_stamp"))
)


def claimed_alive(session: Session, worker_id: int) -> None:
    """An idle worker long-polls: its claims say it is alive, so it need not beat as well
    (credo.defaults.IDLE_HEARTBEAT_SECONDS)."""
    stamp = now()
    session.connection().execute(
        _ALIVE,
        {"b_worker": worker_id, "b_stale": stamp - timedelta(seconds=_ALIVE_WRITE_SECONDS), "b_stamp": stamp},
    )


@dataclass(frozen=True)
class Claimed:
    job_id: str
    lease_token: int
    attempt: int
    version_id: int
    parameters: dict[str, Any]
    timeout_seconds: int
    created_at: datetime  # submitted: for the submit-to-start metric


# Claims are the hottest path of the server: their statements are built once, with bind
# parameters, and run as Core statements on the session's connection. ORM-enabled UPDATEs
# (session synchronisation, a cache key computed per call) cost more than the claim itself.
_ROOM = select(
    WorkerGroup.max_concurrent
    - select(func.count())
    .select_from(Job)
    .where(Job.worker_id == bindparam("b_worker"), Job.state.in_(_ACTIVE))
    .scalar_subquery()
).where(WorkerGroup.id == bindparam("b_group"))


# What a claim returns, in the order of Claimed's fields.
_CLAIM_RETURNS = (
    Job.id, Job.lease_token, Job.attempts, Job.version_id, Job.parameters, Job.timeout_seconds,
    Job.created_at,
)  # fmt: skip


@functools.cache
def _claim_statement(dialect: str) -> Any:
    pick = (
        select(Job.id)
        .where(Job.group_id == bindparam("b_group"), Job.state == JobState.QUEUED.value)
        .order_by(Job.created_at)
        .limit(1)
    )
    if dialect == "postgresql":
        pick = pick.with_for_update(skip_locked=True)  # concurrent claimers skip each other's rows
    # A draining worker takes nothing, also on a claim that started before it said so.
    online = exists().where(Worker.id == bindparam("b_worker"), Worker.status == "online")
    return (
        update(Job)
        .where(and_(Job.id == pick.scalar_subquery(), Job.state == JobState.QUEUED.value, online))
        .values(
            state=JobState.RUNNING.value,
            worker_id=bindparam("b_worker"),
            attempts=Job.attempts + 1,
            lease_token=Job.lease_token + 1,
            lease_expires_at=bindparam("lease_until"),
            updated_at=bindparam("stamp"),
        )
        .returning(*_CLAIM_RETURNS)
    )


def claim_jobs(
    session: Session,
    worker: Worker | WorkerRef,
    free_slots: int,
    lease_seconds: float,
    dialect: str,
    *,
    handover: bool = False,
) -> list[Claimed]:
    """Take up to ``free_slots`` queued jobs of the worker's group, oldest first.

    ``handover``: the worker claims one job for the slot that the job it just finished left, in
    the same transaction; the group's limit held before, so it holds after, without a count.
    """
    connection = session.connection()
    if handover:
        room: int | None = 1
    else:
        room = connection.execute(_ROOM, {"b_worker": worker.id, "b_group": worker.group_id}).scalar()
    if room is None:
        return []
    stamp = now()
    params = {
        "b_group": worker.group_id,
        "b_worker": worker.id,
        "lease_until": stamp + timedelta(seconds=lease_seconds),
        "stamp": stamp,
    }
    claimed: list[Claimed] = []
    for _ in range(max(0, min(free_slots, room))):
        row = connection.execute(_claim_statement(dialect), params).first()
        if row is None:
            break
        claimed.append(Claimed(*row))
    if claimed:
        connection.execute(
            insert(JobTransition),
            [
                {"job_id": c.job_id, "state": JobState.RUNNING.value, "at": stamp, "attempt": c.attempt,
                 "worker": worker.principal}
                for c in claimed
            ],
        )  # fmt: skip
    return claimed


@dataclass(frozen=True)
class VersionSummary:
    """What a worker needs of a runbook version. Versions never change once written, so the
    server keeps these in memory by id (``VersionCache``) instead of reading them per claim."""

    runbook: str
    version: int
    type: str
    content_hash: str
    content_b64: str


class VersionCache:
    def __init__(self, limit: int = 256) -> None:
        self._items: dict[int, VersionSummary] = {}
        self._limit = limit

    def get(self, session: Session, version_id: int) -> VersionSummary:
        found = self._items.get(version_id)
        if found is None:
            row = session.execute(
                select(Runbook.name, RunbookVersion.version, RunbookVersion.type,
                       RunbookVersion.content_hash, RunbookVersion.content)
                .join(Runbook, Runbook.id == RunbookVersion.runbook_id)
                .where(RunbookVersion.id == version_id)
            ).one()  # fmt: skip
            found = VersionSummary(row[0], row[1], row[2], row[3], base64.b64encode(row[4]).decode())
            if len(self._items) >= self._limit:
                self._items.pop(next(iter(self._items)))
            self._items[version_id] = found
        return found


def claim_payloads(session: Session, claimed: list[Claimed], versions: VersionCache) -> list[ClaimedJob]:
    """What the worker receives per claimed job: the runbook inline (one round trip less per job;
    the worker still checks its hash)."""
    payloads = []
    for c in claimed:
        version = versions.get(session, c.version_id)
        payloads.append(ClaimedJob(
            job_id=c.job_id, lease_token=c.lease_token, attempt=c.attempt, runbook=version.runbook,
            version=version.version, type=version.type, content_hash=version.content_hash,
            parameters=c.parameters, timeout_seconds=c.timeout_seconds, content=version.content_b64,
        ))  # fmt: skip
    return payloads


def fenced(session: Session, job_id: str, worker: Worker | WorkerRef, token: int) -> Job:
    job = get_job(session, job_id)
    if job.worker_id != worker.id or job.lease_token != token:
        raise Conflict(f"job {job_id}: lease {token} is not current (the job was taken over)")
    return job


def job_content(session: Session, worker: Worker | WorkerRef, job_id: str, token: int) -> bytes:
    """The script of a job's runbook version, for the worker holding its lease."""
    job = fenced(session, job_id, worker, token)
    version = session.get(RunbookVersion, job.version_id)
    assert version is not None  # versions go only with their runbook, which a job keeps
    return bytes(version.content)


def append_output(
    session: Session, worker: Worker | WorkerRef, job_id: str, token: int, chunks: list[tuple[str, str]]
) -> bool:
    """Store output chunks (stream, text) in order; return whether the job should stop."""
    job = fenced(session, job_id, worker, token)
    for stream_name, text in chunks:
        stream = Stream(stream_name)
        state = session.get(JobStream, (job.id, stream.value))
        if state is None:
            state = JobStream(job_id=job.id, stream=stream.value, bytes=0, truncated=False, next_seq=1)
            session.add(state)
            session.flush()
        if state.truncated:
            continue
        data = text.encode()
        if state.bytes + len(data) > MAX_STREAM_BYTES:
            keep = data[: MAX_STREAM_BYTES - state.bytes].decode(errors="ignore")
            text = keep + TRUNCATION_MARKER
            state.truncated = True
        state.bytes += len(text.encode())
        session.add(
            JobOutput(
                job_id=job.id,
                stream=stream.value,
                seq=state.next_seq,
                attempt=job.attempts,
                text=text,
                at=now(),
            )
        )
        state.next_seq += 1
    return job.stop_requested


_FINISH = (
    update(Job)
    .where(
        Job.id == bindparam("b_job"),
        Job.worker_id == bindparam("b_worker"),
        Job.lease_token == bindparam("b_token"),
        Job.state.in_(_ACTIVE),
    )
    .values(
        state=case(
            (or_(Job.stop_requested, bindparam("b_stopped")), JobState.STOPPED.value),
            (bindparam("b_exit") == 0, JobState.COMPLETED.value),
            else_=JobState.FAILED.value,
        ),
        exit_code=bindparam("b_exit"),
        reason=bindparam("b_reason"),
        lease_expires_at=None,
        updated_at=bindparam("b_stamp"),
    )
    .returning(Job.state, Job.attempts)
)


def finish_job(
    session: Session,
    worker: Worker | WorkerRef,
    job_id: str,
    token: int,
    exit_code: int | None,
    reason: str | None,
    stopped: bool,
    handback: bool = False,
) -> tuple[str, bool]:
    """Record how the job ended (fenced by its lease); return its state, and whether this call
    ended it (False: it had ended already, e.g. a retried report).

    One UPDATE ... RETURNING on the hot path; only when it matches nothing is the job read, to
    say why (gone, taken over, or finished already: then its state is returned as it is).
    ``handback``: the worker gave the job up (it is stopping, or could not renew the lease and
    killed it): it is requeued like a job whose worker was lost.
    """
    if handback:
        job = fenced(session, job_id, worker, token)
        if JobState(job.state) not in (JobState.RUNNING, JobState.STOPPING):
            return job.state, False
        _release(session, job, f"handed back by its worker ({reason or 'no reason given'})")
        return job.state, True
    stamp = now()
    connection = session.connection()
    row = connection.execute(
        _FINISH,
        {"b_job": job_id, "b_worker": worker.id, "b_token": token, "b_stopped": stopped, "b_exit": exit_code,
         "b_reason": reason, "b_stamp": stamp},
    ).first()  # fmt: skip
    if row is None:
        job = fenced(session, job_id, worker, token)
        return job.state, False
    state, attempt = row
    connection.execute(
        insert(JobTransition),
        {"job_id": job_id, "state": state, "at": stamp, "attempt": attempt, "worker": worker.principal,
         "detail": reason},
    )  # fmt: skip
    return str(state), True


def expire_leases(session: Session, grace: float) -> list[str]:
    """Requeue (or suspend, or stop) jobs whose worker stopped renewing its lease ``grace``
    seconds ago (LeasePolicy.takeover_grace: by then a stalled worker has killed the job)."""
    cutoff = now() - timedelta(seconds=grace)
    expired = session.scalars(
        select(Job).where(
            Job.state.in_(_ACTIVE), Job.lease_expires_at.is_not(None), Job.lease_expires_at < cutoff
        )
    ).all()
    return [job.id for job in expired if _release(session, job, "the worker was lost")]


def expire_queued(session: Session) -> list[str]:
    """Fail the queued jobs that no worker took within their timeout, saying why."""
    stamp = now()
    overdue = session.scalars(
        select(Job).where(
            Job.state == JobState.QUEUED.value, Job.queue_deadline.is_not(None), Job.queue_deadline < stamp
        )
    ).all()
    for job in overdue:
        group = session.get(WorkerGroup, job.group_id)
        online = session.scalar(
            select(func.count())
            .select_from(Worker)
            .where(Worker.group_id == job.group_id, Worker.status == "online")
        )
        why = "none of its workers is online" if not online else "its workers were busy or could not run it"
        job.reason = (
            f"no worker took the job within its timeout of {job.timeout_seconds} s: "
            f"worker group {group.name if group else '?'}: {why}"
        )
        job.queue_deadline = None
        _transition(session, job, JobState.FAILED, detail=job.reason)
    return [job.id for job in overdue]


def grace_leases(session: Session, lease_seconds: float) -> None:
    """At server start: give running jobs a fresh lease so their workers can reconnect."""
    session.execute(
        update(Job)
        .where(Job.state.in_([JobState.RUNNING.value, JobState.STOPPING.value]))
        .values(lease_expires_at=now() + timedelta(seconds=lease_seconds))
    )
