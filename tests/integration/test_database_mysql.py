"""The database secrets engine against a real MariaDB (mysql plugins).

One throw-away MariaDB (tests/integration/mariadb.py) and one Coffer dev
server serve the whole module. Every test checks the database itself
(mysql.user, logging in with the `mariadb` client) rather than trusting
Coffer's answers.
"""

import concurrent.futures
import json
import time
import uuid

import pytest

import mariadb
from conftest import Server
from helpers import wait_until

CREATE = "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';"
GRANT = "GRANT SELECT ON app.* TO '{{name}}'@'%';"
# A GRANT that fails after CREATE USER has been committed by MySQL.
BAD_GRANT = "GRANT SELECT ON app.no_such_table TO '{{name}}'@'%';"

_why_not = mariadb.available()
pytestmark = pytest.mark.skipif(_why_not is not None,
                                reason=_why_not or "")


@pytest.fixture(scope="module")
def my():
    server = mariadb.MariaDB()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def srv(my):
    s = Server(extra_args=["-dev-lease-retry-base=0.05",
                           "-dev-lease-retry-max=0.5",
                           "-dev-tick-interval=0.5"])
    yield s
    rc = s.stop()
    assert rc == 0, s.stderr_text()[-4000:]


@pytest.fixture(scope="module")
def db(srv, my):
    """A mysql/ mount with config app and role reader."""
    r = srv.cli("secrets", "enable", "-path=mysql", "database")
    assert r.rc == 0, r
    r = srv.cli("write", "mysql/config/app",
                "plugin_name=mysql-database-plugin",
                "connection_url=" + my.url(templated=True),
                "username=root", "password=" + mariadb.ROOT_PASSWORD,
                "allowed_roles=*")
    assert r.rc == 0, r
    r = srv.cli("write", "mysql/roles/reader", "db_name=app",
                "creation_statements=" + CREATE + " " + GRANT,
                "default_ttl=5m", "max_ttl=1h")
    assert r.rc == 0, r
    return "mysql"


def creds(srv, role="reader", token=None):
    r = srv.req("GET", "mysql/creds/" + role, token=token or True)
    assert r.status_code == 200, r.text
    return r.json()


def no_leases(srv, role):
    r = srv.req("LIST", "sys/leases/lookup/mysql/creds/" + role)
    return r.status_code == 404 or not r.json()["data"]["keys"]


# ------------------------------------------------------------- the flow --

def test_cli_flow_creates_a_working_user(srv, my, db):
    r = srv.cli("read", "-format=json", "mysql/creds/reader")
    assert r.rc == 0, r
    body = json.loads(r.stdout)
    user, pw = body["data"]["username"], body["data"]["password"]
    assert body["lease_id"].startswith("mysql/creds/reader/")
    assert body["lease_duration"] == 300 and body["renewable"] is True
    # Vault's template: v-<display 10>-<role 10>-<random 20>-<unix>, cut
    # to 32.
    assert user.startswith("v-root-reader-") and len(user) == 32
    assert my.user_exists(user)
    assert my.can_login(user, pw)
    rc, out, err = my.client("SELECT COUNT(*) FROM app.items", user=user,
                             password=pw)
    assert rc == 0, err
    # The grant is what the role said: no write.
    rc, _, err = my.client("INSERT INTO app.items VALUES (1)", user=user,
                           password=pw)
    assert rc != 0 and "denied" in err
    r = srv.cli("lease", "revoke", "-sync", body["lease_id"])
    assert r.rc == 0, r
    assert not my.user_exists(user)
    assert not my.can_login(user, pw)


def test_hvac_read_and_revoke(srv, my, db):
    body = srv.client.read("mysql/creds/reader")
    user = body["data"]["username"]
    assert my.can_login(user, body["data"]["password"])
    srv.client.sys.revoke_lease(body["lease_id"])
    assert my.wait_user_gone(user, 10)


def test_renew_is_a_noop_that_extends_the_lease(srv, my, db):
    body = creds(srv)
    r = srv.req("PUT", "sys/leases/renew",
                json={"lease_id": body["lease_id"], "increment": "30m"})
    assert r.status_code == 200, r.text
    assert r.json()["lease_duration"] == 1800
    assert my.can_login(body["data"]["username"], body["data"]["password"])
    srv.client.sys.revoke_lease(body["lease_id"])


def test_short_ttl_expires_by_itself(srv, my, db):
    srv.client.write("mysql/roles/short", db_name="app",
                     creation_statements=CREATE, default_ttl="3s")
    body = creds(srv, "short")
    assert body["lease_duration"] == 3
    assert my.user_exists(body["data"]["username"])
    assert my.wait_user_gone(body["data"]["username"], 15)


def test_revoking_token_drops_its_users(srv, my, db):
    tok = srv.client.auth.token.create(policies=["root"])["auth"][
        "client_token"]
    users = [creds(srv, token=tok)["data"]["username"] for _ in range(2)]
    for u in users:
        assert my.user_exists(u)
    r = srv.cli("token", "revoke", tok)
    assert r.rc == 0, r
    for u in users:
        assert my.wait_user_gone(u, 10), u


def test_legacy_plugins_use_sixteen_character_names(srv, my, db):
    name = "leg-" + uuid.uuid4().hex[:6]
    for plugin in ("mysql-legacy-database-plugin",
                   "mysql-rds-database-plugin",
                   "mysql-aurora-database-plugin"):
        srv.client.write("mysql/config/" + name,
                         plugin_name=plugin,
                         connection_url=my.url(templated=True),
                         username="root", password=mariadb.ROOT_PASSWORD,
                         allowed_roles="legrole")
        srv.client.write("mysql/roles/legrole", db_name=name,
                         creation_statements=CREATE)
        body = creds(srv, "legrole")
        user = body["data"]["username"]
        # v-<role 4>-<random>, cut to 16.
        assert user.startswith("v-legr-") and len(user) == 16, user
        assert my.can_login(user, body["data"]["password"])
        srv.client.sys.revoke_lease(body["lease_id"])
        assert my.wait_user_gone(user, 10)


def test_config_read_hides_a_literal_password(srv, my, db):
    r = srv.req("PUT", "mysql/config/literal",
                json={"plugin_name": "mysql-database-plugin",
                      "connection_url": my.url(templated=False),
                      "allowed_roles": "x"})
    assert r.status_code == 200, r.text
    assert "Password found in connection_url" in r.json()["warnings"][0]
    details = srv.client.read("mysql/config/literal")["data"][
        "connection_details"]
    assert mariadb.ROOT_PASSWORD not in json.dumps(details)
    assert details["connection_url"].startswith("root:xxxxx@tcp(")
    srv.client.delete("mysql/config/literal")


def test_unix_socket_connection(srv, my, db):
    srv.client.write("mysql/config/sock", plugin_name="mysql-database-plugin",
                     connection_url="{{username}}:{{password}}@unix(%s)/"
                     % my.socket, username="root",
                     password=mariadb.ROOT_PASSWORD, allowed_roles="sockrole")
    srv.client.write("mysql/roles/sockrole", db_name="sock",
                     creation_statements=CREATE)
    body = creds(srv, "sockrole")
    assert my.can_login(body["data"]["username"], body["data"]["password"])
    srv.client.sys.revoke_lease(body["lease_id"])
    assert not my.user_exists(body["data"]["username"])


# ----------------------------------------------------- failures and input --

def test_wrong_password_refused_and_scrubbed(srv, my, db):
    r = srv.req("PUT", "mysql/config/wrongpw",
                json={"plugin_name": "mysql-database-plugin",
                      "connection_url": my.url(templated=True),
                      "username": "root", "password": "Not-The-Pw-77"})
    assert r.status_code == 400
    msg = r.json()["errors"][0]
    assert "error verifying connection" in msg
    assert "Access denied" in msg and "1045" in msg
    assert "Not-The-Pw-77" not in msg
    assert srv.req("GET", "mysql/config/wrongpw").status_code == 404


def test_malformed_connection_url_refused(srv, db):
    for url in ("root:pw@localhost:3306/", "{{username}}:{{password}}@tcp(h",
                "{{username}}@tcp(127.0.0.1:99999)/",
                "u:p@tcp(127.0.0.1:1)/?sql_mode=x"):
        r = srv.req("PUT", "mysql/config/bad",
                    json={"plugin_name": "mysql-database-plugin",
                          "connection_url": url, "username": "root",
                          "password": "pw"})
        assert r.status_code == 400, (url, r.text)
        assert "invalid connection_url" in r.json()["errors"][0], url


def test_credentials_cannot_rewrite_the_address(srv, my, db):
    # A root username that would end the user-info part and name another
    # host, or a password that holds an address, is refused.
    for user, pw in (("root@tcp(10.0.0.1:1)/x", "pw"), ("ro:ot", "pw"),
                     ("root", "x@tcp(10.0.0.1:1)/")):
        r = srv.req("PUT", "mysql/config/rewrite",
                    json={"plugin_name": "mysql-database-plugin",
                          "connection_url": my.url(templated=True),
                          "username": user, "password": pw})
        assert r.status_code == 400, (user, r.text)
        assert "cannot contain" in r.json()["errors"][0]
        assert "10.0.0.1" not in r.json()["errors"][0]


def test_unreachable_database(srv, db):
    port = mariadb.free_port()
    r = srv.req("PUT", "mysql/config/down",
                json={"plugin_name": "mysql-database-plugin",
                      "connection_url": "{{username}}:{{password}}@tcp("
                      "127.0.0.1:%d)/" % port, "username": "root",
                      "password": "pw"})
    assert r.status_code == 400
    assert "Can't connect" in r.json()["errors"][0]


def test_bad_statement_gives_the_database_words_and_leaves_nothing(
        srv, my, db):
    srv.client.write("mysql/roles/bad", db_name="app",
                     creation_statements="CREATE USERX '{{name}}'@'%';")
    before = my.users()
    r = srv.req("GET", "mysql/creds/bad")
    assert r.status_code == 500
    msg = r.json()["errors"][0]
    assert "Error 1064" in msg and "syntax" in msg, msg
    assert my.users() == before
    assert no_leases(srv, "bad")


def test_half_failed_creation_drops_the_user(srv, my, db):
    # CREATE USER commits at once; the GRANT then fails. Coffer must drop
    # the user itself and leave no lease.
    srv.client.write("mysql/roles/half", db_name="app",
                     creation_statements=CREATE + " " + BAD_GRANT)
    before = my.users()
    r = srv.req("GET", "mysql/creds/half")
    assert r.status_code == 500
    msg = r.json()["errors"][0]
    assert "Error 1146" in msg and "no_such_table" in msg, msg
    assert my.users() == before
    assert no_leases(srv, "half")


def test_half_failed_creation_with_vault_style_revocation(srv, my, db):
    srv.client.write("mysql/roles/half2", db_name="app",
                     creation_statements=CREATE + " " + BAD_GRANT,
                     revocation_statements="REVOKE ALL PRIVILEGES, GRANT "
                     "OPTION FROM '{{name}}'@'%'; DROP USER '{{name}}'@'%'")
    before = my.users()
    r = srv.req("GET", "mysql/creds/half2")
    assert r.status_code == 500
    assert my.users() == before
    assert no_leases(srv, "half2")


def test_password_never_in_a_failed_statement_message(srv, my, db):
    # The server quotes the failing statement, which holds the password.
    srv.client.write("mysql/roles/quoting", db_name="app",
                     creation_statements="CREATE USER '{{name}}'@'%' "
                     "IDENTIFIEDX BY '{{password}}';")
    r = srv.req("GET", "mysql/creds/quoting")
    assert r.status_code == 500
    msg = r.json()["errors"][0]
    assert "near 'IDENTIFIEDX BY 'xxxxx''" in msg, msg
    assert mariadb.ROOT_PASSWORD not in msg


def test_hostile_username_template_is_refused(srv, my, db):
    before = my.users()
    for tmpl in ("x'@'%'; DROP DATABASE app; -- {{random 4}}",
                 "{{.RoleName}}`\\'", "a b{{random 3}}"):
        srv.client.write("mysql/config/hostile",
                         plugin_name="mysql-database-plugin",
                         connection_url=my.url(templated=True),
                         username="root", password=mariadb.ROOT_PASSWORD,
                         allowed_roles="*", username_template=tmpl)
        srv.client.write("mysql/roles/evil", db_name="hostile",
                         creation_statements=CREATE)
        r = srv.req("GET", "mysql/creds/evil")
        assert r.status_code == 400, (tmpl, r.text)
        assert "unable to generate username" in r.json()["errors"][0]
    assert my.users() == before
    assert my.query("SHOW DATABASES LIKE 'app'") == [["app"]]


def test_too_long_username_template_is_refused(srv, my, db):
    srv.client.write("mysql/config/long", plugin_name="mysql-database-plugin",
                     connection_url=my.url(templated=True), username="root",
                     password=mariadb.ROOT_PASSWORD, allowed_roles="*",
                     username_template="{{random 40}}")
    srv.client.write("mysql/roles/longrole", db_name="long",
                     creation_statements=CREATE)
    r = srv.req("GET", "mysql/creds/longrole")
    assert r.status_code == 400
    assert "the database keeps 32" in r.json()["errors"][0]


def test_hostile_role_name_is_quoted_or_refused(srv, my, db):
    # The role name reaches the username through the template: a quote in
    # it must never reach SQL.
    before = my.users()
    r = srv.req("PUT", "mysql/roles/a'b", json={
        "db_name": "app", "creation_statements": CREATE})
    if r.status_code in (200, 204):
        r = srv.req("GET", "mysql/creds/a'b")
        assert r.status_code == 400, r.text
    assert my.users() == before


# ---------------------------------------------------------- concurrency --

def test_fifty_parallel_creds_all_distinct_all_revoked(srv, my, db):
    srv.client.write("mysql/roles/many", db_name="app",
                     creation_statements=CREATE + " " + GRANT,
                     default_ttl="1h")

    def one(_):
        return srv.req("GET", "mysql/creds/many")

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
        results = list(ex.map(one, range(50)))
    bad = [r.text for r in results if r.status_code != 200]
    assert not bad, bad[:3]
    users = {r.json()["data"]["username"] for r in results}
    assert len(users) == 50
    assert users <= my.users()
    r = srv.cli("lease", "revoke", "-sync", "-prefix", "mysql/creds/many")
    assert r.rc == 0, r
    assert not users & my.users()


@pytest.mark.once
def test_statement_timeout_cancels_the_query(srv, my, db):
    srv.client.write("mysql/config/slow", plugin_name="mysql-database-plugin",
                     connection_url=my.url(templated=True), username="root",
                     password=mariadb.ROOT_PASSWORD, allowed_roles="*",
                     statement_timeout="1s")
    # Another session holds the table: the SELECT waits for its lock.
    holder = my.background("LOCK TABLES app.items WRITE; DO SLEEP(8);")
    try:
        before = my.users()
        # The server's own limit (max_statement_time) stops it...
        srv.client.write("mysql/roles/sleepy", db_name="slow",
                         creation_statements="SELECT COUNT(*) FROM app.items;"
                         + CREATE)
        r = srv.req("GET", "mysql/creds/sleepy")
        assert r.status_code == 500, r.text
        assert "Error 1969" in r.json()["errors"][0], r.text
        # ...and where the statement lifts that limit, Coffer's deadline
        # and KILL QUERY from a second connection do.
        srv.client.write("mysql/roles/sleepy", db_name="slow",
                         creation_statements="SET STATEMENT "
                         "max_statement_time=0 FOR SELECT COUNT(*) FROM "
                         "app.items;" + CREATE)
        t0 = time.monotonic()
        r = srv.req("GET", "mysql/creds/sleepy")
        took = time.monotonic() - t0
        assert r.status_code == 500, r.text
        assert took < 5, took  # the lock holder sleeps 8 s
        assert "canceling statement due to statement timeout" in \
            r.json()["errors"][0], r.text
        assert my.users() == before
        # The server is no longer running it.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            rows = my.query("SELECT COUNT(*) FROM information_schema."
                            "processlist WHERE info LIKE '%FROM app.items%' "
                            "AND info NOT LIKE '%processlist%'")
            if rows == [["0"]]:
                break
            time.sleep(0.2)
        assert rows == [["0"]]
    finally:
        holder.kill()
        holder.wait()
    # And the config still serves.
    srv.client.write("mysql/roles/sleepy", db_name="slow",
                     creation_statements=CREATE)
    body = creds(srv, "sleepy")
    srv.client.sys.revoke_lease(body["lease_id"])


# ------------------------------------------- static roles and root rotation --

def test_static_role_rotation(srv, my, db):
    name = "svc_" + uuid.uuid4().hex[:8]
    static = "static-" + name
    my.query("CREATE USER '%s'@'%%' IDENTIFIED BY 'initial'" % name)
    srv.client.write("mysql/static-roles/" + static, db_name="app",
                     username=name, rotation_period="1h")
    c1 = srv.client.read("mysql/static-creds/" + static)["data"]
    assert c1["username"] == name and 3500 < c1["ttl"] <= 3600
    assert my.can_login(name, c1["password"])
    assert not my.can_login(name, "initial")
    r = srv.cli("write", "-force", "mysql/rotate-role/" + static)
    assert r.rc == 0, r
    c2 = srv.client.read("mysql/static-creds/" + static)["data"]
    assert c2["password"] != c1["password"]
    assert my.can_login(name, c2["password"])
    assert not my.can_login(name, c1["password"])
    srv.client.delete("mysql/static-roles/" + static)
    my.query("DROP USER '%s'@'%%'" % name)


def test_rotate_root_keeps_working(srv, my, db):
    admin = "adm_" + uuid.uuid4().hex[:8]
    my.query("CREATE USER '%s'@'%%' IDENTIFIED BY 'first'; GRANT ALL "
             "PRIVILEGES ON *.* TO '%s'@'%%' WITH GRANT OPTION"
             % (admin, admin))
    cfg = "rooty-" + admin
    srv.client.write("mysql/config/" + cfg, plugin_name="mysql-database-plugin",
                     connection_url=my.url(templated=True), username=admin,
                     password="first", allowed_roles="*")
    r = srv.req("PUT", "mysql/rotate-root/" + cfg)
    assert r.status_code == 204, r.text
    assert not my.can_login(admin, "first")
    srv.client.write("mysql/roles/rooty-role", db_name=cfg,
                     creation_statements=CREATE)
    body = creds(srv, "rooty-role")
    assert my.can_login(body["data"]["username"], body["data"]["password"])
    srv.client.sys.revoke_lease(body["lease_id"])
    assert not my.user_exists(body["data"]["username"])
    srv.client.delete("mysql/config/" + cfg)
    my.query("DROP USER '%s'@'%%'" % admin)


# ------------------------------------------------------- server restart --

@pytest.mark.once
def test_server_restart_during_a_lease(srv, my, db):
    # Pooled connections die with the server; the pool notices and heals.
    body = creds(srv)
    user = body["data"]["username"]
    my.restart()
    again = creds(srv)
    assert my.can_login(again["data"]["username"], again["data"]["password"])
    assert my.can_login(user, body["data"]["password"])
    for b in (body, again):
        srv.client.sys.revoke_lease(b["lease_id"])
        assert not my.user_exists(b["data"]["username"])


def test_failed_creation_with_non_idempotent_revocation_leaves_no_lease(
        srv, my, db):
    # The user never came to exist and the role's revocation (DROP USER
    # without IF EXISTS) fails on a missing user: the pending lease must
    # still go (the default revocation takes over for a lease never
    # issued).
    srv.client.write("mysql/roles/bad3", db_name="app",
                     creation_statements="CREATE USERX '{{name}}'@'%';",
                     revocation_statements="DROP USER '{{name}}'@'%'")
    before = my.users()
    r = srv.req("GET", "mysql/creds/bad3")
    assert r.status_code == 500
    assert my.users() == before
    assert no_leases(srv, "bad3")


def test_mass_expiry_drops_every_user(srv, my, db):
    srv.client.write("mysql/roles/mass", db_name="app",
                     creation_statements=CREATE, default_ttl="5s")
    users = [creds(srv, "mass")["data"]["username"] for _ in range(12)]
    assert set(users) <= my.users()
    assert wait_until(lambda: not set(users) & my.users(), 20)
    # Each record is deleted just after its user is dropped.
    assert wait_until(lambda: no_leases(srv, "mass"), 10)


def test_mysql_pool_in_metrics(srv, my, db):
    # The pools of both drivers are one pool implementation (db_pool.c):
    # a MySQL config's pool is counted in sys/metrics like PostgreSQL's,
    # with its driver as a label, and its statements are counted.
    creds(srv)
    gauges = [g for g in srv.req("GET", "sys/metrics").json()["Gauges"]
              if g["Name"] == "coffer.database.pool.open"
              and g["Labels"].get("pool", "").endswith("/app")]
    assert gauges, "no pool gauge for mysql/config/app"
    assert all(g["Labels"]["driver"] == "mysql" for g in gauges), gauges
    assert max(g["Value"] for g in gauges) >= 1
    samples = [s for s in srv.req("GET", "sys/metrics").json()["Samples"]
               if s["Name"] == "coffer.database.statement"
               and s["Labels"].get("driver") == "mysql"]
    assert samples and samples[0]["Count"] >= 1, samples
