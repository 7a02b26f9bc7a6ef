"""The API's request and response bodies, one Pydantic model each: /openapi.json documents them all.

Requests (``...In``, ``...Update``) bound every field the caller sends; responses (``...Out``)
are exactly what the routes answer, field for field (the README and the tests pin them).
Times are ISO 8601 as Pydantic writes them (UTC as ``Z``).

The worker protocol's answers (``Registration``, ``ClaimAnswer``, ``TokenAnswer``...) are the
contract of ``credo.client`` and ``credo.worker``: change them together.
"""

# No `from __future__ import annotations`: FastAPI and Pydantic read these annotations at runtime.

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from credo.automation.jobs import Stream
from credo.defaults import (
    DEFAULT_MAX_CONCURRENT,
    MAX_AUDIENCE_CHARS,
    MAX_CONCURRENT,
    MAX_GROUP_WORKERS,
    MAX_JOB_TIMEOUT,
    MAX_NAME_CHARS,
    MAX_RUNBOOK_BASE64_CHARS,
    MAX_SLOTS,
)

__all__ = [
    "ApiTokenCreated",
    "ApiTokenIn",
    "ApiTokenOut",
    "AuditRecordOut",
    "ChunkIn",
    "ChunkOut",
    "ClaimAnswer",
    "ClaimedJob",
    "DrainAnswer",
    "DrainIn",
    "FinishAnswer",
    "FinishIn",
    "FireOut",
    "GrantIn",
    "GrantOut",
    "GroupIdentity",
    "GroupIn",
    "GroupOut",
    "GroupUpdate",
    "Health",
    "HeartbeatAnswer",
    "HeartbeatIn",
    "HostTokenIn",
    "JobIn",
    "JobOut",
    "JobTokenIn",
    "Jwks",
    "Lease",
    "OidcDiscovery",
    "OutputAnswer",
    "OutputIn",
    "OutputPage",
    "Parameter",
    "Published",
    "RegisterIn",
    "Registration",
    "RunbookDetail",
    "RunbookIn",
    "RunbookOut",
    "RunbookUpdate",
    "RunbookVersionOut",
    "ScheduleIn",
    "ScheduleOut",
    "TokenAnswer",
    "Transition",
    "WebhookAccepted",
    "WebhookIn",
    "WebhookOut",
    "WorkerOut",
]

# -- runbooks ---------------------------------------------------------------------------------------


class Parameter(BaseModel):
    """A runbook parameter's declaration (Azure Automation's types: string, int, number, bool...)."""

    name: str
    type: str = "string"
    required: bool = False
    default: Any = None
    allowed: list[Any] | None = None
    description: str | None = None


class RunbookIn(BaseModel):
    name: str = Field(max_length=MAX_NAME_CHARS)
    type: str = "python3"
    content: str = Field(description="The script, base64-encoded", max_length=MAX_RUNBOOK_BASE64_CHARS)
    description: str | None = None
    parameters: list[Parameter] = []
    own_token_subject: bool = Field(
        default=False, description="Its jobs' cloud tokens carry its own subject where the group allows it"
    )


class RunbookUpdate(BaseModel):
    content: str | None = Field(default=None, max_length=MAX_RUNBOOK_BASE64_CHARS)
    description: str | None = None
    parameters: list[Parameter] | None = None
    own_token_subject: bool | None = None


class RunbookVersionOut(BaseModel):
    version: int
    content_hash: str
    created_at: datetime


class RunbookOut(BaseModel):
    name: str
    type: str
    description: str | None
    parameters: list[Parameter] = Field(description="The draft's parameter declarations")
    published_version: int | None
    versions: list[RunbookVersionOut] = Field(description="Published versions, oldest first")
    updated_at: datetime
    own_token_subject: bool = Field(
        default=False, description="Asks for credo:group:G:runbook:NAME (docs/oidc.md)"
    )


class RunbookDetail(RunbookOut):
    draft_content: str = Field(description="The draft script, base64-encoded")


class Published(BaseModel):
    name: str
    version: int
    content_hash: str


# -- worker groups and workers ----------------------------------------------------------------------


class GroupIn(BaseModel):
    name: str = Field(max_length=MAX_NAME_CHARS)
    run_as: str | None = Field(
        default=None, description="gMSA the jobs run as (NAME or NAME$); none: the worker's user"
    )
    local_user: str | None = None
    max_concurrent: int = Field(default=DEFAULT_MAX_CONCURRENT, ge=1, le=MAX_CONCURRENT)
    workers: list[str] = Field(
        default=[],
        description="Computer principals allowed to serve it (NAME$@REALM)",
        max_length=MAX_GROUP_WORKERS,
    )
    allow_system_user: bool = Field(
        default=False, description="Let jobs run as root or a system account (refused otherwise)"
    )


class GroupUpdate(BaseModel):
    """Workload identity settings (docs/oidc.md); a field left out is kept, null clears it."""

    audiences: list[str] | None = Field(default=None, max_length=8, description="Token audiences; [] clears")
    token_lifetime: int | None = Field(default=None, description="Seconds, 60..3600")
    runbook_subjects: bool | None = None
    azure_tenant_id: str | None = Field(default=None, max_length=64)
    azure_client_id: str | None = Field(default=None, max_length=64)
    azure_authority_host: str | None = Field(default=None, max_length=256)
    aws_role_arn: str | None = Field(default=None, max_length=2048)
    gcp_audience: str | None = Field(default=None, max_length=512)
    gcp_service_account: str | None = Field(default=None, max_length=256)


class GroupIdentity(BaseModel):
    """A group's workload identity settings (credo.automation.identity.WorkloadIdentity)."""

    audiences: list[str]
    token_lifetime: int
    runbook_subjects: bool
    azure_tenant_id: str | None
    azure_client_id: str | None
    azure_authority_host: str
    aws_role_arn: str | None
    gcp_audience: str | None
    gcp_service_account: str | None


class WorkerOut(BaseModel):
    id: int
    principal: str
    group: str
    hostname: str | None
    slots: int
    last_heartbeat: datetime
    status: str = Field(description="online, lost (no heartbeat lately), draining or offline")


class GroupOut(BaseModel):
    name: str
    run_as: str | None
    local_user: str | None
    max_concurrent: int
    allowed_workers: list[str]
    allow_system_user: bool
    workers: list[WorkerOut]
    identity: GroupIdentity


# -- jobs -------------------------------------------------------------------------------------------


class JobIn(BaseModel):
    runbook: str
    group: str
    parameters: dict[str, Any] = {}
    idempotency_key: str | None = Field(default=None, max_length=128)
    timeout_seconds: int | None = Field(default=None, ge=1, le=MAX_JOB_TIMEOUT)


class Transition(BaseModel):
    state: str
    at: datetime
    attempt: int
    worker: str | None
    detail: str | None


class JobOut(BaseModel):
    """A job (the README documents its fields)."""

    id: str
    runbook: str | None
    version: int | None
    content_hash: str | None
    group: str | None
    test: bool
    state: str
    parameters: dict[str, Any]
    attempts: int
    worker: str | None
    exit_code: int | None
    reason: str | None
    timeout_seconds: int
    created_at: datetime | None
    updated_at: datetime | None
    transitions: list[Transition]


class ChunkOut(BaseModel):
    id: int
    stream: str
    seq: int
    attempt: int
    text: str
    at: datetime


class OutputPage(BaseModel):
    job_id: str
    state: str
    complete: bool = Field(description="The job has ended: no chunk will follow these")
    chunks: list[ChunkOut]


# -- the worker protocol ----------------------------------------------------------------------------


class RegisterIn(BaseModel):
    group: str
    hostname: str | None = None
    slots: int = Field(default=1, ge=1, le=MAX_SLOTS)
    instance: str | None = Field(
        default=None, max_length=64, description="Random per worker process: another one means a restart"
    )


class Registration(BaseModel):
    worker_id: int
    principal: str
    group: str
    run_as: str | None
    local_user: str | None
    max_concurrent: int
    allow_system_user: bool
    session_token: str = Field(description="Bearer token for the worker routes (an hour)")
    lease_seconds: float


class Lease(BaseModel):
    job_id: str
    lease_token: int


class HeartbeatIn(BaseModel):
    leases: list[Lease] = []


class HeartbeatAnswer(BaseModel):
    stop: list[str] = Field(description="Jobs the worker must stop (stop requested, or no longer its)")


class DrainIn(BaseModel):
    leases: list[Lease] = Field(default=[], description="The jobs the worker still runs")
    final: bool = Field(default=False, description="The worker has stopped")


class DrainAnswer(BaseModel):
    requeued: list[str]


class ClaimedJob(BaseModel):
    """A claimed job, with its runbook inline (the worker checks the content's hash)."""

    job_id: str
    lease_token: int
    attempt: int
    runbook: str
    version: int
    type: str
    content_hash: str
    parameters: dict[str, Any]
    timeout_seconds: int
    content: str = Field(description="The runbook version's script, base64-encoded")


class ClaimAnswer(BaseModel):
    jobs: list[ClaimedJob]
    identity: GroupIdentity | None = Field(
        default=None, description="The group's workload identity (with jobs, if it gets tokens)"
    )


class ChunkIn(BaseModel):
    stream: Stream
    text: str


class OutputIn(BaseModel):
    lease_token: int
    chunks: list[ChunkIn]


class OutputAnswer(BaseModel):
    stop: bool


class FinishIn(BaseModel):
    lease_token: int
    chunks: list[ChunkIn] = Field(default=[], description="Last output chunks, stored before the result")
    exit_code: int | None = None
    reason: str | None = None
    stopped: bool = False
    handback: bool = Field(
        default=False, description="The worker gave the job up before its end: run it again elsewhere"
    )


class FinishAnswer(BaseModel):
    """``jobs`` and ``identity`` only when the finish also claimed (``?claim=N``)."""

    state: str
    jobs: list[ClaimedJob] | None = None
    identity: GroupIdentity | None = None


# -- tokens and the issuer --------------------------------------------------------------------------


class JobTokenIn(BaseModel):
    lease: int = Field(description="The job's lease token (from the claim)")
    audience: str = Field(max_length=MAX_AUDIENCE_CHARS)
    runbook_subject: bool = False
    gmsa_sid: str | None = Field(
        default=None, max_length=200, description="The gMSA's SID, as the worker read it (for the claims)"
    )


class HostTokenIn(BaseModel):
    group: str = Field(max_length=MAX_NAME_CHARS)
    audience: str = Field(max_length=MAX_AUDIENCE_CHARS)
    service: str = Field(max_length=256, description="The systemd unit the token is for")


class TokenAnswer(BaseModel):
    token: str
    subject: str
    audience: str
    expires_at: str = Field(description="ISO 8601, UTC")


class OidcDiscovery(BaseModel):
    """OpenID Connect Discovery 1.0 §3, the members the clouds read."""

    issuer: str
    jwks_uri: str
    response_types_supported: list[str]
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    claims_supported: list[str]


class Jwks(BaseModel):
    """RFC 7517 §5: the issuer's public keys (RSA, RS256)."""

    keys: list[dict[str, Any]]


class Health(BaseModel):
    status: str


class AuditRecordOut(BaseModel):
    """One audit record (credo.automation.auditlog): ``time`` as the chain encodes it."""

    seq: int
    time: str = Field(description="UTC, YYYY-MM-DDTHH:MM:SS.ffffffZ, as hashed")
    actor: str
    source: str
    action: str
    target: str
    outcome: str
    details: dict[str, Any]
    prev: str
    hash: str


class ScheduleIn(BaseModel):
    name: str = Field(max_length=MAX_NAME_CHARS)
    runbook: str = Field(max_length=MAX_NAME_CHARS)
    group: str = Field(max_length=MAX_NAME_CHARS)
    cron: str = Field(max_length=256, description="Five fields, or @daily...; read in `timezone`")
    timezone: str = Field(default="UTC", max_length=64, description="IANA time zone")
    parameters: dict[str, Any] = {}
    enabled: bool = True
    missed_runs: str = Field(default="skip", pattern="^(skip|run-once)$")


class FireOut(BaseModel):
    at: datetime
    missed: bool
    run: bool
    job_id: str | None
    error: str | None


class ScheduleOut(BaseModel):
    name: str
    runbook: str
    group: str
    cron: str
    timezone: str
    parameters: dict[str, Any]
    enabled: bool
    missed_runs: str
    created_at: datetime
    last_fire: datetime | None
    next_fire: datetime | None
    missed: int = Field(description="Fires missed so far (server down or stalled)")
    next_runs: list[datetime] = Field(default=[], description="The next fires (show only)")
    fires: list[FireOut] = Field(default=[], description="The latest fires, newest first (show only)")


class WebhookIn(BaseModel):
    name: str = Field(max_length=MAX_NAME_CHARS)
    runbook: str = Field(max_length=MAX_NAME_CHARS)
    group: str = Field(max_length=MAX_NAME_CHARS)
    parameter: str = Field(max_length=MAX_NAME_CHARS, description="The runbook parameter the body becomes")
    expires_seconds: int | None = Field(default=None, ge=60, le=366 * 86400)
    rate_per_minute: int = Field(default=60, ge=1, le=6000)
    rate_burst: int = Field(default=10, ge=1, le=1000)


class WebhookOut(BaseModel):
    name: str
    runbook: str
    group: str
    parameter: str
    enabled: bool
    expires_at: datetime | None
    previous_until: datetime | None = Field(description="Until when the previous secret is accepted")
    rate_per_minute: int
    rate_burst: int
    created_at: datetime
    url: str | None = Field(default=None, description="Only in the answer to create: shown once")
    secret: str | None = Field(default=None, description="Only in the answers to create and rotate")


class WebhookAccepted(BaseModel):
    job_id: str


# -- sign-in: API tokens (admin) -----------------------------------------------------------------


class ApiTokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    expires: str = Field(description="Lifetime: 30m, 12h, 90d or 2w (at most 366d)")
    role: str | None = Field(
        default=None, description="reader, operator, author or admin; none: the creator's"
    )


class ApiTokenOut(BaseModel):
    id: str
    name: str
    role: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked: bool


class ApiTokenCreated(ApiTokenOut):
    token: str = Field(description="The token: shown this once, stored only hashed")


# -- roles (admin) --------------------------------------------------------------------------------


class GrantIn(BaseModel):
    role: str = Field(description="reader, operator, author or admin")
    group: str = Field(min_length=1, max_length=256, description="An AD group: DOMAIN\\name or its SID")
    runbooks: list[str] | None = Field(default=None, description="None: all runbooks")
    worker_groups: list[str] | None = Field(default=None, description="None: all worker groups")


class GrantOut(GrantIn):
    id: int
    created_by: str
    created_at: datetime
