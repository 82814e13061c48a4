#!/bin/sh
# run-all.sh BUILD - run every test against the binaries in BUILD.
#
#   1. the C unit tests (BUILD/tests/test_*), through tests/run-unit.sh;
#   2. the integration tests (tests/integration, pytest with Debian's python,
#      which has hvac) against BUILD/coffer.
#
# The last line is "N passed, N failed", unit and integration summed.
# Exits non-zero if anything failed, or if pytest collected no tests at all.
set -u

build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)
# Debian's interpreter on purpose: a pyenv python3 earlier on PATH lacks hvac.
python=${COFFER_PYTHON:-/usr/bin/python3}

case "$build" in
/*) absbuild=$build ;;
*) absbuild=$(pwd)/$build ;;
esac

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/coffer-tests.XXXXXX") || exit 2
trap 'rm -rf "$tmpdir"' EXIT INT TERM

unit_pass=0
unit_fail=0
status=0

# --- unit tests ----------------------------------------------------------
bins=$(ls "$absbuild"/tests/test_* 2>/dev/null | grep -v '\.d$' || true)
if [ -n "$bins" ]; then
    # shellcheck disable=SC2086
    sh "$here/run-unit.sh" $bins | tee "$tmpdir/unit.out"
    line=$(grep -E '^unit: [0-9]+ passed, [0-9]+ failed$' "$tmpdir/unit.out" | tail -n 1)
    if [ -n "$line" ]; then
        unit_pass=$(echo "$line" | sed -E 's/^unit: ([0-9]+) passed, ([0-9]+) failed$/\1/')
        unit_fail=$(echo "$line" | sed -E 's/^unit: ([0-9]+) passed, ([0-9]+) failed$/\2/')
    else
        unit_fail=1
    fi
else
    echo "run-all: no unit-test binaries in $absbuild/tests" >&2
    unit_fail=1
fi

# --- integration tests ---------------------------------------------------
int_pass=0
int_fail=0
if [ ! -x "$absbuild/coffer" ]; then
    echo "run-all: $absbuild/coffer not built" >&2
    int_fail=1
else
    counts="$tmpdir/pytest.counts"
    COFFER_BIN="$absbuild/coffer" COFFER_PYTEST_COUNTS="$counts" \
        "$python" -m pytest -q -p no:cacheprovider "$here/integration" \
        2>&1 | tee "$tmpdir/pytest.out"
    # tee hides pytest's status; conftest.py writes "passed failed rc".
    if [ -s "$counts" ]; then
        read -r int_pass int_fail prc <"$counts"
        if [ "$prc" = "5" ] || [ "$((int_pass + int_fail))" -eq 0 ]; then
            echo "run-all: pytest ran no tests" >&2
            int_fail=$((int_fail + 1))
        elif [ "$prc" != "0" ] && [ "$int_fail" -eq 0 ]; then
            echo "run-all: pytest exit status $prc" >&2
            int_fail=1
        fi
    else
        # No plugin output (pytest failed to start): fall back on its summary.
        sum=$(grep -E '^=*[ ]*[0-9]+ (passed|failed)' "$tmpdir/pytest.out" | tail -n 1)
        int_pass=$(echo "$sum" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || true)
        int_pass=${int_pass:-0}
        int_fail=0
        for n in $(echo "$sum" | grep -oE '[0-9]+ (failed|error|errors)' |
            grep -oE '[0-9]+'); do
            int_fail=$((int_fail + n))
        done
        if [ "$((int_pass + int_fail))" -eq 0 ]; then
            echo "run-all: pytest ran no tests" >&2
            int_fail=1
        fi
    fi
fi

echo "integration: $int_pass passed, $int_fail failed"
pass=$((unit_pass + int_pass))
fail=$((unit_fail + int_fail))
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] || status=1
exit $status
