"""Group managed service accounts from a Linux host: retrieve, derive, test, keytab, run as.

The flow (docs/architecture.md, flow 1): host keytab -> TGT in a private ccache -> confidential LDAP ->
msDS-ManagedPassword -> keys -> a ccache for NAME$ (``run_as``) or a keytab (``write_account_keytab``).

The wire formats live apart: :mod:`credo.gmsa.blob` (msDS-ManagedPassword, MS-ADTS 2.2.19),
:mod:`credo.gmsa.password_id` (msDS-ManagedPasswordId) and :mod:`credo.gmsa.gkdi` (MS-GKDI
derivation of the password from a KDS root key).
"""

from __future__ import annotations

from credo.gmsa.blob import (
    MalformedBlobError,
    ManagedPasswordBlob,
    RotationState,
    nt_hash,
    password_utf8,
    rotation_state,
)
from credo.gmsa.gkdi import GkdiError, Gkid, KdsRootKey, gmsa_password
from credo.gmsa.password_id import MalformedPasswordIdError, ManagedPasswordId

__all__ = [
    "GkdiError",
    "Gkid",
    "KdsRootKey",
    "MalformedBlobError",
    "MalformedPasswordIdError",
    "ManagedPasswordBlob",
    "ManagedPasswordId",
    "RotationState",
    "gmsa_password",
    "nt_hash",
    "password_utf8",
    "rotation_state",
]
