"""An audit's findings as security events (credo.security_events), one per finding, for a SIEM.

Severity maps onto syslog's (RFC 5424 §6.2.1): critical -> crit, high -> err, medium -> warning,
low -> notice, info -> info. The event's actor is who ran the audit; its target the finding's
subject (a DN); its details the check, the message and the credo fix.
"""

from __future__ import annotations

from credo.audit.findings import Report
from credo.audit.findings import Severity as FindingSeverity
from credo.security_events import Outcome, SecurityEvent, Severity

__all__ = ["finding_events"]

_SYSLOG = {
    FindingSeverity.CRITICAL: Severity.CRITICAL,
    FindingSeverity.HIGH: Severity.ERROR,
    FindingSeverity.MEDIUM: Severity.WARNING,
    FindingSeverity.LOW: Severity.NOTICE,
    FindingSeverity.INFO: Severity.INFO,
}


def finding_events(report: Report) -> list[SecurityEvent]:
    return [
        SecurityEvent(
            source="audit",
            kind="audit.finding",
            outcome=Outcome.FAILURE,
            severity=_SYSLOG[finding.severity],
            actor=report.identity,
            target=finding.subject,
            details={
                "check": finding.check.id,
                "finding_severity": finding.severity.label,
                "subject_name": finding.subject_name,
                "message": finding.message,
                "fix": finding.fix_credo,
                "directory": report.directory_url,
            },
            time=report.generated_at,
        )
        for finding in report.findings
    ]
