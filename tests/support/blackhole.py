"""Make one loopback address drop every packet (a blackhole, not a reset), and undo it.

    with blackhole("127.0.2.1"):
        ...   # a TCP connect to 127.0.2.1 times out; a UDP query gets no answer

An nftables table of its own (``ip credo_blackhole_<address>``) with one chain on the prerouting
hook drops packets to and from the address. Loopback traffic passes prerouting on its way in, after
the sender's output path: the sender's connect()/sendto() succeeds and then hears nothing, as with
a dead route. Dropping in the output hook instead would fail the sender at once with EPERM
(netfilter reports a locally generated packet dropped there), which is not what a lost DC looks like.
Dropping the address as source too cuts the replies of connections that were open before.

Needs root and `nft` (Debian package nftables, see scripts/install-system-packages.sh) and a kernel
with nf_tables. Nothing else on the machine is affected: only the one address, only while inside.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["blackhole", "blackhole_available", "table_name"]


def table_name(address: str) -> str:
    return "credo_blackhole_" + address.replace(".", "_")


def blackhole_available() -> str | None:
    """None when a blackhole can be made here, else why not (for pytest.skip)."""
    if shutil.which("nft") is None:
        return "`nft` is not installed (apt-get install nftables)"
    probe = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"nftables is not usable here: {probe.stderr.strip()}"
    return None


def _nft(script: str) -> None:
    proc = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"nft failed: {proc.stderr.strip()}")


def _drop(address: str) -> None:
    table = table_name(address)
    # `add table` then `flush table` makes this idempotent: a leftover of a killed test is replaced.
    _nft(
        f"add table ip {table}\n"
        f"flush table ip {table}\n"
        f"table ip {table} {{\n"
        "  chain prerouting {\n"
        "    type filter hook prerouting priority raw; policy accept;\n"
        f"    ip daddr {address} drop\n"
        f"    ip saddr {address} drop\n"
        "  }\n"
        "}\n"
    )


def _undo(address: str) -> None:
    subprocess.run(
        ["nft", "delete", "table", "ip", table_name(address)], capture_output=True, text=True, check=False
    )


@contextmanager
def blackhole(address: str) -> Iterator[None]:
    """Drop every IPv4 packet to or from ``address`` (a loopback address) while inside."""
    if not ipaddress.IPv4Address(address).is_loopback:
        raise ValueError(f"a blackhole is for loopback addresses only, not {address}")
    _drop(address)
    try:
        yield
    finally:
        _undo(address)
