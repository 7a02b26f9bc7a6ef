"""Where a lab domain keeps its state, and what it was provisioned with.

Everything a lab owns lives under one directory (``DIR``):

    DIR/lab.json            what ``up`` provisioned (realm, NetBIOS name, address) and changed on the host
    DIR/samba/              the DC's own tree (``samba-tool domain provision --targetdir``)
    DIR/samba.pid           PID of the running DC (``samba -i -M single``), written by credo
    DIR/samba.log           the DC's log
    DIR/krb5.conf           a client krb5.conf pointing at the lab KDC
    DIR/ca.pem              the DC's CA certificate, for LDAPS/StartTLS clients
    DIR/hosts/NAME.keytab   host keytabs of the seeded computer accounts (0600)
    DIR/admin/              the domain administrator's keytab and ccache (0600)
    DIR/hosts/worker1.sshd.keytab   sshd's GSSAPI keys: host/worker1.<domain> on WORKER1$ (0600)
    DIR/users/NAME.keytab   keytabs and ccaches of the endpoint users jdoe and asmith, and the
                            keytab of the legacy user service account svc_legacy (0600)
    DIR/dc2/                a second DC (``up --dcs 2``): its own samba/, samba.pid and samba.log
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from credo.errors import EnvironmentProblem, InputError

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_REALM",
    "LabPaths",
    "LabSettings",
    "default_lab_dir",
]

DEFAULT_REALM = "CORP.EXAMPLE.TEST"
DEFAULT_ADDRESS = "127.0.0.1"
DC_HOST_NAME = "dc1"
# The second DC of ``credo lab up --dcs 2``: joined with `samba-tool domain join ... DC`.
DC2_HOST_NAME = "dc2"
MAX_DCS = 2
# The HTTP identity of a later credo server in the lab; resolved to the lab address like the DC.
SERVER_HOST_NAME = "credo"

_REALM_RE = re.compile(r"^[A-Z0-9]([A-Z0-9-]{0,62})(\.[A-Z0-9]([A-Z0-9-]{0,62}))+$")
# NetBIOS domain names: at most 15 characters, no dots (MS-ADTS 3.1.1.1.4, [MS-NBTE]).
_NETBIOS_RE = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,14}$")


def default_lab_dir() -> Path:
    """``/var/lib/credo/lab`` for root, ``~/.local/share/credo/lab`` for anyone else."""
    if os.geteuid() == 0:
        return Path("/var/lib/credo/lab")
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "credo" / "lab"


@dataclass(frozen=True)
class LabPaths:
    """The files of one lab directory (see the module docstring)."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "lab.json"

    @property
    def samba_dir(self) -> Path:
        return self.root / "samba"

    @property
    def smb_conf(self) -> Path:
        return self.samba_dir / "etc" / "smb.conf"

    @property
    def sam_ldb(self) -> Path:
        return self.samba_dir / "private" / "sam.ldb"

    @property
    def samba_ca(self) -> Path:
        return self.samba_dir / "private" / "tls" / "ca.pem"

    @property
    def pid_file(self) -> Path:
        return self.root / "samba.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "samba.log"

    @property
    def krb5_conf(self) -> Path:
        return self.root / "krb5.conf"

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"

    @property
    def hosts_dir(self) -> Path:
        return self.root / "hosts"

    @property
    def admin_dir(self) -> Path:
        return self.root / "admin"

    def host_keytab(self, host: str) -> Path:
        return self.hosts_dir / f"{host.lower()}.keytab"

    def host_ccache(self, host: str) -> Path:
        return self.hosts_dir / f"{host.lower()}.ccache"

    def sshd_keytab(self, host: str) -> Path:
        return self.hosts_dir / f"{host.lower()}.sshd.keytab"

    @property
    def users_dir(self) -> Path:
        return self.root / "users"

    def user_keytab(self, user: str) -> Path:
        return self.users_dir / f"{user.lower()}.keytab"

    def user_ccache(self, user: str) -> Path:
        return self.users_dir / f"{user.lower()}.ccache"

    @property
    def dc_krb5_conf(self) -> Path:
        """The krb5.conf a DC of a two-DC lab runs with (see ``Lab._dc_krb5_conf``)."""
        return self.root / "dc-krb5.conf"

    @property
    def dc2_dir(self) -> Path:
        return self.root / "dc2"

    def dc_paths(self, number: int) -> LabPaths:
        """The files of DC ``number``: the lab's own for DC 1, those under DIR/dc2 for DC 2.

        DIR/dc2 is laid out like a lab directory (samba/, samba.pid, samba.log), so the same
        ``DCProcess`` runs either DC.
        """
        return self if number == 1 else LabPaths(self.dc2_dir)

    @property
    def admin_keytab(self) -> Path:
        return self.admin_dir / "administrator.keytab"

    @property
    def admin_ccache(self) -> Path:
        return self.admin_dir / "administrator.ccache"


@dataclass(frozen=True)
class LabSettings:
    """What a lab domain is: its realm, NetBIOS name and loopback address, and what ``up`` changed.

    ``hosts_line_added`` and ``address_added`` record host changes that ``destroy`` must undo;
    ``dc2_address_added`` likewise for the second DC's address. ``dcs`` is how many DCs the lab
    runs (``up --dcs 2`` joins the second one; a lab never shrinks back without ``destroy``).
    """

    realm: str = DEFAULT_REALM
    netbios: str = ""
    address: str = DEFAULT_ADDRESS
    hosts_line_added: bool = False
    address_added: bool = False
    seed_version: int = 1
    dcs: int = 1
    dc2_address_added: bool = False
    # What `seed_endpoints` last added (0: a lab seeded before restricted endpoints existed).
    endpoint_seed: int = 0
    # What `seed_shares` last added (0: a lab seeded before its file shares existed).
    share_seed: int = 0
    # What `seed_migration` last added (0: a lab seeded before the legacy user service account).
    migration_seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        realm = self.realm.upper()
        if not _REALM_RE.match(realm):
            raise InputError(
                f"invalid realm {self.realm!r}: expected a DNS-style name such as CORP.EXAMPLE.TEST",
            )
        object.__setattr__(self, "realm", realm)
        netbios = (self.netbios or realm.split(".", 1)[0][:15]).upper()
        if not _NETBIOS_RE.match(netbios):
            raise InputError(
                f"invalid NetBIOS domain name {self.netbios!r}: at most 15 letters, digits or '-', no dots",
            )
        object.__setattr__(self, "netbios", netbios)
        if not self.address.startswith("127."):
            raise InputError(f"lab address {self.address!r} is not a loopback address (127.x.y.z)")
        if self.dcs not in range(1, MAX_DCS + 1):
            raise InputError(f"a lab runs 1 or {MAX_DCS} domain controllers, not {self.dcs}")

    @property
    def dns_domain(self) -> str:
        return self.realm.lower()

    @property
    def base_dn(self) -> str:
        return ",".join(f"DC={label}" for label in self.dns_domain.split("."))

    @property
    def dc_fqdn(self) -> str:
        return f"{DC_HOST_NAME}.{self.dns_domain}"

    @property
    def dc2_address(self) -> str:
        """The second DC's loopback address: the lab's with 2 added to its third byte.

        127.0.0.1 -> 127.0.2.1, 127.0.0.3 -> 127.0.2.3: outside the 127.0.0.x addresses that
        single-DC labs use, and derived so that labs on different addresses never share one.
        """
        parts = self.address.split(".")
        if len(parts) != 4 or not all(part.isdigit() for part in parts) or int(parts[2]) + 2 > 255:
            raise InputError(f"lab address {self.address} leaves no room for a second DC's address")
        return ".".join([parts[0], parts[1], str(int(parts[2]) + 2), parts[3]])

    def dc_address(self, number: int) -> str:
        return self.address if number == 1 else self.dc2_address

    def dc_fqdn_of(self, number: int) -> str:
        return self.dc_fqdn if number == 1 else f"{DC2_HOST_NAME}.{self.dns_domain}"

    def ldap_url_of(self, number: int) -> str:
        return f"ldap://{self.dc_fqdn_of(number)}"

    @property
    def server_fqdn(self) -> str:
        return f"{SERVER_HOST_NAME}.{self.dns_domain}"

    def host_fqdn(self, host: str) -> str:
        """A lab computer's DNS name, e.g. worker1.corp.example.test (resolved to the lab address)."""
        return f"{host.lower()}.{self.dns_domain}"

    @property
    def ldap_url(self) -> str:
        return f"ldap://{self.dc_fqdn}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.dc_fqdn}"

    def replace(self, **changes: Any) -> LabSettings:
        data = asdict(self) | changes
        return LabSettings(**data)

    def save(self, paths: LabPaths) -> None:
        tmp = paths.state_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, paths.state_file)

    @classmethod
    def load(cls, paths: LabPaths) -> LabSettings | None:
        """The settings of a provisioned lab, or None when DIR holds no (complete) lab."""
        try:
            data = json.loads(paths.state_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise EnvironmentProblem(
                f"cannot read {paths.state_file}: {exc}",
                hint=f"run `credo lab destroy --dir {paths.root}` and `credo lab up` to start afresh",
            ) from exc
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
