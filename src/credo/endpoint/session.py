"""One login's session on an endpoint: admission, matching each line, the transcript.

The broker (the agent, as root) holds it; the login user only sends lines. Order of the
records (``credo.endpoint.transcript``): the session start is written before anything is
decided, so a login that is refused is recorded too; each line the user sends is recorded as
input, then either refused (with the reason) or started *before* it runs and ended after it, so
a kill -9 of anything loses no record of a command that ran. A transcript that cannot be
written ends the session (fail closed: ``TranscriptUnavailable``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from credo.endpoint.definition import EndpointDefinition
from credo.endpoint.matching import AccountResolver, Granted, Refused, match_line, usage
from credo.endpoint.roles import EffectiveCapability, UserToken, effective_capability
from credo.endpoint.runner import RunResult
from credo.endpoint.transcript import SessionStart, Transcript, TranscriptUnavailable
from credo.errors import CredoError, NotPermittedError

__all__ = ["NOT_STARTED", "EndpointSession"]

NOT_STARTED = 126  # the shell's "found but could not be run", for a command refused at its start


@dataclass
class EndpointSession:
    definition: EndpointDefinition
    capability: EffectiveCapability
    token: UserToken
    transcript: Transcript = field(repr=False)
    account_exists: AccountResolver | None = None
    caller_env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def open(
        cls,
        definition: EndpointDefinition,
        token: UserToken,
        *,
        source: str,
        local_user: str,
        mode: Literal["shell", "command"],
        account_exists: AccountResolver | None = None,
        caller_env: Mapping[str, str] | None = None,
        transcript_dir: Path | None = None,
    ) -> EndpointSession:
        """Admit ``token`` or raise NotPermittedError; either way the transcript says so."""
        capability = effective_capability(definition, token)
        start = SessionStart(
            endpoint=definition.name,
            principal=token.principal,
            sid=token.sid or "",
            source=source,
            roles=capability.role_names,
            run_as=definition.run_as or definition.user,
            local_user=local_user,
            mode=mode,
        )
        transcript = Transcript.open(start, directory=transcript_dir)
        if not capability.admitted:
            reason = capability.reason or "no role applies"
            try:
                transcript.refused("(login)", reason)
                transcript.end("refused")
            finally:
                transcript.close()
            raise NotPermittedError(
                f"{token.principal} may not use endpoint {definition.name}: {reason}",
                hint="ask an administrator for a group the endpoint's roles name",
            )
        return cls(definition, capability, token, transcript, account_exists, dict(caller_env or {}))

    def commands(self) -> list[dict[str, Any]]:
        """What ``help`` and completion show: each granted command, its usage and description."""
        return [
            {"name": c.name, "usage": usage(c).removeprefix("usage: "), "description": c.command.description}
            for c in self.capability.commands
        ]

    def submit(self, line: str) -> Granted | Refused:
        """Match one line the user sent; a refusal is recorded with its reason."""
        self.transcript.input(line + "\n")
        result = match_line(
            self.capability, line, caller_env=self.caller_env, account_exists=self.account_exists
        )
        if isinstance(result, Refused):
            self.transcript.refused(line, result.reason)
            self.transcript.output(f"refused: {result.reason}\n")
        return result

    def run(self, granted: Granted, execute: Callable[[Callable[[bytes], None]], RunResult]) -> RunResult:
        """Run a granted command through ``execute(record_output)``, recorded before and after."""
        number = self.transcript.command_started(granted.argv)
        try:
            result = execute(self.transcript.output)
        except TranscriptUnavailable:
            raise
        except CredoError as exc:
            # The command could not start (a confined path was swapped after its check, the local
            # user is gone): its end record says so and the caller answers one line; the session
            # goes on, since nothing ran.
            self.transcript.output(f"{granted.command}: {exc.message}\n")
            self.transcript.command_ended(number, NOT_STARTED, 0)
            raise
        self.transcript.command_ended(number, result.exit_status, result.bytes_out)
        return result

    def close(self, reason: str = "exit") -> None:
        try:
            self.transcript.end(reason)
        finally:
            self.transcript.close()
