"""Fixtures of the audit tests: directory sessions as the lab admin and as a plain computer, and
helpers that create a misconfiguration and undo it (the lab stays in its seeded state)."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
from collections.abc import Iterator

import ldap
import pytest

from credo.ad.admin import AdminSession, AdminSettings
from credo.ad.connection import SD_FLAGS_DACL, Directory
from credo.ad.security import SecurityDescriptor, sid_from_bytes
from credo.audit import CheckOutcome, run_audit
from credo.lab import Lab, LabSettings


@pytest.fixture(scope="module")
def lab_krb5_config(lab: Lab) -> Iterator[None]:
    """In-process Kerberos (the audit library) reads the lab's krb5.conf, as `credo lab env` sets it;
    restored after each module so that no other test inherits it."""
    previous = os.environ.get("KRB5_CONFIG")
    os.environ["KRB5_CONFIG"] = str(lab.paths.krb5_conf)
    yield
    if previous is None:
        os.environ.pop("KRB5_CONFIG", None)
    else:
        os.environ["KRB5_CONFIG"] = previous


def _session(lab: Lab, settings: LabSettings, keytab: str, principal: str) -> AdminSession:
    return AdminSession(
        AdminSettings(
            keytab=lab.paths.root / keytab,
            principal=f"{principal}@{settings.realm}",
            server=settings.ldap_url,
        )
    )


@pytest.fixture(scope="module")
def admin_dir(lab: Lab, lab_settings: LabSettings, lab_krb5_config: None) -> Iterator[Directory]:
    """A directory session as the domain administrator (makes and undoes misconfigurations)."""
    keytab = lab.paths.admin_keytab.relative_to(lab.paths.root)
    with _session(lab, lab_settings, str(keytab), "Administrator") as session:
        yield session.directory


@pytest.fixture(scope="module")
def worker_dir(lab: Lab, lab_settings: LabSettings, lab_krb5_config: None) -> Iterator[Directory]:
    """A directory session as WORKER1$: an authenticated principal with no admin right."""
    keytab = lab.paths.host_keytab("worker1").relative_to(lab.paths.root)
    with _session(lab, lab_settings, str(keytab), "WORKER1$") as session:
        yield session.directory


def outcome(directory: Directory, check: str, **kwargs: object) -> CheckOutcome:
    report = run_audit(directory, only=(check,), **kwargs)  # type: ignore[arg-type]
    assert len(report.outcomes) == 1
    return report.outcomes[0]


def subjects(result: CheckOutcome) -> set[str]:
    return {f.subject_name for f in result.findings}


def samba_tool(lab: Lab, *args: str) -> str:
    """samba-tool on the lab DC's own database, as tests/conftest.py does."""
    argv = ["samba-tool", *args, "-H", str(lab.paths.sam_ldb), "-s", str(lab.paths.smb_conf)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc.stdout


def object_sid(directory: Directory, dn: str) -> str:
    entry = directory.search(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["objectSid"])
    return sid_from_bytes(entry[0][1]["objectSid"][0])[0]


def read_attr(directory: Directory, dn: str, attr: str, sd_flags: int | None = None) -> bytes | None:
    entry = directory.search(dn, ldap.SCOPE_BASE, "(objectClass=*)", [attr], sd_flags=sd_flags)
    values = entry[0][1].get(attr) if entry else None
    return values[0] if values else None


@contextlib.contextmanager
def extra_ace(directory: Directory, lab: Lab, dn: str, sddl_ace: str) -> Iterator[None]:
    """Add one ACE (SDDL, with samba-tool dsacl) to ``dn``'s DACL; put the DACL back afterwards."""
    original = read_attr(directory, dn, "nTSecurityDescriptor", SD_FLAGS_DACL)
    assert original is not None
    try:
        samba_tool(lab, "dsacl", "set", f"--objectdn={dn}", f"--sddl={sddl_ace}")
        yield
    finally:
        directory.modify(dn, [(ldap.MOD_REPLACE, "nTSecurityDescriptor", [original])], sd_flags=SD_FLAGS_DACL)


@contextlib.contextmanager
def replaced(directory: Directory, dn: str, attr: str, values: list[bytes]) -> Iterator[None]:
    """Set ``attr`` of ``dn`` for the duration; restore the previous value (or absence) afterwards."""
    entry = directory.search(dn, ldap.SCOPE_BASE, "(objectClass=*)", [attr])
    before = entry[0][1].get(attr) if entry else None
    directory.modify(dn, [(ldap.MOD_REPLACE, attr, values)])
    try:
        yield
    finally:
        directory.modify(dn, [(ldap.MOD_REPLACE, attr, before) if before else (ldap.MOD_DELETE, attr, None)])


@contextlib.contextmanager
def replaced_as_system(lab: Lab, directory: Directory, dn: str, attr: str, value: bytes) -> Iterator[None]:
    """``replaced`` for attributes Samba lets only the system write over LDAP ("can only be
    modified as system": systemOnly in its schema, msDS-AllowedToActOnBehalfOfOtherIdentity among
    them): ldbmodify on the DC's own database, as samba-tool does; the previous value (or its
    absence) is put back the same way."""
    before = read_attr(directory, dn, attr)

    def write(raw: bytes | None) -> None:
        change = (
            f"replace: {attr}\n{attr}:: {base64.b64encode(raw).decode()}\n" if raw else f"delete: {attr}\n"
        )
        ldif = f"dn: {dn}\nchangetype: modify\n{change}"
        argv = ["ldbmodify", "-H", str(lab.paths.sam_ldb)]
        proc = subprocess.run(argv, input=ldif, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"ldbmodify {dn}: {proc.stderr}"

    write(value)
    try:
        yield
    finally:
        if read_attr(directory, dn, attr) is not None or before is not None:
            write(before)


@contextlib.contextmanager
def temporary_gmsa(directory: Directory, lab: Lab, settings: LabSettings, name: str) -> Iterator[str]:
    """A gMSA as `samba-tool service-account create` leaves it (disabled, the creator as reader,
    no msDS-SupportedEncryptionTypes), deleted afterwards. Yields its DN."""
    dn = f"CN={name},CN=Managed Service Accounts,{settings.base_dn}"
    samba_tool(
        lab, "service-account", "create", f"--name={name}", f"--dns-host-name={name}.{settings.dns_domain}"
    )
    try:
        yield dn
    finally:
        with contextlib.suppress(Exception):
            directory.delete(dn, tree=True)
        for stray in directory.search(
            settings.base_dn, ldap.SCOPE_SUBTREE, f"(sAMAccountName={name}$)", ["cn"]
        ):
            directory.delete(stray[0], tree=True)


def membership_with(sd_raw: bytes, *sids: str) -> bytes:
    """msDS-GroupMSAMembership with extra readers, the same mask as the existing allow ACEs."""
    from credo.ad.security import ACCESS_ALLOWED_ACE_TYPE, Ace

    sd = SecurityDescriptor.unpack(sd_raw)
    dacl = list(sd.dacl or ())
    mask = next(a.mask for a in dacl if a.ace_type == ACCESS_ALLOWED_ACE_TYPE)
    dacl += [Ace(ACCESS_ALLOWED_ACE_TYPE, 0, mask, sid) for sid in sids]
    return SecurityDescriptor(sd.owner, sd.group, tuple(dacl), sd.control, sd.acl_revision).pack()
