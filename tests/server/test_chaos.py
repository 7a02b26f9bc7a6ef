"""Chaos, from outside through the CLI and signals: 20 jobs on two workers while a worker is
killed (-9) and restarted, the other is stopped (SIGSTOP) for longer than its lease, and the
server is killed (-9) and restarted. Every job must reach a final state, no two runs of one job
may overlap in the ledger the runbook writes, and no job's files may survive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable

from credo.lab import LabSettings
from credo.worker.jobfiles import default_runtime_dir
from tests.server import ledger
from tests.server.conftest import Server, create_group, create_runbook
from tests.support.identity import CREDO, run

FINAL = {"Completed", "Failed", "Stopped", "Suspended"}


def test_chaos_kill_stop_and_server_crash(
    sqlite_server: Server, start_worker: Callable[..., subprocess.Popen[bytes]], lab_settings: LabSettings
) -> None:
    sqlite_server.stop()
    sqlite_server.lease_seconds = 6
    sqlite_server.start()
    create_runbook(sqlite_server, "ticker", ledger.TICKER, ledger.TICKER_PARAMS)
    create_group(
        sqlite_server, "chaos", ["worker1", "worker2"], lab_settings.realm, run_as=None, max_concurrent=4
    )
    path = ledger.new_ledger()
    one = start_worker(sqlite_server, "worker1", "chaos", slots=4)
    two = start_worker(sqlite_server, "worker2", "chaos", slots=4)
    jobs = []
    for i in range(20):
        started = run([*CREDO, "job", "start", "ticker", "--group", "chaos", "-p", f"ledger={path}",
                       "-p", f"seconds={2 + i % 3}", "--json"], sqlite_server.env())  # fmt: skip
        assert started.returncode == 0, started.stderr
        jobs.append(json.loads(started.stdout)["id"])

    time.sleep(1.5)
    one.kill()  # kill -9 mid-job
    one.wait()
    one = start_worker(sqlite_server, "worker1", "chaos", slots=4)
    time.sleep(1)
    os.kill(two.pid, signal.SIGSTOP)  # longer than the lease plus the takeover grace
    time.sleep(6 + 1.5 + 2)
    os.kill(two.pid, signal.SIGCONT)
    time.sleep(1)
    sqlite_server.stop(signal.SIGKILL)
    sqlite_server.start()

    deadline = time.monotonic() + 180
    while True:
        states = {j: sqlite_server.api("GET", f"/jobs/{j}").json()["state"] for j in jobs}
        if all(s in FINAL for s in states.values()):
            break
        assert time.monotonic() < deadline, f"jobs not final: {states}"
        time.sleep(0.5)
    assert ledger.overlaps(path) == [], ledger.overlaps(path)
    runs = ledger.read(path)
    assert set(runs) == set(jobs), "every job ran at least once"
    for job_id in jobs:
        job = sqlite_server.api("GET", f"/jobs/{job_id}").json()
        if job["state"] == "Completed":
            last = max(r[0] for r in runs[job_id])
            assert any(r[0] == last and r[2] == "end" for r in runs[job_id]), job
    completed = sum(1 for j in jobs if sqlite_server.api("GET", f"/jobs/{j}").json()["state"] == "Completed")
    assert completed >= 15, f"only {completed} of 20 completed"

    for worker in (one, two):
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    # A worker starting sweeps what dead ones left (worker1 was killed with -9 above).
    probe = start_worker(sqlite_server, "worker1", "chaos", slots=1)
    probe.send_signal(signal.SIGTERM)
    assert probe.wait(timeout=30) == 0
    leftovers = [p.name for p in default_runtime_dir().iterdir() if p.name != ".lock"]
    assert leftovers == [], leftovers
