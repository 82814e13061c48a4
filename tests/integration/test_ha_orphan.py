"""HA (issue 12): an active paused in the middle of an issuance, after it
recorded the pending lease and before it stored the lease, wakes up after
another node took over and revoked the pending record. Its lease write is
refused, so nothing would ever revoke the user it creates: the engine must
drop that user itself, on the database, and the client must get an error.
"""

import signal
import threading

import pytest

from helpers import wait_until
from pgcluster import PgCluster
from test_ha import Cluster

GATE = 424242  # an advisory lock the test holds to stall the creation
CREATE = ("SELECT pg_advisory_lock(%d); SELECT pg_advisory_unlock(%d); "
          "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
          "VALID UNTIL '{{expiration}}';" % (GATE, GATE))


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


def roles(pg):
    return {r[0] for r in pg.query("SELECT rolname FROM pg_roles")}


def wait_for(pred, timeout, what):
    assert wait_until(pred, timeout), what


@pytest.mark.once
def test_a_paused_active_drops_the_user_whose_lease_it_cannot_store(pg):
    c = Cluster(pg, n=2, lock_ttl="3s")
    gate = pg.connect()
    gate.autocommit = True
    try:
        c.start_all()
        c.init_and_unseal()
        old = c.wait_active()
        new = [n for n in c.nodes if n is not old][0]
        hc = old.client()
        hc.sys.enable_secrets_engine("database")
        hc.write("database/config/myapp",
                 plugin_name="postgresql-database-plugin",
                 connection_url=pg.url(templated=True), username="postgres",
                 password="postgres", allowed_roles="*")
        hc.write("database/roles/held", db_name="myapp",
                 creation_statements=CREATE, default_ttl="1h")
        before = roles(pg)
        with gate.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (GATE,))
        reply = {}

        def issue():
            try:
                r = old.req("GET", "database/creds/held", timeout=60)
                reply["status"], reply["body"] = r.status_code, r.text
            except Exception as e:  # the node may drop the connection
                reply["status"], reply["body"] = None, repr(e)
        t = threading.Thread(target=issue)
        t.start()

        def creation_waits():
            rows = pg.query("SELECT count(*) FROM pg_stat_activity WHERE "
                            "wait_event_type = 'Lock' AND query LIKE "
                            "'%%pg_advisory_lock(%d)%%'" % GATE)
            return rows[0][0] > 0
        # The pending record is written before the creation statements run.
        wait_for(creation_waits, 15, "the creation never started")
        old.proc.send_signal(signal.SIGSTOP)
        try:
            assert c.wait_active(among=[new], timeout=20) is new

            # The new active revokes the pending lease it finds.
            def pending_gone():
                r = new.req("LIST", "sys/leases/lookup/database/creds/held/")
                return r.status_code == 404
            wait_for(pending_gone, 15, "the pending lease was not revoked")
        finally:
            old.proc.send_signal(signal.SIGCONT)
        # Now the old node's creation goes on: the user is created, then
        # its lease write is refused.
        with gate.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (GATE,))
        t.join(60)
        assert not t.is_alive()
        assert reply["status"] != 200, reply
        wait_for(lambda: roles(pg) == before, 10,
                 "a user without a lease was left behind: %s"
                 % (roles(pg) - before))
        assert "lease" in old.log()
    finally:
        gate.close()
        c.close()
