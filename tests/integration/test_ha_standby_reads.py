"""HA standby reads (issue 12): a standby hears what the active commits
(PostgreSQL LISTEN/NOTIFY), keeps its caches, mount table and policies in
step, and answers reads that need no write itself: KV reads, token
lookup-self, sys/mounts and policy reads. A revocation, a KV write and a
policy change on the active apply on the standby within a second, and a
missed notification (the listener's connection killed) flushes
everything.
"""

import os
import signal
import threading
import time

import pytest

from pgcluster import PgCluster
from test_ha import Cluster, others

DEADLINE = 5.0  # seconds: a notification takes milliseconds; a loaded CI
#                  runner can stall a process for longer than one second


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def pair(pg):
    """Two nodes (active, standby) with kv v1 and v2 mounted and a secret
    in each; closed at the end."""
    made = []

    def make(extra=""):
        c = Cluster(pg, n=2, extra=extra)
        made.append(c)
        c.start_all()
        c.init_and_unseal()
        active = c.wait_active()
        standby = others(c, active)[0]
        r = active.req("POST", "sys/mounts/kv", json={
            "type": "kv", "options": {"version": "2"}})
        assert r.status_code == 204, r.text
        r = active.req("POST", "sys/mounts/kv1", json={"type": "kv"})
        assert r.status_code == 204, r.text
        put(active, "kv/data/app", {"k": "v0"})
        r = active.req("POST", "kv1/app", json={"k": "v0"})
        assert r.status_code == 204, r.text
        wait_local(c, active, standby)
        return c, active, standby
    yield make
    for c in made:
        c.close()


def put(node, path, data, token=True):
    r = node.req("POST", path, json={"data": data}, token=token)
    assert r.status_code in (200, 204), r.text
    return r


def read_kv(node, path, token=True, timeout=30):
    r = node.req("GET", path, token=token, timeout=timeout)
    if r.status_code != 200:
        return r.status_code, None
    body = r.json()["data"]
    return 200, body.get("data", body)


def paused(node):
    """The node, stopped with SIGSTOP until the with block ends: nothing
    it would answer (a forwarded request) comes back."""
    class Pause:
        def __enter__(self):
            node.proc.send_signal(signal.SIGSTOP)

        def __exit__(self, *exc):
            node.proc.send_signal(signal.SIGCONT)
    return Pause()


def wait_local(c, active, standby, timeout=10):
    """Until the standby answers a read while the active is paused (it
    loaded its state and hears changes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with paused(active):
            try:
                st, _ = read_kv(standby, "kv/data/app", timeout=0.5)
            except Exception:
                st = None
        if st == 200:
            return
        time.sleep(0.1)
    raise AssertionError("the standby never served a read itself:\n" +
                         standby.log()[-3000:])


def poll(fn, want, deadline=DEADLINE):
    """fn() until it returns want, for at most deadline seconds; the
    last value."""
    end = time.monotonic() + deadline
    got = fn()
    while got != want and time.monotonic() < end:
        time.sleep(0.02)
        got = fn()
    return got


# ----------------------------------------------------------------------------

@pytest.mark.once
def test_a_standby_serves_reads_itself_and_forwards_the_rest(pair):
    c, active, standby = pair()
    with paused(active):
        # KV v2 and v1 reads, LIST, lookup-self, sys/mounts and policy reads
        # answer while the active cannot.
        assert read_kv(standby, "kv/data/app", timeout=2) == (200, {"k": "v0"})
        assert read_kv(standby, "kv1/app", timeout=2) == (200, {"k": "v0"})
        r = standby.req("LIST", "kv/metadata/", timeout=2)
        assert r.status_code == 200 and r.json()["data"]["keys"] == ["app"]
        r = standby.req("GET", "auth/token/lookup-self", timeout=2)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["policies"] == ["root"]
        r = standby.req("GET", "sys/mounts", timeout=2)
        assert r.status_code == 200 and "kv/" in r.json()["data"]
        r = standby.req("GET", "sys/policies/acl/default", timeout=2)
        assert r.status_code == 200, r.text
        r = standby.req("LIST", "sys/policies/acl", timeout=2)
        assert r.status_code == 200, r.text
        assert "default" in r.json()["data"]["keys"]
        # A missing secret and a bad token are answered here too.
        assert read_kv(standby, "kv/data/missing", timeout=2)[0] == 404
        # Writes, wrapped reads and other engines wait for the active.
        for method, path, kw in (
                ("POST", "kv/data/app", {"json": {"data": {"k": "x"}}}),
                ("GET", "kv/data/app",
                 {"headers": {"X-Vault-Wrap-TTL": "60"}}),
                ("GET", "sys/auth", {}),
                ("POST", "auth/token/lookup-self", {})):
            with pytest.raises(Exception):
                standby.req(method, path, timeout=1, **kw)
    # The wrapped read, forwarded, works once the active is back.
    r = standby.req("GET", "kv/data/app", headers={"X-Vault-Wrap-TTL": "60"})
    assert r.status_code == 200 and r.json()["wrap_info"]["token"], r.text


@pytest.mark.once
def test_a_revoked_token_is_refused_by_the_standby_within_a_second(pair):
    c, active, standby = pair()
    for i in range(50):
        r = active.req("POST", "auth/token/create",
                       json={"policies": ["root"], "no_parent": True})
        assert r.status_code == 200, r.text
        tok = r.json()["auth"]["client_token"]
        # Read on the standby: the token is now in its caches.
        assert read_kv(standby, "kv/data/app", token=tok)[0] == 200
        assert read_kv(standby, "kv/data/app", token=tok)[0] == 200
        r = active.req("POST", "auth/token/revoke", json={"token": tok})
        assert r.status_code == 204, r.text
        got = poll(lambda: read_kv(standby, "kv/data/app", token=tok)[0],
                   403)
        assert got == 403, "round %d: a revoked token still reads" % i


@pytest.mark.once
def test_a_kv_write_on_the_active_is_read_on_the_standby_within_a_second(
        pair):
    c, active, standby = pair()
    for i in range(30):
        want = {"k": "v%d" % (i + 1)}
        assert read_kv(standby, "kv/data/app")[0] == 200  # cached
        assert read_kv(standby, "kv1/app")[0] == 200
        put(active, "kv/data/app", want)
        r = active.req("POST", "kv1/app", json=want)
        assert r.status_code == 204
        assert poll(lambda: read_kv(standby, "kv/data/app"),
                    (200, want)) == (200, want), "round %d (v2)" % i
        assert poll(lambda: read_kv(standby, "kv1/app"),
                    (200, want)) == (200, want), "round %d (v1)" % i
    # A delete too.
    r = active.req("DELETE", "kv1/app")
    assert r.status_code == 204
    assert poll(lambda: read_kv(standby, "kv1/app")[0], 404) == 404


@pytest.mark.once
def test_a_policy_change_on_the_active_applies_on_the_standby(pair):
    c, active, standby = pair()
    allow = 'path "kv/data/app" { capabilities = ["read"] }'
    deny = 'path "kv/data/other" { capabilities = ["read"] }'
    r = active.req("PUT", "sys/policies/acl/reader", json={"policy": allow})
    assert r.status_code == 204, r.text
    r = active.req("POST", "auth/token/create", json={"policies": ["reader"]})
    tok = r.json()["auth"]["client_token"]
    for i in range(10):
        assert poll(lambda: read_kv(standby, "kv/data/app", token=tok)[0],
                    200) == 200, "round %d: allow" % i
        r = active.req("PUT", "sys/policies/acl/reader", json={"policy": deny})
        assert r.status_code == 204
        assert poll(lambda: read_kv(standby, "kv/data/app", token=tok)[0],
                    403) == 403, "round %d: a removed grant still reads" % i
        r = standby.req("GET", "sys/policies/acl/reader")
        assert r.json()["data"]["policy"] == deny
        r = active.req("PUT", "sys/policies/acl/reader", json={"policy": allow})
        assert r.status_code == 204
    # A new mount on the active is served by the standby.
    r = active.req("POST", "sys/mounts/late", json={"type": "kv"})
    assert r.status_code == 204
    r = active.req("POST", "late/x", json={"a": "b"})
    assert r.status_code == 204
    assert poll(lambda: read_kv(standby, "late/x"), (200, {"a": "b"})) == \
        (200, {"a": "b"})


@pytest.mark.once
def test_parallel_readers_on_the_standby_never_go_back(pair):
    """Readers hammer the standby while the active writes versions: each
    reader's sequence never goes back (a fill that raced an invalidation
    never installs the older value), and every version shows within a
    second."""
    c, active, standby = pair()
    stop = threading.Event()
    errors = []

    def reader(n):
        last = -1
        while not stop.is_set():
            st, data = read_kv(standby, "kv1/app")
            if st != 200:
                errors.append("reader %d: status %s" % (n, st))
                return
            v = int(data["k"][1:])
            if v < last:
                errors.append("reader %d: v%d after v%d" % (n, v, last))
                return
            last = v
    threads = [threading.Thread(target=reader, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 21):
            want = {"k": "v%d" % i}
            r = active.req("POST", "kv1/app", json=want)
            assert r.status_code == 204
            assert poll(lambda: read_kv(standby, "kv1/app"),
                        (200, want)) == (200, want), "version %d" % i
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors


@pytest.mark.once
def test_a_rotated_keyring_is_followed_by_the_standby(pair):
    c, active, standby = pair()
    for i in range(3):
        r = active.req("PUT", "sys/rotate")
        assert r.status_code == 204, r.text
        want = {"k": "term%d" % i}
        r = active.req("POST", "kv1/app", json=want)
        assert r.status_code == 204
        assert poll(lambda: read_kv(standby, "kv1/app"), (200, want)) == \
            (200, want), "round %d" % i
    # Served by the standby itself, once it has its state again (a reload
    # in progress, or a sync that timed out under load, forwards).
    wait_local(c, active, standby)
    with paused(active):
        assert read_kv(standby, "kv1/app", timeout=2) == (200, want)


@pytest.mark.once
def test_a_write_through_the_standby_is_read_back_at_once(pair):
    """Read-your-writes: the standby waits for the active's changes of a
    request it forwarded before answering it."""
    c, active, standby = pair()
    for i in range(30):
        want = {"k": "mine%d" % i}
        assert read_kv(standby, "kv/data/app")[0] == 200  # cached
        put(standby, "kv/data/app", want)
        assert read_kv(standby, "kv/data/app") == (200, want), "round %d" % i


@pytest.mark.once
def test_a_use_limited_token_is_forwarded(pair):
    c, active, standby = pair()
    r = active.req("POST", "auth/token/create",
                   json={"policies": ["root"], "num_uses": 2})
    tok = r.json()["auth"]["client_token"]
    assert read_kv(standby, "kv/data/app", token=tok)[0] == 200
    assert read_kv(standby, "kv/data/app", token=tok)[0] == 200
    assert read_kv(standby, "kv/data/app", token=tok)[0] == 403


def wait_listener(pg, c, killed, timeout=10):
    """The pid of the standby's listening session, once there is one that
    is not among killed (a session just terminated may linger in
    pg_stat_activity, and the standby reopens its listener only after it
    noticed the loss)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [r[0] for r in pg.query(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND "
            "query LIKE 'LISTEN%%' ORDER BY backend_start DESC", c.dbname)
            if r[0] not in killed]
        if pids:
            return pids[0]
        time.sleep(0.05)
    raise AssertionError("no listening session")


@pytest.mark.once
def test_a_lost_listener_flushes_what_it_may_have_missed(pair, pg):
    c, active, standby = pair()
    killed = set()
    for i in range(5):
        # Listening again on a new session, and its state loaded after it.
        pid = wait_listener(pg, c, killed)
        wait_local(c, active, standby)
        assert read_kv(standby, "kv1/app")[0] == 200  # cached
        # Kill the standby's listening session, then write at once: the
        # notification may reach nobody.
        assert pg.query("SELECT pg_terminate_backend(%s)", pid) == \
            [(True,)], "round %d" % i
        killed.add(pid)
        want = {"k": "after-kill-%d" % i}
        r = active.req("POST", "kv1/app", json=want)
        assert r.status_code == 204
        assert poll(lambda: read_kv(standby, "kv1/app"), (200, want),
                    deadline=3) == (200, want), "round %d" % i


@pytest.mark.once
def test_a_listener_that_hears_nothing_is_not_trusted(pair, pg):
    """The standby's listening session alive but stuck (its backend
    stopped): a forwarded write's sync times out, and from then on the
    standby must not serve from memory what it no longer hears; once a
    marker of its own does not come back either, it reopens its
    listener."""
    c, active, standby = pair()
    pid = wait_listener(pg, c, set())
    os.kill(pid, signal.SIGSTOP)
    try:
        # Forwarded; its marker never comes back (1 s).
        put(standby, "kv/data/app", {"k": "fwd"})
        assert read_kv(standby, "kv1/app")[0] == 200  # cached, if served
        want = {"k": "unheard"}
        r = active.req("POST", "kv1/app", json=want)
        assert r.status_code == 204
        got, end = [], time.monotonic() + 3
        while time.monotonic() < end:
            got.append(read_kv(standby, "kv1/app"))
            time.sleep(0.05)
        assert set(map(str, got)) == {str((200, want))}, got
        # Listening on a new session: the stuck one no longer counts.
        wait_listener(pg, c, {pid})
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_local(c, active, standby)
    assert read_kv(standby, "kv1/app") == (200, want)
    want = {"k": "heard"}
    r = active.req("POST", "kv1/app", json=want)
    assert r.status_code == 204
    assert poll(lambda: read_kv(standby, "kv1/app"), (200, want)) == \
        (200, want)


@pytest.mark.once
def test_a_key_too_long_to_notify_flushes_everything(pair):
    c, active, standby = pair()
    name = "n" * 7990
    r = active.req("POST", "kv1/" + name, json={"k": "v0"})
    assert r.status_code == 204, r.text
    for i in range(3):
        want = {"k": "v%d" % (i + 1)}
        assert read_kv(standby, "kv1/" + name)[0] == 200
        r = active.req("POST", "kv1/" + name, json=want)
        assert r.status_code == 204
        assert poll(lambda: read_kv(standby, "kv1/" + name), (200, want)) == \
            (200, want), "round %d" % i


@pytest.fixture
def plain_pair(pg):
    c = Cluster(pg, n=2, extra="disable_standby_reads = true")
    c.start_all()
    c.init_and_unseal()
    yield c
    c.close()


@pytest.mark.once
def test_forged_notifications_do_no_harm(pair, pg):
    """Any role that can connect may notify on the channel: junk, forged
    flushes and a forged sync marker cost work, never correctness."""
    c, active, standby = pair()
    node_id = standby.req("GET", "sys/ha-status").json()["data"]["nodes"]
    ids = [n["node_id"] for n in node_id]
    junk = ["\x01flush", "\x01", "\x01sync ", "a\nb\n\n", "x" * 7999,
            "core/mounts", "sys/policy/default", "token/id/"] + \
        ["\x01sync %s:%d" % (i, 10 ** 12) for i in ids]
    conn = pg.connect(dbname=c.dbname)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for p in junk:
                cur.execute("SELECT pg_notify('coffer_kv_changes', %s)", (p,))
    finally:
        conn.close()
    wait_local(c, active, standby)
    for i in range(10):
        # Read-your-writes still holds after a forged sync marker.
        want = {"k": "forged%d" % i}
        put(standby, "kv/data/app", want)
        assert read_kv(standby, "kv/data/app") == (200, want), "round %d" % i
        r = active.req("POST", "kv1/app", json=want)
        assert r.status_code == 204
        assert poll(lambda: read_kv(standby, "kv1/app"), (200, want)) == \
            (200, want)


@pytest.mark.once
def test_disable_standby_reads_turns_them_off(plain_pair):
    c = plain_pair
    active = c.wait_active()
    standby = others(c, active)[0]
    r = active.req("POST", "sys/mounts/kv1", json={"type": "kv"})
    assert r.status_code == 204
    r = active.req("POST", "kv1/app", json={"k": "v"})
    assert r.status_code == 204
    assert read_kv(standby, "kv1/app") == (200, {"k": "v"})  # forwarded
    time.sleep(1)
    for attempt in range(3):
        active = c.wait_active()
        standby = others(c, active)[0]
        with paused(active):
            try:
                r = standby.req("GET", "kv1/app", timeout=1)
            except Exception:
                r = None
        if r is None:
            return  # the read waited for the paused active: not local
        # An answer is right only if the standby took the lock meanwhile
        # (a loaded machine can starve the active's renewals): try again.
        lead = standby.req("GET", "sys/leader").json()
        assert lead["is_self"], (r.status_code, r.text)
    pytest.fail("the lock moved on every attempt")
