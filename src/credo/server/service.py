"""What the server does, independent of HTTP: runbooks, groups, jobs, the queue and its leases.

Every function takes a SQLAlchemy session inside a transaction (``Database.session``) and raises
credo errors; the HTTP layer turns them into problem documents.

Claiming is one UPDATE ... WHERE id = (SELECT ... LIMIT 1 [FOR UPDATE SKIP LOCKED]) RETURNING:
atomic on SQLite (one writer at a time) and on PostgreSQL (row locks, skipped by concurrent
claimers). Each claim bumps ``lease_token``, the fencing token every worker report must carry: a
report from an earlier attempt, or from a worker whose lease expired, is refused.
"""

from __future__ import annotations

import base64
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, exists, func, insert, or_, select, update
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
from credo.automation.runbooks import (
    MAX_RUNBOOK_BYTES,
    ParameterSpec,
    RunbookType,
    content_hash,
    parameters_schema,
    validate_runbook_name,
)
from credo.errors import Conflict, InputError, NotFoundError, NotPermittedError
from credo.names import managed_account_sam, validate_computer_principal, validate_local_user_name
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

__all__ = [
    "DEFAULT_TIMEOUT",
    "Conflict",  # moved to credo.errors; kept importable from here
    "VersionCache",
    "WorkerRef",
    "append_output",
    "claim_jobs",
    "claim_payloads",
    "create_group",
    "create_runbook",
    "drain_worker",
    "expire_leases",
    "expire_queued",
    "finish_job",
    "heartbeat",
    "job_view",
    "job_views",
    "publish_runbook",
    "register_worker",
    "resume_job",
    "start_job",
    "stop_job",
    "worker_ref",
]

DEFAULT_TIMEOUT = 3 * 3600  # Azure's sandbox limit, the default job timeout
_ACTIVE = (JobState.RUNNING.value, JobState.STOPPING.value)


def now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes: they were stored as UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


# -- runbooks ----------------------------------------------------------------------------------


def _parse_parameters(parameters: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    specs = [ParameterSpec.from_dict(p) for p in parameters]
    return [p if isinstance(p, dict) else {} for p in parameters], parameters_schema(specs)


def _unfinished_jobs(session: Session, condition: Any) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(condition, Job.state.not_in([s.value for s in TERMINAL]))
        )
        or 0
    )


def get_runbook(session: Session, name: str) -> Runbook:
    runbook = session.scalar(select(Runbook).where(Runbook.name == name))
    if runbook is None:
        raise NotFoundError(f"runbook {name!r} does not exist")
    return runbook


def create_runbook(
    session: Session,
    name: str,
    type_: str,
    content: bytes,
    parameters: list[dict[str, Any]],
    description: str | None = None,
) -> Runbook:
    validate_runbook_name(name)
    try:
        RunbookType(type_)
    except ValueError:
        raise InputError(f"unknown runbook type {type_!r}", hint="use python3 or bash") from None
    if len(content) > MAX_RUNBOOK_BYTES:
        raise InputError(f"runbook is {len(content)} bytes; the limit is {MAX_RUNBOOK_BYTES}")
    params, _ = _parse_parameters(parameters)
    if session.scalar(select(Runbook.id).where(Runbook.name == name)) is not None:
        raise Conflict(f"runbook {name!r} exists already", hint="use update to change its draft")
    stamp = now()
    runbook = Runbook(
        name=name, type=type_, description=description, draft_content=content, draft_parameters=params,
        published_version=None, created_at=stamp, updated_at=stamp,
    )  # fmt: skip
    session.add(runbook)
    session.flush()
    return runbook


def update_runbook(
    session: Session,
    name: str,
    content: bytes | None,
    parameters: list[dict[str, Any]] | None,
    description: str | None,
) -> Runbook:
    runbook = get_runbook(session, name)
    if content is not None:
        if len(content) > MAX_RUNBOOK_BYTES:
            raise InputError(f"runbook is {len(content)} bytes; the limit is {MAX_RUNBOOK_BYTES}")
        runbook.draft_content = content
    if parameters is not None:
        runbook.draft_parameters, _ = _parse_parameters(parameters)
    if description is not None:
        runbook.description = description
    runbook.updated_at = now()
    return runbook


def _snapshot(session: Session, runbook: Runbook, version: int) -> RunbookVersion:
    _, schema = _parse_parameters(runbook.draft_parameters)
    digest = content_hash(runbook.draft_content)
    existing = session.scalar(
        select(RunbookVersion).where(
            RunbookVersion.runbook_id == runbook.id,
            RunbookVersion.version == version,
            RunbookVersion.content_hash == digest,
        )
    )
    if existing is not None and existing.parameters == runbook.draft_parameters:
        return existing
    snapshot = RunbookVersion(
        runbook_id=runbook.id, version=version, type=runbook.type, content=runbook.draft_content,
        content_hash=digest, parameters=runbook.draft_parameters, schema=schema, created_at=now(),
    )  # fmt: skip
    session.add(snapshot)
    session.flush()
    return snapshot


def publish_runbook(session: Session, name: str) -> RunbookVersion:
    """Freeze the draft as the next published version (immutable, with its content hash)."""
    runbook = get_runbook(session, name)
    version = (runbook.published_version or 0) + 1
    published = _snapshot(session, runbook, version)
    runbook.published_version = version
    runbook.updated_at = now()
    return published


def delete_runbook(session: Session, name: str) -> None:
    runbook = get_runbook(session, name)
    active = _unfinished_jobs(session, Job.runbook_id == runbook.id)
    if active:
        raise Conflict(f"runbook {name!r} has {active} unfinished job(s)", hint="stop them first")
    session.delete(runbook)


# -- worker groups -------------------------------------------------------------------------------


def get_group(session: Session, name: str) -> WorkerGroup:
    group = session.scalar(select(WorkerGroup).where(WorkerGroup.name == name))
    if group is None:
        raise NotFoundError(f"worker group {name!r} does not exist")
    return group


def create_group(
    session: Session,
    name: str,
    run_as: str | None,
    local_user: str | None,
    max_concurrent: int,
    allowed_workers: list[str],
    allow_system_user: bool = False,
) -> WorkerGroup:
    """A worker group; every name is checked here, so a job never waits on a group no worker can serve."""
    validate_runbook_name(name)
    if run_as is not None:
        run_as = managed_account_sam(run_as)[:-1]
    if local_user is not None:
        validate_local_user_name(local_user, allow_system=allow_system_user)
    if not allowed_workers:
        raise InputError(
            f"worker group {name!r} names no worker",
            hint="add --worker NAME$@REALM for each computer that serves it",
        )
    for principal in allowed_workers:
        validate_computer_principal(principal)
    if max_concurrent < 1 or max_concurrent > 64:
        raise InputError("max concurrent jobs per worker must be 1..64")
    if session.scalar(select(WorkerGroup.id).where(WorkerGroup.name == name)) is not None:
        raise Conflict(f"worker group {name!r} exists already")
    group = WorkerGroup(
        name=name, run_as=run_as, local_user=local_user, max_concurrent=max_concurrent,
        allowed_workers=[w.lower() for w in allowed_workers], allow_system_user=allow_system_user,
        created_at=now(),
    )  # fmt: skip
    session.add(group)
    session.flush()
    return group


def delete_group(session: Session, name: str) -> None:
    group = get_group(session, name)
    active = _unfinished_jobs(session, Job.group_id == group.id)
    if active:
        raise Conflict(f"worker group {name!r} has {active} unfinished job(s)")
    session.delete(group)


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


def start_job(
    session: Session,
    runbook_name: str,
    group_name: str,
    parameters: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    timeout_seconds: int | None = None,
    test: bool = False,
) -> tuple[Job, bool, dict[str, Any]]:
    """Validate and queue a job. Returns (job, created, its view); an idempotency key returns the
    first job."""
    if idempotency_key is not None:
        existing = session.scalar(select(Job).where(Job.idempotency_key == idempotency_key))
        if existing is not None:
            return existing, False, job_view(session, existing)
    target = _test_target(session, runbook_name) if test else _published_target(session, runbook_name)
    group_id = session.scalar(select(WorkerGroup.id).where(WorkerGroup.name == group_name))
    if group_id is None:
        raise NotFoundError(f"worker group {group_name!r} does not exist")
    values = validate_parameters(target.schema, parameters)
    timeout = timeout_seconds or DEFAULT_TIMEOUT
    if timeout < 1 or timeout > 7 * 86400:
        raise InputError("timeout must be between 1 s and 7 days")
    stamp = now()
    # Written once, already Queued, with both transitions in one statement: submissions are a
    # hot path (see BENCHMARKS.md), and New -> Queued happens in this same transaction anyway.
    job = Job(
        id=str(uuid.uuid4()), runbook_id=target.runbook_id, version_id=target.version_id, group_id=group_id,
        is_test=test, parameters=values, state=JobState.QUEUED.value, idempotency_key=idempotency_key,
        attempts=0, max_attempts=MAX_ATTEMPTS, lease_token=0, timeout_seconds=timeout, stop_requested=False,
        queue_deadline=stamp + timedelta(seconds=timeout), created_at=stamp, updated_at=stamp,
    )  # fmt: skip
    session.add(job)
    session.flush()
    transitions = [
        {"job_id": job.id, "state": state.value, "at": stamp, "attempt": 0, "worker": None, "detail": None}
        for state in (JobState.NEW, JobState.QUEUED)
    ]
    session.execute(insert(JobTransition), transitions)
    view = _view(job, runbook_name, target.version, target.content_hash, group_name, None, transitions)
    return job, True, view


@dataclass(frozen=True)
class _Target:
    """What a submission needs of the runbook version it runs."""

    runbook_id: int
    version_id: int
    version: int
    content_hash: str
    schema: dict[str, Any]


def _published_target(session: Session, runbook_name: str) -> _Target:
    row = session.execute(
        select(Runbook.id, Runbook.published_version, RunbookVersion.id, RunbookVersion.version,
               RunbookVersion.content_hash, RunbookVersion.schema)
        .outerjoin(RunbookVersion, and_(RunbookVersion.runbook_id == Runbook.id,
                                        RunbookVersion.version == Runbook.published_version))
        .where(Runbook.name == runbook_name)
    ).first()  # fmt: skip
    if row is None:
        raise NotFoundError(f"runbook {runbook_name!r} does not exist")
    if not row[1] or row[2] is None:
        raise Conflict(f"runbook {runbook_name!r} has no published version", hint="publish it first")
    return _Target(row[0], row[2], row[3], row[4], row[5])


def _test_target(session: Session, runbook_name: str) -> _Target:
    runbook = get_runbook(session, runbook_name)
    version = _snapshot(session, runbook, 0)
    return _Target(runbook.id, version.id, version.version, version.content_hash, version.schema)


def get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} does not exist")
    return job


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


@dataclass(frozen=True)
class Claimed:
    job_id: str
    lease_token: int
    attempt: int
    version_id: int
    parameters: dict[str, Any]
    timeout_seconds: int


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
        .returning(Job.id, Job.lease_token, Job.attempts, Job.version_id, Job.parameters, Job.timeout_seconds)
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


def claim_payloads(session: Session, claimed: list[Claimed], versions: VersionCache) -> list[dict[str, Any]]:
    """What the worker receives per claimed job: the runbook inline (one round trip less per job;
    the worker still checks its hash)."""
    payloads = []
    for c in claimed:
        version = versions.get(session, c.version_id)
        payloads.append({
            "job_id": c.job_id, "lease_token": c.lease_token, "attempt": c.attempt,
            "runbook": version.runbook, "version": version.version, "type": version.type,
            "content_hash": version.content_hash, "parameters": c.parameters,
            "timeout_seconds": c.timeout_seconds, "content": version.content_b64,
        })  # fmt: skip
    return payloads


def _fenced(session: Session, job_id: str, worker: Worker | WorkerRef, token: int) -> Job:
    job = get_job(session, job_id)
    if job.worker_id != worker.id or job.lease_token != token:
        raise Conflict(f"job {job_id}: lease {token} is not current (the job was taken over)")
    return job


def append_output(
    session: Session, worker: Worker | WorkerRef, job_id: str, token: int, chunks: list[tuple[str, str]]
) -> bool:
    """Store output chunks (stream, text) in order; return whether the job should stop."""
    job = _fenced(session, job_id, worker, token)
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
        job = _fenced(session, job_id, worker, token)
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
        job = _fenced(session, job_id, worker, token)
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


def job_view(session: Session, job: Job) -> dict[str, Any]:
    """The API's view of a job (the README documents its fields)."""
    return job_views(session, [job])[0]


def job_views(session: Session, jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Views of several jobs with four queries in all, not five per job (``credo job list``)."""
    if not jobs:
        return []
    names = dict(
        session.execute(select(Runbook.id, Runbook.name).where(Runbook.id.in_({j.runbook_id for j in jobs})))
        .tuples()
        .all()
    )
    versions = {
        row[0]: (row[1], row[2])
        for row in session.execute(
            select(RunbookVersion.id, RunbookVersion.version, RunbookVersion.content_hash).where(
                RunbookVersion.id.in_({j.version_id for j in jobs})
            )
        )
    }
    groups = dict(
        session.execute(
            select(WorkerGroup.id, WorkerGroup.name).where(WorkerGroup.id.in_({j.group_id for j in jobs}))
        )
        .tuples()
        .all()
    )
    worker_ids = {j.worker_id for j in jobs if j.worker_id}
    workers = (
        dict(
            session.execute(select(Worker.id, Worker.principal).where(Worker.id.in_(worker_ids)))
            .tuples()
            .all()
        )
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
        _view(
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


def _view(
    job: Job,
    runbook: str | None,
    version: int | None,
    content_hash: str | None,
    group: str | None,
    worker: str | None,
    transitions: list[dict[str, Any]],
) -> dict[str, Any]:
    last_worker = next((t["worker"] for t in reversed(transitions) if t["worker"]), None)
    return {
        "id": job.id,
        "runbook": runbook,
        "version": version,
        "content_hash": content_hash,
        "group": group,
        "test": job.is_test,
        "state": job.state,
        "parameters": job.parameters,
        "attempts": job.attempts,
        "worker": worker or last_worker,
        "exit_code": job.exit_code,
        "reason": job.reason,
        "timeout_seconds": job.timeout_seconds,
        "created_at": _aware(job.created_at),
        "updated_at": _aware(job.updated_at),
        "transitions": [t | {"at": _aware(t["at"])} for t in transitions],
    }
