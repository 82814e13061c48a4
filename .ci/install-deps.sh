#!/bin/sh
# Install the Debian packages Coffer needs to build, run and test.
# clang and its runtimes (libFuzzer, ASan, UBSan) build the fuzz harnesses
# that `make test` runs over their corpora (tests/fuzz/); softhsm2 is the
# HSM the pkcs11 seal is tested with; the MariaDB server and client are
# started per test module by tests/integration/mariadb.py (never a system
# instance). chromium runs the web UI's browser tests (tests/ui/cdp.py).
# Idempotent: packages already present are skipped, and apt is not touched
# at all when nothing is missing.
set -eu

PKGS="build-essential pkg-config curl ca-certificates
liblua5.4-dev libmicrohttpd-dev libpq-dev libssl-dev libcjson-dev
libsqlite3-dev libcurl4-openssl-dev
postgresql postgresql-client
python3 python3-pytest python3-hvac python3-psycopg2 python3-requests
clang libclang-rt-dev
softhsm2 libp11-kit-dev
libmariadb-dev mariadb-server mariadb-client
chromium"
# Load generators and the nginx baseline (tests/bench/bench_server.py), only
# for `make bench` (install-deps.sh --bench).
BENCH_PKGS="wrk nginx-light"
if [ "${1:-}" = "--bench" ]; then
    PKGS="$PKGS $BENCH_PKGS"
fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

echo "install-deps: installing:$missing"
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
