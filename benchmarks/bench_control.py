"""Issue 15 point 9: what the control plane costs.

1. Job submission latency (``POST /api/v1/jobs``, one client, keep-alive, sequential) on a real
   `credo server` process (SQLite), with an API token of role operator (the token checked against
   the database, the role's permission decided, the call appended to the hash-chained audit log)
   against the yardstick: the server as it was before issue 15 (commit ``YARDSTICK``, run from
   ``git archive``: the admin token only, no RBAC, no audit log), on the same machine, in
   alternating rounds. Goal: at most 10 % added at p50.
2. The web UI's job list with 10,000 jobs in the database: ``GET /ui/jobs`` (the newest page, and a
   page filtered by state) answered in-process (TestClient: the server's time, no network).
   Goal: < 300 ms.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
YARDSTICK = "9cdb0ec"  # the last commit before issue 15's work
ROUNDS = 6
PER_ROUND = 150
LIST_JOBS = 10_000
LIST_RUNS = 21


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    def __init__(self, work: Path, name: str, src: Path) -> None:
        self.port = _free_port()
        self.data = work / name
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDO_", "KRB5"))}
        env |= {"PYTHONPATH": str(src), "XDG_CONFIG_HOME": str(work / "no-config")}
        argv = [sys.executable, "-m", "credo", "server", "--data-dir", str(self.data),
                "--listen", f"127.0.0.1:{self.port}"]  # fmt: skip
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        admin = (self.data / "admin.token").read_text().strip()
        self.admin = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {admin}"}, timeout=30)
        group = {"name": "bench", "local_user": "credo-runner", "workers": ["WORKER1$@BENCH.TEST"]}
        assert self.admin.post("/api/v1/groups", json=group).status_code == 201
        runbook = {"name": "noop", "type": "python3", "content": base64.b64encode(b"pass\n").decode(),
                   "parameters": [{"name": "n", "type": "int"}]}  # fmt: skip
        assert self.admin.post("/api/v1/runbooks", json=runbook).status_code == 201
        assert self.admin.post("/api/v1/runbooks/noop/publish").status_code == 200

    def operator(self) -> httpx.Client:
        made = self.admin.post(
            "/api/v1/auth/tokens", json={"name": "bench", "expires": "1d", "role": "operator"}
        )
        assert made.status_code == 201, made.text
        headers = {"Authorization": f"Bearer {made.json()['token']}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)


def _submit(client: httpx.Client, samples: list[float]) -> None:
    for i in range(PER_ROUND):
        started = time.perf_counter()
        answer = client.post(
            "/api/v1/jobs", json={"runbook": "noop", "group": "bench", "parameters": {"n": i}}
        )
        samples.append(time.perf_counter() - started)
        assert answer.status_code == 201, answer.text


def _pct(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] * 1000


def submission_latency(work: Path) -> list[tuple[str, str, str]]:
    old_src = work / "yardstick"
    old_src.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", YARDSTICK, "src"], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive.stdout, check=True)
    subprocess.run(["bash", "-c", "id credo-runner >/dev/null 2>&1 || useradd --system --no-create-home credo-runner"],
                   check=True)  # fmt: skip
    old = _Server(work, "before", old_src / "src")
    new = _Server(work, "after", ROOT / "src")
    try:
        clients = {
            "before": old.admin,
            "after, operator token": new.operator(),
            "after, admin token": new.admin,
        }
        samples: dict[str, list[float]] = {name: [] for name in clients}
        for client in clients.values():  # warm up: imports, first connections, SQLite pages
            _submit(client, [])
        for round_ in range(ROUNDS):
            names = list(clients) if round_ % 2 == 0 else list(reversed(clients))
            for name in names:
                _submit(clients[name], samples[name])
    finally:
        old.stop()
        new.stop()
    base = statistics.median(samples["before"]) * 1000
    rows = []
    for name, got in samples.items():
        p50 = statistics.median(got) * 1000
        label = f"job submission p50 ({name})"
        result = f"p50 {p50:.1f} ms, p99 {_pct(got, 99):.1f} ms (n={len(got)})"
        if name == "before":
            rows.append((f"{label}: yardstick, {YARDSTICK}", result, ""))
        else:
            ratio = p50 / base
            verdict = "met" if ratio <= 1.10 else "**not met**"
            rows.append((label, f"{result}: {ratio:.2f}x the yardstick", f"<= 1.10x: {verdict}"))
    return rows


def ui_job_list(work: Path) -> list[tuple[str, str, str]]:
    from fastapi.testclient import TestClient
    from sqlalchemy import insert, select

    from credo.server.app import ServerConfig, create_app
    from credo.server.clock import now
    from credo.server.database import sqlite_url
    from credo.server.models import Job, Runbook, RunbookVersion, WorkerGroup

    data = work / "ui"
    data.mkdir()
    app = create_app(ServerConfig(data_dir=data, database_url=sqlite_url(data)))
    admin = (data / "admin.token").read_text().strip()
    rows = []
    with TestClient(app, follow_redirects=False) as client:
        headers = {"Authorization": f"Bearer {admin}"}
        group = {"name": "bench", "local_user": "credo-runner", "workers": ["WORKER1$@BENCH.TEST"]}
        assert client.post("/api/v1/groups", json=group, headers=headers).status_code == 201
        runbook = {"name": "noop", "type": "python3", "content": base64.b64encode(b"pass\n").decode()}
        assert client.post("/api/v1/runbooks", json=runbook, headers=headers).status_code == 201
        assert client.post("/api/v1/runbooks/noop/publish", headers=headers).status_code == 200
        with app.state.credo.db.session() as session:
            runbook_id = session.scalar(select(Runbook.id))
            version_id = session.scalar(select(RunbookVersion.id))
            group_id = session.scalar(select(WorkerGroup.id))
            start = now() - timedelta(days=30)
            states = ["Completed"] * 8 + ["Failed", "Queued"]
            session.execute(insert(Job), [
                {"id": str(uuid.uuid4()), "runbook_id": runbook_id, "version_id": version_id, "group_id": group_id,
                 "is_test": False, "parameters": {}, "state": states[i % 10], "attempts": 1, "max_attempts": 3,
                 "lease_token": 0, "timeout_seconds": 3600, "stop_requested": False, "exit_code": 0,
                 "created_at": start + timedelta(seconds=i), "updated_at": start + timedelta(seconds=i)}
                for i in range(LIST_JOBS)
            ])  # fmt: skip
        reader = client.post(
            "/api/v1/auth/tokens", json={"name": "r", "expires": "1d", "role": "reader"}, headers=headers
        ).json()["token"]
        for who, secret in (("admin token", admin), ("reader token", reader)):
            client.cookies.clear()
            assert client.post("/ui/sign-in", data={"token": secret, "next": "/ui/jobs"}).status_code == 303
            for page in ("/ui/jobs", "/ui/jobs?state=Failed"):
                times = []
                for _ in range(LIST_RUNS):
                    started = time.perf_counter()
                    answer = client.get(page)
                    times.append(time.perf_counter() - started)
                    assert answer.status_code == 200 and answer.text.count("<tr data-job") == 100
                median, worst = statistics.median(times) * 1000, max(times) * 1000
                verdict = "met" if median < 300 else "**not met**"
                rows.append((
                    f"UI `GET {page}`, {LIST_JOBS} jobs, signed in with the {who} (100 rows)",
                    f"median {median:.0f} ms (max {worst:.0f}, n={LIST_RUNS})", f"< 300 ms: {verdict}",
                ))  # fmt: skip
    return rows


def run() -> list[tuple[str, str, str]]:
    work = Path(tempfile.mkdtemp(prefix="credo-bench-control-"))
    try:
        return submission_latency(work) + ui_job_list(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
