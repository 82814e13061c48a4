"""Audit devices: sys/audit*, Vault's entry format, hashing, fail-closed.

These tests run their own dev server (module scope), not the shared one:
a device that fails closes the server to every request, which must not
leak into other test files.
"""

import json
import os
import secrets
import signal
import socket
import stat
import tempfile
import threading
import time
import uuid

import pytest

from conftest import CRASH_PATTERNS, Server
from helpers import wait_until


@pytest.fixture(scope="module")
def asrv():
    srv = Server()
    yield srv
    status = srv.stop(timeout=10)
    log = srv.stderr_text()
    assert CRASH_PATTERNS.search(log) is None, log[-4000:]
    assert status == 0, log[-4000:]


@pytest.fixture
def tmpdir_audit():
    d = tempfile.mkdtemp(prefix="coffer-audit-")
    yield d


def enable(srv, path, type_, **options):
    r = srv.req("PUT", "sys/audit/" + path,
                json={"type": type_, "options": options})
    assert r.status_code == 204, (r.status_code, r.text)


def disable(srv, path):
    r = srv.req("DELETE", "sys/audit/" + path)
    assert r.status_code == 204, (r.status_code, r.text)


def read_entries(path):
    with open(path) as f:
        lines = [l for l in f.read().split("\n") if l]
    return [json.loads(l) for l in lines]  # every line must be JSON


def audit_hash(srv, path, value):
    r = srv.req("PUT", "sys/audit-hash/" + path, json={"input": value})
    assert r.status_code == 200, r.text
    return r.json()["data"]["hash"]


class Listener:
    """A TCP audit collector on 127.0.0.1: reads lines, or stalls."""

    def __init__(self, port=0, read=True, rcvbuf=None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.read = read
        self.conns = []
        self.data = b""
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.read:
                threading.Thread(target=self._drain, args=(c,),
                                 daemon=True).start()

    def _drain(self, c):
        while True:
            try:
                b = c.recv(65536)
            except OSError:
                return
            if not b:
                return
            with self.lock:
                self.data += b

    def entries(self):
        """The complete lines received so far (a last one may be cut)."""
        with self.lock:
            text = self.data.decode(errors="replace")
        return [json.loads(l) for l in text.split("\n")[:-1] if l]

    def close(self):
        self.stopped = True
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def disable_socket_device(srv, path, port):
    """A device whose listener is gone refuses every request, its own
    disabling included (Vault's rule): bring a listener back, then disable."""
    lst = Listener(port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            r = srv.req("DELETE", "sys/audit/" + path)
            if r.status_code == 204 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.status_code == 204, r.text
    finally:
        lst.close()


# ---------------------------------------------------------------- API ----

def test_enable_list_disable_file(asrv, tmpdir_audit):
    p = os.path.join(tmpdir_audit, "a.log")
    name = "f-" + uuid.uuid4().hex[:8]
    c = asrv.hvac_client()
    c.sys.enable_audit_device("file", path=name, description="d1",
                              options={"file_path": p})
    try:
        listed = c.sys.list_enabled_audit_devices()
        dev = listed["data"][name + "/"]
        assert dev == {"type": "file", "description": "d1",
                       "options": {"file_path": p}, "local": False,
                       "path": name + "/"}
        assert listed[name + "/"] == dev          # top level too
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
        r = asrv.req("PUT", "sys/audit/" + name,
                     json={"type": "file", "options": {"file_path": p}})
        assert r.status_code == 400
        assert r.json()["errors"] == ["path already in use"]
    finally:
        disable(asrv, name)
    assert name + "/" not in asrv.req("GET", "sys/audit").json()["data"]
    # disabling what is not there is fine, as in Vault
    disable(asrv, name)


@pytest.mark.parametrize("body,msg", [
    ({"type": "nope"}, 'unknown backend type: "nope"'),
    ({"type": "file"}, "file_path is required"),
    ({"type": "file", "options": {"file_path": "/tmp/x", "format": "xml"}},
     'unknown format type "xml"'),
    ({"type": "file", "options": {"file_path": "/tmp/x", "mode": "9z"}},
     'invalid file mode "9z"'),
    ({"type": "file", "options": {"file_path": "/nonexistent-dir/x.log"}},
     None),
    ({"type": "socket", "options": {}}, "address is required"),
    ({"type": "socket", "options": {"address": "127.0.0.1:1",
                                    "socket_type": "sctp"}},
     'unsupported socket_type "sctp"'),
    ({"type": "file", "options": {"file_path": "/tmp/x",
                                  "log_raw": "maybe"}}, None),
    ({"type": "file", "options": "x"}, "options must be a map of strings"),
])
def test_enable_rejects_bad_input(asrv, body, msg):
    name = "bad-" + uuid.uuid4().hex[:8]
    r = asrv.req("PUT", "sys/audit/" + name, json=body)
    assert r.status_code == 400, r.text
    if msg is not None:
        assert r.json()["errors"] == [msg]
    assert name + "/" not in asrv.req("GET", "sys/audit").json()["data"]


def test_audit_hash_unknown_device(asrv):
    r = asrv.req("PUT", "sys/audit-hash/nothere", json={"input": "x"})
    assert r.status_code == 400
    assert r.json()["errors"] == ['unknown audit backend "nothere/"']


def test_sudo_required(asrv, tmpdir_audit):
    p = os.path.join(tmpdir_audit, "s.log")
    name = "sudo-" + uuid.uuid4().hex[:8]
    pol = "pol-" + uuid.uuid4().hex[:8]
    rules = ('path "sys/audit" { capabilities = ["read", "list"] }\n'
             'path "sys/audit/*" { capabilities = ["create", "update", '
             '"delete"] }\n'
             'path "sys/audit-hash/*" { capabilities = ["update"] }\n')
    assert asrv.req("PUT", "sys/policy/" + pol,
                    json={"policy": rules}).status_code == 204
    tok = asrv.req("POST", "auth/token/create",
                   json={"policies": [pol]}).json()["auth"]["client_token"]
    body = {"type": "file", "options": {"file_path": p}}
    assert asrv.req("GET", "sys/audit", token=tok).status_code == 403
    assert asrv.req("PUT", "sys/audit/" + name, token=tok,
                    json=body).status_code == 403
    enable(asrv, name, "file", file_path=p)
    try:
        assert asrv.req("PUT", "sys/audit-hash/" + name, token=tok,
                        json={"input": "x"}).status_code == 403
        assert asrv.req("DELETE", "sys/audit/" + name,
                        token=tok).status_code == 403
        # with sudo it works
        sudo = rules.replace('"list"]', '"list", "sudo"]').replace(
            '"delete"]', '"delete", "sudo"]').replace(
            '["update"]', '["update", "sudo"]')
        assert asrv.req("PUT", "sys/policy/" + pol,
                        json={"policy": sudo}).status_code == 204
        assert asrv.req("GET", "sys/audit", token=tok).status_code == 200
        assert asrv.req("PUT", "sys/audit-hash/" + name, token=tok,
                        json={"input": "x"}).status_code == 200
    finally:
        disable(asrv, name)


# ------------------------------------------------------------ entries ----

def test_entries_hash_secrets(asrv, tmpdir_audit):
    p = os.path.join(tmpdir_audit, "e.log")
    name = "e-" + uuid.uuid4().hex[:8]
    password = "pw-" + secrets.token_hex(12)
    enable(asrv, name, "file", file_path=p)
    try:
        key = "k-" + uuid.uuid4().hex[:8]
        w = asrv.req("PUT", "secret/data/" + key,
                     json={"data": {"password": password, "n": 42}})
        assert w.status_code == 200, w.text
        rd = asrv.req("GET", "secret/data/" + key)
        assert rd.json()["data"]["data"]["password"] == password
        created = asrv.req("POST", "auth/token/create",
                           json={"policies": ["default"]}).json()["auth"]
        newtok = created["client_token"]
        # the new token is used once, so it appears as a client token too
        assert asrv.req("GET", "auth/token/lookup-self",
                        token=newtok).status_code == 200
        denied = asrv.req("GET", "secret/data/" + key, token=newtok)
        assert denied.status_code == 403
    finally:
        disable(asrv, name)
    text = open(p).read()
    entries = read_entries(p)
    assert password not in text
    assert newtok not in text
    assert asrv.token not in text
    assert created["accessor"] not in text
    by_id = {}
    for e in entries:
        assert e["type"] in ("request", "response")
        assert e["time"].endswith("Z")
        assert "token_type" in e["auth"]
        assert e["request"]["namespace"] == {"id": "root"}
        by_id.setdefault(e["request"]["id"], []).append(e["type"])
    for rid in (w.json()["request_id"], rd.json()["request_id"]):
        assert by_id[rid] == ["request", "response"]
    # the KV write's request entry: values hashed, keys kept, numbers hashed
    wreq = [e for e in entries if e["request"]["id"] == w.json()["request_id"]
            and e["type"] == "request"][0]
    assert wreq["request"]["operation"] in ("create", "update")
    assert wreq["request"]["path"] == "secret/data/" + key
    assert wreq["request"]["mount_type"] == "kv"
    assert wreq["request"]["mount_point"] == "secret/"
    assert wreq["request"]["remote_address"] == "127.0.0.1"
    data = wreq["request"]["data"]["data"]
    assert set(data) == {"password", "n"}
    assert data["password"].startswith("hmac-sha256:")
    assert data["n"].startswith("hmac-sha256:")
    assert wreq["auth"]["client_token"].startswith("hmac-sha256:")
    assert wreq["auth"]["policies"] == ["root"]
    assert wreq["auth"]["display_name"] == "root"
    # the read's response entry: secret hashed
    rresp = [e for e in entries
             if e["request"]["id"] == rd.json()["request_id"]
             and e["type"] == "response"][0]
    assert rresp["response"]["data"]["data"]["password"].startswith(
        "hmac-sha256:")
    # the denied read: request entry carries the error
    dreq = [e for e in entries if e["request"].get("path") ==
            "secret/data/" + key and e.get("error")]
    assert dreq and dreq[0]["error"] == "permission denied"
    dresp = [e for e in entries if e["type"] == "response" and
             e["request"]["id"] == dreq[0]["request"]["id"]]
    assert dresp[0]["error"] == "1 error occurred:\n\t* permission denied\n\n"


def test_login_password_and_token_hashed(asrv, tmpdir_audit):
    mount = "up-" + uuid.uuid4().hex[:6]
    assert asrv.req("POST", "sys/auth/" + mount,
                    json={"type": "userpass"}).status_code == 204
    password = "pw-" + secrets.token_hex(10)
    assert asrv.req("POST", "auth/%s/users/alice" % mount,
                    json={"password": password}).status_code == 204
    p = os.path.join(tmpdir_audit, "login.log")
    name = "login-" + uuid.uuid4().hex[:6]
    enable(asrv, name, "file", file_path=p)
    try:
        r = asrv.req("POST", "auth/%s/login/alice" % mount, token=None,
                     json={"password": password})
        assert r.status_code == 200, r.text
        tok = r.json()["auth"]["client_token"]
        ht = audit_hash(asrv, name, tok)
        hp = audit_hash(asrv, name, password)
    finally:
        disable(asrv, name)
    text = open(p).read()
    assert password not in text and tok not in text
    entries = [e for e in read_entries(p)
               if e["request"]["id"] == r.json()["request_id"]]
    assert [e["type"] for e in entries] == ["request", "response"]
    assert entries[0]["auth"] == {"token_type": "default"}
    assert entries[0]["request"]["data"]["password"] == hp
    assert entries[1]["response"]["auth"]["client_token"] == ht


def test_audit_hash_finds_values(asrv, tmpdir_audit):
    p = os.path.join(tmpdir_audit, "h.log")
    name = "h-" + uuid.uuid4().hex[:8]
    password = "pw-" + secrets.token_hex(12)
    enable(asrv, name, "file", file_path=p, hmac_accessor="false")
    try:
        key = "k-" + uuid.uuid4().hex[:8]
        assert asrv.req("PUT", "secret/data/" + key,
                        json={"data": {"password": password}}
                        ).status_code == 200
        created = asrv.req("POST", "auth/token/create",
                           json={"policies": ["default"]}).json()["auth"]
        hp = audit_hash(asrv, name, password)
        ht = audit_hash(asrv, name, created["client_token"])
        hr = audit_hash(asrv, name, asrv.token)
        # hvac's spelling of the same call
        c = asrv.hvac_client()
        assert c.sys.calculate_hash(name, password)["data"]["hash"] == hp
    finally:
        disable(asrv, name)
    text = open(p).read()
    assert password not in text and created["client_token"] not in text
    assert hp.startswith("hmac-sha256:") and len(hp) == 12 + 64
    assert hp in text          # the KV write's request entry
    assert ht in text          # the new token in the create response
    assert hr in text          # the root token as client_token
    # hmac_accessor=false: the accessor is in clear
    assert created["accessor"] in text


def test_salt_is_per_device(asrv, tmpdir_audit):
    a, b = "sa-" + uuid.uuid4().hex[:6], "sb-" + uuid.uuid4().hex[:6]
    enable(asrv, a, "file", file_path=os.path.join(tmpdir_audit, "a"))
    enable(asrv, b, "file", file_path=os.path.join(tmpdir_audit, "b"))
    try:
        assert audit_hash(asrv, a, "x") != audit_hash(asrv, b, "x")
        assert audit_hash(asrv, a, "x") == audit_hash(asrv, a, "x")
    finally:
        disable(asrv, a)
        disable(asrv, b)


def test_log_raw_and_prefix_and_elide(asrv, tmpdir_audit):
    p = os.path.join(tmpdir_audit, "raw.log")
    name = "raw-" + uuid.uuid4().hex[:8]
    enable(asrv, name, "file", file_path=p, log_raw="true", prefix="AUDIT:",
           elide_list_responses="true")
    try:
        key = "k-" + uuid.uuid4().hex[:8]
        asrv.req("PUT", "secret/data/%s/a" % key, json={"data": {"v": "open"}})
        asrv.req("PUT", "secret/data/%s/b" % key, json={"data": {"v": "open"}})
        lst = asrv.req("LIST", "secret/metadata/" + key)
        assert sorted(lst.json()["data"]["keys"]) == ["a", "b"]
    finally:
        disable(asrv, name)
    lines = [l for l in open(p).read().split("\n") if l]
    assert all(l.startswith("AUDIT:") for l in lines)
    entries = [json.loads(l[len("AUDIT:"):]) for l in lines]
    assert any(e["request"].get("data", {}).get("data", {}).get("v") ==
               "open" for e in entries)
    lresp = [e for e in entries if e["type"] == "response" and
             e["request"]["id"] == lst.json()["request_id"]][0]
    assert lresp["response"]["data"]["keys"] == 2


def test_stdout_and_discard(asrv):
    a, b = "so-" + uuid.uuid4().hex[:6], "di-" + uuid.uuid4().hex[:6]
    enable(asrv, a, "file", file_path="stdout")
    enable(asrv, b, "file", file_path="discard")
    try:
        r = asrv.req("GET", "sys/audit")
        assert r.status_code == 200
    finally:
        disable(asrv, b)
        disable(asrv, a)
    out = asrv.stdout_text()
    assert r.json()["request_id"] in out


def test_socket_device_receives_entries(asrv):
    lst = Listener()
    name = "sock-" + uuid.uuid4().hex[:8]
    try:
        enable(asrv, name, "socket", address="127.0.0.1:%d" % lst.port)
        r = asrv.req("GET", "sys/audit")
        assert r.status_code == 200
        disable(asrv, name)
        rid = r.json()["request_id"]

        def both_received():
            ids = [(e["type"], e["request"]["id"]) for e in lst.entries()]
            return ("request", rid) in ids and ("response", rid) in ids
        assert wait_until(both_received, 10), lst.entries()
    finally:
        lst.close()


# -------------------------------------------------------- fail closed ----

def test_fail_closed_dead_socket(asrv):
    lst = Listener()
    port = lst.port
    name = "dead-" + uuid.uuid4().hex[:8]
    key = "k-" + uuid.uuid4().hex[:8]
    enable(asrv, name, "socket", address="127.0.0.1:%d" % port,
           write_timeout="1s")
    try:
        assert asrv.req("PUT", "secret/data/" + key,
                        json={"data": {"v": "one"}}).status_code == 200
        lst.close()
        time.sleep(0.2)
        t0 = time.monotonic()
        r = asrv.req("PUT", "secret/data/" + key, json={"data": {"v": "two"}})
        assert r.status_code == 500, r.text
        assert r.json()["errors"] == ["internal error"]
        # bounded by the device's write timeout (1 s), with room for a
        # slow (ASan) run
        assert time.monotonic() - t0 < 4
        # refused fast while the device is down
        t0 = time.monotonic()
        assert asrv.req("GET", "sys/audit").status_code == 500
        assert time.monotonic() - t0 < 3
    finally:
        disable_socket_device(asrv, name, port)
    # the refused write never reached the backend
    got = asrv.req("GET", "secret/data/" + key).json()["data"]
    assert got["data"] == {"v": "one"}
    assert got["metadata"]["version"] == 1


def test_one_device_failing_is_enough_if_another_writes(asrv, tmpdir_audit):
    lst = Listener()
    port = lst.port
    good = "good-" + uuid.uuid4().hex[:6]
    bad = "bad-" + uuid.uuid4().hex[:6]
    enable(asrv, good, "file", file_path=os.path.join(tmpdir_audit, "g"))
    enable(asrv, bad, "socket", address="127.0.0.1:%d" % port,
           write_timeout="1s")
    lst.close()
    try:
        for _ in range(3):
            assert asrv.req("GET", "sys/audit").status_code == 200
    finally:
        disable(asrv, bad)
        disable(asrv, good)


def test_fail_closed_full_file(tmpdir_audit):
    """A file that cannot be written (/dev/full: ENOSPC) refuses requests."""
    srv = Server()
    try:
        good = os.path.join(tmpdir_audit, "good.log")
        enable(srv, "good", "file", file_path=good)
        enable(srv, "full", "file", file_path="/dev/full")
        # one device wrote it: fine
        assert srv.req("GET", "sys/audit").status_code == 200
        r = srv.req("DELETE", "sys/audit/good")
        # the disable ran (its request entry was written) but its response
        # entry only had /dev/full left: 500, side effect kept (Vault's rule)
        assert r.status_code == 500
        key = "k-" + uuid.uuid4().hex[:8]
        r = srv.req("PUT", "secret/data/" + key, json={"data": {"v": "x"}})
        assert r.status_code == 500
        assert r.json()["errors"] == ["internal error"]
        assert "no audit backend succeeded in logging the request" in \
            srv.stderr_text()
        # the /dev/full device is not shown as mode-changed
        assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    finally:
        assert srv.stop(timeout=10) == 0
    assert CRASH_PATTERNS.search(srv.stderr_text()) is None


def test_unwritable_fifo_recovers(asrv, tmpdir_audit):
    """A file path whose reader went away: refused (closed), then back."""
    fifo = os.path.join(tmpdir_audit, "fifo")
    os.mkfifo(fifo)
    name = "fifo-" + uuid.uuid4().hex[:6]
    rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    enable(asrv, name, "file", file_path=fifo, mode="0")
    try:
        assert asrv.req("GET", "sys/audit").status_code == 200
        os.close(rfd)
        assert asrv.req("GET", "sys/audit").status_code == 500
    finally:
        rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        drain = threading.Event()

        def pump():
            while not drain.is_set():
                try:
                    os.read(rfd, 65536)
                except BlockingIOError:
                    time.sleep(0.01)
        t = threading.Thread(target=pump, daemon=True)
        t.start()
        disable(asrv, name)
        drain.set()
        t.join()
        os.close(rfd)


@pytest.mark.once
def test_bounded_latency_stalled_tcp(asrv):
    """A listener that accepts and never reads: every request returns within
    the write timeout plus a margin, in parallel too, and fails closed."""
    lst = Listener(read=False, rcvbuf=4096)
    port = lst.port
    name = "stall-" + uuid.uuid4().hex[:8]
    enable(asrv, name, "socket", address="127.0.0.1:%d" % port,
           write_timeout="1s")
    big = "K" * (512 * 1024)  # keys are not hashed: big entries
    statuses, worst = [], [0.0]
    lock = threading.Lock()

    def one():
        t0 = time.monotonic()
        r = asrv.req("PUT", "secret/data/stall-" + uuid.uuid4().hex[:6],
                     json={"data": {big: "v"}}, timeout=30)
        dt = time.monotonic() - t0
        with lock:
            statuses.append(r.status_code)
            worst[0] = max(worst[0], dt)

    try:
        for _ in range(40):
            one()
            if 500 in statuses:
                break
        assert 500 in statuses, statuses
        threads = [threading.Thread(target=one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # request entry (1 s) + response entry (1 s) at worst, plus margin
        assert worst[0] < 2 * 1.0 + 3, worst
    finally:
        lst.close()
        disable_socket_device(asrv, name, port)


# ------------------------------------------------------------ SIGHUP ----

def test_sighup_reopens_file(asrv, tmpdir_audit):
    p = os.path.join(tmpdir_audit, "rot.log")
    name = "rot-" + uuid.uuid4().hex[:8]
    enable(asrv, name, "file", file_path=p)
    try:
        r1 = asrv.req("GET", "sys/audit").json()["request_id"]
        os.rename(p, p + ".1")            # logrotate moved it away
        asrv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while not os.path.exists(p) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.exists(p)
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
        r2 = asrv.req("GET", "sys/audit").json()["request_id"]
    finally:
        disable(asrv, name)
    old = open(p + ".1").read()
    new = open(p).read()
    assert r1 in old and r2 not in old
    assert r2 in new and r1 not in new
    read_entries(p)


def test_rotation_under_parallel_writes_loses_no_line(asrv, tmpdir_audit):
    """Writers to an open file share it (O_APPEND, no mutex) while SIGHUP
    reopens it: every line in the rotated files is whole JSON, and every
    request that succeeded has its request and response entries."""
    import concurrent.futures
    p = os.path.join(tmpdir_audit, "race.log")
    name = "race-" + uuid.uuid4().hex[:8]
    marker = "race-" + uuid.uuid4().hex
    enable(asrv, name, "file", file_path=p)
    done = threading.Event()
    ok_ids = []

    def reader():
        got = []
        while not done.is_set():
            r = asrv.req("GET", "sys/mounts?m=" + marker)
            if r.status_code == 200:
                got.append(r.json()["request_id"])
        return got

    try:
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            futs = [ex.submit(reader) for _ in range(6)]
            try:
                for i in range(12):
                    time.sleep(0.1)
                    deadline = time.monotonic() + 10  # SIGHUP is async
                    while not os.path.exists(p) and \
                            time.monotonic() < deadline:
                        time.sleep(0.01)
                    os.rename(p, "%s.%d" % (p, i))
                    asrv.proc.send_signal(signal.SIGHUP)
                time.sleep(0.3)
            finally:
                done.set()
            for f in futs:
                ok_ids.extend(f.result())
    finally:
        disable(asrv, name)
    entries = []
    for f in os.listdir(tmpdir_audit):
        if f.startswith("race.log"):
            entries.extend(read_entries(os.path.join(tmpdir_audit, f)))
    seen = {}
    for e in entries:
        req = e.get("request", {})  # revocation entries have none
        if req.get("path") == "sys/mounts":
            seen.setdefault(req["id"], []).append(e["type"])
    assert len(ok_ids) > 50
    for rid in ok_ids:
        assert sorted(seen.get(rid, [])) == ["request", "response"], rid


# -------------------------------------------------- persistence, races ----

def test_devices_survive_seal_unseal(tmpdir_audit):
    """Devices and their salts are kept in the barrier: after a seal and an
    unseal the device is back and hashes the same way."""
    srv = Server()
    try:
        key = srv.unseal_key()
        p = os.path.join(tmpdir_audit, "keep.log")
        r = srv.req("PUT", "sys/audit/keep",
                    json={"type": "file", "description": "kept",
                          "options": {"file_path": p}})
        assert r.status_code == 204, r.text
        before = audit_hash(srv, "keep", "hunter2")
        assert srv.req("PUT", "sys/seal").status_code == 204
        # sealed: nothing is written, nothing is served
        assert srv.req("GET", "sys/audit").status_code == 503
        r = srv.req("PUT", "sys/unseal", json={"key": key})
        assert r.status_code == 200 and r.json()["sealed"] is False
        dev = srv.req("GET", "sys/audit").json()["data"]["keep/"]
        assert dev["description"] == "kept"
        assert dev["options"] == {"file_path": p}
        assert audit_hash(srv, "keep", "hunter2") == before
        ids = [e["request"]["id"] for e in read_entries(p)]
        assert len(ids) > 0
    finally:
        assert srv.stop(timeout=10) == 0
    assert CRASH_PATTERNS.search(srv.stderr_text()) is None


def test_parallel_enable_disable_under_load(asrv, tmpdir_audit):
    """Devices come and go while requests run: every request succeeds (a
    healthy file device always exists), every line stays one JSON object,
    and the table ends as it began."""
    base = "base-" + uuid.uuid4().hex[:6]
    bp = os.path.join(tmpdir_audit, "base.log")
    enable(asrv, base, "file", file_path=bp)
    stop = threading.Event()
    bad = []

    def load():
        while not stop.is_set():
            r = asrv.req("PUT", "secret/data/race-" + uuid.uuid4().hex[:4],
                         json={"data": {"v": "x" * 3000}})
            if r.status_code != 200:
                bad.append((r.status_code, r.text))

    def churn(n):
        for i in range(15):
            name = "churn-%d-%d-%s" % (n, i, uuid.uuid4().hex[:4])
            p = os.path.join(tmpdir_audit, name)
            r = asrv.req("PUT", "sys/audit/" + name,
                         json={"type": "file", "options": {"file_path": p}})
            if r.status_code != 204:
                bad.append((r.status_code, r.text))
            r = asrv.req("DELETE", "sys/audit/" + name)
            if r.status_code != 204:
                bad.append((r.status_code, r.text))

    workers = [threading.Thread(target=load) for _ in range(4)]
    churners = [threading.Thread(target=churn, args=(n,)) for n in range(3)]
    try:
        for t in workers + churners:
            t.start()
        for t in churners:
            t.join()
    finally:
        stop.set()
        for t in workers:
            t.join()
        disable(asrv, base)
    assert bad == []
    assert set(asrv.req("GET", "sys/audit").json()["data"]) == set()
    entries = read_entries(bp)   # parses every line: no interleaving
    assert len(entries) > 20
    for f in os.listdir(tmpdir_audit):
        if f.startswith("churn-"):
            read_entries(os.path.join(tmpdir_audit, f))


def test_udp_and_unix_socket_devices(asrv, tmpdir_audit):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(5)
    upath = os.path.join(tmpdir_audit, "audit.sock")
    ux = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ux.bind(upath)
    ux.listen(4)
    ux.settimeout(5)
    a, b = "udp-" + uuid.uuid4().hex[:6], "unix-" + uuid.uuid4().hex[:6]
    enable(asrv, a, "socket", address="127.0.0.1:%d" % udp.getsockname()[1],
           socket_type="udp")
    enable(asrv, b, "socket", address=upath, socket_type="unix")
    conn, _ = ux.accept()
    conn.settimeout(5)
    try:
        rid = asrv.req("GET", "sys/audit").json()["request_id"]
    finally:
        disable(asrv, a)
        disable(asrv, b)
    got = []
    try:
        while True:
            got.append(json.loads(udp.recv(65536).decode()))
            if any(e.get("type") == "response" and
                   e["request"]["id"] == rid for e in got):
                break
    finally:
        udp.close()
    buf = b""
    while buf.count(b"\n") < 3:   # enable's response, request, response
        chunk = conn.recv(65536)
        if not chunk:
            break
        buf += chunk
    conn.close()
    ux.close()
    lines = [json.loads(l) for l in buf.decode().split("\n") if l]
    assert ("request", rid) in [(e["type"], e["request"]["id"]) for e in lines]


def test_syslog_device(asrv):
    name = "sl-" + uuid.uuid4().hex[:6]
    r = asrv.req("PUT", "sys/audit/" + name,
                 json={"type": "syslog", "options": {"facility": "nope"}})
    assert r.status_code == 400
    assert r.json()["errors"] == ['unknown syslog facility "nope"']
    enable(asrv, name, "syslog", facility="LOCAL0", tag="coffer-test")
    try:
        assert asrv.req("GET", "sys/audit").json()["data"][name + "/"][
            "options"] == {"facility": "LOCAL0", "tag": "coffer-test"}
    finally:
        disable(asrv, name)


def test_revocations_without_a_request_are_audited(asrv, tmpdir_audit):
    """Beyond Vault: a lease that ends by itself (expiry) and one revoked
    by a request both leave a "revocation" entry with the lease id, so the
    log answers "when did this credential end" for every lease."""
    path = os.path.join(tmpdir_audit, "revocations.log")
    name = "rev-" + uuid.uuid4().hex[:6]
    enable(asrv, name, "file", file_path=path)
    try:
        r = asrv.req("POST", "auth/token/create", json={"ttl": "1s"})
        assert r.status_code == 200, r.text
        expiring = r.json()["auth"]["client_token"]
        r = asrv.req("POST", "auth/token/create", json={"ttl": "1h"})
        revoked = r.json()["auth"]["client_token"]
        r = asrv.req("POST", "auth/token/revoke", json={"token": revoked})
        assert r.status_code == 204, r.text
        deadline = time.monotonic() + 10
        reasons = {}
        while time.monotonic() < deadline:
            reasons = {}
            for e in read_entries(path):
                if e.get("type") == "revocation":
                    rv = e["revocation"]
                    reasons[rv["lease_id"]] = rv["reason"]
            if sorted(reasons.values()) == ["expired", "token revoked"]:
                break
            time.sleep(0.2)
        assert sorted(reasons.values()) == ["expired", "token revoked"], \
            reasons
        assert all(lid.startswith("auth/token/create/") for lid in reasons)
        # Neither token appears in the file.
        text = open(path).read()
        assert expiring not in text and revoked not in text
    finally:
        disable(asrv, name)


# ---- devices declared in the configuration file (OpenBao's audit stanza) --

import subprocess

from conftest import coffer_bin
from realserver import RealServer


def _declared_config(log_path, extra=""):
    return ('audit "file" "declared" {\n'
            '  description = "from the file",\n'
            '  options = { file_path = "%s", mode = "0640" },\n'
            '}\n%s' % (log_path, extra))


@pytest.fixture(scope="module")
def dsrv():
    d = tempfile.mkdtemp(prefix="coffer-audit-decl-")
    log_path = os.path.join(d, "declared.log")
    srv = RealServer(d, storage="sqlite",
                     extra_config=_declared_config(log_path))
    srv.audit_log = log_path
    srv.start()
    srv.keys, _ = srv.init(shares=1, threshold=1)
    # Nothing is written before unseal: the device is opened then.
    assert not os.path.exists(log_path)
    srv.unseal(srv.keys)
    first = srv.req("GET", "auth/token/lookup-self")
    assert first.status_code == 200, first.text
    srv.first_accessor = first.json()["data"]["accessor"]
    yield srv
    srv.stop()


def test_declared_device_logs_from_the_first_request(dsrv):
    entries = read_entries(dsrv.audit_log)
    # The first request after unseal is the first entry: nothing served
    # before the declared device was enabled.
    assert entries[0]["type"] == "request", entries[0]
    assert entries[0]["request"]["path"] == "auth/token/lookup-self"
    assert entries[1]["type"] == "response"
    assert entries[1]["request"]["path"] == "auth/token/lookup-self"
    h = audit_hash(dsrv, "declared", dsrv.token)
    assert entries[0]["request"]["client_token"] == h
    assert dsrv.token not in open(dsrv.audit_log).read()
    assert stat.S_IMODE(os.stat(dsrv.audit_log).st_mode) == 0o640


def test_declared_device_is_listed(dsrv):
    r = dsrv.req("GET", "sys/audit")
    assert r.status_code == 200, r.text
    dev = r.json()["declared/"]
    assert dev["type"] == "file"
    assert dev["description"] == "from the file"
    assert dev["options"] == {"file_path": dsrv.audit_log, "mode": "0640"}
    assert dev["path"] == "declared/"


def test_declared_device_cannot_be_disabled_through_the_api(dsrv):
    for path in ("declared", "declared/"):
        r = dsrv.req("DELETE", "sys/audit/" + path)
        assert r.status_code == 400, r.text
        assert "declared in the configuration file" in r.text, r.text
        assert "coffer.lua:3)" in r.text, r.text
    assert "declared/" in dsrv.req("GET", "sys/audit").json()
    # Still writing.
    marker = "marker-" + uuid.uuid4().hex
    dsrv.req("GET", "sys/mounts?x=" + marker)
    assert any(e["request"]["path"] == "sys/mounts"
               for e in read_entries(dsrv.audit_log)[-2:])
    # Nor replaced: enabling at its path is refused.
    r = dsrv.req("PUT", "sys/audit/declared",
                 json={"type": "file", "options": {"file_path": "discard"}})
    assert r.status_code == 400 and "path already in use" in r.text, r.text


def test_api_devices_still_allowed_by_default(dsrv):
    name = "api-" + uuid.uuid4().hex[:6]
    r = dsrv.req("PUT", "sys/audit/" + name,
                 json={"type": "file", "options": {"file_path": "discard"}})
    assert r.status_code == 204, r.text
    assert name + "/" in dsrv.req("GET", "sys/audit").json()
    r = dsrv.req("DELETE", "sys/audit/" + name)
    assert r.status_code == 204, r.text


def test_declared_device_survives_restart_with_its_salt(dsrv):
    before = audit_hash(dsrv, "declared", "a-known-value")
    dsrv.stop()
    dsrv.start()
    dsrv.unseal(dsrv.keys)
    assert audit_hash(dsrv, "declared", "a-known-value") == before
    r = dsrv.req("GET", "sys/audit")
    assert list(r.json().get("data", r.json()).keys()).count("declared/") == 1


def test_declared_device_is_not_stored(tmpdir_audit):
    """Removed from the file, it is gone after a restart: config-owned."""
    log_path = os.path.join(tmpdir_audit, "a.log")
    srv = RealServer(tmpdir_audit, extra_config=_declared_config(log_path))
    srv.start()
    try:
        keys, _ = srv.init(shares=1, threshold=1)
        srv.unseal(keys)
        assert "declared/" in srv.req("GET", "sys/audit").json()
        srv.stop()
        with open(srv.config) as f:
            text = f.read()
        with open(srv.config, "w") as f:
            f.write(text[:text.index('audit "file"')])
        srv.start()
        srv.unseal(keys)
        r = srv.req("GET", "sys/audit")
        assert r.status_code == 200
        assert "declared/" not in r.json(), r.text
    finally:
        srv.stop()


def test_api_creation_can_be_switched_off(tmpdir_audit):
    log_path = os.path.join(tmpdir_audit, "a.log")
    srv = RealServer(tmpdir_audit, extra_config=_declared_config(
        log_path, "unsafe_allow_api_audit_creation = false\n"))
    srv.start()
    try:
        keys, _ = srv.init(shares=1, threshold=1)
        srv.unseal(keys)
        for method in ("PUT", "POST"):
            r = srv.req(method, "sys/audit/other",
                        json={"type": "file",
                              "options": {"file_path": "discard"}})
            assert r.status_code == 400, r.text
            assert r.json()["errors"] == [
                "cannot enable audit device via API; use declarative, "
                "config-based audit device management instead"]
        assert list(k for k in srv.req("GET", "sys/audit").json()
                    if k.endswith("/")) == ["declared/"]
        # The declared device is unaffected.
        assert any(e["request"]["path"] == "sys/audit"
                   for e in read_entries(log_path))
    finally:
        srv.stop()


def _start_error(tmpdir, body):
    cfg = os.path.join(tmpdir, "bad.lua")
    with open(cfg, "w") as f:
        f.write('listener "tcp" { address = "127.0.0.1:1", '
                'tls_disable = true }\n'
                'storage "inmem" {}\n' + body)
    p = subprocess.run([coffer_bin(), "server", "-config=" + cfg],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=20)
    assert p.returncode != 0, p.stdout + p.stderr
    return cfg, p.stderr


@pytest.mark.parametrize("body,line,text", [
    ('audit "tape" "x" { }\n', 3, 'unknown audit device type "tape"'),
    ('audit "file" "x" { }\n', 3, "file_path is required"),
    ('audit "file" "x" { file_pth = "/tmp/a" }\n', 3,
     'unknown option "file_pth" for a file device'),
    ('audit "file" "x" { options = { file_path = "rel/a.log" } }\n', 3,
     "file_path must be an absolute path"),
    ('audit "file" "x" { file_path = "/tmp/a", mode = "rw" }\n', 3,
     'invalid file mode "rw"'),
    ('audit "file" "x" { file_path = "/tmp/a", format = "jsonx" }\n', 3,
     "jsonx"),
    ('audit "socket" "s" { address = "127.0.0.1:9", socket_type = "sctp" }'
     '\n', 3, 'unsupported socket_type "sctp"'),
    ('audit "syslog" "s" { facility = "NOPE" }\n', 3,
     'unknown syslog facility "NOPE"'),
    ('audit "file" "x" { file_path = "/tmp/a", log_raw = "maybe" }\n', 3,
     "log_raw"),
    ('audit "file" "x" { file_path = "/tmp/a", options = '
     '{ file_path = "/tmp/b" } }\n', 3, "given twice"),
    ('audit "file" "x" { file_path = {} }\n', 3, "file_path"),
    ('audit "file" "x" { file_path = "/tmp/a" }\n'
     'audit "file" "x/" { file_path = "/tmp/b" }\n', 4,
     "(the first is at line 3)"),
    ('\naudit "file" "x"\n', 4, "has no { ... } block"),
    ('audit "file" "../x" { file_path = "/tmp/a" }\n', 3, "invalid path"),
    ('audit "file" "" { file_path = "/tmp/a" }\n', 3, "invalid path"),
    ('unsafe_allow_api_audit_creation = "sometimes"\n', 3,
     "invalid boolean"),
])
def test_bad_declarations_stop_the_server_with_file_and_line(
        tmpdir_audit, body, line, text):
    cfg, err = _start_error(tmpdir_audit, body)
    assert "%s:%d:" % (cfg, line) in err, err
    assert text in err, err


def test_declaration_forms(tmpdir_audit):
    """audit "file" { ... } takes the type as the path; flat options."""
    log_path = os.path.join(tmpdir_audit, "f.log")
    srv = RealServer(tmpdir_audit, extra_config=(
        'audit "file" { file_path = "%s", hmac_accessor = false, '
        '["local"] = true }\n'
        'audit "socket" "sock" { options = { address = "127.0.0.1:%d", '
        'write_timeout = "1s" } }\n' % (log_path, 9)))
    srv.start()
    try:
        keys, _ = srv.init(shares=1, threshold=1)
        srv.unseal(keys)
        # The socket device cannot connect; the file device takes it.
        r = srv.req("GET", "sys/audit")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["file/"]["options"] == {"file_path": log_path,
                                            "hmac_accessor": "false"}
        assert body["file/"]["local"] is True
        assert body["sock/"]["type"] == "socket"
    finally:
        srv.stop()


# ---- SIGHUP applies the configuration's audit stanzas again ---------------

def _write_stanzas(srv, base, stanzas):
    with open(srv.config, "w") as f:
        f.write(base + stanzas)


def _wait_listed(srv, want, timeout=10):
    """sys/audit's paths once they equal want (SIGHUP is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        got = set(srv.req("GET", "sys/audit").json().get("data", {}))
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_sighup_applies_declared_devices(tmpdir_audit):
    a_log = os.path.join(tmpdir_audit, "a.log")
    b_log = os.path.join(tmpdir_audit, "b.log")
    srv = RealServer(tmpdir_audit, extra_config=_declared_config(a_log))
    with open(srv.config) as f:
        base = f.read()
    base = base[:base.index('audit "file"')]
    srv.start()
    try:
        keys, _ = srv.init(shares=1, threshold=1)
        srv.unseal(keys)
        enable(srv, "api", "file", file_path="discard")
        salt_before = audit_hash(srv, "declared", "known-value")

        # A new stanza appears; the old one keeps writing to the same file.
        _write_stanzas(srv, base, _declared_config(a_log) +
                       'audit "file" "second" { file_path = "%s" }\n' % b_log)
        srv.proc.send_signal(signal.SIGHUP)
        assert _wait_listed(srv, {"declared/", "second/", "api/"}) == \
            {"declared/", "second/", "api/"}
        marker = "m1-" + uuid.uuid4().hex
        srv.req("GET", "sys/mounts?x=" + marker)
        for log in (a_log, b_log):
            assert any(e["request"]["path"] == "sys/mounts"
                       for e in read_entries(log)), log

        # A changed stanza (new file) is re-enabled with its old salt.
        moved = os.path.join(tmpdir_audit, "moved.log")
        _write_stanzas(srv, base, _declared_config(moved) +
                       'audit "file" "second" { file_path = "%s" }\n' % b_log)
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not os.path.exists(moved) and time.monotonic() < deadline:
            srv.req("GET", "sys/health")
            time.sleep(0.05)
        assert os.path.exists(moved)
        assert audit_hash(srv, "declared", "known-value") == salt_before
        a_lines = len(read_entries(a_log))
        srv.req("GET", "sys/mounts")
        assert len(read_entries(a_log)) == a_lines  # no longer written

        # A file that does not load changes nothing.
        _write_stanzas(srv, base, 'audit "file" "broken" { bogus = 1 }\n')
        srv.proc.send_signal(signal.SIGHUP)
        # The file is read after the Lua reload; it must have been read
        # (and refused) before the next one is written.
        assert wait_until(lambda: "configuration not reloaded" in srv.log(),
                          15)
        assert _wait_listed(srv, {"declared/", "second/", "api/"}, 1) == \
            {"declared/", "second/", "api/"}

        # Stanzas removed: their devices go; the API's device stays.
        _write_stanzas(srv, base, "")
        srv.proc.send_signal(signal.SIGHUP)
        assert _wait_listed(srv, {"api/"}) == {"api/"}
        with open(srv.log_path, errors="replace") as f:
            log_text = f.read()
        assert "disabled device declared/" in log_text
    finally:
        srv.stop()
    with open(srv.log_path, errors="replace") as f:
        text = f.read()
    assert not CRASH_PATTERNS.search(text), text[-2000:]
