"""SMB as the gMSA against the lab DC's file shares (issue 16 point 6), with Samba's smbclient and
with smbprotocol (Python), from `credo run --as` and from a job run by a real worker.

The lab's shares (credo.lab.provision.SHARES): credo-drop, which only svcauto$ may write, and
credo-readonly, which it may read and not write; any authenticated account may read both.
Session setup used to fail with NT_STATUS_INTERNAL_ERROR for everyone (the DC's smbd could not
reach its winbindd; credo.lab.process now gives each DC its own /run/samba).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from credo.lab import SEED, SHARES, Lab, LabSettings
from credo.lab.provision import share_path
from tests.server.conftest import Server, create_group, create_runbook, start_job
from tests.support.identity import credo, run

pytestmark = pytest.mark.lab

Env = Callable[..., dict[str, str]]
DROP, READONLY = (share.name for share in SHARES)
DENIED = "NT_STATUS_ACCESS_DENIED"

SMBPROTOCOL = textwrap.dedent(
    r"""
    import sys
    import smbclient
    from smbprotocol.exceptions import SMBOSError

    server, drop, readonly, name = sys.argv[1:5]
    smbclient.register_session(server, auth_protocol="kerberos")
    with smbclient.open_file(rf"\\{server}\{drop}\{name}", mode="w") as handle:
        handle.write("written by smbprotocol\n")
    print("listed", sorted(smbclient.listdir(rf"\\{server}\{drop}")))
    print("readable", sorted(smbclient.listdir(rf"\\{server}\{readonly}")))
    try:
        with smbclient.open_file(rf"\\{server}\{readonly}\{name}", mode="w") as handle:
            handle.write("must not land\n")
    except SMBOSError as exc:
        print("refused", exc.ntstatus == 0xC0000022)  # STATUS_ACCESS_DENIED (MS-ERREF 2.3.1)
    """
)


def _smbclient(env: dict[str, str], settings: LabSettings, share: str, command: str, *, as_gmsa: bool) -> Any:
    argv = ["smbclient", "--use-kerberos=required", f"//{settings.dc_fqdn}/{share}", "-c", command]
    if as_gmsa:
        return credo("run", "--as", SEED.gmsa, "--", *argv, env=env)
    return run(argv, env)


def _put(tmp_path: Path, name: str, text: str) -> Path:
    local = tmp_path / name
    local.write_text(text)
    return local


def test_kerberos_session_setup_works_for_the_administrator(
    as_identity: Env, lab_settings: LabSettings
) -> None:
    """The failure this issue reported: NT_STATUS_INTERNAL_ERROR in session setup, for everyone."""
    proc = run(
        ["smbclient", "--use-kerberos=required", f"//{lab_settings.dc_fqdn}/netlogon", "-c", "ls"],
        as_identity("admin"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_run_as_the_gmsa_writes_its_share_and_is_refused_on_the_other_with_smbclient(
    lab: Lab, as_identity: Env, lab_settings: LabSettings, tmp_path: Path
) -> None:
    local = _put(tmp_path, "from-smbclient.txt", "written by smbclient\n")
    env = as_identity("worker1")
    wrote = _smbclient(env, lab_settings, DROP, f"put {local} {local.name}; ls", as_gmsa=True)
    assert wrote.returncode == 0, wrote.stdout + wrote.stderr
    assert local.name in wrote.stdout
    assert (share_path(lab.paths, SHARES[0]) / local.name).read_text() == "written by smbclient\n"

    refused = _smbclient(env, lab_settings, READONLY, f"ls; put {local} {local.name}", as_gmsa=True)
    assert DENIED in refused.stdout + refused.stderr
    assert not (share_path(lab.paths, SHARES[1]) / local.name).exists()


def test_another_account_may_read_the_gmsa_s_share_but_not_write_it(
    lab: Lab, as_identity: Env, lab_settings: LabSettings, tmp_path: Path
) -> None:
    """WORKER1$ with its own ticket (not the gMSA's): reads credo-drop, may not write it."""
    local = _put(tmp_path, "from-worker1.txt", "not the gMSA\n")
    env = as_identity("worker1")
    listed = _smbclient(env, lab_settings, DROP, "ls", as_gmsa=False)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    refused = _smbclient(env, lab_settings, DROP, f"put {local} {local.name}", as_gmsa=False)
    assert DENIED in refused.stdout + refused.stderr
    assert not (share_path(lab.paths, SHARES[0]) / local.name).exists()


def test_run_as_the_gmsa_with_smbprotocol(
    lab: Lab, as_identity: Env, lab_settings: LabSettings, tmp_path: Path
) -> None:
    import sys

    script = tmp_path / "smb.py"
    script.write_text(SMBPROTOCOL)
    name = f"from-smbprotocol-{tmp_path.name}.txt"
    proc = credo(
        "run", "--as", SEED.gmsa, "--", sys.executable, script, lab_settings.dc_fqdn, DROP, READONLY, name,
        env=as_identity("worker1"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert name in proc.stdout and "refused True" in proc.stdout, proc.stdout
    assert (share_path(lab.paths, SHARES[0]) / name).read_text() == "written by smbprotocol\n"
    assert not (share_path(lab.paths, SHARES[1]) / name).exists()


JOB = textwrap.dedent(
    """\
    set -u
    server=$(python3 -c 'import json,os;print(json.load(open(os.environ["CREDO_PARAMETERS"]))["server"])')
    note=$(mktemp)
    printf 'job %s attempt %s\\n' "$CREDO_JOB_ID" "$CREDO_JOB_ATTEMPT" > "$note"
    smbclient --use-kerberos=required "//$server/credo-drop" -c "put $note job-$CREDO_JOB_ID.txt"
    wrote=$?
    smbclient --use-kerberos=required "//$server/credo-readonly" -c "put $note job-$CREDO_JOB_ID.txt"
    refused=$?
    rm -f "$note"
    echo "wrote=$wrote refused=$refused"
    [ "$wrote" -eq 0 ] && [ "$refused" -ne 0 ]
    """
)


def test_a_job_writes_the_share_as_the_gmsa(
    lab: Lab, sqlite_server: Server, start_worker: Callable[..., Any], lab_settings: LabSettings
) -> None:
    create_runbook(sqlite_server, "file-drop", JOB, [{"name": "server", "type": "string"}], type_="bash")
    create_group(sqlite_server, "tier1", ["worker1"], lab_settings.realm)
    start_worker(sqlite_server, "worker1", "tier1")
    job = start_job(sqlite_server, "file-drop", "tier1", {"server": lab_settings.dc_fqdn})
    final = sqlite_server.wait_state(job["id"], {"Completed", "Failed"})
    output = sqlite_server.output(job["id"]) + sqlite_server.output(job["id"], "error")
    assert final["state"] == "Completed", output
    assert "wrote=0" in output and DENIED in output, output
    written = share_path(lab.paths, SHARES[0]) / f"job-{job['id']}.txt"
    assert written.read_text() == f"job {job['id']} attempt 1\n"
    assert not (share_path(lab.paths, SHARES[1]) / f"job-{job['id']}.txt").exists()
