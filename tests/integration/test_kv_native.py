"""Native kv reads (src/kv_read.c, issue 14) answer exactly as the Lua engine.

GET <kv v1 mount>/<path> and GET <kv v2 mount>/data/<path>[?version=N] are
answered in C when the answer is provably the Lua engine's; everything
else falls back to lua/engines/kv.lua. What must hold:
  - differential: the same operations on a server with native reads and
    one without (COFFER_KV_NATIVE_READS=0) give the same statuses and the
    same bodies, byte for byte once request ids and timestamps (which
    differ between two servers) are masked;
  - on one server, a native read and the Lua read of the same stored
    state (forced by a query the native path leaves to the engine:
    ?version=0N, or any parameter on v1) are byte-identical, timestamps
    included;
  - nothing stale: a write, delete, destroy, token revocation or policy
    change is seen by the very next read;
  - the native path really runs (its debug log line counts the reads it
    answered) and the fallbacks really fall back.
"""

import json
import os
import re
import shutil
import threading
import uuid

import pytest

from conftest import Server, check_server_health

NATIVE_LINE = "kv_read: answered natively"
TS = re.compile(r'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"')
RID = re.compile(r'"request_id":"[^"]*"')


def native_count(srv):
    return srv.stderr_text().count(NATIVE_LINE)


def mask(text, times=True):
    text = RID.sub('"request_id":"-"', text)
    return TS.sub('"<ts>"', text) if times else text


@pytest.fixture(scope="module")
def pair():
    on = Server(["-log-level=debug"], env={"COFFER_KV_NATIVE_READS": "1"})
    off = Server(["-log-level=debug"], env={"COFFER_KV_NATIVE_READS": "0"})
    yield on, off
    problems = [check_server_health(s) for s in (on, off)]
    rcs = [s.stop(timeout=30) for s in (on, off)]  # both, whatever fails
    assert not any(problems), problems
    assert rcs == [0, 0], (rcs, off.stderr_text()[-2000:])


class Both:
    """Runs every operation on both servers; reads are compared."""

    def __init__(self, pair):
        self.on, self.off = pair
        self.tokens = {}  # name -> (token on, token off)
        self.reads = 0

    def do(self, method, path, tok=None, **kw):
        rs = []
        for i, s in enumerate((self.on, self.off)):
            t = True if tok is None else self.tokens[tok][i]
            rs.append(s.req(method, path, token=t, **kw))
        assert rs[0].status_code == rs[1].status_code, (
            method, path, rs[0].status_code, rs[0].text, rs[1].text)
        return rs

    def write(self, path, body, method="POST"):
        rs = self.do(method, path, json=body)
        assert rs[0].status_code < 300, (path, rs[0].text)
        return rs

    def read(self, path, tok=None, **kw):
        """GET on both; same status, same masked body, same content type."""
        self.reads += 1
        a, b = self.do("GET", path, tok=tok, **kw)
        assert mask(a.text) == mask(b.text), (path, a.text[:600], b.text[:600])
        assert a.headers.get("Content-Type") == b.headers.get("Content-Type")
        return a

    def token(self, name, policies):
        out = []
        for s in (self.on, self.off):
            r = s.req("POST", "auth/token/create",
                      json={"policies": policies, "no_default_policy": True})
            assert r.status_code == 200, r.text
            out.append(r.json()["auth"]["client_token"])
        self.tokens[name] = tuple(out)


def same_as_lua(srv, native_path, lua_path, tok=True):
    """On one server: the native read and the Lua read, byte-identical."""
    before = native_count(srv)
    a = srv.req("GET", native_path, token=tok)
    mid = native_count(srv)
    b = srv.req("GET", lua_path, token=tok)
    after = native_count(srv)
    assert mid == before + 1, "the native path did not answer " + native_path
    assert after == mid, "the native path answered " + lua_path
    assert a.status_code == b.status_code, (a.text, b.text)
    assert mask(a.text, times=False) == mask(b.text, times=False), (
        a.text[:600], b.text[:600])
    return a


@pytest.fixture
def mounts(pair):
    both = Both(pair)
    tag = uuid.uuid4().hex[:6]
    v1, v2 = "n1-" + tag, "n2-" + tag
    both.write("sys/mounts/" + v1, {"type": "kv"})
    both.write("sys/mounts/" + v2, {"type": "kv", "options": {"version": "2"}})
    yield both, v1, v2
    both.do("DELETE", "sys/mounts/" + v1)
    both.do("DELETE", "sys/mounts/" + v2)


UNICODE = {
    "q": "\"\\/\b\f\n\r\t\u0001\u007f", "emoji": "\U0001F600", "\u00e9": "\u00fc",
    "": "empty key", "k\"ey": "x", "z": "last", "A": "upper",
}
NUMBERS = {
    "zero": 0, "neg": -1, "int32": 2147483647, "big32": 2147483648,
    "e15": 10 ** 15, "e15m": 10 ** 15 - 1, "two53": 2 ** 53 + 1,
    "huge": 12345678901234567890, "negzero": -0.0, "f": 3.14159,
    "tiny": 1e-7, "large": 1.5e300, "half": 0.5,
}


def nested(depth):
    v = {"leaf": [1, "two", None, True, {"x": {}}]}
    for i in range(depth):
        v = {"l%d" % i: v, "a": [i]}
    return v


def test_v2_differential(mounts):
    both, _, m = mounts
    p = m + "/data/app"
    both.write(p, {"data": {"user": "u", "password": "p" * 20}})
    both.read(p)
    for i in range(3):  # overwrites make versions 2..4
        both.write(p, {"data": {"n": i, "list": [i, {"b": 1, "a": 2}]}})
        both.read(p)
    for v in ["0", "1", "2", "4", "5", "00", "01", "-1", "abc", "1.0", " 1",
              "", "999999999", "99999999999999999999", "1e2"]:
        both.read(p, params={"version": v})
    both.read(p, params={"version": ["1", "2"]})
    both.read(p, params={"help": "1"})
    both.read(p, params={"list": "true"})
    both.read(p, params={"unknown": "x"})
    both.do("LIST", m + "/metadata/")
    both.read(m + "/metadata/app")
    # missing paths and routes that are not data reads
    for q in ["data/missing", "data/", "data", "data/app/", "data//app",
              "config", "metadata/app", "subkeys/app", "nothing/here", ""]:
        both.read(m + "/" + q)
    # unicode and escapes, in the path and the values; large; nested
    odd = m + "/data/\u00fcn\u00ef/\u00e7\u00f8d\u00e9 \u2603/%25x"
    both.write(odd, {"data": UNICODE})
    both.read(odd)
    both.write(m + "/data/big", {"data": {"v": "x" * 300000}})
    both.read(m + "/data/big")
    both.write(m + "/data/nums", {"data": NUMBERS})
    both.read(m + "/data/nums")
    for d in (3, 40, 110):
        both.write(m + "/data/deep%d" % d, {"data": nested(d)})
        both.read(m + "/data/deep%d" % d)
    both.write(m + "/data/empty", {"data": {"o": {}, "a": []}})
    both.read(m + "/data/empty")
    both.write(m + "/data/scalar", {"data": {"s": "only"}})
    both.read(m + "/data/scalar")


def test_v2_delete_undelete_destroy_metadata(mounts):
    both, _, m = mounts
    p = m + "/data/life"
    for i in range(3):
        both.write(p, {"data": {"i": i}})
    both.do("DELETE", p)  # soft delete of version 3
    both.read(p)
    both.read(p, params={"version": "3"})
    both.read(p, params={"version": "2"})
    both.write(m + "/undelete/life", {"versions": [3]})
    both.read(p)
    both.write(m + "/delete/life", {"versions": [1, 2]})
    both.read(p, params={"version": "1"})
    both.write(m + "/destroy/life", {"versions": [2, 3]})
    both.read(p)
    both.read(p, params={"version": "2"})
    both.write(m + "/undelete/life", {"versions": [1, 2]})
    both.read(p, params={"version": "1"})
    both.read(p, params={"version": "2"})
    # custom metadata: sorted, escaped, replaced, emptied (an escaped key
    # sends the record to the engine: both answers are compared anyway)
    for cm in ({"b": "2", "a": "1", "\u00e9": "v\\al\"\u00fc"},
               {"\u00e9\"": "x", "a": "1"}, {"z": "1"}):
        both.write(m + "/metadata/life", {"custom_metadata": cm})
        both.read(p)
        assert both.read(p, params={"version": "1"}).json()["data"][
            "metadata"]["custom_metadata"] == cm
    both.write(m + "/metadata/life", {"custom_metadata": {}})
    both.read(p)
    # max_versions trims the oldest; delete_version_after in the future
    t = m + "/data/trim"
    both.write(m + "/metadata/trim", {"max_versions": 2,
                                      "delete_version_after": "1h"})
    for i in range(4):
        both.write(t, {"data": {"i": i}})
    for v in ["0", "1", "2", "3", "4"]:
        both.read(t, params={"version": v})
    # metadata without any version, then the metadata deleted
    both.write(m + "/metadata/bare", {"max_versions": 3})
    both.read(m + "/data/bare")
    both.do("DELETE", m + "/metadata/life")
    both.read(p)
    both.read(p, params={"version": "1"})


def test_v1_differential(mounts):
    both, m, _ = mounts
    both.write(m + "/app", {"user": "u", "password": "p"})
    both.read(m + "/app")
    both.write(m + "/app", {"user": "u2"})
    both.read(m + "/app")
    both.write(m + "/ttl", {"ttl": "1h", "v": 1})
    both.read(m + "/ttl")
    both.write(m + "/lease", {"lease": "30m", "v": 1})
    both.read(m + "/lease")
    both.write(m + "/badttl", {"ttl": "soon"})
    both.read(m + "/badttl")
    both.write(m + "/odd/\u00fcn\u00ef \u2603", UNICODE)
    both.read(m + "/odd/\u00fcn\u00ef \u2603")
    both.write(m + "/nums", NUMBERS)
    both.read(m + "/nums")
    both.write(m + "/deep", nested(60))
    both.read(m + "/deep")
    both.write(m + "/empty", {"o": {}, "a": []})
    both.read(m + "/empty")
    both.write(m + "/big", {"v": "y" * 200000})
    both.read(m + "/big")
    for q in ["missing", "odd", "odd/", "", "app/"]:
        both.read(m + "/" + q)
    both.read(m + "/app", params={"help": "1"})
    both.read(m + "/app", params={"x": "1"})
    both.do("LIST", m + "/")
    both.do("DELETE", m + "/app")
    both.read(m + "/app")


def test_nothing_stale(mounts):
    """Writes, deletes, revocations and policy changes are seen at once."""
    both, m1, m2 = mounts
    p = m2 + "/data/s"
    for i in range(15):  # write then immediately read, on both paths
        both.write(p, {"data": {"i": i}})
        a = both.read(p)
        assert a.json()["data"]["data"] == {"i": i}
        both.write(m1 + "/s", {"i": i})
        assert both.read(m1 + "/s").json()["data"] == {"i": i}
    both.do("DELETE", p)
    assert both.read(p).status_code == 404
    both.write(m2 + "/destroy/s", {"versions": [15]})
    assert both.read(p).json()["data"]["metadata"]["destroyed"] is True
    # policy-limited token: allowed, denied elsewhere, then revoked
    pol = "pol-" + uuid.uuid4().hex[:6]
    both.write("sys/policies/acl/" + pol, {"policy": (
        'path "%s/data/ok" { capabilities = ["read"] }\n'
        'path "%s/ok" { capabilities = ["read"] }\n' % (m2, m1))},
        method="PUT")
    both.write(m2 + "/data/ok", {"data": {"k": "v"}})
    both.write(m2 + "/data/no", {"data": {"k": "v"}})
    both.write(m1 + "/ok", {"k": "v"})
    both.token("t", [pol])
    assert both.read(m2 + "/data/ok", tok="t").status_code == 200
    assert both.read(m1 + "/ok", tok="t").status_code == 200
    assert both.read(m2 + "/data/no", tok="t").status_code == 403
    assert both.read(m2 + "/data/ok", tok="t",
                     params={"version": "1"}).status_code == 200
    # the policy loses the v2 path: the next read is refused
    both.write("sys/policies/acl/" + pol, {"policy": (
        'path "%s/ok" { capabilities = ["read"] }\n' % m1)}, method="PUT")
    assert both.read(m2 + "/data/ok", tok="t").status_code == 403
    assert both.read(m1 + "/ok", tok="t").status_code == 200
    # revoked between two reads
    for i, s in enumerate((both.on, both.off)):
        r = s.req("POST", "auth/token/revoke",
                  json={"token": both.tokens["t"][i]})
        assert r.status_code == 204, r.text
    assert both.read(m1 + "/ok", tok="t").status_code == 403
    # no token, a wrong token
    assert both.do("GET", m1 + "/ok", tok=None,
                   headers={"X-Vault-Token": "nope"})[0].status_code == 403
    # the mount disabled, then enabled again empty
    both.do("DELETE", "sys/mounts/" + m1)
    assert both.read(m1 + "/ok").status_code == 404
    both.write("sys/mounts/" + m1, {"type": "kv"})
    assert both.read(m1 + "/ok").status_code == 404
    both.do("DELETE", "sys/mounts/" + m2)
    assert both.read(p).status_code == 404
    both.write("sys/mounts/" + m2,
               {"type": "kv", "options": {"version": "2"}})
    assert both.read(p).status_code == 404


def test_native_equals_lua_on_one_server(pair, mounts):
    """Byte for byte, timestamps included: native vs the engine."""
    on = pair[0]
    _, m1, m2 = mounts
    p = m2 + "/data/one"
    for i in range(3):
        on.req("POST", p, json={"data": {"i": i, "u": UNICODE}})
    on.req("POST", m2 + "/metadata/one",
           json={"custom_metadata": {"z": "1", "a": "2"}})
    same_as_lua(on, p, p + "?version=00")
    same_as_lua(on, p + "?version=2", p + "?version=02")
    same_as_lua(on, p + "?version=7", p + "?version=07")  # 404
    on.req("DELETE", p)
    r = same_as_lua(on, p, p + "?version=00")  # deleted: 404 envelope
    assert r.status_code == 404 and r.json()["data"]["data"] is None
    on.req("POST", m2 + "/destroy/one", json={"versions": [1]})
    same_as_lua(on, p + "?version=1", p + "?version=01")
    same_as_lua(on, m2 + "/data/none", m2 + "/data/none?version=00")
    on.req("POST", m1 + "/one", json={"a": 1, "b": [True, None], "c": "d"})
    r = same_as_lua(on, m1 + "/one", m1 + "/one?x=1")
    assert r.json()["lease_duration"] > 0
    same_as_lua(on, m1 + "/none", m1 + "/none?x=1")


@pytest.mark.once
def test_audit_entries_match(pair, mounts, tmp_path):
    """The audit response entry of a native read is the Lua read's."""
    on = pair[0]
    _, _, m2 = mounts
    dev = "kvn-" + uuid.uuid4().hex[:6]
    log = tmp_path / "audit.log"
    r = on.req("PUT", "sys/audit/" + dev,
               json={"type": "file", "options": {"file_path": str(log)}})
    assert r.status_code == 204, r.text
    try:
        p = m2 + "/data/aud"
        on.req("POST", p, json={"data": {"pw": "hunter2", "n": 1}})
        same_as_lua(on, p, p + "?version=00")
    finally:
        on.req("DELETE", "sys/audit/" + dev)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    resp = [e["response"] for e in entries
            if e.get("type") == "response" and
            e["request"]["path"] == p and
            e["request"]["operation"] == "read"]
    assert len(resp) == 2, entries
    assert resp[0] == resp[1]
    assert "hunter2" not in log.read_text()


def test_native_path_runs_and_falls_back(pair, mounts):
    """Counted by the native path's debug line; the switch turns it off."""
    on, off = pair
    both, m1, m2 = mounts
    both.write(m2 + "/data/c", {"data": {"x": 1}})
    both.write(m1 + "/c", {"x": 1})
    n_on, n_off = native_count(on), native_count(off)
    for _ in range(5):
        both.read(m2 + "/data/c")
        both.read(m2 + "/data/c", params={"version": "1"})
        both.read(m1 + "/c")
        both.read(m2 + "/data/missing")
    assert native_count(on) == n_on + 20
    assert native_count(off) == n_off == 0
    # each of these is left to the engine
    falls = [(m2 + "/data/c", {"version": "01"}),
             (m2 + "/data/c", {"help": "1"}),
             (m2 + "/data/c", {"version": "1", "x": "2"}),
             (m2 + "/metadata/c", None),
             (m2 + "/data/", None),
             (m1 + "/c", {"x": "1"}),
             (m1 + "/", None)]
    before = native_count(on)
    for path, params in falls:
        both.read(path, params=params)
    wrapped = on.req("GET", m2 + "/data/c",
                     headers={"X-Vault-Wrap-TTL": "60"})
    assert wrapped.status_code == 200 and wrapped.json()["wrap_info"]
    assert native_count(on) == before
    # stored data the Lua round trip would change goes to the engine too
    both.write(m2 + "/data/e", {"data": {"n": 10 ** 15}})
    both.write(m1 + "/t", {"ttl": "5m"})
    before = native_count(on)
    both.read(m2 + "/data/e")
    both.read(m1 + "/t")
    assert native_count(on) == before


def test_concurrent_writes_and_reads(pair, mounts):
    """Readers racing a writer: data and metadata of one version, in order."""
    on = pair[0]
    _, _, m2 = mounts
    p = m2 + "/data/race"
    on.req("POST", p, json={"data": {"n": 1}})
    errors, stop = [], threading.Event()

    def writer():
        for i in range(2, 40):
            r = on.req("POST", p, json={"data": {"n": i}})
            if r.status_code != 200:
                errors.append(r.text)
        stop.set()

    def reader():
        last = 0
        while not stop.is_set():
            r = on.req("GET", p)
            if r.status_code != 200:
                errors.append(r.text)
                continue
            d = r.json()["data"]
            v = d["metadata"]["version"]
            if d["data"]["n"] != v or v < last:
                errors.append("version %s with %s after %s" % (v, d, last))
            last = v

    before = native_count(on)
    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[:5]
    assert native_count(on) > before


def test_an_edited_kv_lua_turns_native_reads_off(tmp_path):
    """A kv.lua other than the one kv_read.c answers for (an operator's
    edit where it is installed): reads go through that kv.lua, none is
    answered natively, and the log says why."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                        "lua")
    lua = tmp_path / "lua"
    shutil.copytree(root, lua)
    kv = lua / "engines" / "kv.lua"
    kv.write_text(kv.read_text() + "\n-- the operator's edit\n")
    srv = Server(["-log-level=debug"], env={"COFFER_KV_NATIVE_READS": "1",
                                            "COFFER_LUA_DIR": str(lua)})
    try:
        r = srv.req("POST", "secret/data/app", json={"data": {"a": "b"}})
        assert r.status_code == 200, r.text
        for _ in range(5):
            r = srv.req("GET", "secret/data/app")
            assert r.status_code == 200, r.text
            assert r.json()["data"]["data"] == {"a": "b"}
        assert native_count(srv) == 0
        assert "engines/kv.lua is not the one this build" in \
            srv.stderr_text()
    finally:
        assert srv.stop(timeout=30) == 0
