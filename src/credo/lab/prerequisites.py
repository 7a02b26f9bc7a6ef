"""Checks that run before the lab DC is provisioned or started, each naming its fix."""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

from credo.errors import EnvironmentProblem

__all__ = [
    "DC_TCP_PORTS",
    "DC_UDP_PORTS",
    "MIN_SAMBA",
    "check_directory_writable",
    "check_ports_free",
    "check_samba",
    "port_owner",
]

# gMSA support on the DC (msDS-ManagedPassword computed by the DC, KDS root keys) arrived in 4.21.
MIN_SAMBA = (4, 21)
INSTALL_HINT = "run `make install` in the credo checkout (installs Samba from bookworm-backports)"

# What a Samba AD DC listens on (DNS, Kerberos, RPC, NetBIOS session, LDAP, SMB, kpasswd, LDAPS, GC).
DC_TCP_PORTS = (53, 88, 135, 139, 389, 445, 464, 636, 3268, 3269)
DC_UDP_PORTS = (53, 88, 464)


def check_samba() -> tuple[int, ...]:
    """The installed Samba version, or EnvironmentProblem when it is missing or too old."""
    for tool in ("samba", "samba-tool"):
        if shutil.which(tool) is None:
            raise EnvironmentProblem(f"`{tool}` is not installed", hint=INSTALL_HINT)
    out = subprocess.run(["samba", "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    if not match:
        raise EnvironmentProblem(f"cannot tell the Samba version from {out.strip()!r}", hint=INSTALL_HINT)
    version = tuple(int(part) for part in match.groups(default="0"))
    if version[:2] < MIN_SAMBA:
        have = ".".join(map(str, version))
        need = ".".join(map(str, MIN_SAMBA))
        raise EnvironmentProblem(
            f"Samba {have} is too old for gMSA (need >= {need})",
            hint=INSTALL_HINT,
        )
    return version


def check_directory_writable(path: Path) -> None:
    """Create ``path`` if needed and prove that it is writable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".credo-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise EnvironmentProblem(
            f"lab directory {path} is not writable: {reason}",
            hint="choose another with --dir, or fix its permissions",
        ) from exc


def port_owner(port: int, address: str, *, udp: bool = False) -> str | None:
    """The ``name[pid]`` listening on ``address:port``, found through /proc; None if unknown."""
    table = "/proc/net/udp" if udp else "/proc/net/tcp"
    inodes: set[str] = set()
    try:
        with open(table) as handle:
            next(handle)
            for line in handle:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                host_hex, port_hex = local.split(":")
                if int(port_hex, 16) != port or (not udp and state != "0A"):  # 0A = LISTEN
                    continue
                host = socket.inet_ntoa(bytes.fromhex(host_hex)[::-1])
                if host in (address, "0.0.0.0"):  # noqa: S104 - reading, not binding
                    inodes.add(inode)
    except OSError:
        return None
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                    return f"{comm}[{pid}]"
        except OSError:
            continue
    return None


def _bind_fails(address: str, port: int, kind: socket.SocketKind) -> bool:
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE
    finally:
        sock.close()
    return False


def check_ports_free(address: str) -> None:
    """Fail with the name of the process holding a DC port on ``address``."""
    for kind, ports, label in (
        (socket.SOCK_STREAM, DC_TCP_PORTS, "tcp"),
        (socket.SOCK_DGRAM, DC_UDP_PORTS, "udp"),
    ):
        for port in ports:
            if _bind_fails(address, port, kind):
                owner = port_owner(port, address, udp=label == "udp")
                who = f" by {owner}" if owner else ""
                raise EnvironmentProblem(
                    f"port {port}/{label} on {address} is already taken{who}; the lab DC needs it",
                    hint="stop that service (or another lab: `credo lab down --dir ...`), then retry",
                )
