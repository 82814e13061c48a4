#!/bin/sh
# minimize.sh FUZZ_BUILD NAME - folds the working corpus of a fuzzing run
# (FUZZ_BUILD/corpus/NAME) into the kept one (tests/fuzz/corpus/NAME),
# keeping only inputs that add coverage (libFuzzer -merge=1), and files
# named by content hash. Keep the result small: a few hundred files; the
# default FUZZ_MERGE_FLAGS=-use_counters=0 keeps one input per new edge
# rather than per new hit count, which keeps it so.
set -eu

build=${1:?usage: minimize.sh FUZZ_BUILD NAME}
name=${2:?usage: minimize.sh FUZZ_BUILD NAME}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$build/fuzz/fuzz_$name"
kept="$here/corpus/$name"
new="$build/corpus-min/$name"

rm -rf "$new"
mkdir -p "$new" "$kept"
export COFFER_LUA_DIR="$root/lua"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}"
nice -n 19 "$bin" -merge=1 ${FUZZ_MERGE_FLAGS--use_counters=0} -timeout=25 -rss_limit_mb=2048 -close_fd_mask=2 \
    -max_len="${FUZZ_MAX_LEN:-4096}" "$new" "$kept" "$build/corpus/$name"
rm -rf "$kept"
mv "$new" "$kept"
echo "minimize: $name: $(ls "$kept" | wc -l) files, $(du -sk "$kept" | cut -f1) KiB"
