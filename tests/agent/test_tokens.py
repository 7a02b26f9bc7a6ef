"""The agent's token outputs without the lab: configuration checks (one line naming the key), the
file (0600, the service user's, atomic), the schedule at half the lifetime, failures named and
retried with the old file kept, a removed output's file deleted, no token in logs or status."""

from __future__ import annotations

import logging
import pwd
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from credo.agent.config import ConfigError, TokenOutput, load_config
from credo.agent.tokens import TokenKeeper
from credo.automation.identity import AZURE_AUDIENCE, IssuedToken
from credo.errors import NotPermittedError, UnreachableError
from tests.support.fake_issuer import FakeIssuer

BASE = """
socket = "{d}/agent.sock"
[server]
url = "https://credo.corp.example.test:8443"
[[account]]
name = "svcauto"
[[account.token]]
path = "{d}/out/web-sync.token"
user = "credo-runner"
group = "tier1"
audience = "api://AzureADTokenExchange"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text.format(d=tmp_path))
    return path


def test_a_token_output_is_read(tmp_path: Path, runner_user: str) -> None:
    config = load_config(write(tmp_path, BASE + 'service = "web-sync"\n'))
    [output] = config.accounts[0].tokens
    user = pwd.getpwnam(runner_user)
    assert output == TokenOutput(tmp_path / "out/web-sync.token", runner_user, user.pw_uid, user.pw_gid, "tier1",
                                 AZURE_AUDIENCE, "web-sync")  # fmt: skip
    assert config.server.url == "https://credo.corp.example.test:8443" and config.server.ca_file is None
    # The service's name defaults to the account's.
    assert load_config(write(tmp_path, BASE)).accounts[0].tokens[0].service == "svcauto"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace('url = "https://credo.corp.example.test:8443"', ""),
         "server.url: missing: account[0] has token outputs, which the credo server gives"),
        (lambda t: t.replace("https://credo.corp", "http://credo.corp"),
         "server.url: 'http://credo.corp.example.test:8443' is not an https:// URL"),
        (lambda t: t.replace("[server]", '[server]\nca_file = "/nonexistent/ca.pem"'),
         "server.ca_file: /nonexistent/ca.pem: no such file"),
        (lambda t: t.replace('user = "credo-runner"', 'user = "no-such-user-x"'),
         "account[0].token[0].user: no local user 'no-such-user-x'"),
        (lambda t: t.replace('user = "credo-runner"\n', ""), "account[0].token[0].user: missing"),
        (lambda t: t.replace('group = "tier1"', 'group = "tier 1"'),
         "account[0].token[0].group: 'tier 1' is not a worker group's name"),
        (lambda t: t.replace('audience = "api://AzureADTokenExchange"', 'audience = "a b"'),
         "account[0].token[0].audience: 'a b': give one audience"),
        (lambda t: t.replace('audience = "api://AzureADTokenExchange"\n', ""),
         "account[0].token[0].audience: missing"),
        (lambda t: t.replace("{d}/out/web-sync.token", "relative.token"),
         "account[0].token[0].path: 'relative.token' is not an absolute path"),
        (lambda t: t + 'lifetime = 60\n', "account[0].token[0].lifetime: unknown key"),
        (lambda t: t.replace("[server]", '[server]\nport = 1'), "server.port: unknown key"),
    ],
)  # fmt: skip
def test_bad_token_settings_are_one_line_naming_the_key(tmp_path: Path, change: object, message: str) -> None:
    path = write(tmp_path, change(BASE))  # type: ignore[operator]
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.message.startswith(f"{path}: {message}"), caught.value.message
    assert "\n" not in caught.value.message


def test_the_command_line_check_says_it_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace('group = "tier1"', 'group = ""'))
    proc = subprocess.run([sys.executable, "-m", "credo", "agent", "run", "--config", str(path), "--check"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2
    assert (
        proc.stderr.splitlines()[0]
        == f"credo: error: {path}: account[0].token[0].group: '' is not a worker group's name"
    )


class Fetcher:
    def __init__(self, issuer: FakeIssuer) -> None:
        self.issuer = issuer
        self.error: Exception | None = None
        self.asked: list[TokenOutput] = []

    def __call__(self, output: TokenOutput) -> IssuedToken:
        self.asked.append(output)
        if self.error is not None:
            raise self.error
        return self.issuer.mint(output.audience)


def test_the_file_its_schedule_failures_and_removal(
    tmp_path: Path, runner_user: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = load_config(write(tmp_path, BASE))
    issuer = FakeIssuer(lifetime=600)
    fetcher = Fetcher(issuer)
    keeper = TokenKeeper(lambda _config: fetcher)
    keeper.configure(config)
    [path] = keeper.due()
    assert keeper.due() == []  # marked as refreshing
    keeper.refresh(path)
    info = path.lstat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == pwd.getpwnam(runner_user).pw_uid
    issuer.verify(path.read_text(), AZURE_AUDIENCE)
    [view] = keeper.view("SVCAUTO")
    assert view["error"] is None and view["subject"] == "credo:group:tier1" and view["service"] == "svcauto"
    next_in = (datetime.fromisoformat(view["next_refresh"]) - datetime.now(UTC)).total_seconds()
    assert 260 < next_in <= 300  # half of 600 s, up to 10 % earlier
    inode, first = path.stat().st_ino, path.read_text()

    # Refused: the old file stays; the cause and its fix are shown; retried within half its life.
    fetcher.error = NotPermittedError("POST /tokens: 403 WORKER1$ is not a worker of group tier1")
    keeper.refresh(path)
    assert path.read_text() == first and path.stat().st_ino == inode
    [view] = keeper.view("svcauto")
    assert view["error"]["cause"] == "token-refused" and view["failures"] == 1
    assert "allowed worker of group tier1" in view["error"]["hint"]
    fetcher.error = UnreachableError(
        "the server at https://credo.corp.example.test:8443 does not answer: refused"
    )
    keeper.refresh(path)
    [view] = keeper.view("svcauto")
    assert view["error"]["cause"] == "server-unreachable" and view["failures"] == 2
    retry_in = (datetime.fromisoformat(view["next_refresh"]) - datetime.now(UTC)).total_seconds()
    assert retry_in <= 4

    fetcher.error = None
    keeper.refresh(path)
    assert path.read_text() != first and path.stat().st_ino != inode  # renamed over
    assert keeper.view("svcauto")[0]["error"] is None
    assert not [n for n in path.parent.iterdir() if n.name.startswith(".")]

    logged = "\n".join(r.getMessage() for r in caplog.records) + repr(keeper.view("svcauto"))
    assert not any(token in logged for token in issuer.issued)

    # The output removed from the configuration: its file goes too.
    keeper.configure(load_config(write(tmp_path, BASE.split("[[account.token]]")[0])))
    assert not path.exists() and keeper.view("svcauto") == []
