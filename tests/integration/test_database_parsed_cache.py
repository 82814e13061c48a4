"""The database engine's per-state cache of parsed roles and configs
(database.lua `shared_json`) never serves a stale record: every write of a
role or a config is seen by the very next issuance, whichever worker's Lua
state serves it (each has its own cache, so the writes and issuances are
repeated enough to land on many of them).
"""

import pytest

from conftest import Server
from pgcluster import PgCluster

CREATE = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
          "VALID UNTIL '{{expiration}}';")
GRANT = 'GRANT cache_group TO "{{name}}";'
ROUNDS = 12


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    cluster.query("CREATE ROLE cache_group NOLOGIN")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def srv(pg):
    s = Server()
    r = s.req("POST", "sys/mounts/dbc", json={"type": "database"})
    assert r.status_code == 204, r.text
    r = s.req("POST", "dbc/config/main", json={
        "plugin_name": "postgresql-database-plugin",
        "connection_url": pg.url(templated=True),
        "username": "postgres", "password": "postgres",
        "allowed_roles": "cached"})
    assert r.status_code == 204, r.text
    yield s
    rc = s.stop()
    assert rc == 0, s.stderr_text()[-4000:]


def write_role(srv, **fields):
    body = {"db_name": "main", "creation_statements": [CREATE]}
    body.update(fields)
    r = srv.req("POST", "dbc/roles/cached", json=body)
    assert r.status_code == 204, r.text


def issue(srv):
    return srv.req("GET", "dbc/creds/cached")


def in_group(pg, user):
    return pg.query("SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON "
                    "r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid "
                    "WHERE r.rolname = %s AND g.rolname = 'cache_group'",
                    user) != []


def test_role_ttl_change_seen_by_next_issuance(srv):
    for i in range(ROUNDS):
        write_role(srv, default_ttl=600 + i)
        r = issue(srv)
        assert r.status_code == 200, r.text
        assert r.json()["lease_duration"] == 600 + i


def test_role_statements_change_seen_by_next_issuance(srv, pg):
    for i in range(ROUNDS // 2):
        write_role(srv, default_ttl=600)
        r = issue(srv)
        assert r.status_code == 200, r.text
        assert not in_group(pg, r.json()["data"]["username"])
        write_role(srv, default_ttl=600, creation_statements=[CREATE, GRANT])
        r = issue(srv)
        assert r.status_code == 200, r.text
        assert in_group(pg, r.json()["data"]["username"])


def test_config_allowed_roles_change_seen_by_next_issuance(srv):
    write_role(srv, default_ttl=600)
    for i in range(ROUNDS // 2):
        r = srv.req("POST", "dbc/config/main", json={"allowed_roles": "x"})
        assert r.status_code == 204, r.text
        r = issue(srv)
        assert r.status_code == 500, r.text
        assert "is not an allowed role" in r.text
        r = srv.req("POST", "dbc/config/main",
                    json={"allowed_roles": "cached"})
        assert r.status_code == 204, r.text
        assert issue(srv).status_code == 200


def test_deleted_role_refused_by_next_issuance(srv):
    for i in range(ROUNDS // 2):
        write_role(srv, default_ttl=600)
        assert issue(srv).status_code == 200
        r = srv.req("DELETE", "dbc/roles/cached")
        assert r.status_code == 204, r.text
        r = issue(srv)
        assert r.status_code == 400, r.text
        assert "unknown role" in r.text
