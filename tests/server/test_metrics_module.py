"""The server's metrics render in the exposition format, from a snapshot and from what was counted."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from credo.server.metrics import QueueSnapshot, ServerMetrics


def test_snapshot_and_counters_render() -> None:
    snapshot = QueueSnapshot({"Queued": 3, "Running": 1}, {"tier1": 3}, {"tier1": 2, "tier2": 0})
    metrics = ServerMetrics(lambda: snapshot)
    metrics.job_started("tier1", 0.2)
    metrics.job_started("tier1", 42.0)
    metrics.schedule_fires.labels("nightly").inc()
    metrics.schedule_misses.labels("nightly", "skip").inc()
    metrics.webhook_calls.labels("deploy", "bad-signature").inc()
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    jobs = {s.labels["state"]: s.value for s in families["credo_jobs"].samples}
    assert jobs == {"Queued": 3, "Running": 1}
    assert {s.labels["group"]: s.value for s in families["credo_workers_online"].samples} == {
        "tier1": 2,
        "tier2": 0,
    }
    latency = families["credo_job_submit_to_start_seconds"]
    count = next(s.value for s in latency.samples if s.name.endswith("_count"))
    assert count == 2
    assert next(s.value for s in families["credo_webhook_calls"].samples if s.name.endswith("_total")) == 1
    assert any(s.labels.get("policy") == "skip" for s in families["credo_schedule_misses"].samples)
