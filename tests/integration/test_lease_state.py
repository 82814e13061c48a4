"""A lease's state in sys/leases/lookup, and activation racing a revocation.

The lookup reply keeps Vault's fields and adds Coffer's own "state"
("pending" while an issuance is under way, then "active") and, once the
expiration manager gave up revoking it, "irrevocable" with the last error.

To catch an issuance between its pending record and its activation, the
role's creation statement first takes a shared advisory lock that the test
holds exclusively ("the gate"): the request waits in PostgreSQL with its
pending record stored (test_lease_batch.py's Gate; there it holds up
revocations).

Activation keeps the pending record it stored in memory (issue 14) but
must still see what happened to the stored record meanwhile: a lease
revoked during the issuance is not brought back by the activation.
"""

import threading
import time
import uuid

import pytest

from helpers import PG_CREATE, fast_lease_server, write_pg_config
from pgcluster import PgCluster
# The gate: an exclusive advisory lock the test holds (not a test itself).
from test_lease_batch import GATE, Gate
GATED = "SELECT pg_advisory_xact_lock_shared(%d); %s" % (GATE, PG_CREATE)
# A revocation that times out (config pgslow: statement_timeout 3s) until
# the test creates role revoke_ok: a timeout is retried, not replaced by
# the default revocation, so the workers wait for their retry meanwhile.
# The gated creation runs under the same timeout, so the test must open
# the gate within it: 3 s leaves room for a slow (ASan) run, and each
# attempt (and the wait for it) is that long.
SLOW_REVOKE = ("DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE "
               "rolname = 'revoke_ok') THEN PERFORM pg_sleep(30); "
               "END IF; END$$; DROP ROLE IF EXISTS \"{{name}}\";")
VAULT_FIELDS = {"id", "issue_time", "expire_time", "last_renewal",
                "renewable", "ttl"}


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def srv(pg):
    yield from fast_lease_server(tick=0.5)


@pytest.fixture(scope="module")
def db(srv, pg):
    r = srv.cli("secrets", "enable", "-path=dbstate", "database")
    assert r.rc == 0, r
    write_pg_config(srv, "dbstate/config/pg", pg, "allowed_roles=*")
    write_pg_config(srv, "dbstate/config/pgslow", pg, "allowed_roles=*",
                    "statement_timeout=3s")
    for role, create, revoke in (
            ("gated", GATED, ""),
            ("plain", PG_CREATE, ""),
            ("stuck", PG_CREATE, "DROP ROLE no_such_role_for_state;"),
            ("gated-slow", GATED, SLOW_REVOKE)):
        body = {"db_name": "pgslow" if role == "gated-slow" else "pg",
                "creation_statements": create,
                "default_ttl": "1h", "max_ttl": "2h"}
        if revoke:
            body["revocation_statements"] = revoke
        r = srv.req("POST", "dbstate/roles/" + role, json=body)
        assert r.status_code == 204, r.text
    return "dbstate"


def lookup(srv, lease_id):
    return srv.req("PUT", "sys/leases/lookup", json={"lease_id": lease_id})


def gated_keys(srv, role="gated"):
    r = srv.req("LIST", "sys/leases/lookup/dbstate/creds/%s/" % role)
    return set(r.json()["data"]["keys"]) if r.status_code == 200 else set()


def gated_issue(srv, pg, role="gated"):
    """Starts a gated issuance; returns (gate, thread, result, lease id)
    with the lease pending (its record stored, the user not created)."""
    before = gated_keys(srv, role)
    gate = Gate(pg)
    result = {}

    def issue():
        result["r"] = srv.req("GET", "dbstate/creds/" + role)

    t = threading.Thread(target=issue)
    t.start()
    deadline = time.monotonic() + 10
    new = set()
    while time.monotonic() < deadline and not new:
        new = gated_keys(srv, role) - before
        if not new:
            time.sleep(0.05)
    if len(new) != 1:
        gate.open()
        t.join()
        pytest.fail("no single pending lease appeared: %r %r" % (new, result))
    return gate, t, result, "dbstate/creds/%s/%s" % (role, new.pop())


def test_lookup_shows_pending_then_active(srv, pg, db):
    gate, t, result, lease_id = gated_issue(srv, pg)
    try:
        r = lookup(srv, lease_id)
        assert r.status_code == 200, r.text
        d = r.json()["data"]
        assert d["state"] == "pending"
        assert "irrevocable" not in d
        assert set(d) == VAULT_FIELDS | {"state"}
        assert d["id"] == lease_id
    finally:
        gate.open()
        t.join(timeout=30)
    r = result["r"]
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["lease_id"] == lease_id
    d = lookup(srv, lease_id).json()["data"]
    assert d["state"] == "active"
    assert set(d) == VAULT_FIELDS | {"state"}
    assert d["renewable"] is True and 3000 < d["ttl"] <= 3600
    # Nothing internal: not the database user, not the token.
    text = lookup(srv, lease_id).text
    assert body["data"]["username"] not in text
    assert "internal" not in text and "token" not in text
    srv.req("PUT", "sys/leases/revoke", json={"lease_id": lease_id})


def test_revoked_while_pending_is_not_activated(srv, pg, db):
    """The race activation's check guards: the pending lease is revoked
    while the user is being created; the activation must refuse instead
    of writing its in-memory record back."""
    gate, t, result, lease_id = gated_issue(srv, pg)
    try:
        r = srv.req("PUT", "sys/leases/revoke", json={"lease_id": lease_id})
        assert r.status_code == 204, r.text
        assert lookup(srv, lease_id).status_code == 400
    finally:
        gate.open()
        t.join(timeout=30)
    r = result["r"]
    assert r.status_code == 500, r.text
    assert "is not pending" in r.text
    assert lookup(srv, lease_id).status_code == 400
    assert lease_id.rsplit("/", 1)[1] not in gated_keys(srv)
    # The user the creation statement made after all is dropped at once
    # (the engine's failed-activation path), not left for reconciliation.
    assert pg.query("SELECT count(*) FROM pg_roles WHERE rolname LIKE "
                    "'v-%-gated-%'")[0][0] == 0


def test_revoked_by_the_workers_while_pending(srv, pg, db):
    """An asynchronous revocation (a worker revokes the pending lease and
    deletes its record) while the issuance waits: activation refuses."""
    gate, t, result, lease_id = gated_issue(srv, pg)
    try:
        r = srv.req("PUT", "sys/leases/revoke",
                    json={"lease_id": lease_id, "sync": False})
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and \
                lookup(srv, lease_id).status_code != 400:
            time.sleep(0.05)
        assert lookup(srv, lease_id).status_code == 400
    finally:
        gate.open()
        t.join(timeout=30)
    assert result["r"].status_code == 500, result["r"].text
    assert lookup(srv, lease_id).status_code == 400


def test_revocation_still_retrying_is_not_lost_by_activation(srv, pg, db):
    """An asynchronous revocation whose first attempts fail (the workers
    wait to retry, the record stays due now) while the issuance waits:
    the activation must refuse rather than push the expiry out, and the
    revocation completes once it can."""
    pg.query("DROP ROLE IF EXISTS revoke_ok")
    gate, t, result, lease_id = gated_issue(srv, pg, "gated-slow")
    try:
        r = srv.req("PUT", "sys/leases/revoke",
                    json={"lease_id": lease_id, "sync": False})
        assert r.status_code == 202, r.text
        time.sleep(0.2)  # the first attempt is under way (3 s timeout)
        assert lookup(srv, lease_id).status_code == 200
    finally:
        gate.open()
        t.join(timeout=30)
    r = result["r"]
    assert r.status_code == 500, r.text
    assert "was revoked while it was being issued" in r.text
    d = lookup(srv, lease_id)
    assert d.status_code == 400 or d.json()["data"]["state"] == "pending", \
        d.text
    pg.query("CREATE ROLE revoke_ok")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and \
                lookup(srv, lease_id).status_code != 400:
            time.sleep(0.2)
        assert lookup(srv, lease_id).status_code == 400
        left = pg.query("SELECT count(*) FROM pg_roles WHERE rolname LIKE "
                        "'v-%gated-s%'")[0][0]
        assert left == 0
    finally:
        pg.query("DROP ROLE IF EXISTS revoke_ok")


def test_plain_issuances_in_parallel_are_active(srv, pg, db):
    """Many issuances at once: each activation uses its own record."""
    out = []

    def issue():
        out.append(srv.req("GET", "dbstate/creds/plain"))

    threads = [threading.Thread(target=issue) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ids = set()
    for r in out:
        assert r.status_code == 200, r.text
        ids.add(r.json()["lease_id"])
        d = lookup(srv, r.json()["lease_id"]).json()["data"]
        assert d["state"] == "active" and d["renewable"] is True
    assert len(ids) == 8
    r = srv.req("PUT", "sys/leases/revoke-prefix/dbstate/creds/plain")
    assert r.status_code == 204, r.text


def test_irrevocable_lease_shows_error(srv, pg, db):
    r = srv.req("GET", "dbstate/creds/stuck")
    assert r.status_code == 200, r.text
    lease_id = r.json()["lease_id"]
    r = srv.req("PUT", "sys/leases/revoke",
                json={"lease_id": lease_id, "sync": False})
    assert r.status_code == 202
    deadline = time.monotonic() + 15
    d = {}
    while time.monotonic() < deadline:
        d = lookup(srv, lease_id).json()["data"]
        if d.get("irrevocable"):
            break
        time.sleep(0.2)
    assert d.get("irrevocable") is True, d
    assert "no_such_role_for_state" in d["last_error"]
    assert d["state"] == "active"
    assert set(d) == VAULT_FIELDS | {"state", "irrevocable", "last_error"}
    r = srv.req("PUT", "sys/leases/revoke-force/" + lease_id)
    assert r.status_code == 204


def test_last_use_of_an_old_token_spares_its_successor(srv, db, pg):
    """A use-limited token's last request (an issuance held at the gate)
    ends after the token was revoked and re-created with its id: the end
    of that request revokes what is left of the old token, never the new
    one (same id, so same hmac and same token lease id)."""
    custom = "lastuse-" + uuid.uuid4().hex[:12]
    r = srv.req("POST", "auth/token/create",
                json={"id": custom, "ttl": "1h", "num_uses": 1,
                      "policies": ["root"]})
    assert r.status_code == 200, r.text
    old_accessor = r.json()["auth"]["accessor"]
    gate = Gate(pg)
    before = gated_keys(srv)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault(
        "r", srv.req("GET", "dbstate/creds/gated", token=custom)))
    try:
        t.start()
        deadline = time.monotonic() + 10
        while not gated_keys(srv) - before:
            assert time.monotonic() < deadline, "issuance never started"
            time.sleep(0.02)
        r = srv.req("POST", "auth/token/revoke-accessor",
                    json={"accessor": old_accessor})
        assert r.status_code == 204, r.text
        r = srv.req("POST", "auth/token/create",
                    json={"id": custom, "ttl": "1h"})
        assert r.status_code == 200, r.text
        new_accessor = r.json()["auth"]["accessor"]
    finally:
        gate.open()
        t.join()
    time.sleep(0.5)  # the old token's leases go through the workers
    r = srv.req("GET", "auth/token/lookup-self", token=custom)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["accessor"] == new_accessor
    # The old token's issuance left nothing behind.
    deadline = time.monotonic() + 10
    while gated_keys(srv) - before:
        assert time.monotonic() < deadline, gated_keys(srv) - before
        time.sleep(0.1)
    srv.req("POST", "auth/token/revoke", json={"token": custom})
