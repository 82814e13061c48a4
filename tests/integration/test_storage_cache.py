"""The read cache of decrypted values in front of storage (storage_cache.c),
through a real sqlite server (barrier on): no stale read under parallel
writes, token revocation and use counts take effect on the very next
request, sealing wipes the cache, and disable_cache turns it off.

The cache assumes it is the only writer of its storage. The tests use
that to see it: a row deleted in the sqlite file behind the server's back
is still served from the cache while it is on, and not once it is off or
after a seal (which wipes it).
"""

import os
import sqlite3
import subprocess
import tempfile
import threading

import pytest
import requests

from realserver import RealServer

MOUNT = "cachekv"


def run_threads(n, fn, errors):
    """Runs fn(i) in n threads; an exception in one is an error too."""
    def guarded(i):
        try:
            fn(i)
        except Exception as e:  # noqa: BLE001 - reported, not swallowed
            errors.append("thread %d: %r" % (i, e))

    ts = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
POLICY = 'path "%s/data/*" { capabilities = ["read"] }' % MOUNT


def _start(extra_config=""):
    d = tempfile.mkdtemp(prefix="coffer-cache-")
    srv = RealServer(d, extra_config=extra_config)
    srv.start()
    keys, _ = srv.init(shares=1, threshold=1)
    srv.unseal(keys)
    srv.keys = keys
    r = srv.req("POST", "sys/mounts/" + MOUNT,
                json={"type": "kv", "options": {"version": "2"}})
    assert r.status_code in (200, 204), r.text
    r = srv.req("PUT", "sys/policies/acl/cache-read", json={"policy": POLICY})
    assert r.status_code in (200, 204), r.text
    r = srv.req("PUT", "sys/policies/acl/cache-parent", json={
        "policy": 'path "auth/token/create" { capabilities = ["update"] }'})
    assert r.status_code in (200, 204), r.text
    return srv, d


def _stop(srv, d):
    srv.stop()
    subprocess.run(["rm", "-rf", d])


@pytest.fixture(scope="module")
def srv():
    s, d = _start()
    yield s
    _stop(s, d)


@pytest.fixture(scope="module")
def nocache():
    s, d = _start("disable_cache = true\ncache_size = 0\n")
    yield s
    _stop(s, d)


def db_keys(srv):
    con = sqlite3.connect(srv.db_path, timeout=30)
    try:
        return {r[0] for r in con.execute("SELECT key FROM coffer_kv")}
    finally:
        con.close()


def db_delete(srv, keys):
    con = sqlite3.connect(srv.db_path, timeout=30)
    try:
        con.executemany("DELETE FROM coffer_kv WHERE key = ?",
                        [(k,) for k in keys])
        con.commit()
    finally:
        con.close()


def write(srv, name, value):
    r = srv.req("POST", "%s/data/%s" % (MOUNT, name),
                json={"data": {"v": value}})
    assert r.status_code == 200, r.text


def read(srv, name, token=True):
    return srv.req("GET", "%s/data/%s" % (MOUNT, name), token=token)


def write_behind_back(srv, name, value):
    """Writes name and returns the storage keys that write created."""
    before = db_keys(srv)
    write(srv, name, value)
    made = {k for k in db_keys(srv) - before if k.startswith("logical/")}
    assert made, "the write created no logical key"
    return made


# ------------------------------------------------------- parallel writes --

THREADS = 6
ROUNDS = 60
KEYS = 3


def test_parallel_writes_never_read_stale(srv, _repeat):
    """Threads put, delete and read few shared secrets. Values are
    "<thread>:<seq>"; a thread must never read back one of its own values
    older than its last acknowledged write (put or delete) of that key."""
    stale, errors = [], []

    def worker(tid):
        sess = requests.Session()
        sess.headers["X-Vault-Token"] = srv.token
        last = [0] * KEYS
        seq = 0
        base = "%s/v1/%s" % (srv.addr, MOUNT)
        for i in range(ROUNDS):
            k = (tid + i * 7) % KEYS
            name = "race-%d-%d" % (_repeat, k)
            op = (tid * 31 + i * 17) % 5
            seq += 1
            if op <= 1:
                r = sess.post("%s/data/%s" % (base, name),
                              json={"data": {"v": "%d:%d" % (tid, seq)}})
                if r.status_code == 200:
                    last[k] = seq
                else:
                    errors.append(("put", r.status_code, r.text))
            elif op == 2:
                r = sess.delete("%s/metadata/%s" % (base, name))
                if r.status_code == 204:
                    last[k] = seq
                else:
                    errors.append(("delete", r.status_code, r.text))
            r = sess.get("%s/data/%s" % (base, name))
            if r.status_code == 200:
                who, s = r.json()["data"]["data"]["v"].split(":")
                if int(who) == tid and int(s) < last[k]:
                    stale.append((name, tid, s, last[k]))
            elif r.status_code != 404:
                errors.append(("get", r.status_code, r.text))

    run_threads(THREADS, worker, errors)
    assert errors == []
    assert stale == []


def test_overwrite_is_read_back_at_once(srv, _repeat):
    for i in range(30):
        write(srv, "ow-%d" % _repeat, "v%d" % i)
        r = read(srv, "ow-%d" % _repeat)
        assert r.status_code == 200
        assert r.json()["data"]["data"]["v"] == "v%d" % i
    r = srv.req("DELETE", "%s/metadata/ow-%d" % (MOUNT, _repeat))
    assert r.status_code == 204
    assert read(srv, "ow-%d" % _repeat).status_code == 404


# ---------------------------------------------------------------- tokens --

def new_token(srv, **kw):
    body = {"policies": ["cache-read"], "no_default_policy": True}
    body.update(kw)
    r = srv.req("POST", "auth/token/create", json=body)
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


def test_revoked_token_refused_on_next_request(srv, _repeat):
    write(srv, "tok", "x")
    errors = []

    def worker(_):
        for _ in range(8):
            tok = new_token(srv)
            for _ in range(3):  # cached by now
                if read(srv, "tok", token=tok).status_code != 200:
                    errors.append("token not usable before revocation")
            r = srv.req("POST", "auth/token/revoke", json={"token": tok})
            if r.status_code != 204:
                errors.append("revoke: %d %s" % (r.status_code, r.text))
            r = read(srv, "tok", token=tok)
            if r.status_code != 403:
                errors.append("revoked token answered %d" % r.status_code)

    run_threads(4, worker, errors)
    assert errors == []


def test_parent_revocation_and_use_counts(srv, _repeat):
    write(srv, "tok", "x")
    parent = new_token(srv, policies=["cache-read", "cache-parent"])
    r = srv.req("POST", "auth/token/create", token=parent,
                json={"policies": ["cache-read"]})
    assert r.status_code == 200, r.text
    child = r.json()["auth"]["client_token"]
    assert read(srv, "tok", token=child).status_code == 200
    assert read(srv, "tok", token=child).status_code == 200
    r = srv.req("POST", "auth/token/revoke", json={"token": parent})
    assert r.status_code == 204
    assert read(srv, "tok", token=parent).status_code == 403
    assert read(srv, "tok", token=child).status_code == 403

    limited = new_token(srv, num_uses=3)
    assert [read(srv, "tok", token=limited).status_code
            for _ in range(4)] == [200, 200, 200, 403]


# --------------------------------------------------- the cache, observed --

def test_hits_come_from_the_cache(srv, _repeat):
    """Rows deleted behind the server's back: the cache still answers."""
    name = "behind-%d" % _repeat
    made = write_behind_back(srv, name, "cached")
    assert read(srv, name).json()["data"]["data"]["v"] == "cached"
    db_delete(srv, made)
    r = read(srv, name)
    assert r.status_code == 200
    assert r.json()["data"]["data"]["v"] == "cached"
    # A write through the server drops the entry: the disk answers again.
    r = srv.req("DELETE", "%s/metadata/%s" % (MOUNT, name))
    assert r.status_code == 204
    assert read(srv, name).status_code == 404


def test_seal_wipes_the_cache(srv, _repeat):
    name = "sealed-%d" % _repeat
    made = write_behind_back(srv, name, "before-seal")
    assert read(srv, name).status_code == 200
    r = srv.req("PUT", "sys/seal")
    assert r.status_code == 204, r.text
    assert read(srv, name).status_code == 503
    db_delete(srv, made)
    srv.unseal(srv.keys)
    # Served from disk, which no longer has it: nothing survived the seal.
    assert read(srv, name).status_code == 404
    write(srv, name, "after-unseal")
    assert read(srv, name).json()["data"]["data"]["v"] == "after-unseal"


def test_disable_cache_reads_storage_every_time(nocache, _repeat):
    name = "nocache-%d" % _repeat
    made = write_behind_back(nocache, name, "v")
    assert read(nocache, name).status_code == 200
    db_delete(nocache, made)
    assert read(nocache, name).status_code == 404


def test_cache_size_is_checked(_repeat):
    d = tempfile.mkdtemp(prefix="coffer-cache-")
    try:
        srv = RealServer(d, extra_config="cache_size = -1\n")
        with pytest.raises(RuntimeError) as e:
            srv.start()
        assert "cache_size" in str(e.value)
    finally:
        if srv.proc is None:
            try:
                srv._log.close()
            except Exception:
                pass
        subprocess.run(["rm", "-rf", d])
