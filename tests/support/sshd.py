"""A private OpenSSH server on loopback for restricted endpoints' tests, and its client.

``Sshd.start`` runs Debian's ``/usr/sbin/sshd -D -e -f CONFIG -p PORT`` in the foreground on
127.0.0.1 only, with its own host key in a temporary directory and Kerberos (GSSAPI) as its only
way in: the keytab is the lab's ``DIR/hosts/worker1.sshd.keytab`` (host/worker1.<domain> on
WORKER1$), given to sshd as ``KRB5_KTNAME`` (sshd has no keytab option: MIT's acceptor reads the
variable, krb5_kt_default(3)). ``Sshd.ssh`` runs the OpenSSH client as a lab user with that
user's ccache (``credo lab env --user``) against ``worker1.<domain>``, which the lab resolves to
127.0.0.1 through /etc/hosts.

sshd_config choices (sshd_config(5)):
- ``GSSAPIStrictAcceptorCheck no``: with ``yes`` sshd accepts only host/<gethostname()>, and this
  machine's name is not worker1.<domain>; the keytab holds that one principal anyway.
- ``UsePAM no``: the fixture's users need no PAM stack (pam_loginuid fails in containers). sshd
  then refuses locked accounts ("!" in shadow), so the users get "*" (no password, not locked).
- Principal to user: MIT's krb5_kuserok with the lab krb5.conf as KRB5_CONFIG, so the default
  realm's auth_to_local maps jdoe@CORP.EXAMPLE.TEST to the local user jdoe (no .k5login).
- No forwarding, no agent, no X11, no user environment, no public keys or passwords; ``PermitTTY``
  yes so that ``ssh -tt`` gets a pseudo-terminal for an interactive session.

``local_users`` creates the Linux users sshd maps principals to (useradd, removed after): only
those that do not exist yet, and only those it made are removed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SSH = "/usr/bin/ssh"
PRIVSEP_DIR = Path(
    "/run/sshd"
)  # Debian's sshd refuses to start without it ("Missing privilege separation directory")
START_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def local_users(names: Sequence[str], home_root: Path) -> Iterator[dict[str, Path]]:
    """Local users ``names`` (shell /bin/sh, password "*", homes under ``home_root``); removed after."""
    created: list[str] = []
    homes: dict[str, Path] = {}
    try:
        for name in names:
            try:
                homes[name] = Path(pwd.getpwnam(name).pw_dir)
                continue  # someone else's user: use it, never remove it
            except KeyError:
                pass
            home = home_root / name
            subprocess.run(
                ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh",
                 "--password", "*", "--comment", "credo test user (tests/support/sshd.py)", name],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            created.append(name)
            home.mkdir(mode=0o755, parents=True, exist_ok=True)
            entry = pwd.getpwnam(name)
            os.chown(home, entry.pw_uid, entry.pw_gid)
            homes[name] = home
        yield homes
    finally:
        for name in reversed(created):
            subprocess.run(["userdel", name], capture_output=True, check=False)


@dataclass
class Sshd:
    """A running private sshd; ``stop()`` (or the context manager) ends it."""

    host: str  # the name clients connect to (resolves to 127.0.0.1), e.g. worker1.corp.example.test
    port: int
    directory: Path
    config: Path
    log: Path
    known_hosts: Path
    krb5_conf: Path
    process: subprocess.Popen[bytes]

    @classmethod
    def start(
        cls,
        *,
        host: str,
        keytab: Path,
        krb5_conf: Path,
        force_command: str | None,
        allow_users: Sequence[str],
        directory: Path | None = None,
        extra_config: Sequence[str] = (),
    ) -> Sshd:
        directory = Path(directory or tempfile.mkdtemp(prefix="credo-sshd-"))
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        host_key = directory / "ssh_host_ed25519_key"
        if not host_key.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"credo test sshd {host}", "-f", str(host_key)],
                check=True, capture_output=True,
            )  # fmt: skip
        port = free_port()
        lines = [
            "# Written by tests/support/sshd.py: a private sshd on loopback, Kerberos (GSSAPI) only.",
            "ListenAddress 127.0.0.1",
            f"HostKey {host_key}",
            "PidFile none",
            "UsePAM no",
            "GSSAPIAuthentication yes",
            "GSSAPICleanupCredentials yes",
            "GSSAPIStrictAcceptorCheck no",
            "KerberosAuthentication no",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication no",
            "HostbasedAuthentication no",
            "AuthorizedKeysFile none",
            "PermitRootLogin no",
            "PermitEmptyPasswords no",
            "PermitUserEnvironment no",
            "AllowTcpForwarding no",
            "AllowStreamLocalForwarding no",
            "AllowAgentForwarding no",
            "GatewayPorts no",
            "PermitTunnel no",
            "X11Forwarding no",
            "PermitTTY yes",
            "PrintMotd no",
            "PrintLastLog no",
            "MaxAuthTries 3",
            "LoginGraceTime 20",
            "LogLevel VERBOSE",
            f"AllowUsers {' '.join(allow_users)}",
            *extra_config,
        ]
        if force_command is not None:
            lines.append(f"ForceCommand {force_command}")
        config = directory / "sshd_config"
        config.write_text("\n".join(lines) + "\n")
        public = (directory / "ssh_host_ed25519_key.pub").read_text().split()
        known_hosts = directory / "known_hosts"
        known_hosts.write_text(f"[{host}]:{port} {public[0]} {public[1]}\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}
        env |= {"KRB5_CONFIG": str(krb5_conf), "KRB5_KTNAME": f"FILE:{keytab}"}
        checked = subprocess.run(
            [SSHD, "-t", "-f", str(config), "-p", str(port)], env=env, capture_output=True, text=True
        )
        if checked.returncode != 0:
            raise RuntimeError(f"sshd -t rejected {config}: {checked.stderr.strip()}")
        log = directory / "sshd.log"
        with open(log, "ab") as log_file:
            # -D: stay in the foreground (we own the process); -e: log to stderr, i.e. the log file.
            process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config), "-p", str(port)],
                env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
            )  # fmt: skip
        sshd = cls(host, port, directory, config, log, known_hosts, krb5_conf, process)
        sshd._wait_listening()
        return sshd

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"sshd exited with {self.process.returncode}: {self.log.read_text()[-2000:]}"
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not listen on 127.0.0.1:{self.port} within {START_TIMEOUT:.0f} s")

    def ssh_argv(self, user: str, *command: str, tty: bool = False) -> list[str]:
        """The client command line: GSSAPI only, no delegation, this server's host key only."""
        return [
            SSH, "-F", "/dev/null", "-p", str(self.port),
            "-o", "BatchMode=yes",
            "-o", "GSSAPIAuthentication=yes",
            "-o", "GSSAPIDelegateCredentials=no",
            "-o", "PreferredAuthentications=gssapi-with-mic",
            "-o", "PubkeyAuthentication=no",
            "-o", "PasswordAuthentication=no",
            "-o", "KbdInteractiveAuthentication=no",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "CheckHostIP=no",
            "-o", "ConnectTimeout=10",
            "-o", "LogLevel=ERROR",
            "-tt" if tty else "-T",
            f"{user}@{self.host}",
            *command,
        ]  # fmt: skip

    def client_env(self, ccache: str | None) -> dict[str, str]:
        """The client's environment: the lab krb5.conf, and ``ccache`` (None: no ticket at all)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}
        env["KRB5_CONFIG"] = str(self.krb5_conf)
        # An empty directory's ccache: no ticket, and never the caller's own default ccache.
        env["KRB5CCNAME"] = ccache or f"FILE:{self.directory}/no-such-ccache"
        return env

    def ssh(
        self,
        user: str,
        *command: str,
        ccache: str | None,
        tty: bool = False,
        input: str | None = None,
        timeout: float = 30,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.ssh_argv(user, *command, tty=tty),
            env=self.client_env(ccache),
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Sshd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
