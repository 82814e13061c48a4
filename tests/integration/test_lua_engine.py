"""A Lua engine that raises errors or returns nonsense (issue 2, bad input;
STYLE rule 41, Redis scripting.tcl): each gives the right status and errors
text, never a traceback to the client, and the server keeps serving.

The engine lives in data/lua/broken.lua and is loaded next to the real
scripts through COFFER_LUA_DIR; the server runs with one worker thread so
every request meets the same lua_State the previous one left behind.
"""

import os
import shutil
import tempfile
import time

import pytest

from conftest import ROOT, Server, check_server_health
from helpers import multierror

HERE = os.path.dirname(os.path.abspath(__file__))


def make_lua_dir(*extra):
    d = tempfile.mkdtemp(prefix="coffer-lua-")
    shutil.copytree(os.path.join(ROOT, "lua"), os.path.join(d, "lua"))
    for name in extra:
        shutil.copy(os.path.join(HERE, "data", "lua", name),
                    os.path.join(d, "lua", "engines", name))
    return os.path.join(d, "lua")


@pytest.fixture(scope="module")
def lsrv():
    s = Server(["-workers=1"], env={"COFFER_LUA_DIR": make_lua_dir("broken.lua")})
    r = s.req("POST", "sys/mounts/broken", json={"type": "broken"})
    assert r.status_code == 204, r.text
    yield s
    status = s.stop()
    assert status == 0, s.stderr_text()[-3000:]


@pytest.fixture(autouse=True)
def _lsrv_alive(request):
    yield
    if "lsrv" in request.fixturenames:
        problem = check_server_health(request.getfixturevalue("lsrv"))
        if problem:
            pytest.fail(problem, pytrace=False)


def serves(s):
    r = s.req("GET", "broken/ok")
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"fine": True}
    assert s.req("GET", "sys/health").status_code == 200


def no_traceback(r):
    text = r.text
    assert "stack traceback" not in text
    assert ".lua:" not in text, text


@pytest.mark.parametrize("path", ["raise", "raise-table", "raise-nil",
                                  "deep-recursion", "bad-index"])
def test_script_error_is_500(lsrv, path):
    r = lsrv.req("GET", "broken/" + path)
    assert r.status_code == 500, r.text
    assert r.headers["Content-Type"] == "application/json"
    errs = r.json()["errors"]
    assert len(errs) == 1 and errs[0], errs
    no_traceback(r)
    serves(lsrv)


@pytest.mark.parametrize("path", ["nonsense-number", "nonsense-string",
                                  "nonsense-function", "nonsense-data",
                                  "nonsense-status", "nonsense-cycle"])
def test_nonsense_response_is_500(lsrv, path):
    r = lsrv.req("GET", "broken/" + path)
    assert r.status_code == 500, r.text
    assert r.json()["errors"], r.text
    no_traceback(r)
    serves(lsrv)


def test_typed_errors(lsrv):
    r = lsrv.req("GET", "broken/bad-request")
    assert r.status_code == 400
    assert r.json() == {"errors": ["you did it wrong"]}
    r = lsrv.req("GET", "broken/not-found")
    assert r.status_code == 404
    assert r.json() == {"errors": []}
    r = lsrv.req("GET", "broken/nothing")
    assert r.status_code == 404
    assert r.json() == {"errors": []}
    serves(lsrv)


def test_unknown_path_and_operation(lsrv):
    r = lsrv.req("GET", "broken/no/such/route")
    assert r.status_code == 404
    assert r.json() == {"errors": [multierror("unsupported path")]}
    r = lsrv.req("DELETE", "broken/ok")
    assert r.status_code == 405
    assert r.json() == {"errors": [multierror("unsupported operation")]}
    r = lsrv.req("LIST", "broken/ok")
    assert r.status_code in (404, 405)
    serves(lsrv)


@pytest.mark.once
def test_infinite_loop_hits_deadline(lsrv):
    t0 = time.monotonic()
    r = lsrv.req("GET", "broken/loop", timeout=120)
    assert r.status_code == 500, r.text
    assert time.monotonic() - t0 < 60
    no_traceback(r)
    serves(lsrv)


@pytest.mark.once
def test_pcall_cannot_swallow_deadline(lsrv):
    r = lsrv.req("GET", "broken/loop-pcall", timeout=120)
    assert r.status_code == 500, r.text
    serves(lsrv)


def test_memory_hog_is_contained(lsrv):
    r = lsrv.req("GET", "broken/memory-hog", timeout=120)
    assert r.status_code == 500, r.text
    serves(lsrv)


def test_sandbox(lsrv):
    r = lsrv.req("GET", "broken/sandbox")
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["io"] == "nil"
    assert d["os_execute"] == "nil"
    assert d["os_exit"] == "nil"
    assert d["dofile"] == "nil"
    assert d["loadfile"] == "nil"
    assert d["bytecode_load"] is False
    assert d["require_c"] is False


def test_globals_do_not_leak_between_requests(lsrv):
    # Writing a global at request time must fail (frozen _ENV) or at least
    # not be visible to the next request on the same lua_State.
    first = lsrv.req("GET", "broken/set-global")
    second = lsrv.req("GET", "broken/read-global")
    assert first.status_code in (200, 500), first.text
    assert second.status_code == 200, second.text
    assert second.json()["data"]["leaked"] is False
    serves(lsrv)


def test_storage_round_trip_after_errors(lsrv):
    for _ in range(3):
        lsrv.req("GET", "broken/raise")
    r = lsrv.req("PUT", "broken/store", json={"v": "kept"})
    assert r.status_code in (200, 204), r.text
    r = lsrv.req("GET", "broken/store")
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"v": "kept"}


def test_engine_error_then_kv_still_works(lsrv):
    lsrv.req("GET", "broken/raise")
    r = lsrv.req("POST", "secret/data/after-error", json={"data": {"a": "b"}})
    assert r.status_code == 200, r.text
    assert lsrv.req("GET", "secret/data/after-error").json()["data"]["data"] == {"a": "b"}


@pytest.mark.parametrize("script", ["syntax_error.lua", "load_error.lua"])
def test_bad_script_refuses_to_start(script):
    import subprocess
    from conftest import coffer_bin, free_port
    env = dict(os.environ, COFFER_LUA_DIR=make_lua_dir(script))
    p = subprocess.run([coffer_bin(), "server", "-dev",
                        "-dev-listen-address=127.0.0.1:%d" % free_port()],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=20)
    assert p.returncode != 0
    err = p.stderr.decode("utf-8", "replace")
    assert script in err, err
