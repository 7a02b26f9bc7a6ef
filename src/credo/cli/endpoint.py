"""``credo endpoint``: restricted endpoints (JEA for Linux): definitions, lint, effective capability."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from credo.cli.common import host_session_options, session_settings
from credo.cli.output import emit_json, emit_mapping, json_option
from credo.endpoint.definition import (
    DefinitionError,
    EndpointDefinition,
    definition_path,
    endpoints_dir,
    list_endpoints,
    load_definition,
)
from credo.endpoint.lint import lint_definition
from credo.endpoint.roles import EffectiveCapability, UserToken, effective_capability
from credo.errors import InputError

__all__ = ["endpoint"]

_config_option = click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The endpoint file to use instead of $CREDO_ENDPOINTS_DIR (default /etc/credo/endpoints)/NAME.toml.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def endpoint() -> None:
    """Restricted endpoints: AD users run only the commands their groups grant, as a gMSA.

    \b
    Definitions live in /etc/credo/endpoints/NAME.toml (CREDO_ENDPOINTS_DIR overrides the
    directory; --config FILE replaces the file). See docs/endpoints.md.
    \b
    Example:
      credo endpoint lint examples/endpoints/helpdesk.toml
      credo endpoint capability helpdesk --user jdoe
      credo endpoint list
      credo endpoint verify-transcript /var/log/credo/endpoints/helpdesk-20261201T101500Z-1a2b3c4d5e6f.jsonl
    """


def _load(name: str, config: Path | None) -> EndpointDefinition:
    return load_definition(definition_path(name, config))


# ---- lint ----


@endpoint.command("lint")
@click.argument("target", required=False)
@_config_option
@click.option(
    "--directory",
    "use_directory",
    is_flag=True,
    help="Also read run_as's groups (tokenGroups) as this host and flag membership of a privileged group.",
)
@json_option
@host_session_options
def lint_command(
    target: str | None, config: Path | None, use_directory: bool, as_json: bool, **params: Any
) -> None:
    """Flag what can escape or over-grant in an endpoint file (JEAnalyzer for credo).

    TARGET is a file (with a '/' or ending in .toml) or an endpoint NAME. Exit codes: 0 no error
    or warning (info lines are allowed), 1 at least one error or warning, 2 the file is invalid.

    \b
    Example:
      credo endpoint lint examples/endpoints/helpdesk.toml
      eval "$(credo lab env --host worker1)"; credo endpoint lint helpdesk --directory
    """
    if config is None and target is None:
        raise InputError(
            "give a file or an endpoint name", hint="credo endpoint lint /etc/credo/endpoints/NAME.toml"
        )
    if config is None and target is not None and ("/" in target or target.endswith(".toml")):
        config = Path(target)
    definition = _load(target or "", config)
    findings = lint_definition(definition)
    if use_directory and definition.run_as is not None:
        from credo.endpoint.directory import resolve_token
        from credo.endpoint.lint import lint_run_as_membership
        from credo.gmsa.session import HostSession

        with HostSession(session_settings(params)) as session:
            findings += lint_run_as_membership(
                definition, resolve_token(session.directory, definition.run_as)
            )
    failing = [f for f in findings if f.severity != "info"]
    if as_json:
        emit_json({
            "file": str(definition.path),
            "endpoint": definition.name,
            "findings": [{"severity": f.severity, "key": f.key, "message": f.message} for f in findings],
            "clean": not failing,
        })  # fmt: skip
    else:
        for finding in findings:
            click.echo(f"{definition.path}: {finding.line()}")
        if not failing:
            click.echo(f"{definition.path}: clean", err=bool(findings))
    if failing:
        raise SystemExit(1)


# ---- capability ----


def _capability_json(cap: EffectiveCapability) -> dict[str, Any]:
    return {
        "endpoint": cap.endpoint,
        "principal": cap.principal,
        "admitted": cap.admitted,
        "reason": cap.reason,
        "run_as": cap.run_as,
        "user": cap.user,
        "roles": [{"group": r.group, "capabilities": list(r.capabilities)} for r in cap.roles],
        "commands": [
            {
                "name": c.name,
                "path": c.command.path,
                "args": list(c.command.args),
                "roles": list(c.roles),
                "capabilities": list(c.capabilities),
                "timeout": c.command.timeout,
                "cwd": c.command.cwd,
                "env": sorted(name for name, _ in c.command.env),
                "env_allow": list(c.command.env_allow),
                "parameters": [
                    {
                        "name": p.name,
                        "option": p.option,
                        "aliases": list(p.aliases),
                        "positional": p.positional,
                        "required": p.required,
                        "flag": p.flag,
                        "allowed": [k.describe() for k in p.constraints],
                    }
                    for p in c.command.parameters
                ],
            }
            for c in cap.commands
        ],
    }


def _print_capability(cap: EffectiveCapability) -> None:
    click.echo(f"endpoint   {cap.endpoint}")
    click.echo(f"user       {cap.principal}")
    click.echo(f"runs as    {cap.run_as or '(no AD identity)'} / local user {cap.user}")
    click.echo(f"roles      {', '.join(cap.role_names) or '(none)'}")
    if not cap.admitted:
        click.echo(f"admitted   no: {cap.reason}")
        return
    click.echo("admitted   yes")
    for c in cap.commands:
        click.echo("")
        click.echo(f"{c.name}  ->  {' '.join([c.command.path, *c.command.args])}")
        click.echo(
            f"  granted by {', '.join(c.roles)} ({', '.join(c.capabilities)}); timeout {c.command.timeout:g}s"
        )
        for p in c.command.parameters:
            spelled = p.name.upper() if p.positional else "/".join(p.spellings)
            need = "required" if p.required else "optional"
            allowed = "" if p.flag else ": " + " | ".join(k.describe() for k in p.constraints)
            click.echo(f"  {spelled} ({need}){allowed}")


@endpoint.command("capability")
@click.argument("name")
@click.option("--user", "user", required=True, help="The AD user (jdoe, CORP\\jdoe or jdoe@REALM).")
@click.option(
    "--group",
    "groups",
    multiple=True,
    help="Take the user's groups from here (name or SID, repeatable) instead of the directory's tokenGroups.",
)
@_config_option
@json_option
@host_session_options
def capability_command(
    name: str, user: str, groups: tuple[str, ...], config: Path | None, as_json: bool, **params: Any
) -> None:
    """Show the commands USER may run on endpoint NAME, merged over their roles (Get-PSSessionCapability).

    Exit 0 when the user is admitted, 1 when not (the reason is printed). The user's groups come from the directory (tokenGroups: nested groups count), read as this
    host's computer account; --group gives them instead (no directory needed).

    \b
    Example:
      eval "$(credo lab env --host worker1)"
      credo endpoint capability helpdesk --user jdoe
      credo endpoint capability helpdesk --user jdoe --group 'CORP\\Helpdesk' --config ./helpdesk.toml
    """
    definition = _load(name, config)
    if groups:
        token = UserToken.of(user, groups)
    else:
        from credo.endpoint.directory import resolve_token
        from credo.gmsa.session import HostSession

        with HostSession(session_settings(params)) as session:
            token = resolve_token(session.directory, user)
    cap = effective_capability(definition, token)
    if as_json:
        emit_json(_capability_json(cap))
    else:
        _print_capability(cap)
    if not cap.admitted:
        raise SystemExit(1)  # a negative answer (main.py: exit 1)


# ---- list ----


@endpoint.command("list")
@_config_option
@json_option
def list_command(config: Path | None, as_json: bool) -> None:
    """List the endpoints under $CREDO_ENDPOINTS_DIR (default /etc/credo/endpoints), or --config FILE.

    \b
    Example:
      credo endpoint list --json
    """
    paths = [config] if config is not None else list_endpoints()
    rows: list[dict[str, Any]] = []
    for path in paths:
        try:
            d = load_definition(path)
        except DefinitionError as exc:
            if config is not None:
                raise
            rows.append({"name": path.stem, "file": str(path), "valid": False, "error": exc.message})
            continue
        rows.append({
            "name": d.name,
            "file": str(d.path),
            "valid": True,
            "description": d.description,
            "run_as": d.run_as,
            "user": d.user,
            "required_groups": d.required_groups.describe() if d.required_groups else None,
            "roles": {r.group: list(r.capabilities) for r in d.roles},
            "commands": sorted({c.name for cap in d.capabilities for c in cap.commands}),
        })  # fmt: skip
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(f"no endpoints in {endpoints_dir()}", err=True)
        return
    for row in rows:
        if not row["valid"]:
            click.echo(f"{row['name']}  INVALID: {row['error']}")
            continue
        roles = ", ".join(row["roles"])
        click.echo(f"{row['name']}  run as {row['run_as'] or '-'} / {row['user']}  roles: {roles}  "
                   f"commands: {', '.join(row['commands'])}")  # fmt: skip


# -- transcripts (issue 13 point 3) ---------------------------------------------------------------


@endpoint.command("verify-transcript")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def verify_transcript(file: Path, as_json: bool) -> None:
    """Check a session transcript's hash chain and its asciicast recording.

    \b
    Exit status: 0 intact (also "incomplete": a session that has no end record, as after a
    kill -9, is not tampering), 1 tampered (the first bad line and why), 2 not a transcript.

    \b
    Example:
      credo endpoint verify-transcript /var/log/credo/endpoints/helpdesk-20261201T101500Z-1a2b3c4d5e6f.jsonl
    """
    from credo.endpoint.transcript import verify

    result = verify(file)
    if as_json:
        emit_json(result.to_dict())
    else:
        emit_mapping(
            {
                "status": result.status,
                "file": result.path,
                "records": result.records,
                "line": result.line,
                "reason": result.reason,
                "commands": result.commands,
                "refusals": result.refusals,
                "unfinished": ", ".join(map(str, result.unfinished)),
                "recording": result.recording,
            }
        )
    sys.exit(1 if result.status == "tampered" else 0)


# -- serve (sshd's ForceCommand) --------------------------------------------------------------------


@endpoint.command("serve")
@click.argument("name", required=False)
@click.option(
    "--config",
    help="The endpoint file, instead of NAME: one the agent serves (its endpoints directory, or "
    "listed under [endpoints] files in the agent's config); any other is refused.",
)
def serve_command(name: str | None, config: str | None) -> None:
    """The login side of endpoint NAME: set it as sshd's ForceCommand for the endpoint's users.

    It runs as the login user and decides nothing: the credo agent (root) admits the user by
    their AD groups, matches each line, runs granted commands as the endpoint's gMSA and writes
    the transcript. With a command on the ssh command line it runs that line and exits with its
    status; otherwise it offers a prompt with help and completion. (The `credo` script runs
    this without loading the CLI: see credo.launch.)

    With --config FILE instead of NAME, FILE must be one the agent serves (in its endpoints
    directory or listed under [endpoints] files in its config): a login never chooses its rules.

    \b
    Example (sshd_config):
      Match Group helpdesk-users
          ForceCommand /usr/local/bin/credo endpoint serve helpdesk
    """
    from credo.endpoint.shell import serve

    if name is None and config is None:
        raise InputError("give the endpoint's NAME or --config FILE", hint="credo endpoint serve helpdesk")
    raise SystemExit(serve(name or "", config))
