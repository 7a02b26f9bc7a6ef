"""The fixtures themselves, asked directly over HTTPS: the checks and error formats that the SDK tests
do not reach (missing parameters, no federated credential at all, an unreachable or inconsistent
issuer, a key without use=sig, the STS XML and validation errors, GCP's lifetime and subject limits,
impersonation refused), a JWKS cache across a key rotation, and the static host's confinement."""

from __future__ import annotations

import json
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.clouds.conftest import AWS_AUDIENCE, AZURE_AUDIENCE, SUBJECT, Setup, TestIssuer
from tests.support.clouds import (
    CLOUD_PLATFORM_SCOPE,
    JWT_BEARER,
    TOKEN_EXCHANGE,
    TOKEN_TYPE_ACCESS_TOKEN,
    TOKEN_TYPE_JWT,
    CloudFixtures,
    EntraApp,
    EntraFixture,
    FederatedCredential,
    OidcVerifier,
    Rejected,
)

STS_NS = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}


@pytest.fixture(scope="module")
def client(clouds: CloudFixtures) -> Any:
    with httpx.Client(verify=clouds.ca.client_context(), timeout=10) as http:
        yield http


def _entra(client: httpx.Client, setup: Setup, **overrides: str) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_id": setup.client_id,
        "scope": "https://graph.microsoft.com/.default",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": setup.issuer.mint(aud=AZURE_AUDIENCE),
        **overrides,
    }
    return client.post(setup.clouds.entra.token_url(setup.tenant), data={k: v for k, v in form.items() if v})


# --- Entra ---------------------------------------------------------------------------------------


def test_entra_error_has_the_documented_shape(client: httpx.Client, setup: Setup) -> None:
    answer = _entra(client, setup, client_assertion=setup.issuer.mint(aud=AZURE_AUDIENCE, sub="nobody"))
    assert answer.status_code == 400
    body = answer.json()
    assert set(body) == {
        "error",
        "error_description",
        "error_codes",
        "timestamp",
        "trace_id",
        "correlation_id",
        "error_uri",
    }
    assert body["error"] == "invalid_client" and body["error_codes"] == [700213]
    assert body["error_description"].startswith("AADSTS700213: ")
    assert uuid.UUID(body["trace_id"]) and uuid.UUID(body["correlation_id"])


@pytest.mark.parametrize(
    ("overrides", "error", "code"),
    [
        ({"client_assertion_type": ""}, "invalid_request", 900144),
        ({"client_assertion": ""}, "invalid_request", 900144),
        ({"grant_type": "password"}, "unsupported_grant_type", 70003),
        (
            {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"},
            "invalid_request",
            7000216,
        ),
        (
            {"scope": "https://graph.microsoft.com/.default https://vault.azure.net/.default"},
            "invalid_scope",
            70011,
        ),
        ({"scope": "https://graph.microsoft.com/User.Read"}, "invalid_scope", 1002012),
        ({"scope": "https://nowhere.example/.default"}, "invalid_resource", 500011),
        ({"client_id": str(uuid.UUID(int=1))}, "unauthorized_client", 700016),
        ({"client_assertion": "not-a-jwt"}, "invalid_client", 50027),
    ],
)
def test_entra_request_checks(
    client: httpx.Client, setup: Setup, overrides: dict[str, str], error: str, code: int
) -> None:
    body = _entra(client, setup, **overrides).json()
    assert (body["error"], body["error_codes"]) == (error, [code])


def test_entra_unknown_tenant(client: httpx.Client, setup: Setup) -> None:
    answer = client.post(
        setup.clouds.entra.token_url("contoso.example"), data={"grant_type": "client_credentials"}
    )
    assert answer.json()["error_codes"] == [90002]


def test_entra_app_without_federated_credentials_is_70021(client: httpx.Client, setup: Setup) -> None:
    app = setup.clouds.entra.add_app(EntraApp(client_id=str(uuid.uuid4()), home_tenant=setup.tenant))
    assert _entra(client, setup, client_id=app.client_id).json()["error_codes"] == [70021]


def test_entra_issuer_whose_discovery_disagrees_or_is_unreachable_is_50166(
    client: httpx.Client, setup: Setup
) -> None:
    clouds = setup.clouds
    # A second issuer on the same host whose discovery names another issuer (OIDC Discovery §4.3) ...
    liar = TestIssuer(url=f"{clouds.issuer_host.url}/liar", directory=clouds.issuer_dir / "liar")
    config = liar.directory / ".well-known" / "openid-configuration"
    config.write_text(json.dumps({**json.loads(config.read_text()), "issuer": setup.issuer.url}))
    # ... and one whose host does not answer.
    gone = "https://127.0.0.1:1/credo"
    app = clouds.entra.add_app(
        EntraApp(
            client_id=str(uuid.uuid4()),
            home_tenant=setup.tenant,
            federated_credentials=[
                FederatedCredential(liar.url, SUBJECT),
                FederatedCredential(gone, SUBJECT),
            ],
        )
    )
    for assertion in (liar.mint(aud=AZURE_AUDIENCE), liar.mint(aud=AZURE_AUDIENCE, iss=gone)):
        body = _entra(client, setup, client_id=app.client_id, client_assertion=assertion).json()
        assert body["error_codes"] == [50166], body


def test_entra_requires_use_sig_on_the_key(client: httpx.Client, setup: Setup) -> None:
    clouds = setup.clouds
    issuer = TestIssuer(url=f"{clouds.issuer_host.url}/nouse", directory=clouds.issuer_dir / "nouse")
    jwks = issuer.directory / ".well-known" / "jwks.json"
    jwks.write_text(
        json.dumps({"keys": [{k: v for k, v in issuer.jwk(issuer.keys[0]).items() if k != "use"}]})
    )
    app = clouds.entra.add_app(
        EntraApp(
            str(uuid.uuid4()), setup.tenant, federated_credentials=[FederatedCredential(issuer.url, SUBJECT)]
        )
    )
    body = _entra(
        client, setup, client_id=app.client_id, client_assertion=issuer.mint(aud=AZURE_AUDIENCE)
    ).json()
    assert body["error_codes"] == [700027] and "use" in body["error_description"]


def test_entra_accepts_within_the_clock_skew_and_not_beyond(client: httpx.Client, setup: Setup) -> None:
    mint = setup.issuer.mint
    assert _entra(client, setup, client_assertion=mint(aud=AZURE_AUDIENCE, iat_offset=120)).status_code == 200
    assert (
        _entra(client, setup, client_assertion=mint(aud=AZURE_AUDIENCE, iat_offset=-700)).status_code == 200
    )
    late = _entra(client, setup, client_assertion=mint(aud=AZURE_AUDIENCE, iat_offset=900)).json()
    assert late["error_codes"] == [700024]


def test_entra_discovery_documents_for_msal(client: httpx.Client, setup: Setup) -> None:
    entra = setup.clouds.entra
    config = client.get(f"{entra.url}/{setup.tenant}/v2.0/.well-known/openid-configuration").json()
    assert config["token_endpoint"] == entra.token_url(setup.tenant)
    instance = client.get(
        f"{entra.url}/common/discovery/instance",
        params={
            "authorization_endpoint": f"{entra.url}/{setup.tenant}/oauth2/v2.0/authorize",
            "api-version": "1.0",
        },
    ).json()
    assert (
        instance["tenant_discovery_endpoint"]
        == f"{entra.url}/{setup.tenant}/v2.0/.well-known/openid-configuration"
    )
    assert client.get(f"{entra.url}/nowhere/v2.0/.well-known/openid-configuration").json()["error_codes"] == [
        90002
    ]


# --- A cloud's JWKS cache across a key rotation --------------------------------------------------


def test_a_cached_jwks_needs_the_next_key_published_before_its_first_use(
    setup: Setup, tmp_path: Path
) -> None:
    clouds = setup.clouds
    issuer = TestIssuer(url=f"{clouds.issuer_host.url}/rotating", directory=clouds.issuer_dir / "rotating")
    current, following = issuer.keys[0], rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # Caches for an hour and does not refetch on an unknown kid.
    verifier = OidcVerifier(clouds.ca, jwks_cache_seconds=3600)

    def verify(key: rsa.RSAPrivateKey) -> dict[str, Any]:
        return verifier.verify(
            issuer.mint(aud=AWS_AUDIENCE, key=key), issuer=issuer.url, audience=AWS_AUDIENCE
        )

    # Published ahead: the cache filled before the switch already has the next key.
    issuer.publish([current, following])
    assert verify(current)["sub"] == SUBJECT
    assert verify(following)["sub"] == SUBJECT
    fetched = len(verifier.fetches)

    # Not published ahead: a key added after the cache filled is unknown until the cache expires.
    late = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    issuer.publish([current, following, late])
    with pytest.raises(Rejected, match="key_not_found"):
        verify(late)
    assert len(verifier.fetches) == fetched  # the cached set was used, no refetch

    # The default verifier (no cache) sees it at once.
    assert OidcVerifier(clouds.ca).verify(
        issuer.mint(aud=AWS_AUDIENCE, key=late), issuer=issuer.url, audience=AWS_AUDIENCE
    )


# --- AWS -----------------------------------------------------------------------------------------


def _sts(client: httpx.Client, setup: Setup, **overrides: str) -> httpx.Response:
    form = {
        "Action": "AssumeRoleWithWebIdentity",
        "Version": "2011-06-15",
        "RoleArn": setup.role.arn,
        "RoleSessionName": "credo-job-7",
        "WebIdentityToken": setup.issuer.mint(aud=AWS_AUDIENCE),
        **overrides,
    }
    return client.post(setup.clouds.aws.endpoint_url + "/", data={k: v for k, v in form.items() if v})


def test_sts_answer_is_the_documented_xml(client: httpx.Client, setup: Setup) -> None:
    answer = _sts(client, setup, DurationSeconds="900")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(answer.text)
    assert root.tag == "{https://sts.amazonaws.com/doc/2011-06-15/}AssumeRoleWithWebIdentityResponse"
    result = root.find("sts:AssumeRoleWithWebIdentityResult", STS_NS)
    assert result is not None
    texts = {el.tag.split("}")[1]: el.text for el in result.iter() if el.text and el.text.strip()}
    assert texts["SubjectFromWebIdentityToken"] == SUBJECT
    assert texts["Audience"] == AWS_AUDIENCE
    assert texts["Provider"] == setup.issuer.url
    assert texts["Arn"] == f"arn:aws:sts::{setup.role.account}:assumed-role/credo-tier1/credo-job-7"
    assert set(texts) >= {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration", "AssumedRoleId"}
    expiration = time.mktime(time.strptime(texts["Expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 880 <= expiration - time.time() <= 905
    assert root.find("sts:ResponseMetadata/sts:RequestId", STS_NS) is not None


@pytest.mark.parametrize(
    ("overrides", "code", "status"),
    [
        ({"RoleSessionName": "a"}, "ValidationError", 400),
        ({"RoleSessionName": "has space"}, "ValidationError", 400),
        ({"DurationSeconds": "899"}, "ValidationError", 400),
        ({"DurationSeconds": "3601"}, "ValidationError", 400),
        ({"WebIdentityToken": ""}, "MissingParameter", 400),
        ({"Version": "2010-01-01"}, "InvalidAction", 400),
        ({"RoleArn": "arn:aws:iam::123456789012:role/other"}, "AccessDenied", 403),
        ({"WebIdentityToken": "garbage"}, "InvalidIdentityToken", 400),
    ],
)
def test_sts_errors_are_documented_xml(
    client: httpx.Client, setup: Setup, overrides: dict[str, str], code: str, status: int
) -> None:
    answer = _sts(client, setup, **overrides)
    assert answer.status_code == status
    root = ET.fromstring(answer.text)
    assert root.tag == "{https://sts.amazonaws.com/doc/2011-06-15/}ErrorResponse"
    assert root.findtext("sts:Error/sts:Code", namespaces=STS_NS) == code
    assert root.findtext("sts:Error/sts:Type", namespaces=STS_NS) == "Sender"
    assert root.findtext("sts:Error/sts:Message", namespaces=STS_NS)
    assert root.findtext("sts:RequestId", namespaces=STS_NS)


def test_sts_string_like_trust_condition(client: httpx.Client, setup: Setup) -> None:
    provider = setup.role.provider
    role = setup.clouds.aws.add_role("credo-runbooks", provider, sub="credo:group:tier1:runbook:*", like=True)
    runbook = setup.issuer.mint(aud=AWS_AUDIENCE, sub="credo:group:tier1:runbook:disable-user")
    assert _sts(client, setup, RoleArn=role.arn, WebIdentityToken=runbook).status_code == 200
    assert _sts(client, setup, RoleArn=role.arn).status_code == 403  # the group's subject is not a runbook's


# --- GCP -----------------------------------------------------------------------------------------


def _gcp(client: httpx.Client, setup: Setup, **overrides: str) -> httpx.Response:
    form = {
        "grant_type": TOKEN_EXCHANGE,
        "audience": setup.gcp.audience,
        "scope": CLOUD_PLATFORM_SCOPE,
        "requested_token_type": TOKEN_TYPE_ACCESS_TOKEN,
        "subject_token_type": TOKEN_TYPE_JWT,
        "subject_token": setup.issuer.mint(aud=setup.gcp.audience),
        **overrides,
    }
    return client.post(setup.clouds.gcp.token_url, data={k: v for k, v in form.items() if v})


def test_gcp_sts_answer_and_json_body(client: httpx.Client, setup: Setup) -> None:
    body = _gcp(client, setup).json()
    assert set(body) == {"access_token", "issued_token_type", "token_type", "expires_in"}
    assert (body["issued_token_type"], body["token_type"]) == (TOKEN_TYPE_ACCESS_TOKEN, "Bearer")
    # The same request in the API's JSON form (camelCase), with the https: form of the audience in the token.
    token = setup.issuer.mint(aud="https:" + setup.gcp.audience)
    answer = client.post(
        setup.clouds.gcp.token_url,
        json={
            "grantType": TOKEN_EXCHANGE,
            "audience": setup.gcp.audience,
            "scope": CLOUD_PLATFORM_SCOPE,
            "requestedTokenType": TOKEN_TYPE_ACCESS_TOKEN,
            "subjectTokenType": TOKEN_TYPE_JWT,
            "subjectToken": token,
        },
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("no-scope", "invalid_request"),
        ("wrong-provider", "invalid_request"),
        ("wrong-requested-type", "invalid_request"),
        ("lifetime-48h", "invalid_grant"),
        ("iat-in-future", "invalid_grant"),
        ("subject-over-127-bytes", "invalid_grant"),
        ("no-kid", "invalid_grant"),
    ],
)
def test_gcp_sts_checks(client: httpx.Client, setup: Setup, case: str, error: str) -> None:
    audience, mint = setup.gcp.audience, setup.issuer.mint
    overrides = {
        "no-scope": {"scope": ""},
        "wrong-provider": {"audience": audience.replace("/providers/tier1", "/providers/tier2")},
        "wrong-requested-type": {"requested_token_type": TOKEN_TYPE_JWT},
        "lifetime-48h": {"subject_token": mint(aud=audience, lifetime=48 * 3600)},
        "iat-in-future": {"subject_token": mint(aud=audience, iat_offset=3600)},
        "subject-over-127-bytes": {"subject_token": mint(aud=audience, sub="credo:group:" + "x" * 120)},
        "no-kid": {
            "subject_token": jwt.encode(
                {
                    "iss": setup.issuer.url,
                    "sub": SUBJECT,
                    "aud": audience,
                    "iat": int(time.time()),
                    "exp": int(time.time()) + 600,
                },
                setup.issuer.keys[0],
                algorithm="RS256",
            )
        },
    }[case]
    answer = _gcp(client, setup, **overrides)
    assert answer.status_code == 400
    assert answer.json()["error"] == error


def test_gcp_impersonation_refused_without_the_binding_or_a_token(client: httpx.Client, setup: Setup) -> None:
    gcp = setup.clouds.gcp
    sts_token = _gcp(client, setup).json()["access_token"]
    other = gcp.add_service_account("other@project.iam.gserviceaccount.com", [])
    body = {"scope": [CLOUD_PLATFORM_SCOPE], "lifetime": "3600s"}
    denied = client.post(
        gcp.impersonation_url(other), json=body, headers={"Authorization": f"Bearer {sts_token}"}
    )
    assert denied.status_code == 403 and denied.json()["error"]["status"] == "PERMISSION_DENIED"
    anonymous = client.post(gcp.impersonation_url(setup.service_account), json=body)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["status"] == "UNAUTHENTICATED"
    too_long = client.post(
        gcp.impersonation_url(setup.service_account),
        json={**body, "lifetime": "7200s"},
        headers={"Authorization": f"Bearer {sts_token}"},
    )
    assert too_long.status_code == 400
    ok = client.post(
        gcp.impersonation_url(setup.service_account),
        json=body,
        headers={"Authorization": f"Bearer {sts_token}"},
    )
    assert ok.status_code == 200 and set(ok.json()) == {"accessToken", "expireTime"}


# --- The static issuer host ----------------------------------------------------------------------


def test_static_host_serves_the_directory_only(client: httpx.Client, setup: Setup) -> None:
    host = setup.clouds.issuer_host
    config = client.get(f"{setup.issuer.url}/.well-known/openid-configuration")
    assert config.headers["content-type"] == "application/json"
    assert config.json()["jwks_uri"] == f"{setup.issuer.url}/.well-known/jwks.json"
    assert client.get(f"{host.url}/credo/.well-known/missing").status_code == 404
    assert client.get(f"{host.url}/%2e%2e/tls/private/server.key").status_code == 404
    assert host.fetches[-1] == "/%2e%2e/tls/private/server.key"  # it got there undecoded, and refused
    assert client.post(f"{setup.issuer.url}/.well-known/jwks.json").status_code == 405


def test_fixtures_refuse_a_client_that_does_not_trust_the_test_ca(setup: Setup) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{setup.clouds.entra.url}/common/discovery/instance", timeout=5)


def test_entra_fixture_can_run_with_its_own_verifier(setup: Setup) -> None:
    """A second fixture with a caching verifier, for an integrator's rotation test; closes cleanly."""
    fixture = EntraFixture(
        setup.clouds.ca, OidcVerifier(setup.clouds.ca, jwks_cache_seconds=60, require_key_use_sig=True)
    )
    try:
        fixture.add_app(
            EntraApp(
                str(uuid.uuid4()),
                setup.tenant,
                federated_credentials=[FederatedCredential(setup.issuer.url, SUBJECT)],
            )
        )
        app_id = next(iter(fixture.apps))
        form = {
            "grant_type": "client_credentials",
            "client_id": app_id,
            "scope": "https://graph.microsoft.com/.default",
            "client_assertion_type": JWT_BEARER,
        }
        with httpx.Client(verify=setup.clouds.ca.client_context()) as http:
            for _ in range(3):
                answer = http.post(
                    fixture.token_url(setup.tenant),
                    data={**form, "client_assertion": setup.issuer.mint(aud=AZURE_AUDIENCE)},
                )
                assert answer.status_code == 200, answer.text
        assert len(fixture.verifier.fetches) == 2  # discovery + JWKS once, then the cache
    finally:
        fixture.close()
