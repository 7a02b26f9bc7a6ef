"""``credo runbook|group|job``: thin commands over the server's HTTP API (admin token, credo.client)."""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from credo.cli.api import client_from, with_api
from credo.cli.output import emit_json, emit_mapping, json_option
from credo.client import TERMINAL_STATES, Client
from credo.defaults import (
    DEFAULT_MAX_CONCURRENT,
    MAX_CONCURRENT,
    MAX_JOB_LIST,
    MAX_JOB_TIMEOUT,
    MAX_OUTPUT_PAGE,
)
from credo.errors import InputError

__all__ = ["group", "job", "runbook", "workers_list"]


def _read_parameters_file(path: Path | None) -> list[dict[str, Any]]:
    if path is None:
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read parameters from {path}: {exc}") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of parameter declarations")
    return data


# -- runbook ---------------------------------------------------------------------------------------


@click.group()
def runbook() -> None:
    """Runbooks: a draft you edit and test, published versions that jobs run.

    \b
    Example:
      credo runbook create disable-user --file disable_user.py --type python3 \\
          --parameters params.json --description "Disable an AD user"
      credo runbook publish disable-user
    """


@runbook.command("create")
@click.argument("name")
@click.option("--file", "file", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--type", "type_", type=click.Choice(["python3", "bash"]), default="python3", show_default=True)
@click.option("--description")
@click.option("--parameters", "params_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help='JSON list: [{"name": "sam_account_name", "type": "string", "required": true}]')  # fmt: skip
@click.option("--own-token-subject/--group-token-subject", "own_token_subject", default=None,
              help="Its jobs' cloud tokens carry credo:group:G:runbook:NAME where the group allows it "
              "(credo group set G --runbook-subjects); otherwise credo:group:G.")  # fmt: skip
@with_api
@json_option
def runbook_create(
    name: str,
    file: Path,
    type_: str,
    description: str | None,
    params_file: Path | None,
    own_token_subject: bool | None,
    as_json: bool,
    **params: Any,
) -> None:
    """Create runbook NAME from a file (its draft).

    \b
    Example:
      credo runbook create hello --file hello.sh --type bash
    """
    body = {
        "name": name, "type": type_, "description": description,
        "content": base64.b64encode(file.read_bytes()).decode(), "parameters": _read_parameters_file(params_file),
        "own_token_subject": bool(own_token_subject),
    }  # fmt: skip
    result = client_from(params).create_runbook(body)
    emit_json(result) if as_json else click.echo(f"created runbook {name} (draft)")


@runbook.command("update")
@click.argument("name")
@click.option("--file", "file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--description")
@click.option("--parameters", "params_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--own-token-subject/--group-token-subject", "own_token_subject", default=None,
              help="Its jobs' cloud tokens carry credo:group:G:runbook:NAME where the group allows it "
              "(credo group set G --runbook-subjects); otherwise credo:group:G.")  # fmt: skip
@with_api
@json_option
def runbook_update(
    name: str,
    file: Path | None,
    description: str | None,
    params_file: Path | None,
    own_token_subject: bool | None,
    as_json: bool,
    **params: Any,
) -> None:
    """Update the draft of NAME (published versions never change), or its token subject (at once,
    for the jobs that fetch a token from now on).

    \b
    Example:
      credo runbook update hello --file hello.sh
      credo runbook update disable-user --own-token-subject
    """
    body: dict[str, Any] = {"description": description}
    if file is not None:
        body["content"] = base64.b64encode(file.read_bytes()).decode()
    if params_file is not None:
        body["parameters"] = _read_parameters_file(params_file)
    if own_token_subject is not None:
        body["own_token_subject"] = own_token_subject
    result = client_from(params).update_runbook(name, body)
    if as_json:
        emit_json(result)
    elif file is None and description is None and params_file is None and own_token_subject is not None:
        which = "their own token subject" if own_token_subject else "their group's token subject"
        click.echo(f"{name}'s jobs ask for {which}")
    else:
        click.echo(f"updated the draft of {name}")


@runbook.command("publish")
@click.argument("name")
@with_api
@json_option
def runbook_publish(name: str, as_json: bool, **params: Any) -> None:
    """Publish the draft of NAME as its next immutable version.

    \b
    Example:
      credo runbook publish hello
    """
    result = client_from(params).publish_runbook(name)
    emit_json(result) if as_json else click.echo(
        f"published {name} version {result['version']} ({result['content_hash']})"
    )


@runbook.command("list")
@with_api
@json_option
def runbook_list(as_json: bool, **params: Any) -> None:
    """List runbooks.

    \b
    Example:
      credo runbook list --json
    """
    result = client_from(params).runbooks()
    if as_json:
        emit_json(result)
        return
    for rb in result:
        click.echo(
            f"{rb['name']:<24} {rb['type']:<8} published v{rb['published_version'] or '-'}  {rb['description'] or ''}"
        )


@runbook.command("show")
@click.argument("name")
@with_api
@json_option
def runbook_show(name: str, as_json: bool, **params: Any) -> None:
    """Show a runbook, its parameters and versions.

    \b
    Example:
      credo runbook show hello
    """
    result = client_from(params).runbook(name)
    if as_json:
        emit_json(result)
        return
    result.pop("draft_content", None)
    result["parameters"] = (
        ", ".join(f"{p['name']}:{p['type']}{'*' if p['required'] else ''}" for p in result["parameters"])
        or "-"
    )
    result["versions"] = (
        ", ".join(f"v{v['version']} {v['content_hash'][:19]}" for v in result["versions"]) or "-"
    )
    emit_mapping(result)


@runbook.command("delete")
@click.argument("name")
@with_api
def runbook_delete(name: str, **params: Any) -> None:
    """Delete a runbook and its versions.

    \b
    Example:
      credo runbook delete hello
    """
    client_from(params).delete_runbook(name)
    click.echo(f"deleted {name}")


@runbook.command("test")
@click.argument("name")
@click.option("--group", required=True)
@click.option("-p", "--param", "pairs", multiple=True, help="name=value (JSON value, else a string).")
@with_api
@json_option
def runbook_test(name: str, group: str, pairs: tuple[str, ...], as_json: bool, **params: Any) -> None:
    """Run the draft of NAME once (Azure's Test pane), apart from production jobs, and follow it.

    \b
    Example:
      credo runbook test hello --group tier1 -p who=world
    """
    api = client_from(params)
    result = api.start_job({"runbook": name, "group": group, "parameters": _pairs(pairs)}, test=True)
    _follow(api, result["id"], None, as_json)


# -- group -------------------------------------------------------------------------------------------


@click.group("group")
def group() -> None:
    """Worker groups: which hosts serve them, the gMSA their jobs run as, the local user.

    \b
    Example:
      credo group create tier1 --run-as svcauto --local-user credo-runner --worker 'WORKER1$@CORP.EXAMPLE.TEST'
    """


@group.command("create")
@click.argument("name")
@click.option("--run-as", help="gMSA the jobs run as (none: the worker's local user, no Kerberos identity).")
@click.option("--local-user", help="Local Unix user the jobs run as (default: the worker's own user).")
@click.option(
    "--max-concurrent",
    type=click.IntRange(1, MAX_CONCURRENT),
    default=DEFAULT_MAX_CONCURRENT,
    show_default=True,
    help="Jobs per worker at once.",
)
@click.option(
    "--worker",
    "workers",
    multiple=True,
    help="Computer principal allowed to serve it (repeatable): NAME$@REALM.",
)
@click.option(
    "--allow-system-user",
    is_flag=True,
    help="Let jobs run as root or a system account (refused otherwise).",
)
@with_api
@json_option
def group_create(
    name: str,
    run_as: str | None,
    local_user: str | None,
    max_concurrent: int,
    workers: tuple[str, ...],
    allow_system_user: bool,
    as_json: bool,
    **params: Any,
) -> None:
    """Create worker group NAME.

    \b
    Example:
      credo group create tier1 --run-as svcauto --worker 'WORKER1$@CORP.EXAMPLE.TEST'
    """
    body = {
        "name": name,
        "run_as": run_as,
        "local_user": local_user,
        "max_concurrent": max_concurrent,
        "workers": list(workers),
        "allow_system_user": allow_system_user,
    }
    result = client_from(params).create_group(body)
    emit_json(result) if as_json else click.echo(f"created worker group {name}")


@group.command("list")
@with_api
@json_option
def group_list(as_json: bool, **params: Any) -> None:
    """List worker groups.

    \b
    Example:
      credo group list
    """
    result = client_from(params).groups()
    if as_json:
        emit_json(result)
        return
    for g in result:
        online = sum(1 for w in g["workers"] if w["status"] == "online")
        click.echo(
            f"{g['name']:<16} run as {g['run_as'] or '-':<12} workers {online}/{len(g['workers'])} online"
        )


@group.command("show")
@click.argument("name")
@with_api
@json_option
def group_show(name: str, as_json: bool, **params: Any) -> None:
    """Show a worker group and its workers.

    \b
    Example:
      credo group show tier1
    """
    result = client_from(params).group(name)
    if as_json:
        emit_json(result)
        return
    result["allowed_workers"] = ", ".join(result["allowed_workers"]) or "-"
    result["workers"] = ", ".join(f"{w['principal']} ({w['status']})" for w in result["workers"]) or "-"
    result.update(_identity_rows(result.pop("identity", None) or {}))
    emit_mapping(result)


def _identity_rows(identity: dict[str, Any]) -> dict[str, Any]:
    """The group's workload identity settings as table rows (docs/oidc.md)."""
    if not identity.get("audiences"):
        return {"token_audiences": "- (its jobs get no cloud token)"}
    return {
        "token_audiences": ", ".join(identity["audiences"]),
        "token_lifetime": f"{identity['token_lifetime']} s",
        "runbook_subjects": "yes" if identity.get("runbook_subjects") else "no",
        "azure_tenant_id": identity.get("azure_tenant_id"),
        "azure_client_id": identity.get("azure_client_id"),
        "azure_authority_host": identity.get("azure_authority_host"),
        "aws_role_arn": identity.get("aws_role_arn"),
        "gcp_audience": identity.get("gcp_audience"),
        "gcp_service_account": identity.get("gcp_service_account"),
    }


group.add_command(group_show, "get")


@group.command("set")
@click.argument("name")
@click.option("--token-audience", "audiences", multiple=True,
              help="An audience its jobs may get tokens for (repeatable; replaces the list): "
              "api://AzureADTokenExchange, sts.amazonaws.com, a GCP provider URI.")  # fmt: skip
@click.option("--no-token-audiences", is_flag=True, help="Clear the audiences: its jobs get no token.")
@click.option("--azure-tenant-id", help="The target tenant (GUID); '' clears.")
@click.option("--azure-client-id", help="The app registration's client id (GUID); '' clears.")
@click.option("--azure-authority-host", help="https://login.microsoftonline.com (default), .us, .cn ...")
@click.option("--aws-role-arn", help="arn:aws:iam::ACCOUNT:role/NAME; '' clears.")
@click.option(
    "--gcp-audience",
    help="//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/Q",
)
@click.option("--gcp-service-account", help="NAME@PROJECT.iam.gserviceaccount.com to impersonate; '' clears.")
@click.option("--token-lifetime", type=int, help="Seconds, 60..3600 (default 600).")
@click.option("--runbook-subjects/--no-runbook-subjects", default=None,
              help="Allow its runbooks their own subject credo:group:G:runbook:R; each runbook asks "
              "(credo runbook update R --own-token-subject).")  # fmt: skip
@with_api
@json_option
def group_set(
    name: str,
    audiences: tuple[str, ...],
    no_token_audiences: bool,
    token_lifetime: int | None,
    runbook_subjects: bool | None,
    as_json: bool,
    **params: Any,
) -> None:
    """Set worker group NAME's workload identity: which cloud tokens its jobs get.

    Options left out keep their value. The server checks everything (GUIDs, ARN, provider URI).

    \b
    Example:
      credo group set tier1 --token-audience api://AzureADTokenExchange \\
          --azure-tenant-id 11111111-2222-3333-4444-555555555555 \\
          --azure-client-id 66666666-7777-8888-9999-000000000000
      credo oidc federated-credential --group tier1 --json > fic.json
    """
    body: dict[str, Any] = {}
    if audiences and no_token_audiences:
        raise InputError("--token-audience and --no-token-audiences contradict each other")
    if audiences or no_token_audiences:
        body["audiences"] = list(audiences)
    for option in ("azure_tenant_id", "azure_client_id", "azure_authority_host", "aws_role_arn",
                   "gcp_audience", "gcp_service_account"):  # fmt: skip
        value = params.pop(option)
        if value is not None:
            body[option] = value or None  # '' clears
    if token_lifetime is not None:
        body["token_lifetime"] = token_lifetime
    if runbook_subjects is not None:
        body["runbook_subjects"] = runbook_subjects
    if not body:
        raise InputError("nothing to set", hint="give --token-audience, --azure-tenant-id, ... (see --help)")
    result = client_from(params).update_group(name, body)
    if as_json:
        emit_json(result)
        return
    click.echo(f"updated worker group {name}")
    emit_mapping(_identity_rows(result["identity"]))


@group.command("delete")
@click.argument("name")
@with_api
def group_delete(name: str, **params: Any) -> None:
    """Delete a worker group.

    \b
    Example:
      credo group delete tier1
    """
    client_from(params).delete_group(name)
    click.echo(f"deleted {name}")


# -- job ---------------------------------------------------------------------------------------------


def _pairs(pairs: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise InputError(f"invalid -p {pair!r}", hint="write -p name=value")
        try:
            values[name] = json.loads(raw)
        except ValueError:
            values[name] = raw
    return values


def _follow(api: Client, job_id: str, stream: str | None, as_json: bool) -> dict[str, Any]:
    """Print the job's output as the server's live feed (SSE) brings it; return the ended job."""
    for event in api.output_events(job_id, stream=stream):
        if event.event != "chunk":
            continue  # "end": the job has ended and every chunk came
        chunk = event.data
        if as_json:
            click.echo(json.dumps(chunk))
        else:
            target = sys.stderr if chunk["stream"] != "output" else sys.stdout
            prefix = "" if chunk["stream"] in ("output", "error") else f"{chunk['stream'].upper()}: "
            target.write(prefix + chunk["text"])
            target.flush()
    job = api.job(job_id)
    if not as_json:
        click.echo(
            f"job {job_id}: {job['state']}" + (f" ({job['reason']})" if job.get("reason") else ""), err=True
        )
    return job


@click.group("job")
def job() -> None:
    """Jobs: start a published runbook on a worker group, follow, stop.

    \b
    Example:
      credo job start disable-user --group tier1 -p sam_account_name=jdoe --follow
    """


@job.command("start")
@click.argument("runbook_name")
@click.option("--group", required=True)
@click.option(
    "-p", "--param", "pairs", multiple=True, help="name=value; the value is JSON if it parses, else a string."
)
@click.option(
    "--params-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="JSON object of parameters.",
)
@click.option("--idempotency-key", help="Starting twice with the same key returns the first job.")
@click.option(
    "--timeout", "timeout_seconds", type=click.IntRange(1, MAX_JOB_TIMEOUT), help="Seconds (default 3 h)."
)
@click.option("--wait", is_flag=True, help="Wait until the job ends; exit 0 only if it completed.")
@click.option("--follow", is_flag=True, help="Print its output as it comes, then wait.")
@with_api
@json_option
def job_start(runbook_name: str, group: str, pairs: tuple[str, ...], params_file: Path | None, idempotency_key: str | None,
              timeout_seconds: int | None, wait: bool, follow: bool, as_json: bool, **params: Any) -> None:  # fmt: skip
    """Start the published RUNBOOK on a worker group.

    \b
    Example:
      credo job start disable-user --group tier1 -p sam_account_name=jdoe --follow
    """
    values: dict[str, Any] = {}
    if params_file is not None:
        try:
            loaded = json.loads(params_file.read_text())
        except ValueError as exc:
            raise InputError(f"{params_file}: not JSON ({exc})") from None
        if not isinstance(loaded, dict):
            raise InputError(f"{params_file}: expected a JSON object")
        values.update(loaded)
    values.update(_pairs(pairs))
    api = client_from(params)
    body = {"runbook": runbook_name, "group": group, "parameters": values, "idempotency_key": idempotency_key,
            "timeout_seconds": timeout_seconds}  # fmt: skip
    result = api.start_job(body)
    if not (wait or follow):
        emit_json(result) if as_json else click.echo(result["id"])
        return
    if not as_json:
        click.echo(f"job {result['id']} queued", err=True)
    final = _follow(api, result["id"], None, as_json) if follow else _wait(api, result["id"])
    if as_json and not follow:
        emit_json(final)
    raise SystemExit(0 if final["state"] == "Completed" else 1)


def _wait(api: Client, job_id: str) -> dict[str, Any]:
    while True:
        result = api.job(job_id)
        if result["state"] in TERMINAL_STATES:
            return result
        time.sleep(0.2)


@job.command("list")
@click.option("--state")
@click.option("--group")
@click.option("--limit", type=click.IntRange(1, MAX_JOB_LIST), default=50, show_default=True)
@with_api
@json_option
def job_list(state: str | None, group: str | None, limit: int, as_json: bool, **params: Any) -> None:
    """List recent jobs, newest first.

    \b
    Example:
      credo job list --state Failed
    """
    result = client_from(params).jobs(state=state, group=group, limit=limit)
    if as_json:
        emit_json(result)
        return
    for j in result:
        click.echo(
            f"{j['id']}  {j['state']:<10} {j['runbook']:<20} {j['group']:<10} attempts {j['attempts']}  {j['created_at']}"
        )


@job.command("show")
@click.argument("job_id")
@with_api
@json_option
def job_show(job_id: str, as_json: bool, **params: Any) -> None:
    """Show a job: state, parameters, worker, exit code, each transition with its time.

    \b
    Example:
      credo job show 6f0c...
    """
    result = client_from(params).job(job_id)
    if as_json:
        emit_json(result)
        return
    transitions = result.pop("transitions")
    result["parameters"] = json.dumps(result["parameters"])
    emit_mapping(result)
    for t in transitions:
        click.echo(
            f"  {t['at']}  {t['state']:<10} attempt {t['attempt']} {t['worker'] or ''} {t['detail'] or ''}"
        )


@job.command("output")
@click.argument("job_id")
@click.option("--stream", type=click.Choice(["output", "error", "warning", "verbose", "progress", "debug"]))
@click.option("--follow", is_flag=True, help="Keep printing until the job ends.")
@with_api
@json_option
def job_output(job_id: str, stream: str | None, follow: bool, as_json: bool, **params: Any) -> None:
    """Print a job's output streams (all, or one), optionally live.

    \b
    Example:
      credo job output 6f0c... --stream warning --follow
    """
    api = client_from(params)
    if follow:
        _follow(api, job_id, stream, as_json)
        return
    page = api.output(job_id, stream=stream, limit=MAX_OUTPUT_PAGE)
    if as_json:
        emit_json(page)
        return
    for chunk in page["chunks"]:
        prefix = "" if chunk["stream"] in ("output", "error") else f"{chunk['stream'].upper()}: "
        click.echo(prefix + chunk["text"], nl=False)


@job.command("stop")
@click.argument("job_id")
@with_api
@json_option
def job_stop(job_id: str, as_json: bool, **params: Any) -> None:
    """Stop a job (its process is terminated within seconds).

    \b
    Example:
      credo job stop 6f0c...
    """
    result = client_from(params).stop_job(job_id)
    emit_json(result) if as_json else click.echo(f"job {job_id}: {result['state']}")


@job.command("resume")
@click.argument("job_id")
@with_api
@json_option
def job_resume(job_id: str, as_json: bool, **params: Any) -> None:
    """Run a Suspended job again, from the start, with three more attempts.

    A job is Suspended when its worker was lost three times (Azure's rule).

    \b
    Example:
      credo job resume 6f0c...
    """
    result = client_from(params).resume_job(job_id)
    emit_json(result) if as_json else click.echo(f"job {job_id}: {result['state']}")


# -- workers -----------------------------------------------------------------------------------------


@click.command("list")
@with_api
@json_option
def workers_list(as_json: bool, **params: Any) -> None:
    """List registered workers, online or lost.

    \b
    Example:
      credo worker list
    """
    result = client_from(params).workers()
    if as_json:
        emit_json(result)
        return
    for w in result:
        click.echo(
            f"{w['principal']:<32} {w['group']:<12} {w['status']:<7} last heartbeat {w['last_heartbeat']}"
        )
