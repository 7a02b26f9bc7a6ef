"""A real `credo agent run` process acting as WORKER1$ against the lab DC (tests of the agent and
of what uses it: workers, systemd units, endpoints)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

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
    def __init__(self, config: Path, log: Path, extra_env: dict[str, str] | None = None) -> None:
        self.config, self.log = config, log
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.socket = config.parent / "agent.sock"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}
        env |= self.extra_env
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
