"""Lab start-up times: first `credo lab up` (provision + seed + start) and `up` of a stopped lab.

Runs on a second lab (own realm, 127.0.0.9) so that a running session lab is not disturbed.
Goals (issue 2): first up < 40 s, up of a stopped lab < 15 s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from credo.lab import Lab

RUNS = int(os.environ.get("CREDO_BENCH_LAB_RUNS", "3"))


def _credo_up(directory: Path, *extra: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "credo", "lab", "up", "--dir", str(directory), *extra], env=env, check=True,
                   capture_output=True)  # fmt: skip
    return time.perf_counter() - started


def run() -> list[tuple[str, str, str]]:
    first: list[float] = []
    restart: list[float] = []
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp) / "lab"
            try:
                first.append(_credo_up(directory, "--realm", "BENCH.EXAMPLE.TEST", "--address", "127.0.0.9"))
                Lab(directory).down()
                restart.append(_credo_up(directory))
            finally:
                Lab(directory).destroy()
    return [
        ("lab: first `up` (provision, seed, start)", f"median {statistics.median(first):.1f} s "
         f"(min {min(first):.1f}, max {max(first):.1f}, n={len(first)})", "< 40 s"),
        ("lab: `up` of a stopped lab", f"median {statistics.median(restart):.1f} s "
         f"(min {min(restart):.1f}, max {max(restart):.1f}, n={len(restart)})", "< 15 s"),
    ]  # fmt: skip
