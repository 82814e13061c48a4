"""sys/internal/ui/mounts for tokens that are not root: the mounts the
token may use something under, as Vault's hasMountAccess decides (the web
UI and the Vault CLI's kv helpers list mounts with it)."""

import uuid

import pytest


def token_with(server, text):
    name = "uim-" + uuid.uuid4().hex[:8]
    r = server.req("PUT", "sys/policies/acl/" + name, json={"policy": text})
    assert r.status_code == 204, r.text
    r = server.req("POST", "auth/token/create", json={
        "policies": [name], "no_default_policy": True})
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


@pytest.fixture(scope="module")
def mounts(server):
    a = server.mount("kv", options={"version": "2"})
    b = server.mount("kv")
    u = "up-" + uuid.uuid4().hex[:6]
    r = server.req("POST", "sys/auth/" + u, json={"type": "userpass"})
    assert r.status_code == 204, r.text
    yield a + "/", b + "/", u + "/"
    server.unmount(a)
    server.unmount(b)
    server.req("DELETE", "sys/auth/" + u)


def visible(server, token):
    r = server.req("GET", "sys/internal/ui/mounts", token=token)
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    return set(d["secret"]), set(d["auth"])


def test_a_rule_under_a_mount_shows_it_and_only_it(server, mounts):
    a, b, u = mounts
    tok = token_with(server, 'path "%sdata/app/*" { capabilities = '
                             '["read"] }' % a)
    secret, auth = visible(server, tok)
    assert secret == {a} and auth == set()


def test_segment_patterns_and_auth_mounts(server, mounts):
    a, b, u = mounts
    tok = token_with(server, 'path "%s+/x" { capabilities = ["read"] }\n'
                             'path "auth/%slogin/*" { capabilities = '
                             '["update"] }' % (b, u))
    secret, auth = visible(server, tok)
    assert secret == {b} and auth == {u}


def test_deny_and_nothing_show_nothing(server, mounts):
    a, b, u = mounts
    tok = token_with(server, 'path "%s*" { capabilities = ["deny"] }\n'
                             'path "%sdata/x" { capabilities = ["deny"] }'
                             % (b, a))
    assert visible(server, tok) == (set(), set())
    # A glob above the mounts shows every mount it covers.
    tok = token_with(server, 'path "*" { capabilities = ["list"] }')
    secret, auth = visible(server, tok)
    assert {a, b} <= secret
    # Anonymous callers see nothing.
    secret, auth = visible(server, "")
    assert secret == set() and auth == set()


def test_root_sees_every_mount(server, mounts):
    a, b, u = mounts
    secret, auth = visible(server, server.token)
    assert {a, b} <= secret and u in auth
