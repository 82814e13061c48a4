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
# Part 2 runs as two halves side by side when the machine has more than
# one core (COFFER_TEST_SERIAL=1: one pytest run): its suites mostly wait
# on servers, PostgreSQL and fsync (measured: two halves kept 2 cores
# about 36 % busy), so together they take little more than the longer
# half. Each half's output is printed whole when both ended.
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

# --- integration tests: two halves side by side, then ASan+UBSan --------
cores=$(nproc 2>/dev/null || echo 1)
if [ "${COFFER_TEST_SERIAL:-0}" = "1" ] || [ "$cores" -lt 2 ]; then
    run_pytest "$absbuild/coffer" "$tmpdir/it" "$here/integration"
else
    # shellcheck disable=SC2046
    run_pytest_halves "$absbuild/coffer" "$tmpdir/it" integration \
        $(ls "$here"/integration/test_*.py)
    # This run's seconds per file, to refresh durations.txt from.
    cp "$tmpdir/it.durations" "$absbuild/it-durations.txt" 2>/dev/null ||
        true
fi
int_pass=$counted_pass
int_fail=$counted_fail
echo "integration: $int_pass passed, $int_fail failed"
t2=$(date +%s)

asan_pass=0
asan_fail=0
asan=${ASAN_BUILD:-build-asan}
if [ -n "${ASAN_BUILD:-}" ] || [ -x "$asan/coffer" ]; then
    sh "$here/run-asan.sh" "$asan" | tee "$tmpdir/asan.out"
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
    "asan $((t3 - t2))s, fuzz corpora $((t4 - t3))s"
pass=$((unit_pass + int_pass + asan_pass + fuzz_pass))
fail=$((unit_fail + int_fail + asan_fail + fuzz_fail))
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] || status=1
exit $status
