"""Batched mass expiry: due leases of one mount are revoked together.

When many database leases are due at once, a revocation worker takes up
to 64 of them, revokes them in ONE PostgreSQL transaction (each lease in
its own savepoint) and deletes their records with one storage write.

To get a real backlog, the roles' revocation statements first take a
shared advisory lock that the test holds exclusively while the leases come
due ("the gate"): the first workers block on it, every other due lease
piles up in the mount's lane, and when the gate opens the workers drain
the pile in batches. Each revocation also logs its user and
txid_current() into a table, so the test sees how many transactions
revoked how many leases (one per lease without batching).
"""

import os
import signal
import tempfile
import threading
import time

import pytest

import helpers
from conftest import Server
from pgcluster import PgCluster
from realserver import RealServer

GATE = 4242
CREATE = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
          "VALID UNTIL '{{expiration}}'; GRANT app_readonly TO \"{{name}}\";")
REVOKE = ("SELECT pg_advisory_xact_lock_shared(%d); "
          "INSERT INTO revlog VALUES ('{{name}}', txid_current()); "
          "DROP ROLE IF EXISTS \"{{name}}\";" % GATE)
RETRY = ["-dev-lease-retry-base=0.05", "-dev-lease-retry-max=0.3"]
BOUND = 60.0


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    cluster.query("ALTER SYSTEM SET password_encryption = 'md5'")
    cluster.query("SELECT pg_reload_conf()")
    cluster.query("CREATE ROLE app_readonly NOLOGIN")
    cluster.query("CREATE TABLE revlog (username text, txid bigint)")
    yield cluster
    cluster.stop()


def setup_mount(srv, pg, prefix):
    r = srv.req("POST", "sys/mounts/database", json={"type": "database"})
    assert r.status_code == 204, r.text
    r = srv.req("POST", "database/config/pg", json={
        "plugin_name": "postgresql-database-plugin",
        "connection_url": pg.url(templated=True),
        "username": "postgres", "password": "postgres",
        "allowed_roles": "*", "max_open_connections": 16,
        "connect_timeout": "2s",
        # Names unique per case: the log table is shared.
        "username_template": prefix + "{{random 16}}"})
    assert r.status_code == 204, r.text


@pytest.fixture
def srv(pg):
    s = Server(extra_args=RETRY)
    setup_mount(s, pg, "b%d-" % int(time.time() * 1000 % 1e8))
    yield s
    rc = s.stop()
    assert rc == 0, s.stderr_text()[-4000:]


class Gate:
    """An exclusive advisory lock every revocation waits for."""

    def __init__(self, pg):
        self.conn = pg.connect()
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (GATE,))

    def open(self):
        if self.conn is not None:
            with self.conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", (GATE,))
            self.conn.close()
            self.conn = None


def counters(srv):
    r = srv.req("GET", "sys/metrics")
    assert r.status_code == 200, r.text
    body = r.json()
    out = {c["Name"]: c["Count"] for c in body["Counters"]}
    out.update({g["Name"]: g["Value"] for g in body["Gauges"]})
    return out


def revoked_counts(srv):
    c = counters(srv)
    return (c.get("coffer.expire.revoke.success", 0),
            c.get("coffer.expire.revoke.failure", 0))


def issue(srv, role, n, ttl, revoke=REVOKE, create=CREATE):
    """n credentials of role (TTL ttl seconds), 8 threads: [(lease, user)]."""
    r = srv.req("POST", "database/roles/" + role, json={
        "db_name": "pg", "creation_statements": create,
        "revocation_statements": revoke,
        "default_ttl": "%ds" % ttl, "max_ttl": "1h"})
    assert r.status_code == 204, r.text
    out, errors, lock = [], [], threading.Lock()
    left = [n]

    def issuer():
        while True:
            with lock:
                if left[0] == 0 or errors:
                    return
                left[0] -= 1
            r = srv.req("GET", "database/creds/" + role)
            with lock:
                if r.status_code != 200:
                    errors.append(r.text)
                else:
                    out.append((r.json()["lease_id"],
                                r.json()["data"]["username"]))

    threads = [threading.Thread(target=issuer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    return out


def roles_left(pg, users):
    rows = pg.query("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)",
                    [u for _, u in users])
    return {r[0] for r in rows}


def leases_listed(srv, role):
    r = srv.req("LIST", "sys/leases/lookup/database/creds/" + role + "/")
    if r.status_code == 404:
        return set()
    assert r.status_code == 200, r.text
    return set(r.json()["data"]["keys"])


def counted_revoked(srv, before, n):
    """Wait until the revoked counter is n above before: a lease is
    counted just after its record is deleted, so an empty listing can
    come first."""
    wait_until(lambda: revoked_counts(srv)[0] - before == n,
               "%d revocations counted" % n)


def wait_until(cond, what, bound=BOUND):
    if not helpers.wait_until(cond, bound):
        pytest.fail("%s not reached within %.0fs" % (what, bound))


def revlog(pg, users):
    return pg.query("SELECT username, txid FROM revlog "
                    "WHERE username = ANY(%s)", [u for _, u in users])


def pile_up_due(srv, pg, role, n, ttl=3, revoke=REVOKE):
    """Issues n leases behind a closed gate and waits until all are due
    and waiting; returns (leases, gate) with the gate still closed."""
    gate = Gate(pg)
    try:
        t0 = time.time()
        leases = issue(srv, role, n, ttl, revoke)
        # The last lease is due ttl after it was issued; give the expirer
        # a moment to queue it.
        time.sleep(max(0.0, t0 + ttl + (time.time() - t0) - time.time())
                   + 0.8)
    except BaseException:
        gate.open()
        raise
    return leases, gate


@pytest.mark.once
def test_due_leases_are_revoked_in_batches(srv, pg):
    """150 leases due together: every role dropped, every record gone,
    each lease revoked exactly once, in far fewer transactions than
    leases; the counters count leases, not batches."""
    ok0, fail0 = revoked_counts(srv)
    leases, gate = pile_up_due(srv, pg, "pile", 150)
    gate.open()
    wait_until(lambda: not roles_left(pg, leases) and
               not leases_listed(srv, "pile"), "all revoked")
    rows = revlog(pg, leases)
    assert sorted(u for u, _ in rows) == sorted(u for _, u in leases)
    txids = {t for _, t in rows}
    # Without batching every lease is its own transaction (150).
    assert len(txids) <= 150 // 3, len(txids)
    counted_revoked(srv, ok0, 150)
    ok1, fail1 = revoked_counts(srv)
    assert (ok1 - ok0, fail1 - fail0) == (150, 0)
    wait_until(lambda: counters(srv)["coffer.expire.num_leases"] == 0,
               "the live-lease gauge at 0")


@pytest.mark.once
def test_one_failing_lease_does_not_fail_its_batch(srv, pg):
    """One lease of the pile cannot be revoked (its role owns a table, so
    DROP ROLE fails): the others of its batch are revoked at once; it is
    retried, flagged irrevocable with the database's words, and revoked
    once the table is gone."""
    ok0, fail0 = revoked_counts(srv)
    gate = Gate(pg)
    try:
        t0 = time.time()
        leases = issue(srv, "bad", 100, 3)
        # The last issued is due last: it is in a batch, not among the
        # first revocations that block on the gate.
        bad_lease, bad_user = leases[-1]
        pg.query('CREATE TABLE "owned_%s" (x int)' % bad_user)
        pg.query('ALTER TABLE "owned_%s" OWNER TO "%s"' % (bad_user, bad_user))
        time.sleep(max(0.0, t0 + 3 + (time.time() - t0) - time.time()) + 0.8)
    finally:
        gate.open()
    wait_until(lambda: roles_left(pg, leases) == {bad_user},
               "all roles but the bad one gone")

    def flagged():
        r = srv.req("GET", "sys/leases")
        assert r.status_code == 200, r.text
        return [x for x in r.json()["data"].get("leases") or []
                if x["lease_id"] == bad_lease]
    wait_until(flagged, "the bad lease flagged irrevocable")
    assert "depend" in flagged()[0]["error"], flagged()
    assert leases_listed(srv, "bad") == {bad_lease.rsplit("/", 1)[1]}
    counted_revoked(srv, ok0, 99)
    ok1, fail1 = revoked_counts(srv)
    # Only the bad lease's attempts failed: a batch failing as a whole
    # would count each of its leases.
    assert 6 <= fail1 - fail0 <= 20, fail1 - fail0
    # Its batch-mates' work was committed despite its failure.
    assert len(revlog(pg, leases)) == 99
    pg.query('DROP TABLE "owned_%s"' % bad_user)
    wait_until(lambda: not roles_left(pg, leases) and
               not leases_listed(srv, "bad"), "the bad lease revoked")
    assert not flagged()
    counted_revoked(srv, ok0, 100)


class StatementLog:
    """PostgreSQL's log_statement = 'all' for the span of a `with`: what
    was sent (the text of each statement) is read from its log."""

    def __init__(self, pg):
        self.pg = pg

    def __enter__(self):
        self.pg.query("ALTER SYSTEM SET log_statement = 'all'")
        self.pg.query("SELECT pg_reload_conf()")
        time.sleep(0.2)
        self.offset = os.path.getsize(self.pg.log)
        return self

    def __exit__(self, *exc):
        with open(self.pg.log, errors="replace") as f:
            f.seek(self.offset)
            self.text = f.read()
        self.pg.query("ALTER SYSTEM RESET log_statement")
        self.pg.query("SELECT pg_reload_conf()")


def due_while_stopped(srv, pg, role, n, create=CREATE, before_due=None):
    """Issues n leases of role (default revocation, TTL 6 s) and keeps the
    server stopped (SIGSTOP) from before the first is due until after the
    last is, so that it wakes to the whole pile. before_due(leases) runs
    while it is stopped. Returns the leases."""
    ttl = 6  # room for a slow run to issue them all before the first is due
    t0 = time.time()
    leases = issue(srv, role, n, ttl, revoke="", create=create)
    issued = time.time()
    assert issued - t0 < ttl - 0.5, "issuing took %.1fs" % (issued - t0)
    srv.proc.send_signal(signal.SIGSTOP)
    try:
        if before_due:
            before_due(leases)
        time.sleep(max(0.0, issued + ttl + 1.2 - time.time()))
    finally:
        srv.proc.send_signal(signal.SIGCONT)
    return leases


@pytest.mark.once
def test_default_revocation_revokes_a_batch_in_one_statement(srv, pg):
    """Leases with the plugin's default revocation, due together: a batch
    of them is revoked by one DO block (one transaction for many roles);
    roles holding privileges (the REVOKE path) too, batches taking turns
    on their REVOKEs; one role
    that owns a table fails its block, and then its batch-mates are
    revoked one by one while it alone stays."""
    ok0, _ = revoked_counts(srv)
    with StatementLog(pg) as log:
        plain = due_while_stopped(srv, pg, "plain", 60)
        wait_until(lambda: not roles_left(pg, plain), "all roles gone")
    wait_until(lambda: not leases_listed(srv, "plain"), "all leases gone")
    # One revocation block per batch (a batch: up to 64 leases, one
    # transaction), not one per lease (60). How the pile splits into
    # batches depends on how fast the workers wake (a loaded machine makes
    # more, smaller ones), so: far fewer blocks than leases, and blocks
    # that carry many names.
    blocks = log.text.split("DO $coffer_revoke$")[1:]
    names = [b.split("]::text[]")[0].count("'") // 2 for b in blocks]
    assert 1 <= len(blocks) <= 60 // 2, len(blocks)
    assert max(names) >= 5, names

    # Roles with privileges take the block's REVOKE path.
    pg.query("CREATE TABLE IF NOT EXISTS granted (x int)")

    def granted_everywhere(leases):
        rows = pg.query("SELECT count(*) FROM information_schema."
                        "role_table_grants WHERE table_name = 'granted' "
                        "AND grantee = ANY(%s)", [u for _, u in leases])
        assert rows[0][0] == 30
    with StatementLog(pg) as log:
        granted = due_while_stopped(
            srv, pg, "granted", 30, before_due=granted_everywhere,
            create=CREATE + ' GRANT SELECT ON granted TO "{{name}}";')
        wait_until(lambda: not roles_left(pg, granted), "granted gone")
    wait_until(lambda: not leases_listed(srv, "granted"),
               "all granted revoked")
    # Batches running at once take turns on the REVOKEs (an advisory
    # lock), rather than colliding on the table's ACL ("tuple concurrently
    # updated") and falling back to one lease at a time (~30 blocks).
    blocks = log.text.count("DO $coffer_revoke$")
    assert 1 <= blocks <= 30 // 2, blocks
    counted_revoked(srv, ok0, 90)
    ok1 = ok0 + 90

    # One role that owns a table in the pile: its block fails, the
    # batch falls back to one savepoint per lease.
    bad = []

    def own_a_table(leases):
        user = leases[len(leases) // 2][1]
        pg.query('CREATE TABLE "owned_%s" (x int)' % user)
        pg.query('ALTER TABLE "owned_%s" OWNER TO "%s"' % (user, user))
        bad.append(user)
    pile = due_while_stopped(srv, pg, "mixed", 40, before_due=own_a_table)
    wait_until(lambda: roles_left(pg, pile) == {bad[0]},
               "all roles but the table owner gone")
    counted_revoked(srv, ok1, 39)
    pg.query('DROP TABLE "owned_%s"' % bad[0])
    wait_until(lambda: not roles_left(pg, pile) and
               not leases_listed(srv, "mixed"), "the owner revoked")


@pytest.mark.once
def test_revoked_by_hand_while_its_batch_runs(srv, pg):
    """Leases revoked through sys/leases/revoke while the expiry of the
    same leases is piled up and draining: each lease is revoked once and
    counted once."""
    ok0, fail0 = revoked_counts(srv)
    leases, gate = pile_up_due(srv, pg, "hand", 120)
    by_hand = leases[20:120:4]  # 25 leases spread over the pile
    results = []

    def revoke(lease_id):
        r = srv.req("PUT", "sys/leases/revoke",
                    json={"lease_id": lease_id, "sync": True})
        results.append(r.status_code)

    threads = [threading.Thread(target=revoke, args=(lid,))
               for lid, _ in by_hand]
    try:
        for t in threads:
            t.start()
        time.sleep(0.3)
    finally:
        gate.open()
    for t in threads:
        t.join()
    assert results == [204] * len(by_hand), results
    wait_until(lambda: not roles_left(pg, leases) and
               not leases_listed(srv, "hand"), "all revoked")
    rows = revlog(pg, leases)
    # Each role's revocation ran once: never both by hand and by expiry.
    assert sorted(u for u, _ in rows) == sorted(u for _, u in leases)
    counted_revoked(srv, ok0, 120)
    ok1, fail1 = revoked_counts(srv)
    assert (ok1 - ok0, fail1 - fail0) == (120, 0)
    wait_until(lambda: counters(srv)["coffer.expire.num_leases"] == 0,
               "the live-lease gauge at 0")


@pytest.mark.once
def test_crash_in_the_middle_leaves_nothing_behind(pg):
    """A real server (sqlite) is killed while a pile of due leases is
    being revoked in batches; after a restart and unseal every role is
    gone and so is every lease record."""
    with tempfile.TemporaryDirectory(prefix="coffer-batch-") as d:
        srv = RealServer(d, storage="sqlite")
        srv.start(extra_args=RETRY)
        keys, _ = srv.init(shares=1, threshold=1)
        srv.unseal(keys)
        setup_mount(srv, pg, "c%d-" % int(time.time() * 1000 % 1e8))
        # 5 ms per revocation: a batch of 64 is in flight for 0.3 s.
        slow = REVOKE + " SELECT pg_sleep(0.005);"
        leases, gate = pile_up_due(srv, pg, "crash", 300, revoke=slow)
        gate.open()
        # Mid-storm: once the first revocations committed, with the
        # batches behind them in flight.
        while len(roles_left(pg, leases)) == 300:
            time.sleep(0.005)
        srv.kill9()
        gone_before = 300 - len(roles_left(pg, leases))
        srv.start(extra_args=RETRY)
        srv.unseal(keys)
        wait_until(lambda: not roles_left(pg, leases) and
                   not leases_listed(srv, "crash"), "all revoked after restart")
        assert counters(srv)["coffer.expire.num_leases"] == 0
        r = srv.req("GET", "sys/leases")
        assert r.json()["data"]["lease_count"] == 0, r.text
        srv.stop()
        # The kill landed mid-storm (not before or after it), else the
        # case proves nothing; tolerate a slow machine by saying so.
        assert gone_before < 300, "the storm ended before the kill"


@pytest.mark.once
def test_token_leases_due_together_all_expire():
    """Token leases do not batch (token.c revokes each token tree): a
    pile of them due together still ends with every token unusable and
    every lease gone."""
    s = Server(extra_args=RETRY)
    try:
        tokens = []
        for _ in range(120):
            r = s.req("POST", "auth/token/create",
                      json={"ttl": "3s", "policies": ["default"]})
            assert r.status_code == 200, r.text
            tokens.append(r.json()["auth"]["client_token"])
        # The newest: a "3s" token may live only 2 s (whole seconds), and
        # creating 120 can take longer than that on a slow run.
        assert s.req("GET", "auth/token/lookup-self",
                     token=tokens[-1]).status_code == 200
        wait_until(lambda: counters(s)["coffer.expire.num_leases"] == 0,
                   "every token lease gone", bound=30)
        for t in tokens:
            r = s.req("GET", "auth/token/lookup-self", token=t)
            assert r.status_code == 403, r.text
    finally:
        assert s.stop() == 0, s.stderr_text()[-4000:]
