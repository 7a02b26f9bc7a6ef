"""Workload identity (issue 14, point 9): what a job's token costs, and its share of job start.

1. Minting, in process: ``Issuer.mint`` (claims, RS256 signature with joserfc, RSA 2048), 5
   rounds of 1,000 tokens; the median round's time per token. Goal < 2 ms.
2. The token endpoint over HTTP on loopback, as a worker calls it before starting a job: a real
   `credo server --oidc-issuer`, WORKER1$ registered over Kerberos, ``ServerClient.job_token`` for
   a running job, 200 calls after 10 warm-up ones; median and p99.
3. Submit-to-start latency of a job on an idle worker (bench_automation's measure, same machine,
   same run; CREDO_BENCH_LATENCY_RUNS samples), and the endpoint's share of it: a job that gets
   a token waits one more round trip.
4. Job start with tokens on and off, paired: one server with an issuer, one worker (svcauto$ as
   credo-runner), and the group switched between no audience, one (Azure) and three (Azure, AWS,
   a GCP provider) before each job, in a shuffled order per round, so that the three modes share
   the machine's moment (other tests on the cores, the database's size). Per mode the p50 of
   submit-to-start; and the median of the per-round differences to "off" (paired: what tokens
   add, with the round's own noise taken out).
"""

from __future__ import annotations

import base64
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_automation import CREDO, LATENCY_RUNS, Bench, _env, _percentile
from credo.lab import Lab

MINT_ROUNDS, MINT_TOKENS = 5, 1000
CALLS = 200

CLIENT = """
import json, statistics, sys, time
from credo.krb.host import HostIdentity
from credo.worker.client import ServerClient
client = ServerClient(sys.argv[1], HostIdentity.resolve(), "bench", 1)
client.register()
job = client.json("POST", "/claim?wait=10")["jobs"][0]
samples = []
for i in range(10 + int(sys.argv[2])):
    start = time.perf_counter()
    client.job_token(job["job_id"], job["lease_token"], "api://AzureADTokenExchange")
    if i >= 10:
        samples.append(time.perf_counter() - start)
print(json.dumps(samples))
"""


def mint_cost() -> float:
    """Seconds per token, the median of MINT_ROUNDS rounds."""
    from credo.oidc.issuer import Issuer
    from credo.oidc.tokens import JobClaims

    with tempfile.TemporaryDirectory() as tmp:
        issuer = Issuer("https://issuer.example.com", Path(tmp) / "keys.json")
        claims = JobClaims(
            "bench", "0" * 36, "stamp", "ab" * 32, "WORKER1$@CORP.EXAMPLE.TEST", "S-1-5-21-1-2-3-1105"
        )
        rounds = []
        for _ in range(MINT_ROUNDS):
            start = time.perf_counter()
            for _ in range(MINT_TOKENS):
                issuer.mint(subject="credo:group:bench", audience="api://AzureADTokenExchange", lifetime=600,
                            claims=claims)  # fmt: skip
            rounds.append((time.perf_counter() - start) / MINT_TOKENS)
        return statistics.median(rounds)


def endpoint_cost(lab: Lab, work: Path) -> list[float]:
    """A real server with an issuer; WORKER1$ times job_token for one claimed job."""
    bench = Bench(lab, work, None)
    keytab = work / "http.keytab"
    subprocess.run([*CREDO, "gmsa", "keytab", "svccredo", "--spn", f"HTTP/{bench.settings.server_fqdn}", "--out",
                    str(keytab)], env=_env(lab, "server"), check=True, capture_output=True)  # fmt: skip
    proc = subprocess.Popen(
        [*CREDO, "server", "--data-dir", str(bench.data), "--keytab", str(keytab), "--listen", f"127.0.0.1:{bench.port}",
         "--oidc-issuer", f"http://127.0.0.1:{bench.port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    bench.procs.append(proc)
    try:
        import httpx

        for _ in range(300):
            try:
                if httpx.get(f"{bench.url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        token = (bench.data / "admin.token").read_text().strip()
        bench.http = httpx.Client(
            base_url=bench.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        bench.api("POST", "/groups", json={"name": "bench", "workers": [f"WORKER1$@{bench.settings.realm}"]})
        bench.api("PATCH", "/groups/bench", json={"audiences": ["api://AzureADTokenExchange"]})
        body = {"name": "stamp", "type": "bash", "content": base64.b64encode(b"true\n").decode()}
        bench.api("POST", "/runbooks", json=body)
        bench.api("POST", "/runbooks/stamp/publish")
        bench.submit("stamp")
        out = subprocess.run(
            [sys.executable, "-c", CLIENT, f"http://{bench.settings.server_fqdn}:{bench.port}", str(CALLS)],
            env=_env(lab, "worker1"), check=True, capture_output=True, text=True,
        )  # fmt: skip
        samples: list[float] = json.loads(out.stdout)
        return samples
    finally:
        bench.close()


AZURE, AWS = "api://AzureADTokenExchange", "sts.amazonaws.com"
GCP = (
    "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/bench/providers/bench"
)
MODES = {
    "off": {"audiences": [], "gcp_audience": None},
    "one": {"audiences": [AZURE], "gcp_audience": None},
    "three": {"audiences": [AZURE, AWS], "gcp_audience": GCP},
}


def start_with_tokens(lab: Lab, work: Path, rounds: int) -> dict[str, list[float]]:
    """Submit-to-start seconds per mode, ``rounds`` jobs each, interleaved (see the module docstring)."""
    bench = Bench(lab, work, None)
    try:
        bench.start_server()  # a plain server first, for its keytab and admin token ...
        bench.close()
        bench.procs.clear()
        # ... then the same data directory with an issuer (loopback http: the clouds are not asked).
        proc = subprocess.Popen(
            [*CREDO, "server", "--data-dir", str(bench.data), "--keytab", str(work / "http.keytab"), "--listen",
             f"127.0.0.1:{bench.port}", "--oidc-issuer", f"http://127.0.0.1:{bench.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        bench.procs.append(proc)
        import httpx

        for _ in range(300):
            try:
                if httpx.get(f"{bench.url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        bench.setup()
        samples: dict[str, list[float]] = {mode: [] for mode in MODES}
        order = list(MODES)
        for _ in range(rounds):
            random.shuffle(order)  # no mode always first after the pause, or always last
            for mode in order:
                bench.api("PATCH", "/groups/bench", json=MODES[mode])
                samples[mode] += bench.latency_once()
        return samples
    finally:
        bench.close()


def run() -> list[tuple[str, str, str]]:
    lab = Lab()
    lab.up()
    rows: list[tuple[str, str, str]] = []
    per_token = mint_cost()
    rows.append((f"token minting, in process (RS256, RSA 2048; {MINT_ROUNDS} x {MINT_TOKENS})",
                 f"{per_token * 1000:.2f} ms per token", "< 2 ms"))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        samples = endpoint_cost(lab, Path(tmp))
        p50 = statistics.median(samples)
        rows.append((f"job token endpoint over HTTP, loopback (ServerClient.job_token, n={len(samples)})",
                     f"p50 {p50 * 1000:.1f} ms, p99 {_percentile(samples, 99) * 1000:.1f} ms", "recorded"))  # fmt: skip
        bench = Bench(lab, Path(tmp), None)
        try:
            bench.start_server()
            bench.setup()
            starts = bench.latency()
        finally:
            bench.close()
        start_p50 = statistics.median(starts)
        rows.append((f"submit-to-start latency, idle worker, no token (SQLite, n={len(starts)})",
                     f"p50 {start_p50 * 1000:.0f} ms", "yardstick"))  # fmt: skip
        rows.append(("share of job start: one token round trip / start p50",
                     f"{p50 / start_p50 * 100:.0f}% (minting alone {per_token / start_p50 * 100:.1f}%)", "recorded"))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        paired = start_with_tokens(lab, Path(tmp), LATENCY_RUNS)
    off = paired["off"]
    for mode, label in (("off", "no token"), ("one", "1 audience"), ("three", "3 audiences")):
        rows.append((f"submit-to-start, tokens {'off' if mode == 'off' else 'on'}, {label} (paired, n={len(off)})",
                     f"p50 {statistics.median(paired[mode]) * 1000:.0f} ms", "recorded"))  # fmt: skip
    for mode, label in (("one", "1 audience"), ("three", "3 audiences")):
        added = [on - base for on, base in zip(paired[mode], off, strict=True)]
        rows.append((f"added by tokens, {label}: median of per-round differences to off",
                     f"{statistics.median(added) * 1000:+.1f} ms "
                     f"({statistics.median(added) / statistics.median(off) * 100:+.0f}% of off's p50)", "recorded"))  # fmt: skip
    return rows
