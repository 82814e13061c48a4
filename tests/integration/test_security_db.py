"""Issue 8, database side: injection through generated names (2b, 2c),
a stalled database (9) and passwords in connection strings (12).

A scratch PostgreSQL and a dev server serve the module. Every claim is
checked in the database itself (pg_roles) or by timing the server.
"""

import concurrent.futures
import socket
import threading
import time
import uuid

import pytest

from conftest import Server
from pgcluster import PgCluster

CREATE = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
          "VALID UNTIL '{{expiration}}';")
HOSTILE = "x\"; alter role \"userpass-x\" superuser login password 'pwned'; --z"


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    cluster.query("CREATE TABLE locked_tbl (x int)")
    cluster.query("CREATE ROLE locker NOLOGIN")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def srv(pg):
    s = Server(extra_args=["-dev-lease-retry-base=0.2",
                           "-dev-lease-retry-max=1"])
    yield s
    rc = s.stop()
    assert rc == 0, s.stderr_text()[-4000:]


@pytest.fixture(scope="module")
def mount(srv):
    path = "db-" + uuid.uuid4().hex[:8]
    r = srv.req("POST", "sys/mounts/" + path, json={"type": "database"})
    assert r.status_code == 204, r.text
    return path


def config(srv, pg, mount, name, **extra):
    body = {"plugin_name": "postgresql-database-plugin",
            "connection_url": pg.url(templated=True),
            "username": "postgres", "password": "postgres",
            "allowed_roles": "*"}
    body.update(extra)
    return srv.req("POST", "%s/config/%s" % (mount, name), json=body)


def role(srv, mount, name, db, stmts=CREATE, **extra):
    body = {"db_name": db, "creation_statements": stmts, "default_ttl": "1h"}
    body.update(extra)
    r = srv.req("POST", "%s/roles/%s" % (mount, name), json=body)
    assert r.status_code == 204, r.text


def roles(pg):
    return {r[0] for r in pg.query("SELECT rolname FROM pg_roles")}


def superusers(pg):
    return {r[0] for r in pg.query(
        "SELECT rolname FROM pg_roles WHERE rolsuper")}


# ------------------------------------------------- 2(b) safe usernames --

def test_issue_attack_userpass_name_gets_400_and_no_role(srv, pg, mount):
    """The attack of the issue: a hostile userpass name reaches the
    username template. Whatever auth does with the name, PostgreSQL must
    never see it, and creds must say which template refused it."""
    path = "up-" + uuid.uuid4().hex[:6]
    assert srv.req("POST", "sys/auth/" + path,
                   json={"type": "userpass"}).status_code == 204
    assert config(srv, pg, mount, "attack",
                  username_template="{{.DisplayName}}-{{random 6}}"
                  ).status_code in (200, 204)
    role(srv, mount, "attack", "attack")
    assert srv.req("PUT", "sys/policies/acl/dbcreds", json={
        "policy": 'path "%s/creds/*" { capabilities = ["read"] }' % mount
    }).status_code == 204
    before, supers = roles(pg), superusers(pg)
    r = srv.req("POST", "auth/%s/users/%s" % (path, HOSTILE),
                json={"password": "pw", "policies": "dbcreds"})
    if r.status_code == 204:
        r = srv.req("POST", "auth/%s/login/%s" % (path, HOSTILE),
                    json={"password": "pw"}, token=None)
    if r.status_code == 200:
        tok = r.json()["auth"]["client_token"]
        r = srv.req("GET", "%s/creds/attack" % mount, token=tok)
        assert r.status_code == 400, r.text
        assert "username_template" in r.text
    else:
        assert 400 <= r.status_code < 500, r.text
    assert roles(pg) == before
    assert superusers(pg) == supers


@pytest.mark.parametrize("template", [
    '{{.RoleName}}"; CREATE ROLE evil SUPERUSER; --',
    "{{.RoleName}}' ; DROP TABLE locked_tbl; --",
    '{{.DisplayName | replace "o" "\\"; CREATE ROLE evil2 SUPERUSER; --"}}',
    "{{.RoleName}} {{random 4}}",
    "{{.RoleName}}\\{{random 4}}",
    "{{random 70}}",
])
def test_any_template_output_is_checked(srv, pg, mount, template):
    name = "t" + uuid.uuid4().hex[:6]
    r = config(srv, pg, mount, name, username_template=template)
    assert r.status_code in (200, 204), r.text
    role(srv, mount, name, name)
    before = roles(pg)
    r = srv.req("GET", "%s/creds/%s" % (mount, name))
    assert r.status_code == 400, r.text
    assert "username_template" in r.json()["errors"][0]
    assert roles(pg) == before
    assert not {"evil", "evil2"} & roles(pg)
    assert pg.query("SELECT to_regclass('locked_tbl')")[0][0] is not None


@pytest.mark.parametrize("template", [
    "{{random -1}}", "{{random 5000}}", "{{random 4097}}",
])
def test_bad_template_arguments_are_a_400_at_write(srv, pg, mount, template):
    # Found by tests/fuzz/fuzz_template.c: these raised plain Lua errors,
    # so the config write answered 500 instead of a 400 naming the problem.
    r = config(srv, pg, mount, "b" + uuid.uuid4().hex[:6],
               username_template=template)
    assert r.status_code == 400, r.text
    assert "invalid username template" in r.json()["errors"][0], r.text


def test_timestamp_layouts_work_in_username_templates(srv, pg, mount):
    # Found by the same fuzzer: every timestamp layout raised.
    name = "ts" + uuid.uuid4().hex[:6]
    r = config(srv, pg, mount, name, username_template=(
        '{{.RoleName}}-{{timestamp "20060102"}}-{{random 6}}'))
    assert r.status_code in (200, 204), r.text
    role(srv, mount, name, name)
    r = srv.req("GET", "%s/creds/%s" % (mount, name))
    assert r.status_code == 200, r.text
    user = r.json()["data"]["username"]
    assert user.startswith(name + "-" + time.strftime("%Y%m%d", time.gmtime())), user


def test_token_display_name_cannot_inject(srv, pg, mount):
    assert config(srv, pg, mount, "disp",
                  username_template="{{.DisplayName}}-{{random 6}}"
                  ).status_code in (200, 204)
    role(srv, mount, "disp", "disp")
    tok = srv.req("POST", "auth/token/create", json={
        "policies": ["root"],
        "display_name": 'a"; CREATE ROLE evil3 SUPERUSER; --'}).json()
    before = roles(pg)
    r = srv.req("GET", "%s/creds/disp" % mount,
                token=tok["auth"]["client_token"])
    if r.status_code == 200:
        name = r.json()["data"]["username"]
        assert all(c.isalnum() or c in "-_." for c in name), name
        assert roles(pg) - before == {name}
    else:
        assert r.status_code == 400, r.text
        assert roles(pg) == before
    assert "evil3" not in roles(pg)


def test_static_role_and_root_rotation_refuse_unsafe_names(srv, pg, mount):
    assert config(srv, pg, mount, "st").status_code in (200, 204)
    r = srv.req("POST", "%s/static-roles/bad" % mount, json={
        "db_name": "st", "username": 'postgres"; CREATE ROLE evil4; --',
        "rotation_period": "1h"})
    assert r.status_code == 400, r.text
    assert "evil4" not in roles(pg)
    # A config whose own username is hostile: rotate-root refuses it.
    r = config(srv, pg, mount, "rr", username='postgres" SUPERUSER; --',
               verify_connection=False)
    assert r.status_code in (200, 204), r.text
    r = srv.req("POST", "%s/rotate-root/rr" % mount)
    assert r.status_code == 400, r.text
    # The real root password is unchanged.
    pg.connect().close()


# --------------------------------------------------- 2(c) quoting helpers --

def test_quoting_helpers_in_statements(srv, pg, mount):
    assert config(srv, pg, mount, "quote").status_code in (200, 204)
    role(srv, mount, "quote", "quote",
         stmts="CREATE ROLE {{name | ident}} WITH LOGIN PASSWORD "
               "{{password|literal}} VALID UNTIL '{{expiration}}';")
    r = srv.req("GET", "%s/creds/quote" % mount)
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert pg.role_exists(d["username"])
    pg.connect(user=d["username"], password=d["password"]).close()
    role(srv, mount, "quote2", "quote",
         stmts='CREATE ROLE {{name | shellquote}};')
    r = srv.req("GET", "%s/creds/quote2" % mount)
    assert r.status_code == 500 and "shellquote" in r.text, r.text


# ---------------------------------------------- 12: passwords in strings --

def kv_url(pg, password_part):
    return ("host=127.0.0.1 port=%d dbname=%s user=postgres %s "
            "sslmode=disable" % (pg.port, pg.dbname, password_part))


def test_key_value_password_is_redacted_and_works(srv, pg, mount):
    admin = "kvadmin" + uuid.uuid4().hex[:6]
    pg.query("CREATE ROLE %s LOGIN CREATEROLE PASSWORD 'KVSecretPW'" % admin)
    r = config(srv, pg, mount, "kv",
               connection_url=kv_url(pg, "password=KVSecretPW").replace(
                   "user=postgres", "user=" + admin))
    assert r.status_code == 200, r.text
    assert "Password found in connection_url" in r.text
    assert "KVSecretPW" not in r.text
    r = srv.req("GET", "%s/config/kv" % mount)
    assert r.status_code == 200
    assert "KVSecretPW" not in r.text
    assert "password=xxxxx" in r.json()["data"]["connection_details"][
        "connection_url"]
    role(srv, mount, "kvrole", "kv")
    r = srv.req("GET", "%s/creds/kvrole" % mount)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("password", [
    "it's \"KV\" pw\\x",
    "Sp ace'quote",
    "a&b@c:d/e?f=g",
])
def test_tricky_passwords_never_show(srv, pg, mount, password):
    name = "k" + uuid.uuid4().hex[:6]
    pg.query("CREATE ROLE %s LOGIN PASSWORD %%s" % name, password)
    quoted = "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"
    url = kv_url(pg, "password=" + quoted).replace("user=postgres",
                                                   "user=" + name)
    r = config(srv, pg, mount, name, connection_url=url)
    assert r.status_code == 200, r.text
    r = srv.req("GET", "%s/config/%s" % (mount, name))
    for piece in [password] + [w for w in password.split() if len(w) > 2]:
        assert piece not in r.text
    # Templated form: the password field is quoted for key/value strings.
    r = config(srv, pg, mount, name + "t",
               connection_url=kv_url(pg, "password={{password}}").replace(
                   "user=postgres", "user={{username}}"),
               username=name, password=password)
    assert r.status_code in (200, 204), r.text
    assert "{{password}}" in srv.req(
        "GET", "%s/config/%st" % (mount, name)).text


@pytest.mark.parametrize("password_part, secret", [
    ("password=ab'cd efgh", "efgh"),
    ("password='unterminated secret", "unterminated"),
    ("password=Secret Fragment", "Fragment"),
    ("password=Secret\\ Fragment2", "Fragment2"),
])
def test_malformed_key_value_errors_do_not_leak(srv, pg, mount, password_part,
                                                secret):
    r = config(srv, pg, mount, "bad" + uuid.uuid4().hex[:6],
               connection_url=kv_url(pg, password_part).replace(
                   "port=%d" % pg.port, "port=1"))
    assert r.status_code == 400, r.text
    assert secret not in r.text, r.text
    assert "ab'cd" not in r.text


@pytest.mark.parametrize("url", [
    "postgresql://postgres:Pa55@W0rdZ@127.0.0.1:1/db?sslmode=disable",
    "postgresql://postgres@127.0.0.1:1/db?password=QuerySecret&sslmode=disable",
    "postgresql://postgres@127.0.0.1:1/db?sslmode=disable&password=Q&S3cr3t",
])
def test_url_passwords_redacted_in_errors_and_reads(srv, pg, mount, url):
    name = "u" + uuid.uuid4().hex[:6]
    r = config(srv, pg, mount, name, connection_url=url)
    assert r.status_code == 400
    for secret in ("Pa55", "W0rdZ", "QuerySecret", "S3cr3t"):
        assert secret not in r.text, r.text
    r = config(srv, pg, mount, name, connection_url=url,
               verify_connection=False)
    assert r.status_code in (200, 400), r.text
    body = r.text
    if r.status_code == 200:  # well-formed: stored, read back redacted
        body = srv.req("GET", "%s/config/%s" % (mount, name)).text
    for secret in ("Pa55", "W0rdZ", "QuerySecret", "S3cr3t"):
        assert secret not in body, body


# ------------------------------------------------- 9: a stalled database --

def hold_grant_lock(pg):
    """An open transaction that has updated locked_tbl's catalog row (an
    uncommitted GRANT): every other GRANT or REVOKE on the table waits."""
    conn = pg.connect()
    conn.cursor().execute("GRANT SELECT ON locked_tbl TO locker")
    return conn


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


def probe_latencies(srv, stop, out):
    kv = srv.mount("kv")
    assert srv.req("POST", kv + "/probe", json={"v": "1"}).status_code == 204
    while not stop.is_set():
        for path in ("sys/health", "sys/seal-status", kv + "/probe"):
            r, dt = timed(lambda: srv.req("GET", path, timeout=30))
            out.append((path, r.status_code, dt))
        time.sleep(0.05)


@pytest.mark.once
def test_stalled_database_fails_fast_and_server_keeps_answering(srv, pg,
                                                                mount):
    r = config(srv, pg, mount, "stall", statement_timeout="2s",
               max_open_connections=2, max_waiting_requests=1)
    assert r.status_code in (200, 204), r.text
    role(srv, mount, "stall", "stall",
         stmts=CREATE + ' GRANT SELECT ON locked_tbl TO "{{name}}";')
    before = roles(pg)
    lock = hold_grant_lock(pg)
    stop, lat = threading.Event(), []
    prober = threading.Thread(target=probe_latencies, args=(srv, stop, lat))
    prober.start()
    try:
        time.sleep(0.3)
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as ex:
            futs = [ex.submit(timed, lambda: srv.req(
                "GET", "%s/creds/stall" % mount, timeout=60))
                for _ in range(6)]
            results = [f.result() for f in futs]
    finally:
        stop.set()
        prober.join()
        lock.rollback()
        lock.close()
    codes = sorted(r.status_code for r, _ in results)
    slowest = max(dt for _, dt in results)
    worst = max(dt for _, _, dt in lat)
    print("creds: %s slowest %.2fs; probes: %d, worst %.3fs" % (
        codes, slowest, len(lat), worst))
    assert all(c in (500, 503) for c in codes), codes
    assert slowest < 8, slowest
    for r, _ in results:
        assert r.json()["errors"][0], r.text
    assert any("statement_timeout" in r.text or "timeout" in r.text
               for r, _ in results)
    assert lat and all(code in (200, 204) for _, code, _ in lat), lat[:5]
    assert worst < 2, lat
    # The lock is gone: everything works, and nothing was left behind.
    r = srv.req("GET", "%s/creds/stall" % mount)
    assert r.status_code == 200, r.text
    user = r.json()["data"]["username"]
    assert roles(pg) - before == {user}


@pytest.mark.once
def test_stalled_revocations_do_not_block_other_expiries(srv, pg, mount):
    """Ten leases whose revocation hangs on a lock must not keep the
    revocation workers from another mount's lease (another database)."""
    r = config(srv, pg, mount, "slowrev", statement_timeout="2s")
    assert r.status_code in (200, 204), r.text
    role(srv, mount, "slowrev", "slowrev",
         stmts=CREATE + ' GRANT SELECT ON locked_tbl TO "{{name}}";',
         default_ttl="2s")
    other = "dbo-" + uuid.uuid4().hex[:6]
    assert srv.req("POST", "sys/mounts/" + other,
                   json={"type": "database"}).status_code == 204
    if not pg.query("SELECT 1 FROM pg_database WHERE datname = 'other'"):
        pg.query("CREATE DATABASE other")
    r = config(srv, pg, other, "o", connection_url=pg.url(templated=True,
                                                         dbname="other"))
    assert r.status_code in (200, 204), r.text
    role(srv, other, "o", "o", default_ttl="3s")
    users = [srv.req("GET", "%s/creds/slowrev" % mount).json()["data"][
        "username"] for _ in range(10)]
    lock = hold_grant_lock(pg)
    try:
        time.sleep(2.2)  # the ten leases are due and their revocations hang
        r = srv.req("GET", "%s/creds/o" % other)
        assert r.status_code == 200, r.text
        quick = r.json()["data"]["username"]
        t0 = time.monotonic()
        assert pg.wait_role_gone(quick, 8), \
            "another mount's lease waited behind stalled revocations"
        print("other mount's lease revoked %.1fs after creation" % (
            time.monotonic() - t0 + 0))
        assert srv.req("GET", "sys/health", timeout=2).status_code == 200
    finally:
        lock.rollback()
        lock.close()
    for u in users:
        assert pg.wait_role_gone(u, 30), u


class SilentServer:
    """Accepts TCP connections on loopback and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.mark.once
def test_database_that_never_answers_times_out(srv, pg, mount):
    silent = SilentServer()
    try:
        url = ("postgresql://{{username}}:{{password}}@127.0.0.1:%d/x"
               "?sslmode=disable" % silent.port)
        r, dt = timed(lambda: config(srv, pg, mount, "silent",
                                     connection_url=url,
                                     connect_timeout="1s"))
        assert r.status_code == 400, r.text
        assert "connect_timeout" in r.text
        assert dt < 3, dt
        r = config(srv, pg, mount, "silent", connection_url=url,
                   connect_timeout="1s", verify_connection=False)
        assert r.status_code in (200, 204), r.text
        role(srv, mount, "silent", "silent")
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
            futs = [ex.submit(timed, lambda: srv.req(
                "GET", "%s/creds/silent" % mount, timeout=60))
                for _ in range(4)]
            h, hdt = timed(lambda: srv.req("GET", "sys/health", timeout=30))
            results = [f.result() for f in futs]
        assert h.status_code == 200 and hdt < 2, hdt
        for r, dt in results:
            assert r.status_code in (500, 503), r.text
            assert dt < 5, dt
    finally:
        silent.close()
