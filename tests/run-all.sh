#!/bin/sh
# run-all.sh BUILD - run every test against the binaries in BUILD.
#
#   1. the C unit tests (BUILD/tests/test_*), through tests/run-unit.sh;
#   2. the integration tests (tests/integration, pytest with Debian's python,
#      which has hvac) against BUILD/coffer;
#   3. the same unit tests and the security-relevant integration suites
#      against an ASan+UBSan build ($ASAN_BUILD, default build-asan),
#      through tests/run-asan.sh; skipped if that build is absent and
#      ASAN_BUILD is unset;
#   4. every libFuzzer harness over its corpus ($FUZZ_BUILD, default
#      build-fuzz), through tests/fuzz/run-regress.sh; skipped likewise.
#
# Parts 2 and 3 run side by side when the machine has more than one core
# (COFFER_TEST_SERIAL=1 runs them one after the other): both mostly wait
# on servers, PostgreSQL and fsync, so together they take little more
# than the longer one. The ASan part's output is kept in a file and
# printed whole when it ends, so the two never interleave.
#
# `make test` builds all three build dirs first. The last line is
# "N passed, N failed", every part summed. Exits non-zero if anything
# failed, or if pytest collected no tests at all.
set -u

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
# Debian's interpreter on purpose: a pyenv python3 earlier on PATH lacks hvac.
python=${COFFER_PYTHON:-/usr/bin/python3}
export COFFER_PYTHON="$python"

case "$build" in
/*) absbuild=$build ;;
*) absbuild=$(pwd)/$build ;;
esac

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/coffer-tests.XXXXXX") || exit 2
trap 'rm -rf "$tmpdir"' EXIT INT TERM

# . lib: run_pytest, last_counts
. "$here/lib.sh"

unit_pass=0
unit_fail=0
status=0
t0=$(date +%s)

# --- unit tests ----------------------------------------------------------
bins=$(ls "$absbuild"/tests/test_* 2>/dev/null | grep -v '\.d$' || true)
if [ -n "$bins" ]; then
    # shellcheck disable=SC2086
    sh "$here/run-unit.sh" $bins | tee "$tmpdir/unit.out"
    last_counts unit "$tmpdir/unit.out"
    unit_pass=$counted_pass
    unit_fail=$counted_fail
else
    echo "run-all: no unit-test binaries in $absbuild/tests" >&2
    unit_fail=1
fi

t1=$(date +%s)

# --- integration tests, and the ASan+UBSan part beside them -------------
run_integration() {
    run_pytest "$absbuild/coffer" "$tmpdir/it" "$here/integration"
    int_pass=$counted_pass
    int_fail=$counted_fail
    echo "integration: $int_pass passed, $int_fail failed"
}

asan=${ASAN_BUILD:-build-asan}
run_asan() {
    if [ -n "${ASAN_BUILD:-}" ] || [ -x "$asan/coffer" ]; then
        sh "$here/run-asan.sh" "$asan" >"$tmpdir/asan.out" 2>&1
    else
        : >"$tmpdir/asan.out"
    fi
}

cores=$(nproc 2>/dev/null || echo 1)
if [ "${COFFER_TEST_SERIAL:-0}" = "1" ] || [ "$cores" -lt 2 ]; then
    run_integration
    t2=$(date +%s)
    run_asan
else
    run_asan &
    asan_pid=$!
    run_integration
    t2=$(date +%s)
    wait "$asan_pid"
fi
asan_pass=0
asan_fail=0
if [ -s "$tmpdir/asan.out" ]; then
    cat "$tmpdir/asan.out"
    last_counts asan "$tmpdir/asan.out"
    asan_pass=$counted_pass
    asan_fail=$counted_fail
fi

t3=$(date +%s)

# --- fuzz harnesses over their corpora -----------------------------------
fuzz_pass=0
fuzz_fail=0
fuzz=${FUZZ_BUILD:-build-fuzz}
if [ -n "${FUZZ_BUILD:-}" ] || [ -d "$fuzz/fuzz" ]; then
    sh "$here/fuzz/run-regress.sh" "$fuzz" | tee "$tmpdir/fuzz.out"
    last_counts fuzz "$tmpdir/fuzz.out"
    fuzz_pass=$counted_pass
    fuzz_fail=$counted_fail
fi

t4=$(date +%s)

echo "run-all: took unit $((t1 - t0))s, integration $((t2 - t1))s," \
    "integration and asan $((t3 - t1))s, fuzz corpora $((t4 - t3))s"
pass=$((unit_pass + int_pass + asan_pass + fuzz_pass))
fail=$((unit_fail + int_fail + asan_fail + fuzz_fail))
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] || status=1
exit $status
