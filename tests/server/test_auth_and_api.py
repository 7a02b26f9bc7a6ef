"""Who may do what: admin token, Kerberos workers, group isolation; and the API's contract."""

from __future__ import annotations

import base64
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from credo.lab import Lab, LabSettings
from tests.server.conftest import Server, create_group, create_runbook, start_job
from tests.support.identity import CREDO, identity_env


def test_requests_without_credentials_are_refused(sqlite_server: Server) -> None:
    bare = httpx.Client(base_url=sqlite_server.url)
    assert bare.get("/api/v1/jobs").status_code == 401
    assert bare.get("/api/v1/jobs", headers={"Authorization": "Bearer not-the-token"}).status_code == 401
    # Worker endpoints want a worker session, obtained only with Kerberos.
    assert bare.post("/api/v1/workers/1/claim").status_code == 401
    assert (
        bare.post(
            "/api/v1/workers/1/claim", headers={"Authorization": f"Bearer {sqlite_server.token}"}
        ).status_code
        == 401
    )
    refused = bare.post(
        "/api/v1/workers/register",
        json={"group": "x"},
        headers={"Authorization": "Negotiate " + base64.b64encode(b"\x60\x03garbage").decode()},
    )
    assert refused.status_code == 403
    assert "Kerberos authentication failed" in refused.json()["title"]


def test_admin_token_file_is_private(sqlite_server: Server) -> None:
    mode = (sqlite_server.data_dir / "admin.token").stat().st_mode & 0o777
    assert mode == 0o600


def test_a_worker_may_serve_only_its_groups(
    sqlite_server: Server, start_worker: Callable[..., Any], lab: Lab, lab_settings: LabSettings
) -> None:
    create_runbook(sqlite_server, "hello", "print('hello')\n")
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    create_group(sqlite_server, "tier2", ["worker2"], lab_settings.realm)
    # WORKER2$ is not allowed in tier1: registration is refused, the process exits with the reason.
    proc = subprocess.run(
        [*CREDO, "worker", "--server", sqlite_server.kerberos_url, "--group", "tier1"],
        env=identity_env(lab, "worker2"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 5
    assert "WORKER2$@CORP.EXAMPLE.TEST may not serve worker group 'tier1'" in proc.stderr
    # A tier2 worker never receives tier1's jobs.
    start_worker(sqlite_server, "worker2", "tier2")
    job = start_job(sqlite_server, "hello", "tier1")
    time.sleep(2)
    assert sqlite_server.api("GET", f"/jobs/{job['id']}").json()["state"] == "Queued"
    start_worker(sqlite_server, "worker1", "tier1")
    assert sqlite_server.wait_state(job["id"], {"Completed"})["worker"].startswith("WORKER1$")


def test_workers_are_listed_and_lost_ones_marked(
    sqlite_server: Server, start_worker: Callable[..., Any], lab_settings: LabSettings
) -> None:
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    proc = start_worker(sqlite_server, "worker1", "tier1")
    [worker] = sqlite_server.api("GET", "/workers").json()
    assert worker["status"] == "online" and worker["principal"] == f"WORKER1$@{lab_settings.realm}"
    proc.kill()
    proc.wait()


def test_runbook_lifecycle_and_test_runs(
    sqlite_server: Server, start_worker: Callable[..., Any], lab_settings: LabSettings
) -> None:
    create_runbook(sqlite_server, "hello", "print('v1')\n")
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    start_worker(sqlite_server, "worker1", "tier1")
    draft = base64.b64encode(b"print('draft')\n").decode()
    assert sqlite_server.api("PATCH", "/runbooks/hello", json={"content": draft}).status_code == 200
    # Production runs the published version; a test run runs the draft and is marked as a test.
    prod = start_job(sqlite_server, "hello", "tier1")
    test = sqlite_server.api(
        "POST", "/jobs", params={"test": "true"}, json={"runbook": "hello", "group": "tier1"}
    ).json()
    sqlite_server.wait_state(prod["id"], {"Completed"})
    sqlite_server.wait_state(test["id"], {"Completed"})
    assert sqlite_server.output(prod["id"]) == "v1\n"
    assert sqlite_server.output(test["id"]) == "draft\n"
    assert test["test"] is True and test["version"] == 0
    shown = sqlite_server.api("GET", "/runbooks/hello").json()
    assert [v["version"] for v in shown["versions"]] == [1]
    v2 = sqlite_server.api("POST", "/runbooks/hello/publish").json()
    assert v2["version"] == 2 and v2["content_hash"].startswith("sha256:")
    assert sqlite_server.api("DELETE", "/runbooks/hello").status_code == 204
    assert sqlite_server.api("GET", "/runbooks/hello").status_code == 404


def test_schemathesis_finds_no_server_error(sqlite_server: Server, tmp_path: Any) -> None:
    """Property-based calls to every operation in /openapi.json: no 5xx."""
    proc = subprocess.run(
        [str(Path(CREDO[0]).parent / "schemathesis"), "run", f"{sqlite_server.url}/openapi.json",
         "--checks", "not_a_server_error", "--max-examples", "5", "--header", f"Authorization: Bearer {sqlite_server.token}",
         "--request-timeout", "10", "--workers", "1", "--exclude-path-regex", r"/output/events$"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    # The failures come before schemathesis's long advice on coverage: show them, not the tail.
    report = proc.stdout
    start = report.find("FAILURES")
    assert proc.returncode == 0, (
        report[start : start + 6000] if start >= 0 else report[-4000:]
    ) + proc.stderr[-2000:]


def test_https_with_tls_cert_and_key(tmp_path: Path, server_keytab: Path) -> None:
    from tests.server.conftest import free_port

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [*CREDO, "server", "--data-dir", tmp_path / "data", "--keytab", server_keytab, "--listen", f"127.0.0.1:{port}",
         "--tls-cert", cert, "--tls-key", key],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(
                    f"https://127.0.0.1:{port}/api/v1/health",
                    verify=ssl.create_default_context(cafile=str(cert)),
                    timeout=2,
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert response.json() == {"status": "ok"}
        with httpx.Client(verify=True) as strict:  # an untrusted certificate is refused by clients
            try:
                strict.get(f"https://127.0.0.1:{port}/api/v1/health", timeout=2)
                raise AssertionError("the self-signed certificate was accepted without its CA")
            except httpx.ConnectError:
                pass
    finally:
        proc.terminate()
        proc.wait(timeout=15)
