"""Every key of the --json output of `credo account` and `credo kds` is documented in README.md."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.identity import credo

TITLE = "## Managing accounts and KDS root keys: `credo account`, `credo kds`"


def readme_section() -> str:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = text.index(TITLE)
    end = text.index("\n## ", start + len(TITLE))
    return text[start:end]


def keys_of(data: object) -> set[str]:
    if isinstance(data, list):
        return set().union(*(keys_of(item) for item in data)) if data else set()
    if isinstance(data, dict):
        return set(data) | set().union(*(keys_of(v) for v in data.values() if isinstance(v, list | dict)))
    return set()


def test_json_outputs_are_documented(admin_env: dict[str, str]) -> None:
    section = readme_section()
    outputs = [
        ("account", "get", "svcauto", "--json"),
        ("account", "list", "--json"),
        ("kds", "list", "--json"),
    ]
    for argv in outputs:
        data = json.loads(credo(*argv, env=admin_env, check=True).stdout)
        for key in keys_of(data):
            assert f'"{key}"' in section, f"{' '.join(argv)}: key {key!r} is not documented in README.md"
    for command in ("kds add", "kds list", "account new", "account get", "account list", "account set",
                    "account remove", "account link", "account install", "account uninstall"):  # fmt: skip
        assert f"`{command}" in section or command.split()[1] in section, command
