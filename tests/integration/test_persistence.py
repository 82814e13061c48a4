"""A real server: persistent encrypted storage, init/unseal/seal, restart
and crash recovery, TLS. Each test makes its own server in a temp dir."""

import os
import random
import sqlite3
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


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="coffer-real-")
    yield d
    subprocess.run(["rm", "-rf", d])


def generated_roles(pg, prefix="v-"):
    return {r[0] for r in pg.query(
        "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", prefix + "%")}


def configure_database(srv, pg, role="app", ttl="1h"):
    c = srv.client()
    c.sys.enable_secrets_engine("database")
    c.write("database/config/myapp", plugin_name="postgresql-database-plugin",
            connection_url=pg.url(templated=True), username="postgres",
            password="postgres", allowed_roles="*")
    c.write("database/roles/" + role, db_name="myapp",
            creation_statements=CREATE, default_ttl=ttl)


# ---------------------------------------------------------------- sealing --

def test_sealed_server_answers_503_until_unsealed(workdir):
    srv = RealServer(workdir)
    srv.start()
    try:
        r = srv.req("GET", "sys/health")
        assert r.status_code == 501  # not initialised
        st = srv.req("GET", "sys/seal-status").json()
        assert st["initialized"] is False and st["sealed"] is True
        r = srv.req("PUT", "sys/init", json={"secret_shares": 2,
                                             "secret_threshold": 3})
        assert r.status_code == 400
        assert r.json()["errors"][0].startswith("invalid seal configuration")
        keys, root = srv.init(shares=3, threshold=2)
        assert len(keys) == 3 and root.startswith("hvs.")
        r = srv.req("PUT", "sys/init", json={"secret_shares": 1,
                                             "secret_threshold": 1})
        assert r.json()["errors"] == ["Vault is already initialized"]
        assert srv.req("GET", "sys/health").status_code == 503
        assert srv.req("GET", "sys/health",
                       params={"sealedcode": 299}).status_code == 299
        r = srv.req("GET", "secret/data/x")
        assert r.status_code == 503 and r.json() == {"errors":
                                                     ["Vault is sealed"]}
        st = srv.req("PUT", "sys/unseal", json={"key": keys[0]}).json()
        assert st["sealed"] is True and st["progress"] == 1 and st["nonce"]
        st = srv.req("PUT", "sys/unseal", json={"reset": True}).json()
        assert st["progress"] == 0
        r = srv.req("PUT", "sys/unseal", json={"key": "not a key!"})
        assert r.status_code == 400
        assert r.json()["errors"] == [
            "'key' must be a valid hex or base64 string"]
        r = srv.req("PUT", "sys/unseal", json={})
        assert r.status_code == 400
        srv.unseal(keys[1:])
        assert srv.req("GET", "sys/health").status_code == 200
        # Seal needs root; then everything is 503 again.
        assert srv.req("PUT", "sys/seal", token="nope").status_code == 403
        assert srv.req("PUT", "sys/seal").status_code == 204
        assert srv.req("GET", "sys/mounts").status_code == 503
        rc, out, _ = srv.cli("status")
        assert rc == 2 and "Sealed" in out
        rc, out, err = srv.cli("operator", "unseal", keys[2])
        assert rc == 0, err
        rc, out, err = srv.cli("operator", "unseal", keys[0])
        assert rc == 0, err
        rc, out, _ = srv.cli("status")
        assert rc == 0
    finally:
        assert srv.stop() == 0


def test_wrong_shares_do_not_unseal(workdir):
    srv = RealServer(workdir)
    srv.start()
    try:
        keys, _ = srv.init(shares=3, threshold=2)
        other = RealServer(tempfile.mkdtemp(prefix="coffer-other-"))
        other.start()
        other_keys, _ = other.init(shares=3, threshold=2)
        other.stop()
        srv.req("PUT", "sys/unseal", json={"key": keys[0]})
        r = srv.req("PUT", "sys/unseal", json={"key": other_keys[1]})
        assert r.status_code == 400
        assert r.json()["errors"] == ["Unseal failed, invalid key"]
        assert srv.req("GET", "sys/seal-status").json()["sealed"] is True
        srv.unseal(keys[:2])
    finally:
        srv.stop()


# ---------------------------------------------------------------- restart --

def test_restart_keeps_state_and_revokes_what_expired(workdir, pg):
    srv = RealServer(workdir)
    srv.start()
    keys, root = srv.init(shares=3, threshold=2)
    srv.unseal(keys)
    c = srv.client()
    c.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    c.secrets.kv.v2.create_or_update_secret("app", secret={"pw": "s3cr3t"})
    child = c.auth.token.create(policies=["default"], ttl="2h")
    child_token = child["auth"]["client_token"]
    configure_database(srv, pg, role="app", ttl="1h")
    c.write("database/roles/brief", db_name="myapp",
            creation_statements=CREATE, default_ttl="2s")
    long_lease = c.read("database/creds/app")
    brief = c.read("database/creds/brief")
    assert srv.stop() == 0
    time.sleep(3)  # the brief lease expires while Coffer is down
    assert pg.role_exists(brief["data"]["username"])
    srv.start()
    assert srv.req("GET", "secret/data/app").status_code == 503
    srv.unseal(keys[1:])
    c = srv.client()
    assert c.secrets.kv.v2.read_secret_version("app")["data"]["data"] == {
        "pw": "s3cr3t"}
    assert "database/" in c.sys.list_mounted_secrets_engines()["data"]
    assert c.read("database/roles/app")["data"]["default_ttl"] == 3600
    assert c.read("database/config/myapp")["data"]["plugin_name"] == \
        "postgresql-database-plugin"
    look = srv.req("GET", "auth/token/lookup-self", token=child_token)
    assert look.status_code == 200
    r = srv.req("PUT", "sys/leases/lookup",
                json={"lease_id": long_lease["lease_id"]})
    assert r.status_code == 200 and r.json()["data"]["ttl"] > 3000
    assert pg.role_exists(long_lease["data"]["username"])
    assert pg.wait_role_gone(brief["data"]["username"], 15), srv.log()[-3000:]
    # New credentials still work after the restart.
    fresh = c.read("database/creds/app")
    assert pg.role_exists(fresh["data"]["username"])
    r = srv.req("PUT", "sys/leases/revoke-prefix/database/creds/app")
    assert r.status_code == 204
    assert not pg.role_exists(fresh["data"]["username"])
    assert srv.stop() == 0


def test_storage_holds_no_plaintext(workdir, pg):
    srv = RealServer(workdir)
    srv.start()
    keys, root = srv.init(shares=1, threshold=1)
    srv.unseal(keys)
    c = srv.client()
    marker = "needle-" + os.urandom(6).hex()
    c.sys.enable_secrets_engine("kv", path="kv", options={"version": "1"})
    c.write("kv/app", password=marker)
    token = c.auth.token.create(policies=["default"])["auth"]["client_token"]
    pg_password = "pgpw-" + os.urandom(6).hex()
    pg.query("CREATE ROLE coffer_admin_%s LOGIN CREATEROLE PASSWORD '%s'"
             % (marker[-6:], pg_password))
    c.sys.enable_secrets_engine("database")
    c.write("database/config/plain", plugin_name="postgresql-database-plugin",
            connection_url=pg.url(templated=True),
            username="coffer_admin_" + marker[-6:], password=pg_password,
            allowed_roles="*")
    assert srv.stop() == 0
    blob = b""
    for name in os.listdir(workdir):
        if name.startswith("coffer.db"):
            with open(os.path.join(workdir, name), "rb") as f:
                blob += f.read()
    assert blob, "no storage file"
    for secret in (marker, root, token, pg_password):
        assert secret.encode() not in blob, secret


def test_corrupted_value_is_reported_and_rest_loads(workdir):
    srv = RealServer(workdir)
    srv.start()
    keys, _ = srv.init(shares=1, threshold=1)
    srv.unseal(keys)
    c = srv.client()
    c.sys.enable_secrets_engine("kv", path="kv", options={"version": "1"})
    c.write("kv/good", v="1")
    c.write("kv/bad", v="2")
    assert srv.stop() == 0
    db = sqlite3.connect(srv.db_path)
    rows = db.execute("SELECT key, value FROM kv").fetchall() \
        if "kv" in {r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")} else []
    if not rows:
        table = db.execute("SELECT name FROM sqlite_master WHERE "
                           "type='table'").fetchone()[0]
        rows = db.execute("SELECT key, value FROM %s" % table).fetchall()
    else:
        table = "kv"
    bad_key = [k for k, _ in rows if k.endswith("/bad")][0]
    value = bytearray([v for k, v in rows if k == bad_key][0])
    value[-3] ^= 0x55
    db.execute("UPDATE %s SET value = ? WHERE key = ?" % table,
               (bytes(value), bad_key))
    db.commit()
    db.close()
    srv.start()
    srv.unseal(keys)
    assert srv.req("GET", "kv/good").json()["data"] == {"v": "1"}
    r = srv.req("GET", "kv/bad")
    assert r.status_code == 500
    assert bad_key in srv.log()
    assert srv.stop() == 0


# ------------------------------------------------------------------ crash --

def test_kill9_during_creds_burst_leaves_no_orphans(workdir, pg):
    srv = RealServer(workdir)
    srv.start()
    keys, _ = srv.init(shares=1, threshold=1)
    srv.unseal(keys)
    configure_database(srv, pg, role="burst", ttl="1h")
    rng = random.Random(4)
    for loop in range(6):
        stop = threading.Event()

        def hammer():
            s = requests.Session()
            s.headers["X-Vault-Token"] = srv.token
            while not stop.is_set():
                try:
                    s.get(srv.addr + "/v1/database/creds/burst", timeout=5)
                except requests.RequestException:
                    return

        threads = [threading.Thread(target=hammer) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(0.2 + rng.random() * 0.8)
        srv.kill9()
        stop.set()
        for t in threads:
            t.join()
        srv.start()
        srv.unseal(keys)
    # Every role Coffer ever made is either under a lease or already gone:
    # revoking every lease must leave none behind.
    time.sleep(1)
    r = srv.req("PUT", "sys/leases/revoke-prefix/database/creds/burst")
    assert r.status_code == 204, r.text
    left = generated_roles(pg, "v-root-burst-")
    assert not left, "orphaned roles: %s\n%s" % (sorted(left)[:5],
                                                 srv.log()[-3000:])
    assert srv.stop() == 0


# -------------------------------------------------------------- backends --

def test_postgresql_storage_backend(workdir, pg):
    dbname = "coffer_storage_" + os.urandom(4).hex()
    pg.query("CREATE DATABASE " + dbname)
    url = pg.url(dbname=dbname)
    srv = RealServer(workdir, storage="postgresql", pg_url=url)
    srv.start()
    keys, root = srv.init(shares=1, threshold=1)
    srv.unseal(keys)
    c = srv.client()
    marker = "pgstore-" + os.urandom(6).hex()
    c.sys.enable_secrets_engine("kv", path="kv", options={"version": "1"})
    c.write("kv/app", password=marker)
    assert srv.stop() == 0
    srv.start()
    srv.unseal(keys)
    assert srv.client().read("kv/app")["data"] == {"password": marker}
    assert srv.stop() == 0
    conn = pg.connect(dbname=dbname)
    cur = conn.cursor()
    cur.execute("SELECT encode(value, 'escape') FROM coffer_kv")
    dump = "".join(r[0] for r in cur.fetchall())
    conn.close()
    for secret in (marker, root):
        assert secret not in dump


# ------------------------------------------------------------------- TLS --

def test_tls_listener(workdir):
    cert, key = os.path.join(workdir, "c.pem"), os.path.join(workdir, "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost", "-days", "1",
                    "-keyout", key, "-out", cert], check=True,
                   capture_output=True)
    srv = RealServer(workdir, tls=(cert, key))
    srv.start()
    try:
        keys, _ = srv.init(shares=1, threshold=1)
        srv.unseal(keys)
        assert srv.client().sys.read_health_status(method="GET")[
            "sealed"] is False
        rc, out, err = srv.cli("status")
        assert rc == 0, err
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(srv.addr + "/v1/sys/health", timeout=5)
    finally:
        srv.stop()


def test_bad_config_is_refused_with_file_and_line(workdir):
    path = os.path.join(workdir, "bad.lua")
    with open(path, "w") as f:
        f.write('listener "tcp" { address = "127.0.0.1:1", tls_disable = true }\n'
                'storage "sqlite" { path = "%s/x.db" }\n'
                'default_lease_tll = "1h"\n' % workdir)
    from conftest import coffer_bin
    p = subprocess.run([coffer_bin(), "server", "-config=" + path],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    assert 'bad.lua:3: unknown key "default_lease_tll"' in p.stderr
