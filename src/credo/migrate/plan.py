"""``credo migrate plan``: the move of a password-based user service account to a gMSA, read from
the directory and written down before anything changes.

Microsoft's "Move to a gMSA" steps, made exact for one account:

1. create the gMSA: readable by the hosts that run the service, AES only, the user's constrained
   delegation (msDS-AllowedToDelegateTo, and protocol transition if the user has it; MS-SFU
   3.2.5.2). Unconstrained delegation is never copied: it is named, and the audit calls it
   critical on a gMSA as on a user.
2. add the gMSA to the user's non-privileged groups (direct memberships: nested ones follow).
   Privileged ones (Domain Admins...: credo.ad.sids) are named and not copied unless
   ``keep_privileged``: a service rarely needs them, and a gMSA in them is what the audit's
   privileged-group check reports.
3. move each SPN from the user to the gMSA. An SPN may be registered on one account only
   (MS-KILE 3.3.5.1.1: a KDC that finds two refuses the ticket), so each is removed from the
   user and then added to the gMSA; in between, no account has it.
4. on each host: the agent's [[account]] (a keytab with the SPNs, for a service that accepts
   Kerberos) and the systemd unit (a ccache, for a service that acts as a client), then the
   service is restarted on them. These are printed, for the host's admin; credo does not log
   on to hosts.

The plan is a JSON document (``MigrationPlan.to_json``) that ``credo migrate apply`` performs
(credo.migrate.apply). It holds names, SIDs and DNs, never a secret.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import ldap

from credo.accounts.principals import resolve_computer
from credo.accounts.validation import validate_dns_host_name
from credo.ad.connection import Directory
from credo.ad.names import dns_domain_of, escape_filter_value, validate_account_name
from credo.ad.security import sid_from_bytes
from credo.ad.sids import privileged_group_sids
from credo.errors import InputError, NotFoundError
from credo.names import gmsa_name_for_user

__all__ = [
    "PLAN_VERSION",
    "GroupRef",
    "MigrationPlan",
    "make_plan",
    "plan_summary",
    "render_plan",
]

PLAN_VERSION = 1
# userAccountControl bits (MS-ADTS 2.2.16).
UF_ACCOUNTDISABLE = 0x0002
UF_TRUSTED_FOR_DELEGATION = 0x80000
UF_TRUSTED_TO_AUTH_FOR_DELEGATION = 0x1000000
_USER_ATTRIBUTES = [
    "sAMAccountName", "objectSid", "objectClass", "servicePrincipalName", "memberOf", "userAccountControl",
    "msDS-AllowedToDelegateTo", "msDS-SupportedEncryptionTypes", "description",
]  # fmt: skip


@dataclass(frozen=True)
class GroupRef:
    dn: str
    name: str
    sid: str


@dataclass(frozen=True)
class MigrationPlan:
    """What ``apply`` does, in order (see the module docstring). Plain data; JSON both ways."""

    user: str  # sAMAccountName
    user_dn: str
    user_sid: str
    gmsa: str  # sAMAccountName without the $
    gmsa_dns_host_name: str
    hosts: tuple[GroupRef, ...]  # the computers allowed to retrieve the password
    spns: tuple[str, ...]
    groups: tuple[GroupRef, ...]  # copied
    privileged_groups: tuple[GroupRef, ...]  # named; copied only with keep_privileged
    keep_privileged: bool
    delegate_to: tuple[str, ...]
    protocol_transition: bool
    unconstrained_delegation: bool  # the user's; never copied
    base_dn: str
    created_at: str
    version: int = PLAN_VERSION
    warnings: tuple[str, ...] = field(default=())

    @property
    def copied_groups(self) -> tuple[GroupRef, ...]:
        return self.groups + (self.privileged_groups if self.keep_privileged else ())

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "the plan") -> MigrationPlan:
        """Read a plan written by ``to_json``; anything else is an InputError naming what is wrong."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{source} is not JSON: {exc.msg} at line {exc.lineno}") from None
        if not isinstance(data, dict) or data.get("version") != PLAN_VERSION:
            raise InputError(
                f"{source} is not a credo migration plan (version {PLAN_VERSION})",
                hint="write one with `credo migrate plan USER --hosts H1,H2 --out PLAN`",
            )
        try:
            refs = {
                key: tuple(GroupRef(**g) for g in data[key])
                for key in ("hosts", "groups", "privileged_groups")
            }
            plan = cls(**{**data, **refs, "spns": tuple(data["spns"]), "delegate_to": tuple(data["delegate_to"]),
                          "warnings": tuple(data.get("warnings", ()))})  # fmt: skip
        except (TypeError, KeyError) as exc:
            raise InputError(f"{source} is not a complete migration plan: {exc}") from None
        for text_field in (plan.user, plan.gmsa, plan.user_dn, plan.base_dn, *plan.spns):
            if not isinstance(text_field, str) or not text_field or "\n" in text_field:
                raise InputError(f"{source} has an invalid value: {text_field!r}")
        return plan


def _text(attrs: dict[str, list[bytes]], name: str) -> str | None:
    values = attrs.get(name)
    return values[0].decode() if values else None


def _domain_sid(directory: Directory) -> str:
    entry = directory.search_one(directory.base_dn, ldap.SCOPE_BASE, "(objectClass=*)", ["objectSid"])
    raw = entry[1].get("objectSid") if entry else None
    if not raw:
        raise NotFoundError(f"cannot read the domain's SID at {directory.base_dn}")
    return sid_from_bytes(raw[0])[0]


def _group(directory: Directory, dn: str) -> GroupRef:
    entry = directory.search_one(dn, ldap.SCOPE_BASE, "(objectClass=group)", ["sAMAccountName", "objectSid"])
    if entry is None or not entry[1].get("objectSid"):
        raise NotFoundError(f"cannot read the group {dn}")
    return GroupRef(
        dn=entry[0],
        name=_text(entry[1], "sAMAccountName") or dn,
        sid=sid_from_bytes(entry[1]["objectSid"][0])[0],
    )


def make_plan(
    directory: Directory,
    user: str,
    hosts: list[str],
    *,
    name: str | None = None,
    keep_privileged: bool = False,
    now: datetime | None = None,
) -> MigrationPlan:
    """Read the user, its groups and the hosts, and write the move down (nothing is changed)."""
    sam = validate_account_name(user.rstrip("$"))
    if not hosts:
        raise InputError(
            "a migration needs --hosts", hint="name the computers that run the service: --hosts H1,H2"
        )
    entry = directory.search_one(
        directory.base_dn, ldap.SCOPE_SUBTREE,
        f"(&(objectCategory=person)(objectClass=user)(sAMAccountName={escape_filter_value(sam)}))", _USER_ATTRIBUTES,
    )  # fmt: skip
    if entry is None:
        raise NotFoundError(
            f"no user account {sam!r}", hint="give the sAMAccountName of the service's user account"
        )
    user_dn, attrs = entry
    classes = {c.decode().lower() for c in attrs.get("objectClass", [])}
    if "computer" in classes or "msds-groupmanagedserviceaccount" in classes:
        raise InputError(f"{sam} is not a user account", hint="credo migrate moves user service accounts")
    gmsa = validate_account_name((name or gmsa_name_for_user(sam)).rstrip("$"))
    if len(gmsa) > 15:
        raise InputError(f"gMSA name {gmsa!r} is longer than 15 characters", hint="give a shorter --name")
    existing = directory.search_one(
        directory.base_dn, ldap.SCOPE_SUBTREE, f"(sAMAccountName={escape_filter_value(gmsa)}$)", ["cn"]
    )
    if existing is not None:
        raise InputError(f"{gmsa}$ already exists ({existing[0]})", hint="choose another --name")
    dns_domain = dns_domain_of(directory.base_dn)
    dns_host_name = validate_dns_host_name(f"{gmsa}.{dns_domain}".lower())
    host_refs = []
    for host in hosts:
        computer = resolve_computer(directory, host)
        host_refs.append(GroupRef(dn=computer.dn, name=computer.sam_account_name, sid=computer.sid))
    privileged = privileged_group_sids(_domain_sid(directory))
    groups: list[GroupRef] = []
    privileged_groups: list[GroupRef] = []
    for dn in sorted(v.decode() for v in attrs.get("memberOf", [])):
        group = _group(directory, dn)
        (privileged_groups if group.sid in privileged else groups).append(group)
    uac = int(_text(attrs, "userAccountControl") or 0)
    spns = tuple(v.decode() for v in attrs.get("servicePrincipalName", []))
    warnings = []
    if uac & UF_TRUSTED_FOR_DELEGATION:
        warnings.append(
            f"{sam} is trusted for unconstrained delegation: not copied (any user's TGT would land on the "
            "gMSA's hosts); give the gMSA constrained delegation to the services it needs instead"
        )
    if not spns:
        warnings.append(f"{sam} has no SPN: the service acts as a client only (a ccache, no keytab)")
    if privileged_groups and not keep_privileged:
        names = ", ".join(g.name for g in privileged_groups)
        warnings.append(f"privileged group(s) not copied: {names} (--keep-privileged copies them)")
    return MigrationPlan(
        user=_text(attrs, "sAMAccountName") or sam,
        user_dn=user_dn,
        user_sid=sid_from_bytes(attrs["objectSid"][0])[0],
        gmsa=gmsa,
        gmsa_dns_host_name=dns_host_name,
        hosts=tuple(host_refs),
        spns=spns,
        groups=tuple(groups),
        privileged_groups=tuple(privileged_groups),
        keep_privileged=keep_privileged,
        delegate_to=tuple(v.decode() for v in attrs.get("msDS-AllowedToDelegateTo", [])),
        protocol_transition=bool(uac & UF_TRUSTED_TO_AUTH_FOR_DELEGATION),
        unconstrained_delegation=bool(uac & UF_TRUSTED_FOR_DELEGATION),
        base_dn=directory.base_dn,
        created_at=(now or datetime.now(UTC)).isoformat(),
        warnings=tuple(warnings),
    )


def render_plan(plan: MigrationPlan) -> str:
    """The plan for a person: every step, in the order apply takes them, and the hosts' part."""
    lines = [f"Move {plan.user} ({plan.user_dn}) to the gMSA {plan.gmsa}$", ""]
    hosts = ", ".join(h.name for h in plan.hosts)
    delegation = ""
    if plan.delegate_to:
        delegation = f"; may delegate to {', '.join(plan.delegate_to)}" + (
            " (with protocol transition)" if plan.protocol_transition else ""
        )
    lines.append(
        f"1. create {plan.gmsa}$ (dNSHostName {plan.gmsa_dns_host_name}, AES only), "
        f"its password readable by {hosts}{delegation}"
    )
    step = 2
    for group in plan.copied_groups:
        lines.append(f"{step}. add {plan.gmsa}$ to {group.name}")
        step += 1
    for group in () if plan.keep_privileged else plan.privileged_groups:
        lines.append(f"   (not copied: {group.name}, a privileged group)")
    for spn in plan.spns:
        lines.append(f"{step}. move SPN {spn} from {plan.user} to {plan.gmsa}$")
        step += 1
    lines += ["", "Then on each host (" + hosts + "), as root:"]
    keytab = f"/etc/credo/{plan.gmsa}.keytab"
    spns = ", ".join(f'"{s}"' for s in plan.spns)
    lines += [
        "  a. the agent keeps the gMSA's keys (add to /etc/credo/agent.toml, then systemctl reload credo-agent):",
        "       [[account]]",
        f'       name = "{plan.gmsa}"',
        '       allow_users = ["<the service\'s local user>"]',
    ]
    if plan.spns:
        lines += ["       [[account.keytab]]", f'       path = "{keytab}"', f"       spns = [{spns}]",
                  "     and point the service at that keytab (it accepts Kerberos for the SPNs above)."]  # fmt: skip
    lines += [
        "  b. a service that acts as the account (a client) runs with its ccache:",
        f"       credo systemd service <service> --as {plan.gmsa} --user <local user> --install -- <its command>",
        "  c. restart the service; check it works; keep the old user enabled until then.",
        "",
        f"credo migrate apply PLAN     performs steps 1-{step - 1}, undoing them all if one fails",
        "credo migrate rollback PLAN  undoes a completed move",
        f"credo migrate finish PLAN    disables {plan.user} once the service runs on the gMSA",
    ]
    lines += [f"warning: {w}" for w in plan.warnings]
    return "\n".join(lines) + "\n"


def plan_summary(plan: MigrationPlan) -> dict[str, Any]:
    return asdict(plan)
