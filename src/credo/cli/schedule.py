"""``credo schedule create|list|show|pause|resume|delete``: runbook schedules on the server."""

from __future__ import annotations

from typing import Any

import click

from credo.cli.api import client_from, with_api
from credo.cli.automation import _pairs
from credo.cli.output import emit_json, emit_mapping, json_option

__all__ = ["schedule"]


@click.group()
def schedule() -> None:
    """Start a runbook at times named by a cron expression in a time zone (see docs/control-plane.md).

    \b
    Example:
      credo schedule create nightly --runbook cleanup --group tier1 --cron '30 2 * * *'
    """


@schedule.command("create")
@click.argument("name")
@click.option("--runbook", required=True, help="The published runbook it starts.")
@click.option("--group", required=True, help="The worker group that runs it.")
@click.option(
    "--cron", required=True, help="Five fields (minute hour day month weekday) or @daily, @hourly..."
)
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone the cron times are in.")
@click.option(
    "-p", "--parameter", "pairs", multiple=True, metavar="NAME=VALUE", help="A parameter (JSON or text)."
)
@click.option(
    "--missed-runs",
    type=click.Choice(["skip", "run-once"]),
    default="skip",
    show_default=True,
    help="After downtime: run none of the missed fires, or the latest once (all are recorded).",
)
@click.option("--paused", is_flag=True, help="Create it paused.")
@with_api
@json_option
def schedule_create(name: str, runbook: str, group: str, cron: str, timezone: str, pairs: tuple[str, ...],
                    missed_runs: str, paused: bool, as_json: bool, **params: Any) -> None:  # fmt: skip
    """Create a schedule; prints its next runs.

    \b
    Example:
      credo schedule create nightly --runbook cleanup --group tier1 --cron '30 2 * * *' \\
          --timezone Europe/Berlin -p days=30
    """
    body = {"name": name, "runbook": runbook, "group": group, "cron": cron, "timezone": timezone,
            "parameters": _pairs(pairs), "missed_runs": missed_runs, "enabled": not paused}  # fmt: skip
    result = client_from(params).create_schedule(body)
    emit_json(result) if as_json else _show(result)


@schedule.command("list")
@with_api
@json_option
def schedule_list(as_json: bool, **params: Any) -> None:
    """List schedules with their next fire.

    \b
    Example:
      credo schedule list
    """
    result = client_from(params).schedules()
    if as_json:
        emit_json(result)
        return
    for s in result:
        when = s["next_fire"] or "paused"
        click.echo(
            f"{s['name']:<24} {s['runbook']:<20} {s['group']:<12} {s['cron']:<16} {s['timezone']:<16} {when}"
        )


@schedule.command("show")
@click.argument("name")
@with_api
@json_option
def schedule_show(name: str, as_json: bool, **params: Any) -> None:
    """A schedule, its next runs and its latest fires (missed ones marked).

    \b
    Example:
      credo schedule show nightly
    """
    result = client_from(params).schedule(name)
    emit_json(result) if as_json else _show(result)


@schedule.command("pause")
@click.argument("name")
@with_api
@json_option
def schedule_pause(name: str, as_json: bool, **params: Any) -> None:
    """Pause: times that pass while paused are neither run nor missed.

    \b
    Example:
      credo schedule pause nightly
    """
    result = client_from(params).pause_schedule(name)
    emit_json(result) if as_json else click.echo(f"schedule {name}: paused")


@schedule.command("resume")
@click.argument("name")
@with_api
@json_option
def schedule_resume(name: str, as_json: bool, **params: Any) -> None:
    """Resume from now on.

    \b
    Example:
      credo schedule resume nightly
    """
    result = client_from(params).resume_schedule(name)
    emit_json(result) if as_json else click.echo(f"schedule {name}: next fire {result['next_fire']}")


@schedule.command("delete")
@click.argument("name")
@with_api
def schedule_delete(name: str, **params: Any) -> None:
    """Delete a schedule and the record of its fires (the audit log keeps them).

    \b
    Example:
      credo schedule delete nightly
    """
    client_from(params).delete_schedule(name)
    click.echo(f"schedule {name}: deleted")


def _show(s: dict[str, Any]) -> None:
    rows = {
        k: s[k]
        for k in ("name", "runbook", "group", "cron", "timezone", "missed_runs", "last_fire", "missed")
    }
    rows["state"] = "enabled" if s["enabled"] else "paused"
    rows["parameters"] = s["parameters"] or None
    emit_mapping(rows, title=f"schedule {s['name']}")
    for at in s.get("next_runs", []):
        click.echo(f"  next   {at}")
    for f in s.get("fires", []):
        what = f"job {f['job_id']}" if f["job_id"] else (f["error"] or "not run")
        click.echo(f"  {'missed' if f['missed'] else 'fired':<6} {f['at']}  {what}")
