"""Account names and the escaping of values put into LDAP filters (RFC 4515) and DNs (RFC 4514).

Names are validated before they reach a filter: a sAMAccountName may not contain
``" / \\ [ ] : ; | = , + * ? < >`` or ``@`` (MS-ADTS 3.1.1.3.1.1.1 / MS-SAMR 3.1.1.6 rules for
account names), nor control characters; escaping is applied on top, always.
"""

from __future__ import annotations

import re

from ldap.dn import escape_dn_chars
from ldap.filter import escape_filter_chars

from credo.errors import InputError

__all__ = [
    "MAX_MSA_NAME",
    "escape_dn_value",
    "escape_filter_value",
    "managed_account_sam",
    "validate_account_name",
]

# A managed service account's name is at most 15 characters without the trailing "$" (the
# sAMAccountName of a computer-like account is limited to 16 characters with it).
MAX_MSA_NAME = 15
_ILLEGAL = re.compile(r'["/\\\[\]:;|=,+*?<>@\x00-\x1f\x7f]')


def escape_filter_value(value: str) -> str:
    """RFC 4515 section 3 escaping of an assertion value (``*``, ``(``, ``)``, ``\\``, NUL)."""
    return str(escape_filter_chars(value))


def escape_dn_value(value: str) -> str:
    """RFC 4514 section 2.4 escaping of an attribute value in a DN."""
    return str(escape_dn_chars(value))


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
