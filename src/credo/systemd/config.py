"""The output paths of an agent config, which the agent's unit must be allowed to write.

Only what the unit needs is read here; the agent (credo.agent) owns the config's full schema and
its validation. An output is any ``[[account.<kind>]]`` table with a ``path``: ``ccache`` and
``keytab`` today, and whatever kind the agent adds later (token files) without a change here.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from credo.errors import EnvironmentProblem, InputError, NotFoundError

__all__ = ["agent_output_paths"]


def agent_output_paths(config: Path) -> list[Path]:
    """The absolute output paths in the agent config ``config``, in file order."""
    try:
        with config.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError as exc:
        raise NotFoundError(
            f"no agent config at {config}", hint="write it first (docs/systemd.md), or name it with --config"
        ) from exc
    except OSError as exc:
        raise EnvironmentProblem(f"cannot read {config}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{config} is not valid TOML: {exc}") from exc
    return _outputs(config, data)


def _outputs(config: Path, data: dict[str, Any]) -> list[Path]:
    accounts = data.get("account", [])
    if not isinstance(accounts, list):
        raise InputError(f"{config}: 'account' must be an array of tables ([[account]])")
    paths: list[Path] = []
    for account in accounts:
        if not isinstance(account, dict):
            raise InputError(f"{config}: 'account' must be an array of tables ([[account]])")
        name = account.get("name", "?")
        for kind, outputs in account.items():
            if not isinstance(outputs, list):
                continue
            for output in outputs:
                if not isinstance(output, dict) or "path" not in output:
                    continue
                path = output["path"]
                if not isinstance(path, str) or not path.startswith("/"):
                    raise InputError(
                        f"{config}: account {name!r}: {kind} path {path!r} is not an absolute path"
                    )
                paths.append(Path(path))
    return paths
