"""Restricted endpoints (issue 13, point 7), on loopback against the lab:

1. A Kerberos login plus one granted command (`noop`: /bin/true as svcauto$, through `credo
   endpoint serve` and the agent, transcript written) against `ssh host true` with the same
   login on a plain private sshd. Goal: at most 1.3x. Paired runs, alternating order; medians.
2. One more command in an open session: a session running 41 `noop` lines against one running 1,
   (difference) / 40. Goal: under 30 ms.
"""

from __future__ import annotations

import pwd
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.agent import AgentProcess, agent_config
from tests.support.installed import install_credo_for_users
from tests.support.sshd import Sshd, local_users

from credo.lab import ENDPOINT_SEED, Lab

RUNS = 15
SESSION_RUNS = 5
EXTRA = 40
ENDPOINT = """run_as = "svcauto$"
user = "credo-runner"
required_groups = "CORP\\\\Helpdesk"
[roles]
"CORP\\\\Helpdesk" = ["bench"]
[capability.bench]
[[capability.bench.command]]
name = "noop"
path = "/bin/true"
"""


def _timed(argv: list[str], env: dict[str, str], stdin: str = "") -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[-1]!r} failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
    return elapsed


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def run() -> list[tuple[str, str, str]]:
    lab = Lab()
    lab.up()
    settings = lab.settings
    assert settings is not None
    try:
        pwd.getpwnam("credo-runner")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        "credo-runner"], check=True)  # fmt: skip
    base = Path(tempfile.mkdtemp(prefix="bench-endpoint-", dir="/run"))
    base.chmod(0o755)
    sshds: list[Sshd] = []
    agent: AgentProcess | None = None
    try:
        homes = base / "homes"
        homes.mkdir(mode=0o755)
        with local_users(["jdoe"], homes):
            launcher = install_credo_for_users(base / "credo")
            endpoints = base / "endpoints"
            endpoints.mkdir(mode=0o755)
            (endpoints / "bench.toml").write_text(ENDPOINT)
            (base / "out").mkdir(mode=0o755)
            config = base / "agent.toml"
            config.write_text(agent_config(lab, settings, base))
            agent = AgentProcess(config, base / "agent.log", {"CREDO_ENDPOINTS_DIR": str(endpoints),
                                 "CREDO_TRANSCRIPT_DIR": str(base / "transcripts")})  # fmt: skip
            agent.start()
            agent.wait_refreshed()
            common = {"host": settings.host_fqdn(ENDPOINT_SEED.host), "keytab": lab.paths.sshd_keytab(ENDPOINT_SEED.host),
                      "krb5_conf": lab.paths.krb5_conf, "allow_users": ["jdoe"]}  # fmt: skip
            plain = Sshd.start(force_command=None, **common)  # type: ignore[arg-type]
            sshds.append(plain)
            serve = f"env CREDO_AGENT_SOCKET={agent.socket} {launcher} endpoint serve bench"
            endpoint = Sshd.start(force_command=serve, **common)  # type: ignore[arg-type]
            sshds.append(endpoint)
            env = plain.client_env(lab.env("jdoe").set["KRB5CCNAME"])
            baseline, served = [], []
            for i in range(RUNS + 1):
                pair = [
                    ("plain", plain.ssh_argv("jdoe", "true")),
                    ("endpoint", endpoint.ssh_argv("jdoe", "noop")),
                ]
                if i % 2:
                    pair.reverse()
                for kind, argv in pair:
                    took = _timed(argv, env)
                    if i:  # the first pair warms caches
                        (baseline if kind == "plain" else served).append(took)
            ratio = statistics.median(served) / statistics.median(baseline)
            one = [_timed(endpoint.ssh_argv("jdoe"), env, "noop\nexit\n") for _ in range(SESSION_RUNS)]
            many = [
                _timed(endpoint.ssh_argv("jdoe"), env, "noop\n" * (EXTRA + 1) + "exit\n")
                for _ in range(SESSION_RUNS)
            ]
            extra = (statistics.median(many) - statistics.median(one)) / EXTRA
            return [
                ("`ssh host true` (GSSAPI login, plain sshd)", _ms(statistics.median(baseline)), "yardstick"),
                ("login + one granted command (`credo endpoint serve`, agent, transcript)",
                 _ms(statistics.median(served)), f"{ratio:.2f}x the yardstick (goal <= 1.3x)"),
                ("one more command in an open session", _ms(extra), "goal < 30 ms"),
            ]  # fmt: skip
    finally:
        for sshd in sshds:
            sshd.remove()
        if agent is not None:
            agent.stop()
        shutil.rmtree(base, ignore_errors=True)
