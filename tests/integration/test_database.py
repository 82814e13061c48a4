"""The database secrets engine against a real PostgreSQL.

One scratch PostgreSQL cluster and one Coffer dev server serve the whole
module. Every test checks the database itself (pg_roles, logging in) rather
than trusting Coffer's answers.
"""

import concurrent.futures
import datetime
import time
import uuid

import pytest

from helpers import PG_CREATE, fast_lease_server, wait_until, write_pg_config
from pgcluster import PgCluster

CREATE = PG_CREATE
GRANT_GROUP = 'GRANT app_readonly TO "{{name}}";'
GRANT_TABLE = 'GRANT SELECT ON shared_table TO "{{name}}";'


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    cluster.query("CREATE ROLE app_readonly NOLOGIN")
    cluster.query("CREATE TABLE shared_table (x int)")
    cluster.query("GRANT SELECT ON shared_table TO app_readonly")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def srv(pg):
    yield from fast_lease_server(tick=0.5)


@pytest.fixture(scope="module")
def db(srv, pg):
    """A database/ mount with config myapp and roles my-role and short."""
    r = srv.cli("secrets", "enable", "database")
    assert r.rc == 0, r
    write_pg_config(srv, "database/config/myapp", pg,
                    "allowed_roles=my-role, short, granting, bad, readonly")
    r = srv.cli("write", "database/roles/my-role", "db_name=myapp",
                "creation_statements=" + CREATE + " " + GRANT_GROUP,
                "default_ttl=5m", "max_ttl=24h")
    assert r.rc == 0, r
    return "database"


def creds(srv, role="my-role", token=None):
    r = srv.req("GET", "database/creds/" + role, token=token or True)
    assert r.status_code == 200, r.text
    return r.json()


def valid_until(pg, name):
    rows = pg.query("SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s",
                    name)
    return rows[0][0] if rows else None


# ------------------------------------------------------------- the flow --

def test_cli_flow_creates_a_working_user(srv, pg, db):
    r = srv.cli("read", "-format=json", "database/creds/my-role")
    assert r.rc == 0, r
    import json
    body = json.loads(r.stdout)
    user, pw = body["data"]["username"], body["data"]["password"]
    assert body["lease_id"].startswith("database/creds/my-role/")
    assert body["lease_duration"] == 300 and body["renewable"] is True
    assert user.startswith("v-root-my-role-")
    assert len(pw) == 20
    assert pg.role_exists(user)
    assert pg.can_login(user, pw)
    # The user is a member of the group role it was granted.
    assert pg.query("SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON "
                    "r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid "
                    "WHERE r.rolname = %s AND g.rolname = 'app_readonly'",
                    user)


def test_cli_table_output_shows_lease(srv, db):
    r = srv.cli("read", "database/creds/my-role")
    assert r.rc == 0, r
    for key in ("lease_id", "lease_duration", "lease_renewable", "username",
                "password"):
        assert key in r.stdout


def test_curl_and_hvac_get_distinct_users(srv, pg, db):
    a = creds(srv)
    b = srv.client.read("database/creds/my-role")
    assert a["data"]["username"] != b["data"]["username"]
    assert pg.role_exists(a["data"]["username"])
    assert pg.role_exists(b["data"]["username"])


def test_valid_until_matches_lease(srv, pg, db):
    body = creds(srv)
    until = valid_until(pg, body["data"]["username"])
    expected = datetime.datetime.now(datetime.timezone.utc) + \
        datetime.timedelta(seconds=body["lease_duration"] + 5)
    assert abs((until - expected).total_seconds()) < 5


def test_username_display_name_of_child_token(srv, pg, db):
    tok = srv.client.auth.token.create(policies=["root"], display_name="ci-job")
    token = tok["auth"]["client_token"]
    body = creds(srv, token=token)
    assert body["data"]["username"].startswith("v-token-ci-my-role-")
    assert len(body["data"]["username"]) <= 63


# ----------------------------------------------------------- revocation --

def test_lease_revoke_drops_user(srv, pg, db):
    body = creds(srv)
    r = srv.cli("lease", "revoke", body["lease_id"])
    assert r.rc == 0, r
    assert "queued" in r.stdout  # asynchronous, as with Vault's CLI
    assert pg.wait_role_gone(body["data"]["username"], 10)

    # As in Vault, the lease record is deleted after the backend revocation
    # succeeds, so it outlives the role by a moment.
    def lookup_refused():
        r = srv.req("PUT", "sys/leases/lookup", json={"lease_id": body["lease_id"]})
        return r.status_code == 400 and r.json()["errors"] == ["invalid lease"]
    assert wait_until(lookup_refused, 10)


def test_lease_revoke_sync(srv, pg, db):
    body = creds(srv)
    r = srv.cli("lease", "revoke", "-sync", body["lease_id"])
    assert r.rc == 0, r
    assert r.stdout.strip() == "Success! Revoked lease: " + body["lease_id"]
    assert not pg.role_exists(body["data"]["username"])


def test_revoke_prefix_refuses_empty_prefix(srv, db):
    r = srv.req("PUT", "sys/leases/revoke-prefix/")
    assert r.status_code in (400, 404)
    r = srv.req("PUT", "sys/leases/revoke-prefix")
    assert r.status_code in (400, 404, 405)


def test_revoke_prefix_drops_every_user(srv, pg, db):
    users = [creds(srv)["data"]["username"] for _ in range(3)]
    r = srv.cli("lease", "revoke", "-sync", "-prefix", "database/creds/my-role")
    assert r.rc == 0, r
    for u in users:
        assert not pg.role_exists(u)


def test_revoking_token_drops_its_users(srv, pg, db):
    tok = srv.client.auth.token.create(policies=["root"])["auth"]["client_token"]
    users = [creds(srv, token=tok)["data"]["username"] for _ in range(2)]
    r = srv.cli("token", "revoke", tok)
    assert r.rc == 0, r
    for u in users:
        assert pg.wait_role_gone(u, 10), u


def test_short_ttl_expires_by_itself(srv, pg, db):
    srv.client.write("database/roles/short", db_name="myapp",
                     creation_statements=CREATE, default_ttl="2s")
    body = creds(srv, "short")
    assert body["lease_duration"] == 2
    assert pg.role_exists(body["data"]["username"])
    assert pg.wait_role_gone(body["data"]["username"], 10)


def test_default_revocation_strips_grants_in_other_schemas(srv, pg, db):
    pg.query("CREATE SCHEMA IF NOT EXISTS sales")
    pg.query("CREATE TABLE IF NOT EXISTS sales.orders (id int)")
    pg.query("CREATE SEQUENCE IF NOT EXISTS sales.ids")
    srv.client.write("database/roles/short", db_name="myapp",
                     creation_statements=CREATE + ' GRANT USAGE ON SCHEMA '
                     'sales TO "{{name}}"; GRANT SELECT ON sales.orders TO '
                     '"{{name}}"; GRANT USAGE ON sales.ids TO "{{name}}"; '
                     'GRANT SELECT ON shared_table TO "{{name}}";',
                     default_ttl="1h")
    body = creds(srv, "short")
    user = body["data"]["username"]
    r = srv.cli("lease", "revoke", "-sync", body["lease_id"])
    assert r.rc == 0, r
    assert not pg.role_exists(user)
    assert not pg.query("SELECT 1 FROM information_schema.role_table_grants "
                        "WHERE grantee = %s", user)


def test_role_deleted_lease_still_revocable(srv, pg, db):
    srv.client.write("database/roles/short", db_name="myapp",
                     creation_statements=CREATE, default_ttl="1h",
                     max_ttl="2h")
    body = creds(srv, "short")
    srv.client.delete("database/roles/short")
    srv.client.sys.revoke_lease(body["lease_id"])
    assert not pg.role_exists(body["data"]["username"])


# ---------------------------------------------------------------- renew --

def test_renew_extends_lease_and_valid_until(srv, pg, db):
    body = creds(srv)
    user = body["data"]["username"]
    before = valid_until(pg, user)
    r = srv.cli("lease", "renew", "-increment=1h", "-format=json",
                body["lease_id"])
    assert r.rc == 0, r
    r = srv.req("PUT", "sys/leases/renew",
                json={"lease_id": body["lease_id"], "increment": "2h"})
    assert r.status_code == 200, r.text
    assert r.json()["lease_duration"] == 7200
    after = valid_until(pg, user)
    # 5m at issue, 2h from now after the renewal.
    assert (after - before).total_seconds() > 6800


def test_renew_is_capped_by_max_ttl(srv, pg, db):
    srv.client.write("database/roles/short", db_name="myapp",
                     creation_statements=CREATE, default_ttl="10s",
                     max_ttl="30s")
    body = creds(srv, "short")
    r = srv.req("PUT", "sys/leases/renew",
                json={"lease_id": body["lease_id"], "increment": "1h"})
    assert r.status_code == 200, r.text
    assert r.json()["lease_duration"] <= 30
    assert any("capped" in w for w in r.json()["warnings"])
    srv.client.sys.revoke_lease(body["lease_id"])


def test_renew_unknown_lease(srv, db):
    r = srv.req("PUT", "sys/leases/renew", json={"lease_id": "database/nope"})
    assert r.status_code == 400
    assert r.json()["errors"] == ["lease not found"]


# ------------------------------------------------------------ bad input --

def test_bad_creation_statement_leaves_nothing(srv, pg, db):
    srv.client.write("database/roles/bad", db_name="myapp",
                     creation_statements=CREATE + " CREATE ROLEX oops;")
    before = set(r[0] for r in pg.query("SELECT rolname FROM pg_roles"))
    r = srv.req("GET", "database/creds/bad")
    assert r.status_code == 500
    assert 'syntax error at or near "ROLEX"' in r.json()["errors"][0]
    after = set(r[0] for r in pg.query("SELECT rolname FROM pg_roles"))
    assert after == before
    r = srv.req("LIST", "sys/leases/lookup/database/creds/bad")
    assert r.status_code == 404


def test_unknown_plugin_lists_supported(srv, db):
    r = srv.req("PUT", "database/config/other",
                json={"plugin_name": "mongodb-database-plugin",
                      "connection_url": "x"})
    assert r.status_code == 400
    assert "postgresql-database-plugin" in r.json()["errors"][0]
    assert "mysql-database-plugin" in r.json()["errors"][0]


def test_wrong_password_refused_at_write(srv, pg, db):
    r = srv.req("PUT", "database/config/wrongpw",
                json={"plugin_name": "postgresql-database-plugin",
                      "connection_url": pg.url(templated=True),
                      "username": "postgres", "password": "nope"})
    assert r.status_code == 400
    assert "error verifying connection" in r.json()["errors"][0]
    assert srv.req("GET", "database/config/wrongpw").status_code == 404


def test_password_is_never_returned(srv, db):
    data = srv.client.read("database/config/myapp")["data"]
    assert "password" not in data["connection_details"]
    assert data["plugin_name"] == "postgresql-database-plugin"
    assert data["allowed_roles"][:2] == ["my-role", "short"]


def test_role_not_allowed(srv, db):
    srv.client.write("database/roles/outsider", db_name="myapp",
                     creation_statements=CREATE)
    r = srv.req("GET", "database/creds/outsider")
    assert r.status_code == 500
    assert '"outsider" is not an allowed role' in r.json()["errors"][0]


def test_unknown_role(srv, db):
    r = srv.req("GET", "database/creds/nobody")
    assert r.status_code == 400
    assert r.json()["errors"] == ["unknown role: nobody"]


def test_role_requires_db_name(srv, db):
    r = srv.req("PUT", "database/roles/x", json={"creation_statements": "x"})
    assert r.status_code == 400
    assert r.json()["errors"] == ["database name is required"]


def test_config_delete_refused_with_live_leases(srv, pg, db):
    srv.client.write("database/config/second",
                     plugin_name="postgresql-database-plugin",
                     connection_url=pg.url(templated=True),
                     username="postgres", password="postgres",
                     allowed_roles="second-role")
    srv.client.write("database/roles/second-role", db_name="second",
                     creation_statements=CREATE)
    body = creds(srv, "second-role")
    r = srv.req("DELETE", "database/config/second")
    assert r.status_code == 400
    assert "1 lease" in r.json()["errors"][0]
    assert srv.req("GET", "database/config/second").status_code == 200
    srv.cli("lease", "revoke", "-sync", "-prefix", "database/creds/second-role")
    assert not pg.role_exists(body["data"]["username"])
    assert srv.req("DELETE", "database/config/second").status_code == 204


# ---------------------------------------------------------- concurrency --

def test_fifty_parallel_creds_with_table_grants(srv, pg, db):
    srv.client.write("database/roles/granting", db_name="myapp",
                     creation_statements=CREATE + " " + GRANT_TABLE,
                     default_ttl="1h")

    def one(_):
        return srv.req("GET", "database/creds/granting")

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
        results = list(ex.map(one, range(50)))
    bad = [r.text for r in results if r.status_code != 200]
    assert not bad, bad[:3]
    users = {r.json()["data"]["username"] for r in results}
    assert len(users) == 50
    for u in list(users)[:5]:
        assert pg.role_exists(u)
    r = srv.cli("lease", "revoke", "-sync", "-prefix", "database/creds/granting")
    assert r.rc == 0, r
    for u in users:
        assert not pg.role_exists(u)


# ------------------------------------------------------ database outage --

@pytest.mark.once
def test_revocation_retries_while_postgres_is_down(srv, pg, db):
    srv.client.write("database/roles/short", db_name="myapp",
                     creation_statements=CREATE, default_ttl="2s")
    body = creds(srv, "short")
    user = body["data"]["username"]
    pg.stop_server()
    try:
        time.sleep(3.5)  # expired while the database is down
        r = srv.req("GET", "database/creds/short")
        assert r.status_code == 500
        assert r.json()["errors"][0]  # a clear message, not a crash
        assert srv.req("GET", "sys/health").status_code == 200
    finally:
        pg.start()
    assert pg.wait_role_gone(user, 30), srv.stderr_text()[-3000:]


# --------------------------------------------------------- static roles --

def test_static_role_rotation(srv, pg, db):
    name = "svc_" + uuid.uuid4().hex[:8]
    static = "static-" + name
    pg.query('CREATE ROLE "%s" LOGIN PASSWORD \'initial\'' % name)
    srv.client.write("database/config/myapp",
                     allowed_roles="my-role, short, granting, bad, static-*")
    srv.client.write("database/static-roles/" + static, db_name="myapp",
                     username=name, rotation_period="1h")
    c1 = srv.client.read("database/static-creds/" + static)["data"]
    assert c1["username"] == name and 3500 < c1["ttl"] <= 3600
    assert pg.can_login(name, c1["password"])
    assert not pg.can_login(name, "initial")
    r = srv.cli("write", "-force", "database/rotate-role/" + static)
    assert r.rc == 0, r
    c2 = srv.client.read("database/static-creds/" + static)["data"]
    assert c2["password"] != c1["password"]
    assert pg.can_login(name, c2["password"])
    r = srv.req("PUT", "database/static-roles/" + static,
                json={"username": "someone-else"})
    assert r.status_code == 400


def test_static_role_period_minimum(srv, db):
    r = srv.req("PUT", "database/static-roles/tiny",
                json={"db_name": "myapp", "username": "x",
                      "rotation_period": "2s"})
    assert r.status_code == 400
    assert r.json()["errors"] == ["rotation_period must be 5 seconds or more"]


def test_rotate_root_keeps_working(srv, pg, db):
    admin = "admin_" + uuid.uuid4().hex[:8]
    pg.query("CREATE ROLE %s LOGIN CREATEROLE PASSWORD 'first'" % admin)
    srv.client.write("database/config/rooty",
                     plugin_name="postgresql-database-plugin",
                     connection_url=pg.url(templated=True),
                     username=admin, password="first", allowed_roles="*")
    r = srv.req("PUT", "database/rotate-root/rooty")
    assert r.status_code == 204, r.text
    assert not pg.can_login(admin, "first")
    srv.client.write("database/roles/rooty-role", db_name="rooty",
                     creation_statements=CREATE)
    body = creds(srv, "rooty-role")
    assert pg.role_exists(body["data"]["username"])
    srv.client.sys.revoke_lease(body["lease_id"])


def test_failing_revocation_becomes_irrevocable_and_visible(srv, pg, db):
    srv.client.write("database/roles/short", db_name="myapp",
                     creation_statements=CREATE,
                     revocation_statements="DROP ROLE no_such_role_here;",
                     default_ttl="1h", max_ttl="2h")
    body = creds(srv, "short")
    lease = body["lease_id"]
    r = srv.req("PUT", "sys/leases/revoke", json={"lease_id": lease})
    assert r.status_code == 400
    assert 'role "no_such_role_here" does not exist' in r.json()["errors"][0]
    # Queue it, let it fail repeatedly, and watch it surface.
    r = srv.req("PUT", "sys/leases/revoke", json={"lease_id": lease,
                                                  "sync": False})
    assert r.status_code == 202
    deadline = time.monotonic() + 15
    listed = []
    while time.monotonic() < deadline:
        listed = srv.req("GET", "sys/leases",
                         params={"type": "irrevocable"}).json()["data"]
        if listed.get("leases"):
            break
        time.sleep(0.2)
    assert [x["lease_id"] for x in listed["leases"]] == [lease]
    assert "does not exist" in listed["leases"][0]["error"]
    m = srv.req("GET", "sys/metrics").json()
    gauges = {g["Name"]: g["Value"] for g in m["Gauges"]}
    assert gauges["coffer.expire.num_irrevocable_leases"] >= 1
    counters = {c["Name"]: c["Count"] for c in m["Counters"]}
    assert counters["coffer.expire.revoke.failure"] >= 6
    text = srv.req("GET", "sys/metrics", params={"format": "prometheus"})
    assert text.headers["Content-Type"].startswith("text/plain")
    assert "coffer_expire_num_irrevocable_leases" in text.text
    r = srv.req("PUT", "sys/leases/renew", json={"lease_id": lease})
    assert r.status_code == 400
    # revoke-force deletes the record even though the engine fails.
    r = srv.req("PUT", "sys/leases/revoke-force/" + lease)
    assert r.status_code == 204
    r = srv.req("PUT", "sys/leases/lookup", json={"lease_id": lease})
    assert r.status_code == 400
    pg.query('DROP ROLE "%s"' % body["data"]["username"])


@pytest.mark.once
def test_static_role_rotates_by_itself(srv, pg, db):
    name = "auto_" + uuid.uuid4().hex[:8]
    static = "static-" + name
    pg.query('CREATE ROLE "%s" LOGIN PASSWORD \'initial\'' % name)
    srv.client.write("database/config/myapp",
                     allowed_roles="my-role, short, granting, bad, static-*")
    srv.client.write("database/static-roles/" + static, db_name="myapp",
                     username=name, rotation_period="5s")
    first = srv.client.read("database/static-creds/" + static)["data"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = srv.client.read("database/static-creds/" + static)["data"]
        if now["password"] != first["password"]:
            break
        time.sleep(0.5)
    assert now["password"] != first["password"]
    assert pg.can_login(name, now["password"])
    assert now["ttl"] <= 5


def test_tidy_revokes_leases_of_vanished_tokens(srv, pg, db):
    r = srv.req("PUT", "sys/leases/tidy")
    assert r.status_code == 202
    assert "Tidy operation successfully started" in r.json()["warnings"][0]


def test_policy_limited_token_reads_only_its_creds(srv, pg, db):
    r = srv.req("PUT", "sys/policies/acl/my-role-only", json={
        "policy": 'path "database/creds/my-role" { capabilities = ["read"] }'})
    assert r.status_code == 204, r.text
    tok = srv.client.auth.token.create(policies=["my-role-only"],
                                       no_default_policy=True)
    token = tok["auth"]["client_token"]
    body = creds(srv, "my-role", token=token)
    assert pg.role_exists(body["data"]["username"])
    for method, path in [("GET", "database/creds/short"),
                         ("GET", "database/config/myapp"),
                         ("PUT", "database/roles/my-role"),
                         ("GET", "database/roles/my-role"),
                         ("LIST", "database/roles"),
                         ("GET", "sys/policies/acl/my-role-only"),
                         ("GET", "sys/mounts"),
                         ("GET", "secret/data/anything"),
                         ("PUT", "sys/leases/revoke-prefix/database")]:
        r = srv.req(method, path, token=token, json={})
        assert r.status_code == 403, (method, path, r.text)


def test_revoking_parent_token_drops_children_users(srv, pg, db):
    parent = srv.client.auth.token.create(policies=["root"])
    ptoken = parent["auth"]["client_token"]
    child = srv.req("POST", "auth/token/create", token=ptoken,
                    json={"policies": ["root"]}).json()["auth"]["client_token"]
    grandchild = srv.req("POST", "auth/token/create", token=child,
                         json={"policies": ["root"]}).json()["auth"][
                             "client_token"]
    users = [creds(srv, token=t)["data"]["username"]
             for t in (ptoken, child, grandchild)]
    for u in users:
        assert pg.role_exists(u)
    assert srv.req("POST", "auth/token/revoke",
                   json={"token": ptoken}).status_code == 204
    for u in users:
        assert pg.wait_role_gone(u, 10), u
    assert srv.req("GET", "auth/token/lookup-self",
                   token=grandchild).status_code == 403
