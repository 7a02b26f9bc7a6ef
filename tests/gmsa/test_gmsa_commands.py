"""`credo gmsa test|show|keytab` against the lab DC, as WORKER1$ (allowed) and WORKER2$ (not)."""

from __future__ import annotations

import json
import re
import stat
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from tests.support.identity import credo, run

from credo.lab import SEED, Lab, LabSettings

Env = Callable[..., dict[str, str]]


def keytab_keys(path: Path, env: dict[str, str]) -> set[tuple[int, str, str, str]]:
    """(kvno, principal, enctype, key hex) from MIT `klist -kteK`."""
    out = run(["klist", "-kteK", path], env, check=True).stdout
    rows = set()
    for line in out.splitlines():
        match = re.match(r"\s*(\d+)\s+\S+\s+\S+\s+(\S+)\s+\((\S+)\)\s+\(0x([0-9a-f]+)\)", line)
        if match:
            kvno, principal, enctype, key = match.groups()
            rows.add((int(kvno), principal, enctype, key))
    return rows


def test_worker1_may_use_svcauto(as_identity: Env) -> None:
    proc = credo("gmsa", "test", SEED.gmsa, env=as_identity("worker1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def test_worker2_is_not_permitted_and_told_who_is(as_identity: Env, lab_settings: LabSettings) -> None:
    proc = credo("gmsa", "test", SEED.gmsa, env=as_identity("worker2"))
    assert proc.returncode == 1
    assert proc.stdout.strip() == "False"
    assert "WORKER2$ is not permitted to retrieve the managed password of svcauto$" in proc.stderr
    assert f"{lab_settings.netbios}\\{SEED.worker_group}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_test_json(as_identity: Env) -> None:
    proc = credo("gmsa", "test", SEED.gmsa, "--json", env=as_identity("worker2"))
    data = json.loads(proc.stdout)
    assert data["ok"] is False
    assert data["error"] == "NotPermittedToRetrieve"


def test_unknown_account(as_identity: Env) -> None:
    proc = credo("gmsa", "test", "nosuchgmsa", env=as_identity("worker1"))
    assert proc.returncode == 1
    assert "managed service account nosuchgmsa$ does not exist" in proc.stderr


def test_show(as_identity: Env, lab_settings: LabSettings, tmp_path: Path) -> None:
    proc = credo("gmsa", "show", SEED.gmsa, "--json", env=as_identity("worker2"))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["dn"] == f"CN={SEED.gmsa},CN=Managed Service Accounts,{lab_settings.base_dn}"
    assert data["sid"].startswith("S-1-5-21-")
    assert data["enabled"] is True
    assert data["dns_host_name"] == f"{SEED.gmsa}.{lab_settings.dns_domain}"
    allowed = [p["name"] for p in data["principals_allowed_to_retrieve_password"]]
    assert f"{lab_settings.netbios}\\{SEED.worker_group}" in allowed
    assert data["supported_encryption_types"] == ["AES128", "AES256"]
    assert data["password_interval_days"] == 30
    assert data["kvno"] >= 1
    assert re.fullmatch(r"[0-9a-f-]{36}", data["password_id"]["root_key_id"])
    # The rotation time computed from the password id agrees with the DC's own query interval.
    keytab_report = json.loads(
        credo(
            "gmsa", "keytab", SEED.gmsa, "--out", tmp_path / "k", "--json", env=as_identity("worker1")
        ).stdout
    )
    shown = datetime.fromisoformat(data["next_rotation"])
    told = datetime.fromisoformat(keytab_report["next_rotation"])
    assert abs((shown - told).total_seconds()) < 60
    table = credo("gmsa", "show", SEED.gmsa, env=as_identity("worker2"))
    assert table.returncode == 0
    assert "HybridWorkers" in table.stdout


@pytest.fixture(scope="module")
def oracle_keys(
    lab: Lab, lab_settings: LabSettings, tmp_path_factory: pytest.TempPathFactory
) -> set[tuple[int, str, str, str]]:
    """Keys of svcauto$ exported by Samba itself, from the DC's own database (samba-lab.md)."""
    path = tmp_path_factory.mktemp("oracle") / "svcauto.keytab"
    run(
        ["samba-tool", "domain", "exportkeytab", path, f"--principal={SEED.gmsa}$@{lab_settings.realm}",
         "-s", lab.paths.smb_conf, "-H", lab.paths.sam_ldb],
        check=True,
    )  # fmt: skip
    return keytab_keys(path, {"KRB5_CONFIG": str(lab.paths.krb5_conf), "PATH": "/usr/bin:/bin"})


def test_keytab_kinit_klist_and_oracle(
    as_identity: Env, lab_settings: LabSettings, tmp_path: Path, oracle_keys: set[tuple[int, str, str, str]]
) -> None:
    out = tmp_path / "svcauto.keytab"
    env = as_identity("worker1")
    proc = credo(
        "gmsa",
        "keytab",
        SEED.gmsa,
        "--out",
        out,
        "--spn",
        f"HTTP/{SEED.gmsa}.{lab_settings.dns_domain}",
        "--json",
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    principal = f"{SEED.gmsa}$@{lab_settings.realm}"
    ours = keytab_keys(out, env)
    kvno = report["kvnos"][0]
    assert {(k, p, e) for k, p, e, _ in ours if p == principal} >= {
        (kvno, principal, "aes256-cts-hmac-sha1-96"),
        (kvno, principal, "aes128-cts-hmac-sha1-96"),
    }
    assert not any(e.startswith(("arcfour", "DEPRECATED")) for _, _, e, _ in ours)  # AES-only account
    # The independent exporter's AES keys are ours, byte for byte.
    oracle_aes = {(k, e, key) for k, p, e, key in oracle_keys if e.startswith("aes")}
    ours_aes = {(k, e, key) for k, p, e, key in ours if p == principal}
    assert oracle_aes and oracle_aes <= ours_aes
    # MIT kinit accepts them.
    cc = {"KRB5CCNAME": f"FILE:{tmp_path / 'cc'}"}
    run(["kinit", "-k", "-t", out, principal], env | cc, check=True)
    assert f"Default principal: {principal}" in run(["klist"], env | cc, check=True).stdout


def test_keytab_keeps_other_principals(
    as_identity: Env, lab: Lab, lab_settings: LabSettings, tmp_path: Path
) -> None:
    out = tmp_path / "shared.keytab"
    env = as_identity("worker1")
    out.write_bytes(lab.paths.host_keytab("worker1").read_bytes())
    proc = credo("gmsa", "keytab", SEED.gmsa, "--out", out, env=env)
    assert proc.returncode == 0, proc.stderr
    principals = {p for _, p, _, _ in keytab_keys(out, env)}
    assert principals == {f"WORKER1$@{lab_settings.realm}", f"{SEED.gmsa}$@{lab_settings.realm}"}


def test_keytab_refuses_rc4_on_an_aes_only_account(as_identity: Env, tmp_path: Path) -> None:
    proc = credo(
        "gmsa", "keytab", SEED.gmsa, "--out", tmp_path / "k", "--enctypes", "rc4", env=as_identity("worker1")
    )
    assert proc.returncode == 2
    assert "allows none of the requested encryption types" in proc.stderr
    assert not (tmp_path / "k").exists()


def test_keytab_as_worker2_is_refused_and_writes_nothing(as_identity: Env, tmp_path: Path) -> None:
    proc = credo("gmsa", "keytab", SEED.gmsa, "--out", tmp_path / "k", env=as_identity("worker2"))
    assert proc.returncode == 5
    assert "not permitted" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_keytab_owner(as_identity: Env, tmp_path: Path) -> None:
    out = tmp_path / "owned.keytab"
    proc = credo("gmsa", "keytab", SEED.gmsa, "--out", out, "--owner", "nobody", env=as_identity("worker1"))
    assert proc.returncode == 0, proc.stderr
    import pwd

    assert out.stat().st_uid == pwd.getpwnam("nobody").pw_uid
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_dc_found_by_dns_srv_and_failover(as_identity: Env, lab_settings: LabSettings) -> None:
    env = as_identity("worker1")
    del env["CREDO_LDAP_URL"]
    srv = credo("gmsa", "test", SEED.gmsa, env=env | {"CREDO_DNS_SERVER": lab_settings.address})
    assert srv.returncode == 0, srv.stderr
    # A first DC that refuses connections: the next one is tried.
    failover = credo(
        "gmsa", "test", SEED.gmsa, "--server", f"ldap://127.0.0.1:1,{lab_settings.ldap_url}", env=env
    )
    assert failover.returncode == 0, failover.stderr


@pytest.mark.parametrize("tls", ["ldaps", "starttls"])
def test_tls_transports(as_identity: Env, lab_settings: LabSettings, tls: str) -> None:
    env = as_identity("worker1")
    args = ["--server", lab_settings.ldaps_url] if tls == "ldaps" else ["--starttls"]
    proc = credo("gmsa", "test", SEED.gmsa, *args, env=env)
    assert proc.returncode == 0, proc.stderr


def test_tls_rejects_an_untrusted_ca(as_identity: Env, lab_settings: LabSettings, tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", tmp_path / "k.pem", "-out", bogus,
         "-subj", "/CN=bogus", "-days", "1"],
        check=True, capture_output=True,
    )  # fmt: skip
    proc = credo(
        "gmsa",
        "test",
        SEED.gmsa,
        "--server",
        lab_settings.ldaps_url,
        "--ca-file",
        bogus,
        env=as_identity("worker1"),
    )
    assert proc.returncode == 1
    assert "no domain controller answered" in proc.stderr


def test_disabled_account_is_reported(lab: Lab, lab_settings: LabSettings, as_identity: Env) -> None:
    local = ["-H", lab.paths.sam_ldb, "-s", lab.paths.smb_conf]
    run(
        [
            "samba-tool",
            "service-account",
            "create",
            "--name=svcoff",
            f"--dns-host-name=svcoff.{lab_settings.dns_domain}",
            *local,
        ],
        check=True,
    )
    try:
        run(["samba-tool", "service-account", "group-msa-membership", "add", "--name=svcoff$",
             f"--principal=CN={SEED.worker_group},CN=Users,{lab_settings.base_dn}", *local], check=True)  # fmt: skip
        proc = credo("gmsa", "test", "svcoff", env=as_identity("worker1"))
        assert proc.returncode == 1
        assert "svcoff$ is disabled" in proc.stderr
        run_proc = credo("run", "--as", "svcoff", "--", "true", env=as_identity("worker1"))
        assert run_proc.returncode == 5
        assert "svcoff$ is disabled" in run_proc.stderr
    finally:
        run(["samba-tool", "service-account", "delete", "--name=svcoff$", *local], check=True)


def test_the_users_own_ccache_is_never_touched(as_identity: Env, lab: Lab, tmp_path: Path) -> None:
    mine = tmp_path / "mine.ccache"
    mine.write_bytes(lab.paths.host_ccache("worker1").read_bytes())
    before = mine.read_bytes()
    env = as_identity("worker1") | {"KRB5CCNAME": f"FILE:{mine}"}
    assert credo("gmsa", "test", SEED.gmsa, env=env).returncode == 0
    assert credo("gmsa", "keytab", SEED.gmsa, "--out", tmp_path / "k", env=env).returncode == 0
    assert credo("run", "--as", SEED.gmsa, "--", "true", env=env).returncode == 0
    assert mine.read_bytes() == before
    missing = tmp_path / "absent.ccache"
    assert credo("gmsa", "test", SEED.gmsa, env=env | {"KRB5CCNAME": f"FILE:{missing}"}).returncode == 0
    assert not missing.exists()
