"""What an audit reports: checks, their outcome, and findings with the objects and fixes.

A check that could not read what it needs is ``not-run`` (or ``incomplete`` when it read only
part of it), never ``passed``: an audit run with too few rights must not look clean.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "AffectedObject",
    "CheckInfo",
    "CheckOutcome",
    "CheckStatus",
    "Finding",
    "Report",
    "Severity",
]


class Severity(enum.IntEnum):
    """Ordered so that ``--fail-on medium`` means ``severity >= Severity.MEDIUM``."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.upper()]


class CheckStatus(enum.StrEnum):
    PASSED = "passed"  # ran on everything it needed and found nothing
    FAILED = "failed"  # found something
    INCOMPLETE = "incomplete"  # found nothing in what it could read, but could not read everything
    NOT_RUN = "not-run"  # could not run at all (rights); skipped checks are left out of the report


@dataclass(frozen=True)
class CheckInfo:
    """A check's identity: stable ``id`` (for --check/--skip and SARIF ruleId), severity, texts."""

    id: str
    severity: Severity
    title: str
    why: str
    needs: str = "an authenticated user"


@dataclass(frozen=True)
class AffectedObject:
    """A directory object a finding is about: ``role`` says how (account, reader, group...)."""

    dn: str
    name: str
    role: str
    detail: str = ""


@dataclass(frozen=True)
class Finding:
    """One problem, on one subject (usually one managed service account)."""

    check: CheckInfo
    subject: str  # the DN the finding is about (SARIF logical location)
    subject_name: str
    message: str
    objects: tuple[AffectedObject, ...]
    fix_powershell: str
    fix_credo: str
    # A check whose findings differ in weight (user-service-accounts: RC4-only or privileged is
    # critical, a lone never-expiring password low) sets it per finding; None: the check's.
    level: Severity | None = None

    @property
    def severity(self) -> Severity:
        return self.level if self.level is not None else self.check.severity


@dataclass(frozen=True)
class CheckOutcome:
    check: CheckInfo
    status: CheckStatus
    findings: tuple[Finding, ...] = ()
    reason: str | None = None  # why not-run / incomplete


@dataclass(frozen=True)
class Report:
    generated_at: datetime
    directory_url: str
    base_dn: str
    identity: str
    outcomes: tuple[CheckOutcome, ...]
    accounts: int = 0
    tool_version: str = ""
    options: dict[str, object] = field(default_factory=dict)

    @property
    def findings(self) -> list[Finding]:
        found = [f for outcome in self.outcomes for f in outcome.findings]
        return sorted(found, key=lambda f: (-f.severity, f.check.id, f.subject_name.lower()))

    def counts(self) -> dict[str, int]:
        """Findings per severity (highest first), plus checks not run or incomplete."""
        counts = {s.label: 0 for s in sorted(Severity, reverse=True)}
        for finding in self.findings:
            counts[finding.severity.label] += 1
        counts["not_run"] = sum(o.status is CheckStatus.NOT_RUN for o in self.outcomes)
        counts["incomplete"] = sum(o.status is CheckStatus.INCOMPLETE for o in self.outcomes)
        return counts

    def fails(self, threshold: Severity) -> bool:
        """True when a finding, or a check that did not fully run, is at or above ``threshold``.

        A check that could not run is counted at its own severity: a pipeline gating on
        ``--fail-on high`` must not pass because the audit lacked the rights to look.
        """
        if any(f.severity >= threshold for f in self.findings):
            return True
        return any(
            o.check.severity >= threshold and o.status in (CheckStatus.NOT_RUN, CheckStatus.INCOMPLETE)
            for o in self.outcomes
        )
