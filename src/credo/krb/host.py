"""The host's own identity: its computer account's keytab and ``NAME$@REALM`` principal.

Resolution order (flags > environment > defaults, docs/architecture.md): ``--host-keytab`` /
``--host-principal``, then CREDO_HOST_KEYTAB / CREDO_HOST_PRINCIPAL, then /etc/krb5.keytab and the
first ``NAME$@REALM`` principal in it (what realmd, adcli and ``net ads join`` write).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from credo.errors import EnvironmentProblem, InputError
from credo.krb.tgt import Ticket, acquire_tgt, keytab_principals, new_memory_ccache_name

__all__ = ["DEFAULT_HOST_KEYTAB", "HostIdentity"]

DEFAULT_HOST_KEYTAB = Path("/etc/krb5.keytab")
KEYTAB_HINT = (
    "join the domain (realm join, adcli, net ads join) or name one with --host-keytab / CREDO_HOST_KEYTAB"
)


@dataclass(frozen=True)
class HostIdentity:
    """A computer account known by its keytab; ``principal`` is ``NAME$@REALM``."""

    keytab: Path
    principal: str

    @property
    def realm(self) -> str:
        return self.principal.rsplit("@", 1)[1]

    @property
    def sam_account_name(self) -> str:
        return self.principal.rsplit("@", 1)[0]

    @classmethod
    def resolve(cls, keytab: str | Path | None = None, principal: str | None = None) -> HostIdentity:
        """Find the host identity from flags, then the environment, then the defaults."""
        path = Path(keytab or os.environ.get("CREDO_HOST_KEYTAB") or DEFAULT_HOST_KEYTAB)
        name = principal or os.environ.get("CREDO_HOST_PRINCIPAL") or None
        _check_readable(path)
        held = keytab_principals(f"FILE:{path}")
        if not held:
            raise EnvironmentProblem(f"host keytab {path} holds no keys", hint=KEYTAB_HINT)
        if name is None:
            name = _first_computer_principal(path, held)
        elif "@" not in name:
            raise InputError(f"host principal {name!r} has no realm", hint="write it as NAME$@REALM")
        elif name not in held:
            computers = [p for p in held if _is_computer(p)] or held
            raise InputError(
                f"host principal {name} has no keys in host keytab {path}",
                hint=f"it holds {', '.join(computers[:4]) or 'no keys'}: give that with --host-principal /"
                " CREDO_HOST_PRINCIPAL, or unset both to use the keytab's computer principal",
            )
        return cls(keytab=path, principal=name)

    def acquire(self, ccache: str | None = None) -> Ticket:
        """A TGT for the computer account in a private in-memory ccache (or ``ccache``)."""
        return acquire_tgt(f"FILE:{self.keytab}", self.principal, ccache or new_memory_ccache_name("host"))


def _check_readable(path: Path) -> None:
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except FileNotFoundError:
        raise EnvironmentProblem(f"host keytab {path} is missing", hint=KEYTAB_HINT) from None
    except PermissionError:
        raise EnvironmentProblem(
            f"host keytab {path} is not readable by uid {os.geteuid()}",
            hint="run credo as root (the host keytab is root's), or give it a keytab it may read",
        ) from None
    except IsADirectoryError:
        raise EnvironmentProblem(f"host keytab {path} is a directory", hint=KEYTAB_HINT) from None


def _is_computer(principal: str) -> bool:
    primary = principal.rsplit("@", 1)[0]
    return primary.endswith("$") and "/" not in primary


def _first_computer_principal(path: Path, held: list[str]) -> str:
    for name in held:
        if _is_computer(name):
            return name
    raise EnvironmentProblem(
        f"host keytab {path} holds no computer principal (NAME$@REALM)",
        hint="name the principal with --host-principal / CREDO_HOST_PRINCIPAL",
    )
