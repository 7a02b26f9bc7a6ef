"""Session transcripts of a restricted endpoint: hash-chained JSON lines plus an asciicast v2 recording.

One session writes two sibling files under the transcript directory (``/var/log/credo/endpoints``,
or ``CREDO_TRANSCRIPT_DIR``), both created 0640 and only ever appended to:

    ENDPOINT-YYYYmmddTHHMMSSZ-RANDOM.jsonl   what happened: who, which roles, each command, refusals
    ENDPOINT-YYYYmmddTHHMMSSZ-RANDOM.cast    what the user saw: an asciicast v2 recording

The random part (12 hex digits) makes names unguessable, as PowerShell's transcript names are.

JSON lines format (one record a line, UTF-8, canonical JSON: sorted keys, no spaces)::

    line 1   {"type": "header", "format": "credo-transcript", "version": 1, "file": NAME, ...}
    line 2   {"type": "session-start", endpoint, principal, sid, source, roles, run_as, local_user}
    ...      {"type": "command-start", "command": N, "argv": [...]}     written before it runs
             {"type": "command-end", "command": N, exit_status, duration, bytes_out}  after it ended
             {"type": "refusal", "input": ..., "reason": ...}
    last     {"type": "session-end", reason, commands, refusals, "recording": {file, sha256, bytes}}

Every record carries ``seq`` (its line number minus one), ``time`` (ISO 8601 UTC), ``prev`` and
``hash``:

- ``prev`` is the SHA-256 (hex) of the previous line's bytes (without its newline). The header's
  ``prev`` is the SHA-256 of ``"credo-transcript:" + NAME``, and the header names its own file:
  a renamed file, or one whose first lines were cut off, no longer starts its chain correctly.
- ``hash`` is the SHA-256 of the record's canonical JSON without ``hash``, so that an edit of any
  line, the last one included, shows on that very line.

Durability: each record is one ``write(2)`` on an ``O_APPEND`` descriptor followed by ``fsync(2)``.
A command's "command-start" record is on disk before the command runs and its "command-end"
record right after it ends, so a ``kill -9`` of the session at any moment loses no record of a
command that ran (at worst its end is missing: ``verify`` reports the session as incomplete and
names the command without an end). The recording is fsynced at the end of each command and of the
session; its SHA-256 goes into the session-end record.

What ``verify`` decides (the first problem wins, reported with its 1-based line number):

- ``ok``: the chain is intact and ends with a session-end record whose recording hash matches.
- ``incomplete``: the chain is intact but stops before a session-end record (the session was
  killed, or the end of the file was cut off: the two look the same, since nothing follows the
  last line), possibly with a torn last line (no newline, not JSON). Not reported as tampering.
- ``tampered``: a line that is not a record, a record whose ``hash`` does not match its content
  (edited), a ``seq`` out of order (a line removed, inserted or moved), a ``prev`` that does not
  match the line before (a line replaced or inserted with a recomputed hash), a header that names
  another file (renamed), records after the session end, or a recording that does not match the
  hash the session end recorded.

Limit (stated, not hidden): the chain has no secret, so someone who may rewrite the whole file can
recompute every hash, and cutting off the end looks like a crash. The chain detects editing,
removing, inserting and reordering lines; anchoring the last hash elsewhere (a log host, the
journal) is what detects a rewrite.

The asciicast v2 format (https://docs.asciinema.org/manual/asciicast/v2/): the first line is a
header object with ``version`` 2, ``width``, ``height`` (integers) and optional ``timestamp``
(integer Unix time), ``command``, ``title``, ``env``; every further line is an event
``[seconds since start (float), code, data (string)]`` with code ``"o"`` (output) or ``"i"``
(input).
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from credo.errors import EnvironmentProblem, InputError

__all__ = [
    "DEFAULT_TRANSCRIPT_DIR",
    "FILE_MODE",
    "FORMAT",
    "Recording",
    "SessionStart",
    "Transcript",
    "TranscriptUnavailable",
    "Verification",
    "transcript_dir",
    "verify",
]

DEFAULT_TRANSCRIPT_DIR = Path("/var/log/credo/endpoints")
FORMAT = "credo-transcript"
VERSION = 1
FILE_MODE = 0o640
DIR_MODE = 0o750
# An endpoint name becomes part of a file name: no path separators, no leading dot.
_ENDPOINT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# A record larger than this is refused by `verify` (a transcript line is small; argv is capped by
# the endpoint's own limits): it keeps a hostile file from making the verifier read gigabytes.
MAX_LINE = 1 << 20


class TranscriptUnavailable(EnvironmentProblem):
    """The transcript cannot be opened or written: the endpoint must refuse the session (fail closed)."""


def transcript_dir() -> Path:
    """``CREDO_TRANSCRIPT_DIR`` when set, else /var/log/credo/endpoints."""
    configured = os.environ.get("CREDO_TRANSCRIPT_DIR")
    return Path(configured) if configured else DEFAULT_TRANSCRIPT_DIR


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _genesis(name: str) -> str:
    return _sha256(f"{FORMAT}:{name}".encode())


def _seal(record: dict[str, Any]) -> bytes:
    """The line for ``record`` (which has ``prev`` and ``seq``): canonical JSON with its ``hash``."""
    body = dict(record)
    body.pop("hash", None)
    body["hash"] = _sha256(_canonical(body))
    return _canonical(body)


@dataclass(frozen=True)
class SessionStart:
    """Who opened the session and why they were let in: the session-start record."""

    endpoint: str
    principal: str  # the AD principal sshd authenticated, e.g. jdoe@CORP.EXAMPLE.TEST
    sid: str  # the user's objectSid, S-1-5-21-...
    source: str  # the client's address (from SSH_CONNECTION), e.g. "127.0.0.1 52314"
    roles: tuple[str, ...]  # the role definitions that granted access
    run_as: str  # the identity commands run as: the gMSA (svcauto$) or a local user
    local_user: str  # the login user the session runs as on this host
    mode: Literal["shell", "command"] = "shell"


class _AppendOnlyFile:
    """A file opened O_APPEND, 0640, written one ``write(2)`` a record, each followed by fsync."""

    def __init__(self, path: Path) -> None:
        self.path = path
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        self.fd = os.open(path, flags, FILE_MODE)
        # The umask may have taken bits off 0640: set it exactly (fchmod ignores the umask).
        os.fchmod(self.fd, FILE_MODE)

    def write(self, data: bytes, *, sync: bool = True) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        if sync:
            os.fsync(self.fd)

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


class Recording:
    """An asciicast v2 recording of a session's terminal output (and input), append-only.

    Output arrives as bytes; it is decoded as UTF-8 incrementally (a character split across two
    reads is kept until its end arrives; invalid bytes become U+FFFD), since asciicast data is text.
    The file's SHA-256 and size are kept as it is written, for the session-end record.
    """

    def __init__(
        self,
        path: Path,
        *,
        width: int = 80,
        height: int = 24,
        command: str | None = None,
        title: str | None = None,
        term: str | None = None,
    ) -> None:
        self._file = _AppendOnlyFile(path)
        self.path = path
        self._digest = hashlib.sha256()
        self.size = 0
        self._started = time.monotonic()
        self._decoders = {
            "o": codecs.getincrementaldecoder("utf-8")("replace"),
            "i": codecs.getincrementaldecoder("utf-8")("replace"),
        }
        header: dict[str, Any] = {
            "version": 2,
            "width": int(width),
            "height": int(height),
            "timestamp": int(time.time()),
        }
        if command is not None:
            header["command"] = command
        if title is not None:
            header["title"] = title
        if term is not None:
            header["env"] = {"TERM": term}
        self._append(json.dumps(header, ensure_ascii=False).encode() + b"\n", sync=True)

    def _append(self, line: bytes, *, sync: bool = False) -> None:
        self._file.write(line, sync=sync)
        self._digest.update(line)
        self.size += len(line)

    def _event(self, code: str, data: bytes | str) -> None:
        text = self._decoders[code].decode(data) if isinstance(data, bytes) else data
        if not text:
            return
        elapsed = round(time.monotonic() - self._started, 6)
        self._append(json.dumps([elapsed, code, text], ensure_ascii=False).encode() + b"\n")

    def output(self, data: bytes | str) -> None:
        self._event("o", data)

    def input(self, data: bytes | str) -> None:
        self._event("i", data)

    def sync(self) -> None:
        self._file.sync()

    def finish(self) -> dict[str, Any]:
        """Flush what the decoders hold, fsync, close; the record that names the finished file."""
        for code, decoder in self._decoders.items():
            rest = decoder.decode(b"", final=True)
            if rest:
                self._event(code, rest)
        self._file.sync()
        self._file.close()
        return {"file": self.path.name, "sha256": self._digest.hexdigest(), "bytes": self.size}

    def close(self) -> None:
        self._file.close()


@dataclass
class _OpenCommand:
    number: int
    started: float


class Transcript:
    """The transcript of one session. Open with :meth:`open`; every method writes and fsyncs a record.

    Typical use by ``credo endpoint serve``::

        transcript = Transcript.open(start)           # TranscriptUnavailable -> refuse the session
        n = transcript.command_started(argv)          # before the command runs
        transcript.output(chunk)                      # what the user sees, into the recording
        transcript.command_ended(n, status, bytes_out)
        transcript.refused(line, "not granted: ...")
        transcript.end("exit")

    Any failure to write raises TranscriptUnavailable: the caller ends the session (fail closed).
    """

    def __init__(
        self, path: Path, records: _AppendOnlyFile, recording: Recording, last_line: bytes, seq: int
    ) -> None:
        self.path = path
        self._file = records
        self.recording = recording
        self._last_line = last_line
        self._seq = seq
        self._commands = 0
        self._refusals = 0
        self._open: dict[int, _OpenCommand] = {}
        self.ended = False

    @property
    def recording_path(self) -> Path:
        return self.recording.path

    @classmethod
    def open(
        cls,
        start: SessionStart,
        *,
        directory: Path | None = None,
        width: int = 80,
        height: int = 24,
        term: str | None = None,
    ) -> Transcript:
        """Create the session's two files and write the header and session-start records.

        Raises TranscriptUnavailable when the directory cannot be created or written: the files
        are then removed again (nothing half-made), and the session must be refused.
        """
        if not _ENDPOINT_RE.fullmatch(start.endpoint):
            raise InputError(
                f"invalid endpoint name {start.endpoint!r} for a transcript file",
                hint="an endpoint name is letters, digits, '.', '_' or '-' (at most 64)",
            )
        directory = directory if directory is not None else transcript_dir()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        stem = f"{start.endpoint}-{stamp}-{secrets.token_hex(6)}"
        path = directory / f"{stem}.jsonl"
        cast_path = directory / f"{stem}.cast"
        created: list[Path] = []
        try:
            directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            records = _AppendOnlyFile(path)
            created.append(path)
            recording = Recording(
                cast_path,
                width=width,
                height=height,
                command=f"credo endpoint serve {start.endpoint}",
                title=f"{start.principal} on {start.endpoint}",
                term=term,
            )
            created.append(cast_path)
            transcript = cls(path, records, recording, b"", -1)
            transcript._write(
                {
                    "type": "header",
                    "format": FORMAT,
                    "version": VERSION,
                    "file": path.name,
                    "recording": cast_path.name,
                    "endpoint": start.endpoint,
                },
                prev=_genesis(path.name),
            )
            transcript._write({"type": "session-start", **asdict(start), "roles": list(start.roles)})
            # The new directory entries must survive a crash too, not only the files' contents.
            _fsync_directory(directory)
        except OSError as exc:
            for leftover in created:
                with contextlib.suppress(OSError):
                    leftover.unlink()
            raise TranscriptUnavailable(
                f"cannot write the session transcript in {directory}: {exc.strerror or exc}",
                hint=f"make {directory} writable for the endpoint (or set CREDO_TRANSCRIPT_DIR); "
                "sessions are refused until it is",
            ) from exc
        return transcript

    # -- records ---------------------------------------------------------------------------

    def _write(self, fields: dict[str, Any], *, prev: str | None = None) -> None:
        if self.ended:
            raise TranscriptUnavailable(f"the transcript {self.path.name} has ended already")
        self._seq += 1
        record = {
            **fields,
            "seq": self._seq,
            "time": _now(),
            "prev": prev if prev is not None else _sha256(self._last_line),
        }
        line = _seal(record)
        try:
            self._file.write(line + b"\n")
        except OSError as exc:
            raise TranscriptUnavailable(
                f"cannot write the session transcript {self.path}: {exc.strerror or exc}",
                hint="the session ends here: a session is never run without its transcript",
            ) from exc
        self._last_line = line

    def command_started(self, argv: Sequence[str]) -> int:
        """Record a granted command before it runs; returns its number for :meth:`command_ended`."""
        self._commands += 1
        number = self._commands
        self._write({"type": "command-start", "command": number, "argv": list(argv)})
        self._open[number] = _OpenCommand(number, time.monotonic())
        return number

    def command_ended(self, number: int, exit_status: int, bytes_out: int) -> None:
        """Record the end of command ``number``: exit status (negative: killed by that signal)."""
        command = self._open.pop(number)
        duration = round(time.monotonic() - command.started, 6)
        with _as_unavailable(self.path):
            self.recording.sync()
        self._write(
            {
                "type": "command-end",
                "command": number,
                "exit_status": exit_status,
                "duration": duration,
                "bytes_out": bytes_out,
            }
        )

    def refused(self, attempted: Sequence[str] | str, reason: str) -> None:
        """Record a refusal: a command not granted, a bad parameter, a user outside the groups."""
        self._refusals += 1
        attempt = attempted if isinstance(attempted, str) else list(attempted)
        self._write({"type": "refusal", "input": attempt, "reason": reason})

    def output(self, data: bytes | str) -> None:
        with _as_unavailable(self.path):
            self.recording.output(data)

    def input(self, data: bytes | str) -> None:
        with _as_unavailable(self.path):
            self.recording.input(data)

    def end(self, reason: str = "exit") -> None:
        """Write the session-end record with the recording's final hash; close both files."""
        with _as_unavailable(self.path):
            recording = self.recording.finish()
        self._write(
            {
                "type": "session-end",
                "reason": reason,
                "commands": self._commands,
                "refusals": self._refusals,
                "unfinished": sorted(self._open),
                "recording": recording,
            }
        )
        self.ended = True
        self._file.close()

    def close(self) -> None:
        """Close without a session-end record (a crash path): ``verify`` then says incomplete."""
        self.recording.close()
        self._file.close()

    def __enter__(self) -> Transcript:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.ended:
            return
        if exc is None:
            self.end("exit")
        else:
            with contextlib.suppress(TranscriptUnavailable):
                self.end("error")
            self.close()


@contextlib.contextmanager
def _as_unavailable(path: Path) -> Any:
    try:
        yield
    except OSError as exc:
        raise TranscriptUnavailable(
            f"cannot write the session recording next to {path}: {exc.strerror or exc}",
            hint="the session ends here: a session is never run without its transcript",
        ) from exc


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """The outcome of :func:`verify`: ``ok``, ``incomplete`` or ``tampered`` (with the line and why)."""

    status: Literal["ok", "incomplete", "tampered"]
    path: str
    records: int
    line: int | None = None
    reason: str | None = None
    commands: int = 0
    refusals: int = 0
    unfinished: list[int] = field(default_factory=list)
    recording: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify(path: str | Path) -> Verification:
    """Check a transcript's hash chain and its recording (see the module docstring for the rules).

    Raises InputError when ``path`` cannot be read or is not a credo transcript at all (empty,
    or its first line is not JSON): that is bad input, not a tampered transcript.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot read transcript {path}: {exc.strerror or exc}", hint="name a .jsonl transcript file"
        ) from exc
    if not data:
        raise InputError(f"{path} is empty, not a credo transcript", hint="name a .jsonl transcript file")
    lines = data.split(b"\n")
    torn = lines[-1] != b""  # the last write did not reach its newline (or the end was cut off)
    if not torn:
        lines.pop()
    checker = _Checker(path)
    # Where each sequence number occurs, to tell a moved record from a removed one.
    for number, line in enumerate(lines, start=1):
        record = _Checker._parse(line)
        if record is not None and isinstance(record.get("seq"), int):
            checker.seq_lines.setdefault(record["seq"], []).append(number)
    for number, line in enumerate(lines, start=1):
        is_last = number == len(lines)
        problem = checker.check(number, line, torn_last=is_last and torn)
        if problem is not None:
            return problem
    return checker.finish()


class _Checker:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.prev_line: bytes | None = None
        self.records = 0
        self.commands: set[int] = set()
        self.ended: set[int] = set()
        self.refusals = 0
        self.end: dict[str, Any] | None = None
        self.recording_name: str | None = None
        self.seq_lines: dict[int, list[int]] = {}

    def _bad(self, line: int, reason: str) -> Verification:
        return Verification(
            status="tampered", path=str(self.path), records=self.records, line=line, reason=reason
        )

    def check(self, number: int, line: bytes, *, torn_last: bool) -> Verification | None:
        record = self._parse(line)
        if record is None:
            if number == 1:
                raise InputError(
                    f"{self.path} is not a credo transcript (its first line is not a JSON record)",
                    hint="name a .jsonl transcript file written by `credo endpoint serve`",
                )
            if torn_last:
                return self.finish(torn_line=number)
            return self._bad(number, f"line {number} is not a transcript record")
        if number == 1 and record.get("format") != FORMAT:
            raise InputError(
                f"{self.path} is not a credo transcript (no {FORMAT} header)",
                hint="name a .jsonl transcript file written by `credo endpoint serve`",
            )
        if self.end is not None:
            return self._bad(number, f"line {number} follows the session end (line {number - 1})")
        claimed = record.pop("hash", None)
        if claimed != _sha256(_canonical(record)):
            return self._bad(
                number, f"line {number} was changed after it was written (its hash does not match)"
            )
        seq = record.get("seq")
        if seq != number - 1:
            moved_to = [at for at in self.seq_lines.get(number - 1, []) if at > number]
            if moved_to:
                why = f"it is out of order (record {number - 1} was moved to line {moved_to[0]})"
            elif isinstance(seq, int) and seq > number - 1:
                why = f"{seq - (number - 1)} record(s) before it are missing (removed)"
            else:
                why = "it is out of order (a record inserted or repeated)"
            return self._bad(number, f"line {number} has sequence number {seq}, expected {number - 1}: {why}")
        expected_prev = _genesis(self.path.name) if self.prev_line is None else _sha256(self.prev_line)
        if record.get("prev") != expected_prev:
            if number == 1:
                return self._bad(
                    1,
                    f"line 1 does not start this file's chain: the transcript was written as "
                    f"{record.get('file')!r}, not {self.path.name!r} (renamed or replaced)",
                )
            return self._bad(
                number,
                f"line {number} does not chain to line {number - 1} "
                f"(line {number - 1} was replaced, or a line was inserted or removed here)",
            )
        if number == 1 and record.get("type") != "header":
            return self._bad(1, "line 1 is not the transcript header")
        if number == 1:
            self.recording_name = record.get("recording")
        self._note(record)
        self.prev_line = line
        self.records += 1
        return None

    @staticmethod
    def _parse(line: bytes) -> dict[str, Any] | None:
        if len(line) > MAX_LINE:
            return None
        try:
            record = json.loads(line)
        except ValueError:
            return None
        return record if isinstance(record, dict) else None

    def _note(self, record: dict[str, Any]) -> None:
        kind = record.get("type")
        if kind == "command-start" and isinstance(record.get("command"), int):
            self.commands.add(record["command"])
        elif kind == "command-end" and isinstance(record.get("command"), int):
            self.ended.add(record["command"])
        elif kind == "refusal":
            self.refusals += 1
        elif kind == "session-end":
            self.end = record

    def finish(self, torn_line: int | None = None) -> Verification:
        summary = Verification(
            status="ok",
            path=str(self.path),
            records=self.records,
            commands=len(self.commands),
            refusals=self.refusals,
            unfinished=sorted(self.commands - self.ended),
        )
        if self.end is None:
            reason = "the session has no end record (killed, or the end of the file was cut off)"
            if torn_line is not None:
                reason += f"; line {torn_line} is a torn last write"
            return replace(summary, status="incomplete", line=torn_line, reason=reason)
        end_line = self.records
        recording = self.end.get("recording")
        name = recording.get("file") if isinstance(recording, dict) else None
        # Only a sibling file: a name with a path in it would make the verifier read elsewhere.
        if not isinstance(name, str) or name != self.recording_name or Path(name).name != name:
            return self._bad(end_line, "the session end names no recording, or another one than the header")
        assert isinstance(recording, dict)
        cast = self.path.parent / name
        try:
            digest = _sha256(cast.read_bytes())
        except OSError as exc:
            return self._bad(end_line, f"the recording {cast.name} cannot be read: {exc.strerror or exc}")
        if digest != recording.get("sha256"):
            return self._bad(
                end_line, f"the recording {cast.name} does not match the hash recorded at the session end"
            )
        return replace(summary, recording=str(cast))
