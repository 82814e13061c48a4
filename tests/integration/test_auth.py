"""Auth methods written in Lua: userpass and approle logins (VAULT_API.md
3.3, 4.1, 4.2), sys/auth enable/disable, the login rate limit, and the
custom auth example loaded through a plugin directory."""

import os
import time
import uuid

import hvac
import pytest

from conftest import ROOT, Server


@pytest.fixture(scope="module")
def server():
    """This module's own server: its many deliberate login failures would
    otherwise exhaust the shared server's per-address login rate limit."""
    s = Server(["-dev-login-burst=50000", "-dev-login-rate=1000"])
    yield s
    assert s.stop() == 0


def enable(server, type_, path=None):
    path = path or "%s-%s" % (type_, uuid.uuid4().hex[:8])
    r = server.req("POST", "sys/auth/" + path, json={"type": type_})
    assert r.status_code == 204, r.text
    return path


def disable(server, path):
    r = server.req("DELETE", "sys/auth/" + path)
    assert r.status_code == 204, r.text


@pytest.fixture
def userpass(server):
    path = enable(server, "userpass")
    yield path
    disable(server, path)


@pytest.fixture
def approle(server):
    path = enable(server, "approle")
    yield path
    disable(server, path)


def lookup_self(server, token):
    return server.req("GET", "auth/token/lookup-self", token=token)


def test_sys_auth_lists_lua_methods(server, userpass):
    r = server.req("GET", "sys/auth")
    assert r.status_code == 200
    entry = r.json()["data"][userpass + "/"]
    assert entry["type"] == "userpass"
    assert entry["accessor"].startswith("auth_userpass_")


def test_unknown_auth_type_refused(server):
    r = server.req("POST", "sys/auth/nope", json={"type": "no-such-method"})
    assert r.status_code == 400
    assert "unknown auth method type" in r.text


def test_userpass_login_hvac(server, userpass):
    c = server.client
    c.auth.userpass.create_or_update_user(
        "Alice", "s3cret", policies=["dev", "Ops"], mount_point=userpass)
    u = c.auth.userpass.read_user("alice", mount_point=userpass)["data"]
    assert u["token_policies"] == ["dev", "ops"]
    assert "password" not in u and "s3cret" not in str(u)
    anon = hvac.Client(url=server.addr)
    resp = anon.auth.userpass.login("alice", "s3cret", mount_point=userpass)
    a = resp["auth"]
    assert a["policies"] == ["default", "dev", "ops"]
    assert a["metadata"] == {"username": "alice"}
    assert a["orphan"] is True
    assert a["renewable"] is True
    assert a["lease_duration"] == 768 * 3600
    assert a["client_token"].startswith("hvs.")
    d = lookup_self(server, a["client_token"]).json()["data"]
    assert d["display_name"] == userpass + "-alice"
    assert d["path"] == "auth/%s/login/alice" % userpass
    assert d["orphan"] is True
    assert d["meta"] == {"username": "alice"}


def test_userpass_ttl_and_lease(server, userpass):
    server.req("POST", "auth/%s/users/bob" % userpass,
               json={"password": "pw", "token_ttl": "90s",
                     "token_max_ttl": "2m", "token_policies": "x"})
    r = server.req("POST", "auth/%s/login/bob" % userpass, token=None,
                   json={"password": "pw"})
    assert r.status_code == 200, r.text
    a = r.json()["auth"]
    assert a["lease_duration"] == 90
    tok = a["client_token"]
    keys = server.req("LIST", "sys/leases/lookup/auth/%s/login/bob/"
                      % userpass).json()["data"]["keys"]
    assert len(keys) == 1
    # Renewal is capped by token_max_ttl.
    r = server.req("POST", "auth/token/renew-self", token=tok,
                   json={"increment": "1h"})
    assert r.status_code == 200, r.text
    assert r.json()["auth"]["lease_duration"] <= 120
    assert r.json()["warnings"]


def test_userpass_failures_look_alike(server, userpass):
    server.req("POST", "auth/%s/users/carol" % userpass,
               json={"password": "right"})
    bad = server.req("POST", "auth/%s/login/carol" % userpass, token=None,
                     json={"password": "wrong"})
    unknown = server.req("POST", "auth/%s/login/nobody" % userpass,
                         token=None, json={"password": "wrong"})
    assert bad.status_code == unknown.status_code == 400
    assert bad.json() == unknown.json() == {
        "errors": ["invalid username or password"]}
    # Same work either way: one PBKDF2 run (loose bound, shared CI box).
    def timed(name):
        t0 = time.monotonic()
        r = server.req("POST", "auth/%s/login/%s" % (userpass, name),
                       token=None, json={"password": "wrong"})
        assert r.status_code == 400
        return time.monotonic() - t0
    # Interleaved, the fastest of several: a loaded machine's stalls
    # fall on both names alike.
    known, missing = [], []
    for _ in range(5):
        known.append(timed("carol"))
        missing.append(timed("nobody"))
    assert min(missing) > min(known) * 0.4, (known, missing)


def test_userpass_password_and_policies_update(server, userpass):
    base = "auth/%s/users/dave" % userpass
    assert server.req("POST", base, json={"password": "one"}).status_code == 204
    assert server.req("POST", base + "/password",
                      json={"password": "two"}).status_code == 204
    assert server.req("POST", base + "/policies",
                      json={"token_policies": "p1,p2"}).status_code == 204
    r = server.req("POST", "auth/%s/login/dave" % userpass, token=None,
                   json={"password": "one"})
    assert r.status_code == 400
    r = server.req("POST", "auth/%s/login/dave" % userpass, token=None,
                   json={"password": "two"})
    assert r.status_code == 200
    assert r.json()["auth"]["policies"] == ["default", "p1", "p2"]
    keys = server.req("LIST", "auth/%s/users" % userpass).json()["data"]["keys"]
    assert keys == ["dave"]
    r = server.req("POST", base, json={"token_policies": "x"})
    assert r.status_code == 204
    r = server.req("POST", "auth/%s/users/erin" % userpass, json={})
    assert r.status_code == 400
    assert r.json()["errors"] == ["missing password"]


def test_config_paths_need_a_token(server, userpass):
    r = server.req("GET", "auth/%s/users/alice" % userpass, token=None)
    assert r.status_code == 403
    r = server.req("LIST", "auth/%s/users" % userpass, token=None)
    assert r.status_code == 403


def test_no_default_policy_and_no_root(server, userpass):
    server.req("POST", "auth/%s/users/nd" % userpass,
               json={"password": "pw", "token_policies": "a",
                     "token_no_default_policy": True})
    r = server.req("POST", "auth/%s/login/nd" % userpass, token=None,
                   json={"password": "pw"})
    assert r.json()["auth"]["policies"] == ["a"]
    server.req("POST", "auth/%s/users/rt" % userpass,
               json={"password": "pw", "token_policies": "root"})
    r = server.req("POST", "auth/%s/login/rt" % userpass, token=None,
                   json={"password": "pw"})
    assert r.status_code == 400
    assert "auth methods cannot create root tokens" in r.text


def test_disable_revokes_login_tokens(server):
    path = enable(server, "userpass")
    server.req("POST", "auth/%s/users/zed" % path, json={"password": "pw"})
    r = server.req("POST", "auth/%s/login/zed" % path, token=None,
                   json={"password": "pw"})
    tok = r.json()["auth"]["client_token"]
    assert lookup_self(server, tok).status_code == 200
    disable(server, path)
    assert lookup_self(server, tok).status_code == 403


def role_ids(server, approle, role, **secret):
    rid = server.req("GET", "auth/%s/role/%s/role-id" % (approle, role)
                     ).json()["data"]["role_id"]
    r = server.req("POST", "auth/%s/role/%s/secret-id" % (approle, role),
                   json=secret)
    assert r.status_code == 200, r.text
    return rid, r.json()["data"]


def approle_login(server, approle, rid, sid):
    return server.req("POST", "auth/%s/login" % approle, token=None,
                      json={"role_id": rid, "secret_id": sid})


def test_approle_login_hvac(server, approle):
    c = server.client
    c.auth.approle.create_or_update_approle(
        "web", token_policies=["app"], token_ttl="10m", mount_point=approle)
    rid = c.auth.approle.read_role_id("web", mount_point=approle)["data"]["role_id"]
    sid = c.auth.approle.generate_secret_id(
        "web", metadata={"team": "blue"}, mount_point=approle)["data"]
    assert uuid.UUID(sid["secret_id"]) and uuid.UUID(sid["secret_id_accessor"])
    anon = hvac.Client(url=server.addr)
    a = anon.auth.approle.login(rid, sid["secret_id"], mount_point=approle)["auth"]
    assert a["policies"] == ["app", "default"]
    assert a["metadata"] == {"role_name": "web", "team": "blue"}
    assert a["lease_duration"] == 600
    assert a["orphan"] is True
    d = lookup_self(server, a["client_token"]).json()["data"]
    assert d["display_name"] == approle


def test_approle_failures(server, approle):
    server.req("POST", "auth/%s/role/r1" % approle, json={"token_policies": "a"})
    rid, sid = role_ids(server, approle, "r1")
    r = server.req("POST", "auth/%s/login" % approle, token=None,
                   json={"secret_id": sid["secret_id"]})
    assert r.status_code == 400 and r.json()["errors"] == ["missing role_id"]
    r = server.req("POST", "auth/%s/login" % approle, token=None,
                   json={"role_id": rid})
    assert r.status_code == 400 and r.json()["errors"] == ["missing secret_id"]
    for bad in [(rid, str(uuid.uuid4())), (str(uuid.uuid4()), sid["secret_id"])]:
        r = approle_login(server, approle, *bad)
        assert r.status_code == 400
        assert r.json()["errors"] == ["invalid role or secret ID"]


def test_approle_secret_id_num_uses(server, approle):
    server.req("POST", "auth/%s/role/r2" % approle,
               json={"secret_id_num_uses": 2})
    rid, sid = role_ids(server, approle, "r2")
    assert sid["secret_id_num_uses"] == 2
    assert approle_login(server, approle, rid, sid["secret_id"]).status_code == 200
    look = server.req("POST", "auth/%s/role/r2/secret-id/lookup" % approle,
                      json={"secret_id": sid["secret_id"]})
    assert look.json()["data"]["secret_id_num_uses"] == 1
    assert approle_login(server, approle, rid, sid["secret_id"]).status_code == 200
    assert approle_login(server, approle, rid, sid["secret_id"]).status_code == 400


def test_approle_secret_id_ttl(server, approle):
    server.req("POST", "auth/%s/role/r3" % approle, json={"secret_id_ttl": "2s"})
    rid, sid = role_ids(server, approle, "r3")
    assert sid["secret_id_ttl"] == 2
    time.sleep(2.5)
    assert approle_login(server, approle, rid, sid["secret_id"]).status_code == 400


def test_approle_cidr_and_destroy(server, approle):
    server.req("POST", "auth/%s/role/r4" % approle, json={})
    rid, far = role_ids(server, approle, "r4", cidr_list="10.0.0.0/8")
    assert approle_login(server, approle, rid, far["secret_id"]).status_code == 400
    rid, near = role_ids(server, approle, "r4", cidr_list="127.0.0.0/8")
    assert approle_login(server, approle, rid, near["secret_id"]).status_code == 200
    accs = server.req("LIST", "auth/%s/role/r4/secret-id" % approle
                      ).json()["data"]["keys"]
    assert sorted(accs) == sorted([far["secret_id_accessor"],
                                   near["secret_id_accessor"]])
    r = server.req("POST", "auth/%s/role/r4/secret-id/destroy" % approle,
                   json={"secret_id": near["secret_id"]})
    assert r.status_code == 204
    assert approle_login(server, approle, rid, near["secret_id"]).status_code == 400


def test_login_rate_limit():
    s = Server(["-dev-login-rate=0.01", "-dev-login-burst=3"])
    try:
        path = enable(s, "userpass", "userpass")
        s.req("POST", "auth/userpass/users/u", json={"password": "pw"})
        codes = [s.req("POST", "auth/userpass/login/u", token=None,
                       json={"password": "no"}).status_code for _ in range(5)]
        assert codes[:3] == [400, 400, 400], codes
        assert codes[3:] == [429, 429], codes
        r = s.req("POST", "auth/userpass/login/u", token=None,
                  json={"password": "pw"})
        assert r.status_code == 429
        assert r.json()["errors"] == [
            'request path "auth/userpass/login/u": rate limit quota exceeded']
        assert path == "userpass"
    finally:
        s.stop()


def test_custom_auth_example_via_plugin_dir():
    plugdir = os.path.join(ROOT, "examples", "custom-auth")
    s = Server(["-dev-plugin-dir=%s" % plugdir])
    try:
        enable(s, "apikeys", "apikeys")
        r = s.req("POST", "auth/apikeys/keys/ci",
                  json={"policies": "reader", "ttl": "5m", "expires_in": "1h"})
        assert r.status_code == 200, r.text
        key = r.json()["data"]["key"]
        assert key.startswith("ci.")
        r = s.req("POST", "auth/apikeys/login", token=None, json={"key": key})
        assert r.status_code == 200, r.text
        a = r.json()["auth"]
        assert a["policies"] == ["default", "reader"]
        assert a["lease_duration"] == 300
        assert a["metadata"] == {"key_name": "ci"}
        r = s.req("POST", "auth/apikeys/login", token=None,
                  json={"key": key + "x"})
        assert r.status_code == 400
        assert r.json()["errors"] == ["invalid API key"]
        r = s.req("POST", "auth/apikeys/keys/old", json={"expires_in": "1s"})
        old = r.json()["data"]["key"]
        time.sleep(1.5)
        r = s.req("POST", "auth/apikeys/login", token=None, json={"key": old})
        assert r.status_code == 400
    finally:
        s.stop()
