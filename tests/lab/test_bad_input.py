"""Bad inputs and an unready machine get one clear line, a documented exit code and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from credo.lab import Lab
from tests.support.identity import credo

ENVIRONMENT_PROBLEM = 3
USAGE = 2


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}
    return env | extra


def assert_one_clear_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_port_taken_names_the_holder(lab: Lab, tmp_path: Path) -> None:
    # The session's lab holds the DC ports on 127.0.0.1: a second lab there cannot start.
    proc = credo("lab", "up", "--dir", tmp_path / "lab", env=clean_env())
    assert_one_clear_error(proc, ENVIRONMENT_PROBLEM, "port", "127.0.0.1 is already taken by samba[", "hint:")
    assert not (tmp_path / "lab" / "samba").exists()
    assert not (tmp_path / "lab" / "lab.json").exists()


def test_missing_samba_names_make_install(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    proc = credo("lab", "up", "--dir", tmp_path / "lab", env=clean_env(PATH=f"{bin_dir}:/nonexistent"))
    assert_one_clear_error(proc, ENVIRONMENT_PROBLEM, "`samba` is not installed", "make install")


def test_stale_pid_file_of_another_process(tmp_path: Path) -> None:
    directory = tmp_path / "lab"
    directory.mkdir()
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        (directory / "samba.pid").write_text(f"{stranger.pid}\n")
        proc = credo("lab", "up", "--dir", directory, env=clean_env())
        assert_one_clear_error(
            proc, ENVIRONMENT_PROBLEM, f"stale PID file {directory}/samba.pid", f"rm {directory}/samba.pid"
        )
        assert stranger.poll() is None  # credo never signals a process that is not its DC
    finally:
        stranger.kill()
        stranger.wait()


def test_pid_file_of_a_dead_process_is_cleared(lab: Lab, tmp_path: Path) -> None:
    directory = tmp_path / "lab"
    directory.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (directory / "samba.pid").write_text(f"{dead.pid}\n")
    proc = credo("lab", "status", "--dir", directory, "--json", env=clean_env())
    assert proc.returncode == 0
    # `up` clears it and goes on (here it stops at the port the session's lab holds).
    proc = credo("lab", "up", "--dir", directory, env=clean_env())
    assert not (directory / "samba.pid").exists()
    assert_one_clear_error(proc, ENVIRONMENT_PROBLEM, "already taken")


def test_unwritable_directory(tmp_path: Path) -> None:
    # As root every directory is writable; a path through a regular file is not, for anyone.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = credo("lab", "up", "--dir", blocker / "lab", env=clean_env())
    assert_one_clear_error(proc, ENVIRONMENT_PROBLEM, f"{blocker}/lab is not writable", "--dir")


def test_unknown_host(lab: Lab) -> None:
    proc = credo("lab", "env", "--host", "worker3", env=clean_env(CREDO_LAB_DIR=str(lab.paths.root)))
    assert_one_clear_error(proc, USAGE, "'worker3' is not one of 'worker1', 'worker2', 'server', 'admin'")


def test_env_of_a_missing_lab(tmp_path: Path) -> None:
    proc = credo("lab", "env", "--host", "worker1", "--dir", tmp_path / "nothing", env=clean_env())
    assert_one_clear_error(proc, ENVIRONMENT_PROBLEM, "no lab in", "credo lab up --dir")


def test_invalid_realm(tmp_path: Path) -> None:
    proc = credo("lab", "up", "--dir", tmp_path / "lab", "--realm", "not a realm", env=clean_env())
    assert_one_clear_error(proc, USAGE, "invalid realm")


def test_non_loopback_address_refused(tmp_path: Path) -> None:
    proc = credo("lab", "up", "--dir", tmp_path / "lab", "--address", "10.1.2.3", env=clean_env())
    assert_one_clear_error(proc, USAGE, "not a loopback address")
