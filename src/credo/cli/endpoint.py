"""``credo endpoint``: restricted endpoints over OpenSSH (JEA for Linux)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from credo.cli.output import emit_json, emit_mapping, json_option

__all__ = ["endpoint"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def endpoint() -> None:
    """Restricted endpoints: AD users log in over SSH and run only what their groups grant.

    \b
    Example:
      credo endpoint verify-transcript /var/log/credo/endpoints/helpdesk-20261201T101500Z-1a2b3c4d5e6f.jsonl
    """


# -- transcripts (issue 13 point 3) ---------------------------------------------------------------


@endpoint.command("verify-transcript")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def verify_transcript(file: Path, as_json: bool) -> None:
    """Check a session transcript's hash chain and its asciicast recording.

    \b
    Exit status: 0 intact (also "incomplete": a session that has no end record, as after a
    kill -9, is not tampering), 1 tampered (the first bad line and why), 2 not a transcript.

    \b
    Example:
      credo endpoint verify-transcript /var/log/credo/endpoints/helpdesk-20261201T101500Z-1a2b3c4d5e6f.jsonl
    """
    from credo.endpoint.transcript import verify

    result = verify(file)
    if as_json:
        emit_json(result.to_dict())
    else:
        emit_mapping(
            {
                "status": result.status,
                "file": result.path,
                "records": result.records,
                "line": result.line,
                "reason": result.reason,
                "commands": result.commands,
                "refusals": result.refusals,
                "unfinished": ", ".join(map(str, result.unfinished)),
                "recording": result.recording,
            }
        )
    sys.exit(1 if result.status == "tampered" else 0)
