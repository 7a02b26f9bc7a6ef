"""Checking a worker group's workload identity settings (``credo group set NAME ...``).

Each refusal is one line naming the field, with a hint showing the form the cloud expects:
the clouds accept a wrong value when the credential is created and fail only at the exchange,
minutes later and far from here (reference §1.3: a wrong subject fails as AADSTS700213).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, replace
from typing import Any
from urllib.parse import urlsplit

from credo.automation.identity import (
    DEFAULT_AUTHORITY_HOST,
    MAX_TOKEN_LIFETIME,
    MIN_TOKEN_LIFETIME,
    WorkloadIdentity,
)
from credo.errors import InputError

__all__ = ["MAX_AUDIENCES", "SettingError", "identity_from_json", "identity_json", "validate_identity"]

MAX_AUDIENCES = 8
_MAX_AUDIENCE_LENGTH = 600  # Entra's limit for a federated credential's fields (reference §1.3)
# arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME (IAM identifiers: role names are 1-64 of [\w+=,.@-]).
_ARN_RE = re.compile(
    r"^arn:aws(?:-cn|-us-gov|-iso|-iso-b)?:iam::\d{12}:role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}$"
)
# The provider's canonical resource name, as google-auth's external account "audience" wants it.
_GCP_RE = re.compile(
    r"^//iam\.googleapis\.com/projects/\d{1,20}/locations/global/workloadIdentityPools/"
    r"[a-z0-9-]{4,32}/providers/[a-z0-9-]{4,32}$"
)
_GCP_SA_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\.iam\.gserviceaccount\.com$")


class SettingError(InputError):
    """A bad identity setting; ``field`` names it (the API's problem document carries it)."""

    def __init__(self, field: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"{field}: {message}", hint=hint)
        self.field = field


def _guid(field: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise SettingError(
            field,
            f"{value!r} is not a GUID",
            hint="Entra ids are GUIDs: 8-4-4-4-12 hex digits (az account show --query tenantId)",
        ) from None
    if str(parsed) != value.lower() or len(value) != 36:
        raise SettingError(field, f"{value!r} is not a GUID in its 8-4-4-4-12 form")
    return value.lower()


def _audience(value: str) -> str:
    if not value or len(value) > _MAX_AUDIENCE_LENGTH or any(c.isspace() or ord(c) < 0x20 for c in value):
        raise SettingError(
            "audiences",
            f"invalid audience {value!r}",
            hint="e.g. api://AzureADTokenExchange, sts.amazonaws.com, or a GCP provider "
            "//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/providers/P",
        )
    return value


def validate_identity(identity: WorkloadIdentity) -> WorkloadIdentity:
    """The settings, checked and normalised (GUIDs lower case, the GCP audience listed)."""
    audiences = [_audience(a) for a in identity.audiences]
    if not MIN_TOKEN_LIFETIME <= identity.token_lifetime <= MAX_TOKEN_LIFETIME:
        raise SettingError(
            "token_lifetime",
            f"{identity.token_lifetime} s is outside {MIN_TOKEN_LIFETIME}..{MAX_TOKEN_LIFETIME}",
            hint="tokens live 60 s to 1 h (default 600); the worker rewrites the file at half of it",
        )
    tenant = _guid("azure_tenant_id", identity.azure_tenant_id)
    client = _guid("azure_client_id", identity.azure_client_id)
    if (tenant is None) != (client is None):
        raise SettingError(
            "azure_tenant_id" if tenant is None else "azure_client_id",
            "Azure needs both the tenant id and the app's client id",
            hint="give --azure-tenant-id (the target tenant) and --azure-client-id (the app registration)",
        )
    authority = identity.azure_authority_host
    split = urlsplit(authority)
    if split.scheme != "https" or not split.hostname or split.path not in ("", "/") or split.query:
        raise SettingError(
            "azure_authority_host",
            f"{authority!r} is not an https host URL",
            hint=f"e.g. {DEFAULT_AUTHORITY_HOST} (or login.microsoftonline.us, login.chinacloudapi.cn)",
        )
    if identity.aws_role_arn is not None and not _ARN_RE.match(identity.aws_role_arn):
        raise SettingError(
            "aws_role_arn",
            f"{identity.aws_role_arn!r} is not an IAM role ARN",
            hint="arn:aws:iam::123456789012:role/NAME",
        )
    if identity.gcp_audience is not None:
        if not _GCP_RE.match(identity.gcp_audience):
            raise SettingError(
                "gcp_audience",
                f"{identity.gcp_audience!r} is not a workload identity provider",
                hint="//iam.googleapis.com/projects/PROJECT_NUMBER/locations/global/"
                "workloadIdentityPools/POOL/providers/PROVIDER (gcloud iam workload-identity-pools "
                "providers describe P --format='value(name)', prefixed with //iam.googleapis.com/)",
            )
        if identity.gcp_audience not in audiences:
            audiences.append(identity.gcp_audience)  # it is what the token's aud must be
    if identity.gcp_service_account is not None:
        if not _GCP_SA_RE.match(identity.gcp_service_account):
            raise SettingError(
                "gcp_service_account",
                f"{identity.gcp_service_account!r} is not a service account email",
                hint="NAME@PROJECT.iam.gserviceaccount.com",
            )
        if identity.gcp_audience is None:
            raise SettingError("gcp_service_account", "impersonation needs --gcp-audience too")
    audiences = list(dict.fromkeys(audiences))
    if len(audiences) > MAX_AUDIENCES:
        raise SettingError("audiences", f"{len(audiences)} audiences; at most {MAX_AUDIENCES}")
    return replace(identity, audiences=tuple(audiences), azure_tenant_id=tenant, azure_client_id=client)


def identity_json(identity: WorkloadIdentity) -> dict[str, Any]:
    """The settings as JSON (contract §3: the dataclass's fields, tuples as lists)."""
    data = asdict(identity)
    data["audiences"] = list(identity.audiences)
    return data


def identity_from_json(data: dict[str, Any]) -> WorkloadIdentity:
    known = {k: v for k, v in data.items() if k in WorkloadIdentity.__dataclass_fields__}
    known["audiences"] = tuple(known.get("audiences") or ())
    return WorkloadIdentity(**known)
