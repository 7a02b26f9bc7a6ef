"""Two real `credo server` replicas on one PostgreSQL, behind HAProxy, with real workers (issue 16
point 1): one worker reaches them through HAProxy, the other is given both URLs. Jobs submitted
through either replica run; a job's live output (SSE) follows on the replica that did not start
it; a replica killed with -9 loses no job, and the workers carry on through the other."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from credo.lab import LabSettings
from tests.server.conftest import (
    Server,
    _make_server,
    create_group,
    create_runbook,
    free_port,
    fresh_pg_database,
)
from tests.support.haproxy import Haproxy

pytestmark = pytest.mark.lab

STEPS = """\
import time
from credo import runbook
print("one", flush=True)
time.sleep(runbook.params()["seconds"])
print("two", flush=True)
"""
FINAL = {"Completed", "Failed", "Stopped", "Suspended"}


def _replicas(
    tmp_path: Path, url: str, keytab: Path, settings: LabSettings, count: int, lease_seconds: float = 4.0
) -> list[Server]:
    replicas = []
    for i in range(count):
        replica = _make_server(tmp_path, url, keytab, settings)  # one data dir: the shared key files
        replica.log = tmp_path / f"server{i}.log"
        replica.lease_seconds = lease_seconds
        replicas.append(replica)
    # Started at once, as a service manager would: their migrations must not collide.
    threads = [threading.Thread(target=r.start) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for replica in replicas:
        assert replica.process is not None and replica.process.poll() is None, replica.log.read_text()
    return replicas


def _submit(server: Server, count: int, seconds: float = 0) -> list[str]:
    jobs = []
    for _ in range(count):
        body = {"runbook": "steps", "group": "scale", "parameters": {"seconds": seconds}}
        answer = server.api("POST", "/jobs", json=body)
        assert answer.status_code == 201, answer.text
        jobs.append(answer.json()["id"])
    return jobs


def _all_final(server: Server, jobs: list[str], timeout: float = 90) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        states = {job: server.api("GET", f"/jobs/{job}").json()["state"] for job in jobs}
        if all(state in FINAL for state in states.values()):
            return states
        assert time.monotonic() < deadline, states
        time.sleep(0.2)


def test_replicas_behind_haproxy_and_a_worker_given_both_urls(
    tmp_path: Path,
    postgres_url: str,
    server_keytab: Path,
    lab_settings: LabSettings,
    runner_user: str,
    start_worker: Callable[..., subprocess.Popen[bytes]],
) -> None:
    replicas = _replicas(tmp_path, fresh_pg_database(postgres_url), server_keytab, lab_settings, 2)
    proxy = Haproxy(free_port(), [r.port for r in replicas])
    proxy.start()
    try:
        first, second = replicas
        create_runbook(first, "steps", STEPS, [{"name": "seconds", "type": "number", "default": 0}])
        create_group(
            first, "scale", ["worker1", "worker2"], lab_settings.realm, run_as=None, max_concurrent=8
        )
        fqdn = lab_settings.server_fqdn
        through_proxy = SimpleNamespace(kerberos_url=f"http://{fqdn}:{proxy.port}")
        both_urls = SimpleNamespace(kerberos_url=",".join(f"http://{fqdn}:{r.port}" for r in replicas))
        one = start_worker(through_proxy, "worker1", "scale", slots=2)
        two = start_worker(both_urls, "worker2", "scale", slots=2)
        for worker in (one, two):
            assert worker.poll() is None, worker.log.read_text()  # type: ignore[attr-defined]

        # Jobs submitted through either replica run, on both workers.
        jobs = _submit(first, 4) + _submit(second, 4)
        assert set(_all_final(second, jobs).values()) == {"Completed"}
        assert second.output(jobs[0]) == "one\ntwo\n"
        ran_on = {first.api("GET", f"/jobs/{job}").json()["worker"] for job in jobs}
        assert len(ran_on) == 2, ran_on

        # The live output of a job started through one replica, read on the other.
        (slow,) = _submit(first, 1, seconds=1.5)
        events = []
        with httpx.stream(
            "GET", f"{second.url}/api/v1/jobs/{slow}/output/events",
            headers={"Authorization": f"Bearer {second.token}"}, timeout=30,
        ) as feed:  # fmt: skip
            kind = ""
            for line in feed.iter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append(json.loads(line.removeprefix("data: ")))
                    if kind == "end":
                        break
        assert [e.get("text") for e in events[:2]] == ["one\n", "two\n"], events
        assert events[-1] == {"state": "Completed"}

        # A replica killed with -9: the jobs still run, through HAProxy and through the other URL.
        first.stop(signal.SIGKILL)
        jobs = _submit(second, 6, seconds=0.2)
        assert set(_all_final(second, jobs).values()) == {"Completed"}
        for job in jobs:
            history = second.api("GET", f"/jobs/{job}").json()["transitions"]
            assert [h["state"] for h in history] == ["New", "Queued", "Running", "Completed"], history
        assert one.poll() is None and two.poll() is None
        # The worker given both URLs was on the first (it moves only on a failure), and moved.
        log = two.log.read_text()  # type: ignore[attr-defined]
        assert f"trying http://{fqdn}:{second.port}" in log, log[-3000:]
    finally:
        proxy.stop()
        for replica in replicas:
            replica.stop()
