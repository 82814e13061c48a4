#!/usr/bin/python3
"""Benchmark: authenticated KV v2 reads with one file audit device against
none, in the same run (issue 11, "Performance": the ratio should be
>= 0.8).

One real server (sqlite, initialised and unsealed; the database on tmpfs
so that the figures are CPU, not disk) serves GET secret/data/app to a
token limited by a policy to that path, as an application's would: the
policy check, the token lookup and the KV read all run. wrk (keep-alive,
2 threads) drives it for --seconds per run, alternating:

  none:  no audit device
  file:  one file device (enabled through the API before the run and
         disabled after it), writing to --audit-dir (default: a
         temporary directory on the disk of /tmp, as in production)

Each pair is repeated --rounds times, interleaved (the machine is
shared), and the medians are shown: requests/s, the server's CPU per
request (utime + stime of /proc/<pid>/stat before and after, divided by
the requests wrk counted), the bytes of audit log per request, and the
ratio file/none.

Audit writes are unbuffered: each entry is one write(2) to the file
before the request goes on (request) or returns (response), so a failed
write fails the request (Vault's fail-closed rule) and no entry waits in
memory for a flush that a crash would lose.

Then credential issuance (GET database/creds/bench, --issue-clients
connections) on the same server against a scratch PostgreSQL, with and
without the device, interleaved the same way; the leases are revoked
between runs, outside the measured time. The cluster runs with fsync off
(tests/integration/pgcluster.py): a slower database would hide audit's
cost behind its own, so this is the harder comparison. --no-issuance
skips it.

Usage: tests/bench/bench_audit.py [--seconds 4] [--rounds 3]
                                  [--clients 8] [--workers 8]
                                  [--issue-clients 4] [--no-issuance]
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from pgcluster import PgCluster  # noqa: E402
from realserver import RealServer  # noqa: E402

from benchlib import CLK_TCK, cpu_ticks, must  # noqa: E402


def run_wrk(srv, token, clients, seconds, tmp, path="secret/data/app"):
    script = os.path.join(tmp, "read.lua")
    with open(script, "w") as f:
        f.write('wrk.headers["X-Vault-Token"] = [==[%s]==]\n' % token)
    before = cpu_ticks(srv.proc.pid)
    p = subprocess.run(
        ["wrk", "-t", str(min(clients, 2)), "-c", str(clients),
         "-d", "%ds" % int(seconds), "--timeout", "30s", "-s", script,
         srv.addr + "/v1/" + path],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    after = cpu_ticks(srv.proc.pid)
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", p.stdout)
    total = re.search(r"(\d+) requests in", p.stdout)
    if p.returncode != 0 or rate is None or total is None:
        raise RuntimeError("wrk failed:\n" + p.stdout)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", p.stdout)
    if bad:
        raise RuntimeError("%s non-2xx responses:\n%s" % (bad.group(1),
                                                           p.stdout))
    n = int(total.group(1))
    return float(rate.group(1)), (after - before) * 1000.0 / CLK_TCK / n, n


def setup(srv):
    must(srv.req("POST", "sys/mounts/secret",
                 json={"type": "kv", "options": {"version": "2"}}))
    must(srv.req("POST", "secret/data/app",
                 json={"data": {"username": "app", "password": "s3cr3t-pw",
                                "url": "postgresql://db:5432/app"}}))
    must(srv.req("PUT", "sys/policies/acl/app-read",
                 json={"policy": 'path "secret/data/app" '
                                 '{ capabilities = ["read"] }'}))
    r = must(srv.req("POST", "auth/token/create",
                     json={"policies": ["app-read"], "no_default_policy": True,
                           "ttl": "24h"}))
    token = r.json()["auth"]["client_token"]
    must(srv.req("GET", "secret/data/app", token=token))
    return token


CREATE = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
          "VALID UNTIL '{{expiration}}';")


def setup_database(srv, pg):
    must(srv.req("POST", "sys/mounts/database", json={"type": "database"}))
    must(srv.req("POST", "database/config/bench", json={
        "plugin_name": "postgresql-database-plugin",
        "connection_url": pg.url(templated=True, dbname="bench"),
        "username": "postgres", "password": "postgres",
        "allowed_roles": "*", "max_open_connections": 16}))
    must(srv.req("POST", "database/roles/bench", json={
        "db_name": "bench", "creation_statements": CREATE,
        "default_ttl": "1h"}))


def interleaved(srv, args, adir, label, measure):
    """measure() under each mode, args.rounds times, alternating which
    mode goes first; returns {mode: [(rate, cpu, bytes/req), ...]}."""
    res = {"none": [], "file": []}
    for rnd in range(args.rounds):
        for mode in ("none", "file") if rnd % 2 == 0 else ("file", "none"):
            path = os.path.join(adir, "audit-%s-%d.log" % (label, rnd))
            if mode == "file":
                must(srv.req("PUT", "sys/audit/bench",
                             json={"type": "file",
                                   "options": {"file_path": path}}))
            rate, cpu, n = measure()
            size = 0
            if mode == "file":
                must(srv.req("DELETE", "sys/audit/bench"))
                size = os.path.getsize(path) / n
                os.unlink(path)
            res[mode].append((rate, cpu, size))
            print("  %s round %d %-4s %8.0f req/s  %.3f ms CPU/req%s" % (
                label, rnd + 1, mode, rate, cpu,
                "  %.0f B log/req" % size if size else ""), flush=True)
    return res


def report(title, res, target):
    med = {m: [statistics.median(x[i] for x in v) for i in range(3)]
           for m, v in res.items()}
    print("\n%s (medians), load average %.1f:" % (title,
                                                  os.getloadavg()[0]))
    for m in ("none", "file"):
        print("  %-12s %8.0f req/s  %.3f ms server CPU/req" % (
            "no device" if m == "none" else "file device",
            med[m][0], med[m][1]))
    print("  ratio file/none: throughput %.2f, CPU per request %.2f; "
          "%.0f bytes of audit log per request" % (
              med["file"][0] / med["none"][0],
              med["file"][1] / med["none"][1], med["file"][2]))
    if target:
        print("  target: throughput ratio >= %.2f" % target)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--audit-dir", default=None)
    ap.add_argument("--issue-clients", type=int, default=4)
    ap.add_argument("--no-issuance", dest="issuance", action="store_false")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("bench_audit: wrk is not installed; skipped")
        return 0
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = tempfile.mkdtemp(prefix="coffer-bench-audit-", dir=base)
    adir = args.audit_dir or tempfile.mkdtemp(prefix="coffer-bench-audit-")
    srv = RealServer(work, storage="sqlite", extra_config=(
        'workers = %d\nlog_level = "warn"\n' % args.workers))
    srv.start()
    try:
        keys, _ = srv.init(shares=1, threshold=1)
        srv.unseal(keys)
        token = setup(srv)
        res = interleaved(srv, args, adir, "read", lambda: run_wrk(
            srv, token, args.clients, args.seconds, work))
        report("KV v2 read, policy-limited token, %d clients, %ds x %d "
               "rounds" % (args.clients, args.seconds, args.rounds), res,
               0.8)
        if args.issuance:
            pg = PgCluster(dbname="bench")
            try:
                setup_database(srv, pg)

                def issue():
                    r = run_wrk(srv, token_root, args.issue_clients,
                                args.seconds, work, "database/creds/bench")
                    must(srv.req("PUT", "sys/leases/revoke-prefix/"
                                 "database/creds/bench", timeout=600))
                    return r
                token_root = srv.token
                res = interleaved(srv, args, adir, "issue", issue)
                report("Credential issuance, %d clients, %ds x %d rounds" % (
                    args.issue_clients, args.seconds, args.rounds), res, 0)
            finally:
                pg.stop()
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
        if args.audit_dir is None:
            shutil.rmtree(adir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
