"""Session fixtures: one lab DC for the whole test session, brought up once (or reused if running).

The lab directory is CREDO_LAB_DIR when set, else credo's default. Tests act as the identities
that ``credo lab env --host NAME`` gives, through ``tests.support.identity``.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from credo.lab import SEED, Lab, LabSettings, default_lab_dir
from tests.support.identity import identity_env

# `make test` draws the same examples every run (derandomize: seeded from each test), so that CI
# never meets a new input by chance: a property test found failing on a random draw once spent
# 13 minutes shrinking (tests/automation/test_schedules.py, a cron expression). Explore with
# HYPOTHESIS_PROFILE=explore, which draws new examples each run.
settings.register_profile("stable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "stable"))


@pytest.fixture(scope="session", autouse=True)
def no_user_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The tester's own credo.toml (``make demo`` writes one) must not steer the commands tests run:
    XDG_CONFIG_HOME points at an empty directory, for this process and its subprocesses."""
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def lab() -> Lab:
    directory = Path(os.environ["CREDO_LAB_DIR"]) if os.environ.get("CREDO_LAB_DIR") else default_lab_dir()
    the_lab = Lab(directory)
    the_lab.up()
    # `make demo` disables jdoe, and a developer may have played with the others: start enabled.
    for user, _, _ in SEED.users:
        subprocess.run(
            [
                "samba-tool",
                "user",
                "enable",
                user,
                "-H",
                str(the_lab.paths.sam_ldb),
                "-s",
                str(the_lab.paths.smb_conf),
            ],
            check=True,
            capture_output=True,
        )
    return the_lab


@pytest.fixture(scope="session")
def lab_settings(lab: Lab) -> LabSettings:
    settings = lab.settings
    assert settings is not None
    return settings


@pytest.fixture(scope="session")
def as_identity(lab: Lab) -> Callable[..., dict[str, str]]:
    """``as_identity("worker1")`` -> an environment that acts as WORKER1$ (a fresh ccache)."""

    def make(identity: str | None, **extra: str) -> dict[str, str]:
        return identity_env(lab, identity, **extra)

    return make


RUNNER = "credo-runner"


@pytest.fixture(scope="session")
def runner_user() -> str:
    """An unprivileged local user that jobs and `credo run --user` run as."""
    try:
        pwd.getpwnam(RUNNER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUNNER], check=True
        )
    return RUNNER


@pytest.fixture(scope="session")
def two_dcs(lab: Lab) -> LabSettings:
    """The session's lab with its second DC (joined the first time: about 15 s, DC1 restarted once)."""
    status = lab.up(dcs=2)
    assert [dc.state for dc in status.dcs] == ["running", "running"]
    settings = lab.settings
    assert settings is not None
    return settings


@pytest.fixture
def dc2_running(lab: Lab, two_dcs: LabSettings) -> Iterator[LabSettings]:
    """Two DCs running, and DC 2 running again after the test whatever it did."""
    yield two_dcs
    lab.start_dc(2)


@pytest.fixture(scope="session")
def installed_credo() -> Iterator[Path]:
    """credo as an installed program any local user may run (tests.support.installed): the
    launcher's path. The tree under test may sit in a directory only root can read (a CI clone
    in mktemp -d), and the venv's interpreter lives under /root."""
    import shutil
    import tempfile

    from tests.support.installed import install_credo_for_users

    base = Path(tempfile.mkdtemp(prefix="credo-installed-", dir="/run"))
    base.chmod(0o755)
    try:
        yield install_credo_for_users(base / "credo")
    finally:
        shutil.rmtree(base, ignore_errors=True)
