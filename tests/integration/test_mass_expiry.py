"""Mass expiry: thousands of database leases due at the same second.

Every lease's role must be gone from pg_roles, its record gone and the
lease gauge back to zero, within a generous correctness bound (this is not
a performance test: bench_server.py --only expiry measures the rate). The
roles are members of one group role, like real credentials, so concurrent
DROP ROLEs touch the same catalog rows; a few also hold a table grant,
which takes the full revocation (REVOKEs on shared catalog rows that
conflict with "tuple concurrently updated" and must be retried). A second
case stops PostgreSQL while the leases come due: every role must still go
once it is back (failures retry with backoff).

The revocation workers' priority (lease_revocation_nice): when the server
unseals they start that many nice steps below the process's own value (10
by default, 19 at most), so they stay below the request threads under
`nice` too; 0 leaves them on a par; out-of-range values are refused at
start-up.
"""

import os
import subprocess
import tempfile
import threading
import time

import pytest

import realserver
from conftest import Server, coffer_bin
from helpers import thread_stats
from pgcluster import PgCluster
from realserver import RealServer

CREATE = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
          "VALID UNTIL '{{expiration}}'; GRANT app_readonly TO \"{{name}}\";")
CREATE_TABLE_GRANT = CREATE + ' GRANT SELECT ON shared_table TO "{{name}}";'
BOUND = 120.0  # seconds: a correctness bound, far above any expected time


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    # Issuing thousands of credentials would spend ~9 ms of SCRAM hashing
    # per CREATE ROLE ... PASSWORD; md5 keeps the set-up short. Revocation,
    # which is what is tested, does not depend on it.
    cluster.query("ALTER SYSTEM SET password_encryption = 'md5'")
    cluster.query("SELECT pg_reload_conf()")
    cluster.query("CREATE ROLE app_readonly NOLOGIN")
    cluster.query("CREATE TABLE shared_table (x int)")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def srv(pg):
    s = Server(extra_args=["-dev-lease-retry-base=0.05",
                           "-dev-lease-retry-max=0.5"])
    r = s.req("POST", "sys/mounts/database", json={"type": "database"})
    assert r.status_code == 204, r.text
    r = s.req("POST", "database/config/pg", json={
        "plugin_name": "postgresql-database-plugin",
        "connection_url": pg.url(templated=True),
        "username": "postgres", "password": "postgres",
        "allowed_roles": "*", "max_open_connections": 16,
        "connect_timeout": "2s"})
    assert r.status_code == 204, r.text
    yield s
    rc = s.stop()
    assert rc == 0, s.stderr_text()[-4000:]


def live_leases(srv):
    r = srv.req("GET", "sys/metrics")
    assert r.status_code == 200, r.text
    return {g["Name"]: g["Value"] for g in r.json()["Gauges"]}[
        "coffer.expire.num_leases"]


def count_roles(pg, prefix):
    return pg.query("SELECT count(*) FROM pg_roles WHERE rolname LIKE %s",
                    prefix + "%")[0][0]


def set_role(srv, role, ttl, statements=CREATE):
    r = srv.req("POST", "database/roles/" + role, json={
        "db_name": "pg", "creation_statements": statements,
        "default_ttl": "%ds" % ttl, "max_ttl": "1h"})
    assert r.status_code == 204, r.text


def issue_due_together(srv, role, n, lead=6.0, statements=CREATE):
    """Issues n credentials of role that all expire within about a second
    of one target time: the role's default_ttl follows (target - now) while
    8 threads issue. Returns the target (epoch seconds)."""
    target = time.time() + lead + n / 400.0
    lock = threading.Lock()
    state = {"left": n, "errors": [], "due": []}
    done = threading.Event()

    def retune():
        while not done.wait(0.2):
            set_role(srv, role, max(1, round(target - time.time())),
                     statements)

    def issuer():
        while True:
            with lock:
                if state["left"] == 0 or state["errors"]:
                    return
                state["left"] -= 1
            r = srv.req("GET", "database/creds/" + role)
            with lock:
                if r.status_code != 200:
                    state["errors"].append(r.text)
                else:
                    state["due"].append(time.time() +
                                        r.json()["lease_duration"])

    set_role(srv, role, round(target - time.time()), statements)
    t = threading.Thread(target=retune)
    t.start()
    threads = [threading.Thread(target=issuer) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    done.set()
    t.join()
    assert not state["errors"], state["errors"][:3]
    assert max(state["due"]) < target + 1.5, "issuance too slow for the test"
    # Nothing may go before it is due.
    assert min(state["due"]) > time.time(), "leases expired during issuance"
    return target


def wait_all_gone(srv, pg, prefix, bound=BOUND):
    deadline = time.monotonic() + bound
    left = live = None
    while time.monotonic() < deadline:
        left = count_roles(pg, prefix)
        live = live_leases(srv)
        if left == 0 and live == 0:
            return
        time.sleep(0.2)
    pytest.fail("%d roles and %d leases left %.0fs after they were due"
                % (left, live, bound))


def no_lease_listed(srv, role):
    r = srv.req("LIST", "sys/leases/lookup/database/creds/" + role + "/")
    return r.status_code == 404 or not r.json().get("data", {}).get("keys")


@pytest.mark.once
def test_mass_expiry_revokes_every_lease(srv, pg):
    """2,000 leases of group members plus 50 with a table grant, due at
    once: every role is dropped, every record deleted, the gauge is 0."""
    assert live_leases(srv) == 0
    # A lead long enough for the 50 to be issued and both piles counted
    # before the first is due, on a slow run too.
    target = issue_due_together(srv, "mass", 2000, lead=9.0)
    issue_due_together(srv, "tbl", 50, lead=max(1.0, target - time.time()),
                       statements=CREATE_TABLE_GRANT)
    assert count_roles(pg, "v-root-mass-") == 2000
    assert count_roles(pg, "v-root-tbl-") == 50
    assert live_leases(srv) == 2050
    wait_all_gone(srv, pg, "v-root-")
    assert no_lease_listed(srv, "mass") and no_lease_listed(srv, "tbl")
    # The table grants were revoked, not left behind on the table.
    acl = pg.query("SELECT relacl::text FROM pg_class "
                   "WHERE relname = 'shared_table'")[0][0]
    assert acl is None or "v-root-" not in acl


@pytest.mark.once
def test_mass_expiry_survives_a_database_outage(srv, pg):
    """The database goes down as 300 leases come due and is back two
    seconds later: failures retry with backoff and every role goes."""
    assert live_leases(srv) == 0
    target = issue_due_together(srv, "outage", 300)
    while time.time() < target - 0.3:
        time.sleep(0.05)
    pg.stop_server()
    try:
        time.sleep(2.0)
    finally:
        pg.start()
    wait_all_gone(srv, pg, "v-root-outage-")
    assert no_lease_listed(srv, "outage")
    # The server still serves: a new credential works and is revoked.
    r = srv.req("GET", "database/creds/outage")
    assert r.status_code == 200, r.text
    r = srv.req("PUT", "sys/leases/revoke",
                json={"lease_id": r.json()["lease_id"], "sync": True})
    assert r.status_code == 204, r.text
    assert live_leases(srv) == 0


# ------------------------------------------------ the workers' priority --

def thread_nices(pid):
    """{tid: nice} of pid's threads."""
    return {tid: int(f[16]) for tid, f in thread_stats(pid).items()}


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
