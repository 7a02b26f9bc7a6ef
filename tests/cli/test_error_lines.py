"""Bad input through the real CLI (`python -m credo`): one error line, one hint, the documented exit
code, no traceback (issue 11, point 9)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from credo.lab import Lab
from tests.support.identity import credo, identity_env


def one_error(proc: subprocess.CompletedProcess[str], exit_code: int) -> tuple[str, str]:
    """(error, hint) of a run that failed the documented way; fails the test otherwise."""
    assert proc.returncode == exit_code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith("credo: error: ") and lines[1].startswith("credo: hint: "), proc.stderr
    return lines[0].removeprefix("credo: error: "), lines[1].removeprefix("credo: hint: ")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}


def test_a_data_dir_under_a_file_is_exit_3(tmp_path: Path) -> None:
    error, hint = one_error(credo("server", "--data-dir", "/etc/hostname/x", env=clean_env()), 3)
    assert error == "cannot create data dir /etc/hostname/x: Not a directory"
    assert "--data-dir" in hint
    (tmp_path / "file").write_text("")
    error, _ = one_error(credo("server", "--data-dir", tmp_path / "file" / "data", env=clean_env()), 3)
    assert error == f"cannot create data dir {tmp_path / 'file' / 'data'}: Not a directory"


def test_a_port_in_use_is_one_line_before_the_server_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = credo("server", "--data-dir", tmp_path / "data", "--listen", f"127.0.0.1:{port}",
                     env=clean_env(), timeout=60)  # fmt: skip
    error, hint = one_error(proc, 3)
    # Refused before anything started: no "credo server on ..." line, no uvicorn [Errno 98].
    assert error == f"cannot listen on 127.0.0.1:{port}: Address already in use"
    assert f"sport = :{port}" in hint and "--listen" in hint


def test_the_directory_hint_names_the_commands_own_options(lab: Lab) -> None:
    proc = credo("gmsa", "show", "svcauto", "--server", "ldap://127.0.0.1:1", "--ldap-timeout", "2",
                 env=identity_env(lab, "worker1"))  # fmt: skip
    error, hint = one_error(proc, 4)
    assert error.startswith("no domain controller answered: ldap://127.0.0.1:1")
    assert hint == "check --server / CREDO_LDAP_URL, DNS and the network (--ldap-timeout sets the wait)"


def test_a_garbage_host_keytab_is_the_local_files_fault(lab: Lab, tmp_path: Path) -> None:
    garbage = tmp_path / "host.keytab"
    # Not a keytab at all, and a keytab header (version 0x502) over garbage: either way the file
    # is at fault (exit 3, naming it), not the KDC (exit 5).
    for content, message in [(b"\x00\x00" + os.urandom(200), f"keytab {garbage} is unusable: "),
                             (b"\x05\x02" + b"\xff" * 200, f"host keytab {garbage} holds no keys")]:  # fmt: skip
        garbage.write_bytes(content)
        for principal in ("WORKER1$@CORP.EXAMPLE.TEST", ""):
            env = identity_env(lab, "worker1", CREDO_HOST_KEYTAB=str(garbage), CREDO_HOST_PRINCIPAL=principal)
            proc = credo("worker", "--server", "http://credo.corp.example.test:1", "--group", "g", env=env)
            error, hint = one_error(proc, 3)
            assert error.startswith(message) and "KDC" not in error, error
            assert hint


def test_a_host_principal_not_in_the_keytab_is_exit_2_with_the_right_one(lab: Lab) -> None:
    env = identity_env(lab, "worker1", CREDO_HOST_PRINCIPAL="NOSUCH$@CORP.EXAMPLE.TEST")
    proc = credo("worker", "--server", "http://credo.corp.example.test:1", "--group", "g", env=env)
    error, hint = one_error(proc, 2)
    assert error.startswith("host principal NOSUCH$@CORP.EXAMPLE.TEST has no keys in host keytab ")
    assert hint.startswith("it holds WORKER1$@CORP.EXAMPLE.TEST: ") and "CREDO_HOST_PRINCIPAL" in hint
