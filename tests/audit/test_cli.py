"""`credo audit` as a user runs it: formats, --output, --fail-on exit codes, memberships, and the
HTML report rendered by headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.audit.conftest import temporary_gmsa
from tests.support.identity import credo
from tests.support.png import read_png

from credo.ad.connection import Directory
from credo.audit.checks import CHECK_IDS
from credo.audit.findings import Severity
from credo.audit.html import SEVERITY_COLOURS
from credo.lab import SEED, Lab, LabSettings

Env = Callable[..., dict[str, str]]
# Checks whose seeded case is in the lab (tests/audit/test_checks_lab.py tests each): svc_legacy
# for user-service-accounts (critical), the gMSAs and KDS root key of a new domain for
# password-reads-unaudited (medium). The format tests skip them to count the fresh gMSA's findings.
SEEDED_IN_THE_LAB = ("user-service-accounts", "password-reads-unaudited")
SKIP_SEEDED = [arg for check in SEEDED_IN_THE_LAB for arg in ("--skip", check)]


@pytest.fixture
def fresh_gmsa(admin_dir: Directory, lab: Lab, lab_settings: LabSettings) -> Iterator[str]:
    """A gMSA as samba-tool leaves it: medium findings (weak-enctypes, disabled-with-readers)."""
    with temporary_gmsa(admin_dir, lab, lab_settings, "auditcli1") as dn:
        yield dn


def test_fail_on_exit_codes(as_identity: Env, fresh_gmsa: str) -> None:
    admin = as_identity("admin")
    assert credo("audit", env=admin).returncode == 0  # no --fail-on: the audit ran
    assert credo("audit", "--fail-on", "medium", env=admin).returncode == 1
    assert credo("audit", "--fail-on", "high", "--skip", "user-service-accounts", env=admin).returncode == 0
    # The lab's svc_legacy (an SPN, RC4 keys only) is a critical finding: the strictest gate fails.
    legacy = credo("audit", "--fail-on", "critical", "--check", "user-service-accounts", env=admin)
    assert legacy.returncode == 1 and "[CRITICAL] user-service-accounts: svc_legacy" in legacy.stdout
    assert credo("audit", "--fail-on", "low", "--check", "privileged-group", env=admin).returncode == 0


def test_checks_that_could_not_run_fail_a_gate_at_their_severity(as_identity: Env) -> None:
    worker = as_identity("worker1")
    # WORKER1$ cannot read the KDS root keys: the critical check did not run, which must not pass.
    proc = credo("audit", "--fail-on", "critical", env=worker)
    assert proc.returncode == 1, proc.stderr
    assert "not-run" in proc.stdout
    # user-service-accounts does run for it, and finds the lab's svc_legacy (critical): skipped too.
    skipped = credo("audit", "--fail-on", "critical", "--skip", "kds-root-key-readers",
                    "--skip", "kds-root-key-missing", "--skip", "user-service-accounts", env=worker)  # fmt: skip
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr


def test_json_csv_sarif_and_output_file(as_identity: Env, fresh_gmsa: str, tmp_path: Path) -> None:
    admin = as_identity("admin")
    data = json.loads(credo("audit", "--format", "json", *SKIP_SEEDED, env=admin, check=True).stdout)
    run_ids = [c for c in CHECK_IDS if c not in SEEDED_IN_THE_LAB]
    assert [c["id"] for c in data["checks"]] == run_ids
    assert data["summary"]["medium"] == 2 and data["summary"]["not_run"] == 0
    found = {(f["check"], f["subject_name"]) for f in data["findings"]}
    assert found == {("weak-enctypes", "auditcli1$"), ("disabled-with-readers", "auditcli1$")}
    finding = data["findings"][0]
    assert set(finding) >= {"check", "severity", "title", "why", "subject", "objects", "fix"}
    assert set(finding["fix"]) == {"powershell", "credo"}

    csv_text = credo("audit", "--format", "csv", *SKIP_SEEDED, env=admin, check=True).stdout
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert Counter(r["check"] for r in rows) == {"weak-enctypes": 1, "disabled-with-readers": 1}

    out = tmp_path / "audit.sarif"
    credo("audit", "--format", "sarif", "--output", out, *SKIP_SEEDED, env=admin, check=True)
    assert [p.name for p in tmp_path.iterdir()] == ["audit.sarif"]  # no temp file left behind
    sarif = json.loads(out.read_text())
    assert sarif["version"] == "2.1.0"
    run = sarif["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == run_ids
    assert {r["ruleId"] for r in run["results"]} == {"weak-enctypes", "disabled-with-readers"}
    for result in run["results"]:
        assert result["level"] == "warning"
        (location,) = result["locations"]
        assert location["logicalLocations"][0]["fullyQualifiedName"].lower() == fresh_gmsa.lower()


def test_bad_input_is_one_line(as_identity: Env, tmp_path: Path) -> None:
    admin = as_identity("admin")
    proc = credo("audit", "--check", "no-such-check", env=admin)
    assert proc.returncode == 2
    assert proc.stderr.startswith("credo: error: unknown check 'no-such-check'")
    assert "Traceback" not in proc.stderr
    unwritable = credo("audit", "--output", tmp_path / "missing" / "r.json", "--format", "json", env=admin)
    assert unwritable.returncode == 3, unwritable.stderr
    assert unwritable.stderr.startswith("credo: error: cannot write")


def test_memberships_lists_nested_groups(as_identity: Env, lab: Lab) -> None:
    from tests.audit.conftest import samba_tool

    samba_tool(lab, "group", "add", "AuditMemTmp")
    samba_tool(lab, "group", "add", "AuditMemTmp2")
    try:
        samba_tool(lab, "group", "addmembers", "AuditMemTmp", f"{SEED.gmsa}$")
        samba_tool(lab, "group", "addmembers", "AuditMemTmp2", "AuditMemTmp")
        worker = as_identity("worker1")
        rows = list(csv.DictReader(io.StringIO(credo("audit", "memberships", env=worker, check=True).stdout)))
        mine = {r["group"]: (r["direct"], r["path"]) for r in rows if r["account"] == f"{SEED.gmsa}$"}
        assert mine == {
            "Domain Computers": ("yes", "Domain Computers"),
            "AuditMemTmp": ("yes", "AuditMemTmp"),
            "AuditMemTmp2": ("no", "AuditMemTmp > AuditMemTmp2"),
        }
        data = json.loads(credo("audit", "memberships", "--json", env=worker, check=True).stdout)
        names = {a["account"] for a in data["accounts"]}
        assert {f"{SEED.gmsa}$", f"{SEED.server_gmsa}$"} <= names
    finally:
        samba_tool(lab, "group", "delete", "AuditMemTmp2")
        samba_tool(lab, "group", "delete", "AuditMemTmp")


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def test_html_report_in_headless_chromium(as_identity: Env, fresh_gmsa: str, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    credo("audit", "--format", "html", "--output", report, *SKIP_SEEDED, env=as_identity("admin"), check=True)
    html = report.read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html  # self-contained
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}
    profile = tmp_path / "profile"
    dom = subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", f"file://{report}"],
        capture_output=True, text=True, timeout=120, env=env, check=True,
    ).stdout  # fmt: skip
    assert "Summary: 2 finding(s)" in dom
    assert 'id="tile-medium"' in dom and "auditcli1$ allows" in dom
    shot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
         "--window-size=1280,1600", f"file://{report}"],
        capture_output=True, timeout=120, env=env, check=True,
    )  # fmt: skip
    width, height, pixels = read_png(shot)
    assert (width, height) == (1280, 1600)
    # Not blank, and the summary's severity tiles are on screen in their colours (the top third).
    top = Counter(pixels[: width * 500])
    assert len(top) > 50
    medium = _hex(SEVERITY_COLOURS[Severity.MEDIUM])
    assert top[medium] > 2000, "the medium tile (2 findings) is not visible"
    shot.rename(Path(os.environ.get("CREDO_AUDIT_SCREENSHOT", shot)))  # keep it to look at, if asked


def test_findings_go_to_the_events_file_and_to_syslog(
    as_identity: Env, fresh_gmsa: str, tmp_path: Path
) -> None:
    """`--events-file` and `--events-syslog`: one security event per finding (docs/siem.md), the
    same in both, as rsyslog parses the syslog side."""
    from tests.support.rsyslog import Rsyslog

    receiver = Rsyslog(tmp_path)
    receiver.start()
    try:
        events = tmp_path / "audit-events.jsonl"
        proc = credo("audit", "--check", "weak-enctypes", "--check", "disabled-with-readers",
                     "--events-file", str(events), "--events-syslog", f"udp://127.0.0.1:{receiver.udp_port}",
                     env=as_identity("admin"))  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        lines = [json.loads(line) for line in events.read_text().splitlines()]
        mine = [e for e in lines if e["details"]["subject_name"] == "auditcli1$"]
        assert {e["details"]["check"] for e in mine} == {"weak-enctypes", "disabled-with-readers"}
        assert all(
            e["kind"] == "audit.finding" and e["source"] == "audit" and e["severity"] == "warning"
            and e["details"]["finding_severity"] == "medium" and e["target"] == fresh_gmsa
            for e in mine
        )  # fmt: skip
        received = receiver.received(len(lines))
        assert len(received) == len(lines)
        assert {r["msgid"] for r in received} == {"audit.finding"}
        assert sorted(json.loads(r["msg"].lstrip("\ufeff"))["target"] for r in received) == sorted(
            e["target"] for e in lines
        )
    finally:
        receiver.stop()
