"""High availability on PostgreSQL (issue 12): several real nodes on one
PostgreSQL database, one active (the HA lock holder), the others standing
by and forwarding; failover after kill -9, fencing after SIGSTOP,
step-down, and the client address a standby forwards.
"""

import os
import re
import signal
import subprocess
import tempfile
import threading
import time

import hvac
import pytest
import requests

from helpers import wait_until
from pgcluster import PgCluster
from realserver import RealServer

CREATE = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
          "VALID UNTIL '{{expiration}}';")


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


class Cluster:
    """n nodes on one fresh database; stopped (and their dirs removed)
    by close()."""

    def __init__(self, pg, n=3, lock_ttl="4s", extra="", tls=None,
                 extras=None):
        """tls: (cert, key) for every node's listener; extras: a config
        line per node, after extra."""
        self.dbname = "coffer_ha_" + os.urandom(4).hex()
        pg.query("CREATE DATABASE " + self.dbname)
        self.url = pg.url(dbname=self.dbname)
        self.pg = pg
        self.nodes = []
        for i in range(n):
            d = tempfile.mkdtemp(prefix="coffer-ha-")
            node = RealServer(d, storage="inmem", tls=tls)
            with open(node.config, "w") as f:
                if tls:
                    f.write('listener "tcp" { address = "127.0.0.1:%d", '
                            'tls_cert_file = "%s", tls_key_file = "%s" }\n'
                            % (node.port, tls[0], tls[1]))
                else:
                    f.write('listener "tcp" { address = "127.0.0.1:%d", '
                            'tls_disable = true }\n' % node.port)
                if extras:
                    extra_i = extra + "\n" + extras[i]
                else:
                    extra_i = extra
                f.write('storage "postgresql" { connection_url = "%s", '
                        'table = "coffer_kv", ha_enabled = true, '
                        'ha_lock_ttl = "%s" }\n' % (self.url, lock_ttl))
                f.write('api_addr = "%s"\n%s\n' % (node.addr, extra_i))
            self.nodes.append(node)
        self.keys = None
        self.root = None

    def start_all(self):
        for node in self.nodes:
            node.start()

    def init_and_unseal(self):
        self.keys, self.root = self.nodes[0].init(shares=1, threshold=1)
        for node in self.nodes:
            node.token = self.root
            node.unseal(self.keys)

    def leader_view(self, node):
        r = node.req("GET", "sys/leader", token=False, timeout=5)
        assert r.status_code == 200, r.text
        return r.json()

    def wait_active(self, among=None, timeout=20):
        among = among if among is not None else self.nodes
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            actives = []
            for node in among:
                try:
                    if self.leader_view(node)["is_self"]:
                        actives.append(node)
                except requests.RequestException:
                    pass
            if len(actives) == 1 and self._agree(among, actives[0]):
                return actives[0]
            time.sleep(0.1)
        raise AssertionError("no single active node within %ss" % timeout)

    def _agree(self, among, active):
        """Every node names the active (standbys poll the lock row)."""
        try:
            return all(self.leader_view(n)["leader_address"] == active.addr
                       for n in among)
        except requests.RequestException:
            return False

    def close(self):
        for node in self.nodes:
            if node.proc is not None:
                if node.proc.poll() is None:
                    try:
                        node.proc.send_signal(signal.SIGCONT)
                    except ProcessLookupError:
                        pass
                node.stop()
            subprocess.run(["rm", "-rf", node.dir])


@pytest.fixture
def cluster(pg):
    made = []

    def make(**kw):
        c = Cluster(pg, **kw)
        made.append(c)
        c.start_all()
        c.init_and_unseal()
        return c
    yield make
    for c in made:
        c.close()


def others(c, node):
    return [n for n in c.nodes if n is not node]


# ----------------------------------------------------------------------------

def test_three_nodes_agree_on_one_active_and_standbys_answer_429(cluster):
    c = cluster()
    active = c.wait_active()
    for node in c.nodes:
        view = c.leader_view(node)
        assert view["ha_enabled"] is True
        assert view["leader_address"] == active.addr
        assert view["is_self"] == (node is active)
    r = active.req("GET", "sys/health", token=False)
    assert r.status_code == 200 and r.json()["standby"] is False
    for node in others(c, active):
        r = node.req("GET", "sys/health", token=False)
        assert r.status_code == 429, r.text
        body = r.json()
        assert body["standby"] is True and body["sealed"] is False
        assert node.req("GET", "sys/health?standbyok=true",
                        token=False).status_code == 200
        st = node.req("GET", "sys/seal-status", token=False).json()
        assert st["sealed"] is False
        rc, out, _ = node.cli("status")
        assert rc == 0 and re.search(r"HA Mode\s+standby", out), out
        assert re.search(r"Active Node Address\s+" + re.escape(active.addr),
                         out), out
    rc, out, _ = active.cli("status")
    assert rc == 0 and re.search(r"HA Mode\s+active", out), out
    # Every node reports the same cluster identity.
    ids = {n.req("GET", "sys/health?standbyok=true",
                 token=False).json()["cluster_id"] for n in c.nodes}
    assert len(ids) == 1, ids


def test_writes_through_a_standby_are_forwarded(cluster, pg):
    c = cluster()
    active = c.wait_active()
    standby = others(c, active)[0]
    hc = standby.client()
    hc.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})
    hc.secrets.kv.v2.create_or_update_secret("app", secret={"k": "v1"},
                                             mount_point="kv")
    got = active.client().secrets.kv.v2.read_secret_version(
        "app", mount_point="kv")
    assert got["data"]["data"] == {"k": "v1"}
    # A LIST and a read with a query go through too.
    assert standby.client().secrets.kv.v2.list_secrets(
        "", mount_point="kv")["data"]["keys"] == ["app"]
    # Database credentials issued through a standby exist in PostgreSQL.
    hc.sys.enable_secrets_engine("database")
    hc.write("database/config/myapp",
             plugin_name="postgresql-database-plugin",
             connection_url=pg.url(templated=True), username="postgres",
             password="postgres", allowed_roles="*")
    hc.write("database/roles/app", db_name="myapp",
             creation_statements=CREATE, default_ttl="1h")
    creds = hc.read("database/creds/app")
    assert creds["lease_id"].startswith("database/creds/app/")
    assert pg.role_exists(creds["data"]["username"])
    # Errors come back as the active wrote them.
    r = standby.req("GET", "kv/data/missing")
    assert r.status_code == 404
    r = standby.req("GET", "kv/data/app", token="not-a-token")
    assert r.status_code == 403


def test_a_forwarded_request_keeps_the_client_address(cluster):
    c = cluster()
    active = c.wait_active()
    standby = others(c, active)[0]
    hc = active.client()
    hc.write("auth/token/roles/near", token_bound_cidrs=["127.0.0.1/32"],
             orphan=True)
    hc.write("auth/token/roles/far", token_bound_cidrs=["10.0.0.0/8"],
             orphan=True)
    tok = hc.write("auth/token/create/near")["auth"]["client_token"]
    far_tok = hc.write("auth/token/create/far")["auth"]["client_token"]
    assert active.req("GET", "auth/token/lookup-self",
                      token=far_tok).status_code == 403
    assert standby.req("GET", "auth/token/lookup-self",
                       token=tok).status_code == 200
    assert standby.req("GET", "auth/token/lookup-self",
                       token=far_tok).status_code == 403
    # A client cannot claim an address by sending the header itself: the
    # active ignores a signature that does not hold, and a standby does
    # not forward a request that already carries one (one hop only).
    forged = {"X-Coffer-Forwarded-For":
              "10.1.2.3 %d %s" % (time.time() * 1000, "0" * 64)}
    r = active.req("GET", "auth/token/lookup-self", token=far_tok,
                   headers=forged)
    assert r.status_code == 403, r.text
    r = standby.req("GET", "auth/token/lookup-self", token=far_tok,
                    headers=forged)
    assert r.status_code == 503 and "retry" in r.text, r.text
    assert "ignoring an X-Coffer-Forwarded-For" in active.log()


def test_kill9_of_the_active_fails_over_and_revokes_due_leases(cluster, pg):
    c = cluster()
    active = c.wait_active()
    hc = active.client()
    hc.sys.enable_secrets_engine("database")
    hc.write("database/config/myapp",
             plugin_name="postgresql-database-plugin",
             connection_url=pg.url(templated=True), username="postgres",
             password="postgres", allowed_roles="*")
    hc.write("database/roles/short", db_name="myapp",
             creation_statements=CREATE, default_ttl="4s")
    short = hc.read("database/creds/short")
    user = short["data"]["username"]
    assert pg.role_exists(user)
    hc.sys.enable_secrets_engine("kv", path="kv", options={"version": "1"})
    hc.write("kv/before", v="1")
    killed_at = time.monotonic()
    active.kill9()
    rest = others(c, active)
    new = c.wait_active(among=rest, timeout=20)
    # The first write on the new active.
    while True:
        try:
            new.client().write("kv/after", v="2")
            break
        except hvac.exceptions.VaultError:
            assert time.monotonic() - killed_at < 30
            time.sleep(0.05)
    failover = time.monotonic() - killed_at
    assert failover < 15, failover
    assert new.client().read("kv/before")["data"] == {"v": "1"}
    # Standbys now name the new active.
    for node in rest:
        assert c.leader_view(node)["leader_address"] == new.addr
    # The lease was due during or just after the failover: revoked.
    assert pg.wait_role_gone(user, timeout=20), user


def test_a_paused_active_is_fenced_and_steps_down(cluster):
    c = cluster(lock_ttl="3s")
    old = c.wait_active()
    hc = old.client()
    hc.sys.enable_secrets_engine("kv", path="kv", options={"version": "1"})
    hc.write("kv/x", v="before")
    old.proc.send_signal(signal.SIGSTOP)
    try:
        new = c.wait_active(among=others(c, old), timeout=20)
        new.client().write("kv/x", v="new-active")
    finally:
        old.proc.send_signal(signal.SIGCONT)
    # Right after waking, the old node may still think it is active: every
    # write it acknowledges must be one the new active can read (it was
    # forwarded), and none may overwrite what the new active wrote.
    acked = []
    for i in range(30):
        try:
            r = old.req("PUT", "kv/old-%d" % i, json={"v": str(i)}, timeout=10)
            if r.status_code in (200, 204):
                acked.append(i)
        except requests.RequestException:
            pass
        time.sleep(0.05)
    deadline = time.monotonic() + 10
    while c.leader_view(old)["is_self"]:
        assert time.monotonic() < deadline, \
            "the paused node did not step down:\n" + old.log()[-3000:]
        time.sleep(0.1)
    nc = new.client()
    assert nc.read("kv/x")["data"] == {"v": "new-active"}
    for i in acked:
        assert nc.read("kv/old-%d" % i)["data"] == {"v": str(i)}
    assert c.leader_view(old)["leader_address"] == new.addr


def test_step_down_hands_over_and_a_restarted_node_rejoins(cluster):
    c = cluster()
    old = c.wait_active()
    # Through a standby: forwarded to the active (the CLI, as Vault's).
    rc, out, err = others(c, old)[0].cli("operator", "step-down")
    assert rc == 0 and "Success! Stepped down" in out, (out, err)
    new = c.wait_active(among=others(c, old), timeout=20)
    assert new is not old
    assert c.leader_view(old)["is_self"] is False
    # A standby restarted (and unsealed again) comes back as a standby.
    back = others(c, new)[0]
    back.stop()
    back.start()
    back.unseal(c.keys)
    assert wait_until(
        lambda: c.leader_view(back)["leader_address"] == new.addr, 15), \
        c.leader_view(back)
    assert c.leader_view(back)["is_self"] is False
    assert c.wait_active() is new


def test_without_forwarding_a_standby_redirects(cluster):
    c = cluster(extra="disable_request_forwarding = true")
    active = c.wait_active()
    standby = others(c, active)[0]
    # (sys/auth: not a read a standby serves itself, see standby reads)
    r = standby.req("GET", "sys/auth", allow_redirects=False)
    assert r.status_code == 307, r.text
    assert r.headers["Location"] == active.addr + "/v1/sys/auth"
    # hvac (requests) follows the redirect, with the token and the body.
    hc = standby.client()
    hc.sys.enable_secrets_engine("kv", path="kv", options={"version": "1"})
    hc.write("kv/r", v="1")
    assert active.client().read("kv/r")["data"] == {"v": "1"}


def test_concurrent_writes_during_failover_lose_nothing_acknowledged(cluster):
    c = cluster()
    active = c.wait_active()
    active.client().sys.enable_secrets_engine("kv", path="kv",
                                              options={"version": "1"})
    acked = []
    stop = threading.Event()
    lock = threading.Lock()

    def writer(node, tag):
        i = 0
        while not stop.is_set():
            key = "kv/%s-%d" % (tag, i)
            try:
                r = node.req("PUT", key, json={"v": str(i)}, timeout=10)
                if r.status_code in (200, 204):
                    with lock:
                        acked.append((key, str(i)))
            except requests.RequestException:
                pass
            i += 1
    threads = [threading.Thread(target=writer, args=(n, "w%d" % j))
               for j, n in enumerate(others(c, active))]
    for t in threads:
        t.start()
    time.sleep(1.0)
    active.kill9()
    new = c.wait_active(among=others(c, active), timeout=20)
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) > 10
    nc = new.client()
    for key, v in acked:
        assert nc.read(key)["data"] == {"v": v}, key


def ha_nodes(node):
    r = node.req("GET", "sys/ha-status", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["data"]["nodes"]


def wait_nodes(node, want, timeout=15):
    deadline = time.monotonic() + timeout
    nodes = None
    while True:
        r = node.req("GET", "sys/ha-status", timeout=5)
        # A standby forwards; right after a start it may not know whereto.
        assert r.status_code in (200, 503), r.text
        if r.status_code == 200:
            nodes = r.json()["data"]["nodes"]
            if sorted(n["api_address"] for n in nodes) == sorted(want):
                return nodes
        assert time.monotonic() < deadline, (nodes, want)
        time.sleep(0.2)


@pytest.mark.once
def test_ha_status_lists_every_node_and_drops_a_dead_one(cluster, pg):
    c = cluster()
    active = c.wait_active()
    addrs = [n.addr for n in c.nodes]
    for node in c.nodes:
        nodes = wait_nodes(node, addrs)
        assert [n["active_node"] for n in nodes] == [True, False, False]
        assert nodes[0]["api_address"] == active.addr
        assert nodes[0]["last_echo"] is None
        for n in nodes:
            assert n["version"] and n["hostname"]
            assert re.match(r"^[A-Za-z0-9._-]+$", n["hostname"])
            assert n["cluster_address"] == ""
        for n in nodes[1:]:
            assert re.match(r"^\d{4}-\d\d-\d\dT", n["last_echo"]), n
    # The registrations live in their own table; the stored rows are the
    # config's addresses, passed as parameters.
    conn = pg.connect(dbname=c.dbname)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT api_addr FROM coffer_kv_nodes")
            assert sorted(r[0] for r in cur.fetchall()) == sorted(addrs)
    finally:
        conn.close()
    # A standby killed without a goodbye drops out once it stops echoing;
    # one stopped cleanly leaves at once.
    dead, gone = others(c, active)
    dead.kill9()
    wait_nodes(active, [active.addr, gone.addr], timeout=10)
    gone.stop()
    nodes = ha_nodes(active)
    assert [n["api_address"] for n in nodes] == [active.addr], nodes
    # The list follows a new active after a failover.
    gone.start()
    gone.unseal(c.keys)
    wait_nodes(gone, [active.addr, gone.addr])
    active.kill9()
    new = c.wait_active(among=[gone], timeout=20)
    nodes = wait_nodes(new, [gone.addr])
    assert nodes[0]["active_node"] is True and nodes[0]["last_echo"] is None


@pytest.mark.once
def test_a_hostile_api_addr_is_refused_before_it_is_registered(pg):
    c = Cluster(pg, n=1)
    node = c.nodes[0]
    with open(node.config) as f:
        text = f.read()
    with open(node.config, "w") as f:
        f.write(text.replace('api_addr = "%s"' % node.addr,
                             'api_addr = "%s/<b>\'x"' % node.addr))
    try:
        node.start()
        keys, _ = node.init(shares=1, threshold=1)
        r = node.req("PUT", "sys/unseal", token=False, json={"key": keys[0]})
        assert r.status_code >= 400, r.text
        assert "api_addr" in r.text, r.text
        rows = pg.connect(dbname=c.dbname)
        try:
            with rows.cursor() as cur:
                cur.execute("SELECT count(*) FROM coffer_kv_nodes")
                assert cur.fetchone()[0] == 0
        finally:
            rows.close()
    finally:
        c.close()
