"""Issuer URLs (stored exactly, https, no trailing slash), discovery, publishing, minted claims."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import jwt as pyjwt
import pytest

from credo.automation.identity import WorkloadIdentity
from credo.errors import InputError
from credo.oidc.documents import discovery, issuer_warning, publish, validate_issuer
from credo.oidc.keys import KeyStore
from credo.oidc.settings import validate_identity
from credo.oidc.tokens import JobClaims, mint
from tests.oidc.conftest import GCP


@pytest.mark.parametrize(
    "url",
    [
        "https://issuer.example.com",
        "https://Issuer.Example.com/Tenant/credo",
        "https://host:8443/x",
        "http://127.0.0.1:9",
    ],
)
def test_an_issuer_is_kept_exactly(url: str) -> None:
    assert validate_issuer(url) == url


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://issuer.example.com/", "ends with a slash"),
        ("https://issuer.example.com/credo/", "ends with a slash"),
        ("http://issuer.example.com", "not https"),
        ("ftp://issuer.example.com", "not https"),
        ("https://issuer.example.com?x=1", "query or fragment"),
        ("https://issuer.example.com#f", "query or fragment"),
        ("https://user@issuer.example.com", "user info"),
        ("https:///path", "names no host"),
        (" https://issuer.example.com", "spaces"),
        ("", "empty"),
        ("https://h" + "x" * 600, "Entra allows 600"),
    ],
)
def test_a_bad_issuer_is_one_line_with_a_hint(url: str, words: str) -> None:
    with pytest.raises(InputError) as caught:
        validate_issuer(url)
    assert words in caught.value.message and "\n" not in caught.value.message
    if "slash" in words:
        assert "AADSTS700211" in (caught.value.hint or "")


def test_http_loopback_warns() -> None:
    assert "no cloud" in (issuer_warning("http://localhost:8400") or "")
    assert issuer_warning("https://issuer.example.com") is None


def test_publish_writes_both_documents_0644(tmp_path: Path) -> None:
    store = KeyStore.create(tmp_path / "keys.json")
    issuer = "https://issuer.example.com/credo"
    paths = publish(tmp_path / "www", issuer, store)
    config = json.loads((tmp_path / "www/.well-known/openid-configuration").read_text())
    assert config == discovery(issuer)
    assert config["jwks_uri"] == "https://issuer.example.com/credo/.well-known/jwks.json"
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]
    assert json.loads((tmp_path / "www/.well-known/jwks.json").read_text()) == store.jwks()
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in paths)


def test_a_minted_token_has_the_contract_header_and_claims(tmp_path: Path) -> None:
    store = KeyStore.create(tmp_path / "keys.json")
    claims = JobClaims(
        "tier1", "j-1", "hello", "ab" * 32, "WORKER1$@CORP.EXAMPLE.TEST", "S-1-5-21-1-2-3-1105"
    )
    issued = mint(store.current, issuer="https://i.example", subject="credo:group:tier1",
                  audience="sts.amazonaws.com", lifetime=600, claims=claims)  # fmt: skip
    assert issued.token not in repr(issued)
    header = pyjwt.get_unverified_header(issued.token)
    assert header == {"alg": "RS256", "kid": store.current.kid, "typ": "JWT"}
    key = pyjwt.PyJWK(store.current.public_jwk()).key
    payload = pyjwt.decode(issued.token, key, algorithms=["RS256"], audience="sts.amazonaws.com",
                           issuer="https://i.example", options={"require": ["exp", "nbf", "iat", "jti", "sub"]})  # fmt: skip
    assert payload["aud"] == "sts.amazonaws.com" and payload["exp"] - payload["iat"] == 600
    assert payload["credo"] == {"group": "tier1", "job_id": "j-1", "runbook": "hello", "runbook_sha256": "ab" * 32,
                                "worker": "WORKER1$@CORP.EXAMPLE.TEST", "gmsa_sid": "S-1-5-21-1-2-3-1105"}  # fmt: skip
    # Wrong audience and wrong key are refused by an independent verifier.
    with pytest.raises(pyjwt.InvalidAudienceError):
        pyjwt.decode(issued.token, key, algorithms=["RS256"], audience="api://AzureADTokenExchange")
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(issued.token, pyjwt.PyJWK(store.upcoming.public_jwk()).key, algorithms=["RS256"],
                     audience="sts.amazonaws.com")  # fmt: skip
    with pytest.raises(InputError):
        mint(store.current, issuer="https://i", subject="s", audience="a", lifetime=3601, claims=claims)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (
            {"azure_tenant_id": "tenant", "azure_client_id": "11111111-2222-3333-4444-555555555555"},
            "azure_tenant_id",
        ),
        ({"azure_tenant_id": "11111111-2222-3333-4444-555555555555"}, "azure_client_id"),
        ({"aws_role_arn": "arn:aws:iam::12345:role/x"}, "aws_role_arn"),
        ({"aws_role_arn": "arn:aws:iam::123456789012:user/x"}, "aws_role_arn"),
        (
            {
                "gcp_audience": "https://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q"
            },
            "gcp_audience",
        ),
        ({"gcp_service_account": "a@b.iam.gserviceaccount.com"}, "gcp_service_account"),
        ({"token_lifetime": 59}, "token_lifetime"),
        ({"token_lifetime": 3601}, "token_lifetime"),
        ({"azure_authority_host": "http://login.microsoftonline.com"}, "azure_authority_host"),
        ({"audiences": ("bad audience",)}, "audiences"),
    ],
)
def test_bad_settings_name_their_field(settings: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as caught:
        validate_identity(WorkloadIdentity(**settings))  # type: ignore[arg-type]
    assert caught.value.message.startswith(f"{field}: ") and "\n" not in caught.value.message


def test_good_settings_are_normalised() -> None:
    identity = validate_identity(
        WorkloadIdentity(
            audiences=("api://AzureADTokenExchange",),
            azure_tenant_id="11111111-2222-3333-4444-55555555555A",
            azure_client_id="66666666-7777-8888-9999-000000000000",
            aws_role_arn="arn:aws:iam::123456789012:role/path/credo-jobs",
            gcp_audience=GCP,
            gcp_service_account="credo-jobs@my-project.iam.gserviceaccount.com",
        )
    )
    assert identity.audiences == ("api://AzureADTokenExchange", GCP)  # the GCP provider is an audience
    assert identity.azure_tenant_id == "11111111-2222-3333-4444-55555555555a"
