"""The audit log in the server: every state-changing call appended, from one middleware.

``AuditTrail`` is a pure ASGI middleware outside the gate (credo.server.gate), so that it sees
the gate's refusals as well as the routes' answers. For each call that may change state (any
method but GET, HEAD, OPTIONS) to a route of the API, it appends one record
(credo.automation.auditlog) when the answer starts: who (``actor``), from where (the peer's
address), what (``action``: ``job.start``, ``runbook.publish``..., from the route's resource
and its endpoint's verb; ``target``: ``job/<id>``, ``runbook/<name>``...) and the outcome
(``ok`` for 2xx and 3xx, ``denied`` for 401 and 403, ``failed`` otherwise). The record is
committed before the answer's first byte leaves, so a caller that heard "done" finds the
record. A route may add names and ids with ``note`` (the job a start created).

A route whose change is one transaction appends the call's record in that transaction instead
(``record_in``, with the status it will answer): the change and its record commit together or
not at all, so no crash between two commits can leave a change unrecorded, and the call costs
one transaction instead of two (the submission benchmark in BENCHMARKS.md). If the route then
fails, or answers another status than the one recorded, the middleware appends what the caller
heard as well.

Not recorded:

- Paths that match no route: an anonymous scanner's guesses would fill an append-only table
  with noise; they change nothing. Likewise calls to a public route (a webhook's URL) that the
  route does not ``note``: an unknown token, or a body the gate refused before the route ran.
- The worker's protocol loop (heartbeat, claim, output): several calls per second per worker,
  each already recorded where it matters, in the job's state history (``job_transitions``:
  state, time, attempt, worker). A worker's registration, drain, finish and token requests are
  recorded.

Chaining is serialized: in SQLite by its single writer, each record chained as it is appended;
in PostgreSQL, where several server processes share the table, by a transaction-level advisory
lock. There a call does not take the lock: it inserts its record, unchained, into
``audit_pending`` in its own transaction, and ``link_in`` moves pending rows into the chain in
batches, in the order of their ids, under the lock: every second from each server process
(``AUDIT_LINK_INTERVAL``) and before every read of the log, so that a caller that heard "done"
finds the record. (Measured: with the lock taken by every call, submissions and finish reports
of three replicas queued on it; see docs/scaling.md.) ``seq`` is the primary key besides, so two
writers that raced could never both commit the same place in the chain.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from credo import security_events
from credo.automation.auditlog import GENESIS, AuditEntry, AuditOutcome, AuditRecord, follow
from credo.security_events import Outcome, SecurityEvent, Severity
from credo.server import clock
from credo.server.database import Database, after_commit
from credo.server.gate import ACTOR, PRINCIPAL, Access, declared_policy
from credo.server.models import AuditLog, AuditPending

__all__ = ["LINK_BATCH", "AuditTrail", "append_in", "link_in", "note", "record_in", "records", "write"]

log = logging.getLogger(__name__)

# The scope key of what a route adds (``note``); the gate sets ACTOR, who the caller is.
_NOTE = "credo.audit"
# The scope key of the audited call in flight (``_Call``), which ``record_in`` finds.
_CALL = "credo.audit.call"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The worker's protocol loop (see the module docstring), by endpoint name.
_UNAUDITED = frozenset({"worker_heartbeat", "claim", "job_append"})
# Any constant: the key of PostgreSQL's advisory lock that orders appends (pg_advisory_xact_lock
# takes a bigint; this one spells "credoaud" in ASCII).
_LOCK_KEY = 0x637265646F617564
_TABLE = cast(Table, AuditLog.__table__)
_PENDING = cast(Table, AuditPending.__table__)
_ENTRY_FIELDS = ("time", "actor", "source", "action", "target", "outcome", "details")
_PENDING_ROWS = select(_PENDING.c.id, *(_PENDING.c[f] for f in _ENTRY_FIELDS)).order_by(_PENDING.c.id)
# Pending rows chained in one statement: a backlog (a replica's chainer stopped for a while) is
# linked in several transactions of this many, so none holds the lock long.
LINK_BATCH = 1000
# Built once: appends are on the submission's hot path (see ``append_in``).
_TAIL = select(_TABLE.c.seq, _TABLE.c.hash).order_by(_TABLE.c.seq.desc()).limit(1)
# Appends that lost a race for a seq (SQLite: another process wrote between the read of the tail
# and the insert) try again after a short random pause, so that the racers spread out.
_RETRIES = 20


def note(
    request: Request,
    *,
    target: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    skip: bool = False,
    **details: Any,
) -> None:
    """Add names and ids to the call's audit record (never a secret: auditlog refuses such keys).

    ``actor``: who the route found the caller to be (a webhook); ``skip``: record nothing (a
    public route's call that named nothing that exists, so that strangers cannot fill the log).
    """
    noted: dict[str, Any] = request.scope.setdefault(_NOTE, {"details": {}})
    if target is not None:
        noted["target"] = target
    if actor is not None:
        noted["actor"] = actor
    if action is not None:
        noted["action"] = action
    noted["skip"] = skip
    noted["details"].update(details)


def _tail(session: Session) -> tuple[int, str]:
    """The last record's seq and hash ((0, GENESIS) for an empty log): all that a new one needs."""
    row = session.execute(_TAIL).first()
    return (row[0], row[1]) if row is not None else (0, GENESIS)


def _entry(row: Any) -> AuditEntry:
    time = clock.aware(row.time)
    assert time is not None
    return AuditEntry(
        time=time,
        actor=row.actor,
        source=row.source,
        action=row.action,
        target=row.target,
        outcome=AuditOutcome(row.outcome),
        details=row.details,
    )


def _record(row: AuditLog) -> AuditRecord:
    return AuditRecord(seq=row.seq, entry=_entry(row), prev=row.prev, hash=row.hash)


def _values(entry: AuditEntry) -> dict[str, Any]:
    e = entry
    return {
        "time": e.time, "actor": e.actor, "source": e.source, "action": e.action, "target": e.target,
        "outcome": str(e.outcome), "details": dict(e.details),
    }  # fmt: skip


def _chained(record: AuditRecord) -> dict[str, Any]:
    return {"seq": record.seq, **_values(record.entry), "prev": record.prev, "hash": record.hash}


def append_in(session: Session, dialect: str, entry: AuditEntry) -> None:
    """Append ``entry`` in the caller's transaction (the scheduler's fires: with what they did).

    PostgreSQL: unchained, into ``audit_pending`` (see the module docstring); SQLite: chained.
    """
    # A Core insert with parameters: the record is never read back as an object. (Measured on
    # SQLite: 0.4 ms a transaction, against 1.2 ms for insert(AuditLog).values(...), whose
    # values are compiled into each statement, and more for the unit of work's session.add.)
    if _for_siem(entry):
        after_commit(session, lambda: security_events.emit(_security_event(entry)))
    if dialect == "postgresql":
        session.execute(_PENDING.insert(), _values(entry))
        return
    session.execute(_TABLE.insert(), _chained(follow(*_tail(session), entry)))


def _for_siem(entry: AuditEntry) -> bool:
    """Sign-ins and refusals (401, 403) also go to the security events (credo.security_events):
    what a SIEM watches for. The rest of the audit log stays in the audit log."""
    return entry.action == "ui.sign-in" or entry.outcome is AuditOutcome.DENIED


def _security_event(entry: AuditEntry) -> SecurityEvent:
    outcome = {
        AuditOutcome.OK: Outcome.SUCCESS,
        AuditOutcome.DENIED: Outcome.DENIED,
        AuditOutcome.FAILED: Outcome.FAILURE,
    }[entry.outcome]
    kind = "server.signin" if entry.action == "ui.sign-in" else "server.access.denied"
    severity = Severity.NOTICE if outcome is Outcome.SUCCESS else Severity.WARNING
    details = {"action": entry.action, "address": entry.source, **entry.details}
    return SecurityEvent("server", kind, outcome, severity, entry.actor, entry.target, details, entry.time)


def link_in(session: Session, limit: int | None = None) -> int:
    """Chain pending records (PostgreSQL), oldest id first, in the caller's transaction: at most
    ``limit`` of them (None: all it sees). Returns how many; 0 on SQLite, which has none.

    Takes the advisory lock, held until the caller's transaction ends: keep that short.
    """
    if session.get_bind().dialect.name != "postgresql":
        return 0
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    linked = 0
    seq, hash = _tail(session)
    while limit is None or linked < limit:
        batch = LINK_BATCH if limit is None else min(LINK_BATCH, limit - linked)
        rows = session.execute(_PENDING_ROWS.limit(batch)).all()
        if not rows:
            break
        chained = []
        for row in rows:
            record = follow(seq, hash, _entry(row))
            seq, hash = record.seq, record.hash
            chained.append(_chained(record))
        session.execute(_TABLE.insert(), chained)
        session.execute(delete(_PENDING).where(_PENDING.c.id.in_([row.id for row in rows])))
        linked += len(rows)
        if len(rows) < batch:
            break
    return linked


def record_in(
    session: Session,
    request: Request,
    status: int,
    *,
    target: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    **details: Any,
) -> None:
    """Append this call's record in the route's own transaction ``session``, as answered with
    ``status`` (see the module docstring); ``target``, ``actor``, ``action`` and ``details`` as
    ``note`` takes them.

    Blocking (the route's transaction runs on a thread). Outside an audited call (a read, a
    public route), nothing.
    """
    call = request.scope.get(_CALL)
    if not isinstance(call, _Call) or call.written is not None:
        return
    note(request, target=target, actor=actor, action=action, **details)
    dialect = session.get_bind().dialect.name
    append_in(session, dialect, call.trail.entry(request.scope, call.route, call.params, status))

    def written() -> None:
        call.written = status

    after_commit(session, written)


def write(db: Database, entry: AuditEntry) -> None:
    """Append ``entry`` in a transaction of its own (blocking: run it in a thread)."""
    for attempt in range(_RETRIES):
        try:
            with db.session() as session:
                append_in(session, db.dialect, entry)
                return
        except (IntegrityError, OperationalError):
            # Another process took this seq first (SQLite: its snapshot went stale): read again.
            if attempt == _RETRIES - 1:
                raise
            time.sleep(random.uniform(0.001, 0.02) * (attempt + 1))  # noqa: S311 - jitter, not a secret
    raise AssertionError("unreachable")


def records(session: Session, since: datetime | None, after: int, limit: int) -> list[AuditRecord]:
    """Records in chain order: with ``seq > after`` and, with ``since``, from that time on (the
    pending ones chained first)."""
    link_in(session)
    query = select(AuditLog).where(AuditLog.seq > after)
    if since is not None:
        query = query.where(AuditLog.time >= since)
    return [_record(row) for row in session.scalars(query.order_by(AuditLog.seq).limit(limit))]


def _outcome(status: int) -> AuditOutcome:
    if status < 400:
        return AuditOutcome.OK
    if status in (401, 403):
        return AuditOutcome.DENIED
    return AuditOutcome.FAILED


def _singular(resource: str) -> str:
    return resource.removesuffix("s") if resource.endswith("s") else resource


@dataclass
class _Call:
    """An audited call in flight: where ``record_in`` finds how to word its record, and whether
    it did (the status recorded, once the route's transaction has committed)."""

    trail: AuditTrail
    route: Route
    params: dict[str, Any]
    written: int | None = None


class AuditTrail:
    """The ASGI middleware (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, *, routes: list[BaseRoute], prefixes: tuple[str, ...], db: Database
    ) -> None:
        self.app = app
        self.routes = routes
        # The API's, and the web UI's: a job started from a browser is recorded as one started
        # from the CLI is (with ``via: ui``).
        self.prefixes = prefixes
        self.db = db

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _READ_METHODS:
            await self.app(scope, receive, send)
            return
        route, params = self._route(scope)
        if route is None or getattr(route.endpoint, "__name__", "") in _UNAUDITED:
            await self.app(scope, receive, send)
            return
        call = scope[_CALL] = _Call(self, route, params)

        async def audited_send(message: Message) -> None:
            if message["type"] == "http.response.start" and self._recorded(scope, route):
                status = int(message["status"])
                if call.written != status:  # not recorded in the route's transaction, or not as answered
                    entry = self.entry(scope, route, params, status)
                    try:
                        await run_in_threadpool(write, self.db, entry)
                    except Exception:  # the call has happened; say loudly that its record is missing
                        log.exception("audit record of %s %s not written", entry.action, entry.target)
            await send(message)

        await self.app(scope, receive, audited_send)

    @staticmethod
    def _recorded(scope: Scope, route: Route) -> bool:
        noted = scope.get(_NOTE)
        if noted is not None:
            return not noted.get("skip")
        # A public route's call is recorded only when the route says what it was about: the gate's
        # 413 to a stranger's oversized guess at a webhook URL names nothing that exists.
        policy = declared_policy(route)
        return policy is None or policy.access is not Access.PUBLIC

    def _route(self, scope: Scope) -> tuple[Route | None, dict[str, Any]]:
        if not scope["path"].startswith(self.prefixes):
            return None, {}
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL and isinstance(route, Route):
                return route, dict(child.get("path_params", {}))
        return None, {}

    def entry(self, scope: Scope, route: Route, params: dict[str, Any], status: int) -> AuditEntry:
        """The call's record, as answered with ``status``."""
        # /api/v1/jobs/{job_id}/stop -> resource "job"; stop_job -> verb "stop".
        prefix = next(p for p in self.prefixes if route.path.startswith(p))
        segments = route.path.removeprefix(prefix).strip("/").split("/")
        resource = _singular(segments[0]) if segments and segments[0] else "api"
        verb = getattr(route.endpoint, "__name__", "call").split("_")[0]
        ids: Iterable[str] = (str(v) for v in params.values())
        noted: dict[str, Any] = scope.get(_NOTE, {"details": {}})
        details: dict[str, Any] = {"method": scope["method"], "status": status, **noted["details"]}
        if prefix != self.prefixes[0]:
            details["via"] = prefix.strip("/")
        actor = noted.get("actor") or scope.get(ACTOR) or scope.get(PRINCIPAL) or "anonymous"
        client = scope.get("client")
        return AuditEntry(
            time=clock.now(),
            actor=str(actor),
            source=str(client[0]) if client else "",
            action=noted.get("action") or f"{resource}.{verb}",
            target=noted.get("target") or "/".join((resource, *ids)),
            outcome=_outcome(status),
            details=details,
        )
