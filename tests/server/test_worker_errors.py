"""A worker's and an admin's mistakes against a real `credo server`: one error line with a hint
that names the right option or name (issue 11, point 9)."""

from __future__ import annotations

import subprocess
import time

from credo.lab import Lab, LabSettings
from tests.cli.test_error_lines import one_error
from tests.server.conftest import Server, create_group, create_runbook, start_job
from tests.support.identity import CREDO, credo, identity_env


def test_a_server_url_by_address_names_the_server_dns_name(sqlite_server: Server, lab: Lab) -> None:
    proc = credo("worker", "--server", f"http://127.0.0.1:{sqlite_server.port}", "--group", "tier1",
                 env=identity_env(lab, "worker1"), timeout=60)  # fmt: skip
    error, hint = one_error(proc, 2)
    assert error.startswith("Kerberos needs the server's DNS name, not the address 127.0.0.1")
    # Every name of the address whose HTTP/ ticket the server accepts is offered; the server's is one.
    assert hint.startswith("use --server ") and sqlite_server.kerberos_url in hint.split()


def test_admin_commands_without_the_right_token_are_exit_5_and_name_no_server_file(
    sqlite_server: Server,
) -> None:
    env = sqlite_server.env() | {"CREDO_TOKEN": "not-the-token"}
    error, hint = one_error(credo("job", "list", env=env), 5)
    assert error == "sign-in required"
    assert str(sqlite_server.data_dir) not in hint and "admin.token" not in hint


def test_the_workers_directory_hint_names_dc_and_ldap_timeout(
    sqlite_server: Server, lab: Lab, lab_settings: LabSettings
) -> None:
    create_runbook(sqlite_server, "hello", "print('hello')\n")
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    log = sqlite_server.log.with_name("worker-bad-dc.log")
    with open(log, "ab") as handle:
        worker = subprocess.Popen(
            [*CREDO, "worker", "--server", sqlite_server.kerberos_url, "--group", "tier1",
             "--dc", "ldap://127.0.0.1:1", "--ldap-timeout", "1"],
            env=identity_env(lab, "worker1"), stdout=handle, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not sqlite_server.api("GET", "/workers").json():
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        # No DC answers: the worker retries within the job's start budget, here its 5 s timeout.
        job = start_job(sqlite_server, "hello", "tier1", timeout_seconds=5)
        sqlite_server.wait_state(job["id"], {"Failed", "Suspended", "Completed"}, timeout=90)
        errors = sqlite_server.output(job["id"], "error")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert (
        "credo: hint: check --dc / CREDO_LDAP_URL, DNS and the network (--ldap-timeout sets the wait)"
        in errors
    )
    assert "--server" not in errors and "--timeout" not in errors.replace("--ldap-timeout", "")
