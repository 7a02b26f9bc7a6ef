"""`make bench`: run every benchmark and print a Markdown table to paste into BENCHMARKS.md.

python benchmarks/run.py [NAME ...]      # NAME: lab, gmsa, automation, audit, agent, endpoint, oidc, control, scale (default: all)
python benchmarks/load.py --help        # the scale-out load tool on its own, with its options
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import (
    bench_agent,
    bench_audit,
    bench_automation,
    bench_control,
    bench_endpoint,
    bench_gmsa,
    bench_lab,
    bench_oidc,
    load,
)

BENCHES = {
    "lab": bench_lab.run,
    "gmsa": bench_gmsa.run,
    "automation": bench_automation.run,
    "audit": bench_audit.run,
    "agent": bench_agent.run,
    "endpoint": bench_endpoint.run,
    "oidc": bench_oidc.run,
    "control": bench_control.run,
    "scale": load.run,
}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.node()}: {os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, {platform.platform()}"


def main(names: list[str]) -> None:
    selected = names or list(BENCHES)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"### {now}\n\nMachine: {machine()}\n")
    print("| benchmark | result | goal |\n|---|---|---|")
    for name in selected:
        for label, result, goal in BENCHES[name]():
            print(f"| {label} | {result} | {goal} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
