"""Unmodified azure-identity, boto3 and google-auth, run as credo-runner with the SDK venv's python,
get tokens from the cloud fixtures with a token file, the way a credo job would; and fail the way the
cloud would make them fail when the issuer, subject, audience, key or lifetime is wrong.

Each job gets only the variables that the worker's delivery sets (docs/oidc.md) and the test CA.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.clouds.conftest import AWS_AUDIENCE, AZURE_AUDIENCE, SUBJECT, Job, Setup
from tests.support.clouds import CLOUD_PLATFORM_SCOPE, external_account_file

GRAPH = "https://graph.microsoft.com/.default"

AZURE_SCRIPT = """
import json, sys
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import {credential}
try:
    token = {credential}().get_token({scope!r})
except ClientAuthenticationError as exc:
    print(json.dumps({{"error": exc.message}}))
    sys.exit(1)
print(json.dumps({{"token": token.token, "expires_on": token.expires_on}}))
"""

AWS_SCRIPT = """
import json, os, sys
import boto3, botocore.exceptions
session = boto3.Session()
try:
    credentials = session.get_credentials()
    frozen = credentials.get_frozen_credentials()
except botocore.exceptions.ClientError as exc:
    print(json.dumps({"error": exc.response["Error"]["Code"], "message": str(exc)}))
    sys.exit(1)
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    sys.exit(1)
print(json.dumps({"uid": os.getuid(), "method": credentials.method, "access_key": frozen.access_key,
                  "has_secret": bool(frozen.secret_key), "has_token": bool(frozen.token)}))
"""

AWS_DIRECT_SCRIPT = """
import json, os
import boto3
sts = boto3.client("sts")
with open(os.environ["AWS_WEB_IDENTITY_TOKEN_FILE"]) as f:
    answer = sts.assume_role_with_web_identity(RoleArn=os.environ["AWS_ROLE_ARN"],
        RoleSessionName=os.environ["AWS_ROLE_SESSION_NAME"], WebIdentityToken=f.read(), DurationSeconds=900)
answer["Credentials"]["Expiration"] = answer["Credentials"]["Expiration"].isoformat()
for secret in ("SecretAccessKey", "SessionToken"):
    answer["Credentials"][secret] = bool(answer["Credentials"][secret])
answer.pop("ResponseMetadata")
print(json.dumps(answer))
"""

GCP_SCRIPT = """
import json, sys
import google.auth, google.auth.exceptions
from google.auth.transport.requests import Request
try:
    credentials, project = google.auth.default()
    credentials = credentials.with_scopes([%r])
    credentials.refresh(Request())
except google.auth.exceptions.GoogleAuthError as exc:
    print(json.dumps({"error": str(exc)}))
    sys.exit(1)
print(json.dumps({"token": credentials.token, "expiry": credentials.expiry.isoformat(), "project": project,
                  "type": type(credentials).__module__}))
"""


def _answer(result: Any) -> dict[str, Any]:
    assert result.stdout.strip(), f"no output; stderr: {result.stderr[-2000:]}"
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def _azure_env(setup: Setup, token_file: Path, tenant: str | None = None) -> dict[str, str]:
    return {
        "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
        "AZURE_CLIENT_ID": setup.client_id,
        "AZURE_TENANT_ID": tenant or setup.tenant,
        "AZURE_AUTHORITY_HOST": setup.clouds.entra.authority_host,
        **setup.clouds.ca.environment(),
    }


def _aws_env(setup: Setup, token_file: Path) -> dict[str, str]:
    return {
        "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file),
        "AWS_ROLE_ARN": setup.role.arn,
        "AWS_ROLE_SESSION_NAME": "credo-job-1",
        "AWS_ENDPOINT_URL_STS": setup.clouds.aws.endpoint_url,
        **setup.clouds.ca.environment(),
    }


def _gcp_env(setup: Setup, job: Job, token_file: Path, *, impersonate: bool = False) -> dict[str, str]:
    config = external_account_file(
        job.directory / "gcp-credentials.json",
        audience=setup.gcp.audience,
        token_file=token_file,
        token_url=setup.clouds.gcp.token_url,
        impersonation_url=setup.clouds.gcp.impersonation_url(setup.service_account) if impersonate else None,
    )
    return {"GOOGLE_APPLICATION_CREDENTIALS": str(config), **setup.clouds.ca.environment()}


# --- Azure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("credential", ["WorkloadIdentityCredential", "DefaultAzureCredential"])
def test_azure_identity_gets_an_entra_token_with_the_token_file(
    setup: Setup, job: Job, sdk_python: Path, credential: str
) -> None:
    assertion = setup.issuer.mint(aud=AZURE_AUDIENCE)
    token_file = job.write("azure-token", assertion)
    before = len(setup.clouds.entra.exchanges)

    result = job.run(
        sdk_python, AZURE_SCRIPT.format(credential=credential, scope=GRAPH), _azure_env(setup, token_file)
    )

    assert result.returncode == 0, result.stdout + result.stderr
    answer = _answer(result)
    [exchange] = setup.clouds.entra.exchanges[before:]
    assert exchange.ok and exchange.path == f"/{setup.tenant}/oauth2/v2.0/token"
    # What the SDK sent: RFC 7523 §2.2 client authentication on a client_credentials grant, one /.default scope.
    assert exchange.params["grant_type"] == "client_credentials"
    assert (
        exchange.params["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    )
    assert exchange.params["client_id"] == setup.client_id
    assert exchange.params["scope"] == GRAPH
    assert exchange.params["client_assertion"] == assertion  # the file, unchanged
    assert exchange.claims is not None and exchange.claims["sub"] == SUBJECT
    # The fixture fetched the issuer's discovery, then its JWKS, over HTTPS.
    assert setup.clouds.entra.verifier.fetches[-2:] == [
        f"{setup.issuer.url}/.well-known/openid-configuration",
        f"{setup.issuer.url}/.well-known/jwks.json",
    ]
    # The access token the SDK returned is the one the tenant issued to the app, with its roles.
    assert answer["token"] == exchange.issued
    access = jwt.decode(answer["token"], options={"verify_signature": False})
    assert (access["tid"], access["appid"], access["roles"]) == (
        setup.tenant,
        setup.client_id,
        ["User.Read.All"],
    )


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong-subject", "AADSTS700213"),
        ("wrong-audience", "AADSTS700212"),
        ("issuer-trailing-slash", "AADSTS700211"),
        ("expired", "AADSTS700024"),
        ("unknown-kid", "AADSTS700027"),
        ("other-key-same-kid", "AADSTS700027"),
        ("tenant-without-consent", "AADSTS700016"),
    ],
)
def test_azure_identity_surfaces_the_entra_error(
    setup: Setup, job: Job, sdk_python: Path, case: str, expected: str
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    mint = setup.issuer.mint
    tenant = None
    assertion = {
        "wrong-subject": lambda: mint(aud=AZURE_AUDIENCE, sub="credo:group:Tier1"),  # case matters
        "wrong-audience": lambda: mint(aud=AWS_AUDIENCE),
        "issuer-trailing-slash": lambda: mint(aud=AZURE_AUDIENCE, iss=setup.issuer.url + "/"),
        "expired": lambda: mint(aud=AZURE_AUDIENCE, iat_offset=-3600, lifetime=600),
        "unknown-kid": lambda: mint(aud=AZURE_AUDIENCE, key=stranger),
        "other-key-same-kid": lambda: mint(
            aud=AZURE_AUDIENCE, key=stranger, kid=setup.issuer.jwk(setup.issuer.keys[0])["kid"]
        ),
        "tenant-without-consent": lambda: mint(aud=AZURE_AUDIENCE),
    }[case]()
    if case == "tenant-without-consent":
        tenant = "00000000-0000-0000-0000-00000000c0de"
        setup.clouds.entra.add_tenant(tenant)
    token_file = job.write("azure-token", assertion)
    before = len(setup.clouds.entra.exchanges)

    result = job.run(
        sdk_python,
        AZURE_SCRIPT.format(credential="WorkloadIdentityCredential", scope=GRAPH),
        _azure_env(setup, token_file, tenant),
    )

    assert result.returncode == 1, result.stdout + result.stderr
    message = _answer(result)["error"]
    assert (
        f"{expected}:" in message
    )  # azure-identity: "Microsoft Entra ID error '(invalid_client) AADSTS...: ...'"
    assert all(e.error == expected for e in setup.clouds.entra.exchanges[before:])
    assert assertion not in message + result.stderr  # neither the SDK nor the fixture echoes the JWT


def test_msal_confidential_client_with_the_fixture_as_authority(
    setup: Setup, job: Job, sdk_python: Path
) -> None:
    """MSAL (what credo.runbook.token or a runbook may use directly) reads tenant discovery first; a
    non-Microsoft authority host needs ``instance_discovery=False``, else it asks login.microsoftonline.com."""
    token_file = job.write("azure-token", setup.issuer.mint(aud=AZURE_AUDIENCE))
    script = f"""
import json, os, msal
app = msal.ConfidentialClientApplication(os.environ["AZURE_CLIENT_ID"],
    authority=os.environ["AZURE_AUTHORITY_HOST"] + "/" + os.environ["AZURE_TENANT_ID"],
    client_credential={{"client_assertion": lambda: open(os.environ["AZURE_FEDERATED_TOKEN_FILE"]).read()}},
    instance_discovery=False)
result = app.acquire_token_for_client(scopes=[{GRAPH!r}])
print(json.dumps({{k: result.get(k) for k in ("token_type", "expires_in", "error", "error_codes")}}))
"""
    before = len(setup.clouds.entra.exchanges)
    result = job.run(sdk_python, script, _azure_env(setup, token_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert _answer(result) == {"token_type": "Bearer", "expires_in": 3599, "error": None, "error_codes": None}
    [exchange] = setup.clouds.entra.exchanges[before:]
    assert exchange.ok and exchange.params["client_assertion_type"].endswith("jwt-bearer")


# --- AWS -----------------------------------------------------------------------------------------


def test_boto3_assumes_the_role_with_the_web_identity_token_file(
    setup: Setup, job: Job, sdk_python: Path
) -> None:
    assertion = setup.issuer.mint(aud=AWS_AUDIENCE)
    token_file = job.write("aws-token", assertion)
    before = len(setup.clouds.aws.exchanges)

    result = job.run(sdk_python, AWS_SCRIPT, _aws_env(setup, token_file))

    assert result.returncode == 0, result.stdout + result.stderr
    answer = _answer(result)
    assert answer["uid"] == job.user.pw_uid  # the job ran as credo-runner, not root
    assert answer["method"] == "assume-role-with-web-identity"  # botocore's provider, from the environment
    assert answer["has_secret"] and answer["has_token"]
    [exchange] = setup.clouds.aws.exchanges[before:]
    assert exchange.ok and answer["access_key"] == exchange.issued
    assert (
        exchange.params["Action"] == "AssumeRoleWithWebIdentity"
        and exchange.params["Version"] == "2011-06-15"
    )
    assert exchange.params["RoleArn"] == setup.role.arn
    assert exchange.params["RoleSessionName"] == "credo-job-1"
    assert exchange.params["WebIdentityToken"] == assertion
    assert setup.clouds.aws.issued_keys[answer["access_key"]].endswith(
        ":assumed-role/credo-tier1/credo-job-1"
    )


def test_boto3_sts_call_parses_the_documented_response(setup: Setup, job: Job, sdk_python: Path) -> None:
    token_file = job.write("aws-token", setup.issuer.mint(aud=AWS_AUDIENCE))
    result = job.run(sdk_python, AWS_DIRECT_SCRIPT, _aws_env(setup, token_file))
    assert result.returncode == 0, result.stdout + result.stderr
    answer = _answer(result)
    assert answer["SubjectFromWebIdentityToken"] == SUBJECT
    assert answer["Audience"] == AWS_AUDIENCE
    assert answer["Provider"] == setup.issuer.url
    assert (
        answer["AssumedRoleUser"]["Arn"]
        == f"arn:aws:sts::{setup.role.account}:assumed-role/credo-tier1/credo-job-1"
    )
    assert answer["AssumedRoleUser"]["AssumedRoleId"].endswith(":credo-job-1")
    assert answer["Credentials"]["AccessKeyId"].startswith("ASIA")
    assert answer["Credentials"]["SecretAccessKey"] is True and answer["Credentials"]["SessionToken"] is True


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong-subject", "AccessDenied"),
        ("wrong-audience", "InvalidIdentityToken"),
        ("unknown-issuer", "InvalidIdentityToken"),
        ("unknown-kid", "InvalidIdentityToken"),
        ("expired", "ExpiredTokenException"),
    ],
)
def test_boto3_surfaces_the_sts_error(
    setup: Setup, job: Job, sdk_python: Path, case: str, expected: str
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    mint = setup.issuer.mint
    assertion = {
        "wrong-subject": lambda: mint(aud=AWS_AUDIENCE, sub="credo:group:tier2"),
        "wrong-audience": lambda: mint(aud=AZURE_AUDIENCE),
        "unknown-issuer": lambda: mint(aud=AWS_AUDIENCE, iss=setup.issuer.url + "/"),
        "unknown-kid": lambda: mint(
            aud=AWS_AUDIENCE, key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ),
        "expired": lambda: mint(aud=AWS_AUDIENCE, iat_offset=-3600, lifetime=600),
    }[case]()
    token_file = job.write("aws-token", assertion)
    before = len(setup.clouds.aws.exchanges)

    result = job.run(sdk_python, AWS_SCRIPT, _aws_env(setup, token_file))

    assert result.returncode == 1, result.stdout + result.stderr
    answer = _answer(result)
    assert expected in answer["error"] + answer["message"]
    assert {e.error for e in setup.clouds.aws.exchanges[before:]} == {expected}
    assert assertion not in result.stdout + result.stderr


# --- GCP -----------------------------------------------------------------------------------------


def test_google_auth_external_account_gets_a_federated_token(
    setup: Setup, job: Job, sdk_python: Path
) -> None:
    assertion = setup.issuer.mint(aud=setup.gcp.audience)
    token_file = job.write("gcp-token", assertion)
    before = len(setup.clouds.gcp.exchanges)

    result = job.run(sdk_python, GCP_SCRIPT % CLOUD_PLATFORM_SCOPE, _gcp_env(setup, job, token_file))

    assert result.returncode == 0, result.stdout + result.stderr
    answer = _answer(result)
    assert answer["type"] == "google.auth.identity_pool"
    [exchange] = setup.clouds.gcp.exchanges[before:]
    assert exchange.ok and answer["token"] == exchange.issued
    # RFC 8693 as Google's STS documents it.
    assert exchange.params["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    assert exchange.params["audience"] == setup.gcp.audience
    assert exchange.params["subject_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
    assert exchange.params["requested_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert exchange.params["scope"] == CLOUD_PLATFORM_SCOPE
    assert exchange.params["subject_token"] == assertion


def test_google_auth_impersonates_the_service_account(setup: Setup, job: Job, sdk_python: Path) -> None:
    token_file = job.write("gcp-token", setup.issuer.mint(aud=setup.gcp.audience))
    before = len(setup.clouds.gcp.exchanges)

    result = job.run(
        sdk_python, GCP_SCRIPT % CLOUD_PLATFORM_SCOPE, _gcp_env(setup, job, token_file, impersonate=True)
    )

    assert result.returncode == 0, result.stdout + result.stderr
    sts, generate = setup.clouds.gcp.exchanges[before:]
    assert sts.ok and sts.path == "/v1/token"
    assert generate.ok and generate.path.endswith(
        f"/serviceAccounts/{setup.service_account}:generateAccessToken"
    )
    assert generate.claims == {"principal": setup.gcp.principal(SUBJECT), "scope": [CLOUD_PLATFORM_SCOPE]}
    assert _answer(result)["token"] == generate.issued


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong-audience", "invalid_grant"),
        ("wrong-issuer", "invalid_grant"),
        ("expired", "invalid_grant"),
        ("unknown-kid", "invalid_grant"),
        ("condition", "unauthorized_client"),
    ],
)
def test_google_auth_surfaces_the_sts_error(
    setup: Setup, job: Job, sdk_python: Path, case: str, expected: str
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    mint, audience = setup.issuer.mint, setup.gcp.audience
    assertion = {
        "wrong-audience": lambda: mint(aud=AZURE_AUDIENCE),
        "wrong-issuer": lambda: mint(aud=audience, iss=setup.issuer.url + "/"),
        "expired": lambda: mint(aud=audience, iat_offset=-3600, lifetime=600),
        "unknown-kid": lambda: mint(
            aud=audience, key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ),
        "condition": lambda: mint(aud=audience, sub="someone-else"),
    }[case]()
    token_file = job.write("gcp-token", assertion)
    before = len(setup.clouds.gcp.exchanges)

    result = job.run(sdk_python, GCP_SCRIPT % CLOUD_PLATFORM_SCOPE, _gcp_env(setup, job, token_file))

    assert result.returncode == 1, result.stdout + result.stderr
    assert expected in _answer(result)["error"]
    assert {e.error for e in setup.clouds.gcp.exchanges[before:]} == {expected}
    assert assertion not in result.stdout + result.stderr
