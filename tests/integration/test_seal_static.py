"""The static auto-unseal seal (OpenBao's seal "static") on real sqlite
servers: init with recovery keys, unsealing itself at start and after a
late init, key rotation through previous_key, a wrong key, bad key
sources refused at start-up, sys/seal then recovery shares, hvac, and
parallel init requests.
"""

import base64
import os
import threading
import time

import hvac
import pytest

from realserver import RealServer


def seal_block(cur_id, cur, prev_id=None, prev=None):
    s = 'seal "static" { current_key_id = "%s", current_key = "%s"' % (
        cur_id, cur)
    if prev_id is not None:
        s += ', previous_key_id = "%s", previous_key = "%s"' % (prev_id, prev)
    return s + " }"


def key_file(d, name, data=None, mode=0o600):
    path = os.path.join(str(d), name)
    with open(path, "wb") as f:
        f.write(os.urandom(32) if data is None else data)
    os.chmod(path, mode)
    return "file://" + path


class StaticServer(RealServer):
    """A RealServer whose seal stanza can be swapped between restarts."""

    def __init__(self, d, block):
        super().__init__(str(d), storage="sqlite", extra_config=block)

    def set_seal(self, block):
        with open(self.config) as f:
            lines = [l for l in f.read().splitlines()
                     if not l.startswith('seal "static"')]
        with open(self.config, "w") as f:
            f.write("\n".join(lines + [block]) + "\n")

    def init_recovery(self, shares=3, threshold=2):
        r = self.req("PUT", "sys/init", json={
            "recovery_shares": shares, "recovery_threshold": threshold})
        assert r.status_code == 200, r.text
        body = r.json()
        self.token = body["root_token"]
        return body

    def status(self):
        r = self.req("GET", "sys/seal-status")
        assert r.status_code == 200, r.text
        return r.json()

    def start_fails(self):
        with pytest.raises(RuntimeError) as e:
            self.start()
        self._log.close()
        self.proc = None
        return str(e.value)


def wait_unsealed(srv, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not srv.status()["sealed"]:
            return True
        time.sleep(0.1)
    return False


def put_policy(srv, name):
    r = srv.req("PUT", "sys/policies/acl/" + name,
                json={"policy": 'path "x/*" { capabilities = ["read"] }'})
    assert r.status_code == 204, r.text


def has_policy(srv, name):
    return srv.req("GET", "sys/policies/acl/" + name).status_code == 200


def test_init_returns_recovery_keys_and_unseals(tmp_path, _repeat):
    srv = StaticServer(tmp_path, seal_block("k1", key_file(tmp_path, "k1")))
    srv.start()
    try:
        st = srv.status()
        assert st["type"] == "static" and st["recovery_seal"] is True
        assert st["initialized"] is False and st["sealed"] is True
        assert (st["t"], st["n"]) == (0, 0)
        r = srv.req("PUT", "sys/init", json={"secret_shares": 5,
                                             "secret_threshold": 3})
        assert r.status_code == 400
        assert r.json()["errors"] == [
            "parameters secret_shares,secret_threshold not applicable to "
            "seal type static"]
        r = srv.req("PUT", "sys/init", json={"recovery_shares": 0})
        assert r.status_code == 400
        assert r.json()["errors"] == [
            "recovery configuration must specify a positive number of shares"]
        r = srv.req("PUT", "sys/init", json={"recovery_shares": 3,
                                             "recovery_threshold": 4})
        assert r.status_code == 400
        assert r.json()["errors"][0].startswith(
            "invalid recovery configuration: ")
        body = srv.init_recovery(3, 2)
        assert body["keys"] == [] and body["keys_base64"] == []
        assert len(body["recovery_keys"]) == 3
        assert len(body["recovery_keys_base64"]) == 3
        for h, b in zip(body["recovery_keys"], body["recovery_keys_base64"]):
            assert bytes.fromhex(h) == base64.b64decode(b)
        st = srv.status()
        assert st["sealed"] is False and st["initialized"] is True
        assert st["type"] == "shamir" and st["recovery_seal"] is True
        assert (st["t"], st["n"]) == (2, 3)
        r = srv.req("GET", "auth/token/lookup-self")
        assert r.status_code == 200, r.text
        r = srv.req("PUT", "sys/init", json={"recovery_shares": 1,
                                                 "recovery_threshold": 1})
        assert r.status_code == 400
        assert r.json()["errors"] == ["Vault is already initialized"]
        # the key never reaches the log
        with open(os.path.join(str(tmp_path), "k1"), "rb") as f:
            raw = f.read()
        log = srv.log()
        assert raw.hex() not in log
        assert base64.b64encode(raw).decode() not in log
        # nor the recovery keys or the root key in clear in storage
        with open(srv.db_path, "rb") as f:
            db = f.read()
        for h in body["recovery_keys"]:
            assert bytes.fromhex(h) not in db
    finally:
        srv.stop()


def test_restart_unseals_itself(tmp_path, _repeat):
    srv = StaticServer(tmp_path, seal_block("k1", key_file(tmp_path, "k1")))
    srv.start()
    try:
        srv.init_recovery(1, 1)
        put_policy(srv, "kept")
        srv.stop()
        srv.start()
        # unsealed before the listener opened: no share, no wait
        assert srv.status()["sealed"] is False
        assert has_policy(srv, "kept")
        srv.kill9()
        srv.start()
        assert srv.status()["sealed"] is False
        assert has_policy(srv, "kept")
    finally:
        srv.stop()


def test_node_started_before_init_unseals_when_init_happens(tmp_path,
                                                           _repeat):
    """Two processes on one sqlite file: the second was up (sealed,
    uninitialised) before the first was initialised, and unseals itself
    within a few seconds (its 2 s poll)."""
    key = key_file(tmp_path, "k1")
    a = StaticServer(tmp_path, seal_block("k1", key))
    bdir = tmp_path / "b"
    bdir.mkdir()
    b = StaticServer(bdir, seal_block("k1", key))
    b.db_path = a.db_path
    with open(b.config) as f:
        text = f.read().replace(str(bdir / "coffer.db"), a.db_path)
    with open(b.config, "w") as f:
        f.write(text)
    a.start()
    b.start()
    try:
        assert b.status()["initialized"] is False
        a.init_recovery(1, 1)
        assert wait_unsealed(b, 8), b.log()
        b.token = a.token
        assert b.req("GET", "auth/token/lookup-self").status_code == 200
    finally:
        a.stop()
        b.stop()


def test_rotation_rewraps_with_the_current_key(tmp_path, _repeat):
    k1 = key_file(tmp_path, "k1")
    k2 = key_file(tmp_path, "k2")
    srv = StaticServer(tmp_path, seal_block("k1", k1))
    srv.start()
    try:
        srv.init_recovery(1, 1)
        put_policy(srv, "kept")
        srv.stop()
        srv.set_seal(seal_block("k2", k2, "k1", k1))
        srv.start()
        assert srv.status()["sealed"] is False
        assert 'now wrapped with key id "k2"' in srv.log()
        srv.stop()
        # the old key can go: the new one alone unseals
        srv.set_seal(seal_block("k2", k2))
        srv.start()
        assert srv.status()["sealed"] is False
        assert has_policy(srv, "kept")
        srv.stop()
        # and the old one alone no longer does
        srv.set_seal(seal_block("k1", k1))
        srv.start()
        st = srv.status()
        assert st["sealed"] is True and st["initialized"] is True
        assert 'wrapped with key id "k2"' in srv.log()
    finally:
        srv.stop()


def test_wrong_key_stays_sealed_with_a_clear_error(tmp_path, _repeat):
    srv = StaticServer(tmp_path, seal_block("k1", key_file(tmp_path, "k1")))
    srv.start()
    try:
        body = srv.init_recovery(1, 1)
        srv.stop()
        srv.set_seal(seal_block("k1", key_file(tmp_path, "other")))
        srv.start()
        st = srv.status()
        assert st["sealed"] is True and st["initialized"] is True
        assert st["recovery_seal"] is True
        log = srv.log()
        assert "auto-unseal failed" in log
        assert 'does not open with the key of id "k1"' in log
        # recovery keys cannot help: the root key needs the static key
        r = srv.req("PUT", "sys/unseal",
                    json={"key": body["recovery_keys_base64"][0]})
        assert r.status_code == 400
        assert srv.status()["sealed"] is True
        r = srv.req("GET", "sys/policies/acl/default")
        assert r.status_code == 503
    finally:
        srv.stop()


@pytest.mark.parametrize("case", ["mode", "missing", "short", "long",
                                  "hexshort", "noid", "envunset", "type",
                                  "twice", "halfprev", "unknownkey",
                                  "sameid"])
def test_bad_key_sources_stop_the_start(tmp_path, case):
    if case == "mode":
        block = seal_block("k1", key_file(tmp_path, "k", mode=0o644))
        want = "mode 0644"
    elif case == "missing":
        block = seal_block("k1", "file://%s/nope.key" % tmp_path)
        want = "cannot open key file"
    elif case == "short":
        block = seal_block("k1", key_file(tmp_path, "k", os.urandom(31)))
        want = "32 bytes"
    elif case == "long":
        block = seal_block("k1", key_file(tmp_path, "k", os.urandom(33)))
        want = "32 bytes"
    elif case == "hexshort":
        block = seal_block("k1", "ab" * 31)
        want = "32 bytes"
    elif case == "noid":
        block = 'seal "static" { current_key = "%s" }' % ("ab" * 32)
        want = "current_key_id is required"
    elif case == "envunset":
        block = seal_block("k1", "env://H5_NO_SUCH_VARIABLE")
        want = 'environment variable "H5_NO_SUCH_VARIABLE" is not set'
    elif case == "type":
        block = 'seal "awskms" { kms_key_id = "x" }'
        want = 'unknown seal type "awskms"'
    elif case == "twice":
        block = seal_block("k1", "ab" * 32) + "\n" + seal_block("k2", "cd" * 32)
        want = "a second seal block"
    elif case == "halfprev":
        block = ('seal "static" { current_key_id = "k1", current_key = "%s",'
                 ' previous_key = "%s" }' % ("ab" * 32, "cd" * 32))
        want = "previous_key and previous_key_id go together"
    elif case == "unknownkey":
        block = ('seal "static" { current_key_id = "k1", current_key = "%s",'
                 ' key_ring = true }' % ("ab" * 32))
        want = 'unknown key "key_ring" in seal "static"'
    else:
        block = seal_block("k1", "ab" * 32, "k1", "cd" * 32)
        want = "name different keys"
    srv = StaticServer(tmp_path, block)
    msg = srv.start_fails()
    assert want in msg, msg
    assert "seal" in msg
    # a key given inline is never echoed
    assert "ab" * 32 not in msg and "cd" * 32 not in msg


def test_env_key_source(tmp_path, monkeypatch, _repeat):
    monkeypatch.setenv("H5_COFFER_SEAL_KEY", os.urandom(32).hex())
    srv = StaticServer(tmp_path,
                       seal_block("e1", "env://H5_COFFER_SEAL_KEY"))
    srv.start()
    try:
        srv.init_recovery(1, 1)
        srv.stop()
        srv.start()
        assert srv.status()["sealed"] is False
    finally:
        srv.stop()


def test_sys_seal_then_recovery_keys_unseal(tmp_path, _repeat):
    srv = StaticServer(tmp_path, seal_block("k1", key_file(tmp_path, "k1")))
    srv.start()
    try:
        body = srv.init_recovery(3, 2)
        r = srv.req("PUT", "sys/seal")
        assert r.status_code == 204, r.text
        # a sealed node stays sealed: no auto-unseal until a restart
        time.sleep(2.5)
        st = srv.status()
        assert st["sealed"] is True and (st["t"], st["n"]) == (2, 3)
        keys = body["recovery_keys_base64"]
        r = srv.req("PUT", "sys/unseal", json={"key": keys[0]})
        assert r.status_code == 200 and r.json()["progress"] == 1
        r = srv.req("PUT", "sys/unseal", json={"key": keys[1]})
        assert r.status_code == 200 and r.json()["sealed"] is False
        assert srv.req("GET", "auth/token/lookup-self").status_code == 200
        # a forged share set is refused
        srv.req("PUT", "sys/seal")
        bad = base64.b64encode(os.urandom(33)).decode()
        srv.req("PUT", "sys/unseal", json={"key": keys[0]})
        r = srv.req("PUT", "sys/unseal", json={"key": bad})
        assert r.status_code == 400
        assert r.json()["errors"] == ["Unseal failed, invalid key"]
        assert srv.status()["sealed"] is True
        # and a restart unseals it again
        srv.stop()
        srv.start()
        assert srv.status()["sealed"] is False
    finally:
        srv.stop()


def test_hvac_initialize_and_seal_status(tmp_path, _repeat):
    srv = StaticServer(tmp_path, seal_block("k1", key_file(tmp_path, "k1")))
    srv.start()
    try:
        c = hvac.Client(url=srv.addr)
        assert c.sys.read_seal_status()["recovery_seal"] is True
        assert c.sys.is_initialized() is False
        out = c.sys.initialize(secret_shares=None, secret_threshold=None,
                               recovery_shares=3, recovery_threshold=2)
        assert len(out["recovery_keys"]) == 3 and out["keys"] == []
        assert c.sys.is_initialized() is True
        assert c.sys.is_sealed() is False
        st = c.sys.read_seal_status()
        assert st["recovery_seal"] is True and st["t"] == 2
        c.token = out["root_token"]
        assert c.is_authenticated()
    finally:
        srv.stop()


def test_parallel_init_one_wins(tmp_path, _repeat):
    srv = StaticServer(tmp_path, seal_block("k1", key_file(tmp_path, "k1")))
    srv.start()
    results = []
    try:
        def go():
            r = srv.req("PUT", "sys/init", json={"recovery_shares": 1,
                                                 "recovery_threshold": 1})
            results.append((r.status_code, r.json()))
        ts = [threading.Thread(target=go) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        ok = [b for code, b in results if code == 200]
        assert len(ok) == 1, results
        assert all(b == {"errors": ["Vault is already initialized"]}
                   for code, b in results if code != 200)
        assert srv.status()["sealed"] is False
        srv.token = ok[0]["root_token"]
        assert srv.req("GET", "auth/token/lookup-self").status_code == 200
        # the one recovery key that was handed out is the stored one
        srv.req("PUT", "sys/seal")
        r = srv.req("PUT", "sys/unseal",
                    json={"key": ok[0]["recovery_keys_base64"][0]})
        assert r.status_code == 200 and r.json()["sealed"] is False
    finally:
        srv.stop()


def test_shamir_refuses_recovery_parameters(tmp_path, _repeat):
    srv = RealServer(str(tmp_path), storage="sqlite")
    srv.start()
    try:
        r = srv.req("PUT", "sys/init", json={
            "secret_shares": 1, "secret_threshold": 1,
            "recovery_shares": 3, "recovery_threshold": 2})
        assert r.status_code == 400
        assert r.json()["errors"] == [
            "parameters recovery_shares,recovery_threshold not applicable "
            "to seal type shamir"]
        st = srv.status() if hasattr(srv, "status") else \
            srv.req("GET", "sys/seal-status").json()
        assert st["type"] == "shamir" and st["recovery_seal"] is False
    finally:
        srv.stop()
