"""Printing data: JSON for machines (``--json``), aligned key/value tables for people."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import click

__all__ = ["emit_json", "emit_mapping", "json_option", "write_text_atomically"]

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=_default)
    sys.stdout.write("\n")


def emit_mapping(data: Mapping[str, Any], *, title: str | None = None) -> None:
    """Print a mapping as aligned ``key  value`` lines (never wrapped), skipping empty values."""
    rows = [(key.replace("_", " "), str(value)) for key, value in data.items() if value not in (None, "")]
    if title:
        click.echo(title)
    width = max((len(key) for key, _ in rows), default=0)
    for key, value in rows:
        click.echo(f"{key.ljust(width)}  {value}")


def write_text_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file in the same directory, fsync and rename.

    A reader never sees a half-written report; a failure leaves the previous file as it was.
    """
    import os
    import tempfile

    from credo.errors import EnvironmentProblem

    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".credo-", dir=directory)
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot write {path}: {exc.strerror}", hint="choose a writable directory"
        ) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise EnvironmentProblem(
            f"cannot write {path}: {exc.strerror}", hint="choose a writable path"
        ) from exc
