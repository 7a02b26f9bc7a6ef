"""Printing data: JSON for machines (``--json``), aligned key/value tables for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import click

__all__ = ["emit_json", "emit_mapping", "json_option"]

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
