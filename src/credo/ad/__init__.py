"""Directory access: connection, DC discovery, escaping, SIDs and security descriptors.

GSSAPI inside TLS (LDAPS, StartTLS) must be bound to the TLS channel (RFC 5929
tls-server-end-point): Samba 4.22, and Windows DCs that enforce LDAP channel binding, answer
80090346 otherwise. python-ldap cannot set LDAP_OPT_X_SASL_CBINDING per connection, and libldap
reads its LDAPSASL_CBINDING variable once, when python-ldap is first imported (ldap.conf(5)). So
it is set here, before this package imports python-ldap; the binding only applies to TLS
connections, and a value the caller set is kept.
"""

from __future__ import annotations

import os

os.environ.setdefault("LDAPSASL_CBINDING", "tls-endpoint")
