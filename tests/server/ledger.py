"""The ledger runbook of the delivery tests: every run of a job appends what it does, with times.

Each line is ``JOB ATTEMPT PID EVENT TIME`` (EVENT: start, tick, end), written with O_APPEND by the
job itself, so the ledger shows what really ran, whatever the server recorded. Two runs of one
job overlap if a record of an earlier attempt comes after the start of a later one.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import textwrap
from collections import defaultdict
from pathlib import Path

TICKER = textwrap.dedent(
    """
    import os, time
    from credo import runbook
    p = runbook.params()
    job, attempt = os.environ["CREDO_JOB_ID"], os.environ["CREDO_JOB_ATTEMPT"]
    def record(event):
        line = f"{job} {attempt} {os.getpid()} {event} {time.time():.3f}\\n"
        fd = os.open(p["ledger"], os.O_WRONLY | os.O_APPEND)
        os.write(fd, line.encode())
        os.close(fd)
    record("start")
    # `until_attempt`: attempts before it run for `long` seconds, the others for `seconds`.
    seconds = p["seconds"] if int(attempt) >= p.get("until_attempt", 0) else p.get("long", 60)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        print("tick", flush=True)
        record("tick")
        time.sleep(0.2)
    record("end")
    """
)
TICKER_PARAMS = [
    {"name": "ledger", "type": "string", "required": True},
    {"name": "seconds", "type": "number", "required": True},
    {"name": "until_attempt", "type": "int", "default": 0},
    {"name": "long", "type": "number", "default": 60},
]


def new_ledger() -> Path:
    """A ledger file the job user may append to (jobs run as credo-runner), removed when the test
    session ends (in /tmp, not in pytest's temporary directories, which other users cannot reach)."""
    directory = Path(tempfile.mkdtemp(prefix="credo-ledger-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    directory.chmod(0o755)
    path = directory / "ledger"
    path.touch()
    os.chmod(path, 0o666)
    return path


def read(path: Path) -> dict[str, list[tuple[int, int, str, float]]]:
    """job id -> [(attempt, pid, event, time)] in time order."""
    runs: dict[str, list[tuple[int, int, str, float]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        job, attempt, pid, event, at = line.split()
        runs[job].append((int(attempt), int(pid), event, float(at)))
    for records in runs.values():
        records.sort(key=lambda r: r[3])
    return runs


def overlaps(path: Path) -> list[str]:
    """Jobs with a record of an earlier attempt after a later attempt started."""
    bad = []
    for job, records in read(path).items():
        highest = 0
        for attempt, _, event, _ in records:
            if attempt < highest:
                bad.append(f"{job}: attempt {attempt} {event} after attempt {highest} started")
                break
            highest = max(highest, attempt)
    return bad
