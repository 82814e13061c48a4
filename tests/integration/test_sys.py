"""sys/ built-ins: health, seal-status, leader, mounts, auth, internal/ui/mounts.

Expected texts and codes come from docs/VAULT_API.md sections 2.1-2.8.
"""

import re
import uuid

import pytest

from conftest import load_cases
from helpers import UUID_RE, raw_request

HEALTH_KEYS = {"initialized", "sealed", "standby", "performance_standby",
               "replication_performance_mode", "replication_dr_mode",
               "server_time_utc", "version", "cluster_name", "cluster_id"}


def uniq(prefix="m"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


# ------------------------------------------------------------------ health --

@pytest.mark.parametrize("case", load_cases("health_cases.json"),
                         ids=lambda c: c["query"] or "plain")
def test_health_codes(server, case):
    r = server.req("GET", "sys/health" + case["query"], token=None)
    assert r.status_code == case["status"], (case, r.text)
    assert r.headers.get("Content-Type") == "application/json"
    body = r.json()
    if case["status"] == 400:
        assert body == {"errors": []}
    else:
        assert HEALTH_KEYS <= set(body), body
        assert "request_id" not in body  # bare JSON, no envelope


def test_health_body(server):
    r = server.req("GET", "sys/health", token=None)
    assert r.status_code == 200
    b = r.json()
    assert b["initialized"] is True
    assert b["sealed"] is False
    assert b["standby"] is False
    assert b["performance_standby"] is False
    assert b["replication_performance_mode"] == "disabled"
    assert b["replication_dr_mode"] == "disabled"
    assert isinstance(b["server_time_utc"], int)
    import time
    assert abs(b["server_time_utc"] - time.time()) < 60
    assert isinstance(b["version"], str) and b["version"]
    assert isinstance(b["cluster_name"], str) and b["cluster_name"]
    assert UUID_RE.match(b["cluster_id"]), b["cluster_id"]


def test_health_ignores_token(server):
    r = server.req("GET", "sys/health", token="garbage-token")
    assert r.status_code == 200


@pytest.mark.parametrize("query,status", [
    ("", 200), ("?activecode=299", 299), ("?sealedcode=200", 200),
    ("?standbyok=true", 200), ("?activecode=abc", 400)])
def test_health_head(server, query, status):
    r = raw_request(server.addr, "HEAD", "/v1/sys/health" + query)
    assert r.status_code == status
    assert r.content == b""


def test_health_head_via_hvac(server):
    # hvac 0.11.2 defaults to HEAD and returns the raw response.
    resp = server.client.sys.read_health_status()
    assert resp.status_code == 200
    data = server.client.sys.read_health_status(method="GET")
    assert data["initialized"] is True and data["sealed"] is False


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "LIST"])
def test_health_other_verbs(server, method):
    r = server.req(method, "sys/health", token=None)
    assert r.status_code == 405
    assert r.json() == {"errors": []}


# ------------------------------------------------------------ seal-status --

def test_seal_status(server):
    r = server.req("GET", "sys/seal-status", token=None)
    assert r.status_code == 200
    assert r.headers.get("Content-Type") == "application/json"
    b = r.json()
    assert "request_id" not in b
    assert b["type"] == "shamir"
    assert b["initialized"] is True
    assert b["sealed"] is False
    assert isinstance(b["t"], int) and isinstance(b["n"], int)
    assert b["t"] >= 1 and b["n"] >= b["t"]
    assert b["progress"] == 0
    assert b["nonce"] == ""
    assert isinstance(b["version"], str) and b["version"]
    assert b["migration"] is False
    assert b["recovery_seal"] is False
    assert isinstance(b["storage_type"], str)
    assert isinstance(b["cluster_name"], str) and b["cluster_name"]
    assert UUID_RE.match(b["cluster_id"])
    # The same cluster as sys/health reports.
    h = server.req("GET", "sys/health").json()
    assert h["cluster_id"] == b["cluster_id"]
    assert h["version"] == b["version"]


def test_seal_status_hvac(server):
    st = server.client.sys.read_seal_status()
    assert st["sealed"] is False
    assert server.client.sys.is_sealed() is False
    assert server.client.sys.is_initialized() is True


# ------------------------------------------------------------------ leader --

def test_leader(server):
    r = server.req("GET", "sys/leader", token=None)
    assert r.status_code == 200
    assert r.headers.get("Content-Type") == "application/json"
    b = r.json()
    assert b["ha_enabled"] is False
    assert b["is_self"] is False
    assert b["active_time"] == "0001-01-01T00:00:00Z"
    assert b["leader_address"] == ""
    assert b["leader_cluster_address"] == ""
    assert b["performance_standby"] is False
    assert b["performance_standby_last_remote_wal"] == 0
    assert "request_id" not in b


# ------------------------------------------------------------------ mounts --

def _check_mount_entry(entry, type_):
    assert entry["type"] == type_
    assert re.match(r"^%s_[0-9a-f]{8}$" % re.escape(type_), entry["accessor"]), entry
    assert UUID_RE.match(entry["uuid"]), entry
    assert isinstance(entry["description"], str)
    cfg = entry["config"]
    assert isinstance(cfg["default_lease_ttl"], int)
    assert isinstance(cfg["max_lease_ttl"], int)
    assert cfg["force_no_cache"] is False
    assert entry["local"] is False
    assert entry["seal_wrap"] is False


def test_mounts_list(server):
    r = server.req("GET", "sys/mounts")
    assert r.status_code == 200
    b = r.json()
    data = b["data"]
    assert "secret/" in data and "sys/" in data
    sec = data["secret/"]
    _check_mount_entry(sec, "kv")
    assert sec["options"] == {"version": "2"}
    assert sec["config"]["default_lease_ttl"] == 0
    assert sec["config"]["max_lease_ttl"] == 0
    assert data["sys/"]["type"] == "system"
    # Top-level injection (VAULT_API 1.7): the same entries at the top.
    assert b["secret/"] == data["secret/"]
    assert b["sys/"] == data["sys/"]
    for k in ("request_id", "lease_id", "renewable", "lease_duration",
              "wrap_info", "warnings", "auth"):
        assert k in b


def test_mounts_list_hvac(server):
    mounts = server.client.sys.list_mounted_secrets_engines()
    assert "secret/" in mounts["data"]
    assert server.client.sys.retrieve_mount_option("secret", "version") == "2"


def test_mount_enable_read_disable(server):
    path = uniq("kvm")
    r = server.req("POST", "sys/mounts/" + path, json={
        "type": "kv", "description": "a test mount",
        "config": {"default_lease_ttl": "1h", "max_lease_ttl": "2h"},
        "options": {"version": "1"}})
    assert r.status_code == 204, r.text
    assert r.content == b""

    entry = server.req("GET", "sys/mounts").json()["data"][path + "/"]
    _check_mount_entry(entry, "kv")
    assert entry["description"] == "a test mount"
    assert entry["config"]["default_lease_ttl"] == 3600
    assert entry["config"]["max_lease_ttl"] == 7200
    assert entry["options"] == {"version": "1"}

    one = server.req("GET", "sys/mounts/" + path)
    assert one.status_code == 200
    assert one.json()["data"]["type"] == "kv"
    assert one.json()["data"]["accessor"] == entry["accessor"]

    r = server.req("DELETE", "sys/mounts/" + path)
    assert r.status_code == 204
    assert path + "/" not in server.req("GET", "sys/mounts").json()["data"]
    # Disabling again (missing mount) is fine.
    assert server.req("DELETE", "sys/mounts/" + path).status_code == 204


def test_mount_paths_with_trailing_slash(server):
    # Vault refuses every write to a path ending in "/" (the Go api client
    # never sends one: it cleans paths with path.Join). A DELETE is fine.
    path = uniq("slash")
    r = server.req("POST", "sys/mounts/%s/" % path, json={"type": "kv"})
    assert r.status_code == 400, r.text
    assert r.json() == {"errors": ["cannot write to a path ending in '/'"]}
    server.mount("kv", path)
    r = server.req("DELETE", "sys/mounts/%s/" % path)
    assert r.status_code == 204, r.text
    assert path + "/" not in server.req("GET", "sys/mounts").json()["data"]


def test_mount_enable_hvac_nulls(server):
    # hvac sends "config": null, "options": null, "plugin_name": null.
    path = uniq("hv")
    resp = server.client.sys.enable_secrets_engine("kv", path=path)
    assert resp.status_code == 204
    assert path + "/" in server.client.sys.list_mounted_secrets_engines()["data"]
    server.client.sys.disable_secrets_engine(path)
    assert path + "/" not in server.client.sys.list_mounted_secrets_engines()["data"]


@pytest.mark.parametrize("type_,options,version", [
    ("kv", None, None), ("kv", {"version": "2"}, "2"), ("kv-v2", None, "2"),
    ("kv-v1", None, "1"), ("generic", None, None)])
def test_mount_kv_aliases(server, type_, options, version):
    path = uniq("alias")
    body = {"type": type_}
    if options:
        body["options"] = options
    r = server.req("POST", "sys/mounts/" + path, json=body)
    assert r.status_code == 204, r.text
    try:
        entry = server.req("GET", "sys/mounts").json()["data"][path + "/"]
        assert entry["type"] == "kv"
        if version is None:
            assert entry["options"] in (None, {}, {"version": "1"})
        else:
            assert (entry["options"] or {}).get("version") == version
    finally:
        server.unmount(path)


@pytest.mark.parametrize("case", load_cases("mount_errors.json"),
                         ids=lambda c: c["id"])
def test_mount_enable_errors(server, case):
    path = uniq("bad") if case["path"] == "UNIQUE" else case["path"]
    r = server.req("POST", "sys/mounts/" + path, json=case["body"])
    assert r.status_code == case["status"], r.text
    assert r.headers.get("Content-Type") == "application/json"
    errors = r.json()["errors"]
    if case["errors"] is None:
        assert len(errors) == 1 and errors[0], errors
    else:
        assert errors == case["errors"]
    # Nothing was mounted.
    if case["path"] == "UNIQUE":
        assert path + "/" not in server.req("GET", "sys/mounts").json()["data"]
    assert server.req("GET", "sys/health").status_code == 200


def test_mount_overlap_both_directions(server):
    outer = uniq("outer")
    server.mount("kv", outer + "/inner")
    try:
        r = server.req("POST", "sys/mounts/" + outer, json={"type": "kv"})
        assert r.status_code == 400
        assert r.json()["errors"] == ["path is already in use at %s/inner/" % outer]
        r = server.req("POST", "sys/mounts/%s/inner/deeper" % outer, json={"type": "kv"})
        assert r.status_code == 400
        assert r.json()["errors"] == ["path is already in use at %s/inner/" % outer]
    finally:
        server.unmount(outer + "/inner")


@pytest.mark.parametrize("bad", ["a%2F..%2Fb", "a%2F%2Fb", "%2E%2E", "a%2F..",
                                 "x/../y", "x//y"])
def test_mount_path_validation(server, bad):
    # A bare socket: client libraries would clean dot segments themselves.
    r = raw_request(server.addr, "POST", "/v1/sys/mounts/" + bad,
                    headers={"X-Vault-Token": server.token},
                    body=b'{"type":"kv"}')
    # Vault's Go mux redirects "//" and "/../" to the clean path; anything
    # else that reaches the mount table must be refused.
    if r.status_code not in (301, 307, 308):
        assert r.status_code == 400, r
        assert r.json()["errors"], r
    names = server.req("GET", "sys/mounts").json()["data"].keys()
    assert not any(".." in n or "//" in n for n in names), names


def test_unmount_sys_refused(server):
    r = server.req("DELETE", "sys/mounts/sys")
    assert r.status_code == 400
    assert r.json() == {"errors": ['cannot unmount "sys/"']}
    assert server.req("GET", "sys/mounts").status_code == 200
    assert "sys/" in server.req("GET", "sys/mounts").json()["data"]


def test_mount_tune(server):
    path = server.mount("kv")
    try:
        r = server.req("GET", "sys/mounts/%s/tune" % path)
        assert r.status_code == 200
        d = r.json()["data"]
        assert d["default_lease_ttl"] == 2764800
        assert d["max_lease_ttl"] == 2764800
        assert d["force_no_cache"] is False
        assert "description" in d

        r = server.req("POST", "sys/mounts/%s/tune" % path, json={
            "default_lease_ttl": "1h", "max_lease_ttl": 7200,
            "description": "tuned"})
        assert r.status_code == 204, r.text
        d = server.client.sys.read_mount_configuration(path)["data"]
        assert d["default_lease_ttl"] == 3600
        assert d["max_lease_ttl"] == 7200
        assert d["description"] == "tuned"
        entry = server.req("GET", "sys/mounts").json()["data"][path + "/"]
        assert entry["config"]["default_lease_ttl"] == 3600
        assert entry["config"]["max_lease_ttl"] == 7200
        assert entry["description"] == "tuned"

        # hvac's tune helper.
        resp = server.client.sys.tune_mount_configuration(
            path, default_lease_ttl="30m")
        assert resp.status_code == 204
        d = server.client.sys.read_mount_configuration(path)["data"]
        assert d["default_lease_ttl"] == 1800
        assert d["max_lease_ttl"] == 7200

        # "system" resets to the system default.
        r = server.req("POST", "sys/mounts/%s/tune" % path, json={
            "default_lease_ttl": "system", "max_lease_ttl": "system"})
        assert r.status_code == 204, r.text
        d = server.client.sys.read_mount_configuration(path)["data"]
        assert d["default_lease_ttl"] == 2764800
        assert d["max_lease_ttl"] == 2764800

    finally:
        server.unmount(path)


def test_mount_tune_errors(server):
    path = server.mount("kv")
    try:
        r = server.req("POST", "sys/mounts/%s/tune" % path, json={
            "default_lease_ttl": "2h", "max_lease_ttl": "1h"})
        assert r.status_code == 400
        assert r.json()["errors"] == [
            "backend max lease TTL of 3600 would be less than backend default "
            "lease TTL of 7200"]
    finally:
        server.unmount(path)
    r = server.req("POST", "sys/mounts/sys/tune", json={"default_lease_ttl": "1h"})
    assert r.status_code == 400
    assert r.json()["errors"] == ['cannot tune "sys/"']
    r = server.req("POST", "sys/mounts/nope-%s/tune" % path,
                   json={"default_lease_ttl": "1h"})
    assert r.status_code == 400
    assert r.json()["errors"] == [
        'tune of path "nope-%s/" failed: no mount entry found' % path]


def test_mounts_need_token(server):
    r = server.req("GET", "sys/mounts", token=None)
    assert r.status_code == 403
    assert r.json() == {"errors": ["permission denied"]}
    r = server.req("POST", "sys/mounts/" + uniq(), token=None, json={"type": "kv"})
    assert r.status_code == 403


def test_unmount_removes_data(server):
    path = server.mount("kv")
    assert server.req("PUT", path + "/k", json={"v": "1"}).status_code == 204
    server.unmount(path)
    # Mounted again at the same path, the old data is gone.
    server.mount("kv", path)
    try:
        assert server.req("GET", path + "/k").status_code == 404
    finally:
        server.unmount(path)


# -------------------------------------------------------------------- auth --

def test_auth_list(server):
    r = server.req("GET", "sys/auth")
    assert r.status_code == 200
    b = r.json()
    tok = b["data"]["token/"]
    assert tok["type"] == "token"
    assert re.match(r"^auth_token_[0-9a-f]{8}$", tok["accessor"]), tok
    assert isinstance(tok["config"]["default_lease_ttl"], int)
    assert b["token/"] == tok  # top-level injection
    methods = server.client.sys.list_auth_methods()
    assert "token/" in methods["data"]


def test_auth_list_needs_token(server):
    r = server.req("GET", "sys/auth", token=None)
    assert r.status_code == 403
    assert r.json() == {"errors": ["permission denied"]}


# ------------------------------------------------------ internal/ui/mounts --

def test_ui_mounts_kv2(server):
    r = server.req("GET", "sys/internal/ui/mounts/secret/foo/bar")
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["type"] == "kv"
    assert d["path"] == "secret/"
    assert d["options"] == {"version": "2"}


def test_ui_mounts_kv1(server, kv1):
    r = server.req("GET", "sys/internal/ui/mounts/%s/x" % kv1)
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["type"] == "kv"
    assert d["path"] == kv1 + "/"
    assert (d.get("options") or {}).get("version", "1") == "1"


def test_ui_mounts_mount_itself(server):
    r = server.req("GET", "sys/internal/ui/mounts/secret")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["path"] == "secret/"


def test_ui_mounts_no_mount(server):
    r = server.req("GET", "sys/internal/ui/mounts/nomount-xyz/a")
    assert r.status_code == 403
    assert r.json() == {"errors": [
        "preflight capability check returned 403, please ensure client's "
        "policies grant access to path \"nomount-xyz/a/\""]}


def test_ui_mounts_auth_mount(server):
    r = server.req("GET", "sys/internal/ui/mounts/auth/token/lookup-self")
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["type"] == "token"
    assert d["path"] == "auth/token/"
