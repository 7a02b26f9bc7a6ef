"""``credo run --as NAME -- CMD``: run a command as a gMSA, with a private ticket cache."""

from __future__ import annotations

import os
import signal
from typing import Any

import click

from credo.cli.common import host_session_options, session_settings
from credo.errors import InputError
from credo.gmsa.operations import run_as, usable_password
from credo.gmsa.runas import EXIT_TIMEOUT, RunOptions
from credo.gmsa.session import HostSession

__all__ = ["run"]


def _parse_env(pairs: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise InputError(
                f"invalid --env {pair!r}", hint="write --env NAME=VALUE, or --env NAME to pass it on"
            )
        if not sep:
            if key not in os.environ:
                raise InputError(f"--env {key}: not set in this environment")
            value = os.environ[key]
        env[key] = value
    return env


@click.command(context_settings={"ignore_unknown_options": False})
@click.option("--as", "account", required=True, help="The gMSA to run as (NAME or NAME$).")
@click.option("--user", "local_user", help="Local user to run the command as (root only).")
@click.option(
    "--env",
    "env_pairs",
    multiple=True,
    help="NAME=VALUE for the command, or NAME to pass it on (repeatable).",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0.1), help="Seconds before the command is stopped (exit 124)."
)
@host_session_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    account: str,
    local_user: str | None,
    env_pairs: tuple[str, ...],
    timeout: float | None,
    command: tuple[str, ...],
    **params: Any,
) -> None:
    """Run COMMAND with a Kerberos TGT for the gMSA NAME$ (PsExec -u DOMAIN\\NAME$ -p ~).

    The command gets a fresh private ccache (KRB5CCNAME) and temp dir (TMPDIR), removed when it
    ends, and an environment of its own: nothing else is inherited unless passed with --env.
    Its exit status and signals pass through; 124 means --timeout stopped it.

    \b
    Example:
      credo run --as svcauto -- ldapwhoami -Y GSSAPI -H ldap://dc1.corp.example.test
      sudo credo run --as svcauto --user runner --timeout 600 -- /opt/jobs/disable-user.py jdoe
    """
    options = RunOptions(command=command, local_user=local_user, env=_parse_env(env_pairs), timeout=timeout)
    with HostSession(session_settings(params)) as session:
        password = usable_password(session, account)
        realm, dns_domain = session.realm, session.dns_domain
    result = run_as(password, realm, dns_domain, options)
    if result.timed_out:
        click.echo(f"credo: {command[0]} stopped after the {timeout:g} s timeout", err=True)
        raise SystemExit(EXIT_TIMEOUT)
    if result.signal is not None:
        # Die of the same signal, so that the caller (a shell, a supervisor) sees it.
        signal.signal(result.signal, signal.SIG_DFL)
        os.kill(os.getpid(), result.signal)
    raise SystemExit(result.returncode)
