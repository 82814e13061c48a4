"""KV v2 (VAULT_API.md 5.2): hvac's secrets.kv.v2 API for the happy paths,
raw HTTP for the exact 404 shapes hvac hides."""

import uuid

import hvac.exceptions
import pytest

from helpers import (ENVELOPE_KEYS, KV2_INVALID_PATH_WARNING, KV2_ROOT_WARNING,
                     RFC3339_NANO_RE)


def key():
    return "k-" + uuid.uuid4().hex[:10]


def check_version_meta(m, version):
    assert m["version"] == version
    assert RFC3339_NANO_RE.match(m["created_time"]) and m["created_time"].endswith("Z"), m
    assert m["deletion_time"] == ""
    assert m["destroyed"] is False
    assert m["custom_metadata"] is None


@pytest.fixture(params=["dev-secret", "fresh-mount"])
def mnt(request, server):
    """Both the dev server's secret/ and a freshly enabled kv-v2 mount."""
    if request.param == "dev-secret":
        yield "secret"
        return
    path = server.mount("kv-v2")
    yield path
    server.unmount(path)


def test_create_and_read_versions(server, mnt):
    kv = server.client.secrets.kv.v2
    k = key()
    r1 = kv.create_or_update_secret(k, {"a": "1"}, mount_point=mnt)
    check_version_meta(r1["data"], 1)
    assert r1["lease_duration"] == 0
    r2 = kv.create_or_update_secret(k, {"a": "2", "b": "x"}, mount_point=mnt)
    check_version_meta(r2["data"], 2)

    latest = kv.read_secret_version(k, mount_point=mnt)
    assert latest["data"]["data"] == {"a": "2", "b": "x"}
    check_version_meta(latest["data"]["metadata"], 2)
    assert latest["lease_duration"] == 0
    assert latest["renewable"] is False
    v1 = kv.read_secret_version(k, version=1, mount_point=mnt)
    assert v1["data"]["data"] == {"a": "1"}
    assert v1["data"]["metadata"]["version"] == 1


def test_envelope_order(server, mnt):
    k = key()
    r = server.req("POST", "%s/data/%s" % (mnt, k), json={"data": {"x": "y"}})
    assert r.status_code == 200, r.text
    import json
    keys = [p for p, _ in json.loads(r.content, object_pairs_hook=list)]
    assert [x for x in keys if x != "mount_type"] == ENVELOPE_KEYS
    assert set(r.json()["data"]) == {"created_time", "custom_metadata",
                                     "deletion_time", "destroyed", "version"}


def test_missing_key_and_version(server, mnt):
    k = key()
    r = server.req("GET", "%s/data/%s" % (mnt, k))
    assert r.status_code == 404
    assert r.json() == {"errors": []}
    with pytest.raises(hvac.exceptions.InvalidPath):
        server.client.secrets.kv.v2.read_secret_version(k, mount_point=mnt)
    server.req("POST", "%s/data/%s" % (mnt, k), json={"data": {"a": "1"}})
    r = server.req("GET", "%s/data/%s?version=7" % (mnt, k))
    assert r.status_code == 404
    assert r.json() == {"errors": []}


def test_cas(server, mnt):
    kv = server.client.secrets.kv.v2
    k = key()
    assert kv.create_or_update_secret(k, {"a": "1"}, cas=0, mount_point=mnt)["data"]["version"] == 1
    r = server.req("POST", "%s/data/%s" % (mnt, k),
                   json={"data": {"a": "x"}, "options": {"cas": 0}})
    assert r.status_code == 400
    assert r.json() == {"errors": ["check-and-set parameter did not match the current version"]}
    r = server.req("POST", "%s/data/%s" % (mnt, k),
                   json={"data": {"a": "x"}, "options": {"cas": 5}})
    assert r.status_code == 400
    assert kv.create_or_update_secret(k, {"a": "2"}, cas=1, mount_point=mnt)["data"]["version"] == 2
    with pytest.raises(hvac.exceptions.InvalidRequest):
        kv.create_or_update_secret(k, {"a": "3"}, cas=1, mount_point=mnt)
    assert kv.read_secret_version(k, mount_point=mnt)["data"]["data"] == {"a": "2"}


def test_cas_required_by_metadata(server, mnt):
    kv = server.client.secrets.kv.v2
    k = key()
    kv.create_or_update_secret(k, {"a": "1"}, mount_point=mnt)
    assert kv.update_metadata(k, cas_required=True, mount_point=mnt).status_code == 204
    r = server.req("POST", "%s/data/%s" % (mnt, k), json={"data": {"a": "2"}})
    assert r.status_code == 400
    assert r.json() == {"errors": ["check-and-set parameter required for this call"]}
    assert kv.create_or_update_secret(k, {"a": "2"}, cas=1, mount_point=mnt)["data"]["version"] == 2


def test_delete_undelete_destroy(server, mnt):
    kv = server.client.secrets.kv.v2
    k = key()
    for i in range(1, 4):
        kv.create_or_update_secret(k, {"v": str(i)}, mount_point=mnt)

    # Soft-delete the latest: raw 404 with the metadata filled in.
    assert kv.delete_latest_version_of_secret(k, mount_point=mnt).status_code == 204
    r = server.req("GET", "%s/data/%s" % (mnt, k))
    assert r.status_code == 404
    assert r.headers["Content-Type"] == "application/json"
    b = r.json()
    assert "errors" not in b
    assert b["data"]["data"] is None
    assert b["data"]["metadata"]["version"] == 3
    assert RFC3339_NANO_RE.match(b["data"]["metadata"]["deletion_time"])
    assert b["data"]["metadata"]["destroyed"] is False

    assert kv.undelete_secret_versions(k, [3], mount_point=mnt).status_code == 204
    assert kv.read_secret_version(k, mount_point=mnt)["data"]["data"] == {"v": "3"}

    assert kv.delete_secret_versions(k, [1, 2], mount_point=mnt).status_code == 204
    for v in (1, 2):
        r = server.req("GET", "%s/data/%s?version=%d" % (mnt, k, v))
        assert r.status_code == 404
        assert r.json()["data"]["metadata"]["deletion_time"] != ""

    assert kv.destroy_secret_versions(k, [2], mount_point=mnt).status_code == 204
    r = server.req("GET", "%s/data/%s?version=2" % (mnt, k))
    assert r.status_code == 404
    assert r.json()["data"]["data"] is None
    assert r.json()["data"]["metadata"]["destroyed"] is True
    # A destroyed version cannot be undeleted; a deleted one can.
    kv.undelete_secret_versions(k, [1, 2], mount_point=mnt)
    assert kv.read_secret_version(k, version=1, mount_point=mnt)["data"]["data"] == {"v": "1"}
    assert server.req("GET", "%s/data/%s?version=2" % (mnt, k)).status_code == 404

    meta = kv.read_secret_metadata(k, mount_point=mnt)["data"]
    assert meta["versions"]["2"]["destroyed"] is True
    assert meta["versions"]["1"]["deletion_time"] == ""
    assert meta["current_version"] == 3


def test_versions_as_string(server, mnt):
    kv = server.client.secrets.kv.v2
    k = key()
    kv.create_or_update_secret(k, {"v": "1"}, mount_point=mnt)
    kv.create_or_update_secret(k, {"v": "2"}, mount_point=mnt)
    r = server.req("POST", "%s/delete/%s" % (mnt, k), json={"versions": "1,2"})
    assert r.status_code == 204, r.text
    assert server.req("GET", "%s/data/%s?version=1" % (mnt, k)).status_code == 404
    assert server.req("GET", "%s/data/%s?version=2" % (mnt, k)).status_code == 404


def test_version_errors(server, mnt):
    k = key()
    server.req("POST", "%s/data/%s" % (mnt, k), json={"data": {"v": "1"}})
    r = server.req("POST", "%s/delete/%s" % (mnt, k), json={})
    assert r.status_code == 400
    assert r.json() == {"errors": ["No version number provided"]}
    r = server.req("POST", "%s/undelete/%s" % (mnt, k), json={"versions": []})
    assert r.status_code == 400
    assert r.json() == {"errors": ["No version number provided"]}
    r = server.req("POST", "%s/destroy/%s" % (mnt, k), json={})
    assert r.status_code == 400
    assert r.json() == {"errors": ["no version number provided"]}
    r = server.req("POST", "%s/data/%s" % (mnt, k), json={"options": {}})
    assert r.status_code == 400
    assert r.json() == {"errors": ["no data provided"]}


def test_metadata(server, mnt):
    kv = server.client.secrets.kv.v2
    k = key()
    kv.create_or_update_secret(k, {"v": "1"}, mount_point=mnt)
    kv.create_or_update_secret(k, {"v": "2"}, mount_point=mnt)
    m = kv.read_secret_metadata(k, mount_point=mnt)["data"]
    assert m["cas_required"] is False
    assert m["current_version"] == 2
    assert m["oldest_version"] in (0, 1)
    assert m["max_versions"] == 0
    assert m["delete_version_after"] == "0s"
    assert m["custom_metadata"] is None
    assert RFC3339_NANO_RE.match(m["created_time"])
    assert RFC3339_NANO_RE.match(m["updated_time"])
    assert set(m["versions"]) == {"1", "2"}
    for v in m["versions"].values():
        assert set(v) == {"created_time", "deletion_time", "destroyed"}

    assert kv.update_metadata(k, max_versions=5, delete_version_after="3h",
                              mount_point=mnt).status_code == 204
    r = server.req("POST", "%s/metadata/%s" % (mnt, k),
                   json={"custom_metadata": {"owner": "ops"}})
    assert r.status_code == 204, r.text
    m = kv.read_secret_metadata(k, mount_point=mnt)["data"]
    assert m["max_versions"] == 5
    assert m["delete_version_after"] == "3h0m0s"
    assert m["custom_metadata"] == {"owner": "ops"}

    assert kv.delete_metadata_and_all_versions(k, mount_point=mnt).status_code == 204
    r = server.req("GET", "%s/metadata/%s" % (mnt, k))
    assert r.status_code == 404
    assert r.json() == {"errors": []}
    assert server.req("GET", "%s/data/%s" % (mnt, k)).status_code == 404


def test_metadata_without_versions(server, mnt):
    k = key()
    r = server.req("POST", "%s/metadata/%s" % (mnt, k), json={"max_versions": 3})
    assert r.status_code == 204, r.text
    m = server.req("GET", "%s/metadata/%s" % (mnt, k)).json()["data"]
    assert m["current_version"] == 0
    assert m["max_versions"] == 3
    assert m["versions"] == {}


def test_max_versions(server, mnt):
    kv = server.client.secrets.kv.v2
    k = key()
    kv.update_metadata(k, max_versions=2, mount_point=mnt)
    for i in range(1, 5):
        assert kv.create_or_update_secret(k, {"v": str(i)}, mount_point=mnt)["data"]["version"] == i
    m = kv.read_secret_metadata(k, mount_point=mnt)["data"]
    assert m["current_version"] == 4
    assert m["oldest_version"] == 3
    assert set(m["versions"]) == {"3", "4"}
    assert server.req("GET", "%s/data/%s?version=1" % (mnt, k)).status_code == 404
    assert kv.read_secret_version(k, version=3, mount_point=mnt)["data"]["data"] == {"v": "3"}


def test_list(server, mnt):
    kv = server.client.secrets.kv.v2
    base = key()
    for p in ("b", "a", "sub/c"):
        kv.create_or_update_secret("%s/%s" % (base, p), {"x": "y"}, mount_point=mnt)
    assert kv.list_secrets(base, mount_point=mnt)["data"]["keys"] == ["a", "b", "sub/"]
    r = server.req("LIST", "%s/metadata/%s/" % (mnt, base))
    assert r.json()["data"]["keys"] == ["a", "b", "sub/"]
    r = server.req("LIST", "%s/metadata/%s-none/" % (mnt, base))
    assert r.status_code == 404
    assert r.json() == {"errors": []}
    # A soft-deleted key is still listed (its metadata exists).
    kv.delete_latest_version_of_secret("%s/a" % base, mount_point=mnt)
    assert "a" in kv.list_secrets(base, mount_point=mnt)["data"]["keys"]


def test_config(server):
    path = server.mount("kv-v2")
    try:
        kv = server.client.secrets.kv.v2
        d = kv.read_configuration(mount_point=path)["data"]
        assert d == {"cas_required": False, "delete_version_after": "0s", "max_versions": 0}
        assert kv.configure(max_versions=3, cas_required=False,
                            delete_version_after="0s", mount_point=path).status_code == 204
        d = kv.read_configuration(mount_point=path)["data"]
        assert d == {"cas_required": False, "delete_version_after": "0s", "max_versions": 3}
        # The mount's max_versions applies to keys without their own.
        k = key()
        for i in range(5):
            kv.create_or_update_secret(k, {"v": str(i)}, mount_point=path)
        m = kv.read_secret_metadata(k, mount_point=path)["data"]
        assert len(m["versions"]) == 3
        # cas_required on the mount.
        kv.configure(max_versions=3, cas_required=True, mount_point=path)
        r = server.req("POST", "%s/data/%s" % (path, k), json={"data": {"a": "b"}})
        assert r.status_code == 400
        assert r.json() == {"errors": ["check-and-set parameter required for this call"]}
        kv.configure(max_versions=0, cas_required=False, delete_version_after="1h",
                     mount_point=path)
        d = kv.read_configuration(mount_point=path)["data"]
        assert d["delete_version_after"] == "1h0m0s"
    finally:
        server.unmount(path)


@pytest.mark.parametrize("method,verb", [("GET", "get"), ("PUT", "put"),
                                         ("DELETE", "delete"), ("LIST", "list")])
def test_invalid_path_raw_404(server, mnt, method, verb):
    kwargs = {"json": {"a": "b"}} if method == "PUT" else {}
    r = server.req(method, "%s/%s" % (mnt, key()), **kwargs)
    assert r.status_code == 404, r.text
    assert r.headers["Content-Type"] == "application/json"
    b = r.json()
    assert "errors" not in b, b
    assert b["warnings"] == [KV2_INVALID_PATH_WARNING % verb], b["warnings"]


@pytest.mark.parametrize("sub", ["data", "metadata", "delete", "undelete", "destroy"])
def test_root_of_mount_raw_404(server, mnt, sub):
    r = server.req("GET", "%s/%s" % (mnt, sub))
    assert r.status_code == 404, r.text
    b = r.json()
    assert "errors" not in b, b
    assert b["warnings"] == [KV2_ROOT_WARNING]


def test_data_round_trip_types(server, mnt):
    k = key()
    value = {"s": "x", "n": 3, "f": 2.5, "b": True, "null": None,
             "list": ["a", 1], "obj": {"deep": {"er": "yes"}}}
    r = server.req("POST", "%s/data/%s" % (mnt, k), json={"data": value})
    assert r.status_code == 200, r.text
    assert server.req("GET", "%s/data/%s" % (mnt, k)).json()["data"]["data"] == value


def test_delete_latest_via_http_delete(server, mnt):
    k = key()
    server.req("POST", "%s/data/%s" % (mnt, k), json={"data": {"a": "1"}})
    server.req("POST", "%s/data/%s" % (mnt, k), json={"data": {"a": "2"}})
    assert server.req("DELETE", "%s/data/%s" % (mnt, k)).status_code == 204
    assert server.req("GET", "%s/data/%s" % (mnt, k)).status_code == 404
    r = server.req("GET", "%s/data/%s?version=1" % (mnt, k))
    assert r.status_code == 200
    assert r.json()["data"]["data"] == {"a": "1"}
    # Writing again gives version 3 and it is readable.
    r = server.req("POST", "%s/data/%s" % (mnt, k), json={"data": {"a": "3"}})
    assert r.json()["data"]["version"] == 3
    assert server.req("GET", "%s/data/%s" % (mnt, k)).status_code == 200
