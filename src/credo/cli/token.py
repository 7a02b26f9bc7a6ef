"""``credo token get``: an Entra ID access token through the job's federated token (issue 14);
``credo token create|list|revoke``: the server's named API tokens for automation (issue 15).

The command line twin of ``credo.runbook.token``, for bash runbooks and for trying a federated
credential by hand: ``az``-free, it posts the client-credentials grant with the job's token as
client assertion (RFC 7523 §2.2) to ``{authority}/{tenant}/oauth2/v2.0/token``. The access token
goes to stdout only; it is never logged, and errors never carry it.
"""

from __future__ import annotations

from typing import Any

import click

from credo.cli.api import client_from, with_api
from credo.cli.output import emit_json, json_option
from credo.errors import (
    CredoError,
    EnvironmentProblem,
    InputError,
    NotFoundError,
    NotPermittedError,
    UnreachableError,
)
from credo.runbook import TokenError, token_response

__all__ = ["token"]

# AADSTS codes that mean "no such thing there" or "a bad argument" rather than "not allowed".
_NOT_FOUND = {90002, 700016, 7000229, 500011}
_INPUT = {70011, 1002012}
_KINDS: dict[str, type[CredoError]] = {
    "environment": EnvironmentProblem,
    "input": InputError,
    "unreachable": UnreachableError,
    "refused": NotPermittedError,
}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def token() -> None:
    """Cloud tokens for jobs (get); the server's API tokens for automation (create, list, revoke).

    \b
    Example (in a job of a group with --token-audience api://AzureADTokenExchange):
      credo token get --tenant-id contoso.onmicrosoft.com --client-id 00000000-0000-0000-0000-000000000000 \\
          --scope https://graph.microsoft.com/.default
    """


@token.command("get")
@click.option("--tenant-id", required=True, help="The target tenant: its id (GUID) or a verified domain.")
@click.option(
    "--client-id", required=True, help="The app (client) id whose federated credential trusts credo."
)
@click.option(
    "--scope", required=True, help="One resource's /.default, e.g. https://graph.microsoft.com/.default."
)
@click.option(
    "--authority-host",
    default=None,
    help="Default: AZURE_AUTHORITY_HOST, else https://login.microsoftonline.com.",
)
@json_option
def get(tenant_id: str, client_id: str, scope: str, authority_host: str | None, as_json: bool) -> None:
    """Trade AZURE_FEDERATED_TOKEN_FILE's token for an Entra ID access token; print it.

    \b
    Output: the access token alone on stdout, or with --json
    {"token_type", "expires_in", "expires_on", "access_token"}.
    Exit codes: 3 not in a job with an Azure token, 4 no answer, 5 refused (the AADSTS code's
    meaning and fix in the hint), 6 no such tenant or app there, 2 a bad argument.

    \b
    Example (a bash runbook calling Microsoft Graph in another tenant):
      TOKEN=$(credo token get --tenant-id contoso.onmicrosoft.com --client-id "$APP_ID" \\
          --scope https://graph.microsoft.com/.default)
      curl -sH "Authorization: Bearer $TOKEN" https://graph.microsoft.com/v1.0/organization
    """
    try:
        answer = token_response(
            tenant_id=tenant_id, client_id=client_id, scope=scope, authority_host=authority_host
        )
    except TokenError as exc:
        kind = _KINDS.get(exc.kind, CredoError)
        if exc.code in _NOT_FOUND:
            kind = NotFoundError
        elif exc.code in _INPUT:
            kind = InputError
        raise kind(exc.message, hint=exc.hint) from None
    if as_json:
        emit_json(answer)
    else:
        click.echo(answer["access_token"])


@token.command("create")
@click.argument("name")
@click.option("--expires", required=True, help="Lifetime: 30m, 12h, 90d or 2w (at most 366d).")
@click.option(
    "--role",
    type=click.Choice(["reader", "operator", "author", "admin"]),
    help="The token's role on all runbooks and worker groups (default: yours).",
)
@with_api
@json_option
def token_create(name: str, expires: str, role: str | None, as_json: bool, **params: Any) -> None:
    """Create an API token for automation; it is printed this once (the server keeps its hash).

    \b
    Example:
      credo token create ci-deploy --expires 90d --role operator
      CREDO_TOKEN=credo_... credo job list
    """
    created = client_from(params).create_token(name, expires, role)
    if as_json:
        emit_json(created)
        return
    click.echo(created["token"])
    click.echo(
        f"credo: token {created['name']} (id {created['id']}) expires {created['expires_at']}; "
        "it is shown only now",
        err=True,
    )


@token.command("list")
@with_api
@json_option
def token_list(as_json: bool, **params: Any) -> None:
    """List API tokens: id, name, role, created, expires, last use (never the tokens).

    \b
    Example:
      credo token list
    """
    result = client_from(params).tokens()
    if as_json:
        emit_json(result)
        return
    click.echo(f"{'ID':<9} {'NAME':<20} {'ROLE':<9} {'CREATED':<26} {'EXPIRES':<26} {'LAST USE':<26} STATE")
    for t in result:
        state = "revoked" if t["revoked"] else "active"
        click.echo(
            f"{t['id']:<9} {t['name']:<20} {t['role'] or '(creator)':<9} {t['created_at']:<26} "
            f"{t['expires_at']:<26} {t['last_used_at'] or 'never':<26} {state}"
        )


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@with_api
@json_option
def token_revoke(token_id: str, as_json: bool, **params: Any) -> None:
    """Revoke an API token by its id (``credo token list``): it stops working at once.

    \b
    Example:
      credo token revoke 1f3a9c2e
    """
    revoked = client_from(params).revoke_token(token_id)
    if as_json:
        emit_json(revoked)
        return
    click.echo(f"revoked token {revoked['name']} ({revoked['id']})")
