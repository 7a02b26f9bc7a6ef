"""Lint findings on bad files, the clean example, and `credo endpoint lint/list/capability` exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from credo.ad.sids import privileged_name
from credo.endpoint.lint import lint_file
from tests.endpoint.helpers import write
from tests.endpoint.test_definition import EXAMPLE

ROOT = Path(__file__).resolve().parents[2]


def credo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "credo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or dict(os.environ),
    )


def _cmd(path: str, extra: str = "") -> str:
    return (
        f'[roles]\n"CORP\\\\Helpdesk" = ["c"]\n[[capability.c.command]]\nname = "x"\npath = "{path}"\n{extra}'
    )


LINT_CASES = [
    (_cmd("/bin/bash"), "error", "capability.c.command[0].path", "is a shell"),
    (_cmd("/usr/bin/python3.11"), "error", "capability.c.command[0].path", "runs code"),
    (_cmd("/usr/bin/perl"), "error", "capability.c.command[0].path", "runs code"),
    (_cmd("/usr/bin/vim"), "error", "capability.c.command[0].path", ":!"),
    (_cmd("/usr/bin/less"), "error", "capability.c.command[0].path", "shell escape"),
    (_cmd("/usr/bin/more"), "error", "capability.c.command[0].path", "shell escape"),
    (_cmd("/usr/bin/man"), "error", "capability.c.command[0].path", "pager"),
    (_cmd("/usr/bin/find"), "error", "capability.c.command[0].path", "-exec"),
    (_cmd("/bin/tar"), "error", "capability.c.command[0].path", "--to-command"),
    (_cmd("/usr/bin/awk"), "error", "capability.c.command[0].path", "system()"),
    (_cmd("/usr/bin/env"), "error", "capability.c.command[0].path", "runs any program"),
    (_cmd("/usr/bin/sudo"), "error", "capability.c.command[0].path", "another user"),
    (_cmd("/usr/bin/ssh"), "error", "capability.c.command[0].path", "ProxyCommand"),
    (_cmd("/usr/bin/journalctl"), "warning", "capability.c.command[0].args", "--no-pager"),
    (_cmd("/usr/bin/true", 'env = { LD_PRELOAD = "/x.so" }\n'), "warning", "capability.c.command[0].env", "LD_PRELOAD"),
    (_cmd("/usr/bin/true", '[[capability.c.command.parameter]]\nname = "t"\ntype = "text"\n'),
     "warning", "capability.c.command[0].parameter[0]", "unconstrained"),
    (_cmd("/usr/bin/true", '[[capability.c.command.parameter]]\nname = "n"\ntype = "int"\nmin = 1\n'),
     "warning", "capability.c.command[0].parameter[0]", "no min or no max"),
    (_cmd("/usr/bin/true", '[[capability.c.command.parameter]]\nname = "p"\ntype = "pattern"\npattern = ".*"\n'
          "metachars = true\n"), "warning", "capability.c.command[0].parameter[0]", "matches nearly anything"),
    (_cmd("/usr/bin/true", '[[capability.c.command.parameter]]\nname = "p"\ntype = "pattern"\npattern = "[a-z./]+"\n'),
     "warning", "capability.c.command[0].parameter[0]", "path traversal"),
    (_cmd("/usr/bin/true", '[[capability.c.command.parameter]]\nname = "p"\ntype = "pattern"\npattern = "x"\n'
          "metachars = true\n"), "warning", "capability.c.command[0].parameter[0]", "allows shell metacharacters"),
    (_cmd("/usr/bin/true", '[[capability.c.command.parameter]]\nname = "f"\ntype = "path"\nunder = "/tmp"\n'),
     "warning", "capability.c.command[0].parameter[0]", "symlink may be swapped"),
    (_cmd("/opt/none/prog"), "info", "capability.c.command[0].path", "not installed here"),
    (_cmd("/usr/bin/true", 'args = ["restart", "web-*.service"]\n'), "warning", "capability.c.command[0].args[1]",
     "'web-*.service' is a wildcard"),
    (_cmd("/usr/bin/true", '[[capability.c.command.parameter]]\nname = "u"\ntype = "set"\n'
          'values = ["cron.service", "web?.service", "db[12]"]\n'), "warning",
     "capability.c.command[0].parameter[0]", "value 'web?.service' of 'u' is a wildcard"),
    (_cmd("/usr/bin/true", '[[capability.c.command.parameter]]\nname = "u"\ntype = "set"\nvalues = ["db[12]"]\n'),
     "warning", "capability.c.command[0].parameter[0]", "value 'db[12]' of 'u' is a wildcard"),
    ('[roles]\n"Domain Users" = ["c"]\n[[capability.c.command]]\npath = "/usr/bin/true"\n', "warning",
     'roles."Domain Users"', "every user"),
    ('[roles]\n"S-1-1-0" = ["c"]\n[[capability.c.command]]\npath = "/usr/bin/true"\n', "warning",
     'roles."S-1-1-0"', "Everyone"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "severity", "key", "text"), LINT_CASES)
def test_lint_findings(tmp_path: Path, body: str, severity: str, key: str, text: str) -> None:
    findings = lint_file(write(tmp_path, body))
    hits = [f for f in findings if f.key == key and text in f.message]
    assert hits, [f.line() for f in findings]
    assert hits[0].severity == severity
    assert "\n" not in hits[0].line()


@pytest.mark.parametrize("run_as", ["Administrator", "CORP\\krbtgt", "S-1-5-21-1-2-3-512"])
def test_lint_privileged_run_as_and_system_user(tmp_path: Path, run_as: str) -> None:
    # run_as must be a valid gMSA name to load; check the SID table directly for the others.
    assert privileged_name(run_as) is not None
    head = 'user = "root"\nallow_system_user = true\nrun_as = "Administrator"\n'
    findings = lint_file(write(tmp_path, _cmd("/usr/bin/true"), head=head))
    lines = [f.line() for f in findings]
    assert "error: run_as: Administrator$ is a highly privileged account (Administrator)" in lines
    assert any(line.startswith("error: user: root is a system account") for line in lines)
    assert privileged_name("Domain Admins") == "Domain Admins"
    assert privileged_name("S-1-5-32-544") == "Administrators"
    assert privileged_name("svcauto$") is None


def test_world_writable_program_and_directory(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    prog = bin_dir / "prog"
    prog.write_text("#!/bin/true\n")
    prog.chmod(0o777)
    bin_dir.chmod(0o777)
    findings = [f.line() for f in lint_file(write(tmp_path, _cmd(str(prog))))]
    assert f"error: capability.c.command[0].path: {prog} is world-writable: anyone can replace it" in findings
    assert any(f"{bin_dir} is a world-writable directory" in line for line in findings)


def test_the_example_is_clean_and_the_cli_exit_codes(tmp_path: Path) -> None:
    assert [f.severity for f in lint_file(EXAMPLE) if f.severity != "info"] == []
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    ok = credo("endpoint", "lint", str(EXAMPLE), env=env)
    assert ok.returncode == 0, ok.stderr
    bad = write(tmp_path, _cmd("/bin/bash"))
    found = credo("endpoint", "lint", str(bad), "--json", env=env)
    assert found.returncode == 1
    report = json.loads(found.stdout)
    assert report["clean"] is False
    assert [f["severity"] for f in report["findings"] if f["key"] == "capability.c.command[0].path"] == [
        "error"
    ]
    invalid = write(tmp_path, "nonsense = 1\n" + _cmd("/usr/bin/true"), name="invalid")
    broken = credo("endpoint", "lint", str(invalid), env=env)
    assert broken.returncode == 2
    assert broken.stderr.splitlines()[0] == f"credo: error: {invalid}: nonsense: unknown key"
    assert "Traceback" not in broken.stderr


def test_cli_list_and_capability_from_given_groups(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "CREDO_ENDPOINTS_DIR": str(tmp_path)}
    (tmp_path / "helpdesk.toml").write_text(EXAMPLE.read_text())
    (tmp_path / "broken.toml").write_text("user = 1\n")
    listed = credo("endpoint", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["helpdesk"]["commands"] == ["restart-service", "unlock-account", "whoami"]
    assert rows["broken"]["valid"] is False and "user: expected str" in rows["broken"]["error"]
    shown = credo(
        "endpoint", "capability", "helpdesk", "--user", "jdoe", "--group", "CORP\\Helpdesk", "--json", env=env
    )
    assert shown.returncode == 0, shown.stderr
    cap = json.loads(shown.stdout)
    assert cap["admitted"] and [c["name"] for c in cap["commands"]] == [
        "restart-service",
        "unlock-account",
        "whoami",
    ]
    assert cap["commands"][0]["parameters"][0]["allowed"] == [
        "one of cron.service, ssh.service, credo-agent.service"
    ]
    refused = credo(
        "endpoint", "capability", "helpdesk", "--user", "asmith", "--group", "CORP\\Staff", env=env
    )
    assert refused.returncode == 1 and "not in the required groups" in refused.stdout
    missing = credo("endpoint", "capability", "nope", "--user", "x", "--group", "G", env=env)
    assert missing.returncode == 2 and "nope.toml: no such file" in missing.stderr


@pytest.mark.lab
def test_capability_resolves_groups_from_the_directory(tmp_path: Path, as_identity: object) -> None:
    """Administrator's tokenGroups include Domain Admins (direct) and BUILTIN\\Administrators
    (through Domain Admins: nested), each granting a role; WORKER1$ gets neither."""
    body = (
        'required_groups = { or = ["CORP\\\\Domain Admins", "Domain Computers"] }\n'
        '[roles]\n"CORP\\\\Domain Admins" = ["a"]\n"S-1-5-32-544" = ["b"]\n'
        '[[capability.a.command]]\nname = "who"\npath = "/usr/bin/ldapwhoami"\n'
        '[[capability.b.command]]\nname = "id"\npath = "/usr/bin/id"\n'
    )
    config = write(tmp_path, body)
    env = {**as_identity("worker1"), "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}  # type: ignore[operator]
    shown = credo(
        "endpoint", "capability", "ep", "--config", str(config), "--user", "Administrator", "--json", env=env
    )
    assert shown.returncode == 0, shown.stderr
    cap = json.loads(shown.stdout)
    assert cap["principal"] == "CORP\\Administrator"
    assert [r["group"] for r in cap["roles"]] == ["CORP\\Domain Admins", "S-1-5-32-544"]
    assert [c["name"] for c in cap["commands"]] == ["id", "who"]
    worker = credo(
        "endpoint", "capability", "ep", "--config", str(config), "--user", "WORKER1$", "--json", env=env
    )
    assert worker.returncode == 1
    assert json.loads(worker.stdout)["reason"] == "no role of endpoint ep applies to CORP\\WORKER1$"
    unknown = credo("endpoint", "capability", "ep", "--config", str(config), "--user", "nobody-here", env=env)
    assert unknown.returncode == 6 and "no AD user 'nobody-here'" in unknown.stderr


@pytest.mark.lab
def test_lint_directory_flags_a_run_as_in_a_privileged_group(
    tmp_path: Path, as_identity: object, lab_settings: object
) -> None:
    """svcauto$ put in a group nested in Backup Operators: its name says nothing, tokenGroups do."""
    env = {**as_identity("worker1"), "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}  # type: ignore[operator]
    clean = credo("endpoint", "lint", str(EXAMPLE), "--directory", "--json", env=env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    base = lab_settings.base_dn  # type: ignore[attr-defined]
    group = f"CN=credo-lint-nested,OU=Staff,{base}"
    admin = as_identity("admin")  # type: ignore[operator]
    add = (
        f"dn: {group}\nchangetype: add\nobjectClass: group\nsAMAccountName: credo-lint-nested\n"
        f"member: CN=svcauto,CN=Managed Service Accounts,{base}\n\n"
        f"dn: CN=Backup Operators,CN=Builtin,{base}\nchangetype: modify\nadd: member\nmember: {group}\n-\n"
    )
    added = subprocess.run(
        ["ldapmodify", "-Q", "-Y", "GSSAPI"], input=add, env=admin, capture_output=True, text=True
    )
    try:
        assert added.returncode == 0, added.stderr
        flagged = credo("endpoint", "lint", str(EXAMPLE), "--directory", env=env)
        assert flagged.returncode == 1, flagged.stdout + flagged.stderr
        assert (
            f"{EXAMPLE}: error: run_as: svcauto$ is a member of Backup Operators (tokenGroups): "
            "commands run with that group's rights"
        ) in flagged.stdout.splitlines()
    finally:
        subprocess.run(["ldapdelete", "-Q", "-Y", "GSSAPI", group], env=admin, capture_output=True)
