"""Reloading Lua code on a running server: SIGHUP and sys/plugins/reload/backend.

A server runs with its own plugin and policy directories. A test engine
("leasy") issues leased credentials whose revoke callback records which
version of the code ran it. Clients issue credentials in threads while the
test rewrites the engine and reloads it, by signal and by endpoint, many
times: no request may fail, no lease may be lost, new code must be visible
after each reload, and revocations must run the newest code. Broken code,
code that drops a mounted type, and code that drops the secret type of a
live lease are refused with the old code still serving.
"""

import hashlib
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import uuid

import pytest
import requests

from conftest import CRASH_PATTERNS, Server

ENGINE = """\
local e = coffer.engine {{ name = "leasy", help = "reload test engine" }}
local VERSION = {version}

e:secret("cred", {{
  revoke = function(lease)
    lease.storage:put_json("revoked/" .. coffer.crypto.sha256_hex(lease.id),
                           {{ version = VERSION }})
  end,
}})

e:path("creds", {{ read = function(req)
  local lease = req:pending_lease("cred", {{ n = VERSION }})
  return lease:issue({{ user = "u" .. VERSION, version = VERSION,
                       {field} = true }}, {{ ttl = 3600 }})
end }})

e:path("revoked/:h", {{ read = function(req)
  return {{ data = req.storage:get_json("revoked/" .. req.params.h) }}
end }})

e:path("version", {{ read = function(req)
  return {{ data = {{ version = VERSION, path = req.path,
                     full_path = req.full_path, mount_path = req.mount_path,
                     time = req.time, id = req.id }} }}
end }})
"""

POLICY = """\
return {{
  name = "reloadpol",
  paths = {{ ["secret/data/rl/*"] = {{ capabilities = {{ "read" }} }} }},
  check = function(req)
    if req.path ~= "data/rl/x" or req.full_path ~= "secret/data/rl/x" or
       req.mount_path ~= "secret/" or type(req.id) ~= "string" or
       math.type(req.time) ~= "integer" or req.token == nil then
      return false, "unexpected request fields"
    end
    return {allow}, "switched off"
  end,
}}
"""


def engine_text(version, field="fresh", secret=True, name="leasy"):
    text = ENGINE.format(version=version, field=field)
    if not secret:
        text = re.sub(r'e:secret\("cred",.*?\n\}\)\n', "", text, flags=re.S)
    return text.replace('name = "leasy"', 'name = "%s"' % name)


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def rsrv():
    plugdir = tempfile.mkdtemp(prefix="coffer-reload-plug-")
    poldir = tempfile.mkdtemp(prefix="coffer-reload-pol-")
    write(os.path.join(plugdir, "leasy.lua"), engine_text(1))
    write(os.path.join(poldir, "reloadpol.lua"), POLICY.format(allow="true"))
    s = Server(["-dev-plugin-dir=%s" % plugdir, "-dev-policy-dir=%s" % poldir,
                "-workers=6"])
    s.plugdir, s.poldir = plugdir, poldir
    s.version = 1
    yield s
    assert s.stop() == 0
    assert not CRASH_PATTERNS.search(s.stderr_text()), s.stderr_text()[-3000:]
    shutil.rmtree(plugdir, ignore_errors=True)
    shutil.rmtree(poldir, ignore_errors=True)


def reload_ep(s, **body):
    if not body:
        body = {"plugin": "leasy"}
    return s.req("PUT", "sys/plugins/reload/backend", json=body)


def current_version(s, mount):
    r = s.req("GET", "%s/version" % mount)
    assert r.status_code == 200, r.text
    return r.json()["data"]["version"]


def set_version(s, version, via, mount, field="fresh"):
    """Rewrites the engine as `version` and reloads; waits until visible."""
    write(os.path.join(s.plugdir, "leasy.lua"), engine_text(version, field))
    if via == "signal":
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while current_version(s, mount) != version:
            assert time.monotonic() < deadline, s.stderr_text()[-2000:]
            time.sleep(0.02)
    else:
        r = reload_ep(s)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["reload_id"]
        # The endpoint returns once the code is published: the very next
        # request, on any worker, runs it.
        assert current_version(s, mount) == version
    s.version = version


def mount_leasy(s):
    path = "leasy-" + uuid.uuid4().hex[:8]
    r = s.req("POST", "sys/mounts/" + path, json={"type": "leasy"})
    assert r.status_code == 204, r.text
    return path


def restore(s, mount):
    set_version(s, s.version + 1, "endpoint", mount)


def test_reload_under_load_loses_nothing(rsrv):
    s = rsrv
    mount = mount_leasy(s)
    restore(s, mount)
    stop = threading.Event()
    results = [[] for _ in range(4)]
    errors = []

    def client(out):
        with requests.Session() as h:
            h.headers["X-Vault-Token"] = s.token
            while not stop.is_set():
                try:
                    r = h.get(s.url(mount + "/creds"), timeout=30)
                except requests.RequestException as e:  # pragma: no cover
                    errors.append(repr(e))
                    continue
                if r.status_code != 200:
                    errors.append("%d %s" % (r.status_code, r.text))
                    continue
                j = r.json()
                out.append((j["data"]["version"], j["lease_id"],
                            sorted(j["data"])))

    threads = [threading.Thread(target=client, args=(results[i],))
               for i in range(4)]
    for t in threads:
        t.start()
    try:
        first = s.version
        for i in range(8):
            time.sleep(0.05)
            set_version(s, first + 1 + i, "signal" if i % 2 else "endpoint",
                        mount, field="f%d" % i)
        time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    seen = [x for out in results for x in out]
    assert len(seen) > 20
    versions = {v for v, _, _ in seen}
    assert s.version in versions and len(versions) >= 3
    for out in results:
        # Each client's requests are sequential: never back to older code.
        vs = [v for v, _, _ in out]
        assert vs == sorted(vs)
    for v, _, keys in seen:
        # The response shape is the one of the code that served it.
        i = v - first - 1
        assert ("f%d" % i if i >= 0 else "fresh") in keys
    issued = {lid for _, lid, _ in seen}
    assert len(issued) == len(seen)

    # Every lease is still known to the expiration manager...
    r = s.req("LIST", "sys/leases/lookup/%s/creds/" % mount)
    assert r.status_code == 200, r.text
    listed = {"%s/creds/%s" % (mount, k) for k in r.json()["data"]["keys"]}
    assert listed == issued
    # ...and revoking runs the newest code's revoke function.
    r = s.req("PUT", "sys/leases/revoke-prefix/" + mount)
    assert r.status_code == 204, r.text
    for lid in list(issued)[:40]:
        h = hashlib.sha256(lid.encode()).hexdigest()
        r = s.req("GET", "%s/revoked/%s" % (mount, h))
        assert r.status_code == 200, r.text
        assert r.json()["data"]["version"] == s.version
    r = s.req("LIST", "sys/leases/lookup/%s/creds/" % mount)
    assert r.status_code == 404


def test_request_table_fields(rsrv):
    s = rsrv
    mount = mount_leasy(s)
    r = s.req("GET", mount + "/version")
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["path"] == "version"
    assert d["full_path"] == mount + "/version"
    assert d["mount_path"] == mount + "/"
    assert abs(d["time"] - time.time()) < 60
    assert re.match(r"^[0-9a-f-]{36}$", d["id"])


@pytest.mark.parametrize("text,where", [
    ("local x = 1\n\nlocal = 3\n", "leasy.lua:3:"),
    ("local e = coffer.engine { name = 'leasy' }\nerror('boom at load')\n",
     "leasy.lua:2: boom at load"),
    ("local e = coffer.engine { name = 'leasy' }\n"
     "e:path('a', { reed = function() end })\n",
     "leasy.lua:2: e:path: unknown key 'reed'"),
])
def test_broken_plugin_is_refused_and_old_code_serves(rsrv, text, where):
    s = rsrv
    mount = mount_leasy(s)
    restore(s, mount)
    good = s.version
    write(os.path.join(s.plugdir, "leasy.lua"), text)
    try:
        r = reload_ep(s)
        assert r.status_code == 400, r.text
        assert where in r.json()["errors"][0]
        assert current_version(s, mount) == good
        s.new_stderr()
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "reload refused" not in s.new_stderr():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert current_version(s, mount) == good
        r = s.req("GET", mount + "/creds")
        assert r.status_code == 200 and r.json()["data"]["version"] == good
    finally:
        restore(s, mount)


def test_reload_refuses_to_drop_a_mounted_type(rsrv):
    s = rsrv
    mount = mount_leasy(s)
    restore(s, mount)
    write(os.path.join(s.plugdir, "leasy.lua"),
          engine_text(99, name="leasy_renamed"))
    try:
        r = reload_ep(s)
        assert r.status_code == 400, r.text
        msg = r.json()["errors"][0]
        assert 'uses secret engine type "leasy"' in msg
        assert current_version(s, mount) == s.version
    finally:
        restore(s, mount)


def test_reload_refuses_to_drop_the_secret_type_of_a_live_lease(rsrv):
    s = rsrv
    mount = mount_leasy(s)
    restore(s, mount)
    r = s.req("GET", mount + "/creds")
    assert r.status_code == 200, r.text
    lease_id = r.json()["lease_id"]
    write(os.path.join(s.plugdir, "leasy.lua"), engine_text(77, secret=False))
    try:
        r = reload_ep(s)
        assert r.status_code == 400, r.text
        msg = r.json()["errors"][0]
        assert 'secret type "cred"' in msg and "leasy-" in msg
        # Once no lease needs it, the same code is accepted.
        for other in s.req("GET", "sys/mounts").json()["data"]:
            if other.startswith("leasy-"):
                s.req("PUT", "sys/leases/revoke-prefix/" + other.rstrip("/"))
        r = s.req("PUT", "sys/leases/lookup", json={"lease_id": lease_id})
        assert r.status_code != 200, r.text
        r = reload_ep(s)
        assert r.status_code == 200, r.text
        assert current_version(s, mount) == 77
        s.version = 77
    finally:
        restore(s, mount)


def test_lua_policy_edit_takes_effect_on_reload(rsrv):
    s = rsrv
    assert s.req("POST", "secret/data/rl/x",
                 json={"data": {"k": "v"}}).status_code == 200
    tok = s.req("POST", "auth/token/create",
                json={"policies": ["reloadpol"]}).json()["auth"]["client_token"]
    polfile = os.path.join(s.poldir, "reloadpol.lua")
    try:
        r = s.req("GET", "secret/data/rl/x", token=tok)
        assert r.status_code == 200, r.text
        write(polfile, POLICY.format(allow="false"))
        assert reload_ep(s).status_code == 200
        assert s.req("GET", "secret/data/rl/x", token=tok).status_code == 403
        # A new policy file appears, a broken one is refused with file:line.
        write(os.path.join(s.poldir, "extra.lua"),
              'return { name = "extra-reloaded" }\n')
        assert reload_ep(s).status_code == 200
        keys = s.req("LIST", "sys/policies/acl").json()["data"]["keys"]
        assert "extra-reloaded" in keys
        write(os.path.join(s.poldir, "extra.lua"), "return {\n  name = \n")
        r = reload_ep(s)
        assert r.status_code == 400 and "extra.lua:3:" in r.text, r.text
        write(os.path.join(s.poldir, "extra.lua"),
              'return { name = "extra-reloaded", paths = { ["x"] = '
              '{ capabilities = { "fly" } } } }\n')
        r = reload_ep(s)
        assert r.status_code == 400 and "extra.lua" in r.text, r.text
        assert s.req("GET", "secret/data/rl/x", token=tok).status_code == 403
    finally:
        write(polfile, POLICY.format(allow="true"))
        extra = os.path.join(s.poldir, "extra.lua")
        if os.path.exists(extra):
            os.unlink(extra)
        assert reload_ep(s).status_code == 200
    assert s.req("GET", "secret/data/rl/x", token=tok).status_code == 200
    keys = s.req("LIST", "sys/policies/acl").json()["data"]["keys"]
    assert "extra-reloaded" not in keys


def test_endpoint_wire_shape(rsrv):
    s = rsrv
    mount = mount_leasy(s)
    r = reload_ep(s, mounts=[mount])
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["data"]) == {"reload_id"} and body["request_id"]
    r = s.req("POST", "sys/plugins/reload/backend",
              json={"mounts": mount + ",auth/token", "scope": "global"})
    assert r.status_code == 202, r.text
    assert r.json()["warnings"] is None
    # As in Vault, an unknown plugin name is no error; it gets a warning.
    r = reload_ep(s, plugin="no-such-plugin")
    assert r.status_code == 200, r.text
    assert "no-such-plugin" in r.json()["warnings"][0]
    cases = [
        ({}, "plugin or mounts must be provided"),
        ({"plugin": "leasy", "mounts": [mount]},
         "plugin and mounts cannot be set at the same time"),
        ({"plugin": "leasy", "scope": "galaxy"},
         "reload scope must be omitted or 'global'"),
        ({"mounts": ["nowhere-" + uuid.uuid4().hex[:6]]},
         "cannot fetch mount entry on"),
        ({"mounts": [1]}, "mounts must be a list"),
        ({"plugin": 7}, "plugin must be a string"),
    ]
    for body, text in cases:
        r = s.req("PUT", "sys/plugins/reload/backend", json=body)
        assert r.status_code == 400, (body, r.text)
        assert text in r.json()["errors"][0], (body, r.text)
    assert s.req("GET", "sys/plugins/reload/backend").status_code == 405
    # Needs sudo: a token that may write the path but has no sudo is refused.
    s.req("PUT", "sys/policies/acl/reload-nosudo", json={
        "policy": 'path "sys/plugins/reload/backend" '
                  '{ capabilities = ["update", "create"] }'})
    tok = s.req("POST", "auth/token/create", json={
        "policies": ["reload-nosudo"]}).json()["auth"]["client_token"]
    r = s.req("PUT", "sys/plugins/reload/backend", token=tok,
              json={"plugin": "leasy"})
    assert r.status_code == 403, r.text
    assert s.req("PUT", "sys/plugins/reload/backend", token=None,
                 json={"plugin": "leasy"}).status_code == 403


def test_concurrent_reloads_and_policy_checks(rsrv):
    """Reloads racing each other, signals, engine calls and Lua policy
    checks: every request answers, every reload either lands or is
    serialised behind another, the server stays up (ASan runs this)."""
    s = rsrv
    mount = mount_leasy(s)
    restore(s, mount)
    assert s.req("POST", "secret/data/rl/x",
                 json={"data": {"k": "v"}}).status_code == 200
    tok = s.req("POST", "auth/token/create",
                json={"policies": ["reloadpol"]}).json()["auth"]["client_token"]
    stop = threading.Event()
    bad = []

    def hammer(path, token, want):
        with requests.Session() as h:
            h.headers["X-Vault-Token"] = token
            while not stop.is_set():
                r = h.get(s.url(path), timeout=30)
                if r.status_code != want:
                    bad.append((path, r.status_code, r.text))

    def reloader():
        with requests.Session() as h:
            h.headers["X-Vault-Token"] = s.token
            while not stop.is_set():
                r = h.put(s.url("sys/plugins/reload/backend"),
                          json={"plugin": "leasy"}, timeout=30)
                if r.status_code != 200:
                    bad.append(("reload", r.status_code, r.text))

    threads = [threading.Thread(target=hammer, args=(mount + "/version",
                                                     s.token, 200)),
               threading.Thread(target=hammer, args=("secret/data/rl/x",
                                                     tok, 200)),
               threading.Thread(target=reloader),
               threading.Thread(target=reloader)]
    for t in threads:
        t.start()
    try:
        for _ in range(5):
            time.sleep(0.2)
            s.proc.send_signal(signal.SIGHUP)
        time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert bad == []
    assert s.alive()
    assert current_version(s, mount) == s.version


def test_sighup_while_sealed_changes_nothing(tmp_path):
    """A sealed server ignores SIGHUP (logged) and answers the endpoint
    with 503; once unsealed, SIGHUP reloads; a restart keeps the mount
    and the lease issued by the reloaded code."""
    from realserver import RealServer
    plugdir = tmp_path / "plugins"
    plugdir.mkdir()
    write(str(plugdir / "leasy.lua"), engine_text(1))
    srv = RealServer(str(tmp_path), storage="sqlite",
                     extra_config='plugin_directory = "%s"' % plugdir)
    srv.start()
    try:
        keys, _ = srv.init(shares=1, threshold=1)
        write(str(plugdir / "leasy.lua"), engine_text(2))
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "sealed; the Lua code was not reloaded" not in srv.log():
            assert time.monotonic() < deadline, srv.log()[-2000:]
            time.sleep(0.05)
        r = srv.req("PUT", "sys/plugins/reload/backend",
                    json={"plugin": "leasy"})
        assert r.status_code == 503, r.text
        srv.unseal(keys)
        assert srv.req("POST", "sys/mounts/lz",
                       json={"type": "leasy"}).status_code == 204
        # The code loaded at start-up, not what the disk says now.
        assert srv.req("GET", "lz/version").json()["data"]["version"] == 1
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while srv.req("GET", "lz/version").json()["data"]["version"] != 2:
            assert time.monotonic() < deadline, srv.log()[-2000:]
            time.sleep(0.05)
        lease = srv.req("GET", "lz/creds").json()["lease_id"]
        assert srv.stop() == 0
        srv.start()
        srv.unseal(keys)
        assert srv.req("GET", "lz/version").json()["data"]["version"] == 2
        r = srv.req("PUT", "sys/leases/lookup", json={"lease_id": lease})
        assert r.status_code == 200, r.text
        assert srv.req("PUT", "sys/leases/revoke",
                       json={"lease_id": lease}).status_code == 204
        h = hashlib.sha256(lease.encode()).hexdigest()
        r = srv.req("GET", "lz/revoked/" + h)
        assert r.status_code == 200 and r.json()["data"]["version"] == 2
    finally:
        if srv.proc is not None:
            assert srv.stop() == 0
