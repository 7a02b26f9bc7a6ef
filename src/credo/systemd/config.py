"""The paths of an agent config that the agent's unit must let it write.

Only what the unit needs is read here; the agent (credo.agent.config) owns the config's schema and
checks it key by key. Read: ``socket`` (its directory holds the socket and the agent's private
work directory), ``state_dir``, and every ``[[account.<kind>]]`` table with a ``path`` (an
output: ``keytab`` and ``ccache`` today, and any kind the agent adds later without a change here).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from credo.errors import InputError, NotFoundError
from credo.systemd.paths import AGENT_SOCKET, AGENT_STATE_DIR
from credo.tomlread import read_toml

__all__ = ["AgentPaths", "read_agent_paths"]


@dataclass(frozen=True)
class AgentPaths:
    """What the agent writes: output files, its socket, its state directory (the agent's defaults
    when a config does not say)."""

    outputs: tuple[Path, ...] = ()
    socket: Path = AGENT_SOCKET
    state_dir: Path = AGENT_STATE_DIR


def read_agent_paths(config: Path) -> AgentPaths:
    if not config.exists():
        raise NotFoundError(
            f"no agent config at {config}", hint="write it first (docs/agent.md), or name it with --config"
        )
    data = read_toml(config)  # the one reader of credo's TOML files (credo.tomlread)
    return AgentPaths(
        outputs=tuple(_outputs(config, data)),
        socket=_absolute(config, "socket", data.get("socket", str(AGENT_SOCKET))),
        state_dir=_absolute(config, "state_dir", data.get("state_dir", str(AGENT_STATE_DIR))),
    )


def _absolute(config: Path, key: str, value: Any) -> Path:
    if not isinstance(value, str) or not value.startswith("/"):
        raise InputError(f"{config}: {key}: {value!r} is not an absolute path")
    return Path(value)


def _outputs(config: Path, data: dict[str, Any]) -> list[Path]:
    accounts = data.get("account", [])
    if not isinstance(accounts, list) or not all(isinstance(a, dict) for a in accounts):
        raise InputError(f"{config}: 'account' must be an array of tables ([[account]])")
    paths: list[Path] = []
    for i, account in enumerate(accounts):
        for kind, outputs in account.items():
            if not isinstance(outputs, list):
                continue
            for j, output in enumerate(outputs):
                if isinstance(output, dict) and "path" in output:
                    paths.append(_absolute(config, f"account[{i}].{kind}[{j}].path", output["path"]))
    return paths
