"""The command line: entry points, help with examples, and the error boundary."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click
import pytest

from credo import __version__
from credo.cli.main import cli
from tests.support.identity import credo, run


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        path = (*prefix, name)
        found.append(path)
        if isinstance(command, click.Group):
            found += all_commands(command, path)
    return found


def test_console_script_and_module_agree() -> None:
    script = Path(sys.executable).parent / "credo"
    module = credo("--version", check=True)
    assert module.stdout.strip() == f"credo, version {__version__}"
    assert run([script, "--version"], check=True).stdout == module.stdout


@pytest.mark.parametrize("path", all_commands(cli))
def test_every_command_explains_itself_with_an_example(path: tuple[str, ...]) -> None:
    proc = credo(*path, "--help", check=True)
    assert "Example" in proc.stdout, path


def test_every_command_that_prints_data_has_json() -> None:
    for path in [
        ("lab", "up"),
        ("lab", "status"),
        ("lab", "env"),
        ("gmsa", "test"),
        ("gmsa", "show"),
        ("gmsa", "keytab"),
        ("audit",),
        ("audit", "memberships"),
    ]:
        assert "--json" in credo(*path, "--help", check=True).stdout


def test_errors_are_one_line_and_traceback_only_with_debug(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}
    plain = credo("lab", "env", "--dir", tmp_path / "none", env=env)
    assert plain.returncode == 3
    assert plain.stderr.splitlines()[0].startswith("credo: error: no lab in ")
    assert "Traceback" not in plain.stderr
    debug = credo("--debug", "lab", "env", "--dir", tmp_path / "none", env=env)
    assert debug.returncode == 3
    assert "Traceback" in debug.stderr
