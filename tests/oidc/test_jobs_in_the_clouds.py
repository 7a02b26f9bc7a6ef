"""Issue 14 end to end: a real `credo server` as the issuer, a real `credo worker` (WORKER1$) running
a job as svcauto$ (local user credo-runner), and in that job the unmodified SDKs (azure-identity's
WorkloadIdentityCredential and DefaultAzureCredential, boto3, google-auth) exchanging the job's
token at the clouds' fixtures (tests/support/clouds.py: they verify with PyJWT against the JWKS
they fetch over HTTPS from where `credo oidc publish` put the documents).

The job outlives its first token (60 s, the shortest lifetime the server allows) and the issuer's
key is rotated while it runs: the refreshed token file is signed with the new key, the clouds
(which cache the JWKS for an hour here) still verify it because the key was published ahead of
its use, and every SDK exchanges again after the first token's exp. Not one request is refused at
any of the three clouds (every answer counted, so a botocore retry cannot hide a refusal). While
it runs, no process's argv holds a token. A second runbook that asks for its own subject gets
credo:group:G:runbook:R; the first keeps the group's. The gMSA SID claim is svcauto$'s objectSid
as samba-tool reads it.
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
# Each exchange is a new process, so no SDK answers from a cache: each reads the file afresh.
set -euo pipefail
exchange() {
SDK_PYTHON - "$1" <<'PY'
import base64, hashlib, json, os, sys, time
import boto3, google.auth
from google.auth.transport.requests import Request
from azure.identity import DefaultAzureCredential, WorkloadIdentityCredential
out = {"phase": sys.argv[1], "now": time.time()}
with open(os.environ["AZURE_FEDERATED_TOKEN_FILE"]) as f:
    token = f.read()
out["token_sha"] = hashlib.sha256(token.encode()).hexdigest()
out["exp"] = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["exp"]
out["azure"] = bool(WorkloadIdentityCredential().get_token("https://graph.microsoft.com/.default").token)
out["azure_default"] = bool(DefaultAzureCredential().get_token("https://graph.microsoft.com/.default").token)
out["aws"] = bool(boto3.Session().get_credentials().get_frozen_credentials().secret_key)
credentials, _ = google.auth.default()
credentials = credentials.with_scopes(["https://www.googleapis.com/auth/cloud-platform"])
credentials.refresh(Request())
out["gcp"] = bool(credentials.token)
if out["phase"] == "first":  # credo's helper, as a python runbook uses it (on the job's PYTHONPATH)
    from credo import runbook
    access = runbook.token(tenant_id=os.environ["AZURE_TENANT_ID"], client_id=os.environ["AZURE_CLIENT_ID"],
                           scope="https://graph.microsoft.com/.default")
    out["runbook_token"] = access.count(".") == 2
print(json.dumps(out), flush=True)
PY
}
exchange first
first=$(sha256sum < "$AZURE_FEDERATED_TOKEN_FILE")
first_exp=$(SDK_PYTHON -c 'import base64, json, os; t = open(os.environ["AZURE_FEDERATED_TOKEN_FILE"]).read(); print(json.loads(base64.urlsafe_b64decode(t.split(".")[1] + "=="))["exp"])')
for _ in $(seq 1 80); do  # the worker rewrites the file at about half of its 60 s lifetime
  sleep 1
  [ "$(sha256sum < "$AZURE_FEDERATED_TOKEN_FILE")" != "$first" ] && break
done
exchange refreshed
# Past the first token's exp: only a file the worker kept rewriting can still be exchanged.
while [ "$(date +%s)" -le "$((first_exp + 1))" ]; do sleep 1; done
exchange after-exp
"""
# A runbook that asks for its own subject (credo runbook update --own-token-subject): one Azure and
# one AWS exchange, with the credential and the role that trust only that subject.
OWN_RUNBOOK = r"""#!/bin/bash
set -euo pipefail
SDK_PYTHON - <<'PY'
import json
import boto3
from azure.identity import WorkloadIdentityCredential
out = {"phase": "own"}
out["azure"] = bool(WorkloadIdentityCredential().get_token("https://graph.microsoft.com/.default").token)
out["aws"] = bool(boto3.Session().get_credentials().get_frozen_credentials().secret_key)
print(json.dumps(out), flush=True)
PY
"""


OWN = "own-subject"  # the runbook with its own subject
OWN_SUBJECT = f"{SUBJECT}:runbook:{OWN}"


def _issuer_setup(fixtures: CloudFixtures, issuer: str) -> dict[str, str]:
    tenant, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    fixtures.entra.add_app(
        EntraApp(client_id=client_id, home_tenant=str(uuid.uuid4()), tenants={tenant},
                 federated_credentials=[FederatedCredential(issuer=issuer, subject=SUBJECT, audience=AZURE_AUDIENCE),
                                        FederatedCredential(issuer=issuer, subject=OWN_SUBJECT, name="own")],
                 roles={"https://graph.microsoft.com": ["User.Read.All"]})
    )  # fmt: skip
    provider = fixtures.aws.add_oidc_provider(issuer, [AWS_AUDIENCE])
    role = fixtures.aws.add_role(f"credo-{GROUP}", provider, sub=[SUBJECT, OWN_SUBJECT])
    gcp = fixtures.gcp.add_provider(
        GcpProvider(project_number="210987654321", pool="credo", provider=GROUP, issuer_uri=issuer,
                    attribute_condition=lambda claims: claims["sub"] == SUBJECT,
                    condition_text=f"assertion.sub == '{SUBJECT}'")
    )  # fmt: skip
    return {"tenant": tenant, "client_id": client_id, "role_arn": str(role.arn), "gcp_audience": gcp.audience}


def _gmsa_sid(lab: Lab) -> str:
    """svcauto$'s objectSid as Samba's own tool reads it from the DC's database (not credo's code)."""
    argv = ["samba-tool", "service-account", "view", "--name=svcauto$", "-H", str(lab.paths.sam_ldb),
            "-s", str(lab.paths.smb_conf)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, check=True)
    return str(json.loads(proc.stdout)["objectSid"])


def _argv_holding(tokens: set[str]) -> list[str]:
    """The pids whose command line contains one of ``tokens`` (all processes, any user)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes()
        except OSError:  # gone meanwhile
            continue
        if any(token.encode() in argv for token in tokens):
            found.append(cmdline.parent.name)
    return found


def test_sdks_in_a_job_exchange_its_tokens_across_refresh_expiry_and_key_rotation(
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
    fixtures = (clouds.entra, clouds.aws, clouds.gcp)
    for fixture in fixtures:
        fixture.verifier.jwks_cache_seconds = 3600  # a cloud caches the JWKS: rotation must publish ahead
    # The fixtures are the session's: count only this test's requests.
    seen = {fixture.cloud: (len(fixture.answered), len(fixture.exchanges)) for fixture in fixtures}
    ids = _issuer_setup(clouds, issuer)
    server: Server = _make_server(tmp_path, None, server_keytab, lab_settings)
    server.extra_args = ("--oidc-issuer", issuer)
    server.start()
    try:
        cli_env = identity_env(lab, None, CREDO_SERVER_DIR=str(server.data_dir), CREDO_SERVER_URL=server.url,
                               CREDO_TOKEN=server.token)  # fmt: skip
        run([*CREDO, "oidc", "publish", "--out", published], cli_env, check=True)
        create_group(server, GROUP, ["worker1"], lab_settings.realm)
        # 60 s: the shortest lifetime the server allows (MIN_TOKEN_LIFETIME), to outlive it quickly.
        run([*CREDO, "group", "set", GROUP, "--token-audience", AZURE_AUDIENCE, "--token-audience", AWS_AUDIENCE,
             "--gcp-audience", ids["gcp_audience"], "--azure-tenant-id", ids["tenant"],
             "--azure-client-id", ids["client_id"], "--aws-role-arn", ids["role_arn"],
             "--token-lifetime", "60", "--runbook-subjects"], cli_env, check=True)  # fmt: skip
        create_runbook(server, "clouds", RUNBOOK.replace("SDK_PYTHON", str(sdk_python)), type_="bash")
        create_runbook(server, OWN, OWN_RUNBOOK.replace("SDK_PYTHON", str(sdk_python)), type_="bash")
        run([*CREDO, "runbook", "update", OWN, "--own-token-subject"], cli_env, check=True)
        start_worker(server, "worker1", GROUP, slots=2, env=clouds.worker_environment())
        job = start_job(server, "clouds", GROUP)
        own = start_job(server, OWN, GROUP)

        def output(job_id: str) -> list[dict[str, Any]]:
            page = server.api("GET", f"/jobs/{job_id}/output", params={"stream": "output", "after": 0}).json()
            text = "".join(c["text"] for c in page["chunks"])
            return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

        def tokens_so_far() -> set[str]:
            found = {e.params.get("client_assertion") or e.params.get("WebIdentityToken")
                     or e.params.get("subject_token") for f in fixtures for e in f.exchanges[seen[f.cloud][1]:]}  # fmt: skip
            return {t for t in found if t}

        deadline = time.monotonic() + 60
        while not output(job["id"]):
            state = server.api("GET", f"/jobs/{job['id']}").json()["state"]
            assert state in ("New", "Queued", "Running") and time.monotonic() < deadline, server.api(
                "GET", f"/jobs/{job['id']}/output"
            ).text
            time.sleep(0.5)
        rotated = run(
            [*CREDO, "oidc", "rotate", "--force", "--out", published, "--json"], cli_env, check=True
        )
        assert rotated.returncode == 0

        # While the job holds its tokens: none is in any process's argv (point 7).
        argv_scans = 0
        deadline = time.monotonic() + 180
        while (state := server.api("GET", f"/jobs/{job['id']}").json()["state"]) not in (
            "Completed",
            "Failed",
        ):
            assert time.monotonic() < deadline, state
            assert not (pids := _argv_holding(tokens_so_far())), f"a token in the argv of pids {pids}"
            argv_scans += 1
            time.sleep(1)
        assert argv_scans > 30
        results = output(job["id"])
        assert state == "Completed", server.api("GET", f"/jobs/{job['id']}/output").text
        assert [r["phase"] for r in results] == ["first", "refreshed", "after-exp"]
        for result in results:
            assert result["azure"] and result["azure_default"] and result["aws"] and result["gcp"], result
        first, refreshed, after = results
        assert first["runbook_token"], first  # credo.runbook.token in the job (the token only returned)
        assert first["token_sha"] != refreshed["token_sha"]  # the file was rewritten
        # The last exchanges came after the first token had expired, with a token still valid.
        assert (
            after["now"] > first["exp"]
            and after["exp"] > after["now"]
            and after["token_sha"] != first["token_sha"]
        )

        ours = {f.cloud: f.exchanges[seen[f.cloud][1] :] for f in fixtures}
        exchanges = [
            e for f in fixtures for e in ours[f.cloud] if e.claims and e.claims.get("sub") == SUBJECT
        ]
        # Every request any of the three clouds refused (a retry that then succeeded included): none.
        refused = {f.cloud: f.refused_since(seen[f.cloud][0]) for f in fixtures}
        assert not any(refused.values()), refused
        assert all(e.ok for f in fixtures for e in ours[f.cloud]), [
            e for f in fixtures for e in ours[f.cloud]
        ]
        # At Entra: 2 per phase (WorkloadIdentityCredential, DefaultAzureCredential) and the helper's.
        at_entra = [e for e in ours["entra"] if e.claims and e.claims["credo"]["job_id"] == job["id"]]
        assert len(at_entra) == 7, at_entra
        for fixture in fixtures:  # each cloud exchanged once more after the first token's exp
            late = [e for e in ours[fixture.cloud] if e.ok and e.claims and e.claims.get("sub") == SUBJECT
                    and e.at > first["exp"]]  # fmt: skip
            assert late, f"{fixture.cloud}: no exchange after the first token expired"
        claims = exchanges[-1].claims
        assert claims is not None
        assert claims["iss"] == issuer and claims["credo"]["group"] == GROUP
        assert claims["credo"]["job_id"] == job["id"]
        assert claims["credo"]["gmsa_sid"] == _gmsa_sid(lab)  # svcauto$'s real objectSid
        assert claims["exp"] - claims["iat"] == 60

        # The runbook that asked for its own subject exchanged with it; the other kept the group's.
        own_state = server.api("GET", f"/jobs/{own['id']}").json()["state"]
        assert own_state == "Completed" and output(own["id"]) == [
            {"phase": "own", "azure": True, "aws": True}
        ]
        own_claims = [e.claims for f in (clouds.entra, clouds.aws) for e in ours[f.cloud]
                      if e.claims and e.claims["credo"]["job_id"] == own["id"]]  # fmt: skip
        assert len(own_claims) == 2 and {c["sub"] for c in own_claims} == {OWN_SUBJECT}
        assert {e.claims["credo"]["job_id"] for e in exchanges if e.claims} == {job["id"]}

        # No token anywhere credo keeps things: server log, worker log, job output, database.
        tokens = tokens_so_far()
        assert tokens
        kids = {pyjwt.get_unverified_header(token)["kid"] for token in tokens}
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
