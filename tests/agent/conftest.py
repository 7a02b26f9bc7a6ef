"""A real `credo agent run` process acting as WORKER1$ against the lab DC, with its socket and
outputs in a temporary directory."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from credo.lab import Lab, LabSettings
from tests.support.identity import CREDO


def agent_config(
    lab: Lab,
    settings: LabSettings,
    base: Path,
    extra_account: str = "",
    servers: list[str] | None = None,
    directory_extra: str = "",
    **top: str,
) -> str:
    hosts = lab.paths.root / "hosts"
    listed = ", ".join(f'"{s}"' for s in (servers or [settings.ldap_url]))
    lines = [f'socket = "{base}/agent.sock"', *(f"{k} = {v}" for k, v in top.items()), "",
             "[directory]", f"servers = [{listed}]", directory_extra, f'host_keytab = "{hosts}/worker1.keytab"',
             f'host_principal = "WORKER1$@{settings.realm}"', f'krb5_config = "{lab.paths.krb5_conf}"', "",
             "[[account]]", 'name = "svcauto"', 'allow_users = ["root", "credo-runner"]', extra_account, "",
             "[[account.keytab]]", f'path = "{base}/out/svcauto.keytab"', 'spns = []', "",
             "[[account.ccache]]", f'path = "{base}/out/svcauto.ccache"', 'user = "credo-runner"', ""]  # fmt: skip
    return "\n".join(lines)


class AgentProcess:
    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.process: subprocess.Popen[bytes] | None = None
        self.socket = config.parent / "agent.sock"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}
        with open(self.log, "ab") as handle:
            self.process = subprocess.Popen([*CREDO, "agent", "run", "--config", str(self.config)], env=env,
                                            stdout=handle, stderr=subprocess.STDOUT)  # fmt: skip

    def wait_refreshed(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while "refreshed (kvno" not in self.log.read_text():
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}
        return base | {"CREDO_AGENT_SOCKET": str(self.socket)} | extra

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


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
