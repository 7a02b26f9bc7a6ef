"""The directory side of an endpoint: a user's token (tokenGroups, named) and AD account existence.

Both take an open ``credo.ad.connection.Directory`` (bound as the host, or as whoever may read
tokenGroups), so the pure role and matching code never needs LDAP.
"""

from __future__ import annotations

import ldap

from credo.ad.connection import Directory
from credo.ad.names import escape_filter_value, validate_account_name
from credo.ad.security import sid_from_bytes
from credo.ad.sids import WELL_KNOWN, token_group_sids
from credo.endpoint.matching import AccountResolver
from credo.endpoint.roles import UserToken
from credo.errors import InputError, NotFoundError

__all__ = ["account_resolver", "resolve_token", "user_sam"]

# objectCategory/objectClass per account kind (MS-ADTS 3.1.1.5.2: computers are users too).
_KIND_FILTER = {
    "user": "(&(objectCategory=person)(objectClass=user))",
    "computer": "(objectClass=computer)",
    "group": "(objectClass=group)",
    "any": "(|(objectClass=user)(objectClass=group))",
}
_CHUNK = 100


def user_sam(user: str) -> str:
    """``jdoe``, ``CORP\\jdoe`` or ``jdoe@CORP.EXAMPLE.TEST`` -> ``jdoe`` (checked)."""
    bare = user.rsplit("\\", 1)[-1]
    if "@" in bare:
        bare = bare.split("@", 1)[0]
    return validate_account_name(bare, max_length=20, what="user name")


def resolve_token(directory: Directory, user: str) -> UserToken:
    """The AD user's token: its SID, tokenGroups (nested groups, primary group) and their names."""
    sam = user_sam(user)
    entry = directory.search_one(
        directory.base_dn,
        ldap.SCOPE_SUBTREE,
        f"(&(|(objectClass=user)(objectClass=computer))(sAMAccountName={escape_filter_value(sam)}))",
        ["objectSid"],
    )
    if entry is None:
        raise NotFoundError(f"no AD user {sam!r} in {directory.base_dn}", hint="give the sAMAccountName")
    raw = entry[1].get("objectSid")
    own = sid_from_bytes(raw[0])[0] if raw else None
    sids = token_group_sids(directory, entry[0])
    netbios = directory.netbios_name
    names: set[str] = {WELL_KNOWN[s] for s in sids if s in WELL_KNOWN}
    ordered = sorted(sids)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        # AD and Samba accept the string form of a SID in an objectSid assertion (MS-ADTS 3.1.1.3.1.2.4).
        filterstr = "(|" + "".join(f"(objectSid={escape_filter_value(s)})" for s in chunk) + ")"
        for _, attrs in directory.search(
            directory.base_dn, ldap.SCOPE_SUBTREE, filterstr, ["sAMAccountName", "objectSid"]
        ):
            sam_values, sid_values = attrs.get("sAMAccountName"), attrs.get("objectSid")
            if not sam_values or not sid_values:
                continue
            sid = sid_from_bytes(sid_values[0])[0]
            domain = "BUILTIN" if sid.startswith("S-1-5-32-") else netbios
            names.add(f"{domain}\\{sam_values[0].decode()}")
    return UserToken(f"{netbios}\\{sam}", own, frozenset(sids), frozenset(names))


def account_resolver(directory: Directory) -> AccountResolver:
    """``(name, kind) -> exists`` for ``account`` parameters, searching the domain."""

    def exists(name: str, kind: str) -> bool:
        try:
            validate_account_name(name)
        except InputError:
            return False
        wanted = _KIND_FILTER.get(kind, _KIND_FILTER["any"])
        filterstr = f"(&{wanted}(sAMAccountName={escape_filter_value(name)}))"
        return (
            directory.search_one(directory.base_dn, ldap.SCOPE_SUBTREE, filterstr, ["objectSid"]) is not None
        )

    return exists
