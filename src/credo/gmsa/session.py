"""A host session: the computer account's TGT in a private in-memory ccache, and a confidential
directory connection made with it. Every gMSA operation starts from one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from credo.ad.connection import DEFAULT_TIMEOUT, Directory, DirectoryOptions, connect
from credo.ad.discovery import DEFAULT_FLAGS, DirectoryFlags, resolve_dc_urls
from credo.ad.names import dns_domain_of
from credo.krb.host import HostIdentity
from credo.krb.tgt import Ticket, destroy_ccache, new_memory_ccache_name

__all__ = ["HostSession", "SessionSettings"]


@dataclass(frozen=True)
class SessionSettings:
    """Where the host identity and the directory are (flags > environment > defaults)."""

    host_keytab: Path | None = None
    host_principal: str | None = None
    server: str | None = None
    ca_file: str | None = None
    starttls: bool = False
    timeout: float = DEFAULT_TIMEOUT
    flags: DirectoryFlags = DEFAULT_FLAGS


class HostSession:
    """Use as a context manager; ``close`` destroys the in-memory ccache and unbinds."""

    def __init__(self, settings: SessionSettings) -> None:
        self.settings = settings
        self.host = HostIdentity.resolve(settings.host_keytab, settings.host_principal)
        self.ccache = new_memory_ccache_name("host")
        self.ticket: Ticket = self.host.acquire(self.ccache)
        try:
            urls = resolve_dc_urls(
                settings.server, self.host.realm.lower(), timeout=settings.timeout, flags=settings.flags
            )
            options = DirectoryOptions(
                urls=urls,
                ca_file=settings.ca_file,
                starttls=settings.starttls,
                timeout=settings.timeout,
                flags=settings.flags,
            )
            self.directory: Directory = connect(options, self.ccache)
        except BaseException:
            destroy_ccache(self.ccache)
            raise

    @property
    def realm(self) -> str:
        return self.host.realm

    @property
    def dns_domain(self) -> str:
        """The AD DNS domain, from the naming context (DC=corp,DC=example,DC=test)."""
        return dns_domain_of(self.directory.base_dn) or self.realm.lower()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.directory.close()
        destroy_ccache(self.ccache)

    def __enter__(self) -> HostSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
