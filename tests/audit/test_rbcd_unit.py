"""The rbcd check's cases on an in-memory snapshot: which hosts count as sensitive, how a managed
service account is matched (itself, a group it is in, a deny), and when the check cannot tell."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from credo.ad.security import (
    ACCESS_ALLOWED_ACE_TYPE,
    ACCESS_DENIED_ACE_TYPE,
    FULL_CONTROL,
    Ace,
    SecurityDescriptor,
)
from credo.audit.checks.base import AuditOptions
from credo.audit.checks.rbcd import rbcd
from credo.audit.findings import CheckOutcome, CheckStatus, Severity
from credo.audit.snapshot import (
    AccountRecord,
    DelegationTarget,
    GroupRecord,
    Principal,
    SecuredObject,
    Snapshot,
)
from credo.gmsa.account import ManagedServiceAccount

BASE = "DC=lab,DC=test"
D = "S-1-5-21-1-2-3"
GMSA = f"{D}-1105"
WORKER2 = f"{D}-1104"
TIER0 = f"{D}-1200"  # a group nested in Administrators
FRONTENDS = f"{D}-1201"  # a group the gMSA is in
ADMINISTRATORS = "S-1-5-32-544"
AUTHENTICATED_USERS = "S-1-5-11"
# Authenticated Users: ReadProperty, List, ListObject, ReadControl (the classes' default DACL).
READABLE = SecurityDescriptor(
    f"{D}-512", None, (Ace(ACCESS_ALLOWED_ACE_TYPE, 0, 0x20094, AUTHENTICATED_USERS),)
)


def allow(*sids: str, deny: tuple[str, ...] = ()) -> SecurityDescriptor:
    denies = tuple(Ace(ACCESS_DENIED_ACE_TYPE, 0, FULL_CONTROL, s) for s in deny)
    allows = tuple(Ace(ACCESS_ALLOWED_ACE_TYPE, 0, FULL_CONTROL, s) for s in sids)
    return SecurityDescriptor(ADMINISTRATORS, None, denies + allows)


def gmsa(
    rbcd_sd: SecurityDescriptor | None = None, sd: SecurityDescriptor | None = READABLE
) -> AccountRecord:
    account = ManagedServiceAccount(
        dn=f"CN=svcweb,CN=Managed Service Accounts,{BASE}", sam_account_name="svcweb$", sid=GMSA,
        group_managed=True, enabled=True, dns_host_name=None, spns=(), allowed_sids=(WORKER2,),
        supported_enctypes=24, interval_days=30, kvno=1, password_id=None, previous_password_id=None,
        when_created=None, password_last_set=None, description=None, linked_computers=(),
    )  # fmt: skip
    return AccountRecord(
        account, 0x1000, None, sd, (f"CN=Frontends,CN=Users,{BASE}",), f"{D}-515", None, (), rbcd_sd
    )


def host(
    rbcd_sd: SecurityDescriptor,
    *,
    is_dc: bool = False,
    member_of: tuple[str, ...] = (),
    admin_count: bool = False,
) -> DelegationTarget:
    name = "DC1" if is_dc else "APP1"
    return DelegationTarget(
        dn=f"CN={name},OU=Servers,{BASE}", name=f"{name}$", sid=f"{D}-1300", is_dc=is_dc, member_of=member_of,
        primary_group_sid=f"{D}-{516 if is_dc else 515}", admin_count=admin_count, allowed_to_act=rbcd_sd,
    )  # fmt: skip


def snapshot(
    account: AccountRecord,
    targets: Sequence[DelegationTarget] = (),
    dc_sd: SecurityDescriptor | None = READABLE,
) -> Snapshot:
    groups = {
        f"cn=tier0,cn=users,{BASE}".lower(): GroupRecord(
            f"CN=Tier0,CN=Users,{BASE}", TIER0, "Tier0", (f"CN=Administrators,CN=Builtin,{BASE}",)
        ),
        f"cn=administrators,cn=builtin,{BASE}".lower(): GroupRecord(
            f"CN=Administrators,CN=Builtin,{BASE}", ADMINISTRATORS, "Administrators", ()
        ),
        f"cn=frontends,cn=users,{BASE}".lower(): GroupRecord(
            f"CN=Frontends,CN=Users,{BASE}", FRONTENDS, "Frontends", ()
        ),
    }
    principals = {
        GMSA: Principal(GMSA, "LAB\\svcweb$", "msa", account.dn),
        WORKER2: Principal(WORKER2, "LAB\\WORKER2$", "computer", f"CN=WORKER2,CN=Computers,{BASE}"),
        FRONTENDS: Principal(FRONTENDS, "LAB\\Frontends", "group", f"CN=Frontends,CN=Users,{BASE}"),
        AUTHENTICATED_USERS: Principal(
            AUTHENTICATED_USERS, "NT AUTHORITY\\Authenticated Users", "well-known"
        ),
    }
    return Snapshot(
        base_dn=BASE, domain_sid=D, netbios="LAB", identity="LAB\\WORKER1$",
        caller_sids=frozenset({f"{D}-1103", "S-1-1-0", AUTHENTICATED_USERS}), accounts=[account], groups=groups,
        sensitive=[SecuredObject(f"CN=DC1,OU=Domain Controllers,{BASE}", "DC1$", "domain controller", dc_sd)],
        kds_keys=[], kds_keys_readable=True, now=datetime.now(UTC), principals=principals,
        delegation_targets=list(targets),
    )  # fmt: skip


def run(snap: Snapshot) -> CheckOutcome:
    return rbcd(snap, AuditOptions())


def test_nothing_set_passes() -> None:
    assert run(snapshot(gmsa())).status is CheckStatus.PASSED


def test_set_on_the_gmsa_is_high_and_an_emptied_descriptor_is_not() -> None:
    (finding,) = run(snapshot(gmsa(allow(WORKER2)))).findings
    assert finding.severity is Severity.HIGH and finding.subject_name == "svcweb$"
    assert finding.fix_credo.startswith("samba-tool delegation del-principal 'svcweb$' 'WORKER2$'")
    # samba-tool del-principal leaves the descriptor with an empty DACL: nobody is allowed.
    assert run(snapshot(gmsa(allow()))).status is CheckStatus.PASSED


def test_a_dc_naming_the_gmsa_directly_or_through_a_group_is_critical() -> None:
    (direct,) = run(snapshot(gmsa(), [host(allow(GMSA, WORKER2), is_dc=True)])).findings
    assert direct.severity is Severity.CRITICAL and direct.subject_name == "DC1$"
    assert direct.objects[1].detail == "named directly; password readers: LAB\\WORKER2$"
    assert (
        direct.fix_powershell
        == "Set-ADComputer -Identity 'DC1' -PrincipalsAllowedToDelegateToAccount 'WORKER2$'"
    )
    (grouped,) = run(snapshot(gmsa(), [host(allow(FRONTENDS), is_dc=True)])).findings
    assert grouped.objects[1].detail.startswith("through LAB\\Frontends")
    assert grouped.fix_credo.startswith("samba-tool delegation del-principal 'DC1$' 'Frontends'")
    assert grouped.fix_powershell.endswith("-PrincipalsAllowedToDelegateToAccount $null")
    # Authenticated Users holds every account: the gMSA too.
    (broad,) = run(snapshot(gmsa(), [host(allow(AUTHENTICATED_USERS), is_dc=True)])).findings
    assert "samba-tool can name" in broad.fix_credo


def test_privileged_computers_count_ordinary_ones_do_not() -> None:
    nested = host(allow(GMSA), member_of=(f"CN=Tier0,CN=Users,{BASE}",))
    (finding,) = run(snapshot(gmsa(), [nested])).findings
    assert finding.objects[0].role == "privileged computer"
    assert finding.objects[0].detail.startswith("member of Administrators (through Tier0)")
    (protected,) = run(snapshot(gmsa(), [host(allow(GMSA), admin_count=True)])).findings
    assert "adminCount=1" in protected.message
    # RBCD's own use case: a front-end gMSA allowed by an ordinary back end.
    assert run(snapshot(gmsa(), [host(allow(GMSA))])).status is CheckStatus.PASSED


def test_a_deny_through_a_group_takes_the_delegation_away() -> None:
    denied = host(allow(GMSA, deny=(FRONTENDS,)), is_dc=True)
    assert run(snapshot(gmsa(), [denied])).status is CheckStatus.PASSED


def test_unreadable_descriptors_make_it_incomplete_not_passed() -> None:
    result = run(snapshot(gmsa(), dc_sd=None))
    assert result.status is CheckStatus.INCOMPLETE and "DC1$" in (result.reason or "")
    # The DACL denies the caller ReadProperty on the attribute (schemaIDGUID 3f78c3e5-...).
    from credo.ad.security import ADS_RIGHT_DS_READ_PROP, object_ace

    no_read = SecurityDescriptor(
        READABLE.owner, None,
        (object_ace(False, 0, ADS_RIGHT_DS_READ_PROP, AUTHENTICATED_USERS, "3f78c3e5-f79a-46bd-a0b8-9d18116ddc79"),
         *(READABLE.dacl or ())),
    )  # fmt: skip
    result = run(snapshot(gmsa(sd=no_read)))
    assert result.status is CheckStatus.INCOMPLETE and "svcweb$" in (result.reason or "")
