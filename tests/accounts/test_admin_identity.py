"""Point 1: the administrator's identity: the caller's ccache, or --keytab/--principal; none gives
exit 3 with the kinit hint; LDAPS with --ca-file works, and a wrong CA is refused."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from credo.lab import Lab, LabSettings
from tests.support.identity import credo

Env = Callable[..., dict[str, str]]


def test_callers_ccache(as_identity: Env) -> None:
    proc = credo("account", "get", "svcauto", "--json", env=as_identity("admin"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["sam_account_name"] == "svcauto$"


def test_keytab_and_principal(lab: Lab, lab_settings: LabSettings, as_identity: Env, tmp_path: Path) -> None:
    # No ccache at all: only the keytab, whose TGT goes into a private in-memory ccache.
    env = as_identity(None, KRB5CCNAME=f"FILE:{tmp_path / 'none.ccache'}")
    proc = credo(
        "kds", "list", "--json", "--keytab", lab.paths.admin_keytab,
        "--principal", f"Administrator@{lab_settings.realm}", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)
    assert not (tmp_path / "none.ccache").exists()  # the caller's ccache is never written
    env_vars = env | {
        "CREDO_ADMIN_KEYTAB": str(lab.paths.admin_keytab),
        "CREDO_ADMIN_PRINCIPAL": f"Administrator@{lab_settings.realm}",
    }
    assert credo("account", "list", env=env_vars).returncode == 0


def test_no_credentials_exit_3_with_the_kinit_hint(as_identity: Env, tmp_path: Path) -> None:
    env = as_identity(None, KRB5CCNAME=f"FILE:{tmp_path / 'missing.ccache'}")
    proc = credo("account", "list", env=env)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith("credo: error: no Kerberos credentials")
    assert "credo: hint: run `kinit ADMIN@REALM` first, or give --keytab and --principal" in proc.stderr


def test_keytab_without_principal_and_missing_keytab(lab: Lab, as_identity: Env, tmp_path: Path) -> None:
    env = as_identity(None)
    alone = credo("kds", "list", "--keytab", lab.paths.admin_keytab, env=env)
    assert alone.returncode == 2 and "go together" in alone.stderr
    missing = credo("kds", "list", "--keytab", tmp_path / "nope.keytab", "--principal", "a@B", env=env)
    assert missing.returncode == 3 and "is missing" in missing.stderr


def test_ldaps_with_ca_file(lab: Lab, lab_settings: LabSettings, as_identity: Env, tmp_path: Path) -> None:
    env = as_identity("admin")
    url = f"ldaps://{lab_settings.dc_fqdn}"
    proc = credo(
        "account", "get", "svcauto", "--json", "--server", url, "--ca-file", lab.paths.ca_file, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["sam_account_name"] == "svcauto$"
    starttls = credo(
        "kds",
        "list",
        "--server",
        lab_settings.ldap_url,
        "--starttls",
        "--ca-file",
        lab.paths.ca_file,
        env=env,
    )
    assert starttls.returncode == 0, starttls.stderr
    # A CA that did not sign the DC's certificate: no fallback to an unverified connection.
    wrong = tmp_path / "other-ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", tmp_path / "k.pem", "-out", wrong,
         "-subj", "/CN=bogus", "-days", "1"],
        check=True, capture_output=True,
    )  # fmt: skip
    refused = credo("account", "list", "--server", url, "--ca-file", wrong, "--ldap-timeout", "3", env=env)
    assert refused.returncode == 4, refused.stderr
    assert "no domain controller answered" in refused.stderr and "Traceback" not in refused.stderr
