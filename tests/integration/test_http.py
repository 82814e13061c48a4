"""The HTTP layer: response envelope, headers, verbs, token headers.

VAULT_API.md 1.1-1.3 and 1.6: key order of the envelope, Content-Type exactly
application/json (hvac compares it as a string), Cache-Control: no-store,
204 for writes without data, LIST and ?list=<Go bool>.
"""

import json

import pytest

from helpers import ENVELOPE_KEYS, UUID_RE, raw_request


def ordered_keys(r):
    return [k for k, _ in json.loads(r.content, object_pairs_hook=list)]


def check_envelope_order(keys):
    rest = [k for k in keys if k != "mount_type"]
    assert rest == ENVELOPE_KEYS, keys
    if "mount_type" in keys:
        assert keys[-1] == "mount_type", keys


def test_envelope_shape_kv_read(server, kv1):
    assert server.req("PUT", kv1 + "/shape", json={"b": "2", "a": "1"}).status_code == 204
    r = server.req("GET", kv1 + "/shape")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers.get("Cache-Control") == "no-store"
    assert r.content.endswith(b"\n")
    check_envelope_order(ordered_keys(r))
    b = r.json()
    assert UUID_RE.match(b["request_id"]), b["request_id"]
    assert b["lease_id"] == ""
    assert b["renewable"] is False
    assert b["data"] == {"a": "1", "b": "2"}
    assert b["wrap_info"] is None
    assert b["warnings"] is None
    assert b["auth"] is None
    if "mount_type" in b:
        assert b["mount_type"] == "kv"


def test_request_ids_unique(server):
    ids = {server.req("GET", "sys/mounts").json()["request_id"] for _ in range(5)}
    assert len(ids) == 5
    assert all(UUID_RE.match(i) for i in ids)


def test_write_is_204_with_headers(server, kv1):
    r = server.req("PUT", kv1 + "/w", json={"x": "y"})
    assert r.status_code == 204
    assert r.content == b""
    assert r.headers.get("Content-Type") == "application/json"
    assert r.headers.get("Cache-Control") == "no-store"
    r = server.req("DELETE", kv1 + "/w")
    assert r.status_code == 204
    assert r.content == b""


def test_error_headers(server):
    r = server.req("GET", "nosuchmount/x")
    assert r.status_code == 404
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers.get("Cache-Control") == "no-store"
    assert set(r.json()) == {"errors"}


def test_post_equals_put(server, kv1):
    assert server.req("POST", kv1 + "/p", json={"v": "post"}).status_code == 204
    assert server.req("GET", kv1 + "/p").json()["data"] == {"v": "post"}
    assert server.req("PUT", kv1 + "/p", json={"v": "put"}).status_code == 204
    assert server.req("GET", kv1 + "/p").json()["data"] == {"v": "put"}


def test_json_without_content_type(server, kv1):
    # The Vault Go client sends no Content-Type; curl -d sends a form type.
    r = raw_request(server.addr, "PUT", "/v1/%s/nct" % kv1,
                    headers={"X-Vault-Token": server.token},
                    body=b'{"k":"v"}')
    assert r.status_code == 204, r
    r = raw_request(server.addr, "PUT", "/v1/%s/form" % kv1,
                    headers={"X-Vault-Token": server.token,
                             "Content-Type": "application/x-www-form-urlencoded"},
                    body=b'  {"k":"curl"}')
    assert r.status_code == 204, r
    assert server.req("GET", kv1 + "/nct").json()["data"] == {"k": "v"}
    assert server.req("GET", kv1 + "/form").json()["data"] == {"k": "curl"}


# ------------------------------------------------------------------- LIST --

@pytest.fixture
def listing(server, kv1):
    for k in ("b", "a", "sub/c", "sub/d/e"):
        assert server.req("PUT", "%s/dir/%s" % (kv1, k), json={"v": k}).status_code == 204
    return kv1


def test_list_verb(server, listing):
    r = server.req("LIST", listing + "/dir")
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"keys": ["a", "b", "sub/"]}
    r = server.req("LIST", listing + "/dir/")
    assert r.json()["data"] == {"keys": ["a", "b", "sub/"]}
    r = server.req("LIST", listing + "/dir/sub/")
    assert r.json()["data"] == {"keys": ["c", "d/"]}


@pytest.mark.parametrize("value", ["true", "True", "TRUE", "1", "t", "T"])
def test_list_query_true(server, listing, value):
    r = server.req("GET", listing + "/dir/?list=" + value)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"keys": ["a", "b", "sub/"]}


@pytest.mark.parametrize("value", ["false", "0", "F"])
def test_list_query_false_is_read(server, listing, value):
    r = server.req("GET", listing + "/dir/a?list=" + value)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"v": "a"}


@pytest.mark.parametrize("value", ["yes", "2", "tRuE", "on"])
def test_list_query_garbage(server, listing, value):
    r = server.req("GET", listing + "/dir/?list=" + value)
    assert r.status_code == 400, r.text
    assert r.json() == {"errors": []}


def test_list_hvac_legacy(server, listing):
    # hvac's legacy Client.list() sends GET ?list=True.
    assert server.client.list(listing + "/dir")["data"]["keys"] == ["a", "b", "sub/"]
    assert server.client.list(listing + "/nothing-here") is None


def test_list_empty_is_404(server, kv1):
    r = server.req("LIST", kv1 + "/empty/")
    assert r.status_code == 404
    assert r.json() == {"errors": []}


def test_list_not_listable_405(server):
    r = server.req("LIST", "secret/data/foo")
    assert r.status_code == 405, r.text
    errs = r.json()["errors"]
    assert len(errs) == 1 and "unsupported operation" in errs[0], errs


@pytest.mark.parametrize("method", ["LIST", "POST", "DELETE"])
@pytest.mark.parametrize("path", ["sys/health", "sys/seal-status", "sys/leader"])
def test_other_verbs_on_bare_sys_endpoints_405(server, path, method):
    # These are plain HTTP handlers in Vault, outside the logical router:
    # any verb they do not serve is 405 with an empty errors list.
    r = server.req(method, path)
    assert r.status_code == 405
    assert r.json() == {"errors": []}


def test_unknown_verb_405(server, kv1):
    r = raw_request(server.addr, "FROB", "/v1/%s/x" % kv1,
                    headers={"X-Vault-Token": server.token})
    assert r.status_code == 405
    assert r.json() == {"errors": []}


# ------------------------------------------------------------ token headers --

def test_bearer_token(server, kv1):
    server.req("PUT", kv1 + "/b", json={"v": "1"})
    r = server.req("GET", kv1 + "/b", token=None,
                   headers={"Authorization": "Bearer " + server.token})
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"v": "1"}


@pytest.mark.parametrize("header", [
    "bearer {t}",          # case-sensitive scheme
    "Basic {t}",           # other schemes are ignored
    "Bearer",              # no token
    "Token {t}",
])
def test_authorization_other_schemes_ignored(server, kv1, header):
    r = server.req("GET", kv1 + "/b", token=None,
                   headers={"Authorization": header.format(t=server.token)})
    assert r.status_code == 403
    assert r.json() == {"errors": ["permission denied"]}


def test_x_vault_token_wins_over_bearer(server, kv1):
    r = server.req("GET", "sys/mounts", token="garbage",
                   headers={"Authorization": "Bearer " + server.token})
    assert r.status_code == 403
    r = server.req("GET", "sys/mounts", token=server.token,
                   headers={"Authorization": "Bearer garbage"})
    assert r.status_code == 200


def test_x_vault_request_header_not_required(server):
    r = server.req("GET", "sys/mounts", headers={"X-Vault-Request": "true"})
    assert r.status_code == 200
    r = server.req("GET", "sys/mounts")
    assert r.status_code == 200


def test_outside_v1_is_404(server):
    r = raw_request(server.addr, "GET", "/nothing/here")
    assert r.status_code == 404
    assert r.json() == {"errors": []}
    r = raw_request(server.addr, "GET", "/v2/sys/health")
    assert r.status_code == 404


def test_unknown_route_404(server):
    r = server.req("GET", "nosuchmount/some/path")
    assert r.status_code == 404
    assert r.json() == {"errors": [
        'no handler for route "nosuchmount/some/path". route entry not found.']}


def test_mount_name_without_slash(server, kv1):
    # GET /v1/<mount> is retried as <mount>/ (VAULT_API 1.1).
    server.req("PUT", kv1 + "/k", json={"v": "1"})
    r = server.req("LIST", kv1)
    assert r.status_code == 200, r.text
    assert "k" in r.json()["data"]["keys"]


def test_url_encoded_path(server, kv1):
    assert server.req("PUT", kv1 + "/with%20space", json={"v": "1"}).status_code == 204
    r = server.req("LIST", kv1 + "/")
    assert "with space" in r.json()["data"]["keys"]
    assert server.req("GET", kv1 + "/with%20space").json()["data"] == {"v": "1"}
    # %2F is a slash.
    assert server.req("PUT", kv1 + "/enc%2Fkey", json={"v": "2"}).status_code == 204
    assert server.req("GET", kv1 + "/enc/key").json()["data"] == {"v": "2"}
