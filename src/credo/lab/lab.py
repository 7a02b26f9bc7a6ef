"""The lab domain: a real Samba AD DC on a loopback address, for trying credo and for every test."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from credo.errors import EnvironmentProblem, InputError
from credo.lab import hosts_file
from credo.lab.prerequisites import check_directory_writable, check_ports_free, check_samba
from credo.lab.process import DCProcess
from credo.lab.provision import SEED, SEED_VERSION, provision
from credo.lab.settings import DEFAULT_ADDRESS, DEFAULT_REALM, LabPaths, LabSettings, default_lab_dir

__all__ = ["IDENTITIES", "Lab", "LabEnvironment", "LabStatus"]

log = logging.getLogger(__name__)

IDENTITIES = ("worker1", "worker2", "server", "admin")
HOSTS = {"worker1": "WORKER1", "worker2": "WORKER2", "server": SEED.server_host}


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
    ) -> LabStatus:
        """Provision (first time) and start the DC; return at once when it already runs.

        ``clock_offset`` starts the DC under libfaketime (``+14h``): see ``DCProcess.start``.
        """
        if clock_offset is not None and not re.fullmatch(r"[+-]\d+(\.\d+)?[smhdy]?", clock_offset):
            raise InputError(f"invalid clock offset {clock_offset!r}", hint="write it as +14h, +2d or -30m")
        check_directory_writable(self.paths.root)
        settings = self.settings
        if settings is not None:
            self._check_same(settings, realm, netbios, address)
            if settings.seed_version < SEED_VERSION:
                # Seeded by an older credo: the tests and the demo expect the current directory.
                log.warning(
                    "the lab in %s was seeded by an older credo: provisioning it again", self.paths.root
                )
                self.dc.stop()
                realm, netbios, address = settings.realm, settings.netbios, settings.address
                self.paths.state_file.unlink()
                settings = None
        if self.dc.pid() is not None:
            return self.status()
        check_samba()
        fresh = settings is None
        if settings is None:
            settings = LabSettings(
                realm=realm or DEFAULT_REALM,
                netbios=netbios or "",
                address=address or DEFAULT_ADDRESS,
                seed_version=SEED_VERSION,
            )
        check_ports_free(settings.address)
        try:
            settings = self._ensure_address(settings)
            if fresh:
                provision(settings, self.paths)
            names = [settings.dc_fqdn, settings.server_fqdn]
            if hosts_file.add_lab_names(names, settings.address, self.paths.root):
                settings = settings.replace(hosts_line_added=True)
            # lab.json is written last: its presence means "provisioned completely".
            settings.save(self.paths)
        except BaseException:
            if fresh:
                self._undo_host_changes(settings)
                shutil.rmtree(self.paths.samba_dir, ignore_errors=True)
            raise
        self._write_krb5_conf(settings)
        self.dc.start(settings.address, clock_offset)
        self._publish_ca()
        return self.status()

    def down(self) -> bool:
        """Stop the DC and keep its state. True if it was running."""
        return self.dc.stop()

    def destroy(self) -> bool:
        """Stop the DC, delete the lab directory and undo what ``up`` changed on the host."""
        if not self.paths.root.exists():
            return False
        settings = None
        with contextlib.suppress(EnvironmentProblem):
            settings = self.settings
        # A stale PID file that names another process: leave that process alone.
        with contextlib.suppress(EnvironmentProblem):
            self.dc.stop()
        self._undo_host_changes(settings)
        shutil.rmtree(self.paths.root)
        return True

    def _undo_host_changes(self, settings: LabSettings | None) -> None:
        """Remove the /etc/hosts line and the extra loopback address that ``up`` added."""
        hosts_file.remove_lab_names(self.paths.root)
        if settings is not None and settings.address_added:
            subprocess.run(
                ["ip", "addr", "del", f"{settings.address}/8", "dev", "lo"], capture_output=True, check=False
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
        )

    # -- identities ------------------------------------------------------------------------

    def env(self, identity: str | None = None) -> LabEnvironment:
        """Shell variables for the lab, and for ``identity`` (worker1, worker2 or admin) if given.

        For a host: its keytab and principal for credo (CREDO_HOST_KEYTAB/PRINCIPAL), and a fresh
        ccache plus KRB5_CLIENT_KTNAME so MIT and OpenLDAP tools authenticate as the computer.
        For admin: a fresh ccache of the domain administrator, made from the lab's admin keytab.
        """
        settings = self._require_settings()
        if identity is not None and identity not in IDENTITIES:
            raise InputError(
                f"unknown lab identity {identity!r}",
                hint=f"use one of: {', '.join(IDENTITIES)}",
            )
        variables = {
            "CREDO_LAB_DIR": str(self.paths.root),
            "KRB5_CONFIG": str(self.paths.krb5_conf),
            "CREDO_LDAP_URL": settings.ldap_url,
            "CREDO_CA_FILE": str(self.paths.ca_file),
            # OpenLDAP clients read LDAP<option> variables (ldap.conf(5)).
            "LDAPURI": settings.ldap_url,
            "LDAPBASE": settings.base_dn,
            "LDAPSASL_MECH": "GSSAPI",
            "LDAPSASL_NOCANON": "on",
            "LDAPTLS_CACERT": str(self.paths.ca_file),
        }
        unset: tuple[str, ...] = ()
        if identity is None:
            return LabEnvironment(identity=None, set=variables, unset=unset)
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
        if settings.address == DEFAULT_ADDRESS:
            return settings
        shown = subprocess.run(["ip", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True)
        if f"inet {settings.address}/" in shown.stdout:
            return settings
        added = subprocess.run(
            ["ip", "addr", "add", f"{settings.address}/8", "dev", "lo"], capture_output=True, text=True
        )
        if added.returncode != 0:
            raise EnvironmentProblem(
                f"cannot add {settings.address} to the loopback interface: {added.stderr.strip()}",
                hint=f"run as root, or `ip addr add {settings.address}/8 dev lo` first",
            )
        settings = settings.replace(address_added=True)
        if self.paths.state_file.exists():
            settings.save(self.paths)
        return settings

    def _write_krb5_conf(self, settings: LabSettings) -> None:
        realm, addr, dom = settings.realm, settings.address, settings.dns_domain
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
            f"        kdc = {addr}\n"
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
        """Copy the CA certificate that Samba generated on first start to DIR/ca.pem."""
        tmp = self.paths.ca_file.with_suffix(".tmp")
        shutil.copyfile(self.paths.samba_ca, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.paths.ca_file)

    def _kinit(self, keytab: Path, principal: str, ccache: Path) -> None:
        """Put a fresh TGT for ``principal`` into ``ccache`` (0600) from its keytab."""
        if not keytab.exists():
            raise EnvironmentProblem(
                f"keytab {keytab} is missing",
                hint=f"recreate the lab: `credo lab destroy --dir {self.paths.root}`",
            )
        if self.dc.pid() is None:
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
