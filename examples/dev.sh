#!/bin/sh
# `make dev`: a scratch PostgreSQL cluster plus a Coffer dev server,
# configured for dynamic credentials. Ctrl-C stops both and removes the
# cluster.
#
#   COFFER_DEV_ADDR   where Coffer listens (default 127.0.0.1:8200)
#   COFFER_DEV_TOKEN  the root token (default root)
#   COFFER_PG_PORT    PostgreSQL's port (default: 5432 if free, else another)
set -eu
bin=${1:-build/coffer}
here=$(cd "$(dirname "$0")" && pwd)
addr=${COFFER_DEV_ADDR:-127.0.0.1:8200}
token=${COFFER_DEV_TOKEN:-root}
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -t/ -k5 -n | tail -n 1)

port_free() {
    /usr/bin/python3 -c "import socket; socket.socket().bind(('127.0.0.1', $1))" \
        2>/dev/null
}
port=${COFFER_PG_PORT:-5432}
while ! port_free "$port"; do port=$((port + 1)); done

tmp=$(mktemp -d /tmp/coffer-dev.XXXXXX)
as_pg=""
if [ "$(id -u)" = 0 ]; then
    chown postgres "$tmp"
    as_pg="runuser -u postgres --"
fi
coffer_pid=""
cleanup() {
    trap - EXIT INT TERM
    [ -n "$coffer_pid" ] && kill "$coffer_pid" 2>/dev/null && wait "$coffer_pid" 2>/dev/null
    $as_pg "$pgbin/pg_ctl" -D "$tmp/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$tmp"
    echo "Stopped Coffer and removed the scratch PostgreSQL cluster."
}
trap cleanup EXIT INT TERM

echo "postgres" >"$tmp/pw"
[ -n "$as_pg" ] && chown postgres "$tmp/pw"
$as_pg "$pgbin/initdb" -D "$tmp/data" -U postgres --auth=scram-sha-256 \
    --pwfile="$tmp/pw" -E UTF8 --no-sync >"$tmp/initdb.log" 2>&1
$as_pg "$pgbin/pg_ctl" -D "$tmp/data" -l "$tmp/pg.log" -w \
    -o "-p $port -k $tmp -c listen_addresses=127.0.0.1" start >/dev/null
export PGPASSWORD=postgres
psql() { command psql -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -q "$@"; }
psql -d postgres -c "CREATE DATABASE myapp"
psql -d myapp -c "CREATE ROLE app_readonly NOLOGIN;
    CREATE TABLE orders (id serial PRIMARY KEY, item text);
    INSERT INTO orders (item) VALUES ('coffee'), ('beans');
    GRANT SELECT ON orders TO app_readonly;"

"$bin" server -dev -dev-root-token-id="$token" -dev-listen-address="$addr" \
    >"$tmp/coffer.log" 2>&1 &
coffer_pid=$!
export VAULT_ADDR="http://$addr" VAULT_TOKEN="$token"
i=0
until "$bin" status >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$coffer_pid" 2>/dev/null; then
        cat "$tmp/coffer.log" >&2
        exit 1
    fi
    sleep 0.1
done
PGPORT=$port PGUSER=postgres COFFER=$bin sh "$here/dynamic-postgres.sh" >/dev/null

cat <<MSG

Coffer dev server:   http://$addr   (root token: $token)
Web UI:              http://$addr/ui/   (log in with the token)
Scratch PostgreSQL:  127.0.0.1:$port, database myapp (user postgres, password postgres)

Get database credentials, in another shell:

    export VAULT_ADDR=http://$addr VAULT_TOKEN=$token
    $bin read database/creds/my-role
    curl -H "X-Vault-Token: $token" http://$addr/v1/database/creds/my-role

Then log in with them:

    PGPASSWORD=<password> psql -h 127.0.0.1 -p $port -U <username> myapp -c 'SELECT * FROM orders'

Revoke them early with:  $bin lease revoke <lease_id>
Server log: $tmp/coffer.log.  Press Ctrl-C to stop.
MSG
wait "$coffer_pid"
