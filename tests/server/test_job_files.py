"""A job's files (script, parameters, gMSA ccache) with a real server, real workers and the lab DC:
only that job can reach them, they are 0600 whatever the timing, a killed worker's are removed by
the next worker, and the job's ticket lives no longer than its timeout needs."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from credo.lab import SEED, LabSettings
from credo.worker.jobfiles import JOB_GID_RANGE
from tests.server.conftest import RUNNER, Server, create_group, create_runbook, start_job

ROOT = Path(__file__).resolve().parents[2]
MARGIN = 300  # GmsaTickets.MARGIN


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A runtime directory of the test's own: other tests' workers share the default one."""
    # Not under pytest's tmp_path (0700): the jobs' users must pass through to their directories.
    path = Path(tempfile.mkdtemp(prefix="credo-test-runtime-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the test and the jobs (the unprivileged runner user) all write to."""
    path = Path(tempfile.mkdtemp(prefix="credo-test-shared-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return result


def held_by_a_live_process(path: Path) -> bool:
    """Whether someone holds the flock of ``path`` (a worker keeps one on each of its directories)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


SLEEP_WITH_FILES = textwrap.dedent(
    """
    import json, os, time
    print(json.dumps({"ccache": os.environ["KRB5CCNAME"].removeprefix("FILE:"),
                      "parameters": os.environ["CREDO_PARAMETERS"]}), flush=True)
    time.sleep(120)
    """
)


def test_a_killed_workers_job_files_are_gone_after_restart(
    sqlite_server: Server, start_worker: Callable[..., Any], lab_settings: LabSettings, runtime_dir: Path
) -> None:
    create_runbook(sqlite_server, "sleeper", SLEEP_WITH_FILES)
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    env = {"CREDO_WORKER_RUNTIME_DIR": str(runtime_dir)}
    first = start_worker(sqlite_server, "worker1", "tier1", env=env)
    job = start_job(sqlite_server, "sleeper", "tier1")
    line = wait_for(lambda: sqlite_server.output(job["id"]), "the job's first line")
    paths = json.loads(line.splitlines()[0])
    ccache, parameters = Path(paths["ccache"]), Path(paths["parameters"])
    job_dir = ccache.parent
    assert job_dir.parent == runtime_dir and parameters.parent == job_dir

    first.send_signal(signal.SIGKILL)
    first.wait()
    # What the issue saw: the dead worker's ccache and parameters stay on disk...
    assert ccache.exists() and parameters.exists()
    assert not held_by_a_live_process(job_dir)

    second = start_worker(sqlite_server, "worker1", "tier1", env=env)
    # ...until the next worker starts: it sweeps before it registers. (start_worker cannot tell
    # the new registration from the dead worker's, hence the wait.)
    wait_for(lambda: not job_dir.exists() or second.poll() is not None, "the sweep", timeout=30)
    assert second.poll() is None, second.log.read_text()
    assert not ccache.exists() and not parameters.exists()
    # Nothing but the live worker's: every directory left is locked by it (its helper library,
    # and the retried job's directory once the dead lease expires).
    for entry in runtime_dir.iterdir():
        if entry.name != ".lock":
            assert entry.is_dir() and held_by_a_live_process(entry), entry
    sqlite_server.api("POST", f"/jobs/{job['id']}/stop")


PEEK = textwrap.dedent(
    """
    import json, os, time
    from pathlib import Path
    from credo import runbook
    p = runbook.params()
    shared, me, other = Path(p["shared"]), p["me"], p["other"]
    mine = {"ccache": os.environ["KRB5CCNAME"].removeprefix("FILE:"),
            "parameters": os.environ["CREDO_PARAMETERS"]}
    mine["runbook"] = str(Path(mine["parameters"]).with_name("runbook.py"))
    mine["directory"] = str(Path(mine["parameters"]).parent)
    (shared / f".{me}").write_text(json.dumps(mine))
    (shared / f".{me}").rename(shared / me)
    deadline = time.time() + 30
    while not (shared / other).exists() and time.time() < deadline:
        time.sleep(0.05)
    theirs = json.loads((shared / other).read_text())
    print("uid", os.getuid())
    for what, path in sorted(theirs.items()):
        try:
            os.listdir(path) if what == "directory" else open(path, "rb").read()
            print(what, "READ")
        except PermissionError:
            print(what, "EACCES")
        except OSError as exc:
            print(what, type(exc).__name__)
    for what in ("ccache", "parameters", "runbook"):
        open(mine[what], "rb").read()
    print("own files readable")
    # Keep this job's files until the other job has tried them.
    (shared / f"{me}.done").touch()
    while not (shared / f"{other}.done").exists() and time.time() < deadline:
        time.sleep(0.05)
    """
)


def test_two_jobs_as_the_same_user_cannot_read_each_others_files(
    sqlite_server: Server,
    start_worker: Callable[..., Any],
    lab_settings: LabSettings,
    runtime_dir: Path,
    shared_dir: Path,
) -> None:
    params = [{"name": n, "type": "string", "required": True} for n in ("shared", "me", "other")]
    create_runbook(sqlite_server, "peek", PEEK, params)
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    start_worker(
        sqlite_server, "worker1", "tier1", slots=2, env={"CREDO_WORKER_RUNTIME_DIR": str(runtime_dir)}
    )
    jobs = [
        start_job(sqlite_server, "peek", "tier1", {"shared": str(shared_dir), "me": me, "other": other})
        for me, other in (("a", "b"), ("b", "a"))
    ]
    outputs = []
    for job in jobs:
        final = sqlite_server.wait_state(job["id"], {"Completed", "Failed"})
        output = sqlite_server.output(job["id"])
        assert final["state"] == "Completed", output + sqlite_server.output(job["id"], "error")
        outputs.append(output)
    runner_uid = __import__("pwd").getpwnam(RUNNER).pw_uid
    for output in outputs:
        assert f"uid {runner_uid}\n" in output  # both jobs are the same local user
        for what in ("ccache", "directory", "parameters", "runbook"):
            assert f"{what} EACCES\n" in output, output
        assert "own files readable" in output


STAT_FILES = textwrap.dedent(
    """
    import json, os, stat, sys, time
    from pathlib import Path
    from credo import runbook
    p = runbook.params()
    shared = Path(p["shared"])
    (shared / os.environ["CREDO_JOB_ID"]).touch()
    deadline = time.time() + 30  # all jobs at once: the gids must differ
    while len(list(shared.iterdir())) < p["count"] and time.time() < deadline:
        time.sleep(0.05)
    files = {"runbook": sys.argv[0], "parameters": os.environ["CREDO_PARAMETERS"],
             "ccache": os.environ["KRB5CCNAME"].removeprefix("FILE:")}
    modes = {name: oct(stat.S_IMODE(os.stat(path).st_mode)) for name, path in files.items()}
    owners = {name: os.stat(path).st_uid for name, path in files.items()}
    directory = os.stat(os.path.dirname(files["parameters"]))
    print(json.dumps({"modes": modes, "owners": owners, "uid": os.getuid(),
                      "dir_mode": oct(stat.S_IMODE(directory.st_mode)), "dir_gid": directory.st_gid,
                      "groups": os.getgroups(), "all_started": len(list(shared.iterdir())) >= p["count"]}))
    """
)


def test_twelve_concurrent_jobs_files_are_0600(
    sqlite_server: Server,
    start_worker: Callable[..., Any],
    lab_settings: LabSettings,
    runtime_dir: Path,
    shared_dir: Path,
) -> None:
    count = 12
    params = [{"name": "shared", "type": "string", "required": True}, {"name": "count", "type": "int"}]
    create_runbook(sqlite_server, "stat", STAT_FILES, params)
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm, max_concurrent=count)
    start_worker(
        sqlite_server, "worker1", "tier1", slots=count, env={"CREDO_WORKER_RUNTIME_DIR": str(runtime_dir)}
    )
    jobs = [
        start_job(sqlite_server, "stat", "tier1", {"shared": str(shared_dir), "count": count})
        for _ in range(count)
    ]
    reports = []
    for job in jobs:
        final = sqlite_server.wait_state(job["id"], {"Completed", "Failed"}, timeout=90)
        assert final["state"] == "Completed", sqlite_server.output(job["id"], "error")
        reports.append(json.loads(sqlite_server.output(job["id"])))
    assert all(r["all_started"] for r in reports), "the jobs did not run at the same time"
    for report in reports:
        assert report["modes"] == {"runbook": "0o600", "parameters": "0o600", "ccache": "0o600"}, report
        assert set(report["owners"].values()) == {report["uid"]}
        assert report["dir_mode"] == "0o2770"
        assert report["dir_gid"] in JOB_GID_RANGE and report["dir_gid"] in report["groups"]
    # One private group per running job.
    assert len({r["dir_gid"] for r in reports}) == count


TICKET = textwrap.dedent(
    """
    echo "now $(date +%s)"
    klist -f
    ldapwhoami -N -Q -Y GSSAPI -O minssf=56 -H "$1"
    """
)


def test_a_jobs_ticket_ends_with_its_timeout_and_is_not_renewable(
    sqlite_server: Server, start_worker: Callable[..., Any], lab_settings: LabSettings
) -> None:
    # bash gets the LDAP URL as data: the helper writes the parameters file, bash reads argv only,
    # so the runbook reads it back itself.
    script = (
        'url=$(python3 -c \'import json,os;print(json.load(open(os.environ["CREDO_PARAMETERS"]))["url"])\')\n'
    )
    script += TICKET.replace('"$1"', '"$url"')
    create_runbook(sqlite_server, "ticket", script, [{"name": "url", "type": "string"}], type_="bash")
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    start_worker(sqlite_server, "worker1", "tier1")
    timeout = 600
    job = start_job(sqlite_server, "ticket", "tier1", {"url": lab_settings.ldap_url}, timeout_seconds=timeout)
    final = sqlite_server.wait_state(job["id"], {"Completed", "Failed"})
    output = sqlite_server.output(job["id"])
    assert final["state"] == "Completed", output + sqlite_server.output(job["id"], "error")
    now = int(re.search(r"^now (\d+)$", output, re.M).group(1))  # type: ignore[union-attr]
    match = re.search(r"^(\S+ \S+)\s+(\S+ \S+)\s+krbtgt/\S+\n\s+Flags: (\S*)", output, re.M)
    assert match, output
    end = datetime.strptime(match.group(2), "%m/%d/%y %H:%M:%S").timestamp()
    assert now + timeout <= end <= now + timeout + MARGIN + 5, output
    assert "R" not in match.group(3) and "renew until" not in output, output
    # Short as it is, the ticket serves the job: LDAP GSSAPI as the gMSA.
    assert f"u:{lab_settings.netbios}\\{SEED.gmsa}$" in output


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    """systemd-analyze verify needs no running systemd, but checks that ExecStart's program exists:
    the example's /usr/local/bin/credo is replaced by the credo of this environment."""
    systemd_analyze = shutil.which("systemd-analyze")
    if systemd_analyze is None:
        pytest.skip("systemd-analyze is not installed")
    credo = Path(sys.executable).with_name("credo")
    assert credo.exists()
    unit = (ROOT / "examples" / "systemd" / "credo-worker@.service").read_text()
    assert "RuntimeDirectory=credo/worker" in unit and "CREDO_WORKER_RUNTIME_DIR=%t/credo/worker" in unit
    (tmp_path / "credo-worker@.service").write_text(unit.replace("/usr/local/bin/credo", str(credo)))
    with contextlib.chdir(tmp_path):
        proc = subprocess.run(
            [systemd_analyze, "verify", "./credo-worker@tier1.service"], capture_output=True, text=True
        )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
