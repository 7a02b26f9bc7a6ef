"""The audit log's chain: canonical encoding, export lines, verification, PostgreSQL trigger."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credo.automation.auditlog import (
    APPEND_ONLY_TRIGGER_DROP_SQL,
    APPEND_ONLY_TRIGGER_SQL,
    GENESIS,
    AuditEntry,
    AuditOutcome,
    AuditRecord,
    append,
    canonical,
    from_json_line,
    to_json_line,
    verify,
    verify_lines,
)
from credo.errors import InputError
from tests.server.conftest import postgres_url  # noqa: F401  (the private PostgreSQL cluster)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def entry(i: int = 0, **kw: object) -> AuditEntry:
    base: dict[str, object] = {
        "time": T0 + timedelta(seconds=i),
        "actor": "CORP\\jdoe",
        "source": "192.0.2.10",
        "action": "job.start",
        "target": f"job/{i}",
        "outcome": "ok",
        "details": {"runbook": "hello", "n": i, "tags": ["a", "ü"]},
    }
    base.update(kw)
    return AuditEntry(**base)  # type: ignore[arg-type]


def chain(n: int) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    for i in range(n):
        records.append(append(records[-1] if records else None, entry(i)))
    return records


def test_first_record_and_documented_hash() -> None:
    first = append(None, entry())
    assert first.seq == 1 and first.prev == GENESIS
    # The hash is SHA-256 over the documented canonical form, computed here independently.
    body = (
        '{"action":"job.start","actor":"CORP\\\\jdoe","details":{"n":0,"runbook":"hello","tags":["a","ü"]},'
        '"outcome":"ok","prev":"' + GENESIS + '","seq":1,"source":"192.0.2.10","target":"job/0",'
        '"time":"2026-05-01T12:00:00.000000Z"}'
    )
    assert canonical(first.body()) == body.encode()
    assert first.hash == hashlib.sha256(body.encode()).hexdigest()


def test_time_is_stored_in_utc() -> None:
    local = datetime(2026, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    assert append(None, entry(time=local)).body()["time"] == "2026-05-01T12:00:00.000000Z"
    with pytest.raises(ValueError, match="aware"):
        entry(time=datetime(2026, 5, 1))


@pytest.mark.parametrize(
    ("details", "words"),
    [
        ({"ratio": 0.5}, "floats"),
        ({"n": 2**60}, r"2\^53"),
        ({"password": "x"}, "secret"),
        ({"nested": {"api_token": "x"}}, "secret"),
        ({"when": datetime(2026, 1, 1)}, "not JSON"),
    ],
)
def test_details_refused(details: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        entry(details=details)


def test_json_lines_round_trip_and_verify() -> None:
    records = chain(5)
    lines = [to_json_line(r) for r in records]
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    assert [from_json_line(line) for line in lines] == records
    result = verify_lines(lines)
    assert (
        result.ok and result.count == 5 and result.anchor == GENESIS and result.last_hash == records[-1].hash
    )
    # Each line is itself canonical: sorted keys, no blanks.
    data = json.loads(lines[0])
    assert lines[0] == json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def test_changed_record_is_found() -> None:
    records = chain(5)
    records[2] = replace(records[2], entry=replace(records[2].entry, outcome=AuditOutcome.DENIED))
    result = verify(records)
    assert (result.ok, result.index, result.reason) == (
        False,
        2,
        "seq 3: hash does not match the record (changed)",
    )


def test_changed_record_with_recomputed_hash_breaks_the_next_link() -> None:
    records = chain(5)
    forged = append(records[1], replace(records[2].entry, actor="CORP\\someone-else"))
    records[2] = forged
    result = verify(records)
    assert result.index == 3 and result.reason == "seq 4: prev is not the hash of seq 3"


def test_removed_and_reordered_records_are_found() -> None:
    records = chain(5)
    assert verify(records[:2] + records[3:]).reason == "seq 4 follows seq 2 (missing or reordered)"
    swapped = [records[0], records[2], records[1], *records[3:]]
    assert verify(swapped).index == 1
    assert verify(records[1:]).reason == "seq 2: the first record does not start the log"


def test_export_since_verifies_from_its_anchor() -> None:
    records = chain(6)
    tail = records[3:]
    assert verify(tail, anchor=None).ok
    assert verify(tail, anchor=None).anchor == records[2].hash
    assert verify(tail, anchor=records[2].hash).ok
    assert verify(tail, anchor=records[1].hash).reason == "seq 4: prev is not the anchor"


def test_bad_lines() -> None:
    lines = [to_json_line(r) for r in chain(3)]
    broken = [*lines[:2], "{not json\n"]
    result = verify_lines(broken)
    assert result.index == 2 and result.reason is not None and result.reason.startswith("line 3: not JSON")
    data = json.loads(lines[1])
    del data["source"]
    assert "fields must be" in (verify_lines([lines[0], json.dumps(data)]).reason or "")
    with pytest.raises(InputError, match="prev must be"):
        from_json_line(json.dumps({**json.loads(lines[0]), "prev": "x"}))
    assert verify_lines(["\n", lines[0], "  \n"]).ok  # blank lines are skipped
    assert verify([]).ok and verify([]).count == 0


@given(
    st.lists(
        st.tuples(
            st.text(max_size=20),
            st.sampled_from(list(AuditOutcome)),
            st.dictionaries(
                st.text(max_size=5).filter(
                    lambda k: (
                        "token" not in k.lower()
                        and "secret" not in k.lower()
                        and "pass" not in k.lower()
                        and "ticket" not in k.lower()
                        and "keytab" not in k.lower()
                        and "credential" not in k.lower()
                        and "private" not in k.lower()
                    )
                ),
                st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=10) | st.booleans() | st.none(),
                max_size=4,
            ),
        ),
        min_size=1,
        max_size=8,
    ),
    st.data(),
)
def test_any_single_change_is_detected(items: list[tuple[str, AuditOutcome, dict[str, object]]], data: st.DataObject) -> None:  # fmt: skip
    records: list[AuditRecord] = []
    for i, (actor, outcome, details) in enumerate(items):
        records.append(
            append(records[-1] if records else None, entry(i, actor=actor, outcome=outcome, details=details))
        )
    lines = [to_json_line(r) for r in records]
    assert verify_lines(lines).ok
    i = data.draw(st.integers(0, len(records) - 1))
    target = json.loads(lines[i])
    field = data.draw(st.sampled_from(["actor", "action", "target", "source", "outcome", "time", "details"]))
    new_value = {"outcome": "failed" if target["outcome"] != "failed" else "ok",
                 "time": "2000-01-01T00:00:00.000000Z", "details": {"changed": True}}.get(field, str(target[field]) + "x")  # fmt: skip
    target[field] = new_value
    lines[i] = json.dumps(target, ensure_ascii=False) + "\n"
    result = verify_lines(lines)
    assert not result.ok and result.index == i


# --- the PostgreSQL trigger ------------------------------------------------------------------


def test_postgresql_refuses_update_delete_and_truncate(postgres_url: str) -> None:  # noqa: F811
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS audit_log")
        conn.execute(
            "CREATE TABLE audit_log (seq bigint PRIMARY KEY, record text NOT NULL, hash text NOT NULL)"
        )
        conn.execute(APPEND_ONLY_TRIGGER_SQL)
        for r in chain(3):
            conn.execute("INSERT INTO audit_log VALUES (%s, %s, %s)", (r.seq, to_json_line(r), r.hash))
        for statement in ("UPDATE audit_log SET hash = 'x' WHERE seq = 2", "DELETE FROM audit_log WHERE seq = 3",
                          "TRUNCATE audit_log"):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                conn.execute(statement)
        rows = conn.execute("SELECT record FROM audit_log ORDER BY seq").fetchall()
        assert verify_lines([row[0] for row in rows]).ok and len(rows) == 3
        # Appending still works; the downgrade removes the triggers.
        r4 = append(from_json_line(rows[-1][0]), entry(3))
        conn.execute("INSERT INTO audit_log VALUES (%s, %s, %s)", (r4.seq, to_json_line(r4), r4.hash))
        conn.execute(APPEND_ONLY_TRIGGER_DROP_SQL)
        conn.execute("DELETE FROM audit_log")
        conn.execute("DROP TABLE audit_log")
