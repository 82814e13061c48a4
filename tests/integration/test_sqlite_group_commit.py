"""Group commit in the sqlite backend, through a real server (issue 14).

Concurrent writers share one sqlite commit; nothing may be acknowledged
before the commit holding it is durable. Eight clients issue database
credentials and write KV secrets at once on a sealed, sqlite-backed server
that is killed with SIGKILL at a random moment, several times; after each
restart every credential that was handed out still has its lease, and
every acknowledged KV write reads back (or a later one by the same
client), while no role is left without a lease."""

import random
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from pgcluster import PgCluster
from realserver import RealServer

CREATE = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
          "VALID UNTIL '{{expiration}}';")
CLIENTS = 8


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="coffer-gc-")
    yield d
    subprocess.run(["rm", "-rf", d])


def configure(srv, pg):
    c = srv.client()
    c.sys.enable_secrets_engine("database")
    c.write("database/config/myapp", plugin_name="postgresql-database-plugin",
            connection_url=pg.url(templated=True), username="postgres",
            password="postgres", allowed_roles="*")
    c.write("database/roles/gc", db_name="myapp",
            creation_statements=CREATE, default_ttl="1h")
    c.sys.enable_secrets_engine("kv", path="kv", options={"version": "2"})


def client_loop(srv, n, stop, leases, kv_acked):
    """Client n alternates a credential and a KV write, recording acks."""
    s = requests.Session()
    s.headers["X-Vault-Token"] = srv.token
    i = kv_acked.get(n, 0)
    while not stop.is_set():
        try:
            r = s.get(srv.addr + "/v1/database/creds/gc", timeout=10)
            if r.status_code == 200:
                leases.append(r.json()["lease_id"])
            i += 1
            r = s.post(srv.addr + "/v1/kv/data/c%d" % n, timeout=10,
                       json={"data": {"seq": i}})
            if r.status_code == 200:
                kv_acked[n] = i
        except requests.RequestException:
            return


def test_kill9_under_concurrent_writers_keeps_every_ack(workdir, pg):
    srv = RealServer(workdir)
    srv.start()
    keys, _ = srv.init(shares=1, threshold=1)
    srv.unseal(keys)
    configure(srv, pg)
    rng = random.Random(14)
    leases, kv_acked = [], {}
    for _ in range(4):
        stop = threading.Event()
        threads = [threading.Thread(target=client_loop,
                                    args=(srv, n, stop, leases, kv_acked))
                   for n in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(0.5 + rng.random())
        srv.kill9()
        stop.set()
        for t in threads:
            t.join()
        srv.start()
        srv.unseal(keys)
        for lease in leases:
            r = srv.req("PUT", "sys/leases/lookup", json={"lease_id": lease})
            assert r.status_code == 200, (lease, r.text)
        for n, seq in kv_acked.items():
            r = srv.req("GET", "kv/data/c%d" % n)
            assert r.status_code == 200, r.text
            assert r.json()["data"]["data"]["seq"] >= seq, (n, seq, r.text)
    assert len(leases) >= CLIENTS, "too few credentials issued to test"
    assert kv_acked, "no KV write acknowledged"
    print("%d credentials and %d clients' KV writes checked" %
          (len(leases), len(kv_acked)))
    # Every role made is under a lease or a pending record (cleaned up
    # after unseal): revoking every lease leaves none.
    time.sleep(1)
    r = srv.req("PUT", "sys/leases/revoke-prefix/database/creds/gc")
    assert r.status_code == 204, r.text
    deadline = time.monotonic() + 10
    while True:
        left = {row[0] for row in pg.query(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE %s",
            "v-root-gc-%")}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, "orphaned roles: %s" % sorted(left)[:5]
    assert srv.stop() == 0
