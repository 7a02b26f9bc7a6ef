"""The ``credo`` console script: a one-shot ``credo run --as`` through a running agent first.

Nothing else is imported before that check: the fast path (``credo.agent.fastrun``) must not pay
for click, python-ldap, krb5 or gssapi. Everything else goes to the CLI (``credo.cli.main``).
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    if sys.argv[1:2] == ["run"]:
        from credo.agent.fastrun import try_run

        try_run(sys.argv[2:])  # execs the command, or returns for the full path
    from credo.cli.main import main as cli_main

    cli_main()
