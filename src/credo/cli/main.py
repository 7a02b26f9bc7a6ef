"""``credo``: the root command, global options and the error boundary of the CLI.

Exit codes (see ``credo.errors``): 0 success; 1 failure or negative answer; 2 invalid input or
usage; 3 this machine is not ready; 4 nothing answered in time; 5 not permitted; 6 not found;
70 internal error; 130 interrupted. Errors print one line on stderr (and a hint line); a
traceback only with ``--debug``.
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from typing import Any

import click

from credo import __version__
from credo.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, CredoError

__all__ = ["cli", "main"]

EPILOG = """\b
Exit codes: 0 ok, 1 failed, 2 invalid input, 3 machine not ready, 4 unreachable,
5 not permitted, 6 not found, 70 internal error.
\b
Example:
  credo lab up && eval "$(credo lab env --host worker1)"
"""


# Subcommands are imported when used: `credo lab` need not load LDAP and Kerberos bindings, and a
# one-shot `credo run --as` pays only for what it uses (interpreter start-up dominates its time).
COMMANDS = {
    "lab": "credo.cli.lab:lab",
    "gmsa": "credo.cli.gmsa:gmsa",
    "run": "credo.cli.run:run",
    "server": "credo.cli.server:server",
    "worker": "credo.cli.server:worker",
    "runbook": "credo.cli.automation:runbook",
    "group": "credo.cli.automation:group",
    "job": "credo.cli.automation:job",
    "schedule": "credo.cli.schedule:schedule",
    "webhook": "credo.cli.webhook:webhook",
    "audit": "credo.cli.audit:audit",
    "audit-log": "credo.cli.auditlog:audit_log",
    "kds": "credo.cli.accounts:kds",
    "account": "credo.cli.accounts:account",
    "migrate": "credo.cli.migrate:migrate",
    "agent": "credo.cli.agent:agent",
    "systemd": "credo.cli.systemd:systemd",
    "endpoint": "credo.cli.endpoint:endpoint",
    "token": "credo.cli.token:token",
    "role": "credo.cli.role:role",
    "oidc": "credo.cli.oidc:oidc",
}


class CredoGroup(click.Group):
    """A group that loads its subcommands lazily and turns CredoError into one line and an exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug")) or "--debug" in sys.argv[1:]
        try:
            return super().invoke(ctx)
        except CredoError as exc:
            if debug:
                traceback.print_exc()
            click.echo(f"credo: error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"credo: hint: {exc.hint}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except KeyboardInterrupt:
            click.echo("credo: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            if debug:
                traceback.print_exc()
            click.echo(f"credo: internal error: {type(exc).__name__}: {exc}", err=True)
            click.echo("credo: hint: run again with --debug for a traceback, and report it", err=True)
            ctx.exit(EXIT_INTERNAL)


@click.group(cls=CredoGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="credo")
@click.option("--debug", is_flag=True, help="Log debug detail and show tracebacks.")
def cli(debug: bool) -> None:
    """Run automation under Active Directory managed identities, with no stored secret."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="credo: %(levelname)s: %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main() -> None:
    cli(prog_name="credo")
