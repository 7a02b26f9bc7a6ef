"""``credo migrate``: move a user service account to a gMSA (plan, apply, rollback, finish)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from credo.ad.admin import AdminSession
from credo.ad.connection import Directory
from credo.cli.common import admin_session_options, admin_settings
from credo.cli.output import emit_json, json_option
from credo.errors import InputError
from credo.files import write_text_atomically
from credo.migrate import (
    Journal,
    MigrationPlan,
    apply_plan,
    finish_plan,
    journal_path,
    make_plan,
    render_plan,
)
from credo.migrate.apply import rollback_plan
from credo.migrate.plan import plan_summary

__all__ = ["migrate"]

T = TypeVar("T")

_PLAN = click.Path(dir_okay=False, path_type=Path)


@click.group()
def migrate() -> None:
    """Move a password-based user service account to a gMSA, reversibly.

    \b
    Example:
      eval "$(credo lab env --host admin)"
      credo migrate plan svc_legacy --hosts worker1 --out legacy.plan
      credo migrate apply legacy.plan      # create the gMSA, copy groups, move the SPNs
      credo migrate rollback legacy.plan   # undo it all
      credo migrate finish legacy.plan     # disable the old user once nothing uses it
    """


def _read_plan(path: Path) -> MigrationPlan:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(
            f"cannot read {path}: {exc.strerror}", hint="give the file `credo migrate plan --out` wrote"
        ) from None
    return MigrationPlan.from_json(text, str(path))


def _perform(
    plan_file: Path, params: dict[str, Any], step: Callable[[Directory, MigrationPlan, Journal], T]
) -> tuple[MigrationPlan, Journal, T]:
    """Read PLAN and its record (PLAN.journal beside it), and run ``step`` as the administrator."""
    plan = _read_plan(plan_file)
    journal = Journal(journal_path(plan_file))
    with AdminSession(admin_settings(params)) as session:
        return plan, journal, step(session.directory, plan, journal)


@migrate.command("plan")
@click.argument("user")
@click.option("--hosts", required=True, help="The computers that run the service, comma separated.")
@click.option("--name", help="The gMSA's name (default: gmsa-<user without its svc_ prefix>).")
@click.option(
    "--keep-privileged", is_flag=True, help="Copy privileged group memberships too (named either way)."
)
@click.option("--out", "out", type=_PLAN, help="Write the plan (JSON) here, for apply.")
@admin_session_options
@json_option
def migrate_plan(user: str, hosts: str, name: str | None, keep_privileged: bool, out: Path | None,
                 as_json: bool, **params: Any) -> None:  # fmt: skip
    """Print the move of USER to a gMSA, step by step; change nothing.

    \b
    Example:
      credo migrate plan svc_legacy --hosts web1,web2 --out legacy.plan
    """
    names = [h.strip() for h in hosts.split(",") if h.strip()]
    with AdminSession(admin_settings(params)) as session:
        plan = make_plan(session.directory, user, names, name=name, keep_privileged=keep_privileged)
    if out is not None:
        write_text_atomically(
            out, plan.to_json(), mode=0o600, hint="give --out a path in a writable directory"
        )
    if as_json:
        emit_json(plan_summary(plan))
        return
    click.echo(render_plan(plan), nl=False)
    if out is not None:
        click.echo(f"plan written to {out}")


@migrate.command("apply")
@click.argument("plan_file", metavar="PLAN", type=_PLAN)
@admin_session_options
@json_option
def migrate_apply(plan_file: Path, as_json: bool, **params: Any) -> None:
    """Perform PLAN's directory steps; a failure at any step undoes the steps before it.

    Before each change a rollback record is written to PLAN.journal (fsynced).

    \b
    Example:
      credo migrate apply legacy.plan
    """
    plan, journal, done = _perform(plan_file, params, apply_plan)
    if as_json:
        emit_json({"applied": done, "journal": str(journal.path)})
        return
    click.echo(f"moved {plan.user} to {plan.gmsa}$: {len(done)} step(s); rollback record {journal.path}")
    click.echo("next: switch each host's service (see the plan), then `credo migrate finish PLAN`")


@migrate.command("rollback")
@click.argument("plan_file", metavar="PLAN", type=_PLAN)
@admin_session_options
@json_option
def migrate_rollback(plan_file: Path, as_json: bool, **params: Any) -> None:
    """Undo PLAN's move (completed or interrupted), newest change first, from its record.

    \b
    Example:
      credo migrate rollback legacy.plan
    """
    plan, _journal, undone = _perform(plan_file, params, rollback_plan)
    if as_json:
        emit_json({"undone": undone})
        return
    click.echo(f"rolled back {len(undone)} change(s): {plan.user} is as it was; {plan.gmsa}$ is gone")


@migrate.command("finish")
@click.argument("plan_file", metavar="PLAN", type=_PLAN)
@admin_session_options
@json_option
def migrate_finish(plan_file: Path, as_json: bool, **params: Any) -> None:
    """Disable (not delete) the old user, unless it logged on after the move.

    \b
    Example:
      credo migrate finish legacy.plan --json
    """
    plan, _journal, last = _perform(plan_file, params, finish_plan)
    if as_json:
        emit_json({"disabled": plan.user, "last_logon": last.isoformat() if last else None})
        return
    click.echo(
        f"disabled {plan.user} (last logon {last:%Y-%m-%d %H:%M} UTC)"
        if last
        else f"disabled {plan.user} (never logged on)"
    )
