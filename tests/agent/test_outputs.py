"""Issue 12 point 1: `credo agent run --config examples/agent.toml` serves the lab as it is (its
outputs and socket under /run/credo); a keytab output's owner, group, mode and enctypes are what
the config says on the file the agent wrote; a caller admitted through `allow_groups` by a
supplementary group gets its ticket over the socket."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from credo.krb.keytab import read_keytab
from credo.lab import Lab, LabSettings
from tests.support.agent import AgentProcess, agent_config
from tests.support.identity import CREDO, identity_env, run

Start = Callable[..., AgentProcess]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent.toml"
RUN_DIR = Path("/run/credo")
TEST_GROUP = "credo-agent-test"


def test_the_example_config_serves_the_lab_as_it_is(
    lab: Lab, lab_settings: LabSettings, runner_user: str
) -> None:
    if lab.paths.root != Path("/var/lib/credo/lab"):
        pytest.skip("examples/agent.toml names the default lab directory, /var/lib/credo/lab")
    sock, keytab, ccache = RUN_DIR / "agent.sock", RUN_DIR / "svcauto.keytab", RUN_DIR / "svcauto.ccache"
    work = RUN_DIR / ".agent-work"
    if any(p.exists() for p in (sock, keytab, ccache)):
        pytest.skip(f"{RUN_DIR} already holds an agent's socket or outputs: not ours to replace")
    made_dir = not RUN_DIR.exists()
    log = Path(subprocess.check_output(["mktemp", "/tmp/credo-example-agent.XXXXXX"], text=True).strip())
    agent = AgentProcess(EXAMPLE, log)
    agent.socket = sock
    agent.start()
    try:
        agent.wait_refreshed()
        env = identity_env(lab, None)  # no CREDO_AGENT_SOCKET: the clients find the default socket
        status = run([*CREDO, "agent", "status", "--json"], env)
        assert status.returncode == 0, status.stderr
        [state] = json.loads(status.stdout)
        assert state["error"] is None and state["outputs"] == [str(keytab), str(ccache)]
        info = keytab.stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (0, 0, 0o600)
        entries = read_keytab(keytab)
        assert {e.principal for e in entries} == {f"svcauto$@{lab_settings.realm}"}
        assert {e.enctype for e in entries} == {17, 18}  # the default: AES only
        runner = pwd.getpwnam(runner_user)
        info = ccache.stat()
        assert (info.st_uid, info.st_mode & 0o777) == (runner.pw_uid, 0o600)
        # The service user reads its own ccache; root runs a command as the gMSA through the socket.
        klist = run(["runuser", "-u", runner_user, "--", "klist", "-c", str(ccache)], env)
        assert f"svcauto$@{lab_settings.realm}" in klist.stdout, klist.stderr
        served = run([*CREDO, "run", "--as", "svcauto", "--", "klist"], env)
        assert served.returncode == 0 and f"svcauto$@{lab_settings.realm}" in served.stdout, served.stderr
    finally:
        agent.stop()
        for path in (sock, keytab, ccache, log):
            path.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        if made_dir:
            with contextlib.suppress(OSError):
                RUN_DIR.rmdir()


@pytest.fixture
def local_group() -> Iterator[grp.struct_group]:
    """A local group of nobody's, deleted afterwards (if this test made it)."""
    made = False
    try:
        grp.getgrnam(TEST_GROUP)
    except KeyError:
        subprocess.run(["groupadd", "--system", TEST_GROUP], check=True)
        made = True
    try:
        yield grp.getgrnam(TEST_GROUP)
    finally:
        if made:
            subprocess.run(["groupdel", TEST_GROUP], check=False)


def test_keytab_ownership_and_enctypes_and_a_caller_admitted_by_its_group(
    start_agent: Start, agent_dir: Path, lab: Lab, lab_settings: LabSettings, local_group: grp.struct_group
) -> None:
    text = agent_config(
        lab, lab_settings, agent_dir, extra_account=f'allow_groups = ["{TEST_GROUP}"]'
    ).replace(
        "spns = []",
        f'spns = []\nowner = "credo-runner"\ngroup = "{TEST_GROUP}"\nmode = "0640"\nenctypes = ["aes256"]',
    )
    agent = start_agent(text)
    agent.wait_refreshed()
    keytab = agent_dir / "out/svcauto.keytab"
    info = keytab.stat()
    runner = pwd.getpwnam("credo-runner")
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (runner.pw_uid, local_group.gr_gid, 0o640)
    entries = read_keytab(keytab)
    assert entries and {e.enctype for e in entries} == {18}  # aes256 only, as configured
    # nobody, in the allowed group only as a supplementary group (its primary group is nogroup),
    # asks for a ticket with Debian's python3 (stdlib only), speaking the protocol by hand.
    script = (
        "import json, os, socket, sys\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
        "fd = os.open(sys.argv[2], os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)\n"
        "socket.send_fds(s, [json.dumps({'op': 'ccache', 'account': 'svcauto'}).encode() + b'\\n'], [fd])\n"
        "print(s.makefile().readline())\n"
    )
    drop = agent_dir / "nobody"
    drop.mkdir()
    os.chown(drop, 65534, 65534)
    nogroup = pwd.getpwnam("nobody").pw_gid
    ticket = drop / "ccache"
    proc = run(
        ["setpriv", "--reuid=65534", f"--regid={nogroup}", f"--groups={local_group.gr_gid}", "--",
         "/usr/bin/python3", "-c", script, str(agent.socket), str(ticket)],
        {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"ok": True, "account": "svcauto"}
    klist = run(["klist", "-c", str(ticket)], identity_env(lab, None))
    assert f"svcauto$@{lab_settings.realm}" in klist.stdout, klist.stderr
    deadline = time.monotonic() + 5
    while "gave a ccache of svcauto to uid 65534" not in agent.log.read_text():
        assert time.monotonic() < deadline, agent.log.read_text()
        time.sleep(0.1)
