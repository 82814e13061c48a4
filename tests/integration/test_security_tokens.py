"""Security of the token store and the request pipeline (issue 8, items 1,
2a, 3, 5, 6 and 8): who may give a new token which policies, display names
that reach database username templates, CIDR bindings on every path, and
the races between renewal, use counting, child creation and revocation.

The race cases run against a server of their own with many HTTP workers
(the shared server has one, which serialises everything) and repeat each
race many times; every trial must come out right."""

import http.client
import json
import os
import re
import shutil
import socket
import tempfile
import uuid

import pytest

from conftest import Server

# Trials per race. Every race test failed on the code before issue 8 in
# each of 3 runs (1-29 resurrections per 100 renew trials, 2-9 successes
# where 1 or 3 were allowed, 3-9 children outliving their parent).
TRIALS = 60
RENEW_TRIALS = 100
# Metadata that makes a token entry slow to read and write back, which
# widens the window in which a stale copy used to be written back.
BIG_META = {"k%d" % i: "v" * 40 for i in range(400)}
SAFE_NAME = re.compile(r"^[A-Za-z0-9-]+$")
LAST_USE_SECRET = ("Secret cannot be returned; token had one use left, so "
                   "leased credentials were immediately revoked.")

# A tiny auth method whose login hands back whatever identity it is sent,
# and an engine that issues a leased secret: the token store's rules must
# hold whatever an auth method or an engine does.
PLUGIN_AUTH = """
local a = coffer.auth { name = "echoid", help = "returns the identity sent" }
a:login("login", {
  handler = function(req) return req.data end,
  help = "log in as the identity in the body",
})
"""
PLUGIN_ENGINE = """
local e = coffer.engine { name = "leasy", help = "issues a leased secret" }
e:path("creds", {
  read = function(req)
    local lease = req:pending_lease("thing", { n = "1" })
    return lease:issue({ value = "s3cret" }, { ttl = 600 })
  end,
})
e:secret("thing", { revoke = function(lease) return true end })
"""


# --------------------------------------------------------------- helpers --

def uid():
    return uuid.uuid4().hex[:8]


def create(server, path="auth/token/create", token=True, **body):
    r = server.req("POST", path, token=token, json=body)
    assert r.status_code == 200, r.text
    return r.json()["auth"]


def alive(server, tok):
    return server.req("POST", "auth/token/lookup",
                      json={"token": tok}).status_code == 200


def policy(server, name, hcl):
    r = server.req("PUT", "sys/policies/acl/" + name, json={"policy": hcl})
    assert r.status_code == 204, r.text


def role(server, name, **body):
    r = server.req("POST", "auth/token/roles/" + name, json=body)
    assert r.status_code == 204, r.text
    return name


def vault_display_name(prefix, name):
    """Vault's rule: non-[A-Za-z0-9-] characters to '-', one '-' trimmed."""
    full = re.sub(r"[^A-Za-z0-9-]", "-", prefix + name)
    return full[:-1] if full.endswith("-") else full


def from_address(server, source, method, path, token, body=None):
    """One request sent from another loopback address (the server listens
    on 127.0.0.1; Linux lets a client bind any 127.x address)."""
    port = int(server.addr.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                      source_address=(source, 0))
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, "/v1/" + path, body=data,
                     headers={"X-Vault-Token": token})
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def plugdir():
    d = tempfile.mkdtemp(prefix="coffer-sectok-")
    with open(os.path.join(d, "echoid.lua"), "w") as f:
        f.write(PLUGIN_AUTH)
    with open(os.path.join(d, "leasy.lua"), "w") as f:
        f.write(PLUGIN_ENGINE)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def racy(plugdir):
    """A server with 16 workers, so that requests really run in parallel."""
    s = Server(["-workers=16", "-dev-plugin-dir=%s" % plugdir,
                "-dev-login-burst=50000", "-dev-login-rate=1000"])
    yield s
    assert s.stop() == 0


@pytest.fixture
def creator(server):
    """A token allowed only to create tokens through auth/token/create*,
    holding policy "ci-pol" (and default)."""
    name = "creator-" + uid()
    policy(server, name, """
path "auth/token/create" { capabilities = ["update"] }
path "auth/token/create-orphan" { capabilities = ["update"] }
path "auth/token/create/*" { capabilities = ["update"] }
""")
    tok = create(server, policies=[name, "ci-pol"], ttl="1h")["client_token"]
    return tok, name


# ---------------------------------------------------- 1. creation rules --

def test_role_without_lists_keeps_children_within_the_parent(server, creator):
    tok, pol = creator
    ci = role(server, "ci-" + uid())
    r = server.req("POST", "auth/token/create/" + ci, token=tok,
                   json={"policies": ["admin"]})
    assert r.status_code == 400, r.text
    assert r.json() == {"errors": ["child policies must be subset of parent"]}
    r = server.req("POST", "auth/token/create/" + ci, token=tok,
                   json={"policies": ["root"]})
    assert r.status_code == 400, r.text
    # Within the parent's policies it works, and without any it inherits.
    a = create(server, "auth/token/create/" + ci, token=tok,
               policies=["ci-pol"])
    assert a["policies"] == ["ci-pol", "default"]
    a = create(server, "auth/token/create/" + ci, token=tok)
    assert a["policies"] == sorted([pol, "ci-pol", "default"])


def test_role_with_only_cidrs_or_flags_does_not_widen(server, creator):
    tok, _ = creator
    for body in ({"token_bound_cidrs": "127.0.0.0/8"}, {"orphan": True},
                 {"token_period": "1h"}, {"renewable": False}):
        name = role(server, "flag-" + uid(), **body)
        r = server.req("POST", "auth/token/create/" + name, token=tok,
                       json={"policies": "admin"})
        assert r.status_code == 400, (body, r.text)
        assert "child policies must be subset of parent" in r.text


def test_role_allowed_list_bounds_the_token_not_the_parent(server, creator):
    # Vault: with allowed_policies the role, not the parent, is the bound.
    tok, _ = creator
    name = role(server, "al-" + uid(), allowed_policies="app,web")
    a = create(server, "auth/token/create/" + name, token=tok)
    assert a["policies"] == ["app", "default", "web"]
    a = create(server, "auth/token/create/" + name, token=tok,
               policies=["web"])
    assert a["policies"] == ["default", "web"]
    r = server.req("POST", "auth/token/create/" + name, token=tok,
                   json={"policies": ["web", "admin"]})
    assert r.status_code == 400
    assert r.json()["errors"] == [
        'token policies (["admin" "default" "web"]) must be subset of the '
        'role\'s allowed policies (["app" "default" "web"]) or glob '
        'policies ([])']


def test_role_globs(server, creator):
    tok, _ = creator
    name = role(server, "glob-" + uid(), allowed_policies_glob="dev-*,qa",
                disallowed_policies_glob="*-admin")
    d = server.req("GET", "auth/token/roles/" + name).json()["data"]
    assert d["allowed_policies_glob"] == ["dev-*", "qa"]
    assert d["disallowed_policies_glob"] == ["*-admin"]
    a = create(server, "auth/token/create/" + name, token=tok,
               policies=["dev-a", "qa"])
    assert a["policies"] == ["default", "dev-a", "qa"]
    for bad in (["prod"], ["dev"], ["qa-x"]):
        r = server.req("POST", "auth/token/create/" + name, token=tok,
                       json={"policies": bad})
        assert r.status_code == 400, (bad, r.text)
        assert "must be subset of the role's allowed policies" in r.text
    r = server.req("POST", "auth/token/create/" + name, token=tok,
                   json={"policies": ["dev-admin"]})
    assert r.status_code == 400
    assert r.json()["errors"] == [
        'token policy "dev-admin" is disallowed by this role']


def test_role_disallowed_list(server, creator):
    tok, _ = creator
    name = role(server, "dis-" + uid(), disallowed_policies="secret,default")
    r = server.req("POST", "auth/token/create/" + name, token=tok,
                   json={"policies": ["ok", "Secret"]})
    assert r.status_code == 400
    assert r.json()["errors"] == [
        'token policy "secret" is disallowed by this role']
    # Vault: a disallowed list alone lifts the parent bound; "default" in
    # it keeps default off the token.
    a = create(server, "auth/token/create/" + name, token=tok,
               policies=["ok"])
    assert a["policies"] == ["ok"]


def test_plain_create_rules(server, creator):
    tok, pol = creator
    for bad in (["admin"], ["ci-pol", "admin"], [" ROOT "], ["root"]):
        r = server.req("POST", "auth/token/create", token=tok,
                       json={"policies": bad})
        assert r.status_code == 400, (bad, r.text)
    a = create(server, token=tok, policies=[" CI-Pol "])
    assert a["policies"] == ["ci-pol", "default"]
    a = create(server, token=tok, no_default_policy=True)
    assert a["policies"] == sorted([pol, "ci-pol"])
    for body, msg in (
            ({"no_parent": True}, "root or sudo privileges required to "
                                  "create orphan token"),
            ({"period": "1h"}, "root or sudo privileges required to create "
                               "periodic token"),
            ({"id": "custom-" + uid()}, "root or sudo privileges required to "
                                        "specify token id")):
        r = server.req("POST", "auth/token/create", token=tok, json=body)
        assert r.status_code == 400 and r.json()["errors"] == [msg], r.text


def test_default_only_if_the_parent_holds_it(server, creator):
    tok, pol = creator
    child = create(server, token=tok, policies=[pol, "ci-pol"],
                   no_default_policy=True)["client_token"]
    # A parent without "default" cannot hand it out by asking for it.
    r = server.req("POST", "auth/token/create", token=child,
                   json={"policies": ["default", "ci-pol"]})
    assert r.status_code == 400, r.text
    assert r.json() == {"errors": ["child policies must be subset of parent"]}
    assert create(server, token=child)["policies"] == sorted([pol, "ci-pol"])


def test_rules_no_caller_escapes(server):
    # Vault's non-assignable policies, for root too.
    for p in ("control-group", "response-wrapping"):
        r = server.req("POST", "auth/token/create", json={"policies": [p]})
        assert r.status_code == 400
        assert r.json()["errors"] == ['cannot assign policy "%s"' % p]
    name = "sudo-" + uid()
    policy(server, name, """
path "auth/token/create*" { capabilities = ["update", "sudo"] }
path "auth/token/create/*" { capabilities = ["update", "sudo"] }
""")
    tok = create(server, policies=[name], ttl="1h")["client_token"]
    # Sudo may hand out any policy, and make orphans and periodic tokens...
    a = create(server, token=tok, policies=["anything"], period="1h",
               no_parent=True)
    assert a["policies"] == ["anything", "default"] and a["orphan"] is True
    # ...but not root, whatever the way of asking.
    r = server.req("POST", "auth/token/create", token=tok,
                   json={"policies": ["root"]})
    assert r.status_code == 400
    assert r.json()["errors"] == [
        "root tokens may not be created without parent token being root"]
    rr = role(server, "rr-" + uid(), allowed_policies="root")
    r = server.req("POST", "auth/token/create/" + rr, token=tok)
    assert r.status_code == 400 and "parent token being root" in r.text


def test_role_ignores_no_parent_and_takes_the_lesser_period(server, creator):
    tok, _ = creator
    name = role(server, "np-" + uid(), allowed_policies="app",
                token_period="1h")
    a = create(server, "auth/token/create/" + name, token=tok,
               no_parent=True)
    assert a["orphan"] is False and a["lease_duration"] == 3600
    r = server.req("POST", "auth/token/create/" + name,
                   json={"period": "30s"})
    assert r.status_code == 200, r.text
    assert r.json()["auth"]["lease_duration"] == 30
    assert any("lesser value of 30 seconds" in w
               for w in r.json()["warnings"])


def test_use_limited_parents_make_no_children(server):
    for uses in (1, 2):
        tok = create(server, policies=["root"], num_uses=uses,
                     ttl="1h")["client_token"]
        r = server.req("POST", "auth/token/create", token=tok,
                       json={"policies": ["x"]})
        assert r.status_code == 400, r.text
        assert r.json() == {"errors": [
            "restricted use token cannot generate child tokens"]}
    # A request the policy denies takes no use.
    tok = create(server, policies=["nothing"], num_uses=1,
                 ttl="1h")["client_token"]
    assert server.req("GET", "sys/mounts", token=tok).status_code == 403
    assert server.req("GET", "auth/token/lookup-self",
                      token=tok).status_code == 200
    assert server.req("GET", "auth/token/lookup-self",
                      token=tok).status_code == 403


# ----------------------------------------------------- 2a. display names --

HOSTILE = [
    'x"; alter role "userpass-x" superuser login password \'pwned\'; --z',
    "a b", "semi;colon", "quote'single", 'double"quote', "back\\slash",
    "tab\there", "new\nline", "\x01ctrl\x7f", "ünïcødé", "日本語", "😀x",
    "{{.DisplayName}}", "$(id)`id`", "%s%n%x", "-", "---", "a--", "--a",
    "x" * 10240, "mixed-OK-123",
]


def test_token_display_names_are_sanitised(server):
    for name in HOSTILE:
        a = create(server, policies=["p"], display_name=name, ttl="10m")
        d = server.req("POST", "auth/token/lookup",
                       json={"token": a["client_token"]}).json()["data"]
        assert SAFE_NAME.match(d["display_name"]), d["display_name"][:80]
        assert d["display_name"] == vault_display_name("token-", name), name
    # A NUL is refused as JSON, or cuts the name: never anything unsafe.
    r = server.req("POST", "auth/token/create",
                   json={"policies": ["p"], "ttl": "10m",
                         "display_name": "nul\u0000'; drop"})
    if r.status_code == 400:
        assert r.json() == {"errors": ["error parsing JSON"]}
    else:
        tok = r.json()["auth"]["client_token"]
        d = server.req("POST", "auth/token/lookup",
                       json={"token": tok}).json()["data"]
        assert SAFE_NAME.match(d["display_name"]), d["display_name"]


@pytest.fixture
def echo(racy):
    """An auth mount of the echo method: logs in as whatever it is sent."""
    mount = "echo-" + uid()
    assert racy.req("POST", "sys/auth/" + mount,
                    json={"type": "echoid"}).status_code == 204
    yield mount
    racy.req("DELETE", "sys/auth/" + mount)


def login(racy, mount, **identity):
    return racy.req("POST", "auth/%s/login" % mount, token=None,
                    json=identity)


def test_login_display_names_are_sanitised(racy, echo):
    for name in HOSTILE:
        r = login(racy, echo, display_name=name, policies=["p"])
        assert r.status_code == 200, r.text
        tok = r.json()["auth"]["client_token"]
        d = racy.req("GET", "auth/token/lookup-self", token=tok).json()["data"]
        assert SAFE_NAME.match(d["display_name"]), d["display_name"][:80]
        assert d["display_name"] == vault_display_name(echo + "/", name), name


def test_login_identity_rules(racy, echo):
    for pols in (["root"], [" Root "], ["dev", "ROOT"], ["a", "root\t"]):
        r = login(racy, echo, display_name="x", policies=pols)
        assert r.status_code == 400, (pols, r.text)
        assert r.json()["errors"] == ["auth methods cannot create root tokens"]
    r = login(racy, echo, display_name="x", policies=["Dev", " ops "],
              period=3600)
    assert r.status_code == 200, r.text
    a = r.json()["auth"]
    assert a["policies"] == ["default", "dev", "ops"]
    assert a["lease_duration"] == 3600
    # The name an auth method hands back is cleaned whatever the method.
    r = login(racy, echo, display_name="o'brien; drop", policies=["p"])
    tok = r.json()["auth"]["client_token"]
    d = racy.req("GET", "auth/token/lookup-self", token=tok).json()["data"]
    assert d["display_name"] == echo + "-o-brien--drop"


# -------------------------------------------------------- 6, 8. CIDRs --

@pytest.fixture
def bound_root(server):
    """A root token bound to 127.0.0.1/32, made through a role."""
    name = role(server, "bound-" + uid(), token_bound_cidrs="127.0.0.1/32")
    return create(server, "auth/token/create/" + name)["client_token"]


def test_children_inherit_bound_cidrs(server, bound_root):
    assert from_address(server, "127.0.0.2", "GET", "auth/token/lookup-self",
                        bound_root)[0] == 403
    child = create(server, token=bound_root, policies=["root"])
    tok = child["client_token"]
    d = server.req("POST", "auth/token/lookup", json={"token": tok}).json()
    assert d["data"]["bound_cidrs"] == ["127.0.0.1/32"]
    assert from_address(server, "127.0.0.1", "GET", "auth/token/lookup-self",
                        tok)[0] == 200
    status, _ = from_address(server, "127.0.0.2", "GET",
                             "auth/token/lookup-self", tok)
    assert status == 403
    # And so does the grandchild.
    grand = create(server, token=tok, ttl="10m")["client_token"]
    assert from_address(server, "127.0.0.2", "GET", "auth/token/lookup-self",
                        grand)[0] == 403
    # Vault: a role's token gets the role's bindings, not the parent's.
    free = role(server, "free-" + uid(), allowed_policies="p")
    tok = create(server, "auth/token/create/" + free,
                 token=bound_root)["client_token"]
    assert from_address(server, "127.0.0.2", "GET", "auth/token/lookup-self",
                        tok)[0] == 200


def test_token_optional_paths_check_cidrs(server, bound_root):
    for path in ("sys/internal/ui/mounts/secret",
                 "sys/internal/ui/mounts/secret/data/x",
                 "sys/internal/ui/mounts"):
        status, body = from_address(server, "127.0.0.2", "GET", path,
                                    bound_root)
        assert status == 403, (path, status, body)
        assert "secret/" not in body
        status, _ = from_address(server, "127.0.0.1", "GET", path, bound_root)
        assert status == 200, path
    # Anonymous callers still get the anonymous answer.
    assert from_address(server, "127.0.0.2", "GET", "sys/internal/ui/mounts",
                        "")[0] == 200


def test_seal_checks_cidrs():
    s = Server(["-workers=2"])
    try:
        name = role(s, "bound-" + uid(), token_bound_cidrs="127.0.0.1/32")
        tok = create(s, "auth/token/create/" + name)["client_token"]
        status, _ = from_address(s, "127.0.0.2", "PUT", "sys/seal", tok)
        assert status == 403
        assert s.req("GET", "sys/seal-status").json()["sealed"] is False
    finally:
        assert s.stop() == 0


# ---------------------------------------------------- 5. use counting --

def test_last_use_secret_is_not_returned(racy):
    mount = racy.mount("leasy")
    try:
        tok = create(racy, policies=["root"], num_uses=1,
                     ttl="1h")["client_token"]
        r = racy.req("GET", mount + "/creds", token=tok)
        assert r.status_code == 400, r.text
        assert r.json() == {"errors": [LAST_USE_SECRET]}
        assert not alive(racy, tok)
        # With a use to spare, the secret comes back.
        tok = create(racy, policies=["root"], num_uses=2,
                     ttl="1h")["client_token"]
        r = racy.req("GET", mount + "/creds", token=tok)
        assert r.status_code == 200 and r.json()["data"]["value"] == "s3cret"
    finally:
        racy.unmount(mount)


# ---------------------------------------------------------------- races --

def call(method, path, token, body=None):
    return (method, path, token, body)


def race(server, calls):
    """Sends every call on a connection of its own, all at once: each
    request is written but for its last byte, then the last bytes go out
    back to back, so the server gets them within microseconds of each
    other. Returns [(status, parsed JSON body or None)] in order."""
    host, port = server.addr.replace("http://", "").split(":")
    socks = []
    try:
        for method, path, token, body in calls:
            data = json.dumps(body).encode() if body is not None else b""
            head = ("%s /v1/%s HTTP/1.1\r\nHost: %s:%s\r\n"
                    "X-Vault-Token: %s\r\nConnection: close\r\n"
                    "Content-Length: %d\r\n\r\n"
                    % (method, path, host, port, token, len(data)))
            raw = head.encode() + data
            sock = socket.create_connection((host, int(port)), timeout=30)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(raw[:-1])
            socks.append((sock, raw[-1:]))
        for sock, last in socks:
            sock.sendall(last)
        return [read_reply(sock) for sock, _ in socks]
    finally:
        for sock, _ in socks:
            sock.close()


def read_reply(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, None


def test_race_renew_vs_revoke_accessor(racy):
    back = []
    for i in range(RENEW_TRIALS):
        a = create(racy, policies=["p"], ttl="1h", meta=BIG_META)
        tok, acc = a["client_token"], a["accessor"]
        renew = call("POST", "auth/token/renew-self", tok, {"increment": "2h"})
        revoke = call("POST", "auth/token/revoke-accessor", racy.token,
                      {"accessor": acc})
        at = i % 7  # where the revocation goes among the renewals
        replies = race(racy, [renew] * at + [revoke] + [renew] * (8 - at))
        assert replies[at][0] == 204
        if alive(racy, tok) or racy.req(
                "GET", "auth/token/lookup-self", token=tok).status_code != 403:
            back.append(acc)
    assert back == [], "%d of %d revoked tokens came back" % (
        len(back), RENEW_TRIALS)


def test_race_renew_child_vs_revoke_parent(racy):
    back = 0
    for i in range(RENEW_TRIALS):
        parent = create(racy, policies=["root"], ttl="1h")["client_token"]
        child = create(racy, token=parent, policies=["p"], ttl="1h",
                       meta=BIG_META)["client_token"]
        renew = call("POST", "auth/token/renew-self", child,
                     {"increment": "2h"})
        at = i % 7
        race(racy, [renew] * at + [call("POST", "auth/token/revoke",
                                        racy.token, {"token": parent})] +
             [renew] * (8 - at))
        back += alive(racy, child) or alive(racy, parent)
    assert back == 0, "%d of %d children outlived their parent" % (
        back, RENEW_TRIALS)


@pytest.mark.parametrize("uses", [1, 3])
def test_race_num_uses(racy, uses):
    # A write to a KV path: its existence check (a Lua call) runs between
    # the token's lookup and its use, which is where uses used to leak.
    wrong = []
    for _ in range(TRIALS // 2):
        tok = create(racy, policies=["root"], num_uses=uses,
                     ttl="1h")["client_token"]
        codes = [c for c, _ in race(racy, [call(
            "POST", "secret/data/uses-" + uid(), tok,
            {"data": {"k": "v"}})] * 16)]
        if codes.count(200) != uses or codes.count(403) != 16 - uses:
            wrong.append(codes.count(200))
        if alive(racy, tok):
            wrong.append("alive")
    assert wrong == [], "successes per trial where %d were allowed: %s" % (
        uses, wrong)


def test_race_create_child_vs_revoke_parent(racy):
    survivors = created = 0
    for _ in range(TRIALS):
        parent = create(racy, policies=["root"], ttl="1h")["client_token"]
        make = call("POST", "auth/token/create", parent,
                    {"policies": ["p"], "ttl": "1h"})
        replies = race(racy, [make] * 3 + [call(
            "POST", "auth/token/revoke", racy.token, {"token": parent})] +
                       [make] * 3)
        made = [b["auth"]["client_token"] for c, b in replies if c == 200]
        assert all(c in (200, 204, 400, 403) for c, _ in replies), replies
        survivors += sum(alive(racy, c) for c in made)
        created += len(made)
    assert created > 0  # the race was run, not refused up front
    assert survivors == 0, "%d of %d children outlived their revoked " \
        "parent" % (survivors, created)

