"""Who holds which right on an object, from its DACL (MS-DTYP 2.5.3.2, simplified for an audit).

The audit asks "which principals are granted X": for each SID named by an allow ACE, the rights
those allow ACEs grant on the object itself (ACEs that are not inherit-only), for the whole
object or for one of the named attribute/property-set GUIDs. Deny ACEs are subtracted as the
access check of MS-DTYP 2.5.3.2 does: in DACL order, a deny takes away the bits not granted by
an earlier ACE, and it counts when it names the SID or any group in the SID's token (its nested
groups, primary group, Everyone and Authenticated Users), which the caller supplies
(``Snapshot.token_of``). Rights granted through group membership are reported on the group, not
again on each member. The owner holds WRITE_DAC and READ_CONTROL implicitly (MS-DTYP 2.5.3.2,
owner rights), and is reported with them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from credo.ad.attributes import GMSA_MEMBERSHIP_GUID, KDS_ROOT_KEY_DATA_GUID, MEMBER_GUID
from credo.ad.security import (
    ADS_RIGHT_DS_CONTROL_ACCESS,
    ADS_RIGHT_DS_READ_PROP,
    ADS_RIGHT_DS_SELF,
    ADS_RIGHT_DS_WRITE_PROP,
    FULL_CONTROL,
    READ_CONTROL,
    WRITE_DAC,
    WRITE_OWNER,
    SecurityDescriptor,
    access_entries,
)

__all__ = [
    "GMSA_MEMBERSHIP_GUID",
    "KDS_ROOT_KEY_DATA_GUID",
    "MEMBER_GUID",
    "WRITE_RIGHTS",
    "any_effective_write",
    "any_property_write_by_sid",
    "describe_rights",
    "effective_rights",
    "property_rights_by_sid",
    "rights_by_sid",
]

# Rights that change an object or who controls it.
WRITE_RIGHTS = ADS_RIGHT_DS_WRITE_PROP | ADS_RIGHT_DS_SELF | WRITE_DAC | WRITE_OWNER


def rights_by_sid(
    sd: SecurityDescriptor,
    object_types: tuple[str, ...] = (),
    token_of: Callable[[str], set[str]] | None = None,
) -> dict[str, int]:
    """``{sid: rights}`` granted on the object (and on ``object_types``), owner rights included.

    With ``object_types`` empty only whole-object ACEs count; name an attribute's GUID to count
    the ACEs scoped to it too. ``token_of(sid)``: the SIDs whose deny ACEs apply to ``sid`` (its
    groups); without it, only denies naming ``sid`` itself.
    """
    entries = [
        e
        for e in access_entries(sd)
        if e.applies_to_object and (e.object_type is None or e.object_type in object_types)
    ]
    result: dict[str, int] = {}
    for sid in dict.fromkeys(e.sid for e in entries if e.allow):
        token = (token_of(sid) if token_of is not None else set()) | {sid}
        granted = denied = 0
        for entry in entries:
            if entry.allow and entry.sid == sid:
                granted |= entry.effective_mask() & ~denied
            elif not entry.allow and entry.sid in token:
                denied |= entry.effective_mask() & ~granted
        result[sid] = granted
    if sd.owner:
        result[sd.owner] = result.get(sd.owner, 0) | WRITE_DAC | READ_CONTROL
    return {sid: mask for sid, mask in result.items() if mask}


def property_rights_by_sid(
    sd: SecurityDescriptor, attribute: str, token_of: Callable[[str], set[str]] | None = None
) -> dict[str, int]:
    """Rights on one attribute: whole-object ACEs plus those scoped to ``attribute``."""
    return rights_by_sid(sd, (attribute,), token_of)


def effective_rights(sd: SecurityDescriptor, token: set[str], object_types: tuple[str, ...] = ()) -> int:
    """What a principal whose token holds the SIDs ``token`` may do on the object (and on
    ``object_types``): the access check of MS-DTYP 2.5.3.2, in DACL order, allows and denies of
    every SID of the token alike, owner rights included."""
    granted = denied = 0
    for entry in access_entries(sd):
        if not entry.applies_to_object or entry.sid not in token:
            continue
        if entry.object_type is not None and entry.object_type not in object_types:
            continue
        if entry.allow:
            granted |= entry.effective_mask() & ~denied
        else:
            denied |= entry.effective_mask() & ~granted
    if sd.owner in token:
        granted |= WRITE_DAC | READ_CONTROL
    return granted


def _object_types(sd: SecurityDescriptor) -> list[tuple[str, ...]]:
    """The whole object, and each attribute, property set or right an ACE of ``sd`` is scoped to."""
    scoped = sorted({e.object_type for e in access_entries(sd) if e.object_type is not None})
    return [(), *((t,) for t in scoped)]


def any_property_write_by_sid(
    sd: SecurityDescriptor, token_of: Callable[[str], set[str]] | None = None
) -> dict[str, int]:
    """Write rights of any kind: whole-object ones, plus writes scoped to any one attribute, each
    minus the denies that apply to it (``rights_by_sid``)."""
    allowed: dict[str, int] = defaultdict(int)
    for object_types in _object_types(sd):
        for sid, mask in rights_by_sid(sd, object_types, token_of).items():
            allowed[sid] |= mask & WRITE_RIGHTS
    return {sid: mask for sid, mask in allowed.items() if mask}


def any_effective_write(sd: SecurityDescriptor, token: set[str]) -> int:
    """The write rights a principal with ``token`` has on the object or any one attribute of it."""
    mask = 0
    for object_types in _object_types(sd):
        mask |= effective_rights(sd, token, object_types) & WRITE_RIGHTS
    return mask


def describe_rights(mask: int) -> str:
    """Names an administrator knows (ADSI/PowerShell ActiveDirectoryRights), for reports."""
    if mask & FULL_CONTROL == FULL_CONTROL:
        return "GenericAll"
    names = []
    if mask & WRITE_DAC:
        names.append("WriteDacl")
    if mask & WRITE_OWNER:
        names.append("WriteOwner")
    if mask & ADS_RIGHT_DS_WRITE_PROP:
        names.append("WriteProperty")
    if mask & ADS_RIGHT_DS_SELF:
        names.append("Self")
    if mask & ADS_RIGHT_DS_READ_PROP:
        names.append("ReadProperty")
    if mask & ADS_RIGHT_DS_CONTROL_ACCESS:
        names.append("ExtendedRight")
    return ", ".join(names) or f"0x{mask:x}"
