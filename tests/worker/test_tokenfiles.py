"""A job's token files without a server: what each cloud's SDK finds, modes and owners, atomic
rewrites at half the lifetime, failed refreshes, removal with the job, no token in logs or reprs.

Tokens come from ``FakeIssuer`` (PyJWT and a key of the test's own) and are verified with PyJWT.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.fake_issuer import FakeIssuer

from credo.automation.identity import AWS_AUDIENCE, AZURE_AUDIENCE, WorkloadIdentity
from credo.errors import NotPermittedError, UnreachableError
from credo.gmsa.runas import local_account
from credo.worker.executor import JobSpec, claimed_jobs
from credo.worker.jobfiles import JobDirectory, RuntimeDirectory
from credo.worker.tokenfiles import JobTokens, identity_from_json, refresh_delay

GCP = "//iam.googleapis.com/projects/42/locations/global/workloadIdentityPools/credo/providers/tier1"
ALL = WorkloadIdentity(
    audiences=(AZURE_AUDIENCE, AWS_AUDIENCE, GCP),
    azure_tenant_id="11111111-2222-3333-4444-555555555555",
    azure_client_id="66666666-7777-8888-9999-000000000000",
    aws_role_arn="arn:aws:iam::123456789012:role/credo-tier1",
    gcp_audience=GCP,
    gcp_service_account="runner@proj.iam.gserviceaccount.com",
)
RUNNER = "credo-runner"


@pytest.fixture
def runtime() -> Iterator[RuntimeDirectory]:
    path = Path(tempfile.mkdtemp(prefix="credo-test-tokens-")) / "worker"
    yield RuntimeDirectory(path)
    shutil.rmtree(path.parent, ignore_errors=True)


@pytest.fixture
def job_dir(runtime: RuntimeDirectory, runner_user: str) -> Iterator[JobDirectory]:
    with runtime.job_directory(local_account(runner_user), private_group=True) as files:
        yield files


def test_environment_per_cloud_as_each_sdk_reads_it(job_dir: JobDirectory) -> None:
    issuer = FakeIssuer()
    with JobTokens(ALL, job_dir, "0f3c", issuer, environ={}) as tokens:
        env = tokens.start()
        d = job_dir.path
        assert env == {
            "AZURE_FEDERATED_TOKEN_FILE": f"{d}/azure-federated-token",
            "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com",
            "AZURE_TENANT_ID": ALL.azure_tenant_id,
            "AZURE_CLIENT_ID": ALL.azure_client_id,
            "AWS_WEB_IDENTITY_TOKEN_FILE": f"{d}/aws-web-identity-token",
            "AWS_ROLE_ARN": ALL.aws_role_arn,
            "AWS_ROLE_SESSION_NAME": "credo-job-0f3c",
            "GOOGLE_APPLICATION_CREDENTIALS": f"{d}/gcp-credentials.json",
        }
        for variable, audience in [
            ("AZURE_FEDERATED_TOKEN_FILE", AZURE_AUDIENCE),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", AWS_AUDIENCE),
        ]:
            claims = issuer.verify(Path(env[variable]).read_text(), audience)
            assert claims["sub"] == "credo:group:tier1"
        # google-auth's external_account (identity_pool) configuration, file source, text format.
        config = json.loads(Path(env["GOOGLE_APPLICATION_CREDENTIALS"]).read_text())
        assert config == {
            "type": "external_account",
            "audience": GCP,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "https://sts.googleapis.com/v1/token",
            "credential_source": {"file": f"{d}/gcp-subject-token", "format": {"type": "text"}},
            "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/"
            "serviceAccounts/runner@proj.iam.gserviceaccount.com:generateAccessToken",
        }
        issuer.verify(Path(config["credential_source"]["file"]).read_text(), GCP)
        assert sorted(issuer.calls) == sorted([(AZURE_AUDIENCE, False), (AWS_AUDIENCE, False), (GCP, False)])


def test_only_what_is_configured_and_the_overrides_from_the_worker(job_dir: JobDirectory) -> None:
    identity = WorkloadIdentity(
        audiences=(AWS_AUDIENCE, "api://AzureADTokenExchangeUSGov"), runbook_subjects=True
    )
    environ = {
        "CREDO_AZURE_AUTHORITY_HOST": "https://127.0.0.1:8443",
        "AWS_ENDPOINT_URL_STS": "https://127.0.0.1:8444",
        "REQUESTS_CA_BUNDLE": "/etc/credo/test-ca.pem",
        "SSL_CERT_FILE": "",  # set but empty: not passed
        "HOME": "/root",  # the worker's other variables stay out
    }
    issuer = FakeIssuer()
    with JobTokens(identity, job_dir, "7", issuer, environ=environ) as tokens:
        env = tokens.start()
    # No tenant, client or role configured: the file only (credo.runbook.token names the tenant).
    assert set(env) == {
        "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_SESSION_NAME", "AWS_ENDPOINT_URL_STS", "REQUESTS_CA_BUNDLE",
    }  # fmt: skip
    assert env["AZURE_AUTHORITY_HOST"] == "https://127.0.0.1:8443"
    assert env["AWS_ENDPOINT_URL_STS"] == "https://127.0.0.1:8444"
    claims = issuer.verify(
        Path(env["AZURE_FEDERATED_TOKEN_FILE"]).read_text(), "api://AzureADTokenExchangeUSGov"
    )
    assert claims["sub"] == "credo:group:tier1:runbook:hello"  # runbook_subjects asked for
    assert {runbook for _, runbook in issuer.calls} == {True}


def test_gcp_endpoint_overrides(job_dir: JobDirectory) -> None:
    identity = WorkloadIdentity(
        audiences=(GCP,), gcp_audience=GCP, gcp_service_account="sa@p.iam.gserviceaccount.com"
    )
    environ = {
        "CREDO_GCP_STS_URL": "https://127.0.0.1:9000/v1/token",
        "CREDO_GCP_IAM_URL": "https://127.0.0.1:9001/",
    }
    with JobTokens(identity, job_dir, "7", FakeIssuer(), environ=environ) as tokens:
        env = tokens.start()
    config = json.loads(Path(env["GOOGLE_APPLICATION_CREDENTIALS"]).read_text())
    assert config["token_url"] == "https://127.0.0.1:9000/v1/token"
    assert config["service_account_impersonation_url"] == (
        "https://127.0.0.1:9001/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken"
    )


def test_files_are_the_job_users_0600(job_dir: JobDirectory, runner_user: str) -> None:
    uid = pwd.getpwnam(runner_user).pw_uid
    with JobTokens(ALL, job_dir, "1", FakeIssuer(), environ={}) as tokens:
        tokens.start()
        names = sorted(os.listdir(job_dir.path))
        assert names == [
            "aws-web-identity-token",
            "azure-federated-token",
            "gcp-credentials.json",
            "gcp-subject-token",
        ]
        for name in names:
            info = (job_dir.path / name).lstat()
            assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600, name
            assert info.st_uid == uid, name


def test_rewritten_atomically_at_half_the_lifetime(job_dir: JobDirectory) -> None:
    issuer = FakeIssuer(lifetime=2.0)
    identity = WorkloadIdentity(audiences=(AZURE_AUDIENCE,))
    bad: list[str] = []
    seen: set[str] = set()
    stop = threading.Event()

    def reader(path: Path) -> None:
        # A reader at any moment finds a whole, valid, unexpired token (never a torn or empty one).
        while not stop.is_set():
            text = path.read_text()
            try:
                issuer.verify(text, AZURE_AUDIENCE)
            except Exception as exc:
                bad.append(f"{type(exc).__name__}: {exc}")
            seen.add(text)

    with JobTokens(identity, job_dir, "1", issuer, environ={}) as tokens:
        env = tokens.start()
        path = Path(env["AZURE_FEDERATED_TOKEN_FILE"])
        first_inode = path.stat().st_ino
        thread = threading.Thread(target=reader, args=(path,))
        thread.start()
        started = time.monotonic()
        while len(issuer.issued) < 2 and time.monotonic() - started < 5:
            time.sleep(0.05)
        took = time.monotonic() - started
        time.sleep(3.0)  # more than one whole lifetime: only refreshes keep it valid
        stop.set()
        thread.join()
        assert path.stat().st_ino != first_inode  # a new file renamed in, not rewritten in place
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert 0.7 < took < 1.6  # about half of 2 s
    assert not bad
    assert len(issuer.issued) >= 4 and len(seen) >= 3
    assert not [n for n in os.listdir(job_dir.path) if n.startswith(".")]  # no temporary left


def test_failed_refresh_keeps_the_old_file_and_retries(
    job_dir: JobDirectory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    issuer = FakeIssuer(lifetime=4.0)
    warnings: list[str] = []
    identity = WorkloadIdentity(audiences=(AWS_AUDIENCE,))
    with JobTokens(identity, job_dir, "1", issuer, environ={}, warn=warnings.append) as tokens:
        env = tokens.start()
        path = Path(env["AWS_WEB_IDENTITY_TOKEN_FILE"])
        first = path.read_text()
        issuer.failing = True
        time.sleep(3.2)  # refresh due at 2 s, retried after 1 s
        assert path.read_text() == first  # kept
        calls = len(issuer.calls)
        assert calls >= 3, issuer.calls
        issuer.failing = False
        deadline = time.monotonic() + 3
        while path.read_text() == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.read_text() != first
        issuer.verify(path.read_text(), AWS_AUDIENCE)
    assert warnings and all("refreshing the job's token for sts.amazonaws.com failed" in w for w in warnings)
    assert "does not answer" in warnings[0] and "valid until" in warnings[0]
    assert any("failed" in r.getMessage() for r in caplog.records)
    logged = "\n".join(r.getMessage() for r in caplog.records) + "".join(warnings)
    assert issuer.issued and not any(token in logged for token in issuer.issued)


def test_the_first_token_refused_fails_the_job_naming_the_audience(job_dir: JobDirectory) -> None:
    def refuse(audience: str, runbook_subject: bool) -> object:
        raise NotPermittedError("POST /jobs/1/token: 403 audience not allowed for this group")

    tokens = JobTokens(ALL, job_dir, "1", refuse, environ={})  # type: ignore[arg-type]
    with (
        tokens,
        pytest.raises(NotPermittedError, match=f"cannot get the job's token for {AZURE_AUDIENCE}: POST"),
    ):
        tokens.start()


def test_files_go_with_the_job_and_nothing_is_written_after_close(runtime: RuntimeDirectory) -> None:
    issuer = FakeIssuer(lifetime=2.0)
    release = threading.Event()
    entered = threading.Event()

    def slow(audience: str, runbook_subject: bool) -> object:
        if issuer.calls:
            entered.set()
            release.wait(10)  # the server answers after the job ended
        return issuer(audience, runbook_subject)

    identity = WorkloadIdentity(audiences=(AZURE_AUDIENCE,))
    with runtime.job_directory(local_account(None), private_group=False) as files:
        tokens = JobTokens(identity, files, "1", slow, environ={})  # type: ignore[arg-type]
        env = tokens.start()
        path = Path(env["AZURE_FEDERATED_TOKEN_FILE"])
        assert entered.wait(3)
        thread = tokens._thread
        assert thread is not None
        began = time.monotonic()
        tokens.close()
        assert time.monotonic() - began < 2  # does not wait for the server
        first = path.read_text()
    assert not files.path.exists()
    release.set()
    time.sleep(0.3)
    assert not files.path.exists() and not path.exists()
    assert first == issuer.issued[0]
    thread.join(2)
    assert not thread.is_alive()  # the late answer ended the refresher, with no write


def test_no_token_in_reprs(job_dir: JobDirectory) -> None:
    issuer = FakeIssuer()
    with JobTokens(ALL, job_dir, "1", issuer, environ={}) as tokens:
        tokens.start()
        texts = [repr(tokens), repr(issuer.mint(AWS_AUDIENCE)), str(issuer.mint(AWS_AUDIENCE))]
    assert not any(token in text for token in issuer.issued for text in texts)


def test_refresh_delay_is_half_the_lifetime_left() -> None:
    assert refresh_delay(600) == 300
    assert refresh_delay(0.5) == 1.0 and refresh_delay(-10) == 1.0


def test_identity_from_the_claim_answer() -> None:
    data = {
        "audiences": [AZURE_AUDIENCE], "token_lifetime": 900, "runbook_subjects": False,
        "azure_tenant_id": "t", "azure_client_id": "c", "some_future_field": 1,
    }  # fmt: skip
    identity = identity_from_json(data)
    assert identity == WorkloadIdentity(
        audiences=(AZURE_AUDIENCE,), token_lifetime=900, azure_tenant_id="t", azure_client_id="c"
    )
    assert identity_from_json(None) is None and identity_from_json({"audiences": []}) is None
    job = {
        "job_id": "j1", "lease_token": 3, "attempt": 1, "runbook": "hello", "type": "python3",
        "content_hash": "sha256:00", "parameters": {}, "timeout_seconds": 60,
    }  # fmt: skip
    jobs = claimed_jobs({"jobs": [job, dict(job, job_id="j2")], "identity": data})
    assert [JobSpec.from_claim(j).identity for j in jobs] == [identity, identity]
    assert JobSpec.from_claim(job).identity is None
    assert claimed_jobs({"jobs": [job]}) == [job] and claimed_jobs({"identity": data}) == []


def test_unreachable_first_token_is_the_servers_error(job_dir: JobDirectory) -> None:
    issuer = FakeIssuer(failing=True)
    tokens = JobTokens(WorkloadIdentity(audiences=(AWS_AUDIENCE,)), job_dir, "1", issuer, environ={})
    with tokens, pytest.raises(UnreachableError, match=r"sts\.amazonaws\.com: the server"):
        tokens.start()
