"""Seal migration between Shamir and the static auto-unseal seal (issue
12), as Vault/OpenBao do it with sys/unseal "migrate": true, on real
sqlite servers: Shamir -> static (the unseal shares become recovery
shares), static -> Shamir through a disabled = "true" stanza (the
recovery shares become unseal shares), the migrate flag checked both
ways, and a wrong key that changes nothing.
"""

import threading

import hvac
import requests

from test_generate_root import check_root, decode_token, gen_update, \
    start_gen
from test_seal_static import StaticServer, has_policy, key_file, \
    put_policy, seal_block

MIGRATE_NEEDED = ("'migrate' parameter must be set true in JSON body when "
                  "in seal migration mode")
MIGRATE_UNEXPECTED = ("'migrate' parameter set true in JSON body when not "
                      "in seal migration mode")


def unseal(srv, key, migrate=None):
    body = {"key": key}
    if migrate is not None:
        body["migrate"] = migrate
    return srv.req("PUT", "sys/unseal", json=body)


def shamir_server(tmp_path):
    """A Shamir 3/2 server with a policy in it, stopped."""
    srv = StaticServer(tmp_path, "")
    srv.start()
    keys, _ = srv.init(3, 2)
    srv.unseal(keys)
    put_policy(srv, "kept")
    srv.stop()
    return srv, keys


def generate_root_with(srv, keys):
    st = start_gen(srv)
    body = None
    for k in keys:
        r = gen_update(srv, k, st["nonce"])
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["complete"], body
    check_root(srv, decode_token(body["encoded_token"], st["otp"]))


def migrate_to_static(srv, keys, block):
    srv.set_seal(block)
    srv.start()
    st = srv.status()
    assert st["sealed"] is True and st["migration"] is True
    assert st["type"] == "shamir" and st["recovery_seal"] is True
    assert (st["t"], st["n"]) == (2, 3)
    r = unseal(srv, keys[0])
    assert r.status_code == 400 and r.json()["errors"] == [MIGRATE_NEEDED]
    assert srv.status()["progress"] == 0
    r = unseal(srv, keys[0], True)
    assert r.status_code == 200, r.text
    assert r.json()["progress"] == 1 and r.json()["migration"] is True
    r = unseal(srv, keys[1], True)
    assert r.status_code == 200, r.text
    st = r.json()
    assert st["sealed"] is False and st["migration"] is False
    assert st["recovery_seal"] is True and (st["t"], st["n"]) == (2, 3)


def test_shamir_to_static_and_back(tmp_path, _repeat):
    srv, keys = shamir_server(tmp_path)
    block = seal_block("k1", key_file(tmp_path, "k1"))
    try:
        migrate_to_static(srv, keys, block)
        assert has_policy(srv, "kept")
        # once migrated, the flag is refused as Vault refuses it
        r = unseal(srv, keys[2], True)
        assert r.status_code == 400
        assert r.json()["errors"] == [MIGRATE_UNEXPECTED]
        # the old unseal shares are recovery shares now
        generate_root_with(srv, keys[1:])
        srv.stop()
        srv.start()
        st = srv.status()
        assert st["sealed"] is False and st["migration"] is False
        assert has_policy(srv, "kept")
        # sealed by hand: the recovery (old unseal) shares open it
        assert srv.req("PUT", "sys/seal").status_code == 204
        srv.unseal(keys[:2])
        assert has_policy(srv, "kept")
        srv.stop()

        # and back: the stanza marked disabled migrates to Shamir
        srv.set_seal(block[:-1] + ', disabled = "true" }')
        srv.start()
        st = srv.status()
        assert st["sealed"] is True and st["migration"] is True
        assert st["recovery_seal"] is False and (st["t"], st["n"]) == (2, 3)
        r = unseal(srv, keys[2])
        assert r.status_code == 400 and r.json()["errors"] == [MIGRATE_NEEDED]
        # the CLI: without -migrate refused, with it the share counts
        rc, out, err = srv.cli("operator", "unseal", keys[1])
        assert rc != 0 and "migrate" in err, (out, err)
        rc, out, err = srv.cli("operator", "unseal", "-migrate", keys[1])
        assert rc == 0, (out, err)
        r = unseal(srv, keys[2], True)
        assert r.status_code == 200, r.text
        assert r.json()["sealed"] is False and r.json()["migration"] is False
        assert has_policy(srv, "kept")
        srv.stop()
        srv.set_seal("")
        srv.start()
        st = srv.status()
        assert st["sealed"] is True and st["migration"] is False
        assert st["recovery_seal"] is False and (st["t"], st["n"]) == (2, 3)
        r = unseal(srv, keys[0], True)
        assert r.status_code == 400
        assert r.json()["errors"] == [MIGRATE_UNEXPECTED]
        srv.unseal([keys[0], keys[2]])
        assert has_policy(srv, "kept")
        generate_root_with(srv, keys[:2])
    finally:
        srv.stop()


def test_wrong_key_during_migration_changes_nothing(tmp_path, _repeat):
    srv, keys = shamir_server(tmp_path)
    block = seal_block("k1", key_file(tmp_path, "k1"))
    try:
        srv.set_seal(block)
        srv.start()
        # shares of another server's key: recombine to a wrong key
        other_dir = tmp_path / "o"
        other_dir.mkdir()
        o = StaticServer(other_dir, "")
        o.start()
        okeys, _ = o.init(3, 2)
        o.stop()
        r = unseal(srv, okeys[0], True)
        assert r.status_code == 200, r.text
        r = unseal(srv, okeys[1], True)
        assert r.status_code == 400, r.text
        assert r.json()["errors"] == ["Unseal failed, invalid key"]
        st = srv.status()
        assert st["sealed"] is True and st["migration"] is True
        assert st["progress"] == 0
        # mixed: one right share and one wrong
        assert unseal(srv, keys[0], True).status_code == 200
        assert unseal(srv, okeys[2], True).status_code == 400
        # hostile values
        for bad in ({"key": keys[0], "migrate": "maybe"},
                    {"key": keys[0], "migrate": 3},
                    {"key": "zz", "migrate": True},
                    {"key": "", "migrate": True}):
            assert srv.req("PUT", "sys/unseal",
                           json=bad).status_code == 400, bad
        srv.stop()
        # nothing changed: the original config still works with the keys
        srv.set_seal("")
        srv.start()
        st = srv.status()
        assert st["sealed"] is True and st["migration"] is False
        srv.unseal(keys[:2])
        assert has_policy(srv, "kept")
    finally:
        srv.stop()


def test_parallel_migration_unseals_once(tmp_path, _repeat):
    srv, keys = shamir_server(tmp_path)
    srv.set_seal(seal_block("k1", key_file(tmp_path, "k1")))
    srv.start()
    try:
        codes = []

        def go(k):
            try:
                codes.append(unseal(srv, k, True).status_code)
            except requests.RequestException as e:
                codes.append(str(e))

        for _ in range(3):
            if not srv.status()["sealed"]:
                break
            ts = [threading.Thread(target=go, args=(k,)) for k in keys * 2]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        assert srv.status()["sealed"] is False
        assert all(c in (200, 400) for c in codes), codes
        assert has_policy(srv, "kept")
        srv.stop()
        srv.start()
        assert srv.status()["sealed"] is False
        assert has_policy(srv, "kept")
        hvac.Client(url=srv.addr, token=srv.token).auth.token.lookup_self()
    finally:
        srv.stop()


def test_disabled_stanza_values_and_wrong_recovery_key(tmp_path, _repeat):
    k = key_file(tmp_path, "k1")
    block = seal_block("k1", k)
    srv = StaticServer(tmp_path, block[:-1] + ", disabled = false }")
    srv.start()
    try:
        # disabled = false is an ordinary static seal
        assert srv.status()["recovery_seal"] is True
        rkeys = srv.init_recovery(3, 2)["recovery_keys"]
        put_policy(srv, "kept")
        srv.stop()
        # a bad value stops the start
        srv.set_seal(block[:-1] + ', disabled = "sometimes" }')
        msg = srv.start_fails()
        assert "disabled" in msg, msg
        # disabled: the recovery shares of another server do not migrate
        srv.set_seal(block[:-1] + ", disabled = true }")
        srv.start()
        assert srv.status()["migration"] is True
        other_dir = tmp_path / "o"
        other_dir.mkdir()
        o = StaticServer(other_dir, seal_block("k1", k))
        o.start()
        okeys = o.init_recovery(3, 2)["recovery_keys"]
        o.stop()
        assert unseal(srv, okeys[0], True).status_code == 200
        r = unseal(srv, okeys[1], True)
        assert r.status_code == 400
        assert r.json()["errors"] == ["Unseal failed, invalid key"]
        srv.stop()
        # nothing changed: still a static seal that unseals itself
        srv.set_seal(block)
        srv.start()
        st = srv.status()
        assert st["sealed"] is False and st["migration"] is False
        assert has_policy(srv, "kept")
        srv.stop()
        # migrate for real, then a disabled stanza over Shamir storage is
        # inert: a plain Shamir server
        srv.set_seal(block[:-1] + ', disabled = "true" }')
        srv.start()
        for key in rkeys[:2]:
            assert unseal(srv, key, True).status_code == 200
        srv.stop()
        srv.start()
        st = srv.status()
        assert st["sealed"] is True and st["migration"] is False
        srv.unseal(rkeys[1:])
        assert has_policy(srv, "kept")
    finally:
        srv.stop()
