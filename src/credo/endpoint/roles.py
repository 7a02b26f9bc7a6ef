"""Which roles apply to a user, and the effective capability they merge into (JEA's RoleDefinitions).

A role definition maps an AD group to capability names. It applies when the user's token holds
the group: a SID matches a SID of the token (tokenGroups: nested groups count, the primary group
too); ``DOMAIN\\name`` matches the token's group of that name in that NetBIOS domain; a bare
``name`` matches the token's group of that name (the token's names come from the endpoint's own
domain, so a bare name never matches a foreign group). Names compare case-insensitively, as AD
compares sAMAccountName. ``required_groups`` is checked first, over the same token (JEA's
RequiredGroups: gates access only, grants nothing).

Several applying roles merge as JEA documents (PowerShell-Docs, ``role-capabilities.md``, "How
role capabilities are merged"), rule by rule, with credo's decisions where JEA's differ:

1. A command granted by one role keeps that role's constraints; a command granted with identical
   constraints by several roles stays as it is (its grant lists every role).
2. The parameter lists of one command in several roles are unioned: a parameter any of them
   declares may be given. A parameter is required only if every role's entry requires it (a role
   whose entry lacks it grants the command without it). JEA's "an unconstrained entry allows all
   parameters" has no counterpart: credo has no entry that takes undeclared arguments (that is the
   sudo argument-wildcard pitfall), so every accepted argument is declared by some role.
3. A value constraint in one role plus the same parameter unconstrained (``type = "text"``) in
   another: **decided as union**. A value is accepted when any role's constraint accepts it, so
   the unconstrained entry accepts what the constrained one would refuse: the constraint is
   effectively dropped, as JEA documents. `credo endpoint capability` shows both, and lint warns
   about the unconstrained one.
4. Several sets are unioned; several patterns accept a value that fully matches any of them (the
   same union, whatever the kinds: int ranges, path prefixes and account kinds too).
5. A set in one role plus a pattern in another: **decided as union, unlike JEA's documentation**
   (which ignores the set). Dropping the set would take away values one role grants because
   another role grants more; credo's merge only ever adds, so a value in the set *or* matching the
   pattern is accepted. (The research notes that PowerShell's source does not obviously
   implement JEA's rule 5 either.)

Commands of one name in several capabilities must run the same program in the same way and
spell each parameter the same (the definition loader refuses the file otherwise), so a merged
command is always well defined. The effective commands are sorted by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from credo.ad.sids import is_sid
from credo.endpoint.definition import (
    Command,
    Constraint,
    EndpointDefinition,
    GroupRule,
    Parameter,
    RoleDefinition,
)

__all__ = [
    "EffectiveCapability",
    "EffectiveCommand",
    "UserToken",
    "applicable_roles",
    "effective_capability",
    "group_matches",
    "merge_commands",
    "required_groups_met",
]


@dataclass(frozen=True)
class UserToken:
    """Who connects: the AD principal and its token (SIDs, and NETBIOS\\name of each)."""

    principal: str  # e.g. CORP\\jdoe
    sid: str | None = None
    group_sids: frozenset[str] = frozenset()  # tokenGroups plus the user's own SID
    group_names: frozenset[str] = frozenset()  # NETBIOS\\name of the groups the directory names

    @classmethod
    def of(cls, principal: str, groups: Iterable[str], sid: str | None = None) -> UserToken:
        """A token from a mixed list of SIDs and names (tests, and `capability` from a file)."""
        items = list(groups)
        return cls(
            principal,
            sid,
            frozenset(g for g in items if is_sid(g)) | ({sid} if sid else frozenset()),
            frozenset(g for g in items if not is_sid(g)),
        )


def group_matches(group: str, token: UserToken) -> bool:
    """Does ``group`` (a SID, DOMAIN\\name or name) name a group of ``token``?"""
    if is_sid(group):
        return group.upper() in {s.upper() for s in token.group_sids}
    wanted = group.lower()
    for name in token.group_names:
        lowered = name.lower()
        if "\\" in wanted:
            if lowered == wanted:
                return True
        elif lowered.rsplit("\\", 1)[-1] == wanted:
            return True
    return False


def required_groups_met(rule: GroupRule | None, token: UserToken) -> bool:
    """JEA RequiredGroups: ``and`` needs every item, ``or`` any; no rule admits everyone."""
    if rule is None:
        return True
    if rule.op == "group":
        return group_matches(str(rule.group), token)
    results = (required_groups_met(item, token) for item in rule.items)
    return all(results) if rule.op == "and" else any(results)


def applicable_roles(definition: EndpointDefinition, token: UserToken) -> tuple[RoleDefinition, ...]:
    """The role definitions whose group the token holds, in file order."""
    return tuple(role for role in definition.roles if group_matches(role.group, token))


@dataclass(frozen=True)
class EffectiveCommand:
    """A command as the user may run it: merged over every role that grants it."""

    command: Command
    roles: tuple[str, ...]  # the groups (role definition keys) that grant it
    capabilities: tuple[str, ...]  # the capabilities it comes from

    @property
    def name(self) -> str:
        return self.command.name


@dataclass(frozen=True)
class EffectiveCapability:
    endpoint: str
    principal: str
    admitted: bool  # the required groups hold and some role applies
    reason: str | None  # why not admitted
    roles: tuple[RoleDefinition, ...]
    commands: tuple[EffectiveCommand, ...]
    run_as: str | None
    user: str

    def command(self, name: str) -> EffectiveCommand | None:
        return next((c for c in self.commands if c.name == name), None)

    @property
    def role_names(self) -> tuple[str, ...]:
        return tuple(role.group for role in self.roles)


def _same(a: Constraint, b: Constraint) -> bool:
    return dataclasses.replace(a, where="") == dataclasses.replace(b, where="")


def merge_commands(entries: list[Command]) -> Command:
    """One command from the entries of several roles (rules 1-5 of the module docstring)."""
    first = entries[0]
    if len(entries) == 1:
        return first
    by_name: dict[str, Parameter] = {}
    present: dict[str, int] = {}
    required: dict[str, bool] = {}
    for entry in entries:
        for p in entry.parameters:
            present[p.name] = present.get(p.name, 0) + 1
            required[p.name] = required.get(p.name, True) and p.required
            known = by_name.get(p.name)
            if known is None:
                by_name[p.name] = p
                continue
            extra = tuple(c for c in p.constraints if not any(_same(c, k) for k in known.constraints))
            by_name[p.name] = dataclasses.replace(
                known,
                constraints=known.constraints + extra,
                aliases=tuple(dict.fromkeys(known.aliases + p.aliases)),
            )
    longest = max((e.positionals for e in entries), key=len)
    options = [p for p in by_name.values() if not p.positional]
    ordered = [by_name[p.name] for p in longest] + options
    merged = tuple(
        dataclasses.replace(p, required=required[p.name] and present[p.name] == len(entries)) for p in ordered
    )
    # A required positional after an optional one would be ambiguous: make the later ones optional.
    fixed: list[Parameter] = []
    optional_seen = False
    for p in merged:
        if p.positional:
            if optional_seen and p.required:
                p = dataclasses.replace(p, required=False)
            optional_seen = optional_seen or not p.required
        fixed.append(p)
    return dataclasses.replace(first, parameters=tuple(fixed))


def effective_capability(definition: EndpointDefinition, token: UserToken) -> EffectiveCapability:
    """What ``token`` may run on this endpoint (Get-PSSessionCapability)."""
    roles = applicable_roles(definition, token)
    reason = None
    if not required_groups_met(definition.required_groups, token):
        assert definition.required_groups is not None
        reason = f"{token.principal} is not in the required groups {definition.required_groups.describe()}"
    elif not roles:
        reason = f"no role of endpoint {definition.name} applies to {token.principal}"
    if reason is not None:
        return EffectiveCapability(
            definition.name, token.principal, False, reason, roles, (), definition.run_as, definition.user
        )
    grants: dict[str, list[tuple[Command, str, str]]] = {}
    for role in roles:
        for cap_name in role.capabilities:
            for command in definition.capability(cap_name).commands:
                grants.setdefault(command.name, []).append((command, role.group, cap_name))
    commands = []
    for name in sorted(grants):
        entries = grants[name]
        unique: list[Command] = []
        for command, _, _ in entries:
            if not any(command is u for u in unique):
                unique.append(command)
        commands.append(
            EffectiveCommand(
                merge_commands(unique),
                tuple(dict.fromkeys(g for _, g, _ in entries)),
                tuple(dict.fromkeys(c for _, _, c in entries)),
            )
        )
    return EffectiveCapability(
        definition.name,
        token.principal,
        True,
        None,
        roles,
        tuple(commands),
        definition.run_as,
        definition.user,
    )
