"""Workload identity on the server: a group's settings, and the tokens its jobs and hosts get.

The checks of the token endpoints (contract §3): a job's token goes only to the worker that
holds the job's current, unexpired lease; only for an audience the group lists; only with the
group's subject (or, if the group allows it and the job's runbook asks, its runbook's). A host's token
(the agent, for a service) goes only to a computer account allowed to serve the group, with the
same group subject. Tokens are returned and forgotten: never logged, never stored.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from credo.automation.identity import DEFAULT_AUTHORITY_HOST, IssuedToken, WorkloadIdentity, group_subject
from credo.automation.jobs import JobState
from credo.errors import InputError, NotFoundError, NotPermittedError
from credo.oidc.issuer import Issuer
from credo.oidc.settings import identity_from_json, identity_json, validate_identity
from credo.oidc.tokens import JobClaims, ServiceClaims, validate_service_name
from credo.server.models import Job, Runbook, RunbookVersion, WorkerGroup

__all__ = [
    "IDENTITY_FIELDS",
    "claim_identity",
    "group_identity",
    "host_token",
    "identity_json",
    "job_token",
    "set_group_identity",
    "token_answer",
]

log = logging.getLogger(__name__)

IDENTITY_FIELDS = (
    "audiences", "token_lifetime", "runbook_subjects", "azure_tenant_id", "azure_client_id",
    "azure_authority_host", "aws_role_arn", "gcp_audience", "gcp_service_account",
)  # fmt: skip
_SID_RE = re.compile(r"^S-1-\d{1,14}(-\d{1,10}){1,15}$")
_RUNNING = (JobState.RUNNING.value, JobState.STOPPING.value)
_NO_ISSUER = (
    "this server issues no tokens",
    "start `credo server` with --oidc-issuer https://... (docs/oidc.md)",
)


def group_identity(group: WorkerGroup) -> WorkloadIdentity:
    return WorkloadIdentity(
        audiences=tuple(group.token_audiences or ()),
        token_lifetime=group.token_lifetime,
        runbook_subjects=group.runbook_subjects,
        azure_tenant_id=group.azure_tenant_id,
        azure_client_id=group.azure_client_id,
        azure_authority_host=group.azure_authority_host or DEFAULT_AUTHORITY_HOST,
        aws_role_arn=group.aws_role_arn,
        gcp_audience=group.gcp_audience,
        gcp_service_account=group.gcp_service_account,
    )


def set_group_identity(session: Session, group: WorkerGroup, changes: dict[str, Any]) -> WorkloadIdentity:
    """Apply ``changes`` (a subset of IDENTITY_FIELDS; None clears an optional one), checked whole."""
    current = identity_json(group_identity(group))
    for name, value in changes.items():
        if name not in IDENTITY_FIELDS:
            raise InputError(f"{name}: not a workload identity setting")
        if value is None and name in ("audiences", "token_lifetime", "runbook_subjects"):
            raise InputError(f"{name}: may not be null", hint="send [] to clear the audiences")
        current[name] = value
    if current["azure_authority_host"] is None:
        current["azure_authority_host"] = DEFAULT_AUTHORITY_HOST
    identity = validate_identity(identity_from_json(current))
    group.token_audiences = list(identity.audiences)
    group.token_lifetime = identity.token_lifetime
    group.runbook_subjects = identity.runbook_subjects
    group.azure_tenant_id, group.azure_client_id = identity.azure_tenant_id, identity.azure_client_id
    group.azure_authority_host = (
        None if identity.azure_authority_host == DEFAULT_AUTHORITY_HOST else identity.azure_authority_host
    )
    group.aws_role_arn = identity.aws_role_arn
    group.gcp_audience, group.gcp_service_account = identity.gcp_audience, identity.gcp_service_account
    return identity


def _check_audience(identity: WorkloadIdentity, group: str, audience: str) -> None:
    if not identity.enabled:
        raise NotPermittedError(
            f"worker group {group!r} gets no tokens",
            hint=f"credo group set {group} --token-audience api://AzureADTokenExchange (or another)",
        )
    if audience not in identity.audiences:
        raise NotPermittedError(
            f"worker group {group!r} may not get tokens for audience {audience!r}",
            hint=f"its audiences: {', '.join(identity.audiences)} (credo group set {group} --token-audience ...)",
        )


def job_token(
    session: Session,
    issuer: Issuer | None,
    worker_id: int,
    principal: str,
    job_id: str,
    lease: int,
    audience: str,
    runbook_subject: bool = False,
    gmsa_sid: str | None = None,
) -> IssuedToken:
    """A token for a running job, for the worker holding its lease (see the module docstring)."""
    if issuer is None:
        raise NotPermittedError(*_NO_ISSUER[:1], hint=_NO_ISSUER[1])
    if gmsa_sid is not None and not _SID_RE.match(gmsa_sid):
        raise InputError(f"gmsa_sid: {gmsa_sid!r} is not a SID", hint="S-1-5-21-...")
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} does not exist")
    expires = job.lease_expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)  # SQLite: stored as UTC
    if job.worker_id != worker_id or job.lease_token != lease or job.state not in _RUNNING:
        raise NotPermittedError(f"job {job_id} is not running under lease {lease} of this worker")
    if expires is None or expires < datetime.now(UTC):
        raise NotPermittedError(f"job {job_id}: the lease has expired", hint="renew it (heartbeat) first")
    group = session.get(WorkerGroup, job.group_id)
    assert group is not None  # a job's group cannot go while the job runs (delete_group refuses)
    identity = group_identity(group)
    _check_audience(identity, group.name, audience)
    row = session.execute(
        select(Runbook.name, RunbookVersion.content_hash, Runbook.own_token_subject)
        .join(RunbookVersion, RunbookVersion.runbook_id == Runbook.id)
        .where(RunbookVersion.id == job.version_id)
    ).one()
    runbook, digest, asks = row[0], row[1], bool(row[2])
    own = asks and identity.runbook_subjects
    # The server decides the subject, not the worker: a runbook's own subject is the admin's
    # choice (the group allows it, the runbook asks), and no worker can pick one for a runbook
    # that did not ask. Workers from before 0010 send ``runbook_subject`` for every job of a group
    # that allows it: there the flag is ignored (the runbook's choice stands), so upgrading the
    # server first breaks none of them; from a group that does not allow it, it is refused, as
    # it always was.
    if runbook_subject and not identity.runbook_subjects:
        raise NotPermittedError(
            f"worker group {group.name!r} does not give runbooks their own subject",
            hint=f"credo group set {group.name} --runbook-subjects",
        )
    subject = group_subject(group.name, runbook if own else None)
    claims = JobClaims(
        group=group.name, job_id=job.id, runbook=runbook, runbook_sha256=digest.removeprefix("sha256:"),
        worker=principal, gmsa_sid=gmsa_sid,
    )  # fmt: skip
    issued = issuer.mint(subject=subject, audience=audience, lifetime=identity.token_lifetime, claims=claims)
    log.info("token for job %s: sub %s, aud %s, until %s", job.id, subject, audience, issued.expires_at)
    return issued


def host_token(
    session: Session, issuer: Issuer | None, principal: str, group_name: str, audience: str, service: str
) -> IssuedToken:
    """A token for a service on a host allowed to serve the group (the agent's token-file output)."""
    if issuer is None:
        raise NotPermittedError(*_NO_ISSUER[:1], hint=_NO_ISSUER[1])
    validate_service_name(service)
    group = session.scalar(select(WorkerGroup).where(WorkerGroup.name == group_name))
    if group is None:
        raise NotFoundError(f"worker group {group_name!r} does not exist")
    if principal.lower() not in group.allowed_workers:
        raise NotPermittedError(
            f"{principal} may not serve worker group {group_name!r}, nor get its tokens",
            hint=f"a host gets the tokens of the groups it serves (credo group create {group_name} --worker ...)",
        )
    identity = group_identity(group)
    _check_audience(identity, group.name, audience)
    subject = group_subject(group.name)
    claims = ServiceClaims(group=group.name, host=principal, service=service)
    issued = issuer.mint(subject=subject, audience=audience, lifetime=identity.token_lifetime, claims=claims)
    log.info(
        "token for %s on %s: sub %s, aud %s, until %s",
        service,
        principal,
        subject,
        audience,
        issued.expires_at,
    )
    return issued


def token_answer(issued: IssuedToken) -> dict[str, Any]:
    """The endpoints' answer (contract §3); ``expires_at`` ISO 8601 UTC."""
    return {
        "token": issued.token,
        "subject": issued.subject,
        "audience": issued.audience,
        "expires_at": issued.expires_at.astimezone(UTC).isoformat(),
    }


def claim_identity(session: Session, issuer: Issuer | None, group_id: int) -> dict[str, Any] | None:
    """The claim answer's ``identity``: the group's settings, or None (no issuer, no audiences)."""
    if issuer is None:
        return None
    group = session.get(WorkerGroup, group_id)
    if group is None:
        return None
    identity = group_identity(group)
    return identity_json(identity) if identity.enabled else None
