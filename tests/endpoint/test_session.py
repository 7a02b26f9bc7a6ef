"""The broker's session without sshd or the lab: admission, refusals, running as the endpoint's
user, timeouts, output to the caller's descriptors, and the transcript written around it all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from credo.endpoint.matching import Granted, Refused
from credo.endpoint.roles import UserToken
from credo.endpoint.runner import TIMED_OUT, run_granted
from credo.endpoint.session import EndpointSession
from credo.endpoint.transcript import TranscriptUnavailable, verify
from credo.errors import NotPermittedError
from tests.endpoint.helpers import load

HEAD = 'user = "credo-runner"\n'
BODY = """
[roles]
"CORP\\\\Helpdesk" = ["c"]
[[capability.c.command]]
name = "who"
path = "/usr/bin/id"
args = ["-un"]
[[capability.c.command]]
name = "nap"
path = "/bin/sleep"
args = ["30"]
timeout = 0.5
"""
pytestmark = pytest.mark.usefixtures("runner_user")
JDOE = UserToken.of("jdoe@CORP.EXAMPLE.TEST", ["CORP\\Helpdesk"], sid="S-1-5-21-1-2-3-1105")


def open_session(tmp_path: Path, token: UserToken = JDOE) -> EndpointSession:
    definition = load(tmp_path, BODY, head=HEAD)
    return EndpointSession.open(definition, token, source="127.0.0.1 4242", local_user="jdoe", mode="shell",
                                transcript_dir=tmp_path / "t")  # fmt: skip


def run(session: EndpointSession, granted: Granted, tmp_path: Path) -> tuple[int, bytes]:
    read, write = os.pipe()
    try:
        result = session.run(granted, lambda record: run_granted(
            granted, session.definition.user, runtime_dir=tmp_path / "runs", write_ticket=None,
            stdout_fd=write, stderr_fd=write, record=record))  # fmt: skip
    finally:
        os.close(write)
    with os.fdopen(read, "rb") as out:
        return result.exit_status, out.read()


def test_a_granted_command_runs_as_the_endpoints_user_recorded_before_and_after(tmp_path: Path) -> None:
    session = open_session(tmp_path)
    granted = session.submit("who")
    assert isinstance(granted, Granted)
    status, out = run(session, granted, tmp_path)
    assert (status, out) == (0, b"credo-runner\n")
    refused = session.submit("who; id")
    assert isinstance(refused, Refused)
    session.close()
    (path,) = (tmp_path / "t").glob("*.jsonl")
    result = verify(path)
    assert result.status == "ok" and result.commands == 1 and result.refusals == 1


def test_a_command_is_killed_at_its_timeout(tmp_path: Path) -> None:
    session = open_session(tmp_path)
    granted = session.submit("nap")
    assert isinstance(granted, Granted)
    status, out = run(session, granted, tmp_path)
    assert status == TIMED_OUT and b"stopped after its timeout of 0.5 s" in out
    session.close()


def test_a_user_outside_the_roles_is_refused_and_recorded(tmp_path: Path) -> None:
    outsider = UserToken.of("asmith@CORP.EXAMPLE.TEST", ["CORP\\Domain Users"])
    with pytest.raises(NotPermittedError, match=r"asmith@CORP\.EXAMPLE\.TEST may not use endpoint"):
        open_session(tmp_path, outsider)
    (path,) = (tmp_path / "t").glob("*.jsonl")
    assert verify(path).refusals == 1


def test_no_transcript_no_session(tmp_path: Path) -> None:
    (tmp_path / "t").write_text("a file where the directory should be")
    with pytest.raises(TranscriptUnavailable):
        open_session(tmp_path)
