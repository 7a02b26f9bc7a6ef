"""A Report as table (people), JSON (machines), CSV (spreadsheets) or SARIF 2.1.0 (code scanning).

HTML lives in ``credo.audit.html``. The JSON shape is documented in README.md; SARIF follows
OASIS SARIF 2.1.0: one run, ``tool.driver.rules`` (one per check, ``id`` = check ID), and one
result per finding with ``ruleId``, ``level``, ``message`` and ``logicalLocations`` naming the DN
(there is no file to point at: section 3.33 allows logical locations alone).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from credo.audit.findings import CheckStatus, Finding, Report, Severity

__all__ = ["SafeCsvWriter", "csv_cell", "render", "report_json", "to_csv", "to_json", "to_sarif", "to_table"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# SARIF result.level has no "critical": error for high and critical, warning, note (3.27.10).
SARIF_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
# GitHub code scanning reads a 0.0-10.0 "security-severity" rule property.
SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
    Severity.INFO: "0.0",
}


def _finding_json(finding: Finding) -> dict[str, Any]:
    return {
        "check": finding.check.id,
        "severity": finding.severity.label,
        "title": finding.check.title,
        "why": finding.check.why,
        "subject": finding.subject,
        "subject_name": finding.subject_name,
        "message": finding.message,
        "objects": [
            {"dn": o.dn, "name": o.name, "role": o.role, "detail": o.detail} for o in finding.objects
        ],
        "fix": {"powershell": finding.fix_powershell, "credo": finding.fix_credo},
    }


def report_json(report: Report) -> dict[str, Any]:
    return {
        "tool": "credo",
        "version": report.tool_version,
        "generated_at": report.generated_at.isoformat(),
        "directory": {"url": report.directory_url, "base_dn": report.base_dn, "identity": report.identity},
        "accounts": report.accounts,
        "options": report.options,
        "summary": report.counts(),
        "checks": [
            {
                "id": o.check.id,
                "severity": o.check.severity.label,
                "title": o.check.title,
                "status": o.status.value,
                "findings": len(o.findings),
                "reason": o.reason,
                "needs": o.check.needs,
            }
            for o in report.outcomes
        ],
        "findings": [_finding_json(f) for f in report.findings],
    }


def to_json(report: Report) -> str:
    return json.dumps(report_json(report), indent=2) + "\n"


CSV_COLUMNS = ["check", "severity", "title", "subject", "subject_name", "message", "object_dn", "object_name",
               "object_role", "object_detail", "fix_powershell", "fix_credo"]  # fmt: skip


def csv_cell(value: str) -> str:
    """Neutralise spreadsheet formulas: a directory value such as ``=HYPERLINK(...)`` in a name
    would run when the CSV is opened in a spreadsheet (OWASP "CSV injection"); prefix a quote."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


class SafeCsvWriter:
    """csv.writer whose cells go through ``csv_cell``."""

    def __init__(self, out: io.StringIO) -> None:
        self._writer = csv.writer(out, lineterminator="\n")

    def writerow(self, cells: list[str]) -> None:
        self._writer.writerow([csv_cell(str(c)) for c in cells])


def to_csv(report: Report) -> str:
    """One row per (finding, affected object); checks that did not fully run as rows without objects."""
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    writer.writerow(CSV_COLUMNS)
    for f in report.findings:
        for obj in f.objects or (None,):
            writer.writerow([
                f.check.id, f.severity.label, f.check.title, f.subject, f.subject_name, f.message,
                obj.dn if obj else "", obj.name if obj else "", obj.role if obj else "", obj.detail if obj else "",
                f.fix_powershell, f.fix_credo,
            ])  # fmt: skip
    for o in report.outcomes:
        if o.status in (CheckStatus.NOT_RUN, CheckStatus.INCOMPLETE):
            writer.writerow([o.check.id, o.check.severity.label, o.check.title, "", "",
                             f"{o.status.value}: {o.reason}", "", "", "", "", "", ""])  # fmt: skip
    return out.getvalue()


def to_table(report: Report) -> str:
    """For a terminal: the summary, every check's status, then each finding with its fixes."""
    lines = [
        f"credo audit of {report.base_dn} ({report.directory_url}) as {report.identity}, "
        f"{report.accounts} managed service account(s)",
        "summary: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in report.counts().items()),
        "",
    ]
    width = max((len(o.check.id) for o in report.outcomes), default=0)
    for o in report.outcomes:
        status = o.status.value + (f" ({len(o.findings)})" if o.findings else "")
        extra = f"  {o.reason}" if o.reason else ""
        lines.append(f"{o.check.id.ljust(width)}  {o.check.severity.label:<8}  {status}{extra}")
    for f in report.findings:
        lines += ["", f"[{f.severity.label.upper()}] {f.check.id}: {f.message}"]
        for obj in f.objects:
            lines.append(f"    {obj.role}: {obj.name} ({obj.dn})" + (f" {obj.detail}" if obj.detail else ""))
        lines.append(f"    fix (PowerShell): {f.fix_powershell}")
        lines.append(f"    fix (credo):      {f.fix_credo}")
    return "\n".join(lines) + "\n"


def to_sarif(report: Report) -> str:
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for o in report.outcomes:
        index[o.check.id] = len(rules)
        rules.append({
            "id": o.check.id,
            "name": "".join(part.title() for part in o.check.id.split("-")),
            "shortDescription": {"text": o.check.title},
            "fullDescription": {"text": o.check.why},
            "defaultConfiguration": {"level": SARIF_LEVEL[o.check.severity]},
            "properties": {"severity": o.check.severity.label,
                           "security-severity": SECURITY_SEVERITY[o.check.severity], "tags": ["security"]},
        })  # fmt: skip
    results = []
    for f in report.findings:
        results.append({
            "ruleId": f.check.id,
            "ruleIndex": index[f.check.id],
            "level": SARIF_LEVEL[f.severity],
            "message": {"text": f"{f.message}. Fix: {f.fix_powershell} | {f.fix_credo}"},
            "locations": [{"logicalLocations": [{"name": f.subject_name, "fullyQualifiedName": f.subject,
                                                 "kind": "object"}]}],
            "relatedLocations": [
                {"id": i, "logicalLocations": [{"name": o.name, "fullyQualifiedName": o.dn, "kind": "object"}],
                 "message": {"text": f"{o.role}" + (f": {o.detail}" if o.detail else "")}}
                for i, o in enumerate(f.objects)
            ],
            "partialFingerprints": {"credoFinding/v1": f"{f.check.id}:{f.subject.lower()}"},
            "properties": {"severity": f.severity.label, "fix_powershell": f.fix_powershell,
                           "fix_credo": f.fix_credo},
        })  # fmt: skip
    notifications = [
        {
            "descriptor": {"id": o.check.id},
            "level": "warning",
            "message": {"text": f"{o.status.value}: {o.reason}"},
        }
        for o in report.outcomes
        if o.status in (CheckStatus.NOT_RUN, CheckStatus.INCOMPLETE)
    ]
    sarif = {
        "version": "2.1.0",
        "$schema": SARIF_SCHEMA,
        "runs": [{
            "tool": {"driver": {"name": "credo", "version": report.tool_version, "rules": rules}},
            "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": notifications,
                             "endTimeUtc": report.generated_at.strftime("%Y-%m-%dT%H:%M:%SZ")}],
            "results": results,
        }],
    }  # fmt: skip
    return json.dumps(sarif, indent=2) + "\n"


def render(report: Report, fmt: str) -> str:
    if fmt == "html":
        from credo.audit.html import to_html

        return to_html(report)
    renderers = {"table": to_table, "json": to_json, "csv": to_csv, "sarif": to_sarif}
    return renderers[fmt](report)
