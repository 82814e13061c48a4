"""Helpers the Python benchmarks share: the server's CPU time, a status
check that stops a run on the first failed request, and the issuance
floor (bare_issuer.c) as a process."""

import os
import signal
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from realserver import free_port  # noqa: E402

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


def bare_issuer_bin():
    """tests/bench/bare_issuer.c built (make), or None with the reason
    printed."""
    path = os.environ.get("BARE_ISSUER") or os.path.join(
        ROOT, "build", "bench", "bare_issuer")
    if not os.environ.get("BARE_ISSUER"):
        p = subprocess.run(["make", "--no-print-directory", "-C", ROOT,
                            "build/bench/bare_issuer"], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            print("SKIPPED the bare issuer: make failed:\n" +
                  p.stdout[-1000:], flush=True)
            return None
    return path


class BareIssuer:
    """bare_issuer serving on a free port; with sqlite_dir, its two durable
    commits per credential go to a file there (the sqlite server's disk)."""

    def __init__(self, binary, pg, token, sqlite_dir=None, pool=32):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d/v1/database/creds/bench" % self.port
        cmd = [binary, "--port", str(self.port), "--token", token,
               "--pg", pg.url(dbname="bench"), "--pool", str(pool)]
        if sqlite_dir:
            cmd += ["--sqlite", os.path.join(sqlite_dir, "bare.db")]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise RuntimeError("bare_issuer did not start: %s" %
                               self.proc.stderr.read()[-1000:])

    def stop(self):
        """Its exit status (killed after 20 s without one)."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
