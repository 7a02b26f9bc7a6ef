"""The agent's Prometheus metrics (prometheus-client), on an opt-in loopback port.

credo_agent_refreshes_total{account}, credo_agent_refresh_failures_total{account,cause},
credo_agent_password_expiry_seconds{account} (until the password changes),
credo_agent_dc_failovers_total, credo_agent_socket_refused_total. No secret is ever a label.
"""

from __future__ import annotations

import time
from datetime import datetime

__all__ = ["Metrics"]


class Metrics:
    def __init__(self, listen: str | None) -> None:
        self.listen = listen
        if listen is None:
            self.registry = None
            return
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = CollectorRegistry()
        self.refreshes = Counter(
            "credo_agent_refreshes", "Successful refreshes", ["account"], registry=self.registry
        )
        self.failures = Counter(
            "credo_agent_refresh_failures",
            "Failed refreshes by cause",
            ["account", "cause"],
            registry=self.registry,
        )
        self.expiry = Gauge(
            "credo_agent_password_expiry_seconds", "Seconds until the password changes", ["account"],
            registry=self.registry,
        )  # fmt: skip
        self.failovers = Counter("credo_agent_dc_failovers", "Refreshes served by another than the first DC",
                                 registry=self.registry)  # fmt: skip
        self.refused = Counter(
            "credo_agent_socket_refused", "Socket requests refused", registry=self.registry
        )
        self._expiry: dict[str, datetime] = {}

    def start(self) -> None:
        if self.listen is None or self.registry is None:
            return
        from prometheus_client import start_http_server

        host, _, port = self.listen.rpartition(":")
        start_http_server(int(port), addr=host.strip("[]"), registry=self.registry)

    def refreshed(self, account: str, expires: datetime, *, failover: bool) -> None:
        if self.registry is None:
            return
        self.refreshes.labels(account).inc()
        self.expiry.labels(account).set_function(lambda: expires.timestamp() - time.time())
        if failover:
            self.failovers.inc()

    def failed(self, account: str, cause: str) -> None:
        if self.registry is not None:
            self.failures.labels(account, cause).inc()

    def refused_request(self) -> None:
        if self.registry is not None:
            self.refused.inc()
