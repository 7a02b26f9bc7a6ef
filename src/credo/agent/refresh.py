"""One refresh of one account: retrieve the password, write its outputs, keep its keys in memory.

Order matters for "refresh without gaps": every output is written to a temp file and renamed into
place (a crash leaves the old file, never a torn one), keytabs hold the current keys and the
previous ones (kvno and kvno-1, kept from the old file when the DC no longer returns them), and
the in-memory keys that serve the socket are swapped only after the outputs are in place. Any
failure leaves the last good outputs and keys untouched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import select
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from credo.ad.connection import DEFAULT_TIMEOUT
from credo.ad.discovery import parse_urls, resolve_dc_urls
from credo.ad.names import escape_filter_value
from credo.agent.config import AccountConfig, CcacheOutput, DirectoryConfig, Hook
from credo.errors import CredoError, EnvironmentProblem, InputError, UnreachableError
from credo.gmsa.credentials import AES_ENCTYPES, gmsa_keytab
from credo.gmsa.operations import KeptKeys, usable_password, write_password_keytab
from credo.gmsa.retrieval import ManagedPassword
from credo.gmsa.session import HostSession, SessionSettings
from credo.krb.tgt import (
    MemoryKeytab,
    Ticket,
    acquire_tgt,
    copy_ccache,
    destroy_ccache,
    new_memory_ccache_name,
)

__all__ = [
    "AccountKeys",
    "Cause",
    "RefreshResult",
    "SpnCollision",
    "cause_of",
    "refresh_account",
    "session_settings",
]

log = logging.getLogger(__name__)


class SpnCollision(InputError):
    """An SPN to put in a keytab is registered on another account: tickets for it use other keys."""


@dataclass(frozen=True)
class Cause:
    """A failure's named cause, as ``credo agent status`` and the metrics show it."""

    name: str
    message: str
    hint: str | None


# Error class name -> cause. Order of the checks below: the most specific first.
_CAUSES = {
    "ClockSkew": "clock-skew",
    "TlsCertificateRejected": "ldaps-certificate-rejected",
    "NotPermittedToRetrieve": "not-permitted",
    "AccountDisabled": "account-disabled",
    "NoPasswordReturned": "no-kds-root-key",
    "UnreachableError": "dc-unreachable",
    "ConfidentialityRequired": "not-confidential",
    "SpnCollision": "spn-collision",
    "NotFoundError": "account-not-found",
}


def cause_of(exc: CredoError) -> Cause:
    """Name what went wrong, with the fix the error carries (``credo gmsa test``'s vocabulary)."""
    name = next((c for k, c in _CAUSES.items() if any(t.__name__ == k for t in type(exc).__mro__)), "error")
    hint = exc.hint
    # A skew can also surface inside a GSSAPI bind (LDAP), where MIT's own text is all there is.
    if name in ("error", "not-permitted") and "clock skew" in exc.message.lower():
        name = "clock-skew"
        hint = "synchronise the clock (chrony/ntpd) with the domain controllers"
    return Cause(name, exc.message, hint)


def session_settings(directory: DirectoryConfig) -> SessionSettings:
    return SessionSettings(
        host_keytab=directory.host_keytab,
        host_principal=directory.host_principal,
        server=",".join(directory.servers) or None,
        ca_file=directory.ca_file,
        starttls=directory.starttls,
        timeout=directory.ldap_timeout or DEFAULT_TIMEOUT,
    )


@dataclass
class AccountKeys:
    """The account's current keys (never its password) and a TGT made with them, in memory.

    ``kept`` holds every key version the DC returned (kvno, kvno-1, kvno+1 inside the
    pre-rotation window) for the socket's ``keytab`` operation; the MemoryKeytab only the keys
    the KDC accepts now, for the TGTs.
    """

    principal: str
    kvno: int
    keytab: MemoryKeytab = field(repr=False)
    ccache: str = field(repr=False)
    ticket_end: datetime | None = None
    kept: KeptKeys | None = field(default=None, repr=False)

    def carrying(self, older: AccountKeys | None) -> AccountKeys:
        """Keep ``older``'s kvno-1 keys when the DC left the previous password out this time, as
        the keytab outputs keep them from their old file."""
        if self.kept is not None and older is not None:
            self.kept = self.kept.carrying(older.kept)
        return self

    def close(self) -> None:
        destroy_ccache(self.ccache)
        self.keytab.close()

    def ticket(self, ccache: str, lifetime: int | None = None) -> Ticket | None:
        """Copy the TGT into ``ccache``, or with ``lifetime`` get one that ends that soon."""
        if lifetime is None:
            copy_ccache(self.ccache, ccache)
            return None
        return acquire_tgt(self.keytab.name, self.principal, ccache, lifetime=lifetime, renewable=False)


@dataclass(frozen=True)
class RefreshResult:
    keys: AccountKeys
    kvno: int  # msDS-KeyVersionNumber: the key the KDC uses now
    key_kvnos: tuple[int, ...]  # the keys written, newest first (kvno+1 inside the window)
    refresh_after: datetime
    next_rotation: datetime
    dc: str
    outputs: tuple[str, ...]


def _retrieve(account: AccountConfig, settings: SessionSettings) -> tuple[ManagedPassword, str, str, str]:
    """The account's password (and the realm, DNS domain and DC it came from), with its keytab
    outputs' SPNs checked. A DC that fails after the bind (stops answering, busy, unavailable) is
    left for the next one, as ``connect`` leaves one that fails before: the issue's "a DC that
    fails (refused, timeout, LDAP error) is skipped and the next tried". Answers such as "not
    permitted" or "disabled" are the domain's, the same on every DC, and stop at once."""
    servers = list(parse_urls(settings.server)) if settings.server else []
    while True:
        with HostSession(settings) as session:
            url = session.directory.url
            try:
                password = usable_password(session, account.name)
                for out in account.keytabs:
                    _check_spns(session, f"{account.name}$", out.spns)
                return password, session.realm, session.dns_domain, url
            except UnreachableError as exc:
                if not servers:  # from DNS SRV: the same list HostSession tried
                    with contextlib.suppress(CredoError):  # no list: the DC's own error stands
                        servers = list(
                            resolve_dc_urls(
                                None, session.realm.lower(), timeout=settings.timeout, flags=settings.flags
                            )
                        )
                rest = servers[servers.index(url) + 1 :] if url in servers else []
                if not rest:
                    raise
                log.warning(
                    "%s: %s failed after the bind (%s); trying %s", account.name, url, exc.message, rest[0]
                )
                servers = rest
                settings = replace(settings, server=",".join(rest))


def refresh_account(account: AccountConfig, settings: SessionSettings, work_dir: Path) -> RefreshResult:
    """Retrieve the password of ``account``, write its outputs, return its new in-memory keys."""
    password, realm, dns_domain, dc = _retrieve(account, settings)
    written: list[str] = []
    for keytab in account.keytabs:
        write_password_keytab(
            password, realm, dns_domain, keytab.path, spns=keytab.spns, uid=keytab.uid, gid=keytab.gid,
            mode=keytab.mode, enctypes=keytab.enctypes,
        )  # fmt: skip
        written.append(str(keytab.path))
    principal = f"{password.account.sam_account_name}@{realm}"
    held = tuple(dict.fromkeys((*AES_ENCTYPES, *(e for out in account.keytabs for e in out.enctypes))))
    try:
        kept: KeptKeys | None = KeptKeys.of(password, realm, dns_domain, held)
    except InputError:
        kept = None  # the account allows none of them: no keytab from the socket
    memory = gmsa_keytab(password, realm, dns_domain, salt=kept.material.salt if kept else None)
    ccache = new_memory_ccache_name("agent")
    try:
        ticket = acquire_tgt(memory.name, principal, ccache)
        keys = AccountKeys(principal, password.kvno, memory, ccache, ticket.end, kept)
        for output in account.ccaches:
            write_ccache_file(keys, output, work_dir)
            written.append(str(output.path))
    except BaseException:
        destroy_ccache(ccache)
        memory.close()
        raise
    key_kvnos = tuple(kvno for kvno, _ in password.password_versions())
    return RefreshResult(
        keys, password.kvno, key_kvnos, password.refresh_after, password.next_rotation, dc, tuple(written)
    )


def _check_spns(session: HostSession, sam: str, spns: tuple[str, ...]) -> None:
    """Refuse an SPN that another account carries (the KDC would encrypt its tickets with that
    account's keys, so a keytab of ours could never accept them)."""
    directory = session.directory
    for spn in spns:
        found = directory.search(
            directory.base_dn, 2, f"(servicePrincipalName={escape_filter_value(spn)})", ["sAMAccountName"]
        )
        owners = [attrs.get("sAMAccountName", [b"?"])[0].decode() for _, attrs in found]
        others = [o for o in owners if o.lower() != sam.lower()]
        if others:
            raise SpnCollision(
                f"SPN {spn} is registered on {', '.join(others)}, not on {sam}: tickets for it would not "
                "decrypt with this keytab",
                hint=f"move it: setspn -D {spn} {others[0]}; setspn -S {spn} {sam} (or samba-tool spn)",
            )


def write_ccache_file(keys: AccountKeys, output: CcacheOutput, work_dir: Path) -> None:
    """Write the account's TGT to ``output.path`` atomically, owned by its user, 0600."""
    directory = output.path.parent
    directory.mkdir(parents=True, exist_ok=True, mode=0o755)
    tmp = directory / f".{output.path.name}.credo-{secrets.token_hex(6)}"
    try:
        keys.ticket(f"FILE:{tmp}")
        fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchown(fd, output.uid, output.gid)
            os.fchmod(fd, 0o600)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, output.path)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write ccache {output.path}: {exc.strerror}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def ccache_bytes(keys: AccountKeys, work_dir: Path, lifetime: int | None = None) -> bytes:
    """The account's TGT as the bytes of a FILE ccache (for a caller's descriptor)."""
    fd, name = tempfile.mkstemp(prefix="cc-", dir=work_dir)
    os.close(fd)
    try:
        os.unlink(name)  # krb5 creates it again with O_EXCL and 0600
        keys.ticket(f"FILE:{name}", lifetime)
        with open(name, "rb") as handle:
            return handle.read()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def run_hook(hook: Hook, account: str, kvno: int, previous: int | None) -> int | None:
    """Run a rotation hook (argv, no shell) with a timeout; its exit status, None on timeout."""
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "CREDO_ACCOUNT": account,
        "CREDO_KVNO": str(kvno),
        "CREDO_PREVIOUS_KVNO": "" if previous is None else str(previous),
    }
    try:
        proc = subprocess.Popen(
            list(hook.argv), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        log.warning("hook %s for %s: cannot run it: %s", hook.argv[0], account, exc.strerror)
        return None
    # Wait on a pidfd, not Popen.wait(timeout): that polls with time.sleep, which fails under the
    # rotation tests' libfaketime (credo.lab.clock); a pidfd turns readable when the child exits.
    with contextlib.closing(_PidFd(proc.pid)) as pidfd:
        if not select.select([pidfd.fd], [], [], hook.timeout)[0]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            log.warning("hook %s for %s: timed out after %g s", hook.argv[0], account, hook.timeout)
            return None
    returncode = proc.wait()
    log.info("hook %s for %s (kvno %d): exit %d", hook.argv[0], account, kvno, returncode)
    return returncode


class _PidFd:
    def __init__(self, pid: int) -> None:
        self.fd = os.pidfd_open(pid)

    def close(self) -> None:
        os.close(self.fd)


def private_work_dir(base: Path) -> Path:
    """A 0700 directory for the agent's temp ccaches (removed and made again at start)."""
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True, mode=0o700)
    os.chmod(base, 0o700)
    return base


def utcnow() -> datetime:
    return datetime.now(UTC)
