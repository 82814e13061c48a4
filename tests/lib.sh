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
