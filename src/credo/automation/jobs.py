"""Job states and the transitions between them (Azure Automation's names and retry rule)."""

from __future__ import annotations

import enum

__all__ = ["MAX_ATTEMPTS", "TERMINAL", "JobState", "Stream", "can_transition"]

# A job whose worker dies is restarted up to three times in all, then Suspended (Azure's rule).
MAX_ATTEMPTS = 3


class JobState(enum.StrEnum):
    NEW = "New"
    QUEUED = "Queued"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    SUSPENDED = "Suspended"


TERMINAL = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.STOPPED, JobState.SUSPENDED})

_ALLOWED = {
    JobState.NEW: {JobState.QUEUED, JobState.STOPPED},
    # Failed from Queued: no worker took the job within its timeout.
    JobState.QUEUED: {JobState.RUNNING, JobState.STOPPED, JobState.FAILED},
    JobState.RUNNING: {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.STOPPING,
        JobState.STOPPED,  # the worker stopped it itself (a second SIGTERM/SIGINT)
        JobState.QUEUED,
        JobState.SUSPENDED,
    },
    JobState.STOPPING: {JobState.STOPPED, JobState.COMPLETED, JobState.FAILED},
    # `credo job resume`: a suspended job runs again from the start (Azure's Resume-AzAutomationJob).
    JobState.SUSPENDED: {JobState.QUEUED},
}


def can_transition(current: JobState, target: JobState) -> bool:
    return target in _ALLOWED.get(current, set())


class Stream(enum.StrEnum):
    """Azure Automation's six output streams: stdout is output, stderr is error."""

    OUTPUT = "output"
    ERROR = "error"
    WARNING = "warning"
    VERBOSE = "verbose"
    PROGRESS = "progress"
    DEBUG = "debug"


# Each stream keeps at most 1 MiB (Azure's limit), then a truncation marker.
MAX_STREAM_BYTES = 1024 * 1024
TRUNCATION_MARKER = "\n[credo: stream truncated at 1 MiB]\n"
