"""Runbook automation on the lab (issue 4): submit-to-start latency, throughput, server memory.

- Latency: an idle worker; one job at a time; the runbook prints the time it started; latency is
  that minus the time the submission returned (same machine, same clock). Goal p50 < 50 ms.
- Throughput: one worker with 4 slots, trivial bash jobs (`true`), submitted as fast as the API
  takes them by 8 client threads; jobs per second from the first job's creation to the last one's
  completion, on the server's clock. Median of 3 rounds. SQLite and PostgreSQL. Goal >= 100/s.
- Memory: the server's resident memory with 10,000 finished jobs in its database, after listing.
"""

from __future__ import annotations

import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from credo.lab import Lab

ROOT = Path(__file__).resolve().parents[1]
CREDO = [sys.executable, "-m", "credo"]
LATENCY_RUNS = int(os.environ.get("CREDO_BENCH_LATENCY_RUNS", "50"))
THROUGHPUT_JOBS = int(os.environ.get("CREDO_BENCH_JOBS", "400"))
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(lab: Lab, identity: str | None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}
    return base | lab.env(identity).set


class Bench:
    def __init__(self, lab: Lab, work: Path, database: str | None) -> None:
        self.lab, self.work, self.database = lab, work, database
        settings = lab.settings
        assert settings is not None
        self.settings = settings
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = work / f"server-{self.port}"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start_server(self) -> subprocess.Popen[bytes]:
        keytab = self.work / "http.keytab"
        if not keytab.exists():
            subprocess.run([*CREDO, "gmsa", "keytab", "svccredo", "--spn", f"HTTP/{self.settings.server_fqdn}", "--out",
                            str(keytab)], env=_env(self.lab, "server"), check=True, capture_output=True)  # fmt: skip
        argv = [
            *CREDO,
            "server",
            "--data-dir",
            str(self.data),
            "--keytab",
            str(keytab),
            "--listen",
            f"127.0.0.1:{self.port}",
        ]
        if self.database:
            argv += ["--database", self.database]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        for _ in range(300):
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        token = (self.data / "admin.token").read_text().strip()
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        return proc

    def setup(self) -> None:
        subprocess.run(
            [
                "bash",
                "-c",
                "id credo-runner >/dev/null 2>&1 || useradd --system --no-create-home credo-runner",
            ],
            check=True,
        )
        self.api("POST", "/groups", json={"name": "bench", "run_as": "svcauto", "local_user": "credo-runner",
                                          "workers": [f"WORKER1$@{self.settings.realm}"], "max_concurrent": 4})  # fmt: skip
        for name, script in (("noop", "true\n"), ("stamp", "date +%s.%N\n")):
            body = {"name": name, "type": "bash", "content": base64.b64encode(script.encode()).decode()}
            self.api("POST", "/runbooks", json=body)
            self.api("POST", f"/runbooks/{name}/publish")
        worker = subprocess.Popen(
            [*CREDO, "worker", "--server", f"http://{self.settings.server_fqdn}:{self.port}", "--group", "bench", "--slots", "4"],
            env=_env(self.lab, "worker1"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.procs.append(worker)
        for _ in range(300):
            if any(w["status"] == "online" for w in self.api("GET", "/workers")):
                break
            time.sleep(0.1)
        # Warm up: the first job fetches the gMSA ticket.
        self.wait(self.submit("noop")["id"])

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"/api/v1{path}", **kwargs)
        response.raise_for_status()
        return response.json() if response.status_code != 204 else None

    def submit(self, runbook: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api("POST", "/jobs", json={"runbook": runbook, "group": "bench"})
        return result

    def wait(self, job_id: str, poll: float = 0.01) -> dict[str, Any]:
        while True:
            job: dict[str, Any] = self.api("GET", f"/jobs/{job_id}")
            if job["state"] in ("Completed", "Failed", "Stopped", "Suspended"):
                return job
            time.sleep(poll)

    def latency(self) -> list[float]:
        samples = []
        for _ in range(LATENCY_RUNS):
            samples += self.latency_once()
        return samples

    def latency_once(self) -> list[float]:
        """One submit-to-start sample: the job prints its start time; the client notes its submit."""
        time.sleep(0.3)  # an idle worker, parked in its long-poll
        job_id = self.submit("stamp")["id"]
        submitted = time.time()
        self.wait(job_id)
        page = self.api("GET", f"/jobs/{job_id}/output", params={"stream": "output"})
        started = float("".join(c["text"] for c in page["chunks"]).strip())
        return [started - submitted]

    def throughput(self) -> float:
        """Jobs per second from the first job's creation to the last one's completion, on the
        server's clock (the measuring client's own polling is not in the figure)."""
        with ThreadPoolExecutor(8) as pool:
            ids = [j["id"] for j in pool.map(lambda _: self.submit("noop"), range(THROUGHPUT_JOBS))]
        # Polled slowly and cheaply: the measuring client must not take the server's CPU.
        while any(
            self.api("GET", "/jobs", params={"group": "bench", "state": state, "limit": 1})
            for state in ("Queued", "Running")
        ):
            time.sleep(0.2)
        jobs = {j["id"]: j for j in self.api("GET", "/jobs", params={"group": "bench", "limit": 1000})}
        batch = [jobs[i] for i in ids]
        if any(j["state"] != "Completed" for j in batch):
            raise RuntimeError("a benchmark job did not complete")
        first = min(datetime.fromisoformat(j["created_at"]) for j in batch)
        last = max(datetime.fromisoformat(j["transitions"][-1]["at"]) for j in batch)
        return THROUGHPUT_JOBS / (last - first).total_seconds()

    def throughput_rounds(self, rounds: int = 3) -> str:
        samples = [self.throughput() for _ in range(rounds)]
        return (
            f"median {statistics.median(samples):.0f} jobs/s (min {min(samples):.0f}, max {max(samples):.0f}; "
            f"{rounds} rounds of {THROUGHPUT_JOBS})"
        )

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.kill()
            proc.wait()


def _percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _postgres(work: Path) -> tuple[str, Path]:
    base = Path(tempfile.mkdtemp(prefix="credo-bench-pg-"))
    base.chmod(0o755)
    subprocess.run(["chown", "postgres:postgres", str(base)], check=True)
    port = _free_port()
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_pg, str(PG_BIN / "initdb"), "-D", str(base / "data"), "-A", "trust", "-U", "credo"],
        check=True,
        capture_output=True,
    )
    subprocess.run([*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(base / "data"), "-o",
                    f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c synchronous_commit=off",
                    "-l", str(base / "log"), "-w", "start"], check=True, capture_output=True)  # fmt: skip
    return f"postgresql://credo@127.0.0.1:{port}/postgres", base


def _memory_with_finished_jobs(lab: Lab, work: Path) -> str:
    """Fill a fresh SQLite database with 10,000 finished jobs, start a server on it, list, measure."""
    from credo.server.database import Database, sqlite_url
    from credo.server.models import Job, JobOutput, JobTransition, Runbook, RunbookVersion, WorkerGroup

    bench = Bench(lab, work, None)
    db = Database(sqlite_url(bench.data.parent / "memory"))
    (bench.data.parent / "memory").mkdir(parents=True, exist_ok=True)
    db = Database(sqlite_url(bench.data.parent / "memory"))
    db.upgrade()
    now = datetime.now(UTC)
    with db.session() as session:
        runbook = Runbook(name="r", type="bash", description=None, draft_content=b"true", draft_parameters=[],
                          published_version=1, created_at=now, updated_at=now)  # fmt: skip
        session.add(runbook)
        session.flush()
        version = RunbookVersion(runbook_id=runbook.id, version=1, type="bash", content=b"true", content_hash="sha256:x",
                                 parameters=[], schema={}, created_at=now)  # fmt: skip
        group = WorkerGroup(
            name="g", run_as=None, local_user=None, max_concurrent=4, allowed_workers=[], created_at=now
        )
        session.add_all([version, group])
        session.flush()
        for i in range(10_000):
            job_id = str(uuid.uuid4())
            session.add(Job(id=job_id, runbook_id=runbook.id, version_id=version.id, group_id=group.id, is_test=False,
                            parameters={"i": i}, state="Completed", attempts=1, lease_token=1, exit_code=0,
                            timeout_seconds=10800, stop_requested=False, created_at=now, updated_at=now))  # fmt: skip
            session.add_all(
                [
                    JobTransition(job_id=job_id, state=s, at=now, attempt=1)
                    for s in ("New", "Queued", "Running", "Completed")
                ]
            )
            session.add(
                JobOutput(job_id=job_id, stream="output", seq=1, attempt=1, text=f"job {i} done\n", at=now)
            )
    bench.data = bench.data.parent / "memory"
    proc = bench.start_server()
    try:
        for _ in range(20):
            bench.api("GET", "/jobs", params={"limit": 1000})
        rss_kib = int(
            next(
                row.split()[1]
                for row in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                if row.startswith("VmRSS")
            )
        )
    finally:
        bench.close()
    return f"{rss_kib / 1024:.0f} MiB resident after 20 listings of 1,000 jobs"


def run() -> list[tuple[str, str, str]]:
    lab = Lab()
    lab.up()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bench = Bench(lab, work, None)
        try:
            bench.start_server()
            bench.setup()
            samples = bench.latency()
            rows.append(("submit-to-start latency, idle worker (SQLite)",
                         f"p50 {statistics.median(samples) * 1000:.0f} ms, p99 {_percentile(samples, 99) * 1000:.0f} ms (n={len(samples)})",
                         "p50 < 50 ms"))  # fmt: skip
            rows.append(
                (
                    "throughput, 1 worker x 4 slots, trivial jobs (SQLite)",
                    bench.throughput_rounds(),
                    ">= 100 jobs/s",
                )
            )
        finally:
            bench.close()
        url, pg_dir = _postgres(work)
        bench = Bench(lab, work, url)
        try:
            bench.start_server()
            bench.setup()
            rows.append(
                (
                    "throughput, 1 worker x 4 slots, trivial jobs (PostgreSQL 15)",
                    bench.throughput_rounds(),
                    ">= 100 jobs/s",
                )
            )
        finally:
            bench.close()
            subprocess.run(
                [
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(pg_dir / "data"),
                    "-m",
                    "fast",
                    "stop",
                ],
                capture_output=True,
            )
        rows.append(
            (
                "server memory, 10,000 finished jobs (SQLite)",
                _memory_with_finished_jobs(lab, work),
                "recorded",
            )
        )
    return rows
