"""Runbooks run as a gMSA by real workers, on SQLite and on PostgreSQL, against the lab DC."""

from __future__ import annotations

import atexit
import json
import shutil
import signal
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from credo.lab import SEED, LabSettings
from tests.server.conftest import Server, create_group, create_runbook, start_job
from tests.support.identity import ldapsearch, run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "runbooks"
DISABLE_USER = (EXAMPLES / "disable_user.py").read_text()
DISABLE_PARAMS = json.loads((EXAMPLES / "disable_user.parameters.json").read_text())

ECHO_PARAMS = textwrap.dedent(
    """
    import json, sys
    from credo import runbook
    sys.stdout.write(json.dumps(runbook.params(), sort_keys=True, ensure_ascii=False))
    """
)


@pytest.fixture
def jdoe_enabled(as_identity: Callable[..., dict[str, str]], lab_settings: LabSettings) -> Any:
    yield
    admin = as_identity("admin")
    run(
        ["samba-tool", "user", "enable", "jdoe", "-H", lab_settings.ldap_url, "--use-kerberos=required"],
        admin,
        check=True,
    )


def jdoe_disabled(as_identity: Callable[..., dict[str, str]]) -> bool:
    [(_, attrs)] = ldapsearch(as_identity("admin"), "(sAMAccountName=jdoe)", "userAccountControl")
    return bool(int(attrs["userAccountControl"][0]) & 2)


def test_main_job_disables_jdoe_as_the_gmsa(
    server: Server,
    start_worker: Callable[..., Any],
    lab_settings: LabSettings,
    as_identity: Any,
    jdoe_enabled: Any,
) -> None:
    create_runbook(server, "disable-user", DISABLE_USER, DISABLE_PARAMS)
    create_group(server, "tier1", ["worker1"], lab_settings.realm)
    start_worker(server, "worker1", "tier1")
    job = start_job(server, "disable-user", "tier1", {"sam_account_name": "jdoe"})
    final = server.wait_state(job["id"], {"Completed", "Failed"})
    assert final["state"] == "Completed", server.output(job["id"])
    assert jdoe_disabled(as_identity)
    assert f"bound as u:{lab_settings.netbios}\\{SEED.gmsa}$" in server.output(job["id"], "verbose")
    assert "disabled CN=jdoe,OU=Staff" in server.output(job["id"], "output")
    assert final["worker"] == f"WORKER1$@{lab_settings.realm}"
    assert [t["state"] for t in final["transitions"]] == ["New", "Queued", "Running", "Completed"]
    assert final["exit_code"] == 0 and final["attempts"] == 1


def test_a_group_served_by_worker2_fails_with_the_reason(
    server: Server, start_worker: Callable[..., Any], lab_settings: LabSettings, as_identity: Any
) -> None:
    create_runbook(server, "disable-user", DISABLE_USER, DISABLE_PARAMS)
    create_group(server, "tier2", ["worker2"], lab_settings.realm)
    start_worker(server, "worker2", "tier2")
    job = start_job(server, "disable-user", "tier2", {"sam_account_name": "jdoe"})
    final = server.wait_state(job["id"], {"Completed", "Failed"})
    assert final["state"] == "Failed"
    errors = server.output(job["id"], "error")
    assert "WORKER2$ is not permitted to retrieve the managed password of svcauto$" in errors
    assert "HybridWorkers" in errors
    assert not jdoe_disabled(as_identity)


INJECTIONS = {
    "quotes": 'it\'s "quoted" \'\'\' """',
    "newlines": "line1\nline2\r\nimport os; os.system('id')",
    "subshell": "$(touch /tmp/credo-pwned) `id` ${HOME}",
    "binaryish": "\x01\x02\x7f\u00ff\ufffd\x1b[31m\\x00\\",
    "json": '{"sam_account_name": "x"}, "evil": 1',
}


def test_parameters_arrive_byte_exact_as_data(
    server: Server, start_worker: Callable[..., Any], lab_settings: LabSettings
) -> None:
    params = [{"name": name, "type": "string", "required": True} for name in INJECTIONS]
    params.append({"name": "count", "type": "int", "default": 3})
    params.append({"name": "tags", "type": "array"})
    create_runbook(server, "echo", ECHO_PARAMS, params)
    create_group(server, "tier1", ["worker1"], lab_settings.realm)
    start_worker(server, "worker1", "tier1")
    values = dict(INJECTIONS) | {"tags": ["a", "$(b)"]}
    job = start_job(server, "echo", "tier1", values)
    final = server.wait_state(job["id"], {"Completed", "Failed"})
    assert final["state"] == "Completed", server.output(job["id"])
    assert json.loads(server.output(job["id"], "output")) == values | {"count": 3}
    assert not __import__("os").path.exists("/tmp/credo-pwned")


@pytest.mark.parametrize(
    ("values", "status", "field"),
    [
        ({}, 422, "sam_account_name"),
        ({"sam_account_name": 5}, 422, "sam_account_name"),
        ({"sam_account_name": "x", "extra": 1}, 422, "extra"),
        ({"sam_account_name": "x" * (600 * 1024)}, 422, None),
    ],
)
def test_parameter_validation(
    sqlite_server: Server, lab_settings: LabSettings, values: dict[str, Any], status: int, field: str | None
) -> None:
    create_runbook(sqlite_server, "disable-user", DISABLE_USER, DISABLE_PARAMS)
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    response = sqlite_server.api(
        "POST", "/jobs", json={"runbook": "disable-user", "group": "tier1", "parameters": values}
    )
    assert response.status_code == status, response.text
    problem = response.json()
    if field:
        assert problem["field"] == field
        assert field in problem["title"]
    else:
        assert "512 KB" in problem["title"]


def test_idempotency_key(sqlite_server: Server, lab_settings: LabSettings) -> None:
    create_runbook(sqlite_server, "echo", ECHO_PARAMS)
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    first = start_job(sqlite_server, "echo", "tier1", idempotency_key="ticket-42")
    again = sqlite_server.api(
        "POST", "/jobs", json={"runbook": "echo", "group": "tier1", "idempotency_key": "ticket-42"}
    )
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]


SLEEPER = "import time, sys\nprint('started', flush=True)\ntime.sleep(60)\n"


def test_stop_terminates_within_5_seconds(
    server: Server, start_worker: Callable[..., Any], lab_settings: LabSettings
) -> None:
    create_runbook(server, "sleeper", SLEEPER)
    create_group(server, "tier1", ["worker1"], lab_settings.realm)
    start_worker(server, "worker1", "tier1")
    job = start_job(server, "sleeper", "tier1")
    server.wait_state(job["id"], {"Running"})
    deadline = time.monotonic() + 20
    while "started" not in server.output(job["id"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    asked = time.monotonic()
    assert server.api("POST", f"/jobs/{job['id']}/stop").json()["state"] == "Stopping"
    final = server.wait_state(job["id"], {"Stopped", "Completed", "Failed"}, timeout=30)
    assert final["state"] == "Stopped"
    assert time.monotonic() - asked < 5 + 2  # the worker learns within a heartbeat (1 s)


def test_timeout(sqlite_server: Server, start_worker: Callable[..., Any], lab_settings: LabSettings) -> None:
    create_runbook(sqlite_server, "sleeper", SLEEPER)
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    start_worker(sqlite_server, "worker1", "tier1")
    job = start_job(sqlite_server, "sleeper", "tier1", timeout_seconds=2)
    final = sqlite_server.wait_state(job["id"], {"Failed", "Completed", "Stopped"}, timeout=30)
    assert final["state"] == "Failed"
    assert final["reason"] == "timed out after 2 s"


OVERLAP_PROBE = textwrap.dedent(
    """
    import os, time
    from credo import runbook
    marker = runbook.params()["marker"]
    try:
        previous = int(open(marker).read())
    except FileNotFoundError:
        previous = None
    if previous is not None:
        try:
            os.kill(previous, 0)
            print("OVERLAP: attempt before is still running", flush=True)
        except ProcessLookupError:
            print("previous attempt is gone", flush=True)
    with open(marker, "w") as f:
        f.write(str(os.getpid()))
    print("running in", os.getpid(), flush=True)
    time.sleep(4 if previous is not None else 60)
    print("finished", flush=True)
    """
)


def test_worker_killed_mid_job_restarts_elsewhere_never_twice(
    server: Server, start_worker: Callable[..., Any], lab_settings: LabSettings, tmp_path: Any
) -> None:
    shared = Path(tempfile.mkdtemp(prefix="credo-test-probe-"))
    atexit.register(shutil.rmtree, shared, True)
    shared.chmod(0o777)  # the job runs as the unprivileged runner user
    marker = shared / "pid"
    create_runbook(server, "probe", OVERLAP_PROBE, [{"name": "marker", "type": "string", "required": True}])
    # No gMSA: this is about the queue, both hosts may serve the group.
    create_group(server, "pool", ["worker1", "worker2"], lab_settings.realm, run_as=None)
    first = start_worker(server, "worker1", "pool")
    job = start_job(server, "probe", "pool", {"marker": str(marker)})
    running = server.wait_state(job["id"], {"Running"})
    assert running["worker"].startswith("WORKER1$")
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, server.output(job["id"])
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    start_worker(server, "worker2", "pool")
    final = server.wait_state(job["id"], {"Completed", "Failed", "Suspended"}, timeout=60)
    output = server.output(job["id"])
    assert final["state"] == "Completed", output
    assert "OVERLAP" not in output and "previous attempt is gone" in output
    assert final["attempts"] == 2
    assert final["worker"].startswith("WORKER2$")
    states = [(t["state"], t["attempt"]) for t in final["transitions"]]
    assert states == [
        ("New", 0),
        ("Queued", 0),
        ("Running", 1),
        ("Queued", 1),
        ("Running", 2),
        ("Completed", 2),
    ]


def test_server_restart_mid_job(
    sqlite_server: Server, start_worker: Callable[..., Any], lab_settings: LabSettings
) -> None:
    # The worker keeps its job through the restart only while it can still renew the lease in time
    # (LeasePolicy.kill_after); a longer outage kills the job, which then runs again.
    sqlite_server.stop()
    sqlite_server.lease_seconds = 20
    sqlite_server.start()
    runbook = "import time\nprint('begin', flush=True)\ntime.sleep(5)\nprint('end', flush=True)\n"
    create_runbook(sqlite_server, "slow", runbook)
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    start_worker(sqlite_server, "worker1", "tier1")
    job = start_job(sqlite_server, "slow", "tier1")
    sqlite_server.wait_state(job["id"], {"Running"})
    sqlite_server.stop()
    time.sleep(1)
    sqlite_server.start()
    final = sqlite_server.wait_state(job["id"], {"Completed", "Failed", "Suspended"}, timeout=60)
    assert final["state"] == "Completed", sqlite_server.output(job["id"])
    assert final["attempts"] == 1
    assert "begin" in sqlite_server.output(job["id"]) and "end" in sqlite_server.output(job["id"])


def test_streams_sequence_and_sse(
    sqlite_server: Server, start_worker: Callable[..., Any], lab_settings: LabSettings
) -> None:
    script = textwrap.dedent(
        """
        import sys
        from credo import runbook
        for i in range(3):
            print("out", i, flush=True)
        print("oops", file=sys.stderr, flush=True)
        runbook.write_warning("w1"); runbook.write_verbose("v1"); runbook.write_progress("half", percent=50); runbook.write_debug("d1")
        sys.stdout.write("x" * (1024 * 1024 + 10)); sys.stdout.flush()
        """
    )
    create_runbook(sqlite_server, "streams", script)
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    start_worker(sqlite_server, "worker1", "tier1")
    job = start_job(sqlite_server, "streams", "tier1")
    sqlite_server.wait_state(job["id"], {"Completed"})
    assert sqlite_server.output(job["id"], "error") == "oops\n"
    assert sqlite_server.output(job["id"], "warning") == "w1\n"
    assert sqlite_server.output(job["id"], "verbose") == "v1\n"
    assert sqlite_server.output(job["id"], "progress") == "half (50%)\n"
    assert sqlite_server.output(job["id"], "debug") == "d1\n"
    out = sqlite_server.output(job["id"], "output")
    assert out.startswith("out 0\nout 1\nout 2\n")
    assert out.endswith("[credo: stream truncated at 1 MiB]\n")
    page = sqlite_server.api(
        "GET", f"/jobs/{job['id']}/output", params={"stream": "output", "after": 0}
    ).json()
    assert [c["seq"] for c in page["chunks"]] == list(range(1, len(page["chunks"]) + 1))
    with sqlite_server.http.stream(
        "GET", f"/api/v1/jobs/{job['id']}/output/events", params={"stream": "warning"}
    ) as events:
        text = "".join(events.iter_text())
    assert "event: chunk" in text and '"w1\\n"' in text and "event: end" in text
