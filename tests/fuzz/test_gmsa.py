"""Fuzzing the gMSA structures a DC hands out: msDS-ManagedPassword (MS-ADTS 2.2.19),
msDS-ManagedPasswordId (the KDSK key identifier), msKds-KDFParam (MS-GKDI 2.2.1) and SID strings.

tests/gmsa/ already feeds each parser arbitrary bytes and single-byte changes; here each gets
structure-aware damage (every truncation, length and offset fields set to boundary values, spans
deleted or duplicated) and the secret-bearing blob is checked to never echo its passwords.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import uuid
from datetime import timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from credo.errors import CredoError
from credo.gmsa.blob import MalformedBlobError, ManagedPasswordBlob
from credo.gmsa.gkdi import GkdiError, parse_kdf_parameters, post_process_password, sid_to_bytes
from credo.gmsa.password_id import ManagedPasswordId
from tests.fuzz.helpers import FUZZ, mutated, typed_only

# DSInternals Src/DSInternals.Common.Test/ManagedPasswordTester.cs (MichaelGrafnetter/DSInternals),
# as in tests/gmsa/test_blob.py: a blob read from AD, current password only.
DSI_BLOB = bytes.fromhex(
    "01000000220100001000000012011a011609f270f541c315ffee9fcd22a98447b5c6e6fb7151cb020a2b017bb4e00364"
    "7949967fc96f7c9ec3426b80901bb9c162867cbc68c520c4d7a431c3d9a670f8aa41d2ae5c0c08f27f8698b90c18a5a5"
    "76e9933fb0cadaf8e661be2f58308c580866b1ae582ee50a9aa7c5d65a312dbbc3542c51c7e0b2d4c61e9763de481d99"
    "63367273aa72b53c2e402e31c6cd38e7785ad06639cdfa07738d19ae20c370e06787ad2f600823c505fc9dd32b3f0650"
    "5da37b86b298d3650140af83c1f01c907964d182ea0efb19e74c949f58123fdecb41f78ed0eabbde31bb46afd3134da8"
    "2550380ed36038d100f71095404a97e52d661dbe4f74deef4122a102dca698960000864973f96017000086eba2466017"
    "0000"
)
# The same current password with a previous one (two 256-byte passwords, as a DC writes them in
# the pre-rotation window; the previous one made as a DC makes them, MS-ADTS 3.1.1.4.5.39).
TWO_PASSWORDS = ManagedPasswordBlob(
    current_password=ManagedPasswordBlob.unpack(DSI_BLOB).current_password,
    previous_password=post_process_password(hashlib.shake_256(b"previous").digest(256)),
    query_password_interval=timedelta(minutes=3),
    unchanged_password_interval=timedelta(days=30),
).pack()
# The 16-byte header: Version, Reserved, Length, then the four offsets (little-endian).
BLOB_FIELDS = ((0, 2), (2, 2), (4, 4), (8, 2), (10, 2), (12, 2), (14, 2))


@functools.cache
def _fingerprints(secret: bytes) -> tuple[frozenset[bytes], frozenset[str]]:
    """Every 4-byte run of ``secret`` as bytes, and the forms it would take in a message: as hex,
    in a bytes repr (``\\x9f\\xcd...``), and 3 code units decoded, as text and escaped."""
    runs = frozenset(secret[i : i + 4] for i in range(len(secret) - 3))
    texts = {run.hex() for run in runs} | {repr(run)[2:-1] for run in runs}
    for i in range(0, len(secret) - 5, 2):
        units = secret[i : i + 6].decode("utf-16-le", "replace")
        if "\ufffd" not in units:
            texts |= {units, units.encode("unicode_escape").decode()}
    return runs, frozenset(texts)


def _assert_no_secret(error: CredoError, secrets: list[bytes]) -> None:
    """No 4-byte run of a password in the message (its only arg, which its repr shows) nor the hint."""
    assert error.args == (error.message,) and repr(error) == f"{type(error).__name__}({error.message!r})"
    for text in (error.message, error.hint or ""):
        assert text.isascii(), text
        raw, lower = text.encode(), text.lower()
        for secret in secrets:
            runs, forms = _fingerprints(secret)
            assert not any(raw[i : i + 4] in runs for i in range(len(raw) - 3))
            assert not any(form in text or form in lower for form in forms)


def _passwords(blob: bytes) -> list[bytes]:
    parsed = ManagedPasswordBlob.unpack(blob)
    return [p for p in (parsed.current_password, parsed.previous_password) if p]


@pytest.mark.parametrize("blob", [DSI_BLOB, TWO_PASSWORDS], ids=["current", "current+previous"])
def test_blob_truncated_at_every_length(blob: bytes) -> None:
    secrets = _passwords(blob)
    for end in range(len(blob)):
        result = typed_only(ManagedPasswordBlob.unpack, blob[:end])
        assert isinstance(result, MalformedBlobError)  # the length field no longer matches
        _assert_no_secret(result, secrets)


@pytest.mark.parametrize("blob", [DSI_BLOB, TWO_PASSWORDS], ids=["current", "current+previous"])
@pytest.mark.parametrize("field", BLOB_FIELDS)
def test_blob_header_fields_at_every_boundary(blob: bytes, field: tuple[int, int]) -> None:
    offset, size = field
    secrets = _passwords(blob)
    end = len(blob)
    for value in {0, 1, 15, 16, 17, end - 18, end - 8, end - 1, end, (1 << (8 * size)) - 1}:
        data = bytearray(blob)
        data[offset : offset + size] = value.to_bytes(size, "little")
        result = typed_only(ManagedPasswordBlob.unpack, bytes(data))
        if isinstance(result, CredoError):
            _assert_no_secret(result, secrets)


@FUZZ
@given(
    st.sampled_from([DSI_BLOB, TWO_PASSWORDS]).flatmap(
        lambda b: st.tuples(st.just(b), mutated(b, fields=BLOB_FIELDS))
    )
)
def test_damaged_blobs_raise_typed_errors_that_hold_no_password(pair: tuple[bytes, bytes]) -> None:
    original, data = pair
    result = typed_only(ManagedPasswordBlob.unpack, data)
    if isinstance(result, CredoError):
        assert isinstance(result, MalformedBlobError)
        _assert_no_secret(result, _passwords(original))


@FUZZ
@given(st.binary(min_size=16, max_size=64), st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4))
def test_any_offsets_over_any_body(body: bytes, offsets: list[int]) -> None:
    """A well-formed header (version 1, the right length) pointing anywhere into any bytes."""
    data = struct.pack("<HHI4H", 1, 0, 16 + len(body), *offsets) + body
    result = typed_only(ManagedPasswordBlob.unpack, data)
    assert isinstance(result, ManagedPasswordBlob | MalformedBlobError)


# DSInternals KdsRootKeyTester.GetGmsaPassword_Vector3, as in tests/gmsa/test_password_id.py.
DSI_PASSWORD_ID = bytes.fromhex(
    "010000004b44534b02000000690100001a00000018000000965cc97d85fa3a18dff5f70696bf0b11"
    "00000000180000001800000063006f006e0074006f0073006f002e0063006f006d000000"
    "63006f006e0074006f0073006f002e0063006f006d000000"
)
# Version, Magic, Flags, L0, L1, L2, RootKeyId, cbKeyInfo, cbDomain, cbForest.
PASSWORD_ID_FIELDS = ((0, 4), (8, 4), (12, 4), (16, 4), (20, 4), (40, 4), (44, 4), (48, 4))


def _password_id(data: bytes) -> object:
    parsed = ManagedPasswordId.unpack(data)
    return parsed.gkid  # an L0/L1/L2 out of range is a GkdiError, also typed


def test_password_id_truncated_at_every_length() -> None:
    for end in range(len(DSI_PASSWORD_ID)):
        assert isinstance(typed_only(_password_id, DSI_PASSWORD_ID[:end]), CredoError)


@FUZZ
@given(mutated(DSI_PASSWORD_ID, fields=PASSWORD_ID_FIELDS))
def test_damaged_password_ids_raise_typed_errors(data: bytes) -> None:
    typed_only(_password_id, data)


utf16 = st.binary(max_size=40)


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1),
       st.integers(-(2**31), 2**31 - 1), st.binary(max_size=8), utf16, utf16)  # fmt: skip
def test_password_ids_with_any_names(
    flags: int, l0: int, l1: int, l2: int, key_info: bytes, domain: bytes, forest: bytes
) -> None:
    """Sizes that add up, over names that may be odd-length, unterminated or not UTF-16."""
    header = struct.pack(
        "<I4sIiii16sIII", 1, b"KDSK", flags, l0, l1, l2, uuid.uuid4().bytes_le,
        len(key_info), len(domain), len(forest),
    )  # fmt: skip
    typed_only(_password_id, header + key_info + domain + forest)


KDF_PARAM = struct.pack("<IIII", 0, 1, 14, 0) + "SHA512\0".encode("utf-16-le")


@FUZZ
@given(st.one_of(st.binary(max_size=48), mutated(KDF_PARAM, fields=((0, 4), (4, 4), (8, 4), (12, 4)))))
def test_kdf_parameters_raise_typed_errors(data: bytes) -> None:
    result = typed_only(parse_kdf_parameters, data)
    assert result in ("SHA1", "SHA256", "SHA384", "SHA512") or isinstance(result, GkdiError)


sid_components = st.one_of(
    st.integers(0, 2**64).map(str),
    st.text("0123456789", min_size=1, max_size=30),
    st.sampled_from(["", "-1", "x", " 5", "\u0665", "1" * 5000]),
)


@FUZZ
@given(st.one_of(st.text(max_size=40), st.lists(sid_components, min_size=1, max_size=18).map(
    lambda parts: "S-1-" + "-".join(parts))))  # fmt: skip
@example("S-1-" + "9" * 5000)  # int() refuses more than 4300 digits with a bare ValueError
@example("S-1-5-" + "9" * 5000)
def test_sid_strings_for_the_password_derivation(text: str) -> None:
    result = typed_only(sid_to_bytes, text)
    assert isinstance(result, bytes | GkdiError)
