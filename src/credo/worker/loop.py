"""The worker loop: register, long-poll for jobs, run them in threads, heartbeat their leases.

Small on purpose (dramatiq's lesson): one claim loop, one heartbeat thread, one thread per
running job. The first SIGTERM/SIGINT drains (no new claims; running jobs finish); a second one
stops the running jobs too.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from credo.errors import CredoError
from credo.gmsa.session import SessionSettings
from credo.worker.client import ServerClient, backoff
from credo.worker.executor import JobExecutor, JobSpec

__all__ = ["Worker"]

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 1.0
CLAIM_WAIT_SECONDS = 25.0


class Worker:
    def __init__(self, client: ServerClient, settings: SessionSettings, slots: int) -> None:
        self.client = client
        self.executor = JobExecutor(client, settings)
        self.slots = slots
        self.running: dict[str, JobSpec] = {}
        self._lock = threading.Lock()
        self._slot_freed = threading.Condition(self._lock)
        self.draining = threading.Event()
        self.stopped = threading.Event()
        self._signals = 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals == 1:
            log.warning(
                "draining: no new jobs; %d running job(s) will finish (again to stop them)", len(self.running)
            )
            self.draining.set()
        else:
            log.warning("stopping the running jobs")
            for job_id in list(self.running):
                self.executor.request_stop(job_id)
        with self._lock:
            self._slot_freed.notify_all()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def heartbeat_loop(self) -> None:
        failures = 0
        while not self.stopped.is_set():
            with self._lock:
                leases = [{"job_id": j.job_id, "lease_token": j.lease_token} for j in self.running.values()]
            try:
                answer = self.client.json("POST", "/heartbeat", json={"leases": leases})
                failures = 0
                for job_id in answer.get("stop", []):
                    self.executor.request_stop(job_id)
            except CredoError as exc:
                failures += 1
                log.warning("heartbeat failed (%s)", exc)
            self.stopped.wait(HEARTBEAT_SECONDS if not failures else backoff(failures))

    def _run_job(self, job: JobSpec) -> None:
        """Run ``job``; while jobs are queued, the slot it frees takes the next one at once."""
        current: JobSpec | None = job
        while current is not None:
            next_jobs: list[dict[str, object]] = []
            try:
                next_jobs = self.executor.run(current, claim=0 if self.draining.is_set() else 1)
            finally:
                with self._lock:
                    self.running.pop(current.job_id, None)
                    current = None
                    for data in next_jobs:
                        spec = JobSpec.from_claim(data)
                        self.running[spec.job_id] = spec
                        if current is None:
                            current = spec
                        else:
                            self._start(spec)
                    self._slot_freed.notify_all()

    def _start(self, job: JobSpec) -> None:
        threading.Thread(target=self._run_job, args=(job,), name=f"job-{job.job_id[:8]}", daemon=True).start()

    def run(self) -> None:
        registration = self.client.register()
        log.info(
            "registered as %s in group %s (run as %s); %d slot(s)",
            registration["principal"], registration["group"], registration.get("run_as") or "the local user", self.slots,
        )  # fmt: skip
        heartbeat = threading.Thread(target=self.heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        failures = 0
        try:
            while not self.draining.is_set():
                with self._lock:
                    while len(self.running) >= self.slots and not self.draining.is_set():
                        self._slot_freed.wait()
                    free = self.slots - len(self.running)
                if self.draining.is_set():
                    break
                try:
                    answer = self.client.json(
                        "POST", "/claim", params={"slots": free, "wait": CLAIM_WAIT_SECONDS}
                    )
                    failures = 0
                except CredoError as exc:
                    failures += 1
                    wait = backoff(failures)
                    log.warning("claim failed (%s); retrying in %.1f s", exc, wait)
                    time.sleep(wait)
                    continue
                for data in answer.get("jobs", []):
                    job = JobSpec.from_claim(data)
                    with self._lock:
                        self.running[job.job_id] = job
                    self._start(job)
            with self._lock:
                while self.running:
                    self._slot_freed.wait()
        finally:
            self.stopped.set()
            heartbeat.join(timeout=5)
            self.executor.close()
