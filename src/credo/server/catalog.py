"""The catalog: runbooks (drafts and immutable published versions) and worker groups.

Every function takes a SQLAlchemy session inside a transaction (``Database.session``) and raises
credo errors; the routes turn them into problem documents. Reads for the API's answers are in
``credo.server.views``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from credo.automation.jobs import TERMINAL
from credo.automation.runbooks import (
    MAX_RUNBOOK_BYTES,
    ParameterSpec,
    RunbookType,
    content_hash,
    parameters_schema,
    validate_runbook_name,
)
from credo.defaults import MAX_CONCURRENT
from credo.errors import Conflict, InputError, NotFoundError
from credo.names import managed_account_sam, validate_computer_principal, validate_local_user_name
from credo.server.clock import now
from credo.server.models import Job, Runbook, RunbookVersion, WorkerGroup

__all__ = [
    "create_group",
    "create_runbook",
    "delete_group",
    "delete_runbook",
    "draft_snapshot",
    "get_group",
    "get_runbook",
    "publish_runbook",
    "update_runbook",
]


# -- runbooks ----------------------------------------------------------------------------------


def _parse_parameters(parameters: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    specs = [ParameterSpec.from_dict(p) for p in parameters]
    return [p if isinstance(p, dict) else {} for p in parameters], parameters_schema(specs)


def _unfinished_jobs(session: Session, condition: Any) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Job)
            .where(condition, Job.state.not_in([s.value for s in TERMINAL]))
        )
        or 0
    )


def get_runbook(session: Session, name: str) -> Runbook:
    runbook = session.scalar(select(Runbook).where(Runbook.name == name))
    if runbook is None:
        raise NotFoundError(f"runbook {name!r} does not exist")
    return runbook


def create_runbook(
    session: Session,
    name: str,
    type_: str,
    content: bytes,
    parameters: list[dict[str, Any]],
    description: str | None = None,
    own_token_subject: bool = False,
) -> Runbook:
    validate_runbook_name(name)
    try:
        RunbookType(type_)
    except ValueError:
        raise InputError(f"unknown runbook type {type_!r}", hint="use python3 or bash") from None
    if len(content) > MAX_RUNBOOK_BYTES:
        raise InputError(f"runbook is {len(content)} bytes; the limit is {MAX_RUNBOOK_BYTES}")
    params, _ = _parse_parameters(parameters)
    if session.scalar(select(Runbook.id).where(Runbook.name == name)) is not None:
        raise Conflict(f"runbook {name!r} exists already", hint="use update to change its draft")
    stamp = now()
    runbook = Runbook(
        name=name, type=type_, description=description, draft_content=content, draft_parameters=params,
        published_version=None, created_at=stamp, updated_at=stamp, own_token_subject=own_token_subject,
    )  # fmt: skip
    session.add(runbook)
    session.flush()
    return runbook


def update_runbook(
    session: Session,
    name: str,
    content: bytes | None,
    parameters: list[dict[str, Any]] | None,
    description: str | None,
    own_token_subject: bool | None = None,
) -> Runbook:
    runbook = get_runbook(session, name)
    if content is not None:
        if len(content) > MAX_RUNBOOK_BYTES:
            raise InputError(f"runbook is {len(content)} bytes; the limit is {MAX_RUNBOOK_BYTES}")
        runbook.draft_content = content
    if parameters is not None:
        runbook.draft_parameters, _ = _parse_parameters(parameters)
    if description is not None:
        runbook.description = description
    if own_token_subject is not None:
        runbook.own_token_subject = own_token_subject
    runbook.updated_at = now()
    return runbook


def draft_snapshot(session: Session, runbook: Runbook, version: int) -> RunbookVersion:
    """The runbook's draft as version ``version`` (0: a test run's), reusing an identical one."""
    _, schema = _parse_parameters(runbook.draft_parameters)
    digest = content_hash(runbook.draft_content)
    existing = session.scalar(
        select(RunbookVersion).where(
            RunbookVersion.runbook_id == runbook.id,
            RunbookVersion.version == version,
            RunbookVersion.content_hash == digest,
        )
    )
    if existing is not None and existing.parameters == runbook.draft_parameters:
        return existing
    snapshot = RunbookVersion(
        runbook_id=runbook.id, version=version, type=runbook.type, content=runbook.draft_content,
        content_hash=digest, parameters=runbook.draft_parameters, schema=schema, created_at=now(),
    )  # fmt: skip
    session.add(snapshot)
    session.flush()
    return snapshot


def publish_runbook(session: Session, name: str) -> RunbookVersion:
    """Freeze the draft as the next published version (immutable, with its content hash)."""
    runbook = get_runbook(session, name)
    version = (runbook.published_version or 0) + 1
    published = draft_snapshot(session, runbook, version)
    runbook.published_version = version
    runbook.updated_at = now()
    return published


def published_schema(session: Session, runbook: Runbook) -> dict[str, Any]:
    """The JSON Schema of the runbook's published version's parameters (what a job is checked by)."""
    if not runbook.published_version:
        raise Conflict(f"runbook {runbook.name!r} has no published version", hint="publish it first")
    schema = session.scalar(
        select(RunbookVersion.schema).where(
            RunbookVersion.runbook_id == runbook.id, RunbookVersion.version == runbook.published_version
        )
    )
    return schema or {}


def delete_runbook(session: Session, name: str) -> None:
    runbook = get_runbook(session, name)
    active = _unfinished_jobs(session, Job.runbook_id == runbook.id)
    if active:
        raise Conflict(f"runbook {name!r} has {active} unfinished job(s)", hint="stop them first")
    session.delete(runbook)


# -- worker groups -------------------------------------------------------------------------------


def get_group(session: Session, name: str) -> WorkerGroup:
    group = session.scalar(select(WorkerGroup).where(WorkerGroup.name == name))
    if group is None:
        raise NotFoundError(f"worker group {name!r} does not exist")
    return group


def create_group(
    session: Session,
    name: str,
    run_as: str | None,
    local_user: str | None,
    max_concurrent: int,
    allowed_workers: list[str],
    allow_system_user: bool = False,
) -> WorkerGroup:
    """A worker group; every name is checked here, so a job never waits on a group no worker can serve."""
    validate_runbook_name(name)
    if run_as is not None:
        run_as = managed_account_sam(run_as)[:-1]
    if local_user is not None:
        validate_local_user_name(local_user, allow_system=allow_system_user)
    if not allowed_workers:
        raise InputError(
            f"worker group {name!r} names no worker",
            hint="add --worker NAME$@REALM for each computer that serves it",
        )
    for principal in allowed_workers:
        validate_computer_principal(principal)
    if max_concurrent < 1 or max_concurrent > MAX_CONCURRENT:
        raise InputError(f"max concurrent jobs per worker must be 1..{MAX_CONCURRENT}")
    if session.scalar(select(WorkerGroup.id).where(WorkerGroup.name == name)) is not None:
        raise Conflict(f"worker group {name!r} exists already")
    group = WorkerGroup(
        name=name, run_as=run_as, local_user=local_user, max_concurrent=max_concurrent,
        allowed_workers=[w.lower() for w in allowed_workers], allow_system_user=allow_system_user,
        created_at=now(),
    )  # fmt: skip
    session.add(group)
    session.flush()
    return group


def delete_group(session: Session, name: str) -> None:
    group = get_group(session, name)
    active = _unfinished_jobs(session, Job.group_id == group.id)
    if active:
        raise Conflict(f"worker group {name!r} has {active} unfinished job(s)")
    session.delete(group)
