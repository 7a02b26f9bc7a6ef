"""Who holds which right on an object, from its DACL (MS-DTYP 2.5.3.2, simplified for an audit).

The audit asks "which principals are granted X": for each SID, the union of the rights that allow
ACEs applying to the object itself (not inherit-only) grant it, for the whole object or for one of
the named attribute/property-set GUIDs, minus what deny ACEs of the same SID take away. A deny
ACE on a group the principal belongs to is not subtracted: the audit then reports a right the
principal may not really have, which is the safe side for a security review. The owner holds
WRITE_DAC and READ_CONTROL implicitly (MS-DTYP 2.5.3.2, owner rights), and is reported with them.
"""

from __future__ import annotations

from collections import defaultdict

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
    "any_property_write_by_sid",
    "describe_rights",
    "property_rights_by_sid",
    "rights_by_sid",
]

# schemaIDGUIDs (MS-ADA2 2.252 msDS-GroupMSAMembership, MS-ADA2 msKds-RootKeyData, MS-ADA2 2.43
# member), checked against the lab's schema NC.
GMSA_MEMBERSHIP_GUID = "888eedd6-ce04-df40-b462-b8a50e41ba38"
KDS_ROOT_KEY_DATA_GUID = "26627c27-08a2-0a40-a1b1-8dce85b42993"
MEMBER_GUID = "bf9679c0-0de6-11d0-a285-00aa003049e2"
# Rights that change an object or who controls it.
WRITE_RIGHTS = ADS_RIGHT_DS_WRITE_PROP | ADS_RIGHT_DS_SELF | WRITE_DAC | WRITE_OWNER


def rights_by_sid(sd: SecurityDescriptor, object_types: tuple[str, ...] = ()) -> dict[str, int]:
    """``{sid: rights}`` granted on the object (and on ``object_types``), owner rights included.

    With ``object_types`` empty only whole-object ACEs count; name an attribute's GUID to count
    the ACEs scoped to it too.
    """
    allowed: dict[str, int] = defaultdict(int)
    denied: dict[str, int] = defaultdict(int)
    for entry in access_entries(sd):
        if not entry.applies_to_object:
            continue
        if entry.object_type is not None and entry.object_type not in object_types:
            continue
        target = allowed if entry.allow else denied
        target[entry.sid] |= entry.effective_mask()
    result = {sid: mask & ~denied.get(sid, 0) for sid, mask in allowed.items()}
    if sd.owner:
        result[sd.owner] = result.get(sd.owner, 0) | WRITE_DAC | READ_CONTROL
    return {sid: mask for sid, mask in result.items() if mask}


def property_rights_by_sid(sd: SecurityDescriptor, attribute: str) -> dict[str, int]:
    """Rights on one attribute: whole-object ACEs plus those scoped to ``attribute``."""
    return rights_by_sid(sd, (attribute,))


def any_property_write_by_sid(sd: SecurityDescriptor) -> dict[str, int]:
    """Write rights of any kind: whole-object ones, plus writes scoped to any one attribute."""
    allowed: dict[str, int] = defaultdict(int)
    for entry in access_entries(sd):
        if entry.allow and entry.applies_to_object:
            allowed[entry.sid] |= entry.effective_mask() & WRITE_RIGHTS
    if sd.owner:
        allowed[sd.owner] |= WRITE_DAC
    return {sid: mask for sid, mask in allowed.items() if mask}


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
