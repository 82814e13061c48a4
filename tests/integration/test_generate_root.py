"""Operator commands on real sqlite servers (issue 12): sys/generate-root
(OTP, encoded token, decoding, using it), sys/rekey (new shares replace the
old ones across a restart), the recovery variants with the static seal,
hostile inputs (wrong nonce, wrong shares, repeats, garbage keys), races,
hvac's helpers and the CLI.
"""

import base64
import json
import os
import threading

import hvac
import pytest

from realserver import RealServer
from test_ha import cluster, pg  # noqa: F401 (fixtures)
from test_seal_static import StaticServer, key_file, seal_block


def decode_token(encoded, otp):
    """Vault's roottoken.DecodeToken: base64 (raw std) then XOR the otp."""
    raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    assert len(raw) == len(otp)
    return bytes(a ^ b for a, b in zip(raw, otp.encode())).decode()


@pytest.fixture
def srv(tmp_path):
    s = RealServer(str(tmp_path), storage="sqlite")
    s.start()
    s.keys, _ = s.init(shares=3, threshold=2)
    s.unseal(s.keys)
    yield s
    s.stop()


def start_gen(srv, body=None):
    r = srv.req("PUT", "sys/generate-root/attempt", token=False,
                json=body or {})
    assert r.status_code == 200, r.text
    return r.json()


def gen_update(srv, key, nonce):
    return srv.req("PUT", "sys/generate-root/update", token=False,
                   json={"key": key, "nonce": nonce})


def check_root(srv, token):
    info = hvac.Client(url=srv.addr, token=token).auth.token.lookup_self()
    assert info["data"]["policies"] == ["root"]


def test_generate_root_flow(srv):
    st = srv.req("GET", "sys/generate-root/attempt", token=False).json()
    assert st["started"] is False and st["required"] == 2
    assert st["otp_length"] == 28 and st["complete"] is False
    st = start_gen(srv)
    otp, nonce = st["otp"], st["nonce"]
    assert st["started"] and len(otp) == 28 and nonce
    r = gen_update(srv, srv.keys[0], nonce)
    assert r.status_code == 200, r.text
    assert r.json()["progress"] == 1 and not r.json()["complete"]
    # the same share again is ignored
    assert gen_update(srv, srv.keys[0], nonce).json()["progress"] == 1
    st = srv.req("GET", "sys/generate-root/attempt", token=False).json()
    assert st["progress"] == 1 and st["otp"] == "" and st["nonce"] == nonce
    r = gen_update(srv, srv.keys[1], nonce)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["complete"] and body["encoded_token"] == \
        body["encoded_root_token"]
    assert "=" not in body["encoded_token"]
    token = decode_token(body["encoded_token"], otp)
    assert token.startswith("hvs.") and token != srv.token
    check_root(srv, token)
    # the attempt is over
    st = srv.req("GET", "sys/generate-root/attempt", token=False).json()
    assert st["started"] is False and st["progress"] == 0
    assert gen_update(srv, srv.keys[2], nonce).status_code == 400


def test_generate_root_errors(srv):
    r = gen_update(srv, srv.keys[0], "nope")
    assert r.status_code == 400 and "no root generation in progress" in \
        r.text
    r = srv.req("PUT", "sys/generate-root/attempt", token=False,
                json={"pgp_key": "abc"})
    assert r.status_code == 400 and "pgp_key" in r.text
    r = srv.req("PUT", "sys/generate-root/attempt", token=False,
                json={"otp": "short"})
    assert r.status_code == 400
    nonce = start_gen(srv)["nonce"]
    r = srv.req("PUT", "sys/generate-root/attempt", token=False, json={})
    assert r.status_code == 400 and "already in progress" in r.text
    r = gen_update(srv, srv.keys[0], "wrong-" + nonce)
    assert r.status_code == 400
    assert "incorrect nonce supplied; nonce for this root generation " \
        "operation is" in r.text
    r = srv.req("PUT", "sys/generate-root/update", token=False,
                json={"key": srv.keys[0]})
    assert r.status_code == 400
    for bad in ["zz", "", "AAAA", "x" * 5000]:
        r = gen_update(srv, bad, nonce)
        assert r.status_code == 400, (bad, r.text)
    # shares of another server: verification fails, progress resets
    other = base64.b64encode(os.urandom(33)).decode()
    assert gen_update(srv, srv.keys[0], nonce).status_code == 200
    r = gen_update(srv, other, nonce)
    assert r.status_code == 400 and "verification failed" in r.text
    st = srv.req("GET", "sys/generate-root/attempt", token=False).json()
    assert st["started"] and st["progress"] == 0 and st["nonce"] == nonce
    # cancel
    r = srv.req("DELETE", "sys/generate-root/attempt", token=False)
    assert r.status_code == 204
    st = srv.req("GET", "sys/generate-root/attempt", token=False).json()
    assert st["started"] is False and st["nonce"] == ""
    assert gen_update(srv, srv.keys[0], nonce).status_code == 400


def test_generate_root_sealed(srv):
    srv.req("PUT", "sys/seal")
    r = srv.req("GET", "sys/generate-root/attempt", token=False)
    assert r.status_code == 503
    r = srv.req("PUT", "sys/rekey/init", token=False,
                json={"secret_shares": 1, "secret_threshold": 1})
    assert r.status_code == 503


def test_generate_root_parallel(srv):
    """Many updates at once: exactly one completes, with one valid token."""
    st = start_gen(srv)
    results = []

    def go(k):
        results.append(gen_update(srv, k, st["nonce"]))

    threads = [threading.Thread(target=go, args=(srv.keys[i % 3],))
               for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [r.json() for r in results
            if r.status_code == 200 and r.json()["complete"]]
    assert len(done) == 1, [r.text for r in results]
    check_root(srv, decode_token(done[0]["encoded_token"], st["otp"]))


def test_rekey_then_restart(srv):
    r = srv.req("GET", "sys/rekey/init", token=False)
    assert r.status_code == 200 and r.json()["started"] is False
    r = srv.req("PUT", "sys/rekey/init", token=False,
                json={"secret_shares": 5, "secret_threshold": 1})
    assert r.status_code == 400
    r = srv.req("PUT", "sys/rekey/init", token=False,
                json={"secret_shares": 5, "secret_threshold": 3,
                      "backup": True})
    assert r.status_code == 400
    r = srv.req("PUT", "sys/rekey/init", token=False,
                json={"secret_shares": 5, "secret_threshold": 3})
    assert r.status_code == 200, r.text
    st = r.json()
    assert st["started"] and st["n"] == 5 and st["t"] == 3
    assert st["required"] == 2
    r = srv.req("PUT", "sys/rekey/update", token=False,
                json={"key": srv.keys[0], "nonce": "x"})
    assert r.status_code == 400 and "incorrect nonce supplied" in r.text
    r = srv.req("PUT", "sys/rekey/update", token=False,
                json={"key": srv.keys[0], "nonce": st["nonce"]})
    assert r.status_code == 200 and r.json()["progress"] == 1
    r = srv.req("PUT", "sys/rekey/update", token=False,
                json={"key": srv.keys[2], "nonce": st["nonce"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["complete"] and body["nonce"] == st["nonce"]
    new = body["keys_base64"]
    assert len(new) == 5 and len(body["keys"]) == 5
    assert srv.req("GET", "sys/seal-status").json()["n"] == 5
    srv.stop()
    srv.start()
    for k in srv.keys:  # old keys: never unseal
        r = srv.req("PUT", "sys/unseal", json={"key": k})
        assert r.status_code in (200, 400)
        if r.status_code == 200:
            assert r.json()["sealed"]
    srv.req("PUT", "sys/unseal", json={"reset": True})
    st = srv.req("GET", "sys/seal-status").json()
    assert st["t"] == 3 and st["n"] == 5
    srv.unseal(new[2:])
    assert srv.client().auth.token.lookup_self()["data"]["policies"] == \
        ["root"]
    # generate-root now needs three of the new shares
    assert srv.req("GET", "sys/generate-root/attempt",
                   token=False).json()["required"] == 3


def test_hvac_helpers(srv):
    c = hvac.Client(url=srv.addr)
    st = c.sys.start_root_token_generation()
    for k in srv.keys[:2]:
        resp = c.sys.generate_root(key=k, nonce=st["nonce"])
    assert resp["complete"]
    check_root(srv, decode_token(resp["encoded_root_token"], st["otp"]))
    st = c.sys.start_rekey(secret_shares=2, secret_threshold=2)
    for k in srv.keys[1:]:
        resp = c.sys.rekey(key=k, nonce=st["nonce"])
        if resp.get("complete"):
            break
    assert len(resp["keys"]) == 2
    assert c.sys.read_rekey_progress()["started"] is False
    st = c.sys.start_rekey(secret_shares=3, secret_threshold=2)
    c.sys.cancel_rekey()
    assert c.sys.read_rekey_progress()["started"] is False
    with pytest.raises(hvac.exceptions.InvalidRequest):
        c.sys.rekey(key=resp["keys"][0], nonce=st["nonce"])


def test_cli(srv):
    rc, out, err = srv.cli("operator", "generate-root", "-init",
                           "-format=json")
    assert rc == 0, err
    import json
    st = json.loads(out)
    otp, nonce = st["otp"], st["nonce"]
    for k in srv.keys[:2]:
        rc, out, err = srv.cli("operator", "generate-root", "-nonce=" + nonce,
                               "-format=json", k)
        assert rc == 0, err
    enc = json.loads(out)["encoded_token"]
    rc, out, err = srv.cli("operator", "generate-root", "-decode=" + enc,
                           "-otp=" + otp, "-format=json")
    assert rc == 0, err
    check_root(srv, json.loads(out)["token"])
    rc, out, err = srv.cli("operator", "rekey", "-init", "-key-shares=1",
                           "-key-threshold=1", "-format=json")
    assert rc == 0, err
    nonce = json.loads(out)["nonce"]
    for k in srv.keys[:2]:
        rc, out, err = srv.cli("operator", "rekey", "-nonce=" + nonce,
                               "-format=json", k)
        assert rc == 0, err
    assert len(json.loads(out)["keys_base64"]) == 1


def test_auto_seal_recovery(tmp_path):
    srv = StaticServer(tmp_path, seal_block("k1", key_file(tmp_path, "k")))
    srv.start()
    try:
        body = srv.init_recovery(shares=3, threshold=2)
        rec = body["recovery_keys_base64"]
        r = srv.req("PUT", "sys/rekey/init", token=False,
                    json={"secret_shares": 1, "secret_threshold": 1})
        assert r.status_code == 400
        st = start_gen(srv)
        assert st["required"] == 2
        gen_update(srv, rec[0], st["nonce"])
        body = gen_update(srv, rec[2], st["nonce"]).json()
        assert body["complete"], body
        check_root(srv, decode_token(body["encoded_token"], st["otp"]))
        # rekey the recovery key: 3/2 -> 2/2
        r = srv.req("PUT", "sys/rekey-recovery-key/init", token=False,
                    json={"secret_shares": 2, "secret_threshold": 2})
        assert r.status_code == 200, r.text
        nonce = r.json()["nonce"]
        for k in rec[:2]:
            r = srv.req("PUT", "sys/rekey-recovery-key/update", token=False,
                        json={"key": k, "nonce": nonce})
            assert r.status_code == 200, r.text
        new = r.json()["keys_base64"]
        assert len(new) == 2
        assert srv.status()["n"] == 2
        # the old recovery keys no longer open generate-root
        st = start_gen(srv)
        gen_update(srv, rec[0], st["nonce"])
        r = gen_update(srv, rec[1], st["nonce"])
        assert r.status_code == 400 and "recovery key verification" in r.text
        for k in new:
            r = gen_update(srv, k, st["nonce"])
        assert r.json()["complete"]
        # ... nor unseal after sys/seal, the new ones do
        srv.req("PUT", "sys/seal")
        for k in rec[:2]:
            r = srv.req("PUT", "sys/unseal", json={"key": k})
        assert r.status_code == 400 or r.json()["sealed"]
        srv.unseal(new)
    finally:
        srv.stop()


def test_rekey_races_seal(srv):
    """Parallel rekey updates racing a sys/seal: at most one rekey wins,
    and the keys that unseal afterwards are exactly the ones answered."""
    st = srv.req("PUT", "sys/rekey/init", token=False,
                 json={"secret_shares": 3, "secret_threshold": 2}).json()
    results = []

    def update(k):
        results.append(srv.req("PUT", "sys/rekey/update", token=False,
                               json={"key": k, "nonce": st["nonce"]}))

    def seal():
        results.append(srv.req("PUT", "sys/seal"))

    threads = [threading.Thread(target=update, args=(srv.keys[i % 3],))
               for i in range(10)] + [threading.Thread(target=seal)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [r.json() for r in results if r.status_code == 200 and
            r.json().get("complete")]
    assert len(done) <= 1
    for r in results:
        assert r.status_code in (200, 204, 400, 503), r.text
    srv.req("PUT", "sys/seal")
    good = done[0]["keys_base64"] if done else srv.keys
    bad = srv.keys if done else None
    if bad:
        for k in bad[:2]:
            r = srv.req("PUT", "sys/unseal", json={"key": k})
        assert r.status_code == 400 or r.json()["sealed"]
    srv.unseal(good)
    # an attempt does not survive a seal
    assert srv.req("GET", "sys/rekey/init",
                   token=False).json()["started"] is False


def test_kind_must_fit_seal(srv):
    r = srv.req("PUT", "sys/rekey-recovery-key/init", token=False,
                json={"secret_shares": 3, "secret_threshold": 2})
    assert r.status_code == 400
    r = srv.req("PUT", "sys/rekey/init", token=False,
                json={"secret_shares": 3, "secret_threshold": 2,
                      "require_verification": True})
    assert r.status_code == 400
    r = srv.req("PUT", "sys/rekey/init", token=False,
                json={"secret_shares": 3, "secret_threshold": 2,
                      "pgp_keys": ["abc"]})
    assert r.status_code == 400
    for method in ("GET", "DELETE"):
        r = srv.req(method, "sys/rekey/update", token=False)
        assert r.status_code == 405
    r = srv.req("LIST", "sys/generate-root/attempt", token=False)
    assert r.status_code == 405


def test_ha_standby_forwards(cluster):
    """On an HA standby the attempt is forwarded to the active node, which
    holds the one attempt of the cluster."""
    c = cluster(n=2)
    active = c.wait_active()
    standby = [n for n in c.nodes if n is not active][0]
    r = standby.req("PUT", "sys/generate-root/attempt", token=False,
                    json={})
    assert r.status_code == 200, r.text
    st = r.json()
    seen = active.req("GET", "sys/generate-root/attempt", token=False).json()
    assert seen["started"] and seen["nonce"] == st["nonce"]
    r = standby.req("PUT", "sys/generate-root/update", token=False,
                    json={"key": c.keys[0], "nonce": st["nonce"]})
    assert r.status_code == 200 and r.json()["complete"], r.text
    check_root(active, decode_token(r.json()["encoded_token"], st["otp"]))
    # rekey through the standby; the standby, restarted, needs the new key
    nonce = standby.req("PUT", "sys/rekey/init", token=False, json={
        "secret_shares": 2, "secret_threshold": 2}).json()["nonce"]
    r = standby.req("PUT", "sys/rekey/update", token=False,
                    json={"key": c.keys[0], "nonce": nonce})
    assert r.status_code == 200 and r.json()["complete"], r.text
    new = r.json()["keys_base64"]
    standby.stop()
    standby.start()
    for k in (c.keys[0], new[0]):  # the old key spoils the set
        r = standby.req("PUT", "sys/unseal", json={"key": k})
    assert r.status_code == 400 and "invalid key" in r.text, r.text
    standby.unseal(new)


def test_generate_root_and_rekey_are_audited_with_secrets_hashed(srv):
    log = os.path.join(srv.dir, "audit.log")
    r = srv.req("PUT", "sys/audit/file", json={
        "type": "file", "options": {"file_path": log}})
    assert r.status_code == 204, r.text
    st = start_gen(srv)
    otp, nonce = st["otp"], st["nonce"]
    body = None
    for k in srv.keys[:2]:
        r = gen_update(srv, k, nonce)
        assert r.status_code == 200, r.text
        body = r.json()
    token = decode_token(body["encoded_token"], otp)
    with open(log) as f:
        text = f.read()
    entries = [json.loads(line) for line in text.splitlines()]
    paths = [e["request"]["path"] for e in entries if "request" in e]
    assert "sys/generate-root/attempt" in paths
    assert paths.count("sys/generate-root/update") >= 4  # request+response
    # Neither the shares, the otp, the encoded token nor the token itself
    # reach the log in clear.
    for secret in srv.keys[:2] + [otp, body["encoded_token"], token]:
        assert secret not in text, secret
    assert "hmac-sha256:" in text
