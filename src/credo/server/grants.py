"""Role grants (issue 15 point 2): add, list, revoke, and the current set as pure ``rbac.Grant``s."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from credo.automation.rbac import Grant, Role
from credo.errors import InputError, NotFoundError
from credo.server.clock import now
from credo.server.models import RoleGrant

__all__ = ["add_grant", "current", "list_grants", "revoke_grant"]


def add_grant(
    session: Session,
    role: str,
    group: str,
    runbooks: list[str] | None,
    worker_groups: list[str] | None,
    created_by: str,
) -> RoleGrant:
    try:
        checked = Role(role)
    except ValueError:
        raise InputError(
            f"unknown role {role!r}", hint=f"one of {', '.join(r.value for r in Role)}"
        ) from None
    if not group.strip():
        raise InputError("group: empty", hint="name an AD group as DOMAIN\\name, or give its SID")
    row = RoleGrant(
        role=checked.value, group=group.strip(), runbooks=sorted(set(runbooks)) if runbooks else None,
        worker_groups=sorted(set(worker_groups)) if worker_groups else None, created_by=created_by,
        created_at=now(),
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def list_grants(session: Session) -> list[RoleGrant]:
    return list(session.scalars(select(RoleGrant).order_by(RoleGrant.id)))


def revoke_grant(session: Session, grant_id: int) -> RoleGrant:
    row = session.get(RoleGrant, grant_id)
    if row is None:
        raise NotFoundError(f"no role grant {grant_id}", hint="`credo role list` shows their ids")
    session.delete(row)
    return row


def current(session: Session) -> list[Grant]:
    return [
        Grant(
            Role(row.role),
            row.group,
            frozenset(row.runbooks) if row.runbooks is not None else None,
            frozenset(row.worker_groups) if row.worker_groups is not None else None,
        )
        for row in list_grants(session)
    ]
