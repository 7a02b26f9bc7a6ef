"""Make the lab's host names resolve to its loopback address, through /etc/hosts when needed.

Kerberos needs the DC's FQDN to resolve to the DC (the LDAP service ticket is for
``ldap/dc1.<domain>``). credo adds one line, only when a name does not already resolve to the
lab address, and marks it with ``# credo-lab <DIR>`` so that ``destroy`` removes exactly it.
A second DC adds lines of its own, marked ``# credo-lab <DIR> TAG`` (its name and the DSA GUID
names replication looks up), which ``destroy`` removes as well.
/etc/hosts is rewritten in place: in containers it is often a bind mount that cannot be renamed over.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from credo.errors import EnvironmentProblem

__all__ = ["HOSTS_FILE", "add_lab_names", "names_resolve_to", "remove_lab_names"]

HOSTS_FILE = Path(os.environ.get("CREDO_HOSTS_FILE", "/etc/hosts"))


def _marker(lab_dir: Path, tag: str = "") -> str:
    return f"# credo-lab {lab_dir}" + (f" {tag}" if tag else "")


def _is_labs(row: str, lab_dir: Path, tag: str | None) -> bool:
    """True for a line of this lab: the one of ``tag`` ("" = the first line), or any if None."""
    row = row.rstrip()
    if tag is not None:
        return row.endswith(_marker(lab_dir, tag))
    mark = _marker(lab_dir)
    if row.endswith(mark):
        return True
    # A tagged line: "# credo-lab DIR TAG" with TAG one word.
    head, _, last = row.rpartition(" ")
    return bool(last) and head.endswith(mark)


def names_resolve_to(names: list[str], address: str) -> bool:
    """True when every name resolves (IPv4) to ``address``."""
    for name in names:
        try:
            infos = socket.getaddrinfo(name, None, socket.AF_INET)
        except socket.gaierror:
            return False
        if address not in {info[4][0] for info in infos}:
            return False
    return True


def add_lab_names(names: list[str], address: str, lab_dir: Path, tag: str = "") -> bool:
    """Add a marked line for ``names`` unless they resolve already. True if a line was added."""
    if names_resolve_to(names, address):
        return False
    line = f"{address}\t{' '.join(names)}\t{_marker(lab_dir, tag)}\n"
    try:
        text = HOSTS_FILE.read_text()
        kept = "".join(row for row in text.splitlines(keepends=True) if not _is_labs(row, lab_dir, tag))
        if kept and not kept.endswith("\n"):
            kept += "\n"
        _rewrite(kept + line)
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot add the lab's host names to {HOSTS_FILE}: {exc.strerror or exc}",
            hint=f"add this line to {HOSTS_FILE} as root: {address} {' '.join(names)}",
        ) from exc
    return True


def remove_lab_names(lab_dir: Path, tag: str | None = None) -> bool:
    """Remove the lines that ``add_lab_names`` added for this lab (those of ``tag`` only, if given).

    True if one was removed.
    """
    try:
        text = HOSTS_FILE.read_text()
    except OSError:
        return False
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if not _is_labs(line, lab_dir, tag)]
    if len(kept) == len(lines):
        return False
    try:
        _rewrite("".join(kept))
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot remove the lab's line from {HOSTS_FILE}: {exc.strerror or exc}",
            hint=f"remove the line ending in '{_marker(lab_dir)}' from {HOSTS_FILE} as root",
        ) from exc
    return True


def _rewrite(text: str) -> None:
    with open(HOSTS_FILE, "r+") as handle:
        handle.seek(0)
        handle.write(text)
        handle.truncate()
        handle.flush()
        os.fsync(handle.fileno())
