"""Issue 12 point 7: the agent speaks sd_notify(3) as a Type=notify unit needs. A datagram socket
the test binds stands in for systemd's NOTIFY_SOCKET (the protocol is one datagram per message);
the agent is the real one, refreshing from the lab DC."""

from __future__ import annotations

import socket as sockets
import time
from pathlib import Path

from credo.krb.keytab import read_keytab
from credo.lab import Lab, LabSettings
from tests.support.agent import AgentProcess, agent_config


def _messages(sock: sockets.socket, until: str, timeout: float) -> list[str]:
    """Datagrams received until one carries the line ``until`` (each as its text)."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while not any(until in m.splitlines() for m in got):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {until} within {timeout} s: {got}"
        sock.settimeout(remaining)
        got.append(sock.recv(4096).decode())
    return got


def test_ready_after_the_first_refresh_then_status_and_watchdog_pings(
    agent_dir: Path, lab: Lab, lab_settings: LabSettings, runner_user: str
) -> None:
    config = agent_dir / "agent.toml"
    config.write_text(agent_config(lab, lab_settings, agent_dir))
    keytab, ccache = agent_dir / "out/svcauto.keytab", agent_dir / "out/svcauto.ccache"
    with sockets.socket(sockets.AF_UNIX, sockets.SOCK_DGRAM) as sock:
        sock.bind(str(agent_dir / "notify.sock"))
        # WatchdogSec=1s: systemd would expect a ping every second; the agent pings at half that.
        env = {"NOTIFY_SOCKET": str(agent_dir / "notify.sock"), "WATCHDOG_USEC": "1000000"}
        agent = AgentProcess(config, agent_dir / "agent.log", extra_env=env)
        agent.start()
        try:
            before = _messages(sock, "READY=1", 30)
            # READY=1 comes once the first refresh has ended: the outputs are there to use.
            assert read_keytab(keytab) and ccache.stat().st_size > 0
            assert before[0].startswith("STATUS=refreshing 1 account(s)"), before
            assert not any("READY=1" in m.splitlines() for m in before[:-1]), before
            assert "STATUS=1 account(s), 0 failing" in before[-1].splitlines(), before
            pings = _messages(sock, "WATCHDOG=1", 5)
            assert "STATUS=1 account(s), 0 failing" in pings[-1].splitlines()
            started = time.monotonic()
            for _ in range(4):
                _messages(sock, "WATCHDOG=1", 5)
            # At half of WATCHDOG_USEC (1 s here), not once per it: 4 pings in well under 4 s,
            # averaged so that one late turn of a loaded machine's loop does not fail it.
            assert time.monotonic() - started < 3.6
        finally:
            agent.stop()
        assert any("STOPPING=1" in m.splitlines() for m in _messages(sock, "STOPPING=1", 5))
