"""Workload identity of a worker group: which cloud tokens its jobs get, and how they are delivered.

Pure domain model shared by the server (which stores a group's settings and mints tokens) and
the worker (which writes token files and the SDKs' environment variables). No I/O here.

A group's jobs share one subject, ``credo:group:<group>``; a runbook may ask for its own,
``credo:group:<group>:runbook:<runbook>``. Entra allows 20 federated credentials per app and no
wildcards (../shared/reference/workload-identity.md §1.3), so subjects are coarse and stable:
per-job facts travel in private claims instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "AWS_AUDIENCE",
    "AZURE_AUDIENCE",
    "DEFAULT_AUTHORITY_HOST",
    "DEFAULT_TOKEN_LIFETIME",
    "MAX_TOKEN_LIFETIME",
    "MIN_TOKEN_LIFETIME",
    "IssuedToken",
    "WorkloadIdentity",
    "group_subject",
]

AZURE_AUDIENCE = "api://AzureADTokenExchange"  # what an Entra federated credential expects
AWS_AUDIENCE = "sts.amazonaws.com"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_TOKEN_LIFETIME = 600  # seconds: 10 minutes
MIN_TOKEN_LIFETIME = 60
MAX_TOKEN_LIFETIME = 3600  # 1 hour: the bound, and AWS's default web-identity maximum


def group_subject(group: str, runbook: str | None = None) -> str:
    """The ``sub`` of a group's tokens (``credo:group:tier1``), or of one runbook's."""
    subject = f"credo:group:{group}"
    return f"{subject}:runbook:{runbook}" if runbook else subject


@dataclass(frozen=True)
class WorkloadIdentity:
    """A worker group's cloud identity settings (``credo group set NAME --token-audience ...``).

    ``audiences``: the only audiences its jobs may get tokens for (Azure's, AWS's, a GCP
    workload identity provider's URI ``//iam.googleapis.com/projects/N/locations/global/
    workloadIdentityPools/POOL/providers/PROVIDER``). Empty: the group's jobs get no token.
    """

    audiences: tuple[str, ...] = ()
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME
    runbook_subjects: bool = False  # each runbook gets its own subject
    azure_tenant_id: str | None = None
    azure_client_id: str | None = None
    azure_authority_host: str = DEFAULT_AUTHORITY_HOST
    aws_role_arn: str | None = None
    gcp_audience: str | None = None  # the provider URI; also one of ``audiences``
    gcp_service_account: str | None = None  # to impersonate, if the pool grants it

    @property
    def enabled(self) -> bool:
        return bool(self.audiences)


@dataclass(frozen=True)
class IssuedToken:
    """A token minted for one job (or service) and one audience. The JWT never shows in a repr."""

    token: str = field(repr=False)
    subject: str
    audience: str
    expires_at: datetime
