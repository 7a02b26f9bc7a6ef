"""Run MIT, OpenLDAP and credo commands as a lab identity, the way a user would after
``eval "$(credo lab env --host NAME)"``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ldif

from credo.lab import Lab

CREDO = [sys.executable, "-m", "credo"]
ENV_KEYS = (
    "KRB5",
    "CREDO_",
    "LDAP",
)


def identity_env(lab: Lab, identity: str | None, **extra: str) -> dict[str, str]:
    """os.environ without Kerberos/LDAP/credo variables, plus those of ``credo lab env --host``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(ENV_KEYS)}
    result = lab.env(identity)
    return base | result.set | extra


def run(
    argv: Sequence[str | Path],
    env: dict[str, str] | None = None,
    *,
    check: bool = False,
    timeout: float = 120,
    **kwargs: Any,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(a) for a in argv], env=env, capture_output=True, text=True, timeout=timeout, **kwargs
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} exited {proc.returncode}: {proc.stderr}{proc.stdout}")
    return proc


def credo(
    *args: str | Path, env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return run([*CREDO, *args], env=env, **kwargs)


def ldapsearch(
    env: dict[str, str], filterstr: str, *attrs: str, base: str | None = None, scope: str = "sub"
) -> list[tuple[str, dict[str, list[bytes]]]]:
    """``ldapsearch -Y GSSAPI`` as the identity in ``env``; entries parsed from LDIF."""
    argv = ["ldapsearch", "-Q", "-LLL", "-o", "ldif_wrap=no", "-s", scope]
    if base is not None:
        argv += ["-b", base]
    proc = run([*argv, filterstr, *attrs], env, check=True)
    parser = ldif.LDIFRecordList(io.StringIO(proc.stdout))
    parser.parse()
    return [(dn, entry) for dn, entry in parser.all_records if dn]
