"""Issue 14 point 5 end to end: the credential agent (as WORKER1$) keeps a service's token file
fresh from a real `credo server` over HTTPS and Kerberos; the token verifies with PyJWT against
the JWKS fetched over HTTPS from the issuer, with the group's subject, like its jobs'."""

from __future__ import annotations

import json
import pwd
import shutil
import ssl
import stat
import tempfile
import time
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest

from credo.lab import Lab, LabSettings
from tests.oidc.conftest import AZURE
from tests.oidc.test_real import HttpsServer, https_server  # noqa: F401 - the fixture
from tests.support.agent import AgentProcess, agent_config
from tests.support.identity import CREDO, run

pytestmark = pytest.mark.lab


def test_the_agent_keeps_a_services_token_file(
    https_server: HttpsServer,  # noqa: F811
    lab: Lab,
    lab_settings: LabSettings,
    runner_user: str,
    tmp_path: Path,
) -> None:
    base = Path(tempfile.mkdtemp(prefix="agent-token-", dir="/run"))
    base.chmod(0o755)
    (base / "out").mkdir(mode=0o755)
    token_file = base / "out" / "web-sync.token"
    extra = (
        "\n[[account.token]]\n"
        f'path = "{token_file}"\nuser = "credo-runner"\ngroup = "tier1"\n'
        f'audience = "{AZURE}"\nservice = "web-sync"\n'
    )
    text = agent_config(lab, lab_settings, base) + extra
    text = text.replace(
        "[directory]",
        f'[server]\nurl = "{https_server.url}"\nca_file = "{https_server.ca}"\n\n[directory]',
        1,
    )
    config = base / "agent.toml"
    config.write_text(text)
    agent = AgentProcess(config, base / "agent.log")
    agent.start()
    try:
        deadline = time.monotonic() + 60
        while not token_file.exists():
            assert agent.process is not None and agent.process.poll() is None, agent.log.read_text()
            assert time.monotonic() < deadline, agent.log.read_text()
            time.sleep(0.2)
        info = token_file.stat()
        assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == pwd.getpwnam(runner_user).pw_uid
        token = token_file.read_text().strip()
        context = ssl.create_default_context(cafile=str(https_server.ca))
        discovery = httpx.get(f"{https_server.url}/.well-known/openid-configuration", verify=context).json()
        jwks = httpx.get(discovery["jwks_uri"], verify=context).json()
        kid = pyjwt.get_unverified_header(token)["kid"]
        key = next(k for k in jwks["keys"] if k["kid"] == kid)
        claims = pyjwt.decode(token, pyjwt.PyJWK(key).key, algorithms=["RS256"], audience=AZURE,
                              issuer=discovery["issuer"])  # fmt: skip
        assert claims["sub"] == "credo:group:tier1"
        assert claims["credo"]["service"] == "web-sync" and claims["credo"]["host"].upper().startswith(
            "WORKER1"
        )
        status = run([*CREDO, "agent", "status", "--json"], agent.env())
        tokens = json.loads(status.stdout)[0]["tokens"]
        assert (
            tokens and tokens[0]["error"] is None
            if isinstance(tokens[0], dict) and "error" in tokens[0]
            else tokens
        )
        assert token not in agent.log.read_text() and token not in status.stdout
        assert token not in https_server.data_dir.joinpath("..", "server.log").resolve().read_text()
    finally:
        agent.stop()
        shutil.rmtree(base, ignore_errors=True)
