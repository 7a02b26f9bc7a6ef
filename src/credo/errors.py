"""Errors that credo raises, grouped by what the operator does next.

Every error carries a one-line, user-facing ``message`` and an optional ``hint`` naming the fix.
The CLI prints ``credo: error: <message>`` (and ``hint: <hint>``) on stderr and exits with the
class's ``exit_code``; the HTTP API answers with the class's ``http_status`` and a problem
document (RFC 9457: ``title``, ``status``, ``hint``), and its clients rebuild the error with
``error_for_status``. A traceback is shown only with ``--debug``. Messages never contain a
password, key or ticket.

    class                           exit  HTTP  meaning
    CredoError                      1     500   generic failure
    ├── InputError                  2     422   the caller gave something invalid (bad name, bad file)
    ├── EnvironmentProblem          3     503   this machine is not ready: missing package, port taken,
    │                                           unwritable directory, stale PID file, missing keytab
    ├── UnreachableError            4     504   no domain controller / server answered in time
    ├── NotPermittedError           5     403   the directory, KDC or server refused: access denied
    │   └── ConfidentialityRequired 5     403   the DC wants a sealed or TLS-protected connection
    ├── NotFoundError               6     404   the named object does not exist
    └── Conflict                    1     409   the request contradicts the current state

Going back from a status (``error_for_status``): 400, 413 and 422 are InputError; 401 and 403
NotPermittedError (401 is "no or wrong credentials", answered with a ``WWW-Authenticate``
challenge); 404 NotFoundError; 409 Conflict; 502 and 504 UnreachableError; 503
EnvironmentProblem; anything else CredoError.

Exit code 70 is reserved for an unexpected internal error (a bug); 130 means interrupted.
"""

from __future__ import annotations

__all__ = [
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "ConfidentialityRequired",
    "Conflict",
    "CredoError",
    "EnvironmentProblem",
    "InputError",
    "NotFoundError",
    "NotPermittedError",
    "UnreachableError",
    "error_for_status",
]

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class CredoError(Exception):
    """Base of every error credo reports to a user."""

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InputError(CredoError):
    """The caller passed an invalid value: fix the command line or the input file."""

    exit_code = 2
    http_status = 422


class EnvironmentProblem(CredoError):
    """This machine is not ready (package, port, file, directory): the hint says what to fix."""

    exit_code = 3
    http_status = 503


class UnreachableError(CredoError):
    """No domain controller or server answered within the timeout."""

    exit_code = 4
    http_status = 504


class NotPermittedError(CredoError):
    """The directory, KDC or server refused the operation for this identity."""

    exit_code = 5
    http_status = 403


class ConfidentialityRequired(NotPermittedError):
    """The DC refused to return a secret attribute over a connection that is not confidential."""


class NotFoundError(CredoError):
    """The named account, group or object does not exist."""

    exit_code = 6
    http_status = 404


class Conflict(CredoError):
    """The request contradicts the current state: a stale lease, a finished job, a name taken."""

    exit_code = 1
    http_status = 409


# Status -> class, the inverse of ``http_status`` (ConfidentialityRequired shares 403 with its
# parent, which stands for it), plus statuses that are no class's own but still name one.
_OWN_STATUS: tuple[type[CredoError], ...] = (
    InputError, EnvironmentProblem, UnreachableError, NotPermittedError, NotFoundError, Conflict,
)  # fmt: skip
_BY_STATUS: dict[int, type[CredoError]] = {cls.http_status: cls for cls in _OWN_STATUS} | {
    400: InputError,  # a body that is not JSON, not UTF-8
    413: InputError,  # a body over the route's cap: the caller sends less
    401: NotPermittedError,  # no or wrong credentials
    502: UnreachableError,
}


def error_for_status(status: int, title: str, *, hint: str | None = None) -> CredoError:
    """The error an HTTP answer stands for: its status picks the class, its problem document's
    ``title`` and ``hint`` become the message and hint (so the CLI exits with the class's code)."""
    return _BY_STATUS.get(status, CredoError)(title, hint=hint)
