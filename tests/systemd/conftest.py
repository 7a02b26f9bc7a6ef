"""Fixtures of the systemd tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A private stand-in for /run/credo (root 0755, like the agent's RuntimeDirectory=)."""
    path = Path(tempfile.mkdtemp(prefix="credo-systemd-test-", dir="/run"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
