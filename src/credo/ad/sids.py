"""Well-known SIDs and RIDs, the groups that make an account privileged, and a token's group SIDs.

The one home for SID tables (MS-DTYP 2.4.2.4 "Well-Known SID Structures"): the audit, the gMSA
code and the endpoint lint all read them from here. Domain-relative groups are written as RIDs
and joined to a domain SID with ``domain_sid(...)-RID``.
"""

from __future__ import annotations

import re

import ldap

from credo.ad.connection import Directory
from credo.ad.security import sid_from_bytes

__all__ = [
    "PRIVILEGED_BUILTIN",
    "PRIVILEGED_RIDS",
    "RID_ADMINISTRATOR",
    "RID_DOMAIN_ADMINS",
    "RID_DOMAIN_COMPUTERS",
    "RID_DOMAIN_CONTROLLERS",
    "RID_DOMAIN_USERS",
    "RID_ENTERPRISE_ADMINS",
    "RID_ENTERPRISE_KEY_ADMINS",
    "RID_GPO_CREATOR_OWNERS",
    "RID_GUEST",
    "RID_KEY_ADMINS",
    "RID_KRBTGT",
    "RID_SCHEMA_ADMINS",
    "SID_ACCOUNT_OPERATORS",
    "SID_ADMINISTRATORS",
    "SID_BACKUP_OPERATORS",
    "SID_PRINT_OPERATORS",
    "SID_SERVER_OPERATORS",
    "SID_SYSTEM",
    "WELL_KNOWN",
    "is_sid",
    "privileged_group_sids",
    "privileged_name",
    "token_group_sids",
]

# Domain-relative RIDs (MS-DTYP 2.4.2.4).
RID_ADMINISTRATOR = 500
RID_GUEST = 501
RID_KRBTGT = 502
RID_DOMAIN_ADMINS = 512
RID_DOMAIN_USERS = 513
RID_DOMAIN_COMPUTERS = 515
RID_DOMAIN_CONTROLLERS = 516
RID_SCHEMA_ADMINS = 518
RID_ENTERPRISE_ADMINS = 519
RID_GPO_CREATOR_OWNERS = 520
RID_KEY_ADMINS = 526
RID_ENTERPRISE_KEY_ADMINS = 527
# Builtin (S-1-5-32) and NT AUTHORITY SIDs.
SID_ADMINISTRATORS = "S-1-5-32-544"
SID_ACCOUNT_OPERATORS = "S-1-5-32-548"
SID_SERVER_OPERATORS = "S-1-5-32-549"
SID_PRINT_OPERATORS = "S-1-5-32-550"
SID_BACKUP_OPERATORS = "S-1-5-32-551"
SID_SYSTEM = "S-1-5-18"

# Names of well-known SIDs that have no object in the domain partition.
WELL_KNOWN = {
    "S-1-1-0": "Everyone",
    "S-1-5-7": "NT AUTHORITY\\ANONYMOUS LOGON",
    "S-1-5-9": "NT AUTHORITY\\ENTERPRISE DOMAIN CONTROLLERS",
    "S-1-5-11": "NT AUTHORITY\\Authenticated Users",
    "S-1-5-18": "NT AUTHORITY\\SYSTEM",
}

# The groups Microsoft's guidance calls privileged (AD DS "Appendix B: Privileged Accounts and
# Groups in Active Directory"), by RID in the domain and by builtin SID; the accounts too.
PRIVILEGED_RIDS = {
    RID_ADMINISTRATOR: "Administrator",
    RID_KRBTGT: "krbtgt",
    RID_DOMAIN_ADMINS: "Domain Admins",
    RID_ENTERPRISE_ADMINS: "Enterprise Admins",
    RID_SCHEMA_ADMINS: "Schema Admins",
    RID_DOMAIN_CONTROLLERS: "Domain Controllers",
    RID_GPO_CREATOR_OWNERS: "Group Policy Creator Owners",
    RID_KEY_ADMINS: "Key Admins",
    RID_ENTERPRISE_KEY_ADMINS: "Enterprise Key Admins",
}
PRIVILEGED_BUILTIN = {
    SID_ADMINISTRATORS: "Administrators",
    SID_ACCOUNT_OPERATORS: "Account Operators",
    SID_SERVER_OPERATORS: "Server Operators",
    SID_BACKUP_OPERATORS: "Backup Operators",
    SID_PRINT_OPERATORS: "Print Operators",
    SID_SYSTEM: "SYSTEM",
}
_SID = re.compile(r"^S-1-\d+(-\d+){1,15}$", re.IGNORECASE)
_DOMAIN_RID = re.compile(r"^S-1-5-21(-\d+){3}-(\d+)$")


def is_sid(text: str) -> bool:
    """``S-1-5-...`` (the string form of MS-DTYP 2.4.2.1), not a name."""
    return bool(_SID.match(text))


def privileged_group_sids(domain_sid: str, dns_admins_sid: str | None = None) -> dict[str, str]:
    """SID -> name of the privileged groups of the domain ``domain_sid`` (accounts excluded)."""
    d = domain_sid
    sids = {
        f"{d}-{RID_DOMAIN_ADMINS}": "Domain Admins",
        f"{d}-{RID_ENTERPRISE_ADMINS}": "Enterprise Admins",
        f"{d}-{RID_SCHEMA_ADMINS}": "Schema Admins",
        SID_ADMINISTRATORS: "Administrators",
        SID_ACCOUNT_OPERATORS: "Account Operators",
        SID_SERVER_OPERATORS: "Server Operators",
        SID_BACKUP_OPERATORS: "Backup Operators",
        SID_PRINT_OPERATORS: "Print Operators",
        f"{d}-{RID_GPO_CREATOR_OWNERS}": "Group Policy Creator Owners",
        f"{d}-{RID_KEY_ADMINS}": "Key Admins",
        f"{d}-{RID_ENTERPRISE_KEY_ADMINS}": "Enterprise Key Admins",
    }
    if dns_admins_sid:
        sids[dns_admins_sid] = "DnsAdmins"
    return sids


def privileged_name(name_or_sid: str) -> str | None:
    """The privileged account or group ``name_or_sid`` stands for (by SID, or by name with or
    without ``DOMAIN\\``, case-insensitively), else None. Needs no directory: a lint can call it."""
    text = name_or_sid.strip()
    if text in PRIVILEGED_BUILTIN:
        return PRIVILEGED_BUILTIN[text]
    match = _DOMAIN_RID.match(text)
    if match:
        return PRIVILEGED_RIDS.get(int(match.group(2)))
    bare = text.rsplit("\\", 1)[-1].removesuffix("$").lower()
    for name in [*PRIVILEGED_RIDS.values(), *PRIVILEGED_BUILTIN.values(), "DnsAdmins", "root"]:
        if bare == name.lower():
            return name
    return None


def token_group_sids(directory: Directory, dn: str) -> set[str]:
    """The SIDs of ``dn`` and of every group it belongs to, nested included (tokenGroups,
    MS-ADTS 3.1.1.4.5.19: computed transitively, primary group included)."""
    entry = directory.search_one(dn, ldap.SCOPE_BASE, "(objectClass=*)", ["objectSid", "tokenGroups"])
    if entry is None:
        return set()
    sids = {sid_from_bytes(raw)[0] for raw in entry[1].get("tokenGroups", [])}
    own = entry[1].get("objectSid")
    if own:
        sids.add(sid_from_bytes(own[0])[0])
    return sids
