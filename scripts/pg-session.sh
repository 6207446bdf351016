#!/usr/bin/env bash
# Runs a command beside a throwaway PostgreSQL server: initdb in a temporary directory, listening on a Unix socket
# there only (no port to collide with), as an unprivileged user (nobody, when run as root), stopped and deleted
# when the command ends. The command sees MAGPIE_TEST_DATABASE_URL (libpq key=value form); each test creates its
# own database there.
#   scripts/pg-session.sh COMMAND [ARGS...]
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [[ ! -x "$bindir/initdb" ]]; then
  echo "pg-session: no PostgreSQL server; run bash scripts/setup-linux.sh --test first" >&2
  exit 1
fi

dir=$(mktemp -d -t magpie-pg.XXXXXX)
chmod 755 "$dir"
as_owner=()
if [[ $(id -u) == 0 ]]; then
  # PostgreSQL refuses to run as root.
  chown nobody "$dir"
  as_owner=(runuser -u nobody --)
fi

stop() {
  "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT

"${as_owner[@]}" "$bindir/initdb" -D "$dir/data" -U magpie --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 1; }
# Durable commits as in production (fsync, synchronous_commit on); room for several relays' pools.
"${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
  -o "-c listen_addresses= -k $dir -c max_connections=300 -c fsync=on -c synchronous_commit=on" \
  >/dev/null || { cat "$dir/server.log" >&2; exit 1; }

export MAGPIE_TEST_DATABASE_URL="host=$dir user=magpie dbname=postgres"
set +e
"$@"
status=$?
set -e
exit "$status"
