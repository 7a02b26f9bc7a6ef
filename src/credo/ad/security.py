"""SIDs and self-relative security descriptors, as AD stores them (MS-DTYP 2.4.2, 2.4.4-2.4.6).

Only what credo needs: the DACL of msDS-GroupMSAMembership (who may read a gMSA password), with
ACCESS_ALLOWED / ACCESS_DENIED ACEs, read and written byte-exactly; other ACE types are kept
as opaque bytes so that a descriptor round-trips. The SACL, when the caller asked for it
(SD_FLAGS 0x8, which takes SeSecurityPrivilege), is kept the same way and read by
``audit_aces``.
"""

from __future__ import annotations

import re
import struct
import uuid
from dataclasses import dataclass, field

from credo.errors import InputError

__all__ = [
    "ACCESS_ALLOWED_ACE_TYPE",
    "ACCESS_DENIED_ACE_TYPE",
    "AccessEntry",
    "Ace",
    "AuditAce",
    "MalformedSecurityDescriptor",
    "SecurityDescriptor",
    "access_entries",
    "access_entry_sddl",
    "ace_to_sddl",
    "audit_ace",
    "audit_ace_sddl",
    "audit_aces",
    "object_ace",
    "sddl_rights",
    "sddl_sid",
    "sid_from_bytes",
    "sid_to_bytes",
    "to_sddl",
]

ACCESS_ALLOWED_ACE_TYPE = 0x00
ACCESS_DENIED_ACE_TYPE = 0x01
SE_DACL_PRESENT = 0x0004
SE_SACL_PRESENT = 0x0010
SE_SELF_RELATIVE = 0x8000
# At most 20 digits a component (none fits in more than 15): int() refuses 4300 and more with a
# bare ValueError; sid_to_bytes checks the ranges.
_SID_RE = re.compile(r"^S-1-(\d{1,20})(-\d{1,20}){0,15}$")


class MalformedSecurityDescriptor(InputError):
    """A security descriptor or SID that does not follow MS-DTYP."""


def sid_from_bytes(data: bytes, offset: int = 0) -> tuple[str, int]:
    """MS-DTYP 2.4.2.2 SID -> (``S-1-...``, bytes used)."""
    if len(data) < offset + 8:
        raise MalformedSecurityDescriptor("truncated SID")
    revision, count = data[offset], data[offset + 1]
    size = 8 + 4 * count
    if revision != 1 or count > 15 or len(data) < offset + size:
        raise MalformedSecurityDescriptor("invalid SID")
    authority = int.from_bytes(data[offset + 2 : offset + 8], "big")
    subs = struct.unpack_from(f"<{count}I", data, offset + 8)
    return "-".join(["S", str(revision), str(authority), *map(str, subs)]), size


def sid_to_bytes(sid: str) -> bytes:
    """``S-1-5-21-...`` -> MS-DTYP 2.4.2.2 bytes."""
    if not _SID_RE.match(sid):
        raise InputError(f"invalid SID {sid!r}")
    parts = [int(p) for p in sid.split("-")[1:]]
    revision, authority, subs = parts[0], parts[1], parts[2:]
    # The identifier authority is 48 bits, a sub-authority 32 (MS-DTYP 2.4.2.2).
    if authority >= 1 << 48 or any(sub >= 1 << 32 for sub in subs):
        raise InputError(f"invalid SID {sid!r}: a component is out of range")
    return bytes([revision, len(subs)]) + authority.to_bytes(6, "big") + struct.pack(f"<{len(subs)}I", *subs)


@dataclass(frozen=True)
class Ace:
    """An ACE of a DACL (MS-DTYP 2.4.4.1 header; 2.4.4.2/2.4.4.4 body for allow/deny)."""

    ace_type: int
    flags: int
    mask: int = 0
    sid: str = ""
    raw: bytes = field(default=b"", repr=False)  # the whole ACE, for types credo does not interpret

    def pack(self) -> bytes:
        if self.ace_type not in (ACCESS_ALLOWED_ACE_TYPE, ACCESS_DENIED_ACE_TYPE):
            return self.raw
        body = struct.pack("<I", self.mask) + sid_to_bytes(self.sid)
        return struct.pack("<BBH", self.ace_type, self.flags, 4 + len(body)) + body


@dataclass(frozen=True)
class SecurityDescriptor:
    """A self-relative security descriptor (MS-DTYP 2.4.6) with its owner, group, DACL and SACL
    (None: absent, or not asked for)."""

    owner: str | None
    group: str | None
    dacl: tuple[Ace, ...] | None
    control: int = SE_SELF_RELATIVE | SE_DACL_PRESENT
    # ACL_REVISION_DS (4) is what Windows and Samba write on directory objects (MS-DTYP 2.4.5).
    acl_revision: int = 4
    sacl: tuple[Ace, ...] | None = None

    @property
    def allowed_sids(self) -> list[str]:
        """SIDs granted access by an ACCESS_ALLOWED ACE, in DACL order, without repeats."""
        seen: list[str] = []
        for ace in self.dacl or ():
            if ace.ace_type == ACCESS_ALLOWED_ACE_TYPE and ace.sid not in seen:
                seen.append(ace.sid)
        return seen

    @classmethod
    def unpack(cls, data: bytes) -> SecurityDescriptor:
        if len(data) < 20:
            raise MalformedSecurityDescriptor("truncated security descriptor")
        revision, _sbz1, control, off_owner, off_group, off_sacl, off_dacl = struct.unpack_from(
            "<BBHIIII", data
        )
        if revision != 1 or not control & SE_SELF_RELATIVE:
            raise MalformedSecurityDescriptor("not a self-relative security descriptor")
        owner = sid_from_bytes(data, off_owner)[0] if off_owner else None
        group = sid_from_bytes(data, off_group)[0] if off_group else None
        dacl = None
        acl_revision = 4
        if control & SE_DACL_PRESENT and off_dacl:
            dacl = _unpack_acl(data, off_dacl)
            acl_revision = data[off_dacl]
        sacl = _unpack_acl(data, off_sacl) if control & SE_SACL_PRESENT and off_sacl else None
        return cls(owner=owner, group=group, dacl=dacl, control=control, acl_revision=acl_revision, sacl=sacl)

    def pack(self) -> bytes:
        """Self-relative layout: header, owner, group, SACL, DACL (owner, group, DACL: the order
        Windows writes a DACL-only descriptor)."""
        body = b""
        offsets = [0, 0, 0, 0]  # owner, group, SACL, DACL
        cursor = 20
        for index, sid in enumerate((self.owner, self.group)):
            if sid is not None:
                blob = sid_to_bytes(sid)
                offsets[index] = cursor
                body += blob
                cursor += len(blob)
        control = self.control | SE_SELF_RELATIVE
        for index, acl_aces, present in ((2, self.sacl, SE_SACL_PRESENT), (3, self.dacl, SE_DACL_PRESENT)):
            if acl_aces is None:
                continue
            aces = b"".join(ace.pack() for ace in acl_aces)
            acl = struct.pack("<BBHHH", self.acl_revision, 0, 8 + len(aces), len(acl_aces), 0) + aces
            offsets[index] = cursor
            body += acl
            cursor += len(acl)
            control |= present
        header = struct.pack("<BBHIIII", 1, 0, control, *offsets)
        return header + body


def _unpack_acl(data: bytes, offset: int) -> tuple[Ace, ...]:
    if len(data) < offset + 8:
        raise MalformedSecurityDescriptor("truncated ACL")
    _revision, _sbz1, size, count, _sbz2 = struct.unpack_from("<BBHHH", data, offset)
    if len(data) < offset + size:
        raise MalformedSecurityDescriptor("ACL runs past the descriptor")
    aces = []
    cursor = offset + 8
    for _ in range(count):
        if cursor + 4 > offset + size:
            raise MalformedSecurityDescriptor("ACE runs past its ACL")
        ace_type, flags, ace_size = struct.unpack_from("<BBH", data, cursor)
        if ace_size < 4 or cursor + ace_size > offset + size:
            raise MalformedSecurityDescriptor("invalid ACE size")
        if ace_type in (ACCESS_ALLOWED_ACE_TYPE, ACCESS_DENIED_ACE_TYPE):
            (mask,) = struct.unpack_from("<I", data, cursor + 4)
            sid, _ = sid_from_bytes(data[: cursor + ace_size], cursor + 8)
            aces.append(Ace(ace_type, flags, mask, sid))
        else:
            aces.append(Ace(ace_type, flags, raw=data[cursor : cursor + ace_size]))
        cursor += ace_size
    return tuple(aces)


# --- Access masks and object ACEs, for evaluating who may do what (credo audit) ---------------
#
# Kept apart from the DACL round-trip code above: these functions only read. Access-mask bits
# are those of MS-DTYP 2.4.3 (generic and standard rights) and MS-ADTS 5.1.3.2 (directory rights).

ACCESS_ALLOWED_OBJECT_ACE_TYPE = 0x05
ACCESS_DENIED_OBJECT_ACE_TYPE = 0x06

ADS_RIGHT_DS_CREATE_CHILD = 0x00000001
ADS_RIGHT_DS_DELETE_CHILD = 0x00000002
ADS_RIGHT_DS_SELF = 0x00000008  # validated write (MS-ADTS 5.1.3.2.2)
ADS_RIGHT_DS_READ_PROP = 0x00000010
ADS_RIGHT_DS_WRITE_PROP = 0x00000020
ADS_RIGHT_DS_CONTROL_ACCESS = 0x00000100
DELETE = 0x00010000
READ_CONTROL = 0x00020000
WRITE_DAC = 0x00040000
WRITE_OWNER = 0x00080000
GENERIC_ALL = 0x10000000
GENERIC_EXECUTE = 0x20000000
GENERIC_WRITE = 0x40000000
GENERIC_READ = 0x80000000
# What GENERIC_ALL maps to on a directory object ("full control", MS-ADTS 5.1.3.2, 0xF01FF);
# DCs store the mapped form, so both spellings are recognised.
FULL_CONTROL = 0x000F01FF
# GENERIC_WRITE maps to READ_CONTROL | WRITE_PROPERTY | SELF on directory objects (MS-ADTS 5.1.3.2).
GENERIC_WRITE_MAPPED = READ_CONTROL | ADS_RIGHT_DS_WRITE_PROP | ADS_RIGHT_DS_SELF
GENERIC_READ_MAPPED = READ_CONTROL | ADS_RIGHT_DS_READ_PROP | 0x4  # 0x4: list children

# ACE header flags (MS-DTYP 2.4.4.1).
INHERIT_ONLY_ACE = 0x08
INHERITED_ACE = 0x10
# ACCESS_ALLOWED_OBJECT_ACE Flags (MS-DTYP 2.4.4.3): which of the two GUIDs follow.
ACE_OBJECT_TYPE_PRESENT = 0x1
ACE_INHERITED_OBJECT_TYPE_PRESENT = 0x2


@dataclass(frozen=True)
class AccessEntry:
    """One allow or deny ACE as an access check reads it (MS-DTYP 2.4.4.2-2.4.4.5).

    ``object_type`` narrows the ACE to one attribute, property set, validated write or extended
    right (a schemaIDGUID or rightsGuid, lower-case text); ``inherited_object_type`` says which
    object class inherits it. Both are None for a basic ACE.
    """

    allow: bool
    flags: int
    mask: int
    sid: str
    object_type: str | None = None
    inherited_object_type: str | None = None

    @property
    def applies_to_object(self) -> bool:
        """False for inherit-only ACEs, which only children see (MS-DTYP 2.4.4.1)."""
        return not self.flags & INHERIT_ONLY_ACE

    def effective_mask(self) -> int:
        """The mask with generic rights mapped to directory rights (MS-ADTS 5.1.3.2)."""
        mask = self.mask
        if mask & GENERIC_ALL:
            mask |= FULL_CONTROL
        if mask & GENERIC_WRITE:
            mask |= GENERIC_WRITE_MAPPED
        if mask & GENERIC_READ:
            mask |= GENERIC_READ_MAPPED
        return mask

    def grants(self, rights: int, object_types: tuple[str, ...] = ()) -> bool:
        """Whether this ACE covers any of ``rights`` on this object, for one of ``object_types``.

        A basic ACE, or an object ACE without ObjectType, covers the whole object. An object ACE
        with an ObjectType covers only that attribute, property set or right: it counts only when
        the caller names that GUID (an attribute and its property set, say). This follows the
        object-type-list evaluation of MS-DTYP 2.5.3.2, flattened to one level.
        """
        if not self.effective_mask() & rights:
            return False
        if self.object_type is None:
            return True
        return self.object_type in object_types


def _guid_text(data: bytes, offset: int) -> str:
    # GUIDs are stored in their little-endian "bytes_le" layout (MS-DTYP 2.3.4.2).
    return str(uuid.UUID(bytes_le=data[offset : offset + 16]))


def _object_entry(raw: bytes) -> AccessEntry:
    """Decode an object ACE's body (MS-DTYP 2.4.4.3; audit object ACEs share it, 2.4.4.11):
    header (4), Mask (4), Flags (4), [ObjectType (16)], [InheritedObjectType (16)], SID.
    ``allow`` and ``flags`` of the result are not meaningful: the caller sets its own."""
    if len(raw) < 12:
        raise MalformedSecurityDescriptor("truncated object ACE")
    mask, object_flags = struct.unpack_from("<II", raw, 4)
    cursor = 12
    object_type = inherited = None
    if object_flags & ACE_OBJECT_TYPE_PRESENT:
        if len(raw) < cursor + 16:
            raise MalformedSecurityDescriptor("truncated object ACE")
        object_type = _guid_text(raw, cursor)
        cursor += 16
    if object_flags & ACE_INHERITED_OBJECT_TYPE_PRESENT:
        if len(raw) < cursor + 16:
            raise MalformedSecurityDescriptor("truncated object ACE")
        inherited = _guid_text(raw, cursor)
        cursor += 16
    sid, _ = sid_from_bytes(raw, cursor)
    return AccessEntry(True, 0, mask, sid, object_type, inherited)


def access_entries(sd: SecurityDescriptor) -> list[AccessEntry]:
    """The allow/deny ACEs of ``sd``'s DACL, object ACEs decoded (MS-DTYP 2.4.4.3, 2.4.4.4).

    Other ACE types (audit, callback...) do not grant or deny access here and are skipped.
    """
    entries: list[AccessEntry] = []
    for ace in sd.dacl or ():
        if ace.ace_type in (ACCESS_ALLOWED_ACE_TYPE, ACCESS_DENIED_ACE_TYPE):
            entries.append(AccessEntry(ace.ace_type == ACCESS_ALLOWED_ACE_TYPE, ace.flags, ace.mask, ace.sid))
            continue
        if ace.ace_type not in (ACCESS_ALLOWED_OBJECT_ACE_TYPE, ACCESS_DENIED_OBJECT_ACE_TYPE):
            continue
        entry = _object_entry(ace.raw)
        entries.append(
            AccessEntry(
                ace.ace_type == ACCESS_ALLOWED_OBJECT_ACE_TYPE, ace.flags, entry.mask, entry.sid,
                entry.object_type, entry.inherited_object_type,
            )
        )  # fmt: skip
    return entries


def object_ace(
    allow: bool,
    flags: int,
    mask: int,
    sid: str,
    object_type: str | None = None,
    inherited_object_type: str | None = None,
) -> Ace:
    """Build an ACCESS_ALLOWED/DENIED_OBJECT_ACE (MS-DTYP 2.4.4.3), kept as raw bytes in ``Ace``."""
    object_flags = 0
    guids = b""
    if object_type is not None:
        object_flags |= ACE_OBJECT_TYPE_PRESENT
        guids += uuid.UUID(object_type).bytes_le
    if inherited_object_type is not None:
        object_flags |= ACE_INHERITED_OBJECT_TYPE_PRESENT
        guids += uuid.UUID(inherited_object_type).bytes_le
    ace_type = ACCESS_ALLOWED_OBJECT_ACE_TYPE if allow else ACCESS_DENIED_OBJECT_ACE_TYPE
    body = struct.pack("<II", mask, object_flags) + guids + sid_to_bytes(sid)
    raw = struct.pack("<BBH", ace_type, flags, 4 + len(body)) + body
    return Ace(ace_type, flags, raw=raw)


# --- SDDL rendering (MS-DTYP 2.5.1) -----------------------------------------------------------
# Kept apart from the binary layout above: it only reads a SecurityDescriptor.

# MS-DTYP 2.5.1.1 sid_token aliases for SIDs that are the same in every domain. Domain-relative
# SIDs (Domain Admins, ...) are written in their S-1-5-21-... form, which every parser accepts.
SDDL_SID_ALIASES = {
    "S-1-1-0": "WD",
    "S-1-3-0": "CO",
    "S-1-3-1": "CG",
    "S-1-5-7": "AN",
    "S-1-5-9": "ED",
    "S-1-5-10": "PS",
    "S-1-5-11": "AU",
    "S-1-5-18": "SY",
    "S-1-5-32-544": "BA",
    "S-1-5-32-545": "BU",
    "S-1-5-32-548": "AO",
    "S-1-5-32-549": "SO",
    "S-1-5-32-550": "PO",
    "S-1-5-32-551": "BO",
}
# MS-DTYP 2.5.1.1 ace_flag_string and rights tokens, in the order Windows and Samba write them.
_SDDL_ACE_FLAGS = (
    ("OI", 0x01),
    ("CI", 0x02),
    ("NP", 0x04),
    ("IO", 0x08),
    ("ID", 0x10),
    ("SA", 0x40),
    ("FA", 0x80),
)
_SDDL_RIGHTS = (
    ("GA", 0x10000000),
    ("GR", 0x80000000),
    ("GW", 0x40000000),
    ("GX", 0x20000000),
    ("CC", 0x00000001),
    ("DC", 0x00000002),
    ("LC", 0x00000004),
    ("SW", 0x00000008),
    ("RP", 0x00000010),
    ("WP", 0x00000020),
    ("DT", 0x00000040),
    ("LO", 0x00000080),
    ("CR", 0x00000100),
    ("SD", 0x00010000),
    ("RC", 0x00020000),
    ("WD", 0x00040000),
    ("WO", 0x00080000),
)
_SDDL_ACE_TYPES = {ACCESS_ALLOWED_ACE_TYPE: "A", ACCESS_DENIED_ACE_TYPE: "D"}
# MS-DTYP 2.4.6 control bits that SDDL shows after "D:" (P: protected, AI: auto-inherited).
SE_DACL_AUTO_INHERITED = 0x0400
SE_SACL_AUTO_INHERITED = 0x0800
SE_DACL_PROTECTED = 0x1000
SE_SACL_PROTECTED = 0x2000


def sddl_sid(sid: str) -> str:
    return SDDL_SID_ALIASES.get(sid, sid)


def sddl_rights(mask: int) -> str:
    """An access mask as SDDL rights letters (``CCDCLC...``), or ``0x...`` when a bit has no letter."""
    letters = "".join(token for token, bit in _SDDL_RIGHTS if mask & bit)
    known = 0
    for _, bit in _SDDL_RIGHTS:
        known |= bit
    if mask & ~known or not mask:
        return f"0x{mask:x}"
    return letters


def ace_to_sddl(ace: Ace) -> str:
    """``(A;;RPWP;;;S-1-...)`` for an allow/deny ACE; other types are not interpreted here."""
    kind = _SDDL_ACE_TYPES.get(ace.ace_type)
    if kind is None:
        raise MalformedSecurityDescriptor(f"ACE type {ace.ace_type} has no SDDL rendering here")
    flags = "".join(token for token, bit in _SDDL_ACE_FLAGS if ace.flags & bit)
    return f"({kind};{flags};{sddl_rights(ace.mask)};;;{sddl_sid(ace.sid)})"


def access_entry_sddl(entry: AccessEntry) -> str:
    """One allow/deny ACE in SDDL, object ACEs included (MS-DTYP 2.5.1.1):
    ``(OA;CI;RPWP;<object type>;<inherited object type>;S-1-...)``."""
    is_object = entry.object_type is not None or entry.inherited_object_type is not None
    kind = ("O" if is_object else "") + ("A" if entry.allow else "D")
    flags = "".join(token for token, bit in _SDDL_ACE_FLAGS if entry.flags & bit)
    return (
        f"({kind};{flags};{sddl_rights(entry.mask)};{entry.object_type or ''};"
        f"{entry.inherited_object_type or ''};{sddl_sid(entry.sid)})"
    )


def to_sddl(descriptor: SecurityDescriptor) -> str:
    """The SDDL string of a descriptor's owner, group, DACL and SACL (MS-DTYP 2.5.1), e.g.
    ``O:BAD:(A;;...)``; of the SACL, its audit ACEs."""
    parts = []
    if descriptor.owner is not None:
        parts.append(f"O:{sddl_sid(descriptor.owner)}")
    if descriptor.group is not None:
        parts.append(f"G:{sddl_sid(descriptor.group)}")
    if descriptor.dacl is not None:
        dacl_flags = ("P" if descriptor.control & SE_DACL_PROTECTED else "") + (
            "AI" if descriptor.control & SE_DACL_AUTO_INHERITED else ""
        )
        parts.append("D:" + dacl_flags + "".join(ace_to_sddl(ace) for ace in descriptor.dacl))
    if descriptor.sacl is not None:
        parts.append("S:" + "".join(audit_ace_sddl(entry) for entry in audit_aces(descriptor)))
    return "".join(parts)


# --- SACL audit ACEs (MS-DTYP 2.4.4.10 SYSTEM_AUDIT_ACE, 2.4.4.11 SYSTEM_AUDIT_OBJECT_ACE) ------
#
# An audit ACE makes the DC log an event (4662 "an operation was performed on an object") when a
# matching access succeeds (SA) or fails (FA). A read of msDS-ManagedPassword or msKds-RootKeyData
# leaves no trace without one (the Golden gMSA attack reads the latter).

SYSTEM_AUDIT_ACE_TYPE = 0x02
SYSTEM_AUDIT_OBJECT_ACE_TYPE = 0x07
SUCCESSFUL_ACCESS_ACE_FLAG = 0x40
FAILED_ACCESS_ACE_FLAG = 0x80


@dataclass(frozen=True)
class AuditAce:
    """One audit ACE of a SACL, decoded: who (``sid``: Everyone audits every caller), which
    rights, on which attribute (``object_type``; None: the whole object), on success or failure."""

    flags: int
    mask: int
    sid: str
    object_type: str | None = None
    inherited_object_type: str | None = None

    @property
    def on_success(self) -> bool:
        return bool(self.flags & SUCCESSFUL_ACCESS_ACE_FLAG)

    @property
    def applies_to_object(self) -> bool:
        return not self.flags & INHERIT_ONLY_ACE

    def audits(self, rights: int, attribute: str) -> bool:
        """Whether a successful ``rights`` access to ``attribute`` on this object is logged."""
        mask = AccessEntry(True, self.flags, self.mask, self.sid).effective_mask()
        return (
            self.on_success
            and self.applies_to_object
            and mask & rights == rights
            and self.object_type in (None, attribute)
        )


def audit_aces(sd: SecurityDescriptor) -> list[AuditAce]:
    """The audit ACEs of ``sd``'s SACL (empty when it has none or it was not read)."""
    found = []
    for ace in sd.sacl or ():
        raw = ace.raw
        if ace.ace_type == SYSTEM_AUDIT_ACE_TYPE:
            if len(raw) < 8:
                raise MalformedSecurityDescriptor("truncated audit ACE")
            (mask,) = struct.unpack_from("<I", raw, 4)
            found.append(AuditAce(ace.flags, mask, sid_from_bytes(raw, 8)[0]))
        elif ace.ace_type == SYSTEM_AUDIT_OBJECT_ACE_TYPE:
            # The same layout as an object ACE of a DACL (MS-DTYP 2.4.4.3).
            entry = _object_entry(raw)
            found.append(
                AuditAce(ace.flags, entry.mask, entry.sid, entry.object_type, entry.inherited_object_type)
            )
    return found


def audit_ace(flags: int, mask: int, sid: str, object_type: str | None = None) -> Ace:
    """Build a SYSTEM_AUDIT_ACE, or a SYSTEM_AUDIT_OBJECT_ACE for one attribute (raw, in ``Ace``)."""
    if object_type is None:
        body = struct.pack("<I", mask) + sid_to_bytes(sid)
        raw = struct.pack("<BBH", SYSTEM_AUDIT_ACE_TYPE, flags, 4 + len(body)) + body
        return Ace(SYSTEM_AUDIT_ACE_TYPE, flags, raw=raw)
    body = (
        struct.pack("<II", mask, ACE_OBJECT_TYPE_PRESENT)
        + uuid.UUID(object_type).bytes_le
        + sid_to_bytes(sid)
    )
    raw = struct.pack("<BBH", SYSTEM_AUDIT_OBJECT_ACE_TYPE, flags, 4 + len(body)) + body
    return Ace(SYSTEM_AUDIT_OBJECT_ACE_TYPE, flags, raw=raw)


def audit_ace_sddl(entry: AuditAce) -> str:
    """``(OU;SA;RP;<attribute>;;WD)``: one audit ACE in SDDL (MS-DTYP 2.5.1.1)."""
    is_object = entry.object_type is not None or entry.inherited_object_type is not None
    flags = "".join(token for token, bit in _SDDL_ACE_FLAGS if entry.flags & bit)
    return (
        f"({'OU' if is_object else 'AU'};{flags};{sddl_rights(entry.mask)};{entry.object_type or ''};"
        f"{entry.inherited_object_type or ''};{sddl_sid(entry.sid)})"
    )
