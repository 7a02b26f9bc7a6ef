"""Provision the lab DC and seed its demo directory, all on the local database before the DC starts.

Seeding with ``samba-tool -H DIR/samba/private/sam.ldb`` while the DC is stopped takes about a
third of a second a command and needs no credentials at all: no password is generated into argv,
logs or files. Host and administrator keytabs are exported from the local database, as Samba's
own ``domain exportkeytab`` does it (samba-lab.md: the local form is the reliable one).

The demo directory (DEVELOPERS.md, issue 2):
- OU=Staff with users jdoe, asmith, bwong;
- computers WORKER1$ and WORKER2$, enabled, random machine passwords, host keytabs exported;
- group HybridWorkers = {WORKER1$};
- gMSA svcauto$: enabled, AES only (msDS-SupportedEncryptionTypes = 0x18), password retrievable
  by HybridWorkers, and allowed to read and write userAccountControl of users in OU=Staff;
- the KDS root key that provisioning creates (usable at once: its use start time is in the past).

For restricted endpoints (issue 13; ``seed_endpoints``, also run on a lab seeded before it):
- groups Helpdesk and Tier1, Tier1 a member of Helpdesk, jdoe a member of Tier1 only (so jdoe is
  in Helpdesk through nesting, which tokenGroups shows and a plain ``member`` read does not);
  asmith in neither;
- the SPN host/worker1.<domain> on WORKER1$ (the endpoint host, whose agent may read svcauto$),
  its keys exported to DIR/hosts/worker1.sshd.keytab for sshd's GSSAPI acceptor;
- keytabs of jdoe and asmith in DIR/users/ (0600), exported like the administrator's: the lab
  knows no user password, and ``credo lab env --user jdoe`` makes a ccache from the keytab.

For migrating user service accounts to gMSAs (``seed_migration``, also run on a lab seeded before it):
- svc_legacy in CN=Users, the legacy case: a user acting as a service, with a random password
  nobody knows that never expires, the SPN HTTP/legacy.<domain>, and no
  msDS-SupportedEncryptionTypes (so the KDC encrypts its tickets with RC4: Kerberoastable, which
  the audit's user-service-accounts check reports as critical); its keys exported to
  DIR/users/svc_legacy.keytab (0600) for a service that accepts tickets for that SPN.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from credo.errors import EnvironmentProblem
from credo.lab.settings import DC2_HOST_NAME, DC_HOST_NAME, LabPaths, LabSettings

__all__ = [
    "ENDPOINT_SEED",
    "ENDPOINT_SEED_VERSION",
    "MIGRATION_SEED",
    "MIGRATION_SEED_VERSION",
    "SEED",
    "SEED_VERSION",
    "SHARES",
    "SHARE_SEED_VERSION",
    "DemoDirectory",
    "EndpointDirectory",
    "LabShare",
    "MigrationDirectory",
    "dsa_guid",
    "join_dc",
    "provision",
    "seed_endpoints",
    "seed_migration",
    "seed_shares",
    "share_path",
]

# schemaIDGUID of the userAccountControl attribute and of the user class (MS-ADA3, MS-ADSC).
USER_ACCOUNT_CONTROL_GUID = "bf967a68-0de6-11d0-a285-00aa003049e2"
USER_CLASS_GUID = "bf967aba-0de6-11d0-a285-00aa003049e2"
# msDS-SupportedEncryptionTypes: AES128 (0x08) | AES256 (0x10), MS-KILE 2.2.7.
AES_ONLY = 0x18
# `samba-tool domain join` of the second DC: attempts, and the pause between them (see join_dc).
JOIN_ATTEMPTS = 3
JOIN_RETRY_PAUSE = 3.0


@dataclass(frozen=True)
class DemoDirectory:
    """The objects every lab is seeded with."""

    staff_ou: str = "Staff"
    users: tuple[tuple[str, str, str], ...] = (
        ("jdoe", "John", "Doe"),
        ("asmith", "Alice", "Smith"),
        ("bwong", "Bo", "Wong"),
    )
    computers: tuple[str, ...] = ("WORKER1", "WORKER2", "CREDOSRV")
    worker_group: str = "HybridWorkers"
    worker_group_members: tuple[str, ...] = ("WORKER1",)
    gmsa: str = "svcauto"
    # The identity of `credo server` in the lab: a gMSA with an HTTP/ SPN, readable by CREDOSRV$.
    server_host: str = "CREDOSRV"
    server_gmsa: str = "svccredo"


# Bumped when the seed or the DC configuration changes: `up` re-provisions a lab made by an older credo.
SEED_VERSION = 3


SEED = DemoDirectory()


@dataclass(frozen=True)
class EndpointDirectory:
    """What restricted endpoints need in the lab (issue 13): groups, users, sshd's host identity."""

    group: str = "Helpdesk"
    # jdoe is in Helpdesk only through Tier1: proves that group resolution follows nesting.
    nested_group: str = "Tier1"
    member: str = "jdoe"
    outsider: str = "asmith"
    # sshd's GSSAPI identity: host/worker1.<domain> on WORKER1$, the host whose agent reads svcauto$.
    host: str = "WORKER1"

    @property
    def users(self) -> tuple[str, str]:
        return (self.member, self.outsider)


# Bumped when seed_endpoints adds something: `up` runs it again on a lab seeded by an older credo.
ENDPOINT_SEED_VERSION = 2
ENDPOINT_SEED = EndpointDirectory()
LOCKOUT_TIME_GUID = "28630ebf-41d5-11d1-a9c1-0000f80367c1"


@dataclass(frozen=True)
class LabShare:
    """A file share on DC 1, for runbooks that use SMB (issue 16 point 6): every authenticated
    account may read it; only ``writers`` (sAMAccountNames) may write."""

    name: str
    writers: tuple[str, ...]


# credo-drop: only the gMSA may write; credo-readonly: the gMSA may read, not write.
SHARES = (LabShare("credo-drop", (f"{SEED.gmsa}$",)), LabShare("credo-readonly", ()))
# Bumped when seed_shares adds something: `up` runs it again (and restarts DC 1 to serve it).
SHARE_SEED_VERSION = 1


@dataclass(frozen=True)
class MigrationDirectory:
    """The legacy user service account that `credo migrate` moves to a gMSA in the lab."""

    user: str = "svc_legacy"
    # Its SPN, SERVICE/HOST.<domain>; HOST.<domain> resolves to the lab address (Lab._lab_names).
    spn_service: str = "HTTP"
    host: str = "legacy"
    description: str = "Legacy web service (a user account: migrate it to a gMSA)"

    def spn(self, dns_domain: str) -> str:
        return f"{self.spn_service}/{self.host}.{dns_domain}"


# Bumped when seed_migration adds something: `up` runs it again on a lab seeded by an older credo.
MIGRATION_SEED_VERSION = 1
MIGRATION_SEED = MigrationDirectory()
# MS-DTYP 2.4.3 access masks, as Windows' security dialog names them: "Read & execute"
# (FILE_GENERIC_READ | FILE_GENERIC_EXECUTE) and "Modify" (that, and write, append, delete).
_READ_EXECUTE = 0x1200A9
_MODIFY = 0x1301BF


class _SambaTool:
    def __init__(self, paths: LabPaths) -> None:
        self.paths = paths
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}
        self.env = env | {"LC_ALL": "C.UTF-8"}

    def __call__(self, *args: str, local_db: bool = True) -> str:
        argv = ["samba-tool", *args, "-s", str(self.paths.smb_conf)]
        if local_db:
            argv += ["-H", str(self.paths.sam_ldb)]
        return _run(argv, self.env)

    def ldbmodify(self, ldif: str) -> None:
        _run(["ldbmodify", "-H", str(self.paths.sam_ldb)], self.env, stdin=ldif)

    def exists(self, sam_account_name: str) -> bool:
        out = _run(
            ["ldbsearch", "-H", str(self.paths.sam_ldb), f"(sAMAccountName={sam_account_name})", "dn"],
            self.env,
        )
        return any(line.startswith("dn: ") for line in out.splitlines())

    def object_sid(self, sam_account_name: str) -> str:
        out = _run(
            ["ldbsearch", "-H", str(self.paths.sam_ldb), f"(sAMAccountName={sam_account_name})", "objectSid"],
            self.env,
        )
        for line in out.splitlines():
            if line.startswith("objectSid: "):
                return line.split(": ", 1)[1].strip()
        raise EnvironmentProblem(f"seeding failed: {sam_account_name} has no objectSid")


def _run(argv: Sequence[str], env: dict[str, str], stdin: str | None = None) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        # Provisioning prints the generated administrator password: never echo such lines.
        lines = [
            line
            for line in (proc.stderr + proc.stdout).splitlines()
            # Indented lines are a traceback's source lines: the error is on the lines around them.
            if line.strip() and not line.startswith((" ", "\t")) and "password" not in line.lower()
        ]
        detail = lines[-1] if lines else f"exit status {proc.returncode}"
        raise EnvironmentProblem(f"`{' '.join(argv[:3])}` failed: {detail}")
    return proc.stdout


def _smb_options(address: str, paths: LabPaths) -> list[str]:
    run = paths.samba_dir / "run"
    # Each DC binds its own address only (bind interfaces only): two DCs share the host's ports.
    interfaces = address + (" ::1" if address == "127.0.0.1" else "")
    options = {
        "interfaces": interfaces,
        "bind interfaces only": "yes",
        "pid directory": str(run),
        "winbindd socket directory": str(run / "winbindd"),
        "ncalrpc dir": str(run / "ncalrpc"),
        # Default /run/samba/nmbd exists only where an init system ran Debian's samba services.
        "nmbd:socket dir": str(run / "nmbd"),
        "log file": str(paths.samba_dir / "log" / "log.%m"),
        # The lab answers only for its own zone: never forward DNS queries off the machine.
        "dns forwarder": address,
        "load printers": "no",
        "printing": "bsd",
        "printcap name": "/dev/null",
        "disable spoolss": "yes",
    }
    return [f"--option={key}={value}" for key, value in options.items()]


def provision(settings: LabSettings, paths: LabPaths) -> None:
    """Provision DIR/samba and seed it; on any failure remove DIR/samba so nothing is half-made."""
    if paths.samba_dir.exists():
        shutil.rmtree(paths.samba_dir)
    (paths.samba_dir / "run").mkdir(parents=True)
    (paths.samba_dir / "log").mkdir()
    tool = _SambaTool(paths)
    try:
        _run(
            [
                "samba-tool", "domain", "provision",
                f"--targetdir={paths.samba_dir}",
                f"--realm={settings.realm}",
                f"--domain={settings.netbios}",
                "--server-role=dc",
                "--dns-backend=SAMBA_INTERNAL",
                "--use-rfc2307",
                f"--host-name={DC_HOST_NAME}",
                *_smb_options(settings.address, paths),
            ],
            tool.env,
        )  # fmt: skip
        _seed(tool, settings, paths)
        seed_shares(paths)
    except BaseException:
        shutil.rmtree(paths.samba_dir, ignore_errors=True)
        raise


def join_dc(settings: LabSettings, lab: LabPaths, dc: LabPaths, admin_ccache: Path) -> None:
    """Join a second DC to the running lab domain, into ``dc`` (DIR/dc2), replicating from DC 1.

    ``samba-tool domain join REALM DC`` authenticates as the domain administrator with the lab's
    admin ccache (made from its keytab): no password in argv, environment or logs. The new DC's
    machine password is random and stays in its secrets.ldb. On failure DIR/dc2/samba is removed;
    a later join cleans up the half-made DC account on DC 1 itself (join.py's cleanup_old_join).
    """
    tool = _SambaTool(lab)
    env = tool.env | {"KRB5_CONFIG": str(lab.krb5_conf), "KRB5CCNAME": f"FILE:{admin_ccache}"}
    argv = [
        "samba-tool", "domain", "join", settings.dns_domain, "DC",
        f"--server={settings.dc_fqdn}",
        f"--targetdir={dc.samba_dir}",
        "--dns-backend=SAMBA_INTERNAL",
        "--use-kerberos=required",
        f"--option=netbios name={DC2_HOST_NAME.upper()}",
        *_smb_options(settings.dc2_address, dc),
    ]  # fmt: skip
    for attempt in range(1, JOIN_ATTEMPTS + 1):
        if dc.samba_dir.exists():
            shutil.rmtree(dc.samba_dir)
        (dc.samba_dir / "run").mkdir(parents=True)
        (dc.samba_dir / "log").mkdir()
        try:
            _run(argv, env)
            return
        except EnvironmentProblem:
            # Right after DC 1 starts, the join's first LDAP bind can fail ("LDAP client internal
            # error: NT_STATUS_INVALID_PARAMETER", seen once a run); the same join works a moment later.
            shutil.rmtree(dc.samba_dir, ignore_errors=True)
            if attempt == JOIN_ATTEMPTS:
                raise
            time.sleep(JOIN_RETRY_PAUSE)
        except BaseException:
            shutil.rmtree(dc.samba_dir, ignore_errors=True)
            raise


def dsa_guid(paths: LabPaths) -> str:
    """The objectGUID of a DC's NTDS Settings object, read from its own database.

    Replication finds a source DC by ``<this GUID>._msdcs.<forest>`` (MS-ADTS 6.3.1.1 names a DC's
    DSA GUID-based DNS name), which the lab resolves through /etc/hosts as it does the DC names.
    """
    env = _SambaTool(paths).env
    # ldbsearch folds long LDIF lines (RFC 2849: a continuation starts with one space).
    root = _run(["ldbsearch", "-H", str(paths.sam_ldb), "-b", "", "-s", "base", "dsServiceName"], env)
    root = root.replace("\n ", "")
    service = next(
        (line.split(": ", 1)[1] for line in root.splitlines() if line.startswith("dsServiceName: ")), None
    )
    if service is None:
        raise EnvironmentProblem(f"{paths.sam_ldb} names no dsServiceName")
    out = _run(["ldbsearch", "-H", str(paths.sam_ldb), "-b", service, "-s", "base", "objectGUID"], env)
    for line in out.splitlines():
        if line.startswith("objectGUID: "):
            return line.split(": ", 1)[1].strip()
    raise EnvironmentProblem(f"{service} has no objectGUID")


def _seed(tool: _SambaTool, settings: LabSettings, paths: LabPaths) -> None:
    base = settings.base_dn
    ou_dn = f"OU={SEED.staff_ou},{base}"
    tool("ou", "add", f"OU={SEED.staff_ou}")
    for name, given, surname in SEED.users:
        tool(
            "user", "add", name, "--random-password", f"--userou=OU={SEED.staff_ou}", "--use-username-as-cn",
            f"--given-name={given}", f"--surname={surname}",
        )  # fmt: skip
    for computer in SEED.computers:
        tool("computer", "add", computer)
        # `computer add` leaves the account disabled with no password (UAC 4098): give it a random
        # one, known to nobody, and enable it; the host keytab is exported from the database.
        tool("user", "setpassword", f"{computer}$", "--random-password")
        tool("user", "enable", f"{computer}$")
    tool("group", "add", SEED.worker_group)
    tool("group", "addmembers", SEED.worker_group, ",".join(f"{m}$" for m in SEED.worker_group_members))

    gmsa = SEED.gmsa
    _create_gmsa(
        tool, settings, gmsa, f"{gmsa}.{settings.dns_domain}", f"CN={SEED.worker_group},CN=Users,{base}"
    )
    # The credo server's identity: a gMSA with an HTTP/ SPN, readable by the server's host.
    _create_gmsa(
        tool, settings, SEED.server_gmsa, settings.server_fqdn, f"CN={SEED.server_host},CN=Computers,{base}"
    )
    tool("spn", "add", f"HTTP/{settings.server_fqdn}", f"{SEED.server_gmsa}$")
    sid = tool.object_sid(f"{gmsa}$")
    # Read/write property userAccountControl, inherited by user objects (MS-DTYP 2.4.4.3 object ACE).
    ace = f"(OA;CI;RPWP;{USER_ACCOUNT_CONTROL_GUID};{USER_CLASS_GUID};{sid})"
    tool("dsacl", "set", f"--objectdn={ou_dn}", f"--sddl={ace}")

    paths.hosts_dir.mkdir(mode=0o700, exist_ok=True)
    paths.admin_dir.mkdir(mode=0o700, exist_ok=True)
    for computer in SEED.computers:
        _export_keytab(tool, f"{computer}$", paths.host_keytab(computer))
    _export_keytab(tool, "Administrator", paths.admin_keytab)
    _seed_endpoints(tool, settings, paths)
    _seed_migration(tool, settings, paths)


def seed_endpoints(settings: LabSettings, paths: LabPaths) -> None:
    """Add what restricted endpoints need to a lab seeded before them; a no-op when all is there.

    Works on a running DC: samba-tool and ldbsearch act on its database directly, under its locks,
    as the test session's ``samba-tool user enable -H sam.ldb`` does.
    """
    _seed_endpoints(_SambaTool(paths), settings, paths)


def _seed_endpoints(tool: _SambaTool, settings: LabSettings, paths: LabPaths) -> None:
    seed = ENDPOINT_SEED
    for group in (seed.group, seed.nested_group):
        if not tool.exists(group):
            tool("group", "add", group)
    _add_member(tool, seed.group, seed.nested_group)
    _add_member(tool, seed.nested_group, seed.member)
    spn = f"host/{settings.host_fqdn(seed.host)}"
    if spn.lower() not in tool("spn", "list", f"{seed.host}$").lower():
        tool("spn", "add", spn, f"{seed.host}$")
    paths.hosts_dir.mkdir(mode=0o700, exist_ok=True)
    paths.users_dir.mkdir(mode=0o700, exist_ok=True)
    if not paths.sshd_keytab(seed.host).exists():
        _export_service_keytab(tool, f"{seed.host}$", f"{spn}@{settings.realm}", paths.sshd_keytab(seed.host))
    for user in seed.users:
        if not paths.user_keytab(user).exists():
            export_user_keytab(paths, user)
    # The helpdesk endpoint's gMSA may unlock the outsider: read/write property lockoutTime
    # (schema GUID 28630ebf-...; MS-ADTS 3.1.1.5.3.1.1.1: writing 0 unlocks), a delegation as an
    # admin gives a helpdesk over an OU, here on one user. dsacl set adds an ACE already there
    # only once.
    base = settings.base_dn
    ace = f"(OA;;RPWP;{LOCKOUT_TIME_GUID};;{tool.object_sid(f'{SEED.gmsa}$')})"
    tool("dsacl", "set", f"--objectdn=CN={seed.outsider},OU={SEED.staff_ou},{base}", f"--sddl={ace}")


def seed_migration(settings: LabSettings, paths: LabPaths) -> None:
    """Add the legacy user service account to a lab seeded before it; a no-op when all is there.
    Works on a running DC, as ``seed_endpoints`` does."""
    _seed_migration(_SambaTool(paths), settings, paths)


def _seed_migration(tool: _SambaTool, settings: LabSettings, paths: LabPaths) -> None:
    seed = MIGRATION_SEED
    if not tool.exists(seed.user):
        # A random password that nobody knows, as for the other users; in CN=Users, not OU=Staff
        # (that OU holds the people).
        tool("user", "add", seed.user, "--random-password", f"--description={seed.description}")
    # DONT_EXPIRE_PASSWD (MS-ADTS 2.2.16), the legacy habit that keeps the password forever.
    tool("user", "setexpiry", seed.user, "--noexpiry")
    spn = seed.spn(settings.dns_domain)
    if spn.lower() not in tool("spn", "list", seed.user).lower():
        tool("spn", "add", spn, seed.user)
    # No msDS-SupportedEncryptionTypes on purpose: the KDC's default for the account, RC4
    # (MS-KILE 3.3.5.7), is the seeded weakness.
    paths.users_dir.mkdir(mode=0o700, exist_ok=True)
    if not paths.user_keytab(seed.user).exists():
        _export_keytab(tool, seed.user, paths.user_keytab(seed.user))


def share_path(paths: LabPaths, share: LabShare) -> Path:
    return paths.samba_dir / "shares" / share.name


def seed_shares(paths: LabPaths) -> bool:
    """Add the lab's file shares: a section in smb.conf, a directory and its NT ACL (kept by
    Samba's acl_xattr in the directory's security.NTACL attribute) each. True when smb.conf
    changed: a running DC serves the new shares only once restarted. Idempotent.
    """
    tool = _SambaTool(paths)
    conf = paths.smb_conf.read_text()
    sections = []
    for share in SHARES:
        directory = share_path(paths, share)
        directory.mkdir(parents=True, exist_ok=True)
        if f"[{share.name}]" not in conf:
            sections.append(f"\n[{share.name}]\n\tpath = {directory}\n\tread only = no\n")
    if sections:
        tmp = paths.smb_conf.with_suffix(".conf.tmp")
        tmp.write_text(conf.rstrip("\n") + "\n" + "".join(sections))
        os.replace(tmp, paths.smb_conf)
    for share in SHARES:
        # Protected (P, no inheritance from above), inherited by what is created inside (OICI).
        aces = ["(A;OICI;FA;;;SY)", "(A;OICI;FA;;;BA)", f"(A;OICI;0x{_READ_EXECUTE:x};;;AU)"]
        aces += [f"(A;OICI;0x{_MODIFY:x};;;{tool.object_sid(writer)})" for writer in share.writers]
        tool("ntacl", "set", "O:BAG:BAD:PAI" + "".join(aces), str(share_path(paths, share)), local_db=False)
    return bool(sections)


def _export_service_keytab(tool: _SambaTool, account: str, principal: str, path: Path) -> None:
    """A keytab of ``account``'s keys under the service principal name ``principal``.

    The KDC encrypts a ticket for an SPN in the keys of the account that holds it (MS-KILE
    3.3.5.1: salted with the account's own salt, e.g. CORP.EXAMPLE.TESThostworker1.<domain>).
    ``exportkeytab --principal=<the SPN>`` writes only the RC4 key (seen with Samba 4.22), which
    an AES-only ticket cannot use; so the account's keys are exported and renamed.
    """
    from credo.krb.keytab import KeytabEntry, read_keytab, write_keytab_atomically

    account_keytab = path.with_name(f".{path.name}.account")
    try:
        _export_keytab(tool, account, account_keytab)
        entries = [
            KeytabEntry(principal, entry.kvno, entry.enctype, entry.key)
            for entry in read_keytab(account_keytab)
        ]
    finally:
        account_keytab.unlink(missing_ok=True)
    if not entries:
        raise EnvironmentProblem(f"seeding failed: no keys exported for {account}")
    write_keytab_atomically(path, entries, keep_other_principals=False)


def export_user_keytab(paths: LabPaths, user: str) -> None:
    """(Re-)export the keytab of lab user ``user`` from the DC's database into DIR/users/ (0600)."""
    paths.users_dir.mkdir(mode=0o700, exist_ok=True)
    _export_keytab(_SambaTool(paths), user, paths.user_keytab(user))


def _add_member(tool: _SambaTool, group: str, member: str) -> None:
    members = tool("group", "listmembers", group).split()
    if member.lower() not in (m.lower() for m in members):
        tool("group", "addmembers", group, member)


def _create_gmsa(
    tool: _SambaTool, settings: LabSettings, name: str, dns_host_name: str, reader_dn: str
) -> None:
    """An enabled, AES-only gMSA whose password ``reader_dn`` may retrieve."""
    tool("service-account", "create", f"--name={name}", f"--dns-host-name={dns_host_name}")
    # group-msa-membership wants the principal's DN, not its name (samba-lab.md pitfalls).
    tool("service-account", "group-msa-membership", "add", f"--name={name}$", f"--principal={reader_dn}")
    # samba-tool creates gMSAs disabled (UAC 4130); New-ADServiceAccount -Enabled $True does this.
    tool("user", "enable", f"{name}$")
    tool.ldbmodify(
        f"dn: CN={name},CN=Managed Service Accounts,{settings.base_dn}\n"
        "changetype: modify\n"
        "replace: msDS-SupportedEncryptionTypes\n"
        f"msDS-SupportedEncryptionTypes: {AES_ONLY}\n"
    )


def _export_keytab(tool: _SambaTool, principal: str, path: Path) -> None:
    path.unlink(missing_ok=True)
    old_umask = os.umask(0o077)
    try:
        tool("domain", "exportkeytab", str(path), f"--principal={principal}")
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
