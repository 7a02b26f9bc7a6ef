"""``credo audit-log export``: the server's audit log as JSON lines, its hash chain verified here."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import click

from credo.automation.auditlog import GENESIS, AuditRecord, canonical, from_json_line, to_json_line, verify
from credo.cli.api import client_from, with_api
from credo.errors import CredoError, InputError

__all__ = ["audit_log"]


@click.group("audit-log")
def audit_log() -> None:
    """The server's audit log: every state-changing API call, chained by SHA-256.

    \b
    Example:
      credo audit-log export > audit.jsonl
    """


@audit_log.command("export")
@click.option("--since", metavar="TIME", help="Records from this time on (ISO 8601, e.g. 2026-12-01T00:00Z).")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout)."
)
@with_api
def export(since: str | None, output: Path | None, **params: Any) -> None:
    """Write the audit log as JSON lines and verify its chain (exit 1 if it is broken).

    Every record is written, also after a break, so that it can be examined. With --since, the
    chain is verified from the first record's prev (its anchor, printed on stderr): compare it
    with the hash of the same seq in an earlier export to join the two.

    \b
    Examples:
      credo audit-log export > audit.jsonl
      credo audit-log export --since 2026-12-01T00:00Z -o december.jsonl
    """
    if since is not None:
        try:
            datetime.fromisoformat(since)
        except ValueError:
            raise InputError(
                f"--since {since!r} is not an ISO 8601 time", hint="e.g. --since 2026-12-01T00:00Z"
            ) from None
    api = client_from(params)
    with api, _open(output) as out:
        stream = _written(api.audit_records(since=since), out)
        result = verify(stream, GENESIS if since is None else None)
        for _ in stream:  # the rest, after a break
            pass
    if not result.ok:
        raise CredoError(
            f"audit log chain broken: {result.reason}",
            hint="records from there on were changed, removed or reordered; compare with an earlier export",
        )
    where = f" from anchor {result.anchor}" if since is not None and result.anchor else ""
    click.echo(f"credo: {result.count} audit records, chain verified{where}", err=True)


def _written(records: Iterator[dict[str, Any]], out: IO[str]) -> Iterator[AuditRecord]:
    for data in records:
        # As the server sent it, re-encoded canonically: what verify hashes is what is written.
        record = from_json_line(canonical(data).decode())
        out.write(to_json_line(record))
        yield record


class _open:
    """stdout, or a new file (its records are not secret, but the default umask applies)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.file: IO[str] | None = None

    def __enter__(self) -> IO[str]:
        if self.path is None:
            return sys.stdout
        self.file = self.path.open("w", encoding="utf-8")
        return self.file

    def __exit__(self, *_exc: object) -> None:
        if self.file is not None:
            self.file.close()
