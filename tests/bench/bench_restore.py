#!/usr/bin/python3
"""Benchmark: restoring leases after a restart (issue 4).

Creates LEASES leases through a benchmark-only engine (tests/bench/plugins/
leasegen.lua, loaded via plugin_directory, no database needed), restarts
the server, and measures:
  - time from the last unseal share to an active server (the lease index
    is rebuilt before unseal returns);
  - resident memory per lease: RSS after restore minus the RSS of the same
    server restored with no leases, divided by LEASES. Both are measured in
    this run, on this machine;
  - storage per lease: the sqlite file (and its WAL) after the restore
    minus the same for the empty server, divided by LEASES.

Usage: tests/bench/bench_restore.py [--leases 1000000] [--clients 4]
"""

import argparse
import concurrent.futures
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from realserver import RealServer  # noqa: E402

PLUGINS = os.path.join(HERE, "plugins")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def disk_bytes(srv):
    return sum(os.path.getsize(p) for p in (srv.db_path, srv.db_path + "-wal")
               if os.path.exists(p))


def restart_and_measure(srv, keys):
    srv.stop()
    srv.start()
    t0 = time.monotonic()
    srv.unseal(keys)
    elapsed = time.monotonic() - t0
    assert srv.req("GET", "sys/health").status_code == 200
    time.sleep(0.5)
    return elapsed, rss_kib(srv.proc.pid)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--leases", type=int, default=1000000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--batch", type=int, default=200)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="coffer-restore-")
    extra = 'plugin_directory = "%s"\n' % PLUGINS
    srv = RealServer(work, extra_config=extra)
    try:
        srv.start()
        keys, _ = srv.init(shares=1, threshold=1)
        srv.unseal(keys)
        r = srv.req("POST", "sys/mounts/lg", json={"type": "leasegen"})
        assert r.status_code == 204, r.text
        empty_secs, empty_rss = restart_and_measure(srv, keys)
        empty_disk = disk_bytes(srv)
        print("empty server: unseal+active %.2fs, RSS %.1f MiB, storage "
              "%.1f MiB" % (empty_secs, empty_rss / 1024.0,
                            empty_disk / 1048576.0))

        t0 = time.monotonic()
        batches = [args.batch] * (args.leases // args.batch)
        if args.leases % args.batch:
            batches.append(args.leases % args.batch)

        def issue(n):
            r = srv.req("PUT", "lg/issue", json={"count": n}, timeout=600)
            if r.status_code != 200:
                raise RuntimeError(r.text + "\n" + srv.log()[-2000:])

        with concurrent.futures.ThreadPoolExecutor(args.clients) as ex:
            list(ex.map(issue, batches))
        made = time.monotonic() - t0
        print("issued %d leases in %.0fs (%.0f/s)"
              % (args.leases, made, args.leases / made))
        secs, rss = restart_and_measure(srv, keys)
        per = (rss - empty_rss) * 1024.0 / args.leases
        print("restore: %d leases, unseal+active %.2fs (empty: %.2fs); "
              "RSS %.1f MiB, %.0f bytes per lease beyond the empty server"
              % (args.leases, secs, empty_secs, rss / 1024.0, per))
        disk = disk_bytes(srv)
        print("storage: %.1f MiB, %.0f bytes per lease beyond the empty "
              "server" % (disk / 1048576.0,
                          (disk - empty_disk) / float(args.leases)))
        print("log: " + [l for l in srv.log().splitlines()
                         if "restored" in l][-1])
    finally:
        if srv.proc is not None:
            srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
