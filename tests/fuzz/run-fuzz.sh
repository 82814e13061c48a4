#!/bin/sh
# run-fuzz.sh FUZZ_BUILD NAME [SECONDS] [RUNS] - fuzzes one harness.
#
# The working corpus is FUZZ_BUILD/corpus/NAME, seeded from the kept corpus
# tests/fuzz/corpus/NAME; crashes land in FUZZ_BUILD/crashes/NAME/. Runs
# niced, one process (the machine is shared), until SECONDS (default 60)
# or RUNS executions, whichever comes first. The target's own stderr is
# discarded (-close_fd_mask=2); libFuzzer and sanitizer reports are kept.
# Afterwards, tests/fuzz/minimize.sh folds new coverage into the kept
# corpus. Extra libFuzzer flags: FUZZ_FLAGS.
set -u

build=${1:?usage: run-fuzz.sh FUZZ_BUILD NAME [SECONDS] [RUNS]}
name=${2:?usage: run-fuzz.sh FUZZ_BUILD NAME [SECONDS] [RUNS]}
secs=${3:-60}
runs=${4:--1}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$build/fuzz/fuzz_$name"

if [ ! -x "$bin" ]; then
    echo "run-fuzz: no harness $bin; the harnesses are:" >&2
    ls "$build/fuzz" 2>/dev/null | grep -v '\.d$' | sed 's/^fuzz_/  /' >&2
    exit 2
fi
work="$build/corpus/$name"
crashes="$build/crashes/$name"
mkdir -p "$work" "$crashes"
if [ -d "$here/corpus/$name" ]; then
    cp -n "$here/corpus/$name"/* "$work"/ 2>/dev/null || true
fi
dict=""
[ -f "$here/dict/$name.dict" ] && dict="-dict=$here/dict/$name.dict"

export COFFER_LUA_DIR="$root/lua"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# shellcheck disable=SC2086
exec nice -n 19 "$bin" -max_total_time="$secs" -runs="$runs" \
    -timeout=25 -rss_limit_mb=2048 -close_fd_mask=2 -print_final_stats=1 \
    -artifact_prefix="$crashes/" $dict ${FUZZ_FLAGS:-} "$work"
