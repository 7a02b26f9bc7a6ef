"""Every object the lab seeds exists, read back over LDAP as the domain administrator."""

from __future__ import annotations

import socket
import stat
import struct
import time
from collections.abc import Callable

import pytest

from credo.lab import MIGRATION_SEED, SEED, Lab, LabSettings
from tests.support.identity import ldapsearch, run

Env = Callable[..., dict[str, str]]
ACCOUNTDISABLE = 0x2
DONT_EXPIRE_PASSWD = 0x10000
FILETIME_EPOCH_OFFSET = 11644473600  # seconds between 1601-01-01 and 1970-01-01


@pytest.fixture(scope="module")
def admin(as_identity: Env) -> dict[str, str]:
    return as_identity("admin")


def one(env: dict[str, str], filterstr: str, *attrs: str, **kw: str) -> tuple[str, dict[str, list[bytes]]]:
    entries = ldapsearch(env, filterstr, *attrs, **kw)
    assert len(entries) == 1, entries
    return entries[0]


def sid_string(raw: bytes) -> str:
    """MS-DTYP 2.4.2.2 binary SID to its S-1-... form."""
    count = raw[1]
    authority = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack_from(f"<{count}I", raw, 8)
    return f"S-{raw[0]}-{authority}-" + "-".join(map(str, subs))


def uac(attrs: dict[str, list[bytes]]) -> int:
    return int(attrs["userAccountControl"][0])


def test_staff_ou_and_users(admin: dict[str, str], lab_settings: LabSettings) -> None:
    ou = f"OU={SEED.staff_ou},{lab_settings.base_dn}"
    one(admin, "(objectClass=organizationalUnit)", base=ou, scope="base")
    users = ldapsearch(admin, "(objectClass=user)", "sAMAccountName", "userAccountControl", base=ou)
    assert sorted(a["sAMAccountName"][0].decode() for _, a in users) == sorted(u for u, _, _ in SEED.users)
    assert all(not uac(a) & ACCOUNTDISABLE for _, a in users)


@pytest.mark.parametrize("computer", SEED.computers)
def test_computer_accounts_and_host_keytabs(
    computer: str, admin: dict[str, str], lab: Lab, lab_settings: LabSettings
) -> None:
    _, attrs = one(admin, f"(sAMAccountName={computer}$)", "objectClass", "userAccountControl")
    assert b"computer" in attrs["objectClass"]
    assert not uac(attrs) & ACCOUNTDISABLE
    keytab = lab.paths.host_keytab(computer)
    assert stat.S_IMODE(keytab.stat().st_mode) == 0o600
    listing = run(["klist", "-k", keytab], admin, check=True).stdout
    assert f"{computer}$@{lab_settings.realm}" in listing


def test_hybrid_workers_contains_worker1_only(admin: dict[str, str], lab_settings: LabSettings) -> None:
    _, attrs = one(admin, f"(&(objectClass=group)(sAMAccountName={SEED.worker_group}))", "member")
    members = [m.decode() for m in attrs["member"]]
    assert members == [f"CN=WORKER1,CN=Computers,{lab_settings.base_dn}"]


def test_gmsa_is_enabled_aes_only_in_msa_container(admin: dict[str, str], lab_settings: LabSettings) -> None:
    dn, attrs = one(
        admin,
        f"(sAMAccountName={SEED.gmsa}$)",
        "objectClass",
        "userAccountControl",
        "msDS-SupportedEncryptionTypes",
        "dNSHostName",
    )
    assert dn == f"CN={SEED.gmsa},CN=Managed Service Accounts,{lab_settings.base_dn}"
    assert b"msDS-GroupManagedServiceAccount" in attrs["objectClass"]
    assert not uac(attrs) & ACCOUNTDISABLE
    assert int(attrs["msDS-SupportedEncryptionTypes"][0]) == 0x18  # AES128 | AES256
    assert attrs["dNSHostName"] == [f"{SEED.gmsa}.{lab_settings.dns_domain}".encode()]


def test_gmsa_password_readers_are_hybrid_workers(
    lab: Lab, admin: dict[str, str], lab_settings: LabSettings
) -> None:
    # An independent reader of msDS-GroupMSAMembership: Samba's own tool.
    proc = run(
        ["samba-tool", "service-account", "group-msa-membership", "show", f"--name={SEED.gmsa}$",
         "-H", lab_settings.ldap_url, "--use-kerberos=required", "--json"],
        admin,
        check=True,
    )  # fmt: skip
    assert f"CN={SEED.worker_group},CN=Users,{lab_settings.base_dn}" in proc.stdout
    assert "WORKER2" not in proc.stdout


def test_gmsa_may_write_user_account_control_in_staff(
    admin: dict[str, str], lab_settings: LabSettings
) -> None:
    _, gmsa = one(admin, f"(sAMAccountName={SEED.gmsa}$)", "objectSid")
    proc = run(
        ["samba-tool", "dsacl", "get", f"--objectdn=OU={SEED.staff_ou},{lab_settings.base_dn}",
         "-H", lab_settings.ldap_url, "--use-kerberos=required"],
        admin,
        check=True,
    )  # fmt: skip
    # Read/write property userAccountControl, inherited by user objects, granted to the gMSA.
    ace = f"(OA;CI;RPWP;bf967a68-0de6-11d0-a285-00aa003049e2;bf967aba-0de6-11d0-a285-00aa003049e2;{sid_string(gmsa['objectSid'][0])})"
    assert ace in proc.stdout


def test_a_kds_root_key_is_usable_now(admin: dict[str, str], lab_settings: LabSettings) -> None:
    base = f"CN=Master Root Keys,CN=Group Key Distribution Service,CN=Services,CN=Configuration,{lab_settings.base_dn}"
    keys = ldapsearch(admin, "(objectClass=msKds-ProvRootKey)", "msKds-UseStartTime", base=base)
    assert keys
    now_filetime = int((time.time() + FILETIME_EPOCH_OFFSET) * 10_000_000)
    assert any(int(a["msKds-UseStartTime"][0]) <= now_filetime for _, a in keys)


def test_client_files(lab: Lab, lab_settings: LabSettings) -> None:
    conf = lab.paths.krb5_conf.read_text()
    assert f"default_realm = {lab_settings.realm}" in conf
    assert f"kdc = {lab_settings.address}" in conf
    assert lab.paths.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_legacy_user_service_account(lab: Lab, admin: dict[str, str], lab_settings: LabSettings) -> None:
    """svc_legacy: enabled, in CN=Users, a password that never expires, its SPN, no enctypes (RC4
    only), its keys in DIR/users (0600), and its SPN's host name resolving to the lab."""
    dn, attrs = one(
        admin,
        f"(sAMAccountName={MIGRATION_SEED.user})",
        "objectClass",
        "userAccountControl",
        "servicePrincipalName",
        "msDS-SupportedEncryptionTypes",
    )
    assert dn == f"CN={MIGRATION_SEED.user},CN=Users,{lab_settings.base_dn}"
    assert b"user" in attrs["objectClass"] and b"computer" not in attrs["objectClass"]
    assert uac(attrs) & DONT_EXPIRE_PASSWD and not uac(attrs) & ACCOUNTDISABLE
    spn = MIGRATION_SEED.spn(lab_settings.dns_domain)
    assert attrs["servicePrincipalName"] == [spn.encode()]
    assert "msDS-SupportedEncryptionTypes" not in attrs
    keytab = lab.paths.user_keytab(MIGRATION_SEED.user)
    assert stat.S_IMODE(keytab.stat().st_mode) == 0o600
    listing = run(["klist", "-k", keytab], admin, check=True).stdout
    assert f"{MIGRATION_SEED.user}@{lab_settings.realm}" in listing
    assert socket.gethostbyname(spn.split("/", 1)[1]) == lab_settings.address
