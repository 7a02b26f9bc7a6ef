"""Fuzzing the keytab and credential cache readers: files credo did not write (a host keytab, a
keytab whose other principals credo keeps, an administrator's ccache).

MIT krb5 parses them (pykrb5); credo turns what it reads into names. The files are built here
byte by byte in MIT's formats (keytab version 0x0502, FILE ccache version 4; MIT's
``doc/formats/keytab_file_format.rst`` and ``ccache_file_format.rst``), with principals whose
components are any bytes, then damaged: lengths set to boundary values, cut short, spans
deleted or duplicated.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from credo.ad.admin import _ccache_principal
from credo.errors import EnvironmentProblem
from credo.krb.keytab import read_keytab
from credo.krb.tgt import copy_ccache, destroy_ccache, keytab_principals
from tests.fuzz.helpers import FUZZ, mutated, typed_only

Fields = list[tuple[int, int]]


class _Writer:
    """Big-endian fields, remembering where each length field is (for the mutations)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.fields: Fields = []

    def int(self, value: int, size: int, *, length: bool = False) -> None:
        if length:
            self.fields.append((len(self.data), size))
        self.data += value.to_bytes(size, "big")

    def counted(self, value: bytes, size: int) -> None:
        self.int(len(value), size, length=True)
        self.data += value


Principal = tuple[bytes, list[bytes]]  # realm, components


def keytab(entries: list[tuple[Principal, int, int, bytes]]) -> tuple[bytes, Fields]:
    """A keytab (format 0x0502) of ``(principal, kvno, enctype, key)`` entries."""
    out = _Writer()
    out.data += b"\x05\x02"
    for (realm, components), kvno, enctype, key in entries:
        entry = _Writer()
        entry.int(len(components), 2, length=True)
        entry.counted(realm, 2)
        for component in components:
            entry.counted(component, 2)
        entry.int(1, 4)  # KRB5_NT_PRINCIPAL
        entry.int(1_700_000_000, 4)
        entry.int(kvno & 0xFF, 1)
        entry.int(enctype, 2)
        entry.counted(key, 2)
        entry.int(kvno, 4)
        out.fields.append((len(out.data), 4))
        base = len(out.data) + 4
        out.fields += [(base + offset, size) for offset, size in entry.fields]
        out.int(len(entry.data), 4)
        out.data += entry.data
    return bytes(out.data), out.fields


def _principal(out: _Writer, principal: Principal, name_type: int = 1) -> None:
    realm, components = principal
    out.int(name_type, 4)
    out.int(len(components), 4, length=True)
    out.counted(realm, 4)
    for component in components:
        out.counted(component, 4)


def ccache(client: Principal, tickets: list[Principal]) -> tuple[bytes, Fields]:
    """A FILE ccache (version 4) for ``client`` holding a credential for each of ``tickets``."""
    out = _Writer()
    out.int(0x0504, 2)
    out.int(12, 2, length=True)  # the header: one deltatime tag (KDC time offset)
    out.int(1, 2)
    out.int(8, 2, length=True)
    out.int(0, 8)
    _principal(out, client)
    for server in tickets:
        _principal(out, client)
        _principal(out, server, 2)
        out.int(18, 2)  # the session key: aes256-cts
        out.counted(b"k" * 32, 4)
        for time in (1, 1, 2**31 - 1, 2**31 - 1):  # authtime, starttime, endtime, renew_till
            out.int(time, 4)
        out.int(0, 1)  # is_skey
        out.int(0x40E10000, 4)  # ticket flags
        out.int(0, 4, length=True)  # addresses
        out.int(0, 4, length=True)  # authdata
        out.counted(b"T" * 40, 4)  # the ticket
        out.counted(b"", 4)  # the second ticket
    return bytes(out.data), out.fields


# Components and realms of any bytes: MIT keeps them as counted octet strings, not as UTF-8.
component = st.one_of(
    st.binary(max_size=12), st.sampled_from([b"svc$", b"HTTP", b"web.example.test", b"\xff\xfe"])
)
principals = st.tuples(
    st.one_of(st.binary(max_size=12), st.just(b"EXAMPLE.TEST")), st.lists(component, max_size=3)
)
keytabs = st.lists(
    st.tuples(principals, st.integers(0, 2**32 - 1), st.sampled_from([17, 18, 23, 0, 0xFFFF]), st.binary(max_size=40)),
    max_size=3,
).map(keytab)  # fmt: skip
ccaches = st.builds(ccache, principals, st.lists(principals, max_size=2))

VALID_KEYTAB, _ = keytab([((b"EXAMPLE.TEST", [b"svcweb$"]), 3, 18, b"k" * 32),
                          ((b"EXAMPLE.TEST", [b"HTTP", b"web.example.test"]), 2, 17, b"j" * 16)])  # fmt: skip
VALID_CCACHE, _ = ccache((b"EXAMPLE.TEST", [b"svcweb$"]), [(b"EXAMPLE.TEST", [b"krbtgt", b"EXAMPLE.TEST"])])
NON_UTF8_KEYTAB, _ = keytab([((b"EXAMPLE.TEST", [b"svc\xff"]), 3, 18, b"k" * 32)])
NON_UTF8_CCACHE, _ = ccache((b"EXAMPLE.TEST", [b"svc\xff"]), [])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-krb")


_names = itertools.count()


def _file(directory: Path, data: bytes) -> Path:
    path = directory / "input"
    path.write_bytes(data)
    return path


def _read_keytab(directory: Path, data: bytes) -> None:
    path = _file(directory, data)
    typed_only(read_keytab, path)
    result = typed_only(keytab_principals, f"FILE:{path}")
    assert isinstance(result, list | EnvironmentProblem)


@contextlib.contextmanager
def _default_ccache(path: Path) -> Iterator[None]:
    """KRB5CCNAME names ``path`` (an administrator's ccache is the default one) while inside."""
    saved = os.environ.get("KRB5CCNAME")
    os.environ["KRB5CCNAME"] = f"FILE:{path}"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["KRB5CCNAME"]
        else:
            os.environ["KRB5CCNAME"] = saved


def _read_ccache(directory: Path, data: bytes) -> None:
    path = _file(directory, data)
    with _default_ccache(path):
        typed_only(_ccache_principal)
    copy = f"MEMORY:credo-fuzz-{os.getpid()}-{next(_names)}"
    try:
        typed_only(copy_ccache, f"FILE:{path}", copy)
    finally:
        destroy_ccache(copy)


def test_the_builders_write_what_mit_reads(workdir: Path) -> None:
    path = _file(workdir, VALID_KEYTAB)
    assert [(e.principal, e.kvno, e.enctype) for e in read_keytab(path)] == [
        ("svcweb$@EXAMPLE.TEST", 3, 18),
        ("HTTP/web.example.test@EXAMPLE.TEST", 2, 17),
    ]
    path = _file(workdir, VALID_CCACHE)
    with _default_ccache(path):
        assert _ccache_principal() == "svcweb$@EXAMPLE.TEST"
    copy_ccache(f"FILE:{path}", "MEMORY:credo-fuzz-builders")  # every credential read back
    destroy_ccache("MEMORY:credo-fuzz-builders")


@pytest.mark.parametrize("data", [VALID_KEYTAB, VALID_CCACHE], ids=["keytab", "ccache"])
def test_truncated_at_every_length(workdir: Path, data: bytes) -> None:
    read = _read_keytab if data is VALID_KEYTAB else _read_ccache
    for end in range(len(data)):
        read(workdir, data[:end])


def _damaged(built: st.SearchStrategy[tuple[bytes, Fields]]) -> st.SearchStrategy[bytes]:
    return built.flatmap(lambda b: mutated(b[0], fields=tuple(b[1]), byteorder="big"))


@FUZZ
@given(
    st.one_of(
        _damaged(keytabs), st.binary(max_size=64), st.binary(max_size=64).map(lambda b: b"\x05\x02" + b)
    )
)
@example(NON_UTF8_KEYTAB)  # a principal that is not UTF-8: UnicodeDecodeError in keytab_principals
def test_keytabs(workdir: Path, data: bytes) -> None:
    _read_keytab(workdir, data)


@FUZZ
@given(
    st.one_of(
        _damaged(ccaches), st.binary(max_size=64), st.binary(max_size=64).map(lambda b: b"\x05\x04" + b)
    )
)
@example(NON_UTF8_CCACHE)  # a client principal that is not UTF-8: UnicodeDecodeError
def test_ccaches(workdir: Path, data: bytes) -> None:
    _read_ccache(workdir, data)
