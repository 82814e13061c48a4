"""KV v1 (VAULT_API.md 5.1) through hvac's secrets.kv.v1 and raw HTTP."""


import pytest


def test_write_read_delete(server, kv1):
    r = server.req("PUT", kv1 + "/app/db", json={"user": "u", "password": "p"})
    assert r.status_code == 204
    r = server.req("GET", kv1 + "/app/db")
    assert r.status_code == 200
    b = r.json()
    assert b["data"] == {"user": "u", "password": "p"}
    assert b["lease_id"] == ""
    assert b["renewable"] is False
    assert b["lease_duration"] == 2764800
    assert server.req("DELETE", kv1 + "/app/db").status_code == 204
    r = server.req("GET", kv1 + "/app/db")
    assert r.status_code == 404
    assert r.json() == {"errors": []}
    assert server.req("DELETE", kv1 + "/app/db").status_code == 204


def test_write_replaces_whole_object(server, kv1):
    server.req("PUT", kv1 + "/r", json={"a": "1", "b": "2"})
    server.req("PUT", kv1 + "/r", json={"c": "3"})
    assert server.req("GET", kv1 + "/r").json()["data"] == {"c": "3"}


def test_values_round_trip(server, kv1):
    value = {"s": "text", "i": 42, "neg": -7, "f": 1.5, "t": True, "f2": False,
             "n": None, "list": [1, "two", {"three": 3}], "obj": {"nested": {"x": []}},
             "unicode": "\u00e9\u4e2d\U0001F600", "empty": "", "quote": "a\"b\\c\n"}
    assert server.req("PUT", kv1 + "/types", json=value).status_code == 204
    assert server.req("GET", kv1 + "/types").json()["data"] == value


def test_big_numbers_kept_verbatim(server, kv1):
    # Vault keeps json.Number: what a client writes comes back as written.
    body = b'{"big": 12345678901234567890, "precise": 0.1, "i": 9007199254740993}'
    r = server.req("PUT", kv1 + "/nums", data=body)
    assert r.status_code == 204
    raw = server.req("GET", kv1 + "/nums").content
    assert b"12345678901234567890" in raw, raw
    assert b"9007199254740993" in raw, raw
    assert b"0.1" in raw and b"0.10000000000000001" not in raw, raw


def test_ttl_field_sets_lease_duration(server, kv1):
    server.req("PUT", kv1 + "/ttl", json={"v": "1", "ttl": "1h"})
    b = server.req("GET", kv1 + "/ttl").json()
    assert b["lease_duration"] == 3600
    assert b["data"] == {"v": "1", "ttl": "1h"}
    assert b["lease_id"] == ""
    server.req("PUT", kv1 + "/ttl2", json={"v": "1", "ttl": 90})
    assert server.req("GET", kv1 + "/ttl2").json()["lease_duration"] == 90
    # Unparseable ttl: mount default.
    server.req("PUT", kv1 + "/ttl3", json={"v": "1", "ttl": "soon"})
    assert server.req("GET", kv1 + "/ttl3").json()["lease_duration"] == 2764800


def test_mount_default_ttl(server):
    path = server.mount("kv", config={"default_lease_ttl": "10m"})
    try:
        server.req("PUT", path + "/k", json={"v": "1"})
        assert server.req("GET", path + "/k").json()["lease_duration"] == 600
        server.req("POST", "sys/mounts/%s/tune" % path, json={"default_lease_ttl": "20m"})
        assert server.req("GET", path + "/k").json()["lease_duration"] == 1200
    finally:
        server.unmount(path)


def test_list(server, kv1):
    for k in ("zeta", "alpha", "dir/one", "dir/two/three", "Mixed"):
        assert server.req("PUT", "%s/%s" % (kv1, k), json={"v": k}).status_code == 204
    r = server.req("LIST", kv1 + "/")
    assert r.status_code == 200
    assert r.json()["data"]["keys"] == ["Mixed", "alpha", "dir/", "zeta"]
    assert server.req("LIST", kv1 + "/dir/").json()["data"]["keys"] == ["one", "two/"]
    r = server.req("LIST", kv1 + "/nothing/")
    assert r.status_code == 404
    assert r.json() == {"errors": []}


def test_hvac_v1(server, kv1):
    kv = server.client.secrets.kv.v1
    resp = kv.create_or_update_secret("hv/one", {"a": "b"}, mount_point=kv1)
    assert resp.status_code == 204
    kv.create_or_update_secret("hv/two", {"c": "d"}, mount_point=kv1)
    got = kv.read_secret("hv/one", mount_point=kv1)
    assert got["data"] == {"a": "b"}
    assert got["lease_duration"] == 2764800
    assert kv.list_secrets("hv", mount_point=kv1)["data"]["keys"] == ["one", "two"]
    kv.delete_secret("hv/one", mount_point=kv1)
    import hvac.exceptions
    with pytest.raises(hvac.exceptions.InvalidPath):
        kv.read_secret("hv/one", mount_point=kv1)
    # The legacy API swallows 404.
    assert server.client.read(kv1 + "/hv/one") is None
    assert server.client.read(kv1 + "/hv/two")["data"] == {"c": "d"}
    server.client.write(kv1 + "/hv/three", e="f")
    assert server.client.read(kv1 + "/hv/three")["data"] == {"e": "f"}


def test_mounts_isolated(server):
    a = server.mount("kv")
    b = server.mount("kv")
    try:
        server.req("PUT", a + "/same", json={"mount": "a"})
        assert server.req("GET", b + "/same").status_code == 404
        server.req("PUT", b + "/same", json={"mount": "b"})
        assert server.req("GET", a + "/same").json()["data"] == {"mount": "a"}
        assert server.req("LIST", b + "/").json()["data"]["keys"] == ["same"]
    finally:
        server.unmount(a)
        server.unmount(b)


def test_deep_and_odd_keys(server, kv1):
    keys = ["a/b/c/d/e/f/g", "with.dot", "with-dash_under", "UPPER", "1234"]
    for k in keys:
        assert server.req("PUT", "%s/%s" % (kv1, k), json={"k": k}).status_code == 204, k
    for k in keys:
        assert server.req("GET", "%s/%s" % (kv1, k)).json()["data"] == {"k": k}


def test_concurrent_writes(server, kv1):
    import concurrent.futures

    def work(i):
        r = server.req("PUT", "%s/c/%03d" % (kv1, i), json={"i": i})
        assert r.status_code == 204
        r = server.req("GET", "%s/c/%03d" % (kv1, i))
        assert r.json()["data"] == {"i": i}
        return i

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as ex:
        assert sorted(ex.map(work, range(100))) == list(range(100))
    keys = server.req("LIST", kv1 + "/c/").json()["data"]["keys"]
    assert keys == ["%03d" % i for i in range(100)]
