"""One set of conventions for every kind of plugin.

Engines, auth methods, database plugins and Lua policies register the same
way (coffer.engine{}, coffer.auth{}, coffer.database_plugin{},
coffer.policy{}); login routes are keyed like paths (`write`; the older
`handler` still works); a handler and a Lua policy's check see the same
request fields under the same names.
"""

import os
import shutil
import tempfile
import time

import pytest

from conftest import Server

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "plugin_conventions")


@pytest.fixture(scope="module")
def srv():
    s = Server(extra_args=["-dev-plugin-dir=" + os.path.join(DATA, "plugins"),
                           "-dev-policy-dir=" + os.path.join(DATA, "policies")])
    for path, typ in (("sys/auth/conv", "convauth"),
                      ("sys/auth/legacy", "convlegacy"),
                      ("sys/mounts/conv", "convecho")):
        r = s.req("POST", path, json={"type": typ})
        assert r.status_code == 204, r.text
    yield s
    assert s.stop() == 0, s.stderr_text()[-4000:]


def test_login_route_keyed_write(srv):
    r = srv.req("POST", "auth/conv/login", token=False, json={"who": "alice"})
    assert r.status_code == 200, r.text
    auth = r.json()["auth"]
    assert auth["metadata"] == {"how": "write"}
    assert "conv-policy" in auth["policies"]
    r = srv.req("POST", "auth/conv/login", token=False, json={"who": "eve"})
    assert r.status_code == 400
    assert r.json()["errors"] == ["invalid who"]


def test_login_route_with_the_older_handler_key(srv):
    r = srv.req("POST", "auth/legacy/login", token=False, json={})
    assert r.status_code == 200, r.text
    assert r.json()["auth"]["metadata"] == {"how": "handler"}


def test_handler_and_policy_see_the_same_fields(srv):
    r = srv.req("POST", "auth/conv/login", token=False, json={"who": "alice"})
    tok = r.json()["auth"]["client_token"]
    t0 = int(time.time())
    r = srv.req("GET", "conv/echo/x1", token=tok)
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["path"] == "echo/x1"
    assert d["full_path"] == "conv/echo/x1"
    assert d["mount_path"] == "conv/"
    assert d["operation"] == "read"
    assert abs(d["time"] - t0) <= 2 and isinstance(d["time"], int)
    assert d["id"] and d["client_addr"] == "127.0.0.1"
    assert "conv-policy" in d["token_policies"]
    # The policy's check compares the same fields: a wrong expectation of
    # the mount-relative path denies.
    r = srv.req("GET", "conv/echo/x2?expect_tail=x2", token=tok)
    assert r.status_code == 200, r.text
    r = srv.req("GET", "conv/echo/x2?expect_tail=other", token=tok)
    assert r.status_code == 403, r.text


BAD = {
    # coffer.policy is for policy files only.
    ("plugins", "p.lua"): ('coffer.policy { name = "x" }\n',
                           "p.lua:1:", "only in a file of the policy_directory"),
    # One policy per file, and not both styles.
    ("policies", "two.lua"): ('coffer.policy { name = "a" }\n'
                              'coffer.policy { name = "b" }\n',
                              "two.lua:2:", "one policy per file"),
    ("policies", "both.lua"): ('coffer.policy { name = "a" }\n'
                               'return { name = "b" }\n',
                               "both.lua", "not both"),
    ("policies", "none.lua"): ('local x = 1\n', "none.lua",
                               "must call coffer.policy"),
    # A login route without a handler.
    ("plugins", "nologin.lua"): ('local a = coffer.auth { name = "z" }\n'
                                 'a:login("login", { fields = {} })\n',
                                 "nologin.lua:2:", "write = function"),
}


@pytest.mark.parametrize("where,name", sorted(BAD))
def test_misuse_stops_start_up_with_file_line(where, name):
    text, at, what = BAD[(where, name)]
    d = tempfile.mkdtemp(prefix="coffer-conv-")
    try:
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
        flag = "-dev-plugin-dir=" if where == "plugins" else "-dev-policy-dir="
        with pytest.raises(RuntimeError) as exc:
            Server(extra_args=[flag + d])
        msg = str(exc.value)
        assert at in msg and what in msg, msg
    finally:
        shutil.rmtree(d)
