"""Issue 13 point 4: every `credo endpoint` command takes --config FILE, and `serve --config`
names only a definition the agent serves (its endpoints directory or its config's [endpoints]
files): a socket caller must never choose the file that grants it commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from credo.agent.config import AgentConfig, ConfigError, EndpointsConfig, load_config
from credo.agent.endpoints import _definition
from credo.cli.endpoint import endpoint
from credo.endpoint.shell import _arguments
from credo.errors import InputError, NotPermittedError
from tests.endpoint.test_definition import EXAMPLE


def _invoke(*args: str, endpoints: Path) -> tuple[int, str]:
    result = CliRunner().invoke(endpoint, list(args), env={"CREDO_ENDPOINTS_DIR": str(endpoints)})
    return result.exit_code, result.output


def test_list_lint_and_capability_take_config_instead_of_the_directory(tmp_path: Path) -> None:
    empty = tmp_path / "endpoints"
    empty.mkdir()
    elsewhere = tmp_path / "review" / "helpdesk.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(EXAMPLE.read_text())
    code, out = _invoke("list", "--json", endpoints=empty)
    assert (code, json.loads(out)) == (0, [])  # nothing in the directory
    code, out = _invoke("list", "--config", str(elsewhere), "--json", endpoints=empty)
    assert code == 0 and [(r["name"], r["file"]) for r in json.loads(out)] == [("helpdesk", str(elsewhere))]
    code, out = _invoke("lint", "--config", str(elsewhere), "--json", endpoints=empty)
    assert code == 0 and json.loads(out)["file"] == str(elsewhere), out
    code, out = _invoke(
        "capability", "helpdesk", "--config", str(elsewhere), "--user", "jdoe", "--group", "CORP\\Helpdesk",
        "--json", endpoints=empty,
    )  # fmt: skip
    assert code == 0 and json.loads(out)["admitted"], out


def test_serve_arguments() -> None:
    assert _arguments(["helpdesk"]) == ("helpdesk", None)
    assert _arguments(["--config", "/etc/x.toml"]) == ("", "/etc/x.toml")
    assert _arguments(["--config=/etc/x.toml", "x"]) == ("x", "/etc/x.toml")
    assert _arguments(["x", "--config", "/etc/x.toml"]) == ("x", "/etc/x.toml")
    for bad in ([], ["a", "b"], ["--config"], ["--config="], ["-v", "x"], ["--config", "a", "--config", "b"]):
        assert _arguments(bad) is None, bad


@pytest.fixture
def served(tmp_path: Path) -> SimpleNamespace:
    """An agent's view: an endpoints directory with helpdesk.toml, and one listed file elsewhere."""
    directory = tmp_path / "endpoints"
    directory.mkdir()
    (directory / "helpdesk.toml").write_text(EXAMPLE.read_text())
    listed = tmp_path / "ops" / "db-desk.toml"
    listed.parent.mkdir()
    listed.write_text(EXAMPLE.read_text())
    config = AgentConfig(tmp_path / "agent.toml", endpoints=EndpointsConfig(directory, (listed,)))
    return SimpleNamespace(agent=SimpleNamespace(config=config), directory=directory, listed=listed)


def test_the_agent_serves_its_own_definitions_only(served: SimpleNamespace, tmp_path: Path) -> None:
    agent = served.agent
    assert _definition(agent, "helpdesk", None).path == served.directory / "helpdesk.toml"
    assert _definition(agent, "", str(served.listed)).name == "db-desk"
    assert _definition(agent, "helpdesk", str(served.directory / "helpdesk.toml")).name == "helpdesk"
    # A file the caller wrote, granting itself anything: refused, in one line, whatever its content.
    own = tmp_path / "mine.toml"
    own.write_text(EXAMPLE.read_text())
    with pytest.raises(NotPermittedError) as refused:
        _definition(agent, "", str(own))
    assert "is not an endpoint definition this agent serves" in refused.value.message
    assert "\n" not in refused.value.message and "[endpoints] files" in str(refused.value.hint)
    # A link of the caller's to a served file selects that file (its resolved path is loaded).
    link = tmp_path / "link.toml"
    link.symlink_to(served.listed)
    assert _definition(agent, "", str(link)).path == served.listed
    with pytest.raises(InputError, match="give an absolute path"):
        _definition(agent, "", "ops/db-desk.toml")
    with pytest.raises(InputError, match="defines endpoint db-desk, not helpdesk"):
        _definition(agent, "helpdesk", str(served.listed))
    with pytest.raises(InputError, match="invalid endpoint name"):
        _definition(agent, "../ops/db-desk", None)


def test_a_served_definition_others_may_write_is_refused(served: SimpleNamespace) -> None:
    served.listed.chmod(0o664)
    with pytest.raises(NotPermittedError, match="must be root's and writable by root only"):
        _definition(served.agent, "", str(served.listed))
    served.listed.chmod(0o644)
    os.chown(served.listed, 65534, 0)  # nobody's
    with pytest.raises(NotPermittedError, match="must be root's"):
        _definition(served.agent, "", str(served.listed))
    os.chown(served.listed, 0, 0)
    assert _definition(served.agent, "", str(served.listed)).name == "db-desk"
    # A root file in a directory nobody may write into: nobody could swap it after the check.
    served.listed.parent.chmod(0o777)
    with pytest.raises(NotPermittedError, match=r"the directory above .* must be root's"):
        _definition(served.agent, "", str(served.listed))
    served.listed.parent.chmod(0o1777)  # sticky, like /tmp: others cannot rename root's file
    assert _definition(served.agent, "", str(served.listed)).name == "db-desk"


def test_the_agent_config_lists_endpoint_files(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[endpoints]\ndir = "/etc/credo/endpoints"\nfiles = ["/srv/ops/db.toml"]\n')
    loaded = load_config(config).endpoints
    assert loaded == EndpointsConfig(Path("/etc/credo/endpoints"), (Path("/srv/ops/db.toml"),))
    config.write_text('[endpoints]\nfiles = ["ops/db.toml"]\n')
    with pytest.raises(ConfigError, match=r"endpoints\.files: ops/db\.toml: give an absolute path"):
        load_config(config)


def test_tcp_addresses_as_proc_net_shows_them() -> None:
    from credo.agent.endpoints import _address

    assert _address("0100007F:D431") == "127.0.0.1 54321"
    assert _address("0000000000000000FFFF00000100007F:0016") == "127.0.0.1 22"  # v4-mapped
    assert _address("B80D0120000000000000000001000000:01BB") == "2001:db8::1 443"
