"""Principals named on the command line, resolved to directory objects.

PrincipalsAllowedToRetrieveManagedPassword and ``--computer`` accept what the AD cmdlets accept:
a sAMAccountName (``HybridWorkers``; a computer with or without its ``$``; ``DOMAIN\\name``), a
distinguished name, or a SID. Each must name an existing security principal (an object with an
objectSid); an unknown one is named in the error, before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import ldap

from credo.ad.connection import Directory
from credo.ad.names import escape_filter_value, validate_account_name
from credo.ad.security import sid_from_bytes, sid_to_bytes
from credo.errors import InputError, NotFoundError

__all__ = ["Principal", "resolve_computer", "resolve_principal", "resolve_principals"]

_SID = re.compile(r"^S-1-\d+(-\d+){1,15}$", re.IGNORECASE)
_DN = re.compile(r"^[A-Za-z][\w-]*=.+")
_ATTRS = ["objectSid", "sAMAccountName", "objectClass"]


@dataclass(frozen=True)
class Principal:
    """A resolved security principal."""

    sid: str
    dn: str
    sam_account_name: str
    object_classes: tuple[str, ...]

    @property
    def is_computer(self) -> bool:
        return "computer" in self.object_classes

    @property
    def is_group(self) -> bool:
        return "group" in self.object_classes


def _from_entry(entry: tuple[str, dict[str, list[bytes]]]) -> Principal | None:
    raw = entry[1].get("objectSid")
    if not raw:
        return None
    sam = entry[1].get("sAMAccountName")
    return Principal(
        sid=sid_from_bytes(raw[0])[0],
        dn=entry[0],
        sam_account_name=sam[0].decode() if sam else "",
        object_classes=tuple(v.decode() for v in entry[1].get("objectClass", [])),
    )


def resolve_principal(directory: Directory, text: str, *, what: str = "principal") -> Principal:
    """``text`` (sAMAccountName, DN or SID) -> Principal, or NotFoundError naming it."""
    value = text.strip()
    if not value:
        raise InputError(f"empty {what}")
    entry = None
    if _SID.match(value):
        sid_to_bytes(value.upper())  # validates the form
        entry = directory.search_one(
            directory.base_dn,
            ldap.SCOPE_SUBTREE,
            f"(objectSid={escape_filter_value(value.upper())})",
            _ATTRS,
        )
    elif _DN.match(value):
        try:
            ldap.dn.str2dn(value)
        except ldap.DECODING_ERROR:
            raise InputError(f"invalid {what} {text!r}: not a distinguished name") from None
        entry = directory.search_one(value, ldap.SCOPE_BASE, "(objectClass=*)", _ATTRS)
    else:
        name = value.split("\\", 1)[1] if "\\" in value else value
        # Groups may have sAMAccountNames of up to 256 characters (MS-ADTS 3.1.1.3.1.1.1 area);
        # computers and users have shorter ones, which the search then simply does not find.
        validate_account_name(name, max_length=256, what=what)
        candidates = [name] if name.endswith("$") else [name, f"{name}$"]
        for candidate in candidates:
            entry = directory.search_one(
                directory.base_dn,
                ldap.SCOPE_SUBTREE,
                f"(sAMAccountName={escape_filter_value(candidate)})",
                _ATTRS,
            )
            if entry is not None:
                break
    principal = _from_entry(entry) if entry is not None else None
    if principal is None:
        raise NotFoundError(
            f"{what} {text!r} not found in {directory.base_dn}",
            hint="give a sAMAccountName (a group, or a computer with or without $), a DN or a SID",
        )
    return principal


def resolve_principals(directory: Directory, texts: list[str] | tuple[str, ...]) -> list[Principal]:
    """Resolve every one (the first unknown stops it); the same object named twice is refused."""
    result: list[Principal] = []
    for text in texts:
        principal = resolve_principal(directory, text)
        if any(p.sid == principal.sid for p in result):
            raise InputError(
                f"principal {text!r} is given twice ({principal.sam_account_name or principal.dn})",
                hint="name each principal once",
            )
        result.append(principal)
    return result


def resolve_computer(directory: Directory, text: str) -> Principal:
    """A computer account (``web01``, ``web01$``, DN or SID)."""
    principal = resolve_principal(directory, text, what="computer")
    if (
        not principal.is_computer
        or "msDS-GroupManagedServiceAccount" in principal.object_classes
        or ("msDS-ManagedServiceAccount" in principal.object_classes)
    ):
        raise InputError(f"{text!r} ({principal.dn}) is not a computer account")
    return principal
