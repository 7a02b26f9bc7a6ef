"""``credo token get``: an Entra ID access token through the job's federated token (issue 14).

The command line twin of ``credo.runbook.token``, for bash runbooks and for trying a federated
credential by hand: ``az``-free, it posts the client-credentials grant with the job's token as
client assertion (RFC 7523 §2.2) to ``{authority}/{tenant}/oauth2/v2.0/token``. The access token
goes to stdout only; it is never logged, and errors never carry it.
"""

from __future__ import annotations

import click

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
    """Cloud tokens for jobs and services with a workload identity.

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
