"""An administrator's directory session: the caller's own Kerberos identity, never a password.

Where the identity comes from (flags > environment > defaults, docs/architecture.md):
- ``--keytab`` / ``--principal`` (CREDO_ADMIN_KEYTAB / CREDO_ADMIN_PRINCIPAL): a TGT is obtained
  with that keytab into a private in-memory ccache, destroyed when the session closes;
- otherwise the caller's ccache (KRB5CCNAME, or the default one after ``kinit admin``), which
  credo reads and never writes.

The connection is confidential as for a host session (GSSAPI sealing, or LDAPS/StartTLS with the
CA validated): administrators write security descriptors and read confidential attributes.
``credo account`` (lifecycle), ``credo kds`` and ``credo audit`` all start from one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import krb5

from credo.ad.connection import DEFAULT_TIMEOUT, Directory, DirectoryOptions, connect
from credo.ad.discovery import DEFAULT_FLAGS, DirectoryFlags, resolve_dc_urls
from credo.errors import EnvironmentProblem, InputError
from credo.krb.tgt import acquire_tgt, destroy_ccache, new_memory_ccache_name

__all__ = ["AdminSession", "AdminSettings"]

NO_CREDENTIALS_HINT = "run `kinit ADMIN@REALM` first, or give --keytab and --principal"


@dataclass(frozen=True)
class AdminSettings:
    """Who acts and which directory: a keytab and principal, or the caller's ccache."""

    keytab: Path | None = None
    principal: str | None = None
    server: str | None = None
    ca_file: str | None = None
    starttls: bool = False
    timeout: float = DEFAULT_TIMEOUT
    flags: DirectoryFlags = DEFAULT_FLAGS


class AdminSession:
    """A confidential directory connection as the administrator. Use as a context manager."""

    def __init__(self, settings: AdminSettings) -> None:
        self.settings = settings
        self._own_ccache: str | None = None
        if settings.keytab is not None or settings.principal is not None:
            if settings.keytab is None or settings.principal is None:
                raise InputError(
                    "--keytab and --principal go together", hint="give both, or neither to use your ccache"
                )
            if "@" not in settings.principal:
                raise InputError(
                    f"principal {settings.principal!r} has no realm", hint="write it as NAME@REALM"
                )
            if not settings.keytab.is_file():
                raise EnvironmentProblem(
                    f"keytab {settings.keytab} is missing", hint="give the path of an existing keytab"
                )
            self._own_ccache = new_memory_ccache_name("admin")
            acquire_tgt(f"FILE:{settings.keytab}", settings.principal, self._own_ccache)
            self.principal = settings.principal
        else:
            self.principal = _ccache_principal()
        try:
            realm = self.principal.rsplit("@", 1)[1]
            urls = resolve_dc_urls(
                settings.server, realm.lower(), timeout=settings.timeout, flags=settings.flags
            )
            options = DirectoryOptions(
                urls=urls,
                ca_file=settings.ca_file,
                starttls=settings.starttls,
                timeout=settings.timeout,
                flags=settings.flags,
            )
            self.directory: Directory = connect(options, self._own_ccache)
        except BaseException:
            self.close()
            raise

    @property
    def realm(self) -> str:
        return self.principal.rsplit("@", 1)[1]

    def close(self) -> None:
        if hasattr(self, "directory"):
            with contextlib.suppress(Exception):
                self.directory.close()
        if self._own_ccache is not None:
            destroy_ccache(self._own_ccache)
            self._own_ccache = None

    def __enter__(self) -> AdminSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ccache_principal() -> str:
    """The client principal of the caller's default ccache (KRB5CCNAME), or a clear error."""
    ctx = krb5.init_context()
    try:
        cache = krb5.cc_default(ctx)
        principal = krb5.cc_get_principal(ctx, cache)
    except krb5.Krb5Error as exc:
        raise EnvironmentProblem(
            f"no Kerberos credentials to act as an administrator ({exc})", hint=NO_CREDENTIALS_HINT
        ) from exc
    try:
        return str(krb5.unparse_name_flags(ctx, principal).decode())
    except UnicodeDecodeError:
        # MIT keeps a name's components as any bytes; no AD principal has one that is not UTF-8.
        raise EnvironmentProblem(
            "the client principal of your Kerberos credentials is not UTF-8", hint=NO_CREDENTIALS_HINT
        ) from None
