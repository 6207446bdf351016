#!/bin/sh
# Runs inside the booted Debian 12 container of scripts/test-packages.sh (as a systemd unit): installs the relay's
# .deb, checks the service systemd started, then purges it. Writes /results/status = ok only if all held.
set -eu
say() { echo "relay-package: $*"; }
check() { if ! eval "$1"; then say "FAILED: $2"; exit 1; fi; }

say "dpkg -i magpie-relay.deb"
dpkg -i /root/magpie-relay.deb

check 'systemctl is-enabled --quiet magpie-relay' "the service is enabled at install"
healthy=""
for _ in $(seq 1 100); do
    if curl -sf http://127.0.0.1:8787/v1/health >/results/health; then healthy=yes; break; fi
    sleep 0.1
done
check '[ -n "$healthy" ]' "GET /v1/health answers (journal: $(journalctl -u magpie-relay --no-pager | tail -5))"
check 'curl -sf http://127.0.0.1:8787/v1/ca | grep -q "BEGIN CERTIFICATE"' "the relay serves its CA"

pid=$(systemctl show -p MainPID --value magpie-relay)
user=$(ps -o user= -p "$pid")
owner=$(stat -c '%U %a' /var/lib/magpie-relay)
exposure=$(systemd-analyze security magpie-relay.service --no-pager | tail -1)
check '[ "$user" = magpie-relay ]' "the service runs as magpie-relay (it runs as $user)"
check '[ "$owner" = "magpie-relay 700" ]' "/var/lib/magpie-relay belongs to magpie-relay, mode 700 (it is $owner)"
check '[ -n "$(ls /var/lib/magpie-relay)" ]' "the relay keeps its data in /var/lib/magpie-relay"
check '! su -s /bin/sh nobody -c "ls /var/lib/magpie-relay" 2>/dev/null' "other users cannot read the data"
{
    echo "process user: $user"
    echo "/var/lib/magpie-relay: $owner, holds: $(ls /var/lib/magpie-relay | tr '\n' ' ')"
    echo "systemd-analyze security: $exposure"
} >/results/facts
score=$(echo "$exposure" | sed -n 's/.*: \([0-9.]*\) .*/\1/p')
check "awk 'BEGIN { exit !($score <= 2.0) }'" "the unit's exposure is at most 2.0 ($exposure)"

say "dpkg --purge magpie-relay"
dpkg --purge magpie-relay
check '! systemctl is-active --quiet magpie-relay' "purging stops the service"
check '! getent passwd magpie-relay >/dev/null' "purging removes the user"
check '[ ! -e /var/lib/magpie-relay ]' "purging removes the data"
check '[ ! -e /etc/default/magpie-relay ]' "purging removes the settings"
echo ok >/results/status
say "passed"
