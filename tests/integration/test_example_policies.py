"""The example policies in examples/policies/, used the way a user would.

They are examples, not built-in policies: a server loads Lua policies only
from its configured policy directory (-dev-policy-dir / policy_directory),
and HCL policies only when written through the API.
"""

import os
import uuid

import pytest

from conftest import ROOT, Server

EXAMPLES = os.path.join(ROOT, "examples", "policies")


@pytest.fixture(scope="module")
def example_server():
    s = Server(["-dev-policy-dir=%s" % EXAMPLES])
    yield s
    assert s.stop() == 0


def token_for(server, policies):
    r = server.req("POST", "auth/token/create", json={"policies": policies})
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


def acl_names(server):
    r = server.req("LIST", "sys/policies/acl")
    assert r.status_code == 200, r.text
    return r.json()["data"]["keys"]


def test_examples_are_not_built_in(server):
    # The shared dev server has no policy directory: no example is live.
    # (Other test files write policies on it, so look for the example only.)
    assert "office-hours" not in acl_names(server)
    assert server.req("GET", "sys/policies/acl/office-hours").status_code == 404


def test_lua_example_loads_from_policy_directory(example_server):
    s = example_server
    assert "office-hours" in acl_names(s)
    r = s.req("GET", "sys/policies/acl/office-hours")
    assert r.status_code == 200, r.text
    assert 'path "secret/data/office/*"' in r.json()["data"]["policy"]
    # The .hcl file next to it is not a Lua policy and is not loaded.
    assert "readonly-db" not in acl_names(s)
    # The check lets a local client read at any hour.
    path = "secret/data/office/" + uuid.uuid4().hex[:6]
    assert s.req("POST", path, json={"data": {"k": "v"}}).status_code == 200
    tok = token_for(s, ["office-hours"])
    r = s.req("GET", path, token=tok)
    assert r.status_code == 200, r.text
    assert r.json()["data"]["data"] == {"k": "v"}
    assert s.req("GET", "secret/data/other", token=tok).status_code == 403


def test_hcl_example_written_through_the_api(server):
    with open(os.path.join(EXAMPLES, "readonly-db.hcl")) as f:
        text = f.read()
    name = "readonly-db-" + uuid.uuid4().hex[:6]
    r = server.req("PUT", "sys/policies/acl/" + name, json={"policy": text})
    assert r.status_code == 204, r.text
    try:
        caps = server.req("POST", "sys/capabilities", json={
            "token": token_for(server, [name]),
            "paths": ["database/creds/my-role", "database/creds/other"]})
        assert caps.status_code == 200, caps.text
        assert caps.json()["data"]["database/creds/my-role"] == ["read"]
        assert caps.json()["data"]["database/creds/other"] == ["deny"]
    finally:
        assert server.req("DELETE",
                          "sys/policies/acl/" + name).status_code == 204
