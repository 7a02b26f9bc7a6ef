#!/usr/bin/env bash
# Install the Debian packages credo needs, once: Samba >= 4.21 from bookworm-backports (the DC of the
# lab, with gMSA support), MIT Kerberos and OpenLDAP clients, faketime (rotation tests), PostgreSQL,
# nftables (the tests' DC blackhole, tests/support/blackhole.py), OpenSSH's server and client (the
# transport of restricted endpoints: the tests start a private sshd on loopback, tests/support/sshd.py)
# python3-venv (the jobs' cloud SDK venv, scripts/install-sdk-venv.sh), HAProxy (the load balancer in
# front of server replicas in the scale-out tests, tests/support/haproxy.py), rsyslog (the receiver
# that parses credo's RFC 5424 security events in the tests, tests/support/rsyslog.py) and the -dev
# libraries that python-ldap, krb5 and gssapi compile against.
# Quick when everything is there already: one dpkg-query, no apt.
set -euo pipefail

BACKPORTS=(samba samba-ad-dc samba-dsdb-modules samba-vfs-modules winbind krb5-user ldb-tools smbclient)
PLAIN=(ldap-utils libldap2-dev libsasl2-dev libsasl2-modules-gssapi-mit libkrb5-dev faketime
       iproute2 procps postgresql python3-ldap chromium nftables openssh-server openssh-client
       python3-venv haproxy rsyslog)

samba_ok() {
    local v
    v=$(dpkg-query -W -f='${Version}' samba 2>/dev/null) || return 1
    dpkg --compare-versions "$v" ge 2:4.21
}

missing=()
for p in "${BACKPORTS[@]}" "${PLAIN[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ] && samba_ok; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-packages: missing ${missing[*]:-a recent samba}; run 'make install' as root" >&2
    exit 3
fi

src=/etc/apt/sources.list.d/credo-backports.sources
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # Use the mirror this machine already uses for Debian, never a hard-coded host.
    mirror=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
             | grep -v security | grep -oE '(https?|file)://[^ ]+' | head -n1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$mirror" > "$src"
fi
export DEBIAN_FRONTEND=noninteractive
# No service may start from its package's postinst (sshd, samba, postgresql): the lab and the tests
# run their own, on loopback. policy-rc.d exiting 101 is Debian's "action forbidden"
# (invoke-rc.d(8), /usr/share/doc/init-system-helpers/README.policy-rc.d); ours is removed after.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# written by credo install-system-packages.sh for the install only\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -q
apt-get install -y -q -t bookworm-backports "${BACKPORTS[@]}"
apt-get install -y -q "${PLAIN[@]}"
# Debian's packages start services when a init system runs them; the lab runs its own DC.
for svc in samba-ad-dc smbd nmbd winbind postgresql ssh haproxy rsyslog; do
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
done
samba_ok || { echo "install-system-packages: samba >= 4.21 did not install" >&2; exit 3; }
