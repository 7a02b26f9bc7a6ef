"""Job directories without a server: the sweep after SIGKILL, modes whatever the umask, refusals."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from credo.errors import EnvironmentProblem
from credo.gmsa.runas import local_account
from credo.worker.jobfiles import JOB_GID_RANGE, RuntimeDirectory, write_private_file

HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="credo-test-jobfiles-")) / "worker"
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


def test_sweep_removes_only_what_no_live_process_holds(root: Path) -> None:
    runtime = RuntimeDirectory(root)
    live, dead = root / "live", root / "dead"
    for path in (live, dead):
        path.mkdir()
        (path / "krb5cc").write_bytes(b"ticket")
    holders = [
        subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(p)], stdout=subprocess.PIPE)
        for p in (live, dead)
    ]
    try:
        for holder in holders:
            assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        assert runtime.sweep() == 0
        holders[1].send_signal(signal.SIGKILL)  # the kernel drops its flock
        holders[1].wait()
        assert runtime.sweep() == 1
        assert live.exists() and not dead.exists()
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
    assert RuntimeDirectory(root) is not None and not live.exists()  # a new worker sweeps at start


def test_job_directory_is_private_and_removed(root: Path) -> None:
    runtime = RuntimeDirectory(root)
    assert stat.S_IMODE(root.stat().st_mode) == (0o711 if os.geteuid() == 0 else 0o700)
    account = local_account(None)
    with runtime.job_directory(account, private_group=os.geteuid() == 0) as files:
        info = files.path.stat()
        if os.geteuid() == 0:
            assert files.private_gid in JOB_GID_RANGE and info.st_gid == files.private_gid
            assert stat.S_IMODE(info.st_mode) == 0o2770 and info.st_uid == 0
        else:
            assert files.private_gid is None and stat.S_IMODE(info.st_mode) == 0o700
        path = files.write("parameters.json", b"{}")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with pytest.raises(FileExistsError):
            files.write("parameters.json", b"again")  # O_EXCL: never through a planted file
    assert not files.path.exists()


def test_files_get_their_mode_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)  # this test process is single-threaded here
    try:
        write_private_file(tmp_path / "f", b"x", os.geteuid(), os.getegid())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o600
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(OSError):
        write_private_file(tmp_path / "link", b"x", os.geteuid(), os.getegid())
    assert not (tmp_path / "target").exists()


def test_a_runtime_directory_others_may_write_to_is_refused(root: Path) -> None:
    root.mkdir(parents=True)
    root.chmod(0o777)
    with pytest.raises(EnvironmentProblem) as caught:
        RuntimeDirectory(root)
    assert "CREDO_WORKER_RUNTIME_DIR" in (caught.value.hint or "")
