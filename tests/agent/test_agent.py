"""`credo agent` against the lab DC: outputs, the socket's authorisation, the fast `credo run --as`,
bad configurations, reloads, hooks, and kill -9 during writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from credo.agent.config import Hook
from credo.agent.refresh import run_hook
from credo.krb.keytab import read_keytab
from credo.lab import Lab, LabSettings
from tests.support.agent import AgentProcess, agent_config
from tests.support.identity import CREDO, identity_env, run

Start = Callable[..., AgentProcess]


def test_the_agent_writes_a_keytab_and_a_ccache_that_work(
    start_agent: Start, agent_dir: Path, lab: Lab, lab_settings: LabSettings
) -> None:
    agent = start_agent()
    agent.wait_refreshed()
    keytab, ccache = agent_dir / "out/svcauto.keytab", agent_dir / "out/svcauto.ccache"
    assert oct(keytab.stat().st_mode & 0o777) == "0o600"
    entries = read_keytab(keytab)
    assert {e.principal for e in entries} == {f"svcauto$@{lab_settings.realm}"}
    env = identity_env(lab, None)
    kinit = run(
        ["kinit", "-k", "-t", str(keytab), f"svcauto$@{lab_settings.realm}"], env | {"KRB5CCNAME": "MEMORY:x"}
    )
    assert kinit.returncode == 0, kinit.stderr
    info = ccache.stat()
    assert (oct(info.st_mode & 0o777), info.st_uid) == (
        "0o600",
        __import__("pwd").getpwnam("credo-runner").pw_uid,
    )
    klist = run(["klist", "-c", str(ccache)], env)
    assert f"svcauto$@{lab_settings.realm}" in klist.stdout
    status = run([*CREDO, "agent", "status", "--json"], agent.env())
    assert status.returncode == 0, status.stderr
    [account] = json.loads(status.stdout)
    assert account["account"] == "svcauto" and account["kvno"] >= 1 and account["error"] is None
    assert account["dc"] == lab_settings.ldap_url and len(account["outputs"]) == 2
    assert "key" not in agent.log.read_text().lower().replace("keytab", "")


def test_fast_run_as_through_the_agent_execs_and_leaves_nothing(
    start_agent: Start, lab: Lab, lab_settings: LabSettings
) -> None:
    agent = start_agent()
    agent.wait_refreshed()
    env = agent.env(KRB5_CONFIG=str(lab.paths.krb5_conf), LDAPSASL_NOCANON="on")
    # -X importtime shows every module the process loaded before the exec.
    proc = subprocess.run(
        [CREDO[0], "-X", "importtime", "-m", "credo", "run", "--as", "svcauto", "--", "sh", "-c",
         'klist; ldapwhoami -Q -Y GSSAPI -H "$URL"; echo "$KRB5CCNAME"'],
        env=env | {"URL": lab_settings.ldap_url}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"u:{lab_settings.netbios}\\svcauto$" in proc.stdout
    loaded = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    for heavy in ("ldap", "krb5", "gssapi", "click", "credo.cli", "credo.gmsa", "sqlalchemy"):
        assert not any(m == heavy or m.startswith(heavy + ".") for m in loaded), heavy
    ccache = proc.stdout.strip().splitlines()[-1].removeprefix("FILE:")
    deadline = time.monotonic() + 5
    while Path(ccache).exists() or Path(ccache).parent.exists():
        assert time.monotonic() < deadline, f"{ccache} outlived its command"
        time.sleep(0.05)
    # Exit status passes through.
    assert run([*CREDO, "run", "--as", "svcauto", "--", "sh", "-c", "exit 7"], env).returncode == 7


def test_an_unauthorised_local_user_is_refused_and_logged(
    start_agent: Start, agent_dir: Path, lab: Lab, lab_settings: LabSettings
) -> None:
    events = agent_dir / "security.jsonl"
    agent = start_agent(agent_config(lab, lab_settings, agent_dir) + f'\n[events]\nfile = "{events}"\n')
    agent.wait_refreshed()
    # Debian's python3 (stdlib only) as nobody, speaking the socket's protocol by hand.
    script = (
        "import json, os, socket, sys\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        "fd = os.open('/tmp', os.O_TMPFILE | os.O_RDWR, 0o600)\n"
        "socket.send_fds(s, [b'{'], [fd]); s.sendall(json.dumps({'op': 'ccache', 'account': 'svcauto'})[1:].encode() + b'\\n')\n"
        "print(s.makefile().readline())\n"
    )
    proc = run(
        ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", script, str(agent.socket)],
        {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    answer = json.loads(proc.stdout)
    assert answer["ok"] is False and answer["error"] == "NotPermittedError", proc
    assert "refused ccache of svcauto to uid 65534" in agent.log.read_text()
    status = run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c",
                  script.replace("'ccache', 'account': 'svcauto'", "'status'"), str(agent.socket)], {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})  # fmt: skip
    assert json.loads(status.stdout) == {"ok": True, "accounts": []}  # it learns of no account
    # The same, and the password retrieval before it, as security events for a SIEM (docs/siem.md).
    seen = [json.loads(line) for line in events.read_text().splitlines()]
    kinds = [(e["kind"], e["outcome"], e["actor"], e["target"]) for e in seen]
    assert ("agent.password.retrieved", "success", "agent", "svcauto") in kinds
    assert ("agent.socket.refused", "denied", "uid 65534", "svcauto") in kinds
    refused = next(e for e in seen if e["kind"] == "agent.socket.refused")
    assert refused["details"]["operation"] == "ccache" and refused["severity"] == "warning"
    assert oct(events.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("socket = 5\n", "socket: expected str"),
        ("[[account]]\nallow_users = []\n", "account[0].name: missing"),
        ('[[account]]\nname = "bad/name"\n', "account[0].name: invalid managed service account name"),
        (
            '[[account]]\nname = "svcauto"\nallow_users = ["no-such-user-x"]\n',
            "account[0].allow_users: no local user",
        ),
        (
            '[[account]]\nname = "svcauto"\n[[account.keytab]]\npath = "rel.keytab"\n',
            "account[0].keytab[0].path: 'rel.keytab' is not an absolute path",
        ),
        (
            '[[account]]\nname = "svcauto"\n[[account.keytab]]\npath = "/x.keytab"\nmode = "0644"\n',
            "account[0].keytab[0].mode",
        ),
        (
            '[[account]]\nname = "svcauto"\n[[account.hook]]\nargv = ["systemctl"]\n',
            "account[0].hook[0].argv: 'systemctl': give the program's absolute path",
        ),
        ('[[account]]\nname = "svcauto"\ncolour = "red"\n', "account[0].colour: unknown key"),
        ('metrics_listen = "0.0.0.0:9464"\n', "metrics_listen"),
        ("[directory\n", "not valid TOML"),
    ],
)
def test_bad_configurations_are_one_line_naming_the_key(tmp_path: Path, text: str, needle: str) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(text)
    proc = run([*CREDO, "agent", "run", "--config", str(config), "--check"])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith(f"credo: error: {config}: ") and needle in lines[0], lines
    assert len(lines) <= 2 and "Traceback" not in proc.stderr


def test_a_bad_reload_keeps_the_running_configuration(
    start_agent: Start, agent_dir: Path, lab: Lab, lab_settings: LabSettings
) -> None:
    agent = start_agent()
    agent.wait_refreshed()
    agent.config.write_text("[[account]]\nname = 5\n")
    assert agent.process is not None
    agent.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reload refused" not in agent.log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    status = run([*CREDO, "agent", "status", "--json"], agent.env())
    assert [a["account"] for a in json.loads(status.stdout)] == ["svcauto"]
    assert "account[0].name: expected str" in agent.log.read_text()


def test_rotation_hooks_get_the_account_and_kvno_never_a_key(tmp_path: Path) -> None:
    out = tmp_path / "env"
    code = run_hook(Hook(("/bin/sh", "-c", f'env > "{out}"; exit 3'), 10), "svcauto", 5, 4)
    assert code == 3
    env = dict(line.split("=", 1) for line in out.read_text().splitlines())
    assert (
        env["CREDO_ACCOUNT"] == "svcauto" and env["CREDO_KVNO"] == "5" and env["CREDO_PREVIOUS_KVNO"] == "4"
    )
    assert set(env) <= {"PATH", "CREDO_ACCOUNT", "CREDO_KVNO", "CREDO_PREVIOUS_KVNO", "PWD", "SHLVL", "_"}
    assert run_hook(Hook(("/bin/sleep", "5"), 0.5), "svcauto", 5, 4) is None


def test_kill_9_while_writing_never_leaves_a_torn_keytab_or_ccache(
    start_agent: Start, agent_dir: Path, lab: Lab, lab_settings: LabSettings
) -> None:
    keytab, ccache = agent_dir / "out/svcauto.keytab", agent_dir / "out/svcauto.ccache"
    for i in range(8):
        agent = start_agent()
        if i == 0:
            agent.wait_refreshed()
        else:
            time.sleep(0.3 + 0.15 * i)  # kill it at different points of its first refresh
        assert agent.process is not None
        agent.process.kill()
        agent.process.wait()
        entries = read_keytab(keytab)  # raises on a torn or empty file
        assert entries and all(e.principal.startswith("svcauto$@") for e in entries)
        # The ccache likewise: the previous one or the new one, whole (klist reads every ticket).
        klist = run(["klist", "-c", str(ccache)], identity_env(lab, None))
        assert klist.returncode == 0 and f"svcauto$@{lab_settings.realm}" in klist.stdout, klist.stderr
    # A kill mid-write may leave the file being written (keys in it): the next start removes it.
    leftover = agent_dir / "out" / ".svcauto.keytab.credo-0123456789ab.tmp"
    leftover.write_bytes(b"\x05\x02")
    agent = start_agent()
    agent.wait_refreshed()
    assert not [p for p in (agent_dir / "out").iterdir() if p.name.startswith(".")], "temp files left"


def test_a_worker_takes_its_jobs_ticket_from_the_agent(
    start_agent: Start, lab: Lab, lab_settings: LabSettings, agent_dir: Path
) -> None:
    agent = start_agent()
    agent.wait_refreshed()
    from credo.gmsa.session import SessionSettings
    from credo.worker.executor import GmsaTickets

    os.environ["CREDO_AGENT_SOCKET"] = str(agent.socket)
    try:
        ccache = agent_dir / "job.ccache"
        GmsaTickets(SessionSettings(host_keytab=Path("/nonexistent"))).write("svcauto", ccache, 600)
    finally:
        del os.environ["CREDO_AGENT_SOCKET"]
    klist = run(["klist", "-c", str(ccache)], identity_env(lab, None))
    assert f"svcauto$@{lab_settings.realm}" in klist.stdout
    assert "gave a ccache of svcauto to uid 0" in agent.log.read_text()


def test_prometheus_metrics_on_loopback(
    start_agent: Start, agent_dir: Path, lab: Lab, lab_settings: LabSettings
) -> None:
    import socket as sockets

    import httpx

    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    agent = start_agent(agent_config(lab, lab_settings, agent_dir, metrics_listen=f'"127.0.0.1:{port}"'))
    agent.wait_refreshed()
    run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c",
         "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
         "s.sendall(b'{\"op\":\"refresh\",\"account\":\"svcauto\"}\\n'); print(s.recv(4096))", str(agent.socket)],
        {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})  # fmt: skip
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'credo_agent_refreshes_total{account="svcauto"} 1.0' in text
    assert "credo_agent_socket_refused_total 1.0" in text
    expiry = [
        line
        for line in text.splitlines()
        if line.startswith('credo_agent_password_expiry_seconds{account="svcauto"}')
    ]
    assert expiry and float(expiry[0].split()[-1]) > 0


def test_refresh_fails_over_to_the_other_dc_when_one_is_stopped_or_blackholed(
    start_agent: Start, agent_dir: Path, lab: Lab, dc2_running: LabSettings
) -> None:
    from tests.support.blackhole import blackhole

    settings = dc2_running
    dc1, dc2 = settings.ldap_url_of(1), settings.ldap_url_of(2)
    import socket as sockets

    import httpx

    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    text = agent_config(lab, settings, agent_dir, servers=[dc2, dc1], directory_extra="ldap_timeout = 3",
                        metrics_listen=f'"127.0.0.1:{port}"')  # fmt: skip
    # DC2, listed first, is stopped: its port refuses, the agent goes on to DC1.
    lab.stop_dc(2)
    started = time.monotonic()
    agent = start_agent(text)
    agent.wait_refreshed(timeout=15)
    assert time.monotonic() - started < 15
    [state] = json.loads(run([*CREDO, "agent", "status", "--json"], agent.env()).stdout)
    assert state["dc"] == dc1 and state["error"] is None
    lab.start_dc(2)
    refreshed = json.loads(run([*CREDO, "agent", "refresh", "svcauto", "--json"], agent.env()).stdout)
    assert refreshed["dc"] == dc2  # back on the first listed DC
    # DC2 drops every packet (no reset): the agent waits ldap_timeout for it, then uses DC1.
    with blackhole(settings.dc2_address):
        started = time.monotonic()
        proc = run([*CREDO, "agent", "refresh", "svcauto", "--json"], agent.env(), timeout=60)
        elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    state = json.loads(proc.stdout)
    assert state["dc"] == dc1 and state["error"] is None, state
    assert elapsed < 15, f"refresh took {elapsed:.1f} s"
    # Two refreshes were served by another DC than the first listed (stopped, then blackholed).
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "credo_agent_dc_failovers_total 2.0" in metrics.splitlines(), metrics


def test_a_stale_agent_socket_falls_back_to_the_workers_own_keys(
    lab: Lab, lab_settings: LabSettings, agent_dir: Path
) -> None:
    import socket as sockets

    from credo.gmsa.session import SessionSettings
    from credo.worker.executor import GmsaTickets

    stale = agent_dir / "stale.sock"
    with sockets.socket(sockets.AF_UNIX) as sock:
        sock.bind(str(stale))  # a socket file nobody listens on: an agent that was killed
    saved = {k: os.environ.get(k) for k in ("CREDO_AGENT_SOCKET", "KRB5_CONFIG")}
    os.environ.update(CREDO_AGENT_SOCKET=str(stale), KRB5_CONFIG=str(lab.paths.krb5_conf))
    try:
        settings = SessionSettings(host_keytab=lab.paths.host_keytab("worker1"),
                                   host_principal=f"WORKER1$@{lab_settings.realm}", server=lab_settings.ldap_url)  # fmt: skip
        ccache = agent_dir / "job.ccache"
        GmsaTickets(settings).write("svcauto", ccache, 600)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    klist = run(["klist", "-c", str(ccache)], identity_env(lab, None))
    assert f"svcauto$@{lab_settings.realm}" in klist.stdout
