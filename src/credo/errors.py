"""Errors that credo raises, grouped by what the operator does next.

Every error carries a one-line, user-facing ``message`` and an optional ``hint`` naming the fix.
The CLI prints ``credo: error: <message>`` (and ``hint: <hint>``) on stderr and exits with the
class's ``exit_code``; the HTTP API turns them into a problem document. A traceback is shown only
with ``--debug``. Messages never contain a password, key or ticket.

    CredoError                      exit 1   generic failure
    ├── InputError                  exit 2   the caller gave something invalid (bad name, bad file)
    ├── EnvironmentProblem          exit 3   this machine is not ready: missing package, port taken,
    │                                        unwritable directory, stale PID file, missing keytab
    ├── UnreachableError            exit 4   no domain controller / server answered in time
    ├── NotPermittedError           exit 5   the directory or KDC refused: access denied, not allowed
    │   └── ConfidentialityRequired exit 5   the DC wants a sealed or TLS-protected connection
    └── NotFoundError               exit 6   the named object does not exist

Exit code 70 is reserved for an unexpected internal error (a bug); 130 means interrupted.
"""

from __future__ import annotations

__all__ = [
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "ConfidentialityRequired",
    "CredoError",
    "EnvironmentProblem",
    "InputError",
    "NotFoundError",
    "NotPermittedError",
    "UnreachableError",
]

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class CredoError(Exception):
    """Base of every error credo reports to a user."""

    exit_code: int = 1

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


class EnvironmentProblem(CredoError):
    """This machine is not ready (package, port, file, directory): the hint says what to fix."""

    exit_code = 3


class UnreachableError(CredoError):
    """No domain controller or server answered within the timeout."""

    exit_code = 4


class NotPermittedError(CredoError):
    """The directory, KDC or server refused the operation for this identity."""

    exit_code = 5


class ConfidentialityRequired(NotPermittedError):
    """The DC refused to return a secret attribute over a connection that is not confidential."""


class NotFoundError(CredoError):
    """The named account, group or object does not exist."""

    exit_code = 6
