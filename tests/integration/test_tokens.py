"""auth/token: create, lookup, lookup-self, renew-self, revoke, revoke-self,
accessors (VAULT_API.md 3.1-3.6), through hvac and raw HTTP."""

import time

import hvac
import pytest

from helpers import BASE62_24_RE, RFC3339_NANO_RE, multierror

LOOKUP_KEYS = {"accessor", "creation_time", "creation_ttl", "display_name",
               "entity_id", "expire_time", "explicit_max_ttl", "id", "meta",
               "num_uses", "orphan", "path", "policies", "ttl", "type"}


def create(server, **body):
    r = server.req("POST", "auth/token/create", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def lookup(server, token):
    r = server.req("POST", "auth/token/lookup", json={"token": token})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_create_full(server):
    b = create(server, policies=["ops", "dev"], ttl="1h", display_name="my app!",
               meta={"team": "blue", "env": "ci"}, num_uses=5, renewable=True)
    assert b["data"] is None
    assert b["lease_id"] == ""
    assert b["lease_duration"] == 0
    assert b["renewable"] is False
    a = b["auth"]
    assert a["client_token"].startswith("hvs."), a
    assert "." not in a["client_token"][4:]
    assert BASE62_24_RE.match(a["accessor"]), a["accessor"]
    assert a["policies"] == ["default", "dev", "ops"]
    assert a["token_policies"] == ["default", "dev", "ops"]
    assert a["metadata"] == {"team": "blue", "env": "ci"}
    assert a["lease_duration"] == 3600
    assert a["renewable"] is True
    assert a["entity_id"] == ""
    assert a["token_type"] == "service"
    assert a["orphan"] is False
    assert a["num_uses"] == 5

    d = lookup(server, a["client_token"])
    assert LOOKUP_KEYS <= set(d), set(d) ^ LOOKUP_KEYS
    assert d["id"] == a["client_token"]
    assert d["accessor"] == a["accessor"]
    assert d["display_name"] == "token-my-app"
    assert d["meta"] == {"team": "blue", "env": "ci"}
    assert d["num_uses"] == 5
    assert d["orphan"] is False
    assert d["path"] == "auth/token/create"
    assert d["policies"] == ["default", "dev", "ops"]
    assert d["renewable"] is True
    assert d["type"] == "service"
    assert d["creation_ttl"] == 3600
    assert 3590 <= d["ttl"] <= 3600
    assert d["explicit_max_ttl"] == 0
    assert isinstance(d["creation_time"], int)
    assert abs(d["creation_time"] - time.time()) < 60
    assert RFC3339_NANO_RE.match(d["expire_time"]), d["expire_time"]
    assert RFC3339_NANO_RE.match(d["issue_time"]), d["issue_time"]
    assert d["entity_id"] == ""


def test_create_hvac(server):
    resp = server.client.auth.token.create(policies=["dev"], ttl="30m",
                                            display_name="hv", meta={"a": "b"})
    a = resp["auth"]
    assert a["lease_duration"] == 1800
    assert a["policies"] == ["default", "dev"]
    c = hvac.Client(url=server.addr, token=a["client_token"])
    assert c.is_authenticated()


@pytest.mark.parametrize("ttl,secs", [("90s", 90), (120, 120), ("120", 120),
                                      ("1h30m", 5400), ("2d", 172800)])
def test_create_ttl_forms(server, ttl, secs):
    assert create(server, policies=["dev"], ttl=ttl)["auth"]["lease_duration"] == secs


def test_create_default_ttl(server):
    a = create(server, policies=["dev"])["auth"]
    assert a["lease_duration"] == 2764800  # 768h system default


def test_create_policies_as_string(server):
    a = create(server, policies="b, a,b")["auth"]
    assert a["policies"] == ["a", "b", "default"]


def test_create_no_default_policy(server):
    a = create(server, policies=["dev"], no_default_policy=True)["auth"]
    assert a["policies"] == ["dev"]


def test_create_inherits_root(server):
    # No policies: the child inherits the parent's (root), non-expiring.
    a = create(server)["auth"]
    assert a["policies"] == ["root"]
    d = lookup(server, a["client_token"])
    assert d["ttl"] == 0
    assert d["expire_time"] is None


def test_create_root_drops_others(server):
    a = create(server, policies=["root", "dev"])["auth"]
    assert a["policies"] == ["root"]


def test_create_meta_as_list(server):
    a = create(server, policies=["dev"], meta=["k=v", "x=y"])["auth"]
    assert a["metadata"] == {"k": "v", "x": "y"}


@pytest.mark.parametrize("path,body", [
    ("auth/token/create-orphan", {"policies": ["dev"]}),
    ("auth/token/create", {"policies": ["dev"], "no_parent": True}),
])
def test_create_orphan(server, path, body):
    r = server.req("POST", path, json=body)
    assert r.status_code == 200, r.text
    a = r.json()["auth"]
    assert a["orphan"] is True
    assert lookup(server, a["client_token"])["orphan"] is True


def test_lookup_self_root(server):
    r = server.req("GET", "auth/token/lookup-self")
    assert r.status_code == 200
    d = r.json()["data"]
    assert d["id"] == server.token
    assert d["policies"] == ["root"]
    assert d["ttl"] == 0
    assert d["expire_time"] is None
    assert d["orphan"] is True
    assert server.client.lookup_token()["data"]["id"] == server.token
    assert server.client.auth.token.lookup_self()["data"]["id"] == server.token


def test_lookup_self_post(server):
    r = server.req("POST", "auth/token/lookup-self")
    assert r.status_code == 200
    assert r.json()["data"]["id"] == server.token


def test_lookup_hvac(server):
    a = server.client.auth.token.create(policies=["dev"], ttl="1h")["auth"]
    d = server.client.auth.token.lookup(a["client_token"])["data"]
    assert d["id"] == a["client_token"]
    assert d["policies"] == ["default", "dev"]


def test_lookup_bad_token(server):
    r = server.req("POST", "auth/token/lookup", json={"token": "hvs.doesnotexist"})
    assert r.status_code == 403
    assert r.json() == {"errors": ["bad token"]}


def test_lookup_accessor(server):
    a = create(server, policies=["dev"], ttl="1h")["auth"]
    r = server.req("POST", "auth/token/lookup-accessor", json={"accessor": a["accessor"]})
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["id"] == ""
    assert d["accessor"] == a["accessor"]
    assert d["policies"] == ["default", "dev"]
    d2 = server.client.auth.token.lookup_accessor(a["accessor"])["data"]
    assert d2["accessor"] == a["accessor"]


def test_lookup_accessor_unknown(server):
    r = server.req("POST", "auth/token/lookup-accessor",
                   json={"accessor": "AAAAAAAAAAAAAAAAAAAAAAAA"})
    assert r.status_code == 400
    assert r.json() == {"errors": [multierror("invalid accessor")]}
    r = server.req("POST", "auth/token/lookup-accessor", json={})
    assert r.status_code == 400
    assert r.json() == {"errors": [multierror("missing accessor")]}


def test_renew_self(server):
    a = create(server, policies=["dev"], ttl="1h")["auth"]
    tok = a["client_token"]
    r = server.req("POST", "auth/token/renew-self", token=tok, json={"increment": "2h"})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["data"] is None
    assert b["auth"]["client_token"] == tok
    assert b["auth"]["lease_duration"] == 7200
    assert b["auth"]["renewable"] is True
    d = lookup(server, tok)
    assert 7190 <= d["ttl"] <= 7200
    # No increment: the current TTL again.
    r = server.req("POST", "auth/token/renew-self", token=tok)
    assert r.status_code == 200, r.text
    assert r.json()["auth"]["lease_duration"] == 7200
    # hvac
    c = hvac.Client(url=server.addr, token=tok)
    assert c.auth.token.renew_self(increment=600)["auth"]["lease_duration"] == 600


def test_renew_self_root_not_renewable(server):
    r = server.req("POST", "auth/token/renew-self", json={"increment": "1h"})
    assert r.status_code == 400
    assert r.json() == {"errors": ["lease is not renewable"]}


def test_renew_non_renewable(server):
    tok = create(server, policies=["dev"], ttl="1h", renewable=False)["auth"]["client_token"]
    r = server.req("POST", "auth/token/renew-self", token=tok)
    assert r.status_code == 400
    assert r.json() == {"errors": ["lease is not renewable"]}


def test_revoke(server):
    tok = create(server, policies=["root"], ttl="1h")["auth"]["client_token"]
    assert server.req("GET", "auth/token/lookup-self", token=tok).status_code == 200
    r = server.req("POST", "auth/token/revoke", json={"token": tok})
    assert r.status_code == 204
    r = server.req("GET", "auth/token/lookup-self", token=tok)
    assert r.status_code == 403
    assert r.json() == {"errors": ["permission denied"]}
    r = server.req("POST", "auth/token/lookup", json={"token": tok})
    assert r.status_code == 403
    assert r.json() == {"errors": ["bad token"]}
    # Revoking an unknown token is fine.
    assert server.req("POST", "auth/token/revoke", json={"token": tok}).status_code == 204


def test_revoke_hvac(server):
    tok = server.client.auth.token.create(policies=["dev"], ttl="1h")["auth"]["client_token"]
    server.client.auth.token.revoke(tok)
    assert not hvac.Client(url=server.addr, token=tok).is_authenticated()


def test_revoke_self(server):
    tok = create(server, policies=["dev"], ttl="1h")["auth"]["client_token"]
    r = server.req("POST", "auth/token/revoke-self", token=tok)
    assert r.status_code == 204, r.text
    r = server.req("GET", "auth/token/lookup-self", token=tok)
    assert r.status_code == 403
    assert r.json() == {"errors": ["permission denied"]}


def test_revoke_accessor(server):
    a = create(server, policies=["dev"], ttl="1h")["auth"]
    r = server.req("POST", "auth/token/revoke-accessor", json={"accessor": a["accessor"]})
    assert r.status_code == 204, r.text
    assert server.req("GET", "auth/token/lookup-self",
                      token=a["client_token"]).status_code == 403


def test_revoke_tree(server):
    parent = create(server, policies=["root"], ttl="1h")["auth"]["client_token"]
    r = server.req("POST", "auth/token/create", token=parent, json={"ttl": "30m"})
    assert r.status_code == 200, r.text
    child = r.json()["auth"]["client_token"]
    r = server.req("POST", "auth/token/create", token=child, json={"ttl": "10m"})
    assert r.status_code == 200, r.text
    grandchild = r.json()["auth"]["client_token"]
    r = server.req("POST", "auth/token/create", token=parent,
                   json={"ttl": "30m", "no_parent": True})
    assert r.status_code == 200, r.text
    orphan = r.json()["auth"]["client_token"]
    assert lookup(server, child)["orphan"] is False

    assert server.req("POST", "auth/token/revoke", json={"token": parent}).status_code == 204
    for t in (parent, child, grandchild):
        assert server.req("GET", "auth/token/lookup-self", token=t).status_code == 403
    assert server.req("GET", "auth/token/lookup-self", token=orphan).status_code == 200


def test_num_uses(server):
    tok = create(server, policies=["root"], ttl="1h", num_uses=2)["auth"]["client_token"]
    assert server.req("GET", "sys/mounts", token=tok).status_code == 200
    assert server.req("GET", "sys/mounts", token=tok).status_code == 200
    r = server.req("GET", "sys/mounts", token=tok)
    assert r.status_code == 403
    assert r.json() == {"errors": ["permission denied"]}


def test_default_policy_self_service(server):
    # The default policy lets any token look itself up, renew and revoke.
    tok = create(server, policies=["dev"], ttl="1h")["auth"]["client_token"]
    r = server.req("GET", "auth/token/lookup-self", token=tok)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["policies"] == ["default", "dev"]
    r = server.req("POST", "auth/token/renew-self", token=tok, json={"increment": "1h"})
    assert r.status_code == 200, r.text
    r = server.req("POST", "auth/token/revoke-self", token=tok)
    assert r.status_code == 204, r.text


def test_non_root_denied_elsewhere(server):
    tok = create(server, policies=["dev"], ttl="1h")["auth"]["client_token"]
    r = server.req("GET", "sys/mounts", token=tok)
    assert r.status_code == 403
    errs = r.json()["errors"]
    assert len(errs) == 1 and "permission denied" in errs[0]
    r = server.req("POST", "sys/mounts/nope-from-dev", token=tok, json={"type": "kv"})
    assert r.status_code == 403


def test_bearer_with_created_token(server):
    tok = create(server, policies=["dev"], ttl="1h")["auth"]["client_token"]
    r = server.req("GET", "auth/token/lookup-self", token=None,
                   headers={"Authorization": "Bearer " + tok})
    assert r.status_code == 200
    assert r.json()["data"]["id"] == tok


def test_token_not_in_server_log(server):
    tok = create(server, policies=["dev"], ttl="1h")["auth"]["client_token"]
    server.req("GET", "auth/token/lookup-self", token=tok)
    server.req("GET", "sys/mounts", token=tok)  # a denied request is logged
    assert tok not in server.stderr_text()
    assert tok not in server.stdout_text()
