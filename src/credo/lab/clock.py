"""A shared fake clock for the lab's rotation tests: libfaketime reading one file.

Every process started with ``shared_clock_env(path)`` (the lab DC, an agent, Kerberos clients
and acceptors) reads its wall clock from ``path`` (libfaketime's ``FAKETIME`` syntax, such as
``+0`` or ``+14h``), again at most a second after it changes, so a test moves all of them across
a gMSA rotation at once without restarting any. The monotonic clock stays real: with a faked one,
Python's condition waits never return (libfaketime 0.9.10 on glibc 2.36, observed); the price is
that ``clock_nanosleep`` fails with EINVAL under it, so code run on this clock pauses with
``threading.Event.wait``, not ``time.sleep``.
"""

from __future__ import annotations

import os
from glob import glob
from pathlib import Path

from credo.errors import EnvironmentProblem

__all__ = ["set_shared_clock", "shared_clock_env"]


def _library() -> str:
    found = sorted(glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    if not found:
        raise EnvironmentProblem("libfaketime is not installed", hint="make install (package faketime)")
    return found[0]


def shared_clock_env(path: Path) -> dict[str, str]:
    """Variables that put a process on the clock kept in ``path``."""
    return {
        "LD_PRELOAD": _library(),
        "FAKETIME_TIMESTAMP_FILE": str(path),
        "FAKETIME_CACHE_DURATION": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def set_shared_clock(path: Path, offset: str) -> None:
    """Move the shared clock to ``offset`` from real time (``+0``, ``+3h``, ``+12345s``)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{offset}\n")
    os.replace(tmp, path)
