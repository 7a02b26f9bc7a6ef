"""``credo audit``: find risky managed service accounts; ``credo audit memberships``: the export."""

from __future__ import annotations

from typing import Any

import click

from credo import security_events
from credo.ad.admin import AdminSession
from credo.audit import AuditOptions, Severity, run_audit
from credo.audit.checks import CHECK_IDS
from credo.audit.events import finding_events
from credo.audit.memberships import memberships, memberships_csv, memberships_json
from credo.audit.render import render
from credo.audit.snapshot import read_snapshot
from credo.cli.common import admin_session_options, admin_settings, configure_events, events_options
from credo.files import write_text_atomically

__all__ = ["audit"]

SEVERITIES = [s.label for s in Severity]

AUDIT_EPILOG = (
    """\b
Checks: """
    + ", ".join(CHECK_IDS)
    + """.
Exit codes: 0 the audit ran and nothing reached --fail-on; 1 a finding, or a check that could
not fully run, at or above --fail-on; 2 bad input; 4 no DC; 5 not permitted.
\b
Examples:
  credo audit                                    # table on the terminal, as your ccache
  credo audit --format html --output report.html
  credo audit --format sarif --output audit.sarif --fail-on high    # in CI
  credo audit --check privileged-group --check kds-root-key-readers --format json
"""
)


def _write(text: str, output: str | None) -> None:
    if output:
        write_text_atomically(output, text)
    else:
        click.echo(text, nl=False)


@click.group(invoke_without_command=True, epilog=AUDIT_EPILOG)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv", "html", "sarif"]), default="table",
    show_default=True, help="Report format.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the report here (atomically).")
@click.option(
    "--fail-on", type=click.Choice(SEVERITIES), default=None,
    help="Exit 1 when a finding (or a check that could not fully run) is at or above this severity.",
)  # fmt: skip
@click.option("--check", "only", multiple=True, metavar="ID", help="Run only this check (repeatable).")
@click.option("--skip", multiple=True, metavar="ID", help="Do not run this check (repeatable).")
@click.option(
    "--stale-days", type=click.IntRange(min=1), default=90, show_default=True,
    help="An account with no logon for this many days is stale.",
)  # fmt: skip
@events_options
@admin_session_options
@click.pass_context
def audit(ctx: click.Context, /, **params: Any) -> None:
    """Find risky managed service accounts (gMSA, sMSA) in the directory.

    Acts as your Kerberos identity (your ccache, or --keytab/--principal). Most checks need only
    an authenticated user; the KDS root key checks need a Domain Admin, and say "not-run" otherwise.
    """
    if ctx.invoked_subcommand is not None:
        params.pop("events_file"), params.pop("events_syslog")
        ctx.obj = params
        return
    configure_events(params)
    fmt, output, fail_on = params.pop("fmt"), params.pop("output"), params.pop("fail_on")
    if params.pop("as_json"):
        fmt = "json"
    only, skip, stale_days = tuple(params.pop("only")), tuple(params.pop("skip")), params.pop("stale_days")
    settings = admin_settings(params)
    from credo.audit.checks import select_checks

    select_checks(only, skip)  # bad IDs fail before any connection
    with AdminSession(settings) as session:
        report = run_audit(
            session.directory, only=only, skip=skip, options=AuditOptions(stale_days=stale_days)
        )
    _write(render(report, fmt), output)
    for event in finding_events(report):
        security_events.emit(event)
    if fail_on is not None and report.fails(Severity.parse(fail_on)):
        ctx.exit(1)


@audit.command("memberships", epilog="""\b
Example:
  credo audit memberships --format csv --output msa-groups.csv
""")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write here (atomically).")
@admin_session_options
def memberships_command(fmt: str, as_json: bool, output: str | None, **params: Any) -> None:
    """Every managed service account with all its group memberships, nested ones included."""
    if as_json:
        fmt = "json"
    settings = admin_settings(params)
    with AdminSession(settings) as session:
        snapshot = read_snapshot(session.directory, groups_only=True)
    rows = memberships(snapshot)
    _write(memberships_csv(rows) if fmt == "csv" else memberships_json(snapshot, rows), output)
