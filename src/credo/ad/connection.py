"""A confidential LDAP connection to a domain controller, authenticated with Kerberos.

Two transports, both confidential (the DC returns secret attributes such as msDS-ManagedPassword
only over one, MS-ADTS 3.1.1.4.4):
- ``ldap://``: SASL GSSAPI with sealing (SSF >= 56 required; RFC 4752, MS-ADTS 5.1.1.1.2);
- ``ldaps://`` or ``ldap://`` with StartTLS: TLS validated against the configured CA, then SASL
  GSSAPI without a security layer, bound to the TLS channel (tls-endpoint channel binding, which
  Samba and Windows DCs with LDAP channel binding enforced require; set up in ``credo.ad``).

GSSAPI credentials come from a ccache credo names (``MEMORY:credo-...``): the name is put into
KRB5CCNAME only for the duration of the bind, under a lock, and the caller's variable is restored.
python-ldap needs SASL_NOCANON so that the service ticket is for ``ldap/<name in the URL>``
rather than for a reverse-resolved name (samba-lab.md).

LDAP errors are translated here into credo's errors. libldap built with GnuTLS (Debian's) says
only "(unknown error code)" when it rejects a DC's certificate, so a failed TLS connection is
probed once more with Python's ssl and the same CA to name the cause.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import ldap
import ldap.controls
import ldap.sasl
from ldap.controls import SimplePagedResultsControl

from credo.ad.discovery import DEFAULT_FLAGS, DirectoryFlags
from credo.ad.names import escape_filter_value
from credo.errors import (
    ConfidentialityRequired,
    CredoError,
    InputError,
    NotFoundError,
    NotPermittedError,
    UnreachableError,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "SD_FLAGS_DACL",
    "SD_FLAGS_OWNER_GROUP_DACL",
    "SD_FLAGS_SACL",
    "Directory",
    "DirectoryOptions",
    "Entry",
    "TlsCertificateRejected",
    "connect",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
# A sealed GSSAPI layer has an SSF of 56 or more (RFC 4422 3.8 leaves the scale to the mechanism;
# Cyrus reports 56 for DES-era "confidentiality" and 256 for AES).
SSF_SEALED = 56

_env_lock = threading.Lock()

# LDAP_SERVER_SD_FLAGS_OID (MS-ADTS 3.1.1.3.4.1.11): which parts of nTSecurityDescriptor a search
# returns. Without it the DC returns the SACL too, which needs SeSecurityPrivilege, and a plain
# user gets no descriptor at all.
SD_FLAGS_OID = "1.2.840.113556.1.4.801"
SD_FLAGS_DACL = 0x4
SD_FLAGS_OWNER_GROUP_DACL = 0x1 | 0x2 | 0x4
# The SACL: read and written only with SeSecurityPrivilege (Domain Admins); others get nothing.
SD_FLAGS_SACL = 0x8
# Samba and Windows return at most MaxPageSize (1000) entries per page (MS-ADTS 3.1.1.3.4.6).
PAGE_SIZE = 1000

Entry = tuple[str, dict[str, list[bytes]]]

# An LDAP StartTLS ExtendedRequest, message ID 1 (RFC 4511 4.14.1; BER, X.690):
# SEQUENCE { INTEGER 1, [APPLICATION 23] { [0] "1.3.6.1.4.1.1466.20037" } }.
_STARTTLS_REQUEST = bytes.fromhex("301d020101771880") + bytes([22]) + b"1.3.6.1.4.1.1466.20037"


class TlsCertificateRejected(UnreachableError):
    """No DC answered, and at least one because its TLS certificate did not verify."""


@dataclass(frozen=True)
class DirectoryOptions:
    """How to reach the directory. ``urls`` are tried in order until one answers."""

    urls: tuple[str, ...]
    ca_file: str | None = None
    starttls: bool = False
    timeout: float = DEFAULT_TIMEOUT
    flags: DirectoryFlags = DEFAULT_FLAGS
    # Only for tests that prove the DC refuses secrets over an integrity-only connection.
    require_sealing: bool = field(default=True, repr=False)


@contextlib.contextmanager
def _ccache_in_env(ccache: str | None) -> Iterator[None]:
    if ccache is None:
        yield
        return
    with _env_lock:
        previous = os.environ.get("KRB5CCNAME")
        os.environ["KRB5CCNAME"] = ccache
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("KRB5CCNAME", None)
            else:
                os.environ["KRB5CCNAME"] = previous


def _uses_tls(url: str, options: DirectoryOptions) -> bool:
    return url.lower().startswith("ldaps://") or options.starttls


def _describe(exc: ldap.LDAPError) -> str:
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    desc = str(info.get("desc", type(exc).__name__))
    extra = str(info.get("info", "")).strip()
    return f"{desc}: {extra}" if extra else desc


class Directory:
    """An authenticated, confidential LDAP session to one DC."""

    def __init__(self, conn: Any, url: str, options: DirectoryOptions) -> None:
        self._conn = conn
        self.url = url
        self.options = options
        self._root_dse: dict[str, list[bytes]] | None = None
        self._netbios: str | None = None

    def __repr__(self) -> str:
        return f"Directory(url={self.url!r})"

    def __enter__(self) -> Directory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(ldap.LDAPError):
            self._conn.unbind_s()

    @property
    def root_dse(self) -> dict[str, list[bytes]]:
        if self._root_dse is None:
            entries = self.search("", ldap.SCOPE_BASE, "(objectClass=*)", ["*", "+"])
            self._root_dse = entries[0][1] if entries else {}
        return self._root_dse

    def _root_value(self, name: str) -> str:
        values = self.root_dse.get(name) or [b""]
        return values[0].decode()

    @property
    def base_dn(self) -> str:
        return self._root_value("defaultNamingContext")

    @property
    def configuration_dn(self) -> str:
        return self._root_value("configurationNamingContext")

    @property
    def dns_host_name(self) -> str:
        return self._root_value("dnsHostName")

    @property
    def netbios_name(self) -> str:
        """The domain's NetBIOS name (CORP), from its crossRef in CN=Partitions (MS-ADTS 6.1.1.2.1.1.5)."""
        if self._netbios is None:
            entry = self.search_one(
                f"CN=Partitions,{self.configuration_dn}",
                ldap.SCOPE_ONELEVEL,
                f"(&(objectClass=crossRef)(nCName={escape_filter_value(self.base_dn)}))",
                ["nETBIOSName"],
            )
            values = entry[1].get("nETBIOSName") if entry else None
            self._netbios = values[0].decode() if values else self.base_dn.split(",")[0].split("=")[1].upper()
        return self._netbios

    def whoami(self) -> str:
        try:
            return str(self._conn.whoami_s())
        except ldap.LDAPError as exc:
            raise _translate(exc, "who am I") from exc

    def search(
        self,
        base: str,
        scope: int,
        filterstr: str,
        attrs: Sequence[str] | None = None,
        *,
        sd_flags: int | None = None,
    ) -> list[Entry]:
        """Search and return (dn, attributes) pairs, without referrals.

        ``sd_flags`` asks for those parts of nTSecurityDescriptor (``SD_FLAGS_DACL``...).
        """
        try:
            results = self._conn.search_ext_s(
                base,
                scope,
                filterstr,
                list(attrs) if attrs else None,
                serverctrls=_sd_controls(sd_flags),
                timeout=self.options.timeout,
            )
        except ldap.NO_SUCH_OBJECT:
            return []
        except ldap.LDAPError as exc:
            raise _translate(exc, f"search under {base or 'the root DSE'}") from exc
        return [(dn, attrs) for dn, attrs in results if dn is not None and isinstance(attrs, dict)]

    def search_paged(
        self,
        base: str,
        scope: int,
        filterstr: str,
        attrs: Sequence[str] | None = None,
        *,
        sd_flags: int | None = None,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[Entry]:
        """Like ``search``, for result sets larger than the DC's MaxPageSize (RFC 2696 paging)."""
        paging = SimplePagedResultsControl(True, size=page_size, cookie="")
        while True:
            try:
                msgid = self._conn.search_ext(
                    base,
                    scope,
                    filterstr,
                    list(attrs) if attrs else None,
                    serverctrls=[*_sd_controls(sd_flags), paging],
                    timeout=self.options.timeout,
                )
                _type, results, _msgid, controls = self._conn.result3(msgid, timeout=self.options.timeout)
            except ldap.NO_SUCH_OBJECT:
                return
            except ldap.LDAPError as exc:
                raise _translate(exc, f"search under {base or 'the root DSE'}") from exc
            for dn, entry in results:
                if dn is not None and isinstance(entry, dict):
                    yield dn, entry
            cookie = next(
                (c.cookie for c in controls if c.controlType == SimplePagedResultsControl.controlType), b""
            )
            if not cookie:
                return
            paging.cookie = cookie

    def add(self, dn: str, attrs: dict[str, list[bytes]]) -> None:
        try:
            self._conn.add_ext_s(dn, list(attrs.items()))
        except ldap.LDAPError as exc:
            raise _translate(exc, f"create {dn}") from exc

    def delete(self, dn: str, *, tree: bool = False) -> None:
        """Delete ``dn`` (with ``tree``, its children too: LDAP_SERVER_TREE_DELETE_OID)."""
        controls = [ldap.controls.LDAPControl("1.2.840.113556.1.4.805", True, None)] if tree else None
        try:
            self._conn.delete_ext_s(dn, serverctrls=controls)
        except ldap.LDAPError as exc:
            raise _translate(exc, f"delete {dn}") from exc

    def search_one(
        self, base: str, scope: int, filterstr: str, attrs: Sequence[str] | None = None
    ) -> Entry | None:
        entries = self.search(base, scope, filterstr, attrs)
        return entries[0] if entries else None

    def modify(
        self, dn: str, changes: list[tuple[int, str, list[bytes] | None]], *, sd_flags: int | None = None
    ) -> None:
        """Apply ``changes``; ``sd_flags`` says which parts of an nTSecurityDescriptor are written."""
        try:
            self._conn.modify_ext_s(dn, changes, serverctrls=_sd_controls(sd_flags) or None)
        except ldap.LDAPError as exc:
            raise _translate(exc, f"modify {dn}") from exc


def _sd_controls(sd_flags: int | None) -> list[Any]:
    if sd_flags is None:
        return []
    # SDFlagsRequestValue ::= SEQUENCE { Flags INTEGER } (BER, MS-ADTS 3.1.1.3.4.1.11).
    value = bytes([0x30, 0x03, 0x02, 0x01, sd_flags])
    return [ldap.controls.LDAPControl(SD_FLAGS_OID, True, encodedControlValue=value)]


def _translate(exc: ldap.LDAPError, action: str) -> CredoError:
    text = _describe(exc)
    # Windows answers confidentialityRequired (13); Samba an operations error that says so.
    if isinstance(exc, ldap.CONFIDENTIALITY_REQUIRED) or "requires an encrypted connection" in text:
        return ConfidentialityRequired(
            f"the DC refused to {action} over a connection that is not confidential ({text})",
            hint="use LDAP with GSSAPI sealing, or LDAPS/StartTLS",
        )
    if isinstance(exc, ldap.INSUFFICIENT_ACCESS | ldap.STRONG_AUTH_REQUIRED):
        return NotPermittedError(
            f"the DC refused to {action}: insufficient rights ({text})",
            hint="act as an identity with the right (kinit as an administrator, or --keytab/--principal)",
        )
    if isinstance(exc, ldap.FILTER_ERROR):
        return InputError(f"invalid LDAP filter in {action} ({text})", hint="see RFC 4515 for the syntax")
    if isinstance(exc, ldap.ALREADY_EXISTS):
        return InputError(f"cannot {action}: it already exists")
    if isinstance(exc, ldap.NO_SUCH_OBJECT):
        return NotFoundError(f"cannot {action}: no such object ({text})")
    if isinstance(exc, ldap.CONSTRAINT_VIOLATION | ldap.UNWILLING_TO_PERFORM | ldap.OBJECT_CLASS_VIOLATION):
        return InputError(f"the DC refused to {action}: {text}")
    if isinstance(exc, ldap.SERVER_DOWN | ldap.TIMEOUT | ldap.CONNECT_ERROR):
        return UnreachableError(f"the DC stopped answering during {action}: {text}")
    # busy (51) and unavailable (52): this DC cannot serve now, another of the domain may
    # (callers that hold a list of DCs, such as the agent, move on to the next).
    if isinstance(exc, ldap.BUSY | ldap.UNAVAILABLE):
        return UnreachableError(f"the DC could not serve {action}: {text}")
    return CredoError(f"LDAP error during {action}: {text}")


def _open(url: str, options: DirectoryOptions, ccache: str | None) -> Any:
    conn = ldap.initialize(url, bytes_mode=False)
    conn.set_option(ldap.OPT_REFERRALS, 0)
    conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, options.timeout)
    conn.set_option(ldap.OPT_TIMEOUT, options.timeout)
    conn.set_option(ldap.OPT_X_SASL_NOCANON, 1)
    tls = _uses_tls(url, options)
    if tls:
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        if options.ca_file:
            conn.set_option(ldap.OPT_X_TLS_CACERTFILE, options.ca_file)
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        if options.starttls and not url.lower().startswith("ldaps://"):
            conn.start_tls_s()
        # TLS already protects the session: no SASL layer inside it, but bind GSSAPI to the channel.
        conn.set_option(ldap.OPT_X_SASL_SSF_MAX, 0)
    elif options.require_sealing:
        conn.set_option(ldap.OPT_X_SASL_SSF_MIN, SSF_SEALED)
    else:
        conn.set_option(ldap.OPT_X_SASL_SSF_MAX, 1)  # integrity only: tests of the DC's refusal
    with _ccache_in_env(ccache):
        conn.sasl_interactive_bind_s("", ldap.sasl.sasl({}, "GSSAPI"))
    return conn


def connect(options: DirectoryOptions, ccache: str | None = None) -> Directory:
    """Bind to the first DC in ``options.urls`` that answers, as the principal in ``ccache``.

    Connection failures (refused, timed out, TLS) and a bind the DC could not serve (busy,
    unavailable, unwilling, an internal error) move on to the next URL; authentication failures
    stop at once, since another DC of the same domain would refuse the same way.
    """
    if not options.urls:
        raise UnreachableError(
            "no domain controller to connect to", hint=f"give {options.flags.server} or set CREDO_LDAP_URL"
        )
    failures: list[str] = []
    certificate_rejected = False
    unreached = 0  # DCs that did not answer (vs. answered a bind they could not serve)
    for url in options.urls:
        try:
            conn = _open(url, options, ccache)
        except (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR) as exc:
            reason = _describe(exc)
            if isinstance(exc, ldap.TIMEOUT) or "Timed out" in reason or "timed out" in reason:
                reason = f"no answer within {options.timeout:g} s"
            elif _uses_tls(url, options) and (rejected := _certificate_rejection(url, options)):
                reason = f"TLS certificate rejected: {rejected}"
                certificate_rejected = True
            log.debug("LDAP %s failed: %s", url, reason)
            failures.append(f"{url} ({reason})")
            unreached += 1
            continue
        except (
            ldap.BUSY,
            ldap.UNAVAILABLE,
            ldap.UNWILLING_TO_PERFORM,
            ldap.OTHER,
            ldap.ADMINLIMIT_EXCEEDED,
        ) as exc:
            # The DC answered but could not serve the bind: a server-side state (overloaded,
            # shutting down, a database error), not a verdict on our identity, so the next DC
            # may well serve it.
            reason = f"LDAP error on bind: {_describe(exc)}"
            log.debug("LDAP %s failed: %s", url, reason)
            failures.append(f"{url} ({reason})")
            continue
        except ldap.LDAPError as exc:
            text = _describe(exc)
            if "Server not found in Kerberos database" in text:
                raise CredoError(
                    f"cannot authenticate to {url}: the KDC has no ldap/ service for that name ({text})",
                    hint="use the DC's fully qualified name in the URL",
                ) from exc
            raise NotPermittedError(f"cannot authenticate to {url}: {text}") from exc
        log.debug("LDAP bound to %s", url)
        return Directory(conn, url, options)
    if certificate_rejected:
        raise TlsCertificateRejected(
            "no domain controller answered: " + "; ".join(failures),
            hint="give the CA that signed the DCs' certificates (--ca-file, CREDO_CA_FILE; the agent's "
            "[directory] ca_file), and a URL with the name the certificate carries",
        )
    if not unreached:
        # Every DC answered, none could serve the bind: saying "unreachable" and pointing at DNS
        # and the network would send the admin the wrong way; the DCs' own words say why.
        raise CredoError(
            "every domain controller answered but could not serve the bind: " + "; ".join(failures),
            hint="the DCs' logs say why (busy, shutting down, a database error); try again later",
        )
    raise UnreachableError(
        "no domain controller answered: " + "; ".join(failures),
        hint=f"check {options.flags.server} / CREDO_LDAP_URL, DNS and the network"
        f" ({options.flags.timeout} sets the wait)",
    )


def _certificate_rejection(url: str, options: DirectoryOptions) -> str | None:
    """Why ``url``'s certificate does not verify against ``options.ca_file`` (as OpenSSL says it,
    e.g. "self-signed certificate in certificate chain"), or None if it does or if the DC cannot
    be reached at all. Python's default context checks the chain and the host name, as libldap
    with TLS_REQCERT demand does."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    ldaps = parts.scheme.lower() == "ldaps"
    try:
        context = ssl.create_default_context(cafile=options.ca_file)
        with socket.create_connection((host, parts.port or (636 if ldaps else 389)), options.timeout) as raw:
            if not ldaps:
                raw.sendall(_STARTTLS_REQUEST)
                # The ExtendedResponse: resultCode success is ENUMERATED 0 (0a 01 00) after the ID.
                if b"\x0a\x01\x00" not in raw.recv(4096):
                    return None
            with context.wrap_socket(raw, server_hostname=host):
                return None
    except ssl.SSLCertVerificationError as exc:
        return str(exc.verify_message or exc.reason or exc)
    except (OSError, ValueError):
        return None
