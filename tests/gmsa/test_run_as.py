"""`credo run --as` against the lab DC: identity, real authorization, isolation, signals, cleanup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.support.identity import CREDO, credo, ldapsearch, run

from credo.lab import SEED, Lab, LabSettings

Env = Callable[..., dict[str, str]]
ACCOUNTDISABLE = 0x2


def test_ldapwhoami_as_the_gmsa(as_identity: Env, lab_settings: LabSettings) -> None:
    proc = credo(
        "run", "--as", SEED.gmsa, "--",
        "ldapwhoami", "-N", "-Q", "-Y", "GSSAPI", "-O", "minssf=56", "-H", lab_settings.ldap_url,
        env=as_identity("worker1"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"u:{lab_settings.netbios}\\{SEED.gmsa}$"


DISABLE_SCRIPT = textwrap.dedent(
    """
    import ldap, ldap.sasl, sys
    dn, url = sys.argv[1], sys.argv[2]
    conn = ldap.initialize(url)
    conn.set_option(ldap.OPT_X_SASL_NOCANON, 1)
    conn.set_option(ldap.OPT_X_SASL_SSF_MIN, 56)
    conn.sasl_interactive_bind_s("", ldap.sasl.sasl({}, "GSSAPI"))
    print(conn.whoami_s())
    [(_, attrs)] = conn.search_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["userAccountControl"])
    uac = int(attrs["userAccountControl"][0]) | 0x2
    try:
        conn.modify_s(dn, [(ldap.MOD_REPLACE, "userAccountControl", [str(uac).encode()])])
    except ldap.INSUFFICIENT_ACCESS as exc:
        print("refused:", exc.args[0].get("info", ""), file=sys.stderr)
        sys.exit(3)
    print("disabled", dn)
    """
)


@pytest.fixture
def jdoe(as_identity: Env, lab_settings: LabSettings) -> Iterator[str]:
    dn = f"CN=jdoe,OU={SEED.staff_ou},{lab_settings.base_dn}"
    yield dn
    admin = as_identity("admin")
    run(
        ["samba-tool", "user", "enable", "jdoe", "-H", lab_settings.ldap_url, "--use-kerberos=required"],
        admin,
        check=True,
    )


def jdoe_disabled(env: dict[str, str], dn: str) -> bool:
    [(_, attrs)] = ldapsearch(env, "(objectClass=*)", "userAccountControl", base=dn, scope="base")
    return bool(int(attrs["userAccountControl"][0]) & ACCOUNTDISABLE)


def test_runbook_style_script_disables_a_user(
    as_identity: Env, lab_settings: LabSettings, jdoe: str, tmp_path: Path
) -> None:
    script = tmp_path / "disable.py"
    script.write_text(DISABLE_SCRIPT)
    admin = as_identity("admin")
    assert not jdoe_disabled(admin, jdoe)
    proc = credo(
        "run",
        "--as",
        SEED.gmsa,
        "--",
        sys.executable,
        script,
        jdoe,
        lab_settings.ldap_url,
        env=as_identity("worker1"),
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{SEED.gmsa}$" in proc.stdout
    assert jdoe_disabled(admin, jdoe)


def test_same_script_from_worker2_fails_with_the_reason(
    as_identity: Env, lab_settings: LabSettings, jdoe: str, tmp_path: Path
) -> None:
    script = tmp_path / "disable.py"
    script.write_text(DISABLE_SCRIPT)
    proc = credo(
        "run",
        "--as",
        SEED.gmsa,
        "--",
        sys.executable,
        script,
        jdoe,
        lab_settings.ldap_url,
        env=as_identity("worker2"),
    )
    assert proc.returncode == 5
    assert "WORKER2$ is not permitted to retrieve the managed password of svcauto$" in proc.stderr
    assert "HybridWorkers" in proc.stderr
    assert not jdoe_disabled(as_identity("admin"), jdoe)


def test_directory_authorization_is_real(as_identity: Env, lab_settings: LabSettings, tmp_path: Path) -> None:
    """The gMSA may write userAccountControl in OU=Staff only: elsewhere the DC refuses."""
    script = tmp_path / "disable.py"
    script.write_text(DISABLE_SCRIPT)
    target = f"CN=WORKER2,CN=Computers,{lab_settings.base_dn}"
    proc = credo(
        "run",
        "--as",
        SEED.gmsa,
        "--",
        sys.executable,
        script,
        target,
        lab_settings.ldap_url,
        env=as_identity("worker1"),
    )
    assert proc.returncode == 3
    assert "refused" in proc.stderr


def test_exit_status_passes_through(as_identity: Env) -> None:
    proc = credo("run", "--as", SEED.gmsa, "--", "sh", "-c", "exit 7", env=as_identity("worker1"))
    assert proc.returncode == 7


def test_signal_passes_through(as_identity: Env) -> None:
    proc = credo("run", "--as", SEED.gmsa, "--", "sh", "-c", "kill -USR1 $$", env=as_identity("worker1"))
    assert proc.returncode == -signal.SIGUSR1


def test_environment_is_not_inherited_unless_asked(as_identity: Env) -> None:
    env = as_identity("worker1") | {"CREDO_TEST_SECRETISH": "should-not-pass", "PASSED_ON": "yes"}
    proc = credo("run", "--as", SEED.gmsa, "--env", "PASSED_ON", "--env", "EXTRA=1", "--", "env", env=env)
    assert proc.returncode == 0, proc.stderr
    child = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    assert "CREDO_TEST_SECRETISH" not in child
    assert "CREDO_HOST_KEYTAB" not in child and "KRB5_CLIENT_KTNAME" not in child
    assert child["PASSED_ON"] == "yes" and child["EXTRA"] == "1"
    assert child["KRB5CCNAME"].startswith("FILE:") and child["TMPDIR"] in child["KRB5CCNAME"]


def test_user_switch_private_ccache_and_unreadable_host_keytab(
    as_identity: Env, lab: Lab, runner_user: str
) -> None:
    script = (
        'id -un; stat -c "%U %a" "$TMPDIR" "${KRB5CCNAME#FILE:}"; klist | head -2 | tail -1; '
        f"cat {lab.paths.host_keytab('worker1')} >/dev/null 2>&1 && echo KEYTAB-READABLE || echo keytab-unreadable"
    )
    proc = credo(
        "run", "--as", SEED.gmsa, "--user", runner_user, "--", "sh", "-c", script, env=as_identity("worker1")
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == runner_user
    assert lines[1] == f"{runner_user} 700"
    assert lines[2] == f"{runner_user} 600"
    assert f"{SEED.gmsa}$@" in lines[3]
    assert lines[4] == "keytab-unreadable"


def test_user_switch_needs_a_known_user(as_identity: Env) -> None:
    proc = credo(
        "run", "--as", SEED.gmsa, "--user", "no-such-user-here", "--", "true", env=as_identity("worker1")
    )
    assert proc.returncode == 2
    assert "no local user 'no-such-user-here'" in proc.stderr


def _start_run(env: dict[str, str], *command: str, extra: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CREDO, "run", "--as", SEED.gmsa, *extra, "--", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cleanup_on_signal(as_identity: Env, sig: signal.Signals) -> None:
    proc = _start_run(as_identity("worker1"), "sh", "-c", 'echo "$TMPDIR"; exec sleep 60')
    tmpdir = Path(_wait_for_line(proc))
    assert (tmpdir / "krb5cc").exists()
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert proc.returncode == -sig
    assert not tmpdir.exists()


def test_cleanup_on_timeout(as_identity: Env) -> None:
    proc = _start_run(
        as_identity("worker1"), "sh", "-c", 'echo "$TMPDIR"; exec sleep 60', extra=("--timeout", "1")
    )
    tmpdir = Path(_wait_for_line(proc))
    proc.wait(timeout=30)
    assert proc.returncode == 124
    assert "timeout" in proc.stderr.read() if proc.stderr else True
    assert not tmpdir.exists()


def test_no_secret_leaks(as_identity: Env, lab: Lab, lab_settings: LabSettings, tmp_path: Path) -> None:
    """While the child runs, /proc of credo and of the child, and the debug log, hold no key."""
    from tests.gmsa.test_gmsa_commands import keytab_keys

    oracle = tmp_path / "oracle.keytab"
    run(
        ["samba-tool", "domain", "exportkeytab", oracle, f"--principal={SEED.gmsa}$@{lab_settings.realm}",
         "-s", lab.paths.smb_conf, "-H", lab.paths.sam_ldb],
        check=True,
    )  # fmt: skip
    keys = {key for *_, key in keytab_keys(oracle, as_identity(None))}
    assert keys
    env = as_identity("worker1")
    proc = subprocess.Popen(
        [*CREDO, "--debug", "run", "--as", SEED.gmsa, "--", "sh", "-c", "echo ready; exec sleep 30"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _wait_for_line(proc) == "ready"
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert children
        exposed = b""
        for pid in [proc.pid, *map(int, children)]:
            exposed += Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/environ").read_bytes()
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    haystack = (exposed + stderr.encode()).lower()
    for key in keys:
        assert key.encode() not in haystack
        assert bytes.fromhex(key) not in exposed
    assert b"krb5cc" in exposed  # the ccache path is there, the ticket is not


def test_bad_names_are_refused_before_any_ldap(as_identity: Env) -> None:
    for bad in ["svc*)(objectClass=*", "a\\b", "x" * 16, "svc\x01"]:
        proc = credo("gmsa", "show", bad, env=as_identity("worker1"))
        assert proc.returncode == 2, (bad, proc.stderr)
        assert "invalid managed service account name" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_legal_metacharacters_are_escaped_not_interpreted(as_identity: Env) -> None:
    # Parentheses are legal in an account name: escaped (RFC 4515) they match nothing, and the
    # filter stays well-formed instead of matching every gMSA.
    proc = credo("gmsa", "show", "a)(!(cn", env=as_identity("worker1"))
    assert proc.returncode == 6, proc.stderr
    assert "a)(!(cn$ does not exist" in proc.stderr


def test_missing_host_keytab(as_identity: Env, tmp_path: Path) -> None:
    env = as_identity("worker1") | {"CREDO_HOST_KEYTAB": str(tmp_path / "none.keytab")}
    proc = credo("gmsa", "test", SEED.gmsa, env=env)
    assert proc.returncode == 1
    assert f"host keytab {tmp_path / 'none.keytab'} is missing" in proc.stderr
    run_proc = credo("run", "--as", SEED.gmsa, "--", "true", env=env)
    assert run_proc.returncode == 3
    assert "is missing" in run_proc.stderr


def test_unreachable_dc_fails_within_the_timeout(as_identity: Env, lab_settings: LabSettings) -> None:
    import socket

    # A "DC" that accepts connections and never answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    try:
        started = time.monotonic()
        proc = credo(
            "gmsa", "test", SEED.gmsa, "--server", f"ldap://{lab_settings.dc_fqdn}:{port}", "--ldap-timeout", "2",
            env=as_identity("worker1"),
        )  # fmt: skip
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert proc.returncode == 1
    assert "no domain controller answered" in proc.stderr
    assert elapsed < 20  # bounded by the timeout, not by TCP's minutes


def test_confidentiality_is_required(lab: Lab, as_identity: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over an integrity-only connection the DC refuses to hand out the password."""
    from credo.ad.connection import DirectoryOptions, connect
    from credo.errors import ConfidentialityRequired
    from credo.gmsa.retrieval import retrieve_managed_password
    from credo.krb.host import HostIdentity

    env = as_identity("worker1")
    monkeypatch.setenv("KRB5_CONFIG", env["KRB5_CONFIG"])
    host = HostIdentity.resolve(env["CREDO_HOST_KEYTAB"], env["CREDO_HOST_PRINCIPAL"])
    ticket = host.acquire()
    directory = connect(DirectoryOptions(urls=(env["CREDO_LDAP_URL"],), require_sealing=False), ticket.ccache)
    with pytest.raises(ConfidentialityRequired) as caught:
        retrieve_managed_password(directory, SEED.gmsa)
    assert "not confidential" in caught.value.message
    assert os.environ.get("KRB5CCNAME") != ticket.ccache  # the caller's variable was restored
