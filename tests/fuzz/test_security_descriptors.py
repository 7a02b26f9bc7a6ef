"""Fuzzing self-relative security descriptors (MS-DTYP 2.4.6) and SIDs, bytes and text, and the SDDL
rendered from what was parsed (msDS-GroupMSAMembership, nTSecurityDescriptor in ``credo audit``).

tests/ad/test_security.py feeds ``SecurityDescriptor.unpack`` arbitrary bytes, which rarely get
past its header; here valid descriptors (object ACEs and unknown ACE types included) are damaged
where it counts, and everything a caller does with a parsed one (``access_entries``, ``to_sddl``,
``access_entry_sddl``, ``pack``) must end in a typed error or a result too.
"""

from __future__ import annotations

import base64
import struct

from hypothesis import example, given
from hypothesis import strategies as st

from credo.ad.security import (
    ACCESS_ALLOWED_ACE_TYPE,
    ACCESS_DENIED_ACE_TYPE,
    Ace,
    MalformedSecurityDescriptor,
    SecurityDescriptor,
    access_entries,
    access_entry_sddl,
    object_ace,
    sid_from_bytes,
    sid_to_bytes,
    to_sddl,
)
from credo.errors import InputError
from credo.gmsa.gkdi import GMSA_SECURITY_DESCRIPTOR
from tests.fuzz.helpers import FUZZ, mutated, typed_only

# msDS-GroupMSAMembership as Samba 4.22 wrote it for the lab's svcauto$ (tests/ad/test_security.py).
SAMBA_MEMBERSHIP = base64.b64decode(
    "AQAEgBQAAAAAAAAAAAAAACQAAAABAgAAAAAABSAAAAAgAgAABABQAAIAAAAAACQA/wEPAAEFAAAAAAAFFQAAAMjCB9Ai"
    "H4wxDCzxGfQBAAAAACQA/wEPAAEFAAAAAAAFFQAAAMjCB9AiH4wxDCzxGVQEAAA="
)
# Revision, Sbz1, Control, OffsetOwner, OffsetGroup, OffsetSacl, OffsetDacl (little-endian).
HEADER_FIELDS = ((0, 1), (2, 2), (4, 4), (8, 4), (12, 4), (16, 4))


def _everything(data: bytes) -> object:
    """What credo does with a descriptor it read: parse, list its ACEs, render, write it back."""
    sd = SecurityDescriptor.unpack(data)
    entries = access_entries(sd)
    rendered = [access_entry_sddl(e) for e in entries]
    sddl = typed_only(to_sddl, sd)  # an ACE type SDDL here does not render: typed, and not the end
    typed_only(sd.pack)  # a SID text from bytes must turn back into bytes
    return sd, rendered, sddl


sids = st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=15).map(
    lambda subs: "S-1-5" + "".join(f"-{s}" for s in subs)
)
guids = st.none() | st.uuids().map(str)
aces = st.one_of(
    st.builds(Ace, st.sampled_from([ACCESS_ALLOWED_ACE_TYPE, ACCESS_DENIED_ACE_TYPE]), st.integers(0, 255),
              st.integers(0, 2**32 - 1), sids),
    st.builds(object_ace, st.booleans(), st.integers(0, 255), st.integers(0, 2**32 - 1), sids, guids, guids),
    # An ACE type credo keeps as opaque bytes (an audit ACE, a callback ACE...).
    st.builds(lambda kind, flags, body: Ace(kind, flags, raw=struct.pack("<BBH", kind, flags, 4 + len(body)) + body),
              st.integers(2, 255).filter(lambda k: k not in (5, 6)), st.integers(0, 255), st.binary(max_size=24)),
)  # fmt: skip
descriptors = st.builds(
    SecurityDescriptor,
    owner=st.none() | sids,
    group=st.none() | sids,
    dacl=st.none() | st.lists(aces, max_size=5).map(tuple),
).map(lambda sd: sd.pack())


def test_samba_membership_truncated_at_every_length() -> None:
    for end in range(len(SAMBA_MEMBERSHIP)):
        typed_only(_everything, SAMBA_MEMBERSHIP[:end])


@FUZZ
@given(st.one_of(
    mutated(SAMBA_MEMBERSHIP, fields=HEADER_FIELDS),
    mutated(GMSA_SECURITY_DESCRIPTOR, fields=HEADER_FIELDS),
    descriptors.flatmap(lambda packed: mutated(packed, fields=HEADER_FIELDS)),
))  # fmt: skip
def test_damaged_descriptors_raise_typed_errors(data: bytes) -> None:
    result = typed_only(_everything, data)
    assert not isinstance(result, InputError) or isinstance(result, MalformedSecurityDescriptor)


@FUZZ
@given(descriptors)
def test_descriptors_credo_writes_read_back(data: bytes) -> None:
    sd = SecurityDescriptor.unpack(data)
    assert sd.pack() == data
    typed_only(_everything, data)


@FUZZ
@given(st.binary(max_size=80), st.integers(0, 90))
@example(bytes([1, 15]) + b"\0" * 6, 0)  # fifteen sub-authorities announced, none there
def test_sids_from_bytes(data: bytes, offset: int) -> None:
    result = typed_only(sid_from_bytes, data, offset)
    if not isinstance(result, MalformedSecurityDescriptor):
        sid, used = result
        assert sid_to_bytes(sid) == data[offset : offset + used]


sid_components = st.one_of(
    st.integers(0, 2**64).map(str),
    st.text("0123456789", min_size=1, max_size=30),
    st.sampled_from(["", "-1", "x", "\u0665", "1" * 5000]),
)


@FUZZ
@given(st.one_of(st.text(max_size=40), st.lists(sid_components, min_size=1, max_size=18).map(
    lambda parts: "S-1-" + "-".join(parts))))  # fmt: skip
@example("S-1-281474976710656")  # an identifier authority over 48 bits: OverflowError
@example("S-1-5-4294967296")  # a sub-authority over 32 bits: struct.error
@example("S-1-5-" + "9" * 5000)  # more digits than int() converts: ValueError
def test_sid_strings(text: str) -> None:
    result = typed_only(sid_to_bytes, text)
    if isinstance(result, bytes):
        assert sid_from_bytes(result)[1] == len(result)
