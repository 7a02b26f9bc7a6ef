"""What the web UI reads that the API's views do not give in one piece: a page of the job list
(filtered, newest first, one query), a published version's script, the jobs each worker runs,
a page of the audit log. Read-only (but the audit page chains pending records first); each runs in the caller's transaction (``State.run``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from credo.automation.jobs import TERMINAL, JobState
from credo.errors import NotFoundError
from credo.server.audit import link_in
from credo.server.clock import aware
from credo.server.models import AuditLog, Job, Runbook, RunbookVersion, WorkerGroup

__all__ = ["JobRow", "audit_page", "job_rows", "running_jobs", "version_content"]


@dataclass(frozen=True)
class JobRow:
    id: str
    runbook: str
    version: int | None
    group: str
    state: str
    test: bool
    exit_code: int | None
    created_at: datetime
    updated_at: datetime

    @property
    def ended(self) -> bool:
        return JobState(self.state) in TERMINAL


def job_rows(
    session: Session,
    *,
    state: str | None,
    group: str | None,
    runbook: str | None,
    before: str | None,
    limit: int,
) -> list[JobRow]:
    """Up to ``limit`` jobs, newest first, older than the job ``before`` (the next page)."""
    query = (
        select(Job.id, Runbook.name, RunbookVersion.version, WorkerGroup.name, Job.state, Job.is_test,
               Job.exit_code, Job.created_at, Job.updated_at)
        .join(Runbook, Job.runbook_id == Runbook.id)
        .join(WorkerGroup, Job.group_id == WorkerGroup.id)
        .outerjoin(RunbookVersion, Job.version_id == RunbookVersion.id)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
    )  # fmt: skip
    if state:
        query = query.where(Job.state == state)
    if group:
        query = query.where(WorkerGroup.name == group)
    if runbook:
        query = query.where(Runbook.name == runbook)
    if before:
        mark = session.get(Job, before)
        if mark is not None:
            query = query.where(
                or_(
                    Job.created_at < mark.created_at,
                    and_(Job.created_at == mark.created_at, Job.id < mark.id),
                )
            )
    return [
        JobRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], aware(r[7]) or r[7], aware(r[8]) or r[8])
        for r in session.execute(query)
    ]


def version_content(session: Session, runbook: str, version: int) -> str:
    """The script of a published version, as text (undecodable bytes shown as U+FFFD)."""
    content = session.scalar(
        select(RunbookVersion.content)
        .join(Runbook, RunbookVersion.runbook_id == Runbook.id)
        .where(Runbook.name == runbook, RunbookVersion.version == version)
    )
    if content is None:
        raise NotFoundError(f"runbook {runbook!r} has no version {version}")
    return bytes(content).decode("utf-8", errors="replace")


def running_jobs(session: Session) -> dict[int, list[tuple[str, str]]]:
    """Worker id -> (job id, runbook) of the jobs it holds now."""
    held: dict[int, list[tuple[str, str]]] = defaultdict(list)
    rows = session.execute(
        select(Job.worker_id, Job.id, Runbook.name)
        .join(Runbook, Job.runbook_id == Runbook.id)
        .where(Job.worker_id.is_not(None), Job.state.in_([JobState.RUNNING.value, JobState.STOPPING.value]))
    )
    for worker_id, job_id, name in rows:
        if worker_id is not None:
            held[worker_id].append((job_id, name))
    return dict(held)


def audit_page(session: Session, before: int | None, limit: int) -> list[AuditLog]:
    """Audit records, newest first, below seq ``before`` (pending ones chained first)."""
    link_in(session)
    query = select(AuditLog).order_by(AuditLog.seq.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditLog.seq < before)
    return list(session.scalars(query))
