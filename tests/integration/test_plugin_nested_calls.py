"""A Lua call that runs inside another on the same thread.

lease:abort() in a handler runs the engine's revoke at once, in the same
Lua state, while the handler waits. The inner call must hand the outer
one back intact (its storage handle, its deadline), and a revoke that
wants the lock the handler holds must fail at once (the abort's revoke is
then retried by the expiration manager), never deadlock the worker.
"""

import os
import time
import uuid

import pytest

from conftest import Server

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def srv():
    s = Server(extra_args=[
        "-dev-plugin-dir=" + os.path.join(HERE, "data", "plugin_nested"),
        "-dev-lease-retry-base=0.05", "-dev-lease-retry-max=0.5"])
    r = s.req("POST", "sys/mounts/nested", json={"type": "nested"})
    assert r.status_code == 204, r.text
    yield s
    assert s.stop() == 0, s.stderr_text()[-4000:]


def test_handler_survives_an_inner_revoke(srv):
    name = uuid.uuid4().hex[:8]
    r = srv.req("POST", "nested/abort/" + name, json={})
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"revoked": "yes", "after": "ok"}


def test_revoke_wanting_the_held_lock_fails_fast_then_retries(srv):
    name = uuid.uuid4().hex[:8]
    t0 = time.monotonic()
    r = srv.req("POST", "nested/abort-locked/" + name, json={}, timeout=10)
    took = time.monotonic() - t0
    assert r.status_code == 200, r.text
    assert took < 3, took
    assert r.json()["data"]["after"] == "ok"
    # The revoke that could not run inside the handler runs later.
    assert r.json()["data"].get("revoked") is None
    deadline = time.monotonic() + 10
    got = None
    while time.monotonic() < deadline:
        r = srv.req("GET", "nested/revoked/" + name)
        got = (r.json().get("data") or {}).get("revoked")
        if got == "yes":
            break
        time.sleep(0.1)
    assert got == "yes"
    # The worker is free and the server answers.
    assert srv.req("GET", "sys/health").status_code == 200
