"""Every managed service account with all its group memberships, nested ones included.

The export Microsoft's gMSA guidance asks administrators to script: from one snapshot, memberOf
is followed transitively (primary group included) with the path that leads to each group.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

from credo.audit.render import SafeCsvWriter
from credo.audit.snapshot import Snapshot

__all__ = ["Membership", "memberships", "memberships_csv", "memberships_json"]


@dataclass(frozen=True)
class Membership:
    account: str
    account_dn: str
    account_type: str
    group: str
    group_dn: str
    group_sid: str
    direct: bool
    path: tuple[str, ...]  # from the account's direct group to this one


def memberships(snapshot: Snapshot) -> list[Membership]:
    rows = []
    for record in sorted(snapshot.accounts, key=lambda r: r.name.lower()):
        kind = "gMSA" if record.account.group_managed else "sMSA"
        direct = {dn.lower() for dn in record.member_of}
        primary = snapshot.groups_by_sid.get(record.primary_group_sid or "")
        if primary:
            direct.add(primary.dn.lower())
        paths = snapshot.nested_groups(record.member_of, record.primary_group_sid)
        for dn, path in sorted(paths.items(), key=lambda item: (len(item[1]), item[1][-1].lower())):
            group = snapshot.groups[dn]
            rows.append(
                Membership(
                    record.name, record.dn, kind, group.name, group.dn, group.sid, dn in direct, tuple(path)
                )
            )
    return rows


def memberships_csv(rows: list[Membership]) -> str:
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    writer.writerow(
        ["account", "account_dn", "account_type", "group", "group_dn", "group_sid", "direct", "path"]
    )
    for m in rows:
        writer.writerow([m.account, m.account_dn, m.account_type, m.group, m.group_dn, m.group_sid,
                         "yes" if m.direct else "no", " > ".join(m.path)])  # fmt: skip
    return out.getvalue()


def memberships_json(snapshot: Snapshot, rows: list[Membership]) -> str:
    accounts: dict[str, dict[str, object]] = {}
    for record in sorted(snapshot.accounts, key=lambda r: r.name.lower()):
        accounts[record.dn] = {
            "account": record.name,
            "dn": record.dn,
            "type": "gMSA" if record.account.group_managed else "sMSA",
            "groups": [],
        }
    for m in rows:
        groups = accounts[m.account_dn]["groups"]
        assert isinstance(groups, list)
        groups.append(
            {"name": m.group, "dn": m.group_dn, "sid": m.group_sid, "direct": m.direct, "path": list(m.path)}
        )
    return json.dumps({"base_dn": snapshot.base_dn, "accounts": list(accounts.values())}, indent=2) + "\n"
