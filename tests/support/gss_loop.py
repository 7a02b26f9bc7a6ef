"""A client and a service authenticating in a loop, on whatever clock the process runs on.

python -m tests.support.gss_loop CONFIG.json

Each round, as the client (a computer account, from its keytab, into a fresh MEMORY ccache so
every round asks the KDC for a new TGT and service ticket) makes an AP-REQ for the service, and
the service accepts it with the keytab file as it is on disk at that moment. Once the clock is
inside the pre-rotation window, a FILE ccache keeps a service ticket issued then ("held"); after
the rotation every round also authenticates with that older ticket. One JSON line per attempt
goes to the output file. While the pause file exists, no round runs (the test moves the
clock then) and the paused file says so. The loop ends when the stop file appears, or after ``max_rounds`` or
``max_seconds`` (monotonic: real time).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time

import gssapi


def _attempt(client: gssapi.Credentials, service: str, keytab: str) -> str | None:
    """None if the service accepted the client's AP-REQ, else why not."""
    try:
        target = gssapi.Name(service, gssapi.NameType.hostbased_service)
        token = gssapi.SecurityContext(name=target, creds=client, usage="initiate").step()
        acceptor = gssapi.Credentials(usage="accept", store={"keytab": f"FILE:{keytab}"})
        gssapi.SecurityContext(creds=acceptor, usage="accept").step(token)
    except gssapi.exceptions.GSSError as exc:
        return str(exc).splitlines()[0][:300]
    return None


def main(config_path: str) -> None:
    with open(config_path) as handle:
        config = json.load(handle)
    principal = gssapi.Name(config["client"], gssapi.NameType.kerberos_principal)
    rotation, window = float(config["rotation"]), float(config["window"])
    pause = threading.Event()  # not time.sleep: see credo.lab.clock
    held: gssapi.Credentials | None = None
    started = time.monotonic()
    with open(config["out"], "a", buffering=1) as out:
        for n in range(int(config["max_rounds"])):
            if time.monotonic() - started > float(config["max_seconds"]):
                break
            try:
                open(config["stop"]).close()
                break
            except FileNotFoundError:
                pass
            if os.path.exists(config["pause_file"]):
                # The test moves the clock: every process re-reads it within a second, so for
                # that second the KDC and this process may disagree by hours. A real clock
                # never jumps: hold the rounds until the test says all have moved.
                open(config["paused"], "w").close()
                pause.wait(0.05)
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(config["paused"])
            now = time.time()
            phase = "before" if now < rotation - window else "window" if now < rotation else "after"
            store = {"client_keytab": config["client_keytab"], "ccache": f"MEMORY:loop{n}"}
            fresh = gssapi.Credentials(name=principal, usage="initiate", store=store)
            error = _attempt(fresh, config["service"], config["keytab"])
            out.write(json.dumps({"t": now, "phase": phase, "kind": "fresh", "error": error}) + "\n")
            if phase == "window" and held is None:
                store = {"client_keytab": config["client_keytab"], "ccache": f"FILE:{config['held']}"}
                held = gssapi.Credentials(name=principal, usage="initiate", store=store)
                error = _attempt(held, config["service"], config["keytab"])  # caches the ticket
                out.write(json.dumps({"t": now, "phase": phase, "kind": "held", "error": error}) + "\n")
            elif phase == "after" and held is not None:
                error = _attempt(held, config["service"], config["keytab"])
                out.write(json.dumps({"t": now, "phase": phase, "kind": "held", "error": error}) + "\n")
            pause.wait(float(config["pause"]))


if __name__ == "__main__":
    main(sys.argv[1])
