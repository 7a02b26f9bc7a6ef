"""The lab's part for restricted endpoints: seeding again changes nothing, `lab env --user` works."""

from __future__ import annotations

import json
import subprocess

import pytest

from credo.lab import ENDPOINT_SEED, Lab, LabSettings
from credo.lab.provision import seed_endpoints
from tests.support.identity import credo, run

pytestmark = pytest.mark.lab


def members(lab: Lab, group: str) -> list[str]:
    proc = subprocess.run(
        ["samba-tool", "group", "listmembers", group, "-H", str(lab.paths.sam_ldb), "-s", str(lab.paths.smb_conf)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return sorted(proc.stdout.split())


def test_seeding_an_existing_lab_again_is_a_no_op(lab: Lab, lab_settings: LabSettings) -> None:
    before = (members(lab, ENDPOINT_SEED.group), members(lab, ENDPOINT_SEED.nested_group))
    keytab = lab.paths.sshd_keytab(ENDPOINT_SEED.host)
    written = keytab.stat().st_mtime_ns
    seed_endpoints(lab_settings, lab.paths)
    assert (members(lab, ENDPOINT_SEED.group), members(lab, ENDPOINT_SEED.nested_group)) == before
    assert before == ([ENDPOINT_SEED.nested_group], [ENDPOINT_SEED.member])
    assert keytab.stat().st_mtime_ns == written
    assert lab_settings.endpoint_seed >= 1


def test_lab_env_user_gives_a_ccache_of_that_user(lab: Lab) -> None:
    proc = credo("lab", "env", "--user", "jdoe", "--json")
    assert proc.returncode == 0, proc.stderr
    env = json.loads(proc.stdout)
    assert env["identity"] == "jdoe" and "KRB5_CLIENT_KTNAME" in env["unset"]
    listing = run(["klist"], {"PATH": "/usr/bin:/bin", **env["set"]}, check=True).stdout
    assert "Default principal: jdoe@CORP.EXAMPLE.TEST" in listing
    # The lab's host keytab of sshd's principal is a ticket target for jdoe.
    kvno = run(
        ["kvno", f"host/{ENDPOINT_SEED.host.lower()}.corp.example.test"],
        {"PATH": "/usr/bin:/bin", **env["set"]},
    )
    assert kvno.returncode == 0, kvno.stderr


def test_lab_env_refuses_host_and_user_together(lab: Lab) -> None:
    proc = credo("lab", "env", "--host", "worker1", "--user", "jdoe")
    assert proc.returncode == 2
    assert proc.stderr.startswith("credo: error: ") and "credo: hint: " in proc.stderr
