"""/metrics served: from loopback without a credential, else with the admin token; counts from the
database at scrape time, and submit-to-start observed when a real worker claims a job."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from credo.lab import LabSettings
from credo.server.app import ServerConfig, create_app
from credo.server.database import sqlite_url
from tests.server.conftest import RUNNER, Server, create_group, create_runbook, start_job


def _families(text: str) -> dict[str, list[tuple[dict[str, str], float, str]]]:
    return {
        f.name: [(s.labels, s.value, s.name) for s in f.samples] for f in text_string_to_metric_families(text)
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    data = tmp_path / "data"
    app = create_app(ServerConfig(data_dir=data, database_url=sqlite_url(data)))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, (data / "admin.token").read_text().strip()


def test_a_remote_caller_needs_the_admin_token(client: tuple[TestClient, str]) -> None:
    http, token = client  # TestClient's peer is "testclient": not a loopback address
    refused = http.get("/metrics")
    assert refused.status_code == 401
    assert "Bearer" in refused.headers["www-authenticate"]
    assert http.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    answer = http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")


def test_snapshot_counts_jobs_queue_depth_and_workers(client: tuple[TestClient, str]) -> None:
    http, token = client
    http.headers["Authorization"] = f"Bearer {token}"
    runbook = {"name": "hello", "type": "python3", "content": base64.b64encode(b"print(1)\n").decode()}
    assert http.post("/api/v1/runbooks", json=runbook | {"parameters": []}).status_code == 201
    assert http.post("/api/v1/runbooks/hello/publish").status_code == 200
    for name in ("tier1", "tier2"):
        body = {"name": name, "run_as": None, "local_user": RUNNER, "workers": ["WORKER1$@CORP.EXAMPLE.TEST"]}
        assert http.post("/api/v1/groups", json=body).status_code == 201, name
    for _ in range(3):
        started = http.post("/api/v1/jobs", json={"runbook": "hello", "group": "tier1", "parameters": {}})
        assert started.status_code == 201
    families = _families(http.get("/metrics").text)
    assert [(labels, value) for labels, value, _ in families["credo_jobs"]] == [({"state": "Queued"}, 3)]
    assert {labels["group"]: value for labels, value, _ in families["credo_queue_depth"]} == {
        "tier1": 3,
        "tier2": 0,
    }
    assert {labels["group"]: value for labels, value, _ in families["credo_workers_online"]} == {
        "tier1": 0,
        "tier2": 0,
    }


def test_loopback_scrape_and_submit_to_start_from_a_real_claim(
    sqlite_server: Server,
    start_worker: Callable[..., object],
    lab_settings: LabSettings,
) -> None:
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    create_runbook(sqlite_server, "hello", "print('hello')\n")
    start_worker(sqlite_server, "worker1", "tier1")
    job = start_job(sqlite_server, "hello", "tier1")
    sqlite_server.wait_state(job["id"], {"Completed"})

    # From 127.0.0.1 and with no credential at all.
    answer = httpx.get(f"{sqlite_server.url}/metrics", timeout=10)
    assert answer.status_code == 200, answer.text
    families = _families(answer.text)
    latency = families["credo_job_submit_to_start_seconds"]
    count = [
        value for labels, value, name in latency if name.endswith("_count") and labels["group"] == "tier1"
    ]
    assert count == [1]
    assert ({"state": "Completed"}, 1) in [(labels, value) for labels, value, _ in families["credo_jobs"]]
    online = {labels["group"]: value for labels, value, _ in families["credo_workers_online"]}
    assert online == {"tier1": 1}
