"""Security regressions in auth methods and ACLs (issue 8, items 2a, 4, 7,
11 and 13): hostile login names, LIST past a deny, AppRole secret IDs
that widen their role, credentials in storage keys (and the migration of
entries written before the salt), and the login rate limit under
concurrency.
"""

import concurrent.futures
import fcntl
import hashlib
import http.client
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import uuid

import pytest

import realserver
from conftest import Server
from helpers import multierror
from realserver import RealServer

# The last commit before AppRole ids were stored under salted keys: the
# upgrade test runs its binary on the old layout.
PRE_SALT_COMMIT = "aaf3e05"
HOSTILE_NAMES = [
    'x"; alter role "userpass-x" superuser login password \'pwned\'; --z',
    "a b", "-lead", "trail-", "dot.", ".dot", "a'b", 'a"b', "a;b",
    "caf\u00e9", "a$b", "a(b)", "a%b", "a+b", "x" * 3 + "!",
]
VALID_NAMES = ["a", "_", "z9", "svc_1", "web-app.prod", "Mixed-Case"]
UNSUPPORTED = multierror("unsupported path")


@pytest.fixture(scope="module")
def server():
    """Own server: many deliberate login failures, generous limit."""
    s = Server(["-dev-login-burst=50000", "-dev-login-rate=1000"])
    yield s
    assert s.stop() == 0


def enable(server, type_):
    path = "%s-%s" % (type_, uuid.uuid4().hex[:8])
    r = server.req("POST", "sys/auth/" + path, json={"type": type_})
    assert r.status_code == 204, r.text
    return path


def q(name):
    from urllib.parse import quote
    return quote(name, safe="")


# ------------------------------------------------- 2a: login names ----

def test_userpass_hostile_names_never_created_nor_logged_in(server):
    up = enable(server, "userpass")
    for name in HOSTILE_NAMES:
        r = server.req("POST", "auth/%s/users/%s" % (up, q(name)),
                       json={"password": "pw", "token_policies": "default"})
        assert r.status_code == 404, (name, r.status_code, r.text)
        assert r.json()["errors"] == [UNSUPPORTED], name
        for sub in ("password", "policies"):
            r = server.req("POST", "auth/%s/users/%s/%s" % (up, q(name), sub),
                           json={"password": "pw", "token_policies": "x"})
            assert r.status_code == 404, (name, sub, r.text)
        r = server.req("POST", "auth/%s/login/%s" % (up, q(name)), token=None,
                       json={"password": "pw"})
        assert r.status_code == 404, (name, r.status_code, r.text)
        assert "auth" not in r.json() or r.json()["auth"] is None
    r = server.req("LIST", "auth/%s/users" % up)
    assert r.status_code == 404, r.text  # nothing was stored


def test_userpass_valid_names_still_work(server):
    up = enable(server, "userpass")
    for name in VALID_NAMES:
        r = server.req("POST", "auth/%s/users/%s" % (up, name),
                       json={"password": "pw"})
        assert r.status_code == 204, (name, r.text)
        r = server.req("POST", "auth/%s/login/%s" % (up, name), token=None,
                       json={"password": "pw"})
        assert r.status_code == 200, (name, r.text)
        auth = r.json()["auth"]
        assert auth["metadata"] == {"username": name.lower()}
    keys = server.req("LIST", "auth/%s/users" % up).json()["data"]["keys"]
    assert sorted(keys) == sorted(n.lower() for n in VALID_NAMES)


def test_approle_hostile_role_names(server):
    ar = enable(server, "approle")
    for name in HOSTILE_NAMES:
        r = server.req("POST", "auth/%s/role/%s" % (ar, q(name)),
                       json={"token_policies": "default"})
        assert r.status_code == 404, (name, r.status_code, r.text)
        r = server.req("POST", "auth/%s/role/%s/secret-id" % (ar, q(name)))
        assert r.status_code == 404, (name, r.text)
    assert server.req("LIST", "auth/%s/role" % ar).status_code == 404


# --------------------------------------- 4: LIST and a deny below it ----

def test_list_with_trailing_slash_honours_deny(server):
    kv = server.mount("kv", options={"version": "2"})
    for p in ("private/a", "private/sub/b", "public/c"):
        r = server.req("POST", "%s/data/%s" % (kv, p), json={"data": {"v": 1}})
        assert r.status_code == 200, r.text
    pol = "sec-list-" + uuid.uuid4().hex[:6]
    text = ('path "%s/metadata/*" { capabilities = ["list"] }\n'
            'path "%s/metadata/private/*" { capabilities = ["deny"] }\n'
            % (kv, kv))
    assert server.req("PUT", "sys/policies/acl/" + pol,
                      json={"policy": text}).status_code == 204
    tok = server.req("POST", "auth/token/create",
                     json={"policies": [pol]}).json()["auth"]["client_token"]

    for path in ("private/", "private/sub/"):
        r = server.req("LIST", "%s/metadata/%s" % (kv, path), token=tok)
        assert r.status_code == 403, (path, r.status_code, r.text)
        r = server.req("GET", "%s/metadata/%s?list=true" % (kv, path),
                       token=tok)
        assert r.status_code == 403, (path, r.text)
        r = server.req("POST", "sys/capabilities-self", token=tok,
                       json={"paths": ["%s/metadata/%s" % (kv, path)]})
        assert r.status_code == 200, r.text
        assert r.json()["capabilities"] == ["deny"], (path, r.json())
    r = server.req("LIST", "%s/metadata/" % kv, token=tok)
    assert r.status_code == 200 and "private/" in r.json()["data"]["keys"]
    r = server.req("LIST", "%s/metadata/public/" % kv, token=tok)
    assert r.status_code == 200 and r.json()["data"]["keys"] == ["c"]
    server.unmount(kv)


# ----------------------------------- 7: secret IDs within their role ----

def limited_role(server, ar, name, **extra):
    body = {"secret_id_num_uses": 1, "secret_id_ttl": "60s",
            "token_bound_cidrs": ["127.0.0.1/32"], "token_policies": "default"}
    body.update(extra)
    r = server.req("POST", "auth/%s/role/%s" % (ar, name), json=body)
    assert r.status_code == 204, r.text
    return server.req("GET", "auth/%s/role/%s/role-id" % (ar, name)
                      ).json()["data"]["role_id"]


@pytest.mark.parametrize("endpoint", ["secret-id", "custom-secret-id"])
def test_secret_id_cannot_widen_role(server, endpoint):
    ar = enable(server, "approle")
    limited_role(server, ar, "admin-role")
    rid = limited_role(server, ar, "low")

    def create(**body):
        if endpoint == "custom-secret-id":
            body["secret_id"] = "custom-" + uuid.uuid4().hex
        return server.req("POST", "auth/%s/role/low/%s" % (ar, endpoint),
                          json=body)

    uses = "num_uses cannot be higher than the role's secret_id_num_uses"
    ttl = "ttl cannot be longer than the role's secret_id_ttl"
    for body, msg in [({"num_uses": 0}, uses), ({"num_uses": 5}, uses),
                      ({"ttl": 0}, ttl), ({"ttl": "2m"}, ttl),
                      ({"num_uses": -1}, "num_uses cannot be negative")]:
        r = create(**body)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert r.json()["errors"] == [msg], body
    r = create(token_bound_cidrs=["0.0.0.0/0"])
    assert r.status_code == 500, r.text
    assert r.json()["errors"] == [multierror(
        'failed to verify subset relationship between CIDR blocks on the '
        'role ["127.0.0.1/32"] and CIDR blocks on the secret ID '
        '["0.0.0.0/0"]: %!w(<nil>)')]
    r = create(token_bound_cidrs=["not-a-cidr"])
    assert r.status_code == 500
    assert r.json()["errors"] == [multierror(
        "failed to validate token CIDR blocks: invalid CIDR address: "
        "not-a-cidr")]
    # The exact request, all at once.
    r = create(num_uses=0, ttl=0, token_bound_cidrs=["0.0.0.0/0"],
               metadata=json.dumps({"role_name": "admin-role"}))
    assert r.status_code in (400, 500), r.text

    # Within the role's limits: accepted; role_name is the server's.
    r = create(num_uses=1, ttl="30s", token_bound_cidrs=["127.0.0.1/32"],
               metadata=json.dumps({"role_name": "admin-role", "team": "t"}))
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["secret_id_num_uses"] == 1 and d["secret_id_ttl"] == 30
    look = server.req("POST", "auth/%s/role/low/secret-id/lookup" % ar,
                      json={"secret_id": d["secret_id"]}).json()["data"]
    assert look["metadata"]["role_name"] == "low"
    r = server.req("POST", "auth/%s/login" % ar, token=None,
                   json={"role_id": rid, "secret_id": d["secret_id"]})
    assert r.status_code == 200, r.text
    assert r.json()["auth"]["metadata"] == {"role_name": "low", "team": "t"}
    r = server.req("POST", "auth/%s/login" % ar, token=None,
                   json={"role_id": rid, "secret_id": d["secret_id"]})
    assert r.status_code == 400  # its one use is spent

    # Defaults come from the role.
    r = create()
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["secret_id_num_uses"] == 1 and d["secret_id_ttl"] == 60


def test_secret_id_cidr_list_inside_role(server):
    ar = enable(server, "approle")
    r = server.req("POST", "auth/%s/role/c" % ar,
                   json={"secret_id_bound_cidrs": ["10.0.0.0/8"]})
    assert r.status_code == 204, r.text
    for ok in (["10.1.0.0/16"], ["10.0.0.0/8"], ["10.2.3.4/32"]):
        r = server.req("POST", "auth/%s/role/c/secret-id" % ar,
                       json={"cidr_list": ok})
        assert r.status_code == 200, (ok, r.text)
    for bad in (["0.0.0.0/0"], ["10.0.0.0/7"], ["11.0.0.0/16"],
                ["10.0.0.0/16", "192.168.0.0/24"], ["::/0"]):
        r = server.req("POST", "auth/%s/role/c/secret-id" % ar,
                       json={"cidr_list": bad})
        assert r.status_code == 500, (bad, r.text)
        assert "failed to verify subset relationship" in r.json()["errors"][0]


def test_secret_id_needs_bind_secret_id(server):
    ar = enable(server, "approle")
    r = server.req("POST", "auth/%s/role/nb" % ar,
                   json={"bind_secret_id": False,
                         "secret_id_bound_cidrs": ["127.0.0.1/32"]})
    assert r.status_code == 204, r.text
    r = server.req("POST", "auth/%s/role/nb/secret-id" % ar)
    assert r.status_code == 400
    assert r.json()["errors"] == ["bind_secret_id is not set on the role"]


# ------------------------------------ 13: rate limit under concurrency ----

_source = itertools.count(2)


def bad_login(port, up, src):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60,
                                   source_address=(src, 0))
    try:
        c.request("POST", "/v1/auth/%s/login/alice" % up,
                  body=json.dumps({"password": "wrong"}),
                  headers={"Content-Type": "application/json"})
        return c.getresponse().status
    finally:
        c.close()


@pytest.fixture(scope="module")
def limited():
    s = Server(["-dev-login-burst=10", "-dev-login-rate=0.001"])
    up = enable(s, "userpass")
    assert s.req("POST", "auth/%s/users/alice" % up,
                 json={"password": "right"}).status_code == 204
    yield s, up
    assert s.stop() == 0


def test_parallel_bad_logins_never_exceed_burst(limited):
    s, up = limited
    for _ in range(3):
        src = "127.0.0.%d" % next(_source)  # a fresh bucket each round
        with concurrent.futures.ThreadPoolExecutor(64) as pool:
            codes = list(pool.map(lambda _: bad_login(s.port, up, src),
                                  range(64)))
        passed = [c for c in codes if c != 429]
        assert len(passed) == 10, sorted(codes)
        assert set(passed) == {400}
        # The bucket is empty now: even the right password waits.
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60,
                                       source_address=(src, 0))
        c.request("POST", "/v1/auth/%s/login/alice" % up,
                  body=json.dumps({"password": "right"}))
        assert c.getresponse().status == 429
        c.close()


def test_successful_logins_do_not_drain_the_bucket(limited):
    s, up = limited
    src = "127.0.0.%d" % next(_source)
    for _ in range(25):  # more than the burst
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60,
                                       source_address=(src, 0))
        c.request("POST", "/v1/auth/%s/login/alice" % up,
                  body=json.dumps({"password": "right"}))
        assert c.getresponse().status == 200
        c.close()


# ------------------------------- 11: salted keys, and the old layout ----

def sqlite_keys(srv):
    with sqlite3.connect(srv.db_path) as db:
        return [k for (k,) in db.execute("SELECT key FROM coffer_kv")]


def approle_entries(srv, ar, role, custom):
    """A role with a custom role ID and three secret IDs."""
    assert srv.req("POST", "sys/auth/" + ar,
                   json={"type": "approle"}).status_code == 204
    r = srv.req("POST", "auth/%s/role/%s" % (ar, role),
                json={"role_id": custom, "token_policies": "default"})
    assert r.status_code == 204, r.text
    out = {}
    r = srv.req("POST", "auth/%s/role/%s/custom-secret-id" % (ar, role),
                json={"secret_id": "weak", "num_uses": 3})
    assert r.status_code == 200, r.text
    out["weak"] = r.json()["data"]
    r = srv.req("POST", "auth/%s/role/%s/secret-id" % (ar, role),
                json={"metadata": json.dumps({"team": "blue"})})
    assert r.status_code == 200, r.text
    out["gen"] = r.json()["data"]
    r = srv.req("POST", "auth/%s/role/%s/secret-id" % (ar, role))
    out["doomed"] = r.json()["data"]
    return out


def assert_no_credential_keys(srv, custom_role_id, secrets):
    keys = sqlite_keys(srv)
    assert keys, "no storage keys at all?"
    for k in keys:
        assert custom_role_id not in k, k
        for s in secrets:
            assert s not in k, k
            assert hashlib.sha256(s.encode()).hexdigest() not in k, k


def login(srv, ar, rid, sid):
    return srv.req("POST", "auth/%s/login" % ar, token=False,
                   json={"role_id": rid, "secret_id": sid})


def test_storage_keys_hold_no_credentials(tmp_path):
    srv = RealServer(str(tmp_path), storage="sqlite")
    srv.start()
    try:
        keys, _ = srv.init(shares=1, threshold=1)
        srv.unseal(keys)
        ids = approle_entries(srv, "ar", "r", "role-id-in-clear")
        assert login(srv, "ar", "role-id-in-clear", "weak").status_code == 200
        assert_no_credential_keys(
            srv, "role-id-in-clear",
            ["weak"] + [v["secret_id"] for v in ids.values()])
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def pre_salt_bin():
    """The pre-salt binary: $COFFER_BASE_BIN, or built once from the
    repository's history into build/pre-salt (a file lock keeps two test
    processes from building it at once). Skipped where the checkout has
    no history to build it from."""
    given = os.environ.get("COFFER_BASE_BIN")
    if given:
        return given
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    dest = os.path.join(root, "build", "pre-salt")
    binary = os.path.join(dest, "build", "coffer")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.access(binary, os.X_OK):
            return binary
        have = subprocess.run(["git", "-C", root, "cat-file", "-e",
                               PRE_SALT_COMMIT + "^{commit}"],
                              capture_output=True)
        if have.returncode != 0:
            pytest.skip("no git history holding %s to build the pre-salt "
                        "binary from; set COFFER_BASE_BIN" % PRE_SALT_COMMIT)
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)
        archive = subprocess.run(["git", "-C", root, "archive",
                                  PRE_SALT_COMMIT], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
        subprocess.run(["make", "-C", dest, "-j2", "build/coffer"],
                       capture_output=True, check=True)
    return binary


def test_old_layout_entries_survive_the_upgrade(tmp_path, monkeypatch,
                                                pre_salt_bin):
    """Entries written by the original binary (unsalted keys) keep working
    after an upgrade, and their old keys are gone afterwards."""
    srv = RealServer(str(tmp_path), storage="sqlite")
    with monkeypatch.context() as m:
        m.setattr(realserver, "coffer_bin", lambda: pre_salt_bin)
        srv.start()
        keys, _ = srv.init(shares=1, threshold=1)
        srv.unseal(keys)
        ids = approle_entries(srv, "ar", "r", "role-id-in-clear")
        ids2 = approle_entries(srv, "ar2", "other", "second-role-id")
        # one use of "weak" spent under the old binary
        assert login(srv, "ar", "role-id-in-clear", "weak").status_code == 200
        srv.stop()

    srv.start()  # this build
    try:
        srv.unseal(keys)
        # lookups by accessor and the accessor list work on migrated data
        acc = ids["doomed"]["secret_id_accessor"]
        r = srv.req("LIST", "auth/ar/role/r/secret-id")
        assert r.status_code == 200, r.text
        assert sorted(r.json()["data"]["keys"]) == sorted(
            v["secret_id_accessor"] for v in ids.values())
        r = srv.req("POST", "auth/ar/role/r/secret-id-accessor/lookup",
                    json={"secret_id_accessor": acc})
        assert r.status_code == 200, r.text
        r = srv.req("POST", "auth/ar/role/r/secret-id-accessor/destroy",
                    json={"secret_id_accessor": acc})
        assert r.status_code == 204, r.text
        assert login(srv, "ar", "role-id-in-clear",
                     ids["doomed"]["secret_id"]).status_code == 400
        # uses carry on where the old binary left them: 3 - 1 = 2 left
        r = srv.req("POST", "auth/ar/role/r/secret-id/lookup",
                    json={"secret_id": "weak"})
        assert r.json()["data"]["secret_id_num_uses"] == 2
        assert login(srv, "ar", "role-id-in-clear", "weak").status_code == 200
        r = login(srv, "ar", "role-id-in-clear", ids["gen"]["secret_id"])
        assert r.status_code == 200, r.text
        assert r.json()["auth"]["metadata"] == {"role_name": "r",
                                                "team": "blue"}
        for k in ("weak", "gen"):
            r = login(srv, "ar2", "second-role-id", ids2[k]["secret_id"])
            assert r.status_code == 200, (k, r.text)
        assert login(srv, "ar", "role-id-in-clear", "weak").status_code == 200
        assert login(srv, "ar", "role-id-in-clear", "weak").status_code == 400
        # changing the role ID retires the old one
        r = srv.req("POST", "auth/ar/role/r/role-id",
                    json={"role_id": "new-role-id"})
        assert r.status_code == 204, r.text
        assert login(srv, "ar", "role-id-in-clear",
                     ids["gen"]["secret_id"]).status_code == 400
        assert_no_credential_keys(
            srv, "role-id-in-clear",
            ["weak"] + [v["secret_id"] for v in
                        list(ids.values()) + list(ids2.values())])
        assert_no_credential_keys(srv, "second-role-id", [])
        srv.stop()
        srv.start()  # and once more: nothing is migrated twice
        srv.unseal(keys)
        r = login(srv, "ar2", "second-role-id", ids2["doomed"]["secret_id"])
        assert r.status_code == 200, r.text
    finally:
        srv.stop()


# --------------------------------------------------------- races ----

def test_parallel_logins_spend_each_use_once(server):
    ar = enable(server, "approle")
    r = server.req("POST", "auth/%s/role/race" % ar,
                   json={"secret_id_num_uses": 3})
    assert r.status_code == 204
    rid = server.req("GET", "auth/%s/role/race/role-id" % ar
                     ).json()["data"]["role_id"]
    for _ in range(3):
        sid = server.req("POST", "auth/%s/role/race/secret-id" % ar
                         ).json()["data"]["secret_id"]
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(
                lambda _: server.req("POST", "auth/%s/login" % ar, token=None,
                                     json={"role_id": rid,
                                           "secret_id": sid}).status_code,
                range(12)))
        assert codes.count(200) == 3, codes


def test_parallel_first_use_makes_one_salt(server):
    """Requests racing on a fresh mount must agree on its salt."""
    ar = enable(server, "approle")

    def make(i):
        r = server.req("POST", "auth/%s/role/r%d" % (ar, i),
                       json={"role_id": "rid-%d" % i})
        assert r.status_code == 204, r.text
        return server.req("POST", "auth/%s/role/r%d/secret-id" % (ar, i)
                          ).json()["data"]["secret_id"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        sids = list(pool.map(make, range(16)))
    for i, sid in enumerate(sids):
        r = server.req("POST", "auth/%s/login" % ar, token=None,
                       json={"role_id": "rid-%d" % i, "secret_id": sid})
        assert r.status_code == 200, (i, r.text)
