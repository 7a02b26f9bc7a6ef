"""``credo endpoint serve NAME``: the login side of a restricted endpoint (sshd's ForceCommand).

It runs as the login user and decides nothing: it hands its stdout and stderr to the agent (the
broker, ``credo.agent.endpoints``), which admits the user, matches each line, runs the command
as the gMSA and writes the transcript. This side shows the prompt, ``help``, completion of the
granted command names, and each refusal in one line. With a command on the ssh command line
(``SSH_ORIGINAL_COMMAND``) it runs that one line and exits with its status; otherwise it reads
lines until ``exit`` or end of input. Nothing here interprets a line: no shell, no expansion.

Standard library only (and ``credo.agent.wire``): it starts on every login, and interpreter
start-up and imports are most of its cost.

Exit status: the command's own; 5 when the line was refused or the login not admitted; 2 for a
bad invocation; 3 when the agent cannot serve (no agent, transcript unavailable); 4 unreachable.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from credo.agent.wire import EXIT_CODES, recv_message, send_message

__all__ = ["serve"]

DEFAULT_SOCKET = "/run/credo/agent.sock"
# A longer line is refused by the broker (MAX_LINE); only this much of it travels.
SEND_LIMIT = 8192
CALLER_ENV = ("LANG", "LANGUAGE", "TERM", "TZ")


def _error(message: str, hint: str | None = None) -> None:
    sys.stderr.write(f"credo: error: {message}\n")
    if hint:
        sys.stderr.write(f"credo: hint: {hint}\n")
    sys.stderr.flush()


def _exit_code(answer: dict[str, Any]) -> int:
    return EXIT_CODES.get(str(answer.get("error")), 1)


def _help(commands: list[dict[str, Any]]) -> str:
    width = max((len(c["name"]) for c in commands), default=0)
    lines = ["Commands you may run here:"]
    lines += [f"  {c['name'].ljust(width)}  {c.get('description') or ''}".rstrip() for c in commands]
    lines += ["  help [COMMAND]   this list, or one command's usage", "  exit             end the session"]
    return "\n".join(lines) + "\n"


def _help_one(commands: list[dict[str, Any]], name: str) -> str | None:
    for c in commands:
        if c["name"] == name:
            return f"usage: {c['usage']}\n{c.get('description') or ''}".rstrip() + "\n"
    return None


class _Session:
    def __init__(self, sock: socket.socket, hello: dict[str, Any]) -> None:
        self.sock = sock
        self.commands: list[dict[str, Any]] = list(hello.get("commands") or [])
        self.status = 0
        self.ended = False  # the agent ended the session (its transcript failed: fail closed)

    def builtin(self, line: str) -> bool:
        words = line.split()
        if words and words[0] == "help" and len(words) <= 2:
            text = _help(self.commands) if len(words) == 1 else _help_one(self.commands, words[1])
            sys.stdout.write(text or f"no command {words[1]!r} here; type help\n")
            sys.stdout.flush()
            return True
        return False

    def run(self, line: str) -> int:
        sys.stdout.flush()
        send_message(self.sock, {"line": line[:SEND_LIMIT]})
        answer, _ = recv_message(self.sock)
        if answer.get("ok"):
            self.status = int(answer.get("exit", 1))
        else:
            prefix = "refused" if answer.get("refused") else "error"
            sys.stderr.write(f"credo: {prefix}: {answer.get('message')}\n")
            if answer.get("hint"):
                sys.stderr.write(f"credo: hint: {answer['hint']}\n")
            sys.stderr.flush()
            self.status = _exit_code(answer)
            self.ended = bool(answer.get("ended"))
        return self.status


def _read_lines(prompt: str, names: list[str]) -> Any:
    interactive = sys.stdin.isatty()
    if interactive:
        try:
            import readline

            def complete(text: str, state: int) -> str | None:
                matches = [n + " " for n in [*names, "help", "exit"] if n.startswith(text)]
                return matches[state] if state < len(matches) else None

            readline.set_completer(complete)
            readline.parse_and_bind("tab: complete")
        except ImportError:
            pass
    sys.stdin.reconfigure(errors="replace")  # type: ignore[union-attr]
    while True:
        if interactive:
            try:
                yield input(prompt)
            except EOFError:
                sys.stdout.write("\n")
                return
        else:
            line = sys.stdin.readline()
            if not line:
                return
            yield line[:-1] if line.endswith("\n") else line


def serve(name: str, config: str | None = None) -> int:
    path = os.environ.get("CREDO_AGENT_SOCKET") or DEFAULT_SOCKET
    original = os.environ.get("SSH_ORIGINAL_COMMAND")
    mode = "command" if original is not None else "shell"
    connection = (os.environ.get("SSH_CONNECTION") or "").split()
    source = " ".join(connection[:2])
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(path)
    except OSError as exc:
        _error(f"the credo agent does not answer at {path}: {exc.strerror}", "start it: credo agent run")
        return 3
    with sock:
        request = {
            "op": "endpoint", "endpoint": name, "mode": mode, "source": source,
            "env": {k: v for k, v in os.environ.items() if k in CALLER_ENV},
        }  # fmt: skip
        if config is not None:
            # Only a selector: the agent serves it only if it is one of its own definitions.
            request["config"] = os.path.abspath(config)
        try:
            send_message(sock, request, [sys.stdout.fileno(), sys.stderr.fileno()])
            hello, _ = recv_message(sock)
        except (OSError, ValueError) as exc:
            _error(f"the credo agent failed: {exc}")
            return 3
        if not hello.get("ok"):
            _error(str(hello.get("message")), hello.get("hint"))
            return _exit_code(hello)
        session = _Session(sock, hello)
        try:
            if original is not None:
                if session.builtin(original.strip()):
                    return 0
                return session.run(original)
            sys.stdout.write(
                f"credo endpoint {hello.get('endpoint')}: {hello.get('principal')}, commands run as "
                f"{hello.get('run_as')}. Type help.\n"
            )
            names = [c["name"] for c in session.commands]
            for line in _read_lines(f"{hello.get('endpoint')}> ", names):
                stripped = line.strip()
                if not stripped:
                    continue
                if stripped in ("exit", "quit", "logout"):
                    break
                if not session.builtin(stripped):
                    session.run(line)
                if session.ended:
                    return session.status
            send_message(sock, {"end": True})
        except (OSError, ValueError) as exc:
            _error(f"the session ended: {exc}")
            return 3
        return session.status


def _arguments(argv: list[str]) -> tuple[str, str | None] | None:
    """``NAME``, ``--config FILE [NAME]`` or ``--config=FILE``, in any order; None when bad."""
    names: list[str] = []
    config: str | None = None
    rest = list(argv)
    while rest:
        word = rest.pop(0)
        if word == "--config" and rest and config is None:
            config = rest.pop(0)
        elif word.startswith("--config=") and config is None:
            config = word.removeprefix("--config=")
        elif word.startswith("-"):
            return None
        else:
            names.append(word)
    if len(names) > 1 or (not names and config is None) or config == "":
        return None
    return (names[0] if names else ""), config


def main(argv: list[str]) -> None:
    """``credo endpoint serve NAME`` without the CLI's imports (from ``credo.launch``)."""
    parsed = _arguments(argv)
    if parsed is None:
        _error(
            "usage: credo endpoint serve NAME | --config FILE",
            "set it as sshd's ForceCommand for the endpoint's users; FILE must be one the agent serves",
        )
        sys.exit(2)
    sys.exit(serve(*parsed))
