"""The clouds as local fixtures, a test issuer, and jobs that run the unmodified SDKs as credo-runner.

The issuer here is the tests' own (an RS256 key, tokens minted with PyJWT, discovery + JWKS written
to a directory that ``StaticIssuerHost`` serves over HTTPS), so that these tests prove the fixtures
and the SDKs without credo's issuer; the integrator points the same fixtures at ``credo server``'s.

One configuration for the session (``Setup``): an Entra tenant with a multi-tenant app whose federated
credential trusts ``credo:group:tier1``; an AWS IAM OIDC provider and a role trusting the same subject;
a GCP workload identity pool provider and a service account the group may impersonate.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.clouds import (
    AwsRole,
    CloudFixtures,
    EntraApp,
    FederatedCredential,
    GcpProvider,
    thumbprint,
)

REPO = Path(__file__).resolve().parents[2]
SDK_VENV = Path(os.environ.get("CREDO_SDK_VENV", "/opt/credo/sdk-venv"))
SUBJECT = "credo:group:tier1"
AZURE_AUDIENCE = "api://AzureADTokenExchange"
AWS_AUDIENCE = "sts.amazonaws.com"
JOB_TIMEOUT = 60


@pytest.fixture(scope="session")
def sdk_python() -> Path:
    """The SDK venv's python, with exactly the pinned SDKs: `make install` (scripts/install-sdk-venv.sh)."""
    python = SDK_VENV / "bin" / "python"
    hint = "run `make install` as root (scripts/install-sdk-venv.sh builds it)"
    if not os.access(python, os.X_OK):
        pytest.fail(f"the jobs' SDK venv {SDK_VENV} is missing: {hint}")
    pins = {}
    for line in (REPO / "scripts" / "sdk-requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower().replace("_", "-")] = version
    probe = "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): d.version for d in m.distributions()}))"
    installed = json.loads(
        subprocess.run([python, "-I", "-c", probe], capture_output=True, text=True, check=True).stdout
    )
    wrong = {
        name: (version, installed.get(name))
        for name, version in pins.items()
        if installed.get(name) != version
    }
    if wrong:
        pytest.fail(f"the SDK venv {SDK_VENV} differs from scripts/sdk-requirements.txt {wrong}: {hint}")
    return python


# --- The tests' issuer ---------------------------------------------------------------------------


@dataclass
class TestIssuer:
    """An OIDC issuer whose documents a static HTTPS host serves: RS256 keys, PyJWT minting."""

    __test__ = False

    url: str
    directory: Path  # where {url}/.well-known/... live on the static host
    keys: list[rsa.RSAPrivateKey] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.keys:
            self.keys.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        self.publish()

    @staticmethod
    def jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
        public: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        document = {"kty": "RSA", "n": public["n"], "e": public["e"]}
        return {**document, "kid": thumbprint(document), "use": "sig", "alg": "RS256"}

    def publish(self, keys: list[rsa.RSAPrivateKey] | None = None) -> None:
        """Write discovery and JWKS (the contract's documents) for ``keys`` (default: all)."""
        well_known = self.directory / ".well-known"
        well_known.mkdir(parents=True, exist_ok=True)
        discovery = {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/.well-known/jwks.json",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "credo"],
        }
        (well_known / "openid-configuration").write_text(json.dumps(discovery))
        jwks = {"keys": [self.jwk(k) for k in (self.keys if keys is None else keys)]}
        (well_known / "jwks.json").write_text(json.dumps(jwks))

    def mint(
        self,
        *,
        aud: str,
        sub: str = SUBJECT,
        lifetime: int = 600,
        iat_offset: int = 0,
        iss: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        **extra: Any,
    ) -> str:
        key = key or self.keys[0]
        now = int(time.time()) + iat_offset
        claims = {
            "iss": self.url if iss is None else iss,
            "sub": sub,
            "aud": aud,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": str(uuid.uuid4()),
            "credo": {
                "group": "tier1",
                "job_id": 1,
                "runbook": "test",
                "runbook_sha256": "0" * 64,
                "worker": "WORKER1$",
                "gmsa_sid": "S-1-5-21-1-2-3-1105",
            },
            **extra,
        }
        headers = {"kid": kid or self.jwk(key)["kid"], "typ": "JWT"}
        return jwt.encode(claims, key, algorithm="RS256", headers=headers)


@dataclass
class Setup:
    clouds: CloudFixtures
    issuer: TestIssuer
    tenant: str
    home_tenant: str
    client_id: str
    role: AwsRole
    gcp: GcpProvider
    service_account: str


@pytest.fixture(scope="session")
def clouds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudFixtures]:
    # Under /tmp with 0755 parents, so that a job user can read the CA file.
    base = Path(tempfile.mkdtemp(prefix="credo-clouds-"))
    base.chmod(0o755)
    with CloudFixtures(base) as fixtures:
        yield fixtures
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def setup(clouds: CloudFixtures) -> Setup:
    issuer = TestIssuer(url=f"{clouds.issuer_host.url}/credo", directory=clouds.issuer_dir / "credo")
    home, tenant, client_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    clouds.entra.add_app(
        EntraApp(
            client_id=client_id,
            home_tenant=home,
            tenants={tenant},  # the target tenant's admin consented
            federated_credentials=[
                FederatedCredential(issuer=issuer.url, subject=SUBJECT, audience=AZURE_AUDIENCE)
            ],
            roles={"https://graph.microsoft.com": ["User.Read.All"]},
        )
    )
    provider = clouds.aws.add_oidc_provider(issuer.url, [AWS_AUDIENCE])
    role = clouds.aws.add_role("credo-tier1", provider, sub=SUBJECT)
    gcp = clouds.gcp.add_provider(
        GcpProvider(
            project_number="123456789012",
            pool="credo",
            provider="tier1",
            issuer_uri=issuer.url,
            attribute_condition=lambda claims: str(claims["sub"]).startswith("credo:group:"),
            condition_text="assertion.sub.startsWith('credo:group:')",
        )
    )
    account = clouds.gcp.add_service_account(
        "runbooks@project.iam.gserviceaccount.com", [gcp.principal(SUBJECT)]
    )
    return Setup(clouds, issuer, tenant, home, client_id, role, gcp, account)


# --- Jobs as credo-runner ------------------------------------------------------------------------


@dataclass
class Job:
    """A job's private directory (0700, the job user's) and its files, as a worker would lay them out."""

    directory: Path
    user: pwd.struct_passwd

    def write(self, name: str, content: str) -> Path:
        """A file only the job user can read (0600), like the worker's token file."""
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(content)
        os.chown(path, self.user.pw_uid, self.user.pw_gid)
        return path

    def run(self, python: Path, script: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
        """``python -I -c script`` as the job user (setpriv: its uid, gid and groups, no new privileges)
        with only ``env`` (plus PATH and HOME), as the worker starts a job."""
        setpriv = [
            "setpriv",
            f"--reuid={self.user.pw_uid}",
            f"--regid={self.user.pw_gid}",
            "--init-groups",
            "--no-new-privs",
        ]
        full_env = {"PATH": "/usr/bin:/bin", "HOME": str(self.directory), "LANG": "C.UTF-8", **env}
        return subprocess.run(
            [*setpriv, "--", str(python), "-I", "-c", script],
            env=full_env,
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=JOB_TIMEOUT,
        )


@pytest.fixture
def job(runner_user: str) -> Iterator[Job]:
    user = pwd.getpwnam(runner_user)
    directory = Path(tempfile.mkdtemp(prefix="credo-job-"))
    os.chown(directory, user.pw_uid, user.pw_gid)
    directory.chmod(0o700)
    yield Job(directory, user)
    shutil.rmtree(directory, ignore_errors=True)
