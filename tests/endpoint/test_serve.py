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

import ctypes
import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from credo.endpoint.transcript import verify
from credo.lab import Lab, LabSettings
from tests.endpoint.conftest import StartSshd
from tests.support.agent import AgentProcess, agent_config
from tests.support.identity import CREDO, identity_env, ldapsearch, run
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
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-unset}"
echo "PAGER=${PAGER:-unset} LESS=${LESS:-unset}"
# systemctl pages only when stdout is a terminal, and a pager's `!sh` needs keystrokes on stdin.
[ -t 0 ] && echo "stdin: tty" || echo "stdin: not a tty"
[ -t 1 ] && echo "stdout: tty" || echo "stdout: not a tty"
"""
SLOW = """#!/bin/sh
# A granted command that is still running when the session is killed.
echo "slow: started"
sleep "$1"
echo "slow: done"
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

[[capability.service-desk.command]]
name = "page-log"
description = "A program that pages (less): its `!` escape must not be reachable"
path = "/usr/bin/less"
timeout = 10
[[capability.service-desk.command.parameter]]
name = "file"
type = "path"
under = "{logs}"
required = true

[[capability.service-desk.command]]
name = "slow"
path = "{slow}"
timeout = 30
[[capability.service-desk.command.parameter]]
name = "seconds"
type = "int"
min = 1
max = 9
required = true
"""
# Two groups jdoe is in (Tier1 directly, Helpdesk through it) each grant part of one command's
# parameter set: the union holds (merge rule 4), served through `serve --config` from a file the
# agent's config lists.
MERGED = """
user = "credo-runner"
run_as = "svcauto$"
required_groups = "CORP\\\\Helpdesk"
[roles]
"CORP\\\\Helpdesk" = ["a"]
"CORP\\\\Tier1" = ["b"]
[[capability.a.command]]
name = "restart-service"
path = "{restart}"
args = ["--no-pager", "--no-ask-password", "restart"]
[[capability.a.command.parameter]]
name = "service"
type = "set"
values = ["cron.service"]
required = true
[[capability.b.command]]
name = "restart-service"
path = "{restart}"
args = ["--no-pager", "--no-ask-password", "restart"]
[[capability.b.command.parameter]]
name = "service"
type = "set"
values = ["ssh.service"]
required = true
"""


@dataclass
class Endpoint:
    base: Path
    agent: AgentProcess
    transcripts: Path
    logs: Path
    serve: str  # sshd's ForceCommand
    launcher: Path
    endpoints: Path
    merged: Path  # listed under [endpoints] files in the agent's config

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
    slow = bin_dir / "slow"
    slow.write_text(SLOW)
    for script in (restart, unlock, slow):
        script.chmod(0o755)
    logs = base / "logs"
    logs.mkdir(mode=0o755)
    (logs / "app.log").write_text("started\n")
    (logs / "shadow-link").symlink_to("/etc/shadow")
    (logs / "big.log").write_text(("y" * 79 + "\n") * 8000)  # 640 kB
    ops = base / "ops"
    ops.mkdir(mode=0o755)
    merged = ops / "merged.toml"
    merged.write_text(MERGED.format(restart=restart))
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
    (endpoints / "helpdesk.toml").write_text(text + READ_LOG.format(logs=logs, slow=slow))
    transcripts = base / "transcripts"
    config = base / "agent.toml"
    (base / "out").mkdir(mode=0o755)
    # Security events for a SIEM (docs/siem.md): sessions admitted, refused and ended.
    config.write_text(
        agent_config(lab, lab_settings, base)
        + f'\n[events]\nfile = "{base}/security.jsonl"\n[endpoints]\nfiles = ["{merged}"]\n'
    )
    agent = AgentProcess(
        config,
        base / "agent.log",
        {"CREDO_ENDPOINTS_DIR": str(endpoints), "CREDO_TRANSCRIPT_DIR": str(transcripts)},
    )
    agent.start()
    try:
        agent.wait_refreshed()
        serve = f"env CREDO_AGENT_SOCKET={agent.socket} {launcher} endpoint serve helpdesk"
        yield Endpoint(base, agent, transcripts, logs, serve, launcher, endpoints, merged)
    finally:
        agent.stop()
        shutil.rmtree(base, ignore_errors=True)


UF_LOCKOUT = 0x10  # msDS-User-Account-Control-Computed


def _lockout(admin: dict[str, str]) -> tuple[int, int]:
    [(_, attrs)] = ldapsearch(
        admin, "(sAMAccountName=asmith)", "lockoutTime", "msDS-User-Account-Control-Computed"
    )
    return int(attrs["lockoutTime"][0]), int(attrs["msDS-User-Account-Control-Computed"][0])


def _set_lockout(admin: dict[str, str], lab_settings: LabSettings, value: int) -> None:
    """As the administrator: any lockoutTime locks until the domain's lockout duration ends."""
    dn = f"CN=asmith,OU=Staff,{lab_settings.base_dn}"
    ldif = f"dn: {dn}\nchangetype: modify\nreplace: lockoutTime\nlockoutTime: {value}\n-\n"
    run(["ldapmodify", "-Q", "-Y", "GSSAPI"], admin, check=True, input=ldif)


def test_jdoe_runs_granted_commands_as_the_gmsa(
    endpoint: Endpoint, start_sshd: StartSshd, user_ccache: object, lab: Lab, lab_settings: LabSettings
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
    # Lock asmith for real (the DC then refuses his logins: UF_LOCKOUT), unlock him through the
    # granted command as svcauto$, read lockoutTime back.
    admin = identity_env(lab, "admin")
    try:
        _set_lockout(admin, lab_settings, int((time.time() + 11644473600) * 10**7))  # now, as a FILETIME
        assert _lockout(admin)[1] & UF_LOCKOUT
        unlock = sshd.ssh("jdoe", "unlock-account", "asmith", ccache=ccache)
        assert unlock.returncode == 0, unlock.stderr + unlock.stdout
        assert "unlocked asmith" in unlock.stdout
        assert _lockout(admin) == (0, 0)
    finally:
        _set_lockout(admin, lab_settings, 0)
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
    # "whoa<TAB>" is completed by readline to "whoami " and run.
    typed = "help\nhelp unlock-account\nwhoa\t\nexit\n"
    proc = sshd.ssh("jdoe", ccache=user_ccache("jdoe"), tty=True, input=typed, timeout=60)  # type: ignore[operator]
    assert "credo endpoint helpdesk: jdoe@" in proc.stdout and "commands run as svcauto$" in proc.stdout
    assert "helpdesk> " in proc.stdout
    assert "unlock-account" in proc.stdout and "Unlock an AD user account" in proc.stdout  # help
    assert "usage: unlock-account ACCOUNT" in proc.stdout  # help COMMAND
    assert "svcauto$" in proc.stdout.lower().split("helpdesk> whoami ", 1)[-1]  # completed, then run


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


# -- issue 13 audit: --config, kill -9, fail closed, escapes through the socket and a pager --------


def _serve(endpoint: Endpoint, *args: str, socket: Path | None = None) -> str:
    return f"env CREDO_AGENT_SOCKET={socket or endpoint.agent.socket} {endpoint.launcher} endpoint serve {' '.join(args)}"


def _verify_cli(path: Path) -> dict[str, Any]:
    """`credo endpoint verify-transcript FILE --json`, as an administrator would run it."""
    proc = subprocess.run([*CREDO, "endpoint", "verify-transcript", str(path), "--json"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO / "src")})  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _wait_for_record(directory: Path, kind: str, before: set[Path], timeout: float = 20) -> Path:
    """The transcript in ``directory`` that is not in ``before``, once it holds a ``kind`` record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in set(directory.glob("*.jsonl")) - before:
            if f'"type":"{kind}"' in path.read_text().replace(" ", ""):
                return path
        time.sleep(0.05)
    raise AssertionError(f"no new transcript with a {kind} record in {directory}")


def test_serve_config_names_only_definitions_the_agent_serves(
    endpoint: Endpoint, start_sshd: StartSshd, user_ccache: object
) -> None:
    ccache = user_ccache("jdoe")  # type: ignore[operator]
    sshd = start_sshd(force_command=_serve(endpoint, "--config", str(endpoint.merged)))
    # Helpdesk grants cron.service, Tier1 ssh.service, on the same command: jdoe holds both roles.
    for unit in ("cron.service", "ssh.service"):
        proc = sshd.ssh("jdoe", "restart-service", unit, ccache=ccache)
        assert proc.returncode == 0 and f"restart: --no-pager --no-ask-password restart {unit}" in proc.stdout
    outside = sshd.ssh("jdoe", "restart-service", "credo-agent.service", ccache=ccache)
    assert (
        outside.returncode == 5 and "not one of: cron.service; or not one of: ssh.service" in outside.stderr
    )
    [session] = [s for s in endpoint.transcript_records() if s[1]["endpoint"] == "merged"][-1:]
    assert sorted(session[1]["roles"]) == ["CORP\\Helpdesk", "CORP\\Tier1"]  # type: ignore[type-var]
    # A definition jdoe wrote himself, granting anything: the agent does not serve it.
    own = endpoint.base / "jdoe-grants-himself.toml"
    own.write_text(
        endpoint.merged.read_text().replace('values = ["ssh.service"]', 'values = ["sshd.service"]')
    )
    shutil.chown(own, "jdoe")
    sshd = start_sshd(force_command=_serve(endpoint, "--config", str(own)))
    refused = sshd.ssh("jdoe", "restart-service", "sshd.service", ccache=ccache)
    assert refused.returncode == 5 and "restart:" not in refused.stdout
    assert (
        refused.stderr.splitlines()[0]
        == f"credo: error: {own} is not an endpoint definition this agent serves"
    )


def test_kill_9_of_the_login_side_mid_command_loses_no_record(
    endpoint: Endpoint, start_sshd: StartSshd, user_ccache: object
) -> None:
    sshd = start_sshd(force_command=endpoint.serve)
    before = set(endpoint.transcripts.glob("*.jsonl"))
    client = subprocess.Popen(sshd.ssh_argv("jdoe", "slow", "5"), env=sshd.client_env(user_ccache("jdoe")),  # type: ignore[operator]
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        path = _wait_for_record(endpoint.transcripts, "command-start", before)
        # The session's `credo endpoint serve` (the socket peer the agent logged), killed -9.
        pid = int(
            re.findall(
                r"session of jdoe@\S+ \(uid \d+, pid (\d+)\)", (endpoint.base / "agent.log").read_text()
            )[-1]
        )
        assert os.stat(f"/proc/{pid}").st_uid == pwd.getpwnam("jdoe").pw_uid
        assert b"endpoint\0serve" in Path(f"/proc/{pid}/cmdline").read_bytes()
        os.kill(pid, signal.SIGKILL)
        client.wait(timeout=20)
    finally:
        client.kill()
        client.wait()
    deadline = time.monotonic() + 20
    while '"session-end"' not in path.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    result = _verify_cli(path)
    assert result["status"] == "ok", result  # the broker outlived its caller and recorded the end
    records = [json.loads(line) for line in path.read_text().splitlines()]
    [end] = [r for r in records if r["type"] == "command-end"]
    assert end["exit_status"] == 0 and records[-1]["reason"] == "disconnected"


def test_kill_9_of_the_broker_mid_command_leaves_its_start_record(
    endpoint: Endpoint, start_sshd: StartSshd, user_ccache: object, lab: Lab, lab_settings: LabSettings
) -> None:
    base = endpoint.base / "agent2"
    (base / "out").mkdir(parents=True)
    config = base / "agent.toml"
    config.write_text(agent_config(lab, lab_settings, base))
    transcripts = base / "transcripts"
    agent = AgentProcess(config, base / "agent.log",
                         {"CREDO_ENDPOINTS_DIR": str(endpoint.endpoints), "CREDO_TRANSCRIPT_DIR": str(transcripts)})  # fmt: skip
    agent.start()
    try:
        agent.wait_refreshed()
        sshd = start_sshd(force_command=_serve(endpoint, "helpdesk", socket=agent.socket))
        client = subprocess.Popen(sshd.ssh_argv("jdoe", "slow", "3"), env=sshd.client_env(user_ccache("jdoe")),  # type: ignore[operator]
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        path = _wait_for_record(transcripts, "command-start", set())
        assert agent.process is not None
        agent.process.kill()  # kill -9 of the agent holding the session
        agent.process.wait()
        _, err = client.communicate(timeout=20)
        assert client.returncode == 3 and err.startswith("credo: error: the session ended"), err
    finally:
        agent.stop()
    result = _verify_cli(path)
    assert result["status"] == "incomplete" and result["unfinished"] == [1], result
    [start] = [json.loads(line) for line in path.read_text().splitlines() if '"command-start"' in line]
    assert start["argv"][-1] == "3"


def test_a_transcript_directory_that_cannot_be_written_refuses_the_login(
    endpoint: Endpoint, start_sshd: StartSshd, user_ccache: object
) -> None:
    sshd = start_sshd(force_command=endpoint.serve)
    endpoint.transcripts.mkdir(exist_ok=True)
    saved = endpoint.transcripts.with_name("transcripts.saved")
    endpoint.transcripts.rename(saved)
    endpoint.transcripts.write_text("not a directory\n")  # root ignores modes: this stops root too
    try:
        proc = sshd.ssh("jdoe", "whoami", ccache=user_ccache("jdoe"))  # type: ignore[operator]
    finally:
        endpoint.transcripts.unlink()
        saved.rename(endpoint.transcripts)
    assert proc.returncode == 3 and "svcauto" not in proc.stdout.lower()
    assert proc.stderr.splitlines()[0].startswith("credo: error: cannot write the session transcript in ")


def test_a_transcript_write_failing_mid_session_ends_it(
    endpoint: Endpoint, start_sshd: StartSshd, user_ccache: object
) -> None:
    sshd = start_sshd(force_command=endpoint.serve)
    # A 128 kB file system under the transcripts (the old ones hidden until it is unmounted): the
    # recording of a 640 kB output runs out of space mid-command.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k,mode=0750", "credo-test-full", str(endpoint.transcripts)],
                   check=True)  # fmt: skip
    try:
        script = f"read-log {endpoint.logs}/big.log\nwhoami\nexit\n"
        proc = sshd.ssh("jdoe", ccache=user_ccache("jdoe"), input=script, timeout=60)  # type: ignore[operator]
        recorded = sum(f.stat().st_size for f in endpoint.transcripts.glob("*.cast"))
    finally:
        # The agent may still hold the transcript for a moment after ssh returned: detach now
        # (the files go when their last user closes them), so no test leaves the tmpfs behind.
        subprocess.run(["umount", "--lazy", str(endpoint.transcripts)], check=True)
    assert proc.returncode == 3, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("credo: error: ")]
    assert len(errors) == 1 and "cannot write the session" in errors[0], proc.stderr
    assert "No space left on device" in errors[0]
    assert "u:corp\\svcauto$" not in proc.stdout.lower()  # whoami never ran: the session had ended
    assert len(proc.stdout) < recorded  # nothing reached the user that the recording does not hold


SOCKET_CLIENT = """
import socket, sys
sys.path.insert(0, sys.argv[1])
from credo.agent.wire import recv_message, send_message
sock = socket.socket(socket.AF_UNIX)
sock.connect(sys.argv[2])
env = {"LD_PRELOAD": "/tmp/evil.so", "LD_LIBRARY_PATH": "/tmp", "PAGER": "/bin/sh", "LESS": "+!sh", "LANG": "C"}
send_message(sock, {"op": "endpoint", "endpoint": "helpdesk", "mode": "command", "source": "192.0.2.66 4444",
                    "env": env}, [1, 2])
hello, _ = recv_message(sock)
assert hello["ok"], hello
send_message(sock, {"line": "restart-service cron.service"})
print(recv_message(sock)[0], file=sys.stderr)
send_message(sock, {"end": True})
"""


def test_loader_and_pager_variables_sent_straight_to_the_socket_never_reach_a_command(
    endpoint: Endpoint, user_ccache: object
) -> None:
    """Bypassing sshd (which drops LD_PRELOAD & co.): credo's own filter drops them."""
    lib = endpoint.launcher.parent.parent / "lib"
    proc = subprocess.run(["/usr/bin/python3", "-I", "-c", SOCKET_CLIENT, str(lib), str(endpoint.agent.socket)],
                          user="jdoe", group="jdoe", extra_groups=[], capture_output=True, text=True, timeout=30,
                          cwd="/")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "restart: --no-pager --no-ask-password restart cron.service" in proc.stdout
    for line in ("LD_PRELOAD=unset", "LD_LIBRARY_PATH=unset", "PAGER=unset LESS=unset", "stdin: not a tty"):
        assert line in proc.stdout, proc.stdout
    # No sshd session above this caller: its claimed source is kept, marked as such.
    assert endpoint.transcript_records()[-1][1]["source"] == "unverified: 192.0.2.66 4444"


def test_the_source_address_is_the_agents_not_the_clients_claim(
    endpoint: Endpoint, start_sshd: StartSshd, user_ccache: object
) -> None:
    """The login side's $SSH_CONNECTION is forged here; the agent reads the address from the
    sshd process holding the connection."""
    sshd = start_sshd(force_command="env SSH_CONNECTION='192.0.2.9 999 127.0.0.1 22' " + endpoint.serve)
    proc = sshd.ssh("jdoe", "whoami", ccache=user_ccache("jdoe"))  # type: ignore[operator]
    assert proc.returncode == 0, proc.stderr
    source = str(endpoint.transcript_records()[-1][1]["source"])
    assert source.startswith("127.0.0.1 ") and source.split()[1].isdigit() and "192.0.2.9" not in source


def test_a_pager_in_a_granted_command_cannot_be_escaped(
    endpoint: Endpoint, start_sshd: StartSshd, user_ccache: object
) -> None:
    sshd = start_sshd(force_command=endpoint.serve)
    ccache = user_ccache("jdoe")  # type: ignore[operator]
    # Even on a terminal (ssh -tt) a command's stdin and stdout are not one: systemctl does not page.
    shown = sshd.ssh("jdoe", "restart-service", "cron.service", ccache=ccache, tty=True)
    assert "stdin: not a tty" in shown.stdout and "stdout: not a tty" in shown.stdout
    # less itself, granted: it prints the file (its output is a pipe), reads no keys (stdin is
    # /dev/null) and ends; `!id` typed next reaches credo's tokenizer, which refuses it.
    typed = f"page-log {endpoint.logs}/app.log\n!id\nexit\n"
    proc = sshd.ssh("jdoe", ccache=ccache, tty=True, input=typed, timeout=60)
    assert "started" in proc.stdout and "credo: refused: " in proc.stdout
    assert "uid=" not in proc.stdout


def test_a_granted_commands_exit_status_reaches_the_ssh_client(
    endpoint: Endpoint, start_sshd: StartSshd, user_ccache: object
) -> None:
    sshd = start_sshd(force_command=endpoint.serve)
    proc = sshd.ssh("jdoe", "read-log", str(endpoint.logs), ccache=user_ccache("jdoe"))  # type: ignore[operator]
    assert proc.returncode == 1 and "Is a directory" in proc.stderr  # cat's own status and words


RENAME_EXCHANGE = 2


def test_a_symlink_swapped_under_a_confined_path_is_never_followed(
    endpoint: Endpoint, start_sshd: StartSshd, user_ccache: object
) -> None:
    """A directory under the confined path is exchanged with a symlink out of it, over and over,
    while the session reads a file through it: each read shows the file inside, or is refused
    (at the check, or at the pin just before the run); the file outside never shows."""
    secret = endpoint.base / "outside"
    secret.mkdir(mode=0o755)
    (secret / "notes").write_text("SECRET-OUTSIDE\n")
    swap = endpoint.logs / "swap"
    swap.mkdir(mode=0o755)
    (swap / "notes").write_text("inside\n")
    (endpoint.logs / "swap.alt").symlink_to(secret)
    libc = ctypes.CDLL(None, use_errno=True)
    stop = threading.Event()

    def exchange() -> None:
        a, b = bytes(swap), bytes(endpoint.logs / "swap.alt")
        while not stop.is_set():
            libc.renameat2(-100, a, -100, b, RENAME_EXCHANGE)  # AT_FDCWD: atomic swap of the two names

    sshd = start_sshd(force_command=endpoint.serve)
    swapper = threading.Thread(target=exchange, daemon=True)
    swapper.start()
    attempts = 60
    try:
        script = f"read-log {swap}/notes\n" * attempts + "exit\n"
        proc = sshd.ssh("jdoe", ccache=user_ccache("jdoe"), input=script, timeout=120)  # type: ignore[operator]
    finally:
        stop.set()
        swapper.join()
    assert "SECRET-OUTSIDE" not in proc.stdout + proc.stderr
    shown = proc.stdout.count("inside")
    refused = [
        line for line in proc.stderr.splitlines() if line.startswith(("credo: refused: ", "credo: error: "))
    ]
    assert shown + len(refused) == attempts and "Traceback" not in proc.stderr, proc.stderr
