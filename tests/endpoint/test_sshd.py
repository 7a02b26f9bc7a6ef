"""The transport of restricted endpoints: real OpenSSH, Kerberos (GSSAPI) logins of lab users.

A private sshd on 127.0.0.1 (tests/support/sshd.py) accepts host/worker1.<domain> from the lab's
keytab and lets users in with GSSAPI only; its ForceCommand stands in for `credo endpoint serve`.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from credo.lab import ENDPOINT_SEED, Lab, LabSettings
from tests.endpoint.conftest import StartSshd
from tests.support.identity import ldapsearch

pytestmark = pytest.mark.lab

FORCED = """#!/bin/sh
# Stands in for `credo endpoint serve`: what sshd hands the forced command.
printf 'original=[%s]\\n' "$SSH_ORIGINAL_COMMAND"
printf 'user=%s\\n' "$(id -un)"
id
if [ -t 0 ]; then echo tty=yes; else echo tty=no; fi
printf 'krb5ccname=[%s]\\n' "$KRB5CCNAME"
"""


@pytest.fixture
def forced_command(tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = tmp_path_factory.mktemp("forced")
    directory.chmod(0o755)
    script = directory / "forced.sh"
    script.write_text(FORCED)
    script.chmod(0o755)
    # The login users must reach it: open the temp dirs above it for traversal only.
    for parent in (directory.parent, directory.parent.parent):
        parent.chmod(parent.stat().st_mode | stat.S_IXOTH)
    return str(script)


def test_jdoe_logs_in_with_kerberos_and_the_forced_command_runs(
    start_sshd: StartSshd, forced_command: str, user_ccache: Callable[[str], str]
) -> None:
    sshd = start_sshd(force_command=forced_command)
    proc = sshd.ssh("jdoe", "systemctl", "restart", "nginx;", "id", ccache=user_ccache("jdoe"))
    assert proc.returncode == 0, proc.stderr + sshd.log.read_text()[-3000:]
    lines = proc.stdout.splitlines()
    # The client's words reach the forced command only as $SSH_ORIGINAL_COMMAND: nothing ran them.
    assert lines[0] == "original=[systemctl restart nginx; id]"
    assert lines[1] == "user=jdoe"
    assert lines[2].startswith(f"uid={pwd.getpwnam('jdoe').pw_uid}(jdoe)")
    assert lines[3] == "tty=no"
    # No delegation: the session holds no ticket of the user.
    assert lines[4] == "krb5ccname=[]"
    log = sshd.log.read_text()
    assert "Accepted gssapi-with-mic for jdoe" in log
    assert "jdoe@CORP.EXAMPLE.TEST" in log or "jdoe@" in log


def test_an_interactive_session_gets_a_tty(
    start_sshd: StartSshd, forced_command: str, user_ccache: Callable[[str], str]
) -> None:
    sshd = start_sshd(force_command=forced_command)
    proc = sshd.ssh("jdoe", ccache=user_ccache("jdoe"), tty=True)
    assert proc.returncode == 0, proc.stderr
    assert "original=[]" in proc.stdout and "tty=yes" in proc.stdout


def test_a_login_without_kerberos_is_refused(
    start_sshd: StartSshd, forced_command: str, tmp_path: Path
) -> None:
    sshd = start_sshd(force_command=forced_command)
    marker = tmp_path / "ran"
    proc = sshd.ssh("jdoe", f"touch {marker}", ccache=None)
    assert proc.returncode == 255
    assert "Permission denied" in proc.stderr
    assert "original=" not in proc.stdout and not marker.exists()
    # credo never ran, so no transcript can hold this login: sshd's own log is where it is.
    deadline = time.monotonic() + 5
    while "[preauth]" not in sshd.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(
        "user jdoe 127.0.0.1 port" in line and "[preauth]" in line
        for line in sshd.log.read_text().splitlines()
    )


def test_another_users_ticket_does_not_log_in_as_jdoe(
    start_sshd: StartSshd, forced_command: str, user_ccache: Callable[[str], str]
) -> None:
    """asmith's ticket maps to asmith only (auth_to_local): sshd refuses it for jdoe."""
    sshd = start_sshd(force_command=forced_command)
    proc = sshd.ssh("jdoe", ccache=user_ccache("asmith"))
    assert proc.returncode == 255 and "Permission denied" in proc.stderr


def test_asmith_logs_in_at_the_sshd_level(
    start_sshd: StartSshd, forced_command: str, user_ccache: Callable[[str], str]
) -> None:
    """Group gating is the endpoint's job (credo endpoint serve), not sshd's: asmith gets in here."""
    sshd = start_sshd(force_command=forced_command)
    proc = sshd.ssh("asmith", "help", ccache=user_ccache("asmith"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:2] == ["original=[help]", "user=asmith"]


def test_sshd_listens_on_loopback_only_and_allows_no_forwarding(
    start_sshd: StartSshd, forced_command: str, user_ccache: Callable[[str], str]
) -> None:
    sshd = start_sshd(force_command=forced_command)
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    ours = [row.split() for row in listening if row.split()[1].endswith(f":{sshd.port:04X}")]
    assert ours and all(row[1].startswith("0100007F:") for row in ours), ours
    assert not any(
        row.split()[1].endswith(f":{sshd.port:04X}")
        for row in Path("/proc/net/tcp6").read_text().splitlines()[1:]
    )
    # A TCP forward through the server (stdio forwarding, -W) is refused: AllowTcpForwarding no.
    argv = sshd.ssh_argv("jdoe")
    argv[argv.index("-T")] = f"-W127.0.0.1:{sshd.port}"
    proc = subprocess.run(
        argv, env=sshd.client_env(user_ccache("jdoe")), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode != 0
    assert "stdio forwarding failed" in proc.stderr, proc.stderr
    assert "refused local port forward" in sshd.log.read_text()
    # The effective configuration, as sshd itself reads it (sshd -T).
    effective = subprocess.run(
        ["/usr/sbin/sshd", "-T", "-f", str(sshd.config), "-p", str(sshd.port)],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    for line in (
        "gssapiauthentication yes", "passwordauthentication no", "kbdinteractiveauthentication no",
        "pubkeyauthentication no", "permituserenvironment no", "allowtcpforwarding no",
        "x11forwarding no", "allowagentforwarding no", f"forcecommand {forced_command}",
    ):  # fmt: skip
        assert line in effective, line


def test_the_lab_seeds_helpdesk_with_jdoe_nested_and_not_asmith(
    lab: Lab, lab_settings: LabSettings, as_identity: Callable[..., dict[str, str]]
) -> None:
    admin = as_identity("admin")
    base = lab_settings.base_dn
    staff = f"OU=Staff,{base}"
    helpdesk = ldapsearch(admin, f"(sAMAccountName={ENDPOINT_SEED.group})", "objectSid", "member")
    assert len(helpdesk) == 1
    _, attrs = helpdesk[0]
    # jdoe is not a direct member: only Tier1 is.
    assert [m.decode() for m in attrs["member"]] == [f"CN={ENDPOINT_SEED.nested_group},CN=Users,{base}"]
    helpdesk_sid = attrs["objectSid"][0]

    def token_groups(user: str) -> list[bytes]:
        entries = ldapsearch(admin, "(objectClass=*)", "tokenGroups", base=f"CN={user},{staff}", scope="base")
        return entries[0][1].get("tokenGroups", [])

    assert helpdesk_sid in token_groups("jdoe")
    assert helpdesk_sid not in token_groups("asmith")
    # The files the transport needs, private to root.
    for path in (lab.paths.sshd_keytab(ENDPOINT_SEED.host), lab.paths.user_keytab("jdoe")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.path.exists(lab.paths.user_keytab("asmith"))
