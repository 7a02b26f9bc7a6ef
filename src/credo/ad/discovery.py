"""Where the domain controllers are: given URLs, or DNS SRV records (MS-ADTS 6.3.6, RFC 2782).

``--server`` / CREDO_LDAP_URL may list several URLs (comma or space separated); otherwise the DCs
come from ``_ldap._tcp.dc._msdcs.<domain>`` ordered by priority, then weight. CREDO_DNS_SERVER
names the resolver to ask (the lab DC's own DNS, say); the system resolver is the default.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass

from credo.errors import InputError, UnreachableError

__all__ = ["DEFAULT_FLAGS", "DirectoryFlags", "discover_dc_urls", "parse_urls", "resolve_dc_urls"]


@dataclass(frozen=True)
class DirectoryFlags:
    """What the command at hand calls the directory options, for hints: ``credo worker`` names
    the DC ``--dc``, since its ``--server`` is the credo server."""

    server: str = "--server"
    timeout: str = "--ldap-timeout"


DEFAULT_FLAGS = DirectoryFlags()
_URL_RE = re.compile(r"^ldaps?://[A-Za-z0-9.\-\[\]:]+(:\d+)?/?$")


def parse_urls(value: str) -> tuple[str, ...]:
    """Split a comma/space separated URL list and validate each URL."""
    urls = tuple(part for part in re.split(r"[,\s]+", value.strip()) if part)
    for url in urls:
        if not _URL_RE.match(url):
            raise InputError(
                f"invalid LDAP URL {url!r}", hint="write ldap://dc1.example.com or ldaps://dc1.example.com"
            )
    return urls


def discover_dc_urls(
    domain: str, *, timeout: float = 10.0, scheme: str = "ldap", flags: DirectoryFlags = DEFAULT_FLAGS
) -> tuple[str, ...]:
    """URLs of the DCs of ``domain`` from its SRV records, best first (RFC 2782 order)."""
    # Imported here: dnspython costs ~0.1 s to import, and most runs name their DC.
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver()
    server = os.environ.get("CREDO_DNS_SERVER")
    if server:
        resolver.nameservers = [server]
    resolver.lifetime = timeout
    name = f"_ldap._tcp.dc._msdcs.{domain.lower().rstrip('.')}"
    try:
        answer = resolver.resolve(name, "SRV")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer) as exc:
        raise UnreachableError(
            f"no domain controller found: DNS has no SRV record {name}",
            hint=f"give {flags.server} ldap://DC-FQDN or set CREDO_LDAP_URL",
        ) from exc
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        raise UnreachableError(
            f"DNS did not answer for {name}: {exc}", hint="check the resolver (CREDO_DNS_SERVER)"
        ) from exc
    records = sorted(answer, key=lambda r: (r.priority, -r.weight * random.random()))  # noqa: S311 - load spreading
    default_port = 636 if scheme == "ldaps" else 389
    urls = []
    for record in records:
        host = str(record.target).rstrip(".")
        port = "" if record.port in (389, default_port) else f":{record.port}"
        urls.append(f"{scheme}://{host}{port}")
    return tuple(urls)


def resolve_dc_urls(
    server: str | None, domain: str, *, timeout: float = 10.0, flags: DirectoryFlags = DEFAULT_FLAGS
) -> tuple[str, ...]:
    """``--server`` > CREDO_LDAP_URL > DNS SRV discovery for ``domain``."""
    value = server or os.environ.get("CREDO_LDAP_URL")
    if value:
        return parse_urls(value)
    return discover_dc_urls(domain, timeout=timeout, flags=flags)
