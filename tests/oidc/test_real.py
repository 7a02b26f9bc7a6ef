"""Real lane: a real `credo server` process serves the issuer's documents over HTTPS, `credo oidc
check` fetches them the way a cloud would and passes, or names the mismatch (a trailing slash,
an unpublished rotation, an unreachable issuer, a TLS failure); the worker client gets tokens
over Kerberos (Negotiate as WORKER1$) and they verify with PyJWT against the JWKS fetched over
HTTPS."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt as pyjwt
import pytest

from credo.lab import Lab, LabSettings
from tests.oidc.conftest import AZURE, self_signed
from tests.server.conftest import free_port, server_keytab  # noqa: F401 - the fixture
from tests.support.identity import CREDO, identity_env, run

pytestmark = pytest.mark.lab


def _trust(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


@dataclass
class HttpsServer:
    url: str  # by the FQDN of its HTTP/ principal: also the issuer
    data_dir: Path
    ca: Path
    token: str
    realm: str
    process: subprocess.Popen[bytes]

    def env(self, **extra: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("CREDO_", "KRB5", "SSL_CERT"))}
        return base | {"CREDO_SERVER_URL": self.url, "CREDO_TOKEN": self.token, "SSL_CERT_FILE": str(self.ca),
                       "CREDO_SERVER_DIR": str(self.data_dir)} | extra  # fmt: skip

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(
            method, f"{self.url}/api/v1{path}", headers=headers, verify=_trust(self.ca), **kwargs
        )


@pytest.fixture
def https_server(
    tmp_path: Path,
    lab_settings: LabSettings,
    server_keytab: Path,  # noqa: F811
) -> Iterator[HttpsServer]:
    port = free_port()
    fqdn = lab_settings.server_fqdn
    cert, key = self_signed(tmp_path, [fqdn, "127.0.0.1", "localhost"])
    url = f"https://{fqdn}:{port}"
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDO_", "KRB5CCNAME"))}
    argv = [*CREDO, "server", "--data-dir", str(data), "--keytab", str(server_keytab), "--listen",
            f"127.0.0.1:{port}", "--tls-cert", str(cert), "--tls-key", str(key), "--oidc-issuer", url]  # fmt: skip
    log = tmp_path / "server.log"
    with open(log, "ab") as handle:
        process = subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/api/v1/health", verify=_trust(cert), timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    server = HttpsServer(
        url, data, cert, (data / "admin.token").read_text().strip(), lab_settings.realm, process
    )
    workers = [f"WORKER1$@{lab_settings.realm}"]
    assert server.api("POST", "/groups", json={"name": "tier1", "workers": workers}).status_code == 201
    patch = {"audiences": [AZURE, "sts.amazonaws.com"]}
    assert server.api("PATCH", "/groups/tier1", json=patch).status_code == 200
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def static_host(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """An HTTPS static file server (the "storage account"): (its URL, its root, its CA)."""
    root = tmp_path / "www"
    root.mkdir()
    cert, key = self_signed(_mk(tmp_path / "static"), ["127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    handler = partial(_Quiet, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", root, cert
    finally:
        httpd.shutdown()
        httpd.server_close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _mk(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    return path


def oidc(server: HttpsServer, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run([*CREDO, "oidc", *args], server.env(**env))


def test_check_passes_against_the_served_documents(https_server: HttpsServer) -> None:
    proc = oidc(https_server, "check", "--group", "tier1", "--ca-file", str(https_server.ca), "--json")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    report = json.loads(proc.stdout)
    assert report["ok"] and (report["issuer"], report["subject"], report["audience"]) == (
        https_server.url,
        "credo:group:tier1",
        AZURE,
    )
    assert {c["check"] for c in report["checks"]} >= {"discovery", "issuer", "jwks", "current key", "token"}
    # The federated credential body names the same triple.
    body = json.loads(oidc(https_server, "federated-credential", "--group", "tier1", "--json").stdout)
    assert body == {"name": "credo-tier1", "issuer": https_server.url, "subject": "credo:group:tier1",
                    "audiences": [AZURE], "description": "credo worker group tier1"}  # fmt: skip


def test_a_trailing_slash_issuer_is_named(
    https_server: HttpsServer, static_host: tuple[str, Path, Path]
) -> None:
    # Given to credo with a slash: refused at once, naming the AADSTS code it would cause.
    proc = oidc(https_server, "check", "--group", "tier1", "--issuer", https_server.url + "/")
    assert proc.returncode == 2
    assert (
        "ends with a slash" in proc.stderr
        and "AADSTS700211" in proc.stderr
        and "Traceback" not in proc.stderr
    )
    # Hosted documents whose issuer has a slash the tokens do not have.
    url, root, ca = static_host
    assert oidc(https_server, "publish", "--out", str(root), "--issuer", url).returncode == 0
    document = root / ".well-known" / "openid-configuration"
    document.write_text(document.read_text().replace(f'"issuer": "{url}"', f'"issuer": "{url}/"'))
    proc = oidc(https_server, "check", "--group", "tier1", "--issuer", url, "--ca-file", str(ca))
    assert proc.returncode == 1
    assert "FAIL issuer" in proc.stdout and "by a trailing slash (AADSTS700211)" in proc.stdout
    assert proc.stderr.startswith("credo: error: ") and "Traceback" not in proc.stderr


def test_an_unpublished_rotation_is_named(
    https_server: HttpsServer, static_host: tuple[str, Path, Path]
) -> None:
    url, root, ca = static_host
    assert oidc(https_server, "publish", "--out", str(root), "--issuer", url).returncode == 0
    passed = oidc(https_server, "check", "--group", "tier1", "--issuer", url, "--ca-file", str(ca))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    # One rotation unpublished: tokens still verify (the new current key was the published next
    # one), but the new next key is missing: the rotation after would break them.
    assert oidc(https_server, "rotate", "--force").returncode == 0
    proc = oidc(https_server, "check", "--group", "tier1", "--issuer", url, "--ca-file", str(ca))
    assert proc.returncode == 1
    assert "ok   token" in proc.stdout and "FAIL next key" in proc.stdout and "AADSTS700027" in proc.stdout
    # Two: the signing key itself is missing.
    assert oidc(https_server, "rotate", "--force").returncode == 0
    proc = oidc(https_server, "check", "--group", "tier1", "--issuer", url, "--ca-file", str(ca))
    assert proc.returncode == 1
    assert "rotation not published" in proc.stdout and "AADSTS700027" in proc.stdout
    # Republished: fine again. The server itself picked the new key up (its JWKS changed).
    assert oidc(https_server, "publish", "--out", str(root), "--issuer", url).returncode == 0
    assert (
        oidc(https_server, "check", "--group", "tier1", "--issuer", url, "--ca-file", str(ca)).returncode == 0
    )


def test_unreachable_and_tls_failures_are_named(
    https_server: HttpsServer, static_host: tuple[str, Path, Path]
) -> None:
    closed = f"https://127.0.0.1:{free_port()}"
    proc = oidc(https_server, "check", "--group", "tier1", "--issuer", closed)
    assert proc.returncode == 1 and "unreachable" in proc.stdout and "AADSTS50166" in proc.stdout
    # A host whose certificate nothing trusts: a cloud would fail the TLS handshake the same way.
    url, root, _ = static_host
    assert oidc(https_server, "publish", "--out", str(root), "--issuer", url).returncode == 0
    proc = oidc(https_server, "check", "--group", "tier1", "--issuer", url)
    assert proc.returncode == 1 and "TLS failure" in proc.stdout and "AADSTS50166" in proc.stdout
    assert "Traceback" not in proc.stderr


CLIENT = """
import json, sys
from credo.krb.host import HostIdentity
from credo.worker.client import ServerClient
client = ServerClient(sys.argv[1], HostIdentity.resolve(), "tier1", 1, ca_file=sys.argv[2])
out = {}
try:
    out["host"] = client.host_token("tier1", sys.argv[3], "demo.service").__dict__
except Exception as exc:
    out["host_error"] = [type(exc).__name__, str(exc)]
if sys.argv[4] == "job":
    client.register()
    jobs = client.json("POST", "/claim?wait=5")["jobs"]
    job = jobs[0]
    out["job"] = client.job_token(job["job_id"], job["lease_token"], sys.argv[3]).__dict__
    out["job_id"] = job["job_id"]
print(json.dumps(out, default=str))
"""


def client_tokens(lab: Lab, server: HttpsServer, host: str, audience: str, job: bool) -> dict[str, Any]:
    env = identity_env(lab, host)
    proc = run(
        [sys.executable, "-c", CLIENT, server.url, str(server.ca), audience, "job" if job else "-"], env
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def verify_over_https(server: HttpsServer, token: str, audience: str) -> dict[str, Any]:
    jwks = httpx.get(f"{server.url}/.well-known/jwks.json", verify=_trust(server.ca)).json()
    client = pyjwt.PyJWKSet.from_dict(jwks)
    kid = pyjwt.get_unverified_header(token)["kid"]
    key = next(k for k in client.keys if k.key_id == kid)
    claims: dict[str, Any] = pyjwt.decode(
        token, key.key, algorithms=["RS256"], audience=audience, issuer=server.url
    )
    return claims


def test_worker_and_host_tokens_over_kerberos(lab: Lab, https_server: HttpsServer) -> None:
    import base64

    content = base64.b64encode(b"print('hi')\n").decode()
    assert (
        https_server.api("POST", "/runbooks", json={"name": "hello", "content": content}).status_code == 201
    )
    assert https_server.api("POST", "/runbooks/hello/publish").status_code == 200
    job = https_server.api("POST", "/jobs", json={"runbook": "hello", "group": "tier1"}).json()
    result = client_tokens(lab, https_server, "worker1", "sts.amazonaws.com", job=True)
    realm = https_server.realm
    host = verify_over_https(https_server, result["host"]["token"], "sts.amazonaws.com")
    assert host["sub"] == "credo:group:tier1"
    assert host["credo"] == {"group": "tier1", "host": f"WORKER1$@{realm}", "service": "demo.service"}
    claims = verify_over_https(https_server, result["job"]["token"], "sts.amazonaws.com")
    assert claims["sub"] == "credo:group:tier1" and claims["credo"]["job_id"] == job["id"]
    assert claims["credo"]["worker"] == f"WORKER1$@{realm}"
    # WORKER2$ may not serve tier1: no token for it.
    refused = client_tokens(lab, https_server, "worker2", AZURE, job=False)
    assert refused["host_error"][0] == "NotPermittedError" and "may not serve" in refused["host_error"][1]
    # /api/v1/tokens (a service's token) for an audience tier1 does not list: refused, no token.
    unlisted = client_tokens(lab, https_server, "worker1", "api://Unlisted", job=False)
    assert "host" not in unlisted and unlisted["host_error"][0] == "NotPermittedError"
    assert "may not get tokens for audience 'api://Unlisted'" in unlisted["host_error"][1]


def test_group_set_and_show_from_the_cli(https_server: HttpsServer) -> None:
    def credo(*args: str) -> subprocess.CompletedProcess[str]:
        return run([*CREDO, "group", *args], https_server.env())

    bad = credo("set", "tier1", "--aws-role-arn", "arn:aws:iam::1:role/x")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.splitlines() == [
        "credo: error: aws_role_arn: 'arn:aws:iam::1:role/x' is not an IAM role ARN",
        "credo: hint: arn:aws:iam::123456789012:role/NAME",
    ]
    assert credo("set", "tier1", "--token-lifetime", "30").returncode == 2
    assert credo("set", "tier1").returncode == 2  # nothing to set
    assert credo("set", "nope", "--token-lifetime", "600").returncode == 6
    good = credo("set", "tier1", "--token-audience", AZURE, "--azure-tenant-id", "11111111-2222-3333-4444-555555555555",
                 "--azure-client-id", "66666666-7777-8888-9999-000000000000", "--runbook-subjects")  # fmt: skip
    assert good.returncode == 0, good.stderr
    shown = credo("get", "tier1").stdout
    assert "token audiences" in shown and AZURE in shown and "runbook subjects      yes" in shown
    identity = json.loads(credo("show", "tier1", "--json").stdout)["identity"]
    assert identity["audiences"] == [AZURE] and identity["runbook_subjects"] is True
    assert credo("set", "tier1", "--azure-tenant-id", "").returncode == 2  # the pair goes together
    assert credo("set", "tier1", "--no-token-audiences").returncode == 0
    assert "get no cloud token" in credo("show", "tier1").stdout


def test_check_names_what_differs_in_the_admins_federated_credential(
    https_server: HttpsServer, tmp_path: Path
) -> None:
    """Issue 14 point 6: `check --federated-credential FILE` compares the credential made in Entra
    with what the tokens carry and names AADSTS70021 and the field (and how it differs)."""
    good = json.loads(oidc(https_server, "federated-credential", "--group", "tier1", "--json").stdout)
    ca = str(https_server.ca)

    def check(credential: object, *extra: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "fic.json"
        path.write_text(json.dumps(credential))
        return oidc(https_server, "check", "--group", "tier1", "--ca-file", ca, "--federated-credential", str(path),
                    *extra)  # fmt: skip

    passed = check(good)
    assert passed.returncode == 0 and "ok   federated credential: credo-tier1 matches" in passed.stdout
    # `az ad app federated-credential list` prints a list: one matching entry is enough.
    assert check([good | {"name": "old", "subject": "x"}, good]).returncode == 0
    host = urlsplit(https_server.url).hostname
    assert host is not None
    cases = {
        "letter case": (good | {"issuer": https_server.url.replace(host, host.upper())}, "AADSTS700211"),
        "the scheme": (good | {"issuer": https_server.url.replace("https://", "http://")}, "AADSTS700211"),
        "a trailing slash": (good | {"issuer": https_server.url + "/"}, "AADSTS700211"),
    }
    for how, (credential, code) in cases.items():
        proc = check(credential)
        assert proc.returncode == 1, proc.stdout
        assert f"by {how} ({code})" in proc.stdout and "FAIL credential issuer" in proc.stdout, proc.stdout
        assert proc.stderr.splitlines()[0].startswith("credo: error: ")
        assert "(AADSTS70021)" in proc.stderr.splitlines()[0] and "Traceback" not in proc.stderr
    subject = check(good | {"subject": "credo:group:Tier1"})
    assert "FAIL credential subject" in subject.stdout and "by letter case (AADSTS700213)" in subject.stdout
    guid = check(good | {"audiences": ["fb60f99c-7a34-4190-8149-302f77469936"]})
    assert "not the URI (AADSTS700214)" in guid.stdout
    # An audience the group does not list: its tokens can never carry it.
    unlisted = check(good | {"audiences": ["api://Other"]}, "--audience", "api://Other")
    assert unlisted.returncode == 1
    assert "may not get tokens for 'api://Other'" in unlisted.stdout and "(AADSTS700212)" in unlisted.stdout
    bad = oidc(
        https_server, "check", "--group", "tier1", "--federated-credential", str(tmp_path / "none.json")
    )
    assert bad.returncode == 2 and bad.stderr.startswith("credo: error: --federated-credential: cannot read")
    (tmp_path / "junk.json").write_text("{")
    bad = oidc(
        https_server, "check", "--group", "tier1", "--federated-credential", str(tmp_path / "junk.json")
    )
    assert bad.returncode == 2 and "is not JSON" in bad.stderr and "credo: hint: az ad app" in bad.stderr


def test_a_runbooks_own_federated_credential(https_server: HttpsServer, tmp_path: Path) -> None:
    """Point 2: the group allows runbook subjects, one runbook asks; the credential for it prints."""
    script = tmp_path / "disable.py"
    script.write_text("print('off')\n")
    env = https_server.env()
    assert run([*CREDO, "runbook", "create", "disable-user", "--file", str(script)], env).returncode == 0
    assert run([*CREDO, "group", "set", "tier1", "--runbook-subjects"], env).returncode == 0
    args = ("federated-credential", "--group", "tier1", "--runbook", "disable-user", "--json")
    refused = oidc(https_server, *args)
    assert refused.returncode == 2 and refused.stderr.splitlines() == [
        "credo: error: runbook 'disable-user' does not ask for its own subject: its jobs get credo:group:tier1",
        "credo: hint: credo runbook update disable-user --own-token-subject (or leave out --runbook)",
    ]
    asked = run([*CREDO, "runbook", "update", "disable-user", "--own-token-subject"], env)
    assert asked.returncode == 0 and asked.stdout == "disable-user's jobs ask for their own token subject\n"
    assert json.loads(run([*CREDO, "runbook", "show", "disable-user", "--json"], env).stdout)[
        "own_token_subject"
    ]
    body = json.loads(oidc(https_server, *args).stdout)
    assert body == {"name": "credo-tier1-disable-user", "issuer": https_server.url,
                    "subject": "credo:group:tier1:runbook:disable-user", "audiences": [AZURE],
                    "description": "credo worker group tier1, runbook disable-user"}  # fmt: skip
