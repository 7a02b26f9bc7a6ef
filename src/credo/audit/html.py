"""The audit report as one self-contained HTML file: no script, no external CSS, font or image.

A summary by severity (coloured tiles), the status of every check, then one section per finding
with its affected objects and both fixes. Every value from the directory is HTML-escaped.
"""

from __future__ import annotations

from html import escape

from credo.audit.findings import CheckStatus, Finding, Report, Severity

__all__ = ["SEVERITY_COLOURS", "to_html"]

# Tile colours per severity (also checked in the screenshot test).
SEVERITY_COLOURS = {
    Severity.CRITICAL: "#b3001b",
    Severity.HIGH: "#e8590c",
    Severity.MEDIUM: "#f0b400",
    Severity.LOW: "#1c7ed6",
    Severity.INFO: "#6c757d",
}
STATUS_COLOURS = {
    CheckStatus.PASSED: "#2b8a3e",
    CheckStatus.FAILED: "#b3001b",
    CheckStatus.INCOMPLETE: "#e8590c",
    CheckStatus.NOT_RUN: "#6c757d",
}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #212529;
       background: #f8f9fa; }
header { background: #212529; color: #fff; padding: 20px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 24px; }
header p { margin: 0; color: #ced4da; font-size: 14px; }
main { padding: 24px 32px; max-width: 1200px; }
.tiles { display: flex; gap: 12px; margin-bottom: 24px; }
.tile { flex: 1; color: #fff; border-radius: 8px; padding: 16px; min-height: 70px; }
.tile .n { font-size: 36px; font-weight: 700; line-height: 1; }
.tile .l { font-size: 14px; text-transform: uppercase; letter-spacing: .05em; margin-top: 6px; }
.tile.zero { opacity: .45; }
table { border-collapse: collapse; width: 100%; background: #fff; margin-bottom: 24px; font-size: 14px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #dee2e6; vertical-align: top; }
th { background: #e9ecef; }
.badge { display: inline-block; color: #fff; border-radius: 4px; padding: 1px 8px; font-size: 12px;
         font-weight: 600; text-transform: uppercase; }
section.finding { background: #fff; border-left: 6px solid; border-radius: 6px; padding: 12px 20px;
                  margin-bottom: 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
section.finding h3 { margin: 4px 0 8px 0; font-size: 17px; }
.why { color: #495057; font-size: 14px; }
pre { background: #f1f3f5; padding: 8px 10px; border-radius: 4px; white-space: pre-wrap; word-break: break-all;
      font-size: 13px; margin: 4px 0 10px 0; }
.clean { font-size: 18px; color: #2b8a3e; font-weight: 600; }
"""


def _badge(text: str, colour: str) -> str:
    return f'<span class="badge" style="background:{colour}">{escape(text)}</span>'


def _finding(finding: Finding, number: int) -> str:
    colour = SEVERITY_COLOURS[finding.severity]
    rows = "".join(
        f"<tr><td>{escape(o.role)}</td><td>{escape(o.name)}</td><td>{escape(o.detail)}</td>"
        f"<td><code>{escape(o.dn)}</code></td></tr>"
        for o in finding.objects
    )
    objects = (
        f"<table><tr><th>role</th><th>name</th><th>detail</th><th>DN</th></tr>{rows}</table>" if rows else ""
    )
    return (
        f'<section class="finding" id="finding-{number}" style="border-color:{colour}">'
        f"{_badge(finding.severity.label, colour)} <code>{escape(finding.check.id)}</code>"
        f"<h3>{escape(finding.message)}</h3>"
        f'<p class="why"><b>{escape(finding.check.title)}.</b> {escape(finding.check.why)}</p>'
        f"{objects}"
        f"<div>Fix with PowerShell:</div><pre>{escape(finding.fix_powershell)}</pre>"
        f"<div>Fix with credo / samba-tool:</div><pre>{escape(finding.fix_credo)}</pre>"
        "</section>"
    )


def to_html(report: Report) -> str:
    counts = report.counts()
    tiles = "".join(
        f'<div class="tile{" zero" if counts[s.label] == 0 else ""}" id="tile-{s.label}" '
        f'style="background:{SEVERITY_COLOURS[s]}"><div class="n">{counts[s.label]}</div>'
        f'<div class="l">{s.label}</div></div>'
        for s in sorted(Severity, reverse=True)
    )
    checks = "".join(
        f"<tr><td><code>{escape(o.check.id)}</code></td>"
        f"<td>{_badge(o.check.severity.label, SEVERITY_COLOURS[o.check.severity])}</td>"
        f"<td>{escape(o.check.title)}</td>"
        f"<td>{_badge(o.status.value, STATUS_COLOURS[o.status])}"
        f"{' ' + str(len(o.findings)) if o.findings else ''}</td>"
        f"<td>{escape(o.reason or '')}</td></tr>"
        for o in report.outcomes
    )
    findings = report.findings
    body = "".join(_finding(f, i) for i, f in enumerate(findings, 1))
    if not findings:
        body = '<p class="clean">No finding.</p>'
    not_run = counts["not_run"] + counts["incomplete"]
    caveat = (
        f"<p><b>{not_run} check(s) did not fully run</b>: the report is not a clean bill of health for them.</p>"
        if not_run
        else ""
    )
    title = f"credo audit: {report.base_dn}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body><header><h1>Managed service account audit</h1>
<p>{escape(report.base_dn)} &middot; {escape(report.directory_url)} &middot; as {escape(report.identity)}
&middot; {report.accounts} account(s) &middot; {escape(report.generated_at.strftime("%Y-%m-%d %H:%M UTC"))}
&middot; credo {escape(report.tool_version)}</p></header>
<main><h2 id="summary">Summary: {len(findings)} finding(s)</h2><div class="tiles">{tiles}</div>{caveat}
<h2>Checks</h2><table><tr><th>check</th><th>severity</th><th>title</th><th>status</th><th>note</th></tr>
{checks}</table>
<h2>Findings</h2>{body}</main></body></html>
"""
