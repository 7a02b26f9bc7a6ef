"""Chaos on a scaled-out deployment (issue 16 point 4), from outside through the CLI and signals:
two replicas on one PostgreSQL behind HAProxy, two workers (one through HAProxy, one given both
URLs), jobs that write a ledger (worker1's as the gMSA svcauto$). Meanwhile, in a bounded loop, a
random worker or a random replica is killed with -9 and started again, PostgreSQL is restarted
once, and the lab's first DC is stopped and started again while jobs fetch the gMSA's password.

Checked at the end: every job reached a final state (none lost), no two runs of one job overlap
in the ledger (no concurrent executions), no job was left Running past its lease plus the
takeover grace at any sample, each job's recorded history is a sequence of allowed transitions
ending in its state, and a Completed job's last attempt ran to its end in the ledger.

The size is bounded for the suite (CREDO_CHAOS_JOBS, default 40; CREDO_CHAOS_ITERATIONS, default
8). BENCHMARKS.md has the run at the issue's size (1,000 jobs, 100 iterations).
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

from credo.automation.jobs import JobState, can_transition
from credo.automation.leases import LeasePolicy
from credo.lab import Lab, LabSettings
from tests.server import ledger
from tests.server.conftest import create_group, create_runbook, free_port, fresh_pg_database
from tests.server.test_replicas_lab import FINAL, _replicas
from tests.support.haproxy import Haproxy

pytestmark = pytest.mark.lab

JOBS = int(os.environ.get("CREDO_CHAOS_JOBS", "40"))
ITERATIONS = int(os.environ.get("CREDO_CHAOS_ITERATIONS", "8"))
LEASE = 6.0
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _restart_postgres(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        data = conn.execute("SHOW data_directory").fetchone()
    assert data is not None
    # -l: the new postmaster logs there, not to our pipes (which would never close).
    log = Path(data[0]).parent / "log"
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", data[0], "-l", str(log), "-m", "fast",
         "-w", "restart"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
    )  # fmt: skip


def _overdue(url: str) -> list[str]:
    """Running jobs whose lease ended longer ago than the takeover grace plus a sweep and slack."""
    limit = datetime.now(UTC) - timedelta(seconds=LeasePolicy(LEASE).takeover_grace + 3)
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            rows = conn.execute(
                "SELECT id, lease_expires_at FROM jobs WHERE state IN ('Running', 'Stopping')"
            ).fetchall()
    except psycopg.OperationalError:
        return []  # PostgreSQL is restarting: the next sample sees it
    return [
        job for job, until in rows if until is not None and until.replace(tzinfo=until.tzinfo or UTC) < limit
    ]


def test_chaos_on_replicas_workers_postgresql_and_the_dc(
    tmp_path: Path,
    postgres_url: str,
    server_keytab: Path,
    lab: Lab,
    lab_settings: LabSettings,
    runner_user: str,
    start_worker: Callable[..., subprocess.Popen[bytes]],
) -> None:
    url = fresh_pg_database(postgres_url)
    replicas = _replicas(tmp_path, url, server_keytab, lab_settings, 2, lease_seconds=LEASE)
    proxy = Haproxy(free_port(), [r.port for r in replicas])
    proxy.start()
    fqdn = lab_settings.server_fqdn
    targets = {
        "worker1": SimpleNamespace(kerberos_url=f"http://{fqdn}:{proxy.port}"),
        "worker2": SimpleNamespace(kerberos_url=",".join(f"http://{fqdn}:{r.port}" for r in replicas)),
    }
    rng = random.Random(16)
    events: list[str] = []
    overdue: list[str] = []
    dc_stopped = False
    try:
        first = replicas[0]
        create_runbook(first, "ticker", ledger.TICKER, ledger.TICKER_PARAMS)
        # WORKER2$ may not retrieve svcauto$'s password in the lab: its group runs jobs as the
        # group's local user.
        create_group(first, "gmsa", ["worker1"], lab_settings.realm, run_as="svcauto", max_concurrent=4)
        create_group(first, "plain", ["worker2"], lab_settings.realm, run_as=None, max_concurrent=4)
        groups = {"worker1": "gmsa", "worker2": "plain"}
        path = ledger.new_ledger()
        workers = {
            host: start_worker(target, host, groups[host], slots=4) for host, target in targets.items()
        }
        jobs = []
        for i in range(JOBS):
            params = {"ledger": str(path), "seconds": 0.3 + i % 4 * 0.4}
            body = {"runbook": "ticker", "group": ("gmsa", "plain")[i % 2], "parameters": params}
            answer = replicas[i // 2 % 2].api("POST", "/jobs", json=body)
            assert answer.status_code == 201, answer.text
            jobs.append(answer.json()["id"])

        for iteration in range(ITERATIONS):
            time.sleep(rng.uniform(0.5, 2.0))
            overdue += _overdue(url)
            if iteration == ITERATIONS // 2:
                events.append("postgresql restarted")
                _restart_postgres(url)
            elif iteration == ITERATIONS // 3:
                events.append("DC 1 stopped for 4 s")
                dc_stopped = lab.stop_dc(1)
                time.sleep(4)
                lab.start_dc(1)
                dc_stopped = False
            elif rng.random() < 0.5:
                host = rng.choice(sorted(workers))
                events.append(f"kill -9 {host}")
                workers[host].kill()
                workers[host].wait()
                workers[host] = start_worker(targets[host], host, groups[host], slots=4)
            else:
                replica = rng.choice(replicas)
                events.append(f"kill -9 replica :{replica.port}")
                replica.stop(signal.SIGKILL)
                replica.start()

        deadline = time.monotonic() + max(300, JOBS)  # a second a job at the size
        alive = replicas[0]
        while True:
            overdue += _overdue(url)
            states = {j: alive.api("GET", f"/jobs/{j}").json()["state"] for j in jobs}
            if all(s in FINAL for s in states.values()):
                break
            assert time.monotonic() < deadline, (events, {j: s for j, s in states.items() if s not in FINAL})
            time.sleep(0.5)

        assert overdue == [], (events, overdue)
        assert ledger.overlaps(path) == [], (events, ledger.overlaps(path))
        runs = ledger.read(path)
        views: dict[str, dict[str, Any]] = {j: alive.api("GET", f"/jobs/{j}").json() for j in jobs}
        for job_id, job in views.items():
            history = [t["state"] for t in job["transitions"]]
            for before, after in itertools.pairwise(history):
                assert can_transition(JobState(before), JobState(after)), (job_id, history)
            assert history[-1] == job["state"], (job_id, history)
            if job["state"] == "Completed":
                last = max(r[0] for r in runs[job_id])
                assert any(r[0] == last and r[2] == "end" for r in runs[job_id]), (job_id, runs[job_id])
        completed = sum(1 for job in views.values() if job["state"] == "Completed")
        reasons = Counter(str(j["reason"])[:160] for j in views.values() if j["state"] != "Completed")
        assert completed >= JOBS * 0.8, (events, completed, reasons)
        print(f"{len(events)} events: {events}; {completed}/{JOBS} completed")
    finally:
        if dc_stopped:
            lab.start_dc(1)
        proxy.stop()
        for replica in replicas:
            replica.stop()
