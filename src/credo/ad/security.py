"""SIDs and self-relative security descriptors, as AD stores them (MS-DTYP 2.4.2, 2.4.4-2.4.6).

Only what credo needs: the DACL of msDS-GroupMSAMembership (who may read a gMSA password), with
ACCESS_ALLOWED / ACCESS_DENIED ACEs, read and written byte-exactly; other ACE types are kept
as opaque bytes so that a descriptor round-trips.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from credo.errors import InputError

__all__ = [
    "ACCESS_ALLOWED_ACE_TYPE",
    "ACCESS_DENIED_ACE_TYPE",
    "Ace",
    "MalformedSecurityDescriptor",
    "SecurityDescriptor",
    "ace_to_sddl",
    "sddl_rights",
    "sddl_sid",
    "sid_from_bytes",
    "sid_to_bytes",
    "to_sddl",
]

ACCESS_ALLOWED_ACE_TYPE = 0x00
ACCESS_DENIED_ACE_TYPE = 0x01
SE_DACL_PRESENT = 0x0004
SE_SELF_RELATIVE = 0x8000
_SID_RE = re.compile(r"^S-1-(\d+)(-\d+){0,15}$")


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
    """A self-relative security descriptor (MS-DTYP 2.4.6) with its owner, group and DACL."""

    owner: str | None
    group: str | None
    dacl: tuple[Ace, ...] | None
    control: int = SE_SELF_RELATIVE | SE_DACL_PRESENT
    # ACL_REVISION_DS (4) is what Windows and Samba write on directory objects (MS-DTYP 2.4.5).
    acl_revision: int = 4

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
        revision, _sbz1, control, off_owner, off_group, _off_sacl, off_dacl = struct.unpack_from(
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
        return cls(owner=owner, group=group, dacl=dacl, control=control, acl_revision=acl_revision)

    def pack(self) -> bytes:
        """Self-relative layout: header, owner, group, DACL (the order Windows writes)."""
        body = b""
        offsets = [0, 0, 0]
        cursor = 20
        for index, sid in enumerate((self.owner, self.group)):
            if sid is not None:
                blob = sid_to_bytes(sid)
                offsets[index] = cursor
                body += blob
                cursor += len(blob)
        control = self.control | SE_SELF_RELATIVE
        if self.dacl is not None:
            aces = b"".join(ace.pack() for ace in self.dacl)
            acl = struct.pack("<BBHHH", self.acl_revision, 0, 8 + len(aces), len(self.dacl), 0) + aces
            offsets[2] = cursor
            body += acl
            control |= SE_DACL_PRESENT
        header = struct.pack("<BBHIIII", 1, 0, control, offsets[0], offsets[1], 0, offsets[2])
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
SE_DACL_PROTECTED = 0x1000


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


def to_sddl(descriptor: SecurityDescriptor) -> str:
    """The SDDL string of a descriptor's owner, group and DACL (MS-DTYP 2.5.1), e.g. ``O:BAD:(A;;...)``."""
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
    return "".join(parts)
