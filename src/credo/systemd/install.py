"""What ``credo systemd`` asks of this machine: the calendar check, the program and the user a
unit names, writing units into the unit directory, and ``systemctl daemon-reload``."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from credo.errors import EnvironmentProblem, InputError, NotFoundError
from credo.files import write_text_atomically
from credo.names import validate_local_user_name
from credo.systemd.units import UnitFile

__all__ = [
    "Installed",
    "check_local_user",
    "install_units",
    "resolve_program",
    "systemd_booted",
    "validate_calendar",
]

# sd_booted(3): "checks whether the directory /run/systemd/system/ exists".
_BOOTED_MARK = Path("/run/systemd/system")
_TOOL_TIMEOUT = 30.0


def validate_calendar(spec: str) -> str:
    """``spec`` if systemd parses it as a calendar event (systemd.time(7)), else one InputError."""
    hint = (
        "e.g. daily, 'Mon..Fri 07:00', '*-*-* 02:30:00' (systemd.time(7)); try: systemd-analyze calendar SPEC"
    )
    if not spec.strip() or any(ord(char) < 0x20 or ord(char) == 0x7F for char in spec):
        raise InputError(f"invalid calendar spec {spec!r}", hint=hint)
    tool = shutil.which("systemd-analyze")
    if tool is None:
        raise EnvironmentProblem(
            "systemd-analyze is not installed: cannot check the calendar spec",
            hint="install systemd (apt-get install systemd)",
        )
    try:
        proc = subprocess.run(
            [tool, "calendar", "--", spec], capture_output=True, text=True, timeout=_TOOL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise EnvironmentProblem(f"systemd-analyze calendar did not answer in {_TOOL_TIMEOUT:g} s") from exc
    if proc.returncode != 0:
        raise InputError(f"invalid calendar spec {spec!r}", hint=hint)
    return spec


def resolve_program(program: str) -> str:
    """The absolute path of the program a unit runs: as given when absolute, else found in PATH
    (the unit names it absolutely: systemd would search its own PATH, not the caller's). It must
    exist and be executable: systemd-analyze verify and systemd's start both require it."""
    if "/" in program and not program.startswith("/"):
        raise InputError(f"the program {program!r} is a relative path", hint="give an absolute path")
    found = program if program.startswith("/") else shutil.which(program)
    if found is None:
        raise NotFoundError(f"program {program!r} not found in PATH", hint="give its absolute path")
    if not (os.path.isfile(found) and os.access(found, os.X_OK)):
        raise NotFoundError(f"program {found} does not exist or is not executable")
    return os.path.abspath(found)


def check_local_user(user: str, *, allow_system: bool = False) -> str:
    """A valid local user name that exists on this machine (the unit's ``User=``)."""
    validate_local_user_name(user, allow_system=allow_system)
    try:
        pwd.getpwnam(user)
    except KeyError as exc:
        raise NotFoundError(
            f"local user {user!r} does not exist",
            hint=f"create it (useradd --system --shell /usr/sbin/nologin {user}) or name another with --user",
        ) from exc
    return user


@dataclass(frozen=True)
class Installed:
    paths: tuple[Path, ...]
    reloaded: bool  # systemctl daemon-reload ran (systemd is PID 1 here)


def systemd_booted() -> bool:
    """Whether systemd is PID 1 here (sd_booted(3)'s test)."""
    return _BOOTED_MARK.is_dir()


def install_units(units: Sequence[UnitFile], unit_dir: Path) -> Installed:
    """Write ``units`` into ``unit_dir`` (each atomically, 0644), then ``systemctl daemon-reload``
    when systemd is PID 1 here. A unit that fails to write leaves the previous file as it was."""
    if not unit_dir.is_dir():
        raise EnvironmentProblem(
            f"no unit directory {unit_dir}", hint="is systemd installed? or name one with --unit-dir"
        )
    paths = tuple(
        write_text_atomically(unit_dir / unit.name, unit.text, hint="run as root") for unit in units
    )
    if not systemd_booted():
        return Installed(paths, reloaded=False)
    try:
        proc = subprocess.run(
            ["systemctl", "daemon-reload"], capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"systemctl daemon-reload failed: {exc}") from exc
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise EnvironmentProblem(
            f"systemctl daemon-reload failed: {detail}", hint="the units are written; run it again as root"
        )
    return Installed(paths, reloaded=True)
