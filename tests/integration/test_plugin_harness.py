"""`coffer plugin test`: the in-process test harness for Lua plugins.

Runs the harness on the built-in plugins' own tests, on a small leased
engine written here with passing tests, and on failing, broken and
hostile test files, and checks the report lines and the exit status.
No server is started: the harness boots its own core in-process.
"""

import os
import re
import subprocess
import textwrap

from conftest import ROOT, coffer_bin

TALLY = """\
-- A leased engine: creds/<role> issues a lease and records the name
-- under live/; revoking the lease removes it.
local e = coffer.engine { name = "tally", help = "test engine" }

e:path("creds/:role", {
  read = function(req)
    if req.params.role == "forbidden" then coffer.forbidden() end
    if req.params.role == "broken" then coffer.bad_request("no such role") end
    local name = req.params.role .. "-" .. coffer.crypto.uuid():sub(1, 8)
    local lease = req:pending_lease("creds", { name = name })
    req.storage:put_json("live/" .. name, { role = req.params.role })
    return lease:issue({ name = name }, { ttl = 600 })
  end,
})

e:path("live/", {
  list = function(req)
    return { data = { keys = coffer.json.array(req.storage:list("live/")) } }
  end,
})

e:secret("creds", {
  revoke = function(lease)
    lease.storage:delete("live/" .. lease.internal.name)
    return true
  end,
})
"""

TALLY_TEST = """\
local t = ...

t.case("creds issues a lease", function()
  local r = t.status(t.read("tally/creds/web"), 200)
  t.ok(r.lease_id:find("^tally/creds/web/"), r.lease_id)
  t.eq(r.body.lease_duration, 600)
  t.match(r.data.name, "^web%-")
  t.eq(t.status(t.list("tally/live"), 200).data.keys, { r.data.name })
end)

t.case("revoking the lease runs the engine's revoke", function()
  local r = t.status(t.read("tally/creds/web"), 200)
  t.status(t.revoke(r.lease_id), 204)
  t.status(t.list("tally/live"), 404)
end)

t.case("errors reach the test with status and errors", function()
  t.eq(t.status(t.read("tally/creds/forbidden"), 403).errors,
       { "permission denied" })
  t.eq(t.status(t.read("tally/creds/broken"), 400).errors,
       { "no such role" })
end)

t.case("ACL: a token without a policy for the path is refused", function()
  t.policy("tally-ro", 'path "tally/live/*" { capabilities = ["list"] }')
  local tok = t.token { policies = { "tally-ro" } }
  local r = t.status(t.read("tally/creds/web", tok), 403)
  t.match(r.errors[1], "permission denied")
end)

t.case("t.enable mounts another instance, once", function()
  t.enable("other", "tally")
  t.status(t.read("other/creds/x"), 200)
  t.fails(function() t.enable("other", "tally") end, "already in use")
end)

t.case("the previous case's mount is gone", function()
  t.status(t.read("other/creds/x"), 404)
  t.status(t.list("tally/live"), 404)
end)
"""

BAD_TEST = """\
local t = ...

t.case("passes", function() t.ok(true) end)

t.case("eq fails", function()
  t.eq({ a = 1 }, { a = 2 })
end)

t.case("status fails", function()
  t.status(t.read("tally/nothing-here"), 200)
end)

t.case("runtime error", function()
  local x = nil
  return x.field
end)

t.case("loops forever", function()
  while true do end
end)

t.case("pcall cannot swallow the timeout", function()
  while true do pcall(function() while true do end end) end
end)

t.case("fails needs an error", function()
  t.fails(function() end, "x")
end)

t.case("raises a typed error", function()
  coffer.bad_request("typed")
end)
"""


def run(*args, cwd=None, timeout=60):
    p = subprocess.run([coffer_bin(), "plugin", "test"] + list(args),
                       cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def plugin_dir(tmp_path, files):
    d = tmp_path / "plug"
    d.mkdir()
    for name, text in files.items():
        (d / name).write_text(textwrap.dedent(text))
    return d


def summary(out):
    m = re.search(r"^(\d+) passed, (\d+) failed$", out, re.M)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def test_builtin_plugins_pass():
    for plugin, least in (("lua/engines/kv.lua", 6),
                          ("lua/auth/userpass.lua", 5)):
        rc, out, err = run(plugin, cwd=ROOT)
        assert rc == 0, out + err
        passed, failed = summary(out)
        assert failed == 0 and passed >= least, out
        assert "not ok" not in out


def test_leased_engine_passes(tmp_path):
    d = plugin_dir(tmp_path, {"tally.lua": TALLY,
                              "tally_test.lua": TALLY_TEST})
    rc, out, err = run(str(d / "tally.lua"))
    assert rc == 0, out + err
    assert summary(out) == (6, 0), out
    lines = [l for l in out.splitlines() if l.startswith("ok ")]
    assert lines[0] == "ok 1 - creds issues a lease"
    assert lines[5] == "ok 6 - the previous case's mount is gone"
    # The folder and the test file itself name the same tests.
    assert run(str(d))[0] == 0
    assert run(str(d / "tally_test.lua"))[0] == 0


def test_failures_are_reported_with_file_and_line(tmp_path):
    d = plugin_dir(tmp_path, {"tally.lua": TALLY, "bad_test.lua": BAD_TEST})
    rc, out, err = run("-timeout=1", "bad_test.lua", cwd=str(d))
    assert rc == 1, out + err
    assert summary(out) == (1, 7), out
    want = [
        "ok 1 - passes",
        'not ok 2 - eq fails: bad_test.lua:6: expected {"a":2}, got {"a":1}',
        "not ok 3 - status fails: bad_test.lua:10: expected status 200, "
        "got 404: ",
        "not ok 4 - runtime error: bad_test.lua:15: attempt to index a nil "
        "value (local 'x')",
        "not ok 5 - loops forever: bad_test.lua:19: test timed out after 1",
        "not ok 6 - pcall cannot swallow the timeout: bad_test.lua:23: test "
        "timed out after 1",
        "not ok 7 - fails needs an error: bad_test.lua:27: expected an error, "
        "got none",
        "not ok 8 - raises a typed error: coffer.error 400: typed",
    ]
    lines = [l for l in out.splitlines() if not l.startswith("#")]
    for i, w in enumerate(want):
        assert lines[i].startswith(w), (i, lines[i], w)
    assert "unsupported path" in lines[2]


def test_run_filter_and_verbose(tmp_path):
    d = plugin_dir(tmp_path, {"tally.lua": TALLY, "bad_test.lua": BAD_TEST})
    rc, out, _ = run("-v", "-run=^eq", str(d / "bad_test.lua"))
    assert rc == 1
    assert summary(out) == (0, 1), out
    assert "#   stack traceback:" in out
    rc, out, _ = run("-run=^passes$", str(d / "bad_test.lua"))
    assert rc == 0 and summary(out) == (1, 0), out


def test_plugin_load_error_is_reported(tmp_path):
    d = plugin_dir(tmp_path, {
        "tally.lua": TALLY + "\nlocal x = = 1\n",
        "tally_test.lua": TALLY_TEST,
    })
    rc, out, _ = run(str(d / "tally.lua"))
    assert rc == 1
    assert re.search(r"^not ok 1 - loading the plugins: .*tally\.lua:\d+:",
                     out, re.M), out
    assert summary(out) == (0, 1)


def test_test_file_errors_are_reported(tmp_path):
    d = plugin_dir(tmp_path, {
        "tally.lua": TALLY,
        "a_test.lua": "local t = ...\nt.case('x', function() end\n",
        "b_test.lua": "local t = ...\nerror('top level boom')\n",
        "c_test.lua": "local t = ...\n-- no cases\n",
        "d_test.lua": "local t = ...\nt.case('fine', function() end)\n",
    })
    rc, out, _ = run(str(d))
    assert rc == 1
    assert summary(out) == (1, 3), out
    assert re.search(r"^not ok 1 - .*a_test\.lua: .*a_test\.lua:\d+: '\)' expected",
                     out,
                     re.M), out
    assert re.search(r"^not ok 2 - .*b_test\.lua: .*b_test\.lua:2: top level "
                     r"boom", out, re.M), out
    assert re.search(r"^not ok 3 - .*c_test\.lua: .*no test cases", out,
                     re.M), out
    assert "ok 4 - fine" in out


def test_sandbox_in_test_files(tmp_path):
    d = plugin_dir(tmp_path, {"tally.lua": TALLY, "s_test.lua": """\
        local t = ...
        t.case("no io, os, dofile, require of C", function()
          t.eq(io, nil); t.eq(os, nil); t.eq(dofile, nil)
          t.eq(loadfile, nil); t.eq(package, nil); t.eq(debug, nil)
          t.eq(load(string.dump(function() end)), nil)
          t.ok(coffer.json.encode({ a = 1 }))
        end)
        """})
    rc, out, err = run(str(d / "s_test.lua"))
    assert rc == 0, out + err


def test_usage_errors(tmp_path):
    rc, _, err = run()
    assert rc == 1 and "Usage: coffer plugin test" in err
    rc, _, err = run(str(tmp_path / "missing.lua"))
    assert rc == 1 and "neither a .lua file nor a folder" in err
    d = plugin_dir(tmp_path, {"tally.lua": TALLY})
    rc, _, err = run(str(d / "tally.lua"))
    assert rc == 1 and "no *_test.lua" in err
    rc, _, err = run("-timeout=x", str(d))
    assert rc == 1 and "invalid value" in err
    rc, _, err = run("-bogus", str(d))
    assert rc == 1 and "unknown flag" in err
    p = subprocess.run([coffer_bin(), "plugin"], stderr=subprocess.PIPE)
    assert p.returncode == 1
    for flag in ("-h", "-help", "--help"):
        rc, out, err = run(flag)
        assert rc == 0 and err == "", (flag, rc, err)
        assert out.startswith("Usage: coffer plugin test"), (flag, out)


def test_test_files_are_not_loaded_as_plugins(tmp_path):
    # A *_test.lua next to the plugin would break the server at start-up
    # if it were loaded as a plugin (`t` is nil there).
    d = plugin_dir(tmp_path, {"tally.lua": TALLY,
                              "tally_test.lua": TALLY_TEST})
    assert run(str(d))[0] == 0
    assert os.path.exists(os.path.join(ROOT, "lua", "engines",
                                       "kv_test.lua"))
