"""msDS-ManagedPassword (MS-ADTS 2.2.19): published blobs, malformed input, rotation window."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credo.errors import InputError
from credo.gmsa.blob import (
    MalformedBlobError,
    ManagedPasswordBlob,
    nt_hash,
    password_utf8,
    rotation_state,
)

# DSInternals Src/DSInternals.Common.Test/ManagedPasswordTester.cs (MichaelGrafnetter/DSInternals):
# a blob read from AD, whose NT hash AD also reported.
DSI_BLOB = bytes.fromhex(
    "01000000220100001000000012011a011609f270f541c315ffee9fcd22a98447b5c6e6fb7151cb020a2b017bb4e00364"
    "7949967fc96f7c9ec3426b80901bb9c162867cbc68c520c4d7a431c3d9a670f8aa41d2ae5c0c08f27f8698b90c18a5a5"
    "76e9933fb0cadaf8e661be2f58308c580866b1ae582ee50a9aa7c5d65a312dbbc3542c51c7e0b2d4c61e9763de481d99"
    "63367273aa72b53c2e402e31c6cd38e7785ad06639cdfa07738d19ae20c370e06787ad2f600823c505fc9dd32b3f0650"
    "5da37b86b298d3650140af83c1f01c907964d182ea0efb19e74c949f58123fdecb41f78ed0eabbde31bb46afd3134da8"
    "2550380ed36038d100f71095404a97e52d661dbe4f74deef4122a102dca698960000864973f96017000086eba2466017"
    "0000"
)
DSI_NT_HASH = "1fe07f47bfa7f511d902ed5cfb79cc4d"

# gmsad tests/test_gmsa.py (cea-sec/gmsad): two real blobs and their passwords in UTF-8 (the
# 'replace' decoding), converted from Python bytes literals to hex.
GMSAD_BLOB_1 = bytes.fromhex(
    "01000000220100001000000012011a0191ea9321d0d7cb35581298dcd55807a233848dd11cb59cca421ae23866bf6d34"
    "99c2e0036cece7aa5fa10c74e33e2447edf163d9cddbe569370d19479dd0403b6a364c862f1b9364f9f13d282f3126ea"
    "bce62c1ffcfded1c3d931188133409b88bbd167747775f4c18c9dfd29322aeec76bf99f5c76a513aae3d4536129eeb39"
    "c4233dc0224340fb7b411c2a74b0b3a7c6bbb472fd383aecc61890bdb054b05d3ee4416f955b32b79d4240817662d9f2"
    "3063406fa7fcb5c8d14769d60875e9f8a945cdd937cd339e23d75b18fad7ae1f0e360460a3278ac4501f5286022663da"
    "ed525e65ab73b08dcc55eb9f16095d5acf094cfbad0d8873b4d3e64f62a775aa00004f61c5b2070e00004f03f5ff060e"
    "0000"
)
GMSAD_BLOB_1_CURRENT_UTF8 = bytes.fromhex(
    "eeaa91e28693ed9f90e3978be18998efbfbde5a395ea8887e890b3ed868deb949cecaa9ce1a982e3a3a2ebbda6e391ad"
    "ec8a99cfa0eeb1aceaaba7ea859fe7908ce3bba3e49ca4ef87adefbfbdefbfbde6a7a5e0b4b7e49c99ed829de3ad80e3"
    "99aae8998ce1acafe69293ef87b9e2a0bde384afeea8a6ee9abce1bcacefb7bce1b3ade98cbde8a091e39093eba089eb"
    "b68be79c96e79d87e4b19feca498ed8b9fe28a93eeb2aeebbdb6ef9699e6ab87e3a991e3b6aee39985e9b892e3a7abe2"
    "8f84ec80bde48ca2efad80e485bbe2a89ceb81b4ea9eb3ebaf86e78ab4e3a3bdeeb0bae1a386ebb690e592b0e5b6b0ee"
    "90bee6bd81e5ae95eb9cb2e48a9de88580e689b6ef8b99e68cb0e6bd80efb2a7eca2b5e49f91ed99a9e79488efa3a9e4"
    "96a9efbfbdecb4b7e9b8b3ed9ca3e1a19bed9fbae1beaee3988ee68084e29ea3ec928ae1bd90e89992e29882efbfbde5"
    "8bade6959ee78eabe8b6b0e5978ce9bfabe0a496e5a99de0a78fefad8ce0b6ade78e88ed8eb4e4bfa6ea9da2eaa9b5"
)
GMSAD_BLOB_2 = bytes.fromhex(
    "01000000240200001000120114021c0299fdca666ff6c7741d05c51beffd0603b8db746c6ee53179a4c77156fd249f97"
    "5046e6450ba3feedfa19142caddba08690c9e6d009f08b2d2c147e0228452aba4746a897b088e9abfd02e29b7380bb66"
    "96fb4ddb8ac3d2410386c9dc59e6a937aa8e1d3b53a7ab406e6387dba2089e2658dbd41a64b7acc51d963794e98a50fb"
    "c1667c1805d9a80842cd07157da7163653426c1da7dd2996490583bd7df228b70b03d0ba5f47f465edcab31652dd4077"
    "c49b3f32fa16b9cc9e99a82ae4a9bbbadb541ed325bfb84d557376133248016c7c99b1c3283363082a1dfe8860055b0a"
    "1efff9efd5e5d5e27b47255e4098d910982130ae6af0aade6c7d401629a7048f0000350ed8ee57921a93e907e648ba1e"
    "d8b09420549e21543b90817834edf3081b02fbb15e1c3aba0b5b8f936b3f283c54e889d4453a67aac54296b17a71939c"
    "586714aec54a5a22b17ef4e63e35138e9a6690320415d2da7555c58a75534706429dbc922f8797d007d405df4388f83b"
    "2f2ac9b70942d2d29eaf97cb68816f1febdc9d8ef1d21ff2ba1b44d16862acb02be8dcf9f48f421e768ad16ab72a146a"
    "4018dc6fabbad67ae7605097497b17339d3df0e106014b33dd7b3e4ca79b368290f09ae9d5da8fe1ba44c7aef7eb3320"
    "ee622a9477520c8d736ee318faf12e7b70b5e0849a9283e7616f25bdb0ed21c95a627bb8292aa676c4828a98a16b3a9d"
    "8c300000d357608b97000000d3f98fd896000000"
)
GMSAD_BLOB_2_CURRENT_UTF8 = bytes.fromhex(
    "efb699e69b8aef99afe79387d49de1af85efb7afcc86efbfbde6b1b4ee95aee7a4b1ec9ea4e599b1e293bde99e9fe499"
    "90e497a6ea8c8beeb7bee1a7bae2b094efbfbde89aa0eca690ed83a6ef8089e2b68be190acc9bee494a8eba8aae49987"
    "e99ea8e8a2b0eaafa9cbbde9afa2e881b3e69abbefae96efbfbdec8e8ae48792e89883efbfbdee9999e39ea9e8baaae3"
    "ac9dea9d93e482abe68daeefbfbde0a2a2e29a9eefbfbde1ab94eb9da4ec96ace9989de990b7e8aba9efad90e69b81e1"
    "a1bcefbfbde0a2a8ecb582e19487ea9dbde39896e48993e1b5acefbfbde998a9d589ebb683ef89bdeb9ca8cc8bebab90"
    "e49d9fe697b4ecabade19ab3efbfbde79d80e9af84e388bfe19bbaecb2b9e9a69ee2aaa8eaa7a4ebaabbe5939bed8c9e"
    "ebbca5e4b6b8e78d95e18db6e4a0b2e6b081e9a5bcec8eb1e38ca8e0a1a3e1b4aae8a3bed5a0e0a99befbc9eeebfb9ee"
    "9795ee8b95e49dbbe5b8a5e9a180e18399e28698eab8b0ef81aaefbfbde7b5ace19980ea9ca9e8bc84"
)
GMSAD_BLOB_2_PREVIOUS_UTF8 = bytes.fromhex(
    "e0b8b5eebb98e98997e98c9adfa9e4a3a6e1babaeb8398e28294e9b994e590a1e980bbe7a281eeb4b4e0a3b3c89beb87"
    "bbe1b19eeba8bae5ac8be98e8fe3bdabe3b0a8eea194ed9289e3a985eaa9a7e48b85eb8696e785bae9b293e69d98eab8"
    "94e4ab85e2899ae7bab1ee9bb4e394bee8b893e69a9ae38a90e19484efbfbde595b5e8ab85e58db5d987e9b582e98abc"
    "e89cafed8297ed9087efbfbde8a183e3afb8e2a8afeb9f89e48889ed8b92eabe9eecae97e885a8e1bdafefbfbde8ba9d"
    "ed8bb1ef889fe1aebaed8584e689a8eb82aceea0abefa79ce8bfb4e1b982e8a9b6e6ab91e2aab7e6a894e1a180e6bf9c"
    "ebaaabe7ab96e683a7e99d90e7ad89e38c97e3b69dee87b0c486e38d8be7af9de4b0bee9aea7e888b6ef8290eea69aef"
    "bfbdee868fe492baeabb87eeafb7e280b3e68baee990aae589b7e8b48ce6b9b3e1a3a3ef87bae7acaeeb95b0e893a0e9"
    "8a9aee9e83e6bda1ebb4a5eeb6b0eca4a1e6899aeba1bbe2a8a9e79aa6e88b84e9a28ae6aea1e9b4bae3828c"
)

FIVE_MINUTES = timedelta(minutes=5)


def test_dsinternals_blob_nt_hash() -> None:
    blob = ManagedPasswordBlob.unpack(DSI_BLOB)
    assert len(blob.current_password) == 256
    assert blob.previous_password is None
    assert nt_hash(blob.current_password).hex() == DSI_NT_HASH
    assert blob.query_password_interval - blob.unchanged_password_interval == FIVE_MINUTES
    assert blob.pack() == DSI_BLOB  # intervals are whole microseconds: the canonical layout


def test_gmsad_blob_with_current_only() -> None:
    blob = ManagedPasswordBlob.unpack(GMSAD_BLOB_1)
    assert blob.previous_password is None
    utf8 = password_utf8(blob.current_password)
    assert utf8 == GMSAD_BLOB_1_CURRENT_UTF8
    assert "\ufffd" in utf8.decode("utf-8")  # the vector exercises lone-surrogate replacement
    assert blob.query_password_interval.total_seconds() == pytest.approx(1542622.683989, abs=1e-5)
    assert blob.unchanged_password_interval.total_seconds() == pytest.approx(1542322.683989, abs=1e-5)


def test_gmsad_blob_with_current_and_previous() -> None:
    blob = ManagedPasswordBlob.unpack(GMSAD_BLOB_2)
    assert blob.previous_password is not None
    assert password_utf8(blob.current_password) == GMSAD_BLOB_2_CURRENT_UTF8
    assert password_utf8(blob.previous_password) == GMSAD_BLOB_2_PREVIOUS_UTF8
    assert blob.query_password_interval.total_seconds() == pytest.approx(65087.840866, abs=1e-5)
    assert blob.unchanged_password_interval.total_seconds() == pytest.approx(64787.840866, abs=1e-5)


def test_repr_hides_passwords() -> None:
    blob = ManagedPasswordBlob.unpack(GMSAD_BLOB_2)
    text = repr(blob) + str(blob)
    assert blob.current_password.hex()[:16] not in text
    assert "current_password" not in text and "previous_password" not in text


def test_offsets_are_followed_not_assumed() -> None:
    """Intervals first, padding, previous before current: a valid, unusual layout."""
    current = "current-pass".encode("utf-16-le")
    previous = "previous".encode("utf-16-le")
    body = bytearray(16)
    query = len(body)
    body += struct.pack("<Q", 600 * 10_000_000)
    unchanged = len(body)
    body += struct.pack("<Q", 300 * 10_000_000)
    body += b"\xaa" * 6  # padding
    prev = len(body)
    body += previous + b"\0\0" + b"\x55" * 2
    cur = len(body)
    body += current + b"\0\0"
    struct.pack_into("<HHIHHHH", body, 0, 1, 0, len(body), cur, prev, query, unchanged)
    blob = ManagedPasswordBlob.unpack(bytes(body))
    assert blob.current_password == current
    assert blob.previous_password == previous
    assert blob.query_password_interval == timedelta(seconds=600)
    assert blob.unchanged_password_interval == timedelta(seconds=300)


def _with_header(data: bytes, **fields: int) -> bytes:
    names = ("version", "reserved", "length", "current", "previous", "query", "unchanged")
    values = dict(zip(names, struct.unpack_from("<HHIHHHH", data), strict=True))
    values.update(fields)
    return struct.pack("<HHIHHHH", *(values[n] for n in names)) + data[16:]


DSI_LEN = len(DSI_BLOB)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter than the 16-byte header"),
        (DSI_BLOB[:15], "shorter than the 16-byte header"),
        (_with_header(DSI_BLOB, version=2), "version 2"),
        (DSI_BLOB[:-1], "length field"),
        (DSI_BLOB + b"\0", "length field"),
        (_with_header(DSI_BLOB, current=0), "no current password"),
        (_with_header(DSI_BLOB, current=8), "current password offset 8 is out of range"),
        (_with_header(DSI_BLOB, current=DSI_LEN), "current password offset"),
        (DSI_BLOB[:272] + b"\x01\x00" + DSI_BLOB[274:], "no NUL terminator before offset 274"),
        (_with_header(DSI_BLOB, current=17), "no NUL terminator"),
        (_with_header(DSI_BLOB, current=16 + 256), "current password is empty"),
        (_with_header(DSI_BLOB, previous=DSI_LEN + 2), "previous password offset"),
        (_with_header(DSI_BLOB, query=DSI_LEN - 4), "query password interval offset"),
        (_with_header(DSI_BLOB, unchanged=4), "unchanged password interval offset"),
        (DSI_BLOB[:-8] + b"\xff" * 8, "implausibly large"),
    ],
)
def test_malformed_blobs(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedBlobError) as caught:
        ManagedPasswordBlob.unpack(data)
    message = str(caught.value)
    assert reason in message
    assert message.startswith("malformed msDS-ManagedPassword blob: ")
    assert "\n" not in message
    assert isinstance(caught.value, InputError) and caught.value.exit_code == 2


# Passwords as a DC makes them: UTF-16 code units, never 0x0000 (MS-GKDI post-processing).
passwords = st.lists(st.integers(min_value=1, max_value=0xFFFF), min_size=1, max_size=140).map(
    lambda units: struct.pack(f"<{len(units)}H", *units)
)
intervals = st.integers(min_value=0, max_value=10**15).map(lambda us: timedelta(microseconds=us))
blobs = st.builds(
    ManagedPasswordBlob,
    current_password=passwords,
    previous_password=st.none() | passwords,
    query_password_interval=intervals,
    unchanged_password_interval=intervals,
)


@given(blobs)
def test_pack_unpack_round_trip(blob: ManagedPasswordBlob) -> None:
    packed = blob.pack()
    assert ManagedPasswordBlob.unpack(packed) == blob
    assert ManagedPasswordBlob.unpack(packed).pack() == packed


def _assert_no_leak(message: str, blob: ManagedPasswordBlob) -> None:
    assert message.isascii() and "\n" not in message and len(message) < 200
    for secret in (blob.current_password, blob.previous_password):
        if secret is None or len(secret) < 4:
            continue
        assert secret[:4].hex() not in message
        assert secret[:4] not in message.encode("ascii")
        assert secret.decode("utf-16-le", "replace")[:2] not in message or len(secret) < 8


@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_malformed_blob_error(data: bytes) -> None:
    try:
        ManagedPasswordBlob.unpack(data)
    except MalformedBlobError as exc:
        assert str(exc).isascii()


@given(blobs, st.data())
def test_mutated_blobs_raise_only_malformed_blob_error_without_leaking(
    blob: ManagedPasswordBlob, data: st.DataObject
) -> None:
    packed = bytearray(blob.pack())
    mutation = data.draw(st.sampled_from(["flip", "truncate", "extend", "header"]))
    if mutation == "flip":
        for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
            position = data.draw(st.integers(min_value=0, max_value=len(packed) - 1))
            packed[position] = data.draw(st.integers(min_value=0, max_value=255))
    elif mutation == "truncate":
        del packed[data.draw(st.integers(min_value=0, max_value=len(packed) - 1)) :]
    elif mutation == "extend":
        packed += data.draw(st.binary(min_size=1, max_size=8))
    else:
        position = data.draw(st.integers(min_value=0, max_value=15))
        packed[position] = data.draw(st.integers(min_value=0, max_value=255))
    try:
        ManagedPasswordBlob.unpack(bytes(packed))
    except MalformedBlobError as exc:
        _assert_no_leak(str(exc), blob)
        _assert_no_leak(repr(exc), blob)


@pytest.mark.parametrize(
    "blob",
    [
        ManagedPasswordBlob(b"", None, timedelta(0), timedelta(0)),
        ManagedPasswordBlob(b"abc", None, timedelta(0), timedelta(0)),
        ManagedPasswordBlob(b"a\0\0\0", None, timedelta(0), timedelta(0)),
        ManagedPasswordBlob(b"ab", b"", timedelta(0), timedelta(0)),
        ManagedPasswordBlob(b"ab", None, timedelta(seconds=-1), timedelta(0)),
        ManagedPasswordBlob(b"ab" * 40000, None, timedelta(0), timedelta(0)),
    ],
)
def test_pack_refuses_values_no_dc_sends(blob: ManagedPasswordBlob) -> None:
    with pytest.raises(ValueError):
        blob.pack()


def test_password_utf8_munging() -> None:
    # Samba UTF16_MUNGED: lone surrogates -> U+FFFD, pairs kept, 0x0000 -> U+0001.
    raw = struct.pack("<6H", 0x0041, 0xD800, 0xD83D, 0xDE00, 0xDC00, 0x0000)
    assert password_utf8(raw) == "A\ufffd\U0001f600\ufffd\x01".encode()
    with pytest.raises(ValueError):
        password_utf8(b"abc")


def test_nt_hash_of_raw_bytes() -> None:
    # NT hash of "password": MD4 over its UTF-16LE form.
    assert nt_hash("password".encode("utf-16-le")).hex() == "8846f7eaee8fb117ad06bdd830b7586c"


NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_rotation_state_outside_window() -> None:
    blob = ManagedPasswordBlob(b"ab", b"cd", timedelta(days=2), timedelta(days=2) - FIVE_MINUTES)
    state = rotation_state(blob, NOW)
    assert not state.in_pre_rotation_window
    assert state.next_rotation == NOW + timedelta(days=2)
    assert state.refresh_at == NOW + timedelta(days=2) - FIVE_MINUTES
    assert state.kvnos(7) == (7, 6)


def test_rotation_state_inside_window() -> None:
    # Samba gmsa_recalculate_managed_pwd: inside the window Unchanged = Query + rollover - 5 min.
    query = timedelta(minutes=3)
    blob = ManagedPasswordBlob(b"ab", b"cd", query, query + timedelta(days=30) - FIVE_MINUTES)
    state = rotation_state(blob, NOW)
    assert state.in_pre_rotation_window
    assert state.next_rotation == NOW + query
    assert state.refresh_at == NOW + query
    assert state.kvnos(7) == (8, 7)


def test_rotation_state_needs_aware_time() -> None:
    blob = ManagedPasswordBlob.unpack(DSI_BLOB)
    with pytest.raises(ValueError):
        rotation_state(blob, datetime(2026, 1, 1))
