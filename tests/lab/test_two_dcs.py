"""A second DC in the lab (`credo lab up --dcs 2`): it joins, replicates, answers LDAP and Kerberos
for the realm (gMSA password reads included), stops and starts alone, and can be blackholed.

The module brings the second DC up once on the session's lab and leaves it running: the join costs
about 15 s the first time (join, DC 1 restarted with a peer krb5.conf, DC 2 started, first sync),
then `up` returns at once, and the agent's failover tests reuse the same two DCs.
"""

from __future__ import annotations

import json
import socket
import struct
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import ldap
import pytest

from credo.lab import Lab, LabSettings, hosts_file
from tests.support.blackhole import blackhole, blackhole_available
from tests.support.identity import credo, ldapsearch, run

Env = Callable[..., dict[str, str]]
# How long a test waits for DRS replication (Samba notifies its partner about 5 s after a change).
REPLICATION_TIMEOUT = 60.0


def _root_dse(url: str) -> dict[str, list[bytes]]:
    conn = ldap.initialize(url)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5)
    [(_dn, attrs)] = conn.search_s("", ldap.SCOPE_BASE, "(objectClass=*)", ["dnsHostName", "dsServiceName"])
    return attrs


def _connect_outcome(address: str, port: int, timeout: float) -> str:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return "connected"
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"


def test_status_lists_both_dcs(lab: Lab, two_dcs: LabSettings) -> None:
    proc = credo("lab", "status", "--dir", lab.paths.root, "--json")
    assert proc.returncode == 0, proc.stderr
    dcs = json.loads(proc.stdout)["dcs"]
    assert [(dc["number"], dc["state"], dc["fqdn"], dc["address"]) for dc in dcs] == [
        (1, "running", two_dcs.dc_fqdn, two_dcs.address),
        (2, "running", f"dc2.{two_dcs.dns_domain}", two_dcs.dc2_address),
    ]
    text = credo("lab", "status", "--dir", lab.paths.root)
    assert f"dc2  running  {two_dcs.dc2_address}" in text.stdout


def test_each_dc_answers_on_its_own_address_only(two_dcs: LabSettings) -> None:
    # `interfaces = ADDRESS` with `bind interfaces only`: each samba binds its own address, so the
    # two share ports 88/389/... and an address always reaches the DC it names.
    for number in (1, 2):
        attrs = _root_dse(f"ldap://{two_dcs.dc_address(number)}")
        assert attrs["dnsHostName"] == [two_dcs.dc_fqdn_of(number).encode()]
    assert (
        _root_dse(two_dcs.ldap_url_of(1))["dsServiceName"]
        != _root_dse(two_dcs.ldap_url_of(2))["dsServiceName"]
    )


def test_krb5_conf_lists_both_kdcs(lab: Lab, two_dcs: LabSettings) -> None:
    lines = [line.strip() for line in lab.paths.krb5_conf.read_text().splitlines()]
    kdcs = [line.split("=", 1)[1].strip() for line in lines if line.startswith("kdc =")]
    assert kdcs == [two_dcs.address, two_dcs.dc2_address]


def test_dc2_kdc_alone_issues_tickets(
    lab: Lab, two_dcs: LabSettings, as_identity: Env, tmp_path: Path
) -> None:
    conf = tmp_path / "krb5.conf"
    conf.write_text(lab.paths.krb5_conf.read_text().replace(f"        kdc = {two_dcs.address}\n", ""))
    assert f"kdc = {two_dcs.address}\n" not in conf.read_text()
    env = as_identity(None, KRB5_CONFIG=str(conf), KRB5CCNAME=f"FILE:{tmp_path / 'cc'}")
    principal = f"WORKER1$@{two_dcs.realm}"
    run(["kinit", "-k", "-t", lab.paths.host_keytab("worker1"), principal], env, check=True)
    # The ldap/dc2 service ticket comes from DC 2's KDC too; GSSAPI bind to DC 2 with it.
    whoami = run(["ldapwhoami", "-Q", "-H", two_dcs.ldap_url_of(2)], env, check=True)
    assert whoami.stdout.strip() == f"u:{two_dcs.netbios}\\WORKER1$"
    assert f"ldap/dc2.{two_dcs.dns_domain}@{two_dcs.realm}" in run(["klist"], env, check=True).stdout


def test_dc2_answers_gssapi_ldap_with_its_own_spn(two_dcs: LabSettings, as_identity: Env) -> None:
    env = as_identity("worker1", LDAPURI=two_dcs.ldap_url_of(2))
    assert run(["ldapwhoami", "-Q"], env, check=True).stdout.strip() == f"u:{two_dcs.netbios}\\WORKER1$"
    assert f"ldap/dc2.{two_dcs.dns_domain}@" in run(["klist"], env, check=True).stdout


def test_a_user_made_on_dc1_appears_on_dc2(lab: Lab, two_dcs: LabSettings, as_identity: Env) -> None:
    admin = as_identity("admin")
    name = f"repl{uuid.uuid4().hex[:8]}"
    made = run(
        [
            "samba-tool",
            "user",
            "add",
            name,
            "--random-password",
            "-H",
            two_dcs.ldap_url_of(1),
            "--use-kerberos=required",
        ],
        admin,
    )
    assert made.returncode == 0, made.stderr
    try:
        started = time.monotonic()
        while time.monotonic() - started < REPLICATION_TIMEOUT:
            if ldapsearch(admin | {"LDAPURI": two_dcs.ldap_url_of(2)}, f"(sAMAccountName={name})", "dn"):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"{name} did not reach DC 2 within {REPLICATION_TIMEOUT:.0f} s")
        print(f"replicated to DC 2 in {time.monotonic() - started:.1f} s")
        summary = run(
            ["samba-tool", "drs", "showrepl", two_dcs.dc_fqdn_of(2), "--summary", "--use-kerberos=required"],
            admin,
        )
        assert "[ALL GOOD]" in summary.stdout, summary.stdout + summary.stderr
    finally:
        run(
            ["samba-tool", "user", "delete", name, "-H", two_dcs.ldap_url_of(1), "--use-kerberos=required"],
            admin,
        )


def test_worker1_reads_the_managed_password_from_dc2(two_dcs: LabSettings, as_identity: Env) -> None:
    # Each DC computes msDS-ManagedPassword itself (from the replicated KDS root key): the same
    # current password. The intervals after it (MS-ADTS 2.2.19) count down with the clock.
    passwords = []
    for number in (1, 2):
        env = as_identity("worker1", LDAPURI=two_dcs.ldap_url_of(number))
        [(_dn, attrs)] = ldapsearch(env, "(sAMAccountName=svcauto$)", "msDS-ManagedPassword")
        [blob] = attrs["msDS-ManagedPassword"]
        version, _reserved, length, current = struct.unpack_from("<HHIH", blob)
        assert (version, length) == (1, len(blob))
        passwords.append(blob[current : current + 256])
    assert passwords[0] == passwords[1]
    [(_dn, denied)] = ldapsearch(
        as_identity("worker2", LDAPURI=two_dcs.ldap_url_of(2)),
        "(sAMAccountName=svcauto$)",
        "msDS-ManagedPassword",
    )
    assert "msDS-ManagedPassword" not in denied


def test_credo_gmsa_reads_from_dc2(two_dcs: LabSettings, as_identity: Env) -> None:
    shown = credo(
        "gmsa", "show", "svcauto", "--server", two_dcs.ldap_url_of(2), "--json", env=as_identity("worker1")
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["dn"].startswith("CN=svcauto,")
    tested = credo(
        "gmsa", "test", "svcauto", env=as_identity("worker1") | {"CREDO_LDAP_URL": two_dcs.ldap_url_of(2)}
    )
    assert tested.returncode == 0, tested.stderr


def test_lab_env_dc2_points_ldap_at_dc2(lab: Lab, two_dcs: LabSettings) -> None:
    proc = credo("lab", "env", "--dir", lab.paths.root, "--dc", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    variables = json.loads(proc.stdout)["set"]
    assert variables["CREDO_LDAP_URL"] == variables["LDAPURI"] == two_dcs.ldap_url_of(2)


def test_ldaps_to_dc2_validates_against_the_published_ca(lab: Lab, two_dcs: LabSettings) -> None:
    for number in (1, 2):
        conn = ldap.initialize(f"ldaps://{two_dcs.dc_fqdn_of(number)}")
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(lab.paths.ca_file))
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        [(_, attrs)] = conn.search_s("", ldap.SCOPE_BASE, "(objectClass=*)", ["dnsHostName"])
        assert attrs["dnsHostName"] == [two_dcs.dc_fqdn_of(number).encode()]


def test_stop_one_dc_the_other_keeps_answering(lab: Lab, dc2_running: LabSettings, as_identity: Env) -> None:
    settings = dc2_running
    stopped = credo("lab", "stop-dc", "2", "--dir", lab.paths.root)
    assert stopped.returncode == 0, stopped.stderr
    assert [dc.state for dc in lab.status().dcs] == ["running", "stopped"]
    assert _connect_outcome(settings.dc2_address, 389, 2.0) == "refused"
    env = as_identity("worker1")
    assert (
        run(["ldapwhoami", "-Q", "-H", settings.ldap_url_of(1)], env, check=True)
        .stdout.strip()
        .endswith("WORKER1$")
    )
    started = time.monotonic()
    again = credo("lab", "start-dc", "2", "--dir", lab.paths.root)
    assert again.returncode == 0, again.stderr
    print(f"DC 2 started again in {time.monotonic() - started:.1f} s")
    assert (
        run(["ldapwhoami", "-Q", "-H", settings.ldap_url_of(2)], env, check=True)
        .stdout.strip()
        .endswith("WORKER1$")
    )


def test_blackholed_dc_times_out_and_the_other_answers(dc2_running: LabSettings, as_identity: Env) -> None:
    why = blackhole_available()
    if why is not None:
        pytest.skip(why)
    settings = dc2_running
    env = as_identity("worker1")
    with blackhole(settings.dc2_address):
        started = time.monotonic()
        # No RST: the connect waits out its whole timeout, as towards a dead host.
        assert _connect_outcome(settings.dc2_address, 389, 1.5) == "timeout"
        assert time.monotonic() - started >= 1.4
        assert _connect_outcome(settings.dc2_address, 88, 1.0) == "timeout"
        whoami = run(["ldapwhoami", "-Q", "-H", settings.ldap_url_of(1)], env, check=True, timeout=30)
        assert whoami.stdout.strip().endswith("WORKER1$")
    assert _connect_outcome(settings.dc2_address, 389, 2.0) == "connected"


def test_stop_dc_on_a_one_dc_lab_is_an_input_error(tmp_path: Path) -> None:
    LabSettings(realm="ONE.EXAMPLE.TEST", address="127.0.0.5").save(Lab(tmp_path).paths)
    proc = credo("lab", "stop-dc", "2", "--dir", tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "credo: error: the lab in" in proc.stderr and "has no DC 2" in proc.stderr
    assert "credo: hint:" in proc.stderr and "--dcs 2" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_two_dc_lab_does_not_shrink(lab: Lab, two_dcs: LabSettings) -> None:
    proc = credo("lab", "up", "--dir", lab.paths.root, "--dcs", "1")
    assert proc.returncode == 2, proc.stderr
    assert "has 2 domain controllers" in proc.stderr and "stop-dc 2" in proc.stderr
    # Without --dcs, `up` keeps both (and returns at once: both run).
    kept = credo("lab", "up", "--dir", lab.paths.root, "--json")
    assert kept.returncode == 0, kept.stderr
    assert [dc["state"] for dc in json.loads(kept.stdout)["dcs"]] == ["running", "running"]


def test_hosts_lines_of_a_tag_are_replaced_and_all_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    monkeypatch.setattr(hosts_file, "HOSTS_FILE", hosts)
    lab_dir = Path("/nonexistent/lab")
    assert hosts_file.add_lab_names(["dc1.unresolvable.invalid"], "127.0.0.1", lab_dir)
    assert hosts_file.add_lab_names(["dc2.unresolvable.invalid"], "127.0.2.1", lab_dir, "dc2")
    assert hosts_file.add_lab_names(["dc2.unresolvable.invalid", "x.invalid"], "127.0.2.1", lab_dir, "dc2")
    assert hosts_file.add_lab_names(["other.invalid"], "127.0.0.9", Path("/nonexistent/lab2"))
    lines = hosts.read_text().splitlines()
    assert len(lines) == 4 and sum("dc2.unresolvable.invalid" in line for line in lines) == 1
    assert hosts_file.remove_lab_names(lab_dir, "dc2")
    assert "dc2." not in hosts.read_text() and "dc1." in hosts.read_text()
    hosts_file.add_lab_names(["dc2.unresolvable.invalid"], "127.0.2.1", lab_dir, "dc2")
    assert hosts_file.remove_lab_names(lab_dir)
    assert hosts.read_text().splitlines() == [
        "127.0.0.1 localhost",
        "127.0.0.9\tother.invalid\t# credo-lab /nonexistent/lab2",
    ]
