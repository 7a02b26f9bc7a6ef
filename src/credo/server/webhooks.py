"""Webhooks in the server: create, rotate, enable, delete (admin), and ``call``, the public check.

The rules are credo.automation.webhooks (docs/control-plane.md, "Webhooks"); this module keeps
their state in the database. The URL token is stored as its SHA-256, the signing secrets sealed
(AES-256-GCM) under the server's webhook key file (``webhook.keys`` in the data dir, 0600, one
base64 key per line, newest first: several server processes must share it). A call is decided
under the webhook row's lock (``FOR UPDATE`` in PostgreSQL), so the token bucket and the replay
check are exact across processes; accepted signatures are kept, until their window ends, in
``webhook_signatures`` with a unique key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from credo.automation import webhooks as rules
from credo.automation.runbooks import validate_runbook_name
from credo.errors import Conflict, CredoError, EnvironmentProblem, InputError, NotFoundError
from credo.files import read_or_create_secret
from credo.server import catalog, queue
from credo.server.clock import aware, now
from credo.server.models import Runbook, Webhook, WebhookSignature, WorkerGroup
from credo.server.schemas import WebhookIn, WebhookOut

__all__ = [
    "KEY_FILE",
    "CallResult",
    "call",
    "create_webhook",
    "delete_webhook",
    "get_webhook",
    "list_webhooks",
    "load_sealer",
    "rotate_webhook",
    "set_enabled",
    "webhook_view",
]

KEY_FILE = "webhook.keys"
HOOK_PATH = "/hooks"


def load_sealer(data_dir: Path) -> rules.SecretSealer:
    """The server's sealing keys: created (0600) on first start, newest first."""
    path = data_dir / KEY_FILE
    try:
        text = read_or_create_secret(path, lambda: base64.b64encode(rules.new_sealing_key()).decode())
        keys = [base64.b64decode(line) for line in text.split() if line]
        return rules.SecretSealer(keys)
    except ValueError:  # not UTF-8, not base64 (binascii.Error), no key or one not 32 bytes long
        raise EnvironmentProblem(
            f"{path}: not a webhook key file (one base64 32-byte key a line, newest first)",
            hint="restore it from a backup: the webhooks' signing secrets are sealed with its keys",
        ) from None


def get_webhook(session: Session, name: str) -> Webhook:
    row = session.scalar(select(Webhook).where(Webhook.name == name))
    if row is None:
        raise NotFoundError(f"webhook {name!r} does not exist", hint="credo webhook list")
    return row


def webhook_view(
    session: Session, row: Webhook, *, url: str | None = None, secret: str | None = None
) -> WebhookOut:
    runbook = session.get(Runbook, row.runbook_id)
    group = session.get(WorkerGroup, row.group_id)
    return WebhookOut(
        name=row.name, runbook=runbook.name if runbook else "", group=group.name if group else "",
        parameter=row.parameter, enabled=row.enabled, expires_at=aware(row.expires_at),
        previous_until=aware(row.previous_until), rate_per_minute=row.rate_per_minute,
        rate_burst=row.rate_capacity, created_at=aware(row.created_at) or row.created_at, url=url,
        secret=secret,
    )  # fmt: skip


def create_webhook(
    session: Session, sealer: rules.SecretSealer, body: WebhookIn, base_url: str
) -> WebhookOut:
    validate_runbook_name(body.name)
    if session.scalar(select(Webhook.id).where(Webhook.name == body.name)) is not None:
        raise Conflict(f"webhook {body.name!r} exists", hint="pick another name, or delete it first")
    runbook = catalog.get_runbook(session, body.runbook)
    group = catalog.get_group(session, body.group)
    names = {p.get("name") for p in runbook.draft_parameters}
    if body.parameter not in names:
        raise InputError(
            f"runbook {runbook.name!r} declares no parameter {body.parameter!r}",
            hint="--parameter names the runbook parameter that receives the request body",
        )
    stamp = now()
    token, secret = rules.new_url_token(), rules.new_signing_secret()
    row = Webhook(
        name=body.name, url_hash=rules.hash_url_token(token), runbook_id=runbook.id, group_id=group.id,
        parameter=body.parameter, enabled=True,
        expires_at=stamp + timedelta(seconds=body.expires_seconds) if body.expires_seconds else None,
        secret_sealed="", rate_capacity=body.rate_burst, rate_per_minute=body.rate_per_minute,
        created_at=stamp, updated_at=stamp,
    )  # fmt: skip
    session.add(row)
    session.flush()  # the id: the seal's associated data
    row.secret_sealed = sealer.seal(secret, context=str(row.id))
    return webhook_view(session, row, url=f"{base_url.rstrip('/')}{HOOK_PATH}/{token}", secret=secret)


def rotate_webhook(
    session: Session, sealer: rules.SecretSealer, name: str, overlap_seconds: int
) -> WebhookOut:
    """A new current secret; the old one stays accepted for the overlap. The URL stays."""
    row = get_webhook(session, name)
    stamp = now()
    secret = rules.new_signing_secret()
    row.previous_sealed, row.previous_until = row.secret_sealed, stamp + timedelta(seconds=overlap_seconds)
    row.secret_sealed = sealer.seal(secret, context=str(row.id))
    row.updated_at = stamp
    return webhook_view(session, row, secret=secret)


def set_enabled(session: Session, name: str, enabled: bool) -> WebhookOut:
    row = get_webhook(session, name)
    row.enabled, row.updated_at = enabled, now()
    return webhook_view(session, row)


def delete_webhook(session: Session, name: str) -> None:
    session.delete(get_webhook(session, name))


def list_webhooks(session: Session) -> list[WebhookOut]:
    return [webhook_view(session, r) for r in session.scalars(select(Webhook).order_by(Webhook.name)).all()]


@dataclass(frozen=True)
class CallResult:
    """What a call came to: None ``name`` for an unknown URL (not recorded anywhere)."""

    name: str | None
    outcome: rules.Outcome | None
    job_id: str | None = None
    group_id: int | None = None
    retry_after: float = 0.0
    error: CredoError | None = None


class _Signatures(rules.ReplayGuard):
    """The replay guard over ``webhook_signatures`` (under the webhook row's lock)."""

    def __init__(self, session: Session, webhook_id: int) -> None:
        super().__init__()
        self.session, self.webhook_id = session, webhook_id

    def seen(self, signature: str, now: float) -> bool:
        self.session.execute(
            delete(WebhookSignature).where(
                WebhookSignature.webhook_id == self.webhook_id, WebhookSignature.until < now
            )
        )
        return self.session.get(WebhookSignature, _digest(signature)) is not None

    def remember(self, signature: str, timestamp: int) -> None:
        self.session.add(
            WebhookSignature(
                digest=_digest(signature), webhook_id=self.webhook_id, until=timestamp + rules.REPLAY_WINDOW
            )
        )


def _digest(signature: str) -> str:
    return hashlib.sha256(signature.encode()).hexdigest()


def call(
    session: Session, dialect: str, sealer: rules.SecretSealer, token: str, header: str | None, body: bytes
) -> CallResult:
    query = select(Webhook).where(Webhook.url_hash == rules.hash_url_token(token))
    if dialect == "postgresql":
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None:
        return CallResult(None, None)
    stamp = now()
    context = str(row.id)
    previous = sealer.open(row.previous_sealed, context=context) if row.previous_sealed else None
    keys = rules.SigningKeys(
        sealer.open(row.secret_sealed, context=context), previous, aware(row.previous_until)
    )
    rate = row.rate_per_minute / 60
    bucket = (
        rules.TokenBucket(row.rate_capacity, rate, row.bucket_tokens, row.bucket_updated)
        if row.bucket_tokens is not None and row.bucket_updated is not None
        else rules.TokenBucket.full(row.rate_capacity, rate, stamp.timestamp())
    )
    state = rules.WebhookState(keys, row.enabled, aware(row.expires_at), bucket)
    outcome, after = rules.check_call(state, header, body, stamp, replay_guard=_Signatures(session, row.id))
    if after is not None:
        row.bucket_tokens, row.bucket_updated = after.tokens, after.updated
    if outcome is rules.Outcome.RATE_LIMITED:
        retry = after.retry_after(stamp.timestamp()) if after else 1.0
        return CallResult(row.name, outcome, retry_after=retry)
    if outcome is not rules.Outcome.OK:
        return CallResult(row.name, outcome)
    runbook = session.get(Runbook, row.runbook_id)
    group = session.get(WorkerGroup, row.group_id)
    assert runbook is not None and group is not None  # the foreign keys cascade
    try:
        with session.begin_nested():  # a refused job leaves the signature and bucket recorded
            started = queue.start_job(session, runbook.name, group.name, {row.parameter: _value(body)})
    except CredoError as exc:
        return CallResult(row.name, outcome, error=exc)
    return CallResult(row.name, outcome, job_id=started.job_id, group_id=group.id)


def _value(body: bytes) -> Any:
    """The body as the parameter's value: JSON if it is JSON, else its text (the schema decides)."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise InputError("the request body is not UTF-8") from None
    try:
        return json.loads(text)
    except ValueError:
        return text
    except RecursionError:  # json.loads recurses once per nested array or object
        raise InputError("the request body nests JSON too deeply") from None
