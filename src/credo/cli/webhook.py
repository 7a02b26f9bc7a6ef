"""``credo webhook create|list|show|rotate|disable|enable|delete``: signed webhooks on the server."""

from __future__ import annotations

from typing import Any

import click

from credo.automation.api_tokens import parse_lifetime
from credo.cli.api import client_from, with_api
from credo.cli.output import emit_json, emit_mapping, json_option

__all__ = ["webhook"]


@click.group()
def webhook() -> None:
    """URLs that start a runbook when called with a valid signature (see docs/control-plane.md).

    \b
    Example:
      credo webhook create ticket --runbook intake --group tier1 --parameter ticket
    """


@webhook.command("create")
@click.argument("name")
@click.option("--runbook", required=True, help="The published runbook it starts.")
@click.option("--group", required=True, help="The worker group that runs it.")
@click.option("--parameter", required=True, help="The runbook parameter that receives the request body.")
@click.option("--expires", metavar="DURATION", help="Refuse calls after this long (30m, 12h, 90d, 2w).")
@click.option("--rate", "rate_per_minute", type=click.IntRange(1, 6000), default=60, show_default=True,
              help="Calls per minute (a burst of 10 more).")  # fmt: skip
@with_api
@json_option
def webhook_create(name: str, runbook: str, group: str, parameter: str, expires: str | None,
                   rate_per_minute: int, as_json: bool, **params: Any) -> None:  # fmt: skip
    """Create a webhook; prints its URL and signing secret, which are shown this once.

    \b
    Example:
      credo webhook create ticket --runbook disable-user --group tier1 --parameter ticket --expires 30d
    """
    body: dict[str, Any] = {"name": name, "runbook": runbook, "group": group, "parameter": parameter,
                            "rate_per_minute": rate_per_minute}  # fmt: skip
    if expires:
        body["expires_seconds"] = int(parse_lifetime(expires).total_seconds())
    result = client_from(params).create_webhook(body)
    if as_json:
        emit_json(result)
        return
    click.echo(f"url:    {result['url']}")
    click.echo(f"secret: {result['secret']}")
    click.echo(
        "credo: the URL and the secret are shown this once; store them where the sender reads them", err=True
    )


@webhook.command("list")
@with_api
@json_option
def webhook_list(as_json: bool, **params: Any) -> None:
    """List webhooks (never their URL or secret).

    \b
    Example:
      credo webhook list
    """
    result = client_from(params).webhooks()
    if as_json:
        emit_json(result)
        return
    for w in result:
        state = "enabled" if w["enabled"] else "disabled"
        click.echo(
            f"{w['name']:<24} {w['runbook']:<20} {w['group']:<12} {state:<8} expires {w['expires_at'] or 'never'}"
        )


@webhook.command("show")
@click.argument("name")
@with_api
@json_option
def webhook_show(name: str, as_json: bool, **params: Any) -> None:
    """A webhook's settings.

    \b
    Example:
      credo webhook show ticket
    """
    result = client_from(params).webhook(name)
    emit_json(result) if as_json else emit_mapping(result, title=f"webhook {name}")


@webhook.command("rotate")
@click.argument("name")
@click.option("--overlap", default="24h", show_default=True, metavar="DURATION",
              help="How long the old secret stays accepted (0 for none).")  # fmt: skip
@with_api
@json_option
def webhook_rotate(name: str, overlap: str, as_json: bool, **params: Any) -> None:
    """A new signing secret, shown once; the URL stays the same.

    \b
    Example:
      credo webhook rotate ticket --overlap 24h
    """
    seconds = 0 if overlap.strip() == "0" else int(parse_lifetime(overlap).total_seconds())
    result = client_from(params).rotate_webhook(name, seconds)
    if as_json:
        emit_json(result)
        return
    click.echo(f"secret: {result['secret']}")
    click.echo(f"credo: the previous secret is accepted until {result['previous_until']}", err=True)


@webhook.command("disable")
@click.argument("name")
@with_api
def webhook_disable(name: str, **params: Any) -> None:
    """Refuse its calls (with the same 404 as an unknown URL).

    \b
    Example:
      credo webhook disable ticket
    """
    client_from(params).set_webhook_enabled(name, False)
    click.echo(f"webhook {name}: disabled")


@webhook.command("enable")
@click.argument("name")
@with_api
def webhook_enable(name: str, **params: Any) -> None:
    """Accept its calls again.

    \b
    Example:
      credo webhook enable ticket
    """
    client_from(params).set_webhook_enabled(name, True)
    click.echo(f"webhook {name}: enabled")


@webhook.command("delete")
@click.argument("name")
@with_api
def webhook_delete(name: str, **params: Any) -> None:
    """Delete a webhook: its URL answers 404 from now on.

    \b
    Example:
      credo webhook delete ticket
    """
    client_from(params).delete_webhook(name)
    click.echo(f"webhook {name}: deleted")
