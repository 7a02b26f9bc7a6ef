"""Printing data: JSON for machines (``--json``), aligned key/value tables for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

__all__ = ["emit_json", "emit_mapping", "json_option", "stdout_console"]

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def stdout_console() -> Console:
    return Console(soft_wrap=True, highlight=False)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=_default)
    sys.stdout.write("\n")


def emit_mapping(data: Mapping[str, Any], *, title: str | None = None) -> None:
    """Print a mapping as a two-column table, skipping empty values."""
    table = Table(show_header=False, box=None, title=title, title_justify="left", pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in data.items():
        if value is None or value == "":
            continue
        table.add_row(key.replace("_", " "), str(value))
    stdout_console().print(table)
