"""Issue 12 point 2: with no `servers` in its config the agent finds its DCs from DNS SRV records
(`_ldap._tcp.dc._msdcs.<domain>`, from the lab's own DNS server), and a DC of that list that drops
every packet is skipped for the next one within the deadline."""

from __future__ import annotations

import json
import time
from pathlib import Path

from credo.lab import Lab, LabSettings
from tests.support.agent import AgentProcess, agent_config
from tests.support.blackhole import blackhole
from tests.support.identity import CREDO, run


def _without_servers(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("servers = "))


def test_dcs_from_dns_srv_and_a_silent_one_skipped(
    agent_dir: Path, lab: Lab, dc2_running: LabSettings
) -> None:
    settings = dc2_running
    text = _without_servers(agent_config(lab, settings, agent_dir, directory_extra="ldap_timeout = 3"))
    assert "servers" not in text
    config = agent_dir / "agent.toml"
    config.write_text(text)
    agent = AgentProcess(config, agent_dir / "agent.log", extra_env={"CREDO_DNS_SERVER": settings.address})
    agent.start()
    try:
        agent.wait_refreshed(timeout=30)
        [state] = json.loads(run([*CREDO, "agent", "status", "--json"], agent.env()).stdout)
        assert state["error"] is None, state
        hosts = {f"dc{n}.{settings.realm.lower()}" for n in (1, 2)}
        assert any(host in state["dc"] for host in hosts), state["dc"]  # a DC named by the SRV records
        # DC2 drops every packet (no reset): whichever order DNS gave, the refresh ends on DC1.
        with blackhole(settings.dc2_address):
            started = time.monotonic()
            proc = run([*CREDO, "agent", "refresh", "svcauto", "--json"], agent.env(), timeout=60)
            elapsed = time.monotonic() - started
        assert proc.returncode == 0, proc.stderr
        refreshed = json.loads(proc.stdout)
        assert refreshed["error"] is None and "dc1." in refreshed["dc"], refreshed
        assert elapsed < 15, f"refresh took {elapsed:.1f} s"
    finally:
        agent.stop()
