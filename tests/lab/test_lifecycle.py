"""``up``, ``down`` and ``destroy`` do what they say, on a second lab beside the shared one.

The second lab has its own realm and loopback address (127.0.0.2), so the session's lab keeps
running for every other test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from credo.lab import MIGRATION_SEED, Lab
from credo.lab.hosts_file import HOSTS_FILE
from tests.support.identity import credo, run

REALM = "LIFECYCLE.EXAMPLE.TEST"
ADDRESS = "127.0.0.2"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def second_lab_dir(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Path:
    directory = tmp_path_factory.mktemp("second") / "lab"
    yield directory
    Lab(directory).destroy()


def test_up_down_up_destroy(second_lab_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}
    up = credo(
        "lab", "up", "--dir", second_lab_dir, "--realm", REALM, "--address", ADDRESS, "--json", env=env
    )
    assert up.returncode == 0, up.stderr
    status = json.loads(up.stdout)
    assert status["state"] == "running"
    assert status["realm"] == REALM
    assert status["address"] == ADDRESS
    pid = status["pid"]
    assert _alive(pid)
    # Bound to its own loopback address only.
    with socket.create_connection((ADDRESS, 389), timeout=2):
        pass
    assert f"dc1.{REALM.lower()}" in HOSTS_FILE.read_text()
    state_mtime = (second_lab_dir / "lab.json").stat().st_mtime_ns

    # `up` on a running lab returns at once: same process, nothing provisioned again.
    again = credo("lab", "up", "--dir", second_lab_dir, "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["pid"] == pid
    assert (second_lab_dir / "lab.json").stat().st_mtime_ns == state_mtime

    # `up` with a different realm on the same directory is refused, not silently ignored.
    other = credo("lab", "up", "--dir", second_lab_dir, "--realm", "OTHER.EXAMPLE.TEST", env=env)
    assert other.returncode == 2
    assert "provisioned with realm LIFECYCLE.EXAMPLE.TEST" in other.stderr

    down = credo("lab", "down", "--dir", second_lab_dir, env=env)
    assert down.returncode == 0, down.stderr
    assert not _alive(pid)
    assert not (second_lab_dir / "samba.pid").exists()
    stopped = json.loads(credo("lab", "status", "--dir", second_lab_dir, "--json", env=env).stdout)
    assert stopped["state"] == "stopped"
    keytab_before = (second_lab_dir / "hosts" / "worker1.keytab").read_bytes()

    # A lab seeded before the legacy user service account (migration_seed 0, no svc_legacy) gets
    # it at the next `up`, as the shared lab of a developer's machine does.
    samba: list[str | Path] = [
        "-H",
        second_lab_dir / "samba" / "private" / "sam.ldb",
        "-s",
        second_lab_dir / "samba" / "etc" / "smb.conf",
    ]
    run(["samba-tool", "user", "delete", MIGRATION_SEED.user, *samba], env, check=True)
    legacy_keytab = second_lab_dir / "users" / f"{MIGRATION_SEED.user}.keytab"
    legacy_keytab.unlink()
    state = json.loads((second_lab_dir / "lab.json").read_text())
    assert state["migration_seed"] == 1
    (second_lab_dir / "lab.json").write_text(json.dumps(state | {"migration_seed": 0}))

    # Start again: the state (and so the computer's keys) is kept, and the keytab still works.
    restarted = credo("lab", "up", "--dir", second_lab_dir, "--json", env=env)
    assert restarted.returncode == 0, restarted.stderr
    assert json.loads(restarted.stdout)["state"] == "running"
    assert (second_lab_dir / "hosts" / "worker1.keytab").read_bytes() == keytab_before
    kinit_env = env | {
        "KRB5_CONFIG": str(second_lab_dir / "krb5.conf"),
        "KRB5CCNAME": f"FILE:{second_lab_dir / 'test.ccache'}",
    }
    run(
        ["kinit", "-k", "-t", second_lab_dir / "hosts" / "worker1.keytab", f"WORKER1$@{REALM}"],
        kinit_env,
        check=True,
    )
    assert json.loads((second_lab_dir / "lab.json").read_text())["migration_seed"] == 1
    spns = run(["samba-tool", "spn", "list", MIGRATION_SEED.user, *samba], env, check=True).stdout
    assert MIGRATION_SEED.spn(REALM.lower()) in spns
    # Its keys were exported again: they are the account's current ones.
    run(["kinit", "-k", "-t", legacy_keytab, f"{MIGRATION_SEED.user}@{REALM}"], kinit_env, check=True)

    new_pid = json.loads(restarted.stdout)["pid"]
    destroyed = credo("lab", "destroy", "--dir", second_lab_dir, env=env)
    assert destroyed.returncode == 0, destroyed.stderr
    assert not _alive(new_pid)
    assert not second_lab_dir.exists()
    assert f"dc1.{REALM.lower()}" not in HOSTS_FILE.read_text()
    lo = subprocess.run(["ip", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
    assert f"inet {ADDRESS}/" not in lo
    assert (
        json.loads(credo("lab", "status", "--dir", second_lab_dir, "--json", env=env).stdout)["state"]
        == "absent"
    )
