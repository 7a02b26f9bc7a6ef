"""A real rsyslogd on loopback, the receiving end of credo's security events (RFC 5424).

rsyslog parses each message itself (its RFC 5424 parser, pmrfc5424), and writes the fields it
found, one JSON object a line, to a file the test reads: so what is checked is what a SIEM's
collector understands, not what credo meant to send.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.server.conftest import free_port

# One line per message: rsyslog's parsed properties, JSON-escaped by the template.
_TEMPLATE = (
    'template(name="fields" type="list") {\n'
    '  constant(value="{\\"pri\\":\\"") property(name="pri")\n'
    '  constant(value="\\",\\"severity\\":\\"") property(name="syslogseverity-text")\n'
    '  constant(value="\\",\\"facility\\":\\"") property(name="syslogfacility-text")\n'
    '  constant(value="\\",\\"version\\":\\"") property(name="protocol-version")\n'
    '  constant(value="\\",\\"hostname\\":\\"") property(name="hostname" format="json")\n'
    '  constant(value="\\",\\"app\\":\\"") property(name="app-name" format="json")\n'
    '  constant(value="\\",\\"procid\\":\\"") property(name="procid" format="json")\n'
    '  constant(value="\\",\\"msgid\\":\\"") property(name="msgid" format="json")\n'
    '  constant(value="\\",\\"sd\\":\\"") property(name="structured-data" format="json")\n'
    '  constant(value="\\",\\"msg\\":\\"") property(name="msg" format="json" droplastlf="on")\n'
    '  constant(value="\\"}\\n")\n'
    "}\n"
)


class Rsyslog:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.udp_port = free_port()
        self.tcp_port = free_port()
        self.out = directory / "received.jsonl"
        self.conf = directory / "rsyslog.conf"
        self.pidfile = directory / "rsyslog.pid"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.conf.write_text(
            f'global(workDirectory="{self.directory}")\n'
            'module(load="imudp")\nmodule(load="imtcp")\n'
            f'input(type="imudp" address="127.0.0.1" port="{self.udp_port}")\n'
            f'input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}")\n'
            + _TEMPLATE
            + f'action(type="omfile" file="{self.out}" template="fields")\n'
        )
        self.process = subprocess.Popen(
            ["rsyslogd", "-n", "-f", str(self.conf), "-i", str(self.pidfile)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        import socket

        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.tcp_port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("rsyslogd did not start")

    def received(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The first ``count`` messages rsyslog wrote (waits for them)."""
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while time.monotonic() < deadline:
            lines = self.out.read_text().splitlines() if self.out.exists() else []
            if len(lines) >= count:
                break
            time.sleep(0.1)
        return [json.loads(line) for line in lines]

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self.pidfile.exists():
            os.unlink(self.pidfile)
