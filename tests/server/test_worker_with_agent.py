"""Issue 12 point 5: a real `credo worker` on a host where `credo agent` runs takes its jobs' gMSA
tickets from the agent over the socket (the agent's log says it gave one to the worker's uid), and
the job acts as the gMSA with that ticket."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from credo.lab import Lab, LabSettings
from tests.server.conftest import Server, create_group, create_runbook, start_job
from tests.support.agent import AgentProcess, agent_config

KLIST = """
import subprocess
subprocess.run(["klist"], check=True)
"""


@pytest.fixture
def agent(lab: Lab, lab_settings: LabSettings, runner_user: str) -> Iterator[AgentProcess]:
    base = Path(tempfile.mkdtemp(prefix="agent-", dir="/run"))  # short socket path, reachable by credo-runner
    base.chmod(0o755)
    (base / "out").mkdir(mode=0o755)
    config = base / "agent.toml"
    config.write_text(agent_config(lab, lab_settings, base))
    process = AgentProcess(config, base / "agent.log")
    process.start()
    try:
        process.wait_refreshed()
        yield process
    finally:
        process.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_a_worker_takes_its_jobs_tickets_from_the_agent(
    sqlite_server: Server, start_worker: Callable[..., Any], lab_settings: LabSettings, agent: AgentProcess
) -> None:
    create_runbook(sqlite_server, "klist", KLIST)
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    given = agent.log.read_text().count("gave a ccache of svcauto")
    start_worker(sqlite_server, "worker1", "tier1", env={"CREDO_AGENT_SOCKET": str(agent.socket)})
    job = start_job(sqlite_server, "klist", "tier1")
    final = sqlite_server.wait_state(job["id"], {"Completed", "Failed"})
    output = sqlite_server.output(job["id"], "output")
    assert final["state"] == "Completed", sqlite_server.output(job["id"])
    assert f"svcauto$@{lab_settings.realm}" in output
    assert agent.log.read_text().count("gave a ccache of svcauto") == given + 1, agent.log.read_text()
