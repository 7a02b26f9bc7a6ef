"""Who may do what on the runbook server: roles granted to AD groups, on all or some runbooks and
worker groups (issue 15 point 2). Pure: the server resolves the caller's groups (tokenGroups, so
nested groups count) and asks here.

Roles and what they allow (each includes ``read``):

    reader     read: jobs, their output, runbooks, groups, workers, schedules, webhooks
    operator   + run: start, stop and resume jobs; create, pause and delete schedules
    author     + author: create, edit, publish and delete runbooks (not run them)
    admin      + admin: worker groups, role grants, API tokens, webhooks, the issuer, the audit log

A grant is (role, AD group, runbooks or all, worker groups or all). A request needs one grant whose
role allows the permission and whose scopes contain the request's runbook and worker group; what a
request does not name (listing all jobs, say) is filtered item by item with ``visible``. AWX's
complaint (#3561, #12634: roles that cannot say "may run these runbooks on those workers") is the
reason scopes are two independent sets.

A refusal names what is missing, for the 403 problem document: "needs role operator (or admin)
on runbook disable-user in worker group tier1".
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Decision", "Grant", "Permission", "Role", "allowed", "role_allows", "visible"]


class Permission(enum.StrEnum):
    READ = "read"
    RUN = "run"
    AUTHOR = "author"
    ADMIN = "admin"


class Role(enum.StrEnum):
    READER = "reader"
    OPERATOR = "operator"
    AUTHOR = "author"
    ADMIN = "admin"


_ALLOWS: dict[Role, frozenset[Permission]] = {
    Role.READER: frozenset({Permission.READ}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.RUN}),
    Role.AUTHOR: frozenset({Permission.READ, Permission.AUTHOR}),
    Role.ADMIN: frozenset(Permission),
}


def role_allows(role: Role, permission: Permission) -> bool:
    return permission in _ALLOWS[role]


def _roles_for(permission: Permission) -> list[Role]:
    return [role for role in Role if role_allows(role, permission)]


@dataclass(frozen=True)
class Grant:
    """``role`` for members of ``group`` (a SID, or DOMAIN\\name as written: compared by the
    server after resolving), on ``runbooks`` and ``worker_groups`` (None: all of them)."""

    role: Role
    group: str
    runbooks: frozenset[str] | None = None
    worker_groups: frozenset[str] | None = None

    def covers(self, runbook: str | None, worker_group: str | None) -> bool:
        """Does the grant's scope contain what the request names? (A request that names no runbook,
        such as creating a worker group, needs a grant on all runbooks; likewise worker groups.)"""
        runbooks_ok = self.runbooks is None or (runbook is not None and runbook in self.runbooks)
        groups_ok = self.worker_groups is None or (
            worker_group is not None and worker_group in self.worker_groups
        )
        return runbooks_ok and groups_ok


@dataclass(frozen=True)
class Decision:
    allowed: bool
    grant: Grant | None = None  # the grant that allowed it
    missing: str | None = None  # what a refusal lacks, in words

    def __bool__(self) -> bool:
        return self.allowed


def _member(grant: Grant, groups: frozenset[str]) -> bool:
    return grant.group.casefold() in groups


def allowed(
    grants: Iterable[Grant],
    groups: Iterable[str],
    permission: Permission,
    *,
    runbook: str | None = None,
    worker_group: str | None = None,
) -> Decision:
    """May a member of ``groups`` (SIDs and names, any case) do ``permission`` on this target?"""
    mine = frozenset(g.casefold() for g in groups)
    for grant in grants:
        if (
            _member(grant, mine)
            and role_allows(grant.role, permission)
            and grant.covers(runbook, worker_group)
        ):
            return Decision(True, grant)
    roles = " or ".join(role.value for role in _roles_for(permission))
    where = []
    if runbook is not None:
        where.append(f"runbook {runbook}")
    if worker_group is not None:
        where.append(f"worker group {worker_group}")
    scope = " in ".join(where) if where else "all runbooks and worker groups"
    return Decision(False, None, f"needs role {roles} on {scope}")


def visible(
    grants: Iterable[Grant], groups: Iterable[str], *, runbook: str | None, worker_group: str | None
) -> bool:
    """May a member of ``groups`` see an item (a job of ``runbook`` on ``worker_group``)?"""
    return allowed(grants, groups, Permission.READ, runbook=runbook, worker_group=worker_group).allowed
