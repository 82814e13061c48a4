#!/usr/bin/python3
"""Benchmark: high availability on PostgreSQL (issue 12).

Two real Coffer nodes share one PostgreSQL (default settings: fsync on,
SCRAM; the one bench_server.py starts), HA on:

  forward   authenticated KV reads (policy-limited token, 16 connections)
            and credential issuance (4 clients) through the standby
            against the same on the active, interleaved, same run:
            ratio standby/active (targets: >= 0.7 reads, >= 0.9 issuance).
            The standby answers the reads itself (standby reads); with
            --disable-standby-reads it forwards them, as before them.
  failover  --leases leases (the benchmark-only leasegen engine, no
            database users), then kill -9 of the active: time to the first
            successful write on the other node (targets: <= 5 s with
            10,000 leases, <= 10 s with 1,000,000), and how long its
            takeover restore took (from its log).

Usage: tests/bench/bench_ha.py [--seconds 5] [--leases 10000[,1000000]]
                               [--only forward,failover]
                               [--disable-standby-reads]
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)

from realserver import RealServer  # noqa: E402
from bench_server import (DefaultPg, FAILURES, GROUP, KV_PATH,  # noqa: E402
                          note, run_wrk, setup_server)
from benchlib import must  # noqa: E402

PLUGINS = os.path.join(HERE, "plugins")


class Node(RealServer):
    """A real server on postgresql storage with HA on."""

    extra = ""  # a config line for every node (main sets it)

    def __init__(self, work, url, lock_ttl="10s"):
        super().__init__(tempfile.mkdtemp(prefix="coffer-bench-ha-",
                                          dir=work), storage="inmem")
        with open(self.config, "w") as f:
            f.write('listener "tcp" { address = "127.0.0.1:%d", '
                    'tls_disable = true }\n' % self.port)
            f.write('storage "postgresql" { connection_url = "%s", '
                    'table = "coffer_kv", ha_enabled = true, '
                    'ha_lock_ttl = "%s" }\n' % (url, lock_ttl))
            f.write('api_addr = "%s"\nlog_level = "info"\n'
                    'plugin_directory = "%s"\n%s\n' % (self.addr, PLUGINS,
                                                      Node.extra))

    def is_active(self):
        try:
            return self.req("GET", "sys/leader", token=False,
                            timeout=5).json()["is_self"]
        except Exception:  # noqa: BLE001 - down or not answering yet
            return False


def start_pair(pg, work, dbname):
    pg.query("CREATE DATABASE " + dbname)
    url = pg.url(dbname=dbname)
    nodes = [Node(work, url), Node(work, url)]
    for n in nodes:
        n.start()
    keys, root = nodes[0].init(shares=1, threshold=1)
    for n in nodes:
        n.token = root
        n.unseal(keys)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        actives = [n for n in nodes if n.is_active()]
        if len(actives) == 1:
            standby = [n for n in nodes if n is not actives[0]][0]
            # the standby names the active once it has polled the row
            while standby.req("GET", "sys/leader", token=False).json()[
                    "leader_address"] != actives[0].addr:
                time.sleep(0.1)
            return actives[0], standby, keys
        time.sleep(0.1)
    raise RuntimeError("no active node")


def stop_all(nodes):
    for n in nodes:
        if n.proc is not None:
            n.stop()
        shutil.rmtree(n.dir, ignore_errors=True)


def part_forward(pg, args, work):
    active, standby, _ = start_pair(pg, work, "coffer_ha_fwd")
    try:
        token, _ = setup_server(active, pg)
        # one unmeasured second on each, so no run pays for a first use
        for n in (active, standby):
            run_wrk(n.addr + "/v1/" + KV_PATH, token, 16, 1, "warm-up")
        res = {}
        for what, path, tok, conns in (
                ("kv", KV_PATH, token, 16),
                ("issuance", "database/creds/bench", active.token, 4)):
            a = run_wrk(active.addr + "/v1/" + path, tok, conns,
                        args.seconds, "active " + what)
            s = run_wrk(standby.addr + "/v1/" + path, tok, conns,
                        args.seconds, "standby " + what)
            if what == "issuance":
                time.sleep(1)
                pg.drop_roles_like("v-%-bench-%")
            res[what] = {"active": a, "standby": s,
                         "ratio": s["rps"] / a["rps"] if a["rps"] else 0}
            note("  %-9s active %8.1f/s p99 %6.1f ms   standby %8.1f/s p99 "
                 "%6.1f ms   ratio %.2f" % (what, a["rps"], a["p99_ms"] or 0,
                                            s["rps"], s["p99_ms"] or 0,
                                            res[what]["ratio"]))
        return res
    finally:
        stop_all([active, standby])


def make_leases(node, n, clients=4, batch=200):
    must(node.req("POST", "sys/mounts/lg", json={"type": "leasegen"}))
    batches = [batch] * (n // batch) + ([n % batch] if n % batch else [])

    def issue(k):
        must(node.req("PUT", "lg/issue", json={"count": k}, timeout=600))
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(clients) as ex:
        list(ex.map(issue, batches))
    return time.monotonic() - t0


STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")


def stamp_of(line):
    m = STAMP.match(line)
    if m is None:
        return None
    t = time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")
    return time.mktime(t) + int(m.group(1)[20:]) / 1000.0


def takeover_phases(log):
    """Seconds from the last lock acquisition in log to the expiration
    manager running (the index handed over, or else the restore done) and
    to serving ("this node is active")."""
    lines = log.splitlines()
    got = [i for i, ln in enumerate(lines) if "holds the lock" in ln]
    if not got:
        return {}
    t0 = stamp_of(lines[got[-1]])
    out = {}
    for key, marks in (("expirations", ("expirations running",
                                        "restored")),
                       ("serving", ("this node is active",))):
        for ln in lines[got[-1]:]:
            if any(mk in ln for mk in marks) and stamp_of(ln) is not None:
                out[key] = stamp_of(ln) - t0
                break
    return out


def part_failover(pg, args, work, leases):
    active, standby, _ = start_pair(pg, work, "coffer_ha_fo_%d" % leases)
    try:
        made = make_leases(active, leases)
        must(active.req("POST", "sys/mounts/kv",
                        json={"type": "kv", "options": {"version": "1"}}))
        must(active.req("PUT", "kv/probe", json={"v": "0"}))
        note("  %d leases made in %.0f s" % (leases, made))
        t0 = time.monotonic()
        active.kill9()
        first = None
        while time.monotonic() - t0 < 120:
            try:
                r = standby.req("PUT", "kv/probe", json={"v": "1"}, timeout=5)
                if r.status_code in (200, 204):
                    first = time.monotonic() - t0
                    break
            except Exception:  # noqa: BLE001 - still taking over
                pass
            time.sleep(0.02)
        # the background reconciliation of a takeover from the index
        took = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            log = standby.log()
            took = re.search(r"took over the standby index of (\d+) leases",
                             log)
            if took is None or "reconciled the index" in log:
                break
            time.sleep(0.2)
        rec = re.search(r"reconciled the index with storage: (\d+) leases, "
                        r"(\d+) were missing, \d+ due earlier, "
                        r"in ([0-9.]+)s", log)
        if took is not None:
            note("  took over the standby index of %s leases; reconciled "
                 "in the background: %s" % (took.group(1), "%s leases, %s "
                 "missing, %s s" % rec.groups() if rec else "?"))
        restored = [line for line in log.splitlines() if "restored" in line]
        m = re.search(r"restored (\d+) leases in ([0-9.]+)s",
                      restored[-1] if restored else "")
        phases = takeover_phases(log)
        note("  failover with %d leases: first write after %s s; takeover "
             "restore %s" % (leases, "%.2f" % first if first else "never",
                             "%s leases in %s s" % m.groups() if m else "?"))
        note("  from lock acquisition: expirations running after %s s, "
             "serving after %s s" % tuple(
                 "%.3f" % phases[k] if phases.get(k) is not None else "?"
                 for k in ("expirations", "serving")))
        if first is None:
            FAILURES.append("no write within 120 s of the kill")
        return {"leases": leases, "first_write_s": first,
                "restore": m.groups() if m else None, "phases": phases}
    finally:
        stop_all([active, standby])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--leases", default="10000")
    ap.add_argument("--only", default="forward,failover")
    ap.add_argument("--disable-standby-reads", action="store_true")
    args = ap.parse_args()
    if args.disable_standby_reads:
        Node.extra = "disable_standby_reads = true"
    only = args.only.split(",")
    work = tempfile.mkdtemp(prefix="coffer-bench-ha-")
    pg = DefaultPg(dbname="bench")
    try:
        pg.query("CREATE ROLE %s NOLOGIN" % GROUP)
        s = pg.settings()
        note("PostgreSQL %s: fsync=%s synchronous_commit=%s" % (
            s.get("server_version"), s.get("fsync"),
            s.get("synchronous_commit")))
        if "forward" in only:
            note("forward (standby vs active, same run):")
            part_forward(pg, args, work)
        if "failover" in only:
            note("failover (kill -9 of the active):")
            for n in (int(x) for x in args.leases.split(",")):
                part_failover(pg, args, work, n)
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    for f in FAILURES:
        print("FAILED: " + f)
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
