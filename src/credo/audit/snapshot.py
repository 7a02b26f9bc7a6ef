"""The directory as the audit sees it, read once: accounts, groups, sensitive objects, KDS root keys.

Every check works on this snapshot, so a full audit costs a handful of (paged) searches however
many accounts there are: nested group membership is computed from memberOf in memory rather than
with one LDAP_MATCHING_RULE_IN_CHAIN query per account. Security descriptors are requested with
the SD_FLAGS control (owner, group, DACL: MS-ADTS 3.1.1.3.4.1.11), which any authenticated user
may use; what the caller may not read is recorded as ``None`` so checks can say "not run".
KDS root key data (msKds-RootKeyData) is never requested: the audit evaluates who may read it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

import ldap

from credo.ad.connection import SD_FLAGS_OWNER_GROUP_DACL, SD_FLAGS_SACL, Directory, Entry
from credo.ad.names import escape_filter_value
from credo.ad.security import SecurityDescriptor, access_entries, sid_from_bytes
from credo.ad.sids import (  # the one home of SID tables; re-exported for the checks
    RID_DOMAIN_ADMINS as RID_DOMAIN_ADMINS,
)
from credo.ad.sids import (
    RID_DOMAIN_COMPUTERS as RID_DOMAIN_COMPUTERS,
)
from credo.ad.sids import (
    RID_DOMAIN_CONTROLLERS as RID_DOMAIN_CONTROLLERS,
)
from credo.ad.sids import (
    RID_DOMAIN_USERS as RID_DOMAIN_USERS,
)
from credo.ad.sids import (
    RID_ENTERPRISE_ADMINS as RID_ENTERPRISE_ADMINS,
)
from credo.ad.sids import (
    RID_SCHEMA_ADMINS as RID_SCHEMA_ADMINS,
)
from credo.ad.sids import (
    SID_ACCOUNT_OPERATORS as SID_ACCOUNT_OPERATORS,
)
from credo.ad.sids import (
    SID_ADMINISTRATORS as SID_ADMINISTRATORS,
)
from credo.ad.sids import (
    SID_SYSTEM as SID_SYSTEM,
)
from credo.ad.sids import privileged_group_sids as _privileged_group_sids
from credo.gmsa.account import ACCOUNT_ATTRIBUTES, GMSA_CLASS, SMSA_CLASS, WELL_KNOWN, ManagedServiceAccount

__all__ = [
    "AccountRecord",
    "DelegationTarget",
    "GroupRecord",
    "KdsRootKey",
    "Principal",
    "SecuredObject",
    "Snapshot",
    "UserServiceRecord",
    "read_snapshot",
]

log = logging.getLogger(__name__)

EXTRA_ACCOUNT_ATTRIBUTES = (
    "nTSecurityDescriptor",
    "memberOf",
    "primaryGroupID",
    "lastLogonTimestamp",
    "lastLogon",
    "msDS-AllowedToDelegateTo",
    "msDS-AllowedToActOnBehalfOfOtherIdentity",
)
MSA_FILTER = f"(|(objectClass={GMSA_CLASS})(objectClass={SMSA_CLASS}))"
# userAccountControl bits (MS-ADTS 2.2.16).
UF_SERVER_TRUST_ACCOUNT = 0x2000
UF_DONT_EXPIRE_PASSWD = 0x10000
# User objects that may act as services (credo.audit.checks.user_accounts): people and service
# users, not computers nor MSAs (whose objectCategory is not person), that hold an SPN or a password
# that never expires; the check sorts out which of them are services. The filter keeps a domain of
# many people to the few candidates (LDAP_MATCHING_RULE_BIT_AND, MS-ADTS 3.1.1.3.4.4.1).
USER_SERVICE_FILTER = (
    "(&(objectCategory=person)(objectClass=user)(!(objectClass=computer))"
    f"(|(servicePrincipalName=*)(userAccountControl:1.2.840.113556.1.4.803:={UF_DONT_EXPIRE_PASSWD})))"
)
USER_SERVICE_ATTRIBUTES = (
    "sAMAccountName", "objectSid", "servicePrincipalName", "userAccountControl", "pwdLastSet",
    "msDS-SupportedEncryptionTypes", "memberOf", "primaryGroupID", "adminCount", "description",
    "lastLogonTimestamp",
)  # fmt: skip
KDS_CONTAINER = "CN=Master Root Keys,CN=Group Key Distribution Service,CN=Services"
CHUNK = 100


def _first(entry: Entry, name: str) -> bytes | None:
    values = entry[1].get(name)
    return values[0] if values else None


def _filetime(raw: bytes | None) -> datetime | None:
    if not raw or int(raw) <= 0:
        return None
    return datetime(1601, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(raw) // 10)


def _sd(entry: Entry) -> SecurityDescriptor | None:
    raw = _first(entry, "nTSecurityDescriptor")
    return SecurityDescriptor.unpack(raw) if raw else None


def _allowed_to_act(entry: Entry) -> SecurityDescriptor | None:
    raw = _first(entry, "msDS-AllowedToActOnBehalfOfOtherIdentity")
    return SecurityDescriptor.unpack(raw) if raw else None


@dataclass(frozen=True)
class AccountRecord:
    """A managed service account plus what the audit needs beyond ``ManagedServiceAccount``."""

    account: ManagedServiceAccount
    uac: int
    membership: SecurityDescriptor | None  # msDS-GroupMSAMembership; None when absent or unreadable
    sd: SecurityDescriptor | None  # nTSecurityDescriptor; None when unreadable
    member_of: tuple[str, ...]
    primary_group_sid: str | None
    last_logon: datetime | None
    delegate_to: tuple[str, ...]
    # msDS-AllowedToActOnBehalfOfOtherIdentity (RBCD, MS-SFU 3.2.5.2.2): who may act on behalf
    # of any user to the account's services; None when absent (or unreadable: checks.rbcd).
    allowed_to_act: SecurityDescriptor | None = None

    @property
    def dn(self) -> str:
        return self.account.dn

    @property
    def name(self) -> str:
        return self.account.sam_account_name


@dataclass(frozen=True)
class GroupRecord:
    dn: str
    sid: str
    name: str
    member_of: tuple[str, ...]


@dataclass(frozen=True)
class SecuredObject:
    """A sensitive object and its security descriptor (None when the caller cannot read it)."""

    dn: str
    name: str
    kind: str  # domain root, AdminSDHolder, GPO, privileged group, domain controller
    sd: SecurityDescriptor | None


@dataclass(frozen=True)
class KdsRootKey:
    dn: str
    key_id: str
    use_start: datetime | None  # None: not readable by the caller
    created: datetime | None
    sd: SecurityDescriptor | None


@dataclass(frozen=True)
class Principal:
    sid: str
    name: str
    kind: str  # user, computer, group, msa, well-known, unknown
    dn: str | None = None
    member_of: tuple[str, ...] = ()  # users and computers: their groups' DNs (direct)
    primary_group_sid: str | None = None


@dataclass(frozen=True)
class DelegationTarget:
    """A computer (managed service accounts aside) whose msDS-AllowedToActOnBehalfOfOtherIdentity
    is set: the principals its allow ACEs name may obtain tickets to its services as any user
    (resource-based constrained delegation, MS-SFU 3.2.5.2.2)."""

    dn: str
    name: str  # sAMAccountName
    sid: str
    is_dc: bool  # userAccountControl SERVER_TRUST_ACCOUNT
    member_of: tuple[str, ...]
    primary_group_sid: str | None
    admin_count: bool  # adminCount=1: protected by AdminSDHolder, so once privileged (MS-ADTS 3.1.1.6.1)
    allowed_to_act: SecurityDescriptor


@dataclass(frozen=True)
class UserServiceRecord:
    """A user object that holds an SPN or a never-expiring password (``USER_SERVICE_FILTER``)."""

    dn: str
    name: str  # sAMAccountName
    sid: str
    spns: tuple[str, ...]
    uac: int
    pwd_last_set: datetime | None  # None: never set, or "must change at next logon" (0)
    enctypes: int | None  # msDS-SupportedEncryptionTypes; None when unset
    member_of: tuple[str, ...]
    primary_group_sid: str | None
    admin_count: bool  # adminCount=1 (MS-ADA1 Admin-Count): in a protected group, now or once (AdminSDHolder)
    description: str = ""
    last_logon: datetime | None = None


@dataclass
class Snapshot:
    """Everything the checks read. Built by ``read_snapshot``; plain data afterwards."""

    base_dn: str
    domain_sid: str
    netbios: str
    identity: str
    caller_sids: frozenset[str]
    accounts: list[AccountRecord]
    groups: dict[str, GroupRecord]  # by DN (lower-case)
    sensitive: list[SecuredObject]
    kds_keys: list[KdsRootKey]
    kds_keys_readable: bool
    now: datetime
    principals: dict[str, Principal] = field(default_factory=dict)
    dns_admins_sid: str | None = None
    # SACLs of the gMSAs and KDS root keys, by DN (lower-case): None when the caller may not
    # read them (SD_FLAGS 0x8 takes SeSecurityPrivilege; others get no nTSecurityDescriptor).
    sacls: dict[str, SecurityDescriptor | None] = field(default_factory=dict)
    # User objects with an SPN or a never-expiring password (credo.audit.checks.user_accounts).
    users: list[UserServiceRecord] = field(default_factory=list)
    # Computers with msDS-AllowedToActOnBehalfOfOtherIdentity set (credo.audit.checks.rbcd).
    delegation_targets: list[DelegationTarget] = field(default_factory=list)

    @cached_property
    def groups_by_sid(self) -> dict[str, GroupRecord]:
        return {g.sid: g for g in self.groups.values()}

    def name_of(self, sid: str) -> str:
        principal = self.principals.get(sid)
        return principal.name if principal else sid

    def nested_groups(self, direct: Iterable[str], primary_sid: str | None = None) -> dict[str, list[str]]:
        """Every group reachable from the DNs in ``direct`` via memberOf, with the path to it.

        Returns ``{group DN (lower-case): [names from the account's first group to that group]}``;
        cycles (legal in AD) are cut by the visited set.
        """
        by_sid = self.groups_by_sid
        start = [dn.lower() for dn in direct]
        if primary_sid and primary_sid in by_sid:
            start.append(by_sid[primary_sid].dn.lower())
        paths: dict[str, list[str]] = {}
        queue: list[tuple[str, list[str]]] = []
        for dn in start:
            group = self.groups.get(dn)
            if group and dn not in paths:
                paths[dn] = [group.name]
                queue.append((dn, [group.name]))
        while queue:
            dn, path = queue.pop()
            for parent in self.groups[dn].member_of:
                key = parent.lower()
                parent_group = self.groups.get(key)
                if parent_group is None or key in paths:
                    continue
                paths[key] = [*path, parent_group.name]
                queue.append((key, paths[key]))
        return paths

    def token_of(self, sid: str) -> set[str]:
        """The SIDs whose deny ACEs apply to ``sid`` (credo.audit.acl): its groups, nested and
        primary included, and, for an account or group of a domain, Everyone and Authenticated
        Users. A group's token holds the groups it is nested in: a deny on those applies to its
        members."""
        sids = {sid}
        member_of: tuple[str, ...] = ()
        primary: str | None = None
        group = self.groups_by_sid.get(sid)
        if group is not None:
            member_of = group.member_of
        elif (account := self.accounts_by_sid.get(sid)) is not None:
            member_of, primary = account.member_of, account.primary_group_sid
        elif (principal := self.principals.get(sid)) is not None:
            member_of, primary = principal.member_of, principal.primary_group_sid
        for dn in self.nested_groups(member_of, primary):
            sids.add(self.groups[dn].sid)
        if sid.startswith("S-1-5-21-"):
            sids |= {"S-1-1-0", "S-1-5-11"}
        return sids

    @cached_property
    def accounts_by_sid(self) -> dict[str, AccountRecord]:
        return {r.account.sid: r for r in self.accounts}

    def token_sids(self, record: AccountRecord) -> set[str]:
        """The account's SID and those of all its groups, nested and primary included."""
        sids = {record.account.sid}
        for dn in self.nested_groups(record.member_of, record.primary_group_sid):
            sids.add(self.groups[dn].sid)
        return sids


def _caller(directory: Directory, netbios: str) -> tuple[str, frozenset[str]]:
    """``(NETBIOS\\name, SIDs of the caller's token)`` from the LDAP "who am I" and tokenGroups."""
    who = directory.whoami()
    identity = who[2:] if who.startswith("u:") else who
    sam = identity.split("\\", 1)[-1]
    entry = directory.search_one(
        directory.base_dn,
        ldap.SCOPE_SUBTREE,
        f"(sAMAccountName={escape_filter_value(sam)})",
        ["objectSid"],
    )
    sids = {"S-1-1-0", "S-1-5-11"}
    if entry is not None:
        token = directory.search(entry[0], ldap.SCOPE_BASE, "(objectClass=*)", ["objectSid", "tokenGroups"])
        for _dn, attrs in token:
            sids.update(sid_from_bytes(raw)[0] for raw in attrs.get("tokenGroups", []))
            own = attrs.get("objectSid")
            if own:
                sids.add(sid_from_bytes(own[0])[0])
    return identity or f"{netbios}\\?", frozenset(sids)


def _account(entry: Entry, domain_sid: str) -> AccountRecord:
    account = ManagedServiceAccount.from_entry(entry)
    membership_raw = _first(entry, "msDS-GroupMSAMembership")
    primary = _first(entry, "primaryGroupID")
    uac = _first(entry, "userAccountControl")
    logons = [
        t
        for t in (_filetime(_first(entry, "lastLogonTimestamp")), _filetime(_first(entry, "lastLogon")))
        if t
    ]
    return AccountRecord(
        account=account,
        uac=int(uac) if uac else 0,
        membership=SecurityDescriptor.unpack(membership_raw) if membership_raw else None,
        sd=_sd(entry),
        member_of=tuple(v.decode() for v in entry[1].get("memberOf", [])),
        primary_group_sid=f"{domain_sid}-{int(primary)}" if primary else None,
        last_logon=max(logons) if logons else None,
        delegate_to=tuple(v.decode() for v in entry[1].get("msDS-AllowedToDelegateTo", [])),
        allowed_to_act=_allowed_to_act(entry),
    )


def _user_service(entry: Entry, domain_sid: str) -> UserServiceRecord:
    dn, attrs = entry
    raw_sid = _first(entry, "objectSid")
    sam = _first(entry, "sAMAccountName")
    uac = _first(entry, "userAccountControl")
    primary = _first(entry, "primaryGroupID")
    enctypes = _first(entry, "msDS-SupportedEncryptionTypes")
    admin_count = _first(entry, "adminCount")
    description = _first(entry, "description")
    return UserServiceRecord(
        dn=dn,
        name=sam.decode() if sam else dn,
        sid=sid_from_bytes(raw_sid)[0] if raw_sid else "",
        spns=tuple(v.decode() for v in attrs.get("servicePrincipalName", [])),
        uac=int(uac) if uac else 0,
        pwd_last_set=_filetime(_first(entry, "pwdLastSet")),
        enctypes=int(enctypes) if enctypes is not None else None,
        member_of=tuple(v.decode() for v in attrs.get("memberOf", [])),
        primary_group_sid=f"{domain_sid}-{int(primary)}" if primary else None,
        admin_count=admin_count is not None and int(admin_count) != 0,
        description=description.decode() if description else "",
        last_logon=_filetime(_first(entry, "lastLogonTimestamp")),
    )


def read_snapshot(
    directory: Directory, *, now: datetime | None = None, groups_only: bool = False
) -> Snapshot:
    """Read what every check needs, in a few searches (paged where the set can be large).

    ``groups_only`` reads accounts and groups only (``credo audit memberships``).
    """
    base = directory.base_dn
    root = directory.search(
        base,
        ldap.SCOPE_BASE,
        "(objectClass=*)",
        ["objectSid", "nTSecurityDescriptor"],
        sd_flags=SD_FLAGS_OWNER_GROUP_DACL,
    )
    root_attrs = root[0][1] if root else {}
    domain_sid = sid_from_bytes(root_attrs["objectSid"][0])[0] if root_attrs.get("objectSid") else ""
    netbios = directory.netbios_name
    identity, caller_sids = _caller(directory, netbios)

    accounts = [
        _account(entry, domain_sid)
        for entry in directory.search_paged(
            base, ldap.SCOPE_SUBTREE, MSA_FILTER, [*ACCOUNT_ATTRIBUTES, *EXTRA_ACCOUNT_ATTRIBUTES],
            sd_flags=SD_FLAGS_OWNER_GROUP_DACL,
        )
    ]  # fmt: skip
    groups: dict[str, GroupRecord] = {}
    dns_admins_sid = None
    for dn, attrs in directory.search_paged(
        base, ldap.SCOPE_SUBTREE, "(objectClass=group)", ["objectSid", "sAMAccountName", "memberOf"]
    ):
        if not attrs.get("objectSid"):
            continue
        sid = sid_from_bytes(attrs["objectSid"][0])[0]
        name = attrs["sAMAccountName"][0].decode() if attrs.get("sAMAccountName") else dn
        groups[dn.lower()] = GroupRecord(dn, sid, name, tuple(v.decode() for v in attrs.get("memberOf", [])))
        if name.lower() == "dnsadmins" and sid.startswith(domain_sid + "-"):
            dns_admins_sid = sid

    snapshot = Snapshot(
        base_dn=base,
        domain_sid=domain_sid,
        netbios=netbios,
        identity=identity,
        caller_sids=caller_sids,
        accounts=accounts,
        groups=groups,
        sensitive=[],
        kds_keys=[],
        kds_keys_readable=False,
        now=now or datetime.now(UTC),
        dns_admins_sid=dns_admins_sid,
    )
    if groups_only:
        return snapshot
    snapshot.sensitive = _sensitive_objects(directory, snapshot, root_attrs)
    snapshot.kds_keys = _kds_keys(directory)
    snapshot.kds_keys_readable = bool(snapshot.kds_keys) and all(k.sd is not None for k in snapshot.kds_keys)
    snapshot.sacls = _sacls(directory, snapshot)
    users = directory.search_paged(base, ldap.SCOPE_SUBTREE, USER_SERVICE_FILTER, USER_SERVICE_ATTRIBUTES)
    snapshot.users = [_user_service(entry, domain_sid) for entry in users]
    snapshot.delegation_targets = _delegation_targets(directory, snapshot)
    _resolve_principals(directory, snapshot)
    return snapshot


def privileged_group_sids(snapshot: Snapshot) -> dict[str, str]:
    """SID -> name of the groups Microsoft's gMSA guidance calls privileged (see checks.privileges)."""
    return _privileged_group_sids(snapshot.domain_sid, snapshot.dns_admins_sid)


def _sensitive_objects(
    directory: Directory, snapshot: Snapshot, root_attrs: dict[str, list[bytes]]
) -> list[SecuredObject]:
    base = snapshot.base_dn
    found = [SecuredObject(base, snapshot.netbios, "domain root", _sd((base, root_attrs)))]
    flags = SD_FLAGS_OWNER_GROUP_DACL
    attrs = ["nTSecurityDescriptor", "displayName", "sAMAccountName", "objectSid"]
    for dn, entry in directory.search(
        f"CN=AdminSDHolder,CN=System,{base}", ldap.SCOPE_BASE, "(objectClass=*)", attrs, sd_flags=flags
    ):
        found.append(SecuredObject(dn, "AdminSDHolder", "AdminSDHolder", _sd((dn, entry))))
    for dn, entry in directory.search_paged(
        f"CN=Policies,CN=System,{base}",
        ldap.SCOPE_ONELEVEL,
        "(objectClass=groupPolicyContainer)",
        attrs,
        sd_flags=flags,
    ):
        name = entry["displayName"][0].decode() if entry.get("displayName") else dn.split(",")[0][3:]
        found.append(SecuredObject(dn, name, "GPO", _sd((dn, entry))))
    privileged = privileged_group_sids(snapshot)
    for group in snapshot.groups.values():
        if group.sid in privileged:
            for dn, entry in directory.search(
                group.dn, ldap.SCOPE_BASE, "(objectClass=*)", attrs, sd_flags=flags
            ):
                found.append(SecuredObject(dn, group.name, "privileged group", _sd((dn, entry))))
    dc_filter = (
        f"(&(objectClass=computer)(userAccountControl:1.2.840.113556.1.4.803:={UF_SERVER_TRUST_ACCOUNT}))"
    )
    for dn, entry in directory.search_paged(base, ldap.SCOPE_SUBTREE, dc_filter, attrs, sd_flags=flags):
        name = entry["sAMAccountName"][0].decode() if entry.get("sAMAccountName") else dn
        found.append(SecuredObject(dn, name, "domain controller", _sd((dn, entry))))
    return found


def _kds_keys(directory: Directory) -> list[KdsRootKey]:
    container = f"{KDS_CONTAINER},{directory.configuration_dn}"
    keys = []
    for dn, entry in directory.search(
        container, ldap.SCOPE_ONELEVEL, "(objectClass=*)",
        ["cn", "msKds-UseStartTime", "msKds-CreateTime", "nTSecurityDescriptor"],
        sd_flags=SD_FLAGS_OWNER_GROUP_DACL,
    ):  # fmt: skip
        keys.append(
            KdsRootKey(
                dn=dn,
                key_id=dn.split(",", 1)[0].split("=", 1)[1],
                use_start=_filetime(_first((dn, entry), "msKds-UseStartTime")),
                created=_filetime(_first((dn, entry), "msKds-CreateTime")),
                sd=_sd((dn, entry)),
            )
        )
    return keys


def _sacls(directory: Directory, snapshot: Snapshot) -> dict[str, SecurityDescriptor | None]:
    """The SACLs of the gMSAs and KDS root keys (credo.audit.checks.auditing), or None each."""
    found: dict[str, SecurityDescriptor | None] = {}
    gmsas = directory.search_paged(
        snapshot.base_dn, ldap.SCOPE_SUBTREE, f"(objectClass={GMSA_CLASS})", ["nTSecurityDescriptor"],
        sd_flags=SD_FLAGS_SACL,
    )  # fmt: skip
    keys = directory.search(
        f"{KDS_CONTAINER},{directory.configuration_dn}", ldap.SCOPE_ONELEVEL, "(objectClass=*)",
        ["nTSecurityDescriptor"], sd_flags=SD_FLAGS_SACL,
    )  # fmt: skip
    for dn, attrs in [*gmsas, *keys]:
        found[dn.lower()] = _sd((dn, attrs))
    return found


# Computers with an RBCD descriptor; managed service accounts are computers too (their classes
# derive from computer, MS-ADSC) and come with the accounts' own search.
DELEGATION_TARGET_FILTER = (
    f"(&(objectClass=computer)(msDS-AllowedToActOnBehalfOfOtherIdentity=*)(!{MSA_FILTER}))"
)
DELEGATION_TARGET_ATTRIBUTES = (
    "sAMAccountName", "objectSid", "userAccountControl", "memberOf", "primaryGroupID", "adminCount",
    "msDS-AllowedToActOnBehalfOfOtherIdentity",
)  # fmt: skip


def _delegation_targets(directory: Directory, snapshot: Snapshot) -> list[DelegationTarget]:
    """One paged search. A caller who may not read the attribute gets no match at all (the DC
    evaluates a filter with the caller's read rights): checks.rbcd tells that from "none set"."""
    found = []
    for entry in directory.search_paged(
        snapshot.base_dn, ldap.SCOPE_SUBTREE, DELEGATION_TARGET_FILTER, DELEGATION_TARGET_ATTRIBUTES
    ):
        descriptor = _allowed_to_act(entry)
        raw_sid = _first(entry, "objectSid")
        if descriptor is None or raw_sid is None:
            continue
        sam = _first(entry, "sAMAccountName")
        uac = _first(entry, "userAccountControl")
        primary = _first(entry, "primaryGroupID")
        admin_count = _first(entry, "adminCount")
        found.append(
            DelegationTarget(
                dn=entry[0],
                name=sam.decode() if sam else entry[0],
                sid=sid_from_bytes(raw_sid)[0],
                is_dc=bool(int(uac or 0) & UF_SERVER_TRUST_ACCOUNT),
                member_of=tuple(v.decode() for v in entry[1].get("memberOf", [])),
                primary_group_sid=f"{snapshot.domain_sid}-{int(primary)}" if primary else None,
                admin_count=bool(admin_count and int(admin_count) == 1),
                allowed_to_act=descriptor,
            )
        )
    return found


def _resolve_principals(directory: Directory, snapshot: Snapshot) -> None:
    """Names and kinds of every SID the checks may show, a hundred SIDs per search."""
    wanted: set[str] = set()
    for record in snapshot.accounts:
        if record.membership is not None:
            wanted.update(e.sid for e in access_entries(record.membership))
        if record.sd is not None:
            wanted.update(e.sid for e in access_entries(record.sd))
            if record.sd.owner:
                wanted.add(record.sd.owner)
    for key in snapshot.kds_keys:
        if key.sd is not None:
            wanted.update(e.sid for e in access_entries(key.sd))
    for record in snapshot.accounts:
        wanted.add(record.account.sid)
    # The principals RBCD descriptors name (credo.audit.checks.rbcd), and the computers themselves.
    for descriptor in [r.allowed_to_act for r in snapshot.accounts] + [
        t.allowed_to_act for t in snapshot.delegation_targets
    ]:
        if descriptor is not None:
            wanted.update(e.sid for e in access_entries(descriptor))
    wanted.update(t.sid for t in snapshot.delegation_targets)
    principals = snapshot.principals
    by_sid = snapshot.groups_by_sid
    for sid in list(wanted):
        if sid in WELL_KNOWN:
            principals[sid] = Principal(sid, WELL_KNOWN[sid], "well-known")
        elif sid in by_sid:
            group = by_sid[sid]
            principals[sid] = Principal(sid, f"{snapshot.netbios}\\{group.name}", "group", group.dn)
    for record in snapshot.accounts:
        principals[record.account.sid] = Principal(
            record.account.sid, f"{snapshot.netbios}\\{record.name}", "msa", record.dn
        )
    todo = sorted(s for s in wanted if s not in principals and s.startswith("S-1-5-21-"))
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start : start + CHUNK]
        # AD and Samba accept the string form of a SID in an objectSid assertion (MS-ADTS 3.1.1.3.1.2.4).
        filterstr = "(|" + "".join(f"(objectSid={escape_filter_value(s)})" for s in chunk) + ")"
        for dn, attrs in directory.search(
            snapshot.base_dn, ldap.SCOPE_SUBTREE, filterstr,
            ["objectSid", "sAMAccountName", "objectClass", "memberOf", "primaryGroupID"],
        ):  # fmt: skip
            if not attrs.get("objectSid"):
                continue
            sid = sid_from_bytes(attrs["objectSid"][0])[0]
            classes = {c.decode().lower() for c in attrs.get("objectClass", [])}
            kind = "computer" if "computer" in classes else "group" if "group" in classes else "user"
            sam = attrs["sAMAccountName"][0].decode() if attrs.get("sAMAccountName") else dn
            primary = _first((dn, attrs), "primaryGroupID")
            principals[sid] = Principal(
                sid, f"{snapshot.netbios}\\{sam}", kind, dn,
                tuple(v.decode() for v in attrs.get("memberOf", [])),
                f"{snapshot.domain_sid}-{int(primary)}" if primary else None,
            )  # fmt: skip
    for sid in wanted:
        principals.setdefault(sid, Principal(sid, sid, "unknown"))
