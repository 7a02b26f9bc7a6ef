"""`credo systemd agent-unit|service|timer` as a user runs it: printed units, --json, --install,
and one `credo: error:` line (plus a hint) with the documented exit code for each bad input."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

import pytest

from credo.systemd.units import UnitFile
from tests.support.identity import credo
from tests.systemd.test_units import AGENT_CONFIG, CREDO, verify
from tests.systemd.unitparse import exec_argv, settings, split_words

TRICKY = ["a b", "100%", "$HOME", 'q"x', "back\\slash", ""]


def test_service_prints_the_unit_and_the_agent_snippet(runner_user: str) -> None:
    proc = credo("systemd", "service", "report-api", "--as", "svcauto", "--", "printf", "%s\\n", *TRICKY)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("# ---- /etc/systemd/system/report-api.service ----\n")
    unit_text, _, snippet = out.partition(
        "# ---- the credo agent's config (/etc/credo/agent.toml) needs ----\n"
    )
    service = dict(settings(unit_text)["Service"])
    assert service["User"] == "credo-runner"
    assert exec_argv(service["ExecStart"]) == ["/usr/bin/printf", "%s\\n", *TRICKY]
    assert tomllib.loads(snippet)["account"][0]["ccache"] == [
        {"path": "/run/credo/ccache/svcauto/credo-runner", "user": "credo-runner"}
    ]


def test_timer_json_and_install(tmp_path: Path, runner_user: str) -> None:
    args = ["systemd", "timer", "nightly.timer", "--on-calendar", "*-*-* 02:30:00", "--as", "svcauto$"]
    args += [
        "--user",
        runner_user,
        "--env",
        "LDAPURI=ldap://dc1.corp.example.test",
        "--unit-dir",
        str(tmp_path),
    ]
    proc = credo(*args, "--json", "--", "ldapwhoami", "-Q")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [u["name"] for u in data["units"]] == ["nightly.service", "nightly.timer"]
    assert data["units"][1]["path"] == str(tmp_path / "nightly.timer")
    assert data["installed"] is False and data["daemon_reload"] is None
    assert "[[account.ccache]]" in data["agent_config"]
    assert list(tmp_path.iterdir()) == []

    proc = credo(*args, "--install", "--", "ldapwhoami", "-Q")
    assert proc.returncode == 0, proc.stderr
    # PID 1 is not systemd here (sd_booted(3) is false): no daemon-reload, and the output says so.
    assert f"wrote {tmp_path / 'nightly.service'}\n" in proc.stdout
    assert "systemd is not PID 1 here: run `systemctl daemon-reload`" in proc.stdout
    assert "next: systemctl enable --now nightly.timer" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nightly.service", "nightly.timer"]  # no temp left
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    units = [UnitFile(u["name"], u["text"]) for u in data["units"]]
    assert [(tmp_path / u.name).read_text() for u in units] == [u.text for u in units]
    agent = credo("systemd", "agent-unit", "--json")
    assert agent.returncode == 0, agent.stderr
    [agent_unit] = json.loads(agent.stdout)["units"]
    verify(tmp_path, UnitFile(agent_unit["name"], agent_unit["text"]), *units)


def test_agent_unit_from_a_config(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(AGENT_CONFIG)
    proc = credo("systemd", "agent-unit", "--config", config, "--credo", CREDO)
    assert proc.returncode == 0, proc.stderr
    service = dict(settings(proc.stdout)["Service"])
    assert exec_argv(service["ExecStart"]) == [str(CREDO), "agent", "run", "--config", str(config)]
    assert split_words(service["ReadWritePaths"]) == [
        "/etc/credo",
        "/srv/web app",
        "/var/lib/credo-state",
        "/var/lib/web",
    ]


def error_lines(proc_stderr: str) -> list[str]:
    return proc_stderr.splitlines()


SERVICE = ["systemd", "service", "svc1", "--as", "svcauto"]
TIMER = ["systemd", "timer", "t1", "--as", "svcauto", "--on-calendar"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["systemd", "service", "getty@tty1", "--as", "svcauto", "--", "true"],
            2,
            "invalid unit name 'getty@tty1'",
        ),
        (["systemd", "service", "a b", "--as", "svcauto", "--", "true"], 2, "invalid unit name 'a b'"),
        (
            ["systemd", "service", "credo-agent", "--as", "svcauto", "--", "true"],
            2,
            "credo-agent.service is one of credo's own units",
        ),
        (
            ["systemd", "service", "x.socket", "--as", "svcauto", "--", "true"],
            2,
            "invalid unit name 'x.socket'",
        ),
        (
            ["systemd", "service", "svc1", "--as", "svc/auto", "--", "true"],
            2,
            "invalid managed service account name",
        ),
        (["systemd", "service", "svc1", "--as", "averyveryverylongname", "--", "true"], 2, "longer than 15"),
        ([*SERVICE, "--user", "nosuchuser", "--", "true"], 6, "local user 'nosuchuser' does not exist"),
        ([*SERVICE, "--user", "Bad User", "--", "true"], 2, "invalid local user name"),
        ([*SERVICE, "--user", "root", "--", "true"], 2, "is a system account"),
        ([*SERVICE, "--", "no-such-program-credo"], 6, "program 'no-such-program-credo' not found in PATH"),
        ([*SERVICE, "--", "bin/true"], 2, "is a relative path"),
        ([*SERVICE, "--", "/nonexistent/prog"], 6, "does not exist or is not executable"),
        ([*SERVICE, "--env", "NOEQUALS", "--", "true"], 2, "invalid --env 'NOEQUALS'"),
        ([*SERVICE, "--env", "1X=y", "--", "true"], 2, "invalid environment variable name"),
        ([*SERVICE, "--env", "KRB5CCNAME=FILE:/tmp/x", "--", "true"], 2, "the unit sets it"),
        ([*SERVICE, "--env", "A=x\ny", "--", "true"], 2, "control character"),
        ([*SERVICE, "--ccache", "rel/cc", "--", "true"], 2, "not an absolute path"),
        ([*SERVICE, "--", "/bin/echo", "a\x01\udcff"], 2, "not valid UTF-8"),
        ([*TIMER, "every full moon", "--", "true"], 2, "invalid calendar spec 'every full moon'"),
        ([*TIMER, "daily\nExecStartPre=/bin/sh", "--", "true"], 2, "invalid calendar spec"),
        ([*TIMER, "-x", "--", "true"], 2, "invalid calendar spec '-x'"),
        (["systemd", "agent-unit", "--config", "/nonexistent/agent.toml"], 6, "no agent config at"),
        (
            ["systemd", "agent-unit", "--credo", "/nonexistent/credo"],
            6,
            "does not exist or is not executable",
        ),
    ],
)
def test_bad_input_is_one_line(args: list[str], code: int, message: str, runner_user: str) -> None:
    proc = credo(*args)
    lines = error_lines(proc.stderr)
    assert proc.returncode == code, proc.stderr
    assert lines[0].startswith("credo: error: ") and message in lines[0], lines
    assert len(lines) <= 2 and all(line.startswith("credo: hint: ") for line in lines[1:]), lines
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_usage_errors(runner_user: str) -> None:
    for args in (
        ["systemd", "service", "svc1", "--as", "svcauto"],
        ["systemd", "timer", "t", "--as", "s", "--", "true"],
    ):
        proc = credo(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr


def test_install_into_a_missing_directory(tmp_path: Path, runner_user: str) -> None:
    proc = credo(*SERVICE, "--install", "--unit-dir", tmp_path / "nope", "--", "true")
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith(f"credo: error: no unit directory {tmp_path / 'nope'}\n")


def test_a_failed_install_leaves_no_temp_file(tmp_path: Path, runner_user: str) -> None:
    """rename(2) onto a directory fails: one line, exit 3, and the temp file is gone."""
    (tmp_path / "svc1.service").mkdir()
    proc = credo(*SERVICE, "--install", "--unit-dir", tmp_path, "--", "true")
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith(f"credo: error: cannot write {tmp_path / 'svc1.service'}: Is a directory\n")
    assert [p.name for p in tmp_path.iterdir()] == ["svc1.service"]
