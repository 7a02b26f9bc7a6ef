"""MS-GKDI seed keys and the gMSA password they yield, computed locally from a KDS root key.

A DC derives a gMSA password from the forest's KDS root key (``msKds-ProvRootKey``) without
storing it: root key -> L0 seed key -> L1 -> L2 (MS-GKDI 3.1.4.1.2 "Generating a Group Key"),
then ``KDF(L2, "GMSA PASSWORD", SID, 256 bytes)`` and a post-processing step (MS-ADTS 3.1.1.4.5.39,
Samba ``lib/crypto/gmsa.c``). credo uses this as an independent check of what a DC returned and
for audits; it needs ``msKds-RootKeyData``, which only domain/enterprise admins and SYSTEM read.

The KDF is NIST SP 800-108 counter mode with HMAC (``SP800_108_CTR_HMAC``): 32-bit counter
before the fixed data ``Label || 0x00 || Context || L`` (L in bits, u32 big-endian).
"""

from __future__ import annotations

import re
import struct
import uuid
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode

from credo.errors import InputError

__all__ = [
    "GMSA_PASSWORD_LABEL",
    "GMSA_PASSWORD_LENGTH",
    "GMSA_SECURITY_DESCRIPTOR",
    "KDS_SERVICE_LABEL",
    "KEY_CYCLE_DURATION",
    "L1_KEY_ITERATION",
    "L2_KEY_ITERATION",
    "MAX_CLOCK_SKEW",
    "GkdiError",
    "Gkid",
    "KdsRootKey",
    "gmsa_password",
    "interval_gkid",
    "kdf",
    "kdf_context",
    "l0_seed_key",
    "l1_seed_key",
    "l2_seed_key",
    "parse_kdf_parameters",
    "post_process_password",
    "rollover_interval",
    "sid_to_bytes",
]

KEY_CYCLE_DURATION = 360_000_000_000
"""One L2 interval: 10 hours in 100-ns units (MS-GKDI 3.1.4.1.2)."""
L1_KEY_ITERATION = 32
L2_KEY_ITERATION = 32
MAX_CLOCK_SKEW = 3_000_000_000
"""5 minutes in 100-ns units (MS-KILE 3.1.1 / MS-GKDI)."""
GMSA_PASSWORD_LENGTH = 256

KDS_SERVICE_LABEL = "KDS service\0".encode("utf-16-le")
GMSA_PASSWORD_LABEL = "GMSA PASSWORD\0".encode("utf-16-le")

GMSA_SECURITY_DESCRIPTOR = bytes.fromhex(
    "010004803000000000000000000000001400000002001c0001000000000014009f01120001010000"
    "0000000509000000010100000000000512000000"
)
"""``O:SYD:(A;;FRFW;;;S-1-5-9)`` in self-relative form: MS-ADTS 3.1.1.4.5.39 ``GmsaSD()``.

It is appended to the context of the first L1 derivation only.
"""

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA1": hashes.SHA1,
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}
_KDF_PARAM_HEADER = struct.Struct("<IIII")
_DAY = 864_000_000_000  # 100-ns units


class GkdiError(InputError):
    """A KDS root key, KDF parameter blob or group key identifier is not usable."""


@dataclass(frozen=True, order=True)
class Gkid:
    """A group key identifier (L0, L1, L2) of MS-GKDI; L1 and L2 count 0..31."""

    l0: int
    l1: int
    l2: int

    def __post_init__(self) -> None:
        if self.l0 < 0 or not 0 <= self.l1 < L1_KEY_ITERATION or not 0 <= self.l2 < L2_KEY_ITERATION:
            raise GkdiError(f"invalid group key identifier ({self.l0}, {self.l1}, {self.l2})")

    @classmethod
    def from_filetime(cls, filetime: int) -> Gkid:
        """The interval holding ``filetime`` (100-ns units since 1601-01-01 UTC).

        ``n = filetime // KeyCycleDuration; L0 = n // 1024; L1 = (n // 32) % 32; L2 = n % 32``
        (DSInternals ``KdsRootKey.GetIntervalId``, Samba ``gkdi_get_interval_id``).
        """
        if filetime < 0:
            raise GkdiError("a FILETIME cannot be negative")
        n = filetime // KEY_CYCLE_DURATION
        return cls(n // (L1_KEY_ITERATION * L2_KEY_ITERATION), (n // L2_KEY_ITERATION) % L1_KEY_ITERATION,
                   n % L2_KEY_ITERATION)  # fmt: skip

    def start_filetime(self) -> int:
        """First FILETIME of this interval."""
        n = (self.l0 * L1_KEY_ITERATION + self.l1) * L2_KEY_ITERATION + self.l2
        return n * KEY_CYCLE_DURATION


@dataclass(frozen=True)
class KdsRootKey:
    """The parts of an ``msKds-ProvRootKey`` object the derivation needs.

    ``key_id`` is its ``cn``; ``data`` is ``msKds-RootKeyData`` (secret: never in the repr);
    ``kdf_hash`` the hash named by ``msKds-KDFParam`` (see :func:`parse_kdf_parameters`).
    """

    key_id: uuid.UUID
    data: bytes = field(repr=False)
    kdf_hash: str = "SHA512"

    def __post_init__(self) -> None:
        if self.kdf_hash not in _HASHES:
            raise GkdiError(f"unsupported KDS KDF hash {self.kdf_hash!r}")
        if not self.data:
            raise GkdiError("the KDS root key data is empty")


def parse_kdf_parameters(blob: bytes) -> str:
    """The hash name in ``msKds-KDFParam`` for ``SP800_108_CTR_HMAC`` (MS-GKDI 2.2.1).

    Layout: u32 0, u32 1, u32 byte length of the name, u32 0, then the name in UTF-16LE with
    its NUL, e.g. ``00000000 01000000 0e000000 00000000 "SHA512\\0"``.
    """
    if len(blob) < _KDF_PARAM_HEADER.size:
        raise GkdiError("msKds-KDFParam is shorter than its header")
    _, count, name_length, _ = _KDF_PARAM_HEADER.unpack_from(blob)
    name_bytes = blob[_KDF_PARAM_HEADER.size :]
    if count != 1 or name_length != len(name_bytes) or name_length % 2 or name_length < 2:
        raise GkdiError("msKds-KDFParam is malformed")
    name = name_bytes.decode("utf-16-le", "replace").rstrip("\0")
    if name not in _HASHES:
        raise GkdiError(f"unsupported KDS KDF hash {name!r}")
    return name


def kdf(hash_name: str, key: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """SP 800-108 counter-mode HMAC KDF as MS-GKDI uses it (r = 32, L as u32, counter first)."""
    algorithm = _HASHES[hash_name]()
    return KBKDFHMAC(
        algorithm=algorithm,
        mode=Mode.CounterMode,
        length=length,
        rlen=4,
        llen=4,
        location=CounterLocation.BeforeFixed,
        label=label,
        context=context,
        fixed=None,
    ).derive(key)


def kdf_context(root_key_id: uuid.UUID, l0: int, l1: int, l2: int) -> bytes:
    """``rootKeyGUID (bytes_le) || i32le L0 || i32le L1 || i32le L2`` (MS-GKDI 3.1.4.1.2)."""
    return root_key_id.bytes_le + struct.pack("<iii", l0, l1, l2)


def l0_seed_key(root_key: KdsRootKey, l0: int) -> bytes:
    """The 64-byte L0 seed key: ``KDF(RootKeyData, ctx(L0, -1, -1))``."""
    context = kdf_context(root_key.key_id, l0, -1, -1)
    return kdf(root_key.kdf_hash, root_key.data, KDS_SERVICE_LABEL, context, 64)


def l1_seed_key(root_key: KdsRootKey, l0: int, l1: int) -> bytes:
    """L1 seed key: L1[31] from L0 with the gMSA SD in its context, then walk down to ``l1``."""
    if not 0 <= l1 < L1_KEY_ITERATION:
        raise GkdiError(f"invalid L1 index {l1}")
    key = l0_seed_key(root_key, l0)
    top = L1_KEY_ITERATION - 1
    context = kdf_context(root_key.key_id, l0, top, -1) + GMSA_SECURITY_DESCRIPTOR
    key = kdf(root_key.kdf_hash, key, KDS_SERVICE_LABEL, context, 64)
    for index in range(top - 1, l1 - 1, -1):
        key = kdf(root_key.kdf_hash, key, KDS_SERVICE_LABEL, kdf_context(root_key.key_id, l0, index, -1), 64)
    return key


def l2_seed_key(root_key: KdsRootKey, gkid: Gkid) -> bytes:
    """L2 seed key: L2[31] from the L1 key of ``gkid.l1``, then walk down to ``gkid.l2``."""
    key = l1_seed_key(root_key, gkid.l0, gkid.l1)
    for index in range(L2_KEY_ITERATION - 1, gkid.l2 - 1, -1):
        context = kdf_context(root_key.key_id, gkid.l0, gkid.l1, index)
        key = kdf(root_key.kdf_hash, key, KDS_SERVICE_LABEL, context, 64)
    return key


def post_process_password(password: bytes) -> bytes:
    """Replace every u16 0x0000 by 0x0001 (Samba ``gmsa_post_process_password_buffer``).

    The blob then appends one NUL u16, so the password itself never contains a terminator.
    """
    if len(password) % 2:
        raise GkdiError("a gMSA password buffer must have an even length")
    units = bytearray(password)
    for offset in range(0, len(units), 2):
        if units[offset] == 0 and units[offset + 1] == 0:
            units[offset] = 1
    return bytes(units)


def gmsa_password(root_key: KdsRootKey, gkid: Gkid, sid: str | bytes) -> bytes:
    """The 256-byte raw UTF-16LE password of the gMSA with ``sid`` for interval ``gkid``.

    ``KDF(L2(gkid), "GMSA PASSWORD\\0", binary SID, 256)``, post-processed; no NUL terminator.
    """
    sid_bytes = sid if isinstance(sid, bytes) else sid_to_bytes(sid)
    l2 = l2_seed_key(root_key, gkid)
    raw = kdf(root_key.kdf_hash, l2, GMSA_PASSWORD_LABEL, sid_bytes, GMSA_PASSWORD_LENGTH)
    return post_process_password(raw)


def rollover_interval(days: int) -> int:
    """Password rollover interval in 100-ns units for ``msDS-ManagedPasswordInterval`` days.

    ``floor(days * 24 / 10) * KeyCycleDuration`` (Samba ``lib/crypto/gkdi.c``
    ``gkdi_rollover_interval``): 30 days is exactly 720 h, 1 day is 20 h.
    """
    if days < 0:
        raise GkdiError(f"a password interval of {days} days is negative")
    return (days * 24 // 10) * KEY_CYCLE_DURATION


def interval_gkid(anchor_filetime: int, now_filetime: int, interval_days: int) -> Gkid:
    """The GKID of the password interval holding ``now``, counted from ``anchor`` in whole rollovers.

    ``anchor`` is where the first interval starts: the start of the ``msDS-ManagedPasswordId``
    GKID (Samba) or the account's ``pwdLastSet``/``whenCreated`` (DSInternals); both agree when
    the rollover is a multiple of 10 h.
    """
    rollover = rollover_interval(interval_days)
    if rollover == 0 or now_filetime < anchor_filetime:
        return Gkid.from_filetime(anchor_filetime)
    elapsed = (now_filetime - anchor_filetime) // rollover
    return Gkid.from_filetime(anchor_filetime + elapsed * rollover)


# At most 20 digits a component (none fits in more than 15): int() refuses 4300 and more with
# a bare ValueError, and the range check below words the rest.
_SID_RE = re.compile(r"^S-1-(\d{1,20})((?:-\d{1,20}){0,15})$", re.IGNORECASE)


def sid_to_bytes(sid: str) -> bytes:
    """Binary form of a SID string (MS-DTYP 2.4.2.2): revision, count, 48-bit authority, RIDs."""
    match = _SID_RE.match(sid.strip())
    if not match:
        raise GkdiError(f"{sid!r} is not a SID string")
    authority = int(match.group(1))
    parts = [int(part) for part in match.group(2).split("-")[1:]]
    if authority >= 1 << 48 or any(part >= 1 << 32 for part in parts):
        raise GkdiError(f"{sid!r} has an out-of-range component")
    return bytes([1, len(parts)]) + authority.to_bytes(6, "big") + struct.pack(f"<{len(parts)}I", *parts)
