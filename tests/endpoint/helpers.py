"""Writing endpoint definitions for tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

from credo.endpoint.definition import EndpointDefinition, load_definition
from credo.endpoint.roles import EffectiveCapability, UserToken, effective_capability

HEAD = """\
user = "credo-runner"
run_as = "svcauto$"
"""


def write(tmp_path: Path, body: str, *, name: str = "ep", head: str = HEAD) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(head + textwrap.dedent(body))
    return path


def load(tmp_path: Path, body: str, **kw: str) -> EndpointDefinition:
    return load_definition(write(tmp_path, body, **kw))


def capability(
    tmp_path: Path, body: str, groups: tuple[str, ...] = ("CORP\\Helpdesk",)
) -> EffectiveCapability:
    return effective_capability(load(tmp_path, body), UserToken.of("CORP\\jdoe", groups))
