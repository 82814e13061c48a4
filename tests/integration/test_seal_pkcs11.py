"""The PKCS#11 (HSM) auto-unseal seal, seal "pkcs11", on real sqlite
servers against SoftHSM2 (Debian's softhsm2): a throw-away token per test
(SOFTHSM2_CONF pointing at a temp config and token directory), the AES key
made by Coffer (generate_key), init with recovery keys, restart and
kill -9 unsealing themselves, clear start-up errors (wrong PIN, missing
key, missing module, unknown token or slot, bad mechanism), the PIN from
COFFER_HSM_PIN, a tampered or re-labelled wrapped root key detected,
RSA-OAEP, and migration Shamir -> pkcs11 -> Shamir through sys/unseal
"migrate".
"""

import base64
import json
import os
import re
import shutil
import sqlite3
import subprocess
import threading

import pytest

from test_seal_migrate import MIGRATE_NEEDED, unseal
from test_seal_static import StaticServer, has_policy, put_policy

LIBS = ["/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]
LIB = next((p for p in LIBS if os.path.exists(p)), None)
PIN = "4931-77ab"

pytestmark = pytest.mark.skipif(
    LIB is None or shutil.which("softhsm2-util") is None,
    reason="softhsm2 is not installed (apt-get install softhsm2; "
           ".ci/install-deps.sh installs it)")


@pytest.fixture
def hsm(tmp_path, monkeypatch):
    """A fresh SoftHSM2 token labelled "coffer" with user PIN PIN; the
    server inherits SOFTHSM2_CONF. Returns the token's slot id."""
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text("directories.tokendir = %s\nobjectstore.backend = file\n"
                    "log.level = ERROR\n" % tokens)
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    for v in ("COFFER_HSM_PIN", "BAO_HSM_PIN", "VAULT_HSM_PIN"):
        monkeypatch.delenv(v, raising=False)
    out = subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "coffer",
         "--pin", PIN, "--so-pin", "so-" + PIN], check=True,
        capture_output=True, text=True).stdout
    return int(re.search(r"reassigned to slot (\d+)", out).group(1))


def block(**kw):
    """seal "pkcs11" { ... } with the defaults of these tests."""
    cfg = {"lib": LIB, "token_label": "coffer", "pin": PIN,
           "key_label": "coffer-root", "generate_key": "true"}
    cfg.update(kw)
    body = ", ".join('%s = "%s"' % (k, v) for k, v in cfg.items()
                     if v is not None)
    return 'seal "pkcs11" { %s }' % body


class HsmServer(StaticServer):
    def set_seal(self, text):
        with open(self.config) as f:
            lines = [l for l in f.read().splitlines()
                     if not l.startswith('seal "')]
        with open(self.config, "w") as f:
            f.write("\n".join(lines + [text]) + "\n")

    def root_key_blob(self):
        with sqlite3.connect(self.db_path) as db:
            row = db.execute("SELECT value FROM coffer_kv WHERE key = ?",
                             ("core/root-key",)).fetchone()
        return json.loads(bytes(row[0]))

    def set_root_key_blob(self, blob):
        with sqlite3.connect(self.db_path) as db:
            db.execute("UPDATE coffer_kv SET value = ? WHERE key = ?",
                       (json.dumps(blob).encode(), "core/root-key"))


def test_init_restart_and_kill9_unseal_themselves(tmp_path, hsm, _repeat):
    srv = HsmServer(tmp_path, block())
    srv.start()
    try:
        st = srv.status()
        assert st["type"] == "pkcs11" and st["recovery_seal"] is True
        assert st["initialized"] is False and st["sealed"] is True
        r = srv.req("PUT", "sys/init", json={"secret_shares": 1,
                                             "secret_threshold": 1})
        assert r.status_code == 400
        assert r.json()["errors"] == [
            "parameters secret_shares,secret_threshold not applicable to "
            "seal type pkcs11"]
        body = srv.init_recovery(3, 2)
        assert body["keys"] == [] and len(body["recovery_keys"]) == 3
        st = srv.status()
        assert st["sealed"] is False and st["recovery_seal"] is True
        assert (st["t"], st["n"]) == (2, 3)
        put_policy(srv, "kept")
        blob = srv.root_key_blob()
        assert blob["mechanism"] == "CKM_AES_GCM"
        assert blob["key_label"] == "coffer-root"
        srv.stop()
        srv.start()
        assert srv.status()["sealed"] is False
        assert has_policy(srv, "kept")
        srv.kill9()
        srv.start()
        assert srv.status()["sealed"] is False
        assert has_policy(srv, "kept")
        # sealed by hand: recovery shares verify, the HSM opens the root key
        assert srv.req("PUT", "sys/seal").status_code == 204
        srv.unseal(body["recovery_keys_base64"][:2])
        assert has_policy(srv, "kept")
        log = srv.log()
        assert 'generated the AES-256 key "coffer-root"' in log
        assert log.count("generated the AES-256 key") == 1
        assert PIN not in log
    finally:
        srv.stop()


@pytest.mark.parametrize("case", [
    "wrongpin", "nokey", "nolib", "notalib", "notoken", "noslot",
    "mechanism", "nopin", "neither", "both", "keyid", "unknownkey",
    "nokeylabel"])
def test_start_errors_are_clear(tmp_path, hsm, case):
    kw, want = {}, None
    if case == "wrongpin":
        kw, want = {"pin": "0000-0000"}, "wrong PIN (CKR_PIN_INCORRECT)"
    elif case == "nokey":
        kw = {"generate_key": "false"}
        want = ('no AES key labelled "coffer-root" on the token (key_label; '
                'create it, or set generate_key = true)')
    elif case == "nolib":
        kw = {"lib": str(tmp_path / "libnope.so")}
        want = "cannot load the PKCS#11 module (lib)"
    elif case == "notalib":
        (tmp_path / "fake.so").write_text("not a library\n")
        kw = {"lib": str(tmp_path / "fake.so")}
        want = "cannot load the PKCS#11 module (lib)"
    elif case == "notoken":
        kw = {"token_label": "other"}
        want = 'no token labelled "other" (token_label)'
    elif case == "noslot":
        kw = {"token_label": None, "slot": "424242"}
        want = "slot 424242 not usable: no such slot"
    elif case == "mechanism":
        kw = {"mechanism": "0x1234"}
        want = 'mechanism "0x1234" is not supported'
    elif case == "nopin":
        kw, want = {"pin": None}, "pin is required"
    elif case == "neither":
        kw, want = {"token_label": None}, "give slot or token_label"
    elif case == "both":
        kw, want = {"slot": str(hsm)}, "give slot or token_label"
    elif case == "keyid":
        kw, want = {"key_id": "xyz"}, "key_id must be"
    elif case == "unknownkey":
        kw, want = {"hmac_key_label": "h"}, 'unknown key "hmac_key_label"'
    else:
        kw, want = {"key_label": None}, "key_label is required"
    srv = HsmServer(tmp_path, block(**kw))
    msg = srv.start_fails()
    assert want in msg, msg
    assert 'seal "pkcs11"' in msg, msg
    assert PIN not in msg
    # nothing was created by a failed start
    if case == "wrongpin":
        srv.set_seal(block(generate_key="false"))
        assert "no AES key labelled" in srv.start_fails()


def test_slot_by_number_and_pin_from_environment(tmp_path, hsm, monkeypatch,
                                                 _repeat):
    monkeypatch.setenv("COFFER_HSM_PIN", PIN)
    # the environment wins over the file, as VAULT_HSM_PIN does in Vault
    srv = HsmServer(tmp_path, block(token_label=None, slot=str(hsm),
                                    pin="wrong"))
    srv.start()
    try:
        srv.init_recovery(1, 1)
        srv.stop()
        monkeypatch.delenv("COFFER_HSM_PIN")
        monkeypatch.setenv("VAULT_HSM_PIN", PIN)
        srv.set_seal(block(token_label=None, slot=hex(hsm), pin=None))
        srv.start()
        assert srv.status()["sealed"] is False
    finally:
        srv.stop()


def test_tampered_or_relabelled_root_key_stays_sealed(tmp_path, hsm,
                                                      _repeat):
    srv = HsmServer(tmp_path, block())
    srv.start()
    try:
        srv.init_recovery(1, 1)
        srv.stop()
        good = srv.root_key_blob()
        raw = bytearray(base64.b64decode(good["ciphertext"]))
        for i in (0, 12, len(raw) - 1):  # nonce, ciphertext, tag
            bad = bytearray(raw)
            bad[i] ^= 0x01
            srv.set_root_key_blob(dict(good, ciphertext=base64.b64encode(
                bytes(bad)).decode()))
            srv.start()
            st = srv.status()
            assert st["sealed"] is True and st["initialized"] is True
            srv.stop()
            assert ('does not open with the HSM key "coffer-root" (wrong '
                    'key, or the stored value was altered)') in srv.log()
        for hostile in ({"mechanism": "CKM_AES_GCM"},
                        dict(good, ciphertext="!!!!"),
                        dict(good, ciphertext=""),
                        dict(good, mechanism="CKM_RSA_PKCS_OAEP"),
                        dict(good, key_label="other")):
            srv.set_root_key_blob(hostile)
            srv.start()
            assert srv.status()["sealed"] is True
            srv.stop()
        log = srv.log()
        assert "the wrapped core/root-key in storage is malformed" in log
        assert "wrapped with CKM_RSA_PKCS_OAEP" in log
        assert 'wrapped with the HSM key "other"' in log
        # another key in the same HSM does not open it either
        srv.set_root_key_blob(good)
        srv.set_seal(block(key_label="coffer-other"))
        srv.start()
        assert srv.status()["sealed"] is True
        srv.stop()
        # and the right one still does
        srv.set_seal(block())
        srv.start()
        assert srv.status()["sealed"] is False
    finally:
        srv.stop()


@pytest.mark.once
def test_rsa_oaep(tmp_path, hsm):
    # SoftHSM 2.6 does OAEP with SHA-1 only; the default is SHA-256
    srv = HsmServer(tmp_path, block(mechanism="CKM_RSA_PKCS_OAEP",
                                    key_label="coffer-rsa"))
    msg = srv.start_fails()
    assert "the HSM key fails a test wrap" in msg, msg
    assert 'SoftHSM needs rsa_oaep_hash = "sha1"' in msg, msg
    srv = HsmServer(tmp_path, block(mechanism="CKM_RSA_PKCS_OAEP",
                                    key_label="coffer-rsa",
                                    rsa_oaep_hash="sha1"))
    srv.start()
    try:
        srv.init_recovery(1, 1)
        put_policy(srv, "kept")
        blob = srv.root_key_blob()
        assert blob["mechanism"] == "CKM_RSA_PKCS_OAEP"
        assert "wrapped_key" in blob
        srv.stop()
        srv.set_seal(block(mechanism="0x0009", key_label="coffer-rsa",
                           rsa_oaep_hash="sha1", generate_key="false"))
        srv.start()
        assert srv.status()["sealed"] is False and has_policy(srv, "kept")
        srv.stop()
        # a flipped bit in the data key's wrapping is caught
        wk = bytearray(base64.b64decode(blob["wrapped_key"]))
        wk[5] ^= 0x01
        srv.set_root_key_blob(dict(blob, wrapped_key=base64.b64encode(
            bytes(wk)).decode()))
        srv.start()
        assert srv.status()["sealed"] is True
        assert "does not open with the HSM key" in srv.log()
    finally:
        srv.stop()


def test_parallel_init_one_wins(tmp_path, hsm, _repeat):
    srv = HsmServer(tmp_path, block())
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
        srv.stop()
        srv.start()
        assert srv.status()["sealed"] is False
    finally:
        srv.stop()


def test_migrate_shamir_to_pkcs11_and_back(tmp_path, hsm, _repeat):
    srv = HsmServer(tmp_path, "")
    srv.start()
    try:
        keys, _ = srv.init(3, 2)
        srv.unseal(keys)
        put_policy(srv, "kept")
        srv.stop()
        # Shamir -> pkcs11: the unseal shares become recovery shares
        srv.set_seal(block())
        srv.start()
        st = srv.status()
        assert st["sealed"] is True and st["migration"] is True
        r = unseal(srv, keys[0])
        assert r.status_code == 400 and r.json()["errors"] == [MIGRATE_NEEDED]
        assert unseal(srv, keys[0], True).status_code == 200
        r = unseal(srv, keys[1], True)
        assert r.status_code == 200, r.text
        assert r.json()["sealed"] is False and r.json()["migration"] is False
        assert srv.root_key_blob()["mechanism"] == "CKM_AES_GCM"
        srv.stop()
        srv.start()
        assert srv.status()["sealed"] is False and has_policy(srv, "kept")
        srv.stop()
        # pkcs11 -> Shamir: the disabled stanza still opens the root key
        srv.set_seal(block(disabled="true"))
        srv.start()
        st = srv.status()
        assert st["sealed"] is True and st["migration"] is True
        assert st["recovery_seal"] is False
        assert unseal(srv, keys[2], True).status_code == 200
        r = unseal(srv, keys[0], True)
        assert r.status_code == 200, r.text
        assert r.json()["sealed"] is False
        srv.stop()
        srv.set_seal("")
        srv.start()
        st = srv.status()
        assert st["sealed"] is True and st["migration"] is False
        srv.unseal(keys[1:])
        assert has_policy(srv, "kept")
    finally:
        srv.stop()
