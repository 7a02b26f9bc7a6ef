"""HAProxy in front of server replicas, on loopback, for the scale-out tests (issue 16).

``Haproxy.start`` runs Debian's ``/usr/sbin/haproxy -db -f CONFIG`` in the foreground (``-db``:
no daemon, no background), with a config of our own in a temporary directory: HTTP mode, round
robin over the replicas, an active health check on ``/api/v1/health`` every 200 ms, so a killed
replica leaves the rotation within a second (``fall 2``) and comes back at its first good answer
(``rise 1``). ``retries`` with ``option redispatch`` send a request whose connection failed to
another replica (HAProxy 2.6 configuration manual §4.2 "option redispatch", "retries").

Timeouts: a worker's claim long-polls up to 60 s and the SSE feed of a job's output stays open,
so ``timeout server`` and ``timeout tunnel`` are longer than both.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HAPROXY = "/usr/sbin/haproxy"

CONFIG = """\
global
    maxconn 4096
defaults
    mode http
    option redispatch
    retries 3
    timeout connect 1s
    timeout client 90s
    timeout server 90s
    timeout tunnel 1h
    timeout check 1s
frontend credo
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /api/v1/health
    http-check expect status 200
    default-server inter 200ms fall 2 rise 1
{servers}
"""


@dataclass
class Haproxy:
    port: int
    backends: Sequence[int]
    process: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="credo-haproxy-")))

    def start(self) -> None:
        servers = "\n".join(f"    server r{i} 127.0.0.1:{port} check" for i, port in enumerate(self.backends))
        config = self.workdir / "haproxy.cfg"
        config.write_text(CONFIG.format(port=self.port, servers=servers))
        check = subprocess.run([HAPROXY, "-c", "-q", "-f", str(config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        log = self.workdir / "haproxy.log"
        with open(log, "ab") as handle:
            self.process = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(config)], stdout=handle, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            assert self.process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)
