"""``credo role grant|list|revoke``: roles for AD groups on the runbook server (issue 15 point 2)."""

from __future__ import annotations

from typing import Any

import click

from credo.cli.api import client_from, with_api
from credo.cli.output import emit_json, json_option

__all__ = ["role"]

ROLES = ["reader", "operator", "author", "admin"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def role() -> None:
    """Who may do what on the server: roles granted to AD groups (nested groups count).

    \b
    reader: read; operator: + start and stop jobs; author: + edit and publish runbooks; admin: all.

    \b
    Example:
      credo role grant operator --group 'CORP\\Helpdesk' --runbook disable-user --worker-group tier1
    """


def _scope(values: list[str] | None) -> str:
    return ",".join(values) if values else "all"


@role.command("grant")
@click.argument("role_name", metavar="ROLE", type=click.Choice(ROLES))
@click.option("--group", required=True, help="The AD group: DOMAIN\\name or its SID.")
@click.option("--runbook", "runbooks", multiple=True, help="Only on this runbook (repeat; default: all).")
@click.option(
    "--worker-group", "worker_groups", multiple=True, help="Only in this worker group (repeat; default: all)."
)
@with_api
@json_option
def grant(
    role_name: str, group: str, runbooks: tuple[str, ...], worker_groups: tuple[str, ...], as_json: bool,
    **params: Any,
) -> None:  # fmt: skip
    """Grant ROLE to the members of an AD group, on all or some runbooks and worker groups.

    \b
    Example:
      credo role grant reader --group 'CORP\\Domain Users'
      credo role grant operator --group 'CORP\\Helpdesk' --runbook disable-user --worker-group tier1
    """
    made = client_from(params).grant_role(
        role_name, group, list(runbooks) or None, list(worker_groups) or None
    )
    if as_json:
        emit_json(made)
        return
    click.echo(f"granted {made['role']} to {made['group']} (id {made['id']})")


@role.command("list")
@with_api
@json_option
def list_grants(as_json: bool, **params: Any) -> None:
    """List role grants: id, role, group, runbooks, worker groups.

    \b
    Example:
      credo role list
    """
    result = client_from(params).grants()
    if as_json:
        emit_json(result)
        return
    click.echo(f"{'ID':<5} {'ROLE':<9} {'GROUP':<32} {'RUNBOOKS':<24} WORKER GROUPS")
    for g in result:
        click.echo(
            f"{g['id']:<5} {g['role']:<9} {g['group']:<32} {_scope(g['runbooks']):<24} {_scope(g['worker_groups'])}"
        )


@role.command("revoke")
@click.argument("grant_id", metavar="ID", type=int)
@with_api
@json_option
def revoke(grant_id: int, as_json: bool, **params: Any) -> None:
    """Revoke a role grant by its id (``credo role list``).

    \b
    Example:
      credo role revoke 3
    """
    gone = client_from(params).revoke_grant(grant_id)
    if as_json:
        emit_json(gone)
        return
    click.echo(f"revoked {gone['role']} for {gone['group']} (id {gone['id']})")
