"""MySQL through the "mysql" driver of coffer.db, from a probe engine:
the statement timeout of every statement of a script, and TLS material
given as PEM text: tls_ca, tls_certificate_key,
tls_skip_verify, tls_server_name (Vault's mysql plugin fields), through
the "mysql" driver of coffer.db against a throw-away MariaDB that offers
TLS with its own CA.

The driver is reached from a small Lua plugin engine calling
coffer.db.configure/acquire, so the test exercises exactly the driver and
its pool (src/db_mysql.c, src/db_mysql_tls.c), whatever the database
engine passes on. PEM text must never land in a file: the test checks the
server keeps it in memory files (memfd) that go away with the pool.
"""

import datetime
import ipaddress
import os
import shutil
import tempfile
import time
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import mariadb
from conftest import CRASH_PATTERNS, Server

_why_not = mariadb.available()
pytestmark = pytest.mark.skipif(_why_not is not None,
                                reason=_why_not or "")

PROBE = """\
local e = coffer.engine { name = "tlsprobe" }
e:path("probe", { write = function(req)
  local d = req.data
  local key = "tlsprobe/" .. d.name
  local ok, err = coffer.db.configure(key, {
    driver = "mysql", conninfo = d.conninfo,
    tls_ca = d.tls_ca, tls_certificate_key = d.tls_certificate_key,
    tls_server_name = d.tls_server_name,
    tls_skip_verify = d.tls_skip_verify, connect_timeout = 5,
  }, d.verify ~= false)
  if not ok then
    return { data = { ok = false, class = err.class, message = err.message } }
  end
  local c, cerr = coffer.db.acquire(key)
  if c == nil then
    return { data = { ok = false, class = cerr.class,
                      message = cerr.message } }
  end
  local r, qerr = c:exec("SHOW SESSION STATUS LIKE 'Ssl_version'")
  local who = c:exec("SELECT CURRENT_USER() AS u")
  c:release()
  if r == nil then
    return { data = { ok = false, class = qerr.class,
                      message = qerr.message } }
  end
  return { data = { ok = true, ssl = r.rows[1].Value,
                    user = who.rows[1].u } }
end })
e:path("script", { write = function(req)
  local d = req.data
  local key = "tlsprobe/" .. d.name
  local ok, err = coffer.db.configure(key, {
    driver = "mysql", conninfo = d.conninfo, tls_ca = d.tls_ca,
    statement_timeout = d.statement_timeout }, true)
  if not ok then return { data = { ok = false, message = err.message } } end
  local c = assert(coffer.db.acquire(key))
  local sok, serr = c:exec_script(d.sql)
  c:release()
  coffer.db.remove(key)
  if sok then return { data = { ok = true } } end
  return { data = { ok = false, class = serr.class, message = serr.message } }
end })
e:path("params", { write = function(req)
  local d = req.data
  local key = "tlsprobe/" .. d.name
  local ok, err = coffer.db.configure(key, {
    driver = "mysql", conninfo = d.conninfo, tls_ca = d.tls_ca }, true)
  if not ok then return { data = { ok = false, message = err.message } } end
  local c = assert(coffer.db.acquire(key))
  local out = {}
  for _, pre in ipairs({ "SET SESSION sql_mode = ''",
                         "SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'",
                         "SET NAMES gbk" }) do
    assert(c:exec(pre))
    local r, qerr = c:exec(d.sql, { d.value, d.value })
    out[#out + 1] = r and r.rows[1] or { error = qerr.message }
  end
  c:release()
  coffer.db.remove(key)
  return { data = { ok = true, rows = out } }
end })
e:path("remove", { write = function(req)
  coffer.db.remove("tlsprobe/" .. req.data.name)
  return { data = { ok = true } }
end })
"""


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer, issuer_key, ca, sans=None):
    now = datetime.datetime.utcnow()
    b = (x509.CertificateBuilder().subject_name(_name(subject))
         .issuer_name(_name(issuer)).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                        critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(obj):
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM).decode()
    return obj.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class PKI:
    def __init__(self):
        k = lambda: ec.generate_private_key(ec.SECP256R1())  # noqa: E731
        self.ca_key, self.other_key = k(), k()
        self.ca = _cert("coffer test CA", self.ca_key, "coffer test CA",
                        self.ca_key, True)
        self.other_ca = _cert("some other CA", self.other_key,
                              "some other CA", self.other_key, True)
        self.server_key = k()
        self.server = _cert(
            "127.0.0.1", self.server_key, "coffer test CA", self.ca_key,
            False, [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost")])
        self.client_key = k()
        self.client = _cert("tlsclient", self.client_key, "coffer test CA",
                            self.ca_key, False)


@pytest.fixture(scope="module")
def env():
    pki = PKI()
    d = tempfile.mkdtemp(prefix="coffer-mytls-")
    paths = []
    for name, obj in (("ca.pem", pki.ca), ("server.pem", pki.server),
                      ("server-key.pem", pki.server_key)):
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write(_pem(obj))
        paths.append(path)
    my = mariadb.MariaDB(tls=tuple(paths))
    pw = "tls-pw-" + uuid.uuid4().hex[:8]
    my.query("CREATE USER 'tlsuser'@'%%' IDENTIFIED BY '%s' REQUIRE SSL; "
             "CREATE USER 'x509user'@'%%' IDENTIFIED BY '%s' REQUIRE X509"
             % (pw, pw))
    plugdir = os.path.join(d, "plugins")
    os.makedirs(plugdir)
    with open(os.path.join(plugdir, "tlsprobe.lua"), "w") as f:
        f.write(PROBE)
    srv = Server(["-dev-plugin-dir=%s" % plugdir])
    r = srv.req("POST", "sys/mounts/tlsprobe", json={"type": "tlsprobe"})
    assert r.status_code == 204, r.text
    yield pki, my, srv, pw
    assert srv.stop() == 0
    assert not CRASH_PATTERNS.search(srv.stderr_text())
    my.stop()
    shutil.rmtree(d, ignore_errors=True)


def probe_path(srv, path, **kw):
    kw.setdefault("name", uuid.uuid4().hex[:8])
    r = srv.req("PUT", "tlsprobe/" + path, json=kw)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def probe(srv, **kw):
    return probe_path(srv, "probe", **kw)


def dsn(my, user, pw, extra=""):
    return "%s:%s@tcp(127.0.0.1:%d)/%s" % (user, pw, my.port, extra)


def test_right_ca_connects_with_tls(env):
    pki, my, srv, pw = env
    out = probe(srv, conninfo=dsn(my, "tlsuser", pw), tls_ca=_pem(pki.ca))
    assert out["ok"], out
    assert out["ssl"].startswith("TLS"), out
    assert out["user"] == "tlsuser@%"


def test_wrong_ca_fails_clearly(env):
    pki, my, srv, pw = env
    out = probe(srv, conninfo=dsn(my, "tlsuser", pw),
                tls_ca=_pem(pki.other_ca))
    assert not out["ok"]
    assert out["class"] == "unreachable", out
    assert "certificate" in out["message"].lower(), out
    assert pw not in out["message"]
    # Skipping verification is the operator's explicit choice.
    out = probe(srv, conninfo=dsn(my, "tlsuser", pw),
                tls_ca=_pem(pki.other_ca), tls_skip_verify=True)
    assert out["ok"] and out["ssl"].startswith("TLS"), out


def test_no_ca_to_require_ssl_user_fails(env):
    _, my, srv, pw = env
    out = probe(srv, conninfo=dsn(my, "tlsuser", pw))
    assert not out["ok"]
    assert out["class"] == "auth", out
    assert "Access denied" in out["message"], out
    assert pw not in out["message"]


def test_ca_makes_tls_required_over_dsn_tls_false(env):
    # As Vault: given tls_ca, the DSN's tls= does not turn TLS off.
    pki, my, srv, pw = env
    out = probe(srv, conninfo=dsn(my, "tlsuser", pw, "?tls=false"),
                tls_ca=_pem(pki.ca))
    assert out["ok"] and out["ssl"].startswith("TLS"), out


def test_client_certificate_key(env):
    pki, my, srv, pw = env
    both = _pem(pki.client) + _pem(pki.client_key)
    out = probe(srv, conninfo=dsn(my, "x509user", pw), tls_ca=_pem(pki.ca),
                tls_certificate_key=both)
    assert out["ok"], out
    assert out["user"] == "x509user@%"
    # Key first works too; without the client certificate: refused.
    out = probe(srv, conninfo=dsn(my, "x509user", pw), tls_ca=_pem(pki.ca),
                tls_certificate_key=_pem(pki.client_key) + _pem(pki.client))
    assert out["ok"], out
    out = probe(srv, conninfo=dsn(my, "x509user", pw), tls_ca=_pem(pki.ca))
    assert not out["ok"] and out["class"] == "auth", out


@pytest.mark.parametrize("field,value,words", [
    ("tls_ca", "not a pem", "failed to parse tls_ca"),
    ("tls_ca", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
     "failed to parse tls_ca"),
    ("tls_certificate_key", "CERT_ONLY", "failed to parse tls_certificate_key"),
    ("tls_certificate_key", "ENCRYPTED_KEY",
     "failed to parse tls_certificate_key"),
    ("tls_ca", "KEY_ONLY", "failed to parse tls_ca"),
])
def test_bad_pem_refused_at_configure(env, field, value, words):
    pki, my, srv, pw = env
    if value == "CERT_ONLY":
        value = _pem(pki.client)
    elif value == "ENCRYPTED_KEY":
        # Must be refused, never make the server prompt for a passphrase.
        value = _pem(pki.client) + pki.client_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pass")).decode()
    elif value == "KEY_ONLY":
        value = _pem(pki.client_key)
    out = probe(srv, conninfo=dsn(my, "tlsuser", pw), **{field: value})
    assert not out["ok"] and out["class"] == "sql", out
    assert words in out["message"], out


def test_server_name_must_be_the_host(env):
    pki, my, srv, pw = env
    out = probe(srv, conninfo=dsn(my, "tlsuser", pw), tls_ca=_pem(pki.ca),
                tls_server_name="db.example.com")
    assert not out["ok"] and "tls_server_name" in out["message"], out
    out = probe(srv, conninfo=dsn(my, "tlsuser", pw), tls_ca=_pem(pki.ca),
                tls_server_name="127.0.0.1")
    assert out["ok"], out


def _memfds(pid):
    fds = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if "coffer-mysql" in target:
            fds.append(target)
    return fds


def test_pem_held_in_memory_files_only_while_the_pool_lives(env):
    pki, my, srv, pw = env
    pid = srv.proc.pid
    before = len(_memfds(pid))
    name = "mem-" + uuid.uuid4().hex[:6]
    out = probe(srv, name=name, conninfo=dsn(my, "x509user", pw),
                tls_ca=_pem(pki.ca),
                tls_certificate_key=_pem(pki.client) + _pem(pki.client_key))
    assert out["ok"], out
    held = _memfds(pid)
    assert len(held) == before + 2, held
    assert all(t.startswith("/memfd:") for t in held), held
    # Replacing the pool (same key) does not pile memory files up.
    out = probe(srv, name=name, conninfo=dsn(my, "tlsuser", pw),
                tls_ca=_pem(pki.ca))
    assert out["ok"] and len(_memfds(pid)) == before + 1
    r = srv.req("PUT", "tlsprobe/remove", json={"name": name})
    assert r.status_code == 200
    assert len(_memfds(pid)) == before


def test_every_statement_of_a_script_has_the_statement_timeout(env):
    # The script lifts MariaDB's own limit, so only Coffer's deadline can
    # stop its second statement: it must be cancelled (KILL QUERY) after
    # about statement_timeout, not left running behind a read timeout.
    pki, my, srv, pw = env
    tag = "sleep-" + uuid.uuid4().hex[:8]
    t0 = time.monotonic()
    out = probe_path(srv, "script", conninfo=dsn(my, "tlsuser", pw),
                     tls_ca=_pem(pki.ca), statement_timeout=1,
                     sql="SET SESSION max_statement_time = 0; "
                         "SELECT SLEEP(6) AS `%s`" % tag)
    took = time.monotonic() - t0
    assert not out["ok"]
    assert out["class"] == "timeout", out
    assert "canceling statement due to statement timeout" in out["message"]
    assert took < 5, took  # SLEEP(6) unstopped
    # Nothing of it still runs on the server.
    rows = my.query("SELECT COUNT(*) FROM information_schema.processlist "
                    "WHERE info LIKE '%%%s%%' AND info NOT LIKE "
                    "'%%processlist%%'" % tag)
    assert rows == [["0"]], rows


# ------------------------------------------ through the database engine --

def test_database_config_takes_the_tls_fields(env):
    pki, my, srv, _ = env
    admin, apw = "tlsadm" + uuid.uuid4().hex[:6], "adm-" + uuid.uuid4().hex
    my.query("CREATE USER '%s'@'%%' IDENTIFIED BY '%s' REQUIRE SSL; "
             "GRANT ALL PRIVILEGES ON *.* TO '%s'@'%%' WITH GRANT OPTION"
             % (admin, apw, admin))
    mount = srv.mount("database")
    url = "{{username}}:{{password}}@tcp(127.0.0.1:%d)/" % my.port
    base = {"plugin_name": "mysql-database-plugin", "connection_url": url,
            "username": admin, "password": apw, "allowed_roles": "*"}
    try:
        # Without the CA the REQUIRE SSL admin cannot connect.
        r = srv.req("POST", mount + "/config/db", json=base)
        assert r.status_code == 400 and "Access denied" in r.text, r.text
        r = srv.req("POST", mount + "/config/db",
                    json=dict(base, tls_ca=_pem(pki.ca),
                              tls_server_name="127.0.0.1"))
        assert r.status_code in (200, 204), r.text
        r = srv.req("GET", mount + "/config/db")
        assert r.status_code == 200, r.text
        details = r.json()["data"]["connection_details"]
        assert details["tls_server_name"] == "127.0.0.1"
        assert "tls_ca" not in details and "BEGIN" not in r.text
        r = srv.req("POST", mount + "/roles/app", json={
            "db_name": "db", "creation_statements":
            "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';"})
        assert r.status_code == 204, r.text
        c = srv.req("GET", mount + "/creds/app")
        assert c.status_code == 200, c.text
        assert my.user_exists(c.json()["data"]["username"])
        # A wrong CA is refused when verified, and the stored config
        # keeps working.
        r = srv.req("POST", mount + "/config/db",
                    json={"tls_ca": _pem(pki.other_ca)})
        assert r.status_code == 400 and "certificate" in r.text.lower(), \
            r.text
        c = srv.req("GET", mount + "/creds/app")
        assert c.status_code == 200, c.text
        # Bad values and another plugin's field are refused.
        r = srv.req("POST", mount + "/config/db",
                    json={"tls_skip_verify": "maybe"})
        assert r.status_code == 400, r.text
        r = srv.req("POST", mount + "/config/pg", json={
            "plugin_name": "postgresql-database-plugin",
            "connection_url": "postgresql://{{username}}:{{password}}@"
                              "127.0.0.1:1/x", "verify_connection": False,
            "username": "u", "password": "p", "tls_ca": _pem(pki.ca)})
        assert r.status_code == 400, r.text
        assert "tls_ca is not a setting of postgresql-database-plugin" \
            in r.text
        assert srv.req("GET", mount + "/config/pg").status_code == 404
    finally:
        srv.req("PUT", "sys/leases/revoke-prefix/" + mount, json={})
        srv.unmount(mount)


HOSTILE = ["x' OR '1'='1", "x\\' OR 1=1 -- ", "\\", "'; DROP USER tlsuser; --",
           "a\\\\'b", "/*! SELECT 1 */", "?",
           # In GBK, AD 5C is one character: quoting by escaping the quote
           # with a backslash would end the string here.
           "\u4e2d' , (SELECT CURRENT_USER()) , '"]


@pytest.mark.parametrize("value", HOSTILE)
def test_parameters_stay_values_in_every_session_mode(env, value):
    # With and without NO_BACKSLASH_ESCAPES, and after SET NAMES gbk, a
    # parameter reaches the server as exactly its bytes (HEX of it), also
    # when its placeholder sits in an executable comment.
    pki, my, srv, pw = env
    want = value.encode().hex().upper()
    for sql in ("SELECT HEX(?) AS h, ? AS v", "SELECT 1 AS one "
                "/*!, HEX(?) AS h */, ? AS v",
                "SELECT 'it''s' AS q, HEX(?) AS h, ? AS v -- ?"):
        out = probe_path(srv, "params", conninfo=dsn(my, "tlsuser", pw),
                         tls_ca=_pem(pki.ca), sql=sql, value=value)
        assert out["ok"], out
        for mode, row in zip(("plain", "no-backslash", "gbk"), out["rows"]):
            assert row.get("h") == want, (sql, mode, row)
            if mode != "gbk":  # results come back in the session's charset
                assert row.get("v") == value, (sql, mode, row)
    assert "tlsuser" in my.users()


def test_charsets_with_ascii_trail_bytes_are_refused(env):
    pki, my, srv, pw = env
    for cs in ("gbk", "sjis", "big5", "cp932", "gb18030"):
        out = probe(srv, conninfo=dsn(my, "tlsuser", pw, "?charset=" + cs),
                    tls_ca=_pem(pki.ca))
        assert not out["ok"], out
        assert "charset must be utf8mb4" in out["message"], out
    out = probe(srv, conninfo=dsn(my, "tlsuser", pw, "?charset=latin1"),
                tls_ca=_pem(pki.ca))
    assert out["ok"], out
