"""Every validation error of `credo account new|set`: a clear one-line error, the documented exit
code, and nothing written (the account does not exist afterwards, or is unchanged)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from credo.lab import Lab, LabSettings
from tests.accounts.conftest import samba_tool
from tests.support.identity import credo

Names = Callable[[str], str]


def assert_absent(name: str, env: dict[str, str]) -> None:
    proc = credo("account", "get", name, env=env)
    assert proc.returncode == 6, proc.stdout


def new(name: str, env: dict[str, str], *args: str) -> object:
    return credo("account", "new", name, *args, env=env)


@pytest.mark.parametrize(
    ("name", "args", "code", "message"),
    [
        ("svcnamewaytoolong", [], 2, "longer than 15 characters"),
        ("bad/name", [], 2, "it contains '/'"),
        ("bad*name", [], 2, "it contains '*'"),
        ("{n}", ["--dns-host-name", ""], 2, "needs a DNS host name"),
        ("{n}", ["--dns-host-name", "not_a host"], 2, "invalid DNS host name"),
        ("{n}", ["--interval-days", "0"], 2, "at least 1 day"),
        ("{n}", ["--enctypes", "RC4"], 2, "weak and refused"),
        ("{n}", ["--enctypes", "DES"], 2, "weak and refused"),
        ("{n}", ["--enctypes", "AES512"], 2, "unknown encryption type"),
        ("{n}", ["--allowed", "nosuchgroup"], 6, "'nosuchgroup' not found"),
        ("{n}", ["--allowed", "S-1-5-21-1-2-3-4242"], 6, "'S-1-5-21-1-2-3-4242' not found"),
        ("{n}", ["--allowed", "CN=Nobody,CN=Users,{base}"], 6, "'CN=Nobody,CN=Users,"),
        ("{n}", ["--allowed", "worker1"], 2, "given twice"),
        ("{n}", ["--spn", "HTTP/credo.{domain}"], 2, "already belongs to"),
        ("{n}", ["--spn", "HTTP"], 2, "invalid service principal name"),
        ("{n}", ["--path", "OU=Nowhere,{base}"], 2, "does not exist"),
        ("svcauto", [], 2, "already exists"),
    ],
)
def test_new_refuses_before_writing(
    lab_settings: LabSettings,
    admin_env: dict[str, str],
    account_names: Names,
    name: str,
    args: list[str],
    code: int,
    message: str,
) -> None:
    fresh = account_names("val")
    name = name.replace("{n}", fresh)
    subst = {"{base}": lab_settings.base_dn, "{domain}": lab_settings.dns_domain}
    given = []
    for arg in args:
        for key, value in subst.items():
            arg = arg.replace(key, value)
        given.append(arg)
    defaults = []
    if "--dns-host-name" not in given:
        defaults += ["--dns-host-name", f"{fresh}.{lab_settings.dns_domain}"]
    defaults += ["--allowed", "WORKER1$"]
    proc = credo("account", "new", name, *defaults, *given, env=admin_env)
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("credo: error: ") and message.lower() in lines[0].lower(), proc.stderr
    assert "Traceback" not in proc.stderr
    if name != "svcauto":
        assert_absent(fresh, admin_env)


def test_new_without_allowed_principals(
    lab_settings: LabSettings, admin_env: dict[str, str], account_names: Names
) -> None:
    name = account_names("noal")
    proc = new(name, admin_env, "--dns-host-name", f"{name}.{lab_settings.dns_domain}")
    assert proc.returncode == 2 and "at least one --allowed" in proc.stderr  # type: ignore[attr-defined]
    assert_absent(name, admin_env)


def test_weak_crypto_only_when_asked_and_with_a_warning(
    lab_settings: LabSettings, admin_env: dict[str, str], account_names: Names
) -> None:
    name = account_names("rc4")
    proc = credo(
        "account", "new", name, "--dns-host-name", f"{name}.{lab_settings.dns_domain}", "--allowed", "worker1",
        "--enctypes", "AES256,RC4", "--allow-weak-crypto", "--json", env=admin_env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "credo: warning: RC4 is a weak encryption type" in proc.stderr
    assert json.loads(proc.stdout)["supported_encryption_types"] == ["RC4", "AES256"]
    refused = credo("account", "set", name, "--enctypes", "DES", env=admin_env)
    assert refused.returncode == 2 and "weak" in refused.stderr


def test_principals_by_sid_dn_and_name_with_or_without_dollar(
    lab: Lab, lab_settings: LabSettings, admin_env: dict[str, str], account_names: Names
) -> None:
    name = account_names("sid")
    base = lab_settings.base_dn
    hybrid = credo("account", "get", "svcauto", "--json", env=admin_env, check=True)
    allowed = json.loads(hybrid.stdout)["principals_allowed_to_retrieve_password"]
    hybrid_sid = next(p["sid"] for p in allowed if p["name"].endswith("\\HybridWorkers"))
    proc = credo(
        "account", "new", name, "--dns-host-name", f"{name}.{lab_settings.dns_domain}",
        "--allowed", hybrid_sid, "--allowed", f"CN=WORKER2,CN=Computers,{base}",
        "--allowed", f"{lab_settings.netbios}\\credosrv", "--json", env=admin_env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    names = [p["name"] for p in json.loads(proc.stdout)["principals_allowed_to_retrieve_password"]]
    netbios = lab_settings.netbios
    assert names == [f"{netbios}\\HybridWorkers", f"{netbios}\\WORKER2$", f"{netbios}\\CREDOSRV$"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--interval-days", "60"], 2, "cannot be changed after creation"),
        (["--add-allowed", "HybridWorkers"], 2, "already allowed"),
        (["--remove-allowed", "worker2"], 2, "not among the allowed"),
        (["--remove-allowed", "HybridWorkers"], 2, "at least one allowed principal"),
        (["--add-allowed", "ghost99"], 6, "'ghost99' not found"),
        (["--allowed", "worker1", "--add-allowed", "worker2"], 2, "do not combine"),
        (["--remove-spn", "HTTP/none.example.test"], 2, "has no SPN"),
        (["--add-spn", "HTTP/credo.{domain}"], 2, "already belongs to"),
        (["--dns-host-name", "bad host"], 2, "invalid DNS host name"),
        (["--enctypes", "RC4"], 2, "weak and refused"),
        ([], 2, "nothing to change"),
    ],
)
def test_set_refuses_before_writing(
    lab_settings: LabSettings,
    admin_env: dict[str, str],
    account_names: Names,
    args: list[str],
    code: int,
    message: str,
) -> None:
    name = account_names("vset")
    created = credo(
        "account", "new", name, "--dns-host-name", f"{name}.{lab_settings.dns_domain}",
        "--allowed", "HybridWorkers", "--json", env=admin_env, check=True,
    )  # fmt: skip
    before = json.loads(created.stdout)
    given = [a.replace("{domain}", lab_settings.dns_domain) for a in args]
    # A valid change in the same command must not be applied when another one is refused.
    extra = ["--description", "should not be written"] if args else []
    proc = credo("account", "set", name, *extra, *given, env=admin_env)
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert message.lower() in proc.stderr.lower() and "Traceback" not in proc.stderr
    after = json.loads(credo("account", "get", name, "--json", env=admin_env, check=True).stdout)
    assert after == before


def test_insufficient_rights_reported_as_such(
    lab: Lab, lab_settings: LabSettings, as_identity: Callable[..., dict[str, str]], account_names: Names
) -> None:
    """WORKER1$ acting through --keytab/--principal may read, not create: exit 5, nothing written."""
    name = account_names("nor")
    env = as_identity(None)
    proc = credo(
        "account", "new", name, "--dns-host-name", f"{name}.{lab_settings.dns_domain}", "--allowed", "worker1",
        "--keytab", lab.paths.host_keytab("WORKER1"), "--principal", f"WORKER1$@{lab_settings.realm}",
        env=env,
    )  # fmt: skip
    assert proc.returncode == 5, proc.stderr
    assert "insufficient rights" in proc.stderr
    kds = credo("kds", "add", "--keytab", lab.paths.host_keytab("WORKER1"),
                "--principal", f"WORKER1$@{lab_settings.realm}", env=env)  # fmt: skip
    assert kds.returncode == 5 and "insufficient rights" in kds.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--standalone"], 2, "needs --computer"),
        (["--computer", "worker1"], 2, "--computer goes with --standalone"),
        (["--standalone", "--computer", "worker1", "--allowed", "worker1"], 2, "no --allowed"),
        (["--standalone", "--computer", "worker1", "--interval-days", "5"], 2, "gMSAs only"),
        (["--standalone", "--computer", "ghost42"], 6, "computer 'ghost42' not found"),
        (["--standalone", "--computer", "HybridWorkers"], 2, "is not a computer account"),
    ],
)
def test_standalone_refusals(
    admin_env: dict[str, str], account_names: Names, args: list[str], code: int, message: str
) -> None:
    name = account_names("vsa")
    proc = credo("account", "new", name, *args, env=admin_env)
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    assert message.lower() in proc.stderr.lower() and "Traceback" not in proc.stderr
    assert_absent(name, admin_env)


@pytest.mark.parametrize("ldap_filter", ["(bad", "name=x", "(=)"])
def test_list_refuses_a_bad_filter(admin_env: dict[str, str], ldap_filter: str) -> None:
    proc = credo("account", "list", "--filter", ldap_filter, env=admin_env)
    assert proc.returncode == 2, proc.stderr
    assert "filter" in proc.stderr and "Traceback" not in proc.stderr


def test_a_group_with_a_long_name_resolves(
    lab: Lab, lab_settings: LabSettings, admin_env: dict[str, str], account_names: Names
) -> None:
    """Group sAMAccountNames are not limited to 15/20 characters like the account's own name."""
    group = "ServiceAccountReadersGroup"
    samba_tool(lab, "group", "add", group)
    try:
        name = account_names("grp")
        proc = credo(
            "account", "new", name, "--dns-host-name", f"{name}.{lab_settings.dns_domain}",
            "--allowed", group, "--json", env=admin_env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        allowed = json.loads(proc.stdout)["principals_allowed_to_retrieve_password"]
        assert [p["name"] for p in allowed] == [f"{lab_settings.netbios}\\{group}"]
        credo("account", "remove", name, "--yes", env=admin_env, check=True)
    finally:
        samba_tool(lab, "group", "delete", group)


def test_empty_enctypes_refused(
    lab_settings: LabSettings, admin_env: dict[str, str], account_names: Names
) -> None:
    name = account_names("enc")
    proc = new(name, admin_env, "--dns-host-name", f"{name}.{lab_settings.dns_domain}", "--allowed", "worker1",
               "--enctypes", "")  # fmt: skip
    assert proc.returncode == 2 and "no encryption type" in proc.stderr  # type: ignore[attr-defined]
    assert_absent(name, admin_env)
