#!/usr/bin/python3
"""Benchmark: the dev server and a real sqlite server side by side against
the machine's own baselines, in one run (issue 14).

For each server kind (--kinds):

  dev      `coffer server -dev` (in-memory storage)
  sqlite   a real server, `storage "sqlite"`, initialised and unsealed
           (barrier on), its database file on the disk of /tmp (not tmpfs:
           its fsyncs are part of what is measured)

three parts are measured (--only), each against a baseline run on the same
two cores, interleaved with it, in the same run:

  issuance  wrk on GET /v1/database/creds/bench vs pgbench running the same
            transaction directly (BEGIN; CREATE ROLE ... VALID UNTIL ...;
            GRANT app_readonly TO ...; COMMIT) at 1 / 4 / 16 clients;
            ratio coffer/direct, p99 of both at 16 clients. On the sqlite
            server also the floor: tests/bench/bare_issuer.c, an issuer
            made of Coffer's libraries alone (libmicrohttpd, libpq,
            OpenSSL, cJSON), without and with its two durable sqlite
            commits, so that the gap to direct splits into the HTTP front,
            sqlite's commits and Coffer's own code. --rounds rounds of
            every point, interleaved, medians reported.
  kv        wrk on GET /v1/benchkv/data/app with a token whose policy only
            allows that read vs nginx returning the same JSON body after
            comparing X-Vault-Token, at 16 / 64 connections; ratio, p99 of
            both at 64, server CPU per read (utime + stime of the server
            process over the run / requests).
  expiry    --leases credentials made to expire at the same second, while
            wrk reads KV (16 connections): revocations/s (first role gone to
            last role gone, seen in pg_roles) vs direct `DROP ROLE` of as many
            roles by 8 psycopg2 connections; KV p99 during the storm vs idle;
            on the sqlite server the same storm again with no reader, to
            tell revocation's own cost from the cores it shares with wrk;
            and the floor: the direct DROP ROLEs again while the same
            readers read KV (what any revoker keeps on these cores, and
            what PostgreSQL's share of the work alone does to the p99).

On the sqlite server the issuance gap at one client is set beside the
latency of one fdatasync in the server's directory (an issuance waits for
two durable commits: the pending record, then the lease).

PostgreSQL is started by the benchmark with default settings: fsync on,
scram-sha-256 password authentication over TCP on 127.0.0.1 (PgCluster with
its test-only `fsync = off` overridden). nginx is Debian's nginx-light,
started in the foreground with a temporary configuration on a free port.

Prints issue 14's table and, last, one line `BENCH_JSON {...}` to compare
runs. A part whose tool (wrk, pgbench, nginx) is missing is skipped with a
message; any failed measured request (non-2xx, socket error) makes the exit
status non-zero.

Usage: tests/bench/bench_server.py [--seconds 5] [--rounds 3] [--quick]
           [--leases 10000] [--only issuance,kv,expiry] [--kinds dev,sqlite]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)

from conftest import Server  # noqa: E402
from realserver import RealServer, free_port  # noqa: E402
from helpers import thread_stats  # noqa: E402
from pgcluster import PgCluster  # noqa: E402
from bench_creds import CREATE, PGBENCH_SCRIPT, count_roles  # noqa: E402
from benchlib import (CLK_TCK, BareIssuer, bare_issuer_bin,  # noqa: E402
                      cpu_ticks, must)

PARTS = ("issuance", "kv", "expiry")
KINDS = ("dev", "sqlite")
ISSUE_CLIENTS = (1, 4, 16)
KV_CONNS = (16, 64)
STORM_CONNS = 16
DROP_CLIENTS = 8
GROUP = "app_readonly"
KV_PATH = "benchkv/data/app"

# Measured requests that failed; any makes the exit status 1.
FAILURES = []


def fail(what):
    FAILURES.append(what)
    print("FAILED: " + what, flush=True)


def note(msg):
    print(msg, flush=True)


# -- PostgreSQL with default settings ------------------------------------


class DefaultPg(PgCluster):
    """PgCluster as the tests use it, but durable: its `fsync = off` (a test
    speed-up) is overridden before the first start, since a later line of
    postgresql.conf wins. Authentication stays scram-sha-256 over TCP."""

    def start(self):
        if not getattr(self, "_durable", False):
            with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
                f.write("# bench_server.py: default durability\n"
                        "fsync = on\nsynchronous_commit = on\n"
                        "full_page_writes = on\n")
            self._durable = True
        super().start()

    def settings(self):
        rows = self.query("SELECT name, setting FROM pg_settings WHERE name "
                          "IN ('fsync', 'synchronous_commit', "
                          "'password_encryption', 'server_version', "
                          "'shared_buffers', 'max_connections')")
        s = dict(rows)
        hba = self.query("SELECT type, address, auth_method FROM "
                         "pg_hba_file_rules WHERE type = 'host'")
        s["hba_host"] = sorted({"%s %s" % (a, m) for _, a, m in hba})
        return s

    def drop_roles_like(self, pattern):
        """Drops the roles and vacuums the role catalogs, so that the next
        measured run does not pay for pruning this one's dead rows (the
        first runner after a drop did: pgbench, 0.5x slower at 1 client)."""
        self.query("DO $$DECLARE r text; BEGIN FOR r IN SELECT rolname FROM "
                   "pg_roles WHERE rolname LIKE %s LOOP EXECUTE "
                   "format('DROP ROLE %%I', r); END LOOP; END$$", pattern)
        self.query("VACUUM pg_authid, pg_auth_members")


# -- load generators -----------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def ms(text):
    m = re.match(r"([0-9.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(out, what):
    """wrk --latency output -> dict; records failed requests."""
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rate is None or total is None:
        raise RuntimeError("wrk (%s) failed:\n%s" % (what, out))
    r = {"rps": float(rate.group(1)), "requests": int(total.group(1))}
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    r["p99_ms"] = ms(p99.group(1)) if p99 else None
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(bad.group(1)) if bad else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), "
                     r"write (\d+), timeout (\d+)", out)
    r["socket_errors"] = sum(map(int, sock.groups())) if sock else 0
    if r["non2xx"] or r["socket_errors"]:
        fail("%s: %d non-2xx responses, %d socket errors of %d requests"
             % (what, r["non2xx"], r["socket_errors"], r["requests"]))
    return r


def wrk_cmd(url, token, conns, seconds):
    return ["wrk", "-t", str(min(conns, 2)), "-c", str(conns),
            "-d", "%ds" % seconds, "--timeout", "30s", "--latency",
            "-H", "X-Vault-Token: " + token, url]


def run_wrk(url, token, conns, seconds, what, pid=None):
    """One wrk run; with pid, the CPU that process spent per request."""
    before = cpu_ticks(pid) if pid else 0
    p = subprocess.run(wrk_cmd(url, token, conns, seconds),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    after = cpu_ticks(pid) if pid else 0
    if p.returncode != 0:
        raise RuntimeError("wrk (%s) exited %d:\n%s" % (what, p.returncode,
                                                         p.stdout))
    r = parse_wrk(p.stdout, what)
    if pid and r["requests"]:
        r["cpu_us"] = (after - before) * 1e6 / CLK_TCK / r["requests"]
    return r


def start_wrk(url, token, conns):
    """wrk for as long as it takes; stop_wrk() ends it (SIGINT: wrk stops
    and prints its statistics)."""
    return subprocess.Popen(wrk_cmd(url, token, conns, 3600),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def stop_wrk(p, what):
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    return parse_wrk(out, what)


def pgbench(pg, clients, seconds, work):
    """pgbench running bench_creds' transaction; tps and, from the
    per-transaction logs (-l, 3rd field = latency in us), p99."""
    script = os.path.join(work, "create.sql")
    with open(script, "w") as f:
        f.write(PGBENCH_SCRIPT)
    logdir = tempfile.mkdtemp(prefix="pgbench-", dir=work)
    env = dict(os.environ, PGPASSWORD="postgres")
    p = subprocess.run(
        [os.path.join(pg.bindir, "pgbench"), "-n", "-c", str(clients),
         "-j", str(clients), "-T", str(seconds), "-f", script, "-l",
         "--log-prefix=" + os.path.join(logdir, "tx"),
         "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "bench"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=logdir)
    m = re.search(r"tps = ([0-9.]+) \(without initial", p.stdout)
    lat = []
    for name in os.listdir(logdir):
        with open(os.path.join(logdir, name)) as f:
            lat.extend(int(line.split()[2]) for line in f if line.strip())
    shutil.rmtree(logdir, ignore_errors=True)
    pg.drop_roles_like("d-%")
    failed = re.search(r"number of failed transactions: (\d+)", p.stdout)
    if p.returncode != 0 or m is None or (failed and int(failed.group(1))):
        fail("pgbench at %d clients:\n%s" % (clients, p.stdout[-2000:]))
    if m is None:
        return {"rps": 0.0, "p99_ms": None}
    return {"rps": float(m.group(1)), "p99_ms": p99(lat) / 1000.0,
            "transactions": len(lat)}


def p99(values):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * 0.99))]


# -- nginx baseline -------------------------------------------------------

NGINX_CONF = """\
worker_processes 2;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %(dir)s/body;
    default_type application/json;
    server {
        listen 127.0.0.1:%(port)d;
        location / {
            if ($http_x_vault_token != "%(token)s") { return 403; }
            return 200 '%(body)s';
        }
    }
}
"""


class Nginx:
    """nginx in the foreground (daemon off) answering `body` to `token`."""

    def __init__(self, work, body, token):
        if "$" in body or "$" in token or '"' in token:
            raise RuntimeError("nginx baseline: body or token has a $ or \"")
        self.dir = tempfile.mkdtemp(prefix="nginx-", dir=work)
        self.port = free_port()
        quoted = body.replace("\\", "\\\\").replace("'", "\\'")
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF % {"dir": self.dir, "port": self.port,
                                  "token": token, "body": quoted})
        self.proc = subprocess.Popen(
            [shutil.which("nginx"), "-p", self.dir, "-c", conf,
             "-e", os.path.join(self.dir, "error.log"), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT)
        self.url = "http://127.0.0.1:%d/v1/%s" % (self.port, KV_PATH)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not start:\n" + self.errors())

    def errors(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- the servers ----------------------------------------------------------


def start_server(kind, work, revocation_nice=None):
    """Both kinds answer .addr, .token, .proc and .req(method, path, ...).
    revocation_nice: the sqlite server's lease_revocation_nice (the dev
    server has no file: its workers keep the default)."""
    if kind == "dev":
        return Server(extra_args=["-log-level=warn"])
    sdir = tempfile.mkdtemp(prefix="coffer-bench-server-", dir="/tmp")
    fs = subprocess.run(["stat", "-f", "-c", "%T", sdir], text=True,
                        stdout=subprocess.PIPE).stdout.strip()
    note("  sqlite database in %s (%s)%s" % (
        sdir, fs, " - WARNING: tmpfs, its fsyncs cost nothing"
        if fs == "tmpfs" else ""))
    extra = 'log_level = "warn"\n'
    if revocation_nice is not None:
        extra += "lease_revocation_nice = %d\n" % revocation_nice
    srv = RealServer(sdir, storage="sqlite", extra_config=extra)
    srv.start()
    keys, _ = srv.init(shares=1, threshold=1)
    srv.unseal(keys)
    return srv


def stop_server(kind, srv):
    if kind == "dev":
        rc = srv.stop(timeout=20)
        if rc != 0:
            fail("dev server exited %s:\n%s" % (rc, srv.stderr_text()[-2000:]))
        shutil.rmtree(srv.logdir, ignore_errors=True)
    else:
        rc = srv.stop()
        if rc != 0:
            fail("sqlite server exited %s:\n%s" % (rc, srv.log()[-2000:]))
        shutil.rmtree(srv.dir, ignore_errors=True)


def setup_server(srv, pg):
    """database engine on pg, a KV v2 secret and a token limited to it.
    Returns (token, the exact body the read returns)."""
    must(srv.req("POST", "sys/mounts/database", json={"type": "database"}))
    must(srv.req("POST", "database/config/bench", json={
        "plugin_name": "postgresql-database-plugin",
        "connection_url": pg.url(templated=True, dbname="bench"),
        "username": "postgres", "password": "postgres",
        "allowed_roles": "*", "max_open_connections": 32}))
    must(srv.req("POST", "database/roles/bench", json={
        "db_name": "bench", "creation_statements": CREATE,
        "default_ttl": "1h"}))
    must(srv.req("POST", "sys/mounts/benchkv",
                 json={"type": "kv", "options": {"version": "2"}}))
    must(srv.req("POST", KV_PATH, json={"data": {
        "username": "app", "password": "s3cr3t-pw",
        "url": "postgresql://db:5432/app"}}))
    must(srv.req("PUT", "sys/policies/acl/app-read", json={
        "policy": 'path "%s" { capabilities = ["read"] }' % KV_PATH}))
    r = must(srv.req("POST", "auth/token/create", json={
        "policies": ["app-read"], "no_default_policy": True, "ttl": "24h"}))
    token = r.json()["auth"]["client_token"]
    body = must(srv.req("GET", KV_PATH, token=token)).text
    return token, body


# -- the parts ------------------------------------------------------------


def fdatasync_latency(directory, rounds=200):
    """Median seconds of one 4 KiB append + fdatasync in `directory`: what
    one durable sqlite commit (WAL, synchronous=FULL) waits for at least."""
    path = os.path.join(directory, "fsync-probe")
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        block = b"\0" * 4096
        for _ in range(rounds):
            t0 = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    return times[len(times) // 2]


def issuance_gap(res, fsync_s):
    """Where issuance's gap to direct goes, at one client (requests in
    series, so time per request = 1 / rate): the gap per credential next
    to the two durable commits an issuance waits for (the pending record
    before the user is created, the lease before the reply)."""
    one = res.get(1)
    if not one or not one["coffer"]["rps"] or not one["direct"]["rps"]:
        return None
    gap = 1.0 / one["coffer"]["rps"] - 1.0 / one["direct"]["rps"]
    res = {"gap_ms": gap * 1000.0, "fsync_ms": fsync_s * 1000.0,
           "two_commits_ms": 2 * fsync_s * 1000.0,
           "share_of_gap": 2 * fsync_s / gap if gap > 0 else None}
    note("  issuance at 1 client: %.2f ms more per credential than direct; "
         "one fdatasync here %.2f ms, the two durable commits an issuance "
         "waits for %.2f ms (%.0f%% of the gap)" % (
             res["gap_ms"], res["fsync_ms"], res["two_commits_ms"],
             100 * (res["share_of_gap"] or 0)))
    return res


# -- the floor: Coffer's pieces without Coffer ----------------------------


def issuance_point(url, token, n, seconds, what, pg, pid):
    r = run_wrk(url, token, n, seconds, what, pid=pid)
    time.sleep(1)  # requests wrk abandoned at its deadline finish
    pg.drop_roles_like("v-%-bench-%")
    return r


def median_of(points):
    """The per-key median of a list of measured points (dicts of numbers;
    counts of failures are summed, not medianed)."""
    out = {}
    for key in points[0]:
        vals = [p[key] for p in points if p.get(key) is not None]
        if key in ("non2xx", "socket_errors", "requests", "transactions"):
            out[key] = sum(vals)
        elif vals:
            out[key] = statistics.median(vals)
        else:
            out[key] = None
    return out


def part_issuance(kind, srv, pg, args, work):
    """Coffer against pgbench at each client count; on the sqlite server
    also the bare issuer, with its sqlite commits ("floor") and without
    them ("http_pg"). --rounds rounds of every point, interleaved; each
    ratio is against the direct run of its own round, and the medians
    are reported."""
    url = srv.addr + "/v1/database/creds/bench"
    floors = {}
    binary = bare_issuer_bin() if kind == "sqlite" else None
    if binary:
        floors = {"http_pg": BareIssuer(binary, pg, srv.token),
                  "floor": BareIssuer(binary, pg, srv.token, srv.dir)}
    subjects = [("coffer", url, srv.proc.pid)] + \
        [(name, b.url, b.proc.pid) for name, b in floors.items()]
    runs = {n: [] for n in ISSUE_CLIENTS}
    try:
        # pgbench leaves its connections' start-up out of what it reports;
        # the same for the servers: their pools' connections (SCRAM, ~15 ms
        # each) and their workers' first requests happen here, not within
        # the measured points.
        for name, u, _ in subjects:
            issuance_point(u, srv.token, max(ISSUE_CLIENTS), 2,
                           "%s issuance warm-up" % name, pg, None)
        for rnd in range(args.rounds):
            for n in ISSUE_CLIENTS:
                d = pgbench(pg, n, args.seconds, work)
                run = {"direct": d}
                for name, u, pid in subjects:
                    r = issuance_point(u, srv.token, n, args.seconds,
                                       "%s %s issuance c=%d" % (kind, name, n),
                                       pg, pid)
                    run[name] = r
                    run[name + "_ratio"] = r["rps"] / d["rps"] \
                        if d["rps"] else None
                runs[n].append(run)
                note("  round %d issuance c=%-2d direct %6.1f/s p99 %6.1f ms  " %
                     (rnd + 1, n, d["rps"], d["p99_ms"] or 0) +
                     "  ".join("%s %6.1f/s p99 %6.1f ms %5.0f us CPU (%.2f)" % (
                         name, run[name]["rps"], run[name]["p99_ms"] or 0,
                         run[name].get("cpu_us", 0), run[name + "_ratio"] or 0)
                         for name, _, _ in subjects))
    finally:
        for b in floors.values():
            b.stop()
    res = {}
    for n, rs in runs.items():
        if not rs:
            continue
        res[n] = {"direct": median_of([r["direct"] for r in rs])}
        for name, _, _ in subjects:
            res[n][name] = median_of([r[name] for r in rs])
            ratios = [r[name + "_ratio"] for r in rs
                      if r[name + "_ratio"] is not None]
            res[n][name + "_ratio"] = statistics.median(ratios) \
                if ratios else None
        res[n]["ratio"] = res[n].pop("coffer_ratio")
        note("  issuance c=%-2d median of %d: ratio coffer %.2f%s" % (
            n, len(rs), res[n]["ratio"] or 0, "".join(
                ", %s %.2f" % (name, res[n][name + "_ratio"] or 0)
                for name in floors)))
    return res


def warm_up(kind, srv, token):
    """One second of KV reads first, so that no measured point pays for
    the first use of each worker's Lua state."""
    run_wrk(srv.addr + "/v1/" + KV_PATH, token, 64, 1, "%s warm-up" % kind)


def part_kv(kind, srv, token, body, args, work):
    url = srv.addr + "/v1/" + KV_PATH
    warm_up(kind, srv, token)
    ngx = Nginx(work, body, token)
    res = {}
    try:
        for n in KV_CONNS:
            g = run_wrk(ngx.url, token, n, args.seconds, "nginx c=%d" % n)
            k = run_wrk(url, token, n, args.seconds, "%s kv c=%d" % (kind, n),
                        pid=srv.proc.pid)
            res[n] = {"nginx": g, "coffer": k, "ratio": k["rps"] / g["rps"]}
            note("  kv c=%-2d        nginx %8.0f/s p99 %6.2f ms   coffer %8.0f/s"
                 " p99 %6.2f ms  %5.1f us CPU/read   ratio %.2f" % (
                     n, g["rps"], g["p99_ms"], k["rps"], k["p99_ms"],
                     k.get("cpu_us", 0), res[n]["ratio"]))
    finally:
        ngx.stop()
    return res


def issue_due_together(srv, leases, rate, clients=16):
    """Issues `leases` credentials of role `mass` that expire within about
    a second of one target time: a thread keeps the role's default_ttl at
    (target - now) while 16 threads issue. Returns the target (epoch) and
    the earliest and latest due time (response time + lease_duration)."""
    import requests
    target = time.time() + 10 + leases / rate
    lock = threading.Lock()
    state = {"made": 0, "error": None, "due": []}
    done = threading.Event()

    def set_ttl():
        ttl = int(round(target - time.time()))
        if ttl < 3:
            raise RuntimeError("issuance too slow for the chosen expiry "
                               "(estimated %.0f/s)" % rate)
        must(srv.req("POST", "database/roles/mass", json={
            "db_name": "bench", "creation_statements": CREATE,
            "default_ttl": "%ds" % ttl}))

    def retune():
        while not done.wait(0.25):
            try:
                set_ttl()
            except Exception as e:  # noqa: BLE001 - reported by the issuers
                state["error"] = str(e)
                done.set()

    def issuer():
        s = requests.Session()
        s.headers["X-Vault-Token"] = srv.token
        url = srv.addr + "/v1/database/creds/mass"
        while not done.is_set():
            with lock:
                if state["made"] >= leases:
                    return
                state["made"] += 1
            r = s.get(url, timeout=60)
            if r.status_code != 200:
                state["error"] = "creds/mass: %d %s" % (r.status_code,
                                                        r.text[:300])
                done.set()
                return
            due = time.time() + r.json()["lease_duration"]
            with lock:
                state["due"].append(due)

    set_ttl()
    t = threading.Thread(target=retune)
    t.start()
    workers = [threading.Thread(target=issuer) for _ in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done.set()
    t.join()
    if state["error"]:
        raise RuntimeError("mass issuance: " + state["error"])
    return target, min(state["due"]), max(state["due"])


def lease_counters(srv):
    """The server's revocation counters (sys/metrics): successes, failures
    (each failed attempt, retried with backoff) and database statement
    errors."""
    r = must(srv.req("GET", "sys/metrics"))
    out = {"revoke_success": 0, "revoke_failure": 0, "db_errors": 0}
    for m in r.json().get("Counters", []):
        name = m.get("Name", "")
        if name.endswith("expire.revoke.success"):
            out["revoke_success"] += m.get("Sum", 0)
        elif name.endswith("expire.revoke.failure"):
            out["revoke_failure"] += m.get("Sum", 0)
        elif name.endswith("database.statement.error"):
            out["db_errors"] += m.get("Sum", 0)
    return out


def direct_drop(pg, n, on_start=None):
    """DROP ROLE of n group members by DROP_CLIENTS connections (each its
    own transaction, retried on a catalog conflict); roles per second.
    on_start() is called once the roles exist, right before the drops."""
    pg.query("DO $$BEGIN FOR i IN 1..%d LOOP EXECUTE format('CREATE ROLE %%I "
             "LOGIN VALID UNTIL ''infinity''', 'x-' || i); EXECUTE format("
             "'GRANT %s TO %%I', 'x-' || i); END LOOP; END$$" % (n, GROUP))
    conns = [pg.connect() for _ in range(DROP_CLIENTS)]
    retries = [0] * DROP_CLIENTS
    errors = []

    def dropper(i):
        c = conns[i]
        c.autocommit = True
        with c.cursor() as cur:
            for j in range(i + 1, n + 1, DROP_CLIENTS):
                for _ in range(20):
                    try:
                        cur.execute('DROP ROLE "x-%d"' % j)
                        break
                    except psycopg2.Error as e:
                        if "concurrently" not in str(e):
                            errors.append(str(e))
                            return
                        retries[i] += 1
                else:
                    errors.append("x-%d: still conflicting" % j)
                    return

    threads = [threading.Thread(target=dropper, args=(i,))
               for i in range(DROP_CLIENTS)]
    if on_start:
        on_start()
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    for c in conns:
        c.close()
    if errors:
        fail("direct DROP ROLE: " + errors[0])
    return {"rps": n / secs, "seconds": secs, "retries": sum(retries)}


def cpu_by_priority(pid):
    """CPU seconds of pid's threads so far: (revocation workers, the rest).
    The workers are the threads running at a higher nice value than the
    main thread (lease_expire.c's lower_priority, counted from the process's
    own nice value); with lease_revocation_nice = 0 they count as the
    rest. A thread gone since is not counted."""
    threads = [(tid, int(f[11]) + int(f[12]), int(f[16]))  # utime+stime, nice
               for tid, f in thread_stats(pid).items()]
    base = min((n for t, _, n in threads if t == pid), default=0)
    workers = sum(c for _, c, n in threads if n > base)
    rest = sum(c for _, c, n in threads if n <= base)
    return workers / CLK_TCK, rest / CLK_TCK


def gone_after(timeline, made, share):
    """Seconds after the resume when `share` of the roles were gone."""
    for t, left in timeline:
        if made - left >= share * made:
            return t
    return None


def expire_together(kind, srv, pg, leases, rate, on_resume=None):
    """Issues `leases` credentials due at the same second and watches
    their roles vanish from pg_roles. Granted TTLs are whole seconds, so
    due times spread over a second: for "all due at once" the server is
    paused (SIGSTOP) from before the first is due until after the last is,
    and wakes to the whole pile. `on_resume` runs right after SIGCONT (the
    storm's wrk). Returns the figures, or None (reported) on a failure."""
    t0 = time.monotonic()
    target, due_min, due_max = issue_due_together(srv, leases, rate)
    issue_secs = time.monotonic() - t0
    made = count_roles(pg, "%-mass-%")
    if made != leases:
        fail("%s expiry: %d roles exist for %d leases" % (kind, made, leases))
    before = lease_counters(srv)
    while time.time() < due_min - 0.3:
        time.sleep(0.01)
    srv.proc.send_signal(signal.SIGSTOP)
    while time.time() < due_max + 0.2:
        time.sleep(0.01)
    cpu0 = cpu_by_priority(srv.proc.pid)
    srv.proc.send_signal(signal.SIGCONT)
    resumed = time.time()
    if on_resume:
        on_resume()
    conn = pg.connect()
    conn.autocommit = True
    first = last = None
    timeline = []
    deadline = time.monotonic() + 60 + leases / 20.0
    with conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("SELECT count(*) FROM pg_roles WHERE rolname LIKE "
                        "'%-mass-%'")
            left = cur.fetchone()[0]
            now = time.time()
            timeline.append((now - resumed, left))
            if first is None and left < made:
                first = now
            if left == 0:
                last = now
                break
            time.sleep(0.05)
    conn.close()
    cpu1 = cpu_by_priority(srv.proc.pid)
    after = lease_counters(srv)
    if last is None:
        fail("%s expiry: %d roles still exist %.0fs after they were due"
             % (kind, left, time.time() - target))
        return None
    span = max(last - resumed, 0.05)
    return {"leases": made, "issue_seconds": issue_secs,
            "due_spread_s": [due_min - target, due_max - target],
            "server_counters": {k: after[k] - before[k] for k in after},
            "first_gone_after_resume_s": first - resumed,
            "last_gone_after_resume_s": last - resumed,
            "half_gone_after_resume_s": gone_after(timeline, made, 0.5),
            "p90_gone_after_resume_s": gone_after(timeline, made, 0.9),
            "server_cpu_s": {"workers": cpu1[0] - cpu0[0],
                             "rest": cpu1[1] - cpu0[1]},
            "coffer_rps": made / span}


def part_expiry(kind, srv, pg, token, args, issue_rate):
    url = srv.addr + "/v1/" + KV_PATH
    warm_up(kind, srv, token)
    idle_before = run_wrk(url, token, STORM_CONNS, args.seconds,
                          "%s kv idle" % kind)
    rate = max(20.0, 0.5 * issue_rate) if issue_rate else args.issue_rate
    wrk = []
    res = expire_together(kind, srv, pg, args.leases, rate,
                          lambda: wrk.append(start_wrk(url, token,
                                                       STORM_CONNS)))
    storm = stop_wrk(wrk[0], "%s kv during expiry" % kind) if wrk else None
    if res is None or storm is None:
        return None
    # Idle again once the storm is over; the quieter of the two runs is
    # the reference (a noisy neighbour then cannot flatter the ratio).
    idle_after = run_wrk(url, token, STORM_CONNS, args.seconds,
                         "%s kv idle after" % kind)
    idle = min(idle_before, idle_after, key=lambda r: r["p99_ms"])
    # The same storm with no reader: what revocation itself costs, apart
    # from the two cores it shares with wrk and the reads during the storm.
    # (The sqlite server only: it is the one the targets are for.)
    quiet = expire_together(kind, srv, pg, args.leases, rate) \
        if kind == "sqlite" else None
    direct = direct_drop(pg, res["leases"])
    # The floor of both targets: the same DROP ROLEs sent directly while
    # the same readers read KV. What direct revocation keeps of its idle
    # rate, and what its PostgreSQL work alone does to the readers' p99,
    # is what these two cores allow any revoker.
    wrk = []
    loaded = direct_drop(pg, res["leases"], lambda: (
        wrk.append(start_wrk(url, token, STORM_CONNS)), time.sleep(1)))
    kv_loaded = stop_wrk(wrk[0], "%s kv during direct DROP ROLE" % kind) \
        if wrk else None
    res.update({"direct_loaded": loaded, "kv_direct": kv_loaded,
                "floor_ratio": loaded["rps"] / direct["rps"],
                "floor_p99_ratio": kv_loaded["p99_ms"] / idle["p99_ms"]
                if kv_loaded else None})
    res.update({"direct": direct, "ratio": res["coffer_rps"] / direct["rps"],
                "kv_idle": idle, "kv_idle_runs": [idle_before, idle_after],
                "kv_storm": storm,
                "p99_ratio": storm["p99_ms"] / idle["p99_ms"],
                "quiet": quiet,
                "quiet_ratio": quiet["coffer_rps"] / direct["rps"]
                if quiet else None})
    counters = res["server_counters"]
    note("  expiry %d leases (issued in %.0fs, due %+.1fs..%+.1fs of the "
         "target, all due when the server resumed): first role gone "
         "%+.2fs, half %+.2fs, 90%% %+.2fs, last %+.2fs after (server CPU "
         "meanwhile: revocation workers %.2f s, other threads %.2f s); "
         "coffer %.0f "
         "revocations/s (server: %d revoked, %d failed attempts, %d database "
         "errors), direct DROP ROLE %.0f/s (%d retries), ratio %.2f" % (
             res["leases"], res["issue_seconds"], res["due_spread_s"][0],
             res["due_spread_s"][1], res["first_gone_after_resume_s"],
             res["half_gone_after_resume_s"], res["p90_gone_after_resume_s"],
             res["last_gone_after_resume_s"],
             res["server_cpu_s"]["workers"], res["server_cpu_s"]["rest"],
             res["coffer_rps"],
             counters["revoke_success"], counters["revoke_failure"],
             counters["db_errors"], direct["rps"], direct["retries"],
             res["ratio"]))
    note("  the floor: direct DROP ROLE while the same readers read KV "
         "%.0f/s, ratio %.2f to idle direct; KV p99 meanwhile %.2f ms "
         "(%.2f of idle)" % (loaded["rps"], res["floor_ratio"],
                             kv_loaded["p99_ms"] if kv_loaded else 0,
                             res["floor_p99_ratio"] or 0))
    if quiet:
        note("  the same expiry with no KV reader: coffer %.0f revocations/s,"
             " ratio %.2f to direct" % (quiet["coffer_rps"],
                                        res["quiet_ratio"]))
    note("  kv c=%d p99 idle %.2f ms (before %.2f, after %.2f), during the "
         "storm %.2f ms (%.0f/s), ratio %.2f" % (
             STORM_CONNS, idle["p99_ms"], idle_before["p99_ms"],
             idle_after["p99_ms"], storm["p99_ms"], storm["rps"],
             res["p99_ratio"]))
    return res


def issuance_shares(res):
    """At each client count, the gap 1 - coffer/direct split between the
    HTTP front (libmicrohttpd, the loopback TCP both ways, wrk), the two
    durable sqlite commits, and Coffer's own code, from the bare issuer's
    two points in the same loop."""
    shares = {}
    for n in ISSUE_CLIENTS:
        r = res.get(n, {})
        if "floor_ratio" not in r or r.get("ratio") is None:
            return None
        shares[n] = {"gap": 1 - r["ratio"],
                     "http": 1 - r["http_pg_ratio"],
                     "sqlite": r["http_pg_ratio"] - r["floor_ratio"],
                     "coffer": r["floor_ratio"] - r["ratio"]}
        note("  issuance c=%-2d gap to direct %.2f = HTTP front %.2f + sqlite's"
             " durable commits %.2f + Coffer's own %.2f" % (
                 n, shares[n]["gap"], shares[n]["http"], shares[n]["sqlite"],
                 shares[n]["coffer"]))
    return shares


def run_kind(kind, pg, args, work, skipped):
    note("\n== %s server ==" % kind)
    srv = start_server(kind, work, args.revocation_nice)
    res = {}
    try:
        token, body = setup_server(srv, pg)
        for part in PARTS:
            if part not in args.only or part in skipped:
                continue
            try:
                if part == "issuance":
                    res[part] = part_issuance(kind, srv, pg, args, work)
                    if kind == "sqlite":
                        res["issuance_gap"] = issuance_gap(
                            res[part], fdatasync_latency(srv.dir))
                        res["issuance_shares"] = issuance_shares(res[part])
                elif part == "kv":
                    res[part] = part_kv(kind, srv, token, body, args, work)
                else:
                    rate = res.get("issuance", {}).get(16, {})
                    res[part] = part_expiry(kind, srv, pg, token, args,
                                            rate.get("coffer", {}).get("rps"))
            except Exception as e:  # noqa: BLE001 - the other parts go on
                fail("%s %s: %s: %s" % (kind, part, type(e).__name__, e))
    finally:
        stop_server(kind, srv)
        pg.drop_roles_like("v-%")
        pg.drop_roles_like("x-%")
    return res


# -- report ---------------------------------------------------------------


def cell(res, part, fn, why):
    if part in why:
        return why[part]
    try:
        return fn(res[part])
    except (KeyError, TypeError, ZeroDivisionError):
        return "—"


def table(results, kinds, only, skipped):
    why = {p: "not run" if p not in only else "skipped" for p in PARTS
           if p in skipped or p not in only}
    rows = [
        ("credential issuance / direct `CREATE ROLE …; GRANT group`, "
         "1 / 4 / 16 clients", "issuance",
         lambda r: " / ".join("%.2f" % r[n]["ratio"] for n in ISSUE_CLIENTS),
         "≥ 0.9 at every client count"),
        ("credential issuance p99 at 16 clients (direct's)", "issuance",
         lambda r: "%.0f ms (%.0f ms, %.2f×)" % (
             r[16]["coffer"]["p99_ms"], r[16]["direct"]["p99_ms"],
             r[16]["coffer"]["p99_ms"] / r[16]["direct"]["p99_ms"]),
         "≤ 1.2× direct's p99"),
        ("authenticated KV v2 read (policy-limited token) / nginx, "
         "16 / 64 connections", "kv",
         lambda r: " / ".join("%.2f" % r[n]["ratio"] for n in KV_CONNS),
         "≥ 0.5"),
        ("KV read p99 at 64 connections (nginx's)", "kv",
         lambda r: "%.1f ms (%.1f ms, %.1f×)" % (
             r[64]["coffer"]["p99_ms"], r[64]["nginx"]["p99_ms"],
             r[64]["coffer"]["p99_ms"] / r[64]["nginx"]["p99_ms"]),
         "≤ 2× nginx's p99"),
        ("server CPU per KV read (16 / 64 connections)", "kv",
         lambda r: " / ".join("%.0f µs" % r[n]["coffer"]["cpu_us"]
                              for n in KV_CONNS),
         "≤ 35 µs"),
        ("mass expiry revocations/s / direct `DROP ROLE` (coffer, direct)",
         "expiry",
         lambda r: "%.2f (%.0f/s, %.0f/s)" % (r["ratio"], r["coffer_rps"],
                                              r["direct"]["rps"]),
         "≥ 0.8"),
        ("the same, with no KV reader during the storm (coffer)",
         "expiry",
         lambda r: "%.2f (%.0f/s)" % (r["quiet_ratio"],
                                     r["quiet"]["coffer_rps"]),
         "(where the gap goes)"),
        ("KV p99 during the expiry storm / idle (storm, idle)", "expiry",
         lambda r: "%.2f (%.1f ms, %.1f ms)" % (
             r["p99_ratio"], r["kv_storm"]["p99_ms"],
             r["kv_idle"]["p99_ms"]),
         "≤ 2×"),
        ("the floor: direct `DROP ROLE` while the same readers read KV / "
         "idle direct; KV p99 meanwhile / idle", "expiry",
         lambda r: "%.2f (%.0f/s); %.2f (%.1f ms)" % (
             r["floor_ratio"], r["direct_loaded"]["rps"],
             r["floor_p99_ratio"], r["kv_direct"]["p99_ms"]),
         "(where the gap goes)"),
    ]
    ratios = lambda key: lambda r: " / ".join(  # noqa: E731
        "%.2f" % r[n][key] for n in ISSUE_CLIENTS)
    rows[1:1] = [
        ("the floor: bare issuer (libmicrohttpd + libpq, no storage) / "
         "direct, 1 / 4 / 16", "issuance", ratios("http_pg_ratio"),
         "(where the gap goes)"),
        ("the floor: bare issuer with its two durable sqlite commits "
         "(AES-GCM records) / direct, 1 / 4 / 16", "issuance",
         ratios("floor_ratio"), "(where the gap goes)"),
        ("server CPU per credential at 16 clients: coffer (bare issuer, "
         "bare without sqlite)", "issuance",
         lambda r: "%.0f µs (%.0f µs, %.0f µs)" % (
             r[16]["coffer"]["cpu_us"], r[16]["floor"]["cpu_us"],
             r[16]["http_pg"]["cpu_us"]), "(where the gap goes)"),
    ]
    rows.insert(5, (
        "issuance at 1 client: ms per credential over direct (the two "
        "durable sqlite commits it waits for)", "issuance_gap",
        lambda r: "%.2f ms (%.2f ms)" % (r["gap_ms"], r["two_commits_ms"]),
        "(where the gap goes)"))
    rows.insert(6, (
        "the gap to direct at 1 / 4 / 16 clients = HTTP front + sqlite's "
        "durable commits + Coffer's own", "issuance_shares",
        lambda r: " / ".join("%.2f = %.2f + %.2f + %.2f" % (
            r[n]["gap"], r[n]["http"], r[n]["sqlite"], r[n]["coffer"])
            for n in ISSUE_CLIENTS), "(where the gap goes)"))
    head = "| | " + " | ".join("%s server" % k for k in kinds) + \
        " | target (sqlite server) |"
    lines = [head, "|---" * (len(kinds) + 2) + "|"]
    for label, part, fn, target in rows:
        lines.append("| %s | %s | %s |" % (
            label, " | ".join(cell(results.get(k, {}), part, fn, why)
                              for k in kinds), target))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=None,
                    help="seconds per measured point (default 5; 2 with "
                         "--quick)")
    ap.add_argument("--leases", type=int, default=None,
                    help="leases in the mass expiry (default 10000; 1000 "
                         "with --quick)")
    ap.add_argument("--issue-rate", type=float, default=50.0,
                    help="credentials/s the expiry's issuance is planned "
                         "for when the issuance part did not run "
                         "(default 50)")
    ap.add_argument("--revocation-nice", type=int, default=None,
                    help="the sqlite server's lease_revocation_nice "
                         "(0..19; default: the server's, 10)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="rounds of every issuance point, interleaved; "
                         "medians reported (default 3; 1 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 2 s per point, 1,000 leases")
    ap.add_argument("--only", default=",".join(PARTS),
                    help="comma list of: " + ", ".join(PARTS))
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help="comma list of: " + ", ".join(KINDS))
    args = ap.parse_args()
    if args.seconds is None:
        args.seconds = 2 if args.quick else 5
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.leases is None:
        args.leases = 1000 if args.quick else 10000
    args.only = [p for p in args.only.split(",") if p]
    kinds = [k for k in args.kinds.split(",") if k]
    bad = [p for p in args.only if p not in PARTS] + \
        [k for k in kinds if k not in KINDS]
    if bad or args.seconds < 1 or args.leases < 1 or args.issue_rate < 1 \
            or args.rounds < 1:
        ap.error("unknown part or kind, or bad number: %s" % bad)

    pg = DefaultPg(dbname="bench")
    skipped = {}
    if shutil.which("wrk") is None:
        skipped = {p: "wrk is not installed (.ci/install-deps.sh "
                   "--bench)" for p in PARTS}
    if not os.access(os.path.join(pg.bindir, "pgbench"), os.X_OK):
        skipped.setdefault("issuance", "pgbench is not installed in %s"
                           % pg.bindir)
    if shutil.which("nginx") is None:
        skipped.setdefault("kv", "nginx is not installed (Debian's "
                           "nginx-light: .ci/install-deps.sh --bench)")
    for p in args.only:
        if p in skipped:
            note("SKIPPED %s: %s" % (p, skipped[p]))

    work = tempfile.mkdtemp(prefix="coffer-bench-server-", dir="/tmp")
    results = {}
    try:
        pg.query("CREATE ROLE %s NOLOGIN" % GROUP)
        s = pg.settings()
        note("PostgreSQL %s: fsync=%s synchronous_commit=%s "
             "password_encryption=%s, host auth %s; %d s per point, "
             "%d leases; load average %.1f" % (
                 s["server_version"], s["fsync"], s["synchronous_commit"],
                 s["password_encryption"], ", ".join(s["hba_host"]),
                 args.seconds, args.leases, os.getloadavg()[0]))
        if s["fsync"] != "on":
            raise RuntimeError("PostgreSQL runs with fsync=%s" % s["fsync"])
        for kind in kinds:
            results[kind] = run_kind(kind, pg, args, work, skipped)
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)

    note("\nissue 14 (%d s per point, %d leases, load average %.1f)%s:\n"
         % (args.seconds, args.leases, os.getloadavg()[0],
            " - %d FAILED measurement(s), their figures are not valid"
            % len(FAILURES) if FAILURES else ""))
    note(table(results, kinds, args.only, skipped))
    if any(p in skipped for p in args.only):
        note("")
    for p in args.only:
        if p in skipped:
            note("SKIPPED %s: %s" % (p, skipped[p]))
    if FAILURES:
        note("\n%d FAILED measurement(s):\n  %s" % (
            len(FAILURES), "\n  ".join(f.splitlines()[0] for f in FAILURES)))
    note("BENCH_JSON " + json.dumps({
        "bench": "bench_server", "time": int(time.time()),
        "seconds": args.seconds, "leases": args.leases, "parts": args.only,
        "kinds": kinds, "pg": s, "results": results,
        "skipped": {p: skipped[p] for p in args.only if p in skipped},
        "failures": FAILURES}, sort_keys=True))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
