"""``credo agent``: run the resident credential daemon, ask it for status, make it refresh."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from credo.agent.config import DEFAULT_CONFIG
from credo.cli.output import emit_json, json_option

__all__ = ["agent"]


@click.group()
def agent() -> None:
    """The resident credential daemon: keytabs and ccaches of many gMSAs kept fresh.

    \b
    Example:
      credo agent run --config examples/agent.toml
      credo agent status
      credo run --as svcauto -- ldapwhoami -Q      # one socket round trip, then exec
    """


@agent.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), envvar="CREDO_AGENT_CONFIG",
              default=DEFAULT_CONFIG, show_default=True, help="The agent's TOML configuration.")  # fmt: skip
@click.option("--check", is_flag=True, help="Only check the configuration, then exit.")
def agent_run(config_path: Path, check: bool) -> None:
    """Serve the configured accounts until SIGTERM (SIGHUP reloads the configuration).

    \b
    Example:
      credo agent run --config examples/agent.toml
      credo agent run --config /etc/credo/agent.toml --check
    """
    from credo.agent.config import load_config

    if check:
        config = load_config(config_path)
        click.echo(f"{config_path}: {len(config.accounts)} account(s), socket {config.socket}")
        return
    from credo.agent.daemon import Agent

    agent = Agent(config_path)
    _setup_logging(agent.config.log_format)
    agent.run()


def _setup_logging(log_format: str) -> None:
    root = logging.getLogger()
    root.setLevel(min(root.level, logging.INFO))
    if log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JsonFormatter())
        root.handlers[:] = [handler]


class _JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, account (the gMSA the line is about, or
    null) and message; with a traceback, ``exception`` too. A line is about an account when its
    call passes ``extra={"account": ...}`` or, as the daemon's do, starts with ``"%s: "`` and
    the account's name."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "account": _account_of(record),
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


def _account_of(record: logging.LogRecord) -> str | None:
    account = getattr(record, "account", None)
    if isinstance(account, str):
        return account
    args = record.args
    if isinstance(record.msg, str) and record.msg.startswith("%s: ") and isinstance(args, tuple) and args:
        return str(args[0])
    return None


@agent.command("status")
@json_option
def agent_status(as_json: bool) -> None:
    """Per account: kvno, last and next refresh, outputs, the DC used, the last error and its fix.

    \b
    Example:
      credo agent status --json
    """
    from credo.agent.client import AgentClient

    accounts = AgentClient().status()
    if as_json:
        emit_json(accounts)
        return
    for a in accounts:
        line = f"{a['account']}: kvno {a['kvno']}, refreshed {a['last_refresh'] or 'never'} from {a['dc'] or '-'}, next {a['next_refresh']}"
        click.echo(line)
        for out in a["outputs"]:
            click.echo(f"  output {out}")
        if a["error"]:
            click.echo(f"  error ({a['error']['cause']}): {a['error']['message']}")
            if a["error"]["hint"]:
                click.echo(f"  hint: {a['error']['hint']}")
        for t in a.get("tokens", []):
            click.echo(f"  token {t['path']} ({t['audience']}, group {t['group']}): valid until "
                       f"{t['expires_at'] or '-'}, next {t['next_refresh']}")  # fmt: skip
            if t["error"]:
                click.echo(f"    error ({t['error']['cause']}): {t['error']['message']}")
                if t["error"]["hint"]:
                    click.echo(f"    hint: {t['error']['hint']}")


@agent.command("refresh")
@click.argument("account")
@json_option
def agent_refresh(account: str, as_json: bool) -> None:
    """Refresh ACCOUNT now and show its state.

    \b
    Example:
      credo agent refresh svcauto
    """
    from credo.agent.client import AgentClient

    state: dict[str, Any] = AgentClient().refresh(account)
    if as_json:
        emit_json(state)
    elif state.get("error"):
        from credo.errors import CredoError

        raise CredoError(f"{account}: {state['error']['message']}", hint=state["error"]["hint"])
    else:
        click.echo(f"{account}: kvno {state['kvno']}, refreshed from {state['dc']}")
