"""``credo oidc``: the issuer's documents, keys and rotation, federated credentials, preflight.

Runs on the server host: ``rotate``, ``keys``, ``publish`` and ``check`` read the key store
(DATA_DIR/oidc-keys.json, 0600: as root or the server's user). The issuer URL comes from
--issuer / CREDO_OIDC_ISSUER, else from the local server's discovery document (--url).
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import httpx

from credo.automation.identity import AWS_AUDIENCE, AZURE_AUDIENCE, group_subject
from credo.cli.api import client_from, server_url, with_api
from credo.cli.output import emit_json, json_option
from credo.errors import CredoError, InputError, UnreachableError
from credo.server.paths import default_server_dir

__all__ = ["oidc"]


def _default_key_file() -> Path:
    from credo.oidc.keys import KEY_FILE_NAME

    return Path(os.environ.get("CREDO_SERVER_DIR") or default_server_dir()) / KEY_FILE_NAME


key_file_option = click.option(
    "--key-file", type=click.Path(dir_okay=False, path_type=Path), envvar="CREDO_OIDC_KEY_FILE",
    help="The key store (default: DATA_DIR/oidc-keys.json of the server).",
)  # fmt: skip
issuer_option = click.option(
    "--issuer", envvar="CREDO_OIDC_ISSUER", help="The issuer URL (default: the local server's, from --url)."
)


def _issuer(issuer: str | None, url: str | None) -> str:
    """The issuer: as given, or as the local server's discovery document says."""
    from credo.oidc.documents import DISCOVERY_PATH, validate_issuer

    if issuer:
        return validate_issuer(issuer)
    base = server_url(url)
    try:
        response = httpx.get(base + DISCOVERY_PATH, timeout=10)
    except httpx.TransportError as exc:
        raise UnreachableError(
            f"credo server at {base} does not answer: {exc}", hint="give --issuer URL (or CREDO_OIDC_ISSUER)"
        ) from None
    if response.status_code != 200:
        raise InputError(
            f"the server at {base} is no OIDC issuer ({response.status_code})",
            hint="start it with --oidc-issuer URL, or give --issuer URL",
        )
    return str(response.json()["issuer"])


@click.group()
def oidc() -> None:
    """credo as an OIDC issuer: documents, keys, federated credentials, preflight (docs/oidc.md).

    \b
    Example:
      credo oidc publish --out /srv/www/issuer
      credo oidc federated-credential --group tier1 --json > fic.json
      credo oidc check --group tier1
    """


@oidc.command("publish")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to host at the issuer URL: gets .well-known/openid-configuration and jwks.json.")  # fmt: skip
@issuer_option
@key_file_option
@click.option("--url", envvar="CREDO_SERVER_URL", help="The local server, to read the issuer from.")
def publish(out: Path, issuer: str | None, key_file: Path | None, url: str | None) -> None:
    """Write the discovery document and JWKS for hosting on any HTTPS server.

    Publish again after every `credo oidc rotate`: the JWKS then holds the new next key.

    \b
    Example:
      credo oidc publish --out /srv/www/issuer --issuer https://issuer.example.com
      az storage blob upload-batch -s /srv/www/issuer -d '$web' --account-name ACCOUNT
    """
    from credo.oidc.documents import publish as write_documents
    from credo.oidc.keys import KeyStore

    name = _issuer(issuer, url)
    for path in write_documents(out, name, KeyStore.load(key_file or _default_key_file())):
        click.echo(f"wrote {path}")


@oidc.command("rotate")
@click.option("--force", is_flag=True, help="Rotate even if the next key is new or 4 keys are published.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Publish the documents here after."
)
@issuer_option
@key_file_option
@click.option("--url", envvar="CREDO_SERVER_URL", help="The local server, to read the issuer from (--out).")
@json_option
def rotate(
    force: bool, out: Path | None, issuer: str | None, key_file: Path | None, url: str | None, as_json: bool
) -> None:
    """Sign with the next key from now on; retire the current one (kept published until every
    token it signed has expired, plus an hour); publish a new next key.

    The server picks the new key at its next token. Creates the key store if there is none.

    \b
    Example:
      credo oidc rotate --out /srv/www/issuer
    """
    from credo.oidc.documents import publish as write_documents
    from credo.oidc.keys import KeyStore, rotate_file

    path = key_file or _default_key_file()
    if not path.exists():
        store = KeyStore.open(path, create=True)
        emit_json({"created": str(path), "current": store.current.kid}) if as_json else click.echo(
            f"created {path}: current key {store.current.kid}, next {store.upcoming.kid}"
        )
        return
    result = rotate_file(path, force=force)
    if as_json:
        emit_json({"current": result.current, "next": result.next, "retired": result.retired,
                   "retire_at": result.retire_at, "dropped": list(result.dropped)})  # fmt: skip
    else:
        click.echo(f"current key {result.current}; next {result.next}")
        click.echo(f"retired {result.retired}: published until {result.retire_at:%Y-%m-%d %H:%M:%S} UTC")
        for kid in result.dropped:
            click.echo(f"dropped {kid}: tokens it signed no longer verify")
    if out is not None:
        for written in write_documents(out, _issuer(issuer, url), KeyStore.load(path)):
            click.echo(f"wrote {written}", err=as_json)
    elif not as_json:
        click.echo("publish the documents again if you host them elsewhere: credo oidc publish --out DIR")


@oidc.command("keys")
@key_file_option
@json_option
def keys(key_file: Path | None, as_json: bool) -> None:
    """List the signing keys: kid, state, dates, whether the JWKS publishes them.

    \b
    Example:
      credo oidc keys --json
    """
    from credo.oidc.keys import KeyStore

    store = KeyStore.load(key_file or _default_key_file())
    published = {k.kid for k in store.published()}
    rows = [k.summary() | {"published": k.kid in published} for k in store.keys]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        until = f" until {row['retire_at']}" if row["retire_at"] else ""
        shown = "published" if row["published"] else "not published"
        click.echo(f"{row['kid']}  {row['state']:<8} since {row['created_at']}{until}  {shown}")


def _credential_name(group: str, runbook: str | None) -> str:
    # Entra: 3-120 characters, URL-safe (reference §1.3).
    raw = f"credo-{group}" + (f"-{runbook}" if runbook else "")
    return re.sub(r"[^A-Za-z0-9_-]", "-", raw)[:120]


def _triple(params: dict[str, Any], group: str, runbook: str | None) -> tuple[str, str, dict[str, Any]]:
    issuer = _issuer(params.pop("issuer", None), params.get("url"))
    client = client_from(params)
    settings: dict[str, Any] = client.group(group)["identity"]
    if runbook and not settings.get("runbook_subjects"):
        raise InputError(
            f"worker group {group!r} does not give runbooks their own subject",
            hint=f"credo group set {group} --runbook-subjects (or leave out --runbook)",
        )
    # A credential for a subject no token will carry would be accepted by the cloud and never
    # match (AADSTS700213 at the first exchange): refuse it here, where the fix is one command.
    if runbook and not client.runbook(runbook).get("own_token_subject"):
        raise InputError(
            f"runbook {runbook!r} does not ask for its own subject: its jobs get {group_subject(group)}",
            hint=f"credo runbook update {runbook} --own-token-subject (or leave out --runbook)",
        )
    return issuer, group_subject(group, runbook), settings


@oidc.command("federated-credential")
@click.option("--group", required=True, help="The worker group.")
@click.option("--runbook", help="A runbook's own subject (the group must allow runbook subjects).")
@issuer_option
@with_api
@json_option
def federated_credential(group: str, runbook: str | None, as_json: bool, **params: Any) -> None:
    """The federated credential for a group's tokens: Entra's request body (--json), and the AWS
    and GCP conditions for the same issuer, subject and audience.

    \b
    Example:
      credo oidc federated-credential --group tier1 --json > fic.json
      az ad app federated-credential create --id APP_ID --parameters @fic.json
    """
    issuer, subject, settings = _triple(params, group, runbook)
    body = {
        "name": _credential_name(group, runbook),
        "issuer": issuer,
        "subject": subject,
        "audiences": [AZURE_AUDIENCE],
        "description": f"credo worker group {group}" + (f", runbook {runbook}" if runbook else ""),
    }
    if as_json:
        emit_json(body)
        return
    host_path = issuer.split("://", 1)[1]
    arn = settings.get("aws_role_arn") or ""
    account = arn.split(":")[4] if arn.count(":") >= 5 else "ACCOUNT_ID"
    partition = arn.split(":")[1] if arn else "aws"
    statement = {
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:{partition}:iam::{account}:oidc-provider/{host_path}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{host_path}:aud": AWS_AUDIENCE, f"{host_path}:sub": subject}},
    }
    gcp = (
        settings.get("gcp_audience")
        or "//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/providers/PROVIDER"
    )
    click.echo("Entra ID (az ad app federated-credential create --id APP_ID --parameters @fic.json):")
    click.echo(json.dumps(body, indent=2))
    click.echo(f"\nAWS (the role's trust policy statement; audience {AWS_AUDIENCE}):")
    click.echo(json.dumps(statement, indent=2))
    click.echo(f"\nGCP (provider {gcp}):")
    click.echo(f"  --issuer-uri={issuer}")
    click.echo(f"  --allowed-audiences={gcp}")
    click.echo("  --attribute-mapping=google.subject=assertion.sub,attribute.group=assertion.credo.group")
    click.echo(f"  --attribute-condition=\"assertion.sub == '{subject}'\"")
    if audiences := settings.get("audiences"):
        click.echo(f"\nthe group's token audiences: {', '.join(audiences)}")
    else:
        click.echo(f"\nthe group lists no token audience yet: credo group set {group} --token-audience ...")


# -- check ------------------------------------------------------------------------------------------


class _Report:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def ok(self, name: str, detail: str) -> None:
        self.items.append({"check": name, "ok": True, "detail": detail})

    def fail(self, name: str, detail: str, aadsts: str, hint: str | None = None) -> None:
        self.items.append({"check": name, "ok": False, "detail": detail, "aadsts": aadsts, "hint": hint})

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [i for i in self.items if not i["ok"]]


def _fetch(client: httpx.Client, url: str, what: str, report: _Report) -> dict[str, Any] | None:
    """GET a JSON document as a cloud would; a failure is recorded (AADSTS50166) and None returned."""
    hint = "the clouds fetch it over HTTPS from the internet: host it there (credo oidc publish --out DIR)"
    try:
        response = client.get(url)
    except httpx.ConnectError as exc:
        cause = exc.__context__ or exc.__cause__
        if isinstance(cause, ssl.SSLError) or "CERTIFICATE" in str(exc).upper() or "SSL" in str(exc).upper():
            report.fail(what, f"TLS failure fetching {url}: {exc}", "AADSTS50166",
                        "the certificate must chain to a public CA and name the issuer's host")  # fmt: skip
        else:
            report.fail(what, f"{url} is unreachable: {exc}", "AADSTS50166", hint)
        return None
    except httpx.HTTPError as exc:
        report.fail(what, f"{url} is unreachable: {exc}", "AADSTS50166", hint)
        return None
    if response.status_code != 200:
        report.fail(what, f"{url} answered {response.status_code}", "AADSTS50166", hint)
        return None
    try:
        data = response.json()
    except ValueError:
        report.fail(what, f"{url} is not JSON", "AADSTS50166", "serve the file as application/json")
        return None
    if not isinstance(data, dict):
        report.fail(what, f"{url} is not a JSON object", "AADSTS50166")
        return None
    report.ok(what, f"fetched {url}")
    return data


def _issuer_difference(expected: str, found: str) -> str:
    if found.strip() != found and found.strip() == expected:
        return "surrounding blanks"
    if found.rstrip("/") == expected.rstrip("/"):
        return "a trailing slash"
    if found.lower() == expected.lower():
        return "letter case"
    if found.split("://", 1)[-1] == expected.split("://", 1)[-1]:
        return "the scheme"
    if found.split("://", 1)[-1].rstrip("/").lower() == expected.split("://", 1)[-1].rstrip("/").lower():
        return "the scheme, letter case or a trailing slash"
    return "the URL"


# The GUID Entra puts in its own tokens' aud for api://AzureADTokenExchange (reference §1.4): a
# federated credential must use the URI (AADSTS700214 otherwise).
_EXCHANGE_APP_ID = "fb60f99c-7a34-4190-8149-302f77469936"
# Entra's error for each field of a federated credential that matches no token (reference §1.6).
_FIELD_CODES = {"issuer": "AADSTS700211", "subject": "AADSTS700213", "audience": "AADSTS700212"}


def _read_credentials(path: str) -> list[dict[str, Any]]:
    """The federated credential(s) in ``path`` (``-``: stdin): the body given to ``az ad app
    federated-credential create --parameters``, what ``show`` prints, or the list ``list`` prints."""
    where = "stdin" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        data = json.loads(text)
    except OSError as exc:
        raise InputError(f"--federated-credential: cannot read {where}: {exc.strerror}") from None
    except ValueError as exc:
        raise InputError(
            f"--federated-credential: {where} is not JSON: {exc}",
            hint="az ad app federated-credential show --id APP_ID --federated-credential-id NAME > fic.json",
        ) from None
    items = data if isinstance(data, list) else [data]
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("issuer"), str) or "subject" not in item:
            raise InputError(
                f"--federated-credential: {where} is not a federated credential (issuer, subject, audiences)",
                hint="the JSON `credo oidc federated-credential --group G --json` prints, or az's output",
            )
    return items


def _credential_mismatches(triple: dict[str, str], credential: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(field, what differs, AADSTS code) for each field of ``credential`` that the group's tokens
    would not match. Entra compares byte for byte, case included, with no wildcard (reference §1.3)."""
    found: list[tuple[str, str, str]] = []
    issuer = str(credential.get("issuer"))
    if issuer != triple["issuer"]:
        found.append(("issuer", f"its issuer {issuer!r} differs from the tokens' {triple['issuer']!r} by "
                      f"{_issuer_difference(triple['issuer'], issuer)}", _FIELD_CODES["issuer"]))  # fmt: skip
    subject = credential.get("subject")
    if subject != triple["subject"]:
        if subject is None and credential.get("claimsMatchingExpression"):
            why = "it matches by expression, which Entra allows only for GitHub, GitLab and Terraform Cloud"
        elif isinstance(subject, str) and subject.lower() == triple["subject"].lower():
            why = f"its subject {subject!r} differs from the tokens' {triple['subject']!r} by letter case"
        elif isinstance(subject, str) and subject.strip() == triple["subject"]:
            why = f"its subject {subject!r} has blanks around {triple['subject']!r}"
        else:
            why = f"its subject {subject!r} is not the tokens' {triple['subject']!r}"
        found.append(("subject", why, _FIELD_CODES["subject"]))
    audiences = credential.get("audiences")
    if not isinstance(audiences, list):
        audiences = [audiences] if isinstance(credential.get("audience"), str) else []
        audiences = [credential["audience"]] if audiences else []
    if audiences != [triple["audience"]]:
        shown = ", ".join(map(repr, audiences)) or "none"
        if len(audiences) != 1:
            why, code = (
                f"it has {len(audiences)} audiences ({shown}); Entra takes exactly one",
                "AADSTS700212",
            )
        elif audiences[0] == _EXCHANGE_APP_ID:
            why, code = f"its audience is the GUID {_EXCHANGE_APP_ID}, not the URI", "AADSTS700214"
        elif str(audiences[0]).lower().rstrip("/") == triple["audience"].lower():
            why = f"its audience {audiences[0]!r} differs from the tokens' {triple['audience']!r} by letter case or a slash"
            code = "AADSTS700212"
        else:
            why, code = (
                f"its audience {audiences[0]!r} is not the tokens' {triple['audience']!r}",
                "AADSTS700212",
            )
        found.append(("audience", why, code))
    return found


def _check_credentials(report: _Report, triple: dict[str, str], credentials: list[dict[str, Any]]) -> None:
    """Compare the admin's federated credential(s) with what the tokens will carry: one of them
    must match all three fields, as Entra requires; else AADSTS70021, and each field that differs."""
    compared = [(c, _credential_mismatches(triple, c)) for c in credentials]
    match = next((c for c, mismatches in compared if not mismatches), None)
    if match is not None:
        report.ok(
            "federated credential",
            f"{match.get('name') or 'the credential'} matches issuer, subject and audience",
        )
        return
    names = ", ".join(repr(c.get("name") or "?") for c in credentials)
    report.fail(
        "federated credential",
        f"no federated credential ({names}) matches the tokens' issuer, subject and audience",
        "AADSTS70021",
        "fix the field named below (az ad app federated-credential update), or create it from "
        "credo oidc federated-credential --group ... --json; a new one takes minutes to replicate",
    )
    for credential, mismatches in compared:
        for field, why, code in mismatches:
            report.fail(f"credential {field}", f"{credential.get('name') or 'the credential'}: {why}", code)


def run_check(
    issuer: str, subject: str, audience: str, group: str, key_file: Path, verify: ssl.SSLContext | bool
) -> _Report:
    """Fetch the documents from the issuer URL as a cloud would, and verify a fresh token with them."""
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    from credo.oidc.documents import DISCOVERY_PATH, jwks_uri
    from credo.oidc.keys import KeyStore
    from credo.oidc.tokens import ServiceClaims, mint

    report = _Report()
    with httpx.Client(verify=verify, timeout=15, follow_redirects=False) as client:
        document = _fetch(client, issuer + DISCOVERY_PATH, "discovery", report)
        if document is None:
            return report
        found = document.get("issuer")
        if found != issuer:
            report.fail(
                "issuer",
                f"the document's issuer {found!r} differs from {issuer!r} by {_issuer_difference(issuer, str(found))}",
                "AADSTS700211",
                "tokens carry the configured issuer; the document, the federated credential and "
                "--oidc-issuer must be byte for byte the same",
            )
        else:
            report.ok("issuer", f"the document's issuer is {issuer}")
        uri = str(document.get("jwks_uri", ""))
        if not uri.startswith("https://") and not (
            uri.startswith("http://") and issuer.startswith("http://")
        ):
            report.fail(
                "jwks_uri",
                f"jwks_uri {uri!r} is not https",
                "AADSTS50166",
                f"it should be {jwks_uri(issuer)}",
            )
            return report
        if "RS256" not in (document.get("id_token_signing_alg_values_supported") or []):
            report.fail("algorithms", "the document does not list RS256", "AADSTS700027")
        jwks = _fetch(client, uri, "jwks", report)
    if jwks is None:
        return report
    store = KeyStore.load(key_file)
    kids = {k.get("kid") for k in jwks.get("keys", []) if isinstance(k, dict)}
    if store.current.kid not in kids:
        report.fail(
            "current key",
            f"the signing key {store.current.kid} is not in the published JWKS (rotation not published?)",
            "AADSTS700027",
            "publish the documents again: credo oidc publish --out DIR",
        )
        return report
    report.ok("current key", f"the signing key {store.current.kid} is published")
    if store.upcoming.kid not in kids:
        report.fail(
            "next key",
            f"the next key {store.upcoming.kid} is not published: the next rotation would break tokens",
            "AADSTS700027",
            "publish the documents again before rotating: credo oidc publish --out DIR",
        )
    issued = mint(
        store.current, issuer=issuer, subject=subject, audience=audience, lifetime=60,
        claims=ServiceClaims(group=group, host=socket.getfqdn(), service="credo-oidc-check"),
    )  # fmt: skip
    try:
        token = jwt.decode(issued.token, KeySet.import_key_set(jwks), algorithms=["RS256"])  # type: ignore[arg-type]
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": str(document.get("issuer"))},
            sub={"essential": True, "value": subject},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
        ).validate(token.claims)
    except (JoseError, ValueError) as exc:
        report.fail(
            "token", f"a fresh token does not verify against the published JWKS: {exc}", "AADSTS700027"
        )
    else:
        report.ok("token", "a fresh token verifies against the published JWKS")
    return report


@oidc.command("check")
@click.option("--group", required=True, help="The worker group.")
@click.option("--audience", help="The audience to check (default: the group's Azure one, else its first).")
@click.option("--runbook", help="Check a runbook's own subject.")
@click.option(
    "--ca-file", type=click.Path(dir_okay=False, exists=True), help="CA bundle to trust (tests, private PKI)."
)
@click.option(
    "--federated-credential", "credential_file", metavar="FILE",
    help="The federated credential(s) created in Entra, as JSON (az ad app federated-credential show or "
    "list, or the create body; - reads stdin): name the field that would fail the exchange.",
)  # fmt: skip
@issuer_option
@key_file_option
@with_api
@json_option
def check(
    group: str, audience: str | None, runbook: str | None, ca_file: str | None, credential_file: str | None,
    key_file: Path | None, as_json: bool, **params: Any,
) -> None:  # fmt: skip
    """Preflight: fetch the discovery document and JWKS from the issuer URL over HTTPS as a cloud
    would, verify a freshly minted token with them, print the exact issuer/subject/audience a
    federated credential must contain, and name each mismatch with the AADSTS code it causes.

    \b
    Example:
      credo oidc check --group tier1
      az ad app federated-credential list --id APP_ID > fics.json
      credo oidc check --group tier1 --federated-credential fics.json
    """
    credentials = _read_credentials(credential_file) if credential_file else None
    issuer, subject, settings = _triple(params, group, runbook)
    listed: list[str] = settings.get("audiences") or []
    chosen = audience or (
        AZURE_AUDIENCE if AZURE_AUDIENCE in listed else (listed[0] if listed else AZURE_AUDIENCE)
    )
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    report = run_check(issuer, subject, chosen, group, key_file or _default_key_file(), verify)
    if chosen not in listed:
        report.fail(
            "audience",
            f"worker group {group!r} may not get tokens for {chosen!r} (its audiences: {', '.join(listed) or 'none'})",
            "AADSTS700212",
            f"credo group set {group} --token-audience {chosen}",
        )
    if urlsplit(issuer).scheme != "https":
        report.fail("scheme", f"the issuer {issuer} is not https: no cloud accepts it", "AADSTS50166")
    triple = {"issuer": issuer, "subject": subject, "audience": chosen}
    if credentials is not None:
        _check_credentials(report, triple, credentials)
    if as_json:
        emit_json(triple | {"checks": report.items, "ok": not report.failed})
    else:
        for item in report.items:
            mark = "ok  " if item["ok"] else "FAIL"
            code = f" ({item['aadsts']})" if not item["ok"] else ""
            click.echo(f"{mark} {item['check']}: {item['detail']}{code}")
            if not item["ok"] and item.get("hint"):
                click.echo(f"     hint: {item['hint']}")
        click.echo("\nthe federated credential must contain exactly:")
        for key, value in triple.items():
            click.echo(f"  {key:<9} {value}")
    if report.failed:
        first = report.failed[0]
        raise CredoError(
            f"{len(report.failed)} problem(s): {first['check']}: {first['detail']}"
            + (f" ({first['aadsts']})" if first.get("aadsts") else ""),
            hint=first.get("hint"),
        )
