"""Runaway issuance (issue 13): max_leases, max_leases_per_token and
reuse_existing on database roles, against a real PostgreSQL.

Every test checks the database itself (pg_roles) as well as Coffer's
answers: a refused request must not have created a user, a reused
credential must not have created a second one.
"""

import concurrent.futures
import time
import uuid

import psycopg2
import pytest

from conftest import Server
from helpers import PG_CREATE, fast_lease_server, write_pg_config
from pgcluster import PgCluster

CREATE = PG_CREATE


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def srv(pg):
    for s in fast_lease_server(tick=0.5):
        r = s.cli("secrets", "enable", "database")
        assert r.rc == 0, r
        write_pg_config(s, "database/config/pg", pg, "allowed_roles=*")
        yield s


def make_role(srv, **fields):
    """A fresh role with the given fields; returns its name."""
    name = "r" + uuid.uuid4().hex[:8]
    body = {"db_name": "pg", "creation_statements": [CREATE],
            "default_ttl": "5m", "max_ttl": "1h"}
    body.update(fields)
    r = srv.req("POST", "database/roles/" + name, json=body)
    assert r.status_code in (200, 204), r.text
    return name


def child_token(srv):
    r = srv.req("POST", "auth/token/create", json={"policies": ["root"]})
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


def get_creds(srv, role, token=True):
    return srv.req("GET", "database/creds/" + role, token=token)


def users_of(pg, role):
    """Database users created for role (the default template puts the
    role's first 8 characters in the name)."""
    rows = pg.query("SELECT rolname FROM pg_roles WHERE rolname LIKE %s",
                    "v-%-" + role[:8] + "-%")
    return {r[0] for r in rows}


def revoke(srv, lease_id):
    r = srv.req("PUT", "sys/leases/revoke", json={"lease_id": lease_id})
    assert r.status_code == 204, r.text


def live_leases(srv, role):
    r = srv.req("LIST", "sys/leases/lookup/database/creds/" + role)
    if r.status_code == 404:
        return []
    return r.json()["data"]["keys"]


# ------------------------------------------------------------ max_leases --

def test_max_leases_refuses_with_429_and_creates_nothing(srv, pg):
    role = make_role(srv, max_leases=2)
    first = get_creds(srv, role)
    second = get_creds(srv, role)
    assert first.status_code == 200 and second.status_code == 200
    third = get_creds(srv, role)
    assert third.status_code == 429, third.text
    assert third.json()["errors"] == [
        'role "%s" has reached max_leases (2 live credentials)' % role]
    assert len(users_of(pg, role)) == 2
    assert len(live_leases(srv, role)) == 2


def test_a_revoked_lease_frees_its_slot(srv, pg):
    role = make_role(srv, max_leases=1)
    first = get_creds(srv, role).json()
    assert get_creds(srv, role).status_code == 429
    revoke(srv, first["lease_id"])
    assert not pg.role_exists(first["data"]["username"])
    again = get_creds(srv, role)
    assert again.status_code == 200, again.text


def test_an_expired_lease_frees_its_slot(srv, pg):
    role = make_role(srv, max_leases=1, default_ttl="3s", max_ttl="3s")
    first = get_creds(srv, role).json()
    assert get_creds(srv, role).status_code == 429
    assert pg.wait_role_gone(first["data"]["username"], timeout=15)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = get_creds(srv, role)
        if r.status_code == 200:
            break
        assert r.status_code == 429, r.text
        time.sleep(0.1)
    assert r.status_code == 200, r.text


def test_limits_of_one_role_do_not_touch_another(srv, pg):
    limited = make_role(srv, max_leases=1)
    free = make_role(srv)
    assert get_creds(srv, limited).status_code == 200
    assert get_creds(srv, limited).status_code == 429
    for _ in range(3):
        assert get_creds(srv, free).status_code == 200


def test_fifty_parallel_requests_against_ten_slots(srv, pg):
    """Counting is exact under concurrency: exactly max_leases succeed,
    the rest are refused, and the database has exactly that many users."""
    role = make_role(srv, max_leases=10)

    def one(_):
        return get_creds(srv, role)

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(one, range(50)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) == 10, codes
    assert codes.count(429) == 40, codes
    assert len(users_of(pg, role)) == 10
    assert len(live_leases(srv, role)) == 10


def test_role_read_shows_limits_and_refuses_negative_ones(srv):
    role = make_role(srv, max_leases=4, max_leases_per_token=2,
                     reuse_existing=True)
    data = srv.req("GET", "database/roles/" + role).json()["data"]
    assert data["max_leases"] == 4
    assert data["max_leases_per_token"] == 2
    assert data["reuse_existing"] is True
    plain = make_role(srv)
    data = srv.req("GET", "database/roles/" + plain).json()["data"]
    assert (data["max_leases"], data["max_leases_per_token"],
            data["reuse_existing"]) == (0, 0, False)
    for field in ("max_leases", "max_leases_per_token"):
        r = srv.req("POST", "database/roles/" + role, json={field: -1})
        assert r.status_code == 400, r.text
        assert field in r.text


def test_lowering_the_limit_refuses_until_enough_are_gone(srv, pg):
    role = make_role(srv, max_leases=3)
    leases = [get_creds(srv, role).json() for _ in range(3)]
    r = srv.req("POST", "database/roles/" + role, json={"max_leases": 1})
    assert r.status_code in (200, 204)
    r = get_creds(srv, role)
    assert r.status_code == 429
    assert "(3 live credentials)" in r.text
    revoke(srv, leases[0]["lease_id"])
    revoke(srv, leases[1]["lease_id"])
    assert get_creds(srv, role).status_code == 429
    revoke(srv, leases[2]["lease_id"])
    assert get_creds(srv, role).status_code == 200


# -------------------------------------------------- max_leases_per_token --

def test_max_leases_per_token(srv, pg):
    role = make_role(srv, max_leases_per_token=2)
    a, b = child_token(srv), child_token(srv)
    assert get_creds(srv, role, a).status_code == 200
    assert get_creds(srv, role, a).status_code == 200
    r = get_creds(srv, role, a)
    assert r.status_code == 429, r.text
    assert r.json()["errors"] == [
        'role "%s" has reached max_leases_per_token (2 live credentials '
        'for this token)' % role]
    # Another token has its own budget.
    assert get_creds(srv, role, b).status_code == 200
    assert get_creds(srv, role, b).status_code == 200
    assert get_creds(srv, role, b).status_code == 429
    assert len(users_of(pg, role)) == 4


def test_per_token_limit_in_parallel(srv, pg):
    role = make_role(srv, max_leases_per_token=3)
    tokens = [child_token(srv) for _ in range(4)]

    def one(i):
        return get_creds(srv, role, tokens[i % 4]).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=40) as pool:
        codes = list(pool.map(one, range(40)))
    assert codes.count(200) == 12, codes
    assert codes.count(429) == 28, codes
    assert len(users_of(pg, role)) == 12


def test_revoking_a_token_frees_its_slots(srv, pg):
    role = make_role(srv, max_leases=1)
    t = child_token(srv)
    user = get_creds(srv, role, t).json()["data"]["username"]
    assert get_creds(srv, role).status_code == 429
    r = srv.req("POST", "auth/token/revoke", json={"token": t})
    assert r.status_code == 204
    assert pg.wait_role_gone(user)
    deadline = time.monotonic() + 10
    while get_creds(srv, role).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


# -------------------------------------------------------- reuse_existing --

def test_reuse_returns_the_same_credential_with_its_remaining_ttl(srv, pg):
    role = make_role(srv, reuse_existing=True, default_ttl="60s")
    t = child_token(srv)
    first = get_creds(srv, role, t).json()
    time.sleep(1.1)
    again = get_creds(srv, role, t)
    assert again.status_code == 200, again.text
    again = again.json()
    assert again["lease_id"] == first["lease_id"]
    assert again["data"] == first["data"]
    assert again["renewable"] is True
    assert 0 < again["lease_duration"] < first["lease_duration"]
    assert len(users_of(pg, role)) == 1
    assert len(live_leases(srv, role)) == 1
    # The credential works.
    psycopg2.connect(host="127.0.0.1", port=pg.port, dbname=pg.dbname,
                     user=first["data"]["username"],
                     password=first["data"]["password"]).close()


def test_reuse_is_per_token(srv, pg):
    role = make_role(srv, reuse_existing=True)
    a, b = child_token(srv), child_token(srv)
    la = get_creds(srv, role, a).json()
    lb = get_creds(srv, role, b).json()
    assert la["lease_id"] != lb["lease_id"]
    assert la["data"]["username"] != lb["data"]["username"]
    assert get_creds(srv, role, a).json()["lease_id"] == la["lease_id"]
    assert get_creds(srv, role, b).json()["lease_id"] == lb["lease_id"]


def test_a_revoked_credential_is_never_reused(srv, pg):
    role = make_role(srv, reuse_existing=True)
    t = child_token(srv)
    first = get_creds(srv, role, t).json()
    revoke(srv, first["lease_id"])
    second = get_creds(srv, role, t).json()
    assert second["lease_id"] != first["lease_id"]
    assert second["data"]["username"] != first["data"]["username"]
    assert pg.role_exists(second["data"]["username"])
    assert not pg.role_exists(first["data"]["username"])


def test_an_expired_credential_is_never_reused(srv, pg):
    role = make_role(srv, reuse_existing=True, default_ttl="1s",
                     max_ttl="1s")
    t = child_token(srv)
    first = get_creds(srv, role, t).json()
    time.sleep(1.2)
    second = get_creds(srv, role, t).json()
    assert second["lease_id"] != first["lease_id"]


def test_reuse_after_renewal_reports_the_renewed_ttl(srv, pg):
    role = make_role(srv, reuse_existing=True, default_ttl="10s",
                     max_ttl="1h")
    t = child_token(srv)
    first = get_creds(srv, role, t).json()
    r = srv.req("PUT", "sys/leases/renew",
                json={"lease_id": first["lease_id"], "increment": 600})
    assert r.status_code == 200, r.text
    again = get_creds(srv, role, t).json()
    assert again["lease_id"] == first["lease_id"]
    assert again["lease_duration"] > 500


def test_parallel_requests_of_one_token_share_one_credential(srv, pg):
    role = make_role(srv, reuse_existing=True)
    t = child_token(srv)

    def one(_):
        r = get_creds(srv, role, t)
        assert r.status_code == 200, r.text
        return r.json()["lease_id"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        ids = set(pool.map(one, range(20)))
    assert len(ids) == 1
    assert len(users_of(pg, role)) == 1


def test_reuse_with_max_leases(srv, pg):
    """A reused credential takes no new slot."""
    role = make_role(srv, reuse_existing=True, max_leases=1)
    t = child_token(srv)
    first = get_creds(srv, role, t).json()
    for _ in range(3):
        assert get_creds(srv, role, t).json()["lease_id"] == \
            first["lease_id"]
    other = get_creds(srv, role, child_token(srv))
    assert other.status_code == 429


# --------------------------------------------------------------- metrics --

def counter(srv, name, **labels):
    r = srv.req("GET", "sys/metrics")
    assert r.status_code == 200, r.text
    total = 0
    for c in r.json()["Counters"]:
        if c["Name"] == "coffer." + name and all(
                c["Labels"].get(k) == v for k, v in labels.items()):
            total += c["Count"]
    return total


def test_refusals_and_reuses_are_counted_in_metrics(srv, pg):
    role = make_role(srv, max_leases=1, max_leases_per_token=1,
                     reuse_existing=True)
    t = child_token(srv)
    assert get_creds(srv, role, t).status_code == 200
    assert get_creds(srv, role, t).status_code == 200   # reused
    assert get_creds(srv, role).status_code == 429      # max_leases
    assert get_creds(srv, role).status_code == 429
    assert counter(srv, "database.lease_limit.refused", mount="database/",
                   role=role, limit="max_leases") == 2
    assert counter(srv, "database.lease_limit.reused", mount="database/",
                   role=role) == 1
    r = srv.req("GET", "sys/metrics", params={"format": "prometheus"})
    assert 'coffer_database_lease_limit_refused{' in r.text
    assert 'role="%s"' % role in r.text


# --------------------------------------------- the same in a Lua engine --

TICKETS = r'''
local leaselimits = require("leaselimits")
local e = coffer.engine { name = "tickets", help = "Leased tickets." }
local LIMITS = { max_leases = 2, max_leases_per_token = 0,
                 reuse_existing = true }

e:path("ticket/:kind", {
  read = function(req)
    local kind = req.params.kind
    local slot <close>, reused = leaselimits.admit(req,
      { type = "ticket/" .. kind, name = kind, limits = LIMITS })
    if reused then return reused end
    local lease = req:pending_lease("ticket", slot:internal { kind = kind })
    slot:release()
    return slot:issued(lease:issue({ ticket = coffer.crypto.uuid() },
                                   { ttl = 300 }))
  end,
})

e:path("spoof", {
  read = function(req)
    local ok, err = pcall(coffer.metrics.incr, "core.unsealed", {})
    local ok2 = pcall(coffer.metrics.incr, "tickets.x", { mount = "a" })
    local ok3 = pcall(coffer.metrics.incr, "tickets.x",
                      { a = "1", b = "2", c = "3", d = "4" })
    return { data = { core = ok, mount = ok2, many = ok3,
                      err = tostring(err) } }
  end,
})

e:secret("ticket", leaselimits.wrap_secret {
  revoke = function(lease) return true end,
})
'''


@pytest.fixture(scope="module")
def plugin_srv(tmp_path_factory):
    d = tmp_path_factory.mktemp("plugins")
    (d / "tickets.lua").write_text(TICKETS)
    s = Server(["-dev-plugin-dir=%s" % d])
    r = s.cli("secrets", "enable", "tickets")
    assert r.rc == 0, r
    yield s
    s.stop()


def test_a_lua_engine_gets_the_same_limits(plugin_srv):
    srv = plugin_srv
    kind = "k" + uuid.uuid4().hex[:6]
    a, b, c = child_token(srv), child_token(srv), child_token(srv)
    first = srv.req("GET", "tickets/ticket/" + kind, token=a).json()
    again = srv.req("GET", "tickets/ticket/" + kind, token=a).json()
    assert again["lease_id"] == first["lease_id"]
    assert again["data"] == first["data"]
    assert srv.req("GET", "tickets/ticket/" + kind, token=b).status_code \
        == 200
    r = srv.req("GET", "tickets/ticket/" + kind, token=c)
    assert r.status_code == 429
    assert "max_leases (2 live credentials)" in r.text
    assert counter(srv, "tickets.lease_limit.refused", mount="tickets/",
                   role=kind) == 1
    revoke(srv, first["lease_id"])
    # The revoked ticket is never handed out again, and its slot is free.
    r = srv.req("GET", "tickets/ticket/" + kind, token=a)
    assert r.status_code == 200
    assert r.json()["lease_id"] != first["lease_id"]


def test_a_plugin_cannot_fake_core_metrics(plugin_srv):
    data = plugin_srv.req("GET", "tickets/spoof").json()["data"]
    assert data == {"core": False, "mount": False, "many": False,
                    "err": data["err"]}
    assert "tickets.<name>" in data["err"]


# -------------------------------------------------------------- restarts --

@pytest.mark.once
def test_limits_and_reuse_survive_a_restart(pg, tmp_path):
    """Counting reads the lease index and reuse entries are stored: a
    restarted server refuses past the limit and hands back the same
    credential."""
    from realserver import RealServer
    srv = RealServer(str(tmp_path), storage="sqlite")
    srv.start()
    try:
        keys, _ = srv.init(shares=1, threshold=1)
        srv.unseal(keys)
        assert srv.req("POST", "sys/mounts/database",
                       json={"type": "database"}).status_code == 204
        r = srv.req("POST", "database/config/pg", json={
            "plugin_name": "postgresql-database-plugin",
            "connection_url": pg.url(templated=True),
            "username": "postgres", "password": "postgres",
            "allowed_roles": "*"})
        assert r.status_code in (200, 204), r.text
        r = srv.req("POST", "database/roles/lim", json={
            "db_name": "pg", "creation_statements": [CREATE],
            "default_ttl": "5m", "max_leases": 2, "reuse_existing": True})
        assert r.status_code in (200, 204), r.text
        r = srv.req("POST", "auth/token/create", json={"policies": ["root"]})
        t = r.json()["auth"]["client_token"]
        first = srv.req("GET", "database/creds/lim", token=t).json()
        assert srv.req("GET", "database/creds/lim").status_code == 200
        srv.stop()
        srv.start()
        srv.unseal(keys)
        r = srv.req("POST", "auth/token/create", json={"policies": ["root"]})
        other = r.json()["auth"]["client_token"]
        r = srv.req("GET", "database/creds/lim", token=other)
        assert r.status_code == 429, r.text
        assert "(2 live credentials)" in r.text
        again = srv.req("GET", "database/creds/lim", token=t).json()
        assert again["lease_id"] == first["lease_id"]
        assert again["data"] == first["data"]
    finally:
        srv.stop()
