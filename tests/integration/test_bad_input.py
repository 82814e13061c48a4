"""Bad input: every case gets the right status and `errors` text, and the
server keeps serving afterwards (issue 2, "Bad input that must be handled").

The cases are a table (data/bad_input.json); each one is followed by a
health check and a KV round trip on the same server.
"""

import uuid

import pytest

from conftest import load_cases
from helpers import raw_request

MIB = 1024 * 1024


def still_serves(server):
    r = server.req("GET", "sys/health")
    assert r.status_code == 200, "server stopped serving: %r" % r
    key = "secret/data/alive-" + uuid.uuid4().hex[:8]
    r = server.req("POST", key, json={"data": {"ok": "yes"}})
    assert r.status_code == 200, r.text
    r = server.req("GET", key)
    assert r.status_code == 200 and r.json()["data"]["data"] == {"ok": "yes"}


@pytest.mark.parametrize("case", load_cases("bad_input.json"), ids=lambda c: c["id"])
def test_bad_input_table(server, kv1, case):
    path = case["path"].replace("KV1", kv1)
    headers = {}
    tok = case.get("token", "root")
    if tok == "root":
        headers["X-Vault-Token"] = server.token
    elif tok:
        headers["X-Vault-Token"] = tok
    body = case.get("body")
    body = body.encode() if isinstance(body, str) else b""
    r = raw_request(server.addr, case["method"], "/v1/" + path,
                    headers=headers, body=body)
    assert r.status_code == case["status"], r
    assert r.headers.get("content-type") == "application/json", r.headers
    got = r.json()
    if "errors" in case:
        assert got == {"errors": case["errors"]}, got
    else:
        assert isinstance(got.get("errors"), list) and got["errors"], got
    still_serves(server)


def test_revoked_token(server):
    tok = server.client.auth.token.create(policies=["root"], ttl="1h")["auth"]["client_token"]
    assert server.req("GET", "sys/mounts", token=tok).status_code == 200
    assert server.req("POST", "auth/token/revoke", json={"token": tok}).status_code == 204
    for method, path in (("GET", "sys/mounts"), ("GET", "auth/token/lookup-self"),
                         ("GET", "secret/data/x"), ("LIST", "secret/metadata/")):
        r = server.req(method, path, token=tok)
        assert r.status_code == 403, (path, r.text)
        assert r.json() == {"errors": ["permission denied"]}
    still_serves(server)


@pytest.mark.parametrize("token", [
    "garbage", "hvs.AAAAAAAAAAAAAAAAAAAAAAAA", "s.abc", "", "x" * 5000,
    "root-but-not-quite", "\u00e9t\u00e9"])
def test_garbage_tokens(server, token):
    headers = {"X-Vault-Token": token.encode("utf-8")}
    r = server.req("GET", "sys/mounts", token=None, headers=headers)
    assert r.status_code == 403, r.text
    assert r.json() == {"errors": ["permission denied"]}
    still_serves(server)


def test_body_too_large_content_length(server, kv1):
    r = raw_request(server.addr, "PUT", "/v1/%s/huge" % kv1,
                    headers={"X-Vault-Token": server.token},
                    body=33 * MIB, timeout=60)
    assert r.status_code == 413, r
    assert r.json() == {"errors": ["error parsing JSON"]}
    assert server.req("GET", kv1 + "/huge").status_code == 404
    still_serves(server)


def test_body_too_large_chunked(server, kv1):
    r = raw_request(server.addr, "PUT", "/v1/%s/huge3" % kv1,
                    headers={"X-Vault-Token": server.token},
                    body=33 * MIB, chunked=True, timeout=60)
    assert r.status_code == 413, r
    assert r.json() == {"errors": ["error parsing JSON"]}
    still_serves(server)


def test_large_body_under_limit_ok(server, kv1):
    big = "v" * (4 * MIB)
    r = server.req("PUT", kv1 + "/big", json={"blob": big})
    assert r.status_code == 204, r.text[:300]
    r = server.req("GET", kv1 + "/big")
    assert r.status_code == 200
    assert r.json()["data"]["blob"] == big


def test_many_bad_requests_in_a_row(server, kv1):
    for i in range(50):
        r = server.req("PUT", "%s/x%d" % (kv1, i), data=b"{not json" * (i + 1))
        assert r.status_code == 400
    still_serves(server)
