"""Kerberos through MIT krb5: host identity, initial tickets, keys and salts, keytabs."""

from __future__ import annotations

from credo.krb.keys import (
    DerivedKey,
    Enctype,
    SupportedEncryptionTypes,
    derive_keys,
    nt_hash,
    password_utf8,
    salt_for_computer_account,
)
from credo.krb.keytab import KeytabEntry, read_keytab, write_keytab_atomically

__all__ = [
    "DerivedKey",
    "Enctype",
    "KeytabEntry",
    "SupportedEncryptionTypes",
    "derive_keys",
    "nt_hash",
    "password_utf8",
    "read_keytab",
    "salt_for_computer_account",
    "write_keytab_atomically",
]
