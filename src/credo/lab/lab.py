"""The lab domain: a real Samba AD DC on a loopback address, for trying credo and for every test."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from credo.errors import EnvironmentProblem, InputError
from credo.lab import hosts_file
from credo.lab.prerequisites import check_directory_writable, check_ports_free, check_samba
from credo.lab.process import DCProcess
from credo.lab.provision import (
    ENDPOINT_SEED,
    ENDPOINT_SEED_VERSION,
    MIGRATION_SEED,
    MIGRATION_SEED_VERSION,
    SEED,
    SEED_VERSION,
    SHARE_SEED_VERSION,
    dsa_guid,
    export_user_keytab,
    join_dc,
    provision,
    seed_endpoints,
    seed_migration,
    seed_shares,
)
from credo.lab.settings import (
    DEFAULT_ADDRESS,
    DEFAULT_REALM,
    MAX_DCS,
    LabPaths,
    LabSettings,
    default_lab_dir,
)

__all__ = ["IDENTITIES", "USERS", "DCStatus", "Lab", "LabEnvironment", "LabStatus"]

log = logging.getLogger(__name__)

IDENTITIES = ("worker1", "worker2", "server", "admin")
HOSTS = {"worker1": "WORKER1", "worker2": "WORKER2", "server": SEED.server_host}
# Lab users with a keytab (restricted endpoints' tests log in as them): `credo lab env --user`.
USERS = ENDPOINT_SEED.users
# /etc/hosts tags of the second DC's lines (see hosts_file): its names, and DC 1's DSA GUID name.
DC2_HOSTS_TAG = "dc2"
DC1_DSA_HOSTS_TAG = "dc1-dsa"
# How long the first start of DC 2 waits for DC 1 to learn DC 2's ldap/ SPN by replication.
FIRST_SYNC_TIMEOUT = 60.0


@dataclass(frozen=True)
class DCStatus:
    """One DC of the lab, as ``credo lab status --json`` lists it under ``dcs``."""

    number: int
    state: Literal["running", "stopped"]
    fqdn: str
    address: str
    ldap_url: str
    pid: int | None
    log_file: str


@dataclass(frozen=True)
class LabStatus:
    """What ``credo lab status`` reports."""

    state: Literal["running", "stopped", "absent"]
    dir: str
    pid: int | None = None
    realm: str | None = None
    netbios: str | None = None
    dns_domain: str | None = None
    dc_fqdn: str | None = None
    address: str | None = None
    ldap_url: str | None = None
    krb5_conf: str | None = None
    ca_file: str | None = None
    log_file: str | None = None
    # Every DC of the lab; the fields above (pid, address, ldap_url, ...) are DC 1's.
    dcs: list[DCStatus] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LabEnvironment:
    """Variables that make MIT, OpenLDAP and credo tools act as one lab identity."""

    identity: str | None
    set: dict[str, str]
    unset: tuple[str, ...]

    def shell(self) -> str:
        from shlex import quote

        lines = [f"unset {name}" for name in self.unset]
        lines += [f"export {key}={quote(value)}" for key, value in self.set.items()]
        return "\n".join(lines) + "\n"


class Lab:
    """One lab domain, kept under one directory (see ``credo.lab.settings``)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.paths = LabPaths((directory or default_lab_dir()).absolute())
        self.dc = DCProcess(self.paths)
        self.dc2 = DCProcess(self.paths.dc_paths(2))

    @property
    def settings(self) -> LabSettings | None:
        return LabSettings.load(self.paths)

    def _require_settings(self) -> LabSettings:
        settings = self.settings
        if settings is None:
            raise EnvironmentProblem(
                f"no lab in {self.paths.root}",
                hint=f"run `credo lab up --dir {self.paths.root}` first",
            )
        return settings

    # -- lifecycle -------------------------------------------------------------------------

    def up(
        self,
        realm: str | None = None,
        netbios: str | None = None,
        address: str | None = None,
        clock_offset: str | None = None,
        dcs: int | None = None,
        clock_file: Path | None = None,
    ) -> LabStatus:
        """Provision (first time) and start the DC(s); return at once when they already run.

        ``clock_offset`` starts the DC under libfaketime (``+14h``), ``clock_file`` on a clock
        shared with other processes (``credo.lab.clock``): see ``DCProcess.start``. One DC only.
        ``dcs=2`` joins a second DC (first time) and starts it too; a lab that has two keeps
        both when ``dcs`` is not given, and never goes back to one (``destroy`` does).
        """
        if clock_offset is not None and not re.fullmatch(r"[+-]\d+(\.\d+)?[smhdy]?", clock_offset):
            raise InputError(f"invalid clock offset {clock_offset!r}", hint="write it as +14h, +2d or -30m")
        if clock_file is not None and (clock_offset is not None or (dcs or 1) > 1):
            raise InputError("a shared clock file is for a lab of one DC, without a clock offset")
        if dcs is not None and dcs not in range(1, MAX_DCS + 1):
            raise InputError(f"a lab runs 1 or {MAX_DCS} domain controllers, not {dcs}", hint="use --dcs 2")
        check_directory_writable(self.paths.root)
        settings = self.settings
        dc2_address_added = False
        if settings is not None:
            self._check_same(settings, realm, netbios, address)
            if dcs is not None and dcs < settings.dcs:
                raise InputError(
                    f"the lab in {self.paths.root} has {settings.dcs} domain controllers; it keeps them",
                    hint=f"`credo lab stop-dc 2 --dir {self.paths.root}` stops the second one; "
                    "`credo lab destroy` removes the lab",
                )
            dcs = max(dcs or 1, settings.dcs)
            if settings.seed_version < SEED_VERSION:
                # Seeded by an older credo: the tests and the demo expect the current directory.
                log.warning(
                    "the lab in %s was seeded by an older credo: provisioning it again", self.paths.root
                )
                self.dc2.stop()
                self.dc.stop()
                self._forget_dc2()
                realm, netbios, address = settings.realm, settings.netbios, settings.address
                dc2_address_added = settings.dc2_address_added
                self.paths.state_file.unlink()
                settings = None
        if settings is not None and settings.endpoint_seed < ENDPOINT_SEED_VERSION:
            settings = self._seed_endpoints(settings)
        if settings is not None and settings.migration_seed < MIGRATION_SEED_VERSION:
            settings = self._seed_migration(settings)
        new_shares = False
        if settings is not None and settings.share_seed < SHARE_SEED_VERSION:
            settings, new_shares = self._seed_shares(settings)
        self._restart_for_smb(new_shares)
        wanted = dcs or 1
        if self.dc.pid() is not None:
            if wanted == 1 or self.dc2.pid() is not None:
                return self.status()
            assert settings is not None  # a running DC 1 has its lab.json
            return self._up_dc2(settings, clock_offset)
        check_samba()
        fresh = settings is None
        if settings is None:
            settings = LabSettings(
                realm=realm or DEFAULT_REALM,
                netbios=netbios or "",
                address=address or DEFAULT_ADDRESS,
                seed_version=SEED_VERSION,
                endpoint_seed=ENDPOINT_SEED_VERSION,
                share_seed=SHARE_SEED_VERSION,
                migration_seed=MIGRATION_SEED_VERSION,
                dc2_address_added=dc2_address_added,
            )
        check_ports_free(settings.address)
        try:
            settings = self._ensure_address(settings)
            if fresh:
                provision(settings, self.paths)
            if hosts_file.add_lab_names(self._lab_names(settings), settings.address, self.paths.root):
                settings = settings.replace(hosts_line_added=True)
            # lab.json is written last: its presence means "provisioned completely".
            settings.save(self.paths)
        except BaseException:
            if fresh:
                self._undo_host_changes(settings)
                shutil.rmtree(self.paths.samba_dir, ignore_errors=True)
            raise
        self._write_krb5_conf(settings)
        self.dc.start(settings.address, clock_offset, self._dc_krb5_conf(settings, 1), clock_file)
        self._publish_ca()
        if wanted == 2:
            return self._up_dc2(settings, clock_offset)
        return self.status()

    @staticmethod
    def _lab_names(settings: LabSettings) -> list[str]:
        """Names that resolve to the lab address: DC 1, the credo server, the endpoint host (sshd),
        the legacy service's host (its SPN, HTTP/legacy.<domain>)."""
        return [
            settings.dc_fqdn,
            settings.server_fqdn,
            settings.host_fqdn(ENDPOINT_SEED.host),
            settings.host_fqdn(MIGRATION_SEED.host),
        ]

    def _seed_endpoints(self, settings: LabSettings) -> LabSettings:
        """Bring a lab seeded before restricted endpoints up to date (see ``seed_endpoints``).

        Under a lock on DIR/.seed.lock: two test sessions may bring up the same lab at once.
        """
        with open(self.paths.root / ".seed.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.settings
            if current is not None and current.endpoint_seed >= ENDPOINT_SEED_VERSION:
                return current
            seed_endpoints(settings, self.paths)
            if hosts_file.add_lab_names(self._lab_names(settings), settings.address, self.paths.root):
                settings = settings.replace(hosts_line_added=True)
            settings = settings.replace(endpoint_seed=ENDPOINT_SEED_VERSION)
            settings.save(self.paths)
            log.info("added the restricted endpoints' groups, users and sshd keytab to %s", self.paths.root)
            return settings

    def _seed_migration(self, settings: LabSettings) -> LabSettings:
        """Add the legacy user service account to a lab seeded before it (``seed_migration``) and
        its host name to the lab's /etc/hosts line, under the seed lock."""
        with open(self.paths.root / ".seed.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.settings
            if current is not None and current.migration_seed >= MIGRATION_SEED_VERSION:
                return current
            seed_migration(settings, self.paths)
            if hosts_file.add_lab_names(self._lab_names(settings), settings.address, self.paths.root):
                settings = settings.replace(hosts_line_added=True)
            settings = settings.replace(migration_seed=MIGRATION_SEED_VERSION)
            settings.save(self.paths)
            log.info("added the legacy user service account %s to %s", MIGRATION_SEED.user, self.paths.root)
            return settings

    def _seed_shares(self, settings: LabSettings) -> tuple[LabSettings, bool]:
        """Add the file shares to a lab seeded before them (``seed_shares``), under the seed lock;
        whether smb.conf changed."""
        with open(self.paths.root / ".seed.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.settings
            if current is not None and current.share_seed >= SHARE_SEED_VERSION:
                return current, False
            changed = seed_shares(self.paths)
            settings = settings.replace(share_seed=SHARE_SEED_VERSION)
            settings.save(self.paths)
            log.info("added the file shares to %s", self.paths.root)
            return settings, changed

    def _restart_for_smb(self, new_shares: bool) -> None:
        """Stop a running DC that cannot serve SMB as this credo sets it up: started by an older
        credo without a run directory of its own (credo.lab.process), or DC 1 when its smb.conf
        just gained shares. ``up`` then starts it again as usual."""
        for number, process in ((1, self.dc), (2, self.dc2)):
            if process.pid() is None:
                continue
            if not process.has_private_run_dir() or (number == 1 and new_shares):
                log.warning("restarting lab DC %d of %s so that it serves SMB", number, self.paths.root)
                process.stop()

    def _up_dc2(self, settings: LabSettings, clock_offset: str | None) -> LabStatus:
        """Join (first time) and start the second DC, DC 1 running."""
        if self.dc2.pid() is not None:
            return self.status()
        dc2 = self.paths.dc_paths(2)
        address = settings.dc2_address
        check_ports_free(address)
        if self._add_loopback(address):
            settings = settings.replace(dc2_address_added=True)
            settings.save(self.paths)
        joined = settings.dcs == 2 and dc2.sam_ldb.exists()
        if not joined:
            started = time.monotonic()
            self._kinit(self.paths.admin_keytab, f"Administrator@{settings.realm}", self.paths.admin_ccache)
            join_dc(settings, self.paths, dc2, self.paths.admin_ccache)
            log.info("joined %s in %.1f s", settings.dc_fqdn_of(2), time.monotonic() - started)
        domain = settings.dns_domain
        hosts_file.add_lab_names(
            [settings.dc_fqdn_of(2), f"{dsa_guid(dc2)}._msdcs.{domain}"],
            address,
            self.paths.root,
            DC2_HOSTS_TAG,
        )
        hosts_file.add_lab_names(
            [f"{dsa_guid(self.paths)}._msdcs.{domain}"], settings.address, self.paths.root, DC1_DSA_HOSTS_TAG
        )
        settings = settings.replace(dcs=2)
        settings.save(self.paths)
        self._write_krb5_conf(settings)
        if not joined:
            # DC 1 ran as a lone DC, without a krb5.conf naming DC 2's KDC: restart it with one.
            self.dc.stop()
            self.dc.start(settings.address, clock_offset, self._dc_krb5_conf(settings, 1))
        self.dc2.start(address, clock_offset, self._dc_krb5_conf(settings, 2))
        self._publish_ca()
        if not joined:
            self._first_sync(settings)
        return self.status()

    def _dc_krb5_conf(self, settings: LabSettings, number: int) -> Path | None:
        """The KRB5_CONFIG of DC ``number``: a krb5.conf naming the other DC's KDC only.

        A DC is a Kerberos client when it pulls replication from the other one. The realm is in no
        DNS the host asks, so without this its DRS bind fails with WERR_NO_LOGON_SERVERS. Its own
        KDC must not be listed: under ``samba -M single`` the KDC runs in the same process, which
        waits for its own answer until the request times out (seen: replication stalled for
        minutes). A lone DC needs none (None: it runs as it always did).
        """
        if settings.dcs < 2:
            return None
        peer = settings.dc_address(2 if number == 1 else 1)
        path = self.paths.dc_paths(number).dc_krb5_conf
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "# Written by `credo lab up --dcs 2`: the KDC this DC asks when it replicates.\n"
            "[libdefaults]\n"
            f"    default_realm = {settings.realm}\n"
            "    dns_lookup_kdc = false\n"
            "    dns_lookup_realm = false\n"
            "    rdns = false\n"
            "[realms]\n"
            f"    {settings.realm} = {{\n"
            f"        kdc = {peer}\n"
            "    }\n"
        )
        return path

    def _first_sync(self, settings: LabSettings) -> None:
        """Wait until DC 1 knows DC 2's ldap/ SPN, so that DC 1's KDC issues tickets for DC 2.

        DC 2 registers its ldap/ SPNs in its own database on first start (samba_spnupdate); DC 1
        learns them by pulling from DC 2, which is asked for here with `drs replicate`.
        """
        spn = f"ldap/{settings.dc_fqdn_of(2)}"
        env = self._admin_tool_env()
        argv = [
            "samba-tool", "drs", "replicate", settings.dc_fqdn, settings.dc_fqdn_of(2), settings.base_dn,
            "--use-kerberos=required",
        ]  # fmt: skip
        deadline = time.monotonic() + FIRST_SYNC_TIMEOUT
        while True:
            if self._has_spn(spn):
                return
            subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if time.monotonic() > deadline:
                raise EnvironmentProblem(
                    f"{settings.dc_fqdn} did not learn {spn} from {settings.dc_fqdn_of(2)} "
                    f"within {FIRST_SYNC_TIMEOUT:.0f} s",
                    hint=f"see {self.paths.log_file} and {self.paths.dc_paths(2).log_file}",
                )
            time.sleep(1.0)

    def _has_spn(self, spn: str) -> bool:
        """True when DC 1's own database holds ``spn`` (read locally, no credentials)."""
        proc = subprocess.run(
            ["ldbsearch", "-H", str(self.paths.sam_ldb), f"(servicePrincipalName={spn})", "dn"],
            capture_output=True,
            text=True,
            check=False,
        )
        return proc.returncode == 0 and "\ndn: " in "\n" + proc.stdout

    def _admin_tool_env(self) -> dict[str, str]:
        """The environment of a samba-tool run as the lab's administrator (its ccache, no password)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}
        return env | {
            "KRB5_CONFIG": str(self.paths.krb5_conf),
            "KRB5CCNAME": f"FILE:{self.paths.admin_ccache}",
            "LC_ALL": "C.UTF-8",
        }

    def _forget_dc2(self) -> None:
        """Remove DC 2's state and /etc/hosts lines (DC 1 is being provisioned afresh)."""
        shutil.rmtree(self.paths.dc2_dir, ignore_errors=True)
        hosts_file.remove_lab_names(self.paths.root, DC2_HOSTS_TAG)
        hosts_file.remove_lab_names(self.paths.root, DC1_DSA_HOSTS_TAG)

    def _dc_process(self, settings: LabSettings, number: int) -> DCProcess:
        if number not in range(1, settings.dcs + 1):
            raise InputError(
                f"the lab in {self.paths.root} has no DC {number} (it has {settings.dcs})",
                hint=f"`credo lab up --dcs 2 --dir {self.paths.root}` joins a second DC",
            )
        return self.dc if number == 1 else self.dc2

    def stop_dc(self, number: int) -> bool:
        """Stop one DC of the lab (for failover tests), the other keeps running. True if it ran."""
        return self._dc_process(self._require_settings(), number).stop()

    def start_dc(self, number: int) -> LabStatus:
        """Start one DC of the lab again, as ``up`` would; nothing happens when it runs."""
        settings = self._require_settings()
        process = self._dc_process(settings, number)
        if process.pid() is None:
            check_ports_free(settings.dc_address(number))
            process.start(settings.dc_address(number), None, self._dc_krb5_conf(settings, number))
        return self.status()

    def down(self) -> bool:
        """Stop the DC(s) and keep their state. True if one was running."""
        stopped_dc2 = self.dc2.stop()
        return self.dc.stop() or stopped_dc2

    def destroy(self) -> bool:
        """Stop the DC, delete the lab directory and undo what ``up`` changed on the host."""
        if not self.paths.root.exists():
            return False
        settings = None
        with contextlib.suppress(EnvironmentProblem):
            settings = self.settings
        # A stale PID file that names another process: leave that process alone.
        with contextlib.suppress(EnvironmentProblem):
            self.dc2.stop()
        with contextlib.suppress(EnvironmentProblem):
            self.dc.stop()
        self._undo_host_changes(settings)
        shutil.rmtree(self.paths.root)
        return True

    def _undo_host_changes(self, settings: LabSettings | None) -> None:
        """Remove the /etc/hosts lines and the extra loopback addresses that ``up`` added."""
        hosts_file.remove_lab_names(self.paths.root)
        added = []
        if settings is not None and settings.address_added:
            added.append(settings.address)
        if settings is not None and settings.dc2_address_added:
            added.append(settings.dc2_address)
        for address in added:
            subprocess.run(
                ["ip", "addr", "del", f"{address}/8", "dev", "lo"], capture_output=True, check=False
            )

    def status(self) -> LabStatus:
        settings = self.settings if self.paths.root.exists() else None
        if settings is None:
            return LabStatus(state="absent", dir=str(self.paths.root))
        pid = self.dc.pid()
        return LabStatus(
            state="running" if pid else "stopped",
            dir=str(self.paths.root),
            pid=pid,
            realm=settings.realm,
            netbios=settings.netbios,
            dns_domain=settings.dns_domain,
            dc_fqdn=settings.dc_fqdn,
            address=settings.address,
            ldap_url=settings.ldap_url,
            krb5_conf=str(self.paths.krb5_conf),
            ca_file=str(self.paths.ca_file),
            log_file=str(self.paths.log_file),
            dcs=[self._dc_status(settings, number) for number in range(1, settings.dcs + 1)],
        )

    def _dc_status(self, settings: LabSettings, number: int) -> DCStatus:
        pid = self._dc_process(settings, number).pid()
        return DCStatus(
            number=number,
            state="running" if pid else "stopped",
            fqdn=settings.dc_fqdn_of(number),
            address=settings.dc_address(number),
            ldap_url=settings.ldap_url_of(number),
            pid=pid,
            log_file=str(self.paths.dc_paths(number).log_file),
        )

    # -- identities ------------------------------------------------------------------------

    def env(self, identity: str | None = None, dc: int = 1) -> LabEnvironment:
        """Shell variables for the lab, and for ``identity`` (worker1, worker2 or admin) if given.

        ``dc=2`` points the LDAP variables (CREDO_LDAP_URL, LDAPURI) at the second DC.

        For a host: its keytab and principal for credo (CREDO_HOST_KEYTAB/PRINCIPAL), and a fresh
        ccache plus KRB5_CLIENT_KTNAME so MIT and OpenLDAP tools authenticate as the computer.
        For admin: a fresh ccache of the domain administrator, made from the lab's admin keytab.
        For a lab user (``USERS``: jdoe, asmith): a fresh ccache of the user, from DIR/users/.
        """
        settings = self._require_settings()
        self._dc_process(settings, dc)
        if identity is not None and identity not in IDENTITIES + USERS:
            raise InputError(
                f"unknown lab identity {identity!r}",
                hint=f"use one of: {', '.join(IDENTITIES + USERS)}",
            )
        variables = {
            "CREDO_LAB_DIR": str(self.paths.root),
            "KRB5_CONFIG": str(self.paths.krb5_conf),
            "CREDO_LDAP_URL": settings.ldap_url_of(dc),
            "CREDO_CA_FILE": str(self.paths.ca_file),
            # OpenLDAP clients read LDAP<option> variables (ldap.conf(5)).
            "LDAPURI": settings.ldap_url_of(dc),
            "LDAPBASE": settings.base_dn,
            "LDAPSASL_MECH": "GSSAPI",
            "LDAPSASL_NOCANON": "on",
            "LDAPTLS_CACERT": str(self.paths.ca_file),
        }
        unset: tuple[str, ...] = ()
        if identity is None:
            return LabEnvironment(identity=None, set=variables, unset=unset)
        if identity in USERS:
            # A lab user (jdoe, asmith): a fresh ccache from the keytab exported from the DC's
            # database; no password exists anywhere. KRB5_CLIENT_KTNAME is left out on purpose:
            # a user's login must not renew itself from a keytab.
            unset = ("CREDO_HOST_KEYTAB", "CREDO_HOST_PRINCIPAL", "KRB5_CLIENT_KTNAME")
            ccache = self.paths.user_ccache(identity)
            principal = f"{identity}@{settings.realm}"
            try:
                self._kinit(self.paths.user_keytab(identity), principal, ccache)
            except EnvironmentProblem:
                # The user's password was changed since the export (a demo, a test): export again.
                export_user_keytab(self.paths, identity)
                self._kinit(self.paths.user_keytab(identity), principal, ccache)
            variables["KRB5CCNAME"] = f"FILE:{ccache}"
            return LabEnvironment(identity=identity, set=variables, unset=unset)
        if identity == "admin":
            keytab, principal, ccache = (
                self.paths.admin_keytab,
                f"Administrator@{settings.realm}",
                self.paths.admin_ccache,
            )
            unset = ("CREDO_HOST_KEYTAB", "CREDO_HOST_PRINCIPAL")
        else:
            host = HOSTS[identity]
            keytab, principal, ccache = (
                self.paths.host_keytab(host),
                f"{host}$@{settings.realm}",
                self.paths.host_ccache(host),
            )
            variables["CREDO_HOST_KEYTAB"] = str(keytab)
            variables["CREDO_HOST_PRINCIPAL"] = principal
        self._kinit(keytab, principal, ccache)
        variables["KRB5CCNAME"] = f"FILE:{ccache}"
        variables["KRB5_CLIENT_KTNAME"] = f"FILE:{keytab}"
        return LabEnvironment(identity=identity, set=variables, unset=unset)

    # -- helpers ---------------------------------------------------------------------------

    def _check_same(
        self, settings: LabSettings, realm: str | None, netbios: str | None, address: str | None
    ) -> None:
        wanted = LabSettings(
            realm=realm or settings.realm,
            netbios=netbios or settings.netbios,
            address=address or settings.address,
        )
        for field_name in ("realm", "netbios", "address"):
            have, want = getattr(settings, field_name), getattr(wanted, field_name)
            if have != want:
                raise InputError(
                    f"the lab in {self.paths.root} was provisioned with {field_name} {have}, not {want}",
                    hint=f"use another --dir, or `credo lab destroy --dir {self.paths.root}` first",
                )

    def _ensure_address(self, settings: LabSettings) -> LabSettings:
        """A lab on another loopback address (127.0.0.2, ...) needs that address on ``lo``."""
        if settings.address == DEFAULT_ADDRESS or not self._add_loopback(settings.address):
            return settings
        settings = settings.replace(address_added=True)
        if self.paths.state_file.exists():
            settings.save(self.paths)
        return settings

    @staticmethod
    def _add_loopback(address: str) -> bool:
        """Put ``address`` on ``lo`` (Samba binds only addresses an interface has). True if added."""
        shown = subprocess.run(["ip", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True)
        if f"inet {address}/" in shown.stdout:
            return False
        added = subprocess.run(
            ["ip", "addr", "add", f"{address}/8", "dev", "lo"], capture_output=True, text=True
        )
        if added.returncode != 0:
            raise EnvironmentProblem(
                f"cannot add {address} to the loopback interface: {added.stderr.strip()}",
                hint=f"run as root, or `ip addr add {address}/8 dev lo` first",
            )
        return True

    def _write_krb5_conf(self, settings: LabSettings) -> None:
        realm, addr, dom = settings.realm, settings.address, settings.dns_domain
        # Every DC is a KDC of the realm; MIT tries them in this order (krb5.conf(5), kdc).
        kdcs = "".join(f"        kdc = {settings.dc_address(n)}\n" for n in range(1, settings.dcs + 1))
        text = (
            "# Written by `credo lab up`: a client configuration for the lab realm only.\n"
            "[libdefaults]\n"
            f"    default_realm = {realm}\n"
            "    dns_lookup_kdc = false\n"
            "    dns_lookup_realm = false\n"
            "    dns_canonicalize_hostname = false\n"
            "    rdns = false\n"
            "[realms]\n"
            f"    {realm} = {{\n"
            f"{kdcs}"
            f"        admin_server = {addr}\n"
            f"        kpasswd_server = {addr}\n"
            "    }\n"
            "[domain_realm]\n"
            f"    .{dom} = {realm}\n"
            f"    {dom} = {realm}\n"
        )
        tmp = self.paths.krb5_conf.with_suffix(".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.paths.krb5_conf)

    def _publish_ca(self) -> None:
        """Copy the CA certificate that Samba generated on first start to DIR/ca.pem.

        Each DC generates its own CA (named after the DC): with two DCs DIR/ca.pem holds both, a
        bundle that OpenSSL and GnuTLS clients read as several trusted CAs.
        """
        tmp = self.paths.ca_file.with_suffix(".tmp")
        shutil.copyfile(self.paths.samba_ca, tmp)
        dc2_ca = self.paths.dc_paths(2).samba_ca
        if dc2_ca.exists():
            with open(tmp, "a") as bundle:
                bundle.write(dc2_ca.read_text())
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.paths.ca_file)

    def _kinit(self, keytab: Path, principal: str, ccache: Path) -> None:
        """Put a fresh TGT for ``principal`` into ``ccache`` (0600) from its keytab."""
        if not keytab.exists():
            raise EnvironmentProblem(
                f"keytab {keytab} is missing",
                hint=f"recreate the lab: `credo lab destroy --dir {self.paths.root}`",
            )
        if self.dc.pid() is None and self.dc2.pid() is None:
            raise EnvironmentProblem(
                f"the lab DC in {self.paths.root} is not running",
                hint=f"run `credo lab up --dir {self.paths.root}` first",
            )
        env = os.environ | {"KRB5_CONFIG": str(self.paths.krb5_conf), "KRB5CCNAME": f"FILE:{ccache}"}
        old_umask = os.umask(0o077)
        try:
            proc = subprocess.run(
                ["kinit", "-k", "-t", str(keytab), principal], env=env, capture_output=True, text=True
            )
        finally:
            os.umask(old_umask)
        if proc.returncode != 0:
            raise EnvironmentProblem(
                f"kinit as {principal} failed: {proc.stderr.strip()}",
                hint=f"see {self.paths.log_file}",
            )
