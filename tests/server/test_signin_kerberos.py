"""Real lane: signing in to a real `credo server` with a user's own Kerberos ticket (Negotiate,
real MIT Kerberos against the Samba lab) and with named API tokens through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from credo.lab import Lab, LabSettings
from tests.cli.test_error_lines import one_error
from tests.server.conftest import Server, create_group, create_runbook, start_job
from tests.support.identity import credo, identity_env


def user_env(lab: Lab, server: Server, tmp_path: Path, identity: str | None) -> dict[str, str]:
    """The CLI as a user: the identity's ccache, no token anywhere (no readable admin.token)."""
    return identity_env(lab, identity) | {
        "CREDO_SERVER_URL": server.kerberos_url,
        "CREDO_SERVER_DIR": str(tmp_path / "not-the-server"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }


def test_a_user_signs_in_with_their_own_ticket(sqlite_server: Server, lab: Lab, tmp_path: Path) -> None:
    # Administrator holds no credo role (no grant yet): signed in by Negotiate, then refused by
    # name with what is missing (403, exit 5), never asked for a token (401).
    error, hint = one_error(credo("job", "list", env=user_env(lab, sqlite_server, tmp_path, "admin")), 5)
    assert error.startswith("Administrator@CORP.EXAMPLE.TEST may not do this: needs role reader or")
    assert "credo role grant" in hint


def test_without_a_ticket_or_token_the_cli_says_how_to_sign_in(
    sqlite_server: Server, lab: Lab, tmp_path: Path
) -> None:
    env = user_env(lab, sqlite_server, tmp_path, "admin") | {"KRB5CCNAME": f"FILE:{tmp_path / 'no-ccache'}"}
    env.pop("KRB5_CLIENT_KTNAME")  # else GSS-API gets a ticket from the lab's client keytab
    error, hint = one_error(credo("job", "list", env=env), 5)
    assert error.startswith("no API token, and no Kerberos ticket for HTTP/")
    assert "kinit" in hint and "CREDO_TOKEN" in hint


def test_api_tokens_through_the_cli(sqlite_server: Server, tmp_path: Path) -> None:
    admin = sqlite_server.env()
    made = credo("token", "create", "ci-deploy", "--expires", "1d", "--role", "reader", env=admin)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("credo_") and "shown only now" in made.stderr
    as_token = admin | {"CREDO_TOKEN": token}
    assert credo("job", "list", env=as_token).returncode == 0
    # A reader may not create a group: exit 5 naming the role it needs.
    error, _ = one_error(credo("group", "create", "g1", "--run-as", "svcauto", env=as_token), 5)
    assert "needs role admin" in error
    listed = credo("token", "list", env=admin)
    assert listed.returncode == 0 and token not in listed.stdout
    line = next(row for row in listed.stdout.splitlines() if "ci-deploy" in row)
    token_id, _, role = line.split()[:3]
    assert role == "reader" and "never" not in line and line.endswith("active")
    assert credo("token", "revoke", token_id, env=admin).returncode == 0
    error, _ = one_error(credo("job", "list", env=as_token), 5)
    assert error == "sign-in required"
    error, _ = one_error(credo("token", "create", "x", "--expires", "2y", env=admin), 2)
    assert error == "invalid lifetime '2y'"


def test_roles_granted_to_a_group_count_through_the_directory(
    sqlite_server: Server, lab: Lab, tmp_path: Path
) -> None:
    user = user_env(lab, sqlite_server, tmp_path, "admin")
    admin = sqlite_server.env()
    # Administrator is in Domain Admins: the server reads that from tokenGroups as svccredo$.
    made = credo("role", "grant", "reader", "--group", "CORP\\Domain Admins", "--json", env=admin)
    assert made.returncode == 0, made.stderr
    listed = credo("job", "list", env=user)
    assert listed.returncode == 0, listed.stderr
    error, _ = one_error(credo("group", "create", "g1", "--run-as", "svcauto", env=user), 5)
    assert error == (
        "Administrator@CORP.EXAMPLE.TEST may not do this: needs role admin on all runbooks and worker groups"
    )
    rows = credo("role", "list", env=admin).stdout
    assert "CORP\\Domain Admins" in rows and "reader" in rows
    grant_id = next(line.split()[0] for line in rows.splitlines() if "Domain Admins" in line)
    assert credo("role", "revoke", grant_id, env=admin).returncode == 0
    # The grants are read again at once in this process; the user's groups stay cached (60 s).
    one_error(credo("job", "list", env=user), 5)


def test_a_scoped_operator_runs_and_stops_only_their_runbooks_jobs_in_their_groups(
    sqlite_server: Server, lab: Lab, lab_settings: LabSettings, tmp_path: Path
) -> None:
    for group in ("tier1", "tier2"):
        create_group(sqlite_server, group, ["worker1"], lab_settings.realm)
    for runbook in ("disable-user", "wipe-disk"):
        create_runbook(sqlite_server, runbook, "print('hi')\n")
    admin = sqlite_server.env()
    scoped = ["--runbook", "disable-user", "--worker-group", "tier1"]
    made = credo("role", "grant", "operator", "--group", "CORP\\Domain Admins", *scoped, env=admin)
    assert made.returncode == 0, made.stderr
    user = user_env(lab, sqlite_server, tmp_path, "admin")
    started = credo("job", "start", "disable-user", "--group", "tier1", "--json", env=user)
    assert started.returncode == 0, started.stderr
    job_id = json.loads(started.stdout)["id"]
    assert credo("job", "stop", job_id, env=user).returncode == 0
    for runbook, group in (("disable-user", "tier2"), ("wipe-disk", "tier1")):
        error, _ = one_error(credo("job", "start", runbook, "--group", group, env=user), 5)
        assert error.endswith(f"needs role operator or admin on runbook {runbook} in worker group {group}")
    # A job out of scope is out of sight: refused alike whether it exists or not, and not listed.
    other = start_job(sqlite_server, "wipe-disk", "tier2")["id"]
    listed = credo("job", "list", "--json", env=user)
    assert listed.returncode == 0, listed.stderr
    assert [job["id"] for job in json.loads(listed.stdout)] == [job_id]
    for job in (other, "00000000-0000-0000-0000-000000000000"):
        error, _ = one_error(credo("job", "show", job, env=user), 5)
        assert error.endswith(
            "needs role reader or operator or author or admin on all runbooks and worker groups"
        )
