"""A real `credo agent run` process acting as WORKER1$ against the lab DC, with its socket and
outputs in a temporary directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from credo.lab import Lab, LabSettings
from tests.support.agent import AgentProcess, agent_config


@pytest.fixture
def agent_dir() -> Iterator[Path]:
    # Under /run (tmpfs, root's): the socket's path must stay short, and credo-runner must reach
    # its ccache's directory.
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="agent-", dir="/run"))
    base.chmod(0o755)
    (base / "out").mkdir(mode=0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def start_agent(
    lab: Lab, lab_settings: LabSettings, agent_dir: Path, runner_user: str
) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def start(text: str | None = None) -> AgentProcess:
        config = agent_dir / "agent.toml"
        config.write_text(text if text is not None else agent_config(lab, lab_settings, agent_dir))
        agent = AgentProcess(config, agent_dir / f"agent-{len(started)}.log")
        agent.start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()
