"""The cubbyhole/ mount as sys/ shows it (issue 11, "Response wrapping and
cubbyhole").

- `GET sys/mounts/cubbyhole/tune` answers like any mount's tune (Vault's
  untunable list only refuses writes); `POST` keeps Vault's refusal.
- Its uuid and accessor are made once and kept in the barrier, so a real
  server shows the same ones after a restart (audit entries carry
  mount_accessor); a dev server makes them per start.
"""

import concurrent.futures
import tempfile

import pytest

from realserver import RealServer


SYSTEM_TTL = 2764800  # 768h, Vault's and Coffer's system default


def test_tune_read_shape(server, _repeat):
    r = server.req("GET", "sys/mounts/cubbyhole/tune")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data == {"description": "per-token private secret storage",
                    "default_lease_ttl": SYSTEM_TTL,
                    "max_lease_ttl": SYSTEM_TTL,
                    "force_no_cache": False}, data
    # hvac's reader agrees
    tuned = server.hvac_client().sys.read_mount_configuration("cubbyhole")
    assert tuned["data"]["max_lease_ttl"] == SYSTEM_TTL


@pytest.mark.parametrize("path", ["cubbyhole", "cubbyhole/", "/cubbyhole//"])
def test_tune_write_refused_with_vaults_text(server, _repeat, path):
    for body in ({"description": "mine"}, {"default_lease_ttl": "1h"},
                 {"options": {"x": "y"}}):
        r = server.req("POST", "sys/mounts/%s/tune" % path.strip("/"),
                       json=body)
        assert r.status_code == 400, r.text
        assert r.json()["errors"] == ['cannot tune "cubbyhole/"'], r.text
    after = server.req("GET", "sys/mounts/cubbyhole/tune").json()["data"]
    assert after["description"] == "per-token private secret storage"
    assert "options" not in after


def test_tune_read_of_a_path_under_cubbyhole_is_not_a_mount(server, _repeat):
    r = server.req("GET", "sys/mounts/cubbyhole/x/tune")
    assert r.status_code == 400, r.text
    assert "cannot fetch sysview" in r.json()["errors"][0]


def test_listing_matches_tune_and_single_read(server, _repeat):
    mounts = server.req("GET", "sys/mounts").json()["data"]
    single = server.req("GET", "sys/mounts/cubbyhole").json()["data"]
    assert mounts["cubbyhole/"]["accessor"] == single["accessor"]
    assert mounts["cubbyhole/"]["uuid"] == single["uuid"]
    assert single["accessor"].startswith("cubbyhole_")
    assert single["local"] is True and single["type"] == "cubbyhole"


def test_parallel_reads_agree(server, _repeat):
    def one(_):
        m = server.req("GET", "sys/mounts").json()["data"]["cubbyhole/"]
        t = server.req("GET", "sys/mounts/cubbyhole/tune")
        return m["accessor"], m["uuid"], t.status_code

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        got = set(ex.map(one, range(40)))
    assert len(got) == 1, got
    assert next(iter(got))[2] == 200


def ids(srv):
    m = srv.req("GET", "sys/mounts").json()["data"]["cubbyhole/"]
    return m["accessor"], m["uuid"]


def test_accessor_and_uuid_survive_restarts(_repeat):
    d = tempfile.mkdtemp(prefix="coffer-cubby-")
    srv = RealServer(d, storage="sqlite")
    srv.start()
    try:
        keys, _ = srv.init()
        srv.unseal(keys)
        first = ids(srv)
        assert first[0].startswith("cubbyhole_") and len(first[1]) == 36
        # the cubbyhole itself still works and is private
        r = srv.req("POST", "cubbyhole/k", json={"v": "1"})
        assert r.status_code == 204, r.text
        srv.stop()
        srv.start()
        srv.unseal(keys)
        assert ids(srv) == first
        assert srv.req("GET", "cubbyhole/k").json()["data"] == {"v": "1"}
        # seal and unseal in one process: loaded again, still the same
        r = srv.req("PUT", "sys/seal")
        assert r.status_code == 204, r.text
        srv.unseal(keys)
        assert ids(srv) == first
        t = srv.req("GET", "sys/mounts/cubbyhole/tune")
        assert t.status_code == 200, t.text
        srv.kill9()
        srv.start()
        srv.unseal(keys)
        assert ids(srv) == first
    finally:
        if srv.proc is not None:
            srv.stop()


def test_two_servers_have_different_ids(_repeat):
    got = []
    for _ in range(2):
        d = tempfile.mkdtemp(prefix="coffer-cubby-")
        srv = RealServer(d, storage="sqlite")
        srv.start()
        try:
            keys, _ = srv.init(shares=1, threshold=1)
            srv.unseal(keys)
            got.append(ids(srv))
        finally:
            srv.stop()
    assert got[0][0] != got[1][0] and got[0][1] != got[1][1]


def test_audit_names_the_same_accessor_after_a_restart(_repeat):
    """Request entries for cubbyhole/ carry its mount, stable over restarts."""
    import json
    import os
    d = tempfile.mkdtemp(prefix="coffer-cubby-")
    log = os.path.join(d, "audit.log")
    srv = RealServer(d, storage="sqlite")
    srv.start()
    try:
        keys, _ = srv.init(shares=1, threshold=1)
        srv.unseal(keys)
        r = srv.req("PUT", "sys/audit/file", json={
            "type": "file", "options": {"file_path": log}})
        assert r.status_code == 204, r.text
        accessor = ids(srv)[0]
        assert srv.req("POST", "cubbyhole/a",
                       json={"v": "1"}).status_code == 204
        srv.stop()
        srv.start()
        srv.unseal(keys)
        assert srv.req("GET", "cubbyhole/a").status_code == 200
    finally:
        srv.stop()
    seen = []
    with open(log) as f:
        for line in f:
            e = json.loads(line)
            if e["request"]["path"] != "cubbyhole/a":
                continue
            # the response entry names the mount too (core.c's route)
            for block in ("request", "response"):
                if block in e:
                    seen.append((e["type"], block,
                                 e[block].get("mount_point"),
                                 e[block].get("mount_type"),
                                 e[block].get("mount_accessor")))
    mount = ("cubbyhole/", "cubbyhole", accessor)
    want = [("request", "request") + mount,
            ("response", "request") + mount,
            ("response", "response") + mount] * 2
    assert seen == want, seen
