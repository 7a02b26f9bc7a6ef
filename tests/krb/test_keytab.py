"""Keytabs written through pykrb5, checked with MIT ``klist -kteK``."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from credo.errors import EnvironmentProblem, InputError
from credo.krb.keys import derive_keys
from credo.krb.keytab import KeytabEntry, read_keytab, write_keytab_atomically

REALM = "EXAMPLE.TEST"
GMSA = f"svcweb$@{REALM}"
SPN = f"HTTP/web.example.test@{REALM}"
OTHER = f"host/worker1.example.test@{REALM}"
LINE = re.compile(r"^\s*(\d+)\s+\S+\s+\S+\s+(\S+)\s+\(([^)]+)\)\s+\(0x([0-9a-f]+)\)\s*$")


def klist(path: Path) -> list[tuple[int, str, str, str]]:
    """(kvno, principal, enctype name, key hex) per entry, as MIT klist prints them."""
    out = subprocess.run(
        ["klist", "-kteK", f"FILE:{path}"], capture_output=True, text=True, check=True
    ).stdout
    rows = []
    for line in out.splitlines():
        match = LINE.match(line)
        if match:
            rows.append((int(match[1]), match[2], match[3], match[4]))
    return rows


def entry(principal: str, kvno: int, enctype: int, fill: int) -> KeytabEntry:
    return KeytabEntry(principal, kvno, enctype, bytes([fill]) * (32 if enctype == 18 else 16))


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if ".credo-" in p.name]


def test_write_and_list_with_klist(tmp_path: Path) -> None:
    keytab = tmp_path / "gmsa.keytab"
    # gmsad tests/test_enctypes.py vector, written for kvno 3 (current) with AES256 and AES128.
    keys = derive_keys("tutu1234".encode("utf-16-le"), "WINDOMAIN.LOCALtest_machine", [18, 17, 23])
    write_keytab_atomically(keytab, [KeytabEntry(GMSA, 3, k.enctype, k.key) for k in keys])
    assert klist(keytab) == [
        (
            3,
            GMSA,
            "aes256-cts-hmac-sha1-96",
            "71feac63d2d2507fe42a32460cb6df23686fcc426bc01d1821b6ef5773581852",
        ),
        (3, GMSA, "aes128-cts-hmac-sha1-96", "b07d074a8c11fbc2de8260944ea8a9f2"),
        (3, GMSA, "DEPRECATED:arcfour-hmac", keys[2].key.hex()),
    ]
    assert stat.S_IMODE(keytab.stat().st_mode) == 0o600
    assert leftovers(tmp_path) == []


def test_read_back(tmp_path: Path) -> None:
    keytab = tmp_path / "k"
    entries = [entry(GMSA, 2, 18, 1), entry(GMSA, 1, 18, 2), entry(SPN, 2, 17, 3)]
    write_keytab_atomically(keytab, entries)
    read = read_keytab(keytab)
    assert [(e.principal, e.kvno, e.enctype, e.key) for e in read] == [
        (e.principal, e.kvno, e.enctype, e.key) for e in entries
    ]
    assert all(e.timestamp for e in read)
    assert read_keytab(tmp_path / "missing") == []


def test_replaces_own_principals_and_keeps_others(tmp_path: Path) -> None:
    keytab = tmp_path / "k"
    write_keytab_atomically(keytab, [entry(OTHER, 5, 18, 9)])
    write_keytab_atomically(keytab, [entry(GMSA, 1, 18, 1), entry(SPN, 1, 18, 1)])
    assert {(r[0], r[1]) for r in klist(keytab)} == {(5, OTHER), (1, GMSA), (1, SPN)}
    before = {e.principal: e.timestamp for e in read_keytab(keytab)}

    write_keytab_atomically(keytab, [entry(GMSA, 2, 18, 2), entry(GMSA, 1, 18, 1)])
    rows = klist(keytab)
    assert {(r[0], r[1]) for r in rows} == {(5, OTHER), (1, SPN), (2, GMSA), (1, GMSA)}
    assert ("02" * 32) in {r[3] for r in rows if r[1] == GMSA}
    after = {e.principal: e.timestamp for e in read_keytab(keytab)}
    assert after[OTHER] == before[OTHER]  # carried-over entries keep their timestamp

    # Principals compare case-insensitively, as in AD: SVCWEB$ replaces svcweb$.
    write_keytab_atomically(keytab, [entry(GMSA.upper(), 3, 18, 3)])
    assert {(r[0], r[1]) for r in klist(keytab)} == {(5, OTHER), (1, SPN), (3, GMSA.upper())}
    assert leftovers(tmp_path) == []


def test_keep_other_principals_false(tmp_path: Path) -> None:
    keytab = tmp_path / "k"
    write_keytab_atomically(keytab, [entry(OTHER, 5, 18, 9)])
    write_keytab_atomically(keytab, [entry(GMSA, 1, 17, 1)], keep_other_principals=False)
    assert [(r[0], r[1]) for r in klist(keytab)] == [(1, GMSA)]


def test_large_kvno(tmp_path: Path) -> None:
    keytab = tmp_path / "k"
    write_keytab_atomically(keytab, [entry(GMSA, 300, 18, 1)])
    assert klist(keytab)[0][0] == 300
    assert read_keytab(keytab)[0].kvno == 300


def test_owner(tmp_path: Path) -> None:
    keytab = tmp_path / "k"
    uid, gid = (1, 1) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    write_keytab_atomically(keytab, [entry(GMSA, 1, 18, 1)], owner_uid=uid, owner_gid=gid)
    info = keytab.stat()
    assert (info.st_uid, info.st_gid) == (uid, gid)
    assert stat.S_IMODE(info.st_mode) == 0o600


def test_principal_without_realm_is_refused_and_file_untouched(tmp_path: Path) -> None:
    keytab = tmp_path / "k"
    write_keytab_atomically(keytab, [entry(OTHER, 5, 18, 9)])
    before = keytab.read_bytes()
    with pytest.raises(InputError):
        write_keytab_atomically(keytab, [entry("svcweb$", 1, 18, 1)])
    assert keytab.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_corrupt_existing_keytab(tmp_path: Path) -> None:
    keytab = tmp_path / "k"
    keytab.write_bytes(b"not a keytab")
    with pytest.raises(EnvironmentProblem):
        write_keytab_atomically(keytab, [entry(GMSA, 1, 18, 1)])
    assert keytab.read_bytes() == b"not a keytab"
    assert leftovers(tmp_path) == []


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem):
        write_keytab_atomically(tmp_path / "nope" / "k", [entry(GMSA, 1, 18, 1)])


def test_entry_repr_hides_the_key() -> None:
    text = repr(entry(GMSA, 1, 18, 0xAB))
    assert "abab" not in text.lower() and "\\xab" not in text and "key=" not in text
