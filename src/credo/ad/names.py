"""Account names and the escaping of values put into LDAP filters (RFC 4515) and DNs (RFC 4514).

Names are validated before they reach a filter: a sAMAccountName may not contain
``" / \\ [ ] : ; | = , + * ? < >`` or ``@`` (MS-ADTS 3.1.1.3.1.1.1 / MS-SAMR 3.1.1.6 rules for
account names), nor control characters; escaping is applied on top, always.
"""

from __future__ import annotations

from ldap.dn import escape_dn_chars
from ldap.filter import escape_filter_chars

# The name rules live with credo's other name rules; re-exported for the directory code.
from credo.names import MAX_MSA_NAME, managed_account_sam, validate_account_name

__all__ = [
    "MAX_MSA_NAME",
    "dns_domain_of",
    "escape_dn_value",
    "escape_filter_value",
    "managed_account_sam",
    "validate_account_name",
]


def escape_filter_value(value: str) -> str:
    """RFC 4515 section 3 escaping of an assertion value (``*``, ``(``, ``)``, ``\\``, NUL)."""
    return str(escape_filter_chars(value))


def dns_domain_of(base_dn: str) -> str:
    """The AD DNS domain a naming context names: ``DC=corp,DC=example,DC=test`` -> ``corp.example.test``."""
    return ".".join(
        rdn.split("=", 1)[1] for rdn in base_dn.split(",") if rdn.strip().upper().startswith("DC=")
    ).lower()


def escape_dn_value(value: str) -> str:
    """RFC 4514 section 2.4 escaping of an attribute value in a DN."""
    return str(escape_dn_chars(value))
