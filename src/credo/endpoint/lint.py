"""`credo endpoint lint`: what JEAnalyzer flags in a JEA role, for an endpoint definition.

Findings, each one line naming the key (severity, key, message):

error
  - a command that can start a shell or run code: shells and interpreters (bash, sh, python*,
    perl, ruby, node...), editors and pagers with a shell escape (vi/vim ``:!``, less/more ``!``,
    man through its pager), programs that run other programs (find ``-exec``, tar
    ``--to-command``/``--checkpoint-action``, awk ``system()``, env, xargs, sudo, su, ssh,
    nsenter, systemd-run, ...), JEAnalyzer's "IsDangerous" list translated to Linux;
  - a world-writable executable, or a world-writable (non-sticky) directory on its path (anyone
    could replace what runs as the gMSA);
  - ``run_as`` a highly privileged account (Administrator, krbtgt, or a name or SID of Domain
    Admins and the other groups of credo.ad.sids), or ``user`` a system account (root);
  - with ``--directory``: ``run_as`` a member of one of those groups, nested included
    (tokenGroups read as this host's computer account);
warning
  - an unconstrained parameter (``type = "text"``), an integer without ``min``/``max``, a pattern
    that matches nearly anything or a path traversal, a value type allowing shell metacharacters;
  - a program owned by a user other than root (that user can change what runs);
  - a confining directory (path parameter) or working directory that others may write (the
    symlink-swap race: pin the path, see credo.endpoint.matching.pin_path);
  - a fixed ``env`` that sets a loader or interpreter variable (LD_PRELOAD...);
  - a role or required group that admits everyone (Everyone, Authenticated Users, Domain Users);
  - systemctl/journalctl without ``--no-pager`` (the pager is less, a shell escape);
  - a wildcard (``*``, ``?``, ``[``) in a fixed argument or an allowed-set value: credo passes it
    literally, but programs such as systemctl expand it and act on every match;
info
  - a program or local user missing on this machine (the file checks are skipped for it).

Exit code (``credo endpoint lint``): 0 when there is no error or warning (info lines allowed),
1 when there is at least one, 2 when the file itself is invalid (the definition error).
"""

from __future__ import annotations

import os
import pwd
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from credo.ad.sids import privileged_name
from credo.endpoint.definition import UNSAFE_ENV, Command, EndpointDefinition, load_definition
from credo.endpoint.roles import UserToken
from credo.names import SYSTEM_USERS

__all__ = ["SHELL_ESCAPES", "Finding", "lint_definition", "lint_file"]

Severity = Literal["error", "warning", "info"]

# Programs that start a shell or run code given to them, with the way they do it.
_SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "ash", "busybox", "rbash"}
_INTERPRETERS = {"python", "pypy", "ipython", "perl", "ruby", "node", "nodejs", "php", "lua", "tclsh", "wish", "irb", "R", "Rscript",
                 "guile", "gawk", "mawk", "nawk", "awk", "jq", "expect", "gdb", "lldb", "osascript"}  # fmt: skip
SHELL_ESCAPES: dict[str, str] = {
    **{name: "is a shell" for name in _SHELLS},
    **{name: "runs code it is given" for name in _INTERPRETERS},
    "awk": "runs code it is given (awk system())",
    "vi": "has a shell escape (:!)",
    "vim": "has a shell escape (:!)",
    "nvim": "has a shell escape (:!)",
    "view": "has a shell escape (:!)",
    "vimdiff": "has a shell escape (:!)",
    "ex": "has a shell escape (:!)",
    "ed": "has a shell escape (!)",
    "emacs": "has a shell escape (M-x shell)",
    "nano": "can run commands (^T) and write any file",
    "less": "has a shell escape (!)",
    "more": "has a shell escape (!)",
    "most": "has a shell escape",
    "pg": "has a shell escape (!)",
    "man": "runs a pager with a shell escape (less !)",
    "find": "runs programs (-exec, -execdir, -ok)",
    "tar": "runs programs (--to-command, --checkpoint-action, --use-compress-program)",
    "zip": "runs programs (-TT / --unzip-command)",
    "rsync": "runs programs (-e / --rsh)",
    "git": "runs programs (hooks, core.pager, -c, aliases)",
    "env": "runs any program",
    "xargs": "runs any program",
    "nice": "runs any program",
    "nohup": "runs any program",
    "timeout": "runs any program",
    "setsid": "runs any program",
    "stdbuf": "runs any program",
    "chroot": "runs any program",
    "nsenter": "runs any program",
    "unshare": "runs any program",
    "systemd-run": "runs any program",
    "strace": "runs any program",
    "ltrace": "runs any program",
    "script": "runs a shell",
    "screen": "runs a shell",
    "tmux": "runs a shell",
    "watch": "runs a command line through sh -c",
    "flock": "runs any program",
    "sudo": "runs any program as another user",
    "su": "runs a shell as another user",
    "doas": "runs any program as another user",
    "pkexec": "runs any program as another user",
    "runuser": "runs a shell as another user",
    "ssh": "runs commands (ProxyCommand, LocalCommand, -o)",
    "scp": "runs programs (-S, -o ProxyCommand)",
    "sftp": "runs programs (-S, -o ProxyCommand)",
    "crontab": "schedules any program",
    "at": "schedules any program",
    "docker": "runs any container as root",
    "podman": "runs any container",
    "kubectl": "runs commands in pods (exec)",
    "make": "runs any recipe",
    "dpkg": "runs maintainer scripts",
    "apt": "runs maintainer scripts and hooks",
    "apt-get": "runs maintainer scripts and hooks",
    "pip": "runs setup code",
    "mount": "can mount over any path",
    "tee": "writes any file",
    "dd": "writes any file",
    "cp": "writes any file",
    "mv": "writes any file",
    "install": "writes any file",
    "chmod": "changes any file's mode",
    "chown": "changes any file's owner",
}
_PAGED = {"systemctl", "journalctl", "loginctl", "busctl", "timedatectl", "hostnamectl", "coredumpctl"}
_EVERYONE = {"s-1-1-0": "Everyone", "s-1-5-11": "Authenticated Users", "everyone": "Everyone",
             "authenticated users": "Authenticated Users", "domain users": "Domain Users"}  # fmt: skip
# Values a confining pattern should refuse: anything matching all of them accepts nearly anything.
_PROBES = ("../../etc/shadow", "-o", "x y", "a;b", "$(id)", "", "A" * 300)


@dataclass(frozen=True)
class Finding:
    severity: Severity
    key: str
    message: str

    def line(self) -> str:
        return f"{self.severity}: {self.key}: {self.message}"


def _program_name(path: str) -> str:
    base = os.path.basename(path)
    for prefix in ("python", "pypy", "perl", "ruby", "php", "lua", "node"):
        if base.startswith(prefix) and base[len(prefix) :].replace(".", "").isdigit():
            return prefix
    return base


def _writable_chain(path: str, key: str) -> list[Finding]:
    """World-writable file or non-sticky directory on the path (both the path as written and the
    resolved one), and an owner other than root for the program itself."""
    findings: list[Finding] = []
    seen: set[str] = set()
    for candidate in dict.fromkeys([path, os.path.realpath(path)]):
        current = candidate
        while True:
            if current not in seen:
                seen.add(current)
                try:
                    st = os.lstat(current)
                except OSError:
                    break
                if stat.S_ISDIR(st.st_mode):
                    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
                        findings.append(
                            Finding(
                                "error", key, f"{current} is a world-writable directory on the program's path"
                            )
                        )
                elif not stat.S_ISLNK(st.st_mode) and st.st_mode & stat.S_IWOTH:
                    findings.append(
                        Finding("error", key, f"{current} is world-writable: anyone can replace it")
                    )
                if current == candidate and not stat.S_ISLNK(st.st_mode) and st.st_uid != 0:
                    findings.append(
                        Finding(
                            "warning", key, f"{current} is owned by uid {st.st_uid}, who can change what runs"
                        )
                    )
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
    return findings


# credo passes a value as it is (no shell expands it), but the program may: systemctl, journalctl,
# find, rsync and others take `*?[` as a pattern, so 'web*' restarts every unit it matches, the
# over-grant sudo's argument wildcards are known for.
_GLOB = re.compile(r"[*?\[]")
_WILDCARD_RISK = (
    "credo passes it literally, but a program that expands patterns acts on everything it matches"
)


def _others_may_write(directory: str) -> bool:
    try:
        st = os.stat(directory)
    except OSError:
        return False
    return bool(st.st_mode & (stat.S_IWOTH | stat.S_IWGRP)) or st.st_uid != 0


def _command_findings(command: Command) -> list[Finding]:
    key = command.where
    findings: list[Finding] = []
    program = _program_name(command.path)
    if program in SHELL_ESCAPES:
        findings.append(Finding("error", f"{key}.path", f"{command.path} {SHELL_ESCAPES[program]}"))
    if program in _PAGED and "--no-pager" not in command.args:
        findings.append(
            Finding(
                "warning",
                f"{key}.args",
                f"{program} may start a pager (less: a shell escape): add --no-pager",
            )
        )
    if os.path.lexists(command.path):
        findings += _writable_chain(command.path, f"{key}.path")
        if not os.access(command.path, os.X_OK):
            findings.append(Finding("warning", f"{key}.path", f"{command.path} is not executable"))
    else:
        findings.append(
            Finding("info", f"{key}.path", f"{command.path} is not installed here (file checks skipped)")
        )
    for name, _ in command.env:
        if name.upper() in UNSAFE_ENV and name.upper() not in ("PATH", "SYSTEMD_PAGER", "PAGER", "HOME"):
            findings.append(
                Finding("warning", f"{key}.env", f"{name} changes what the program loads or runs")
            )
    for i, arg in enumerate(command.args):
        if _GLOB.search(arg):
            findings.append(
                Finding("warning", f"{key}.args[{i}]", f"{arg!r} is a wildcard: {_WILDCARD_RISK}")
            )
    if command.cwd != "/" and _others_may_write(command.cwd):
        findings.append(Finding("warning", f"{key}.cwd", f"{command.cwd} may be written by others than root"))
    for p in command.parameters:
        for c in p.constraints:
            pkey = c.where or f"{key}.parameter"
            if c.kind == "text":
                findings.append(Finding("warning", pkey, f"parameter {p.name!r} is unconstrained (any text)"))
            for value in c.values:
                if _GLOB.search(value):
                    findings.append(
                        Finding(
                            "warning", pkey, f"value {value!r} of {p.name!r} is a wildcard: {_WILDCARD_RISK}"
                        )
                    )
            if c.kind == "int" and (c.minimum is None or c.maximum is None):
                findings.append(Finding("warning", pkey, f"parameter {p.name!r} has no min or no max"))
            if c.metachars:
                findings.append(
                    Finding(
                        "warning",
                        pkey,
                        f"parameter {p.name!r} allows shell metacharacters (metachars = true)",
                    )
                )
            if c.kind == "pattern" and c.regex is not None:
                hits = [probe for probe in _PROBES if c.regex.fullmatch(probe)]
                if len(hits) >= 4:
                    findings.append(
                        Finding(
                            "warning", pkey, f"pattern {c.pattern!r} of {p.name!r} matches nearly anything"
                        )
                    )
                elif "../../etc/shadow" in hits:
                    findings.append(
                        Finding(
                            "warning",
                            pkey,
                            f"pattern {c.pattern!r} of {p.name!r} accepts '../' (path traversal)",
                        )
                    )
            if c.kind == "path" and c.under is not None and _others_may_write(c.under):
                findings.append(
                    Finding(
                        "warning",
                        pkey,
                        f"{c.under} may be written by others than root: a symlink may be swapped in after the "
                        "check unless the executor pins the path (pin_path)",
                    )
                )
    return findings


def lint_definition(definition: EndpointDefinition) -> list[Finding]:
    """Every finding of a loaded definition, in file order."""
    findings: list[Finding] = []
    if definition.run_as is not None:
        privileged = privileged_name(definition.run_as)
        if privileged:
            findings.append(
                Finding(
                    "error", "run_as", f"{definition.run_as} is a highly privileged account ({privileged})"
                )
            )
    if definition.user in SYSTEM_USERS:
        findings.append(
            Finding(
                "error", "user", f"{definition.user} is a system account: commands could act as the system"
            )
        )
    else:
        try:
            pwd.getpwnam(definition.user)
        except KeyError:
            findings.append(Finding("info", "user", f"no local user {definition.user!r} here"))
    for role in definition.roles:
        everyone = _EVERYONE.get(role.group.rsplit("\\", 1)[-1].lower())
        if everyone:
            findings.append(
                Finding("warning", f'roles."{role.group}"', f"grants {everyone}: every user of the domain")
            )
        privileged = privileged_name(role.group)
        if privileged is None and role.group.lower().endswith("-513"):
            findings.append(
                Finding("warning", f'roles."{role.group}"', "grants Domain Users: every user of the domain")
            )
    if definition.required_groups is None:
        findings.append(
            Finding(
                "info",
                "required_groups",
                "not set: anyone a role applies to may connect (the roles gate access)",
            )
        )
    for cap in definition.capabilities:
        for command in cap.commands:
            findings += _command_findings(command)
    return findings


def lint_run_as_membership(definition: EndpointDefinition, token: UserToken) -> list[Finding]:
    """With the directory: ``run_as`` a member of a privileged group, nested included (its
    tokenGroups, ``token``). The name alone does not say so: svcauto$ in a group nested in
    Backup Operators can read every file on a DC."""
    held = sorted(
        {name for sid in token.group_sids - {token.sid} if (name := privileged_name(sid or "")) is not None}
    )
    return [
        Finding(
            "error",
            "run_as",
            f"{definition.run_as} is a member of {name} (tokenGroups): commands run with that group's rights",
        )
        for name in held
        if definition.run_as is not None and name != privileged_name(definition.run_as)
    ]


def lint_file(path: Path) -> list[Finding]:
    """Load ``path`` (DefinitionError if invalid) and lint it."""
    return lint_definition(load_definition(path))
