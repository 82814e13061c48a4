"""The revocation workers' priority (lease_revocation_nice): when the
server unseals they start that many nice steps below the process's own
value (10 by default, 19 at most), so they stay below the request threads
under `nice` too; 0 leaves them on a par; out-of-range values are refused
at start-up."""

import os
import subprocess
import tempfile
import time

import pytest

import realserver
from conftest import coffer_bin
from realserver import RealServer


def thread_nices(pid):
    """{tid: nice} of pid's threads (field 19 of proc(5)'s stat)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = int(fields[16])
    return out


def nices_after_unseal(extra, process_nice=0, monkeypatch=None,
                       ready=lambda before, after: True):
    """(pid, {tid: nice} before init, the same after unseal once ready()
    says so or 5 s passed: the workers start in their own time)."""
    with tempfile.TemporaryDirectory(prefix="coffer-nice-") as d:
        if process_nice:
            wrapper = os.path.join(d, "coffer-niced")
            with open(wrapper, "w") as f:
                f.write('#!/bin/sh\nexec nice -n %d "%s" "$@"\n'
                        % (process_nice, coffer_bin()))
            os.chmod(wrapper, 0o755)
            monkeypatch.setattr(realserver, "coffer_bin", lambda: wrapper)
        srv = RealServer(d, extra_config=extra)
        srv.start()
        try:
            before = thread_nices(srv.proc.pid)
            keys, _ = srv.init(shares=1, threshold=1)
            srv.unseal(keys)
            deadline = time.monotonic() + 5
            while True:
                after = thread_nices(srv.proc.pid)
                if ready(before, after) or time.monotonic() > deadline:
                    return srv.proc.pid, before, after
                time.sleep(0.05)
        finally:
            srv.stop()


@pytest.mark.parametrize("process_nice", [0, 5])
@pytest.mark.parametrize("extra,steps", [("", 10),
                                         ("lease_revocation_nice = 3\n", 3),
                                         ("lease_revocation_nice = 19\n",
                                          19)])
def test_workers_start_below_the_request_threads(extra, steps, process_nice,
                                                 monkeypatch):
    def ready(before, after):
        return sum(1 for t, n in after.items()
                   if t not in before and n != process_nice) >= 16
    pid, before, after = nices_after_unseal(extra, process_nice, monkeypatch,
                                            ready)
    base = after[pid]
    assert base == process_nice
    want = min(base + steps, 19)
    assert all(n == base for n in before.values()), before
    workers = [t for t, n in after.items() if t not in before and n == want]
    # 16 revocation workers by default (lease.h); request threads keep
    # the process's priority.
    assert len(workers) == 16, after
    assert all(n in (base, want) for n in after.values()), after


def test_nice_zero_leaves_the_workers_at_the_process_priority():
    pid, _, after = nices_after_unseal("lease_revocation_nice = 0\n")
    assert set(after.values()) == {after[pid]}, after


@pytest.mark.parametrize("value", ["20", "-1", "\"low\""])
def test_out_of_range_is_refused_at_start(value):
    with tempfile.TemporaryDirectory(prefix="coffer-nice-") as d:
        srv = RealServer(d, extra_config="lease_revocation_nice = %s\n"
                         % value)
        p = subprocess.run([coffer_bin(), "server", "-config=" + srv.config],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode != 0
        assert "lease_revocation_nice" in p.stderr, p.stderr
