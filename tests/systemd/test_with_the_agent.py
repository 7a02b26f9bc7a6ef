"""The printed [[account]] in a real `credo agent` config: the agent accepts it, keeps the ccache
at the path the unit names, and the unit's command, run as systemd would run it, acts as the gMSA.

The agent lives in credo.agent (issue 12's agent branch); until that is merged into this tree the
test has nothing to run against and says so.
"""

from __future__ import annotations

import importlib.util
import json
import pwd
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from credo.lab import SEED, LabSettings
from credo.systemd.paths import agent_ccache_path
from credo.systemd.units import UnitFile
from tests.support.identity import CREDO, credo
from tests.systemd.test_timer_as_gmsa import run_like_systemd

Env = Callable[..., dict[str, str]]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("credo.agent") is None, reason="credo agent is not in this tree yet"
)


def test_the_agent_keeps_the_ccache_a_generated_unit_uses(
    as_identity: Env,
    lab_settings: LabSettings,
    runner_user: str,
    run_dir: Path,
) -> None:
    lab = as_identity("worker1")
    ccache = agent_ccache_path(SEED.gmsa, runner_user, root=run_dir / "ccache")
    proc = credo(
        "systemd", "timer", "whoami", "--on-calendar", "hourly", "--as", SEED.gmsa, "--user", runner_user,
        "--ccache", str(ccache), "--env", f"KRB5_CONFIG={lab['KRB5_CONFIG']}", "--json", "--",
        "ldapwhoami", "-N", "-Q", "-Y", "GSSAPI", "-H", lab_settings.ldap_url,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    generated = json.loads(proc.stdout)
    service = UnitFile(generated["units"][0]["name"], generated["units"][0]["text"])
    config = run_dir / "agent.toml"
    config.write_text(
        f'socket = "{run_dir}/agent.sock"\nstate_dir = "{run_dir}/state"\n'
        "[directory]\n"
        f'servers = ["{lab_settings.ldap_url}"]\n'
        f'host_keytab = "{lab["CREDO_HOST_KEYTAB"]}"\nhost_principal = "{lab["CREDO_HOST_PRINCIPAL"]}"\n'
        f'krb5_config = "{lab["KRB5_CONFIG"]}"\n\n' + generated["agent_config"]
    )
    check = credo("agent", "run", "--check", "--config", config, env=lab)
    assert check.returncode == 0, check.stderr

    agent = subprocess.Popen(
        [*CREDO, "agent", "run", "--config", str(config)],
        env=lab,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not ccache.exists() and time.monotonic() < deadline and agent.poll() is None:
            time.sleep(0.2)
        assert ccache.exists(), "the agent wrote no ccache in 60 s"
        info = ccache.stat()
        assert (info.st_uid, info.st_mode & 0o777) == (pwd.getpwnam(runner_user).pw_uid, 0o600)
        ran = run_like_systemd(service)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip() == f"u:{lab_settings.netbios}\\{SEED.gmsa}$"
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
