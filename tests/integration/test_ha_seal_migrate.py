"""Seal migration Shamir -> static on an HA cluster (issue 12), as Vault
documents it for HA: stop the nodes, start one with the new seal stanza
and unseal it with "migrate": true (it writes the new seal configuration,
so it must be allowed to write: no other node holds the lock), then
restart the others with the same stanza: they unseal themselves and
stand by.
"""

import os

import pytest

from pgcluster import PgCluster
from test_ha import Cluster


@pytest.fixture(scope="module")
def pg():
    cluster = PgCluster()
    yield cluster
    cluster.stop()


def set_seal(node, block):
    with open(node.config) as f:
        lines = [ln for ln in f.read().splitlines()
                 if not ln.startswith("seal ")]
    with open(node.config, "w") as f:
        f.write("\n".join(lines + [block]) + "\n")


def status(node):
    r = node.req("GET", "sys/seal-status", token=False)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.once
def test_shamir_to_static_on_an_ha_cluster(pg, tmp_path):
    c = Cluster(pg, n=2)
    key = tmp_path / "seal.key"
    key.write_bytes(os.urandom(32))
    os.chmod(key, 0o600)
    block = ('seal "static" { current_key_id = "k1", '
             'current_key = "file://%s" }' % key)
    try:
        c.start_all()
        c.init_and_unseal()
        active = c.wait_active()
        standby = [n for n in c.nodes if n is not active][0]
        hc = standby.client()
        hc.sys.enable_secrets_engine("kv", path="kv",
                                     options={"version": "1"})
        hc.write("kv/kept", v="before")
        standby.stop()
        active.stop()
        # The active migrates.
        set_seal(active, block)
        active.start()
        st = status(active)
        assert st["sealed"] is True and st["migration"] is True, st
        r = active.req("PUT", "sys/unseal", token=False,
                       json={"key": c.keys[0], "migrate": True})
        assert r.status_code == 200, r.text
        assert r.json()["sealed"] is False, r.text
        assert c.wait_active(among=[active]) is active
        assert active.client().read("kv/kept")["data"] == {"v": "before"}
        # The standby, restarted with the new stanza, unseals itself.
        set_seal(standby, block)
        standby.start()
        assert c.wait_active() is active
        st = status(standby)
        # (Vault reports an unsealed auto-sealed node as "shamir" with
        # recovery_seal; no unseal call was made for it.)
        assert st["sealed"] is False, st
        assert st["recovery_seal"] is True and st["migration"] is False
        assert standby.client().read("kv/kept")["data"] == {"v": "before"}
        standby.client().write("kv/after", v="1")
        # Both restart unsealed by themselves; the old unseal key is a
        # recovery key now, and unsealing with it is refused.
        active.stop()
        new = c.wait_active(among=[standby])
        active.start()
        assert c.wait_active() is new
        assert status(active)["sealed"] is False
        assert active.client().read("kv/after")["data"] == {"v": "1"}
    finally:
        c.close()
