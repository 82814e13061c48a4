-- servicekeys_test.lua - the engine's harness tests, no service needed:
--   coffer plugin test examples/custom-engine/servicekeys.lua
-- Each case gets a fresh mount at servicekeys/. The whole flow against a
-- running keyservice.py is tests/integration/test_custom_engine.py.

local t = ...

local ADMIN = "admin-token-never-shown"

local function role(name, extra)
  local data = { url = "http://127.0.0.1:1/", admin_token = ADMIN,
                 scopes = "read,write", ttl = "1h", max_ttl = "24h" }
  for k, v in pairs(extra or {}) do data[k] = v end
  return t.write("servicekeys/roles/" .. name, data)
end

t.case("a role reads back without its admin token", function()
  t.status(role("ci"), 204)
  local r = t.status(t.read("servicekeys/roles/ci"), 200)
  t.eq(r.data.admin_token, nil)
  t.eq(r.data.admin_token_set, true)
  t.ok(not r.text:find(ADMIN, 1, true), "the admin token was read back")
  t.eq(r.data.url, "http://127.0.0.1:1")
  t.eq(r.data.scopes, { "read", "write" })
  t.eq(r.data.ttl, 3600)
  t.eq(r.data.max_ttl, 86400)
  t.eq(t.status(t.list("servicekeys/roles"), 200).data.keys, { "ci" })
end)

t.case("an update keeps the fields it does not name", function()
  t.status(role("ci"), 204)
  t.status(t.write("servicekeys/roles/ci", { ttl = "5m" }), 204)
  local r = t.status(t.read("servicekeys/roles/ci"), 200)
  t.eq(r.data.ttl, 300)
  t.eq(r.data.admin_token_set, true)
  t.eq(r.data.scopes, { "read", "write" })
end)

t.case("roles are checked", function()
  t.eq(t.status(role("x", { url = "ftp://host" }), 400).errors,
       { "url must be an http:// or https:// URL" })
  t.eq(t.status(t.write("servicekeys/roles/x",
                        { url = "https://keys.example" }), 400).errors,
       { "admin_token is required" })
  t.eq(t.status(role("x", { ttl = "2h", max_ttl = "1h" }), 400).errors,
       { "ttl cannot be greater than max_ttl" })
  t.status(t.read("servicekeys/roles/x"), 404)
end)

t.case("creds for an unknown role", function()
  t.eq(t.status(t.read("servicekeys/creds/nope"), 400).errors,
       { 'unknown role "nope"' })
end)

t.case("an unreachable service is a clear 500 without secrets", function()
  t.status(role("down"), 204)
  local r = t.status(t.read("servicekeys/creds/down"), 500)
  t.match(r.text, "creating the key: http: POST http://127%.0%.0%.1:1/v1/keys")
  t.ok(not r.text:find(ADMIN, 1, true), "the admin token leaked")
  t.eq(r.lease_id, nil)
end)

t.case("ACL: creds only, no roles", function()
  t.status(role("ci"), 204)
  t.policy("sk-creds", 'path "servicekeys/creds/*" { capabilities = ["read"] }')
  local tok = t.token { policies = { "sk-creds" } }
  t.status(t.read("servicekeys/roles/ci", tok), 403)
  t.status(t.write("servicekeys/roles/ci", { ttl = "1s" }, tok), 403)
  -- Reaching the engine is allowed (it then fails: no service here).
  t.status(t.read("servicekeys/creds/ci", tok), 500)
end)
