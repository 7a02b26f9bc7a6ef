"""Fixtures for the issuer's tests: a fast-lane app with a worker session and a running job, and
TLS material (a private CA-less self-signed certificate) for the real HTTPS lane."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from fastapi.testclient import TestClient

from credo.server import service
from credo.server.app import ServerConfig, create_app
from credo.server.database import sqlite_url
from tests.clouds.conftest import clouds, sdk_python  # noqa: F401 - fixtures, shared with tests/clouds
from tests.server.conftest import server_keytab, start_worker  # noqa: F401 - fixtures

ISSUER = "https://issuer.example.test/credo"
WORKER1 = "WORKER1$@CORP.EXAMPLE.TEST"
WORKER2 = "WORKER2$@CORP.EXAMPLE.TEST"
AZURE = "api://AzureADTokenExchange"
GCP = "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/credo-pool/providers/credo-prov"


def self_signed(directory: Path, names: list[str]) -> tuple[Path, Path]:
    """A certificate for ``names`` (DNS names or IP addresses), signed by its own key (EC P-256)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class World:
    """A fast-lane server: groups tier1 (WORKER1, WORKER2) and tier2 (WORKER2), runbook hello."""

    app: FastAPI
    client: TestClient
    admin: dict[str, str]
    data_dir: Path

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.request(method, f"/api/v1{path}", headers=self.admin, **kwargs)

    def worker(self, principal: str, group: str) -> tuple[int, dict[str, str]]:
        """A registered worker (as Negotiate would register it) and its session header."""
        state = self.app.state.credo
        with state.db.session() as session:
            worker, _ = service.register_worker(session, principal, group, "host", 4, "instance")
            worker_id = worker.id
        return worker_id, {"Authorization": f"Bearer {state.sessions.issue(principal)}"}

    def running_job(self, group: str, worker: tuple[int, dict[str, str]]) -> dict[str, Any]:
        """Start hello on ``group`` and claim it as ``worker``: the claim's job payload + answer."""
        job = self.api("POST", "/jobs", json={"runbook": "hello", "group": group}).json()
        worker_id, headers = worker
        answer = self.client.post(f"/api/v1/workers/{worker_id}/claim?wait=0", headers=headers).json()
        claimed = next(j for j in answer["jobs"] if j["job_id"] == job["id"])
        return claimed | {"answer": answer}

    def token(
        self, worker: tuple[int, dict[str, str]], job_id: str, lease: int, audience: str = AZURE, **extra: Any
    ) -> Any:
        worker_id, headers = worker
        return self.client.post(
            f"/api/v1/workers/{worker_id}/jobs/{job_id}/token",
            json={"lease": lease, "audience": audience} | extra,
            headers=headers,
        )


def make_world(tmp: Path, issuer: str | None = ISSUER) -> Iterator[World]:
    app = create_app(ServerConfig(data_dir=tmp, database_url=sqlite_url(tmp), oidc_issuer=issuer))
    admin = {"Authorization": f"Bearer {(tmp / 'admin.token').read_text().strip()}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        world = World(app, client, admin, tmp)
        assert (
            world.api("POST", "/groups", json={"name": "tier1", "workers": [WORKER1, WORKER2]}).status_code
            == 201
        )
        assert world.api("POST", "/groups", json={"name": "tier2", "workers": [WORKER2]}).status_code == 201
        content = base64.b64encode(b"print('hello')\n").decode()
        assert world.api("POST", "/runbooks", json={"name": "hello", "content": content}).status_code == 201
        assert world.api("POST", "/runbooks/hello/publish").status_code == 200
        yield world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path)
