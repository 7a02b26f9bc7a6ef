"""`credo audit` on a big directory (issue 6): 2,000 gMSAs and 20,000 users.

The directory lives in its own lab (BENCH.EXAMPLE.TEST on 127.0.0.8, /var/lib/credo/lab-bench),
populated once by this benchmark and reused afterwards (populating is detected by counting gMSAs).
Population: LDAP adds as the lab administrator over one sealed connection, pipelined (the DC
answers them in order; credo waits for the results in batches). 200 groups nest 2 deep; each gMSA
is in one group and readable by another; every 50th gMSA is readable by Domain Users and every
100th in a group nested into Backup Operators, so the checks find something.

Measured: `credo audit --format json --output FILE` as the administrator, a fresh process each run:
wall time and peak RSS (the child's ru_maxrss). Goals: < 30 s, < 300 MB.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ldap

from credo.ad.admin import AdminSession, AdminSettings
from credo.ad.connection import Directory
from credo.ad.security import ACCESS_ALLOWED_ACE_TYPE, Ace, SecurityDescriptor, sid_from_bytes
from credo.lab import Lab

DIRECTORY = Path(os.environ.get("CREDO_BENCH_AUDIT_DIR", "/var/lib/credo/lab-bench"))
REALM, ADDRESS = "BENCH.EXAMPLE.TEST", "127.0.0.8"
GMSAS = int(os.environ.get("CREDO_BENCH_AUDIT_GMSAS", "2000"))
USERS = int(os.environ.get("CREDO_BENCH_AUDIT_USERS", "20000"))
GROUPS = 200
RUNS = int(os.environ.get("CREDO_BENCH_AUDIT_RUNS", "3"))
BATCH = 200
# Full control on msDS-GroupMSAMembership's DACL: what samba-tool and New-ADServiceAccount write.
READ_MASK = 0x000F01FF


def _env(lab: Lab) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}
    return base | lab.env("admin").set


def _count(directory: Directory, filterstr: str) -> int:
    return sum(1 for _ in directory.search_paged(directory.base_dn, ldap.SCOPE_SUBTREE, filterstr, ["cn"]))


def _pipelined_adds(conn: object, entries: list[tuple[str, dict[str, list[bytes]]]]) -> None:
    """Send BATCH adds, then collect their results: one connection, no wait per object."""
    for start in range(0, len(entries), BATCH):
        msgids = [conn.add_ext(dn, list(attrs.items())) for dn, attrs in entries[start : start + BATCH]]  # type: ignore[attr-defined]
        _collect(conn, msgids)


def _collect(conn: object, msgids: list[int]) -> None:
    """Wait for each pipelined request; what is already there (a re-run) is fine."""
    for msgid in msgids:
        with contextlib.suppress(ldap.ALREADY_EXISTS, ldap.TYPE_OR_VALUE_EXISTS):
            conn.result3(msgid)  # type: ignore[attr-defined]


def _sid(directory: Directory, dn: str) -> str:
    entry = directory.search(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["objectSid"])
    return sid_from_bytes(entry[0][1]["objectSid"][0])[0]


def populate(lab: Lab) -> float | None:
    """Create the big directory unless it is there; returns the seconds it took (None: reused)."""
    settings = lab.settings
    assert settings is not None
    os.environ["KRB5_CONFIG"] = str(lab.paths.krb5_conf)
    admin = AdminSettings(
        keytab=lab.paths.admin_keytab, principal=f"Administrator@{REALM}", server=settings.ldap_url
    )
    with AdminSession(admin) as session:
        directory = session.directory
        base = directory.base_dn
        if _count(directory, "(cn=benchgmsa*)") >= GMSAS and _count(directory, "(cn=benchuser*)") >= USERS:
            return None
        started = time.perf_counter()
        conn = directory._conn  # the benchmark pipelines adds on credo's own sealed connection
        ou = f"OU=BenchUsers,{base}"
        _pipelined_adds(conn, [(ou, {"objectClass": [b"organizationalUnit"]})])
        groups = [f"CN=benchgroup{i:03d},{ou}" for i in range(GROUPS)]
        _pipelined_adds(conn, [(dn, {"objectClass": [b"group"], "sAMAccountName": [f"benchgroup{i:03d}".encode()]})
                               for i, dn in enumerate(groups)])  # fmt: skip
        # Nesting: group i is a member of group i // 10 + 100 (for i < 100), two levels.
        nesting = [(groups[100 + i // 10], groups[i]) for i in range(100)]
        nesting.append((f"CN=Backup Operators,CN=Builtin,{base}", groups[199]))
        _collect(conn, [conn.modify_ext(g, [(ldap.MOD_ADD, "member", [m.encode()])]) for g, m in nesting])  # type: ignore[attr-defined]
        users = [
            (f"CN=benchuser{i:05d},{ou}", {"objectClass": [b"user"], "sAMAccountName": [f"benchuser{i:05d}".encode()],
                                           "userAccountControl": [b"514"]})
            for i in range(USERS)
        ]  # fmt: skip
        _pipelined_adds(conn, users)
        domain_users = f"{_sid(directory, base)}-513"
        group_sids = [_sid(directory, dn) for dn in groups]
        gmsas = []
        for i in range(GMSAS):
            readers = [group_sids[(i + 1) % GROUPS]] + ([domain_users] if i % 50 == 0 else [])
            sd = SecurityDescriptor(
                owner="S-1-5-32-544", group="S-1-5-32-544",
                dacl=tuple(Ace(ACCESS_ALLOWED_ACE_TYPE, 0, READ_MASK, sid) for sid in readers),
            ).pack()  # fmt: skip
            name = f"benchgmsa{i:04d}"
            gmsas.append((f"CN={name},CN=Managed Service Accounts,{base}", {
                "objectClass": [b"msDS-GroupManagedServiceAccount"],
                "sAMAccountName": [f"{name}$".encode()],
                "dNSHostName": [f"{name}.{settings.dns_domain}".encode()],
                "msDS-ManagedPasswordInterval": [b"30"],
                "msDS-GroupMSAMembership": [sd],
                "msDS-SupportedEncryptionTypes": [b"24"],
                "userAccountControl": [b"4096"],
            }))  # fmt: skip
        _pipelined_adds(conn, gmsas)
        memberships = [(groups[199] if i % 100 == 0 else groups[i % 100], gmsas[i][0]) for i in range(GMSAS)]
        for start in range(0, len(memberships), BATCH):
            chunk = memberships[start : start + BATCH]
            _collect(conn, [conn.modify_ext(g, [(ldap.MOD_ADD, "member", [m.encode()])]) for g, m in chunk])  # type: ignore[attr-defined]
        return time.perf_counter() - started


def _audit_once(env: dict[str, str], out: Path) -> tuple[float, int]:
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "credo", "audit", "--format", "json", "--output", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"credo audit failed: {proc.stderr.read().decode() if proc.stderr else status}")
    return elapsed, usage.ru_maxrss * 1024


def run() -> list[tuple[str, str, str]]:
    lab = Lab(DIRECTORY)
    lab.up(realm=REALM, address=ADDRESS)
    populated = populate(lab)
    env = _env(lab)
    times, peaks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(RUNS):
            elapsed, peak = _audit_once(env, Path(tmp) / "audit.json")
            times.append(elapsed)
            peaks.append(peak)
        import json

        summary = json.loads((Path(tmp) / "audit.json").read_text())["summary"]
    fill = f"populated in {populated:.0f} s" if populated is not None else "reused"
    shape = f"{GMSAS} gMSAs, {USERS} users, {GROUPS} groups ({fill}); findings {summary}"
    return [
        (f"audit: full `credo audit` ({shape})",
         f"median {statistics.median(times):.1f} s (min {min(times):.1f}, max {max(times):.1f}, n={len(times)})", "< 30 s"),
        ("audit: peak RSS of that process", f"max {max(peaks) / 2**20:.0f} MB", "< 300 MB"),
    ]  # fmt: skip
