"""`credo gmsa keytab` served by a running agent (issue 12, points 6 and 11): the same keytab as the
full command, only for root and `export_keytab`, written atomically by the caller, no heavy imports;
without an agent (or with an option the fast path does not take) the full command, unchanged."""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from credo.gmsa.credentials import GmsaKeyMaterial
from credo.gmsa.operations import KeptKeys, RotationFacts
from credo.krb.keytab import KeytabEntry, read_keytab, write_keytab_atomically
from credo.lab import Lab, LabSettings
from tests.support.agent import AgentProcess, agent_config
from tests.support.identity import CREDO, identity_env, run

Start = Callable[..., AgentProcess]
HEAVY = ("ldap", "krb5", "gssapi", "click", "credo.cli", "credo.gmsa", "credo.krb", "sqlalchemy")


def _keys(path: Path) -> set[tuple[str, int, int, bytes]]:
    return {(e.principal, e.kvno, e.enctype, e.key) for e in read_keytab(path)}


def _line(stdout: str, path: Path) -> str:
    return re.sub(r"\.\d+\+00:00", "+00:00", stdout.replace(str(path), "F"))


def _no_agent_env(lab: Lab) -> dict[str, str]:
    return identity_env(lab, "worker1", CREDO_AGENT_SOCKET="/nonexistent/agent.sock")


def _start_exporting(
    start_agent: Start, lab: Lab, settings: LabSettings, base: Path, who: str = ""
) -> AgentProcess:
    extra = f"export_keytab = [{who}]" if who else ""
    agent = start_agent(agent_config(lab, settings, base, extra_account=extra))
    agent.wait_refreshed()
    return agent


def test_the_agents_keytab_equals_the_full_commands_and_imports_nothing_heavy(
    start_agent: Start, agent_dir: Path, lab: Lab, lab_settings: LabSettings
) -> None:
    agent = _start_exporting(start_agent, lab, lab_settings, agent_dir)
    fast, full = agent_dir / "fast.keytab", agent_dir / "full.keytab"
    proc = subprocess.run([CREDO[0], "-X", "importtime", "-m", "credo", "gmsa", "keytab", "svcauto", "--out", str(fast)],
                          env=agent.env(), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    loaded = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    for heavy in HEAVY:
        assert not any(m == heavy or m.startswith(heavy + ".") for m in loaded), heavy
    assert f"gave a keytab of svcauto (kvno {read_keytab(fast)[0].kvno}" in agent.log.read_text()
    reference = run([*CREDO, "gmsa", "keytab", "svcauto", "--out", full], _no_agent_env(lab))
    assert reference.returncode == 0, reference.stderr
    assert _keys(fast) == _keys(full) and _keys(fast)  # principal, kvno, enctype and key, entry by entry
    # The same line, but for the path (and the microseconds of "now" in refresh_after).
    assert _line(proc.stdout, fast) == _line(reference.stdout, full)
    info = fast.stat()
    assert (oct(info.st_mode & 0o777), info.st_uid) == ("0o600", 0)
    assert [p.name for p in agent_dir.iterdir() if p.name.startswith(".fast")] == []  # no temp file left

    # With SPNs, enctypes and --json; over a keytab holding another principal, which both keep.
    other = KeytabEntry(f"other$@{lab_settings.realm}", 3, 18, bytes(range(32)))
    for path in (fast, full):
        write_keytab_atomically(path, [other])
    args = ["--spn", "HTTP/web.corp.example.test", "--enctypes=aes128,aes256", "--json"]
    proc = run([*CREDO, "gmsa", "keytab", "svcauto", "--out", fast, *args], agent.env())
    reference = run([*CREDO, "gmsa", "keytab", "svcauto", "--out", full, *args], _no_agent_env(lab))
    assert proc.returncode == reference.returncode == 0, proc.stderr + reference.stderr
    assert _keys(fast) == _keys(full) and other.key in {k for *_, k in _keys(fast)}
    assert agent.log.read_text().count("gave a keytab of svcauto") == 2
    mine, theirs = json.loads(proc.stdout), json.loads(reference.stdout)
    for report in (mine, theirs):
        report["path"] = "F"
        report["refresh_after"], report["next_rotation"] = (
            report["refresh_after"][:16],
            report["next_rotation"][:16],
        )
    assert mine == theirs
    assert mine["principals"] == [
        f"HTTP/web.corp.example.test@{lab_settings.realm}",
        f"svcauto$@{lab_settings.realm}",
    ]


def _as_runner(
    credo: Path, argv: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    # credo as installed for every user (on Debian's python3): the fast path needs only the
    # standard library.
    return run(["runuser", "-u", "credo-runner", "--", str(credo), *argv],
               {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                "CREDO_AGENT_SOCKET": env["CREDO_AGENT_SOCKET"]}, cwd=cwd)  # fmt: skip


def test_a_user_not_in_export_keytab_is_refused_even_with_the_tickets_right(
    start_agent: Start,
    agent_dir: Path,
    lab: Lab,
    lab_settings: LabSettings,
    runner_user: str,
    installed_credo: Path,
) -> None:
    agent = _start_exporting(start_agent, lab, lab_settings, agent_dir)  # credo-runner: allow_users only
    home = agent_dir / "runner"
    home.mkdir()
    runner = pwd.getpwnam(runner_user)
    os.chown(home, runner.pw_uid, runner.pw_gid)
    proc = _as_runner(installed_credo, ["gmsa", "keytab", "svcauto", "--out", "x.keytab"], agent.env(), home)
    assert proc.returncode == 5, proc
    lines = proc.stderr.splitlines()
    assert lines[0] == f"credo: error: this agent does not give a keytab of svcauto to uid {runner.pw_uid}"
    assert lines[1:] == [
        "credo: hint: add the user (or a %group) to the account's export_keytab in the agent's config"
    ]
    assert list(home.iterdir()) == []  # neither the keytab nor the temp file
    assert f"refused keytab of svcauto to uid {runner.pw_uid}" in agent.log.read_text()
    assert "not in its export_keytab" in agent.log.read_text()


def test_a_user_in_export_keytab_gets_a_0600_keytab_of_its_own(
    start_agent: Start,
    agent_dir: Path,
    lab: Lab,
    lab_settings: LabSettings,
    runner_user: str,
    installed_credo: Path,
) -> None:
    agent = _start_exporting(start_agent, lab, lab_settings, agent_dir, who='"%nogroup", "credo-runner"')
    home = agent_dir / "runner"
    home.mkdir()
    runner = pwd.getpwnam(runner_user)
    os.chown(home, runner.pw_uid, runner.pw_gid)
    proc = _as_runner(installed_credo, ["gmsa", "keytab", "svcauto", "--out", "x.keytab"], agent.env(), home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote x.keytab: svcauto$@{lab_settings.realm} at kvno ")
    info = (home / "x.keytab").stat()
    assert (oct(info.st_mode & 0o777), info.st_uid) == ("0o600", runner.pw_uid)
    assert _keys(home / "x.keytab") == _keys(agent_dir / "out/svcauto.keytab")  # the agent's own output
    assert [p.name for p in home.iterdir()] == ["x.keytab"]


def test_without_an_agent_or_with_another_option_the_full_command_runs(
    start_agent: Start, agent_dir: Path, lab: Lab, lab_settings: LabSettings
) -> None:
    # No agent: the full command, as before.
    out = agent_dir / "none.keytab"
    proc = run([*CREDO, "gmsa", "keytab", "svcauto", "--out", out], _no_agent_env(lab))
    assert proc.returncode == 0 and proc.stdout.startswith(f"wrote {out}: svcauto$@"), proc.stderr
    # A stale socket (an agent killed): the full command.
    import socket

    stale = agent_dir / "stale.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(stale))
    proc = run(
        [*CREDO, "gmsa", "keytab", "svcauto", "--out", out],
        _no_agent_env(lab) | {"CREDO_AGENT_SOCKET": str(stale)},
    )
    assert proc.returncode == 0, proc.stderr
    # An agent runs, but --owner (or an account it does not serve) goes the full way.
    agent = _start_exporting(start_agent, lab, lab_settings, agent_dir)
    env = identity_env(lab, "worker1", CREDO_AGENT_SOCKET=str(agent.socket))
    proc = run([*CREDO, "gmsa", "keytab", "svcauto", "--out", out, "--owner", "root"], env)
    assert proc.returncode == 0, proc.stderr
    proc = run([*CREDO, "gmsa", "keytab", "nosuchgmsa", "--out", out], env)
    assert proc.returncode == 6 and proc.stderr.startswith("credo: error: "), (
        proc.stderr
    )  # the CLI's own error
    assert "gave a keytab" not in agent.log.read_text()


def test_export_keytab_is_checked_like_the_allow_keys(tmp_path: Path) -> None:
    for value, needle in (('["no-such-user-x"]', "no local user 'no-such-user-x'"),
                          ('["%no-such-group-x"]', "no local group 'no-such-group-x'"), ('"root"', "expected list")):  # fmt: skip
        config = tmp_path / "agent.toml"
        config.write_text(f'[[account]]\nname = "svcauto"\nexport_keytab = {value}\n')
        proc = run([*CREDO, "agent", "run", "--config", str(config), "--check"])
        assert proc.returncode == 2, proc.stderr
        [line, *_] = proc.stderr.splitlines()
        assert line.startswith(f"credo: error: {config}: account[0].export_keytab: ") and needle in line, line


def test_kept_keys_carry_the_previous_key_the_dc_left_out() -> None:
    def entry(kvno: int, enctype: int) -> KeytabEntry:
        return KeytabEntry("svc$@R.TEST", kvno, enctype, bytes([kvno, enctype]) * 16)

    facts = RotationFacts(False, datetime.now(UTC), datetime.now(UTC))
    before = KeptKeys(
        GmsaKeyMaterial("svc$@R.TEST", "salt", (entry(2, 18), entry(1, 18))), "R.TEST", (18, 17), facts
    )
    after = KeptKeys(GmsaKeyMaterial("svc$@R.TEST", "salt", (entry(3, 18),)), "R.TEST", (18, 17), facts)
    carried = after.carrying(before)
    assert [(e.kvno, e.enctype) for e in carried.material.entries] == [(3, 18), (2, 18)]
    # With the previous key in the blob, nothing is carried; nor kvno-2.
    both = KeptKeys(
        GmsaKeyMaterial("svc$@R.TEST", "salt", (entry(3, 18), entry(2, 18))), "R.TEST", (18, 17), facts
    )
    assert both.carrying(before) == both
    _, entries = carried.keytab_entries((18,), ["HTTP/x"], [])
    assert [(e.principal, e.kvno) for e in entries] == [("svc$@R.TEST", 3), ("HTTP/x@R.TEST", 3),
                                                        ("svc$@R.TEST", 2), ("HTTP/x@R.TEST", 2)]  # fmt: skip
    assert "salt" not in repr(carried) and "\\x03" not in repr(carried)  # no key in a repr
