"""The web UI's pages, sign-in and checks (fast lane: TestClient on SQLite). The browser lane,
headless Chromium against a real server process, is tests/server/test_ui_browser.py."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from credo.errors import InputError
from credo.server.app import API, ServerConfig, create_app
from credo.server.database import sqlite_url
from credo.server.gate import Access, declared_policy
from credo.server.models import AuditLog, Job
from credo.server.ui.forms import form_fields, parse_form
from credo.server.ui.session import COOKIE

PARAMS = [
    {"name": "days", "type": "int", "required": True, "description": "how far back"},
    {"name": "mode", "type": "string", "allowed": ["dry-run", "apply"], "default": "dry-run"},
    {"name": "ratio", "type": "number"},
    {"name": "force", "type": "bool"},
    {"name": "tags", "type": "array"},
    {"name": "note", "type": "string"},
]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    data = tmp_path_factory.mktemp("ui")
    app = create_app(ServerConfig(data_dir=data, database_url=sqlite_url(data)))
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {admin_token(app)}"
        for version, text in enumerate([b"print('one')\n", b"print('one')\nprint('two')\n"], 1):
            body = {"content": base64.b64encode(text).decode()}
            if version == 1:
                body |= {"name": "cleanup", "type": "python3", "parameters": PARAMS, "description": "tidy"}
                assert client.post(f"{API}/runbooks", json=body).status_code == 201
            else:
                assert client.patch(f"{API}/runbooks/cleanup", json=body).status_code == 200
            assert client.post(f"{API}/runbooks/cleanup/publish").status_code == 200
        group = {"name": "tier1", "local_user": "credo-runner", "workers": ["WORKER1$@CORP.EXAMPLE.TEST"]}
        assert client.post(f"{API}/groups", json=group).status_code == 201
        job = {"runbook": "cleanup", "group": "tier1", "parameters": {"days": 3}}
        assert client.post(f"{API}/jobs", json=job).status_code == 201
    return app


def admin_token(app: FastAPI) -> str:
    data_dir: Path = app.state.credo.config.data_dir
    return (data_dir / "admin.token").read_text().strip()


def api_token(app: FastAPI, name: str, role: str) -> dict[str, str]:
    with TestClient(app) as client:
        response = client.post(
            f"{API}/auth/tokens", json={"name": name, "expires": "1d", "role": role},
            headers={"Authorization": f"Bearer {admin_token(app)}"},
        )  # fmt: skip
        assert response.status_code == 201, response.text
        return dict(response.json())


@pytest.fixture
def browser(app: FastAPI) -> Iterator[TestClient]:
    """A client that follows no redirects, as a test wants to see each answer."""
    with TestClient(app, follow_redirects=False) as client:
        yield client


def sign_in(client: TestClient, token: str, next_path: str = "/ui/jobs") -> Any:
    return client.post("/ui/sign-in", data={"token": token, "next": next_path})


def test_an_anonymous_browser_is_sent_to_sign_in_and_comes_back(app: FastAPI, browser: TestClient) -> None:
    answer = browser.get("/ui/jobs?state=Queued")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/sign-in?next=%2Fui%2Fjobs%3Fstate%3DQueued"
    assert (
        browser.get("/ui/jobs", headers={"HX-Request": "true"})
        .headers["hx-redirect"]
        .startswith("/ui/sign-in")
    )
    assert browser.post("/ui/jobs/x/stop").status_code == 401  # a form post is refused, not redirected
    page = browser.get(answer.headers["location"])
    assert (
        page.status_code == 200
        and 'name="token"' in page.text
        and 'value="/ui/jobs?state=Queued"' in page.text
    )
    signed = sign_in(browser, admin_token(app), "/ui/jobs?state=Queued")
    assert signed.status_code == 303 and signed.headers["location"] == "/ui/jobs?state=Queued"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "Path=/ui", "SameSite=strict", "Max-Age=28800"):
        assert attribute.lower() in cookie.lower(), cookie
    assert admin_token(app) not in cookie  # the cookie names who signed in, never the token
    assert browser.get("/ui/jobs").status_code == 200


def test_a_wrong_token_is_refused_and_recorded_without_the_token(app: FastAPI, browser: TestClient) -> None:
    wrong = "credo_00000000_" + "A" * 43
    answer = sign_in(browser, wrong)
    assert (
        answer.status_code == 401
        and "not accepted" in answer.text
        and COOKIE not in answer.headers.get("set-cookie", "")
    )
    with app.state.credo.db.session() as session:
        last = session.scalars(select(AuditLog).order_by(AuditLog.seq.desc())).first()
    assert last is not None and (last.action, last.outcome, last.actor) == (
        "ui.sign-in",
        "denied",
        "anonymous",
    )
    assert wrong not in str(last.details) and last.details["via"] == "ui"


def test_where_to_go_after_signing_in_is_only_a_page_of_the_ui(app: FastAPI, browser: TestClient) -> None:
    for evil in (
        "https://evil.example/",
        "//evil.example/ui/",
        "/ui//evil.example",
        "/api/v1/jobs",
        "/ui\\x",
    ):
        assert sign_in(browser, admin_token(app), evil).headers["location"] == "/ui/jobs"


def test_a_forged_or_altered_cookie_signs_nobody_in(app: FastAPI, browser: TestClient) -> None:
    signed = sign_in(browser, admin_token(app)).headers["set-cookie"]
    value = signed.split(";")[0].split("=", 1)[1].strip('"')
    body, tag = value.split(".")
    claims = base64.urlsafe_b64decode(body + "==").replace(b'"ADMIN_TOKEN"', b'"USER"')
    forged = base64.urlsafe_b64encode(claims).rstrip(b"=").decode() + "." + tag
    browser.cookies.clear()
    for bad in (forged, body + ".x" + tag[1:], "nonsense", ""):
        browser.cookies.set(COOKIE, bad, path="/ui")
        assert browser.get("/ui/jobs").status_code == 303
        browser.cookies.clear()


def test_every_page_renders_for_an_admin_with_a_strict_content_policy(
    app: FastAPI, browser: TestClient
) -> None:
    sign_in(browser, admin_token(app))
    with app.state.credo.db.session() as session:
        job_id = session.scalars(select(Job.id)).first()
    pages = ["/ui/jobs", "/ui/jobs?state=Queued&runbook=cleanup&group=tier1", f"/ui/jobs/{job_id}",
             "/ui/runbooks", "/ui/runbooks/cleanup", "/ui/runbooks/cleanup?show=1&from=1&to=2",
             "/ui/runbooks/cleanup/start", "/ui/schedules", "/ui/webhooks", "/ui/workers", "/ui/audit-log"]  # fmt: skip
    for page in pages:
        answer = browser.get(page)
        assert answer.status_code == 200, (page, answer.text[:300])
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert "<script>" not in answer.text and "onclick" not in answer.text  # nothing inline
        assert 'id="signed-in-as">admin<' in answer.text
    jobs = browser.get("/ui/jobs").text
    assert f'href="/ui/jobs/{job_id}"' in jobs and "cleanup" in jobs
    diff = browser.get("/ui/runbooks/cleanup?from=1&to=2").text
    assert '<span class="d-add">+print(&#39;two&#39;)</span>' in diff
    assert browser.get(f"/ui/jobs/{job_id}").text.count('data-live-output="/ui/jobs/') == 1
    assert browser.get("/ui/jobs?state=Completed").text.count("<tr data-job") == 0
    rows = browser.get("/ui/jobs?rows=true", headers={"HX-Request": "true"}).text
    assert rows.lstrip().startswith("<tr") and "<html" not in rows
    assert browser.get("/ui/runbooks/nope").status_code == 404
    assert browser.get("/ui/static/htmx.min.js").headers["content-type"].startswith("text/javascript")
    assert browser.get("/ui/static/..%2Fsession.py").status_code == 404


def test_the_start_form_follows_the_schema_and_starts_the_job_once(app: FastAPI, browser: TestClient) -> None:
    sign_in(browser, admin_token(app))
    form = browser.get("/ui/runbooks/cleanup/start").text
    assert 'name="p.days" type="number" step="1" value="" required' in form
    assert "<option selected>dry-run</option>" in form and 'name="p.force" type="checkbox"' in form
    assert 'name="p.ratio" type="number" step="any"' in form and 'textarea id="p.tags"' in form
    assert "how far back" in form
    key = re.search(r'name="key" value="([0-9a-f-]{36})"', form)
    assert key is not None
    data = {"key": key.group(1), "group": "tier1", "p.days": "7", "p.mode": "apply", "p.ratio": "0.5",
            "p.force": "true", "p.tags": '["a", "b"]', "p.note": ""}  # fmt: skip
    started = browser.post("/ui/runbooks/cleanup/start", data=data)
    assert started.status_code == 303, started.text
    job_id = started.headers["location"].rsplit("/", 1)[1]
    again = browser.post("/ui/runbooks/cleanup/start", data=data)  # a second click: the same job
    assert again.headers["location"] == started.headers["location"]
    with app.state.credo.db.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert job.parameters == {"days": 7, "mode": "apply", "ratio": 0.5, "force": True, "tags": ["a", "b"]}
        record = session.scalars(select(AuditLog).where(AuditLog.target == f"job/{job_id}")).first()
    assert record is not None and (record.action, record.actor, record.outcome) == (
        "job.start",
        "admin",
        "ok",
    )
    assert record.details["via"] == "ui"
    bad = browser.post("/ui/runbooks/cleanup/start", data=data | {"key": str(uuid.uuid4()), "p.days": "x"})
    assert bad.status_code == 422 and "parameter days: &#39;x&#39; is not an integer" in bad.text
    assert 'value="x"' in bad.text  # what was typed stays in the form
    missing = browser.post("/ui/runbooks/cleanup/start", data={"key": str(uuid.uuid4()), "group": "tier1"})
    assert missing.status_code == 422 and "days" in missing.text


def test_a_reader_reads_and_is_refused_the_rest_with_a_403_page(app: FastAPI, browser: TestClient) -> None:
    reader = api_token(app, "ui-reader", "reader")
    assert sign_in(browser, reader["token"]).status_code == 303
    assert browser.get("/ui/jobs").status_code == 200
    assert browser.get("/ui/runbooks/cleanup").status_code == 200
    assert 'id="start"' not in browser.get("/ui/runbooks/cleanup").text  # no button it may not use
    for page in ("/ui/runbooks/cleanup/start", "/ui/webhooks", "/ui/audit-log"):
        refused = browser.get(page)
        assert refused.status_code == 403, page
        assert 'data-status="403"' in refused.text and "may not do this: needs role" in refused.text
    key = "00000000-0000-4000-8000-000000000000"
    posted = browser.post("/ui/runbooks/cleanup/start", data={"key": key, "group": "tier1", "p.days": "1"})
    assert posted.status_code == 403


def test_a_revoked_token_ends_its_ui_session(app: FastAPI, browser: TestClient) -> None:
    operator = api_token(app, "ui-operator", "operator")
    sign_in(browser, operator["token"])
    assert browser.get("/ui/jobs").status_code == 200
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {admin_token(app)}"}
        assert client.delete(f"{API}/auth/tokens/{operator['id']}", headers=headers).status_code in (200, 204)
    assert browser.get("/ui/jobs").status_code == 303


def test_a_form_from_another_site_is_refused(app: FastAPI, browser: TestClient) -> None:
    sign_in(browser, admin_token(app))
    answer = browser.post("/ui/sign-out", headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    out = browser.post("/ui/sign-out", headers={"Origin": "http://testserver"})
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]


def test_kerberos_sign_in_challenges_with_negotiate(browser: TestClient) -> None:
    answer = browser.get("/ui/sign-in/kerberos?next=/ui/workers")
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Negotiate"
    assert "sign in with a token" in answer.text


def test_every_ui_route_declares_its_access(app: FastAPI) -> None:
    public = {"/ui/sign-in", "/ui/sign-in/kerberos", "/ui/static/{name}"}
    for route in app.router.routes:
        path = getattr(route, "path", "")
        if path.startswith("/ui"):
            policy = declared_policy(route)
            assert policy is not None, path
            assert policy.access is (Access.PUBLIC if path in public else Access.UI), path


def test_the_form_fields_and_their_values_follow_the_json_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "x": {"type": "number", "default": 1.5},
            "on": {"type": "boolean", "default": True},
            "level": {"type": "integer", "enum": [1, 2]},
            "cfg": {"type": "object"},
            "s": {"type": "string"},
        },
        "required": ["n"],
    }
    fields = {f.name: f for f in form_fields(schema)}
    assert (fields["n"].input, fields["n"].required, fields["n"].step) == ("number", True, "1")
    assert (fields["x"].value, fields["on"].value, fields["level"].choices) == ("1.5", "true", ("1", "2"))
    form = {"p.n": "3", "p.x": "2", "p.level": "2", "p.cfg": '{"a": 1}', "p.s": " hi "}
    assert parse_form(schema, form) == {"n": 3, "x": 2, "on": False, "level": 2, "cfg": {"a": 1}, "s": "hi"}
    for bad in ({"p.n": "3.5"}, {"p.x": "abc"}, {"p.cfg": "[1]"}, {"p.cfg": "{"}):
        with pytest.raises(InputError):
            parse_form(schema, bad)
