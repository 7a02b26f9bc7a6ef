#!/usr/bin/env bash
# `make demo`: bring the lab domain up and show, step by step, that WORKER1 may use the gMSA
# svcauto$ and WORKER2 may not. Nothing secret is printed.
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
    step "3. Act as ${host^^}\$ with nothing but its host keytab"
    echo "\$ eval \"\$(credo lab env --host $host)\""
    eval "$($CREDO lab env --host "$host")"
    show ldapwhoami -Q
    echo "\$ credo gmsa test svcauto        # Test-ADServiceAccount"
    if $CREDO gmsa test svcauto; then
        echo "  -> ${host^^}\$ MAY use svcauto\$: it read the managed password and got a TGT with it."
        step "4. Run a command as svcauto\$ (PsExec -u CORP\\svcauto\$ -p ~), no password stored anywhere"
        show $CREDO run --as svcauto -- ldapwhoami -N -Q -Y GSSAPI -H "$CREDO_LDAP_URL"
        show $CREDO gmsa show svcauto
    else
        echo "  -> ${host^^}\$ may NOT use svcauto\$: the DC returned no password to it (reason above)."
    fi
done

step "Done. Look around:"
cat <<TXT
  eval "\$($CREDO lab env --host worker1)"   # act as WORKER1\$ (or worker2, admin)
  $CREDO gmsa keytab svcauto --out /tmp/svcauto.keytab && klist -kte /tmp/svcauto.keytab
  $CREDO run --as svcauto -- klist
  $CREDO lab status | down | destroy
TXT
