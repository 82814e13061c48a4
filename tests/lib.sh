# lib.sh - shell helpers shared by run-all.sh and run-asan.sh (sourced).
#
# Both set counted_pass and counted_fail; a run that reports nothing counts
# as one failure, so a broken runner can never look like a green one.

# last_counts PREFIX FILE: reads the last "PREFIX: N passed, N failed" line.
last_counts() {
    line=$(grep -E "^$1: [0-9]+ passed, [0-9]+ failed\$" "$2" | tail -n 1)
    if [ -n "$line" ]; then
        counted_pass=$(echo "$line" | sed -E 's/^[a-z-]+: ([0-9]+) passed.*/\1/')
        counted_fail=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
    else
        echo "run-all: no \"$1:\" summary line" >&2
        counted_pass=0
        counted_fail=1
    fi
}

# run_pytest COFFER_BIN TMPPREFIX PYTEST-ARGS...: pytest with Debian's
# python against COFFER_BIN; extra environment comes from the caller.
run_pytest() {
    bin=$1
    out=$2
    shift 2
    counted_pass=0
    counted_fail=0
    if [ ! -x "$bin" ]; then
        echo "run-all: $bin not built" >&2
        counted_fail=1
        return
    fi
    counts="$out.counts"
    rm -f "$counts"
    COFFER_BIN="$bin" COFFER_PYTEST_COUNTS="$counts" \
        "${COFFER_PYTHON:-/usr/bin/python3}" -m pytest -q -p no:cacheprovider \
        "$@" 2>&1 | tee "$out.out"
    # tee hides pytest's status; conftest.py writes "passed failed rc".
    if [ -s "$counts" ]; then
        read -r counted_pass counted_fail prc <"$counts"
        if [ "$prc" = "5" ] || [ "$((counted_pass + counted_fail))" -eq 0 ]; then
            echo "run-all: pytest ran no tests" >&2
            counted_fail=$((counted_fail + 1))
        elif [ "$prc" != "0" ] && [ "$counted_fail" -eq 0 ]; then
            echo "run-all: pytest exit status $prc" >&2
            counted_fail=1
        fi
    else
        # No plugin output (pytest failed to start): fall back on its summary.
        sum=$(grep -E '^=*[ ]*[0-9]+ (passed|failed)' "$out.out" | tail -n 1)
        counted_pass=$(echo "$sum" | grep -oE '[0-9]+ passed' |
            grep -oE '[0-9]+' || true)
        counted_pass=${counted_pass:-0}
        counted_fail=0
        for n in $(echo "$sum" | grep -oE '[0-9]+ (failed|error|errors)' |
            grep -oE '[0-9]+'); do
            counted_fail=$((counted_fail + n))
        done
        if [ "$((counted_pass + counted_fail))" -eq 0 ]; then
            echo "run-all: pytest ran no tests" >&2
            counted_fail=1
        fi
    fi
}

# run_pytest_halves COFFER_BIN TMPPREFIX NAME FILE...: the files as two
# pytest runs side by side, of about equal time (tests/split-halves.py
# with the seconds each file took in a recorded run,
# tests/integration/durations.txt): the suites mostly wait on servers,
# PostgreSQL and fsync, so two at once take little more than the longer
# half. Each half's output is printed whole when both ended, with a
# "NAME-a:" / "NAME-b:" count line; counted_pass and counted_fail are
# their sums. This run's seconds per file go to TMPPREFIX.durations.
run_pytest_halves() {
    h_bin=$1
    h_out=$2
    h_name=$3
    shift 3
    h_split=$("${COFFER_PYTHON:-/usr/bin/python3}" "$here/split-halves.py" \
        "$here/integration/durations.txt" "$@")
    # shellcheck disable=SC2046
    run_pytest_half "$h_bin" "$h_out" "$h_name" a \
        $(echo "$h_split" | sed -n 1p) &
    h_pid=$!
    # shellcheck disable=SC2046
    run_pytest_half "$h_bin" "$h_out" "$h_name" b \
        $(echo "$h_split" | sed -n 2p)
    wait "$h_pid"
    cat "$h_out-a.durations" "$h_out-b.durations" >"$h_out.durations" \
        2>/dev/null || true
    h_pass=0
    h_fail=0
    for h in a b; do
        cat "$h_out-$h.log"
        last_counts "$h_name-$h" "$h_out-$h.log"
        h_pass=$((h_pass + counted_pass))
        h_fail=$((h_fail + counted_fail))
    done
    counted_pass=$h_pass
    counted_fail=$h_fail
}

# run_pytest_half COFFER_BIN TMPPREFIX NAME HALF FILE...: one half of
# run_pytest_halves, its output in TMPPREFIX-HALF.log.
run_pytest_half() {
    hh_bin=$1
    hh_out=$2-$4
    hh_label=$3-$4
    shift 4
    COFFER_PYTEST_DURATIONS="$hh_out.durations"
    export COFFER_PYTEST_DURATIONS
    run_pytest "$hh_bin" "$hh_out" "$@" >"$hh_out.log" 2>&1
    unset COFFER_PYTEST_DURATIONS
    echo "$hh_label: $counted_pass passed, $counted_fail failed" \
        >>"$hh_out.log"
}
