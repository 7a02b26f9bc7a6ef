"""Pure logic of the audit: object ACEs (MS-DTYP 2.4.4.3), rights evaluation, report rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from credo.ad.security import (
    ACCESS_ALLOWED_ACE_TYPE,
    ACCESS_DENIED_ACE_TYPE,
    ADS_RIGHT_DS_CONTROL_ACCESS,
    ADS_RIGHT_DS_READ_PROP,
    ADS_RIGHT_DS_WRITE_PROP,
    FULL_CONTROL,
    GENERIC_ALL,
    INHERIT_ONLY_ACE,
    WRITE_DAC,
    Ace,
    SecurityDescriptor,
    access_entries,
    object_ace,
)
from credo.audit.acl import GMSA_MEMBERSHIP_GUID, KDS_ROOT_KEY_DATA_GUID, describe_rights, rights_by_sid
from credo.audit.findings import (
    AffectedObject,
    CheckInfo,
    CheckOutcome,
    CheckStatus,
    Finding,
    Report,
    Severity,
)
from credo.audit.render import to_csv, to_json, to_sarif, to_table

DA = "S-1-5-21-1-2-3-512"
JDOE = "S-1-5-21-1-2-3-1103"
USER_CLASS = "bf967aba-0de6-11d0-a285-00aa003049e2"


def sd(*aces: Ace, owner: str = DA) -> SecurityDescriptor:
    return SecurityDescriptor(owner=owner, group=DA, dacl=aces)


def test_object_ace_round_trips_through_the_wire_format() -> None:
    ace = object_ace(True, 0x02, ADS_RIGHT_DS_WRITE_PROP, JDOE, GMSA_MEMBERSHIP_GUID, USER_CLASS)
    packed = sd(ace, Ace(ACCESS_ALLOWED_ACE_TYPE, 0, FULL_CONTROL, DA)).pack()
    (entry, basic) = access_entries(SecurityDescriptor.unpack(packed))
    assert (entry.allow, entry.flags, entry.mask, entry.sid) == (True, 0x02, ADS_RIGHT_DS_WRITE_PROP, JDOE)
    assert (entry.object_type, entry.inherited_object_type) == (GMSA_MEMBERSHIP_GUID, USER_CLASS)
    assert (basic.object_type, basic.sid, basic.mask) == (None, DA, FULL_CONTROL)
    # Byte layout of MS-DTYP 2.4.4.3: header, mask, flags (both GUIDs present), GUIDs bytes_le, SID.
    assert ace.raw[:12] == bytes([0x05, 0x02, len(ace.raw), 0, 0x20, 0, 0, 0, 0x03, 0, 0, 0])
    assert ace.raw[12:16] == bytes.fromhex("d6ed8e88")


def test_rights_scoped_to_one_attribute_count_only_for_it() -> None:
    descriptor = sd(object_ace(True, 0, ADS_RIGHT_DS_WRITE_PROP, JDOE, GMSA_MEMBERSHIP_GUID))
    assert rights_by_sid(descriptor, (GMSA_MEMBERSHIP_GUID,))[JDOE] == ADS_RIGHT_DS_WRITE_PROP
    assert JDOE not in rights_by_sid(descriptor, ())
    assert JDOE not in rights_by_sid(descriptor, (KDS_ROOT_KEY_DATA_GUID,))


def test_generic_all_inherit_only_deny_and_owner() -> None:
    descriptor = sd(
        Ace(ACCESS_DENIED_ACE_TYPE, 0, WRITE_DAC, JDOE),  # canonical order: explicit denies first
        Ace(ACCESS_ALLOWED_ACE_TYPE, 0, GENERIC_ALL, JDOE),
        Ace(ACCESS_ALLOWED_ACE_TYPE, INHERIT_ONLY_ACE, FULL_CONTROL, "S-1-5-11"),
        owner="S-1-5-21-1-2-3-1200",
    )
    rights = rights_by_sid(descriptor)
    assert rights[JDOE] & ADS_RIGHT_DS_WRITE_PROP and not rights[JDOE] & WRITE_DAC  # mapped, then denied
    assert "S-1-5-11" not in rights  # inherit-only: children only
    assert rights["S-1-5-21-1-2-3-1200"] & WRITE_DAC  # the owner may always rewrite the DACL
    assert describe_rights(FULL_CONTROL) == "GenericAll"
    assert (
        describe_rights(ADS_RIGHT_DS_READ_PROP | ADS_RIGHT_DS_CONTROL_ACCESS) == "ReadProperty, ExtendedRight"
    )


HELPDESK = "S-1-5-21-1-2-3-1300"
TIER0_DENY = "S-1-5-21-1-2-3-1301"


def test_a_deny_through_a_group_is_subtracted_in_dacl_order() -> None:
    """jdoe is allowed to write the readers; a deny on a group jdoe belongs to takes it away
    (MS-DTYP 2.5.3.2: a deny counts for every SID of the token). An allow that comes before
    the deny in the DACL (an explicit allow before an inherited deny) is kept, as AD keeps it."""
    tokens = {JDOE: {JDOE, TIER0_DENY, "S-1-1-0", "S-1-5-11"}, HELPDESK: {HELPDESK, "S-1-1-0", "S-1-5-11"}}
    deny = object_ace(False, 0, ADS_RIGHT_DS_WRITE_PROP, TIER0_DENY, GMSA_MEMBERSHIP_GUID)
    allow = object_ace(True, 0, ADS_RIGHT_DS_WRITE_PROP, JDOE, GMSA_MEMBERSHIP_GUID)
    helpdesk = object_ace(True, 0, ADS_RIGHT_DS_WRITE_PROP, HELPDESK, GMSA_MEMBERSHIP_GUID)
    canonical = sd(deny, allow, helpdesk)
    rights = rights_by_sid(canonical, (GMSA_MEMBERSHIP_GUID,), lambda s: tokens.get(s, {s}))
    assert JDOE not in rights and rights[HELPDESK] == ADS_RIGHT_DS_WRITE_PROP
    # Without tokens (the old evaluation), the group's deny was not seen.
    assert rights_by_sid(canonical, (GMSA_MEMBERSHIP_GUID,))[JDOE] == ADS_RIGHT_DS_WRITE_PROP
    # An inherited deny after an explicit allow does not take it back.
    inherited_deny = object_ace(False, 0x10, ADS_RIGHT_DS_WRITE_PROP, TIER0_DENY, GMSA_MEMBERSHIP_GUID)
    later = rights_by_sid(sd(allow, inherited_deny), (GMSA_MEMBERSHIP_GUID,), lambda s: tokens.get(s, {s}))
    assert later[JDOE] == ADS_RIGHT_DS_WRITE_PROP
    # A deny to Everyone applies to every domain principal.
    everyone = object_ace(False, 0, ADS_RIGHT_DS_WRITE_PROP, "S-1-1-0", GMSA_MEMBERSHIP_GUID)
    assert rights_by_sid(sd(everyone, allow, helpdesk), (GMSA_MEMBERSHIP_GUID,), lambda s: tokens[s]) == {
        DA: WRITE_DAC | 0x20000
    }


def _report(*outcomes: CheckOutcome) -> Report:
    return Report(datetime(2026, 1, 2, tzinfo=UTC), "ldap://dc", "DC=x", "X\\admin", outcomes, 1, "0.1")


HIGH = CheckInfo("h", Severity.HIGH, "High thing", "because")
CRIT = CheckInfo("c", Severity.CRITICAL, "Critical thing", "because", needs="Domain Admins")
FINDING = Finding(HIGH, "CN=a,DC=x", "a$", "a$ is <bad>", (AffectedObject("CN=a,DC=x", "a$", "gMSA", "d"),),
                  "Set-X 'a'", "credo account set a --disable")  # fmt: skip


def test_fail_on_counts_findings_and_checks_that_did_not_run() -> None:
    found = _report(
        CheckOutcome(HIGH, CheckStatus.FAILED, (FINDING,)), CheckOutcome(CRIT, CheckStatus.PASSED)
    )
    assert found.fails(Severity.HIGH) and found.fails(Severity.INFO) and not found.fails(Severity.CRITICAL)
    blind = _report(CheckOutcome(CRIT, CheckStatus.NOT_RUN, reason="no rights"))
    assert blind.fails(Severity.CRITICAL)  # never "clean" for lack of rights
    assert blind.counts()["not_run"] == 1


def test_renderers_carry_the_finding_and_the_not_run_reason() -> None:
    report = _report(CheckOutcome(HIGH, CheckStatus.FAILED, (FINDING,)),
                     CheckOutcome(CRIT, CheckStatus.NOT_RUN, reason="no rights"))  # fmt: skip
    data = json.loads(to_json(report))
    assert data["summary"]["high"] == 1 and data["checks"][1]["status"] == "not-run"
    assert data["checks"][1]["reason"] == "no rights"
    assert "not-run: no rights" in to_csv(report)
    assert "not-run  no rights" in to_table(report)
    sarif = json.loads(to_sarif(report))["runs"][0]
    assert [r["id"] for r in sarif["tool"]["driver"]["rules"]] == ["h", "c"]
    (result,) = sarif["results"]
    assert (result["ruleId"], result["level"]) == ("h", "error")
    assert result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "CN=a,DC=x"
    assert sarif["invocations"][0]["toolExecutionNotifications"][0]["descriptor"]["id"] == "c"


def test_html_escapes_directory_values() -> None:
    from credo.audit.html import to_html

    html = to_html(_report(CheckOutcome(HIGH, CheckStatus.FAILED, (FINDING,))))
    assert "a$ is &lt;bad&gt;" in html and "<bad>" not in html


def test_csv_cells_cannot_become_spreadsheet_formulas() -> None:
    from credo.audit.render import csv_cell

    assert csv_cell('=HYPERLINK("x")') == '\'=HYPERLINK("x")'
    assert csv_cell("@SUM(1)") == "'@SUM(1)" and csv_cell("CN=a,DC=x") == "CN=a,DC=x"


def test_the_snapshot_never_asks_for_secrets() -> None:
    """KDS root key data and managed passwords are never requested: the audit reads ACLs only."""
    import inspect

    from credo.audit import snapshot

    source = inspect.getsource(snapshot)
    requested = set(snapshot.EXTRA_ACCOUNT_ATTRIBUTES) | set(snapshot.ACCOUNT_ATTRIBUTES)
    assert "msDS-ManagedPassword" not in requested
    assert '"msKds-RootKeyData"' not in source


def _empty_snapshot() -> object:
    from credo.audit.snapshot import Snapshot

    return Snapshot(base_dn="DC=x", domain_sid="S-1-5-21-1-2-3", netbios="X", identity="X\\someone",
                    caller_sids=frozenset(), accounts=[], groups={}, sensitive=[], kds_keys=[],
                    kds_keys_readable=False, now=datetime(2026, 1, 2, tzinfo=UTC))  # fmt: skip


def test_no_kds_root_key_at_all() -> None:
    from credo.audit.checks import AuditOptions
    from credo.audit.checks.access import kds_missing, kds_readers

    snapshot = _empty_snapshot()
    missing = kds_missing(snapshot, AuditOptions())  # type: ignore[arg-type]
    assert missing.status is CheckStatus.FAILED
    assert missing.findings[0].fix_credo == "credo kds add --effective-immediately"
    # With no key to look at, who may read key data is unknown: not run, never passed.
    assert kds_readers(snapshot, AuditOptions()).status is CheckStatus.NOT_RUN  # type: ignore[arg-type]


def test_a_principal_s_effective_write_counts_its_whole_token() -> None:
    """sensitive-write asks what the account itself may write: allows of any SID of its token,
    minus denies of any SID of it (a deny to one of its groups takes a right another group gave)."""
    from credo.ad.security import ADS_RIGHT_DS_WRITE_PROP as WP
    from credo.audit.acl import any_effective_write, effective_rights

    writers, blocked, account = "S-1-5-21-1-2-3-2001", "S-1-5-21-1-2-3-2002", "S-1-5-21-1-2-3-2003"
    member = object_ace(True, 0, WP, writers, "bf9679c0-0de6-11d0-a285-00aa003049e2")
    denied = object_ace(False, 0, WP, blocked, "bf9679c0-0de6-11d0-a285-00aa003049e2")
    descriptor = sd(denied, member)
    assert any_effective_write(descriptor, {account, writers}) == WP
    assert any_effective_write(descriptor, {account, writers, blocked}) == 0
    assert effective_rights(descriptor, {account, writers}) == 0  # scoped to member, not the object
    assert effective_rights(descriptor, {DA}) & WRITE_DAC  # the owner
