"""A generated timer's service, run the way systemd would run it, acts on the lab directory as
the gMSA: its ExecStart= and Environment= are read back by the manual pages' rules and run as the
unit's User= with KRB5CCNAME at a ccache of svcauto$ (written here as the agent would write it:
by root, then handed to the user, 0600).

PID 1 is not systemd here, so systemd cannot start the unit; `systemd-analyze verify` checks it,
and setpriv(1) gives the command what systemd gives a User= service: that user's uid, gid and
groups, no new privileges, and an environment of PATH, HOME, USER, LOGNAME, SHELL plus the
unit's Environment= (systemd.exec(5), "Environment variables in spawned processes").
"""

from __future__ import annotations

import json
import pwd
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from credo.lab import SEED, LabSettings
from credo.systemd.paths import agent_ccache_path
from credo.systemd.units import UnitFile
from tests.support.identity import credo
from tests.systemd.test_units import CREDO, verify
from tests.systemd.unitparse import environment, exec_argv, settings

Env = Callable[..., dict[str, str]]
# systemd's PATH for services (systemd.exec(5), "$PATH").
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
# Arguments that must reach the command unchanged through the unit file.
TRICKY = ["a b", "100%", "%n", "$HOME", "${USER}", 'say "hi"', "it's", "back\\slash", "", ";"]
SCRIPT = 'id -un && ldapwhoami -N -Q -Y GSSAPI -O minssf=56 -H "$LDAPURI" && printf "%s\\n" "$@"'


def write_gmsa_ccache(path: Path, user: str, host_env: dict[str, str]) -> None:
    """What the agent does for (svcauto, user): a TGT of svcauto$ at ``path``, owned by ``user``,
    0600, in a root-owned directory. Here with `credo run --as`, as the host WORKER1$."""
    path.parent.mkdir(parents=True, mode=0o755)
    proc = credo(
        "run", "--as", SEED.gmsa, "--", "sh", "-c", 'cp "${KRB5CCNAME#FILE:}" "$1"', "sh", str(path),
        env=host_env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    entry = pwd.getpwnam(user)
    path.chmod(0o600)
    shutil.chown(path, entry.pw_uid, entry.pw_gid)


def run_like_systemd(service: UnitFile) -> subprocess.CompletedProcess[str]:
    section = settings(service.text)["Service"]
    [user] = [value for key, value in section if key == "User"]
    [line] = [value for key, value in section if key == "ExecStart"]
    entry = pwd.getpwnam(user)
    env = {
        "PATH": SERVICE_PATH,
        "HOME": entry.pw_dir,
        "USER": user,
        "LOGNAME": user,
        "SHELL": entry.pw_shell,
    } | environment([value for key, value in section if key == "Environment"])
    setpriv = ["setpriv", "--reuid", str(entry.pw_uid), "--regid", str(entry.pw_gid), "--init-groups"]
    return subprocess.run(
        [*setpriv, "--no-new-privs", "--", *exec_argv(line)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )


def test_a_timers_service_acts_on_the_directory_as_the_gmsa(
    as_identity: Env, lab_settings: LabSettings, runner_user: str, run_dir: Path
) -> None:
    ccache = agent_ccache_path(SEED.gmsa, runner_user, root=run_dir / "ccache")
    lab = as_identity("worker1")
    args = ["systemd", "timer", "whoami-nightly", "--on-calendar", "daily", "--as", SEED.gmsa]
    args += ["--user", runner_user, "--ccache", str(ccache), "--json"]
    for name in ("KRB5_CONFIG", "LDAPURI"):
        args += ["--env", f"{name}={lab[name]}"]
    proc = credo(*args, "--", "sh", "-c", SCRIPT, "sh", *TRICKY)
    assert proc.returncode == 0, proc.stderr
    service, timer = (UnitFile(u["name"], u["text"]) for u in json.loads(proc.stdout)["units"])
    agent = credo("systemd", "agent-unit", "--credo", CREDO, "--json")
    [agent_json] = json.loads(agent.stdout)["units"]
    unit_dir = run_dir / "units"
    unit_dir.mkdir()
    verify(unit_dir, UnitFile(agent_json["name"], agent_json["text"]), service, timer)

    # Before the agent has written the ccache, the command has no identity: it fails.
    before = run_like_systemd(service)
    assert before.returncode != 0 and "u:" not in before.stdout

    write_gmsa_ccache(ccache, runner_user, lab)
    after = run_like_systemd(service)
    assert after.returncode == 0, after.stderr
    local_user, whoami, *echoed = after.stdout.split("\n")[:-1]
    assert local_user == runner_user
    assert whoami == f"u:{lab_settings.netbios}\\{SEED.gmsa}$"
    assert echoed == TRICKY
