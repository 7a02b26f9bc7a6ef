"""The worker's fence: a tiny process that kills a job's process group when its lease runs out.

Run by ``credo.worker.fence`` as ``python -I -S fence_process.py`` (no imports of credo: it must
start in milliseconds and keep nothing but deadlines). It lives in a session of its own, so a
SIGSTOP, SIGTERM or Ctrl-C aimed at the worker does not reach it: when the worker stalls, this
process is what still acts. It reads lines from stdin:

    arm PGID DEADLINE     kill process group PGID at DEADLINE (CLOCK_BOOTTIME seconds)
    disarm PGID           forget PGID (the job ended)

and kills every armed group when stdin ends (the worker died). CLOCK_BOOTTIME is system-wide and,
unlike the wall clock, never jumps; unlike CLOCK_MONOTONIC it also counts a suspended machine
(clock_gettime(2)). select(2)'s own timeout may run late after a SIGSTOP/SIGCONT of this process:
the deadlines are compared with the clock again after every wake-up, so a late wake kills at once.
"""

import os
import select
import signal
import sys
import time


def _now() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _kill(pgid: int, why: str) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    sys.stderr.write(f"credo: fence: killed job process group {pgid}: {why}\n")
    sys.stderr.flush()


def main() -> None:
    armed: dict[int, float] = {}
    pending = b""
    stdin = sys.stdin.fileno()
    while True:
        timeout = max(0.0, min(armed.values()) - _now()) if armed else None
        ready, _, _ = select.select([stdin], [], [], timeout)
        if ready:
            data = os.read(stdin, 65536)
            if not data:
                for pgid in armed:
                    _kill(pgid, "the worker is gone")
                return
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                words = line.split()
                if len(words) == 3 and words[0] == b"arm":
                    armed[int(words[1])] = float(words[2])
                elif len(words) == 2 and words[0] == b"disarm":
                    armed.pop(int(words[1]), None)
        now = _now()
        for pgid, deadline in list(armed.items()):
            if deadline <= now:
                del armed[pgid]
                _kill(pgid, "its lease was not renewed in time (the worker stalled or lost the server)")


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    main()
