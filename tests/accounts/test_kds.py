"""`credo kds add|list` on the lab DC: listed by `samba-tool domain kds root-key list`, written with
the same attribute values as the key the DC made at provisioning, key data never shown.

The key created here starts 30 days from now, so no DC derives a password from it during the
suite; it is deleted afterwards."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from credo.lab import Lab, LabSettings
from tests.accounts.conftest import samba_tool
from tests.support.identity import credo, ldapsearch

COMPARED = (
    "msKds-Version",
    "msKds-KDFAlgorithmID",
    "msKds-KDFParam",
    "msKds-SecretAgreementAlgorithmID",
    "msKds-SecretAgreementParam",
    "msKds-PublicKeyLength",
    "msKds-PrivateKeyLength",
    "msKds-DomainID",
)


def root_keys_base(settings: LabSettings) -> str:
    return f"CN=Master Root Keys,CN=Group Key Distribution Service,CN=Services,CN=Configuration,{settings.base_dn}"


@pytest.fixture
def created_key(lab: Lab, admin_env: dict[str, str]) -> Iterator[dict[str, object]]:
    start = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    stamp = start.isoformat().replace("+00:00", "Z")
    # --debug: not even debug logging shows the key data.
    proc = credo("--debug", "kds", "add", "--effective-time", stamp, "--json", env=admin_env)
    assert proc.returncode == 0, proc.stderr
    key = dict(json.loads(proc.stdout))
    try:
        yield key | {"_stdout": proc.stdout + proc.stderr, "_start": start}
    finally:
        samba_tool(lab, "domain", "kds", "root-key", "delete", f"--name={key['guid']}")


def test_created_key_is_listed_by_samba_tool_and_by_credo(
    lab: Lab, admin_env: dict[str, str], created_key: dict[str, object]
) -> None:
    listing = json.loads(samba_tool(lab, "domain", "kds", "root-key", "list", "--json").stdout)
    assert created_key["guid"] in [key["name"] for key in listing]
    ours = json.loads(credo("kds", "list", "--json", env=admin_env, check=True).stdout)
    mine = next(key for key in ours if key["guid"] == created_key["guid"])
    start = created_key["_start"]
    assert isinstance(start, datetime)
    assert datetime.fromisoformat(mine["effective"]) == start
    assert datetime.fromisoformat(mine["usable_from"]) == start + timedelta(hours=10)
    assert mine["usable_now"] is False
    assert mine["version"] == 1 and mine["kdf_algorithm"] == "SP800_108_CTR_HMAC"
    # The key the DC made at provisioning is usable now.
    assert any(key["usable_now"] for key in ours)
    view = json.loads(
        samba_tool(lab, "domain", "kds", "root-key", "view", f"--name={created_key['guid']}", "--json").stdout
    )
    assert view["name"] == created_key["guid"]


def test_created_key_has_the_attributes_the_dc_writes(
    lab_settings: LabSettings, admin_env: dict[str, str], created_key: dict[str, object]
) -> None:
    entries = {
        dn: attrs
        for dn, attrs in ldapsearch(
            admin_env,
            "(objectClass=msKds-ProvRootKey)",
            *COMPARED,
            "msKds-RootKeyData",
            "cn",
            base=root_keys_base(lab_settings),
            scope="one",
        )
    }
    ours = next(attrs for attrs in entries.values() if attrs["cn"] == [str(created_key["guid"]).encode()])
    dc_made = [attrs for attrs in entries.values() if attrs["cn"] != ours["cn"]]
    assert dc_made, "the lab DC's own root key is missing"
    for name in COMPARED:
        assert ours[name] == dc_made[0][name], name
    data = ours["msKds-RootKeyData"][0]
    assert len(data) == 64 and all(data != other["msKds-RootKeyData"][0] for other in dc_made)
    # Never shown: neither in `kds add` output nor in `kds list`, in any encoding.
    shown = str(created_key["_stdout"]) + credo("kds", "list", "--json", env=admin_env, check=True).stdout
    shown += credo("kds", "list", env=admin_env, check=True).stdout
    for encoded in (data.hex(), data.hex().upper(), base64.b64encode(data).decode()):
        assert encoded not in shown


def test_kds_add_refuses_bad_times(admin_env: dict[str, str]) -> None:
    both = credo(
        "kds", "add", "--effective-immediately", "--effective-time", "2030-01-01T00:00:00Z", env=admin_env
    )
    assert both.returncode == 2 and "not both" in both.stderr
    bad = credo("kds", "add", "--effective-time", "tomorrow", env=admin_env)
    assert bad.returncode == 2 and "invalid --effective-time" in bad.stderr
    naive = credo("kds", "add", "--effective-time", "2030-01-01T00:00:00", env=admin_env)
    assert naive.returncode == 2 and "time zone" in naive.stderr
