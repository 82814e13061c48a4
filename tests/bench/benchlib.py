"""Helpers the Python benchmarks share: the server's CPU time and a
status check that stops a run on the first failed request."""

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def must(r, *ok):
    """r, if its status is one of ok (default 200 or 204); else raise."""
    if r.status_code not in (ok or (200, 204)):
        raise RuntimeError("%s %s: %d %s" % (r.request.method, r.url,
                                             r.status_code, r.text[:500]))
    return r


def cpu_split(pid):
    """(utime, stime) of pid, all threads, in clock ticks (CLK_TCK per
    second): fields 14 and 15 of proc(5)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def cpu_ticks(pid):
    """utime + stime of pid, in clock ticks."""
    return sum(cpu_split(pid))
