"""Checks on what a managed service account is created or changed with, before anything is written.

The rules are those of New-/Set-ADServiceAccount and of the directory itself:
- NAME: a sAMAccountName of at most 15 characters before the ``$`` (MS-ADTS 3.1.1.3.1.1.1; the
  16-character limit of computer-like accounts), without the characters MS-SAMR forbids;
- DNSHostName: required for a gMSA; RFC 1123 host name syntax (labels of letters, digits and
  hyphens, at most 63 characters each, 255 in all);
- ManagedPasswordIntervalInDays (msDS-ManagedPasswordInterval): at least 1 day; set at creation
  only: New-ADServiceAccount documents it as read-only afterwards and Set-ADServiceAccount has no
  parameter for it, because the DC's password schedule (MS-GKDI key cycles) starts from it;
- KerberosEncryptionType: AES128/AES256; RC4 and DES only with an explicit opt-in;
- SPN: ``service/host[:port][/name]`` (MS-ADTS 2.2.21 / RFC 4120 name form), no spaces.
"""

from __future__ import annotations

import re

from credo.errors import InputError
from credo.krb.keys import ENCTYPE_BITS, enctype_names

__all__ = [
    "DEFAULT_ENCTYPES",
    "DEFAULT_INTERVAL_DAYS",
    "ENCTYPE_BITS",
    "WEAK_ENCTYPES",
    "enctype_names",
    "parse_account_enctypes",
    "validate_dns_host_name",
    "validate_interval",
    "validate_spn",
    "validate_spns",
]

DEFAULT_INTERVAL_DAYS = 30
_ALIASES = {"DES": "DES_CBC_MD5", "RC4_HMAC": "RC4", "RC4_HMAC_MD5": "RC4", "DES-CBC-CRC": "DES_CBC_CRC",
            "DES-CBC-MD5": "DES_CBC_MD5"}  # fmt: skip
WEAK_ENCTYPES = {"DES_CBC_CRC", "DES_CBC_MD5", "RC4"}
DEFAULT_ENCTYPES = ENCTYPE_BITS["AES128"] | ENCTYPE_BITS["AES256"]
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_SPN = re.compile(r"^[A-Za-z0-9][\w.-]*/[^/\s]+(:\d{1,5})?(/[^/\s]+)?$")


def parse_account_enctypes(value: str, *, allow_weak: bool = False) -> tuple[int, list[str]]:
    """``"AES128,AES256"`` -> (msDS-SupportedEncryptionTypes, warnings).

    RC4 and DES are refused unless ``allow_weak``; with it they are accepted with a warning.
    """
    bits = 0
    warnings: list[str] = []
    names = [part.strip().upper() for part in value.split(",") if part.strip()]
    if not names:
        raise InputError("no encryption type given", hint="use AES128 and/or AES256")
    for raw in names:
        name = _ALIASES.get(raw, raw)
        if name not in ENCTYPE_BITS:
            raise InputError(
                f"unknown encryption type {raw!r}", hint="use AES128, AES256 (RC4, DES only if you must)"
            )
        if name in WEAK_ENCTYPES:
            if not allow_weak:
                raise InputError(
                    f"encryption type {raw} is weak and refused",
                    hint="use AES128/AES256, or add --allow-weak-crypto if a legacy client needs it",
                )
            warnings.append(
                f"{name} is a weak encryption type: tickets for this account can be cracked offline"
            )
        bits |= ENCTYPE_BITS[name]
    return bits, warnings


def validate_dns_host_name(value: str | None) -> str:
    """A gMSA's dNSHostName: required, a syntactically valid fully qualified host name."""
    if not value:
        raise InputError(
            "a gMSA needs a DNS host name",
            hint="give --dns-host-name NAME.your.domain (New-ADServiceAccount -DNSHostName)",
        )
    name = value[:-1] if value.endswith(".") else value
    labels = name.split(".")
    if len(name) > 255 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InputError(
            f"invalid DNS host name {value!r}",
            hint="a fully qualified name of letters, digits and hyphens, such as svcweb.corp.example.com",
        )
    return name


def validate_interval(days: int | None) -> int:
    if days is None:
        return DEFAULT_INTERVAL_DAYS
    if days < 1:
        raise InputError(
            f"invalid password interval {days}: at least 1 day", hint="give --interval-days 1 or more"
        )
    if days > 0x7FFFFFFF:
        raise InputError(f"invalid password interval {days}: too large")
    return days


def validate_spn(value: str) -> str:
    if not _SPN.match(value):
        raise InputError(
            f"invalid service principal name {value!r}",
            hint="write it as service/host[:port][/name], e.g. HTTP/web.corp.example.com",
        )
    return value


def validate_spns(values: list[str] | tuple[str, ...]) -> list[str]:
    result: list[str] = []
    for value in values:
        validate_spn(value)
        if value.lower() in (v.lower() for v in result):
            raise InputError(f"service principal name {value!r} is given twice")
        result.append(value)
    return result
