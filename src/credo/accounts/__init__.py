"""Lifecycle of KDS root keys, gMSAs and sMSAs from Linux (the *-ADServiceAccount and *-KdsRootKey verbs)."""

# credo.ad sets LDAPSASL_CBINDING before python-ldap is first imported (see its docstring): the
# modules below import python-ldap, so credo.ad comes first, or GSSAPI over LDAPS is refused.
import credo.ad  # noqa: F401
from credo.accounts.kds import RootKey, create_root_key, list_root_keys
from credo.accounts.service_accounts import (
    AccountChanges,
    NewAccount,
    create_account,
    get_account,
    iter_accounts,
    link_account,
    remove_account,
    update_account,
)

__all__ = [
    "AccountChanges",
    "NewAccount",
    "RootKey",
    "create_account",
    "create_root_key",
    "get_account",
    "iter_accounts",
    "link_account",
    "list_root_keys",
    "remove_account",
    "update_account",
]
