"""How many request-body bytes each kind of route accepts: the caps the gate enforces.

A cap bounds what one request can make the server hold: the gate answers 413 from the first
byte over it (or at once, from ``Content-Length``) and closes the connection, so a caller cannot
make the server receive, buffer or parse more. Each cap leaves room for JSON's overhead over the
limit of the content it carries.
"""

from __future__ import annotations

from credo.automation.jobs import MAX_STREAM_BYTES
from credo.automation.parameters import MAX_PARAMETERS_BYTES

__all__ = ["DEFAULT_BODY", "JOB_BODY", "NO_BODY", "RUNBOOK_BODY", "TOKEN_BODY", "WORKER_REPORT_BODY"]

KiB = 1024
MiB = 1024 * KiB

# Health, reads and deletes take no body.
NO_BODY = 0
# Groups, registrations, heartbeats: a few small fields.
DEFAULT_BODY = 64 * KiB
# A runbook's content travels base64-encoded (the API accepts up to 2 MiB of it, MAX_RUNBOOK_BYTES
# once decoded), beside its description and parameter declarations.
RUNBOOK_BODY = 4 * MiB
# A job's parameters are capped at MAX_PARAMETERS_BYTES (512 KB, Azure's limit) once parsed; JSON
# escaping may double them on the wire.
JOB_BODY = 2 * MAX_PARAMETERS_BYTES
# A worker's output or finish batch: each stream keeps MAX_STREAM_BYTES, and text sent as JSON may
# grow up to 6-fold (\u00XX escapes) for control bytes; a few streams fit.
WORKER_REPORT_BODY = 8 * MAX_STREAM_BYTES
# A token request: a lease, an audience (at most 600 characters, Entra's limit), a flag, a SID.
TOKEN_BODY = 4 * KiB
