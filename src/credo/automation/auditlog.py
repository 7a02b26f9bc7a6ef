"""The audit log: one record per state-changing call, chained by SHA-256 (no I/O here).

Record
------
``seq`` (1, 2, ...), ``time`` (UTC), ``actor`` (``CORP\\jdoe``, ``token:deploy``, ``admin``,
``webhook:name``), ``source`` (the client's address), ``action`` (``job.start``,
``schedule.create``...), ``target`` (``runbook/hello``, ``job/<id>``), ``outcome`` (``ok``,
``denied``, ``failed``), ``details`` (a JSON object: names and ids, never a secret), ``prev``
(the previous record's hash) and ``hash``.

Canonical encoding and chain
----------------------------
A record's canonical form is the JSON object of all its fields but ``hash``, encoded as UTF-8
with keys sorted (by code point), no blanks (separators ``,`` and ``:``), non-ASCII characters
as themselves, and ``time`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``. ``details`` may hold strings,
integers (|n| < 2^53), booleans, null, lists and objects: no floats, whose text differs between
encoders. ``hash`` is the lowercase hex SHA-256 of the canonical form; ``prev`` of the first
record is 64 zeros (``GENESIS``). Changing, removing, inserting or reordering a record changes
a hash that a later record names, so ``verify`` finds the first place the chain breaks.

JSON lines export
-----------------
One record per line: its canonical form with ``hash`` added (still sorted, still canonical),
ending in ``\\n``. An export that starts after the first record (``--since``) is verified from
its first record's ``prev`` (the *anchor*): compare that with the hash of the same ``seq`` in
an earlier export to join the two.

In the database the table is append-only: the application never updates or deletes, and in
PostgreSQL ``APPEND_ONLY_TRIGGER_SQL`` makes the server refuse it. The table's owner could still
drop the triggers; the chain is what shows such a change afterwards.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from credo.errors import InputError

__all__ = [
    "APPEND_ONLY_TRIGGER_DROP_SQL",
    "APPEND_ONLY_TRIGGER_SQL",
    "AUDIT_TABLE",
    "GENESIS",
    "AuditEntry",
    "AuditOutcome",
    "AuditRecord",
    "Verification",
    "append",
    "canonical",
    "follow",
    "from_json_line",
    "to_json_line",
    "verify",
    "verify_lines",
]

GENESIS = "0" * 64
AUDIT_TABLE = "audit_log"
_MAX_SAFE_INT = 2**53 - 1
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
# Detail keys that would name a secret: refused, so that a careless caller fails in its tests
# rather than writing a password into an append-only table.
_SECRET_KEY_RE = re.compile(r"password|passwd|secret|token|ticket|keytab|credential|private", re.IGNORECASE)
_FIELDS = ("action", "actor", "details", "outcome", "prev", "seq", "source", "target", "time")


class AuditOutcome(enum.StrEnum):
    OK = "ok"
    DENIED = "denied"  # refused by authentication or RBAC
    FAILED = "failed"  # allowed, then failed (bad input, conflict, error)


def _check_details(value: Any, path: str) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise ValueError(f"audit details {path}: integer beyond 2^53")
        return
    if isinstance(value, float):
        raise ValueError(f"audit details {path}: floats have no canonical form; use a string or integer")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_details(item, f"{path}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"audit details {path}: keys are strings")
            if _SECRET_KEY_RE.search(key):
                raise ValueError(
                    f"audit details {path}.{key}: a secret's name; the audit log holds no secret"
                )
            _check_details(item, f"{path}.{key}")
        return
    raise ValueError(f"audit details {path}: {type(value).__name__} is not JSON")


@dataclass(frozen=True)
class AuditEntry:
    """What happened: the part of a record the server fills in."""

    time: datetime
    actor: str
    source: str
    action: str
    target: str
    outcome: AuditOutcome
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.time.tzinfo is None or self.time.utcoffset() is None:
            raise ValueError("audit time must be timezone-aware")
        object.__setattr__(self, "time", self.time.astimezone(UTC))
        object.__setattr__(self, "outcome", AuditOutcome(self.outcome))
        if not self.action:
            raise ValueError("an audit record needs an action")
        _check_details(dict(self.details), "details")


@dataclass(frozen=True)
class AuditRecord:
    """An entry in the chain: its position, the previous record's hash and its own."""

    seq: int
    entry: AuditEntry
    prev: str
    hash: str

    def body(self) -> dict[str, Any]:
        """The fields that are hashed (everything but ``hash``)."""
        e = self.entry
        return {
            "action": e.action,
            "actor": e.actor,
            "details": dict(e.details),
            "outcome": str(e.outcome),
            "prev": self.prev,
            "seq": self.seq,
            "source": e.source,
            "target": e.target,
            "time": e.time.strftime(_TIME_FORMAT),
        }


def canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _digest(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()


def append(previous: AuditRecord | None, entry: AuditEntry) -> AuditRecord:
    """The record that follows ``previous`` (None: the first record, after ``GENESIS``)."""
    if previous is None:
        return follow(0, GENESIS, entry)
    return follow(previous.seq, previous.hash, entry)


def follow(seq: int, hash: str, entry: AuditEntry) -> AuditRecord:
    """The record that follows the one numbered ``seq`` whose hash is ``hash`` ((0, GENESIS):
    the first record). A log's store needs to read no more of its tail than these two."""
    draft = AuditRecord(seq=seq + 1, entry=entry, prev=hash, hash="")
    return AuditRecord(seq=seq + 1, entry=entry, prev=hash, hash=_digest(draft.body()))


def to_json_line(record: AuditRecord) -> str:
    return canonical({**record.body(), "hash": record.hash}).decode() + "\n"


def from_json_line(line: str) -> AuditRecord:
    """Read one exported line (its hash is not checked here: ``verify`` does)."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(data, dict) or set(data) != {*_FIELDS, "hash"}:
        raise InputError(f"not an audit record: fields must be {', '.join((*_FIELDS, 'hash'))}")
    try:
        time = datetime.strptime(data["time"], _TIME_FORMAT).replace(tzinfo=UTC)
        entry = AuditEntry(
            time=time,
            actor=_str(data["actor"]),
            source=_str(data["source"]),
            action=_str(data["action"]),
            target=_str(data["target"]),
            outcome=AuditOutcome(data["outcome"]),
            details=data["details"] if isinstance(data["details"], dict) else _bad("details"),
        )
    except (TypeError, ValueError) as exc:
        raise InputError(f"not an audit record: {exc}") from None
    seq, prev, digest = data["seq"], data["prev"], data["hash"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise InputError("not an audit record: seq must be a positive integer")
    if not isinstance(prev, str) or not _HASH_RE.match(prev) or not isinstance(digest, str):
        raise InputError("not an audit record: prev must be 64 hex digits")
    return AuditRecord(seq=seq, entry=entry, prev=prev, hash=digest)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("actor, source, action and target are strings")
    return value


def _bad(name: str) -> Any:
    raise TypeError(f"{name} must be an object")


@dataclass(frozen=True)
class Verification:
    """The result of ``verify``: ``index`` (0-based) and ``reason`` of the first bad record."""

    count: int
    index: int | None = None
    reason: str | None = None
    anchor: str | None = None  # the prev of the first record: GENESIS for a full export
    last_hash: str | None = None

    @property
    def ok(self) -> bool:
        return self.index is None


def verify(records: Iterable[AuditRecord], anchor: str | None = GENESIS) -> Verification:
    """Check the chain: seq consecutive, each prev the previous hash, each hash the content's.

    ``anchor``: what the first record's prev must be (``GENESIS`` for a whole log); None takes
    the first record's prev as given (an export ``--since``).
    """
    previous: AuditRecord | None = None
    first_prev: str | None = None
    count = 0
    for index, record in enumerate(records):
        count = index + 1
        if previous is None:
            first_prev = record.prev
            if anchor is not None and record.prev != anchor:
                why = (
                    "the first record does not start the log"
                    if anchor == GENESIS
                    else "prev is not the anchor"
                )
                return Verification(count, index, f"seq {record.seq}: {why}", first_prev)
            if anchor == GENESIS and record.seq != 1:
                return Verification(count, index, f"seq {record.seq}: the log starts at 1", first_prev)
        else:
            if record.seq != previous.seq + 1:
                return Verification(
                    count,
                    index,
                    f"seq {record.seq} follows seq {previous.seq} (missing or reordered)",
                    first_prev,
                )
            if record.prev != previous.hash:
                return Verification(
                    count, index, f"seq {record.seq}: prev is not the hash of seq {previous.seq}", first_prev
                )
        if _digest(record.body()) != record.hash:
            return Verification(
                count, index, f"seq {record.seq}: hash does not match the record (changed)", first_prev
            )
        previous = record
    return Verification(count, None, None, first_prev, previous.hash if previous else None)


def verify_lines(lines: Iterable[str], anchor: str | None = GENESIS) -> Verification:
    """``verify`` over an export's lines; a line that does not parse is the first bad record."""
    parsed: list[AuditRecord] = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            parsed.append(from_json_line(line))
        except InputError as exc:
            head = verify(parsed, anchor)
            if not head.ok:
                return head
            return Verification(index + 1, index, f"line {index + 1}: {exc.message}", head.anchor)
    return verify(parsed, anchor)


# PostgreSQL 11+: refuse UPDATE, DELETE and TRUNCATE on the audit table (a row trigger does not
# fire for TRUNCATE, hence the statement trigger). SQLSTATE 42501 (insufficient_privilege).
APPEND_ONLY_TRIGGER_SQL = f"""
CREATE OR REPLACE FUNCTION credo_audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{AUDIT_TABLE} is append-only: % refused', TG_OP
        USING ERRCODE = '42501', HINT = 'audit records are never changed or removed';
END;
$$;
CREATE TRIGGER {AUDIT_TABLE}_append_only BEFORE UPDATE OR DELETE ON {AUDIT_TABLE}
    FOR EACH ROW EXECUTE FUNCTION credo_audit_log_append_only();
CREATE TRIGGER {AUDIT_TABLE}_no_truncate BEFORE TRUNCATE ON {AUDIT_TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION credo_audit_log_append_only();
"""

APPEND_ONLY_TRIGGER_DROP_SQL = f"""
DROP TRIGGER IF EXISTS {AUDIT_TABLE}_no_truncate ON {AUDIT_TABLE};
DROP TRIGGER IF EXISTS {AUDIT_TABLE}_append_only ON {AUDIT_TABLE};
DROP FUNCTION IF EXISTS credo_audit_log_append_only();
"""
