"""``credo systemd``: the credo agent's unit, and services and timers that run as a gMSA."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from credo.cli.output import emit_json, json_option
from credo.errors import InputError
from credo.names import managed_account_sam
from credo.systemd.config import AgentPaths, read_agent_paths
from credo.systemd.install import check_local_user, install_units, resolve_program, validate_calendar
from credo.systemd.paths import AGENT_CONFIG, UNIT_DIR, agent_ccache_path
from credo.systemd.syntax import unit_name, validate_env_name
from credo.systemd.units import GmsaCommand, UnitFile, account_snippet, agent_unit, gmsa_service, gmsa_timer

__all__ = ["systemd"]

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_USER = "credo-runner"
# Units of credo itself, which a generated unit must not replace.
_RESERVED = {"credo-agent.service", "credo-agent.timer", "credo-worker.service", "credo-worker.timer"}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def systemd() -> None:
    """systemd units: the credo agent's own, and services and timers that run as a gMSA.

    \b
    By default the units are printed; --install writes them under /etc/systemd/system and runs
    `systemctl daemon-reload` when systemd is PID 1 here.

    \b
    Example:
      credo systemd agent-unit --config /etc/credo/agent.toml --install
      credo systemd timer nightly-report --on-calendar daily --as svcauto -- /opt/jobs/report.py
    """


def _install_options(func: F) -> F:
    options = [
        click.option(
            "--install",
            is_flag=True,
            help="Write the units under --unit-dir and run systemctl daemon-reload (when systemd runs).",
        ),
        click.option(
            "--unit-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=UNIT_DIR,
            show_default=True,
            help="Where --install writes (another directory for an image or a package).",
        ),
        json_option,
    ]
    decorated: Any = func
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


def _gmsa_options(func: F) -> F:
    options: list[Callable[[Any], Any]] = [
        click.option("--as", "account", required=True, help="The gMSA (NAME or NAME$)."),
        click.option(
            "--user",
            "local_user",
            default=DEFAULT_USER,
            show_default=True,
            help="The local user the command runs as (User=); it must exist.",
        ),
        click.option(
            "--allow-system-user", is_flag=True, help="Allow a system account (root, daemon...) as --user."
        ),
        click.option(
            "--env", "env_pairs", multiple=True, help="NAME=VALUE for the command (Environment=, repeatable)."
        ),
        click.option(
            "--ccache",
            type=click.Path(dir_okay=False, path_type=Path),
            help="The ccache the agent keeps for (gMSA, user) [default: /run/credo/ccache/GMSA/USER].",
        ),
        _install_options,
    ]
    decorated: Any = func
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


def _parse_env(pairs: Sequence[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            # Not `--env NAME` from this environment, as `credo run` has: a unit file is readable
            # by every user, and a value copied silently could be a secret.
            raise InputError(f"invalid --env {pair!r}", hint="write --env NAME=VALUE")
        validate_env_name(name)
        if name == "KRB5CCNAME":
            raise InputError(
                "--env KRB5CCNAME: the unit sets it to the agent's ccache", hint="use --ccache PATH"
            )
        env[name] = value
    return env


def _gmsa_command(
    name: str,
    account: str,
    local_user: str,
    allow_system_user: bool,
    env_pairs: Sequence[str],
    ccache: Path | None,
    command: Sequence[str],
    *,
    accept: Sequence[str] = (),
) -> GmsaCommand:
    unit = unit_name(name, ".service", accept=accept)
    if unit in _RESERVED:
        raise InputError(f"{unit} is one of credo's own units", hint="give the unit another name")
    gmsa = managed_account_sam(account)
    user = check_local_user(local_user, allow_system=allow_system_user)
    if ccache is not None and not ccache.is_absolute():
        raise InputError(f"--ccache {ccache}: not an absolute path")
    path = ccache if ccache is not None else agent_ccache_path(gmsa, user)
    argv = (resolve_program(command[0]), *command[1:])
    return GmsaCommand(unit=unit, gmsa=gmsa, user=user, ccache=path, command=argv, env=_parse_env(env_pairs))


def _emit(
    units: Sequence[UnitFile], snippet: str | None, install: bool, unit_dir: Path, as_json: bool
) -> None:
    installed = install_units(units, unit_dir) if install else None
    if as_json:
        emit_json({
            "units": [{"name": u.name, "path": str(unit_dir / u.name), "text": u.text} for u in units],
            "agent_config": snippet,
            "installed": installed is not None,
            "daemon_reload": installed.reloaded if installed is not None else None,
        })  # fmt: skip
        return
    if installed is None:
        for unit in units:
            click.echo(f"# ---- {unit_dir / unit.name} ----")
            click.echo(unit.text)
    else:
        for path in installed.paths:
            click.echo(f"wrote {path}")
        if installed.reloaded:
            click.echo("ran systemctl daemon-reload")
        else:
            click.echo("systemd is not PID 1 here: run `systemctl daemon-reload` where it is")
        last = units[-1].name
        click.echo(f"next: systemctl enable --now {last}")
    if snippet is not None:
        click.echo(f"# ---- the credo agent's config ({AGENT_CONFIG}) needs ----")
        click.echo(snippet, nl=False)


@systemd.command("agent-unit")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"The agent's config: its outputs' directories become ReadWritePaths= [default: {AGENT_CONFIG}, if it exists].",
)
@click.option(
    "--credo",
    "credo_program",
    help="The credo program ExecStart= runs [default: this credo].",
)
@click.option(
    "--endpoints",
    is_flag=True,
    help="The agent also brokers restricted endpoints: run commands as their users, write transcripts.",
)
@_install_options
def agent_unit_command(
    config: Path | None,
    credo_program: str | None,
    endpoints: bool,
    install: bool,
    unit_dir: Path,
    as_json: bool,
) -> None:
    """The credo agent's unit, credo-agent.service (Type=notify, watchdog, sandboxed).

    \b
    Example:
      credo systemd agent-unit --config /etc/credo/agent.toml --install
      systemctl enable --now credo-agent.service
    """
    if config is None:
        config, paths = (
            AGENT_CONFIG,
            (read_agent_paths(AGENT_CONFIG) if AGENT_CONFIG.exists() else AgentPaths()),
        )
    else:
        config = config.absolute()
        paths = read_agent_paths(config)
    program = resolve_program(credo_program or _this_credo())
    unit = agent_unit(Path(program), config=config, paths=paths, endpoints=endpoints)
    _emit([unit], None, install, unit_dir, as_json)


def _this_credo() -> str:
    """The credo next to this interpreter (a venv), else the one in PATH."""
    beside = Path(sys.executable).with_name("credo")
    if beside.is_file():
        return str(beside)
    return shutil.which("credo") or "/usr/local/bin/credo"


@systemd.command("service", context_settings={"ignore_unknown_options": False})
@click.argument("name")
@_gmsa_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def service_command(
    name: str,
    account: str,
    local_user: str,
    allow_system_user: bool,
    env_pairs: tuple[str, ...],
    ccache: Path | None,
    install: bool,
    unit_dir: Path,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """A service NAME that runs COMMAND as a local user with a ccache of the gMSA.

    KRB5CCNAME is the ccache the credo agent keeps fresh for (gMSA, user); the [[account]] its
    config needs is printed too.

    \b
    Example:
      credo systemd service report-api --as svcauto --user credo-runner -- /opt/report/serve --port 8080
    """
    run = _gmsa_command(name, account, local_user, allow_system_user, env_pairs, ccache, command)
    _emit([gmsa_service(run)], account_snippet(run), install, unit_dir, as_json)


@systemd.command("timer", context_settings={"ignore_unknown_options": False})
@click.argument("name")
@click.option(
    "--on-calendar",
    "on_calendar",
    multiple=True,
    required=True,
    help="When to run (OnCalendar=, systemd.time(7)), e.g. daily or 'Mon..Fri 07:00'; repeatable.",
)
@_gmsa_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def timer_command(
    name: str,
    on_calendar: tuple[str, ...],
    account: str,
    local_user: str,
    allow_system_user: bool,
    env_pairs: tuple[str, ...],
    ccache: Path | None,
    install: bool,
    unit_dir: Path,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """A timer NAME.timer and its service NAME.service, which runs COMMAND as a local user with a
    ccache of the gMSA (a scheduled task as a gMSA).

    \b
    Example:
      credo systemd timer disable-stale --on-calendar 'Mon..Fri 07:00' --as svcauto -- /opt/jobs/disable-stale.py
    """
    run = _gmsa_command(
        name, account, local_user, allow_system_user, env_pairs, ccache, command, accept=(".timer",)
    )
    specs = [validate_calendar(spec) for spec in on_calendar]
    service, timer = gmsa_timer(run, specs)
    _emit([service, timer], account_snippet(run), install, unit_dir, as_json)
