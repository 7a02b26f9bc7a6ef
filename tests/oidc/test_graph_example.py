"""Issue 14 point 4: the README's multi-tenant runbook (examples/runbooks/graph_users.py) and
``credo token get`` with a token credo's issuer minted, against the Entra fixture (which verifies
it with PyJWT against the JWKS it fetches over HTTPS) and a Graph stand-in over HTTPS that lists
users only for a bearer token the Entra fixture issued for it, with the User.Read.All role.

No lab, no server: credo's key store and publish write the issuer's documents where the fixtures'
static host serves them, as `credo oidc publish --out` would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt as pyjwt
import pytest

from credo.oidc.documents import publish
from credo.oidc.keys import KeyStore
from credo.oidc.tokens import JobClaims, mint
from tests.clouds.conftest import AZURE_AUDIENCE
from tests.support.clouds import CloudFixtures, EntraApp, FederatedCredential
from tests.support.identity import CREDO
from tests.support.tls import HttpsServer, Request, Response

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "runbooks" / "graph_users.py"
SUBJECT = "credo:group:graph"
USERS = [{"displayName": "Ada Lovelace", "userPrincipalName": "ada@contoso.test"},
         {"displayName": "Alan Turing", "userPrincipalName": "alan@contoso.test"},
         {"displayName": "Grace Hopper", "userPrincipalName": "grace@contoso.test"}]  # fmt: skip


class Graph:
    """GET /v1.0/users, for a bearer token the Entra fixture signed, for this resource, with the role."""

    def __init__(self, clouds: CloudFixtures) -> None:
        self.entra = clouds.entra
        self.bearers: list[str] = []
        self.server = HttpsServer(clouds.ca, self._handle, "graph")
        self.url = self.server.url

    def _handle(self, request: Request) -> Response:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        self.bearers.append(bearer)
        key = pyjwt.PyJWK(self.entra._own_jwk()).key  # the fixture's signing key, as Entra publishes it
        try:
            claims = pyjwt.decode(bearer, key, algorithms=["RS256"], audience=self.url)
        except pyjwt.InvalidTokenError as exc:
            return Response.json(401, {"error": {"code": "InvalidAuthenticationToken", "message": str(exc)}})
        if "User.Read.All" not in claims.get("roles", []):
            return Response.json(
                403, {"error": {"code": "Authorization_RequestDenied", "message": "no role"}}
            )
        if request.path != "/v1.0/users" or request.query.get("$select") != ["displayName,userPrincipalName"]:
            return Response.json(400, {"error": {"code": "BadRequest", "message": request.path}})
        return Response.json(200, {"value": USERS[: int(request.query["$top"][0])]})

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def graph(clouds: CloudFixtures) -> Iterator[Graph]:
    stand_in = Graph(clouds)
    resources = clouds.entra.resources
    clouds.entra.resources = (*resources, stand_in.url)  # a resource the tenant knows
    try:
        yield stand_in
    finally:
        clouds.entra.resources = resources
        stand_in.close()


def test_the_graph_runbook_and_token_get_with_a_credo_token(
    clouds: CloudFixtures, graph: Graph, tmp_path: Path
) -> None:
    name = f"graph-{uuid.uuid4().hex[:8]}"
    issuer = f"{clouds.issuer_host.url}/{name}"
    store = KeyStore.create(tmp_path / "oidc-keys.json")
    publish(clouds.issuer_dir / name, issuer, store)
    tenant, client_id = str(uuid.uuid4()), str(uuid.uuid4())
    clouds.entra.add_app(
        EntraApp(client_id=client_id, home_tenant=str(uuid.uuid4()), tenants={tenant},
                 federated_credentials=[FederatedCredential(issuer=issuer, subject=SUBJECT)],
                 roles={graph.url: ["User.Read.All"]})
    )  # fmt: skip
    issued = mint(
        store.current, issuer=issuer, subject=SUBJECT, audience=AZURE_AUDIENCE, lifetime=600,
        claims=JobClaims(group="graph", job_id="j1", runbook="graph-users", runbook_sha256="0" * 64,
                         worker="WORKER1$@CORP.EXAMPLE.TEST", gmsa_sid=None),
    )  # fmt: skip
    token_file = tmp_path / "azure-federated-token"
    token_file.write_text(issued.token)
    token_file.chmod(0o600)
    parameters = tmp_path / "parameters.json"
    parameters.write_text(json.dumps({"tenant_id": tenant, "client_id": client_id, "top": 2}))
    # As in a job: only credo's runbook helper on PYTHONPATH, the job's variables, no credo config.
    library = tmp_path / "lib" / "credo"
    library.mkdir(parents=True)
    (library / "__init__.py").write_text("")
    shutil.copy(ROOT / "src" / "credo" / "runbook.py", library / "runbook.py")
    job_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
               "AZURE_AUTHORITY_HOST": clouds.entra.authority_host, "AZURE_TENANT_ID": tenant,
               "AZURE_CLIENT_ID": client_id, "CREDO_PARAMETERS": str(parameters), **clouds.ca.environment()}  # fmt: skip
    seen = len(clouds.entra.exchanges)

    proc = subprocess.run(
        ["/usr/bin/python3", "-s", str(EXAMPLE)],
        env=job_env | {"GRAPH_URL": graph.url, "PYTHONPATH": str(library.parent)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Ada Lovelace\tada@contoso.test\nAlan Turing\talan@contoso.test\n"
    exchange = clouds.entra.exchanges[seen]
    assert exchange.ok and exchange.params["client_assertion"] == issued.token
    assert (
        exchange.claims is not None and exchange.claims["iss"] == issuer and exchange.claims["sub"] == SUBJECT
    )
    assert graph.bearers == [exchange.issued]  # Graph got what Entra issued, for Graph's resource
    assert exchange.issued is not None and exchange.issued not in proc.stdout + proc.stderr

    # `credo token get`, the shell runbook's twin: the access token on stdout and nowhere else.
    got = subprocess.run(
        [*CREDO, "token", "get", "--tenant-id", tenant, "--client-id", client_id, "--scope", f"{graph.url}/.default"],
        env=job_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert got.returncode == 0 and got.stderr == "", got.stderr
    assert got.stdout == f"{clouds.entra.exchanges[-1].issued}\n" and clouds.entra.exchanges[-1].ok

    # A Graph URL the tenant does not know: Entra's refusal, one line with its fix, no traceback.
    unknown = subprocess.run(
        ["/usr/bin/python3", "-s", str(EXAMPLE)],
        env=job_env | {"GRAPH_URL": "https://graph.invalid", "PYTHONPATH": str(library.parent)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert unknown.returncode == 1 and unknown.stderr.startswith(
        "graph_users: Entra ID refused the token exchange"
    )
    assert "AADSTS500011" in unknown.stderr and "Traceback" not in unknown.stderr
    assert len(graph.bearers) == 1  # nothing reached Graph
    # The graph_url parameter (how a job names a national cloud's Graph) wins; never plain http.
    parameters.write_text(
        json.dumps({"tenant_id": tenant, "client_id": client_id, "graph_url": "http://graph"})
    )
    clear = subprocess.run(
        ["/usr/bin/python3", "-s", str(EXAMPLE)],
        env=job_env | {"GRAPH_URL": graph.url, "PYTHONPATH": str(library.parent)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (
        clear.returncode == 1
        and clear.stderr == "graph_users: the Graph URL 'http://graph' is not an https:// URL\n"
    )
    assert len(clouds.entra.exchanges) == seen + 3  # the token was not even asked for
