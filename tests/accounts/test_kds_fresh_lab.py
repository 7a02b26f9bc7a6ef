"""A root key credo creates is the one the DC derives passwords from, once the others are gone.

First, a key effective now (`credo kds add`) is not used by the DC during its first 10 hours: a
gMSA created then still derives from the provisioned key, as `usable_now: false` said.

Deleting root keys would break the seeded gMSAs of the shared lab, so this runs on a throw-away
second lab (own realm, 127.0.0.6), destroyed afterwards. There, `credo kds add
--effective-immediately` adds a key; every other root key is deleted with samba-tool; a gMSA that
credo creates next works at once with `credo gmsa test` as WORKER1$ (allowed), not as WORKER2$,
and its msDS-ManagedPasswordId names credo's key.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from credo.lab import Lab
from tests.support.identity import CREDO, run

REALM = "KDSDEL.EXAMPLE.TEST"
ADDRESS = "127.0.0.6"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}


@pytest.fixture(scope="module")
def fresh_lab(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Lab]:
    second = Lab(tmp_path_factory.mktemp("kdsdel") / "lab")
    try:
        second.up(realm=REALM, address=ADDRESS)
        _wait_for_ldap_service(second)
        yield second
    finally:
        second.destroy()


def _wait_for_ldap_service(lab: Lab) -> None:
    """Right after provisioning, the KDC may not find ldap/DC for a few seconds: wait for a bind."""
    admin = clean_env() | lab.env("admin").set
    deadline = time.monotonic() + 60
    while run(["ldapwhoami", "-Q"], admin).returncode != 0:
        assert time.monotonic() < deadline, "the second lab DC did not accept a GSSAPI bind within 60 s"
        time.sleep(1)


def test_gmsa_gets_its_password_from_the_key_credo_created(fresh_lab: Lab) -> None:
    lab = fresh_lab
    admin = clean_env() | lab.env("admin").set
    samba = ["samba-tool", "-H", str(lab.paths.sam_ldb), "-s", str(lab.paths.smb_conf)]

    # A key effective now is not used yet: the DC waits one 10-hour key cycle (MS-GKDI).
    provisioned = json.loads(run([*CREDO, "kds", "list", "--json"], admin, check=True).stdout)
    later = json.loads(run([*CREDO, "kds", "add", "--json"], admin, check=True).stdout)
    assert later["usable_now"] is False
    worker1 = clean_env() | lab.env("worker1").set
    run([*CREDO, "account", "new", "svcbefore", "--dns-host-name", f"svcbefore.{REALM.lower()}",
         "--allowed", "worker1"], admin, check=True)  # fmt: skip
    before = json.loads(run([*CREDO, "gmsa", "show", "svcbefore", "--json"], worker1, check=True).stdout)
    assert before["password_id"]["root_key_id"] in [k["guid"] for k in provisioned]

    proc = run([*CREDO, "kds", "add", "--effective-immediately", "--json"], admin)
    assert proc.returncode == 0, proc.stderr
    key = json.loads(proc.stdout)
    assert key["usable_now"] is True
    listed = json.loads(
        run([samba[0], "domain", "kds", "root-key", "list", "--json", *samba[1:]], admin, check=True).stdout
    )
    assert {key["guid"], later["guid"]} <= {k["name"] for k in listed} and len(listed) == 3
    for other in listed:
        if other["name"] != key["guid"]:
            run(
                [samba[0], "domain", "kds", "root-key", "delete", f"--name={other['name']}", *samba[1:]],
                admin,
                check=True,
            )
    ours = json.loads(run([*CREDO, "kds", "list", "--json"], admin, check=True).stdout)
    assert [k["guid"] for k in ours] == [key["guid"]]

    name = "svcnewkey"
    proc = run(
        [
            *CREDO,
            "account",
            "new",
            name,
            "--dns-host-name",
            f"{name}.{REALM.lower()}",
            "--allowed",
            "HybridWorkers",
        ],
        admin,
    )
    assert proc.returncode == 0, proc.stderr
    test = run([*CREDO, "gmsa", "test", name, "--json"], worker1)
    assert test.returncode == 0, test.stdout + test.stderr
    assert json.loads(test.stdout)["ok"] is True
    shown = json.loads(run([*CREDO, "gmsa", "show", name, "--json"], worker1, check=True).stdout)
    assert shown["password_id"]["root_key_id"] == key["guid"]
    worker2 = clean_env() | lab.env("worker2").set
    refused = run([*CREDO, "gmsa", "test", name, "--json"], worker2)
    assert refused.returncode == 1 and json.loads(refused.stdout)["error"] == "NotPermittedToRetrieve"
