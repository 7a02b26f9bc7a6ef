"""``credo migrate``: move a password-based user service account to a gMSA, with a plan, a
rollback record and a rollback (library side).

plan = make_plan(directory, "svc_legacy", ["worker1"])   # read only
apply_plan(directory, plan, Journal(journal_path(Path("plan.json"))))
"""

from __future__ import annotations

from credo.migrate.apply import Journal, apply_plan, finish_plan, journal_path, rollback_plan
from credo.migrate.plan import GroupRef, MigrationPlan, make_plan, render_plan

__all__ = [
    "GroupRef",
    "Journal",
    "MigrationPlan",
    "apply_plan",
    "finish_plan",
    "journal_path",
    "make_plan",
    "render_plan",
    "rollback_plan",
]
