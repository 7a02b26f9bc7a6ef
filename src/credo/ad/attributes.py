"""schemaIDGUIDs of the attributes credo reads, writes or audits ACEs for (MS-ADA2), each checked
against the lab's schema NC. ACEs name attributes by these GUIDs (MS-DTYP 2.4.4.3)."""

from __future__ import annotations

__all__ = ["GMSA_MEMBERSHIP_GUID", "KDS_ROOT_KEY_DATA_GUID", "MANAGED_PASSWORD_GUID", "MEMBER_GUID"]

GMSA_MEMBERSHIP_GUID = "888eedd6-ce04-df40-b462-b8a50e41ba38"  # msDS-GroupMSAMembership
KDS_ROOT_KEY_DATA_GUID = "26627c27-08a2-0a40-a1b1-8dce85b42993"  # msKds-RootKeyData
MANAGED_PASSWORD_GUID = "e362ed86-b728-0842-b27d-2dea7a9df218"  # noqa: S105 - msDS-ManagedPassword
MEMBER_GUID = "bf9679c0-0de6-11d0-a285-00aa003049e2"  # member (MS-ADA2 2.43)
