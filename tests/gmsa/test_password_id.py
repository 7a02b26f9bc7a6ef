"""msDS-ManagedPasswordId ("KDSK" key identifier) parsing and packing."""

from __future__ import annotations

import contextlib
import struct
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credo.errors import InputError
from credo.gmsa.gkdi import Gkid
from credo.gmsa.password_id import MalformedPasswordIdError, ManagedPasswordId

# DSInternals KdsRootKeyTester.GetGmsaPassword_Vector3 (MichaelGrafnetter/DSInternals).
DSI_PASSWORD_ID = bytes.fromhex(
    "010000004b44534b02000000690100001a00000018000000965cc97d85fa3a18dff5f70696bf0b11"
    "00000000180000001800000063006f006e0074006f0073006f002e0063006f006d000000"
    "63006f006e0074006f0073006f002e0063006f006d000000"
)


def test_unpack_dsinternals_vector() -> None:
    pid = ManagedPasswordId.unpack(DSI_PASSWORD_ID)
    assert pid == ManagedPasswordId(
        version=1,
        flags=2,
        l0=361,
        l1=26,
        l2=24,
        root_key_id=uuid.UUID("7dc95c96-fa85-183a-dff5-f70696bf0b11"),
        domain="contoso.com",
        forest="contoso.com",
    )
    assert pid.gkid == Gkid(361, 26, 24)
    assert pid.pack() == DSI_PASSWORD_ID


def test_malformed_is_an_input_error() -> None:
    assert issubclass(MalformedPasswordIdError, InputError)
    assert MalformedPasswordIdError("x").exit_code == 2


@pytest.mark.parametrize(
    "data",
    [
        b"",
        DSI_PASSWORD_ID[:20],
        DSI_PASSWORD_ID[:-1],
        DSI_PASSWORD_ID + b"\0\0",
        DSI_PASSWORD_ID[:4] + b"KDSX" + DSI_PASSWORD_ID[8:],
        struct.pack("<I", 2) + DSI_PASSWORD_ID[4:],
        DSI_PASSWORD_ID[:-2] + b"a\0",  # forest not NUL-terminated
    ],
)
def test_unpack_rejects(data: bytes) -> None:
    with pytest.raises(MalformedPasswordIdError):
        ManagedPasswordId.unpack(data)


names = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=40)
i32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
u32 = st.integers(min_value=0, max_value=2**32 - 1)


@given(u32, i32, i32, i32, st.uuids(), names, names, st.binary(max_size=16))
def test_round_trip(
    flags: int, l0: int, l1: int, l2: int, key: uuid.UUID, domain: str, forest: str, info: bytes
) -> None:
    pid = ManagedPasswordId(1, flags, l0, l1, l2, key, domain, forest, info)
    assert ManagedPasswordId.unpack(pid.pack()) == pid


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_malformed(data: bytes) -> None:
    with contextlib.suppress(MalformedPasswordIdError):
        ManagedPasswordId.unpack(data)


@given(st.integers(min_value=0, max_value=len(DSI_PASSWORD_ID) - 1), st.integers(min_value=0, max_value=255))
def test_mutated_vector_raises_only_malformed(position: int, value: int) -> None:
    data = bytearray(DSI_PASSWORD_ID)
    data[position] = value
    with contextlib.suppress(MalformedPasswordIdError):
        ManagedPasswordId.unpack(bytes(data))
