#!/bin/sh
# run-regress.sh FUZZ_BUILD - runs every libFuzzer harness over its corpus.
#
# For each FUZZ_BUILD/fuzz/fuzz_<name>: every input of tests/fuzz/corpus/<name>/
# and tests/fuzz/regressions/<name>/ runs once (-runs=0: load, execute,
# stop), with leak detection. A crash, a sanitizer report, a leak, a
# timeout or a harness invariant failure fails that harness.
#
# Prints "fuzz: N passed, N failed" last (one per harness); exits non-zero
# on any failure or when no harness was built.
set -u

build=${1:-build-fuzz}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
limit=${FUZZ_REGRESS_TIMEOUT:-120}
pass=0
fail=0
tmpd=$(mktemp -d "${TMPDIR:-/tmp}/coffer-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$tmpd"' EXIT INT TERM
tmp="$tmpd/out"

export COFFER_LUA_DIR="$root/lua"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

found=0
for bin in "$build"/fuzz/fuzz_*; do
    case "$bin" in *.d) continue ;; esac
    [ -x "$bin" ] || continue
    found=1
    name=${bin##*/fuzz_}
    dirs=""
    for d in "$here/corpus/$name" "$here/regressions/$name"; do
        [ -d "$d" ] && dirs="$dirs $d"
    done
    if [ -z "$dirs" ]; then
        echo "fuzz-regress: $name: no corpus in tests/fuzz/corpus/$name" >&2
        fail=$((fail + 1))
        continue
    fi
    n=$(find $dirs -type f | wc -l)
    start=$(date +%s)
    # shellcheck disable=SC2086
    timeout "$limit" "$bin" -runs=0 -timeout=25 -rss_limit_mb=2048 \
        -artifact_prefix="$tmpd/" \
        -close_fd_mask=2 $dirs >"$tmp" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    if [ "$rc" -eq 0 ]; then
        echo "fuzz-regress: $name: $n inputs ok (${secs}s)"
        pass=$((pass + 1))
    else
        tail -n 60 "$tmp"
        echo "fuzz-regress: $name: FAILED (exit status $rc, $n inputs)" >&2
        fail=$((fail + 1))
    fi
done
if [ "$found" -eq 0 ]; then
    echo "fuzz-regress: no harness built in $build/fuzz" >&2
    fail=$((fail + 1))
fi
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
