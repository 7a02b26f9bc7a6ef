"""Roles: which apply (by SID, DOMAIN\\name, bare name), required groups, and each merge rule 1-5."""

from __future__ import annotations

from pathlib import Path

from credo.endpoint.definition import GroupRule
from credo.endpoint.matching import Granted, Refused, match_argv
from credo.endpoint.roles import UserToken, effective_capability, group_matches, required_groups_met
from tests.endpoint.helpers import load

SID = "S-1-5-21-1-2-3-1107"
TOKEN = UserToken("CORP\\jdoe", "S-1-5-21-1-2-3-1200", frozenset({SID, "S-1-5-21-1-2-3-1200"}),
                  frozenset({"CORP\\Helpdesk", "CORP\\Tier1"}))  # fmt: skip


def test_group_matching_by_sid_qualified_and_bare_name() -> None:
    assert group_matches(SID, TOKEN)
    assert group_matches("s-1-5-21-1-2-3-1107", TOKEN)
    assert not group_matches("S-1-5-21-1-2-3-1108", TOKEN)
    assert group_matches("CORP\\Helpdesk", TOKEN)
    assert group_matches("corp\\helpdesk", TOKEN)  # AD compares names case-insensitively
    assert not group_matches("OTHER\\Helpdesk", TOKEN)
    assert group_matches("helpdesk", TOKEN)
    assert not group_matches("Help", TOKEN)


def test_required_groups_and_or_nesting() -> None:
    g = lambda name: GroupRule("group", name)  # noqa: E731
    assert required_groups_met(None, TOKEN)
    assert required_groups_met(GroupRule("and", items=(g("Helpdesk"), g("Tier1"))), TOKEN)
    assert not required_groups_met(GroupRule("and", items=(g("Helpdesk"), g("Tier2"))), TOKEN)
    assert required_groups_met(GroupRule("or", items=(g("Tier2"), g(SID))), TOKEN)
    nested = GroupRule("and", items=(g("Tier1"), GroupRule("or", items=(g("Tier2"), g("Tier3")))))
    assert not required_groups_met(nested, TOKEN)


def _cap(tmp_path: Path, body: str, groups: tuple[str, ...]) -> object:
    return effective_capability(load(tmp_path, body), UserToken.of("CORP\\jdoe", groups))


ROLES = """
[roles]
"CORP\\\\A" = ["a"]
"B" = ["b"]
"S-1-5-21-1-2-3-1107" = ["c"]
"""


def _two(a_param: str, b_param: str, extra: str = "") -> str:
    return (
        ROLES
        + f"""
[[capability.a.command]]
name = "svc"
path = "/usr/bin/true"
[[capability.a.command.parameter]]
name = "unit"
{a_param}
[[capability.b.command]]
name = "svc"
path = "/usr/bin/true"
[[capability.b.command.parameter]]
name = "unit"
{b_param}
[[capability.c.command]]
name = "other"
path = "/usr/bin/false"
{extra}
"""
    )


def _run(cap: object, *argv: str) -> Granted | Refused:
    return match_argv(cap, list(argv))  # type: ignore[arg-type]


def test_required_groups_refuse_and_no_role_refuses(tmp_path: Path) -> None:
    body = 'required_groups = "Staff"\n' + _two(
        'type = "set"\nvalues = ["x"]', 'type = "set"\nvalues = ["x"]'
    )
    cap = effective_capability(load(tmp_path, body), UserToken.of("CORP\\jdoe", ["CORP\\A"]))
    assert not cap.admitted and cap.reason is not None and "required groups Staff" in cap.reason
    assert isinstance(_run(cap, "svc", "x"), Refused)
    cap = effective_capability(load(tmp_path, body), UserToken.of("CORP\\jdoe", ["Staff"]))
    assert not cap.admitted and "no role" in str(cap.reason)


def test_roles_apply_by_name_bare_name_and_sid(tmp_path: Path) -> None:
    body = _two('type = "set"\nvalues = ["x"]', 'type = "set"\nvalues = ["y"]')
    cap = effective_capability(load(tmp_path, body), UserToken.of("CORP\\jdoe", ["CORP\\B", SID]))
    assert cap.role_names == ("B", SID)
    assert [c.name for c in cap.commands] == ["other", "svc"]
    assert cap.command("svc") is not None and cap.command("svc").roles == ("B",)  # type: ignore[union-attr]


def test_rule1_one_role_keeps_its_constraints_identical_ones_stay(tmp_path: Path) -> None:
    body = _two('type = "set"\nvalues = ["x"]', 'type = "set"\nvalues = ["x"]')
    only_a = _cap(tmp_path, body, ("CORP\\A",))
    assert isinstance(_run(only_a, "svc", "x"), Granted)
    assert isinstance(_run(only_a, "svc", "y"), Refused)
    both = _cap(tmp_path, body, ("CORP\\A", "B"))
    svc = both.command("svc")  # type: ignore[attr-defined]
    assert len(svc.command.parameters[0].constraints) == 1  # identical constraints stay one
    assert svc.roles == ("CORP\\A", "B")
    granted = _run(both, "svc", "x")
    assert isinstance(granted, Granted) and granted.roles == ("CORP\\A", "B")


def test_rule2_parameter_lists_are_unioned_required_only_if_all_require(tmp_path: Path) -> None:
    body = (
        ROLES
        + """
[[capability.a.command]]
name = "svc"
path = "/usr/bin/true"
[[capability.a.command.parameter]]
name = "unit"
type = "set"
values = ["x"]
required = true
[[capability.b.command]]
name = "svc"
path = "/usr/bin/true"
[[capability.b.command.parameter]]
name = "force"
type = "flag"
option = "--force"
[[capability.c.command]]
path = "/usr/bin/false"
"""
    )
    only_a = _cap(tmp_path, body, ("CORP\\A",))
    assert isinstance(_run(only_a, "svc"), Refused)  # A alone requires unit
    assert isinstance(_run(only_a, "svc", "--force", "x"), Refused)  # A alone has no --force
    both = _cap(tmp_path, body, ("CORP\\A", "B"))
    params = {p.name: p for p in both.command("svc").command.parameters}  # type: ignore[attr-defined]
    assert set(params) == {"unit", "force"} and not params["unit"].required
    granted = _run(both, "svc", "--force", "x")
    assert isinstance(granted, Granted) and granted.argv == ("/usr/bin/true", "--force", "x")
    assert isinstance(_run(both, "svc"), Granted)  # B grants svc without unit
    assert isinstance(_run(both, "svc", "--all"), Refused)  # nothing undeclared, ever


def test_rule3_constraint_plus_unconstrained_is_union(tmp_path: Path) -> None:
    body = _two('type = "set"\nvalues = ["x"]', 'type = "text"')
    assert isinstance(_run(_cap(tmp_path, body, ("CORP\\A",)), "svc", "anything"), Refused)
    both = _cap(tmp_path, body, ("CORP\\A", "B"))
    assert isinstance(_run(both, "svc", "anything"), Granted)  # the constraint is effectively dropped
    kinds = [c.kind for c in both.command("svc").command.parameters[0].constraints]  # type: ignore[attr-defined]
    assert kinds == ["set", "text"]  # both are shown
    assert isinstance(_run(both, "svc", "a;b"), Refused)  # text still refuses metacharacters


def test_rule4_sets_union_and_patterns_match_any(tmp_path: Path) -> None:
    sets = _two('type = "set"\nvalues = ["x"]', 'type = "set"\nvalues = ["y"]')
    both = _cap(tmp_path, sets, ("CORP\\A", "B"))
    assert all(isinstance(_run(both, "svc", v), Granted) for v in ("x", "y"))
    assert isinstance(_run(both, "svc", "z"), Refused)
    patterns = _two('type = "pattern"\npattern = "web[0-9]"', 'type = "pattern"\npattern = "db[0-9]"')
    (tmp_path / "p").mkdir()
    both = _cap(tmp_path / "p", patterns, ("CORP\\A", "B"))
    assert all(isinstance(_run(both, "svc", v), Granted) for v in ("web1", "db2"))
    assert isinstance(_run(both, "svc", "web1db2"), Refused)  # each pattern anchored, no concatenation


def test_rule5_set_plus_pattern_is_union_not_set_ignored(tmp_path: Path) -> None:
    body = _two('type = "set"\nvalues = ["legacy_app"]', 'type = "pattern"\npattern = "web[0-9]"')
    both = _cap(tmp_path, body, ("CORP\\A", "B"))
    # JEA's documentation would ignore the set; credo keeps what role A grants.
    assert isinstance(_run(both, "svc", "legacy_app"), Granted)
    assert isinstance(_run(both, "svc", "web3"), Granted)
    assert isinstance(_run(both, "svc", "db3"), Refused)


def test_rule4_int_ranges_union_without_filling_the_gap(tmp_path: Path) -> None:
    body = _two('type = "int"\nmin = 1\nmax = 10', 'type = "int"\nmin = 100\nmax = 200')
    both = _cap(tmp_path, body, ("CORP\\A", "B"))
    assert all(isinstance(_run(both, "svc", v), Granted) for v in ("1", "10", "100", "200"))
    # The union of two ranges is not the range between them.
    assert all(isinstance(_run(both, "svc", v), Refused) for v in ("0", "11", "50", "99", "201"))
    only_a = _cap(tmp_path, body, ("CORP\\A",))
    assert isinstance(_run(only_a, "svc", "100"), Refused)


def test_rule4_path_prefixes_union(tmp_path: Path) -> None:
    logs, spool, other = (tmp_path / n for n in ("logs", "spool", "other"))
    for directory in (logs, spool, other):
        directory.mkdir()
        (directory / "f").write_text("x")
    body = _two(f'type = "path"\nunder = "{logs}"', f'type = "path"\nunder = "{spool}"')
    (tmp_path / "def").mkdir()
    both = _cap(tmp_path / "def", body, ("CORP\\A", "B"))
    for directory in (logs, spool):
        granted = _run(both, "svc", str(directory / "f"))
        assert isinstance(granted, Granted) and granted.argv[-1] == str(directory / "f")
    assert isinstance(_run(both, "svc", str(other / "f")), Refused)
    assert isinstance(_run(both, "svc", str(logs / ".." / "other" / "f")), Refused)  # resolved first
    assert isinstance(_run(_cap(tmp_path / "def", body, ("B",)), "svc", str(logs / "f")), Refused)


def test_rule4_account_kinds_union(tmp_path: Path) -> None:
    directory = {("jdoe", "user"), ("WORKER1$", "computer")}

    def exists(name: str, kind: str) -> bool:  # what the directory holds (the lab's objects)
        return (name, kind) in directory or (kind == "any" and any(n == name for n, _ in directory))

    body = _two('type = "account"\naccount_kind = "user"', 'type = "account"\naccount_kind = "computer"')
    both = _cap(tmp_path, body, ("CORP\\A", "B"))
    for name in ("jdoe", "WORKER1$"):
        assert isinstance(match_argv(both, ["svc", name], account_exists=exists), Granted)  # type: ignore[arg-type]
    assert isinstance(match_argv(both, ["svc", "nobody"], account_exists=exists), Refused)  # type: ignore[arg-type]
    only_a = _cap(tmp_path, body, ("CORP\\A",))
    assert isinstance(match_argv(only_a, ["svc", "WORKER1$"], account_exists=exists), Refused)  # type: ignore[arg-type]
