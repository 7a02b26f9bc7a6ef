"""RBAC by AD group: each role's permissions, scopes on runbooks and worker groups, refusals that
name what is missing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from credo.automation.rbac import Grant, Permission, Role, allowed, role_allows, visible

HELPDESK = "CORP\\Helpdesk"
SID = "S-1-5-21-1-2-3-1200"

TABLE = {
    Role.READER: {Permission.READ},
    Role.OPERATOR: {Permission.READ, Permission.RUN},
    Role.AUTHOR: {Permission.READ, Permission.AUTHOR},
    Role.ADMIN: set(Permission),
}


def test_each_role_allows_exactly_its_permissions() -> None:
    for role, permissions in TABLE.items():
        for permission in Permission:
            assert role_allows(role, permission) == (permission in permissions), (role, permission)


def test_scopes_on_runbooks_and_worker_groups() -> None:
    grants = [Grant(Role.OPERATOR, HELPDESK, frozenset({"disable-user"}), frozenset({"tier1"}))]
    assert allowed(grants, [HELPDESK], Permission.RUN, runbook="disable-user", worker_group="tier1")
    refused = allowed(grants, [HELPDESK], Permission.RUN, runbook="disable-user", worker_group="tier2")
    assert (
        not refused
        and refused.missing == "needs role operator or admin on runbook disable-user in worker group tier2"
    )
    assert not allowed(grants, [HELPDESK], Permission.RUN, runbook="reboot", worker_group="tier1")
    # A request that names no runbook (a new worker group, say) needs a grant on all of them.
    assert not allowed(grants, [HELPDESK], Permission.READ, worker_group="tier1")
    assert visible(grants, [HELPDESK], runbook="disable-user", worker_group="tier1")


def test_groups_match_by_sid_or_name_in_any_case_and_only_members() -> None:
    grants = [Grant(Role.READER, SID), Grant(Role.ADMIN, "CORP\\Domain Admins")]
    assert allowed(grants, ["corp\\helpdesk", SID], Permission.READ)
    assert not allowed(grants, ["CORP\\Helpdesk"], Permission.READ)
    assert allowed(grants, ["corp\\domain admins"], Permission.ADMIN)
    refused = allowed(grants, [SID], Permission.AUTHOR)
    assert refused.missing == "needs role author or admin on all runbooks and worker groups"


roles = st.sampled_from(list(Role))
names = st.sampled_from(["a", "b", "c"])
scopes = st.one_of(st.none(), st.frozensets(names, min_size=1))


@given(
    st.lists(st.tuples(roles, scopes, scopes), max_size=5), st.sampled_from(list(Permission)), names, names
)
def test_a_decision_is_explained_by_one_grant(
    specs: list[tuple[Role, frozenset[str] | None, frozenset[str] | None]],
    permission: Permission,
    runbook: str,
    worker_group: str,
) -> None:
    grants = [Grant(role, HELPDESK, r, w) for role, r, w in specs]
    decision = allowed(grants, [HELPDESK], permission, runbook=runbook, worker_group=worker_group)
    expected = any(
        role_allows(g.role, permission)
        and (g.runbooks is None or runbook in g.runbooks)
        and (g.worker_groups is None or worker_group in g.worker_groups)
        for g in grants
    )
    assert decision.allowed == expected
    assert (decision.grant is not None) == expected and (decision.missing is None) == expected
    # Nobody outside the granted group gets anything.
    assert not allowed(grants, ["CORP\\Other"], permission, runbook=runbook, worker_group=worker_group)
