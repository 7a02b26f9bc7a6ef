"""The lab domain: a real Samba AD DC on loopback, seeded with a demo directory.

lab = Lab(Path("/var/lib/credo/lab"))
lab.up()                      # provision on first use, start, return at once if running
env = lab.env("worker1")      # variables that make tools act as WORKER1$
"""

from __future__ import annotations

from credo.lab.lab import IDENTITIES, USERS, Lab, LabEnvironment, LabStatus
from credo.lab.provision import (
    ENDPOINT_SEED,
    MIGRATION_SEED,
    SEED,
    SHARES,
    DemoDirectory,
    EndpointDirectory,
    LabShare,
    MigrationDirectory,
)
from credo.lab.settings import DEFAULT_REALM, LabPaths, LabSettings, default_lab_dir

__all__ = [
    "DEFAULT_REALM",
    "ENDPOINT_SEED",
    "IDENTITIES",
    "MIGRATION_SEED",
    "SEED",
    "SHARES",
    "USERS",
    "DemoDirectory",
    "EndpointDirectory",
    "Lab",
    "LabEnvironment",
    "LabPaths",
    "LabSettings",
    "LabShare",
    "LabStatus",
    "MigrationDirectory",
    "default_lab_dir",
]
