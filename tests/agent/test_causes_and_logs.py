"""Issue 12 points 3 and 8 against the lab: a skewed host clock and a DC certificate the configured
CA did not sign are named (`credo agent status --json`: cause and fix) from what krb5 and the TLS
stack really say; the agent's JSON logs are one object a line and carry no key or password."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from credo.krb.keytab import read_keytab
from credo.lab import Lab, LabSettings
from tests.support.agent import AgentProcess, agent_config
from tests.support.identity import CREDO, run

FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def _start(agents: list[AgentProcess], base: Path, text: str, name: str, **env: str) -> AgentProcess:
    config = base / f"{name}.toml"
    config.write_text(text)
    agent = AgentProcess(config, base / f"{name}.log")
    agent.socket = base / "agent.sock"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}
    with open(agent.log, "ab") as handle:
        agent.process = subprocess.Popen([*CREDO, "agent", "run", "--config", str(config)], env=clean | env,
                                         stdout=handle, stderr=subprocess.STDOUT)  # fmt: skip
    agents.append(agent)
    return agent


def _wait_for(agent: AgentProcess, needle: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while needle not in agent.log.read_text():
        assert agent.process is not None and agent.process.poll() is None, agent.log.read_text()
        assert time.monotonic() < deadline, agent.log.read_text()
        time.sleep(0.1)


def _status(agent: AgentProcess) -> dict[str, Any]:
    proc = run([*CREDO, "agent", "status", "--json"], agent.env())
    assert proc.returncode == 0, proc.stderr
    [state] = json.loads(proc.stdout)
    return dict(state)


@pytest.mark.skipif(not FAKETIME_LIB.exists(), reason="libfaketime is not installed")
def test_a_host_clock_an_hour_ahead_is_named_clock_skew_with_its_fix(
    agents: list[AgentProcess], agent_dir: Path, lab: Lab, lab_settings: LabSettings
) -> None:
    # libfaketime 0.9.10 with FAKETIME_DONT_FAKE_MONOTONIC=1 makes Python's time.sleep fail with
    # EINVAL (clock_nanosleep with TIMER_ABSTIME): the whole clock moves by the offset instead.
    skewed = {"LD_PRELOAD": str(FAKETIME_LIB), "FAKETIME": "+1h"}
    # MIT Kerberos takes the KDC's time from its KRB_AP_ERR_SKEW answer and retries (krb5.conf
    # kdc_timesync, on by default): an hour's skew does not stop a refresh...
    agent = _start(agents, agent_dir, agent_config(lab, lab_settings, agent_dir), "synced", **skewed)
    _wait_for(agent, "refreshed (kvno")
    agent.stop()
    # ...but with kdc_timesync = 0 the KDC's refusal is what the host gets: named, with its fix.
    krb5_conf = agent_dir / "krb5-nosync.conf"
    krb5_conf.write_text(
        lab.paths.krb5_conf.read_text().replace("[libdefaults]", "[libdefaults]\n    kdc_timesync = 0", 1)
    )
    text = agent_config(lab, lab_settings, agent_dir).replace(str(lab.paths.krb5_conf), str(krb5_conf))
    agent = _start(agents, agent_dir, text, "skewed", **skewed)
    _wait_for(agent, "refresh failed (clock-skew)")
    error = _status(agent)["error"]
    assert error["cause"] == "clock-skew", error
    assert error["message"].startswith("clock skew too great between this host and the KDC for WORKER1$@")
    assert error["hint"] == "synchronise the clock (chrony/ntpd) with the domain controllers"


def _other_ca(path: Path) -> None:
    """A self-signed CA that did not sign the lab DC's certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Not the lab's CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@pytest.mark.parametrize("transport", ["ldaps", "starttls"])
def test_a_dc_certificate_the_ca_did_not_sign_is_named_with_its_fix(
    agents: list[AgentProcess], agent_dir: Path, lab: Lab, lab_settings: LabSettings, transport: str
) -> None:
    ca = agent_dir / "other-ca.pem"
    _other_ca(ca)
    url = lab_settings.ldap_url
    if transport == "ldaps":
        url, extra = url.replace("ldap://", "ldaps://", 1), ""
    else:
        extra = "starttls = true"
    text = agent_config(
        lab, lab_settings, agent_dir, servers=[url], directory_extra=f'ca_file = "{ca}"\n{extra}'
    )
    agent = _start(agents, agent_dir, text, "other-ca")
    _wait_for(agent, "refresh failed (ldaps-certificate-rejected)")
    error = _status(agent)["error"]
    assert error["cause"] == "ldaps-certificate-rejected", error
    # libldap (GnuTLS) says "(unknown error code)"; the probe gives OpenSSL's reason.
    assert f"{url} (TLS certificate rejected: unable to get local issuer certificate)" in error["message"]
    assert "[directory] ca_file" in error["hint"]
    agent.stop()
    # The lab's own CA over the same transport: no false alarm.
    text = text.replace(str(ca), str(lab.paths.ca_file))
    agent = _start(agents, agent_dir, text, "lab-ca")
    _wait_for(agent, "refreshed (kvno")
    assert _status(agent)["error"] is None


def test_json_logs_are_one_object_a_line_with_the_account_and_no_secret(
    agents: list[AgentProcess], agent_dir: Path, lab: Lab, lab_settings: LabSettings
) -> None:
    text = agent_config(lab, lab_settings, agent_dir, log_format='"json"')
    agent = _start(agents, agent_dir, text, "json")
    _wait_for(agent, "refreshed (kvno")
    env = agent.env()
    # A keytab and a ccache handed out, a refused caller, a refresh on demand.
    assert (
        run([*CREDO, "gmsa", "keytab", "svcauto", "--out", agent_dir / "given.keytab"], env).returncode == 0
    )
    assert run([*CREDO, "run", "--as", "svcauto", "--", "true"], env).returncode == 0
    script = ("import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
              "s.sendall(b'{\"op\":\"refresh\",\"account\":\"svcauto\"}\\n'); print(s.recv(4096))")  # fmt: skip
    run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", script, str(agent.socket)],
        {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})  # fmt: skip
    assert run([*CREDO, "agent", "refresh", "svcauto"], env).returncode == 0
    _wait_for(agent, "refused refresh of svcauto")

    lines = agent.log.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is a JSON object
    for record in records:
        assert isinstance(record, dict) and {"time", "level", "logger", "account", "message"} <= set(record)
        assert record["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    about = {r["message"].split(" (")[0]: r for r in records if r["account"] == "svcauto"}
    assert {"svcauto: refreshed", "gave a keytab of svcauto", "gave a ccache of svcauto to uid 0",
            "refused refresh of svcauto to uid 65534"} <= set(about), [r["message"] for r in records]  # fmt: skip
    assert about["refused refresh of svcauto to uid 65534"]["level"] == "WARNING"
    assert next(r for r in records if "agent ready" in r["message"])["account"] is None

    # No secret in any line: the keys (hex, base64) of both keytabs, and the password itself.
    secrets_ = [
        e.key
        for path in (agent_dir / "out/svcauto.keytab", agent_dir / "given.keytab")
        for e in read_keytab(path)
    ]
    secrets_ += _passwords(lab, lab_settings)
    log = agent.log.read_bytes()
    for secret in secrets_:
        for form in (secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode(),
                     base64.urlsafe_b64encode(secret).decode()):  # fmt: skip
            assert form[:24].encode() not in log
        assert secret[:16] not in log


def _passwords(lab: Lab, settings: LabSettings) -> list[bytes]:
    """svcauto$'s current and previous passwords, retrieved as WORKER1$ (what the agent read)."""
    from credo.gmsa.operations import usable_password
    from credo.gmsa.session import HostSession, SessionSettings

    saved = os.environ.get("KRB5_CONFIG")
    os.environ["KRB5_CONFIG"] = str(lab.paths.krb5_conf)
    try:
        session_settings = SessionSettings(host_keytab=lab.paths.host_keytab("worker1"),
                                           host_principal=f"WORKER1$@{settings.realm}", server=settings.ldap_url)  # fmt: skip
        with HostSession(session_settings) as session:
            password = usable_password(session, "svcauto")
    finally:
        if saved is None:
            os.environ.pop("KRB5_CONFIG", None)
        else:
            os.environ["KRB5_CONFIG"] = saved
    found = [password.blob.current_password]
    if password.blob.previous_password is not None:
        found.append(password.blob.previous_password)
    return found
