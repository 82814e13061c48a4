#!/usr/bin/python3
"""Benchmark: dynamic PostgreSQL credentials through Coffer vs. direct SQL.

Everything runs on this machine in one go, so the figures are ratios
against a baseline measured in the same run (the machines are shared and
noisy; absolute numbers mean little).

  1. direct:  pgbench with N clients runs the same transaction Coffer runs
              for a credential (BEGIN; CREATE ROLE ... VALID UNTIL ...;
              GRANT app_readonly TO ...; COMMIT).
  2. coffer:  wrk with N connections calls GET /v1/database/creds/bench.
     Both load generators are C programs sharing the same two cores, so
     neither side pays for a heavy client.
     Reported: issuances/s at N = 1, 4, 16 and the ratio coffer/direct.
  3. revoke:  `lease revoke -prefix` of every lease made in 2 (sync).
  4. expiry:  LEASES leases made to expire at the same second; measures
              how long after that second the last role disappears, and
              revocations/s while draining.

Usage: tests/bench/bench_creds.py [--leases 10000] [--seconds 10]
"""

import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import requests  # noqa: E402

from conftest import Server  # noqa: E402
from pgcluster import PgCluster  # noqa: E402

CREATE = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
          "VALID UNTIL '{{expiration}}'; GRANT app_readonly TO \"{{name}}\";")


PGBENCH_SCRIPT = """\\set r random(1, 1000000000000)
BEGIN;
CREATE ROLE "d-:r" WITH LOGIN PASSWORD 'p:r' VALID UNTIL 'infinity';
GRANT app_readonly TO "d-:r";
COMMIT;
"""


def direct_rate(pg, clients, seconds):
    """pgbench running the same transaction Coffer runs per credential."""
    script = os.path.join(pg.dir, "create.sql")
    with open(script, "w") as f:
        f.write(PGBENCH_SCRIPT)
    env = dict(os.environ, PGPASSWORD="postgres")
    p = subprocess.run(
        [os.path.join(pg.bindir, "pgbench"), "-n", "-c", str(clients),
         "-j", str(clients), "-T", str(int(seconds)), "-f", script,
         "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "bench"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    m = re.search(r"tps = ([0-9.]+) \(without initial", p.stdout)
    if p.returncode != 0 or m is None:
        raise RuntimeError("pgbench failed:\n" + p.stdout)
    pg.query("DO $$DECLARE r text; BEGIN FOR r IN SELECT rolname FROM "
             "pg_roles WHERE rolname LIKE 'd-%' LOOP EXECUTE "
             "format('DROP ROLE %I', r); END LOOP; END$$")
    return float(m.group(1))


def coffer_rate(srv, clients, seconds, role="bench"):
    """wrk against GET /v1/database/creds/<role>, keep-alive."""
    p = subprocess.run(
        ["wrk", "-t", str(min(clients, 2)), "-c", str(clients),
         "-d", "%ds" % int(seconds), "--timeout", "30s",
         "-H", "X-Vault-Token: " + srv.token,
         srv.url("database/creds/" + role)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    m = re.search(r"Requests/sec:\s+([0-9.]+)", p.stdout)
    if p.returncode != 0 or m is None:
        raise RuntimeError("wrk failed:\n" + p.stdout)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", p.stdout)
    return float(m.group(1)), int(bad.group(1)) if bad else 0


def revoke_all(srv, prefix):
    t0 = time.monotonic()
    r = srv.req("PUT", "sys/leases/revoke-prefix/" + prefix, timeout=3600)
    assert r.status_code == 204, r.text
    return time.monotonic() - t0


def count_roles(pg, like):
    return pg.query("SELECT count(*) FROM pg_roles WHERE rolname LIKE %s",
                    like)[0][0]


def mass_expiry(srv, pg, leases, clients=16):
    """Issues `leases` credentials that all expire at the same second by
    retuning the role's TTL as issuance goes on."""
    client = srv.hvac_client()
    per_step = 200
    # Issuance runs at a few hundred per second; leave room for it.
    target = time.time() + 15 + leases / 250.0
    made = 0
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as ex:
        while made < leases:
            ttl = int(target - time.time())
            if ttl < 5:
                raise RuntimeError("issuance too slow for the target expiry")
            client.write("database/roles/mass", db_name="bench",
                         creation_statements=CREATE, default_ttl=ttl)
            n = min(per_step, leases - made)
            s = requests.Session()
            s.headers["X-Vault-Token"] = srv.token
            url = srv.url("database/creds/mass")
            futs = [ex.submit(s.get, url, timeout=60) for _ in range(n)]
            for f in futs:
                assert f.result().status_code == 200
            made += n
    issue_secs = time.monotonic() - t0
    pattern = "v-root-mass-%"
    assert count_roles(pg, pattern) == leases
    while time.time() < target:
        time.sleep(0.05)
    expired_at = time.monotonic()
    samples = []
    while True:
        left = count_roles(pg, pattern)
        samples.append((time.monotonic() - expired_at, left))
        if left == 0 or time.monotonic() - expired_at > 600:
            break
        time.sleep(0.2)
    drain = samples[-1][0]
    # Revocation rate while the backlog drained, from first drop to zero.
    first_drop = next((t for t, n in samples if n < leases), drain)
    rate = leases / max(drain - first_drop, 0.001)
    return issue_secs, first_drop, drain, rate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--leases", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=32)
    args = ap.parse_args()

    pg = PgCluster(dbname="bench")
    srv = None
    try:
        pg.query("CREATE ROLE app_readonly NOLOGIN")
        srv = Server(extra_args=["-workers=%d" % args.workers])
        c = srv.hvac_client()
        c.sys.enable_secrets_engine("database")
        c.write("database/config/bench",
                plugin_name="postgresql-database-plugin",
                connection_url=pg.url(templated=True, dbname="bench"),
                username="postgres", password="postgres", allowed_roles="*",
                max_open_connections=32)
        c.write("database/roles/bench", db_name="bench",
                creation_statements=CREATE, default_ttl="1h")
        print("clients  direct/s  coffer/s  ratio")
        for n in (1, 4, 16):
            d = direct_rate(pg, n, args.seconds)
            k, errors = coffer_rate(srv, n, args.seconds)
            print("%7d  %8.1f  %8.1f  %5.2f%s" % (
                n, d, k, k / d if d else 0,
                "  (%d non-2xx responses)" % errors if errors else ""))
            sys.stdout.flush()
        time.sleep(1)  # requests wrk abandoned at its deadline still finish
        made = count_roles(pg, "v-root-bench-%")
        secs = revoke_all(srv, "database/creds/bench")
        print("revoke -prefix: %d leases in %.1fs = %.0f/s; roles left: %d"
              % (made, secs, made / secs, count_roles(pg, "v-root-bench-%")))
        if args.leases > 0:
            issue, first, drain, rate = mass_expiry(srv, pg, args.leases)
            print("mass expiry: %d leases issued in %.0fs; first role gone "
                  "%.1fs after expiry, last %.1fs after; %.0f revocations/s"
                  % (args.leases, issue, first, drain, rate))
    finally:
        if srv is not None:
            srv.stop()
        pg.stop()


if __name__ == "__main__":
    main()
