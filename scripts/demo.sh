#!/usr/bin/env bash
# `make demo`: bring the lab domain up and show, step by step, that WORKER1 may use the gMSA
# svcauto$ and WORKER2 may not. Nothing secret is printed: only sizes and names.
set -euo pipefail
cd "$(dirname "$0")/.."
CREDO=.venv/bin/credo
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "1. Bring up the lab domain (a real Samba AD DC on 127.0.0.1; first time ~15 s)"
show $CREDO lab up

step "2. What is in it"
show $CREDO lab status

for host in worker1 worker2; do
    step "3. Act as ${host^^}\$ with its host keytab (no password anywhere)"
    echo "\$ eval \"\$(credo lab env --host $host)\""
    eval "$($CREDO lab env --host "$host")"
    show ldapwhoami -Q
    echo "\$ ldapsearch -Q -LLL '(sAMAccountName=svcauto\$)' msDS-ManagedPassword   # size only"
    blob=$(ldapsearch -Q -LLL -o ldif_wrap=no '(sAMAccountName=svcauto$)' msDS-ManagedPassword \
           | sed -n 's/^msDS-ManagedPassword:: //p')
    if [ -n "$blob" ]; then
        size=$(printf '%s' "$blob" | base64 -d | wc -c)
        echo "  -> ${host^^}\$ MAY use svcauto\$: the DC returned its managed password blob (${size} bytes)."
    else
        echo "  -> ${host^^}\$ may NOT use svcauto\$: the DC returned no msDS-ManagedPassword"
        echo "     (it is not in PrincipalsAllowedToRetrieveManagedPassword: only HybridWorkers are)."
    fi
done

step "Done. Look around:"
cat <<TXT
  eval "\$($CREDO lab env --host worker1)"   # act as WORKER1\$ (or worker2, admin)
  ldapsearch -Q -LLL '(objectClass=msDS-GroupManagedServiceAccount)' dn
  $CREDO lab status | down | destroy
TXT
