"""The web UI in a real browser: headless Chromium (Debian's, driven by Playwright) against a real
`credo server` process and a real worker running the job as the lab's gMSA.

A user signs in with a token, starts a job from the form generated from the runbook's schema,
and watches its output arrive live (the runbook waits, after its first line, for a file the test
creates only once the browser shows that line); a reader is refused the start form with a 403
page; a domain user signs in with the Kerberos ticket in their ccache (Negotiate), no token.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from credo.lab import Lab, LabSettings
from credo.server.ui.session import COOKIE
from tests.server.conftest import Server, create_group, create_runbook
from tests.support.identity import CREDO, identity_env, run

pytestmark = pytest.mark.lab

CHROMIUM = "/usr/bin/chromium"  # Debian's, as the audit report test uses: Playwright downloads none

WAITER = """\
import json, os, sys, time
marker = json.load(open(os.environ["CREDO_PARAMETERS"]))["marker"]
print("first line, then waiting", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(marker) and time.monotonic() < deadline:
    time.sleep(0.1)
print("second line: the marker is there" if os.path.exists(marker) else "gave up", flush=True)
"""


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


def launch(playwright: Playwright, env: dict[str, str] | None = None, *args: str) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, env=env, args=list(args))


def token(server: Server, name: str, role: str) -> str:
    response = server.api("POST", "/auth/tokens", json={"name": name, "expires": "1d", "role": role})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def sign_in(page: Page, server: Server, secret: str, where: str = "/ui/jobs") -> None:
    page.goto(f"{server.url}{where}")
    expect(page).to_have_url(f"{server.url}/ui/sign-in?next={where.replace('/', '%2F')}")
    page.fill("#token", secret)
    page.click("#sign-in")
    expect(page).to_have_url(f"{server.url}{where}")


def test_start_a_job_from_the_form_and_watch_its_output_arrive_live(
    sqlite_server: Server,
    start_worker: Callable[..., Any],
    lab_settings: LabSettings,
    playwright: Playwright,
    tmp_path: Path,
) -> None:
    server = sqlite_server
    create_runbook(server, "waiter", WAITER, [{"name": "marker", "type": "string", "required": True}])
    create_group(server, "tier1", ["worker1"], lab_settings.realm)
    start_worker(server, "worker1", "tier1")
    marker = Path("/tmp") / f"credo-ui-{uuid.uuid4()}"
    operator = token(server, "ui-operator", "operator")
    browser = launch(playwright)
    try:
        page = browser.new_page()
        sign_in(page, server, operator)
        expect(page.locator("#signed-in-as")).to_have_text(f"token ui-operator ({operator.split('_')[1]})")
        page.click("nav >> text=Runbooks")
        page.click("text=waiter")
        page.click("#start")
        page.select_option("#group", "tier1")
        page.fill("[id='p.marker']", str(marker))
        page.click("#submit")
        expect(page).to_have_url(re.compile(r"/ui/jobs/[0-9a-f-]{36}$"))
        output = page.locator("#output")
        # The first line is on the page while the job still runs, waiting for the marker: live.
        expect(output).to_contain_text("first line, then waiting", timeout=60_000)
        assert "second line" not in output.inner_text()
        expect(page.locator("#job-state")).not_to_have_text("Completed")
        marker.touch()
        expect(output).to_contain_text("second line: the marker is there", timeout=30_000)
        expect(page.locator("#job-state")).to_have_text("Completed", timeout=30_000)
        expect(page.locator("#output-end")).to_be_visible()
        job_id = page.url.rsplit("/", 1)[1]
        page.goto(f"{server.url}/ui/jobs")
        expect(page.locator(f"tr[data-job='{job_id}']")).to_contain_text("Completed")
        # The job list refreshes itself: a job started elsewhere shows up without a reload.
        started = server.api("POST", "/jobs", json={"runbook": "waiter", "group": "tier1",
                                                    "parameters": {"marker": str(marker)}}).json()  # fmt: skip
        expect(page.locator(f"tr[data-job='{started['id']}']")).to_be_visible(timeout=15_000)
        server.wait_state(started["id"], {"Completed"})
    finally:
        browser.close()
        marker.unlink(missing_ok=True)
    audit = server.api("GET", "/audit-log", params={"after": 0}).json()
    records = audit["records"] if isinstance(audit, dict) else audit
    started_by_ui = [r for r in records if r["action"] == "job.start" and r["target"] == f"job/{job_id}"]
    assert started_by_ui and started_by_ui[0]["actor"].startswith("token ui-operator")
    assert operator not in (server.log.read_text() + str(records))


def test_a_reader_sees_a_403_for_the_start_form(
    sqlite_server: Server, lab_settings: LabSettings, playwright: Playwright
) -> None:
    server = sqlite_server
    create_runbook(server, "waiter", WAITER, [{"name": "marker", "type": "string", "required": True}])
    create_group(server, "tier1", ["worker1"], lab_settings.realm)
    reader = token(server, "ui-reader", "reader")
    browser = launch(playwright)
    try:
        page = browser.new_page()
        sign_in(page, server, reader, "/ui/runbooks/waiter")
        expect(page.locator("#start")).to_have_count(0)  # no button it may not use
        response = page.goto(f"{server.url}/ui/runbooks/waiter/start")
        assert response is not None and response.status == 403
        expect(page.locator("h1")).to_have_text("Not permitted")
        expect(page.locator("#error")).to_contain_text("may not do this: needs role operator or admin")
        assert page.goto(f"{server.url}/ui/audit-log").status == 403  # type: ignore[union-attr]
    finally:
        browser.close()


def test_a_domain_user_signs_in_with_their_kerberos_ticket(
    sqlite_server: Server, lab: Lab, lab_settings: LabSettings, playwright: Playwright
) -> None:
    """The Negotiate exchange is real (the Administrator's ticket from the lab's KDC, accepted
    with the server's keytab); the browser then browses on the session it set. Debian's chromium
    156 will not itself answer a Negotiate challenge here, headless: ERR_UNSUPPORTED_AUTH_SCHEME
    with --auth-server-allowlist, --auth-schemes and a managed policy alike, so the SPNEGO token
    comes from MIT Kerberos through credo.http_negotiate, as the CLI makes it."""
    server = sqlite_server
    domain = lab_settings.netbios or lab_settings.realm.split(".")[0]
    grant = {"role": "reader", "group": f"{domain}\\Domain Admins"}
    assert server.api("POST", "/roles", json=grant).status_code == 201
    host = server.kerberos_url.split("//")[1].split(":")[0]
    made = run([CREDO[0], "-c", "import base64, sys; from credo.http_negotiate import spnego_token; "
                "print(base64.b64encode(spnego_token(sys.argv[1])).decode())", host],
               identity_env(lab, "admin"), check=True)  # fmt: skip
    challenge = httpx.get(f"{server.kerberos_url}/ui/sign-in/kerberos?next=/ui/workers")
    assert challenge.status_code == 401 and challenge.headers["www-authenticate"] == "Negotiate"
    answer = httpx.get(
        f"{server.kerberos_url}/ui/sign-in/kerberos?next=/ui/workers",
        headers={"Authorization": f"Negotiate {made.stdout.strip()}"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/workers", answer.text
    assert answer.headers["www-authenticate"].startswith("Negotiate ")  # mutual authentication
    cookie = answer.cookies[COOKIE]
    browser = launch(playwright)
    try:
        context = browser.new_context()
        context.add_cookies([{"name": COOKIE, "value": cookie, "url": server.kerberos_url}])
        page = context.new_page()
        page.goto(f"{server.kerberos_url}/ui/workers")
        expect(page.locator("#signed-in-as")).to_have_text(f"Administrator@{lab_settings.realm}")
        expect(page.locator("h1")).to_have_text("Workers")
        # A reader by group (Domain Admins): the audit log is an admin's.
        assert page.goto(f"{server.kerberos_url}/ui/audit-log").status == 403  # type: ignore[union-attr]
    finally:
        browser.close()
    records = server.api("GET", "/audit-log", params={"after": 0}).json()
    records = records["records"] if isinstance(records, dict) else records
    assert any(
        r["action"] == "ui.sign-in" and r["actor"] == f"Administrator@{lab_settings.realm}" for r in records
    )
