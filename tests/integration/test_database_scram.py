"""password_authentication = "scram-sha-256" on a PostgreSQL connection
(Vault's postgresql-database-plugin field): {{password}} becomes the
SCRAM-SHA-256 verifier, so PostgreSQL never receives the password itself
nor logs it, for dynamic credentials, static-role rotation and root
rotation alike; the client still gets the password, and it logs in.

Every check is made on the database: pg_authid holds the verifier Coffer
sent (not one PostgreSQL computed), and the statement log that
`log_statement = 'all'` writes holds no password.
"""

import hashlib
import hmac
import base64
import uuid

import pytest

from helpers import PG_CREATE, fast_lease_server, write_pg_config
from pgcluster import PgCluster

GRANT = 'GRANT app_readonly TO "{{name}}";'


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    cluster.query("CREATE ROLE app_readonly NOLOGIN")
    cluster.query("ALTER SYSTEM SET log_statement = 'all'")
    cluster.query("SELECT pg_reload_conf()")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def srv(pg):
    yield from fast_lease_server()


@pytest.fixture(scope="module")
def db(srv, pg):
    r = srv.cli("secrets", "enable", "-path=scram", "database")
    assert r.rc == 0, r
    write_pg_config(srv, "scram/config/hashed", pg, "allowed_roles=*",
                    "password_authentication=scram-sha-256")
    r = srv.cli("write", "scram/roles/app", "db_name=hashed",
                "creation_statements=" + PG_CREATE + " " + GRANT,
                "default_ttl=5m")
    assert r.rc == 0, r
    return "scram"


def stored_secret(pg, user):
    rows = pg.query("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                    user)
    return rows[0][0] if rows else None


def verifies(verifier, password):
    """Whether a SCRAM-SHA-256 verifier is the one of password (RFC 5802:
    StoredKey = H(HMAC(SaltedPassword, "Client Key")))."""
    head, keys = verifier.split("$", 1)[1].split("$")
    iterations, salt = head.split(":")
    stored, server = keys.split(":")
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(),
                                 base64.b64decode(salt), int(iterations))
    ck = hmac.new(salted, b"Client Key", "sha256").digest()
    sk = hmac.new(salted, b"Server Key", "sha256").digest()
    return (hashlib.sha256(ck).digest() == base64.b64decode(stored) and
            sk == base64.b64decode(server))


def refused_before_any_role(srv, pg, path):
    """GET path must fail with a 400 and create no database user; returns
    the error."""
    before = pg.query("SELECT count(*) FROM pg_roles")[0][0]
    r = srv.req("GET", path)
    assert r.status_code == 400, r.text
    assert pg.query("SELECT count(*) FROM pg_roles")[0][0] == before
    return r.json()["errors"][0]


def pg_log(pg):
    with open(pg.log, errors="replace") as f:
        return f.read()


def test_config_reads_back_the_method(srv, db):
    r = srv.req("GET", "scram/config/hashed")
    assert r.status_code == 200, r.text
    details = r.json()["data"]["connection_details"]
    assert details["password_authentication"] == "scram-sha-256"


def test_credentials_log_in_and_postgres_never_sees_the_password(
        srv, pg, db):
    r = srv.req("GET", "scram/creds/app")
    assert r.status_code == 200, r.text
    user = r.json()["data"]["username"]
    password = r.json()["data"]["password"]
    secret = stored_secret(pg, user)
    assert secret.startswith("SCRAM-SHA-256$4096:"), secret
    assert verifies(secret, password)
    assert pg.can_login(user, password)
    assert not pg.can_login(user, password + "x")
    log = pg_log(pg)
    assert user in log                      # the statement was logged ...
    assert password not in log              # ... with the verifier only
    assert secret in log
    srv.client.sys.revoke_lease(r.json()["lease_id"])
    assert stored_secret(pg, user) is None


def test_each_credential_gets_its_own_salt(srv, pg, db):
    secrets = []
    for _ in range(2):
        body = srv.req("GET", "scram/creds/app").json()
        secrets.append(stored_secret(pg, body["data"]["username"]))
        srv.client.sys.revoke_lease(body["lease_id"])
    salts = [s.split("$")[1].split(":")[1] for s in secrets]
    assert salts[0] != salts[1]


def test_static_role_rotation_sends_the_verifier(srv, pg, db):
    name = "svc_" + uuid.uuid4().hex[:8]
    pg.query('CREATE ROLE "%s" LOGIN PASSWORD \'initial\'' % name)
    srv.client.write("scram/static-roles/st-" + name, db_name="hashed",
                     username=name, rotation_period="1h")
    first = srv.client.read("scram/static-creds/st-" + name)["data"]
    assert verifies(stored_secret(pg, name), first["password"])
    assert pg.can_login(name, first["password"])
    r = srv.req("POST", "scram/rotate-role/st-" + name)
    assert r.status_code == 204, r.text
    second = srv.client.read("scram/static-creds/st-" + name)["data"]
    assert second["password"] != first["password"]
    assert pg.can_login(name, second["password"])
    assert not pg.can_login(name, first["password"])
    log = pg_log(pg)
    assert first["password"] not in log and second["password"] not in log


def test_root_rotation_sends_the_verifier_and_coffer_still_connects(
        srv, pg, db):
    admin = "admin_" + uuid.uuid4().hex[:8]
    pg.query("CREATE ROLE %s LOGIN CREATEROLE PASSWORD 'first'" % admin)
    pg.query("GRANT app_readonly TO %s WITH ADMIN OPTION" % admin)
    write_pg_config(srv, "scram/config/rooty", pg, "allowed_roles=*",
                    "password_authentication=scram-sha-256", user=admin,
                    password="first")
    r = srv.req("PUT", "scram/rotate-root/rooty")
    assert r.status_code == 204, r.text
    assert not pg.can_login(admin, "first")
    assert stored_secret(pg, admin).startswith("SCRAM-SHA-256$4096:")
    srv.client.write("scram/roles/rooty-role", db_name="rooty",
                     creation_statements=PG_CREATE)
    body = srv.req("GET", "scram/creds/rooty-role")
    assert body.status_code == 200, body.text   # its new password works
    user = body.json()["data"]["username"]
    assert pg.can_login(user, body.json()["data"]["password"])
    srv.client.sys.revoke_lease(body.json()["lease_id"])


@pytest.mark.parametrize("value", ["md5", "SCRAM-SHA-256", "scram", " "])
def test_unknown_methods_are_refused_and_nothing_changes(srv, db, value):
    r = srv.req("POST", "scram/config/hashed",
                json={"password_authentication": value})
    assert r.status_code == 400, r.text
    assert r.json()["errors"] == [
        "error creating database object: '%s' is not a valid password "
        "authentication type" % value]
    details = srv.req("GET", "scram/config/hashed").json()["data"][
        "connection_details"]
    assert details["password_authentication"] == "scram-sha-256"


def test_a_password_outside_ascii_is_refused_before_anything_runs(
        srv, pg, db):
    """SASLprep would prepare a non-ASCII password differently from the
    verifier, so it is refused before any statement; the message names
    the whole character."""
    r = srv.req("PUT", "sys/policies/password/accents", json={
        "policy": 'length = 12\nrule "charset" { charset = "éàü" }'})
    assert r.status_code == 204, r.text
    srv.client.write("scram/roles/accents", db_name="hashed",
                     creation_statements=PG_CREATE,
                     credential_config={"password_policy": "accents"})
    err = refused_before_any_role(srv, pg, "scram/creds/accents")
    assert err.startswith("the generated password contains \"")
    assert err.endswith("with password_authentication scram-sha-256 only "
                        "printable ASCII characters are")
    assert any(c in err for c in "éàü") and "\ufffd" not in err


def test_a_plugin_without_the_method_refuses_it(srv, db):
    r = srv.req("POST", "scram/config/my", json={
        "plugin_name": "mysql-database-plugin",
        "connection_url": "{{username}}:{{password}}@tcp(127.0.0.1:1)/x",
        "username": "u", "password": "p", "verify_connection": False,
        "password_authentication": "scram-sha-256"})
    assert r.status_code == 400, r.text
    assert r.json()["errors"] == ['password_authentication "scram-sha-256" '
                                  'is not supported by mysql-database-plugin'
                                  ' (set it to "password" to use this '
                                  'plugin)']
    assert srv.req("GET", "scram/config/my").status_code == 404


def test_password_mode_still_sends_the_password(srv, pg, db):
    write_pg_config(srv, "scram/config/plain", pg, "allowed_roles=*",
                    "password_authentication=password")
    srv.client.write("scram/roles/plain", db_name="plain",
                     creation_statements=PG_CREATE)
    body = srv.req("GET", "scram/creds/plain").json()
    user, password = body["data"]["username"], body["data"]["password"]
    assert pg.can_login(user, password)
    assert password in pg_log(pg)   # what "password" means, as in Vault
    srv.client.sys.revoke_lease(body["lease_id"])


@pytest.mark.parametrize("config", ["hashed", "plain"])
def test_an_error_cut_inside_the_secret_does_not_show_its_start(
        srv, pg, db, config):
    """The driver keeps 511 bytes of PostgreSQL's message: a statement
    that makes PostgreSQL quote {{password}} right at that limit must not
    show the first characters of the password or of its verifier (found
    by review: the salt and 27 characters of StoredKey were shown)."""
    if config == "plain":
        write_pg_config(srv, "scram/config/plain", pg, "allowed_roles=*",
                        "password_authentication=password")
    for pad in range(380, 480, 7):
        srv.client.write("scram/roles/cut", db_name=config,
                         creation_statements="SELECT (repeat('x', %d) || "
                         "'{{password}}')::int;" % pad)
        r = srv.req("GET", "scram/creds/cut")
        assert r.status_code == 500, r.text
        err = r.json()["errors"][0]
        tail = err.rstrip().rstrip("\"").split("x" * 8)[-1].lstrip("x")
        assert tail in ("", "xxxxx") or tail.startswith("xxxxx"), (pad, err)
        assert "SCRAM-SHA-256" not in err


SYMBOLS = "ab!#'();*,.:<>?@[]^_|~-"


def symbols_policy(srv):
    r = srv.req("PUT", "sys/policies/password/symbols", json={
        "policy": 'length = 24\nrule "charset" { charset = "%s" }' % SYMBOLS})
    assert r.status_code == 204, r.text


def test_hashed_passwords_may_hold_any_printable_ascii(srv, pg, db):
    """The password never reaches a statement, so the safe alphabet that
    guards pasted passwords does not apply (as in Vault): quotes and
    semicolons come back to the client and log in."""
    symbols_policy(srv)
    srv.client.write("scram/roles/symbols", db_name="hashed",
                     creation_statements=PG_CREATE,
                     credential_config={"password_policy": "symbols"})
    seen = set()
    for _ in range(3):
        r = srv.req("GET", "scram/creds/symbols")
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        seen |= set(data["password"])
        assert set(data["password"]) <= set(SYMBOLS)
        assert pg.can_login(data["username"], data["password"])
        srv.client.sys.revoke_lease(r.json()["lease_id"])
    assert seen - set("ab_.-"), seen   # symbols were really drawn


def test_pasted_passwords_keep_the_safe_alphabet(srv, pg, db):
    symbols_policy(srv)
    write_pg_config(srv, "scram/config/plain", pg, "allowed_roles=*",
                    "password_authentication=password")
    srv.client.write("scram/roles/plain-symbols", db_name="plain",
                     creation_statements=PG_CREATE,
                     credential_config={"password_policy": "symbols"})
    err = refused_before_any_role(srv, pg, "scram/creds/plain-symbols")
    assert "only letters, digits, '-', '_' and '.' are" in err


def test_static_roles_with_symbols_rotate_and_log_in(srv, pg, db):
    symbols_policy(srv)
    name = "sym_" + uuid.uuid4().hex[:8]
    pg.query('CREATE ROLE "%s" LOGIN PASSWORD \'initial\'' % name)
    srv.client.write("scram/static-roles/sym-" + name, db_name="hashed",
                     username=name, rotation_period="1h",
                     credential_config={"password_policy": "symbols"})
    first = srv.client.read("scram/static-creds/sym-" + name)["data"]
    assert set(first["password"]) <= set(SYMBOLS)
    assert pg.can_login(name, first["password"])
    r = srv.req("POST", "scram/rotate-role/sym-" + name)
    assert r.status_code == 204, r.text
    second = srv.client.read("scram/static-creds/sym-" + name)["data"]
    assert pg.can_login(name, second["password"])
    assert not pg.can_login(name, first["password"])
