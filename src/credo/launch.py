"""The ``credo`` console script: a one-shot ``credo run --as`` or ``credo gmsa keytab`` through a
running agent first, and ``credo endpoint serve`` (every endpoint login) straight to its module.

Nothing else is imported before that check: the fast paths (``credo.agent.fastrun``,
``credo.agent.fastkeytab``) must not pay for click, python-ldap, krb5 or gssapi. Everything else,
and whatever they leave, goes to the CLI (``credo.cli.main``).
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    if sys.argv[1:2] == ["run"]:
        from credo.agent.fastrun import try_run

        try_run(sys.argv[2:])  # execs the command, or returns for the full path
    elif sys.argv[1:3] == ["gmsa", "keytab"]:
        from credo.agent.fastkeytab import try_keytab

        try_keytab(sys.argv[3:])  # writes the keytab and exits, or returns for the full path
    elif sys.argv[1:3] == ["endpoint", "serve"] and sys.argv[3:4] not in (["-h"], ["--help"]):
        from credo.endpoint.shell import main as serve

        serve(sys.argv[3:])  # sshd's ForceCommand: on every login, so no CLI imports
    from credo.cli.main import main as cli_main

    cli_main()
