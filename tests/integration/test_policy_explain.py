"""Policy explain: sys/policies/explain[-self], X-Coffer-Explain, the CLI.

"Why was this request denied?" answered by the same code that denied it:
the decisive rule with its policy and line, the other matching rules and
why they lost, failed parameter constraints and Lua checks with file:line.

Runs its own dev server with tests/integration/data/policies as the Lua
policy directory (local-only: secret/data/local/* read, from 127.0.0.1).
"""

import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import HERE, ROOT, Server

POLICY_DIR = os.path.join(HERE, "data", "policies")
DENIED = "1 error occurred:\n\t* permission denied\n\n"

# The X-Coffer-Explain header reaches core.c only once http.c copies it
# into the request (request.h's `explain`); see the explain report.
HTTP_PASSES_HEADER = "X-Coffer-Explain" in open(
    os.path.join(ROOT, "src", "http.c"), encoding="utf-8").read()
needs_header = pytest.mark.skipif(
    not HTTP_PASSES_HEADER, reason="http.c does not pass X-Coffer-Explain yet")

DEV = """# dev team
path "secret/data/*" {
  capabilities = ["deny"]
}

path "secret/data/app/+" {
  capabilities = ["read", "update"]
  denied_parameters = {
    "ttl" = []
  }
}
"""

OTHER = """path "secret/+/app/db" {
  capabilities = ["read"]
}
path "secret/data/*" {
  capabilities = ["read", "list"]
}
"""


@pytest.fixture(scope="module")
def server():
    s = Server(["-dev-policy-dir=%s" % POLICY_DIR])
    for name, text in (("dev", DEV), ("other", OTHER)):
        r = s.req("PUT", "sys/policies/acl/" + name, json={"policy": text})
        assert r.status_code == 204, r.text
    yield s
    assert s.stop() == 0


def token_for(server, policies, **extra):
    body = {"policies": policies}
    body.update(extra)
    r = server.req("POST", "auth/token/create", json=body)
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"], r.json()["auth"]["accessor"]


def explain(server, body, token=True, self_=False):
    path = "sys/policies/explain-self" if self_ else "sys/policies/explain"
    return server.req("POST", path, token=token, json=body)


def ok_data(r):
    assert r.status_code == 200, r.text
    return r.json()["data"]


# ------------------------------------------------------------- decisions --

def test_denied_request_explained_with_decisive_rule_and_line(server):
    tok, _ = token_for(server, ["dev"])
    # The real request is denied ...
    assert server.req("GET", "secret/data/q", token=tok).status_code == 403
    # ... and explain-self (default policy) says by which rule and line.
    client = server.hvac_client(tok)
    d = client.adapter.post("/v1/sys/policies/explain-self",
                            json={"path": "secret/data/q",
                                  "operation": "read"})["data"]
    assert d["allowed"] is False
    assert d["decisive"] == {"policy": "dev", "pattern": "secret/data/*",
                             "line": 2, "capabilities": ["deny"],
                             "kind": "glob", "merged_capabilities": ["deny"]}
    assert d["policies"] == ["default", "dev"]
    assert d["reason"] == ('denied: rule "secret/data/*" in policy "dev" '
                           '(line 2) denies read')
    assert d["matches"][0]["decisive"] is True


def test_deny_on_the_same_pattern_wins_over_an_allow(server):
    d = ok_data(explain(server, {"policies": "dev,other",
                                 "path": "secret/data/zz",
                                 "operation": "read"}))
    assert d["allowed"] is False
    assert d["decisive"]["policy"] == "dev"
    lost = [m for m in d["matches"] if not m["decisive"]]
    assert [(m["policy"], m["pattern"], m["line"]) for m in lost] == [
        ("other", "secret/data/*", 4)]
    assert lost[0]["why"].startswith("lost: deny")
    # Same answer as the real check for a token holding both policies.
    tok, _ = token_for(server, ["dev", "other"])
    assert server.req("GET", "secret/data/zz", token=tok).status_code == 403


def test_longer_rule_beats_shorter_deny_as_in_vault(server):
    # VAULT_API 7.2: one rule applies; the more specific allow beats the
    # shorter deny glob, and explain says why the deny lost.
    d = ok_data(explain(server, {"policies": ["dev", "other"],
                                 "path": "secret/data/app/db",
                                 "operation": "read"}))
    assert d["allowed"] is True
    assert (d["decisive"]["pattern"], d["decisive"]["line"],
            d["decisive"]["kind"]) == ("secret/data/app/+", 6, "segment")
    whys = {(m["policy"], m["pattern"]): m["why"] for m in d["matches"]}
    assert "more specific" in whys[("dev", "secret/data/*")]
    assert "more specific" in whys[("other", "secret/+/app/db")]
    tok, _ = token_for(server, ["dev", "other"])
    server.req("POST", "secret/data/app/db", json={"data": {"a": "b"}})
    assert server.req("GET", "secret/data/app/db", token=tok).status_code \
        == 200


def test_parameter_constraint_failure(server):
    d = ok_data(explain(server, {"policies": ["dev"],
                                 "path": "secret/data/app/db",
                                 "operation": "update",
                                 "data": {"TTL": "1h", "k": "v"}}))
    assert d["allowed"] is False
    assert d["constraints"] == [{
        "policy": "dev", "pattern": "secret/data/app/+", "line": 6,
        "parameter": "TTL", "rule": "denied_parameters",
        "reason": 'parameter "TTL" is denied'}]
    assert "denied_parameters" in d["reason"]
    # Without the parameter the same rule allows.
    d = ok_data(explain(server, {"policies": ["dev"],
                                 "path": "secret/data/app/db",
                                 "operation": "update", "data": {"k": "v"}}))
    assert d["allowed"] is True and d["constraints"] == []


def test_lua_policy_check_reason_with_file_and_line(server):
    body = {"policies": ["local-only"], "path": "secret/data/local/x",
            "operation": "read", "remote_addr": "10.0.0.7"}
    d = ok_data(explain(server, body))
    assert d["allowed"] is False
    assert d["lua"] == [{
        "policy": "local-only",
        "file": os.path.join(POLICY_DIR, "local-only.lua"), "line": 6,
        "result": "deny", "reason": "not from 127.0.0.1"}]
    assert d["reason"].endswith("said no: not from 127.0.0.1")
    assert d["decisive"]["line"] is None  # Lua patterns carry no line
    body["remote_addr"] = "127.0.0.1"
    d = ok_data(explain(server, body))
    assert d["allowed"] is True and d["lua"][0]["result"] == "allow"


def test_self_explain_hides_lua_reasons_and_directories(server):
    # The token holder learns which check said no, not its reason (the
    # server log's and sudo's) nor where the policy files live.
    tok, _ = token_for(server, ["local-only"])
    body = {"path": "secret/data/local/x", "operation": "read",
            "remote_addr": "10.0.0.7"}
    d = ok_data(explain(server, body, token=tok, self_=True))
    assert d["allowed"] is False
    assert d["lua"] == [{
        "policy": "local-only", "file": "local-only.lua", "line": 6,
        "result": "deny", "reason": "", "reason_hidden": True}]
    assert "not from 127.0.0.1" not in json.dumps(d)
    assert POLICY_DIR not in json.dumps(d)
    # sudo's explain of the same token shows both.
    d = ok_data(explain(server, dict(body, token=tok)))
    assert d["lua"][0]["reason"] == "not from 127.0.0.1"


def test_cidr_bound_token_explained_as_refused_by_its_address(server):
    # A token bound to token_bound_cidrs is refused before any policy when
    # used from elsewhere: explain says so instead of naming a rule.
    role = "cidr-" + os.urandom(4).hex()
    r = server.req("POST", "auth/token/roles/" + role, json={
        "allowed_policies": ["dev"], "token_bound_cidrs": ["10.0.0.0/8"]})
    assert r.status_code == 204, r.text
    r = server.req("POST", "auth/token/create/" + role,
                   json={"policies": ["dev"]})
    assert r.status_code == 200, r.text
    tok = r.json()["auth"]["client_token"]
    body = {"token": tok, "path": "secret/data/app/db",
            "operation": "update", "data": {"k": "v"}}
    assert server.req("PUT", "secret/data/app/db", token=tok,
                      json={"data": {"k": "v"}}).status_code == 403
    d = ok_data(explain(server, body))   # from the caller's 127.0.0.1
    assert d["allowed"] is False and d["decisive"] is None
    assert "token_bound_cidrs" in d["reason"] and "127.0.0.1" in d["reason"]
    assert d["bound_cidrs"] == ["10.0.0.0/8"]
    d = ok_data(explain(server, dict(body, remote_addr="10.1.2.3")))
    assert d["allowed"] is True, d


def test_sudo_path_and_root(server):
    d = ok_data(explain(server, {"policies": ["other"], "path": "sys/seal",
                                 "operation": "update"}))
    assert d["allowed"] is False and d["sudo_required"] is True
    assert d["decisive"] is None
    assert d["reason"] == ('denied: no policy grants update on sys/seal; '
                           'no rule matches this path')
    d = ok_data(explain(server, {"policies": ["other"], "path": "secret/x",
                                 "operation": "read"}))
    assert d["decisive"] is None and d["closest"]["policy"] == "other"
    assert "; closest: rule \"secret/" in d["reason"]
    d = ok_data(explain(server, {"token": server.token, "path": "sys/seal",
                                 "operation": "update"}))
    assert d["allowed"] is True and d["root"] is True


def test_explain_follows_a_policy_change(server):
    name = "flip-" + uuid.uuid4().hex[:6]
    body = {"policies": [name], "path": "flip/x", "operation": "read"}
    server.req("PUT", "sys/policies/acl/" + name,
               json={"policy": 'path "flip/x" { capabilities = ["read"] }'})
    assert ok_data(explain(server, body))["allowed"] is True
    server.req("PUT", "sys/policies/acl/" + name,
               json={"policy": '\n\npath "flip/x" { capabilities = ["deny"] }'})
    d = ok_data(explain(server, body))
    assert d["allowed"] is False and d["decisive"]["line"] == 3
    server.req("DELETE", "sys/policies/acl/" + name)
    r = explain(server, body)
    assert r.json()["data"]["allowed"] is False
    assert r.json()["warnings"] == [
        'policy "%s" does not exist; it grants nothing' % name]


# ---------------------------------------------------------------- access --

def test_non_sudo_token_403_on_explain_but_explain_self_works(server):
    tok, _ = token_for(server, ["other"])
    r = explain(server, {"policies": ["dev"], "path": "x",
                         "operation": "read"}, token=tok)
    assert r.status_code == 403 and r.json()["errors"] == [DENIED]
    # update alone on sys/policies/explain is not enough: it needs sudo.
    name = "explainer-" + uuid.uuid4().hex[:6]
    server.req("PUT", "sys/policies/acl/" + name, json={
        "policy": 'path "sys/policies/explain" { capabilities = ["update"] }'})
    tok2, _ = token_for(server, [name])
    assert explain(server, {"policies": ["dev"], "path": "x",
                            "operation": "read"},
                   token=tok2).status_code == 403
    server.req("PUT", "sys/policies/acl/" + name, json={
        "policy": 'path "sys/policies/explain" '
                  '{ capabilities = ["update", "sudo"] }'})
    assert explain(server, {"policies": ["dev"], "path": "x",
                            "operation": "read"},
                   token=tok2).status_code == 200
    d = ok_data(explain(server, {"path": "secret/data/a/b",
                                 "operation": "list"}, token=tok, self_=True))
    assert d["allowed"] is True and d["policies"] == ["default", "other"]


def test_explain_self_tells_nothing_about_another_token(server):
    mine, _ = token_for(server, ["other"])
    theirs, acc = token_for(server, ["dev"])
    for sel in ({"token": theirs}, {"accessor": acc}, {"policies": ["dev"]},
                {"token": server.token}):
        body = {"path": "secret/data/q", "operation": "read"}
        body.update(sel)
        r = explain(server, body, token=mine, self_=True)
        assert r.status_code == 400, r.text
        assert "explain-self explains the calling token" in \
            r.json()["errors"][0]
    d = ok_data(explain(server, {"path": "secret/data/q",
                                 "operation": "read"}, token=mine, self_=True))
    assert d["policies"] == ["default", "other"] and d["allowed"] is True
    # A token without the default policy may not call it at all.
    bare, _ = token_for(server, ["other"], no_default_policy=True)
    assert explain(server, {"path": "x", "operation": "read"}, token=bare,
                   self_=True).status_code == 403
    # No token: the ordinary 403 of an authenticated path.
    assert explain(server, {"path": "x", "operation": "read"}, token=None,
                   self_=True).status_code == 403


def test_explain_by_token_and_accessor(server):
    tok, acc = token_for(server, ["dev"])
    for sel in ({"token": tok}, {"accessor": acc}):
        body = {"path": "secret/data/q", "operation": "read"}
        body.update(sel)
        d = ok_data(explain(server, body))
        assert d["policies"] == ["default", "dev"] and d["allowed"] is False


BAD = [
    ({"operation": "read", "policies": "dev"},
     "path must be supplied as a string"),
    ({"path": 7, "operation": "read", "policies": "dev"},
     "path must be supplied as a string"),
    ({"path": "///", "operation": "read", "policies": "dev"},
     "path must be supplied as a string"),
    ({"path": "x", "policies": "dev"},
     "operation must be one of create, read, update, delete, list, patch"),
    ({"path": "x", "operation": "sudo", "policies": "dev"},
     "operation must be one of create, read, update, delete, list, patch"),
    ({"path": "x", "operation": ["read"], "policies": "dev"},
     "operation must be one of create, read, update, delete, list, patch"),
    ({"path": "x", "operation": "read"},
     "exactly one of token, accessor or policies must be supplied"),
    ({"path": "x", "operation": "read", "policies": "dev", "token": "t"},
     "exactly one of token, accessor or policies must be supplied"),
    ({"path": "x", "operation": "read", "token": "nope"}, "invalid token"),
    ({"path": "x", "operation": "read", "token": 5}, "invalid token"),
    ({"path": "x", "operation": "read", "accessor": "nope"},
     "invalid accessor"),
    ({"path": "x", "operation": "read", "policies": ""},
     "policies must name at least one policy"),
    ({"path": "x", "operation": "read", "policies": "dev", "data": [1]},
     "data must be a JSON object"),
    ({"path": "x", "operation": "read", "policies": "dev", "data": "k=v"},
     "data must be a JSON object"),
    ({"path": "x", "operation": "read", "policies": "dev",
      "remote_addr": {"a": 1}}, "remote_addr must be an address string"),
    ({"path": "x" * 5000, "operation": "read", "policies": "dev"},
     "path is longer than 4096 bytes"),
]


@pytest.mark.parametrize("body,text", BAD)
def test_bad_input_400(server, body, text):
    r = explain(server, body)
    assert r.status_code == 400, r.text
    assert r.json()["errors"] == [text]


def test_hostile_bodies(server):
    # NUL inside the path, a non-object body, a huge body, a GET.
    for raw in (b'{"path":"secret/\\u0000x","operation":"read",'
                b'"policies":"dev"}',
                b'[1,2,3]', b'"path"', b'{"path":',
                json.dumps({"path": "a/" * 200000, "operation": "read",
                            "policies": "dev"}).encode()):
        r = server.req("POST", "sys/policies/explain", data=raw,
                       headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (raw[:60], r.text)
    assert server.req("GET", "sys/policies/explain").status_code == 405
    # Odd but valid: a leading slash is dropped, as in real requests.
    d = ok_data(explain(server, {"path": "//secret/data/q",
                                 "operation": "read", "policies": "dev"}))
    assert d["path"] == "secret/data/q"


def test_parallel_explains_agree_with_real_requests(server):
    name = "par-" + uuid.uuid4().hex[:6]
    server.req("PUT", "sys/policies/acl/" + name, json={
        "policy": 'path "par/a/*" { capabilities = ["read"] }\n'
                  'path "par/a/b" { capabilities = ["deny"] }\n'})
    tok, _ = token_for(server, [name])
    paths = ["par/a/x", "par/a/b", "par/c", "par/a/b/c"]

    def one(i):
        p = paths[i % len(paths)]
        d = ok_data(explain(server, {"path": p, "operation": "read"},
                            token=tok, self_=True))
        real = server.req("GET", p, token=tok).status_code
        return p, d["allowed"], real

    with ThreadPoolExecutor(8) as ex:
        for p, allowed, real in ex.map(one, range(64)):
            # A path with no mount is a 404 or 403 after the ACL passed;
            # a denial is always 403.
            assert (real != 403) == allowed, (p, allowed, real)


# ---------------------------------------------------------- the header --

@needs_header
def test_x_coffer_explain_header_on_403(server):
    tok, _ = token_for(server, ["dev"])
    r = server.req("GET", "secret/data/q", token=tok,
                   headers={"X-Coffer-Explain": "1"})
    assert r.status_code == 403
    body = r.json()
    assert body["errors"] == [DENIED]
    assert body["warnings"] == [
        'denied: rule "secret/data/*" in policy "dev" (line 2) denies read']
    assert body["explain"]["decisive"]["line"] == 2
    assert body["explain"]["policies"] == ["default", "dev"]


@needs_header
def test_x_coffer_explain_header_needs_explain_self(server):
    # Without the header: unchanged. A token that may not call
    # explain-self gets the plain 403 even with it.
    tok, _ = token_for(server, ["dev"])
    r = server.req("GET", "secret/data/q", token=tok)
    assert r.json() == {"errors": [DENIED]}
    r = server.req("GET", "secret/data/q", token=tok,
                   headers={"X-Coffer-Explain": "0"})
    assert r.json() == {"errors": [DENIED]}
    bare, _ = token_for(server, ["dev"], no_default_policy=True)
    r = server.req("GET", "secret/data/q", token=bare,
                   headers={"X-Coffer-Explain": "1"})
    assert r.status_code == 403 and r.json() == {"errors": [DENIED]}


# ------------------------------------------------------------------ CLI --

def test_cli_policy_explain(server):
    r = server.cli("policy", "explain", "-policies=dev,other",
                   "-path=secret/data/app/db", "-op=update", "-data",
                   "ttl=1h")
    assert r.rc == 0, r.stderr
    assert "Result      denied" in r.stdout
    assert ('Decisive    dev: secret/data/app/+ (line 6) [read, update] '
            'segment') in r.stdout
    assert "Constraint  denied_parameters ttl" in r.stdout
    r = server.cli("policy", "explain", "-policies=dev", "-path=secret/data/q",
                   "-op=read", "-format=json")
    assert r.rc == 0, r.stderr
    assert json.loads(r.stdout)["decisive"]["line"] == 2
    tok, _ = token_for(server, ["dev"])
    r = server.cli("policy", "explain", "-path=secret/data/q", "-op=read",
                   token=tok)
    assert r.rc == 0 and "denies read" in r.stdout
    r = server.cli("policy", "explain", "-path=x", "-op=read",
                   "-policies=dev", token=tok)
    assert r.rc == 2 and "permission denied" in r.stderr
    r = server.cli("policy", "explain", "-path=x")
    assert r.rc == 1 and "-path and -op" in r.stderr
    r = server.cli("policy", "explain", "-path=x", "-op=bogus",
                   "-policies=dev")
    assert r.rc == 2 and "operation must be one of" in r.stderr


def test_cli_policy_test_offline(tmp_path):
    pol = tmp_path / "dev.hcl"
    pol.write_text(DEV)
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps([
        {"path": "secret/data/q", "operation": "read", "expect": "deny"},
        {"path": "secret/data/app/db", "operation": "read",
         "expect": "allow"},
        {"path": "secret/data/app/db", "operation": "update",
         "data": {"ttl": "1h"}, "expect": "deny"},
        {"path": "secret/data/app/db", "operation": "update",
         "expect": "deny"},  # wrong on purpose: update is granted
    ]))
    run = Server.__new__(Server)  # only for .cli: no server is started
    run.bin, run.addr, run.token, run.logdir = (
        os.environ.get("COFFER_BIN") or os.path.join(ROOT, "build", "coffer"),
        "http://127.0.0.1:1", "", str(tmp_path))
    r = run.cli("policy", "test", pol, cases)
    assert r.rc == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith('PASS read secret/data/q: expected deny; '
                               'denied: rule "secret/data/*" in policy "dev" '
                               '(line 2)')
    assert lines[3].startswith("FAIL update secret/data/app/db: expected "
                               "deny; allowed")
    assert lines[-1] == "3 passed, 1 failed"
    cases.write_text(json.dumps([{"path": "secret/data/q",
                                  "operation": "read", "expect": "deny"}]))
    r = run.cli("policy", "test", pol, cases)
    assert r.rc == 0 and r.stdout.splitlines()[-1] == "1 passed, 0 failed"
    r = run.cli("policy", "test", "-format=json", pol, cases)
    assert r.rc == 0 and json.loads(r.stdout)["passed"] == 1
    # Bad inputs: exit 2 with a message.
    for text in ('{"path": "x"}', '[{"path": "x", "operation": "read"}]',
                 '[{"path": "x", "operation": "fly", "expect": "deny"}]',
                 "not json"):
        cases.write_text(text)
        r = run.cli("policy", "test", pol, cases)
        assert r.rc == 2, (text, r.stdout, r.stderr)
    pol.write_text('path "a" {\n  capabilities = ["bogus"]\n}\n')
    r = run.cli("policy", "test", pol, cases)
    assert r.rc == 2 and "line 2" in r.stderr
    lua = tmp_path / "p.lua"
    lua.write_text("return {\n")
    r = run.cli("policy", "test", lua, cases)
    assert r.rc == 2 and "p.lua:2:" in r.stderr


def test_cli_policy_test_lua_file_offline(tmp_path):
    # The Lua policy runs in an in-memory core: paths and check function.
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps([
        {"path": "secret/data/local/x", "operation": "read",
         "remote_addr": "127.0.0.1", "expect": "allow"},
        {"path": "secret/data/local/x", "operation": "read",
         "remote_addr": "10.0.0.7", "expect": "deny"},
        {"path": "secret/data/local/x", "operation": "update",
         "remote_addr": "127.0.0.1", "expect": "allow"},
    ]))
    run = Server.__new__(Server)
    run.bin, run.addr, run.token, run.logdir = (
        os.environ.get("COFFER_BIN") or os.path.join(ROOT, "build", "coffer"),
        "http://127.0.0.1:1", "", str(tmp_path))
    r = run.cli("policy", "test", os.path.join(POLICY_DIR, "local-only.lua"),
                cases)
    assert r.rc == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("PASS read secret/data/local/x")
    assert lines[1].endswith("said no: not from 127.0.0.1")
    assert lines[2].startswith("FAIL update") and "(it grants: read)" in \
        lines[2]
    assert lines[-1] == "2 passed, 1 failed"
