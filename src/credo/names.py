"""The syntax of the names credo is given: AD account names, computer principals, local users.

Pure rules with no I/O, shared by every layer (the directory code, the server validating a worker
group, the worker). A sAMAccountName may not contain ``" / \\ [ ] : ; | = , + * ? < >`` or ``@``
(MS-ADTS 3.1.1.3.1.1.1 / MS-SAMR 3.1.1.6 rules for account names), nor control characters.
"""

from __future__ import annotations

import re

from credo.errors import InputError

__all__ = [
    "MAX_MSA_NAME",
    "SYSTEM_USERS",
    "gmsa_name_for_user",
    "managed_account_sam",
    "validate_account_name",
    "validate_computer_principal",
    "validate_local_user_name",
]

# A managed service account's name is at most 15 characters without the trailing "$" (the
# sAMAccountName of a computer-like account is limited to 16 characters with it).
MAX_MSA_NAME = 15
_ILLEGAL = re.compile(r'["/\\\[\]:;|=,+*?<>@\x00-\x1f\x7f]')
# NAME$@REALM: a computer account (at most 15 characters, NetBIOS) in a realm (DNS name syntax).
_COMPUTER_PRINCIPAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,14}\$@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                                 r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$")  # fmt: skip
# useradd(8)'s default NAME_REGEX on Debian, at most 32 characters (utmp's ut_user).
_LOCAL_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# Debian's base-passwd accounts (uid 0-99 and nobody) and other names that mean "privileged":
# a job running as one of them can act as the system. Allowed only when a group says so.
SYSTEM_USERS = frozenset({
    "root", "toor", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp",
    "proxy", "www-data", "backup", "list", "irc", "gnats", "_apt", "nobody", "adm", "wheel", "sudo",
    "shadow", "disk", "kmem", "admin",
})  # fmt: skip


def validate_account_name(name: str, *, max_length: int = 20, what: str = "account name") -> str:
    """Return ``name`` if it is a legal sAMAccountName, else raise InputError saying why."""
    if not name:
        raise InputError(f"empty {what}")
    bad = _ILLEGAL.search(name)
    if bad:
        char = bad.group(0)
        shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
        raise InputError(
            f"invalid {what} {name!r}: it contains {shown}",
            hint='names may not contain " / \\ [ ] : ; | = , + * ? < > @ or control characters',
        )
    if name.strip() != name or name.endswith("."):
        raise InputError(f"invalid {what} {name!r}: no leading/trailing spaces or trailing dot")
    if len(name) > max_length:
        raise InputError(f"invalid {what} {name!r}: longer than {max_length} characters")
    return name


def managed_account_sam(name: str) -> str:
    """``svcauto`` or ``svcauto$`` -> ``svcauto$``, validated (at most 15 characters before ``$``)."""
    bare = name[:-1] if name.endswith("$") else name
    validate_account_name(bare, max_length=MAX_MSA_NAME, what="managed service account name")
    return f"{bare}$"


def validate_computer_principal(value: str) -> str:
    """``WORKER1$@CORP.EXAMPLE.TEST``: a computer account's Kerberos principal."""
    if not _COMPUTER_PRINCIPAL.match(value):
        raise InputError(
            f"invalid worker principal {value!r}",
            hint="name the computer account as NAME$@REALM, e.g. WORKER1$@CORP.EXAMPLE.TEST",
        )
    return value


def validate_local_user_name(value: str, *, allow_system: bool = False) -> str:
    """A local Unix user name (useradd's rules); system accounts only with ``allow_system``."""
    if not _LOCAL_USER.match(value):
        raise InputError(
            f"invalid local user name {value!r}",
            hint="lower-case letters, digits, '_' and '-', starting with a letter or '_', at most 32",
        )
    if value in SYSTEM_USERS and not allow_system:
        raise InputError(
            f"local user {value!r} is a system account: jobs running as it could act as the system",
            hint="run jobs as an unprivileged user (e.g. useradd --system credo-runner), or allow it "
            "explicitly with --allow-system-user",
        )
    return value


# The prefixes service accounts are commonly named with, dropped from the suggested gMSA name.
_SERVICE_PREFIX = re.compile(r"^(svc|srv|sa|service)[_\-.]?", re.IGNORECASE)


def gmsa_name_for_user(user: str) -> str:
    """The gMSA a user service account moves to, by default: ``svc_legacy`` -> ``gmsa-legacy``.
    Letters, digits and ``-`` (the name is also its dNSHostName's first label), at most
    MAX_MSA_NAME characters. ``credo audit`` suggests it and ``credo migrate plan`` uses it."""
    stem = _SERVICE_PREFIX.sub("", user.removesuffix("$")) or user.removesuffix("$")
    stem = re.sub(r"[^A-Za-z0-9-]+", "-", stem).strip("-") or "service"
    return f"gmsa-{stem}"[:MAX_MSA_NAME].rstrip("-")
