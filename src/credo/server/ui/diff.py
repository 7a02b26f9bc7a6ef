"""A line diff between two versions of a runbook's script, for the runbook page."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = ["DiffLine", "diff_lines"]


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add", "remove", "hunk", "file" or "same"
    text: str


def diff_lines(old: str, new: str, old_name: str, new_name: str, context: int = 3) -> list[DiffLine]:
    """A unified diff (``diff -u``), each line tagged for its colour; [] when they are the same."""
    lines = difflib.unified_diff(
        old.splitlines(), new.splitlines(), fromfile=old_name, tofile=new_name, n=context, lineterm=""
    )
    tagged = []
    for line in lines:
        if line.startswith(("---", "+++")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "remove"
        else:
            kind = "same"
        tagged.append(DiffLine(kind, line))
    return tagged
