"""The executor delivers tokens to a real job: a runbook run through setpriv as credo-runner finds
the SDKs' variables and its 0600 token file, sees it rewritten while it runs, and the file is gone
after the job. The server is an httpx.MockTransport (the real server's token route comes with
the issuer, issue 14 part 1; the integrator's end-to-end runs both), whose tokens PyJWT signs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.fake_issuer import FakeIssuer

from credo.automation.identity import AZURE_AUDIENCE
from credo.automation.leases import LeasePolicy
from credo.gmsa.session import SessionSettings
from credo.krb.host import HostIdentity
from credo.worker.client import ServerClient
from credo.worker.executor import JobExecutor, JobSpec, claimed_jobs
from credo.worker.fence import LeaseFence, boottime

RUNBOOK = b"""
import hashlib, json, os, stat, time
path = os.environ["AZURE_FEDERATED_TOKEN_FILE"]
hashes = []
for _ in range(9):
    with open(path, "rb") as handle:
        hashes.append(hashlib.sha256(handle.read()).hexdigest())
    time.sleep(0.4)
info = os.stat(path)
names = ["AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST"]
print(json.dumps({
    "env": {name: os.environ.get(name) for name in names},
    "mode": stat.S_IMODE(info.st_mode), "owner": info.st_uid, "uid": os.getuid(), "hashes": hashes,
}))
"""


class FakeServer:
    """The worker protocol's routes this job needs; records what the worker sends."""

    def __init__(self, issuer: FakeIssuer) -> None:
        self.issuer = issuer
        self.bodies: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.path
        with self.lock:
            self.bodies.append((path, body))
        if path.endswith("/token"):
            issued = self.issuer.mint(body["audience"], body["runbook_subject"])
            return httpx.Response(200, json={
                "token": issued.token, "subject": issued.subject, "audience": issued.audience,
                "expires_at": issued.expires_at.isoformat().replace("+00:00", "Z"),
            })  # fmt: skip
        if path.endswith("/output"):
            return httpx.Response(200, json={"stop": False})
        if path.endswith("/finish"):
            return httpx.Response(200, json={"state": "succeeded", "jobs": []})
        return httpx.Response(404, json={"title": "not found"})


@pytest.fixture
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="credo-test-exec-tokens-"))
    base.chmod(0o755)  # the job's user passes through to its directory
    monkeypatch.setenv("CREDO_WORKER_RUNTIME_DIR", str(base / "worker"))
    yield base / "worker"
    shutil.rmtree(base, ignore_errors=True)


def test_a_job_gets_its_token_file_refreshed_and_removed(runtime_dir: Path, runner_user: str) -> None:
    issuer = FakeIssuer(lifetime=2.0)
    server = FakeServer(issuer)
    client = ServerClient(
        "https://credo.test", HostIdentity(Path("/nonexistent"), "WORKER1$@CORP.EXAMPLE.TEST"), "tier1", 1,
        transport=httpx.MockTransport(server),
    )  # fmt: skip
    client.session_token = "session"  # registered (the mock does not negotiate)
    client.registration = {"worker_id": 1, "run_as": None, "local_user": runner_user, "group": "tier1"}
    fence = LeaseFence(LeasePolicy(60.0))
    executor = JobExecutor(client, SessionSettings(), fence)
    identity = {"audiences": [AZURE_AUDIENCE], "azure_tenant_id": "tenant-1", "azure_client_id": "client-1",
                "azure_authority_host": "https://login.microsoftonline.com"}  # fmt: skip
    claim = {"jobs": [{
        "job_id": "job-tokens-1", "lease_token": 3, "attempt": 1, "runbook": "hello", "type": "python3",
        "content_hash": "sha256:" + hashlib.sha256(RUNBOOK).hexdigest(), "parameters": {},
        "timeout_seconds": 60, "content": base64.b64encode(RUNBOOK).decode(),
    }], "identity": identity}  # fmt: skip
    job = JobSpec.from_claim(claimed_jobs(claim)[0])
    try:
        fence.begin(job.job_id, boottime())
        assert executor.run(job) == []
    finally:
        executor.close()
        fence.close()
        client.close()
    finish = next(body for path, body in server.bodies if path.endswith("/finish"))
    text = "".join(
        c["text"] for path, body in server.bodies if body and "chunks" in body for c in body["chunks"]
    )
    assert finish["exit_code"] == 0, text
    report = json.loads(text.strip().splitlines()[-1])
    path = report["env"]["AZURE_FEDERATED_TOKEN_FILE"]
    assert report["env"] == {
        "AZURE_FEDERATED_TOKEN_FILE": path, "AZURE_CLIENT_ID": "client-1", "AZURE_TENANT_ID": "tenant-1",
        "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com",
    }  # fmt: skip
    uid = pwd.getpwnam(runner_user).pw_uid
    assert report["uid"] == uid and report["owner"] == uid and report["mode"] == 0o600
    issued = {hashlib.sha256(t.encode()).hexdigest() for t in issuer.issued}
    assert set(report["hashes"]) <= issued  # always a whole token the issuer made
    assert len(set(report["hashes"])) >= 3  # rewritten about every second while the job ran
    assert not os.path.exists(os.path.dirname(path))  # gone with the job
    requests = [body for p, body in server.bodies if p.endswith("/token")]
    assert requests[0] == {"lease": 3, "audience": AZURE_AUDIENCE, "runbook_subject": False}
    assert all(
        p == "/api/v1/workers/1/jobs/job-tokens-1/token" for p, _ in server.bodies if p.endswith("/token")
    )
    # What the worker sent the server (output, finish) never holds a token.
    sent = json.dumps([body for p, body in server.bodies if not p.endswith("/token")])
    assert not any(token in sent for token in issuer.issued)
