"""``credo audit``: find risky managed service accounts (library side).

report = run_audit(directory, only=("privileged-group",))   # a Report of CheckOutcomes/Findings
"""

from __future__ import annotations

from datetime import datetime

from credo import __version__
from credo.ad.connection import Directory
from credo.audit.checks import CHECKS, AuditOptions, run_checks, select_checks
from credo.audit.findings import (
    AffectedObject,
    CheckInfo,
    CheckOutcome,
    CheckStatus,
    Finding,
    Report,
    Severity,
)
from credo.audit.snapshot import Snapshot, read_snapshot

__all__ = [
    "CHECKS",
    "AffectedObject",
    "AuditOptions",
    "CheckInfo",
    "CheckOutcome",
    "CheckStatus",
    "Finding",
    "Report",
    "Severity",
    "Snapshot",
    "read_snapshot",
    "run_audit",
]


def run_audit(
    directory: Directory,
    *,
    only: tuple[str, ...] = (),
    skip: tuple[str, ...] = (),
    options: AuditOptions | None = None,
    now: datetime | None = None,
) -> Report:
    """Read the directory once and run the selected checks on it."""
    options = options or AuditOptions()
    checks = select_checks(only, skip)
    snapshot = read_snapshot(directory, now=now)
    outcomes = run_checks(snapshot, checks, options)
    return Report(
        generated_at=snapshot.now,
        directory_url=directory.url,
        base_dn=snapshot.base_dn,
        identity=snapshot.identity,
        outcomes=tuple(outcomes),
        accounts=len(snapshot.accounts),
        tool_version=__version__,
        options={"stale_days": options.stale_days, "checks": [c.id for c, _ in checks]},
    )
