"""Rotation: a 1-day gMSA on a second lab DC restarted under libfaketime past its query interval.

The second lab (own realm, 127.0.0.3) keeps the shifted clock away from every other test.
Kerberos clients of the shifted DC run under `faketime -f` with the same offset. Before the
rotation, WORKER1 writes a keytab (kvno 1) and makes an AP-REQ for the gMSA's SPN; after it,
`credo gmsa keytab` writes the new keys at kvno 2 and keeps kvno 1, and both authenticate: the new
keys for kinit and a fresh service ticket, the previous keys for the ticket issued before.
The same lab then proves the "no usable KDS root key" diagnosis.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from tests.support.agent import AgentProcess, agent_config
from tests.support.identity import CREDO, run
from tests.support.rotation_lab import clean_env, samba_tool, spn_host
from tests.support.rotation_lab import rotation_lab as make_rotation_lab

from credo.krb.keytab import read_keytab
from credo.lab import Lab

REALM = "ROTATE.EXAMPLE.TEST"
ADDRESS = "127.0.0.3"
GMSA = "svcrot"
SPN_HOST = spn_host(GMSA, REALM)


@pytest.fixture(scope="module")
def rotation_lab(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Lab]:
    second = make_rotation_lab(tmp_path_factory.mktemp("rotation") / "lab", REALM, ADDRESS, GMSA)
    try:
        yield second
    finally:
        second.destroy()


def keytab(lab: Lab, out: Path, offset: str | None = None) -> dict[str, object]:
    env = clean_env() | lab.env("worker1").set if offset is None else _worker1_env(lab)
    prefix = ["faketime", "-f", offset] if offset else []
    proc = run(
        [*prefix, *CREDO, "gmsa", "keytab", GMSA, "--out", out, "--spn", f"HTTP/{SPN_HOST}", "--json"], env
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def _worker1_env(lab: Lab) -> dict[str, str]:
    """WORKER1's variables without a pre-made ccache (made at real time, useless under an offset)."""
    env = clean_env() | lab.env("worker1").set
    env["KRB5CCNAME"] = f"FILE:{lab.paths.root}/worker1-shifted.ccache"
    Path(env["KRB5CCNAME"][5:]).unlink(missing_ok=True)
    return env


def kvnos_by_enctype(lab: Lab, path: Path) -> set[tuple[int, str, str]]:
    out = run(
        ["klist", "-kte", path], clean_env() | {"KRB5_CONFIG": str(lab.paths.krb5_conf)}, check=True
    ).stdout
    rows = set()
    for line in out.splitlines():
        match = re.match(r"\s*(\d+)\s+\S+\s+\S+\s+(\S+)\s+\((\S+)\)", line)
        if match:
            rows.add((int(match.group(1)), match.group(2), match.group(3)))
    return rows


def gss_init(env: dict[str, str], offset: str | None = None) -> str:
    prefix = ["faketime", "-f", offset] if offset else []
    proc = run(
        [*prefix, CREDO[0], "-m", "tests.support.gss_token", "init", f"HTTP@{SPN_HOST}"], env, cwd=_repo()
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def gss_accept(lab: Lab, keytab_path: Path, token: str, offset: str | None = None) -> str:
    prefix = ["faketime", "-f", offset] if offset else []
    env = clean_env() | {"KRB5_CONFIG": str(lab.paths.krb5_conf)}
    proc = run(
        [*prefix, CREDO[0], "-m", "tests.support.gss_token", "accept", keytab_path],
        env,
        input=token,
        cwd=_repo(),
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _repo() -> str:
    return str(Path(__file__).resolve().parents[2])


def test_rotation_keeps_previous_keys_and_both_authenticate(rotation_lab: Lab, tmp_path: Path) -> None:
    lab = rotation_lab
    out = tmp_path / "svcrot.keytab"
    before = keytab(lab, out)
    assert before["kvnos"] == [1]
    worker1 = clean_env() | lab.env("worker1").set
    old_token = gss_init(worker1)  # a service ticket at kvno 1, issued at real time

    query_hours = (
        datetime.fromisoformat(str(before["next_rotation"])) - datetime.now().astimezone()
    ).total_seconds() / 3600
    assert 0 < query_hours <= 24
    offset = f"+{math.ceil(query_hours) + 1}h"
    lab.down()
    lab.up(clock_offset=offset)

    keys_before = {(e.principal, e.kvno, e.enctype, e.key) for e in read_keytab(out)}
    after = keytab(lab, out, offset)
    assert after["kvnos"] == [2, 1]
    keys_after = {(e.principal, e.kvno, e.enctype, e.key) for e in read_keytab(out)}
    assert keys_before <= keys_after  # the kvno 1 keys are the very keys written before the rotation
    rows = kvnos_by_enctype(lab, out)
    principal = f"{GMSA}$@{REALM}"
    for kvno in (1, 2):
        for enctype in ("aes256-cts-hmac-sha1-96", "aes128-cts-hmac-sha1-96"):
            assert (kvno, principal, enctype) in rows
            assert (kvno, f"HTTP/{SPN_HOST}@{REALM}", enctype) in rows

    shifted = _worker1_env(lab)
    # New keys: kinit as the gMSA under the DC's clock, and a fresh service ticket (kvno 2).
    cc = {"KRB5CCNAME": f"FILE:{tmp_path / 'gmsa.cc'}"}
    run(["faketime", "-f", offset, "kinit", "-k", "-t", out, principal], shifted | cc, check=True)
    new_token = gss_init(shifted, offset)
    assert gss_accept(lab, out, new_token, offset) == f"WORKER1$@{REALM}"
    # Previous keys: the ticket issued before the rotation still opens with the refreshed keytab.
    assert gss_accept(lab, out, old_token) == f"WORKER1$@{REALM}"


def test_no_usable_kds_root_key_is_diagnosed(rotation_lab: Lab, runner_user: str) -> None:
    lab = rotation_lab
    status = lab.status()
    assert status.state == "running"
    # Whatever clock the DC runs on now, compare against a fresh start at real time.
    lab.down()
    lab.up()
    admin = clean_env() | lab.env("admin").set
    settings = lab.settings
    assert settings is not None
    # Samba refuses to create a gMSA when no root key exists: create it first, then delete them.
    samba_tool(
        lab,
        "service-account",
        "create",
        "--name=svcnokey",
        f"--dns-host-name=svcnokey.{REALM.lower()}",
        env=admin,
    )
    samba_tool(lab, "service-account", "group-msa-membership", "add", "--name=svcnokey$",
               f"--principal=CN=HybridWorkers,CN=Users,{settings.base_dn}", env=admin)  # fmt: skip
    samba_tool(lab, "user", "enable", "svcnokey$", env=admin)
    listing = json.loads(samba_tool(lab, "domain", "kds", "root-key", "list", "--json", env=admin))
    assert listing
    for key in listing:
        samba_tool(lab, "domain", "kds", "root-key", "delete", f"--name={key['name']}", env=admin)
    proc = run([*CREDO, "gmsa", "test", "svcnokey"], clean_env() | lab.env("worker1").set)
    assert proc.returncode == 1
    assert "no usable KDS root key" in proc.stderr
    # The agent names the same cause, with its fix, in `credo agent status` (issue 12 point 3):
    # this lab is the only one without a root key, so its check runs here.
    base = Path(tempfile.mkdtemp(prefix="agent-", dir="/run"))  # a short socket path
    try:
        (base / "out").mkdir()
        config = base / "agent.toml"
        config.write_text(agent_config(lab, settings, base).replace('name = "svcauto"', 'name = "svcnokey"'))
        agent = AgentProcess(config, base / "agent.log")
        agent.start()
        try:
            deadline = time.monotonic() + 30
            while "refresh failed (no-kds-root-key)" not in agent.log.read_text():
                assert agent.process is not None and agent.process.poll() is None, agent.log.read_text()
                assert time.monotonic() < deadline, agent.log.read_text()
                time.sleep(0.1)
            status = run([*CREDO, "agent", "status", "--json"], agent.env())
        finally:
            agent.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    [state] = json.loads(status.stdout)
    assert state["error"]["cause"] == "no-kds-root-key", state
    assert "no usable KDS root key" in state["error"]["message"] and state["error"]["hint"]
