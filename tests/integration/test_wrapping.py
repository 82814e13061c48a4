"""Response wrapping (X-Vault-Wrap-TTL, sys/wrapping/*) and the cubbyhole
engine (VAULT_API.md section 10), through hvac and raw HTTP.

Database credentials get their own module-scoped PostgreSQL cluster and
server (like test_database.py): the unwrapped username and password must
log in to the real database.
"""

import concurrent.futures
import json
import time
import uuid

import hvac
import psycopg2
import pytest

from conftest import Server
from helpers import wait_until
from pgcluster import PgCluster

INVALID = "wrapping token is not valid or does not exist"


def wrapped(server, method, path, ttl="5m", token=True, **kw):
    """A request with X-Vault-Wrap-TTL; returns the wrap_info."""
    headers = dict(kw.pop("headers", {}) or {})
    headers["X-Vault-Wrap-TTL"] = str(ttl)
    r = server.req(method, path, token=token, headers=headers, **kw)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"] is None and body["auth"] is None, body
    assert body["request_id"] == "" and body["lease_id"] == ""
    return body["wrap_info"]


def unwrap(server, wtoken):
    return server.req("POST", "sys/wrapping/unwrap", token=wtoken)


def kv_secret(server, kv2, value=None):
    name = "w-" + uuid.uuid4().hex[:8]
    value = value or {"password": uuid.uuid4().hex}
    r = server.req("POST", "%s/data/%s" % (kv2, name), json={"data": value})
    assert r.status_code == 200, r.text
    return "%s/data/%s" % (kv2, name), value


def child_token(server, policies=("default",), **extra):
    body = {"policies": list(policies)}
    body.update(extra)
    r = server.req("POST", "auth/token/create", json=body)
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


# ------------------------------------------------------------ round trip --

def test_kv_round_trip_through_hvac(server, kv2):
    path, value = kv_secret(server, kv2)
    info = wrapped(server, "GET", path, ttl="90s")
    assert info["ttl"] == 90
    assert info["creation_path"] == path
    assert info["token"].startswith("hvs.") and len(info["accessor"]) == 24
    assert "wrapped_accessor" not in info
    assert value["password"] not in str(info)
    got = server.client.sys.unwrap(info["token"])
    assert got["data"]["data"] == value
    assert got["request_id"] != ""


def test_unwrap_with_the_wrapping_token_as_auth(server, kv2):
    path, value = kv_secret(server, kv2)
    info = wrapped(server, "GET", path)
    c = hvac.Client(url=server.addr, token=info["token"])
    assert c.sys.unwrap()["data"]["data"] == value


def test_hvac_read_with_wrap_ttl(server, kv2):
    path, value = kv_secret(server, kv2)
    resp = server.client.read(path, wrap_ttl="2m")
    assert resp["data"] is None and resp["wrap_info"]["ttl"] == 120
    assert server.client.sys.unwrap(
        resp["wrap_info"]["token"])["data"]["data"] == value


def test_single_use(server, kv2):
    path, _ = kv_secret(server, kv2)
    info = wrapped(server, "GET", path)
    assert unwrap(server, info["token"]).status_code == 200
    r = unwrap(server, info["token"])
    assert r.status_code == 400 and r.json()["errors"] == [INVALID]
    r = server.req("POST", "sys/wrapping/unwrap",
                   json={"token": info["token"]})
    assert r.status_code == 400 and r.json()["errors"] == [INVALID]
    r = server.req("POST", "sys/wrapping/lookup", token=None,
                   json={"token": info["token"]})
    assert r.status_code == 400 and r.json()["errors"] == [INVALID]


def test_concurrent_unwraps_exactly_one_wins(server, kv2):
    path, value = kv_secret(server, kv2)
    for _ in range(3):
        info = wrapped(server, "GET", path)

        def go(i):
            if i % 2:
                return unwrap(server, info["token"])
            return server.req("POST", "sys/wrapping/unwrap",
                              json={"token": info["token"]})
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            results = list(ex.map(go, range(16)))
        ok = [r for r in results if r.status_code == 200]
        assert len(ok) == 1, [r.text for r in results]
        assert ok[0].json()["data"]["data"] == value
        for r in results:
            if r.status_code != 200:
                assert r.status_code == 400, r.text
                assert r.json()["errors"] == [INVALID]


def test_wrapping_token_expires(server, kv2):
    path, _ = kv_secret(server, kv2)
    info = wrapped(server, "GET", path, ttl="1")
    assert info["ttl"] == 1
    time.sleep(2.2)
    r = unwrap(server, info["token"])
    assert r.status_code == 400 and r.json()["errors"] == [INVALID]


def test_lookup_does_not_consume(server, kv2):
    path, value = kv_secret(server, kv2)
    info = wrapped(server, "GET", path, ttl="10m")
    for _ in range(2):
        r = server.req("POST", "sys/wrapping/lookup", token=None,
                       json={"token": info["token"]})
        assert r.status_code == 200, r.text
        d = r.json()["data"]
        assert d == {"creation_ttl": 600,
                     "creation_time": info["creation_time"],
                     "creation_path": path}
    assert unwrap(server, info["token"]).json()["data"]["data"] == value
    r = server.req("POST", "sys/wrapping/lookup", token=None, json={})
    assert r.status_code == 400
    assert r.json()["errors"] == ['missing "token" value in input']


def test_rewrap_kills_the_old_token(server, kv2):
    path, value = kv_secret(server, kv2)
    old = wrapped(server, "GET", path, ttl="7m")
    r = server.req("POST", "sys/wrapping/rewrap", json={"token": old["token"]})
    assert r.status_code == 200, r.text
    new = r.json()["wrap_info"]
    assert new["token"] != old["token"]
    assert new["creation_path"] == path and new["ttl"] == 420
    r = unwrap(server, old["token"])
    assert r.status_code == 400 and r.json()["errors"] == [INVALID]
    assert unwrap(server, new["token"]).json()["data"]["data"] == value


def test_sys_wrapping_wrap(server):
    info = wrapped(server, "POST", "sys/wrapping/wrap",
                   json={"a": "b", "n": 3})
    assert info["creation_path"] == "sys/wrapping/wrap"
    got = server.client.sys.unwrap(info["token"])
    assert got["data"] == {"a": "b", "n": 3}
    r = server.req("POST", "sys/wrapping/wrap", json={"a": "b"})
    assert r.status_code == 400
    assert r.json()["errors"] == ["endpoint requires response wrapping "
                                  "to be used"]


def test_wrap_ttl_header_errors(server, kv2):
    path, _ = kv_secret(server, kv2)
    r = server.req("GET", path, headers={"X-Vault-Wrap-TTL": "abc"})
    assert r.status_code == 400
    assert r.json()["errors"][0].startswith(
        "error parsing X-Vault-Wrap-TTL header: ")
    r = server.req("GET", path, headers={"X-Vault-Wrap-TTL": "-5"})
    assert r.json()["errors"] == ["error parsing X-Vault-Wrap-TTL header: "
                                  "requested wrap ttl cannot be negative"]
    r = server.req("GET", path, headers={"X-Vault-Wrap-TTL": "0"})
    assert r.status_code == 200 and r.json()["wrap_info"] is None
    # Beyond Go's largest duration: refused, not overflowed.
    for big in ("9223372036854775807", "2562048h"):
        r = server.req("GET", path, headers={"X-Vault-Wrap-TTL": big})
        assert r.status_code == 400, (big, r.text)
        assert r.json()["errors"][0].startswith(
            "error parsing X-Vault-Wrap-TTL header: ")


def test_wrapped_list(server, kv2):
    path, _ = kv_secret(server, kv2)
    name = path.rsplit("/", 1)[1]
    info = wrapped(server, "LIST", kv2 + "/metadata/")
    got = unwrap(server, info["token"]).json()
    assert name in got["data"]["keys"]
    r = server.req("LIST", kv2 + "/metadata/nothing-here/",
                   headers={"X-Vault-Wrap-TTL": "5m"})
    assert r.status_code == 404


def test_errors_are_not_wrapped(server, kv2):
    r = server.req("GET", kv2 + "/data/missing-" + uuid.uuid4().hex,
                   headers={"X-Vault-Wrap-TTL": "5m"})
    assert r.status_code == 404
    r = server.req("GET", "secret/data/x", token="hvs.nope",
                   headers={"X-Vault-Wrap-TTL": "5m"})
    assert r.status_code == 403 and "wrap_info" not in r.text


def test_bad_wrapping_tokens(server):
    tok = child_token(server)
    r = server.req("POST", "sys/wrapping/unwrap", token=tok)
    assert r.status_code == 400 and r.json()["errors"] == [INVALID]
    r = server.req("POST", "sys/wrapping/unwrap", json={"token": 5})
    assert r.status_code == 403
    assert r.json()["errors"] == ["error validating wrapping token: could "
                                  "not decode token in request body"]
    r = server.req("POST", "sys/wrapping/unwrap", json={"token": ""})
    assert r.json()["errors"] == ["error validating wrapping token: empty "
                                  "token in request body"]
    r = server.req("POST", "sys/wrapping/unwrap", token=None)
    assert r.status_code == 403
    assert r.json()["errors"] == ["error validating wrapping token: token "
                                  "is empty"]


def test_wrapping_token_is_good_for_nothing_else(server, kv2):
    path, _ = kv_secret(server, kv2)
    info = wrapped(server, "GET", path)
    for p in (path, "auth/token/lookup-self", "cubbyhole/response"):
        r = server.req("GET", p, token=info["token"])
        assert r.status_code == 403, (p, r.text)
    # The wrapping token is still good after those refusals.
    assert unwrap(server, info["token"]).status_code == 200


def test_body_token_unwrap_needs_an_authorised_caller(server, kv2):
    path, _ = kv_secret(server, kv2)
    info = wrapped(server, "GET", path)
    r = server.req("POST", "sys/wrapping/unwrap", token="hvs.bogus",
                   json={"token": info["token"]})
    assert r.status_code == 403
    # The refused attempt did not consume it.
    assert unwrap(server, info["token"]).status_code == 200


def test_revoked_wrapping_token_cannot_unwrap(server, kv2):
    path, _ = kv_secret(server, kv2)
    info = wrapped(server, "GET", path)
    r = server.req("POST", "auth/token/revoke-accessor",
                   json={"accessor": info["accessor"]})
    assert r.status_code == 204, r.text
    r = unwrap(server, info["token"])
    assert r.status_code == 400 and r.json()["errors"] == [INVALID]


def test_wrapped_token_create_reports_wrapped_accessor(server):
    info = wrapped(server, "POST", "auth/token/create",
                   json={"policies": ["default"]})
    got = unwrap(server, info["token"]).json()
    assert info["wrapped_accessor"] == got["auth"]["accessor"]
    r = server.req("GET", "auth/token/lookup-self",
                   token=got["auth"]["client_token"])
    assert r.status_code == 200


def test_approle_secret_id_wrapped_through_hvac(server):
    path = "approle-" + uuid.uuid4().hex[:8]
    server.client.sys.enable_auth_method("approle", path=path)
    try:
        server.client.write("auth/%s/role/app" % path, policies="default")
        rid = server.client.read("auth/%s/role/app/role-id" % path)
        rid = rid["data"]["role_id"]
        resp = server.client.write("auth/%s/role/app/secret-id" % path,
                                   wrap_ttl="60s")
        info = resp["wrap_info"]
        assert resp["data"] is None and info["ttl"] == 60
        sid = server.client.sys.unwrap(info["token"])
        sid = sid["data"]
        assert info["wrapped_accessor"] == sid["secret_id_accessor"]
        r = server.req("POST", "auth/%s/login" % path, token=None,
                       json={"role_id": rid, "secret_id": sid["secret_id"]})
        assert r.status_code == 200, r.text
        assert r.json()["auth"]["client_token"]
    finally:
        server.client.sys.disable_auth_method(path)


# ------------------------------------------------------------------- CLI --

def test_cli_wrap_ttl_and_unwrap(server, kv2):
    path, value = kv_secret(server, kv2)
    name = path.replace("/data/", "/", 1)
    r = server.cli("kv", "get", "-wrap-ttl=3m", "-format=json", name)
    assert r.rc == 0, r
    info = json.loads(r.stdout)["wrap_info"]
    assert info["ttl"] == 180 and info["creation_path"] == path
    assert value["password"] not in r.stdout
    r = server.cli("unwrap", "-format=json", info["token"])
    assert r.rc == 0, r
    assert json.loads(r.stdout)["data"]["data"] == value
    r = server.cli("unwrap", info["token"])
    assert r.rc == 2
    assert "Error unwrapping" in r.stderr and INVALID in r.stderr


def test_cli_table_output_and_env(server):
    pw = uuid.uuid4().hex
    r = server.cli("write", "sys/wrapping/wrap", "password=" + pw,
                   env={"VAULT_WRAP_TTL": "2m"})
    assert r.rc == 0, r
    assert pw not in r.stdout
    rows = dict(line.split(None, 1) for line in r.stdout.splitlines()[2:])
    assert set(rows) == {"wrapping_token:", "wrapping_accessor:",
                         "wrapping_token_ttl:",
                         "wrapping_token_creation_time:",
                         "wrapping_token_creation_path:"}
    assert rows["wrapping_token_ttl:"] == "2m"
    assert rows["wrapping_token_creation_path:"] == "sys/wrapping/wrap"
    assert rows["wrapping_token_creation_time:"].endswith(" +0000 UTC")
    # Without TOKEN the client token is the wrapping token.
    r = server.cli("unwrap", "-field=password",
                   token=rows["wrapping_token:"])
    assert r.rc == 0, r
    assert r.stdout.strip() == pw


# ------------------------------------------------------------- cubbyhole --

def test_cubbyhole_round_trip(server):
    tok = child_token(server)
    c = hvac.Client(url=server.addr, token=tok)
    c.write("cubbyhole/app/cfg", pw="s3cret", n=2)
    assert c.read("cubbyhole/app/cfg")["data"] == {"pw": "s3cret", "n": 2}
    assert c.list("cubbyhole/")["data"]["keys"] == ["app/"]
    assert c.list("cubbyhole/app")["data"]["keys"] == ["cfg"]
    r = server.req("DELETE", "cubbyhole/app/cfg", token=tok)
    assert r.status_code == 204
    assert server.req("GET", "cubbyhole/app/cfg",
                      token=tok).status_code == 404


def test_cubbyhole_isolated_even_from_root(server):
    a = child_token(server)
    b = child_token(server)
    r = server.req("POST", "cubbyhole/shared", token=a, json={"v": "a"})
    assert r.status_code == 204, r.text
    for other in (True, b):  # root, then another token
        assert server.req("GET", "cubbyhole/shared",
                          token=other).status_code == 404
        assert server.req("LIST", "cubbyhole/",
                          token=other).status_code in (404, 200)
        lst = server.req("LIST", "cubbyhole/", token=other)
        if lst.status_code == 200:
            assert "shared" not in lst.json()["data"]["keys"]
        server.req("DELETE", "cubbyhole/shared", token=other)
    r = server.req("POST", "cubbyhole/shared", token=b, json={"v": "b"})
    assert r.status_code == 204
    assert server.req("GET", "cubbyhole/shared",
                      token=a).json()["data"] == {"v": "a"}
    assert server.req("GET", "cubbyhole/shared",
                      token=b).json()["data"] == {"v": "b"}


def test_cubbyhole_destroyed_with_its_token(server):
    # A token re-created with the same id has the same storage prefix: its
    # cubbyhole must start empty after the first one was revoked.
    custom = "cubby-" + uuid.uuid4().hex[:16]
    for how in ("revoke", "revoke-self"):
        tok = child_token(server, id=custom)
        r = server.req("POST", "cubbyhole/k", token=tok, json={"x": "1"})
        assert r.status_code == 204
        if how == "revoke":
            r = server.req("POST", "auth/token/revoke", json={"token": tok})
        else:
            r = server.req("POST", "auth/token/revoke-self", token=tok)
        assert r.status_code == 204, r.text
        again = child_token(server, id=custom)
        assert server.req("GET", "cubbyhole/k",
                          token=again).status_code == 404
        server.req("POST", "auth/token/revoke", json={"token": again})


def test_cubbyhole_destroyed_when_token_expires(server):
    custom = "exp-" + uuid.uuid4().hex[:16]
    # Expiry counts whole seconds: a "3s" token lives at least 2 s.
    tok = child_token(server, id=custom, ttl="3s")
    r = server.req("POST", "cubbyhole/k", token=tok, json={"x": "1"})
    assert r.status_code == 204
    # The same id can be created again once the expired entry is deleted.
    created = []

    def recreate():
        r = server.req("POST", "auth/token/create",
                       json={"policies": ["default"], "id": custom})
        assert r.status_code in (200, 400), r.text
        if r.status_code == 200:
            created.append(r.json()["auth"]["client_token"])
        return created
    assert wait_until(recreate, 15)
    again = created[0]
    assert server.req("GET", "cubbyhole/k", token=again).status_code == 404
    server.req("POST", "auth/token/revoke", json={"token": again})


def test_cubbyhole_write_errors(server):
    tok = child_token(server)
    r = server.req("POST", "cubbyhole/k", token=tok, json={})
    assert r.status_code >= 400 and "missing data fields" in r.text
    r = server.req("GET", "cubbyhole/none", token=tok)
    assert r.status_code == 404


def test_cubbyhole_concurrent_writes_and_revoke(server):
    custom = "race-" + uuid.uuid4().hex[:16]
    tok = child_token(server, id=custom)

    def write(i):
        return server.req("POST", "cubbyhole/k%d" % i, token=tok,
                          json={"i": i}).status_code
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        futs = [ex.submit(write, i) for i in range(40)]
        time.sleep(0.05)
        server.req("POST", "auth/token/revoke", json={"token": tok})
        codes = [f.result() for f in futs]
    assert set(codes) <= {204, 403}, codes
    again = child_token(server, id=custom)
    r = server.req("LIST", "cubbyhole/", token=again)
    assert r.status_code == 404, r.text
    server.req("POST", "auth/token/revoke", json={"token": again})


# -------------------------------------------------------------- database --

CREATE = ("CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
          "VALID UNTIL '{{expiration}}';")


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def dbsrv(pg):
    s = Server()
    r = s.cli("secrets", "enable", "database")
    assert r.rc == 0, r
    r = s.cli("write", "database/config/myapp",
              "plugin_name=postgresql-database-plugin",
              "connection_url=" + pg.url(templated=True),
              "username=postgres", "password=postgres",
              "allowed_roles=my-role")
    assert r.rc == 0, r
    r = s.cli("write", "database/roles/my-role", "db_name=myapp",
              "creation_statements=" + CREATE, "default_ttl=5m",
              "max_ttl=1h")
    assert r.rc == 0, r
    yield s
    rc = s.stop()
    assert rc == 0, s.stderr_text()[-4000:]


def test_database_credentials_round_trip(dbsrv, pg):
    info = wrapped(dbsrv, "GET", "database/creds/my-role", ttl="5m")
    assert info["creation_path"] == "database/creds/my-role"
    got = dbsrv.client.sys.unwrap(info["token"])
    user, pw = got["data"]["username"], got["data"]["password"]
    assert got["lease_id"].startswith("database/creds/my-role/")
    pg.connect(user=user, password=pw).close()
    # The lease inside is a normal lease: its owner renews and revokes it.
    r = dbsrv.req("PUT", "sys/leases/renew",
                  json={"lease_id": got["lease_id"], "increment": 60})
    assert r.status_code == 200, r.text
    r = dbsrv.req("PUT", "sys/leases/revoke",
                  json={"lease_id": got["lease_id"]})
    assert r.status_code == 204, r.text
    assert pg.wait_role_gone(user)
    with pytest.raises(psycopg2.OperationalError):
        pg.connect(user=user, password=pw).close()


# ------------------------------------------------- policy wrapping TTLs --

def test_policy_min_max_wrapping_ttl(server, kv2):
    path, value = kv_secret(server, kv2)
    name = "wrapttl-" + uuid.uuid4().hex[:8]
    r = server.req("PUT", "sys/policies/acl/" + name, json={"policy": (
        'path "%s" {\n capabilities = ["read"]\n'
        ' min_wrapping_ttl = "1m"\n max_wrapping_ttl = "90s"\n}' % path)})
    assert r.status_code == 204, r.text
    tok = child_token(server, policies=[name])
    # No wrapping, too short, too long: the rule does not grant it.
    for ttl in (None, "30s", "91"):
        headers = {"X-Vault-Wrap-TTL": ttl} if ttl else {}
        r = server.req("GET", path, token=tok, headers=headers)
        assert r.status_code == 403, (ttl, r.text)
    for ttl in ("60", "90s"):
        info = wrapped(server, "GET", path, ttl=ttl, token=tok)
        got = unwrap(server, info["token"]).json()
        assert got["data"]["data"] == value
    r = server.req("PUT", "sys/policies/acl/bad-" + name, json={"policy": (
        'path "x" {\n capabilities = ["read"]\n'
        ' min_wrapping_ttl = "2m"\n max_wrapping_ttl = "1m"\n}')})
    assert r.status_code == 400
    assert "max_wrapping_ttl cannot be less than min_wrapping_ttl" in r.text


# ------------------------------------------------------------ audit log --

def test_audit_entry_of_a_wrapped_response_holds_wrap_info(server, kv2,
                                                          tmp_path):
    """Vault logs the envelope: wrap_info with the token HMAC'd, no data."""
    name = "wa-" + uuid.uuid4().hex[:8]
    log = tmp_path / "audit.log"
    r = server.req("PUT", "sys/audit/" + name, json={
        "type": "file", "options": {"file_path": str(log)}})
    assert r.status_code == 204, r.text
    try:
        path, value = kv_secret(server, kv2)
        info = wrapped(server, "GET", path, ttl="2m")
        r = server.req("PUT", "sys/audit-hash/" + name,
                       json={"input": info["token"]})
        assert r.status_code == 200, r.text
        token_hash = r.json()["data"]["hash"]
        r = server.req("PUT", "sys/audit-hash/" + name,
                       json={"input": info["accessor"]})
        accessor_hash = r.json()["data"]["hash"]
    finally:
        r = server.req("DELETE", "sys/audit/" + name)
        assert r.status_code == 204, r.text
    text = log.read_text()
    assert value["password"] not in text and info["token"] not in text
    entries = [json.loads(l) for l in text.splitlines() if l]
    resp = [e for e in entries if e["type"] == "response" and
            e["request"]["path"] == path and
            e["request"].get("wrap_ttl") == 120]
    assert len(resp) == 1, entries
    wi = resp[0]["response"]["wrap_info"]
    assert wi["token"] == token_hash
    assert wi["accessor"] == accessor_hash
    assert wi["ttl"] == 120 and wi["creation_path"] == path
    assert wi["creation_time"] == info["creation_time"]
    assert "data" not in resp[0]["response"]
    # The unwrap's response entry holds the secret, hashed.
    assert unwrap(server, info["token"]).json()["data"]["data"] == value


def test_audit_entry_of_a_wrapped_token_has_wrapped_accessor(server,
                                                             tmp_path):
    name = "wt-" + uuid.uuid4().hex[:8]
    log = tmp_path / "audit.log"
    r = server.req("PUT", "sys/audit/" + name, json={
        "type": "file",
        "options": {"file_path": str(log), "hmac_accessor": "false"}})
    assert r.status_code == 204, r.text
    try:
        info = wrapped(server, "POST", "auth/token/create",
                       json={"policies": ["default"]})
    finally:
        server.req("DELETE", "sys/audit/" + name)
    entries = [json.loads(l) for l in log.read_text().splitlines() if l]
    resp = [e for e in entries if e["type"] == "response" and
            e["request"]["path"] == "auth/token/create"]
    assert len(resp) == 1, entries
    wi = resp[0]["response"]["wrap_info"]
    assert wi["token"].startswith("hmac-sha256:")
    assert wi["accessor"] == info["accessor"]  # hmac_accessor=false
    assert wi["wrapped_accessor"] == info["wrapped_accessor"]
    assert "auth" not in resp[0]["response"]
    assert "data" not in resp[0]["response"]


# ------------------------------------------------------ cubbyhole mount --

def test_cubbyhole_listed_in_sys_mounts(server):
    c = server.client
    mounts = server.req("GET", "sys/mounts").json()
    for listing in (mounts["data"], mounts,
                    c.sys.list_mounted_secrets_engines()["data"]):
        m = listing["cubbyhole/"]
        assert m["type"] == "cubbyhole"
        assert m["description"] == "per-token private secret storage"
        assert m["local"] is True and m["seal_wrap"] is False
        assert m["accessor"].startswith("cubbyhole_")
    # Stable between listings; the single-mount read agrees.
    again = server.req("GET", "sys/mounts").json()["data"]["cubbyhole/"]
    assert again == mounts["data"]["cubbyhole/"]
    one = server.req("GET", "sys/mounts/cubbyhole")
    assert one.status_code == 200, one.text
    assert one.json()["data"]["accessor"] == again["accessor"]
    r = server.cli("secrets", "list")
    assert r.rc == 0, r
    line = [l for l in r.stdout.splitlines() if l.startswith("cubbyhole/")]
    assert len(line) == 1 and "cubbyhole" in line[0].split()[1], r.stdout
    assert "per-token private secret storage" in line[0]


def test_cubbyhole_mount_cannot_be_disabled_tuned_or_replaced(server):
    for method, path, body in (
            ("DELETE", "sys/mounts/cubbyhole", None),
            ("POST", "sys/mounts/cubbyhole/tune", {"default_lease_ttl": 60}),
            ("POST", "sys/mounts/cubbyhole", {"type": "kv"}),
            ("POST", "sys/mounts/cubbyhole/x", {"type": "kv"})):
        r = server.req(method, path, json=body)
        assert r.status_code == 400, (method, path, r.text)
        assert "cubbyhole/" in r.json()["errors"][0], r.text
    # Still working and still listed.
    r = server.req("POST", "cubbyhole/still", json={"v": "1"})
    assert r.status_code == 204, r.text
    assert server.req("GET", "cubbyhole/still").json()["data"] == {"v": "1"}
    assert "cubbyhole/" in server.req("GET", "sys/mounts").json()["data"]
    # Not in the persisted table: sys/internal/ui/mounts shows it once.
    ui = server.req("GET", "sys/internal/ui/mounts").json()["data"]
    assert list(ui["secret"]).count("cubbyhole/") == 1


def test_audit_entries_of_parallel_wrapped_reads(server, kv2, tmp_path):
    """Each response entry names its own wrapping token, none the secret."""
    name = "wp-" + uuid.uuid4().hex[:8]
    log = tmp_path / "audit.log"
    r = server.req("PUT", "sys/audit/" + name, json={
        "type": "file", "options": {"file_path": str(log)}})
    assert r.status_code == 204, r.text
    try:
        path, value = kv_secret(server, kv2)
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            infos = list(ex.map(lambda _: wrapped(server, "GET", path),
                                range(16)))
        want = set()
        for info in infos:
            r = server.req("PUT", "sys/audit-hash/" + name,
                           json={"input": info["token"]})
            want.add(r.json()["data"]["hash"])
    finally:
        server.req("DELETE", "sys/audit/" + name)
    text = log.read_text()
    assert value["password"] not in text
    got = [json.loads(l) for l in text.splitlines() if l]
    got = [e["response"]["wrap_info"]["token"] for e in got
           if e["type"] == "response" and e["request"]["path"] == path and
           e["request"]["operation"] == "read"]
    assert len(want) == 16 and sorted(got) == sorted(want)
    for info in infos:
        assert unwrap(server, info["token"]).json()["data"]["data"] == value
