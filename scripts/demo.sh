#!/usr/bin/env bash
# `make demo`: the main job of credo on the embedded default (SQLite), step by step.
#   lab DC up -> credo server (SQLite, Kerberos for workers) -> a worker as WORKER1$ in group tier1
#   running as the gMSA svcauto$ -> publish the "disable-user" runbook -> run it for jdoe -> jdoe is
#   disabled in the directory; the same runbook on tier2 (served by WORKER2$, which may not use
#   svcauto$) fails with the reason in its error stream. Nothing secret is printed or stored.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CREDO=$ROOT/.venv/bin/credo
DEMO=/var/lib/credo/demo
PORT=8400
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

step "1. The lab domain: a real Samba AD DC on 127.0.0.1 (first time ~15 s)"
show "$CREDO" lab up
eval "$("$CREDO" lab env)"
REALM=$(sed -n 's/^ *default_realm = //p' "$KRB5_CONFIG")
SERVER_FQDN=credo.$(echo "$REALM" | tr 'A-Z' 'a-z')

step "2. The previous demo's processes are stopped; jdoe is enabled again"
for pidfile in "$DEMO"/*.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
done
sleep 1
rm -rf "$DEMO"; mkdir -p "$DEMO"; chmod 700 "$DEMO"
(eval "$("$CREDO" lab env --host admin)"; samba-tool user enable jdoe -H "$CREDO_LDAP_URL" --use-kerberos=required >/dev/null)
id credo-runner >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin credo-runner

step "3. The server's identity: credo writes its HTTP/ keytab from the gMSA svccredo, as CREDOSRV\$"
(
    eval "$("$CREDO" lab env --host server)"
    show "$CREDO" gmsa keytab svccredo --spn "HTTP/$SERVER_FQDN" --out "$DEMO/http.keytab"
)

step "4. credo server on SQLite (state in $DEMO/server), workers authenticate with Kerberos"
"$CREDO" server --data-dir "$DEMO/server" --keytab "$DEMO/http.keytab" --listen "127.0.0.1:$PORT" \
    >"$DEMO/server.log" 2>&1 &
echo $! >"$DEMO/server.pid"
export CREDO_SERVER_URL=http://127.0.0.1:$PORT CREDO_SERVER_DIR=$DEMO/server
for _ in $(seq 150); do
    kill -0 "$(cat "$DEMO/server.pid")" 2>/dev/null || { cat "$DEMO/server.log"; echo "credo server did not start (is port $PORT taken?)"; exit 3; }
    [ -f "$DEMO/server/admin.token" ] && "$ROOT/.venv/bin/python" -c \
        "import httpx, sys; sys.exit(httpx.get('$CREDO_SERVER_URL/api/v1/health').status_code != 200)" 2>/dev/null && break
    sleep 0.1
done
echo "server up: $CREDO_SERVER_URL (admin token in $DEMO/server/admin.token, 0600)"

# The client configuration (credo.config): every credo command in any shell of this user finds the
# demo's server and its admin token's file. The file names the token's path, never the token; 0600
# all the same. A credo.toml that this demo did not write is left alone.
CONFIG=${XDG_CONFIG_HOME:-$HOME/.config}/credo/credo.toml
if [ ! -e "$CONFIG" ] || head -1 "$CONFIG" | grep -q '^# written by make demo'; then
    mkdir -p "$(dirname "$CONFIG")"
    (umask 077; cat >"$CONFIG" <<TOML
# written by make demo: where the credo commands find the demo's server (docs/architecture.md)
[server]
url = "$CREDO_SERVER_URL"
token_file = "$DEMO/server/admin.token"
TOML
    )
    chmod 600 "$CONFIG"
    echo "client configuration: $CONFIG (0600: the server's URL and the admin token's path)"
else
    echo "note: $CONFIG exists and was not written by the demo; add to it: [server] url = \"$CREDO_SERVER_URL\""
fi

step "5. Worker groups: tier1 (WORKER1\$) and tier2 (WORKER2\$), both run as svcauto\$ under local user credo-runner"
show "$CREDO" group create tier1 --run-as svcauto --local-user credo-runner --worker "WORKER1\$@$REALM"
show "$CREDO" group create tier2 --run-as svcauto --local-user credo-runner --worker "WORKER2\$@$REALM"

step "6. Workers: outbound HTTP only, each as its own computer account (no stored secret)"
for host in worker1 worker2; do
    group=tier1; [ $host = worker2 ] && group=tier2
    (
        eval "$("$CREDO" lab env --host $host)"
        exec "$CREDO" worker --server "http://$SERVER_FQDN:$PORT" --group $group \
            >"$DEMO/$host.log" 2>&1
    ) &
    echo $! >"$DEMO/$host.pid"
done
for _ in $(seq 100); do [ "$("$CREDO" worker list | grep -c online)" = 2 ] && break; sleep 0.1; done
show "$CREDO" worker list

step "7. Import and publish the runbook (typed parameter sam_account_name)"
show "$CREDO" runbook create disable-user --file examples/runbooks/disable_user.py --type python3 \
    --parameters examples/runbooks/disable_user.parameters.json --description "Disable an AD user"
show "$CREDO" runbook publish disable-user

step "8. Run it on tier1 for jdoe and follow its output"
show "$CREDO" job start disable-user --group tier1 -p sam_account_name=jdoe --follow
echo "\$ ldapsearch '(sAMAccountName=jdoe)' userAccountControl    # as the domain administrator"
(eval "$("$CREDO" lab env --host admin)"; ldapsearch -Q -LLL '(sAMAccountName=jdoe)' userAccountControl | grep userAccountControl)
echo "  -> 514 = NORMAL_ACCOUNT (512) + ACCOUNTDISABLE (2): jdoe is disabled, by svcauto\$, with no password stored."

step "9. The same runbook on tier2, served by WORKER2\$, which may not use svcauto\$"
show "$CREDO" job start disable-user --group tier2 -p sam_account_name=asmith --follow || true

step "Done: what happened, and how to look around"
cat <<TXT
  The job on tier1 ran on WORKER1\$ as CORP\\svcauto\$ (a gMSA whose password WORKER1\$ may retrieve)
  and disabled jdoe. The job on tier2 failed: WORKER2\$ may not retrieve svcauto\$'s password, and
  the reason is in the job's error stream. The server and both workers keep running, and any
  shell finds them through $CONFIG:

    $CREDO job list
    $CREDO job show <id>                 # states with times, worker, attempts, exit code
    $CREDO job output <id> --stream verbose
    $CREDO runbook show disable-user
    $CREDO group show tier1
    kill \$(cat $DEMO/*.pid)             # stop the demo's server and workers
TXT
