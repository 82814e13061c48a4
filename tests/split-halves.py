#!/usr/bin/python3
"""split-halves.py DURATIONS FILE... - the test files in two halves of
about equal time, for run-all.sh's two integration runs side by side.

DURATIONS holds "SECONDS NAME" lines (a run's build/it-durations.txt,
copied to tests/integration/durations.txt when the suites change much).
Longest first, each file goes to the half with less time so far; a file
not listed counts as the median. A new file therefore moves at most
itself, where alternating by name moved every file after it. Prints two
lines: the first half's files, then the second's.
"""

import os
import statistics
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    seconds = {}
    try:
        with open(sys.argv[1]) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    seconds[parts[1]] = float(parts[0])
    except (OSError, ValueError):
        pass  # no table: every file weighs the same
    files = sys.argv[2:]
    default = statistics.median(seconds.values()) if seconds else 1.0
    weight = {f: seconds.get(os.path.basename(f), default) for f in files}
    halves = ([], [])
    totals = [0.0, 0.0]
    for f in sorted(files, key=lambda f: (-weight[f], f)):
        i = 0 if totals[0] <= totals[1] else 1
        halves[i].append(f)
        totals[i] += weight[f]
    for h in halves:
        print(" ".join(sorted(h)))


if __name__ == "__main__":
    main()
