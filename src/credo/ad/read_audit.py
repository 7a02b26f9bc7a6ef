"""Audit ACEs that make a DC log reads of a secret attribute (SACL; MS-DTYP 2.4.4.11).

A read of a gMSA's msDS-ManagedPassword, or of a KDS root key's msKds-RootKeyData, is logged
(event 4662, with "Audit Directory Service Access" on in the DC's audit policy) only when the
object's SACL holds a success audit ACE for ReadProperty on that attribute (or on the whole
object) for a trustee every reader matches: Everyone or Authenticated Users. The ACE credo adds
is ``(OU;SA;RP;<attribute>;;WD)``.

SACLs are read and written with the SD_FLAGS control set to SACL only (MS-ADTS 3.1.1.3.4.1.11),
which takes SeSecurityPrivilege: a caller without it gets no descriptor back, and is told so.
"""

from __future__ import annotations

import ldap

from credo.ad.connection import SD_FLAGS_SACL, Directory
from credo.ad.security import (
    ADS_RIGHT_DS_READ_PROP,
    INHERITED_ACE,
    SE_SACL_AUTO_INHERITED,
    SE_SACL_PRESENT,
    SE_SACL_PROTECTED,
    SE_SELF_RELATIVE,
    SUCCESSFUL_ACCESS_ACE_FLAG,
    AuditAce,
    SecurityDescriptor,
    audit_ace,
    audit_aces,
)
from credo.errors import NotPermittedError

__all__ = ["READ_AUDIT_TRUSTEES", "add_read_audit", "read_audit_ace", "read_sacl", "reads_audited"]

# Trustees whose audit ACE covers every reader: Everyone, Authenticated Users.
READ_AUDIT_TRUSTEES = frozenset({"S-1-1-0", "S-1-5-11"})
_EVERYONE = "S-1-1-0"


def read_audit_ace(attribute: str) -> AuditAce:
    """The ACE credo adds: successful reads of ``attribute`` by anyone (Everyone)."""
    return AuditAce(SUCCESSFUL_ACCESS_ACE_FLAG, ADS_RIGHT_DS_READ_PROP, _EVERYONE, attribute)


def reads_audited(sacl: SecurityDescriptor, attribute: str) -> bool:
    """Whether a successful read of ``attribute`` by any caller is logged."""
    return any(
        ace.sid in READ_AUDIT_TRUSTEES and ace.audits(ADS_RIGHT_DS_READ_PROP, attribute)
        for ace in audit_aces(sacl)
    )


def read_sacl(directory: Directory, dn: str) -> SecurityDescriptor:
    """``dn``'s security descriptor with its SACL only (``sacl`` None: the SACL is empty)."""
    found = directory.search(
        dn, ldap.SCOPE_BASE, "(objectClass=*)", ["nTSecurityDescriptor"], sd_flags=SD_FLAGS_SACL
    )
    raw = found[0][1].get("nTSecurityDescriptor") if found else None
    if not raw:
        raise NotPermittedError(
            f"cannot read the SACL of {dn}",
            hint="reading and writing audit ACEs takes SeSecurityPrivilege: run as a Domain Admin",
        )
    return SecurityDescriptor.unpack(raw[0])


def add_read_audit(directory: Directory, dn: str, attribute: str) -> bool:
    """Add ``read_audit_ace(attribute)`` to ``dn``'s SACL; False when reads were audited already.

    Only the SACL is written (SD_FLAGS 0x8): its explicit ACEs and the new one. Inherited ACEs
    are left out of the write; the DC adds them again from the parents (MS-ADTS 3.1.1.3.4.1.11
    and the SD propagation of 6.1.3), so they are neither duplicated nor frozen in place.
    """
    current = read_sacl(directory, dn)
    if reads_audited(current, attribute):
        return False
    wanted = read_audit_ace(attribute)
    explicit = tuple(ace for ace in current.sacl or () if not ace.flags & INHERITED_ACE)
    ace = audit_ace(wanted.flags, wanted.mask, wanted.sid, wanted.object_type)
    descriptor = SecurityDescriptor(
        owner=None,
        group=None,
        dacl=None,
        # Keep the SACL's inheritance as it was: auto-inherited, and protected if it was.
        control=SE_SELF_RELATIVE
        | SE_SACL_PRESENT
        | (current.control & (SE_SACL_AUTO_INHERITED | SE_SACL_PROTECTED)),
        sacl=(*explicit, ace),
    )
    directory.modify(
        dn, [(ldap.MOD_REPLACE, "nTSecurityDescriptor", [descriptor.pack()])], sd_flags=SD_FLAGS_SACL
    )
    return True
