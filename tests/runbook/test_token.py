"""``credo token get`` and ``credo.runbook.token`` against a local HTTPS stand-in for Entra ID's
token endpoint (a test CA made with cryptography): the request form exactly as Entra documents it
(RFC 7523 §2.2 client authentication on a client_credentials grant), the token on stdout only,
AADSTS errors as one line with their fix, the exit codes, and the helper under a bare Python.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest

from credo import runbook
from credo.automation.identity import AZURE_AUDIENCE
from tests.support.fake_issuer import FakeIssuer
from tests.support.tls import TestCA, serve_handler

TENANT = "contoso.onmicrosoft.com"
APP = "6a1b2c3d-0000-4000-8000-00000000c0de"
SCOPE = "https://graph.microsoft.com/.default"
ACCESS_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJyb2xlcyI6WyJVc2VyLlJlYWQuQWxsIl19.graph"
ROOT = Path(__file__).resolve().parents[2]

# Entra's error answers (error_description's first line, then trace lines), per app id.
REFUSALS = {
    "wrong-issuer": (400, "invalid_client", 700211, "AADSTS700211: No matching federated identity record found "
                     "for presented assertion issuer 'https://issuer.credo.test'. Please note that the matching is "
                     "done using a case-sensitive comparison."),
    "no-tenant": (400, "invalid_request", 90002, "AADSTS90002: Tenant 'contoso.onmicrosoft.com' not found."),
    "broken": (503, "temporarily_unavailable", 50001, "AADSTS50001: service unavailable."),
}  # fmt: skip


class Entra(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        form = urllib.parse.parse_qs(body, keep_blank_values=True, strict_parsing=True)
        Entra.requests.append({"path": self.path, "content_type": self.headers["Content-Type"], "form": form})
        client = form.get("client_id", [""])[0]
        if client in REFUSALS:
            status, error, code, description = REFUSALS[client]
            answer: dict[str, Any] = {
                "error": error, "error_description": f"{description}\r\nTrace ID: 0a1b\r\nCorrelation ID: 2c3d\r\n"
                "Timestamp: 2026-09-01 10:00:00Z", "error_codes": [code], "timestamp": "2026-09-01 10:00:00Z",
                "trace_id": "0a1b", "correlation_id": "2c3d", "error_uri": "https://login.microsoftonline.com/error",
            }  # fmt: skip
        else:
            status, answer = 200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                                   "access_token": ACCESS_TOKEN}  # fmt: skip
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA.create(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def entra(ca: TestCA) -> Iterator[str]:
    Entra.requests.clear()
    with serve_handler(ca, Entra) as url:
        yield url


@pytest.fixture
def job_env(tmp_path: Path, ca: TestCA, entra: str) -> tuple[dict[str, str], str]:
    """A job's environment as the worker makes it: the token file, the authority, the CA."""
    assertion = FakeIssuer().mint(AZURE_AUDIENCE).token
    token_file = tmp_path / "azure-federated-token"
    token_file.write_text(assertion)
    token_file.chmod(0o600)
    env = {
        "PATH": os.environ["PATH"], "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file), "AZURE_AUTHORITY_HOST": entra,
        "REQUESTS_CA_BUNDLE": str(ca.ca_file),
    }  # fmt: skip
    return env, assertion


def credo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "credo", "token", "get", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def args(client: str = APP, scope: str = SCOPE) -> list[str]:
    return ["--tenant-id", TENANT, "--client-id", client, "--scope", scope]


def test_the_exchange_as_entra_documents_it(job_env: tuple[dict[str, str], str]) -> None:
    env, assertion = job_env
    proc = credo(env, *args())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ACCESS_TOKEN + "\n" and proc.stderr == ""
    [request] = Entra.requests
    assert request["path"] == f"/{TENANT}/oauth2/v2.0/token"
    assert request["content_type"] == "application/x-www-form-urlencoded"
    assert request["form"] == {
        "grant_type": ["client_credentials"],
        "client_id": [APP],
        "scope": [SCOPE],
        "client_assertion_type": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"],
        "client_assertion": [assertion],
    }


def test_json_gives_type_and_expiry(job_env: tuple[dict[str, str], str]) -> None:
    env, _ = job_env
    before = int(time.time())
    proc = credo(env, *args(), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {"token_type", "expires_in", "expires_on", "access_token"}
    assert (
        data["token_type"] == "Bearer" and data["expires_in"] == 3599 and data["access_token"] == ACCESS_TOKEN
    )
    assert before + 3599 <= data["expires_on"] <= int(time.time()) + 3599


@pytest.mark.parametrize(
    ("client", "code", "message", "hint"),
    [
        ("wrong-issuer", 5, "Entra ID refused the token exchange: AADSTS700211: No matching federated identity "
         "record found for presented assertion issuer 'https://issuer.credo.test'. Please note that the matching "
         "is done using a case-sensitive comparison.",
         "the app's federated credential names another issuer: it must equal credo's issuer URL byte for byte"),
        ("no-tenant", 6, "Entra ID refused the token exchange: AADSTS90002: Tenant 'contoso.onmicrosoft.com' "
         "not found.", "no such tenant: check --tenant-id"),
        ("broken", 4, "Entra ID refused the token exchange: AADSTS50001: service unavailable.",
         "see https://login.microsoftonline.com/error?code=50001"),
    ],
)  # fmt: skip
def test_aadsts_errors_are_one_line_with_their_fix(
    job_env: tuple[dict[str, str], str], client: str, code: int, message: str, hint: str
) -> None:
    env, assertion = job_env
    proc = credo(env, *args(client))
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and proc.stdout == ""
    assert lines[0] == f"credo: error: {message}"
    assert lines[1].startswith(f"credo: hint: {hint}")
    assert assertion not in proc.stderr and "Traceback" not in proc.stderr


def test_exit_codes_of_the_environment_and_bad_arguments(
    job_env: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, _ = job_env
    no_file = {k: v for k, v in env.items() if k != "AZURE_FEDERATED_TOKEN_FILE"}
    proc = credo(no_file, *args())
    assert proc.returncode == 3 and "AZURE_FEDERATED_TOKEN_FILE is not set" in proc.stderr
    assert "credo: hint: give the worker group an identity" in proc.stderr
    proc = credo(env, *args(scope="User.Read"))
    assert proc.returncode == 2 and "scope 'User.Read' is not a resource's /.default" in proc.stderr
    proc = credo(env, "--tenant-id", "../evil", "--client-id", APP, "--scope", SCOPE)
    assert proc.returncode == 2 and "is not a tenant id or domain name" in proc.stderr
    untrusted = {k: v for k, v in env.items() if k != "REQUESTS_CA_BUNDLE"}
    proc = credo(untrusted, *args())
    assert proc.returncode == 4, proc.stderr
    assert "certificate verify failed" in proc.stderr and "REQUESTS_CA_BUNDLE" in proc.stderr
    assert not Entra.requests  # nothing reached the endpoint


def test_the_helper_in_a_bare_python_reads_the_file_at_every_call(
    job_env: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    """As in a job: the helper alone on PYTHONPATH (the worker's library layout), the system's
    python3 without site-packages; the worker rewrites the token file between two calls."""
    env, assertion = job_env
    library = tmp_path / "lib"
    (library / "credo").mkdir(parents=True)
    (library / "credo" / "__init__.py").write_text("")
    shutil.copy(ROOT / "src" / "credo" / "runbook.py", library / "credo" / "runbook.py")
    script = (
        "import sys\n"
        "from credo import runbook\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('httpx', 'click', 'pydantic')]\n"
        f"first = runbook.token(tenant_id={TENANT!r}, client_id={APP!r}, scope={SCOPE!r})\n"
        "open(sys.argv[1], 'w').write(sys.argv[2])\n"
        f"second = runbook.token(tenant_id={TENANT!r}, client_id={APP!r}, scope={SCOPE!r})\n"
        f"print(first == second == {ACCESS_TOKEN!r})\n"
    )
    renewed = FakeIssuer().mint(AZURE_AUDIENCE).token
    proc = subprocess.run(
        ["/usr/bin/python3", "-s", "-S", "-c", script, env["AZURE_FEDERATED_TOKEN_FILE"], renewed],
        env=env | {"PYTHONPATH": str(library)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout == "True\n", proc.stderr
    assertions = [r["form"]["client_assertion"][0] for r in Entra.requests]
    assert assertions == [assertion, renewed]


def test_the_helper_raises_token_error_with_the_code(
    job_env: tuple[dict[str, str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, _ = job_env
    for name in ("AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "REQUESTS_CA_BUNDLE"):
        monkeypatch.setenv(name, env[name])
    with pytest.raises(runbook.TokenError) as caught:
        runbook.token(tenant_id=TENANT, client_id="wrong-issuer", scope=SCOPE)
    assert caught.value.code == 700211 and caught.value.kind == "refused"
    assert str(caught.value).startswith("Entra ID refused the token exchange: AADSTS700211: ")
    monkeypatch.delenv("AZURE_AUTHORITY_HOST")
    # An explicit authority host wins over the default.
    assert runbook.token(
        tenant_id=TENANT, client_id=APP, scope=SCOPE, authority_host=env["AZURE_AUTHORITY_HOST"]
    )
