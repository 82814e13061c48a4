-- userpass_test.lua - the userpass auth method's harness tests:
--   coffer plugin test lua/auth/userpass.lua
-- Each case gets a fresh "userpass" auth mount at auth/userpass/.

local t = ...

local function add_user(name, password, extra)
  local data = { password = password, token_policies = "dev" }
  for k, v in pairs(extra or {}) do data[k] = v end
  t.status(t.write("auth/userpass/users/" .. name, data), 204)
end

t.case("login gives a token with the user's policies", function()
  add_user("alice", "s3cret", { token_ttl = "1h" })
  local tok, r = t.login("userpass/login/alice", { password = "s3cret" })
  t.ok(tok, "login failed: " .. r.text)
  t.eq(r.auth.policies, { "default", "dev" })
  t.eq(r.auth.metadata, { username = "alice" })
  t.eq(r.auth.lease_duration, 3600)
  -- The token works: it can look itself up.
  local me = t.status(t.read("auth/token/lookup-self", tok), 200)
  t.eq(me.data.display_name, "userpass-alice")
end)

t.case("a wrong password and an unknown user fail the same way", function()
  add_user("bob", "right")
  local tok, r = t.login("userpass/login/bob", { password = "wrong" })
  t.eq(tok, nil)
  t.status(r, 400)
  t.eq(r.errors, { "invalid username or password" })
  local tok2, r2 = t.login("userpass/login/nobody", { password = "wrong" })
  t.eq(tok2, nil)
  t.eq(r2.status, r.status)
  t.eq(r2.errors, r.errors)
end)

t.case("the password is never read back", function()
  add_user("carol", "hidden")
  local r = t.status(t.read("auth/userpass/users/carol"), 200)
  t.eq(r.data.password, nil)
  t.eq(r.data.token_policies, { "dev" })
  t.ok(not r.text:find("hidden"), "the password leaked into a read")
end)

t.case("a token without a policy cannot manage users", function()
  local tok = t.token { policies = { "default" } }
  local r = t.status(t.write("auth/userpass/users/mallory",
                             { password = "x" }, tok), 403)
  t.match(r.errors[1], "permission denied")
  t.status(t.read("auth/userpass/users/mallory"), 404)
end)

t.case("names outside Vault's rule are refused", function()
  local r = t.write("auth/userpass/users/bad%20name", { password = "x" })
  t.ok(r.status >= 400, "a hostile name was accepted: " .. r.status)
  local _, lr = t.login("userpass/login/" .. "a\"b", { password = "x" })
  t.ok(lr.status >= 400)
end)

t.case("a password change takes effect at the next login", function()
  add_user("dave", "old")
  t.status(t.write("auth/userpass/users/dave/password",
                   { password = "new" }), 204)
  t.eq((t.login("userpass/login/dave", { password = "old" })), nil)
  t.ok((t.login("userpass/login/dave", { password = "new" })))
end)
