"""The lab DC answers LDAP and Kerberos, and enforces who may read the gMSA's password."""

from __future__ import annotations

import base64
import socket
import struct
from collections.abc import Callable
from pathlib import Path

import ldap

from credo.lab import Lab, LabSettings
from tests.support.identity import ldapsearch, run

Env = Callable[..., dict[str, str]]


def test_ldap_answers_anonymous_rootdse(lab_settings: LabSettings) -> None:
    conn = ldap.initialize(lab_settings.ldap_url)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, 5)
    [(_dn, attrs)] = conn.search_s(
        "", ldap.SCOPE_BASE, "(objectClass=*)", ["defaultNamingContext", "dnsHostName"]
    )
    assert attrs["defaultNamingContext"] == [lab_settings.base_dn.encode()]
    assert attrs["dnsHostName"] == [lab_settings.dc_fqdn.encode()]


def test_ldaps_validates_against_the_published_ca(lab: Lab, lab_settings: LabSettings) -> None:
    conn = ldap.initialize(lab_settings.ldaps_url)
    conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(lab.paths.ca_file))
    conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
    conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
    [(_, attrs)] = conn.search_s("", ldap.SCOPE_BASE, "(objectClass=*)", ["dnsHostName"])
    assert attrs["dnsHostName"] == [lab_settings.dc_fqdn.encode()]


def test_dc_name_resolves_to_loopback(lab_settings: LabSettings) -> None:
    addresses = {info[4][0] for info in socket.getaddrinfo(lab_settings.dc_fqdn, None, socket.AF_INET)}
    assert lab_settings.address in addresses


def test_kinit_with_worker1_keytab(
    lab: Lab, lab_settings: LabSettings, as_identity: Env, tmp_path: Path
) -> None:
    env = as_identity(None, KRB5CCNAME=f"FILE:{tmp_path / 'cc'}")
    principal = f"WORKER1$@{lab_settings.realm}"
    run(["kinit", "-k", "-t", lab.paths.host_keytab("worker1"), principal], env, check=True)
    klist = run(["klist"], env, check=True).stdout
    assert f"Default principal: {principal}" in klist
    assert f"krbtgt/{lab_settings.realm}@{lab_settings.realm}" in klist


def test_kdc_refuses_a_wrong_principal(
    lab: Lab, lab_settings: LabSettings, as_identity: Env, tmp_path: Path
) -> None:
    env = as_identity(None, KRB5CCNAME=f"FILE:{tmp_path / 'cc'}")
    proc = run(["kinit", "-k", "-t", lab.paths.host_keytab("worker1"), f"WORKER2$@{lab_settings.realm}"], env)
    assert proc.returncode != 0


def test_worker1_is_who_it_says_over_kerberos(as_identity: Env, lab_settings: LabSettings) -> None:
    proc = run(["ldapwhoami", "-Q"], as_identity("worker1"), check=True)
    assert proc.stdout.strip() == f"u:{lab_settings.netbios}\\WORKER1$"


def test_worker1_reads_the_managed_password(as_identity: Env) -> None:
    [(_dn, attrs)] = ldapsearch(as_identity("worker1"), "(sAMAccountName=svcauto$)", "msDS-ManagedPassword")
    [blob] = attrs["msDS-ManagedPassword"]
    # MS-ADTS 2.2.19: version 1, then the blob's total length.
    version, _reserved, length = struct.unpack_from("<HHI", blob)
    assert version == 1
    assert length == len(blob) >= 16 + 258 + 16


def test_worker2_reads_no_managed_password(as_identity: Env) -> None:
    [(dn, attrs)] = ldapsearch(as_identity("worker2"), "(sAMAccountName=svcauto$)", "msDS-ManagedPassword")
    assert dn.startswith("CN=svcauto,")
    assert "msDS-ManagedPassword" not in attrs


def test_admin_env_gives_a_ready_ccache(as_identity: Env, lab_settings: LabSettings) -> None:
    env = as_identity("admin")
    klist = run(["klist"], env, check=True).stdout
    assert f"Default principal: Administrator@{lab_settings.realm}" in klist
    proc = run(["ldapwhoami", "-Q"], env, check=True)
    assert proc.stdout.strip() == f"u:{lab_settings.netbios}\\Administrator"
    assert "CREDO_HOST_KEYTAB" not in env


def test_blob_is_base64_in_ldif_not_text(as_identity: Env) -> None:
    proc = run(
        [
            "ldapsearch",
            "-Q",
            "-LLL",
            "-o",
            "ldif_wrap=no",
            "(sAMAccountName=svcauto$)",
            "msDS-ManagedPassword",
        ],
        as_identity("worker1"),
        check=True,
    )
    line = next(row for row in proc.stdout.splitlines() if row.startswith("msDS-ManagedPassword"))
    assert line.startswith("msDS-ManagedPassword:: ")
    assert base64.b64decode(line.split(":: ", 1)[1])[:2] == b"\x01\x00"
