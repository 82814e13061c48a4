"""The parsed-token cache (token_cache.c, used by token.c's lookups),
through a real sqlite server: every write of a token entry takes effect
on the very next request, however warm the cache was.

- revoke, then use at once: refused (200 rounds; and with many threads
  reading the same token while it is revoked: nothing that starts after
  the revocation returned is served);
- num_uses = N gives exactly N successes to 16 parallel clients;
- a short TTL stops the token at expiry although it was cached; a renewal
  moves the expiry (the cached copy is dropped);
- revoke (tree) takes cached children; revoke-orphan keeps them and they
  show orphan = true at once;
- a policy edited under a cached token, a token role's token revoked;
- seal / unseal empties the cache: a token deleted behind the server's
  back works while cached, and not after the seal.
"""

import sqlite3
import subprocess
import tempfile
import threading
import time

import hvac
import pytest
import requests

from realserver import RealServer

MOUNT = "tckv"
POLICY = 'path "%s/data/*" { capabilities = ["read"] }' % MOUNT
PARENT = ('path "auth/token/create" { capabilities = ["update"] }\n'
          'path "auth/token/create-orphan" { capabilities = ["update"] }\n'
          + POLICY)


@pytest.fixture(scope="module")
def srv():
    d = tempfile.mkdtemp(prefix="coffer-tcache-")
    s = RealServer(d)
    s.start()
    keys, _ = s.init(shares=1, threshold=1)
    s.unseal(keys)
    s.keys = keys
    r = s.req("POST", "sys/mounts/" + MOUNT,
              json={"type": "kv", "options": {"version": "2"}})
    assert r.status_code in (200, 204), r.text
    for name, text in (("tc-read", POLICY), ("tc-parent", PARENT)):
        r = s.req("PUT", "sys/policies/acl/" + name, json={"policy": text})
        assert r.status_code in (200, 204), r.text
    r = s.req("POST", MOUNT + "/data/s", json={"data": {"v": "x"}})
    assert r.status_code == 200, r.text
    yield s
    s.stop()
    subprocess.run(["rm", "-rf", d])


def create(srv, token=True, path="auth/token/create", **body):
    body.setdefault("policies", ["tc-read"])
    r = srv.req("POST", path, token=token, json=body)
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


def read(srv, tok, sess=None):
    url = "%s/v1/%s/data/s" % (srv.addr, MOUNT)
    getter = sess.get if sess is not None else requests.get
    return getter(url, headers={"X-Vault-Token": tok}, timeout=30).status_code


def warm(srv, tok, n=3):
    for _ in range(n):
        assert read(srv, tok) == 200


def lookup_self(srv, tok):
    r = srv.req("GET", "auth/token/lookup-self", token=tok)
    assert r.status_code == 200, r.text
    return r.json()["data"]


# ------------------------------------------------------------ revocation --

def test_revoke_then_use_is_refused_every_time(srv, _repeat):
    sess = requests.Session()
    for i in range(200):
        tok = create(srv)
        assert read(srv, tok, sess) == 200
        assert read(srv, tok, sess) == 200  # a hit now
        how = i % 3
        if how == 0:
            r = srv.req("POST", "auth/token/revoke", json={"token": tok})
        elif how == 1:
            r = srv.req("POST", "auth/token/revoke-self", token=tok)
        else:
            acc = lookup_self(srv, tok)["accessor"]
            r = srv.req("POST", "auth/token/revoke-accessor",
                        json={"accessor": acc})
        assert r.status_code == 204, r.text
        assert read(srv, tok, sess) == 403, "round %d (%d)" % (i, how)
        assert srv.req("GET", "auth/token/lookup-self",
                       token=tok).status_code == 403


def test_revoke_while_many_threads_read(srv, _repeat):
    """Readers hammer one cached token; the revocation returns at t; no
    request that began after t may succeed."""
    for _round in range(4):
        tok = create(srv)
        warm(srv, tok)
        done_at = [None]
        bad, errors = [], []
        stop = threading.Event()

        def reader():
            sess = requests.Session()
            try:
                while not stop.is_set():
                    began = time.monotonic()
                    code = read(srv, tok, sess)
                    if code == 200 and done_at[0] is not None and \
                            began > done_at[0]:
                        bad.append(began - done_at[0])
                    if code not in (200, 403):
                        errors.append(code)
                    if code == 403:
                        return
            except Exception as e:  # noqa: BLE001 - reported
                errors.append(repr(e))

        ts = [threading.Thread(target=reader) for _ in range(8)]
        for t in ts:
            t.start()
        time.sleep(0.3)
        r = srv.req("POST", "auth/token/revoke", json={"token": tok})
        done_at[0] = time.monotonic()
        assert r.status_code == 204, r.text
        time.sleep(0.3)
        stop.set()
        for t in ts:
            t.join()
        assert not errors, errors
        assert not bad, "served after revocation: %r" % bad[:5]
        assert read(srv, tok) == 403


# ------------------------------------------------------------- use counts --

@pytest.mark.parametrize("uses", [1, 3, 7])
def test_num_uses_exact_under_16_clients(srv, uses, _repeat):
    tok = create(srv, num_uses=uses)
    barrier = threading.Barrier(16)
    codes, lock = [], threading.Lock()

    def client():
        barrier.wait()
        for _ in range(2):
            c = read(srv, tok)
            with lock:
                codes.append(c)

    ts = [threading.Thread(target=client) for _ in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert codes.count(200) == uses, codes
    assert codes.count(403) == 32 - uses, codes
    assert read(srv, tok) == 403


# ------------------------------------------------------- expiry, renewal --

def test_short_ttl_stops_at_expiry_though_cached(srv, _repeat):
    # Expiry counts whole seconds: a "3s" token lives at least 2 s.
    tok = create(srv, ttl="3s")
    start = time.monotonic()
    while time.monotonic() - start < 0.8:
        assert read(srv, tok) == 200
    time.sleep(3.3 - (time.monotonic() - start))
    assert read(srv, tok) == 403
    assert srv.req("GET", "auth/token/lookup-self",
                   token=tok).status_code == 403


def test_renewal_is_seen_at_once(srv, _repeat):
    tok = create(srv, ttl="2s", explicit_max_ttl="1h")
    warm(srv, tok)
    before = lookup_self(srv, tok)
    assert 0 < before["ttl"] <= 2
    r = srv.req("POST", "auth/token/renew-self", token=tok,
                json={"increment": "60s"})
    assert r.status_code == 200, r.text
    after = lookup_self(srv, tok)
    assert after["ttl"] > 50, after
    assert after["expire_time"] != before["expire_time"]
    time.sleep(2.5)  # past the first expiry: the renewed one holds
    assert read(srv, tok) == 200


# -------------------------------------------------------------- the tree --

def test_revoke_tree_takes_cached_children(srv, _repeat):
    parent = create(srv, policies=["tc-parent"])
    child = create(srv, token=parent, policies=["tc-parent"])
    grandchild = create(srv, token=child, policies=["tc-parent"])
    other = create(srv, token=parent, policies=["tc-parent"])
    for t in (parent, child, grandchild, other):
        warm(srv, t)
    r = srv.req("POST", "auth/token/revoke", json={"token": child})
    assert r.status_code == 204, r.text
    assert read(srv, child) == 403
    assert read(srv, grandchild) == 403
    assert read(srv, parent) == 200 and read(srv, other) == 200
    r = srv.req("POST", "auth/token/revoke", json={"token": parent})
    assert r.status_code == 204, r.text
    assert read(srv, parent) == 403
    assert read(srv, other) == 403


def test_revoke_orphan_updates_cached_children(srv, _repeat):
    parent = create(srv, policies=["tc-parent"])
    kids = [create(srv, token=parent, policies=["tc-parent"])
            for _ in range(3)]
    for t in [parent] + kids:
        warm(srv, t)
        lookup_self(srv, t)
    assert lookup_self(srv, kids[0])["orphan"] is False
    r = srv.req("POST", "auth/token/revoke-orphan", json={"token": parent})
    assert r.status_code == 204, r.text
    assert read(srv, parent) == 403
    for k in kids:
        assert read(srv, k) == 200
        assert lookup_self(srv, k)["orphan"] is True
    # and the orphans no longer go with a revocation of the old parent's
    # (now missing) tree: revoking one leaves the others
    r = srv.req("POST", "auth/token/revoke", json={"token": kids[0]})
    assert r.status_code == 204
    assert read(srv, kids[0]) == 403
    assert read(srv, kids[1]) == 200


# ---------------------------------------------------- policies and roles --

def test_policy_edit_under_a_cached_token(srv, _repeat):
    name = "tc-edit-%d" % _repeat
    r = srv.req("PUT", "sys/policies/acl/" + name, json={"policy": POLICY})
    assert r.status_code in (200, 204)
    tok = create(srv, policies=[name])
    warm(srv, tok)
    r = srv.req("PUT", "sys/policies/acl/" + name, json={
        "policy": 'path "%s/data/other" { capabilities = ["read"] }' % MOUNT})
    assert r.status_code in (200, 204)
    assert read(srv, tok) == 403
    r = srv.req("PUT", "sys/policies/acl/" + name, json={"policy": POLICY})
    assert read(srv, tok) == 200


def test_role_token_through_hvac(srv, _repeat):
    role = "tc-role-%d" % _repeat
    c = hvac.Client(url=srv.addr, token=srv.token)
    r = srv.req("POST", "auth/token/roles/" + role,
                json={"allowed_policies": ["tc-read"], "orphan": True})
    assert r.status_code in (200, 204), r.text
    tok = c.auth.token.create(role_name=role, policies=["tc-read"],
                              ttl="1h")["auth"]["client_token"]
    user = hvac.Client(url=srv.addr, token=tok)
    for _ in range(3):
        assert user.secrets.kv.v2.read_secret_version(
            path="s", mount_point=MOUNT)["data"]["data"] == {"v": "x"}
    assert user.auth.token.lookup_self()["data"]["role"] == role
    c.auth.token.revoke(tok)
    with pytest.raises(hvac.exceptions.Forbidden):
        user.secrets.kv.v2.read_secret_version(path="s", mount_point=MOUNT)


# ------------------------------------------------------------------ seal --

def test_seal_empties_the_cache(srv, _repeat):
    tok = create(srv)
    warm(srv, tok)
    hmac = None
    con = sqlite3.connect(srv.db_path, timeout=30)
    try:
        before = {k for (k,) in con.execute(
            "SELECT key FROM coffer_kv WHERE key LIKE '%token/id/%'")}
    finally:
        con.close()
    # the newest token's entry: create one more and diff
    tok2 = create(srv)
    warm(srv, tok2)
    con = sqlite3.connect(srv.db_path, timeout=30)
    try:
        after = {k for (k,) in con.execute(
            "SELECT key FROM coffer_kv WHERE key LIKE '%token/id/%'")}
        made = after - before
        assert len(made) == 1, made
        hmac = made.pop()
        # behind the server's back: the cache still has it
        con.execute("DELETE FROM coffer_kv WHERE key = ?", (hmac,))
        con.commit()
    finally:
        con.close()
    assert read(srv, tok2) == 200  # served from the caches
    r = srv.req("PUT", "sys/seal")
    assert r.status_code == 204, r.text
    assert read(srv, tok) == 503
    srv.unseal(srv.keys)
    assert read(srv, tok2) == 403  # nothing survived the seal
    assert read(srv, tok) == 200  # and the store is intact


# -------------------------------------------------------- disable_cache --

def test_disable_cache_turns_the_token_cache_off(_repeat):
    """disable_cache says something else may write the storage: a token
    entry deleted behind the server's back is refused at once."""
    d = tempfile.mkdtemp(prefix="coffer-tcache-off-")
    s = RealServer(d, extra_config="disable_cache = true\n")
    try:
        s.start()
        keys, _ = s.init(shares=1, threshold=1)
        s.unseal(keys)
        r = s.req("POST", "sys/mounts/" + MOUNT,
                  json={"type": "kv", "options": {"version": "2"}})
        assert r.status_code in (200, 204), r.text
        r = s.req("PUT", "sys/policies/acl/tc-read", json={"policy": POLICY})
        assert r.status_code in (200, 204), r.text
        r = s.req("POST", MOUNT + "/data/s", json={"data": {"v": "x"}})
        assert r.status_code == 200, r.text
        con = sqlite3.connect(s.db_path, timeout=30)
        try:
            before = {k for (k,) in con.execute(
                "SELECT key FROM coffer_kv WHERE key LIKE '%token/id/%'")}
            tok = create(s)
            warm(s, tok)
            made = {k for (k,) in con.execute(
                "SELECT key FROM coffer_kv WHERE key LIKE '%token/id/%'")}
            made -= before
            assert len(made) == 1, made
            con.execute("DELETE FROM coffer_kv WHERE key = ?", (made.pop(),))
            con.commit()
        finally:
            con.close()
        assert read(s, tok) == 403
    finally:
        s.stop()
        subprocess.run(["rm", "-rf", d])
