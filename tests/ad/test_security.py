"""SIDs and security descriptors (MS-DTYP 2.4.2, 2.4.6): round trips and malformed input."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
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
)

# msDS-GroupMSAMembership as Samba 4.22 wrote it for the lab's svcauto$ (readers: Administrator and
# HybridWorkers): O:S-1-5-32-544 D:(A;;0xf01ff;;;...-500)(A;;0xf01ff;;;...-1108).
SAMBA_MEMBERSHIP = (
    "AQAEgBQAAAAAAAAAAAAAACQAAAABAgAAAAAABSAAAAAgAgAABABQAAIAAAAAACQA/wEPAAEFAAAAAAAFFQAAAMjCB9Ai"
    "H4wxDCzxGfQBAAAAACQA/wEPAAEFAAAAAAAFFQAAAMjCB9AiH4wxDCzxGVQEAAA="
)


def test_unpacks_what_samba_wrote() -> None:
    sd = SecurityDescriptor.unpack(base64.b64decode(SAMBA_MEMBERSHIP))
    assert sd.owner == "S-1-5-32-544"
    assert sd.allowed_sids == [
        "S-1-5-21-3490169544-831266594-435235852-500",
        "S-1-5-21-3490169544-831266594-435235852-1108",
    ]
    assert all(ace.mask == 0xF01FF for ace in sd.dacl or ())


def test_pack_reproduces_samba_bytes() -> None:
    raw = base64.b64decode(SAMBA_MEMBERSHIP)
    assert SecurityDescriptor.unpack(raw).pack() == raw


@given(st.lists(st.integers(min_value=0, max_value=2**32 - 1), min_size=1, max_size=15))
def test_sid_round_trip(subs: list[int]) -> None:
    sid = "S-1-5-" + "-".join(map(str, subs))
    assert sid_from_bytes(sid_to_bytes(sid)) == (sid, 8 + 4 * len(subs))


@given(st.lists(st.integers(min_value=1, max_value=99999), min_size=0, max_size=6))
def test_descriptor_round_trip(rids: list[int]) -> None:
    aces = tuple(Ace(ACCESS_ALLOWED_ACE_TYPE, 0, 0xF01FF, f"S-1-5-21-1-2-3-{rid}") for rid in rids)
    sd = SecurityDescriptor(owner="S-1-5-32-544", group=None, dacl=aces)
    again = SecurityDescriptor.unpack(sd.pack())
    assert again.dacl == aces
    assert again.owner == "S-1-5-32-544"


@given(st.binary(max_size=200))
def test_garbage_raises_only_the_malformed_error(data: bytes) -> None:
    with contextlib.suppress(MalformedSecurityDescriptor):
        SecurityDescriptor.unpack(data)


@pytest.mark.parametrize("bad", ["S-1", "S-2-5-1", "S-1-5-x", "1-5-21"])
def test_invalid_sid_strings(bad: str) -> None:
    with pytest.raises(Exception, match="invalid SID"):
        sid_to_bytes(bad)


def test_access_entry_sddl_names_object_aces_exactly() -> None:
    """The ACE the lab seeds on OU=Staff (samba-lab.md): read/write userAccountControl, inherited
    by user objects; and a basic deny ACE with inheritance flags."""
    sid = "S-1-5-21-1-2-3-1105"
    uac, user = "bf967a68-0de6-11d0-a285-00aa003049e2", "bf967aba-0de6-11d0-a285-00aa003049e2"
    descriptor = SecurityDescriptor(
        owner=None,
        group=None,
        dacl=(object_ace(True, 0x02, 0x30, sid, uac, user), Ace(ACCESS_DENIED_ACE_TYPE, 0x12, 0x40000, sid)),
    )
    rendered = [access_entry_sddl(e) for e in access_entries(SecurityDescriptor.unpack(descriptor.pack()))]
    assert rendered == [f"(OA;CI;RPWP;{uac};{user};{sid})", f"(D;CIID;WD;;;{sid})"]


# -- SACL: audit ACEs (MS-DTYP 2.4.4.10, 2.4.4.11) ------------------------------------------------

MANAGED_PASSWORD = "e362ed86-b728-0842-b27d-2dea7a9df218"  # msDS-ManagedPassword's schemaIDGUID


def test_a_sacl_round_trips_and_its_audit_aces_decode() -> None:
    from credo.ad.security import (
        SUCCESSFUL_ACCESS_ACE_FLAG,
        AuditAce,
        SecurityDescriptor,
        audit_ace,
        audit_aces,
        to_sddl,
    )

    sacl = (
        audit_ace(SUCCESSFUL_ACCESS_ACE_FLAG, 0x10, "S-1-1-0", MANAGED_PASSWORD),
        audit_ace(0x80 | 0x02, 0x20, "S-1-5-11"),  # failed writes, container-inherit
    )
    sd = SecurityDescriptor(owner="S-1-5-32-544", group=None, dacl=(), sacl=sacl)
    again = SecurityDescriptor.unpack(sd.pack())
    assert again.sacl == sacl and again.dacl == () and again.pack() == sd.pack()
    assert audit_aces(again) == [
        AuditAce(0x40, 0x10, "S-1-1-0", MANAGED_PASSWORD),
        AuditAce(0x82, 0x20, "S-1-5-11"),
    ]
    assert [a.audits(0x10, MANAGED_PASSWORD) for a in audit_aces(again)] == [True, False]
    assert to_sddl(again) == f"O:BAD:S:(OU;SA;RP;{MANAGED_PASSWORD};;WD)(AU;CIFA;WP;;;AU)"


def test_a_descriptor_without_a_sacl_packs_as_before() -> None:
    from credo.ad.security import ACCESS_ALLOWED_ACE_TYPE, Ace, SecurityDescriptor

    sd = SecurityDescriptor(
        owner="S-1-5-18", group="S-1-5-18", dacl=(Ace(ACCESS_ALLOWED_ACE_TYPE, 0, 0x10, "S-1-1-0"),)
    )
    raw = sd.pack()
    assert raw[16:20] != b"\0\0\0\0" and raw[12:16] == b"\0\0\0\0"  # a DACL offset, no SACL offset
    assert SecurityDescriptor.unpack(raw).sacl is None
