"""Reads that cannot wait run on libmicrohttpd's I/O thread (http.c, issue 14).

What must hold:
  - a request that waits (a database/ call on a database that never
    answers) holds a request worker, never an I/O thread: KV reads and
    sys/health on other connections keep answering;
  - use-limited tokens are counted exactly under concurrent reads, and a
    revoked token is refused at once (core_handle still looks it up);
  - a read answers the same whether it ran inline or on a lane;
  - placement: an unlimited token's KV read runs inline (about one context
    switch per request in the server, against about three through a lane),
    while use-limited tokens, X-Vault-Wrap-TTL, other engines and a socket
    audit device send the request to a lane.

Placement is seen through the server's context switches (all threads,
/proc/<pid>/task/*/status): a hand-off is a futex wake of a worker plus a
resume of the I/O thread, inline is only the I/O thread's own poll.
"""

import glob
import re
import socket
import threading
import time
import uuid

import pytest
import requests

from conftest import Server

READS = 200


@pytest.fixture(scope="module")
def srv():
    s = Server(["-workers=16"])
    yield s
    rc = s.stop(timeout=30)
    assert rc == 0, s.stderr_text()[-4000:]


@pytest.fixture(scope="module")
def kv(srv):
    path = srv.mount("kv", "inl-" + uuid.uuid4().hex[:8],
                     options={"version": "2"})
    r = srv.req("POST", path + "/data/app",
                json={"data": {"user": "app", "password": "s3cret"}})
    assert r.status_code == 200, r.text
    r = srv.req("PUT", "sys/policies/acl/inl-read", json={"policy": (
        'path "%s/data/app" { capabilities = ["read"] }\n'
        'path "%s/metadata/*" { capabilities = ["list", "read"] }\n'
        'path "%s/data/missing" { capabilities = ["read"] }\n'
        % (path, path, path))})
    assert r.status_code == 204, r.text
    return path


def make_token(srv, uses=0, policies=("inl-read",), default=False):
    body = {"policies": list(policies), "no_default_policy": not default}
    if uses:
        body["num_uses"] = uses
    r = srv.req("POST", "auth/token/create", json=body)
    assert r.status_code == 200, r.text
    return r.json()["auth"]["client_token"]


def switches(pid):
    n = 0
    for st in glob.glob("/proc/%d/task/*/status" % pid):
        try:
            with open(st) as f:
                t = f.read()
        except OSError:
            continue  # the thread just exited
        n += int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", t,
                           re.M).group(1))
    return n


def switches_per_request(srv, path, token, headers=None, n=READS,
                         status=200):
    """Context switches of the whole server per keep-alive request."""
    h = dict(headers or {})
    if token:
        h["X-Vault-Token"] = token
    s = requests.Session()
    url = srv.addr + "/v1/" + path
    for _ in range(5):  # warm: the connection, a Lua state, the memo
        s.get(url, headers=h, timeout=10)
    before = switches(srv.proc.pid)
    for _ in range(n):
        r = s.get(url, headers=h, timeout=10)
        assert r.status_code == status, r.text
    per = (switches(srv.proc.pid) - before) / n
    s.close()
    return per


# Inline: the I/O thread's own wait per request (~1). A lane: + a worker's
# wake-up and the I/O thread's resume (~3).
INLINE_MAX = 1.6
LANE_MIN = 2.0


def test_unlimited_token_kv_read_runs_inline(srv, kv):
    tok = make_token(srv)
    per = switches_per_request(srv, kv + "/data/app", tok)
    assert per < INLINE_MAX, per


def test_status_reads_run_inline(srv):
    per = switches_per_request(srv, "sys/health", None)
    assert per < INLINE_MAX, per


def test_use_limited_token_goes_to_a_lane(srv, kv):
    tok = make_token(srv, uses=READS + 10)
    per = switches_per_request(srv, kv + "/data/app", tok)
    assert per > LANE_MIN, per


def test_wrapping_goes_to_a_lane(srv, kv):
    per = switches_per_request(srv, kv + "/data/app", srv.token,
                               headers={"X-Vault-Wrap-TTL": "60"}, n=60)
    # Wrapping wakes other threads itself (~2.5 inline, ~4 via a lane).
    assert per > 3.2, per


def test_other_engines_go_to_a_lane(srv):
    path = srv.mount("database", "inl-db-" + uuid.uuid4().hex[:8])
    try:
        per = switches_per_request(srv, path + "/roles/nope", srv.token,
                                   n=60, status=404)
        assert per > LANE_MIN, per
    finally:
        srv.unmount(path)


class Sink:
    """A TCP listener that reads and discards (a socket audit device's peer)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stop = False
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drain, args=(c,),
                             daemon=True).start()

    def _drain(self, c):
        with c:
            while c.recv(65536):
                pass

    def close(self):
        self.stop = True
        self.sock.close()


def test_audit_devices_decide_placement(srv, kv, tmp_path):
    tok = make_token(srv)
    path = "inl-file-" + uuid.uuid4().hex[:6]
    r = srv.req("PUT", "sys/audit/" + path, json={
        "type": "file", "options": {"file_path": str(tmp_path / "a.log")}})
    assert r.status_code == 204, r.text
    try:
        # A regular file: its writes never wait on a peer.
        per = switches_per_request(srv, kv + "/data/app", tok, n=100)
        assert per < INLINE_MAX, per
        sink = Sink()
        spath = "inl-sock-" + uuid.uuid4().hex[:6]
        r = srv.req("PUT", "sys/audit/" + spath, json={
            "type": "socket",
            "options": {"address": "127.0.0.1:%d" % sink.port}})
        assert r.status_code == 204, r.text
        try:
            per = switches_per_request(srv, kv + "/data/app", tok, n=100)
            assert per > LANE_MIN, per
        finally:
            srv.req("DELETE", "sys/audit/" + spath)
            sink.close()
        per = switches_per_request(srv, kv + "/data/app", tok, n=100)
        assert per < INLINE_MAX, per
    finally:
        srv.req("DELETE", "sys/audit/" + path)
    assert (tmp_path / "a.log").stat().st_size > 0


class Silent:
    """A TCP listener that accepts and never answers: a hung database."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.accepted = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            self.accepted.set()

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def hang_database(srv, hung):
    """A database/ mount whose creds calls wait on `hung`."""
    db = srv.mount("database", "inl-hung-" + uuid.uuid4().hex[:8])
    r = srv.req("POST", db + "/config/hung", json={
        "plugin_name": "postgresql-database-plugin",
        "connection_url": "postgresql://{{username}}:{{password}}@"
                          "127.0.0.1:%d/postgres?sslmode=disable" % hung.port,
        "username": "u", "password": "p", "allowed_roles": "*",
        "verify_connection": False, "connect_timeout": "4s"})
    assert r.status_code in (200, 204), r.text
    r = srv.req("POST", db + "/roles/r", json={
        "db_name": "hung", "creation_statements": 'CREATE ROLE "{{name}}"',
        "default_ttl": "1h"})
    assert r.status_code in (200, 204), r.text
    return db


def start_waiting_calls(srv, db, n, results):
    def creds():
        try:
            r = requests.get(srv.addr + "/v1/" + db + "/creds/r",
                             headers={"X-Vault-Token": srv.token}, timeout=60)
            results.append(r.status_code)
        except requests.RequestException as e:
            results.append(repr(e))

    threads = [threading.Thread(target=creds, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def reads_keep_answering(srv, kv, tok, seconds=1.5):
    """KV reads and sys/health, each on a fresh connection, stay prompt."""
    deadline = time.monotonic() + seconds
    reads = 0
    while time.monotonic() < deadline:
        for path, token in ((kv + "/data/app", tok), ("sys/health", None)):
            h = {"X-Vault-Token": token} if token else {}
            t0 = time.monotonic()
            r = requests.get(srv.addr + "/v1/" + path, headers=h, timeout=5)
            assert r.status_code == 200, r.text
            assert time.monotonic() - t0 < 1.5, path
            reads += 1
    assert reads >= 4


def test_blocked_database_does_not_stall_reads(srv, kv):
    tok = make_token(srv)
    hung = Silent()
    db = hang_database(srv, hung)
    results = []
    threads = []
    try:
        # More waiting requests than there are I/O threads, each on its
        # own connection: inline, they would hold every I/O thread.
        threads = start_waiting_calls(srv, db, 6, results)
        assert hung.accepted.wait(10), "no request reached the database"
        time.sleep(0.3)
        reads_keep_answering(srv, kv, tok)
        assert results == [], "the database calls were meant to be waiting"
    finally:
        hung.close()  # libpq sees the connection close and fails
        for t in threads:
            t.join(30)
        srv.unmount(db)
    assert len(results) == 6, results


def test_reads_answer_while_every_worker_waits():
    # Two request workers, both held by calls to a database that never
    # answers: inline reads (and the status lane) do not need a worker.
    small = Server(["-workers=2"])
    hung = Silent()
    results = []
    threads = []
    try:
        kv = small.mount("kv", "inl-w-" + uuid.uuid4().hex[:8],
                         options={"version": "2"})
        assert small.req("POST", kv + "/data/app",
                         json={"data": {"a": "b"}}).status_code == 200
        db = hang_database(small, hung)
        threads = start_waiting_calls(small, db, 4, results)
        assert hung.accepted.wait(10), "no request reached the database"
        time.sleep(0.3)
        reads_keep_answering(small, kv, small.token)
        assert results == [], "the database calls were meant to be waiting"
    finally:
        hung.close()
        for t in threads:
            t.join(30)
        rc = small.stop(timeout=30)
    assert rc == 0, small.stderr_text()[-4000:]


def test_use_limited_token_exact_under_concurrent_reads(srv, kv):
    for _ in range(5):
        tok = make_token(srv, uses=2)
        barrier = threading.Barrier(12)
        codes = []

        def read():
            s = requests.Session()
            barrier.wait()
            r = s.get(srv.addr + "/v1/" + kv + "/data/app",
                      headers={"X-Vault-Token": tok}, timeout=30)
            codes.append(r.status_code)

        ts = [threading.Thread(target=read) for _ in range(12)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        assert sorted(codes) == [200, 200] + [403] * 10, codes
        r = srv.req("POST", "auth/token/lookup", json={"token": tok})
        assert r.status_code in (400, 403), r.text


def test_unlimited_token_then_limited_token_with_same_reads(srv, kv):
    # The per-thread memo of unlimited tokens must not carry over.
    for _ in range(3):
        free = make_token(srv)
        once = make_token(srv, uses=1)
        s = requests.Session()
        url = srv.addr + "/v1/" + kv + "/data/app"
        for _ in range(5):
            assert s.get(url, headers={"X-Vault-Token": free}).status_code \
                == 200
        assert s.get(url, headers={"X-Vault-Token": once}).status_code == 200
        assert s.get(url, headers={"X-Vault-Token": once}).status_code == 403


def test_revoked_token_refused_at_once(srv, kv):
    url = srv.addr + "/v1/" + kv + "/data/app"
    for how in ("revoke", "revoke-self", "accessor"):
        # With the default policy: it grants revoke-self.
        r = srv.req("POST", "auth/token/create",
                    json={"policies": ["inl-read"]})
        tok = r.json()["auth"]["client_token"]
        acc = r.json()["auth"]["accessor"]
        s = requests.Session()
        for _ in range(10):  # learnt inline, on this connection's thread
            assert s.get(url, headers={"X-Vault-Token": tok}).status_code \
                == 200
        if how == "revoke":
            r = srv.req("POST", "auth/token/revoke", json={"token": tok})
        elif how == "revoke-self":
            r = srv.req("POST", "auth/token/revoke-self", token=tok)
        else:
            r = srv.req("POST", "auth/token/revoke-accessor",
                        json={"accessor": acc})
        assert r.status_code == 204, r.text
        assert s.get(url, headers={"X-Vault-Token": tok}).status_code == 403
        r = requests.get(url, headers={"X-Vault-Token": tok})
        assert r.status_code == 403


def test_revoke_races_concurrent_reads(srv, kv):
    url = srv.addr + "/v1/" + kv + "/data/app"
    for _ in range(3):
        tok = make_token(srv)
        stop = threading.Event()
        late = []
        revoked_at = []

        def reader():
            s = requests.Session()
            while not stop.is_set():
                t0 = time.monotonic()
                r = s.get(url, headers={"X-Vault-Token": tok}, timeout=10)
                if r.status_code == 200 and revoked_at and \
                        t0 > revoked_at[0]:
                    late.append(r.status_code)

        ts = [threading.Thread(target=reader) for _ in range(4)]
        for t in ts:
            t.start()
        time.sleep(0.2)
        r = srv.req("POST", "auth/token/revoke", json={"token": tok})
        revoked_at.append(time.monotonic())
        assert r.status_code == 204
        time.sleep(0.2)
        stop.set()
        for t in ts:
            t.join(10)
        assert late == [], "reads served after the revocation returned"


def strip(body):
    body.pop("request_id", None)
    return body


def test_same_answers_inline_and_on_a_lane(srv, kv):
    free = make_token(srv, default=True)  # inline
    limited = make_token(srv, uses=100, default=True)  # lane: takes uses
    cases = [
        ("GET", kv + "/data/app", 200),
        ("GET", kv + "/data/missing", 404),
        ("GET", kv + "/data/denied", 403),
        ("LIST", kv + "/metadata/", 200),
        ("GET", kv + "/metadata/app", 200),
        ("GET", kv + "/data/app?version=1", 200),
        ("HEAD", kv + "/data/app", 405),
    ]
    for method, path, status in cases:
        a = requests.request(method, srv.addr + "/v1/" + path,
                             headers={"X-Vault-Token": free})
        b = requests.request(method, srv.addr + "/v1/" + path,
                             headers={"X-Vault-Token": limited})
        assert a.status_code == b.status_code == status, (path, a.text,
                                                          b.text)
        assert a.headers.get("Content-Type") == b.headers.get(
            "Content-Type")
        if a.content:
            assert strip(a.json()) == strip(b.json()), path
    r = srv.req("GET", "auth/token/lookup-self", token=free)
    assert r.status_code == 200
    assert r.json()["data"]["num_uses"] == 0
    r = srv.req("GET", "auth/token/lookup-self", token=limited)
    assert r.status_code == 200
    # Uses taken: the five reads that passed the policy check, and this
    # lookup (the refused and HEAD requests take none).
    assert r.json()["data"]["num_uses"] == 100 - 5 - 1


@pytest.fixture(scope="module")
def pg():
    from pgcluster import PgCluster
    cluster = PgCluster()
    yield cluster
    cluster.stop()


def real_kv_read_switches(srv):
    keys, _ = srv.init(shares=1, threshold=1)
    srv.unseal(keys)
    r = srv.req("POST", "sys/mounts/kv", json={"type": "kv"})
    assert r.status_code == 204, r.text
    assert srv.req("PUT", "kv/app", json={"a": "b"}).status_code == 204
    r = srv.req("PUT", "sys/policies/acl/inl-read", json={
        "policy": 'path "kv/app" { capabilities = ["read"] }'})
    assert r.status_code == 204, r.text
    return switches_per_request(srv, "kv/app", make_token(srv), n=100)


def test_storage_backend_decides_placement(tmp_path, pg):
    from realserver import RealServer
    (tmp_path / "sq").mkdir()
    sq = RealServer(str(tmp_path / "sq"), storage="sqlite")
    sq.start()
    try:
        per = real_kv_read_switches(sq)
        assert per < INLINE_MAX, per  # a local file: inline
    finally:
        assert sq.stop() == 0
    dbname = "coffer_inl_" + uuid.uuid4().hex[:8]
    pg.query("CREATE DATABASE " + dbname)
    (tmp_path / "pg").mkdir()
    pgs = RealServer(str(tmp_path / "pg"), storage="postgresql",
                     pg_url=pg.url(dbname=dbname))
    pgs.start()
    try:
        per = real_kv_read_switches(pgs)
        assert per > LANE_MIN, per  # every storage call is a round trip
    finally:
        assert pgs.stop() == 0


def test_lua_policies_send_reads_to_a_lane():
    # A Lua policy runs operator code on every authorised request.
    import os
    from conftest import ROOT
    examples = os.path.join(ROOT, "examples", "policies")
    s = Server(["-dev-policy-dir=%s" % examples])
    try:
        path = "secret/data/office/inl"
        assert s.req("POST", path, json={"data": {"k": "v"}}).status_code \
            == 200
        r = s.req("POST", "auth/token/create", json={
            "policies": ["office-hours"], "no_default_policy": True})
        tok = r.json()["auth"]["client_token"]
        per = switches_per_request(s, path, tok, n=60)
        assert per > LANE_MIN, per
        # Status reads run no policy: still inline.
        per = switches_per_request(s, "sys/health", None, n=60)
        assert per < INLINE_MAX, per
    finally:
        rc = s.stop(timeout=30)
    assert rc == 0, s.stderr_text()[-4000:]
