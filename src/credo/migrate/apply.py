"""``credo migrate apply | rollback | finish``: perform a plan (credo.migrate.plan), reversibly.

The rollback record (the *journal*, ``PLAN.journal``) is a JSON lines file beside the plan. Before
each directory change, a line saying what is about to change and how to undo it is written and
fsynced; after it, a line saying it is done. So whatever stops apply (an error, a DC that goes
away, kill -9), the journal names every change that may have happened, and ``rollback`` undoes
exactly those, newest first. Every undo reads the directory first and changes only what is not
already as it was, so running it twice, or on a change that never landed, is harmless.

apply: on an error at any step, the steps already taken are undone at once, and the error is
raised; if the undo cannot reach the directory either, the error says to run ``rollback`` when
it is back (the journal keeps what it needs). finish: disables (never deletes) the old user,
refused while it still logs on: lastLogonTimestamp newer than the move means something still
uses its password (MS-ADTS 3.1.1.5.3.3: the attribute is replicated, and lags by up to 14 days
by default, so a recent logon may also show as older; finish checks what it can see).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ldap

from credo.accounts.service_accounts import NewAccount, create_account
from credo.accounts.validation import DEFAULT_ENCTYPES
from credo.ad.connection import Directory
from credo.ad.names import escape_filter_value
from credo.errors import Conflict, CredoError, EnvironmentProblem, InputError, UnreachableError
from credo.migrate.plan import UF_ACCOUNTDISABLE, UF_TRUSTED_TO_AUTH_FOR_DELEGATION, MigrationPlan

__all__ = ["Journal", "apply_plan", "finish_plan", "journal_path", "rollback_plan"]

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


def journal_path(plan_path: Path) -> Path:
    return plan_path.with_name(plan_path.name + ".journal")


@dataclass(frozen=True)
class Entry:
    """One line of the journal: a change about to be made (``begin``) or made (``done``), or a
    milestone (``applied``, ``rolled-back``, ``finished``)."""

    phase: str
    action: str = ""
    args: dict[str, Any] | None = None
    at: str = ""


class Journal:
    """The rollback record: appended and fsynced line by line (0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[Entry]:
        try:
            text = self.path.read_text() if self.path.exists() else ""
        except (OSError, UnicodeDecodeError) as exc:
            raise EnvironmentProblem(f"cannot read the rollback record {self.path}: {exc}") from None
        found = []
        for number, line in enumerate(text.splitlines(), 1):
            try:
                data = json.loads(line)
                found.append(
                    Entry(data["phase"], data.get("action", ""), data.get("args"), data.get("at", ""))
                )
            except (json.JSONDecodeError, KeyError, TypeError):
                raise InputError(
                    f"{self.path}:{number}: not a journal line", hint="the journal is credo's own"
                ) from None
        return found

    def write(self, phase: str, action: str = "", args: dict[str, Any] | None = None) -> None:
        line = json.dumps(
            {"phase": phase, "action": action, "args": args, "at": datetime.now(UTC).isoformat()}
        )
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise EnvironmentProblem(
                f"cannot write the rollback record {self.path}: {exc.strerror}",
                hint="make its directory writable; then `credo migrate rollback PLAN` if a change was made",
            ) from None

    def state(self) -> str:
        """``new``, ``applied``, ``rolled-back``, ``finished``, or ``partial`` (changes begun and
        neither completed nor undone: apply was interrupted)."""
        state = "new"
        for entry in self.entries():
            if entry.phase in ("applied", "rolled-back", "finished"):
                state = entry.phase
            elif entry.phase == "begin" and state in ("new", "rolled-back"):
                state = "partial"
        return state

    def changes(self) -> list[Entry]:
        """The changes begun since the last rollback, oldest first."""
        begun: list[Entry] = []
        for entry in self.entries():
            if entry.phase == "rolled-back":
                begun = []
            elif entry.phase == "begin":
                begun.append(entry)
        return begun


# -- the changes and their undo; each undo reads first and is harmless when already undone ------------


def _gmsa_dn(directory: Directory, plan: MigrationPlan) -> str | None:
    entry = directory.search_one(
        plan.base_dn, ldap.SCOPE_SUBTREE, f"(sAMAccountName={escape_filter_value(plan.gmsa)}$)", ["cn"]
    )
    return entry[0] if entry else None


def _values(directory: Directory, dn: str, attr: str) -> list[str]:
    entry = directory.search_one(dn, ldap.SCOPE_BASE, "(objectClass=*)", [attr])
    return [v.decode() for v in entry[1].get(attr, [])] if entry else []


def _has_member(directory: Directory, group_dn: str, member_dn: str) -> bool:
    found = directory.search_one(
        group_dn, ldap.SCOPE_BASE, f"(member={escape_filter_value(member_dn)})", ["cn"]
    )
    return found is not None


def _create(directory: Directory, plan: MigrationPlan, args: dict[str, Any]) -> None:
    account = create_account(
        directory,
        NewAccount(
            name=plan.gmsa,
            dns_host_name=plan.gmsa_dns_host_name,
            allowed=tuple(h.sid for h in plan.hosts),
            enctypes=DEFAULT_ENCTYPES,
            description=_description(plan),
        ),
    )
    mods: list[tuple[int, str, list[bytes] | None]] = []
    if plan.delegate_to:
        mods.append((ldap.MOD_REPLACE, "msDS-AllowedToDelegateTo", [s.encode() for s in plan.delegate_to]))
    if plan.protocol_transition:
        uac = int(_values(directory, account.dn, "userAccountControl")[0])
        mods.append(
            (ldap.MOD_REPLACE, "userAccountControl", [str(uac | UF_TRUSTED_TO_AUTH_FOR_DELEGATION).encode()])
        )
    if mods:
        directory.modify(account.dn, mods)


def _description(plan: MigrationPlan) -> str:
    return f"moved from {plan.user} by credo migrate"


def _undo_create(directory: Directory, plan: MigrationPlan, args: dict[str, Any]) -> None:
    dn = _gmsa_dn(directory, plan)
    # Only the account this move made (its description says so): never one of the same name that
    # someone else created, should the create have failed because it existed.
    if dn is not None and _values(directory, dn, "description") == [_description(plan)]:
        directory.delete(dn, tree=True)


def _add_member(directory: Directory, plan: MigrationPlan, args: dict[str, Any]) -> None:
    dn = _gmsa_dn(directory, plan)
    assert dn is not None
    directory.modify(args["group"], [(ldap.MOD_ADD, "member", [dn.encode()])])


def _undo_add_member(directory: Directory, plan: MigrationPlan, args: dict[str, Any]) -> None:
    dn = _gmsa_dn(directory, plan)
    if dn is not None and _has_member(directory, args["group"], dn):
        directory.modify(args["group"], [(ldap.MOD_DELETE, "member", [dn.encode()])])


def _move_spn(directory: Directory, plan: MigrationPlan, args: dict[str, Any]) -> None:
    spn = args["spn"]
    dn = _gmsa_dn(directory, plan)
    assert dn is not None
    # Off the user first: the directory (and a KDC) must never see the SPN on two accounts.
    directory.modify(plan.user_dn, [(ldap.MOD_DELETE, "servicePrincipalName", [spn.encode()])])
    directory.modify(dn, [(ldap.MOD_ADD, "servicePrincipalName", [spn.encode()])])


def _undo_move_spn(directory: Directory, plan: MigrationPlan, args: dict[str, Any]) -> None:
    spn = args["spn"]
    dn = _gmsa_dn(directory, plan)
    if dn is not None and spn.lower() in (s.lower() for s in _values(directory, dn, "servicePrincipalName")):
        directory.modify(dn, [(ldap.MOD_DELETE, "servicePrincipalName", [spn.encode()])])
    if spn.lower() not in (s.lower() for s in _values(directory, plan.user_dn, "servicePrincipalName")):
        directory.modify(plan.user_dn, [(ldap.MOD_ADD, "servicePrincipalName", [spn.encode()])])


def _disable_user(directory: Directory, plan: MigrationPlan, args: dict[str, Any]) -> None:
    directory.modify(
        plan.user_dn,
        [(ldap.MOD_REPLACE, "userAccountControl", [str(args["uac"] | UF_ACCOUNTDISABLE).encode()])],
    )


def _undo_disable_user(directory: Directory, plan: MigrationPlan, args: dict[str, Any]) -> None:
    current = int(_values(directory, plan.user_dn, "userAccountControl")[0])
    if current != args["uac"]:
        directory.modify(
            plan.user_dn, [(ldap.MOD_REPLACE, "userAccountControl", [str(args["uac"]).encode()])]
        )


Change = Callable[[Directory, MigrationPlan, dict[str, Any]], None]
_ACTIONS: dict[str, tuple[Change, Change]] = {
    "create-gmsa": (_create, _undo_create),
    "add-member": (_add_member, _undo_add_member),
    "move-spn": (_move_spn, _undo_move_spn),
    "disable-user": (_disable_user, _undo_disable_user),
}


def _steps(plan: MigrationPlan) -> Iterator[tuple[str, dict[str, Any]]]:
    yield "create-gmsa", {"gmsa": plan.gmsa}
    for group in plan.copied_groups:
        yield "add-member", {"group": group.dn, "name": group.name}
    for spn in plan.spns:
        yield "move-spn", {"spn": spn}


def _undo(directory: Directory, plan: MigrationPlan, journal: Journal) -> list[str]:
    undone = []
    for entry in reversed(journal.changes()):
        _, undo = _ACTIONS[entry.action]
        undo(directory, plan, entry.args or {})
        undone.append(entry.action)
    journal.write("rolled-back")
    return undone


def _check_plan_matches(directory: Directory, plan: MigrationPlan) -> None:
    if directory.base_dn.lower() != plan.base_dn.lower():
        raise InputError(f"the plan is for {plan.base_dn}, this directory is {directory.base_dn}")


def apply_plan(directory: Directory, plan: MigrationPlan, journal: Journal) -> list[str]:
    """Perform the plan's directory steps; on any error undo them all and raise. Returns the steps."""
    _check_plan_matches(directory, plan)
    state = journal.state()
    if state != "new" and state != "rolled-back":
        raise Conflict(
            f"the plan was {state} already ({journal.path})",
            hint="`credo migrate rollback PLAN` first"
            if state in ("applied", "partial")
            else "make a new plan",
        )
    existing = _gmsa_dn(directory, plan)
    if existing is not None:
        raise Conflict(
            f"{plan.gmsa}$ exists already ({existing})", hint="make a new plan with another --name"
        )
    current = {s.lower() for s in _values(directory, plan.user_dn, "servicePrincipalName")}
    missing = [s for s in plan.spns if s.lower() not in current]
    if missing:
        raise Conflict(
            f"{plan.user} no longer has SPN {missing[0]}",
            hint="the directory changed since the plan: make a new one",
        )
    done = []
    for action, args in _steps(plan):
        do, _ = _ACTIONS[action]
        journal.write("begin", action, args)
        try:
            do(directory, plan, args)
        except CredoError as exc:
            try:
                _undo(directory, plan, journal)
            except CredoError as again:
                raise UnreachableError(
                    f"{action} failed ({exc.message}), and undoing the steps before it failed too ({again.message})",
                    hint=f"when the directory answers again: credo migrate rollback PLAN (the record is {journal.path})",
                ) from None
            raise type(exc)(
                f"{action} failed, every step before it was undone: {exc.message}", hint=exc.hint
            ) from None
        journal.write("done", action, args)
        done.append(action)
    journal.write("applied")
    return done


def rollback_plan(directory: Directory, plan: MigrationPlan, journal: Journal) -> list[str]:
    """Undo a completed (or interrupted) move, newest change first."""
    _check_plan_matches(directory, plan)
    if journal.state() in ("new", "rolled-back"):
        raise Conflict(f"nothing to roll back ({journal.path} records no change in force)")
    return _undo(directory, plan, journal)


def _last_logon(directory: Directory, plan: MigrationPlan) -> datetime | None:
    values = _values(directory, plan.user_dn, "lastLogonTimestamp")
    if not values or int(values[0]) <= 0:
        return None
    return _FILETIME_EPOCH + timedelta(microseconds=int(values[0]) // 10)


def finish_plan(directory: Directory, plan: MigrationPlan, journal: Journal) -> datetime | None:
    """Disable the old user (refused while it still logs on after the move). Returns its last logon."""
    _check_plan_matches(directory, plan)
    if journal.state() != "applied":
        raise Conflict(
            f"the move is not applied ({journal.path}: {journal.state()})",
            hint="credo migrate apply PLAN first",
        )
    applied = max(datetime.fromisoformat(e.at) for e in journal.entries() if e.phase == "applied")
    last = _last_logon(directory, plan)
    if last is not None and last > applied:
        raise Conflict(
            f"{plan.user} logged on at {last:%Y-%m-%d %H:%M} UTC, after the move ({applied:%Y-%m-%d %H:%M} UTC)",
            hint="something still uses its password: find it (the DC's logon events name the host), move it, then finish",
        )
    uac = int(_values(directory, plan.user_dn, "userAccountControl")[0])
    args = {"uac": uac}
    journal.write("begin", "disable-user", args)
    _disable_user(directory, plan, args)
    journal.write("done", "disable-user", args)
    journal.write("finished")
    return last
