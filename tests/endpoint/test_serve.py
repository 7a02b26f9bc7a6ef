"""A restricted endpoint end to end: real sshd (GSSAPI), `credo endpoint serve` as the login user,
the real agent as the broker running commands as svcauto$, transcripts checked.

The endpoint is the lab's example (examples/endpoints/helpdesk.toml) with two changes a machine
without systemd needs: `restart-service` runs a stand-in script (systemd is not PID 1 here) that
prints what it was given and who it runs as; and the LDAP tools get the lab DC's URL and base DN (without
SASL host canonicalization: the lab's names have no reverse DNS). A test-only
`read-log` command adds a path parameter confined under a directory, for the symlink escape.
The login side runs as jdoe with Debian's /usr/bin/python3 on a world-readable copy of credo's
sources, as an installed credo would (the test venv lives under /root).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from credo.endpoint.transcript import verify
from credo.lab import Lab, LabSettings
from tests.endpoint.conftest import StartSshd
from tests.support.agent import AgentProcess, agent_config
from tests.support.installed import install_credo_for_users

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
RESTART_STANDIN = """#!/bin/sh
# Stand-in for systemctl on a machine whose PID 1 is not systemd: says what it would restart,
# as whom, with which Kerberos identity, and whether a loader variable reached it.
echo "restart: $*"
echo "uid: $(id -un)"
klist 2>/dev/null | sed -n 's/^Default principal: /principal: /p'
echo "LD_PRELOAD=${LD_PRELOAD:-unset}"
"""
READ_LOG = """
[[capability.service-desk.command]]
name = "read-log"
description = "Show a log file under the endpoint's log directory"
path = "/bin/cat"
args = ["--"]
timeout = 10
[[capability.service-desk.command.parameter]]
name = "file"
type = "path"
under = "{logs}"
required = true
"""


@dataclass
class Endpoint:
    base: Path
    agent: AgentProcess
    transcripts: Path
    logs: Path
    serve: str  # sshd's ForceCommand

    def transcript_records(self) -> list[list[dict[str, Any]]]:
        """Each session's records, oldest session first (line 1 is the header, line 2 the start)."""
        files = sorted(self.transcripts.glob("*.jsonl"), key=lambda f: f.stat().st_mtime_ns)
        return [[json.loads(line) for line in f.read_text().splitlines()] for f in files]


@pytest.fixture(scope="module")
def endpoint(lab: Lab, lab_settings: LabSettings, runner_user: str) -> Iterator[Endpoint]:
    base = Path(tempfile.mkdtemp(prefix="endpoint-", dir="/run"))
    base.chmod(0o755)
    launcher = install_credo_for_users(base / "credo")
    bin_dir = base / "libexec"
    bin_dir.mkdir(mode=0o755)
    restart = bin_dir / "restart-service"
    restart.write_text(RESTART_STANDIN)
    unlock = bin_dir / "unlock-account"
    shutil.copy(REPO / "examples/endpoints/bin/unlock-account", unlock)
    for script in (restart, unlock):
        script.chmod(0o755)
    logs = base / "logs"
    logs.mkdir(mode=0o755)
    (logs / "app.log").write_text("started\n")
    (logs / "shadow-link").symlink_to("/etc/shadow")
    endpoints = base / "endpoints"
    endpoints.mkdir(mode=0o755)
    url = lab_settings.ldap_url
    text = (REPO / "examples/endpoints/helpdesk.toml").read_text()
    text = text.replace('path = "/usr/bin/systemctl"', f'path = "{restart}"')
    text = text.replace(
        'path = "/usr/local/libexec/credo/endpoints/unlock-account"',
        f'path = "{unlock}"\nenv = {{ LDAPURI = "{url}", LDAPSASL_NOCANON = "on", LDAPBASE = "{lab_settings.base_dn}" }}',
    )
    text = text.replace(
        'args = ["-Y", "GSSAPI", "-Q"]', f'args = ["-H", "{url}", "-N", "-Y", "GSSAPI", "-Q"]'
    )
    (endpoints / "helpdesk.toml").write_text(text + READ_LOG.format(logs=logs))
    transcripts = base / "transcripts"
    config = base / "agent.toml"
    (base / "out").mkdir(mode=0o755)
    # Security events for a SIEM (docs/siem.md): sessions admitted, refused and ended.
    config.write_text(agent_config(lab, lab_settings, base) + f'\n[events]\nfile = "{base}/security.jsonl"\n')
    agent = AgentProcess(
        config,
        base / "agent.log",
        {"CREDO_ENDPOINTS_DIR": str(endpoints), "CREDO_TRANSCRIPT_DIR": str(transcripts)},
    )
    agent.start()
    try:
        agent.wait_refreshed()
        serve = f"env CREDO_AGENT_SOCKET={agent.socket} {launcher} endpoint serve helpdesk"
        yield Endpoint(base, agent, transcripts, logs, serve)
    finally:
        agent.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_jdoe_runs_granted_commands_as_the_gmsa(
    endpoint: Endpoint, start_sshd: StartSshd, user_ccache: object
) -> None:
    sshd = start_sshd(force_command=endpoint.serve)
    ccache = user_ccache("jdoe")  # type: ignore[operator]
    who = sshd.ssh("jdoe", "whoami", ccache=ccache)
    assert who.returncode == 0, who.stderr
    assert "svcauto$" in who.stdout.lower()  # ldapwhoami: the directory sees the gMSA
    events = [json.loads(line) for line in (endpoint.base / "security.jsonl").read_text().splitlines()]
    sessions = [(e["kind"], e["outcome"]) for e in events if e["actor"].startswith("jdoe@")]
    assert ("endpoint.session.started", "success") in sessions and (
        "endpoint.session.ended",
        "success",
    ) in sessions
    restart = sshd.ssh("jdoe", "restart-service", "cron.service", ccache=ccache)
    assert restart.returncode == 0, restart.stderr
    assert "restart: --no-pager --no-ask-password restart cron.service" in restart.stdout
    assert "uid: credo-runner" in restart.stdout
    assert "principal: svcauto$@" in restart.stdout
    unlock = sshd.ssh("jdoe", "unlock-account", "asmith", ccache=ccache)
    assert unlock.returncode == 0, unlock.stderr + unlock.stdout
    assert "unlocked asmith" in unlock.stdout
    # The per-command ticket is gone once each command ended.
    assert not list((endpoint.base / ".endpoint-runs").glob("*"))


def test_asmith_outside_helpdesk_cannot_use_the_endpoint(
    endpoint: Endpoint, start_sshd: StartSshd, user_ccache: object
) -> None:
    sshd = start_sshd(force_command=endpoint.serve)
    proc = sshd.ssh("asmith", "whoami", ccache=user_ccache("asmith"))  # type: ignore[operator]
    assert proc.returncode == 5
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("credo: error: asmith@") and "may not use endpoint helpdesk" in lines[0]
    assert lines[1].startswith("credo: hint: ")
    assert "svcauto" not in proc.stdout
    starts = [r[1] for r in endpoint.transcript_records() if r[1]["principal"].startswith("asmith@")]
    assert starts, "the refused login has a transcript too"
    events = [json.loads(line) for line in (endpoint.base / "security.jsonl").read_text().splitlines()]
    [refused] = [
        e for e in events if e["kind"] == "endpoint.session.started" and e["actor"].startswith("asmith@")
    ]
    assert (refused["outcome"], refused["target"], refused["details"]["local_user"]) == (
        "denied",
        "helpdesk",
        "asmith",
    )


def test_refusals_are_one_line_and_the_session_goes_on(
    endpoint: Endpoint, start_sshd: StartSshd, user_ccache: object
) -> None:
    sshd = start_sshd(force_command=endpoint.serve)
    attempts = [
        "vi /etc/passwd",  # not granted: no editor, no :! escape
        "less /etc/shadow",
        "find / -exec /bin/sh ;",
        "whoami; id",
        "whoami | id",
        "whoami $(id)",
        "whoami `id`",
        "restart-service sshd.service",  # outside the set
        "restart-service --force cron.service",  # option injection
        "restart-service -- cron.service",
        "unlock-account -oProxyCommand=x",
        "unlock-account nosuchuser",  # the account must exist
        "read-log " + str(endpoint.logs / "shadow-link"),  # a symlink out of the confined directory
        "read-log ../../etc/shadow",
        "x" * 5000,  # an overlong line
        "whoami \x01",
        "whoami \x00 id",  # a NUL byte
    ]
    script = "\n".join([*attempts, "read-log " + str(endpoint.logs / "app.log"), "whoami", "exit", ""])
    proc = sshd.ssh("jdoe", ccache=user_ccache("jdoe"), input=script, timeout=60)  # type: ignore[operator]
    refusals = [line for line in proc.stderr.splitlines() if line.startswith("credo: refused: ")]
    assert len(refusals) == len(attempts), proc.stderr
    assert "Traceback" not in proc.stderr
    assert "root:" not in proc.stdout  # /etc/shadow never shown
    assert "started" in proc.stdout and "svcauto$" in proc.stdout.lower()  # the session stayed usable
    session = endpoint.transcript_records()[-1]
    assert sum(1 for r in session if r["type"] == "refusal") == len(attempts)
    assert [r["exit_status"] for r in session if r["type"] == "command-end"] == [0, 0]


def test_a_one_shot_command_with_a_line_break_is_refused(
    endpoint: Endpoint, start_sshd: StartSshd, user_ccache: object
) -> None:
    sshd = start_sshd(force_command=endpoint.serve)
    proc = sshd.ssh("jdoe", "whoami\nid", ccache=user_ccache("jdoe"))  # type: ignore[operator]
    assert proc.returncode == 5
    assert proc.stderr.startswith("credo: refused: ") and "uid=" not in proc.stdout


def test_the_interactive_shell_on_a_terminal(
    endpoint: Endpoint, start_sshd: StartSshd, user_ccache: object
) -> None:
    sshd = start_sshd(force_command=endpoint.serve)
    proc = sshd.ssh("jdoe", ccache=user_ccache("jdoe"), tty=True, input="help\nwhoami\nexit\n", timeout=60)  # type: ignore[operator]
    assert "credo endpoint helpdesk: jdoe@" in proc.stdout and "commands run as svcauto$" in proc.stdout
    assert "helpdesk> " in proc.stdout
    assert "unlock-account" in proc.stdout and "Unlock an AD user account" in proc.stdout  # help
    assert "svcauto$" in proc.stdout.lower().split("helpdesk> whoami", 1)[-1]


def test_loader_variables_from_the_client_never_reach_a_command(
    endpoint: Endpoint, start_sshd: StartSshd, user_ccache: object
) -> None:
    sshd = start_sshd(force_command=endpoint.serve)
    argv = sshd.ssh_argv("jdoe", "restart-service", "cron.service")
    argv[1:1] = ["-o", "SetEnv=LD_PRELOAD=/tmp/evil.so LD_LIBRARY_PATH=/tmp"]
    proc = subprocess.run(argv, env=sshd.client_env(user_ccache("jdoe")), capture_output=True, text=True,  # type: ignore[operator]
                          timeout=30, input="")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "LD_PRELOAD=unset" in proc.stdout


def test_transcripts_are_chained_complete_and_not_the_users(endpoint: Endpoint) -> None:
    files = sorted(endpoint.transcripts.glob("*.jsonl"))
    assert files
    for path in files:
        result = verify(path)
        assert result.status == "ok", (path, result)
        info = path.stat()
        assert info.st_uid == 0 and stat.S_IMODE(info.st_mode) == 0o640
    jdoe = [s for s in endpoint.transcript_records() if s[1]["principal"].startswith("jdoe@")]
    start = jdoe[0][1]
    assert start["endpoint"] == "helpdesk" and start["run_as"] == "svcauto$"
    assert str(start["sid"]).startswith("S-1-5-21-") and start["source"].startswith("127.0.0.1 ")  # type: ignore[union-attr]
    assert start["roles"] == ["CORP\\Helpdesk"]
    commands = [r for s in jdoe for r in s if r["type"] == "command-start"]
    assert any(r["argv"][-1] == "cron.service" for r in commands)  # type: ignore[index]
    for session in jdoe:
        for record in session:
            assert "krb5cc" not in json.dumps(record)  # no ticket path, no key, in any record
    os.stat(endpoint.transcripts)  # the directory exists; jdoe cannot write it:
    assert stat.S_IMODE(endpoint.transcripts.stat().st_mode) & 0o002 == 0
