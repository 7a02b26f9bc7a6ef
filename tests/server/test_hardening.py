"""Issue 11's delivery rules, tried from outside with real processes and signals: a stalled worker
is fenced before another runs its job, SIGTERM drains, a restarted worker takes jobs at once,
bad groups are refused, queued jobs time out, suspended jobs resume, a DC outage is ridden out."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from credo.lab import Lab, LabSettings
from tests.server import ledger
from tests.server.conftest import Server, create_group, create_runbook, start_job
from tests.support.identity import CREDO, run
from tests.support.relay import TcpRelay

Start = Callable[..., subprocess.Popen[bytes]]


def ticker(
    server: Server, group: str = "g", hosts: tuple[str, ...] = ("worker1", "worker2"), **group_extra: Any
) -> None:
    create_runbook(server, "ticker", ledger.TICKER, ledger.TICKER_PARAMS)
    create_group(server, group, list(hosts), server_realm(server), run_as=None, **group_extra)


def server_realm(server: Server) -> str:
    return server.kerberos_url.split("//")[1].split(":")[0].split(".", 1)[1].upper()


def attempts(job: dict[str, Any]) -> int:
    return int(job["attempts"])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_stalled_worker_kills_its_job_before_another_worker_runs_it(
    sqlite_server: Server, start_worker: Start
) -> None:
    ticker(sqlite_server)
    path = ledger.new_ledger()
    first = start_worker(sqlite_server, "worker1", "g", slots=1)
    job = start_job(sqlite_server, "ticker", "g", {"ledger": str(path), "seconds": 8})
    sqlite_server.wait_state(job["id"], {"Running"})
    start_worker(sqlite_server, "worker2", "g", slots=1)
    time.sleep(1)
    policy_lease = sqlite_server.lease_seconds
    os.kill(first.pid, signal.SIGSTOP)
    try:
        time.sleep(policy_lease + max(1.0, policy_lease / 4) + 3)  # past the lease and the takeover grace
    finally:
        os.kill(first.pid, signal.SIGCONT)
    final = sqlite_server.wait_state(job["id"], {"Completed", "Failed", "Suspended", "Stopped"}, timeout=60)
    assert final["state"] == "Completed" and attempts(final) == 2, final
    assert ledger.overlaps(path) == []
    runs = ledger.read(path)[job["id"]]
    first_run = [r for r in runs if r[0] == 1]
    assert first_run and all(r[2] != "end" for r in first_run), "the stalled attempt must not run to its end"
    second_start = min(r[3] for r in runs if r[0] == 2)
    assert max(r[3] for r in first_run) < second_start
    assert any("the worker was lost" in (t["detail"] or "") for t in final["transitions"])
    assert first.poll() is None, "the stalled worker goes on after SIGCONT"
    assert "killed job process group" in first.log.read_text()  # type: ignore[attr-defined]


def test_sigterm_idle_worker_exits_within_a_second(sqlite_server: Server, start_worker: Start) -> None:
    ticker(sqlite_server)
    worker = start_worker(sqlite_server, "worker1", "g")
    time.sleep(0.5)  # its long-poll is pending
    began = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    assert time.monotonic() - began < 1.0
    [row] = [w for w in sqlite_server.api("GET", "/workers").json() if w["principal"].startswith("WORKER1")]
    assert row["status"] == "offline"


def test_sigterm_takes_no_new_job_and_lets_running_ones_finish(
    sqlite_server: Server, start_worker: Start
) -> None:
    ticker(sqlite_server)
    path = ledger.new_ledger()
    worker = start_worker(sqlite_server, "worker1", "g", slots=2)
    running = start_job(sqlite_server, "ticker", "g", {"ledger": str(path), "seconds": 3})
    sqlite_server.wait_state(running["id"], {"Running"})
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    late = start_job(sqlite_server, "ticker", "g", {"ledger": str(path), "seconds": 0.2})
    time.sleep(1)
    assert sqlite_server.api("GET", f"/jobs/{late['id']}").json()["state"] == "Queued"
    assert worker.wait(timeout=20) == 0
    assert sqlite_server.api("GET", f"/jobs/{running['id']}").json()["state"] == "Completed"
    start_worker(sqlite_server, "worker2", "g")
    final = sqlite_server.wait_state(late["id"], {"Completed", "Failed"})
    assert final["state"] == "Completed" and final["worker"].startswith("WORKER2$"), final


def test_after_the_drain_grace_running_jobs_are_handed_back(
    sqlite_server: Server, start_worker: Start
) -> None:
    ticker(sqlite_server)
    path = ledger.new_ledger()
    worker = start_worker(sqlite_server, "worker1", "g", extra=("--drain-grace", "1"))
    job = start_job(sqlite_server, "ticker", "g", {"ledger": str(path), "seconds": 0.5, "until_attempt": 2})
    sqlite_server.wait_state(job["id"], {"Running"})
    began = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    assert time.monotonic() - began < 1 + 5 + 3  # grace, the job's SIGTERM grace, the reports
    queued = sqlite_server.api("GET", f"/jobs/{job['id']}").json()
    assert queued["state"] == "Queued", queued
    assert "handed back by its worker" in queued["transitions"][-1]["detail"]
    start_worker(sqlite_server, "worker2", "g")
    final = sqlite_server.wait_state(job["id"], {"Completed", "Failed"})
    assert final["state"] == "Completed" and attempts(final) == 2
    assert ledger.overlaps(path) == []


def test_a_restarted_worker_requeues_its_dead_jobs_at_once(
    sqlite_server: Server, start_worker: Start
) -> None:
    sqlite_server.stop()
    sqlite_server.lease_seconds = 30  # a lease expiry would take 30 s: the restart must not wait for it
    sqlite_server.start()
    ticker(sqlite_server, hosts=("worker1",), max_concurrent=1)
    path = ledger.new_ledger()
    worker = start_worker(sqlite_server, "worker1", "g", slots=1)
    job = start_job(sqlite_server, "ticker", "g", {"ledger": str(path), "seconds": 0.5, "until_attempt": 2})
    sqlite_server.wait_state(job["id"], {"Running"})
    worker.kill()
    worker.wait()
    began = time.monotonic()
    start_worker(sqlite_server, "worker1", "g", slots=1)
    final = sqlite_server.wait_state(job["id"], {"Completed", "Failed"}, timeout=20)
    assert final["state"] == "Completed" and attempts(final) == 2
    assert time.monotonic() - began < 10
    assert any("its worker restarted" in (t["detail"] or "") for t in final["transitions"])
    assert ledger.overlaps(path) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"run_as": "../../x"}, "managed service account name"),
        ({"local_user": "root;id"}, "invalid local user name"),
        ({"local_user": "root"}, "system account"),
        ({"workers": ["x"]}, "invalid worker principal"),
        ({"workers": []}, "names no worker"),
    ],
)
def test_group_fields_are_validated(
    sqlite_server: Server, lab_settings: LabSettings, body: dict[str, Any], field: str
) -> None:
    base = {
        "name": "g",
        "run_as": "svcauto",
        "local_user": "credo-runner",
        "workers": [f"WORKER1$@{lab_settings.realm}"],
    }
    response = sqlite_server.api("POST", "/groups", json=base | body)
    assert response.status_code == 422, response.text
    assert field in response.json()["title"]
    assert sqlite_server.api("GET", "/groups").json() == []


def test_root_needs_the_groups_explicit_permission(
    sqlite_server: Server, start_worker: Start, lab_settings: LabSettings
) -> None:
    allowed = {
        "name": "rooted",
        "local_user": "root",
        "allow_system_user": True,
        "workers": [f"WORKER1$@{lab_settings.realm}"],
    }
    assert sqlite_server.api("POST", "/groups", json=allowed).status_code == 201
    # No local user: jobs would run as the worker's own user, root here: refused at the worker.
    create_group(sqlite_server, "g", ["worker1"], lab_settings.realm, run_as=None, local_user=None)
    create_runbook(sqlite_server, "hello", "print('hello')\n")
    start_worker(sqlite_server, "worker1", "g")
    job = start_job(sqlite_server, "hello", "g")
    final = sqlite_server.wait_state(job["id"], {"Completed", "Failed"})
    assert final["state"] == "Failed"
    assert "system account" in final["reason"]
    assert "--allow-system-user" in sqlite_server.output(job["id"], "error")


def test_a_job_no_worker_takes_fails_at_its_timeout(sqlite_server: Server, lab_settings: LabSettings) -> None:
    create_group(sqlite_server, "g", ["worker1"], lab_settings.realm)
    create_runbook(sqlite_server, "hello", "print('hello')\n")
    job = start_job(sqlite_server, "hello", "g", timeout_seconds=2)
    final = sqlite_server.wait_state(job["id"], {"Failed"}, timeout=15)
    assert "no worker took the job within its timeout of 2 s" in final["reason"]
    assert "none of its workers is online" in final["reason"]


def test_a_suspended_job_resumes(sqlite_server: Server, start_worker: Start) -> None:
    ticker(sqlite_server, hosts=("worker1",))
    path = ledger.new_ledger()
    job = start_job(sqlite_server, "ticker", "g", {"ledger": str(path), "seconds": 0.2, "until_attempt": 4})
    for attempt in (1, 2, 3):
        worker = start_worker(sqlite_server, "worker1", "g")
        wait_for(lambda a=attempt: attempts(sqlite_server.api("GET", f"/jobs/{job['id']}").json()) == a
                 and sqlite_server.api("GET", f"/jobs/{job['id']}").json()["state"] == "Running", 30, f"attempt {attempt}")  # fmt: skip
        worker.kill()
        worker.wait()
    start_worker(sqlite_server, "worker1", "g")  # its registration ends attempt 3: Suspended
    suspended = sqlite_server.wait_state(job["id"], {"Suspended"}, timeout=20)
    assert attempts(suspended) == 3
    resumed = run([*CREDO, "job", "resume", job["id"], "--json"], sqlite_server.env())
    assert resumed.returncode == 0, resumed.stderr
    final = sqlite_server.wait_state(job["id"], {"Completed", "Failed", "Suspended"})
    assert final["state"] == "Completed" and attempts(final) == 4
    again = run([*CREDO, "job", "resume", job["id"]], sqlite_server.env())
    assert again.returncode == 1 and "only a Suspended job can be resumed" in again.stderr
    assert ledger.overlaps(path) == []


def test_a_dc_outage_at_job_start_is_ridden_out(
    sqlite_server: Server, start_worker: Start, lab: Lab, lab_settings: LabSettings, tmp_path: Path
) -> None:
    kdc, ldap = TcpRelay(("127.0.0.1", 88)), TcpRelay(("127.0.0.1", 389))
    krb5_conf = tmp_path / "krb5.conf"
    text = lab.paths.krb5_conf.read_text().replace("kdc = 127.0.0.1", f"kdc = 127.0.0.1:{kdc.port}")
    krb5_conf.write_text(text.replace("[libdefaults]", "[libdefaults]\n    udp_preference_limit = 1", 1))
    try:
        create_group(sqlite_server, "g", ["worker1"], lab_settings.realm)
        create_runbook(sqlite_server, "hello", "print('hello as the gMSA')\n")
        start_worker(sqlite_server, "worker1", "g", env={"KRB5_CONFIG": str(krb5_conf),
                     "CREDO_LDAP_URL": f"ldap://{lab_settings.dc_fqdn}:{ldap.port}"})  # fmt: skip
        kdc.cut()
        ldap.cut()
        # An outage longer than the job's start budget (here its 3 s timeout) fails it, saying why.
        short = start_job(sqlite_server, "hello", "g", timeout_seconds=3)
        failed = sqlite_server.wait_state(short["id"], {"Completed", "Failed"})
        assert failed["state"] == "Failed"
        assert "within the job's start budget" in failed["reason"]
        assert "retrying" in sqlite_server.output(short["id"], "warning")
        # A shorter one is ridden out.
        job = start_job(sqlite_server, "hello", "g")
        time.sleep(3)
        kdc.restore()
        ldap.restore()
        final = sqlite_server.wait_state(job["id"], {"Completed", "Failed"})
        assert final["state"] == "Completed", sqlite_server.output(job["id"])
        assert "retrying" in sqlite_server.output(job["id"], "warning")
        assert sqlite_server.output(job["id"], "output") == "hello as the gMSA\n"
    finally:
        kdc.cut()
        ldap.cut()


def test_sigterm_taken_by_any_thread_drains_at_once(sqlite_server: Server, start_worker: Start) -> None:
    """The kernel may hand a process's signal to any of its threads; a long-poll blocked in the
    main thread must still end at once. tgkill(2) aims SIGTERM at a thread that is not the main one."""
    import ctypes

    ticker(sqlite_server)
    worker = start_worker(sqlite_server, "worker1", "g")
    time.sleep(0.5)  # its long-poll is pending
    threads = [int(t) for t in os.listdir(f"/proc/{worker.pid}/task") if int(t) != worker.pid]
    assert threads
    libc = ctypes.CDLL(None, use_errno=True)
    began = time.monotonic()
    assert libc.syscall(234, worker.pid, threads[0], signal.SIGTERM) == 0  # SYS_tgkill on x86-64
    assert worker.wait(timeout=10) == 0
    assert time.monotonic() - began < 1.5
