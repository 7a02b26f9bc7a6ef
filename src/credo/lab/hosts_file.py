"""Make the lab's host names resolve to its loopback address, through /etc/hosts when needed.

Kerberos needs the DC's FQDN to resolve to the DC (the LDAP service ticket is for
``ldap/dc1.<domain>``). credo adds one line, only when a name does not already resolve to the
lab address, and marks it with ``# credo-lab <DIR>`` so that ``destroy`` removes exactly it.
/etc/hosts is rewritten in place: in containers it is often a bind mount that cannot be renamed over.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from credo.errors import EnvironmentProblem

__all__ = ["HOSTS_FILE", "add_lab_names", "names_resolve_to", "remove_lab_names"]

HOSTS_FILE = Path(os.environ.get("CREDO_HOSTS_FILE", "/etc/hosts"))


def _marker(lab_dir: Path) -> str:
    return f"# credo-lab {lab_dir}"


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


def add_lab_names(names: list[str], address: str, lab_dir: Path) -> bool:
    """Add a marked line for ``names`` unless they resolve already. True if a line was added."""
    if names_resolve_to(names, address):
        return False
    line = f"{address}\t{' '.join(names)}\t{_marker(lab_dir)}\n"
    try:
        text = HOSTS_FILE.read_text()
        kept = "".join(
            row for row in text.splitlines(keepends=True) if not row.rstrip().endswith(_marker(lab_dir))
        )
        if kept and not kept.endswith("\n"):
            kept += "\n"
        _rewrite(kept + line)
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot add the lab's host names to {HOSTS_FILE}: {exc.strerror or exc}",
            hint=f"add this line to {HOSTS_FILE} as root: {address} {' '.join(names)}",
        ) from exc
    return True


def remove_lab_names(lab_dir: Path) -> bool:
    """Remove the line that ``add_lab_names`` added for this lab. True if one was removed."""
    try:
        text = HOSTS_FILE.read_text()
    except OSError:
        return False
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if not line.rstrip().endswith(_marker(lab_dir))]
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
