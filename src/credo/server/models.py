"""The server's tables (SQLAlchemy 2 declarative). Migrations in ``credo/server/migrations``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiToken",
    "AuditLog",
    "AuditPending",
    "Base",
    "Job",
    "JobOutput",
    "JobStream",
    "JobTransition",
    "RoleGrant",
    "Runbook",
    "RunbookVersion",
    "Schedule",
    "ScheduleFire",
    "Webhook",
    "WebhookSignature",
    "Worker",
    "WorkerGroup",
]


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        float: Float,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Runbook(Base):
    __tablename__ = "runbooks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(Text)
    draft_content: Mapped[bytes] = mapped_column(LargeBinary)
    draft_parameters: Mapped[list[Any]] = mapped_column(JSON)
    published_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Its jobs' tokens carry credo:group:G:runbook:NAME where the group allows it (runbook_subjects).
    own_token_subject: Mapped[bool] = mapped_column(Boolean, default=False)


class RunbookVersion(Base):
    """An immutable snapshot: a published version (version >= 1) or a draft test run (version 0)."""

    __tablename__ = "runbook_versions"
    __table_args__ = (UniqueConstraint("runbook_id", "version", "content_hash", name="uq_runbook_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    runbook_id: Mapped[int] = mapped_column(ForeignKey("runbooks.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(16))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    content_hash: Mapped[str] = mapped_column(String(80))
    parameters: Mapped[list[Any]] = mapped_column(JSON)
    schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class WorkerGroup(Base):
    __tablename__ = "worker_groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    run_as: Mapped[str | None] = mapped_column(String(64))
    local_user: Mapped[str | None] = mapped_column(String(64))
    max_concurrent: Mapped[int] = mapped_column(Integer, default=4)
    allowed_workers: Mapped[list[Any]] = mapped_column(JSON)
    # Jobs may run as root or a system account (uid < 100, nobody) only when this says so.
    allow_system_user: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    # Workload identity (credo.automation.identity.WorkloadIdentity): the audiences its jobs may
    # get tokens for (none: no tokens) and what the worker tells each cloud's SDK.
    token_audiences: Mapped[list[Any]] = mapped_column(JSON, default=list)
    token_lifetime: Mapped[int] = mapped_column(Integer, default=600)
    runbook_subjects: Mapped[bool] = mapped_column(Boolean, default=False)
    azure_tenant_id: Mapped[str | None] = mapped_column(String(36))
    azure_client_id: Mapped[str | None] = mapped_column(String(36))
    azure_authority_host: Mapped[str | None] = mapped_column(String(256))  # None: the default
    aws_role_arn: Mapped[str | None] = mapped_column(String(2048))
    gcp_audience: Mapped[str | None] = mapped_column(String(512))
    gcp_service_account: Mapped[str | None] = mapped_column(String(256))


class Worker(Base):
    __tablename__ = "workers"
    __table_args__ = (UniqueConstraint("principal", "group_id", name="uq_worker_group"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    principal: Mapped[str] = mapped_column(String(256))
    group_id: Mapped[int] = mapped_column(ForeignKey("worker_groups.id", ondelete="CASCADE"), index=True)
    hostname: Mapped[str | None] = mapped_column(String(256))
    slots: Mapped[int] = mapped_column(Integer, default=1)
    registered_at: Mapped[datetime]
    last_heartbeat: Mapped[datetime]
    # A random id per worker process: a registration with another one is a restart, and the
    # previous process's leases end at once.
    instance: Mapped[str | None] = mapped_column(String(64))
    # online, draining (stopping: it takes no new job) or offline (it said it stopped).
    status: Mapped[str] = mapped_column(String(16), default="online")


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    runbook_id: Mapped[int] = mapped_column(ForeignKey("runbooks.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("runbook_versions.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(ForeignKey("worker_groups.id", ondelete="CASCADE"), index=True)
    is_test: Mapped[bool] = mapped_column(Boolean, default=False)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The job is Suspended when a lost worker leaves it at this many attempts; resume adds three.
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    lease_token: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None]
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("workers.id", ondelete="SET NULL"))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    timeout_seconds: Mapped[int] = mapped_column(Integer)
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # While Queued: when it fails for want of a worker (queued at + its timeout).
    queue_deadline: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]


class JobTransition(Base):
    __tablename__ = "job_transitions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    attempt: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(String(256))
    detail: Mapped[str | None] = mapped_column(Text)


class JobStream(Base):
    """Per job and stream: bytes kept so far (capped), whether truncated, the next sequence number."""

    __tablename__ = "job_streams"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    stream: Mapped[str] = mapped_column(String(16), primary_key=True)
    bytes: Mapped[int] = mapped_column(Integer, default=0)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    next_seq: Mapped[int] = mapped_column(Integer, default=1)


class JobOutput(Base):
    __tablename__ = "job_output"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    stream: Mapped[str] = mapped_column(String(16))
    seq: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


class AuditLog(Base):
    """One audit record (credo.automation.auditlog): appended, never updated or deleted."""

    __tablename__ = "audit_log"
    # seq is the key and the chain's order: two writers that race for the same seq cannot both
    # commit, so the chain never forks (credo.server.audit serializes them first).
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    time: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(512))
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditPending(Base):
    """An audit record committed with its change but not yet chained (PostgreSQL only).

    Several server processes append at once; chaining each append at its commit would make every
    state-changing call wait on one lock (issue 16 point 3). So a call inserts its record here,
    with no lock, and credo.server.audit moves these rows into ``audit_log`` in batches, in id
    order, under the lock. Readers of the log chain the rows first, so a record is found once its
    call has answered."""

    __tablename__ = "audit_pending"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    time: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(512))
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


class Schedule(Base):
    """A runbook's schedule (credo.automation.schedules): cron in a time zone, its last handled fire."""

    __tablename__ = "schedules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    runbook_id: Mapped[int] = mapped_column(ForeignKey("runbooks.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("worker_groups.id", ondelete="CASCADE"), index=True)
    cron: Mapped[str] = mapped_column(String(256))
    timezone: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    missed_runs: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # The window due_fires starts from (None: created_at), and the first fire after it: the
    # scheduler selects rows with next_fire <= now, so an idle tick reads an index, not every row.
    last_fire: Mapped[datetime | None]
    next_fire: Mapped[datetime | None] = mapped_column(index=True)
    # Missed fires beyond those listed one by one in schedule_fires (a long outage).
    missed_uncounted: Mapped[int] = mapped_column(Integer, default=0)


class ScheduleFire(Base):
    """One fire: on time or missed, run or not, the job it started or why it could not."""

    __tablename__ = "schedule_fires"
    __table_args__ = (UniqueConstraint("schedule_id", "at", name="uq_schedule_fire"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    missed: Mapped[bool] = mapped_column(Boolean)
    run: Mapped[bool] = mapped_column(Boolean)
    job_id: Mapped[str | None] = mapped_column(String(36))
    error: Mapped[str | None] = mapped_column(Text)
    handled_at: Mapped[datetime]


class Webhook(Base):
    """A signed webhook (credo.automation.webhooks): only the URL token's hash, the secrets sealed."""

    __tablename__ = "webhooks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url_hash: Mapped[str] = mapped_column(String(80), unique=True)
    runbook_id: Mapped[int] = mapped_column(ForeignKey("runbooks.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("worker_groups.id", ondelete="CASCADE"), index=True)
    parameter: Mapped[str] = mapped_column(String(64))  # the runbook parameter the body becomes
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    expires_at: Mapped[datetime | None]
    secret_sealed: Mapped[str] = mapped_column(String(256))
    previous_sealed: Mapped[str | None] = mapped_column(String(256))
    previous_until: Mapped[datetime | None]
    # The token bucket's state, changed under the row's lock (several processes share it).
    rate_capacity: Mapped[int] = mapped_column(Integer)
    rate_per_minute: Mapped[int] = mapped_column(Integer)
    bucket_tokens: Mapped[float | None]
    bucket_updated: Mapped[float | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookSignature(Base):
    """Signatures accepted within the replay window: a unique key, so a replay fails everywhere."""

    __tablename__ = "webhook_signatures"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    until: Mapped[float]


class ApiToken(Base):
    """A named API token (credo.automation.api_tokens): its SHA-256, never the token."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    # A role of its own (credo.automation.rbac.Role), else its creator's (docs/control-plane.md).
    role: Mapped[str | None] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class RoleGrant(Base):
    """A role (credo.automation.rbac.Role) for an AD group, on some runbooks and worker groups."""

    __tablename__ = "role_grants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    # The group as the admin wrote it: DOMAIN\\name or a SID (compared case-insensitively).
    group: Mapped[str] = mapped_column(String(256))
    runbooks: Mapped[list[Any] | None] = mapped_column(JSON)  # None: all runbooks
    worker_groups: Mapped[list[Any] | None] = mapped_column(JSON)  # None: all worker groups
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime]
