"""The registry of audit checks, in report order, and running a selection of them."""

from __future__ import annotations

from credo.audit.checks import access, auditing, hygiene, privileges, rbcd, user_accounts
from credo.audit.checks.base import AuditOptions, Check
from credo.audit.findings import CheckInfo, CheckOutcome
from credo.audit.snapshot import Snapshot
from credo.errors import InputError

__all__ = ["CHECKS", "AuditOptions", "run_checks", "select_checks"]

CHECKS: list[Check] = [
    *privileges.CHECKS,
    *access.CHECKS,
    *user_accounts.CHECKS,
    *auditing.CHECKS,
    *hygiene.CHECKS,
    *rbcd.CHECKS,
]
CHECK_IDS = [info.id for info, _ in CHECKS]


def select_checks(only: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> list[Check]:
    """``--check`` (run only these) and ``--skip``; an unknown ID is an input error naming the known ones."""
    for check_id in (*only, *skip):
        if check_id not in CHECK_IDS:
            raise InputError(f"unknown check {check_id!r}", hint=f"known checks: {', '.join(CHECK_IDS)}")
    return [(info, fn) for info, fn in CHECKS if (not only or info.id in only) and info.id not in skip]


def run_checks(snapshot: Snapshot, checks: list[Check], options: AuditOptions) -> list[CheckOutcome]:
    return [fn(snapshot, options) for _info, fn in checks]


def check_infos() -> list[CheckInfo]:
    return [info for info, _ in CHECKS]
