"""The agent past a real gMSA rotation while its DC's clock is still a step behind.

test_rotation.py moves one shared clock file, which each process reads again within a second or
two: for that moment the agent may be past the rotation while the DC is still inside its
pre-rotation window. The DC then answers as from inside the window, and the rotation it names
(its "query interval" from the agent's now) lands minutes after the true one, by the agent's
clock. The agent used to wait for that time: no refresh and no error for up to 4.5 minutes, the
test's stall. Here the step is made on purpose and held: the agent and the DC each get a clock
file of their own (credo.lab.clock), the agent's moved past the rotation first, the DC's a
refresh later (less than Kerberos' 5 minutes behind, so the bind still works).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from credo.lab import Lab
from credo.lab.clock import set_shared_clock, shared_clock_env
from tests.support.identity import CREDO, run
from tests.support.rotation_lab import clean_env, rotation_lab, spn_host

REALM = "LAG.EXAMPLE.TEST"
ADDRESS = "127.0.0.7"
GMSA = "svclag"

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lagging(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[tuple[Lab, Path]]:
    base = tmp_path_factory.mktemp("lag")
    dc_clock = base / "dc-clock"
    set_shared_clock(dc_clock, "+0")
    second = rotation_lab(base / "lab", REALM, ADDRESS, GMSA, clock_file=dc_clock)
    try:
        yield second, dc_clock
    finally:
        second.destroy()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def move(clock: Path, to: datetime) -> None:
    seconds = (to - datetime.now(UTC)).total_seconds()
    set_shared_clock(clock, f"+{seconds:.0f}s" if seconds >= 0 else f"{seconds:.0f}s")


def test_a_dc_a_step_behind_does_not_hold_the_refresh_after_the_rotation(lagging: tuple[Lab, Path]) -> None:
    lab, dc_clock = lagging
    base = Path(tempfile.mkdtemp(prefix="lag-", dir="/run"))  # a short socket path
    agent_clock = base / "clock"
    set_shared_clock(agent_clock, "+0")
    settings = lab.settings
    assert settings is not None
    config = base / "agent.toml"
    config.write_text(
        "\n".join([
            f'socket = "{base}/agent.sock"', "", "[directory]", f'servers = ["{settings.ldap_url}"]',
            f'host_keytab = "{lab.paths.host_keytab("worker1")}"', f'host_principal = "WORKER1$@{REALM}"',
            f'krb5_config = "{lab.paths.krb5_conf}"', "", "[[account]]", f'name = "{GMSA}"',
            "refresh_jitter = 5", "", "[[account.keytab]]", f'path = "{base}/{GMSA}.keytab"',
            f'spns = ["HTTP/{spn_host(GMSA, REALM)}"]', "",
        ])
    )  # fmt: skip
    env = (
        clean_env()
        | shared_clock_env(agent_clock)
        | {"KRB5_CONFIG": str(lab.paths.krb5_conf), "CREDO_AGENT_SOCKET": str(base / "agent.sock")}
    )
    agent_log = base / "agent.log"
    with open(agent_log, "ab") as log:
        agent = subprocess.Popen([*CREDO, "agent", "run", "--config", str(config)], env=env, stdout=log,
                                 stderr=subprocess.STDOUT)  # fmt: skip

    def status() -> dict[str, Any]:
        proc = run([*CREDO, "agent", "status", "--json"], env)
        return dict(json.loads(proc.stdout)[0]) if proc.returncode == 0 else {}

    try:
        first = wait_for("the first refresh", lambda: status().get("kvno") and status())
        rotation = datetime.fromisoformat(first["password_expires"]).replace(microsecond=0)

        # Both into the window, the DC first (as a real clock, they agree).
        move(dc_clock, rotation - timedelta(seconds=270))
        time.sleep(2.5)
        move(agent_clock, rotation - timedelta(seconds=270))
        inside = wait_for("the next key", lambda: (s := status()).get("key_kvnos") == [2, 1] and s)

        # The agent past the rotation; the DC still inside its window, less than 5 minutes behind.
        move(agent_clock, rotation + timedelta(seconds=10))
        lagged = wait_for(
            "the refresh after the rotation",
            lambda: (s := status()).get("last_refresh") != inside["last_refresh"] and s,
        )
        assert lagged["kvno"] == 1 and lagged["key_kvnos"] == [2, 1], lagged  # the DC's answer
        move(dc_clock, rotation + timedelta(seconds=10))
        # The agent's clock passed the rotation that answer named before, so it reads again
        # after 30 s, not at the rotation the lagging DC named (4 minutes on).
        wait_for("kvno 2", lambda: status().get("kvno") == 2, timeout=60)
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        print(agent_log.read_text())
        shutil.rmtree(base, ignore_errors=True)
