"""A tiny GSSAPI initiator/acceptor, run as a subprocess (so that faketime can wrap it).

python -m tests.support.gss_token init SERVICE@HOST      -> prints a base64 AP-REQ token
python -m tests.support.gss_token accept KEYTAB < token  -> prints the initiator's name
"""

from __future__ import annotations

import base64
import sys

import gssapi


def main(argv: list[str]) -> None:
    mode, arg = argv[1], argv[2]
    if mode == "init":
        name = gssapi.Name(arg, gssapi.NameType.hostbased_service)
        ctx = gssapi.SecurityContext(name=name, usage="initiate")
        token = ctx.step()
        print(base64.b64encode(token or b"").decode())
    elif mode == "accept":
        creds = gssapi.Credentials(usage="accept", store={"keytab": f"FILE:{arg}"})
        ctx = gssapi.SecurityContext(creds=creds, usage="accept")
        ctx.step(base64.b64decode(sys.stdin.read().strip()))
        print(str(ctx.initiator_name))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
