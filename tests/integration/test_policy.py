"""ACL policies: the policy endpoints, enforcement, capabilities, Lua checks.

Runs its own dev server with tests/integration/data/policies as the Lua
policy directory (-dev-policy-dir), so the Lua policies below exist:

    local-only    secret/data/local/*  read, only from 127.0.0.1
    team-meta     secret/data/team/*   only for tokens with meta team=blue
    never-hours   secret/data/hours/*  only at hour 25 (never): denies by time
    broken-check  secret/data/broken/* check raises        -> deny
    loop-check    secret/data/loop/*   check never returns -> deny
    string-check  secret/data/str/*    check returns "yes" -> deny
"""

import base64
import json
import os
import time
import uuid

import hvac
import pytest

from conftest import HERE, Server

POLICY_DIR = os.path.join(HERE, "data", "policies")
DENIED = "1 error occurred:\n\t* permission denied\n\n"

MY_ROLE = 'path "database/creds/my-role" { capabilities = ["read"] }\n'


@pytest.fixture(scope="module")
def server():
    s = Server(["-dev-policy-dir=%s" % POLICY_DIR])
    yield s
    assert s.stop() == 0


def token_for(server, policies, **extra):
    body = {"policies": policies}
    body.update(extra)
    r = server.req("POST", "auth/token/create", json=body)
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


def put_policy(server, name, text, legacy=False):
    path = ("sys/policy/" if legacy else "sys/policies/acl/") + name
    return server.req("PUT", path, json={"policy": text})


# ------------------------------------------------------------- endpoints --

def test_write_read_list_delete_acl_endpoints(server):
    name = "acl-" + uuid.uuid4().hex[:6]
    r = put_policy(server, name, MY_ROLE)
    assert r.status_code == 204, r.text
    r = server.req("GET", "sys/policies/acl/" + name)
    assert r.status_code == 200
    assert r.json()["data"] == {"name": name, "policy": MY_ROLE}
    assert "policy" not in r.json()  # not injected on this family
    r = server.req("LIST", "sys/policies/acl")
    keys = r.json()["data"]["keys"]
    assert name in keys and "default" in keys and keys[-1] == "root"
    assert server.req("GET", "sys/policies/acl").status_code == 405
    assert server.req("DELETE", "sys/policies/acl/" + name).status_code == 204
    assert server.req("GET", "sys/policies/acl/" + name).status_code == 404
    assert server.req("GET", "sys/policies/acl/" + name).json() == {"errors": []}
    # deleting a missing policy is fine
    assert server.req("DELETE", "sys/policies/acl/" + name).status_code == 204


def test_legacy_endpoints_and_hvac(server):
    client = server.hvac_client()
    name = "legacy-" + uuid.uuid4().hex[:6]
    client.sys.create_or_update_policy(name=name, policy=MY_ROLE)
    got = client.sys.read_policy(name=name)
    assert got["data"]["rules"] == MY_ROLE
    assert got["rules"] == MY_ROLE  # top-level injection
    listed = client.sys.list_policies()
    assert name in listed["data"]["policies"]
    assert listed["keys"] == listed["policies"] == listed["data"]["keys"]
    assert listed["keys"][-1] == "root"
    client.sys.delete_policy(name=name)
    assert name not in client.sys.list_policies()["data"]["policies"]


def test_legacy_rules_field_warns(server):
    name = "rules-" + uuid.uuid4().hex[:6]
    r = server.req("PUT", "sys/policy/" + name,
                   json={"name": name, "rules": MY_ROLE})
    assert r.status_code == 200, r.text
    assert r.json()["warnings"] == [
        "'rules' is deprecated, please use 'policy' instead"]
    r = server.req("GET", "sys/policy/" + name)
    assert r.json()["data"]["rules"] == MY_ROLE
    # the acl family does not take 'rules'
    r = server.req("PUT", "sys/policies/acl/" + name, json={"rules": MY_ROLE})
    assert r.status_code == 400
    assert r.json() == {"errors": ["'policy' parameter not supplied or empty"]}


def test_name_lowercased_and_base64(server):
    name = "Mixed-" + uuid.uuid4().hex[:6]
    text = base64.b64encode(MY_ROLE.encode()).decode()
    r = put_policy(server, name, text)
    assert r.status_code == 200, r.text
    assert r.json()["warnings"] == ["policy name was converted to %s"
                                    % name.lower()]
    r = server.req("GET", "sys/policies/acl/" + name.lower())
    assert r.json()["data"]["policy"] == MY_ROLE
    server.req("DELETE", "sys/policies/acl/" + name.lower())


@pytest.mark.parametrize("text,detail", [
    ('path "a" {\n  capabilities = ["read", "bogus"]\n}',
     'path "a": invalid capability "bogus" on line 2'),
    ('path "a" {\n  capabilities = ["read"]\n', "line 3: expected"),
    ('path "a" {\n  capabilities = ["read"]\n}\nnope = 1\n',
     'invalid key "nope" on line 4'),
    ('path "a/+*" { capabilities = ["read"] }',
     "invalid use of wildcards ('+*' is forbidden)"),
])
def test_parse_errors(server, text, detail):
    r = put_policy(server, "bad", text)
    assert r.status_code == 400
    msg = r.json()["errors"][0]
    assert msg.startswith("failed to parse policy: "), msg
    assert detail in msg


def test_root_and_default_protected(server):
    r = put_policy(server, "root", MY_ROLE)
    assert r.status_code == 400
    assert r.json() == {"errors": ['cannot update "root" policy']}
    r = server.req("DELETE", "sys/policy/root")
    assert r.json() == {"errors": ['cannot delete "root" policy']}
    r = server.req("DELETE", "sys/policies/acl/default")
    assert r.status_code == 400
    assert r.json() == {"errors": ["cannot delete default policy"]}
    r = server.req("GET", "sys/policy/root")
    assert r.json()["data"] == {"name": "root", "rules": ""}
    r = server.req("GET", "sys/policy/default")
    assert 'path "auth/token/lookup-self"' in r.json()["data"]["rules"]
    assert server.req("PUT", "sys/policy/x", json={}).status_code == 400


def test_default_is_editable(server):
    r = server.req("GET", "sys/policies/acl/default")
    original = r.json()["data"]["policy"]
    try:
        extra = original + '\npath "secret/data/by-default" { capabilities = ["read"] }\n'
        assert put_policy(server, "default", extra).status_code == 204
        tok = token_for(server, ["default"])
        server.req("POST", "secret/data/by-default", json={"data": {"a": 1}})
        assert server.req("GET", "secret/data/by-default", token=tok).status_code == 200
    finally:
        assert put_policy(server, "default", original).status_code == 204


def test_lua_policy_is_read_only(server):
    r = server.req("GET", "sys/policies/acl/local-only")
    assert r.status_code == 200
    assert 'path "secret/data/local/*"' in r.json()["data"]["policy"]
    # Coffer's own fields say where it comes from (the web UI shows it
    # read-only); an HCL policy has neither.
    assert r.json()["data"]["lua"] is True
    assert r.json()["data"]["file"].endswith(".lua")
    d = server.req("GET", "sys/policies/acl/default").json()["data"]
    assert "lua" not in d and "file" not in d
    assert put_policy(server, "local-only", MY_ROLE).status_code == 400
    assert server.req("DELETE", "sys/policy/local-only").status_code == 400
    assert "local-only" in server.req("GET", "sys/policy").json()["keys"]


# ----------------------------------------------------------- enforcement --

@pytest.fixture(scope="module")
def my_role(server):
    """A KV v1 mount at database/ standing in for the database engine."""
    server.req("POST", "sys/mounts/database", json={"type": "kv"})
    for p in ("creds/my-role", "creds/other-role", "config/pg", "roles/my-role"):
        assert server.req("PUT", "database/" + p,
                          json={"username": "u", "password": "p"}).status_code == 204
    assert put_policy(server, "my-role", MY_ROLE).status_code == 204
    return token_for(server, ["my-role"])


def test_only_my_role(server, my_role):
    client = hvac.Client(url=server.addr, token=my_role)
    got = client.read("database/creds/my-role")
    assert got["data"]["username"] == "u"
    # lookup-self comes from the default policy
    assert client.lookup_token()["data"]["policies"] == ["default", "my-role"]
    for method, path in [
        ("GET", "database/creds/other-role"),
        ("GET", "database/config/pg"),
        ("GET", "database/roles/my-role"),
        ("PUT", "database/creds/my-role"),
        ("DELETE", "database/creds/my-role"),
        ("LIST", "database/creds"),
        ("GET", "secret/data/x"),
        ("GET", "sys/policy"),
        ("LIST", "sys/policies/acl"),
        ("GET", "sys/policies/acl/my-role"),
        ("PUT", "sys/policies/acl/my-role"),
        ("GET", "sys/mounts"),
        ("POST", "sys/mounts/new"),
        ("POST", "auth/token/create"),
        ("GET", "cubbyhole-nope/x"),
    ]:
        r = server.req(method, path, token=my_role, json={"policy": "x"})
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert r.json() == {"errors": [DENIED]}, (method, path)
    with pytest.raises(hvac.exceptions.Forbidden):
        client.read("database/creds/other-role")
    with pytest.raises(hvac.exceptions.Forbidden):
        client.sys.list_policies()


def test_policy_change_applies_to_existing_token(server):
    name = "live-" + uuid.uuid4().hex[:6]
    assert put_policy(server, name, 'path "secret/data/live" { capabilities = ["read"] }').status_code == 204
    tok = token_for(server, [name])
    server.req("POST", "secret/data/live", json={"data": {"v": 1}})
    assert server.req("GET", "secret/data/live", token=tok).status_code == 200
    assert put_policy(server, name, 'path "secret/data/live" { capabilities = ["deny"] }').status_code == 204
    assert server.req("GET", "secret/data/live", token=tok).status_code == 403
    server.req("DELETE", "sys/policies/acl/" + name)
    assert server.req("GET", "secret/data/live", token=tok).status_code == 403


def test_deny_and_merge_across_policies(server):
    a = "ma-" + uuid.uuid4().hex[:6]
    b = "mb-" + uuid.uuid4().hex[:6]
    put_policy(server, a, 'path "secret/data/m/*" { capabilities = ["read"] }\n'
                          'path "secret/data/m/secret" { capabilities = ["read"] }')
    put_policy(server, b, 'path "secret/data/m/*" { capabilities = ["create", "update"] }\n'
                          'path "secret/data/m/secret" { capabilities = ["deny"] }')
    tok = token_for(server, [a, b])
    assert server.req("POST", "secret/data/m/x", token=tok,
                      json={"data": {"k": "v"}}).status_code == 200
    assert server.req("GET", "secret/data/m/x", token=tok).status_code == 200
    server.req("POST", "secret/data/m/secret", json={"data": {"k": "v"}})
    assert server.req("GET", "secret/data/m/secret", token=tok).status_code == 403


def test_parameter_constraints(server):
    server.req("POST", "sys/mounts/pkv", json={"type": "kv"})
    name = "params-" + uuid.uuid4().hex[:6]
    put_policy(server, name, '''
path "pkv/app" {
  capabilities = ["create", "update"]
  allowed_parameters = { "env" = ["dev-*"], "owner" = [] }
  denied_parameters = { "owner" = ["root"] }
}
path "pkv/req" {
  capabilities = ["create", "update"]
  required_parameters = ["ticket"]
}
''')
    tok = token_for(server, [name])
    ok = [{"env": "dev-1"}, {"owner": "alice", "env": "dev-x"}]
    bad = [{"env": "prod"}, {"other": "x"}, {"owner": "root"}]
    for body in ok:
        r = server.req("PUT", "pkv/app", token=tok, json=body)
        assert r.status_code == 204, (body, r.text)
    for body in bad:
        assert server.req("PUT", "pkv/app", token=tok, json=body).status_code == 403, body
    assert server.req("PUT", "pkv/req", token=tok, json={"x": 1}).status_code == 403
    assert server.req("PUT", "pkv/req", token=tok, json={"ticket": "1"}).status_code == 204


def test_sudo_paths_need_sudo(server):
    name = "sudo-" + uuid.uuid4().hex[:6]
    put_policy(server, name, 'path "sys/auth/*" { capabilities = ["create", "update", "read", "delete"] }\n'
                             'path "sys/leases/revoke-prefix/*" { capabilities = ["update"] }')
    tok = token_for(server, [name])
    assert server.req("POST", "sys/auth/up-x", token=tok,
                      json={"type": "userpass"}).status_code == 403
    assert server.req("PUT", "sys/leases/revoke-prefix/nothing", token=tok).status_code == 403
    put_policy(server, name, 'path "sys/leases/revoke-prefix/*" { capabilities = ["update", "sudo"] }')
    assert server.req("PUT", "sys/leases/revoke-prefix/nothing", token=tok).status_code == 204


# ---------------------------------------------------------- capabilities --

def test_capabilities_endpoints(server, my_role):
    r = server.req("POST", "sys/capabilities-self", token=my_role,
                   json={"paths": ["database/creds/my-role", "sys/mounts"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"] == {"database/creds/my-role": ["read"],
                            "sys/mounts": ["deny"]}
    assert body["database/creds/my-role"] == ["read"]  # top-level
    r = server.req("POST", "sys/capabilities-self", token=my_role,
                   json={"path": "database/creds/my-role"})
    assert r.json()["data"]["capabilities"] == ["read"]
    r = server.req("POST", "sys/capabilities-self",
                   json={"paths": ["anything"]})
    assert r.json()["data"]["capabilities"] == ["root"]
    r = server.req("POST", "sys/capabilities",
                   json={"token": my_role, "paths": "database/creds/my-role"})
    assert r.json()["data"]["capabilities"] == ["read"]
    acc = server.req("GET", "auth/token/lookup-self",
                     token=my_role).json()["data"]["accessor"]
    r = server.req("POST", "sys/capabilities-accessor",
                   json={"accessor": acc, "paths": ["database/creds/other"]})
    assert r.json()["data"]["capabilities"] == ["deny"]
    assert server.req("POST", "sys/capabilities-self", token=my_role,
                      json={}).json() == {"errors": ["paths must be supplied"]}
    assert server.req("POST", "sys/capabilities",
                      json={"token": "hvs.nope", "paths": ["x"]}).json() == {
                          "errors": ["invalid token"]}
    assert server.req("POST", "sys/capabilities-accessor",
                      json={"accessor": "nope", "paths": ["x"]}).json() == {
                          "errors": ["invalid accessor"]}
    # a token without the policy may not ask about others
    assert server.req("POST", "sys/capabilities", token=my_role,
                      json={"token": my_role, "paths": ["x"]}).status_code == 403


# ------------------------------------------------------------ Lua checks --

def seed(server, path):
    r = server.req("POST", "secret/data/" + path, json={"data": {"v": 1}})
    assert r.status_code == 200, r.text


def test_lua_check_allows_local_reads(server):
    seed(server, "local/a")
    tok = token_for(server, ["local-only"])
    client = hvac.Client(url=server.addr, token=tok)
    got = client.secrets.kv.v2.read_secret_version(path="local/a")
    assert got["data"]["data"] == {"v": 1}
    # the path rules still apply
    assert server.req("GET", "secret/data/other", token=tok).status_code == 403


def test_lua_check_denies_by_metadata(server):
    seed(server, "team/a")
    blue = token_for(server, ["team-meta"], meta={"team": "blue"})
    red = token_for(server, ["team-meta"], meta={"team": "red"})
    none = token_for(server, ["team-meta"])
    assert server.req("GET", "secret/data/team/a", token=blue).status_code == 200
    assert server.req("GET", "secret/data/team/a", token=red).status_code == 403
    assert server.req("GET", "secret/data/team/a", token=none).status_code == 403
    # the check sees request data
    assert server.req("POST", "secret/data/team/b", token=blue,
                      json={"data": {"ok": 1}}).status_code == 200
    assert server.req("POST", "secret/data/team/b", token=blue,
                      json={"data": {"danger": 1}}).status_code == 403
    server.new_stderr()


def test_lua_check_denies_by_time(server):
    seed(server, "hours/a")
    tok = token_for(server, ["never-hours"])
    r = server.req("GET", "secret/data/hours/a", token=tok)
    assert r.status_code == 403
    assert r.json() == {"errors": [DENIED]}
    assert "outside the allowed hours" in server.new_stderr()


@pytest.mark.parametrize("policy,path,logged", [
    ("broken-check", "broken/a", "attempt to index"),
    ("loop-check", "loop/a", "exceeded 100000 instructions"),
    ("string-check", "str/a", "expected a boolean"),
])
def test_lua_check_fails_closed(server, policy, path, logged):
    seed(server, path)
    tok = token_for(server, [policy])
    server.new_stderr()
    t0 = time.monotonic()
    r = server.req("GET", "secret/data/" + path, token=tok)
    assert r.status_code == 403
    assert time.monotonic() - t0 < 5
    log = server.new_stderr()
    assert "policy: check of %s failed" % policy in log, log
    assert logged in log, log
    # and again: the state is still usable after a failed check
    assert server.req("GET", "secret/data/" + path, token=tok).status_code == 403
    other = token_for(server, ["local-only"])
    seed(server, "local/b")
    assert server.req("GET", "secret/data/local/b", token=other).status_code == 200


def test_only_token_policies_checks_run(server):
    # A token without broken-check is not affected by that failing check.
    name = "plain-" + uuid.uuid4().hex[:6]
    put_policy(server, name, 'path "secret/data/broken/*" { capabilities = ["read"] }')
    seed(server, "broken/b")
    tok = token_for(server, [name])
    assert server.req("GET", "secret/data/broken/b", token=tok).status_code == 200


# ------------------------------------------------------------------- CLI --

def test_cli_policy_commands(server, tmp_path):
    name = "cli-" + uuid.uuid4().hex[:6]
    f = tmp_path / "p.hcl"
    f.write_text(MY_ROLE)
    r = server.cli("policy", "write", name, str(f))
    assert r.rc == 0, r.stderr
    assert r.stdout == "Success! Uploaded policy: %s\n" % name
    r = server.cli("policy", "read", name)
    assert r.rc == 0 and r.stdout == MY_ROLE
    r = server.cli("policy", "list")
    assert r.rc == 0
    names = r.stdout.split()
    assert name in names and "default" in names and "root" in names
    r = server.cli("policy", "write", name + "-stdin", "-", stdin=MY_ROLE)
    assert r.rc == 0, r.stderr
    r = server.cli("policy", "delete", name)
    assert r.rc == 0 and r.stdout == "Success! Deleted policy: %s\n" % name
    r = server.cli("policy", "read", name)
    assert r.rc == 2 and "No policy named: %s" % name in r.stderr
    f.write_text('path "a" {\n capabilities = ["nope"]\n}\n')
    r = server.cli("policy", "write", name, str(f))
    assert r.rc == 2
    assert 'failed to parse policy: path \\"a\\": invalid capability' in r.stderr or \
        'failed to parse policy: path "a": invalid capability' in r.stderr, r.stderr
    server.cli("policy", "delete", name + "-stdin")


def test_cli_policy_fmt(server, tmp_path):
    f = tmp_path / "fmt.hcl"
    f.write_text('path   "a"{capabilities=["read","list"]}\npath "b" { policy = "read" }')
    r = server.cli("policy", "fmt", str(f))
    assert r.rc == 0, r.stderr
    assert f.read_text() == ('path "a" {\n  capabilities = ["read", "list"]\n}\n\n'
                             'path "b" {\n  policy = "read"\n}\n')
    f.write_text('path "a" {')
    r = server.cli("policy", "fmt", str(f))
    assert r.rc == 2 and "line 1" in r.stderr


def test_cli_token_capabilities(server, my_role):
    r = server.cli("token", "capabilities", "database/creds/my-role", token=my_role)
    assert r.rc == 0, r.stderr
    assert r.stdout == "read\n"
    r = server.cli("token", "capabilities", my_role, "sys/mounts")
    assert r.rc == 0 and r.stdout == "deny\n"
    r = server.cli("token", "capabilities", "sys/mounts")
    assert r.stdout == "root\n"
    r = server.cli("token", "capabilities", "-format=json", my_role, "database/creds/my-role")
    assert r.rc == 0 and json.loads(r.stdout) == ["read"]


def test_create_and_update_are_told_apart(server):
    # Vault's existence check: writing a new key needs "create", writing an
    # existing one needs "update".
    put_policy(server, "creator",
               'path "secret/data/fresh*" { capabilities = ["create"] }')
    tok = token_for(server, ["creator"])
    key = "secret/data/fresh-" + uuid.uuid4().hex[:8]
    r = server.req("PUT", key, token=tok, json={"data": {"v": 1}})
    assert r.status_code == 200, r.text
    r = server.req("PUT", key, token=tok, json={"data": {"v": 2}})
    assert r.status_code == 403
    put_policy(server, "updater",
               'path "secret/data/fresh*" { capabilities = ["update"] }')
    tok2 = token_for(server, ["updater"])
    assert server.req("PUT", key, token=tok2,
                      json={"data": {"v": 3}}).status_code == 200
    other = "secret/data/fresh-" + uuid.uuid4().hex[:8]
    assert server.req("PUT", other, token=tok2,
                      json={"data": {"v": 1}}).status_code == 403
