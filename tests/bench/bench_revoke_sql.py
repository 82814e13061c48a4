#!/usr/bin/python3
"""Benchmark: the SQL side of mass revocation on PostgreSQL (issue 14).

Same PostgreSQL as bench_server.py (default settings: fsync on, SCRAM).
For each way of sending revocations, --roles roles (LOGIN, members of
app_readonly, like issued credentials) are created, then dropped, and
roles/s printed:

  drop-8       one `DROP ROLE` per transaction, 8 connections (the direct
               baseline of bench_server.py's expiry part)
  blocks-4     the postgresql plugin's default revocation as one DO block
               per role, 64 blocks per transaction, 4 connections (what a
               batch of the engine sent before default_revoke_many_sql)
  many-4       the plugin's default revocation of 64 roles as ONE DO
               block per transaction, 4 connections (what it sends now)
  drops-4      64 plain `DROP ROLE`s per transaction, 4 connections (the
               floor: no privilege check at all)

The SQL of the plugin is taken from lua/coffer/dbplugin_postgresql.lua, so
the figures follow the code. Usage: bench_revoke_sql.py [--roles 5000]
"""

import argparse
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)

from bench_server import DefaultPg, GROUP, note  # noqa: E402

BATCH = 64


def lua_long_string(src, name):
    """The text of `local NAME = [[...]]` in a Lua source."""
    start = src.index("local %s = [[" % name) + len("local %s = [[" % name)
    return src[start:src.index("]]", start)]


def plugin_block():
    """The postgresql plugin's default_revoke_many_sql as SQL with {NAMES}:
    REVOKE_BLOCK with its sessions part (TERMINATE_SESSIONS, as with the
    default revoke_sessions = true)."""
    path = os.path.join(ROOT, "lua", "coffer", "dbplugin_postgresql.lua")
    with open(path) as f:
        src = f.read()
    block = lua_long_string(src, "REVOKE_BLOCK").strip()
    terminate = lua_long_string(src, "TERMINATE_SESSIONS")
    # Lua's string.format: the first %s is the list of name literals, the
    # second the sessions part; %% is a percent.
    block = block.replace("%s", "{NAMES}", 1).replace("%s", "{TERMINATE}", 1)
    return block.replace("%%", "%").replace("{TERMINATE}", terminate)


def make_roles(pg, prefix, n):
    pg.query("DO $$BEGIN FOR i IN 1..%d LOOP EXECUTE format('CREATE ROLE %%I "
             "LOGIN VALID UNTIL ''infinity''', '%s' || i); EXECUTE format("
             "'GRANT %s TO %%I', '%s' || i); END LOOP; END$$"
             % (n, prefix, GROUP, prefix))


def timed(pg, n, conns, work):
    cs = [pg.connect() for _ in range(conns)]
    for c in cs:
        c.autocommit = True
    errors = []

    def run(i):
        try:
            with cs[i].cursor() as cur:
                work(cur, [j for j in range(1, n + 1) if j % conns == i])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(str(e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(conns)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    for c in cs:
        c.close()
    if errors:
        raise RuntimeError(errors[0])
    return n / secs


def batches(ids):
    for k in range(0, len(ids), BATCH):
        yield ids[k:k + BATCH]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--roles", type=int, default=5000)
    args = ap.parse_args()
    n = args.roles
    block = plugin_block()

    def lit(prefix, j):
        return "'%s%d'" % (prefix, j)

    ways = [
        ("drop-8", 8, lambda p: lambda cur, ids: [
            cur.execute('DROP ROLE "%s%d"' % (p, j)) for j in ids]),
        ("blocks-4", 4, lambda p: lambda cur, ids: [
            cur.execute("BEGIN;" + ";".join(
                block.replace("{NAMES}", lit(p, j)) for j in b) + ";COMMIT")
            for b in batches(ids)]),
        ("many-4", 4, lambda p: lambda cur, ids: [
            cur.execute("BEGIN;" + block.replace(
                "{NAMES}", ", ".join(lit(p, j) for j in b)) + ";COMMIT")
            for b in batches(ids)]),
        ("drops-4", 4, lambda p: lambda cur, ids: [
            cur.execute("BEGIN;" + ";".join(
                'DROP ROLE "%s%d"' % (p, j) for j in b) + ";COMMIT")
            for b in batches(ids)]),
    ]
    pg = DefaultPg(dbname="bench")
    try:
        pg.query("CREATE ROLE %s NOLOGIN" % GROUP)
        results = {}
        for i, (name, conns, work) in enumerate(ways):
            prefix = "r%d-" % i
            make_roles(pg, prefix, n)
            results[name] = timed(pg, n, conns, work(prefix))
            left = pg.query("SELECT count(*) FROM pg_roles WHERE rolname "
                            "LIKE %s", prefix + "%")[0][0]
            if left:
                raise RuntimeError("%s: %d roles left" % (name, left))
            note("  %-9s %8.0f roles/s  (%.2f of drop-8)" % (
                name, results[name], results[name] / results["drop-8"]))
    finally:
        pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
