"""The units credo.systemd.units renders: their settings, read back by the manual pages' rules,
and `systemd-analyze verify` (systemd 252) on every one, with no warning."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from credo.errors import InputError
from credo.systemd.config import AgentPaths, read_agent_paths
from credo.systemd.paths import agent_ccache_path
from credo.systemd.units import (
    AGENT_CAPABILITIES,
    GmsaCommand,
    UnitFile,
    account_snippet,
    agent_unit,
    gmsa_service,
    gmsa_timer,
)
from tests.systemd.unitparse import environment, exec_argv, settings, split_words

CREDO = Path(sys.executable).with_name("credo")
AGENT_CONFIG = """\
socket = "/run/credo/agent.sock"
state_dir = "/var/lib/credo-state"

[[account]]
name = "svcauto"
allow_users = ["credo-runner"]
allow_groups = []
[[account.ccache]]
path = "/run/credo/ccache/svcauto/credo-runner"
user = "credo-runner"
[[account.keytab]]
path = "/etc/credo/svcauto.keytab"
owner = "root"
group = "root"
mode = "0600"
spns = ["HTTP/web.corp.example.test"]
[[account.keytab]]
path = "/etc/credo/keytabs/web.keytab"

[[account]]
name = "svcweb"
[[account.keytab]]
path = "/srv/web app/http.keytab"
[[account.token]]
path = "/var/lib/web/token"
"""


def verify(directory: Path, *units: UnitFile) -> None:
    """Write ``units`` into ``directory`` and `systemd-analyze verify` them: exit 0, nothing on stderr
    (it warns, with exit 0, about unknown escapes and settings)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is part of the test environment"
    for unit in units:
        (directory / unit.name).write_text(unit.text)
    with contextlib.chdir(directory):
        proc = subprocess.run(
            [analyze, "verify", *(f"./{unit.name}" for unit in units)], capture_output=True, text=True
        )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def values(unit: UnitFile, section: str, key: str) -> list[str]:
    return [value for k, value in settings(unit.text)[section] if k == key]


def one(unit: UnitFile, section: str, key: str) -> str:
    [value] = values(unit, section, key)
    return value


def test_the_paths_the_agent_writes_are_read_from_its_config(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(AGENT_CONFIG)
    assert read_agent_paths(config) == AgentPaths(
        outputs=(
            Path("/run/credo/ccache/svcauto/credo-runner"),
            Path("/etc/credo/svcauto.keytab"),
            Path("/etc/credo/keytabs/web.keytab"),
            Path("/srv/web app/http.keytab"),
            Path("/var/lib/web/token"),
        ),
        socket=Path("/run/credo/agent.sock"),
        state_dir=Path("/var/lib/credo-state"),
    )
    config.write_text('[[account]]\nname = "a"\n')
    assert read_agent_paths(config) == AgentPaths()


def test_the_agent_unit(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(AGENT_CONFIG)
    unit = agent_unit(CREDO, config=config, paths=read_agent_paths(config))
    assert unit.name == "credo-agent.service"
    service = dict(settings(unit.text)["Service"])
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["WatchdogSec"] == "30s" and service["Restart"] == "on-failure"
    assert exec_argv(service["ExecStart"]) == [str(CREDO), "agent", "run", "--config", str(config)]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["RuntimeDirectory"] == "credo" and service["RuntimeDirectoryPreserve"] == "yes"
    assert service["StateDirectory"] == "credo/agent"
    for setting in ("NoNewPrivileges", "PrivateTmp"):
        assert service[setting] == "yes"
    assert service["ProtectSystem"] == "strict" and service["ProtectHome"] == "yes"
    assert service["CapabilityBoundingSet"].split() == list(AGENT_CAPABILITIES)
    # The outputs' directories, once each, /etc/credo/keytabs inside /etc/credo, and the state
    # directory; the ccache and the socket are under the RuntimeDirectory= and need no entry.
    assert split_words(service["ReadWritePaths"]) == [
        "/etc/credo",
        "/srv/web app",
        "/var/lib/credo-state",
        "/var/lib/web",
    ]
    verify(tmp_path, unit)


def test_an_agent_that_brokers_endpoints_may_switch_users_and_writes_transcripts(tmp_path: Path) -> None:
    unit = agent_unit(CREDO, endpoints=True)
    service = dict(settings(unit.text)["Service"])
    assert service["CapabilityBoundingSet"].split() == [
        *AGENT_CAPABILITIES,
        "CAP_SETUID",
        "CAP_SETGID",
        "CAP_KILL",
        "CAP_SYS_PTRACE",
    ]
    assert service["LogsDirectory"] == "credo/endpoints" and service["LogsDirectoryMode"] == "0750"
    assert "LogsDirectory" not in dict(settings(agent_unit(CREDO).text)["Service"])
    verify(tmp_path, unit)


def test_the_agent_unit_without_outputs_and_with_outputs_at_home(tmp_path: Path) -> None:
    bare = agent_unit(CREDO)
    assert values(bare, "Service", "ReadWritePaths") == []
    assert "/etc/credo/agent.toml" in one(bare, "Service", "ExecStart")
    home = agent_unit(CREDO, paths=AgentPaths(outputs=(Path("/home/svc/.krb/svc.keytab"),)))
    # ProtectHome=yes would hide the output whatever ReadWritePaths= says.
    assert one(home, "Service", "ProtectHome") == "read-only"
    assert one(home, "Service", "ReadWritePaths") == "/home/svc/.krb"
    verify(tmp_path, home)
    elsewhere = agent_unit(CREDO, paths=AgentPaths(socket=Path("/srv/agent/agent.sock")))
    assert one(elsewhere, "Service", "ReadWritePaths") == "/srv/agent"


def command(tmp_path: Path, **changes: object) -> GmsaCommand:
    fields: dict[str, object] = {
        "unit": "nightly.service",
        "gmsa": "svcauto$",
        "user": "credo-runner",
        "ccache": agent_ccache_path("svcauto", "credo-runner"),
        "command": ("/usr/bin/printf", "%s|", "a b", "100%", "$HOME", 'q"x', "back\\slash", ""),
        "env": {"LDAPURI": "ldap://dc1.corp.example.test", "ODD": "$x %n 'q' \"d\""},
    }
    fields.update(changes)
    return GmsaCommand(**fields)  # type: ignore[arg-type]


def test_a_gmsa_service(tmp_path: Path, runner_user: str) -> None:
    run = command(tmp_path, unit="report-api.service")
    unit = gmsa_service(run)
    assert unit.name == "report-api.service"
    unit_section = dict(settings(unit.text)["Unit"])
    assert unit_section["After"].split() == ["credo-agent.service", "network-online.target"]
    assert unit_section["Wants"].split() == ["credo-agent.service", "network-online.target"]
    service = dict(settings(unit.text)["Service"])
    assert service["Type"] == "exec" and service["User"] == "credo-runner"
    assert service["Restart"] == "on-failure"
    assert exec_argv(service["ExecStart"]) == list(run.command)
    assert environment(values(unit, "Service", "Environment")) == {
        "KRB5CCNAME": "FILE:/run/credo/ccache/svcauto/credo-runner",
        "LDAPURI": "ldap://dc1.corp.example.test",
        "ODD": "$x %n 'q' \"d\"",
    }
    assert service["NoNewPrivileges"] == "yes" and service["PrivateTmp"] == "yes"
    assert service["ProtectSystem"] == "full"
    assert one(unit, "Install", "WantedBy") == "multi-user.target"
    verify(tmp_path, agent_unit(CREDO), unit)


def test_a_gmsa_timer_and_its_service(tmp_path: Path, runner_user: str) -> None:
    service, timer = gmsa_timer(command(tmp_path), ["daily", "Mon..Fri 07:00"])
    assert (service.name, timer.name) == ("nightly.service", "nightly.timer")
    assert one(service, "Service", "Type") == "oneshot"
    assert values(service, "Service", "Restart") == [] and "Install" not in settings(service.text)
    assert values(timer, "Timer", "OnCalendar") == ["daily", "Mon..Fri 07:00"]
    assert one(timer, "Timer", "Persistent") == "true"
    assert one(timer, "Install", "WantedBy") == "timers.target"
    verify(tmp_path, agent_unit(CREDO), service, timer)


def test_names_with_specifier_characters_are_escaped(tmp_path: Path, runner_user: str) -> None:
    # A sAMAccountName may hold % and spaces: Description= expands specifiers, the path is quoted.
    run = command(tmp_path, gmsa="svc%n x$", ccache=agent_ccache_path("svc%n x", "credo-runner"))
    unit = gmsa_service(run)
    assert one(unit, "Unit", "Description") == "nightly.service as the gMSA svc%%n x$"
    assert environment(values(unit, "Service", "Environment"))["KRB5CCNAME"] == (
        "FILE:/run/credo/ccache/svc%n x/credo-runner"
    )
    verify(tmp_path, agent_unit(CREDO), unit)


def test_the_account_snippet_is_the_agents_toml(tmp_path: Path) -> None:
    run = command(tmp_path, gmsa="Svc 'Åuto#$", ccache=agent_ccache_path("Svc 'Åuto#", "credo-runner"))
    data = tomllib.loads(account_snippet(run))
    assert data == {
        "account": [
            {
                "name": "Svc 'Åuto#",
                "allow_users": ["credo-runner"],
                "allow_groups": [],
                "ccache": [{"path": "/run/credo/ccache/svc 'åuto#/credo-runner", "user": "credo-runner"}],
            }
        ]
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("account = 3\n", "array of tables"),
        (
            '[[account]]\nname = "a"\n[[account.keytab]]\npath = "rel/x.keytab"\n',
            "account\\[0\\].keytab\\[0\\].path",
        ),
        ('state_dir = "var/x"\n', "state_dir: 'var/x' is not an absolute path"),
        ("[[account]\n", "not valid TOML"),
    ],
)
def test_bad_agent_configs(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(text)
    with pytest.raises(InputError, match=message):
        read_agent_paths(config)


def test_the_public_surface() -> None:
    """What the agent and the CLI import; agent_ccache_path is the convention both sides share."""
    import credo.systemd

    assert sorted(credo.systemd.__all__) == [
        "AGENT_SOCKET",
        "AGENT_UNIT",
        "CCACHE_ROOT",
        "GmsaCommand",
        "UnitFile",
        "account_snippet",
        "agent_ccache_path",
        "agent_unit",
        "gmsa_service",
        "gmsa_timer",
    ]
    assert str(credo.systemd.AGENT_SOCKET) == "/run/credo/agent.sock"
