"""The layer rules of docs/architecture.md, checked against every module's imports (ast), and each
package's public names pinned (as httpx's tests/test_exported_members.py does).

The table below mirrors the doc's "Layers" table: change both together. Imports inside functions
count too (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "credo"

# Modules every package may use (docs/architecture.md, below the table).
SHARED = {"errors", "names", "files", "tomlread", "defaults", "runbook", "security_events", "__init__"}
# Package (or top-level module) -> what else of credo it may import.
MAY_USE: dict[str, set[str]] = {
    "krb": set(),
    "ad": {"krb"},
    "gmsa": {"krb", "ad"},
    "accounts": {"krb", "ad", "gmsa"},
    "audit": {"krb", "ad", "gmsa"},
    "migrate": {"krb", "ad", "gmsa", "accounts"},
    "automation": set(),
    "oidc": {"automation.identity"},
    "lab": {"krb"},
    "systemd": set(),
    "client": {"http_negotiate"},
    "http_negotiate": set(),
    "config": set(),
    "server": {"automation", "oidc", "gmsa.session", "endpoint.directory"},
    "agent": {"krb", "ad", "gmsa", "automation", "endpoint", "worker.client"},
    "endpoint": {"ad", "agent"},
    "worker": {"krb", "gmsa", "automation", "client", "http_negotiate", "agent.client"},
    "cli": {
        "accounts",
        "ad",
        "migrate",
        "agent",
        "audit",
        "automation",
        "client",
        "config",
        "endpoint",
        "gmsa",
        "krb",
        "lab",
        "oidc",
        "server",
        "systemd",
        "worker",
    },
    "launch": {"cli", "agent", "endpoint"},
    "__main__": {"launch"},
    "__init__": set(),
    "errors": set(),
    "names": set(),
    "files": set(),
    "tomlread": set(),
    "defaults": set(),
    "runbook": set(),
    "security_events": set(),
}
# No library layer does I/O in automation: it must not reach for these.
IO_MODULES = {"os", "io", "pathlib", "socket", "subprocess", "shutil", "tempfile", "httpx", "sqlalchemy",
              "requests", "urllib.request", "asyncio", "ldap3", "gssapi"}  # fmt: skip


def owner(path: Path) -> str:
    relative = path.relative_to(SRC)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def credo_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module below credo) for every ``import credo.X`` / ``from credo.X import ...``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "credo":  # a submodule, or a name of credo/__init__.py
                names = [
                    f"credo.{a.name}"
                    if (SRC / a.name).is_dir() or (SRC / f"{a.name}.py").exists()
                    else "credo.__init__"
                    for a in node.names
                ]
        else:
            continue
        found += [(node.lineno, name.removeprefix("credo.")) for name in names if name.startswith("credo.")]
    return found


def allowed(package: str, target: str) -> bool:
    if target.split(".")[0] in (package, *SHARED):
        return True
    return any(target == rule or target.startswith(rule + ".") for rule in MAY_USE[package])


MODULES = sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)


def test_every_package_is_in_the_table() -> None:
    assert {owner(p) for p in MODULES} <= set(MAY_USE)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_layer_rules(path: Path) -> None:
    package = owner(path)
    broken = [
        f"line {line}: credo.{target}" for line, target in credo_imports(path) if not allowed(package, target)
    ]
    assert not broken, f"{path.relative_to(SRC)} ({package}) may not import: {broken} (docs/architecture.md)"


def test_the_worker_and_the_server_share_only_automation_and_http() -> None:
    for path in MODULES:
        targets = {t.split(".")[0] for _, t in credo_imports(path)}
        if owner(path) == "worker":
            assert "server" not in targets, path
        if owner(path) == "server":
            assert not targets & {"worker", "cli", "client"}, path


def test_automation_does_no_io() -> None:
    for path in (SRC / "automation").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                names = []
            assert not [n for n in names if n in IO_MODULES or n.split(".")[0] in IO_MODULES], path
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "open", f"{path}: open()"


# -- public names -------------------------------------------------------------------------------------

EXPORTED: dict[str, list[str]] = {
    "credo": ["__version__"],
    "credo.accounts": ["AccountChanges", "NewAccount", "RootKey", "create_account", "create_root_key",
                       "get_account", "iter_accounts", "link_account", "list_root_keys", "remove_account",
                       "update_account"],
    "credo.migrate": ["GroupRef", "Journal", "MigrationPlan", "apply_plan", "finish_plan",
                      "journal_path", "make_plan", "render_plan", "rollback_plan"],
    "credo.audit": ["AffectedObject", "AuditOptions", "CHECKS", "CheckInfo", "CheckOutcome", "CheckStatus",
                    "Finding", "Report", "Severity", "Snapshot", "read_snapshot", "run_audit"],
    "credo.gmsa": ["GkdiError", "Gkid", "KdsRootKey", "MalformedBlobError", "MalformedPasswordIdError",
                   "ManagedPasswordBlob", "ManagedPasswordId", "RotationState", "gmsa_password", "nt_hash",
                   "password_utf8", "rotation_state"],
    "credo.krb": ["DerivedKey", "Enctype", "KeytabEntry", "SupportedEncryptionTypes", "derive_keys", "nt_hash",
                  "password_utf8", "read_keytab", "salt_for_computer_account", "write_keytab_atomically"],
    "credo.lab": ["DEFAULT_REALM", "DemoDirectory", "ENDPOINT_SEED", "EndpointDirectory", "IDENTITIES", "Lab",
                  "LabEnvironment", "LabPaths", "LabSettings", "LabShare", "LabStatus", "MIGRATION_SEED",
                  "MigrationDirectory", "SEED", "SHARES", "USERS", "default_lab_dir"],
    "credo.systemd": ["AGENT_SOCKET", "AGENT_UNIT", "CCACHE_ROOT", "GmsaCommand", "UnitFile", "account_snippet",
                      "agent_ccache_path", "agent_unit", "gmsa_service", "gmsa_timer"],
    "credo.client": ["API", "TERMINAL_STATES", "Client", "Event", "bearer", "error_from", "negotiate",
                     "negotiating", "problem_title"],
    "credo.config": ["SYSTEM_CONFIG", "ClientSettings", "Config", "ServerProcessSettings", "config_paths",
                     "load_config"],
    "credo.errors": ["EXIT_INTERNAL", "EXIT_INTERRUPTED", "ConfidentialityRequired", "Conflict", "CredoError",
                     "EnvironmentProblem", "InputError", "NotFoundError", "NotPermittedError",
                     "UnreachableError", "error_for_status"],
    "credo.server.routes": ["API", "auditlog", "auth", "groups", "health", "jobs", "metrics", "oidc", "roles",
                            "runbooks", "schedules", "webhooks", "workers"],
}  # fmt: skip
# Packages whose face is empty: their modules are imported by name.
NO_FACE = ["credo.ad", "credo.agent", "credo.automation", "credo.cli", "credo.endpoint", "credo.oidc",
           "credo.server", "credo.worker"]  # fmt: skip


@pytest.mark.parametrize("module", sorted(EXPORTED))
def test_exported_names_are_pinned(module: str) -> None:
    imported = importlib.import_module(module)
    assert sorted(imported.__all__) == sorted(EXPORTED[module])
    for name in imported.__all__:
        assert hasattr(imported, name), f"{module}.__all__ names {name}, which it lacks"


@pytest.mark.parametrize("module", NO_FACE)
def test_packages_without_a_face_export_nothing(module: str) -> None:
    assert getattr(importlib.import_module(module), "__all__", []) == []
