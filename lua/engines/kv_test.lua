-- kv_test.lua - the KV engine's harness tests:
--   coffer plugin test lua/engines/kv.lua
-- Each case gets a fresh "kv" mount at kv/ (version 1); version 2 cases
-- mount their own.

local t = ...

t.case("v1: a written secret reads back with the mount's lease", function()
  t.status(t.write("kv/app", { password = "hunter2", n = 3 }), 204)
  local r = t.status(t.read("kv/app"), 200)
  t.eq(r.data, { password = "hunter2", n = 3 })
  t.eq(r.lease_id, "", "kv v1 secrets have no lease id")
  t.eq(r.body.mount_type, "kv")
end)

t.case("v1: a missing key is a 404 with no error text", function()
  local r = t.status(t.read("kv/nope"), 404)
  t.eq(#r.errors, 0)
end)

t.case("v1: a write without data is refused", function()
  local r = t.status(t.write("kv/empty", {}), 400)
  t.eq(r.errors[1], "missing data fields")
end)

t.case("v1: list shows the keys of a folder", function()
  t.status(t.write("kv/team/a", { x = "1" }), 204)
  t.status(t.write("kv/team/sub/b", { x = "2" }), 204)
  local r = t.status(t.list("kv/team"), 200)
  t.eq(r.data.keys, { "a", "sub/" })
  t.status(t.delete("kv/team/a"), 204)
  t.status(t.read("kv/team/a"), 404)
end)

t.case("v2: versions and check-and-set", function()
  t.enable("kv2", "kv", { options = { version = "2" } })
  local r = t.status(t.write("kv2/data/app", { data = { v = "1" } }), 200)
  t.eq(r.data.version, 1)
  r = t.status(t.write("kv2/data/app", { data = { v = "2" },
                                         options = { cas = 1 } }), 200)
  t.eq(r.data.version, 2)
  r = t.status(t.write("kv2/data/app", { data = { v = "3" },
                                         options = { cas = 1 } }), 400)
  t.match(r.errors[1], "check%-and%-set parameter did not match")
  r = t.status(t.request { op = "read", path = "kv2/data/app",
                           data = { version = "1" } }, 200)
  t.eq(r.data.data, { v = "1" })
  t.eq(t.read("kv2/data/app").data.data, { v = "2" })
end)

t.case("ACL: a read-only token reads but cannot write", function()
  t.policy("kv-test-ro", 'path "kv/*" { capabilities = ["read", "list"] }')
  local tok = t.token { policies = { "kv-test-ro" } }
  t.status(t.write("kv/app", { a = "b" }), 204)
  t.eq(t.status(t.read("kv/app", tok), 200).data, { a = "b" })
  local r = t.status(t.write("kv/app", { a = "c" }, tok), 403)
  t.match(r.errors[1], "permission denied")
  t.status(t.read("kv/app", false), 403) -- no token at all
end)

-- The harness's own promise: each case starts from a fresh mount.
t.case("fresh mount per case (1/2): write", function()
  t.status(t.write("kv/left-behind", { x = "y" }), 204)
end)

t.case("fresh mount per case (2/2): nothing left behind", function()
  t.status(t.read("kv/left-behind"), 404)
end)
