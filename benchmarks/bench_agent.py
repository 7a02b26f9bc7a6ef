"""`credo agent` with 100 gMSAs (issue 12): one agent against 100 gmsad refreshes of the same accounts.

The accounts live in a lab of their own (AGENT.EXAMPLE.TEST on 127.0.0.9,
/var/lib/credo/lab-agent-bench), created once by pipelined LDAP adds as the lab administrator and
reused (detected by counting them). Each is readable by HybridWorkers (WORKER1$).

Measured:
- one `credo agent run` serving the 100 accounts, each with a keytab output: wall time from start
  until all 100 keytabs are written (a cold first pass), then the time to refresh all 100 again
  (what follows a rotation: every account due at once), the agent's CPU time and its RSS;
- gmsad (PyPI, in .bench/gmsad-venv, one process per account as its documentation configures it):
  100 runs from start to keytab written, wall time in all, the sum of their CPU, the largest RSS.
Goal: agent RSS <= 60 MiB at 100 accounts.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ldap

from benchmarks.bench_audit import _collect, _pipelined_adds, _sid
from benchmarks.bench_gmsa import _gmsad_venv
from credo.ad.admin import AdminSession, AdminSettings
from credo.ad.security import ACCESS_ALLOWED_ACE_TYPE, Ace, SecurityDescriptor
from credo.lab import Lab

DIRECTORY = Path(os.environ.get("CREDO_BENCH_AGENT_DIR", "/var/lib/credo/lab-agent-bench"))
REALM, ADDRESS = "AGENT.EXAMPLE.TEST", "127.0.0.9"
ACCOUNTS = int(os.environ.get("CREDO_BENCH_AGENT_ACCOUNTS", "100"))
READ_MASK = 0x000F01FF


def _names() -> list[str]:
    return [f"agentb{i:03d}" for i in range(ACCOUNTS)]


def populate(lab: Lab) -> None:
    settings = lab.settings
    assert settings is not None
    os.environ["KRB5_CONFIG"] = str(lab.paths.krb5_conf)
    admin = AdminSettings(
        keytab=lab.paths.admin_keytab, principal=f"Administrator@{REALM}", server=settings.ldap_url
    )
    with AdminSession(admin) as session:
        directory = session.directory
        base = directory.base_dn
        have = sum(1 for _ in directory.search_paged(base, ldap.SCOPE_SUBTREE, "(cn=agentb*)", ["cn"]))
        if have >= ACCOUNTS:
            return
        readers = _sid(directory, f"CN=HybridWorkers,CN=Users,{base}")
        sd = SecurityDescriptor(owner="S-1-5-32-544", group="S-1-5-32-544",
                                dacl=(Ace(ACCESS_ALLOWED_ACE_TYPE, 0, READ_MASK, readers),)).pack()  # fmt: skip
        entries = [
            (f"CN={name},CN=Managed Service Accounts,{base}", {
                "objectClass": [b"msDS-GroupManagedServiceAccount"], "sAMAccountName": [f"{name}$".encode()],
                "dNSHostName": [f"{name}.{settings.dns_domain}".encode()], "msDS-ManagedPasswordInterval": [b"30"],
                "msDS-GroupMSAMembership": [sd], "msDS-SupportedEncryptionTypes": [b"24"],
                "userAccountControl": [b"4096"],
            })
            for name in _names()
        ]  # fmt: skip
        _pipelined_adds(directory._conn, entries)
        _collect(directory._conn, [])


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_all(
    paths: list[Path], proc: subprocess.Popen[bytes], since: dict[Path, float], timeout: float = 600
) -> float:
    started = time.perf_counter()
    while True:
        if all(p.exists() and p.stat().st_mtime > since.get(p, 0) for p in paths):
            return time.perf_counter() - started
        if proc.poll() is not None or time.perf_counter() - started > timeout:
            raise RuntimeError("the agent did not write every keytab")
        time.sleep(0.01)


def _agent(lab: Lab, env: dict[str, str], work: Path, credo: list[str]) -> list[tuple[str, str, str]]:
    settings = lab.settings
    assert settings is not None
    outputs = [work / f"{name}.keytab" for name in _names()]
    lines = [f'socket = "{work}/agent.sock"', "[directory]", f'servers = ["{settings.ldap_url}"]',
             f'host_keytab = "{lab.paths.host_keytab("worker1")}"', f'host_principal = "WORKER1$@{REALM}"',
             f'krb5_config = "{lab.paths.krb5_conf}"']  # fmt: skip
    for name, out in zip(_names(), outputs, strict=True):
        lines += ["[[account]]", f'name = "{name}"', "[[account.keytab]]", f'path = "{out}"']
    config = work / "agent.toml"
    config.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    log = work / "agent.log"  # what a pass that never ends was waiting on (see the error below)
    with open(log, "ab") as handle:
        proc = subprocess.Popen([*credo, "agent", "run", "--config", str(config)], env=env,
                                stdout=subprocess.DEVNULL, stderr=handle)  # fmt: skip
    try:
        before: dict[Path, float] = {}
        _wait_all(outputs, proc, before)
        cold = time.perf_counter() - started
        before = {p: p.stat().st_mtime for p in outputs}
        time.sleep(0.05)
        started = time.perf_counter()
        # Every account due at once, as after a rotation. The last accounts' first refreshes are
        # still running here (a keytab is written before the TGT is got): their requests must not
        # be lost when those end (they were, once in five runs: the pass never ended).
        for name in _names():
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(work / "agent.sock"))
                sock.sendall(f'{{"op":"refresh-async","account":"{name}"}}\n'.encode())
        again = _wait_all(outputs, proc, before)
        cpu, rss = _cpu_seconds(proc.pid), _rss_kib(proc.pid)
    except RuntimeError:
        if proc.poll() is None:
            proc.send_signal(signal.SIGUSR1)  # the agent writes every thread's stack to its log
            time.sleep(1)
        stale = [p.name for p in outputs if not p.exists() or p.stat().st_mtime <= before.get(p, 0)]
        tail = log.read_text(errors="replace").splitlines()[-60:]
        raise RuntimeError(
            f"not rewritten: {stale[:10]}; the agent's log ends:\n" + "\n".join(tail)
        ) from None
    finally:
        proc.terminate()
        proc.wait()
    return [
        (f"agent, {ACCOUNTS} accounts: start to every keytab written", f"{cold:.1f} s", ""),
        (f"agent, {ACCOUNTS} accounts: all refreshed again at once (after a rotation)", f"{again:.1f} s", ""),
        ("agent: CPU for both passes, peak RSS", f"{cpu:.1f} s CPU, {rss / 1024:.0f} MiB", "RSS <= 60 MiB"),
    ]


def _gmsad(lab: Lab, env: dict[str, str], work: Path) -> list[tuple[str, str, str]]:
    gmsad = _gmsad_venv()
    settings = lab.settings
    assert settings is not None
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for name in _names():
        with contextlib.suppress(RuntimeError):
            _gmsad_one(gmsad, lab, env, work, name)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return [(f"gmsad, {ACCOUNTS} accounts one after another: start to keytab written",
             f"{wall:.1f} s, {cpu:.1f} s CPU, peak RSS {after.ru_maxrss / 1024:.0f} MiB (one process)", "")]  # fmt: skip


def _gmsad_one(gmsad: Path, lab: Lab, env: dict[str, str], work: Path, name: str) -> None:
    settings = lab.settings
    assert settings is not None
    out = work / f"gmsad-{name}.keytab"
    config = work / "gmsad.conf"
    config.write_text(
        "[gmsad]\nloglevel = INFO\ncheck_interval = 3600\n\n"
        f"[{name}]\nprincipal = WORKER1$@{REALM}\nkeytab = {lab.paths.host_keytab('worker1')}\n"
        f"gMSA_sAMAccountName = {name}$\ngMSA_domain = {settings.dns_domain}\ngMSA_keytab = {out}\n"
        f"host = {settings.dc_fqdn}\ntls_ca_certs_file = {lab.paths.ca_file}\nldap_auto_bind = TLS_BEFORE_BIND\n"
    )
    proc = subprocess.Popen(
        [str(gmsad), "-c", str(config)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.perf_counter() + 60
        while not (out.exists() and out.stat().st_size > 0):
            if proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError("gmsad did not write its keytab")
            time.sleep(0.005)
    finally:
        proc.kill()
        proc.wait()


def run() -> list[tuple[str, str, str]]:
    lab = Lab(DIRECTORY)
    lab.up(realm=REALM, address=ADDRESS)
    populate(lab)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))} | lab.env(
        "worker1"
    ).set
    credo = [str(Path(sys.executable).parent / "credo")]
    with tempfile.TemporaryDirectory(dir="/run") as tmp:
        work = Path(tmp)
        rows = _agent(lab, env, work, credo)
        try:
            rows += _gmsad(lab, env, work)
        except (subprocess.CalledProcessError, OSError) as exc:
            rows.append(("gmsad", f"not measured: {exc}", ""))
    return rows
