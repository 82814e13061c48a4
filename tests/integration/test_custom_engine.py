"""examples/custom-engine: the README walkthrough, for real.

The example API key service (keyservice.py) and a dev server loading the
example engine (-dev-plugin-dir=examples/custom-engine) with the service
on its HTTP allowlist; clients are hvac and requests, as in the README.
"""

import os
import subprocess
import sys
import time

import pytest
import requests

from conftest import ROOT, Server, coffer_bin, free_port
from helpers import wait_until

EXAMPLE = os.path.join(ROOT, "examples", "custom-engine")
ADMIN = "admin-" + os.urandom(6).hex()


class KeyService:
    def __init__(self, state_file):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.state_file = state_file
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(EXAMPLE, "keyservice.py"),
             "--port", str(self.port), "--admin-token", ADMIN,
             "--state-file", self.state_file],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/v1/keys", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError("keyservice did not start")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def names(self):
        r = requests.get(self.url + "/v1/keys", timeout=5,
                         headers={"Authorization": "Bearer " + ADMIN})
        assert r.status_code == 200, r.text
        return {k["name"] for k in r.json()["keys"]}

    def whoami(self, key):
        return requests.get(self.url + "/v1/whoami", timeout=5,
                            headers={"Authorization": "Bearer " + key})


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = KeyService(str(tmp_path_factory.mktemp("ks") / "keys.json"))
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def srv(service):
    s = Server(["-workers=2", "-dev-plugin-dir=" + EXAMPLE,
                "-dev-plugin-http-allowed=" + service.url,
                "-dev-lease-retry-base=0.2", "-dev-lease-retry-max=0.5"])
    s.client.sys.enable_secrets_engine("servicekeys", path="servicekeys")
    yield s
    assert s.stop() == 0


def write_role(srv, service, name, **extra):
    body = {"url": service.url, "admin_token": ADMIN, "scopes": "read,deploy",
            "ttl": "1h", "max_ttl": "2h"}
    body.update(extra)
    r = srv.req("POST", "servicekeys/roles/" + name, json=body)
    assert r.status_code == 204, r.text


def test_role_never_shows_the_admin_token(srv, service):
    write_role(srv, service, "ci")
    r = srv.client.read("servicekeys/roles/ci")
    assert r["data"]["url"] == service.url
    assert r["data"]["admin_token_set"] is True
    assert "admin_token" not in r["data"]
    raw = srv.req("GET", "servicekeys/roles/ci")
    assert ADMIN not in raw.text


def test_creds_then_revoke_deletes_the_key(srv, service):
    write_role(srv, service, "ci")
    r = srv.client.read("servicekeys/creds/ci")
    lease_id, data = r["lease_id"], r["data"]
    assert lease_id.startswith("servicekeys/creds/ci/")
    assert r["lease_duration"] == 3600 and r["renewable"] is True
    assert data["name"] in service.names()
    who = service.whoami(data["key"])
    assert who.status_code == 200 and who.json()["scopes"] == ["read",
                                                                "deploy"]
    srv.client.sys.revoke_lease(lease_id)
    assert data["name"] not in service.names()
    assert service.whoami(data["key"]).status_code == 401
    # The same through curl, as in the README.
    r = srv.client.read("servicekeys/creds/ci")
    out = subprocess.run(
        ["curl", "-sf", "-X", "PUT", "-H", "X-Vault-Token: " + srv.token,
         "-d", '{"lease_id": "%s"}' % r["lease_id"],
         srv.url("sys/leases/revoke")], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert r["data"]["name"] not in service.names()


def test_expiry_deletes_the_key(srv, service):
    write_role(srv, service, "short", ttl="2s", max_ttl="2s")
    r = srv.client.read("servicekeys/creds/short")
    name = r["data"]["name"]
    assert r["lease_duration"] == 2
    assert name in service.names()
    assert wait_until(lambda: name not in service.names(), timeout=10)
    # The record is deleted just after the engine's revoke returns.
    assert wait_until(lambda: srv.req(
        "PUT", "sys/leases/lookup",
        json={"lease_id": r["lease_id"]}).status_code == 400, timeout=10)


def test_service_down_at_revoke_keeps_the_lease(srv, service):
    write_role(srv, service, "ci")
    r = srv.client.read("servicekeys/creds/ci")
    lease_id, name = r["lease_id"], r["data"]["name"]
    service.stop()
    try:
        rv = srv.req("PUT", "sys/leases/revoke", json={"lease_id": lease_id})
        assert rv.status_code >= 400, rv.text
        assert "deleting the key" in rv.text and ADMIN not in rv.text
        look = srv.req("PUT", "sys/leases/lookup", json={"lease_id": lease_id})
        assert look.status_code == 200, look.text   # not lost
    finally:
        service.start()
    assert name in service.names()  # the service kept it (state file)
    rv = srv.req("PUT", "sys/leases/revoke", json={"lease_id": lease_id})
    assert rv.status_code == 204, rv.text
    assert name not in service.names()


def test_service_down_at_expiry_is_retried(srv, service):
    write_role(srv, service, "short", ttl="2s", max_ttl="2s")
    r = srv.client.read("servicekeys/creds/short")
    name = r["data"]["name"]
    service.stop()
    try:
        time.sleep(3)   # expired while the service is down: retried
        look = srv.req("PUT", "sys/leases/lookup",
                       json={"lease_id": r["lease_id"]})
        assert look.status_code == 200, look.text
    finally:
        service.start()
    assert wait_until(lambda: name not in service.names(), timeout=10)


def test_unlisted_service_is_refused(srv, service):
    # The allowlist names only the service's URL.
    write_role(srv, service, "elsewhere",
               url="http://127.0.0.1:%d" % free_port())
    r = srv.req("GET", "servicekeys/creds/elsewhere")
    assert r.status_code == 500
    assert "creating the key" in r.text and ADMIN not in r.text


def test_harness_tests_of_the_example_pass():
    p = subprocess.run([coffer_bin(), "plugin", "test",
                        os.path.join(EXAMPLE, "servicekeys.lua")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    out = p.stdout.decode()
    assert p.returncode == 0, out + p.stderr.decode()
    assert "0 failed" in out and "not ok" not in out
