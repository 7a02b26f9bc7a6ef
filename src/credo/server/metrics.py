"""The runbook server's Prometheus metrics (issue 15 point 7), in a registry of its own.

Two kinds: what the server counts as it happens (submit-to-start latency when a worker claims a
job, schedule fires and misses, webhook calls by outcome), and what is read from the database
when Prometheus scrapes (jobs by state, queue depth per worker group, workers online), through a
``snapshot`` callable that the server passes in, so a scrape costs one query and no state is kept
twice. Served at ``/metrics`` in the text exposition format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "QueueSnapshot", "ServerMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Submit-to-start: a claim by an idle long-polling worker takes milliseconds; a busy queue minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


@dataclass(frozen=True)
class QueueSnapshot:
    """What the database says at scrape time."""

    jobs_by_state: Mapping[str, int] = field(default_factory=dict)
    queued_by_group: Mapping[str, int] = field(default_factory=dict)
    workers_online_by_group: Mapping[str, int] = field(default_factory=dict)


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Callable[[], QueueSnapshot]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        now = self.snapshot()
        jobs = GaugeMetricFamily("credo_jobs", "Jobs by state.", labels=["state"])
        for state, count in sorted(now.jobs_by_state.items()):
            jobs.add_metric([state], count)
        yield jobs
        queued = GaugeMetricFamily("credo_queue_depth", "Queued jobs by worker group.", labels=["group"])
        for group, count in sorted(now.queued_by_group.items()):
            queued.add_metric([group], count)
        yield queued
        online = GaugeMetricFamily(
            "credo_workers_online", "Workers online by worker group.", labels=["group"]
        )
        for group, count in sorted(now.workers_online_by_group.items()):
            online.add_metric([group], count)
        yield online


class ServerMetrics:
    def __init__(self, snapshot: Callable[[], QueueSnapshot]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_SnapshotCollector(snapshot))
        self.submit_to_start = Histogram(
            "credo_job_submit_to_start_seconds",
            "From a job's submission to a worker's claim of it.",
            labelnames=["group"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.schedule_fires = Counter(
            "credo_schedule_fires", "Schedule fires that started a job.", ["schedule"], registry=self.registry
        )
        self.schedule_misses = Counter(
            "credo_schedule_misses", "Schedule fires missed (server down), by policy.", ["schedule", "policy"],
            registry=self.registry,
        )  # fmt: skip
        self.webhook_calls = Counter(
            "credo_webhook_calls", "Webhook calls by outcome.", ["webhook", "outcome"], registry=self.registry
        )

    def job_started(self, group: str, waited_seconds: float) -> None:
        self.submit_to_start.labels(group).observe(max(0.0, waited_seconds))

    def render(self) -> bytes:
        return generate_latest(self.registry)
