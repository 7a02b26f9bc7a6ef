"""MS-GKDI derivation against published vectors (DSInternals, Samba) and the reference notes."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credo.gmsa import gkdi
from credo.gmsa.gkdi import GkdiError, Gkid, KdsRootKey
from credo.gmsa.password_id import ManagedPasswordId
from credo.krb.keys import nt_hash

# DSInternals Src/DSInternals.Common.Test/KdsRootKeyTester.cs (MichaelGrafnetter/DSInternals).
DSI_KDF_PARAM = bytes.fromhex("00000000010000000e000000000000005300480041003500310032000000")
DSI_ROOT_KEY = KdsRootKey(
    uuid.UUID("7dc95c96-fa85-183a-dff5-f70696bf0b11"),
    bytes.fromhex(
        "814ad2f3928ff96d3650487967392feab3924f3d0dff8629d46a723640101cff"
        "8ca2cbd6aba40805cf03b380803b27837d80663eb4d18fd4cec414ebb2271fe2"
    ),
    "SHA512",
)
DSI_L0_361 = bytes.fromhex(
    "76d7341bbf6f85f439a14d3f68c6de31a83d2c55b1371c9c122f5b6f0eccff28"
    "2973da43349da2b21a0a89b050b49e9ace951323f27638ccbfce8b6a0ead782b"
)
DSI_SID = "S-1-5-21-2468531440-3719951020-3687476655-1109"
DSI_TIME = 133387453261266352
DSI_NT = "0b5fbfb646dd7bce4f160ad69edb86ba"
DSI_PASSWORD_ID = bytes.fromhex(
    "010000004b44534b02000000690100001a00000018000000965cc97d85fa3a18dff5f70696bf0b11"
    "00000000180000001800000063006f006e0074006f0073006f002e0063006f006d000000"
    "63006f006e0074006f0073006f002e0063006f006d000000"
)
DSI4_ROOT_KEY = KdsRootKey(
    uuid.UUID("0670b5ed-f2aa-9a86-dd0e-49cfc2130533"),
    bytes.fromhex(
        "902bc244751f7cfb1bbafff7586585d467496953da553fd3decae08421b6c0ab"
        "5f60637541655b8be90fa319e24041875eccd465e253ceba238e1d475c80f64b"
    ),
)

# Samba lib/crypto/test_gkdi.c::test_password_based_on_key_id (samba-team/samba).
SAMBA_ROOT_KEY = KdsRootKey(
    uuid.UUID("0170e972-a035-af4c-993b-e052d5bd1216"),
    bytes([
        152, 203, 215, 84, 113, 216, 118, 177, 81, 128, 50, 160, 148,
        132, 82, 244, 65, 179, 164, 219, 209, 14, 33, 131, 178, 193,
        80, 248, 126, 23, 66, 227, 45, 221, 171, 12, 247, 15, 62,
        179, 164, 217, 123, 179, 106, 118, 228, 74, 12, 2, 241, 229,
        139, 55, 237, 155, 220, 122, 200, 245, 129, 222, 37, 15,
    ]),
)  # fmt: skip
SAMBA_SID = "S-1-5-21-4119591868-3001629103-3445594911-48026"
SAMBA_EXPECTED = bytes([
    114, 92, 31, 204, 138, 249, 1, 76, 192, 65, 52, 248, 247,
    191, 30, 213, 25, 38, 81, 21, 183, 167, 154, 102, 190, 234,
    234, 116, 114, 18, 141, 208, 143, 38, 178, 115, 195, 26, 199,
    214, 176, 229, 128, 160, 147, 249, 245, 67, 165, 191, 192, 78,
    224, 50, 115, 8, 207, 124, 178, 121, 67, 135, 125, 113, 79,
    0, 131, 43, 74, 48, 171, 239, 183, 228, 50, 212, 202, 215,
    188, 182, 94, 127, 117, 217, 91, 17, 90, 80, 158, 176, 204,
    151, 244, 107, 139, 65, 94, 148, 216, 212, 97, 53, 54, 253,
    6, 201, 94, 93, 250, 213, 12, 82, 162, 246, 197, 254, 205,
    8, 19, 153, 66, 72, 60, 167, 28, 65, 39, 218, 147, 82,
    162, 11, 177, 78, 231, 200, 66, 121, 9, 196, 240, 7, 148,
    190, 151, 96, 214, 246, 7, 110, 85, 0, 246, 28, 121, 3,
    61, 212, 204, 101, 153, 121, 100, 91, 65, 28, 225, 241, 123,
    115, 105, 138, 74, 187, 74, 188, 59, 17, 201, 229, 158, 170,
    184, 141, 237, 179, 246, 135, 104, 204, 56, 228, 156, 182, 26,
    90, 151, 147, 25, 142, 47, 172, 183, 165, 222, 240, 95, 63,
    79, 88, 35, 205, 76, 26, 229, 107, 46, 16, 202, 102, 196,
    18, 140, 211, 242, 226, 198, 154, 97, 199, 44, 220, 186, 76,
    215, 54, 196, 44, 140, 145, 252, 99, 229, 179, 74, 150, 154,
    70, 226, 45, 122, 156, 156, 75, 83, 24,
])  # fmt: skip


def test_parse_kdf_parameters_sha512() -> None:
    assert gkdi.parse_kdf_parameters(DSI_KDF_PARAM) == "SHA512"


@pytest.mark.parametrize("blob", [b"", DSI_KDF_PARAM[:-2], DSI_KDF_PARAM[:16] + "MD5\0".encode("utf-16-le")])
def test_parse_kdf_parameters_rejects(blob: bytes) -> None:
    with pytest.raises(GkdiError):
        gkdi.parse_kdf_parameters(blob)


def test_dsinternals_l0_key() -> None:
    assert gkdi.l0_seed_key(DSI_ROOT_KEY, 361) == DSI_L0_361


def test_gkid_from_filetime() -> None:
    # gmsa-on-linux.md section 4: FILETIME 133387453261266352 -> (361, 26, 24).
    assert Gkid.from_filetime(DSI_TIME) == Gkid(361, 26, 24)


def test_gkid_samba_interval_ids() -> None:
    # Samba lib/crypto/test_gkdi.c::test_get_interval_id and test_get_key_start_time.
    cycle = gkdi.KEY_CYCLE_DURATION
    assert Gkid.from_filetime(0) == Gkid(0, 0, 0)
    assert Gkid.from_filetime(cycle - 1) == Gkid(0, 0, 0)
    assert Gkid.from_filetime(cycle) == Gkid(0, 0, 1)
    assert Gkid.from_filetime(32 * cycle) == Gkid(0, 1, 0)
    assert Gkid.from_filetime(((1234 * 32 + 8) * 32 + 13) * cycle) == Gkid(1234, 8, 13)
    assert Gkid.from_filetime(2**63 - 1) == Gkid(25019, 31, 29)
    assert Gkid.from_filetime(2**64 - 1) == Gkid(50039, 31, 27)
    assert Gkid(123, 18, 2).start_filetime() == 126530 * cycle


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_gkid_start_is_within_interval(filetime: int) -> None:
    gkid = Gkid.from_filetime(filetime)
    assert gkid.start_filetime() <= filetime < gkid.start_filetime() + gkdi.KEY_CYCLE_DURATION


def test_dsinternals_password_vector1_by_time() -> None:
    password = gkdi.gmsa_password(DSI_ROOT_KEY, Gkid.from_filetime(DSI_TIME), DSI_SID)
    assert len(password) == gkdi.GMSA_PASSWORD_LENGTH
    assert nt_hash(password).hex() == DSI_NT


def test_dsinternals_password_vector2_interval_from_pwd_last_set() -> None:
    gkid = gkdi.interval_gkid(DSI_TIME, 133403352475182719, 30)
    assert nt_hash(gkdi.gmsa_password(DSI_ROOT_KEY, gkid, DSI_SID)).hex() == DSI_NT


def test_dsinternals_password_vector3_by_password_id() -> None:
    password_id = ManagedPasswordId.unpack(DSI_PASSWORD_ID)
    assert password_id.root_key_id == DSI_ROOT_KEY.key_id
    password = gkdi.gmsa_password(DSI_ROOT_KEY, password_id.gkid, DSI_SID)
    assert nt_hash(password).hex() == DSI_NT


def test_dsinternals_password_vector4_when_created_plus_30_day_cycles() -> None:
    gkid = gkdi.interval_gkid(133211195280000000, 133404554396754922, 30)
    password = gkdi.gmsa_password(DSI4_ROOT_KEY, gkid, "S-1-5-21-1040335485-253814736-2627409954-1145")
    assert nt_hash(password).hex() == "e510057c721830f0b27482833cff4986"


def test_samba_password_based_on_key_id() -> None:
    assert gkdi.gmsa_password(SAMBA_ROOT_KEY, Gkid(362, 0, 23), SAMBA_SID) == SAMBA_EXPECTED


def test_sid_as_bytes_is_accepted() -> None:
    sid = gkdi.sid_to_bytes(SAMBA_SID)
    assert gkdi.gmsa_password(SAMBA_ROOT_KEY, Gkid(362, 0, 23), sid) == SAMBA_EXPECTED


def test_sid_to_bytes() -> None:
    # S-1-5-18 (LocalSystem), MS-DTYP 2.4.2.2 binary form.
    assert gkdi.sid_to_bytes("S-1-5-18") == bytes.fromhex("010100000000000512000000")
    for bad in ("", "S-2-5", "S-1-5-x", "S-1-5-4294967296"):
        with pytest.raises(GkdiError):
            gkdi.sid_to_bytes(bad)


def test_security_descriptor_constant() -> None:
    sd = gkdi.GMSA_SECURITY_DESCRIPTOR
    assert sd[:4] == b"\x01\x00\x04\x80"  # revision 1, SE_SELF_RELATIVE | SE_DACL_PRESENT
    assert sd.endswith(gkdi.sid_to_bytes("S-1-5-18"))  # owner SY
    assert gkdi.sid_to_bytes("S-1-5-9") in sd  # ACE for Enterprise Domain Controllers


@pytest.mark.parametrize(("days", "hours"), [(0, 0), (1, 20), (2, 40), (3, 70), (4, 90), (5, 120), (30, 720)])
def test_rollover_interval(days: int, hours: int) -> None:
    # Samba lib/crypto/test_gkdi.c::test_gkdi_rollover_interval; gmsa-on-linux.md section 4.
    assert gkdi.rollover_interval(days) == hours * 36_000_000_000


def test_rollover_interval_rejects_negative() -> None:
    with pytest.raises(GkdiError):
        gkdi.rollover_interval(-1)


def test_post_process_replaces_nul_code_units_only() -> None:
    assert (
        gkdi.post_process_password(b"\x00\x00\x4f\x00\x00\x83\x00\x00") == b"\x01\x00\x4f\x00\x00\x83\x01\x00"
    )


@given(st.binary(max_size=64).map(lambda b: b[: len(b) // 2 * 2]))
def test_post_process_leaves_no_terminator(data: bytes) -> None:
    out = gkdi.post_process_password(data)
    assert len(out) == len(data)
    assert all(out[i : i + 2] != b"\0\0" for i in range(0, len(out), 2))


def test_root_key_repr_hides_data() -> None:
    assert DSI_ROOT_KEY.data.hex() not in repr(DSI_ROOT_KEY)
    assert "814ad2" not in repr(DSI_ROOT_KEY)


def test_invalid_gkid() -> None:
    for bad in ((0, 32, 0), (0, 0, 32), (-1, 0, 0), (0, -1, 0)):
        with pytest.raises(GkdiError):
            Gkid(*bad)
