"""The server's tables (SQLAlchemy 2 declarative). Migrations in ``credo/server/migrations``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
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
    "Base",
    "Job",
    "JobOutput",
    "JobStream",
    "JobTransition",
    "RoleGrant",
    "Runbook",
    "RunbookVersion",
    "Worker",
    "WorkerGroup",
]


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
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
