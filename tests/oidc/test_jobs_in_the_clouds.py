"""Issue 14 end to end: a real `credo server` as the issuer, a real `credo worker` (WORKER1$) running
a job as svcauto$ (local user credo-runner), and in that job the unmodified SDKs (azure-identity's
WorkloadIdentityCredential and DefaultAzureCredential, boto3, google-auth) exchanging the job's
token at the clouds' fixtures (tests/support/clouds.py: they verify with PyJWT against the JWKS
they fetch over HTTPS from where `credo oidc publish` put the documents).

The job outlives its token's refresh point, and the issuer's key is rotated while it runs: the
refreshed token file is signed with the new key, the clouds (which cache the JWKS for an hour
here) still verify it because the key was published ahead of its use, and no exchange fails.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest

from credo.lab import Lab, LabSettings
from tests.clouds.conftest import AWS_AUDIENCE, AZURE_AUDIENCE
from tests.server.conftest import RUNNER, Server, _make_server, create_group, create_runbook, start_job
from tests.support.clouds import CloudFixtures, EntraApp, FederatedCredential, GcpProvider
from tests.support.identity import CREDO, identity_env, run

pytestmark = pytest.mark.lab

GROUP = "cloudjobs"
SUBJECT = f"credo:group:{GROUP}"
RUNBOOK = r"""#!/bin/bash
# Runs as credo-runner with svcauto$'s ticket; the SDKs are unmodified, in the jobs' SDK venv.
set -euo pipefail
exchange() {
SDK_PYTHON - "$1" <<'PY'
import hashlib, json, sys
import boto3, google.auth
from google.auth.transport.requests import Request
from azure.identity import DefaultAzureCredential, WorkloadIdentityCredential
out = {"phase": sys.argv[1]}
with open(__import__("os").environ["AZURE_FEDERATED_TOKEN_FILE"]) as f:
    out["token_sha"] = hashlib.sha256(f.read().encode()).hexdigest()
out["azure"] = bool(WorkloadIdentityCredential().get_token("https://graph.microsoft.com/.default").token)
out["azure_default"] = bool(DefaultAzureCredential().get_token("https://graph.microsoft.com/.default").token)
out["aws"] = bool(boto3.Session().get_credentials().get_frozen_credentials().secret_key)
credentials, _ = google.auth.default()
credentials = credentials.with_scopes(["https://www.googleapis.com/auth/cloud-platform"])
credentials.refresh(Request())
out["gcp"] = bool(credentials.token)
print(json.dumps(out), flush=True)
PY
}
exchange first
first=$(sha256sum < "$AZURE_FEDERATED_TOKEN_FILE")
for _ in $(seq 1 80); do  # the worker rewrites the file at about half of its 60 s lifetime
  sleep 1
  [ "$(sha256sum < "$AZURE_FEDERATED_TOKEN_FILE")" != "$first" ] && break
done
exchange refreshed
"""


def _issuer_setup(fixtures: CloudFixtures, issuer: str) -> dict[str, str]:
    tenant, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    fixtures.entra.add_app(
        EntraApp(client_id=client_id, home_tenant=str(uuid.uuid4()), tenants={tenant},
                 federated_credentials=[FederatedCredential(issuer=issuer, subject=SUBJECT, audience=AZURE_AUDIENCE)],
                 roles={"https://graph.microsoft.com": ["User.Read.All"]})
    )  # fmt: skip
    provider = fixtures.aws.add_oidc_provider(issuer, [AWS_AUDIENCE])
    role = fixtures.aws.add_role(f"credo-{GROUP}", provider, sub=SUBJECT)
    gcp = fixtures.gcp.add_provider(
        GcpProvider(project_number="210987654321", pool="credo", provider=GROUP, issuer_uri=issuer,
                    attribute_condition=lambda claims: claims["sub"] == SUBJECT,
                    condition_text=f"assertion.sub == '{SUBJECT}'")
    )  # fmt: skip
    return {"tenant": tenant, "client_id": client_id, "role_arn": str(role.arn), "gcp_audience": gcp.audience}


def test_sdks_in_a_job_exchange_its_tokens_across_refresh_and_key_rotation(
    tmp_path: Path,
    lab: Lab,
    lab_settings: LabSettings,
    server_keytab: Path,
    runner_user: str,
    clouds: CloudFixtures,
    sdk_python: Path,
    start_worker: Callable[..., subprocess.Popen[bytes]],
) -> None:
    issuer = f"{clouds.issuer_host.url}/{GROUP}-issuer"
    published = clouds.issuer_dir / f"{GROUP}-issuer"
    for fixture in (clouds.entra, clouds.aws, clouds.gcp):
        fixture.verifier.jwks_cache_seconds = 3600  # a cloud caches the JWKS: rotation must publish ahead
    ids = _issuer_setup(clouds, issuer)
    server: Server = _make_server(tmp_path, None, server_keytab, lab_settings)
    server.extra_args = ("--oidc-issuer", issuer)
    server.start()
    try:
        cli_env = identity_env(lab, None, CREDO_SERVER_DIR=str(server.data_dir), CREDO_SERVER_URL=server.url,
                               CREDO_TOKEN=server.token)  # fmt: skip
        run([*CREDO, "oidc", "publish", "--out", published], cli_env, check=True)
        create_group(server, GROUP, ["worker1"], lab_settings.realm)
        run([*CREDO, "group", "set", GROUP, "--token-audience", AZURE_AUDIENCE, "--token-audience", AWS_AUDIENCE,
             "--gcp-audience", ids["gcp_audience"], "--azure-tenant-id", ids["tenant"],
             "--azure-client-id", ids["client_id"], "--aws-role-arn", ids["role_arn"],
             "--token-lifetime", "60"], cli_env, check=True)  # fmt: skip
        create_runbook(server, "clouds", RUNBOOK.replace("SDK_PYTHON", str(sdk_python)), type_="bash")
        start_worker(server, "worker1", GROUP, slots=1, env=clouds.worker_environment())
        job = start_job(server, "clouds", GROUP)

        def output() -> list[dict[str, Any]]:
            page = server.api(
                "GET", f"/jobs/{job['id']}/output", params={"stream": "output", "after": 0}
            ).json()
            text = "".join(c["text"] for c in page["chunks"])
            return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

        deadline = time.monotonic() + 60
        while not output():
            state = server.api("GET", f"/jobs/{job['id']}").json()["state"]
            assert state in ("New", "Queued", "Running") and time.monotonic() < deadline, server.api(
                "GET", f"/jobs/{job['id']}/output"
            ).text
            time.sleep(0.5)
        rotated = run(
            [*CREDO, "oidc", "rotate", "--force", "--out", published, "--json"], cli_env, check=True
        )
        assert rotated.returncode == 0

        deadline = time.monotonic() + 150
        while (state := server.api("GET", f"/jobs/{job['id']}").json()["state"]) not in (
            "Completed",
            "Failed",
        ):
            assert time.monotonic() < deadline, state
            time.sleep(1)
        results = output()
        assert state == "Completed", server.api("GET", f"/jobs/{job['id']}/output").text
        assert [r["phase"] for r in results] == ["first", "refreshed"]
        for result in results:
            assert result["azure"] and result["azure_default"] and result["aws"] and result["gcp"], result
        assert results[0]["token_sha"] != results[1]["token_sha"]  # the file was rewritten

        exchanges = [e for f in (clouds.entra, clouds.aws, clouds.gcp) for e in f.exchanges
                     if e.claims and e.claims.get("sub") == SUBJECT]  # fmt: skip
        failed = [e for f in (clouds.entra, clouds.aws, clouds.gcp) for e in f.exchanges
                  if not e.ok and ids["client_id"] in json.dumps(e.params)]  # fmt: skip
        assert exchanges and not failed, failed
        claims = exchanges[-1].claims
        assert claims is not None
        assert claims["iss"] == issuer and claims["credo"]["group"] == GROUP
        assert claims["credo"]["job_id"] == job["id"] and claims["credo"]["gmsa_sid"].startswith("S-1-5-21-")
        assert claims["exp"] - claims["iat"] == 60
        # No token anywhere credo keeps things: server log, worker log, job output, database.
        tokens = {e.params.get("client_assertion") or e.params.get("WebIdentityToken")
                  or e.params.get("subject_token") for e in exchanges}  # fmt: skip
        tokens.discard(None)
        assert tokens
        kids = {pyjwt.get_unverified_header(token)["kid"] for token in tokens if token}
        assert len(kids) == 2, "the refreshed token is signed with the key published ahead of it"
        database = b"".join(p.read_bytes() for p in server.data_dir.rglob("*.db*"))
        logs = server.log.read_text() + "".join(p.read_text() for p in tmp_path.glob("worker-*.log"))
        job_output = server.api("GET", f"/jobs/{job['id']}/output").text
        for token in tokens:
            assert token not in logs and token not in job_output and token.encode() not in database
            assert hashlib.sha256(token.encode()).hexdigest() not in logs
        assert runner_user == RUNNER
    finally:
        server.stop()
