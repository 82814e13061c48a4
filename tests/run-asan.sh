#!/bin/sh
# run-asan.sh ASAN_BUILD - the tests again, against an ASan+UBSan build
# (make asan-build: -fsanitize=address,undefined -fno-sanitize-recover).
#
#   1. every unit-test binary in ASAN_BUILD/tests, through run-unit.sh;
#   2. the integration suites below against ASAN_BUILD/coffer, each case
#      once (COFFER_IT_REPEAT=1: the plain run already repeats them), as
#      two halves side by side on a machine with more than one core
#      (COFFER_TEST_SERIAL=1: one pytest run).
#
# LeakSanitizer is on: a leak fails a unit binary (non-zero exit after its
# summary) and fails the server's session (conftest.py matches sanitizer
# reports in its stderr, and the exit status must be 0). Any UBSan report
# aborts. Prints "asan: N passed, N failed" last.
set -u

build=${1:-build-asan}
here=$(cd "$(dirname "$0")" && pwd)

case "$build" in
/*) absbuild=$build ;;
*) absbuild=$(pwd)/$build ;;
esac

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/coffer-asan.XXXXXX") || exit 2
trap 'rm -rf "$tmpdir"' EXIT INT TERM
. "$here/lib.sh"

# Suites whose code handles tokens, policies, logins and database users,
# or parses what a remote party sends (JWTs, JWKS, certificates, HTTP
# responses, MySQL packets, password policies), or answers reads without
# the engine (native kv reads), or swaps code under running threads
# (reload): where a memory error would be a security hole. New security suites
# (test_security_*.py) join automatically.
SUITES="test_token_store.py test_tokens.py test_policy.py test_auth.py
test_database.py test_auth_jwt.py test_auth_kubernetes.py
test_plugin_jose.py test_plugin_http.py test_plugin_reload.py
test_audit.py test_wrapping.py test_password_policy.py test_kv_native.py
test_database_mysql.py test_policy_explain.py test_database_mysql_tls.py
test_ui_mounts.py test_ha_lease_index.py test_lease_state.py
test_database_scram.py"
for f in "$here"/integration/test_security_*.py; do
    [ -f "$f" ] && SUITES="$SUITES ${f##*/}"
done

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1:detect_stack_use_after_return=0:strict_string_checks=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-}"

pass=0
fail=0

bins=$(ls "$absbuild"/tests/test_* 2>/dev/null | grep -v '\.d$' || true)
if [ -n "$bins" ]; then
    # shellcheck disable=SC2086
    sh "$here/run-unit.sh" $bins | sed 's/^unit: /asan-unit: /' |
        tee "$tmpdir/unit.out"
    last_counts asan-unit "$tmpdir/unit.out"
    pass=$((pass + counted_pass))
    fail=$((fail + counted_fail))
else
    echo "run-asan: no unit-test binaries in $absbuild/tests" >&2
    fail=$((fail + 1))
fi

args=""
for s in $SUITES; do
    args="$args $here/integration/$s"
done
export COFFER_IT_REPEAT=1
cores=$(nproc 2>/dev/null || echo 1)
if [ "${COFFER_TEST_SERIAL:-0}" = "1" ] || [ "$cores" -lt 2 ]; then
    # shellcheck disable=SC2086
    run_pytest "$absbuild/coffer" "$tmpdir/it" $args
else
    # shellcheck disable=SC2086
    run_pytest_halves "$absbuild/coffer" "$tmpdir/it" asan-integration $args
fi
echo "asan-integration: $counted_pass passed, $counted_fail failed"
pass=$((pass + counted_pass))
fail=$((fail + counted_fail))

echo "asan: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
