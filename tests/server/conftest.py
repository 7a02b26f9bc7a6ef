"""Real servers and workers for the automation tests: `credo server` on SQLite or PostgreSQL (a
private cluster started here on a loopback port), `credo worker` processes acting as the lab's
computer accounts, and the lab DC behind them."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from credo.lab import Lab, LabPaths, LabSettings, default_lab_dir
from tests.support.identity import CREDO, identity_env, run

RUNNER = "credo-runner"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private PostgreSQL 15 cluster on a loopback port, trust auth, for this test session."""
    # pytest's temp dirs are root's (0700): the cluster lives where the postgres user can reach it.
    base = Path(tempfile.mkdtemp(prefix="credo-test-pg-"))
    base.chmod(0o755)
    shutil.chown(base, "postgres", "postgres")
    port = free_port()
    data = base / "data"
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "credo"],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run(
        [*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", f"-p {port} -k {base} -c listen_addresses=127.0.0.1",
         "-l", str(base / "log"), "-w", "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield f"postgresql://credo@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_pg, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True
        )
        shutil.rmtree(base, ignore_errors=True)


def fresh_pg_database(postgres_url: str) -> str:
    """The URL of a new, empty database in the session's PostgreSQL cluster (one per test)."""
    import psycopg

    name = f"t{os.getpid()}_{free_port()}_{time.monotonic_ns()}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def server_keytab(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The server's HTTP/ keys, written by credo itself as CREDOSRV$ (the lab's server host)."""
    settings = lab.settings
    assert settings is not None
    out = tmp_path_factory.mktemp("server") / "http.keytab"
    env = identity_env(lab, "server")
    proc = run(
        [*CREDO, "gmsa", "keytab", "svccredo", "--spn", f"HTTP/{settings.server_fqdn}", "--out", out], env
    )
    assert proc.returncode == 0, proc.stderr
    return out


@dataclass
class Server:
    url: str
    kerberos_url: str
    data_dir: Path
    database: str | None
    keytab: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    token: str = ""
    # Short, so that failover tests are quick; LeasePolicy derives the worker's fence from it.
    lease_seconds: float = 4.0
    extra_args: tuple[str, ...] = ()  # more `credo server` options (--oidc-issuer URL ...)
    # Where the server finds the KDC and the directory (to read users' groups for role grants).
    directory_env: dict[str, str] = field(default_factory=dict)
    http: httpx.Client = field(init=False)

    def start(self) -> None:
        argv = [*CREDO, "server", "--data-dir", str(self.data_dir), "--keytab", str(self.keytab),
                "--listen", f"127.0.0.1:{self.port}", "--lease-seconds", str(self.lease_seconds)]  # fmt: skip
        if self.database:
            argv += ["--database", self.database]
        argv += list(self.extra_args)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDO_", "KRB5CCNAME"))}
        env |= self.directory_env
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, self.log.read_text()
            time.sleep(0.1)
        self.token = (self.data_dir / "admin.token").read_text().strip()
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, f"/api/v1{path}", **kwargs)

    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith(("CREDO_", "KRB5", "LDAP"))} | {
            "CREDO_SERVER_URL": self.url,
            "CREDO_TOKEN": self.token,
        }

    def wait_state(self, job_id: str, states: set[str], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.api("GET", f"/jobs/{job_id}").json()
            if job["state"] in states:
                return job
            assert time.monotonic() < deadline, f"job stuck in {job['state']}: {job}"
            time.sleep(0.1)

    def output(self, job_id: str, stream: str | None = None) -> str:
        params: dict[str, Any] = {"after": 0, "limit": 10000}
        if stream:
            params["stream"] = stream
        page = self.api("GET", f"/jobs/{job_id}/output", params=params).json()
        return "".join(c["text"] for c in page["chunks"])


def _make_server(tmp: Path, database: str | None, keytab: Path, lab_settings: LabSettings) -> Server:
    port = free_port()
    return Server(
        url=f"http://127.0.0.1:{port}",
        kerberos_url=f"http://{lab_settings.server_fqdn}:{port}",
        data_dir=tmp / "data",
        database=database,
        keytab=keytab,
        port=port,
        log=tmp / "server.log",
        directory_env={
            "KRB5_CONFIG": str(LabPaths(default_lab_dir()).krb5_conf),
            "CREDO_LDAP_URL": f"ldap://{lab_settings.dc_fqdn}",
        },
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    server_keytab: Path,
    lab_settings: LabSettings,
    runner_user: str,
) -> Iterator[Server]:
    database = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        # A fresh database per test, so that tests do not see each other's rows.
        name = f"t{os.getpid()}_{free_port()}"
        subprocess.run(["psql", url, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
        database = url.rsplit("/", 1)[0] + f"/{name}"
    srv = _make_server(tmp_path, database, server_keytab, lab_settings)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def sqlite_server(
    tmp_path: Path, server_keytab: Path, lab_settings: LabSettings, runner_user: str
) -> Iterator[Server]:
    srv = _make_server(tmp_path, None, server_keytab, lab_settings)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def start_worker(lab: Lab, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """start_worker(server, "worker1", "tier1", slots=4, env=extra) -> a running `credo worker` process."""
    started: list[subprocess.Popen[bytes]] = []

    def start(
        server: Server,
        host: str,
        group: str,
        slots: int = 4,
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        env = identity_env(lab, host) | (env or {})
        log = tmp_path / f"worker-{host}-{group}-{len(started)}.log"
        with open(log, "ab") as handle:
            proc = subprocess.Popen(
                [*CREDO, "--debug", "worker", "--server", server.kerberos_url, "--group", group, "--slots", str(slots),
                 *extra],
                env=env, stdout=handle, stderr=subprocess.STDOUT,
            )  # fmt: skip
        proc.log = log  # type: ignore[attr-defined]
        started.append(proc)
        # Registered once it says so (a restarted worker's row exists already).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if "registered as" in log.read_text() or proc.poll() is not None:
                break
            time.sleep(0.05)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def create_group(
    server: Server, name: str, hosts: list[str], realm: str, run_as: str | None = "svcauto", **extra: Any
) -> None:
    workers = [f"{h.upper()}$@{realm}" for h in hosts]
    body = {"name": name, "run_as": run_as, "local_user": RUNNER, "workers": workers} | extra
    response = server.api("POST", "/groups", json=body)
    assert response.status_code == 201, response.text


def create_runbook(
    server: Server,
    name: str,
    content: str,
    parameters: list[dict[str, Any]] | None = None,
    type_: str = "python3",
) -> None:
    import base64

    body = {
        "name": name,
        "type": type_,
        "content": base64.b64encode(content.encode()).decode(),
        "parameters": parameters or [],
    }
    response = server.api("POST", "/runbooks", json=body)
    assert response.status_code == 201, response.text
    assert server.api("POST", f"/runbooks/{name}/publish").status_code == 200


def start_job(
    server: Server, runbook: str, group: str, parameters: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    response = server.api(
        "POST", "/jobs", json={"runbook": runbook, "group": group, "parameters": parameters or {}} | extra
    )
    assert response.status_code in (200, 201), response.text
    data: dict[str, Any] = response.json()
    return data
