"""msDS-ManagedPasswordId: the "KDSK" key identifier of a gMSA password (MS-GKDI).

It names the KDS root key and the L0/L1/L2 group key interval the current password derives from;
``msDS-ManagedPasswordPreviousId`` has the same layout. Authenticated users may read both.
Layout as in dpapi-ng ``_blob.KeyIdentifier``, DSInternals ``ProtectionKeyIdentifier`` and
GoldenGMSA ``MsdsManagedPasswordId.cs``; all integers little-endian::

    Version      u32   1
    Magic        4     "KDSK"
    Flags        u32   usually 2
    L0Index      i32
    L1Index      i32
    L2Index      i32
    RootKeyId    GUID  16 bytes (bytes_le)
    cbKeyInfo    u32   0 for gMSAs
    cbDomain     u32
    cbForest     u32
    KeyInfo      cbKeyInfo bytes
    Domain       cbDomain bytes, UTF-16LE, NUL-terminated
    Forest       cbForest bytes, UTF-16LE, NUL-terminated
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

from credo.errors import InputError
from credo.gmsa.gkdi import Gkid

__all__ = ["MAGIC", "MalformedPasswordIdError", "ManagedPasswordId"]

_HEADER = struct.Struct("<I4sIiii16sIII")
MAGIC = b"KDSK"
_VERSION = 1


class MalformedPasswordIdError(InputError):
    """msDS-ManagedPasswordId is not a KDSK key identifier."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"malformed msDS-ManagedPasswordId: {reason}")


def _utf16z(data: bytes, what: str) -> str:
    if len(data) < 2 or len(data) % 2 or data[-2:] != b"\0\0":
        raise MalformedPasswordIdError(f"{what} is not NUL-terminated UTF-16")
    try:
        return data[:-2].decode("utf-16-le")
    except UnicodeDecodeError:
        raise MalformedPasswordIdError(f"{what} is not valid UTF-16") from None


def _utf16z_bytes(text: str, what: str) -> bytes:
    if "\0" in text:
        raise ValueError(f"the {what} name contains a NUL character")
    return text.encode("utf-16-le") + b"\0\0"


@dataclass(frozen=True)
class ManagedPasswordId:
    """Which KDS root key and which L0/L1/L2 interval a gMSA password derives from."""

    version: int
    flags: int
    l0: int
    l1: int
    l2: int
    root_key_id: uuid.UUID
    domain: str
    forest: str
    key_info: bytes = b""

    @classmethod
    def unpack(cls, data: bytes) -> ManagedPasswordId:
        """Parse and validate; raises :class:`MalformedPasswordIdError`."""
        data = bytes(data)
        if len(data) < _HEADER.size:
            raise MalformedPasswordIdError(
                f"{len(data)} bytes is shorter than the {_HEADER.size}-byte header"
            )
        fields = _HEADER.unpack_from(data)
        version, magic, flags, l0, l1, l2, guid, cb_key_info, cb_domain, cb_forest = fields
        if magic != MAGIC:
            raise MalformedPasswordIdError("the magic is not KDSK")
        if version != _VERSION:
            raise MalformedPasswordIdError(f"version {version}, expected 1")
        end = _HEADER.size + cb_key_info + cb_domain + cb_forest
        if end != len(data):
            raise MalformedPasswordIdError(f"the sizes in the header add up to {end} bytes, not {len(data)}")
        cursor = _HEADER.size
        key_info = data[cursor : cursor + cb_key_info]
        cursor += cb_key_info
        domain = _utf16z(data[cursor : cursor + cb_domain], "the domain name")
        cursor += cb_domain
        forest = _utf16z(data[cursor : cursor + cb_forest], "the forest name")
        return cls(version, flags, l0, l1, l2, uuid.UUID(bytes_le=guid), domain, forest, key_info)

    def pack(self) -> bytes:
        """The wire form (``ValueError`` for values that do not fit)."""
        domain = _utf16z_bytes(self.domain, "domain")
        forest = _utf16z_bytes(self.forest, "forest")
        header = _HEADER.pack(
            self.version, MAGIC, self.flags, self.l0, self.l1, self.l2, self.root_key_id.bytes_le,
            len(self.key_info), len(domain), len(forest),
        )  # fmt: skip
        return header + self.key_info + domain + forest

    @property
    def gkid(self) -> Gkid:
        """The group key identifier (L0, L1, L2); ``GkdiError`` if it is not an L2 interval."""
        return Gkid(self.l0, self.l1, self.l2)
