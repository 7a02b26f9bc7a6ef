"""Initial tickets (AS exchange, RFC 4120 3.1) from a keytab into a credential cache, through MIT krb5.

Credentials go into caches that credo names itself (``MEMORY:credo-...`` for its own use, a
0600 ``FILE:`` cache in a private directory for a child process); the user's default ccache is
never read or written. Kerberos library errors are translated here, at one boundary, into
credo's errors with the KDC's reason kept.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import krb5

from credo.errors import CredoError, EnvironmentProblem, NotFoundError, NotPermittedError, UnreachableError

__all__ = [
    "ClockSkew",
    "MemoryKeytab",
    "Ticket",
    "acquire_tgt",
    "copy_ccache",
    "destroy_ccache",
    "kerberos_error",
    "keytab_principals",
    "new_memory_ccache_name",
]

# com_err codes of the MIT krb5 library (krb5_err.et), as returned in Krb5Error.err_code.
KDC_ERR_C_PRINCIPAL_UNKNOWN = -1765328378
KDC_ERR_CLIENT_REVOKED = -1765328366
KDC_ERR_KEY_EXPIRED = -1765328361
KDC_ERR_PREAUTH_FAILED = -1765328360
KDC_ERR_ETYPE_NOSUPP = -1765328370
KRB5KRB_AP_ERR_SKEW = -1765328347
KRB5_KDC_UNREACH = -1765328228
KRB5_REALM_UNKNOWN = -1765328230
KRB5_KT_NOTFOUND = -1765328203
KRB5_PREAUTH_FAILED = -1765328174
KRB5KRB_AP_ERR_BAD_INTEGRITY = -1765328353


class ClockSkew(EnvironmentProblem):
    """The KDC refused this host's timestamps (KRB5KRB_AP_ERR_SKEW, RFC 4120 5.9.1: off by more
    than its tolerance, 5 minutes by default). MIT clients correct for it themselves unless
    krb5.conf sets ``kdc_timesync = 0``."""


@dataclass(frozen=True)
class Ticket:
    """What credo reports about a TGT it obtained: never the ticket or its session key."""

    client: str
    ccache: str
    start: datetime
    end: datetime
    renew_till: datetime | None = None


def new_memory_ccache_name(purpose: str) -> str:
    """A process-private in-memory ccache name (``MEMORY:credo-<purpose>-<random>``)."""
    return f"MEMORY:credo-{purpose}-{secrets.token_hex(8)}"


def kerberos_error(exc: krb5.Krb5Error, principal: str) -> CredoError:
    """Translate a krb5 library error about ``principal`` into a credo error that says what to do."""
    code = exc.err_code
    text = str(exc)
    if code == KRB5_KDC_UNREACH:
        return UnreachableError(
            f"no KDC answered for {principal}: {text}", hint="check KRB5_CONFIG and the network"
        )
    if code == KDC_ERR_C_PRINCIPAL_UNKNOWN:
        return NotFoundError(f"the KDC does not know {principal}")
    if code == KDC_ERR_CLIENT_REVOKED:
        return NotPermittedError(f"the KDC refused {principal}: the account is disabled or locked ({text})")
    if code in (KDC_ERR_PREAUTH_FAILED, KRB5_PREAUTH_FAILED, KRB5KRB_AP_ERR_BAD_INTEGRITY):
        return NotPermittedError(f"the KDC rejected the keys of {principal}: {text}")
    if code == KRB5KRB_AP_ERR_SKEW:
        return ClockSkew(
            f"clock skew too great between this host and the KDC for {principal}",
            hint="synchronise the clock (chrony/ntpd) with the domain controllers",
        )
    if code == KRB5_REALM_UNKNOWN:
        return EnvironmentProblem(f"unknown realm for {principal}: {text}", hint="check KRB5_CONFIG")
    return CredoError(f"Kerberos error for {principal}: {text}")


def acquire_tgt(
    keytab: str, principal: str, ccache: str, *, lifetime: int | None = None, renewable: bool = True
) -> Ticket:
    """Obtain a TGT for ``principal`` with the keys in ``keytab`` and store it in ``ccache``.

    ``keytab`` and ``ccache`` are krb5 names (``FILE:/path``, ``MEMORY:name``). The cache is
    (re)initialised for the client name the KDC returns. ``lifetime`` (seconds) asks for an end
    time that soon (RFC 4120 3.1.1: the KDC grants the smaller of it and its policy);
    ``renewable=False`` asks for no renew-till at all, whatever krb5.conf's ``renew_lifetime``
    says (MIT only sets KDC_OPT_RENEWABLE for a renew life above 0).
    """
    ctx = krb5.init_context()
    try:
        client = krb5.parse_name_flags(ctx, principal.encode())
        kt = krb5.kt_resolve(ctx, keytab.encode())
        opt = krb5.get_init_creds_opt_alloc(ctx)
        if lifetime is not None:
            krb5.get_init_creds_opt_set_tkt_life(opt, lifetime)
        if not renewable:
            krb5.get_init_creds_opt_set_renew_life(opt, 0)
        creds = krb5.get_init_creds_keytab(ctx, client, opt, kt)
        cache = krb5.cc_resolve(ctx, ccache.encode())
        krb5.cc_initialize(ctx, cache, creds.client)
        krb5.cc_store_cred(ctx, cache, creds)
    except krb5.Krb5Error as exc:
        # MIT reports a damaged keytab as a failed pre-authentication, as if the KDC had refused
        # the keys: read the keytab to put the fault where it is, on the local file.
        held = keytab_principals(keytab)
        if exc.err_code == KRB5_KT_NOTFOUND:
            raise EnvironmentProblem(
                f"keytab {_path(keytab)} holds no keys for {principal}",
                hint=f"it holds {', '.join(held) or 'no keys'}: write the keys of {principal} into it",
            ) from exc
        raise kerberos_error(exc, principal) from exc
    times = creds.times
    name = krb5.unparse_name_flags(ctx, creds.client).decode()
    return Ticket(
        client=name,
        ccache=ccache,
        start=datetime.fromtimestamp(times.starttime or times.authtime, UTC),
        end=datetime.fromtimestamp(times.endtime, UTC),
        renew_till=datetime.fromtimestamp(times.renew_till, UTC) if times.renew_till else None,
    )


@dataclass(eq=False)
class MemoryKeytab:
    """Keys in a process-private ``MEMORY:`` keytab, for AS exchanges without a file on disk.

    MIT keeps a MEMORY keytab while a handle to it is open: this object holds one until
    ``close``, which removes the entries. The keys never appear in the repr.
    """

    name: str
    _keytab: krb5.KeyTab = field(repr=False)
    _context: krb5.Context = field(repr=False)

    @classmethod
    def create(cls, principal: str, kvno: int, keys: Iterable[tuple[int, bytes]]) -> MemoryKeytab:
        """A fresh keytab with ``(enctype, key)`` pairs for ``principal`` at ``kvno``."""
        ctx = krb5.init_context()
        name = f"MEMORY:credo-keys-{secrets.token_hex(8)}"
        keytab = cls(name, krb5.kt_resolve(ctx, name.encode()), ctx)
        try:
            client = krb5.parse_name_flags(ctx, principal.encode())
            for enctype, key in keys:
                krb5.kt_add_entry(ctx, keytab._keytab, client, kvno, 0, krb5.init_keyblock(ctx, enctype, key))
        except krb5.Krb5Error as exc:
            keytab.close()
            raise kerberos_error(exc, principal) from exc
        return keytab

    def close(self) -> None:
        for entry in list(self._keytab):
            try:
                krb5.kt_remove_entry(self._context, self._keytab, entry)
            except krb5.Krb5Error:
                break


def keytab_principals(keytab: str) -> list[str]:
    """The principals ``keytab`` (a krb5 name, ``FILE:/path``) holds keys for, in file order.

    A file that is not a keytab, or a damaged one, is an EnvironmentProblem that names it.
    """
    ctx = krb5.init_context()
    hint = "it is not a Kerberos keytab, or is damaged: write it again (adcli, net ads, credo gmsa keytab)"
    try:
        entries = [
            krb5.unparse_name_flags(ctx, e.principal).decode() for e in krb5.kt_resolve(ctx, keytab.encode())
        ]
    except krb5.Krb5Error as exc:
        reason = str(exc).removesuffix(f" {exc.err_code}")
        raise EnvironmentProblem(f"keytab {_path(keytab)} is unusable: {reason}", hint=hint) from None
    except UnicodeDecodeError:
        # MIT keeps a name's components as any bytes; no AD principal has one that is not UTF-8.
        raise EnvironmentProblem(
            f"keytab {_path(keytab)} is unusable: a principal name in it is not UTF-8", hint=hint
        ) from None
    return list(dict.fromkeys(entries))


def _path(keytab: str) -> str:
    return keytab.removeprefix("FILE:")


def copy_ccache(source: str, destination: str) -> None:
    """Copy every credential of ``source`` into a fresh ``destination`` cache (e.g. MEMORY -> FILE)."""
    ctx = krb5.init_context()
    try:
        src = krb5.cc_resolve(ctx, source.encode())
        principal = krb5.cc_get_principal(ctx, src)
        dst = krb5.cc_resolve(ctx, destination.encode())
        krb5.cc_initialize(ctx, dst, principal)
        for creds in src:
            krb5.cc_store_cred(ctx, dst, creds)
    except krb5.Krb5Error as exc:
        raise CredoError(f"cannot copy credentials to {destination}: {exc}") from exc


def destroy_ccache(ccache: str) -> None:
    """Destroy a credential cache credo created (a missing one is fine)."""
    ctx = krb5.init_context()
    with contextlib.suppress(krb5.Krb5Error):
        krb5.cc_destroy(ctx, krb5.cc_resolve(ctx, ccache.encode()))
