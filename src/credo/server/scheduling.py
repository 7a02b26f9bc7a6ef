"""Schedules in the server: create, list, pause, resume, delete, and ``tick``, which fires them.

Exactly once across server processes (docs/control-plane.md, "Schedules"): ``tick`` selects the
schedules whose ``next_fire`` has come with ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL),
so a row another process is handling is passed over, not waited for; then, in that same
transaction, asks ``due_fires`` what fell in (last_fire, now], records every fire (on time or
missed) in ``schedule_fires``, queues the runs and moves ``last_fire`` and ``next_fire`` on. A
process that comes to the row after the commit sees the moved window and finds nothing due.
Two more guards make a double fire impossible even if the lock were lost: ``schedule_fires``
is unique per (schedule, instant), and each run's job carries the idempotency key
``schedule:<id>:<instant>``. SQLite has one writer at a time; a second process waits.

A run that cannot start (the runbook was unpublished, its parameters no longer fit its schema)
is recorded with the reason and does not stop the other schedules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from credo.automation.auditlog import AuditEntry, AuditOutcome
from credo.automation.parameters import validate_parameters
from credo.automation.runbooks import validate_runbook_name
from credo.automation.schedules import MissedRunPolicy, next_fires, parse_cron, parse_timezone
from credo.automation.schedules import Schedule as Spec
from credo.automation.schedules import due_fires as compute_due
from credo.errors import Conflict, CredoError, NotFoundError
from credo.server import audit, catalog, queue
from credo.server.clock import aware, now
from credo.server.models import Runbook, Schedule, ScheduleFire, WorkerGroup
from credo.server.schemas import FireOut, ScheduleIn, ScheduleOut

__all__ = [
    "Fired",
    "create_schedule",
    "delete_schedule",
    "get_schedule",
    "list_schedules",
    "schedule_view",
    "set_enabled",
    "tick",
]

log = logging.getLogger(__name__)

# Schedules handled per tick transaction: bounds how long their rows stay locked.
TICK_BATCH = 50
SHOWN_NEXT = 5
SHOWN_FIRES = 20


def _spec(row: Schedule) -> Spec:
    created = aware(row.created_at)
    assert created is not None
    return Spec(
        cron=row.cron, timezone=row.timezone, created=created, parameters=row.parameters,
        enabled=row.enabled, missed_runs=MissedRunPolicy(row.missed_runs),
    )  # fmt: skip


def _next(row: Schedule, after: datetime) -> datetime | None:
    found = next_fires(_spec(row), after, 1)
    return found[0] if found else None


def get_schedule(session: Session, name: str) -> Schedule:
    row = session.scalar(select(Schedule).where(Schedule.name == name))
    if row is None:
        raise NotFoundError(f"schedule {name!r} does not exist", hint="credo schedule list")
    return row


def create_schedule(session: Session, body: ScheduleIn) -> Schedule:
    validate_runbook_name(body.name)
    cron, timezone = parse_cron(body.cron), parse_timezone(body.timezone).key
    if session.scalar(select(Schedule.id).where(Schedule.name == body.name)) is not None:
        raise Conflict(f"schedule {body.name!r} exists", hint="pick another name, or delete it first")
    runbook = catalog.get_runbook(session, body.runbook)
    group = catalog.get_group(session, body.group)
    # The parameters must fit the published version now; a fire checks again (it may change).
    parameters = validate_parameters(catalog.published_schema(session, runbook), body.parameters)
    stamp = now()
    spec = Spec(cron=cron, timezone=timezone, created=stamp, parameters=parameters,
                enabled=body.enabled, missed_runs=MissedRunPolicy(body.missed_runs))  # fmt: skip
    row = Schedule(
        name=body.name, runbook_id=runbook.id, group_id=group.id, cron=spec.cron, timezone=spec.timezone,
        parameters=parameters, enabled=spec.enabled, missed_runs=str(spec.missed_runs), created_at=stamp,
        updated_at=stamp, last_fire=None, next_fire=None, missed_uncounted=0,
    )  # fmt: skip
    row.next_fire = _next(row, stamp) if row.enabled else None
    session.add(row)
    session.flush()
    return row


def set_enabled(session: Session, name: str, enabled: bool) -> Schedule:
    """Pause or resume. Resuming starts the window now: times passed while paused are neither
    run nor missed (docs/control-plane.md)."""
    row = get_schedule(session, name)
    if row.enabled == enabled:
        return row
    stamp = now()
    row.enabled = enabled
    row.updated_at = stamp
    if enabled:
        row.last_fire = stamp
        row.next_fire = _next(row, stamp)
    else:
        row.next_fire = None
    return row


def delete_schedule(session: Session, name: str) -> None:
    session.delete(get_schedule(session, name))


def schedule_view(session: Session, row: Schedule, *, detail: bool = False) -> ScheduleOut:
    runbook = session.get(Runbook, row.runbook_id)
    group = session.get(WorkerGroup, row.group_id)
    fires: list[FireOut] = []
    upcoming: list[datetime] = []
    missed = row.missed_uncounted
    if detail:
        found = session.scalars(
            select(ScheduleFire)
            .where(ScheduleFire.schedule_id == row.id)
            .order_by(ScheduleFire.at.desc())
            .limit(SHOWN_FIRES)
        ).all()
        fires = [
            FireOut(at=aware(f.at) or f.at, missed=f.missed, run=f.run, job_id=f.job_id, error=f.error)
            for f in found
        ]
        upcoming = next_fires(_spec(row), now(), SHOWN_NEXT)
    missed += (
        session.scalar(
            select(func.count()).where(ScheduleFire.schedule_id == row.id, ScheduleFire.missed.is_(True))
        )
        or 0
    )
    return ScheduleOut(
        name=row.name, runbook=runbook.name if runbook else "", group=group.name if group else "",
        cron=row.cron, timezone=row.timezone, parameters=row.parameters, enabled=row.enabled,
        missed_runs=row.missed_runs, created_at=aware(row.created_at) or row.created_at,
        last_fire=aware(row.last_fire), next_fire=aware(row.next_fire) if row.enabled else None,
        missed=missed, next_runs=upcoming, fires=fires,
    )  # fmt: skip


def list_schedules(session: Session) -> list[ScheduleOut]:
    rows = session.scalars(select(Schedule).order_by(Schedule.name)).all()
    return [schedule_view(session, r) for r in rows]


@dataclass(frozen=True)
class Fired:
    """What one tick did to one schedule: for the metrics and to wake the group's workers."""

    schedule: str
    policy: str
    group_id: int
    started: int
    missed: int


def tick(session: Session, dialect: str, at: datetime | None = None) -> list[Fired]:
    """Handle the schedules that are due at ``at`` (default: now); see the module docstring."""
    stamp = at or now()
    query = (
        select(Schedule)
        .where(Schedule.enabled.is_(True), Schedule.next_fire <= stamp)
        .order_by(Schedule.next_fire)
        .limit(TICK_BATCH)
    )
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [_fire(session, dialect, row, stamp) for row in session.scalars(query).all()]


def _fire(session: Session, dialect: str, row: Schedule, stamp: datetime) -> Fired:
    due = compute_due(_spec(row), aware(row.last_fire), stamp)
    runbook = session.get(Runbook, row.runbook_id)
    group = session.get(WorkerGroup, row.group_id)
    started = 0
    for fire in due.fires:
        job_id: str | None = None
        error: str | None = None
        if fire.run:
            job_id, error = _start(session, row, runbook, group, fire.at)
            started += job_id is not None
        session.add(
            ScheduleFire(schedule_id=row.id, at=fire.at, missed=fire.missed, run=fire.run, job_id=job_id,
                         error=error, handled_at=stamp)
        )  # fmt: skip
        _audit(session, dialect, row, fire.at, fire.missed, job_id, error, stamp)
    row.missed_uncounted += due.omitted
    row.last_fire = due.last_fire
    row.next_fire = _next(row, due.last_fire)
    session.flush()
    return Fired(row.name, row.missed_runs, row.group_id, started, due.missed_count)


def _start(
    session: Session, row: Schedule, runbook: Runbook | None, group: WorkerGroup | None, at: datetime
) -> tuple[str | None, str | None]:
    if runbook is None or group is None:
        return None, "the runbook or worker group is gone"
    try:
        # A savepoint: a run that cannot start leaves the other fires of this tick intact.
        with session.begin_nested():
            started = queue.start_job(
                session, runbook.name, group.name, dict(row.parameters),
                idempotency_key=f"schedule:{row.id}:{at.isoformat()}",
            )  # fmt: skip
            return started.job_id, None
    except CredoError as exc:
        log.warning("schedule %s: the run of %s did not start: %s", row.name, at.isoformat(), exc.message)
        return None, exc.message


def _audit(
    session: Session, dialect: str, row: Schedule, at: datetime, missed: bool, job_id: str | None,
    error: str | None, stamp: datetime,
) -> None:  # fmt: skip
    """The fire in the audit log, in the fire's own transaction: no API call records it."""
    details: dict[str, Any] = {"fire": at.isoformat(), "missed": missed}
    if job_id:
        details["job"] = job_id
    outcome = AuditOutcome.FAILED if error else AuditOutcome.OK
    action = "schedule.fire" if not missed else "schedule.miss"
    entry = AuditEntry(stamp, f"schedule:{row.name}", "", action, f"schedule/{row.name}", outcome, details)
    audit.append_in(session, dialect, entry)
