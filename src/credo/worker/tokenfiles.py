"""A job's cloud tokens: files in its private directory and each SDK's environment variables.

When a worker group has a workload identity (``credo group set NAME --token-audience ...``), each
job gets, for every audience its group lists, a token minted by the server for that job
(``ServerClient.job_token``), written where the cloud's own SDK looks for it, so unmodified
clients work (../shared/reference/workload-identity.md §5):

- Azure (``api://AzureADTokenExchange``): ``AZURE_FEDERATED_TOKEN_FILE``, ``AZURE_CLIENT_ID``,
  ``AZURE_TENANT_ID``, ``AZURE_AUTHORITY_HOST`` (azure-identity's WorkloadIdentityCredential and
  DefaultAzureCredential; ``credo.runbook.token`` for other tenants).
- AWS (``sts.amazonaws.com``): ``AWS_WEB_IDENTITY_TOKEN_FILE``, ``AWS_ROLE_ARN``,
  ``AWS_ROLE_SESSION_NAME`` (botocore's AssumeRoleWithWebIdentity provider).
- GCP (the group's ``gcp_audience``, a workload identity provider URI): an external-account
  credential file (google-auth's ``identity_pool`` credentials) in
  ``GOOGLE_APPLICATION_CREDENTIALS`` whose ``credential_source`` is the token file.

Every file is 0600 and belongs to the job's user, in the job's directory, so it goes when the job
ends (``credo.worker.jobfiles``). A token is rewritten atomically (a new file renamed over the old
one: a reader sees the old token or the new one, never half of one) at about half its lifetime
while the job runs: azure-identity re-reads the file at most every 10 minutes and botocore when
its credentials expire, so a long job always finds a valid token there. A failed refresh keeps
the old file and is retried with backoff; the job's warning stream and the worker's log say so,
never with the token.

Endpoint overrides, read from the worker's own environment and passed to jobs only when set (the
tests' local HTTPS fixtures play the clouds): ``CREDO_AZURE_AUTHORITY_HOST`` (instead of the
group's authority host), ``AWS_ENDPOINT_URL_STS``, ``CREDO_GCP_STS_URL`` (the credential file's
``token_url``), ``CREDO_GCP_IAM_URL`` (the base URL of IAM credentials, for service account
impersonation), and the CA bundles ``REQUESTS_CA_BUNDLE``, ``AWS_CA_BUNDLE``, ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from credo.automation.identity import AWS_AUDIENCE, AZURE_AUDIENCE, IssuedToken, WorkloadIdentity
from credo.errors import CredoError
from credo.worker.jobfiles import JobDirectory, write_private_file

__all__ = [
    "GCP_IAM_URL",
    "GCP_STS_URL",
    "PASSED_THROUGH",
    "JobTokens",
    "TokenSource",
    "identity_from_json",
    "refresh_delay",
]

log = logging.getLogger(__name__)

# (audience, runbook_subject) -> a token for the running job. The worker's is a thin adapter
# over ``ServerClient.job_token``; tests give a function that mints with a key of their own.
TokenSource = Callable[[str, bool], IssuedToken]

GCP_STS_URL = "https://sts.googleapis.com/v1/token"
GCP_IAM_URL = "https://iamcredentials.googleapis.com"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105 (a type name, RFC 8693 §3)
# Passed from the worker's environment to a job that gets tokens, only when set.
PASSED_THROUGH = ("AWS_ENDPOINT_URL_STS", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE", "SSL_CERT_FILE")
# Never refresh more often than this, however short a token's life (a clock far off, a server
# handing out tokens about to expire): the server's minimum lifetime is 60 s.
MIN_REFRESH_SECONDS = 1.0
RETRY_BASE_SECONDS = 1.0
RETRY_CAP_SECONDS = 30.0

AZURE_FILE = "azure-federated-token"
AWS_FILE = "aws-web-identity-token"
GCP_FILE = "gcp-subject-token"
GCP_CREDENTIALS = "gcp-credentials.json"


def identity_from_json(data: Mapping[str, Any] | None) -> WorkloadIdentity | None:
    """The claim answer's ``identity`` (WorkloadIdentity as JSON, tuples as lists), or None.

    Keys this worker does not know are ignored: a newer server may send more.
    """
    if not data:
        return None
    known = WorkloadIdentity.__dataclass_fields__
    fields = {k: v for k, v in data.items() if k in known}
    if "audiences" in fields:
        fields["audiences"] = tuple(fields["audiences"] or ())
    identity = WorkloadIdentity(**fields)
    return identity if identity.enabled else None


def refresh_delay(lifetime_left: float) -> float:
    """Seconds until a token with ``lifetime_left`` seconds to live is fetched again: half of it
    (the kubelet's and SPIRE's rule), at least MIN_REFRESH_SECONDS."""
    return max(MIN_REFRESH_SECONDS, lifetime_left / 2)


def _is_azure(audience: str) -> bool:
    # Public cloud, and the sovereign clouds' ...USGov / ...China variants (reference §1.3).
    return audience.startswith(AZURE_AUDIENCE)


@dataclass
class _Slot:
    """One audience's token file and its schedule (monotonic seconds)."""

    audience: str
    path: Path
    due: float = 0.0
    expires: float = 0.0
    expires_at: datetime | None = None
    failures: int = 0
    expired_said: bool = False


class JobTokens:
    """A running job's token files: written by ``start``, kept fresh by a thread, stopped by ``close``.

    The files themselves go with the job's directory; ``close`` only stops the refresher (before
    the directory is removed, so it never writes into a directory being deleted).
    """

    def __init__(
        self,
        identity: WorkloadIdentity,
        directory: JobDirectory,
        job_id: str,
        source: TokenSource,
        *,
        environ: Mapping[str, str] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.identity = identity
        self.directory = directory
        self.job_id = job_id
        self.source = source
        self.environ = os.environ if environ is None else environ
        self.warn = warn
        self._slots: list[_Slot] = []
        self._stop = threading.Event()
        # Held while a file is written: once close() holds it, nothing writes any more.
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"JobTokens(job={self.job_id}, audiences={[s.audience for s in self._slots]})"

    # -- what the job gets --------------------------------------------------------------------------

    def start(self) -> dict[str, str]:
        """Fetch and write every token, start the refresher; the job's environment variables.

        A token that cannot be had fails the job (the error says which audience): a runbook
        that expects a cloud identity would otherwise fail later with an SDK's less clear error.
        """
        identity, env = self.identity, {}
        path = self.directory.path
        azure = next((a for a in identity.audiences if _is_azure(a)), None)
        if azure is not None:
            self._slots.append(_Slot(azure, path / AZURE_FILE))
            env["AZURE_FEDERATED_TOKEN_FILE"] = str(path / AZURE_FILE)
            env["AZURE_AUTHORITY_HOST"] = self.environ.get("CREDO_AZURE_AUTHORITY_HOST") or (
                identity.azure_authority_host
            )
            if identity.azure_tenant_id:
                env["AZURE_TENANT_ID"] = identity.azure_tenant_id
            if identity.azure_client_id:
                env["AZURE_CLIENT_ID"] = identity.azure_client_id
        if AWS_AUDIENCE in identity.audiences:
            self._slots.append(_Slot(AWS_AUDIENCE, path / AWS_FILE))
            env["AWS_WEB_IDENTITY_TOKEN_FILE"] = str(path / AWS_FILE)
            env["AWS_ROLE_SESSION_NAME"] = f"credo-job-{self.job_id}"
            if identity.aws_role_arn:
                env["AWS_ROLE_ARN"] = identity.aws_role_arn
        gcp = identity.gcp_audience
        if gcp and gcp in identity.audiences:
            self._slots.append(_Slot(gcp, path / GCP_FILE))
            config = self._gcp_credentials(gcp, path / GCP_FILE)
            self.directory.write(GCP_CREDENTIALS, json.dumps(config, indent=2).encode())
            env["GOOGLE_APPLICATION_CREDENTIALS"] = str(path / GCP_CREDENTIALS)
        if not self._slots:
            return {}
        for name in PASSED_THROUGH:
            if self.environ.get(name):
                env[name] = self.environ[name]
        for slot in self._slots:
            try:
                self._fetch(slot)
            except CredoError as exc:  # the job does not start
                raise type(exc)(
                    f"cannot get the job's token for {slot.audience}: {exc.message}",
                    hint=exc.hint or "see the group's workload identity: credo group show GROUP",
                ) from exc
        self._thread = threading.Thread(
            target=self._refresh_loop, name=f"tokens-{self.job_id[:8]}", daemon=True
        )
        self._thread.start()
        return env

    def _gcp_credentials(self, audience: str, token_file: Path) -> dict[str, Any]:
        """google-auth's external-account configuration (``type: external_account``), the shape
        ``gcloud iam workload-identity-pools create-cred-config`` writes for a file source."""
        config: dict[str, Any] = {
            "type": "external_account",
            "audience": audience,
            "subject_token_type": JWT_TOKEN_TYPE,
            "token_url": self.environ.get("CREDO_GCP_STS_URL") or GCP_STS_URL,
            "credential_source": {"file": str(token_file), "format": {"type": "text"}},
        }
        account = self.identity.gcp_service_account
        if account:
            base = (self.environ.get("CREDO_GCP_IAM_URL") or GCP_IAM_URL).rstrip("/")
            config["service_account_impersonation_url"] = (
                f"{base}/v1/projects/-/serviceAccounts/{account}:generateAccessToken"
            )
        return config

    # -- fetching and writing -------------------------------------------------------------------------

    def _fetch(self, slot: _Slot) -> None:
        issued = self.source(slot.audience, self.identity.runbook_subjects)
        left = (issued.expires_at - datetime.now(UTC)).total_seconds()
        with self._write_lock:
            if self._stop.is_set():
                return  # the job ended while the server answered: its directory is going
            self._write(slot.path, issued.token.encode())
        now = time.monotonic()
        slot.expires, slot.expires_at = now + left, issued.expires_at
        slot.due = now + refresh_delay(left)
        slot.failures, slot.expired_said = 0, False
        log.info(
            "job %s: token for %s (subject %s) written, valid until %s",
            self.job_id, slot.audience, issued.subject, issued.expires_at.isoformat(),
        )  # fmt: skip

    def _write(self, path: Path, data: bytes) -> None:
        """Write a new file next to ``path`` (exclusive create, its owner and mode set before the
        token goes in) and rename it over ``path``: rename(2) is atomic within a directory."""
        account = self.directory.account
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
        try:
            write_private_file(tmp, data, account.uid, account.gid)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _refresh_loop(self) -> None:
        while True:
            wait = min(slot.due for slot in self._slots) - time.monotonic()
            # An Event wait, not time.sleep: close() ends it at once.
            if self._stop.wait(max(0.0, wait)):
                return
            for slot in self._slots:
                if self._stop.is_set():
                    return
                if slot.due <= time.monotonic():
                    self._refresh(slot)

    def _refresh(self, slot: _Slot) -> None:
        try:
            self._fetch(slot)
            return
        except CredoError as exc:
            reason = exc.message
        except OSError as exc:  # the job removed or replaced the file's place: try again later
            reason = f"cannot write {slot.path.name}: {exc.strerror}"
        except Exception as exc:  # a bug must not end the refresher: the job still runs
            log.exception("job %s: refreshing the token for %s failed", self.job_id, slot.audience)
            reason = f"internal error: {type(exc).__name__}"
        slot.failures += 1
        now = time.monotonic()
        retry = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (slot.failures - 1))
        if now < slot.expires:
            # Keep a try just before the old token expires.
            retry = min(retry, max(MIN_REFRESH_SECONDS, (slot.expires - now) / 2))
            left = f"the current one is valid until {slot.expires_at.isoformat() if slot.expires_at else '?'}"
        else:
            left = "the current one has expired"
        slot.due = now + retry
        message = (
            f"credo: refreshing the job's token for {slot.audience} failed ({reason}); {left}; "
            f"retrying in {retry:.0f} s"
        )
        if now < slot.expires or not slot.expired_said:
            slot.expired_said = now >= slot.expires
            log.warning("job %s: %s", self.job_id, message.removeprefix("credo: "))
            if self.warn is not None:
                self.warn(message + "\n")

    # -- the end --------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop refreshing. Returns at once even while a request to the server is pending: that
        answer is dropped, and no file is written after this returns."""
        self._stop.set()
        with self._write_lock:
            pass
        if self._thread is not None:
            self._thread.join(timeout=0.5)
            self._thread = None

    def __enter__(self) -> JobTokens:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
