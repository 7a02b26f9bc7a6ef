"""Session transcripts: the hash chain, what verify reports for each kind of tampering, fail-closed
opening, 0640 files, no record lost to a kill -9, and an asciicast v2 recording a reader accepts."""

from __future__ import annotations

import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from credo.endpoint.transcript import SessionStart, Transcript, TranscriptUnavailable, verify
from tests.support.identity import CREDO

START = SessionStart(
    endpoint="helpdesk",
    principal="jdoe@CORP.EXAMPLE.TEST",
    sid="S-1-5-21-1-2-3-1104",
    source="127.0.0.1 52314",
    roles=("HelpdeskOperator",),
    run_as="svcauto$",
    local_user="jdoe",
)


def write_session(directory: Path, commands: int = 3) -> Transcript:
    """A finished session: ``commands`` commands with output, one refusal, the end."""
    transcript = Transcript.open(START, directory=directory)
    for n in range(commands):
        number = transcript.command_started(["/usr/bin/systemctl", "restart", f"unit{n}"])
        transcript.output(f"restarted unit{n}\r\n".encode())
        transcript.command_ended(number, 0, 18)
    transcript.refused("cat /etc/shadow; id", "not granted: /usr/bin/cat")
    transcript.end("exit")
    return transcript


@pytest.fixture
def session(tmp_path: Path) -> Transcript:
    return write_session(tmp_path)


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def rewrite(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def test_a_finished_session_verifies_and_names_what_happened(session: Transcript) -> None:
    result = verify(session.path)
    assert result.status == "ok", result
    assert (result.records, result.commands, result.refusals, result.unfinished) == (10, 3, 1, [])
    records = [json.loads(line) for line in lines_of(session.path)]
    assert [r["type"] for r in records[:3]] == ["header", "session-start", "command-start"]
    assert records[0]["file"] == session.path.name
    start = records[1]
    assert (start["endpoint"], start["principal"], start["sid"], start["source"]) == (
        "helpdesk",
        "jdoe@CORP.EXAMPLE.TEST",
        "S-1-5-21-1-2-3-1104",
        "127.0.0.1 52314",
    )
    assert (start["roles"], start["run_as"]) == (["HelpdeskOperator"], "svcauto$")
    end_of_first = records[3]
    assert end_of_first["type"] == "command-end" and end_of_first["exit_status"] == 0
    assert end_of_first["bytes_out"] == 18 and end_of_first["duration"] >= 0
    assert records[-2] == records[-2] | {"type": "refusal", "reason": "not granted: /usr/bin/cat"}
    assert records[-1]["recording"]["file"] == session.recording_path.name
    # Each record chains to the line before it.
    import hashlib

    for before, after in zip(lines_of(session.path), records[1:], strict=False):
        assert after["prev"] == hashlib.sha256(before).hexdigest()


def test_files_are_0640(session: Transcript) -> None:
    for path in (session.path, session.recording_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_files_are_0640_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        transcript = write_session(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(transcript.path.stat().st_mode) == 0o640


Tamper = Callable[[list[bytes]], list[bytes]]


def edit_exit_status(lines: list[bytes]) -> list[bytes]:
    lines[3] = lines[3].replace(b'"exit_status":0', b'"exit_status":1')
    return lines


@pytest.mark.parametrize(
    ("tamper", "line", "words"),
    [
        # A record edited in place: its own hash no longer matches (reported on that line).
        (edit_exit_status, 4, "changed after it was written"),
        # A record removed: the next one's sequence number jumps.
        (lambda lines: lines[:4] + lines[5:], 5, "missing (removed)"),
        # Two records swapped.
        (lambda lines: [*lines[:2], lines[3], lines[2], *lines[4:]], 3, "out of order"),
        # A copy of an earlier record inserted.
        (lambda lines: [*lines[:5], lines[2], *lines[5:]], 6, "out of order"),
        # The last line (session end) edited.
        (
            lambda lines: [*lines[:-1], lines[-1].replace(b'"reason":"exit"', b'"reason":"quit"')],
            10,
            "changed",
        ),
        # Records after the session end.
        (lambda lines: [*lines, lines[2]], 11, "follows the session end"),
        # The first lines cut off.
        (lambda lines: lines[2:], 1, ""),
    ],
    ids=["edited", "removed", "reordered", "inserted", "end-edited", "appended-after-end", "head-cut"],
)
def test_tampering_is_found_with_its_line(session: Transcript, tamper: Tamper, line: int, words: str) -> None:
    rewrite(session.path, tamper(lines_of(session.path)))
    try:
        result = verify(session.path)
    except Exception as exc:  # the head cut off: the file no longer starts with a header
        assert line == 1 and "not a credo transcript" in str(exc)
        return
    assert result.status == "tampered", result
    assert result.line == line, result
    assert words in (result.reason or "")


def test_a_record_replaced_with_a_recomputed_hash_breaks_the_chain(session: Transcript) -> None:
    """Someone who recomputes an edited record's own hash still breaks the next record's prev."""
    from credo.endpoint.transcript import _seal

    lines = lines_of(session.path)
    record = json.loads(lines[3])
    record["exit_status"] = 1
    lines[3] = _seal(record)
    rewrite(session.path, lines)
    result = verify(session.path)
    assert (result.status, result.line) == ("tampered", 5)
    assert "does not chain to line 4" in (result.reason or "")


def test_a_renamed_transcript_is_found(session: Transcript) -> None:
    renamed = session.path.with_name("helpdesk-20200101T000000Z-000000000000.jsonl")
    session.path.rename(renamed)
    result = verify(renamed)
    assert (result.status, result.line) == ("tampered", 1)
    assert "renamed" in (result.reason or "")


def test_an_edited_recording_is_found(session: Transcript) -> None:
    cast = session.recording_path
    cast.write_bytes(cast.read_bytes().replace(b"unit1", b"unitX"))
    result = verify(session.path)
    assert (result.status, result.line) == ("tampered", 10)
    assert "recording" in (result.reason or "")


def test_a_missing_end_is_incomplete_not_tampered(tmp_path: Path) -> None:
    transcript = Transcript.open(START, directory=tmp_path)
    number = transcript.command_started(["/usr/bin/true"])
    transcript.command_ended(number, 0, 0)
    transcript.command_started(["/usr/bin/sleep", "60"])
    transcript.close()
    result = verify(transcript.path)
    assert result.status == "incomplete", result
    assert result.unfinished == [2]
    # A torn last write (no newline, not JSON) is incomplete too.
    with open(transcript.path, "ab") as handle:
        handle.write(b'{"type":"command-e')
    result = verify(transcript.path)
    assert (result.status, result.line) == ("incomplete", 6)


def test_an_unwritable_directory_refuses_the_session(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(TranscriptUnavailable) as raised:
        Transcript.open(START, directory=not_a_dir / "endpoints")
    assert raised.value.exit_code == 3 and raised.value.hint


def test_an_unwritable_directory_for_an_unprivileged_user(tmp_path: Path) -> None:
    """As a user who may not write the directory (root ignores modes: a child drops to nobody)."""
    directory = tmp_path / "endpoints"
    directory.mkdir(mode=0o755)
    tmp_path.chmod(0o755)
    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            try:
                Transcript.open(START, directory=directory)
            except TranscriptUnavailable as exc:
                os.write(write_end, exc.message.encode())
                code = 3
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        message = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3
    assert "Permission denied" in message and str(directory) in message
    assert list(directory.iterdir()) == []


WRITER = """
import sys
from pathlib import Path
from credo.endpoint.transcript import SessionStart, Transcript
start = SessionStart('helpdesk', 'jdoe@CORP.EXAMPLE.TEST', 'S-1-5-21-1', '127.0.0.1 1', ('r',), 'svcauto$', 'jdoe')
t = Transcript.open(start, directory=Path(sys.argv[1]))
print('path', t.path, flush=True)
for n in range(1, 100000):
    number = t.command_started(['/usr/bin/true', str(n)])
    print('started', number, flush=True)
    t.output(b'x' * 10)
    t.command_ended(number, 0, 10)
    print('ended', number, flush=True)
"""


def test_kill_9_mid_session_loses_no_record_of_a_command_that_ran(tmp_path: Path) -> None:
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    announced: list[str] = []
    deadline = time.monotonic() + 30
    try:
        path = Path(proc.stdout.readline().split(" ", 1)[1].strip())
        # Kill it once it is well into the session, wherever it is between two records.
        while len(announced) < 150 and time.monotonic() < deadline:
            announced.append(proc.stdout.readline().strip())
        os.kill(proc.pid, signal.SIGKILL)
        announced += [line.strip() for line in proc.stdout]
    finally:
        proc.kill()
        proc.wait()
    assert len(announced) >= 150
    records = [json.loads(line) for line in path.read_bytes().splitlines()]
    started = {r["command"] for r in records if r["type"] == "command-start"}
    ended = {r["command"] for r in records if r["type"] == "command-end"}
    for line in announced:
        kind, number = line.split()
        assert int(number) in (started if kind == "started" else ended), line
    result = verify(path)
    assert result.status == "incomplete", result
    assert set(result.unfinished) <= {max(started)}


def test_the_recording_is_asciicast_v2(session: Transcript) -> None:
    """Read it as the spec says (docs.asciinema.org/manual/asciicast/v2), independently of the writer."""
    lines = session.recording_path.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert isinstance(header, dict)
    assert header["version"] == 2
    assert isinstance(header["width"], int) and isinstance(header["height"], int)
    assert isinstance(header.get("timestamp", 0), int)
    assert set(header) <= {"version", "width", "height", "timestamp", "duration", "idle_time_limit",
                           "command", "title", "env", "theme"}  # fmt: skip
    last = 0.0
    output = ""
    for line in lines[1:]:
        event = json.loads(line)
        assert isinstance(event, list) and len(event) == 3
        when, code, data = event
        assert isinstance(when, int | float) and when >= last
        assert code in {"o", "i", "m", "r"} and isinstance(data, str)
        last = when
        output += data if code == "o" else ""
    assert output == "".join(f"restarted unit{n}\r\n" for n in range(3))


def test_utf8_split_across_reads_is_kept_whole(tmp_path: Path) -> None:
    transcript = Transcript.open(START, directory=tmp_path)
    encoded = "Grüße ✓\n".encode()
    for i in range(len(encoded)):
        transcript.output(encoded[i : i + 1])
    transcript.end()
    events = [json.loads(line) for line in transcript.recording_path.read_text().splitlines()[1:]]
    assert "".join(e[2] for e in events) == "Grüße ✓\n"
    assert verify(transcript.path).ok


def test_cli_verify_transcript(session: Transcript, tmp_path: Path) -> None:
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    ok = subprocess.run([*CREDO, "endpoint", "verify-transcript", str(session.path), "--json"],
                        capture_output=True, text=True, env=env)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "ok"
    rewrite(session.path, edit_exit_status(lines_of(session.path)))
    bad = subprocess.run([*CREDO, "endpoint", "verify-transcript", str(session.path)],
                         capture_output=True, text=True, env=env)  # fmt: skip
    assert bad.returncode == 1
    assert "tampered" in bad.stdout and "line 4" in bad.stdout
    junk = tmp_path / "junk.jsonl"
    junk.write_text("hello\n")
    for target in (junk, tmp_path / "absent.jsonl"):
        proc = subprocess.run([*CREDO, "endpoint", "verify-transcript", str(target)],
                              capture_output=True, text=True, env=env)  # fmt: skip
        assert proc.returncode == 2
        assert proc.stderr.startswith("credo: error: ") and "Traceback" not in proc.stderr
        assert "credo: hint: " in proc.stderr
