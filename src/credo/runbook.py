"""Helpers for runbooks run by ``credo worker`` (importable as ``credo.runbook`` inside a job).

Standard library only: the worker copies this file next to the runbook, so it works under any
Python 3 the host has. Parameters arrive as a JSON file, never spliced into code::

    from credo import runbook
    p = runbook.params()                 # {"sam_account_name": "jdoe"}
    runbook.write_verbose("looking up " + p["sam_account_name"])
    runbook.write_warning("account was already disabled")
    runbook.write_progress("disabling", percent=50)
    print("done")                        # stdout is the output stream, stderr the error stream
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

__all__ = [
    "params",
    "write_debug",
    "write_error",
    "write_output",
    "write_progress",
    "write_verbose",
    "write_warning",
]

_stream_file: Any = None


def params() -> dict[str, Any]:
    """The job's parameters, from the JSON file named by CREDO_PARAMETERS ({} outside a job)."""
    path = os.environ.get("CREDO_PARAMETERS")
    if not path:
        return {}
    with open(path, encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def _write(stream: str, text: str) -> None:
    global _stream_file
    fd = os.environ.get("CREDO_STREAM_FD")
    if fd is None:  # not under a worker: show it on stderr
        print(f"{stream.upper()}: {text}", file=sys.stderr, flush=True)
        return
    if _stream_file is None:
        _stream_file = os.fdopen(int(fd), "w", encoding="utf-8", buffering=1)
    _stream_file.write(json.dumps({"stream": stream, "text": text}) + "\n")
    _stream_file.flush()


def write_output(text: str) -> None:
    print(text, flush=True)


def write_error(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def write_warning(text: str) -> None:
    _write("warning", text)


def write_verbose(text: str) -> None:
    _write("verbose", text)


def write_debug(text: str) -> None:
    _write("debug", text)


def write_progress(activity: str, percent: int | None = None) -> None:
    _write("progress", activity if percent is None else f"{activity} ({percent}%)")
