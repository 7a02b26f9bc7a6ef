"""The units credo writes: the agent's own service, and services and timers that run as a gMSA.

Pure rendering (no I/O): callers resolve the program path, check the local user and validate the
calendar first (credo.systemd.install has the parts that touch the system). Every value goes
through credo.systemd.syntax, so a name or an argument can never end a line or start a setting.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from credo.systemd.config import AgentPaths
from credo.systemd.paths import AGENT_CONFIG, AGENT_STATE_DIR, AGENT_UNIT, RUNTIME_DIR, bare_account_name
from credo.systemd.syntax import escape_specifiers, exec_command_line, quote_assignment, quote_path

__all__ = [
    "AGENT_CAPABILITIES",
    "DOCS",
    "GmsaCommand",
    "UnitFile",
    "account_snippet",
    "agent_unit",
    "gmsa_service",
    "gmsa_timer",
]

DOCS = "https://github.com/credo-project/credo/blob/main/docs/systemd.md"
# What root keeps inside the agent (capabilities(7)): CAP_CHOWN to hand a ccache to its user and a
# keytab to its owner/group, CAP_FOWNER to chmod a file it did not create. Nothing to bind low
# ports, trace or load modules. The agent's code decides: widen here, in one place, if it must.
AGENT_CAPABILITIES = ("CAP_CHOWN", "CAP_FOWNER")
# An agent that brokers restricted endpoints (docs/endpoints.md) also runs their commands as the
# endpoint's local user (setuid/setgid/setgroups) and kills a command's process group at its
# timeout (another uid's processes): CAP_SETUID, CAP_SETGID, CAP_KILL. It writes transcripts,
# with the client address read from the root sshd above the caller (/proc/PID/exe and fd/*, which
# need ptrace read access to a process whose capabilities exceed the agent's: CAP_SYS_PTRACE;
# credo.agent.endpoints.source_address, which only reads).
ENDPOINT_CAPABILITIES = ("CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_SYS_PTRACE")
TRANSCRIPT_LOGS = "credo/endpoints"
# The agent's watchdog: it sends WATCHDOG=1 at least every half of it (sd_notify(3)).
AGENT_WATCHDOG = "30s"
# Directories that ProtectHome=yes hides (systemd.exec(5)); an output there needs read-only.
_HOME_DIRS = (Path("/home"), Path("/root"), Path("/run/user"))


@dataclass(frozen=True)
class UnitFile:
    """One unit: its file name (``nightly.service``) and its text."""

    name: str
    text: str


@dataclass(frozen=True)
class GmsaCommand:
    """What a generated service runs: ``command`` (argv[0] absolute) as local ``user``, with the
    ccache at ``ccache`` (kept fresh by the agent) for the gMSA ``gmsa``, plus ``env``."""

    unit: str  # the service's unit name, validated: "nightly.service"
    gmsa: str  # "svcauto$", validated
    user: str
    ccache: Path
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


def _render(head: Sequence[str], sections: Sequence[tuple[str, Sequence[str]]]) -> str:
    """Comment lines, then ``[Section]`` blocks; body lines starting with ``#`` are comments."""
    lines = [f"# {line}" for line in head]
    for title, body in sections:
        lines += ["", f"[{title}]", *body]
    # Every value went through credo.systemd.syntax, which escapes or refuses control characters:
    # a line break here would let a value start a setting of its own.
    assert not any(char in line for line in lines for char in "\r\n\x00"), lines
    return "\n".join(lines) + "\n"


def _hardening_common() -> list[str]:
    # Settings that hold for any command that only needs the network and its own files
    # (systemd.exec(5), "Security" and "Sandboxing").
    return [
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "LockPersonality=yes",
    ]


def _write_dirs(paths: AgentPaths) -> list[Path]:
    """The directories the agent writes in besides its RuntimeDirectory= and StateDirectory=: each
    output's directory (an output is replaced atomically, through a temp file in its directory and
    rename(2), so the directory must be writable, not only the file), the socket's directory (the
    socket and the agent's work directory), and the state directory. A directory inside another
    listed one adds nothing."""
    wanted = {path.parent for path in paths.outputs} | {paths.socket.parent, paths.state_dir}
    dirs = sorted(
        d for d in wanted if not d.is_relative_to(RUNTIME_DIR) and not d.is_relative_to(AGENT_STATE_DIR)
    )
    return [d for d in dirs if not any(d != other and d.is_relative_to(other) for other in dirs)]


def agent_unit(
    credo: Path, *, config: Path = AGENT_CONFIG, paths: AgentPaths | None = None, endpoints: bool = False
) -> UnitFile:
    """``credo-agent.service``: ``credo agent run --config CONFIG`` as root, sandboxed.

    ``endpoints``: the agent also brokers restricted endpoints (their capabilities and the
    transcripts' directory, /var/log/credo/endpoints, 0750).

    ``paths``: what the agent's config makes it write (credo.systemd.config); ``ReadWritePaths=``
    opens their directories and nothing else. ``credo``: the credo program (an absolute path).
    """
    dirs = _write_dirs(paths or AgentPaths())
    home = any(d.is_relative_to(h) for d in dirs for h in _HOME_DIRS)
    read_write = [f"ReadWritePaths={' '.join(quote_path(str(d)) for d in dirs)}"] if dirs else []
    head = [
        "credo agent: keeps the keytabs and ccaches of gMSAs fresh for local services.",
        "Written by `credo systemd agent-unit`: write it again when the config's outputs move",
        "to other directories (ReadWritePaths= lists them).",
    ]
    unit = [
        "Description=credo agent: fresh gMSA keytabs and ccaches",
        f"Documentation={DOCS}",
        "After=network-online.target",
        "Wants=network-online.target",
    ]
    service = [
        "# READY=1 once the first refresh of every account has ended, or after 60 s (units ordered after it find",
        "# their ccache; an account that failed is in `credo agent status`), STATUS= while it works,",
        "# WATCHDOG=1 while its refresh loop is alive (sd_notify(3)).",
        "Type=notify",
        "NotifyAccess=main",
        f"WatchdogSec={AGENT_WATCHDOG}",
        f"ExecStart={exec_command_line([str(credo), 'agent', 'run', '--config', str(config)])}",
        "# SIGHUP: read the config again.",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartSec=5s",
        "# /run/credo holds the socket and the ccaches that running services use: it stays when the",
        "# agent stops or restarts (the workers' /run/credo/worker is there too). 0755: users reach",
        "# the socket and their own ccache, which is 0600.",
        "RuntimeDirectory=credo",
        "RuntimeDirectoryMode=0755",
        "RuntimeDirectoryPreserve=yes",
        f"StateDirectory={AGENT_STATE_DIR.relative_to('/var/lib')}",
        "StateDirectoryMode=0700",
        "UMask=0077",
        "# Sandbox (systemd.exec(5)): all read-only but /run/credo, the state directory and the",
        "# outputs' directories (written through a temp file and rename(2)); root with only these",
        "# capabilities. Rotation hooks run inside it too: open what they write in a drop-in.",
        "ProtectSystem=strict",
        *read_write,
        f"ProtectHome={'read-only' if home else 'yes'}",
        "CapabilityBoundingSet="
        + " ".join(AGENT_CAPABILITIES + (ENDPOINT_CAPABILITIES if endpoints else ())),
        *(
            [
                "# Restricted endpoints' session transcripts (root's; readable by the group adm).",
                f"LogsDirectory={TRANSCRIPT_LOGS}",
                "LogsDirectoryMode=0750",
            ]
            if endpoints
            else []
        ),
        *_hardening_common(),
        "PrivateDevices=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictNamespaces=yes",
        "SystemCallArchitectures=native",
        "# LDAP, Kerberos, DNS; the unix socket; netlink for getaddrinfo's AI_ADDRCONFIG.",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    ]
    install = ["WantedBy=multi-user.target"]
    return UnitFile(AGENT_UNIT, _render(head, [("Unit", unit), ("Service", service), ("Install", install)]))


def _gmsa_unit_section(description: str, run: GmsaCommand) -> list[str]:
    return [
        f"Description={escape_specifiers(description)}",
        f"Documentation={DOCS}",
        "# After= the agent, which is ready once the ccache is fresh. Wants=, not Requires=: the",
        "# ccache outlives an agent restart, so an agent failure need not stop this unit.",
        f"After={AGENT_UNIT} network-online.target",
        f"Wants={AGENT_UNIT} network-online.target",
    ]


def _gmsa_service_section(run: GmsaCommand, kind: str) -> list[str]:
    env = [f"Environment={quote_assignment('KRB5CCNAME', f'FILE:{run.ccache}')}"]
    env += [f"Environment={quote_assignment(name, value)}" for name, value in sorted(run.env.items())]
    return [
        f"Type={kind}",
        f"User={run.user}",
        *env,
        f"ExecStart={exec_command_line(run.command)}",
        "# Sandbox that keeps Kerberos working: the ccache under /run stays writable (service",
        "# tickets are added to it), krb5.conf readable, the network open. /usr, /boot and /etc are",
        "# read-only; the command's other files stay writable. Tighten in a drop-in if it allows.",
        "ProtectSystem=full",
        *_hardening_common(),
    ]


def _head(run: GmsaCommand, what: str) -> list[str]:
    return [
        f"{what} as the gMSA {run.gmsa}, under the local user {run.user}.",
        "Written by `credo systemd`. KRB5CCNAME is the ccache that the credo agent keeps fresh:",
        "its config needs the [[account]] printed with this unit (docs/systemd.md).",
    ]


def gmsa_service(run: GmsaCommand) -> UnitFile:
    """A long-running service: the command as ``run.user`` with the gMSA's ccache, restarted on failure."""
    service = [*_gmsa_service_section(run, "exec"), "Restart=on-failure", "RestartSec=5s"]
    sections = [
        ("Unit", _gmsa_unit_section(f"{run.unit} as the gMSA {run.gmsa}", run)),
        ("Service", service),
        ("Install", ["WantedBy=multi-user.target"]),
    ]
    return UnitFile(run.unit, _render(_head(run, "Runs its command"), sections))


def gmsa_timer(run: GmsaCommand, on_calendar: Sequence[str]) -> tuple[UnitFile, UnitFile]:
    """A oneshot service and its timer (``OnCalendar=`` each spec, already validated)."""
    base = run.unit.removesuffix(".service")
    sections = [
        ("Unit", _gmsa_unit_section(f"{run.unit} as the gMSA {run.gmsa}", run)),
        ("Service", _gmsa_service_section(run, "oneshot")),
    ]
    service = UnitFile(run.unit, _render(_head(run, f"Started by {base}.timer: runs its command"), sections))
    timer_unit = [
        f"Description={escape_specifiers(f'Runs {run.unit} (as the gMSA {run.gmsa})')}",
        f"Documentation={DOCS}",
    ]
    timer = [
        *(f"OnCalendar={escape_specifiers(spec)}" for spec in on_calendar),
        "# A run missed while the machine was off happens when it is back (systemd.timer(5)).",
        "Persistent=true",
    ]
    text = _render(
        [f"Starts {run.unit}, which runs its command as the gMSA {run.gmsa}."],
        [("Unit", timer_unit), ("Timer", timer), ("Install", ["WantedBy=timers.target"])],
    )
    return service, UnitFile(f"{base}.timer", text)


def account_snippet(run: GmsaCommand) -> str:
    """The ``[[account]]`` the agent's config needs for ``run``: who may ask for the gMSA, and the
    ccache it keeps at ``run.ccache`` for ``run.user``. Strings as TOML basic strings (TOML 1.0:
    JSON's string escapes are a subset of TOML's, and credo refuses lone surrogates)."""

    def s(value: str) -> str:
        return json.dumps(value, ensure_ascii=False)

    return (
        "[[account]]\n"
        f"name = {s(bare_account_name(run.gmsa))}\n"
        f"allow_users = [{s(run.user)}]\n"
        "allow_groups = []\n"
        "[[account.ccache]]\n"
        f"path = {s(str(run.ccache))}\n"
        f"user = {s(run.user)}\n"
    )
