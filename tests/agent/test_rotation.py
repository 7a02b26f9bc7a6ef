"""The agent across a real gMSA rotation: a service authenticating with the agent's keytab
never fails, before, inside the DC's pre-rotation window, and after the rollover.

A lab of its own (realm ROLL.EXAMPLE.TEST on 127.0.0.4, a 1-day gMSA) runs on a clock shared
through a libfaketime file with the agent, the client and the service (``credo.lab.clock``), so
one write moves them all, with no restart. The clock goes from real time to 4.5 minutes before
the rotation (the DC then hands out the next password: the agent writes its key as kvno 2
beside kvno 1 and runs its hook), then to a minute after it (the KDC issues kvno 2 tickets; a
ticket issued before the rollover still opens with kvno 1).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from credo.krb.keytab import read_keytab
from credo.lab import Lab
from credo.lab.clock import set_shared_clock, shared_clock_env
from tests.support.identity import CREDO, run
from tests.support.rotation_lab import clean_env, rotation_lab, spn_host

REALM = "ROLL.EXAMPLE.TEST"
ADDRESS = "127.0.0.4"
GMSA = "svcroll"
SERVICE = f"HTTP@{spn_host(GMSA, REALM)}"
WINDOW = 300.0  # the DC's pre-rotation window (MS-ADTS 3.1.1.4.5.39)

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def roll(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[tuple[Lab, Path]]:
    base = tmp_path_factory.mktemp("roll")
    clock = base / "clock"
    set_shared_clock(clock, "+0")
    second = rotation_lab(base / "lab", REALM, ADDRESS, GMSA, clock_file=clock)
    try:
        yield second, clock
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


def move_clock(clock: Path, to: datetime, base: Path) -> None:
    """Put the shared clock at ``to`` (it runs at real speed from there), the loop paused.

    Each process reads the clock file again within a second, so for that second processes may
    disagree by hours; the authentication loop waits it out (a real clock does not jump).
    """
    (base / "pause").touch()
    wait_for("the loop to pause", lambda: (base / "paused").exists())
    seconds = (to - datetime.now(UTC)).total_seconds()
    set_shared_clock(clock, f"+{seconds:.0f}s" if seconds >= 0 else f"{seconds:.0f}s")
    time.sleep(2.5)
    (base / "pause").unlink()


def test_a_service_never_fails_across_a_rotation(roll: tuple[Lab, Path]) -> None:
    lab, clock = roll
    on_clock = clean_env() | shared_clock_env(clock) | {"KRB5_CONFIG": str(lab.paths.krb5_conf)}
    base = Path(tempfile.mkdtemp(prefix="roll-", dir="/run"))  # a short socket path
    keytab = base / "svcroll.keytab"
    hooks = base / "hooks.log"
    config = base / "agent.toml"
    settings = lab.settings
    assert settings is not None
    lines = [f'socket = "{base}/agent.sock"', "", "[directory]", f'servers = ["{settings.ldap_url}"]',
             f'host_keytab = "{lab.paths.host_keytab("worker1")}"', f'host_principal = "WORKER1$@{REALM}"',
             f'krb5_config = "{lab.paths.krb5_conf}"', "", "[[account]]", f'name = "{GMSA}"',
             "refresh_jitter = 5", "", "[[account.keytab]]", f'path = "{keytab}"',
             f'spns = ["HTTP/{spn_host(GMSA, REALM)}"]', "", "[[account.hook]]",
             f"""argv = ["/bin/sh", "-c", "echo $CREDO_ACCOUNT $CREDO_KVNO $CREDO_PREVIOUS_KVNO >> {hooks}"]""",
             "timeout = 10", ""]  # fmt: skip
    config.write_text("\n".join(lines))
    agent_log = base / "agent.log"
    env = on_clock | {"CREDO_AGENT_SOCKET": str(base / "agent.sock")}
    with open(agent_log, "ab") as log:
        agent = subprocess.Popen([*CREDO, "agent", "run", "--config", str(config)], env=env, stdout=log,
                                 stderr=subprocess.STDOUT)  # fmt: skip
    loop: subprocess.Popen[bytes] | None = None

    def status() -> dict[str, Any]:
        proc = run([*CREDO, "agent", "status", "--json"], env)
        return dict(json.loads(proc.stdout)[0]) if proc.returncode == 0 else {}

    try:
        first = wait_for("the first refresh", lambda: status().get("kvno") and status())
        assert first["key_kvnos"] == [1], first
        rotation = datetime.fromisoformat(first["password_expires"])
        assert 0 < (rotation - datetime.now(UTC)).total_seconds() <= 86400

        records = base / "auth.jsonl"
        loop_config = base / "loop.json"
        loop_config.write_text(json.dumps({
            "client": f"WORKER1$@{REALM}", "client_keytab": str(lab.paths.host_keytab("worker1")),
            "service": SERVICE, "keytab": str(keytab), "held": str(base / "held.ccache"),
            "rotation": rotation.timestamp(), "window": WINDOW, "out": str(records),
            "stop": str(base / "stop"), "pause_file": str(base / "pause"), "paused": str(base / "paused"), "pause": 0.05, "max_rounds": 4000, "max_seconds": 400,
        }))  # fmt: skip
        loop = subprocess.Popen([CREDO[0], "-m", "tests.support.gss_loop", str(loop_config)], env=on_clock,
                                cwd=Path(__file__).resolve().parents[2])  # fmt: skip

        def attempts(phase: str, kind: str = "fresh") -> int:
            if not records.exists():
                return 0
            rows = [json.loads(line) for line in records.read_text().splitlines() if line]
            return sum(1 for r in rows if r["phase"] == phase and r["kind"] == kind)

        wait_for("authentications before the window", lambda: attempts("before") >= 10)

        # Into the window: the DC answers with the next password; the agent writes it as kvno 2.
        move_clock(clock, rotation.replace(microsecond=0) - timedelta(seconds=270), base)
        inside = wait_for("the next key", lambda: (s := status()).get("key_kvnos") == [2, 1] and s)
        assert inside["kvno"] == 1  # the KDC still uses kvno 1
        wait_for("the hook", lambda: hooks.exists() and hooks.read_text())
        wait_for("authentications inside the window", lambda: attempts("window") >= 10)

        # Past the rotation: the KDC issues kvno 2 tickets, which the keytab already holds.
        move_clock(clock, rotation.replace(microsecond=0) + timedelta(seconds=60), base)
        try:
            wait_for("the refresh after the rotation", lambda: status().get("kvno") == 2, timeout=150)
        except AssertionError:
            # Seen in full runs, most likely: the agent saw the clock move before the DC did,
            # refreshed, and the DC, still inside the window by its clock, put the rotation
            # minutes later by the agent's. The agent now reads again after 30 s then
            # (credo.agent.schedule.next_refresh's ``earlier``). Should it recur: say where the
            # agent waits.
            print("status:", status())
            agent.send_signal(signal.SIGUSR1)
            time.sleep(1)
            raise
        # Samba moves the account to the new key on its first use after the rotation time (a
        # read of the password, an AS-REQ); from then on the KDC issues kvno 2 tickets.
        kdc = on_clock | {"KRB5CCNAME": f"FILE:{base}/kvno.ccache"}
        run(["kinit", "-k", "-t", lab.paths.host_keytab("worker1"), f"WORKER1$@{REALM}"], kdc, check=True)
        issued = run(["kvno", f"HTTP/{spn_host(GMSA, REALM)}"], kdc, check=True).stdout
        assert "kvno = 2" in issued, issued
        after_kvno2 = attempts("after")
        wait_for("authentications after the rotation", lambda: attempts("after") >= after_kvno2 + 10)
        wait_for("the held ticket after the rotation", lambda: attempts("after", "held") >= 10)

        (base / "stop").touch()
        loop.wait(timeout=60)
        rows = [json.loads(line) for line in records.read_text().splitlines() if line]
        failed = [r for r in rows if r["error"]]
        assert not failed, f"{len(failed)} of {len(rows)} authentications failed: {failed[:3]}"
        held = on_clock | {"KRB5CCNAME": f"FILE:{base}/held.ccache"}
        cached = run(["kvno", "--cached-only", f"HTTP/{spn_host(GMSA, REALM)}"], held, check=True).stdout
        assert "kvno = 1" in cached  # the held ticket really is one from before the rollover
        assert hooks.read_text().split("\n") == [f"{GMSA} 2 1", ""]  # once, when kvno 2 arrived
        assert f"hook /bin/sh for {GMSA} (kvno 2): exit 0" in agent_log.read_text()
        assert {e.kvno for e in read_keytab(keytab)} == {1, 2}
        final = status()
        # The DC may no longer return the previous password; the keytab keeps it (above).
        assert final["key_kvnos"][0] == 2 and final["error"] is None
        counts = {p: sum(1 for r in rows if r["phase"] == p) for p in ("before", "window", "after")}
        print(f"authentications: {counts}, all accepted")
    finally:
        if loop is not None and loop.poll() is None:
            loop.kill()
            loop.wait()
        agent.terminate()
        try:
            agent.wait(timeout=10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        print(agent_log.read_text())
        shutil.rmtree(base, ignore_errors=True)
