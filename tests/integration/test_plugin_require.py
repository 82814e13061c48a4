"""Plugins as folders: <plugin_dir>/<name>/init.lua with its own modules.

require("<module>") in a folder plugin looks in the plugin's own folder
first, then in lua/coffer/; modules are cached per folder, so two plugins
may each have a "util". Module names keep the safe alphabet, *_test.lua
files are never loaded as plugins, and a folder of scripts without an
init.lua stops the server with a clear message.
"""

import os
import shutil
import tempfile
import uuid

import pytest

from conftest import CRASH_PATTERNS, Server

TWIN = """\
local util = require("util")
local fields = require("fields")        -- falls back to lua/coffer/
local e = coffer.engine {{ name = "{name}" }}
e:path("who", {{ read = function(req)
  local later = require("late")         -- required at request time
  return {{ data = {{ who = util.who, later = later.word,
                     same = require("util") == util,
                     has_fields = type(fields.compile) == "function" }} }}
end }})
e:path("probe", {{ read = function(req)
  local out = {{}}
  for _, n in ipairs({{ "../twin_b/util", "/etc/passwd", "util.lua",
                       "coffer.util", "Util", "init_test", "os", "" }}) do
    out[#out + 1] = (pcall(require, n))
  end
  return {{ data = {{ results = out }} }}
end }})
"""


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def make_plugins(root):
    for name, word in (("twin_a", "alpha"), ("twin_b", "beta")):
        write(os.path.join(root, name, "init.lua"), TWIN.format(name=name))
        write(os.path.join(root, name, "util.lua"),
              'return { who = "%s" }\n' % word)
        write(os.path.join(root, name, "late.lua"),
              'return { word = "late-%s" }\n' % word)
        # Test files next to a plugin are for the harness, never loaded.
        write(os.path.join(root, name, "init_test.lua"), "error('never')\n")
    write(os.path.join(root, "flat_test.lua"), "error('never loaded')\n")
    write(os.path.join(root, "flat.lua"),
          'local e = coffer.engine { name = "flat" }\n'
          'e:path("who", { read = function(req)\n'
          '  return { data = { ok = pcall(require, "util") } } end })\n')


@pytest.fixture(scope="module")
def psrv():
    root = tempfile.mkdtemp(prefix="coffer-require-")
    make_plugins(root)
    s = Server(["-dev-plugin-dir=%s" % root])
    s.root = root
    yield s
    assert s.stop() == 0
    assert not CRASH_PATTERNS.search(s.stderr_text()), s.stderr_text()[-3000:]
    shutil.rmtree(root, ignore_errors=True)


def mount(s, type_):
    path = "%s-%s" % (type_.replace("_", "-"), uuid.uuid4().hex[:8])
    r = s.req("POST", "sys/mounts/" + path, json={"type": type_})
    assert r.status_code == 204, r.text
    return path


def test_each_folder_has_its_own_modules(psrv):
    a, b = mount(psrv, "twin_a"), mount(psrv, "twin_b")
    for path, word in ((a, "alpha"), (b, "beta")):
        r = psrv.req("GET", path + "/who")
        assert r.status_code == 200, r.text
        assert r.json()["data"] == {"who": word, "later": "late-" + word,
                                    "same": True, "has_fields": True}
    # A flat plugin has no folder: "util" is not in lua/coffer/.
    r = psrv.req("GET", mount(psrv, "flat") + "/who")
    assert r.status_code == 200 and r.json()["data"] == {"ok": False}


def test_module_names_stay_safe(psrv):
    r = psrv.req("GET", mount(psrv, "twin_a") + "/probe")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["results"] == [False] * 8


def test_module_edit_is_picked_up_by_reload(psrv):
    a = mount(psrv, "twin_a")
    util = os.path.join(psrv.root, "twin_a", "util.lua")
    try:
        write(util, 'return { who = "gamma" }\n')
        # Not before the reload: states run the code snapshot, not the disk.
        assert psrv.req("GET", a + "/who").json()["data"]["who"] == "alpha"
        r = psrv.req("PUT", "sys/plugins/reload/backend",
                     json={"plugin": "twin_a"})
        assert r.status_code == 200, r.text
        assert psrv.req("GET", a + "/who").json()["data"]["who"] == "gamma"
        write(util, 'return { who = \n')
        r = psrv.req("PUT", "sys/plugins/reload/backend",
                     json={"mounts": [a]})
        assert r.status_code == 400 and "twin_a/util.lua:2:" in r.text, r.text
        assert psrv.req("GET", a + "/who").json()["data"]["who"] == "gamma"
    finally:
        write(util, 'return { who = "alpha" }\n')
        assert psrv.req("PUT", "sys/plugins/reload/backend",
                        json={"plugin": "twin_a"}).status_code == 200


def test_folder_without_init_stops_start_up():
    root = tempfile.mkdtemp(prefix="coffer-require-bad-")
    try:
        write(os.path.join(root, "lonely", "util.lua"), "return {}\n")
        with pytest.raises(RuntimeError) as e:
            Server(["-dev-plugin-dir=%s" % root])
        assert "lonely/util.lua: a plugin folder needs an init.lua" in str(
            e.value)
    finally:
        shutil.rmtree(root, ignore_errors=True)
