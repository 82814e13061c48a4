#!/bin/sh
# run-unit.sh BIN... - run C unit-test binaries and sum their results.
#
# Each binary ends its output with "N passed, N failed" (tests/unit/harness.h).
# A binary that dies before printing that line (crash, abort, valgrind error)
# counts as one more failure. With VALGRIND=1 every binary runs under
# valgrind with leak checking; a valgrind error (exit 99) is a failure.
#
# Each binary gets UNIT_TIMEOUT seconds (default 300; 0 = no limit), so one
# hung test cannot hang "make test"; a timeout counts as a failure.
#
# Prints "unit: N passed, N failed" last; exits non-zero on any failure.
set -u

limit=${UNIT_TIMEOUT:-300}
run_limited() {
    if [ "$limit" != "0" ] && command -v timeout >/dev/null 2>&1; then
        timeout "$limit" "$@"
    else
        "$@"
    fi
}

total_pass=0
total_fail=0
tmp=$(mktemp "${TMPDIR:-/tmp}/coffer-unit.XXXXXX") || exit 2
trap 'rm -f "$tmp" "$tmp.a" "$tmp.b"' EXIT INT TERM

# With more than one core (UNIT_JOBS, default the core count; not under
# valgrind), the binaries run as two lists side by side, alternating by
# name: most are CPU-bound and single-threaded. Each list's output is
# printed whole, in order, once both ended.
jobs=${UNIT_JOBS:-$(nproc 2>/dev/null || echo 1)}
if [ "$jobs" -ge 2 ] && [ "$#" -ge 2 ] && [ "${VALGRIND:-0}" != "1" ]; then
    first=""
    second=""
    n=0
    for bin in "$@"; do
        n=$((n + 1))
        if [ $((n % 2)) -eq 1 ]; then first="$first $bin"
        else second="$second $bin"; fi
    done
    # shellcheck disable=SC2086
    UNIT_JOBS=1 sh "$0" $first >"$tmp.a" 2>&1 &
    pid=$!
    # shellcheck disable=SC2086
    UNIT_JOBS=1 sh "$0" $second >"$tmp.b" 2>&1
    wait "$pid"
    . "$(dirname "$0")/lib.sh"
    for part in "$tmp.a" "$tmp.b"; do
        grep -v '^unit: ' "$part"
        last_counts unit "$part"  # no summary counts as one failure
        total_pass=$((total_pass + counted_pass))
        total_fail=$((total_fail + counted_fail))
    done
    echo "unit: $total_pass passed, $total_fail failed"
    [ "$total_fail" -eq 0 ]
    exit
fi

for bin in "$@"; do
    if [ ! -x "$bin" ]; then
        echo "run-unit: $bin: not an executable" >&2
        total_fail=$((total_fail + 1))
        continue
    fi
    echo "== $bin"
    if [ "${VALGRIND:-0}" = "1" ]; then
        run_limited valgrind --leak-check=full --error-exitcode=99 -q "$bin" >"$tmp" 2>&1
    else
        run_limited "$bin" >"$tmp" 2>&1
    fi
    rc=$?
    if [ "$rc" -eq 124 ]; then
        echo "run-unit: $bin: timed out after ${limit}s" >&2
    fi
    cat "$tmp"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$tmp" | tail -n 1)
    if [ -z "$line" ]; then
        echo "run-unit: $bin: no summary line (exit status $rc)" >&2
        total_fail=$((total_fail + 1))
        continue
    fi
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed$/\1/')
    f=$(echo "$line" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed$/\2/')
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        # The tests passed but the binary did not: valgrind found errors or
        # leaks (99), or something went wrong after the summary.
        echo "run-unit: $bin: exit status $rc after all tests passed" >&2
        total_fail=$((total_fail + 1))
    fi
done

echo "unit: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
