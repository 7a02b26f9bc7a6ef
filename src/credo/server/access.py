"""What each user route needs (one table), and whether a caller has it (issue 15 point 2).

Every route the gate treats as a user route (``Access.ADMIN``) has one row in ``NEEDS``: the
permission (credo.automation.rbac.Permission) and which of its path parameters names the runbook
or the worker group it acts on. ``check_needs`` refuses to start a server with a user route that
has no row, so a new route cannot be reachable by every signed-in user by omission.

How callers map to roles (docs/control-plane.md, "Sign-in and roles"):

- the admin token (bootstrap): role admin on all runbooks and worker groups, and nothing beyond
  what role admin allows;
- an API token: its own role on all runbooks and worker groups, or, created without one, its
  creator's (a token the admin token created: admin);
- a user (Negotiate): the roles granted to the groups in its token (``State.grants``,
  ``State.groups_of``).

A refusal is a 403 naming what is missing (``Decision.missing``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.routing import BaseRoute, Route

from credo.automation.rbac import Decision, Grant, Permission, Role, allowed
from credo.errors import NotPermittedError
from credo.server.api import API
from credo.server.gate import ADMIN_CALLER, Access, Caller, CallerKind, declared_policy
from credo.server.models import Job, Runbook, WorkerGroup

__all__ = [
    "NEEDS",
    "Forbidden",
    "Need",
    "check_needs",
    "decide",
    "decide_on",
    "grantee",
    "job_target",
    "own_role",
]


@dataclass(frozen=True)
class Need:
    permission: Permission
    runbook: str | None = None  # the path parameter that names the runbook
    worker_group: str | None = None  # ... and the worker group
    job: str | None = None  # ... or the job, whose runbook and worker group are the target
    # The body names the target: the route checks it with ``check_target`` once it is parsed.
    in_body: bool = False
    # A list: the route keeps the items the caller may see (``rbac.visible``).
    filtered: bool = False


_R, _RUN, _AUTHOR, _ADMIN = Permission.READ, Permission.RUN, Permission.AUTHOR, Permission.ADMIN

# (method, route path) -> what it needs. Keep in step with credo.server.routes (check_needs).
NEEDS: dict[tuple[str, str], Need] = {
    ("POST", f"{API}/runbooks"): Need(_AUTHOR),
    ("GET", f"{API}/runbooks"): Need(_R),
    ("GET", f"{API}/runbooks/{{name}}"): Need(_R, runbook="name"),
    ("PATCH", f"{API}/runbooks/{{name}}"): Need(_AUTHOR, runbook="name"),
    ("POST", f"{API}/runbooks/{{name}}/publish"): Need(_AUTHOR, runbook="name"),
    ("DELETE", f"{API}/runbooks/{{name}}"): Need(_AUTHOR, runbook="name"),
    ("POST", f"{API}/groups"): Need(_ADMIN),
    ("GET", f"{API}/groups"): Need(_R),
    ("GET", f"{API}/groups/{{name}}"): Need(_R, worker_group="name"),
    ("PATCH", f"{API}/groups/{{name}}"): Need(_ADMIN, worker_group="name"),
    ("DELETE", f"{API}/groups/{{name}}"): Need(_ADMIN, worker_group="name"),
    ("GET", f"{API}/workers"): Need(_R),
    ("POST", f"{API}/jobs"): Need(_RUN, in_body=True),
    ("GET", f"{API}/jobs"): Need(_R, filtered=True),
    ("GET", f"{API}/jobs/{{job_id}}"): Need(_R, job="job_id"),
    ("POST", f"{API}/jobs/{{job_id}}/stop"): Need(_RUN, job="job_id"),
    ("POST", f"{API}/jobs/{{job_id}}/resume"): Need(_RUN, job="job_id"),
    ("GET", f"{API}/jobs/{{job_id}}/output"): Need(_R, job="job_id"),
    ("GET", f"{API}/jobs/{{job_id}}/output/events"): Need(_R, job="job_id"),
    ("POST", f"{API}/auth/tokens"): Need(_ADMIN),
    ("GET", f"{API}/auth/tokens"): Need(_ADMIN),
    ("DELETE", f"{API}/auth/tokens/{{token_id}}"): Need(_ADMIN),
    ("POST", f"{API}/roles"): Need(_ADMIN),
    ("GET", f"{API}/roles"): Need(_ADMIN),
    ("DELETE", f"{API}/roles/{{grant_id}}"): Need(_ADMIN),
    # Schedules start jobs unattended and webhooks let outsiders start them: managing either is
    # an admin's (an operator may start jobs himself); reading them is a reader's.
    ("POST", f"{API}/schedules"): Need(_ADMIN),
    ("GET", f"{API}/schedules"): Need(_R),
    ("GET", f"{API}/schedules/{{name}}"): Need(_R),
    ("POST", f"{API}/schedules/{{name}}/pause"): Need(_ADMIN),
    ("POST", f"{API}/schedules/{{name}}/resume"): Need(_ADMIN),
    ("DELETE", f"{API}/schedules/{{name}}"): Need(_ADMIN),
    ("POST", f"{API}/webhooks"): Need(_ADMIN),
    ("GET", f"{API}/webhooks"): Need(_ADMIN),
    ("GET", f"{API}/webhooks/{{name}}"): Need(_ADMIN),
    ("POST", f"{API}/webhooks/{{name}}/rotate"): Need(_ADMIN),
    ("POST", f"{API}/webhooks/{{name}}/disable"): Need(_ADMIN),
    ("POST", f"{API}/webhooks/{{name}}/enable"): Need(_ADMIN),
    ("DELETE", f"{API}/webhooks/{{name}}"): Need(_ADMIN),
    ("GET", f"{API}/audit-log"): Need(_ADMIN),
}


class Forbidden(NotPermittedError):
    """A signed-in caller without the permission the route needs (HTTP 403)."""

    def __init__(self, caller: Caller, decision: Decision) -> None:
        super().__init__(
            f"{caller.name} may not do this: {decision.missing}",
            hint="ask an admin for a grant: credo role grant ROLE --group 'DOMAIN\\group'",
        )


def check_needs(routes: Iterable[BaseRoute]) -> None:
    """Every user route must have its row in ``NEEDS``."""
    for route in routes:
        policy = declared_policy(route)
        if isinstance(route, Route) and policy is not None and policy.access is Access.ADMIN:
            for method in route.methods or ():
                if method != "HEAD" and (method, route.path) not in NEEDS:
                    raise RuntimeError(f"{method} {route.path} has no row in credo.server.access.NEEDS")


def decide(
    caller: Caller,
    method: str,
    path: str,
    path_params: Mapping[str, str],
    grants: Callable[[], list[Grant]],
    groups_of: Callable[[str], frozenset[str]],
    *,
    target: tuple[str | None, str | None] | None = None,
) -> Decision:
    """May ``caller`` call the route ``method path``? ``target``: the (runbook, worker group) it
    acts on, when they come from elsewhere than the path (a job's, a body's)."""
    need = NEEDS[(method, path)]
    if need.in_body or need.filtered:
        return decide_on(caller, need.permission, None, None, grants, groups_of, anywhere=True)
    if target is not None:
        runbook, worker_group = target
    else:
        runbook = path_params.get(need.runbook) if need.runbook else None
        worker_group = path_params.get(need.worker_group) if need.worker_group else None
    return decide_on(caller, need.permission, runbook, worker_group, grants, groups_of)


def decide_on(
    caller: Caller,
    permission: Permission,
    runbook: str | None,
    worker_group: str | None,
    grants: Callable[[], list[Grant]],
    groups_of: Callable[[str], frozenset[str]],
    *,
    anywhere: bool = False,
) -> Decision:
    """May ``caller`` do ``permission`` on ``runbook`` in ``worker_group`` (None: on all)? With
    ``anywhere``: on some runbook and worker group (before a body names which)."""
    own = own_role(caller)
    if own is not None:
        return _as_role(own, permission, runbook, worker_group)
    principal = grantee(caller)
    current = grants()
    if anywhere:
        current = [Grant(grant.role, grant.group) for grant in current]
    # No grant at all (a fresh server): no need to ask the directory who the user is.
    groups = groups_of(principal) if current and principal else frozenset()
    return allowed(current, groups, permission, runbook=runbook, worker_group=worker_group)


def own_role(caller: Caller) -> Role | None:
    """The role a caller holds by itself (the admin token; an API token with a role, or made with
    the admin token), whatever the grants say; None: its grants decide."""
    if caller.kind is CallerKind.ADMIN_TOKEN:
        return Role.ADMIN
    if caller.kind is CallerKind.API_TOKEN:
        if caller.token_role is not None:
            return Role(caller.token_role)
        if caller.token_creator == ADMIN_CALLER:
            return Role.ADMIN
    return None


def grantee(caller: Caller) -> str:
    """The principal whose grants decide for ``caller`` (without a role of its own): the user,
    or the user who made the API token."""
    if caller.kind is CallerKind.API_TOKEN:
        return caller.token_creator or ""
    return caller.name


def job_target(session: Session, job_id: str) -> tuple[str | None, str | None]:
    """A job's (runbook, worker group) names; (None, None) for no such job (then only a grant on
    all of them lets the caller on, to hear 404: a scoped grant learns nothing of others' jobs)."""
    row = session.execute(
        select(Runbook.name, WorkerGroup.name)
        .join(Job, Job.runbook_id == Runbook.id)
        .join(WorkerGroup, Job.group_id == WorkerGroup.id)
        .where(Job.id == job_id)
    ).first()
    return (row[0], row[1]) if row else (None, None)


def _as_role(role: Role, permission: Permission, runbook: str | None, worker_group: str | None) -> Decision:
    """A role held on all runbooks and worker groups (through the pure policy, for its wording)."""
    me = f"role:{role.value}"
    return allowed([Grant(role, me)], [me], permission, runbook=runbook, worker_group=worker_group)
