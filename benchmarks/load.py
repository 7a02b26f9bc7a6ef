"""Issue 16 point 3: the control plane alone under many workers, on several replicas.

A deployment of ``--replicas`` real `credo server` processes on one private PostgreSQL cluster
(loopback only), and ``--workers`` simulated workers in this process (asyncio, httpx) that speak
the real worker protocol: a long-poll claim (``/claim?slots=S&wait=25``), then for each job a
finish report that carries its output and claims the next job in the same request
(``/finish?claim=1``, as credo.worker.loop does), and heartbeats (every second with leases,
every 30 s idle). Jobs are
trivial: no process runs, so what is measured is the control plane (HTTP, the database, wake-ups
between replicas). Workers are spread round robin over the replicas' URLs and over ``--groups``
worker groups (a group holds at most 1,000 workers).

Workers register through the library, not through Negotiate: 1,000 computer accounts are not in
the lab. Their rows are made with ``queue.register_worker`` and their session tokens are signed
with the deployment's ``worker-session.key``, exactly what the register route does after the
Kerberos check (credo.server.routes.workers).

Phases, each printed as it ends:
1. idle: every worker long-polls; the replicas' resident memory (VmRSS, summed) is read after a
   settling time. Goal: < 300 MiB for 3 replicas and 1,000 workers.
2. latency: jobs submitted one at a time (25 ms apart), round robin over replicas and groups;
   submit-to-start is from the moment the submitter sends the job to the moment a simulated
   worker's claim answer holds it. Goal: p99 < 100 ms.
3. throughput: ``--jobs`` jobs submitted by ``--submitters`` concurrent clients while the workers
   run them; jobs/s = jobs / (last finish - first submission). Goal: >= 500 (stretch 1,000).
4. (``--history N``) N finished jobs inserted straight into the database, then phase 2 and the
   job list (``GET /api/v1/jobs?limit=50``) again, against their times before. Goal: <= 2x.

    python benchmarks/load.py --replicas 3 --workers 1000 --jobs 20000 --history 100000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_automation import PG_BIN, _free_port, _percentile, _postgres

REALM = "LOAD.EXAMPLE.TEST"
NOOP = "pass\n"


@dataclass
class Replica:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mib(self) -> float:
        return _proc_kib(f"/proc/{self.process.pid}/status", "VmRSS:") / 1024

    def pss_mib(self) -> float:
        """Proportional set size: shared pages (libraries, mapped code) split between the
        processes that map them, so that a sum over processes counts each page once."""
        return _proc_kib(f"/proc/{self.process.pid}/smaps_rollup", "Pss:") / 1024


def _proc_kib(path: str, field: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


@dataclass
class SimWorker:
    index: int
    worker_id: int
    group: str
    token: str
    url: str


@dataclass
class Results:
    started: dict[str, float] = field(default_factory=dict)  # job id -> when a worker received it
    finished: dict[str, float] = field(default_factory=dict)
    claimed_twice: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    retries: list[str] = field(default_factory=list)  # connection failures retried, as workers do


class Deployment:
    def __init__(self, work: Path, replicas: int, lease_seconds: float) -> None:
        self.work = work
        self.pg_url, self.pg_base = _postgres(work)
        self.data = work / "data"
        self.replicas: list[Replica] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDO_", "KRB5"))}
        env |= {"XDG_CONFIG_HOME": str(work / "no-config")}
        for i in range(replicas):
            port = _free_port()
            argv = [sys.executable, "-m", "credo", "server", "--data-dir", str(self.data), "--database",
                    self.pg_url, "--listen", f"127.0.0.1:{port}", "--lease-seconds", str(lease_seconds)]  # fmt: skip
            log = open(work / f"replica{i}.log", "wb")  # noqa: SIM115 (kept open for the process)
            process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
            self.replicas.append(Replica(port, process))
            self._wait_healthy(self.replicas[-1])
        self.admin = {"Authorization": f"Bearer {(self.data / 'admin.token').read_text().strip()}"}

    @staticmethod
    def _wait_healthy(replica: Replica) -> None:
        for _ in range(600):
            try:
                if httpx.get(f"{replica.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert replica.process.poll() is None, "a replica did not start (see its log)"
            time.sleep(0.1)
        raise RuntimeError("a replica did not answer within 60 s")

    def rss_mib(self) -> float:
        return sum(r.rss_mib() for r in self.replicas)

    def pss_mib(self) -> float:
        return sum(r.pss_mib() for r in self.replicas)

    def setup(self, workers: int, groups: int, slots: int) -> list[SimWorker]:
        from credo.server import queue
        from credo.server.auth import SessionTokens
        from credo.server.database import Database

        api = httpx.Client(base_url=self.replicas[0].url, headers=self.admin, timeout=60)
        import base64

        body = {"name": "noop", "type": "python3", "content": base64.b64encode(NOOP.encode()).decode()}
        assert api.post("/api/v1/runbooks", json=body).status_code == 201
        assert api.post("/api/v1/runbooks/noop/publish").status_code == 200
        principals = [f"LOAD{i:04d}$@{REALM}" for i in range(workers)]
        names = [f"load{g}" for g in range(groups)]
        for g, name in enumerate(names):
            members = principals[g::groups]
            group = {"name": name, "local_user": "credo-runner", "workers": members, "max_concurrent": slots}
            answer = api.post("/api/v1/groups", json=group)
            assert answer.status_code == 201, answer.text
        api.close()
        db = Database(self.pg_url)
        sessions = SessionTokens(self.data / "worker-session.key")
        sims = []
        with db.session() as session:
            for i, principal in enumerate(principals):
                worker, _ = queue.register_worker(
                    session, principal, names[i % groups], f"load{i}", slots, f"i{i}"
                )
                session.flush()
                url = self.replicas[i % len(self.replicas)].url
                sims.append(SimWorker(i, worker.id, names[i % groups], sessions.issue(principal), url))
        db.engine.dispose()
        return sims

    def insert_history(self, count: int) -> None:
        """``count`` finished jobs (copies of a finished one, older), and their transitions."""
        import psycopg

        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            columns = [row[0] for row in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs'"
                " ORDER BY ordinal_position"
            )]  # fmt: skip
            exprs = []
            for col in columns:
                if col == "id":
                    exprs.append("md5(random()::text || g)::uuid::text")
                elif col == "idempotency_key":
                    exprs.append("NULL")
                elif col in ("created_at", "updated_at"):
                    exprs.append(f"{col} - g * interval '1 second'")
                else:
                    exprs.append(col)
            template = conn.execute("SELECT id FROM jobs WHERE state = 'Completed' LIMIT 1").fetchone()
            assert template is not None
            conn.execute(
                f"INSERT INTO jobs ({', '.join(columns)}) SELECT {', '.join(exprs)} "
                "FROM jobs, generate_series(1, %s) AS g WHERE jobs.id = %s",
                (count, template[0]),
            )
            conn.execute(
                "INSERT INTO job_transitions (job_id, state, at, attempt, worker, detail) "
                "SELECT j.id, s.state, j.created_at, 1, NULL, NULL FROM jobs j, "
                "(VALUES ('New'), ('Queued'), ('Running'), ('Completed')) AS s(state) "
                "WHERE NOT EXISTS (SELECT 1 FROM job_transitions t WHERE t.job_id = j.id)"
            )
            conn.execute("ANALYZE")

    def close(self) -> None:
        for replica in self.replicas:
            replica.process.terminate()
        for replica in self.replicas:
            try:
                replica.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                replica.process.kill()
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D",
                        str(self.pg_base / "data"), "-m", "immediate", "stop"], capture_output=True)  # fmt: skip
        shutil.rmtree(self.pg_base, ignore_errors=True)


class Fleet:
    """The simulated workers: one task each, on shared connection pools (one per replica)."""

    def __init__(self, sims: list[SimWorker], slots: int) -> None:
        self.sims = sims
        self.slots = slots
        self.results = Results()
        self.stopping = False
        # One client (connection pool) per worker, as each worker process has its own: a pool
        # shared by hundreds of waiting requests costs httpcore time per request that grows
        # with their number (measured: 72 % of a core for 1,000 idle workers).
        self.clients = [
            httpx.AsyncClient(base_url=sim.url, timeout=httpx.Timeout(90, connect=30)) for sim in sims
        ]
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._run(sim)) for sim in self.sims]

    async def stop(self) -> None:
        self.stopping = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client in self.clients:
            await client.aclose()

    def _got(self, jobs: list[dict[str, Any]]) -> None:
        at = time.perf_counter()
        for job in jobs:
            if job["job_id"] in self.results.started:
                self.results.claimed_twice.append(job["job_id"])
            self.results.started[job["job_id"]] = at

    async def _run(self, sim: SimWorker) -> None:
        """One worker, as credo.worker.loop runs: a claim for the free slots, one task per slot
        whose finish report claims the slot's next job, and heartbeats (leases: every second;
        idle: every 15 s)."""
        client = self.clients[sim.index]
        auth = {"Authorization": f"Bearer {sim.token}"}
        base = f"/api/v1/workers/{sim.worker_id}"
        running: dict[str, int] = {}  # job id -> lease token
        freed = asyncio.Event()
        beat = asyncio.Event()  # a job started: renew its lease now (credo.worker.loop does so)

        async def slot(job: dict[str, Any]) -> None:
            current: dict[str, Any] | None = job
            while current is not None and not self.stopping:
                running[current["job_id"]] = current["lease_token"]
                beat.set()
                body = {"lease_token": current["lease_token"], "exit_code": 0, "reason": None, "stopped": False,
                        "handback": False, "chunks": [{"stream": "output", "text": "ok\n"}]}  # fmt: skip
                done = None
                for _ in range(5):  # as credo.worker.client retries: a report is idempotent
                    try:
                        done = await client.post(
                            f"{base}/jobs/{current['job_id']}/finish", params={"claim": 1}, json=body,
                            headers=auth,
                        )  # fmt: skip
                        break
                    except httpx.TransportError as exc:
                        self.results.retries.append(f"finish: {exc!r}")
                        await asyncio.sleep(0.2)
                running.pop(current["job_id"], None)
                if done is None or done.status_code != 200:
                    if done is not None:
                        self.results.errors.append(f"finish {done.status_code}: {done.text[:200]}")
                    break
                self.results.finished[current["job_id"]] = time.perf_counter()
                following = done.json().get("jobs", [])
                self._got(following)
                current = following[0] if following else None
            freed.set()

        async def heartbeat() -> None:
            """As credo.worker.loop beats: leases every second, the first a second after the
            job began (a job over by then costs none), and idle every 30 s."""
            last = time.monotonic()
            while not self.stopping:
                started = False
                with contextlib.suppress(TimeoutError):
                    started = await asyncio.wait_for(beat.wait(), 1.0 if running else 30.0)
                beat.clear()
                if started:
                    await asyncio.sleep(1.0)
                if not running and time.monotonic() - last < 30.0:
                    continue
                leases = [{"job_id": j, "lease_token": t} for j, t in running.items()]
                with contextlib.suppress(httpx.TransportError):
                    await client.post(f"{base}/heartbeat", json={"leases": leases}, headers=auth)
                last = time.monotonic()

        beating = asyncio.create_task(heartbeat())
        slots: set[asyncio.Task[None]] = set()
        try:
            while not self.stopping:
                free = self.slots - len(slots)
                if free <= 0:
                    freed.clear()
                    await freed.wait()
                    slots = {t for t in slots if not t.done()}
                    continue
                try:
                    answer = await client.post(
                        f"{base}/claim", params={"slots": free, "wait": 25}, headers=auth
                    )
                except httpx.TransportError as exc:
                    self.results.errors.append(f"claim: {exc!r}")
                    await asyncio.sleep(1)
                    continue
                if answer.status_code != 200:
                    self.results.errors.append(f"claim {answer.status_code}: {answer.text[:200]}")
                    await asyncio.sleep(1)
                    continue
                jobs = answer.json()["jobs"]
                self._got(jobs)
                for job in jobs:
                    slots.add(asyncio.create_task(slot(job)))
                slots = {t for t in slots if not t.done()}
        finally:
            beating.cancel()
            for task in slots:
                task.cancel()


class Submitter:
    def __init__(self, deployment: Deployment, groups: int) -> None:
        self.groups = groups
        self.clients = [
            httpx.AsyncClient(base_url=r.url, headers=deployment.admin, timeout=60)
            for r in deployment.replicas
        ]
        self.sent: dict[str, float] = {}
        self.count = 0
        self.retries = 0
        self.run = os.getpid()

    async def submit(self) -> str:
        i = self.count
        self.count += 1
        client = self.clients[i % len(self.clients)]
        # With an idempotency key, a submission whose connection failed is sent again safely.
        body = {"runbook": "noop", "group": f"load{i % self.groups}", "parameters": {},
                "idempotency_key": f"load-{self.run}-{i}"}  # fmt: skip
        at = time.perf_counter()
        for attempt in range(5):
            try:
                answer = await client.post("/api/v1/jobs", json=body)
                break
            except httpx.TransportError:
                self.retries += 1
                if attempt == 4:
                    raise
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"submission refused: {answer.status_code} {answer.text[:200]}")
        job_id: str = answer.json()["id"]
        self.sent[job_id] = at
        return job_id

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


async def _wait_started(results: Results, jobs: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(j in results.finished for j in jobs):
        if time.monotonic() > deadline:
            missing = [j for j in jobs if j not in results.finished]
            started = sum(1 for j in missing if j in results.started)
            errors = sorted({e[:150] for e in results.errors})[:5]
            raise RuntimeError(
                f"{len(missing)} of {len(jobs)} jobs did not finish within {timeout:.0f} s"
                f" ({started} of them started); errors: {errors}"
            )
        await asyncio.sleep(0.05)


async def latency(fleet: Fleet, submitter: Submitter, count: int) -> list[float]:
    """Submit-to-start in ms of ``count`` jobs submitted one at a time."""
    jobs = []
    for _ in range(count):
        jobs.append(await submitter.submit())
        await asyncio.sleep(0.025)
    await _wait_started(fleet.results, jobs, 60)
    return [(fleet.results.started[j] - submitter.sent[j]) * 1000 for j in jobs]


async def throughput(fleet: Fleet, submitter: Submitter, jobs: int, concurrency: int) -> tuple[float, float]:
    """(jobs/s end to end, submissions/s) for ``jobs`` jobs from ``concurrency`` submitters."""
    ids: list[str] = []
    first = time.perf_counter()

    async def one_submitter(share: int) -> None:
        for _ in range(share):
            ids.append(await submitter.submit())

    shares = [jobs // concurrency + (1 if i < jobs % concurrency else 0) for i in range(concurrency)]
    await asyncio.gather(*(one_submitter(s) for s in shares))
    submitted = time.perf_counter()
    await _wait_started(fleet.results, ids, 600)
    last = max(fleet.results.finished[j] for j in ids)
    return jobs / (last - first), jobs / (submitted - first)


async def list_latency(deployment: Deployment, runs: int = 30) -> list[float]:
    samples = []
    async with httpx.AsyncClient(base_url=deployment.replicas[0].url, headers=deployment.admin) as client:
        for _ in range(runs):
            at = time.perf_counter()
            answer = await client.get("/api/v1/jobs", params={"limit": 50})
            assert answer.status_code == 200, answer.text
            samples.append((time.perf_counter() - at) * 1000)
    return samples


def _ms(samples: list[float]) -> str:
    return f"p50 {statistics.median(samples):.1f} ms, p99 {_percentile(samples, 99):.1f} ms"


async def scenario(args: argparse.Namespace, report: list[tuple[str, str, str]]) -> None:
    work = Path(tempfile.mkdtemp(prefix="credo-load-"))
    deployment = Deployment(work, args.replicas, args.lease_seconds)
    fleet: Fleet | None = None
    try:
        sims = deployment.setup(args.workers, args.groups, args.slots)
        fleet = Fleet(sims, args.slots)
        fleet.start()
        submitter = Submitter(deployment, args.groups)
        await asyncio.sleep(args.settle)
        rss, pss = deployment.rss_mib(), deployment.pss_mib()
        shape = f"{args.replicas} replicas, {args.workers} workers"
        report.append((f"server memory, {shape} idle (sum of RSS; of PSS)", f"{rss:.0f} MiB; {pss:.0f} MiB",
                       "< 300 MiB"))  # fmt: skip
        print(f"idle RSS {rss:.0f} MiB, PSS {pss:.0f} MiB", flush=True)

        before = await latency(fleet, submitter, args.latency_jobs)
        report.append((f"submit-to-start, {shape} idle", _ms(before), "p99 < 100 ms"))
        print("latency", _ms(before), flush=True)
        list_before = await list_latency(deployment)

        rate, submit_rate = await throughput(fleet, submitter, args.jobs, args.submitters)
        report.append((f"trivial jobs/s, {shape}, {args.jobs} jobs, {args.submitters} submitters",
                       f"{rate:.0f} jobs/s (submissions {submit_rate:.0f}/s)", ">= 500 (stretch 1,000)"))  # fmt: skip
        print(f"throughput {rate:.0f} jobs/s, submissions {submit_rate:.0f}/s", flush=True)
        report.append(("server RSS after the run (sum)", f"{deployment.rss_mib():.0f} MiB", ""))

        if args.history:
            deployment.insert_history(args.history)
            after = await latency(fleet, submitter, args.latency_jobs)
            list_after = await list_latency(deployment)
            ratio = statistics.median(after) / statistics.median(before)
            report.append((f"submit-to-start with {args.history:,} more jobs in the database", _ms(after),
                           f"{ratio:.2f}x of before (<= 2x)"))  # fmt: skip
            ratio = statistics.median(list_after) / statistics.median(list_before)
            report.append((f"job list (50) with {args.history:,} more jobs", _ms(list_after),
                           f"{ratio:.2f}x of {statistics.median(list_before):.1f} ms before (<= 2x)"))  # fmt: skip
            print("with history", _ms(after), "list", _ms(list_after), flush=True)
        results = fleet.results
        report.append(("jobs handed to two workers", str(len(results.claimed_twice)), "0"))
        report.append(("errors seen by the workers", str(len(results.errors)), "0"))
        retried = len(results.retries) + submitter.retries
        report.append(("requests sent again after a connection failure", str(retried), ""))
        if results.errors:
            print("first errors:", json.dumps(results.errors[:5], indent=1), flush=True)
        await submitter.close()
    finally:
        if fleet is not None:
            await fleet.stop()
        deployment.close()
        kept = Path(tempfile.gettempdir()) / "credo-load-logs"
        shutil.rmtree(kept, ignore_errors=True)
        kept.mkdir()
        for log in work.glob("replica*.log"):
            shutil.copy(log, kept / log.name)
        print(f"replica logs: {kept}", flush=True)
        shutil.rmtree(work, ignore_errors=True)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--submitters", type=int, default=32)
    parser.add_argument("--latency-jobs", type=int, default=200)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds of idle before reading RSS")
    parser.add_argument("--lease-seconds", type=float, default=15.0)
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> list[tuple[str, str, str]]:
    report: list[tuple[str, str, str]] = []
    asyncio.run(scenario(parse(argv or []), report))
    return report


if __name__ == "__main__":
    for label, result, goal in run(sys.argv[1:]):
        print(f"| {label} | {result} | {goal} |")
