"""The worker loop: register, long-poll for jobs, run them in threads, heartbeat their leases.

Small on purpose (dramatiq's lesson): one claim loop, one heartbeat thread, one thread per
running job, and the fence (``credo.worker.fence``) that kills a job whose lease could not be
renewed in time.

Stopping (SIGTERM, SIGINT): the first signal drains. The pending long-poll is cancelled at once,
the server is told (it takes the worker out of the claim rotation and requeues any job it claimed
for the worker on a connection the worker had already closed), running jobs get ``drain_grace``
seconds to finish, then they are handed back (killed, and requeued to run elsewhere), and the
process exits. An idle worker exits within a second. A second signal stops the running jobs at
once (they end Stopped).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType

from credo.automation.leases import DEFAULT_DRAIN_GRACE, DEFAULT_LEASE_SECONDS, LeasePolicy
from credo.defaults import IDLE_HEARTBEAT_SECONDS
from credo.errors import CredoError
from credo.gmsa.session import SessionSettings
from credo.worker.client import ServerClient, backoff
from credo.worker.executor import JobExecutor, JobSpec, claimed_jobs
from credo.worker.fence import LeaseFence, boottime

__all__ = ["Worker"]

log = logging.getLogger(__name__)
CLAIM_WAIT_SECONDS = 25.0
# How often the main loop looks at the flags the signal handler sets.
POLL_SECONDS = 0.2
# After a hand-back, how long the job threads get to report before the worker exits anyway.
HANDBACK_REPORT_SECONDS = 15.0


class Worker:
    def __init__(
        self,
        client: ServerClient,
        settings: SessionSettings,
        slots: int,
        drain_grace: float = DEFAULT_DRAIN_GRACE,
    ) -> None:
        self.client = client
        self.settings = settings
        # Made once registered: a worker the server refuses changes nothing on the host (no
        # fence process, no sweep of the runtime directory).
        self._fence: LeaseFence | None = None
        self._executor: JobExecutor | None = None
        self.slots = slots
        self.drain_grace = drain_grace
        self.running: dict[str, JobSpec] = {}
        self._lock = threading.Lock()
        self._slot_freed = threading.Condition(self._lock)
        self.stopped = threading.Event()
        # Wakes the heartbeat thread: a job just started (an idle worker beats seldom), or the
        # worker stopped.
        self._beat = threading.Event()
        # Set by the signal handler, which takes no lock (it runs in the main thread, which may hold
        # any of them at that moment): plain flags, polled by the loops below.
        self.draining = False
        self._stop_now = False
        self._signals = 0

    @property
    def fence(self) -> LeaseFence:
        assert self._fence is not None, "registered first"
        return self._fence

    @property
    def executor(self) -> JobExecutor:
        assert self._executor is not None, "registered first"
        return self._executor

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT are handled by a thread of their own, woken through the wakeup fd.

        The kernel may deliver a process-directed signal to any thread; Python runs its handler in
        the main thread only when that thread next runs bytecode, which a long-poll blocked in
        recv() does not do for up to its whole wait. The C-level handler writes the signal's number
        to the wakeup fd whichever thread took it, so the watcher thread acts at once: it tells the
        server, whose answer ends the pending long-poll.
        """
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _ignore)
        threading.Thread(target=self._watch_signals, args=(read_fd,), name="signals", daemon=True).start()

    def _watch_signals(self, read_fd: int) -> None:
        while True:
            for signum in os.read(read_fd, 64):
                if signum in (signal.SIGTERM, signal.SIGINT):
                    self._on_signal()

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals == 1:
            self.draining = True
            if self._executor is not None:
                # The server takes the worker out of the rotation and ends its pending long-poll.
                self._tell_server(final=False)
            with self._lock:
                self._slot_freed.notify_all()
            return
        self._stop_now = True
        if self._executor is not None:
            log.warning("stopping the running jobs")
            with self._lock:
                jobs = list(self.running.values())
            for job in jobs:
                self.executor.request_stop(job.job_id, job.lease_token)

    def _leases(self) -> list[dict[str, object]]:
        with self._lock:
            return [{"job_id": j.job_id, "lease_token": j.lease_token} for j in self.running.values()]

    def heartbeat_loop(self) -> None:
        failures = 0
        last_beat = -IDLE_HEARTBEAT_SECONDS
        while not self.stopped.is_set():
            leases = self._leases()
            sent_at = boottime()
            # Woken for a job that is over already: nothing to renew, and alive said lately.
            if leases or failures or sent_at - last_beat >= IDLE_HEARTBEAT_SECONDS:
                failures = self._beat_once(leases, sent_at, failures)
                last_beat = sent_at if not failures else last_beat
            # Leases need renewing often; an idle worker only says it is alive (issue 16: with
            # 1,000 idle workers, a beat a second each was 1,000 transactions a second).
            interval = self.fence.policy.heartbeat_seconds if leases else IDLE_HEARTBEAT_SECONDS
            started = self._beat.wait(interval if not failures else min(interval, backoff(failures)))
            self._beat.clear()
            if started and not self.stopped.is_set():
                # A new lease is renewed a heartbeat interval after it began, like the others
                # (the fence counts from its receipt); a job over by then costs no beat.
                self.stopped.wait(self.fence.policy.heartbeat_seconds)

    def _beat_once(self, leases: list[dict[str, object]], sent_at: float, failures: int) -> int:
        """One heartbeat renewing ``leases``; return the failures in a row after it."""
        try:
            answer = self.client.json("POST", "/heartbeat", json={"leases": leases})
        except CredoError as exc:
            log.warning("heartbeat failed (%s)", exc)
            return failures + 1
        stop = set(answer.get("stop", []))
        self.fence.renewed([str(lease["job_id"]) for lease in leases if lease["job_id"] not in stop], sent_at)
        tokens = {lease["job_id"]: lease["lease_token"] for lease in leases}
        for job_id in stop:
            token = tokens.get(job_id)
            self.executor.request_stop(job_id, token if isinstance(token, int) else None)
        return 0

    def _adopt(self, jobs: list[dict[str, object]], received_at: float) -> list[JobSpec]:
        """Jobs the server just gave us: their leases start now. Call with the lock held."""
        specs = []
        for data in jobs:
            spec = JobSpec.from_claim(data)
            self.fence.begin(spec.job_id, received_at)
            self.running[spec.job_id] = spec
            specs.append(spec)
        if specs:
            self._beat.set()
        return specs

    def _run_job(self, job: JobSpec) -> None:
        """Run ``job``; while jobs are queued, the slot it frees takes the next one at once."""
        current: JobSpec | None = job
        while current is not None:
            next_jobs: list[dict[str, object]] = []
            try:
                next_jobs = self.executor.run(current, claim=0 if self.draining else 1)
            finally:
                received = boottime()
                with self._lock:
                    self.running.pop(current.job_id, None)
                    specs = self._adopt(next_jobs, received)
                    current = specs[0] if specs else None
                    for spec in specs[1:]:
                        self._start(spec)
                    self._slot_freed.notify_all()

    def _start(self, job: JobSpec) -> None:
        threading.Thread(target=self._run_job, args=(job,), name=f"job-{job.job_id[:8]}", daemon=True).start()

    def _claim(self, free: int) -> list[dict[str, object]]:
        """One long-poll for up to ``free`` jobs ([] once draining: the server ends it then)."""
        if self.draining:
            return []
        answer = self.client.json("POST", "/claim", params={"slots": free, "wait": CLAIM_WAIT_SECONDS})
        jobs: list[dict[str, object]] = claimed_jobs(answer)
        return jobs

    def _tell_server(self, final: bool) -> None:
        """Drain (or, ``final``, offline): best effort, the server's lease rules cover a failure."""
        try:
            self.client.json("POST", "/drain", json={"leases": self._leases(), "final": final}, retry_for=2.0)
        except CredoError as exc:
            log.warning("could not tell the server that this worker is stopping: %s", exc)

    def _wait_running(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for the running jobs to end; True if none is left. A second
        signal meanwhile stops them."""
        deadline = time.monotonic() + seconds
        stopping = False
        while True:
            with self._lock:
                left = deadline - time.monotonic()
                if not self.running or left <= 0:
                    return not self.running
                self._slot_freed.wait(min(left, POLL_SECONDS))
                jobs = list(self.running.values())
            if self._stop_now and not stopping:
                stopping = True
                log.warning("stopping the %d running job(s)", len(jobs))
                for job in jobs:
                    self.executor.request_stop(job.job_id, job.lease_token)

    def run(self) -> None:
        registration = self.client.register()
        self._fence = LeaseFence(LeasePolicy(float(registration.get("lease_seconds", DEFAULT_LEASE_SECONDS))))
        self._executor = JobExecutor(self.client, self.settings, self._fence)
        log.info(
            "registered as %s in group %s (run as %s); %d slot(s)",
            registration["principal"], registration["group"], registration.get("run_as") or "the local user", self.slots,
        )  # fmt: skip
        heartbeat = threading.Thread(target=self.heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        failures = 0
        try:
            while not self.draining:
                with self._lock:
                    while len(self.running) >= self.slots and not self.draining:
                        self._slot_freed.wait(POLL_SECONDS)
                    free = self.slots - len(self.running)
                if self.draining:
                    break
                try:
                    jobs = self._claim(free)
                    failures = 0
                except CredoError as exc:
                    failures += 1
                    wait = backoff(failures)
                    log.warning("claim failed (%s); retrying in %.1f s", exc, wait)
                    end = time.monotonic() + wait
                    while not self.draining and time.monotonic() < end:
                        time.sleep(POLL_SECONDS)
                    continue
                received = boottime()
                with self._lock:
                    for spec in self._adopt(jobs, received):
                        self._start(spec)
            log.warning(
                "draining: no new jobs; %d running job(s) get %.0f s to finish (signal again to stop them)",
                len(self.running), self.drain_grace,
            )  # fmt: skip
            self._tell_server(final=False)
            if not self._wait_running(self.drain_grace):
                log.warning(
                    "drain grace of %.0f s over: handing %d job(s) back", self.drain_grace, len(self.running)
                )
                for job_id in list(self.running):
                    self.executor.hand_back(
                        job_id, f"the worker stopped; its drain grace of {self.drain_grace:.0f} s ran out"
                    )
                self._wait_running(HANDBACK_REPORT_SECONDS)
        finally:
            self.stopped.set()
            self._beat.set()
            heartbeat.join(timeout=5)
            self._tell_server(final=True)
            self.executor.close()
            self.fence.close()


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler: the watcher thread does the work (``install_signal_handlers``)."""
