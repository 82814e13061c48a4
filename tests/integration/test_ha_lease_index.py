"""HA takeover from the standby's lease index (issue 12): a standby keeps
an index of every lease the active writes (it hears the lease keys on the
change channel and reads each record again), and on takeover the new
active starts expirations from it at once, then reconciles it with
storage in the background. A listener that broke makes the takeover fall
back to the full restore; a lease revoked on the active does not come
back; a lease due during the failover is revoked within seconds.
Also: disable_request_forwarding leaves standby reads on.
"""

import re
import signal
import threading
import time

import pytest

from pgcluster import PgCluster
from test_ha import CREATE, Cluster, others


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def pair(pg):
    made = []

    def make(extra=""):
        c = Cluster(pg, n=2, extra=extra)
        made.append(c)
        c.start_all()
        c.init_and_unseal()
        active = c.wait_active()
        return c, active, others(c, active)[0]
    yield make
    for c in made:
        c.close()


def setup_database(node, pg):
    hc = node.client()
    hc.sys.enable_secrets_engine("database")
    hc.write("database/config/myapp",
             plugin_name="postgresql-database-plugin",
             connection_url=pg.url(templated=True), username="postgres",
             password="postgres", allowed_roles="*")
    hc.write("database/roles/short", db_name="myapp",
             creation_statements=CREATE, default_ttl="3s")
    hc.write("database/roles/long", db_name="myapp",
             creation_statements=CREATE, default_ttl="1h")
    return hc


def wait_log(node, pattern, since=0, timeout=15):
    """The first match of pattern in node's log after offset since."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, node.log()[since:])
        if m is not None:
            return m
        time.sleep(0.05)
    raise AssertionError("no %r in the log of %s:\n%s" % (
        pattern, node.addr, node.log()[-3000:]))


def takeover_log(node):
    """node's log from its last lock acquisition on."""
    log = node.log()
    return log[log.rindex("holds the lock"):]


def reconciled(node):
    """(leases, missing, due earlier) of node's reconciliation after its
    last lock acquisition."""
    r = wait_log(node, r"reconciled the index with storage: (\d+) "
                 r"leases, (\d+) were missing, (\d+) due earlier",
                 since=node.log().rindex("holds the lock"))
    return int(r.group(1)), int(r.group(2)), int(r.group(3))


def kill_and_take_over(c, active, standby):
    """kill -9 of active; standby takes over from its lease index, with no
    full scan before expirations. (the new active, leases it took)"""
    active.kill9()
    new = c.wait_active(among=[standby], timeout=20)
    assert new is standby
    log = takeover_log(standby)
    m = re.search(r"took over the standby index of (\d+) leases", log)
    assert m is not None, log[-3000:]
    assert "lease: restored" not in log
    return new, int(m.group(1))


def creds(hc, role):
    r = hc.read("database/creds/" + role)
    return r["lease_id"], r["data"]["username"]


# ----------------------------------------------------------------------------

@pytest.mark.once
def test_takeover_starts_from_the_standby_index(pair, pg):
    c, active, standby = pair()
    hc = setup_database(active, pg)
    wait_log(standby, r"standby index of \d+ leases built")
    keep_id, keep_user = creds(hc, "long")
    gone_id, gone_user = creds(hc, "long")
    hc.sys.revoke_lease(gone_id)
    assert pg.wait_role_gone(gone_user, timeout=10)
    # Issued just before the kill: its notes may still be in flight; the
    # handoff must wait for them.
    short_id, short_user = creds(hc, "short")
    new, took = kill_and_take_over(c, active, standby)
    log = takeover_log(standby)
    # Nothing the old active wrote was missed, and the revoked lease did
    # not come back into the index.
    assert reconciled(standby) == (took, 0, 0), log[-3000:]
    assert took == 2, log[-3000:]  # keep and short
    # The short lease was due during the failover: revoked by the new
    # active; the long one is left alone.
    assert pg.wait_role_gone(short_user, timeout=15), short_user
    assert pg.role_exists(keep_user)
    nc = new.client()
    assert nc.sys.read_lease(keep_id)["data"]["id"] == keep_id
    r = new.req("PUT", "sys/leases/lookup", json={"lease_id": gone_id})
    assert r.status_code == 400, r.text


@pytest.mark.once
def test_a_broken_listener_makes_the_takeover_restore_everything(pair, pg):
    c, active, standby = pair()
    hc = setup_database(active, pg)
    wait_log(standby, r"standby index of \d+ leases built")
    standby.proc.send_signal(signal.SIGSTOP)
    try:
        killed = pg.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND query LIKE 'LISTEN%%'", c.dbname)
        assert killed, "no listening session"
        # Written while the standby cannot hear it.
        short_id, short_user = creds(hc, "short")
        active.kill9()
        time.sleep(4.5)  # the lock's TTL
    finally:
        standby.proc.send_signal(signal.SIGCONT)
    new = c.wait_active(among=[standby], timeout=20)
    assert new is standby
    log = takeover_log(standby)
    m = wait_log(standby, r"lease: restored (\d+) leases",
                 since=standby.log().rindex("holds the lock"))
    assert int(m.group(1)) == 1, log[-3000:]
    assert "took over the standby index" not in takeover_log(standby)
    assert pg.wait_role_gone(short_user, timeout=15), short_user


@pytest.mark.once
def test_without_forwarding_a_standby_still_serves_reads(pair):
    c, active, standby = pair(extra="disable_request_forwarding = true")
    r = active.req("POST", "sys/mounts/kv1", json={"type": "kv"})
    assert r.status_code == 204, r.text
    r = active.req("POST", "kv1/app", json={"k": "v"})
    assert r.status_code == 204, r.text
    deadline = time.monotonic() + 10
    while True:
        # The active paused: only the standby itself can answer.
        active.proc.send_signal(signal.SIGSTOP)
        try:
            r = standby.req("GET", "kv1/app", allow_redirects=False,
                            timeout=2)
        finally:
            active.proc.send_signal(signal.SIGCONT)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.json()["data"] == {"k": "v"}
    # Writes are still redirected.
    r = standby.req("POST", "kv1/app", json={"k": "w"},
                    allow_redirects=False)
    assert r.status_code == 307, r.text
    assert r.headers["Location"] == active.addr + "/v1/kv1/app"


@pytest.mark.once
def test_issuance_cut_by_kill9_is_all_in_the_index_and_revoked(pair):
    """Tokens (each with a lease) issued on the active from four clients
    until it is killed: the takeover's index holds every one (the
    reconciliation finds none missing) and every token a client received
    is revoked once its TTL is over."""
    c, active, standby = pair()
    wait_log(standby, r"standby index of \d+ leases built")
    made, stop = [], threading.Event()

    def issue():
        while not stop.is_set():
            try:
                r = active.req("POST", "auth/token/create", timeout=5,
                               json={"ttl": "3s", "policies": ["default"]})
            except Exception:  # noqa: BLE001 - the kill
                return
            if r.status_code != 200:
                return
            made.append(r.json()["auth"]["client_token"])
    threads = [threading.Thread(target=issue) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    active.kill9()
    stop.set()
    for t in threads:
        t.join()
    assert len(made) > 20, len(made)
    new = c.wait_active(among=[standby], timeout=20)
    m = re.search(r"took over the standby index of (\d+) leases",
                  takeover_log(standby))
    assert m is not None, takeover_log(standby)[-3000:]
    assert reconciled(standby)[1:] == (0, 0)
    assert int(m.group(1)) >= len(made)
    deadline = time.monotonic() + 20
    alive = list(made)
    while alive and time.monotonic() < deadline:
        alive = [t for t in alive
                 if new.req("GET", "auth/token/lookup-self",
                            token=t).status_code == 200]
        time.sleep(0.5)
    assert not alive, "%d of %d tokens outlived their TTL" % (
        len(alive), len(made))
