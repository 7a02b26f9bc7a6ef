"""Fixtures of restricted endpoints' transport tests: lab users, their local accounts, a private sshd."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from credo.lab import ENDPOINT_SEED, USERS, Lab, LabSettings
from tests.support.identity import identity_env, run
from tests.support.sshd import Sshd, local_users


@pytest.fixture(scope="session")
def endpoint_users() -> Iterator[dict[str, Path]]:
    """Local Linux users jdoe and asmith (sshd maps jdoe@REALM to jdoe); removed at session end."""
    home_root = Path(tempfile.mkdtemp(prefix="credo-endpoint-homes-"))
    home_root.chmod(0o755)
    try:
        with local_users(USERS, home_root) as homes:
            yield homes
    finally:
        shutil.rmtree(home_root, ignore_errors=True)


@pytest.fixture(scope="session")
def user_ccache(lab: Lab, lab_settings: LabSettings) -> Callable[[str], str]:
    """``user_ccache("jdoe")`` -> KRB5CCNAME of a fresh ccache of jdoe@REALM (from the lab's keytab).

    The users are enabled first: `make demo` leaves jdoe disabled (its main job disables him)."""
    admin = identity_env(lab, "admin")
    for user in USERS:
        run(["samba-tool", "user", "enable", user, "-H", lab_settings.ldap_url, "--use-kerberos=required"],
            admin, check=True)  # fmt: skip

    def make(user: str) -> str:
        return lab.env(user).set["KRB5CCNAME"]

    return make


StartSshd = Callable[..., Sshd]


@pytest.fixture
def start_sshd(lab: Lab, lab_settings: LabSettings, endpoint_users: dict[str, Path]) -> Iterator[StartSshd]:
    """``start_sshd(force_command="...")`` -> a running private sshd on 127.0.0.1, stopped after."""
    started: list[Sshd] = []

    def start(force_command: str | None = None, **kwargs: object) -> Sshd:
        sshd = Sshd.start(
            host=lab_settings.host_fqdn(ENDPOINT_SEED.host),
            keytab=lab.paths.sshd_keytab(ENDPOINT_SEED.host),
            krb5_conf=lab.paths.krb5_conf,
            force_command=force_command,
            allow_users=list(endpoint_users),
            **kwargs,  # type: ignore[arg-type]
        )
        started.append(sshd)
        return sshd

    yield start
    for sshd in started:
        sshd.remove()
