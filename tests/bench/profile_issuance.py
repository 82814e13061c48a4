#!/usr/bin/python3
"""Where one credential's work goes, per credential, deterministically
(issue 14's closing attribution).

A real sqlite server (initialised, unsealed, barrier on) issues
credentials from a PostgreSQL at default settings (fsync on, SCRAM), as
bench_server.py sets them up, one request at a time:

  callgrind  the server runs under `valgrind --tool=callgrind`; after
             --warm issuances the counters are zeroed, --calls issuances
             are made and dumped; prints the instructions per credential
             of the whole server and of each part (inclusive, from
             callgrind_annotate), and keeps the dump (--out).
  strace     `strace -f -c` attached to the server for the --calls
             issuances after --warm: system calls per credential
             (fdatasync, writes, futex).
  cpu        natively: server CPU (utime + stime, and each apart) and the
             PostgreSQL processes' CPU per credential over --calls
             issuances, next to the PostgreSQL CPU of the same
             transaction sent directly (psycopg2, one connection),
             --calls times.
  perf       natively: `perf record` (cycles, kernel included) on the
             server over the --calls issuances; the samples by shared
             object (the kernel, libsqlite3, libmicrohttpd, liblua,
             libcrypto, libpq, libc, coffer itself) and, for the
             kernel's, by the system call they came from. Per credential
             in µs of CPU, from the server's utime + stime over the run.

Usage: tests/bench/profile_issuance.py [--mode callgrind|strace|cpu|perf]
           [--warm 30] [--calls 100] [--out DIR]
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)

from realserver import RealServer  # noqa: E402
from bench_server import DefaultPg, setup_server  # noqa: E402
from benchlib import CLK_TCK, cpu_split, cpu_ticks, must  # noqa: E402

# Inclusive cost of these functions, per credential (callgrind mode).
PARTS = [
    ("whole server (all threads)", None),
    ("libmicrohttpd connection thread", "MHD_"),
    ("core_handle (request, token, policy, engine)", "core_handle"),
    ("Lua engine call (luavm_handle)", "luavm_handle"),
    ("lua_pcallk", "lua_pcallk"),
    ("libpq: PQexec / PQgetResult", "PQ"),
    ("sqlite3_step", "sqlite3_step"),
    ("barrier encrypt/decrypt", "barrier_"),
    ("lease", "lease_"),
    ("cJSON_", "cJSON_"),
    ("json_", "json_"),
    ("malloc+free", None),
]


def wrapper(out_dir, real_bin):
    """A COFFER_BIN that runs the real binary under callgrind."""
    path = os.path.join(out_dir, "coffer-under-callgrind")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=callgrind --quiet "
                "--callgrind-out-file=%s/callgrind.out.%%p --dump-instr=no "
                "--separate-threads=no %s \"$@\"\n" % (out_dir, real_bin))
    os.chmod(path, 0o755)
    return path


def issue(srv, n):
    for _ in range(n):
        must(srv.req("GET", "database/creds/bench"))


def start(pg, work, tool, real_bin):
    if tool:
        os.environ["COFFER_BIN"] = wrapper(work, real_bin)
    srv = RealServer(tempfile.mkdtemp(prefix="srv-", dir=work),
                     storage="sqlite", extra_config='log_level = "warn"\n')
    srv.start()
    keys, _ = srv.init(shares=1, threshold=1)
    srv.unseal(keys)
    os.environ["COFFER_BIN"] = real_bin
    setup_server(srv, pg)
    return srv


def server_pid(srv):
    """The coffer process (the wrapper execs, so it is the child pid)."""
    return srv.proc.pid


def pg_cpu(pg):
    """utime + stime (ticks) of every live process of the cluster."""
    out = subprocess.run(["pgrep", "-f", pg.data], text=True,
                         stdout=subprocess.PIPE).stdout.split()
    pids = set(int(p) for p in out)
    for p in list(pids):
        kids = subprocess.run(["pgrep", "-P", str(p)], text=True,
                              stdout=subprocess.PIPE).stdout.split()
        pids.update(int(k) for k in kids)
    total = 0
    for p in pids:
        try:
            total += cpu_ticks(p)
        except OSError:
            pass
    return total


def mode_callgrind(srv, args):
    pid = server_pid(srv)
    issue(srv, args.warm)
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True,
                   stdout=subprocess.DEVNULL)
    issue(srv, args.calls)
    subprocess.run(["callgrind_control", "-d", "measured", str(pid)],
                   check=True, stdout=subprocess.DEVNULL)
    time.sleep(1)
    dumps = sorted(f for f in os.listdir(args.out)
                   if f.startswith("callgrind.out.%d." % pid))
    dump = os.path.join(args.out, dumps[-1])
    ann = subprocess.run(["callgrind_annotate", "--inclusive=yes",
                          "--threshold=100", dump], text=True,
                         stdout=subprocess.PIPE).stdout
    total = re.search(r"^([0-9,]+) \(100.0%\)\s+PROGRAM TOTALS", ann, re.M)
    per = int(total.group(1).replace(",", "")) / args.calls
    print("dump: %s" % dump)
    print("instructions per credential, whole server: %.0f" % per)
    print("inclusive per credential, top functions:")
    n = 0
    for line in ann.splitlines():
        m = re.match(r"^\s*([0-9,]+) \(\s*[0-9.]+%\)\s+(\S.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            cost = int(m.group(1).replace(",", "")) / args.calls
            if cost < per * 0.005:
                continue
            print("  %10.0f  %s" % (cost, m.group(2)[:110]))
            n += 1
            if n >= args.top:
                break


def mode_strace(srv, args):
    """strace attached to the running server for the measured calls only."""
    issue(srv, args.warm)
    out = os.path.join(args.out, "strace.out")
    st = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p",
                           str(server_pid(srv))], stderr=subprocess.DEVNULL)
    time.sleep(2)  # attached to every thread
    issue(srv, args.calls)
    st.send_signal(signal.SIGINT)
    st.wait(timeout=30)
    print("system calls over %d issuances (per credential = calls / %d):"
          % (args.calls, args.calls))
    print(open(out).read())


def mode_cpu(srv, pg, args):
    pid = server_pid(srv)
    issue(srv, args.warm)
    (u0, k0), p0, t0 = cpu_split(pid), pg_cpu(pg), time.monotonic()
    issue(srv, args.calls)
    (u1, k1), p1, t1 = cpu_split(pid), pg_cpu(pg), time.monotonic()
    s0, s1 = u0 + k0, u1 + k1
    conn = psycopg2.connect(pg.url(dbname="bench"))
    conn.autocommit = False
    cur = conn.cursor()
    q0, d0 = pg_cpu(pg), time.monotonic()
    for i in range(args.calls):
        name = "direct-%d-%d" % (os.getpid(), i)
        cur.execute('CREATE ROLE "%s" WITH LOGIN PASSWORD \'p%d\' VALID '
                    'UNTIL \'infinity\'; GRANT app_readonly TO "%s"'
                    % (name, i, name))
        conn.commit()
    q1, d1 = pg_cpu(pg), time.monotonic()
    conn.close()
    ms = 1000.0 / CLK_TCK / args.calls
    print("per credential: wall %.2f ms, coffer CPU %.2f ms, PostgreSQL "
          "CPU %.2f ms" % ((t1 - t0) * 1000 / args.calls, (s1 - s0) * ms,
                           (p1 - p0) * ms))
    print("  coffer CPU in user space %.2f ms, in the kernel %.2f ms" %
          ((u1 - u0) * ms, (k1 - k0) * ms))
    print("direct transaction: wall %.2f ms, PostgreSQL CPU %.2f ms" %
          ((d1 - d0) * 1000 / args.calls, (q1 - q0) * ms))


def perf_table(data, sort, extra=()):
    """(share %, key) rows of `perf report --sort <sort>` on data."""
    out = subprocess.run(["perf", "report", "-i", data, "--stdio",
                          "--sort", sort, "--percent-limit", "0.5"] +
                         list(extra), text=True, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).stdout
    rows = []
    for line in out.splitlines():
        # --children prints the inclusive share first, then the self one
        m = re.match(r"^\s+([0-9.]+)%\s+(?:[0-9.]+%\s+)?(\S.*)$", line)
        if m:
            rows.append((float(m.group(1)), m.group(2).strip()))
    return rows


def mode_perf(srv, args):
    pid = server_pid(srv)
    issue(srv, args.warm)
    data = os.path.join(args.out, "perf.data")
    rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F",
                            "4999", "-g", "-p", str(pid), "-o", data],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    time.sleep(1)
    c0 = cpu_ticks(pid)
    issue(srv, args.calls)
    c1 = cpu_ticks(pid)
    rec.send_signal(signal.SIGINT)
    rec.wait(timeout=60)
    us = (c1 - c0) * 1e6 / CLK_TCK / args.calls
    print("server CPU per credential: %.0f µs (utime + stime over %d "
          "issuances); perf data: %s" % (us, args.calls, data))
    print("by shared object (share of samples, µs per credential):")
    for share, dso in perf_table(data, "dso", ["--no-children"]):
        print("  %5.1f%%  %6.0f µs  %s" % (share, share * us / 100, dso))
    print("kernel time by system call (inclusive share of all samples):")
    calls = [(share, sym[4:]) for share, sym in
             perf_table(data, "sym", ["--children"])
             if sym.startswith("[k] __x64_sys_") or sym == "[k] schedule"]
    for share, sym in calls[:20]:
        print("  %5.1f%%  %6.0f µs  %s" % (share, share * us / 100, sym))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="callgrind",
                    choices=("callgrind", "strace", "cpu", "perf"))
    ap.add_argument("--warm", type=int, default=30)
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--top", type=int, default=80)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    real_bin = os.path.abspath(os.environ.get("COFFER_BIN") or
                               os.path.join(ROOT, "build", "coffer"))
    work = tempfile.mkdtemp(prefix="coffer-prof-", dir="/tmp")
    args.out = args.out or work
    os.makedirs(args.out, exist_ok=True)
    pg = DefaultPg(dbname="bench")
    srv = None
    try:
        pg.query("CREATE ROLE app_readonly NOLOGIN")
        tool = "callgrind" if args.mode == "callgrind" else None
        if tool:
            # the wrapper writes its output into args.out
            srv = start(pg, args.out, tool, real_bin)
        else:
            srv = start(pg, work, None, real_bin)
        if args.mode == "callgrind":
            mode_callgrind(srv, args)
        elif args.mode == "strace":
            mode_strace(srv, args)
        elif args.mode == "perf":
            mode_perf(srv, args)
        else:
            mode_cpu(srv, pg, args)
    finally:
        if srv is not None:
            srv.stop()
        pg.stop()
        if args.out != work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
