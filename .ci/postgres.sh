#!/usr/bin/env bash
# Start a throw-away PostgreSQL server on loopback for the tests that need a
# real one (shared Optuna studies, an MLflow backend). Prints the server's
# URL on stdout; tests create a fresh database on it for each use.
# Installs Debian's server when it is missing; initdb refuses root, so the
# cluster belongs to the unprivileged "postgres" user when run as root.
set -euo pipefail
PORT="${SUPERIONIC_PG_PORT:-55432}"
DATA="${SUPERIONIC_PG_DATA:-/tmp/superionic-pg}"
bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [ -z "$bindir" ] && ! command -v initdb >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
  bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
fi
[ -n "$bindir" ] || bindir="$(dirname "$(command -v initdb)")"
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    su postgres -s /bin/bash -c "$*"
  else
    bash -c "$*"
  fi
}
rm -rf "$DATA" && mkdir -p "$DATA"
[ "$(id -u)" = 0 ] && chown postgres "$DATA"
as_owner "'$bindir/initdb' -D '$DATA' -U postgres --auth=trust -E UTF8 >/dev/null"
as_owner "'$bindir/pg_ctl' -D '$DATA' -l '$DATA/server.log' -w -o \"-p $PORT -k $DATA -c listen_addresses=127.0.0.1\" start >/dev/null"
echo "postgresql://postgres@127.0.0.1:$PORT"
