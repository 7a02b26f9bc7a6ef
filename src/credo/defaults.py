"""Limits and defaults of runbook automation shared by the server, its clients and the CLI: each once.

The server enforces these limits and the CLI offers them as option ranges, so both read them
from here. Limits that belong to the domain model stay beside it and are only referred to:
``credo.automation.runbooks.MAX_RUNBOOK_BYTES`` (a runbook's size) and its name rule
(``validate_runbook_name``: 1..64 characters, the ``MAX_NAME_CHARS`` below),
``credo.automation.parameters.MAX_PARAMETERS_BYTES``, ``credo.automation.jobs.MAX_STREAM_BYTES``
and ``MAX_ATTEMPTS``, ``credo.automation.leases.DEFAULT_LEASE_SECONDS``. The request-body caps
the server's gate enforces are derived from those in ``credo.server.limits``.

Nothing here does I/O or imports any other part of credo.
"""

from __future__ import annotations

__all__ = [
    "ACCESS_CACHE_SECONDS",
    "AUDIT_LINK_INTERVAL",
    "CLAIM_RECHECK_SECONDS",
    "CLAIM_RECHECK_UNLINKED_SECONDS",
    "CLAIM_WAIT_SECONDS",
    "DEFAULT_JOB_TIMEOUT",
    "DEFAULT_LISTEN",
    "DEFAULT_MAX_CONCURRENT",
    "DEFAULT_PORT",
    "DEFAULT_SERVER_URL",
    "IDLE_HEARTBEAT_SECONDS",
    "LOST_AFTER_SECONDS",
    "MAX_AUDIENCE_CHARS",
    "MAX_AUDIT_PAGE",
    "MAX_CLAIM_WAIT_SECONDS",
    "MAX_CONCURRENT",
    "MAX_GROUP_WORKERS",
    "MAX_JOB_LIST",
    "MAX_JOB_TIMEOUT",
    "MAX_NAME_CHARS",
    "MAX_OUTPUT_PAGE",
    "MAX_POSITION",
    "MAX_RUNBOOK_BASE64_CHARS",
    "MAX_SLOTS",
    "UI_PAGE",
    "UI_SESSION_SECONDS",
]

# -- where the server listens, and where clients look for it ----------------------------------------
DEFAULT_PORT = 8400
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
DEFAULT_SERVER_URL = f"http://{DEFAULT_LISTEN}"

# -- names and sizes ----------------------------------------------------------------------------------
# Runbook and worker group names (credo.automation.runbooks.validate_runbook_name; the tables'
# String(64) columns).
MAX_NAME_CHARS = 64
# A runbook's content travels base64-encoded: MAX_RUNBOOK_BYTES (1 MiB) takes 4/3 of it; the API
# accepts up to 2 MiB of text and checks the decoded size.
MAX_RUNBOOK_BASE64_CHARS = 2 * 1024 * 1024
# A token audience: Entra's limit for a federated credential's fields (docs/oidc.md).
MAX_AUDIENCE_CHARS = 600
# Computer principals listed as allowed to serve one worker group.
MAX_GROUP_WORKERS = 1000

# -- concurrency ----------------------------------------------------------------------------------
DEFAULT_MAX_CONCURRENT = 4  # jobs per worker of a group at once
MAX_CONCURRENT = 64
MAX_SLOTS = 64  # job slots one worker process offers

# -- time -------------------------------------------------------------------------------------------
DEFAULT_JOB_TIMEOUT = 3 * 3600  # Azure Automation's sandbox limit: the default job timeout
MAX_JOB_TIMEOUT = 7 * 86400
# A worker without heartbeat this long is shown as lost (its jobs' leases decide their fate).
LOST_AFTER_SECONDS = 60.0
# A worker with no running job says it is alive this often; its long-polling claims say so too
# (every CLAIM_WAIT_SECONDS). With running jobs it beats at LeasePolicy.heartbeat_seconds, to
# renew their leases.
IDLE_HEARTBEAT_SECONDS = LOST_AFTER_SECONDS / 2
# An idle worker's claim waits this long for a job (long poll), at most MAX_CLAIM_WAIT_SECONDS.
CLAIM_WAIT_SECONDS = 25.0
MAX_CLAIM_WAIT_SECONDS = 60.0
# A waiting claim looks again this often though no wake-up came (credo.server.notifier): only
# while the wake-ups of other server processes are cut (PostgreSQL restarting). Otherwise every
# queued job wakes a claim, and the worker's next long-poll is the safety net (issue 16: 1,000
# idle workers looking every 15 s cost the replicas a fifth of a core each).
CLAIM_RECHECK_SECONDS = MAX_CLAIM_WAIT_SECONDS
CLAIM_RECHECK_UNLINKED_SECONDS = 5.0
# On PostgreSQL each server process chains the audit records appended since (credo.server.audit)
# this often; a read of the log chains them first, so this bounds only the pending table's size.
AUDIT_LINK_INTERVAL = 1.0
# A web UI sign-in lasts a working day; then the browser signs in again (Negotiate: silently).
UI_SESSION_SECONDS = 8 * 3600
# A server process trusts the role grants and the API tokens it read this long before reading
# them again: a change made through this process counts at once, one made through another server
# process on the same database within this time.
ACCESS_CACHE_SECONDS = 5.0

# -- listings ---------------------------------------------------------------------------------------
MAX_JOB_LIST = 1000  # jobs in one listing
MAX_AUDIT_PAGE = 5000  # audit records in one page of an export
MAX_OUTPUT_PAGE = 10000  # output chunks in one page
UI_PAGE = 100  # rows on one page of the web UI's lists (jobs, audit log)
# A position a client gives back (an audit seq, an output chunk id): the largest SQL BIGINT. A
# larger number cannot name a row, and SQLite would fail to bind it (a 500, found by schemathesis).
MAX_POSITION = 2**63 - 1
