"""Fixtures for the account lifecycle tests: an admin environment, samba-tool on the DC's own
database (the independent oracle), and accounts that are removed whatever a test does."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from credo.lab import Lab
from tests.support.identity import credo, run


def samba_tool(lab: Lab, *args: str, env: dict[str, str] | None = None, check: bool = True) -> Any:
    argv = ["samba-tool", *args, "-H", str(lab.paths.sam_ldb), "-s", str(lab.paths.smb_conf)]
    return run(argv, env, check=check)


@pytest.fixture(scope="session")
def admin_env(as_identity: Callable[..., dict[str, str]]) -> dict[str, str]:
    return as_identity("admin")


@pytest.fixture
def account_names(lab: Lab, admin_env: dict[str, str]) -> Iterator[Callable[[str], str]]:
    """``name("web")`` -> a fresh account name (<= 15 characters), removed after the test."""
    made: list[str] = []

    def make(prefix: str) -> str:
        name = f"{prefix[:7]}{uuid.uuid4().hex[:6]}"
        made.append(name)
        return name

    yield make
    for name in made:
        proc = credo("account", "get", name, "--json", env=admin_env)
        if proc.returncode == 0:
            for computer in json.loads(proc.stdout)["linked_computers"]:
                credo("account", "unlink", name, "--computer", computer, env=admin_env)
            credo("account", "remove", name, "--yes", env=admin_env, check=True)
