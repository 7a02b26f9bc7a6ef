"""Disable an Active Directory user: the runbook of the demo, run as the worker group's gMSA.

Parameters (JSON, never spliced into this text): sam_account_name. The worker sets KRB5CCNAME to
a ticket of the group's gMSA; LDAP binds with it (GSSAPI, sealed). No password anywhere.
"""

import os

import ldap
import ldap.filter
import ldap.sasl

from credo import runbook

sam = runbook.params()["sam_account_name"]
url = os.environ.get("DC_URL", "ldap://dc1.corp.example.test")
conn = ldap.initialize(url)
conn.set_option(ldap.OPT_X_SASL_NOCANON, 1)
conn.set_option(ldap.OPT_X_SASL_SSF_MIN, 56)
conn.sasl_interactive_bind_s("", ldap.sasl.sasl({}, "GSSAPI"))
runbook.write_verbose("bound as " + conn.whoami_s())
base = conn.search_s("", ldap.SCOPE_BASE, "(objectClass=*)", ["defaultNamingContext"])[0][1]["defaultNamingContext"][0].decode()
found = [r for r in conn.search_s(base, ldap.SCOPE_SUBTREE, "(sAMAccountName=%s)" % ldap.filter.escape_filter_chars(sam),
                                  ["userAccountControl"]) if r[0]]
if not found:
    raise SystemExit(f"no user {sam!r} in {base}")
[(dn, attrs)] = found
uac = int(attrs["userAccountControl"][0])
if uac & 2:
    runbook.write_warning(f"{sam} was already disabled")
runbook.write_progress("disabling " + sam, percent=50)
conn.modify_s(dn, [(ldap.MOD_REPLACE, "userAccountControl", [str(uac | 2).encode()])])
print("disabled", dn)
