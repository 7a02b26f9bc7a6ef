"""A lab of its own for rotation tests: a realm on another loopback address, a 1-day gMSA.

Its DC's clock is moved (restarted under an offset, or on a shared clock file) to cross a
rotation without waiting a day; a realm of its own keeps that clock away from every other test.
WORKER1 (in HybridWorkers, as in every lab) may read the gMSA's password; the gMSA carries
``HTTP/<gmsa>.<realm>`` and AES only.
"""

from __future__ import annotations

import os
from pathlib import Path

from credo.lab import Lab
from tests.support.identity import run


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("KRB5", "CREDO_", "LDAP"))}


def samba_tool(lab: Lab, *args: str, env: dict[str, str]) -> str:
    """samba-tool on the lab's own database (the client side only knows the first realm)."""
    argv = ["samba-tool", *args, "-H", lab.paths.sam_ldb, "-s", lab.paths.smb_conf]
    return run(argv, env, check=True).stdout


def spn_host(gmsa: str, realm: str) -> str:
    return f"{gmsa}.{realm.lower()}"


def rotation_lab(directory: Path, realm: str, address: str, gmsa: str, clock_file: Path | None = None) -> Lab:
    """Provision and start the lab, with the 1-day gMSA ``gmsa`` (destroy it when done)."""
    lab = Lab(directory)
    try:
        lab.up(realm=realm, address=address, clock_file=clock_file)
        settings = lab.settings
        assert settings is not None
        admin = clean_env() | lab.env("admin").set
        host = spn_host(gmsa, realm)
        samba_tool(lab, "service-account", "create", f"--name={gmsa}", f"--dns-host-name={host}",
                   "--managed-password-interval=1", env=admin)  # fmt: skip
        samba_tool(lab, "service-account", "group-msa-membership", "add", f"--name={gmsa}$",
                   f"--principal=CN=HybridWorkers,CN=Users,{settings.base_dn}", env=admin)  # fmt: skip
        samba_tool(lab, "user", "enable", f"{gmsa}$", env=admin)
        samba_tool(lab, "spn", "add", f"HTTP/{host}", f"{gmsa}$", env=admin)
        run(
            ["ldapmodify", "-Q"],
            admin,
            check=True,
            input=f"dn: CN={gmsa},CN=Managed Service Accounts,{settings.base_dn}\nchangetype: modify\n"
            "replace: msDS-SupportedEncryptionTypes\nmsDS-SupportedEncryptionTypes: 24\n",
        )
    except BaseException:
        lab.destroy()
        raise
    return lab
