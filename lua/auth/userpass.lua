-- userpass.lua - username and password logins (VAULT_API.md 4.1).
--
-- Storage under the mount's view (JSON):
--   user/<name>   { password = <authutil password record>,
--                   token_policies, token_ttl, ... (authutil) }
--
-- Names follow Vault's \w(([\w-.]+)?\w)? and are lower-cased. A wrong password and an unknown user give the
-- same 400 "invalid username or password" and take the same time (one
-- PBKDF2 run either way); every failure also costs the client address a
-- token of the login rate limit (auth.c).

local au = require("authutil")
local json = coffer.json

local a = coffer.auth {
  name = "userpass",
  help = "The userpass credential provider allows authentication using " ..
         "a combination of a username and password.",
}

local INVALID = "invalid username or password"

-- The storage key of the request's user. Names follow Vault's rule
-- (authutil.valid_name) on every path, login included, so a name never
-- carries quotes, spaces or other text into a token's display name,
-- its metadata or a database username template; anything else is
-- Vault's 404 "unsupported path".
local function user_key(req)
  return "user/" .. au.check_name(req.params.username):lower()
end

-- DELETE also accepts a name stored before names were checked, so that
-- an operator can remove it; no other path reaches such a user.
local function delete_user(req)
  local name = req.params.username
  if not au.valid_name(name) then
    local key = "user/" .. name:lower()
    if req.storage:get(key) == nil then coffer.unsupported_path() end
    req.storage:delete(key)
    return nil
  end
  req.storage:delete(user_key(req))
end

local function read_user(req)
  local u = req.storage:get_json(user_key(req))
  if u == nil then return nil end
  return { data = au.read_token_fields(u, {}) }
end

local function write_user(req)
  local key = user_key(req)
  local lock <close> = req.storage:lock(key)
  local u = req.storage:get_json(key)
  local pw = req.data.password
  if u == nil and (pw == nil or pw == "") then
    coffer.bad_request("missing password")
  end
  u = u or {}
  if pw ~= nil then
    if pw == "" then coffer.bad_request("missing password") end
    u.password = au.hash_password(pw)
  end
  au.apply_token_fields(u, req.data)
  req.storage:put_json(key, u)
  return nil
end

a:path("users/", {
  list = function(req)
    local keys = req.storage:list("user/")
    return { data = { keys = json.array(keys) } }
  end,
  help = "List the users.",
})

a:path("users/:username", {
  fields = au.token_fields({ username = "string", password = "string" }),
  read = read_user,
  write = write_user,
  delete = delete_user,
  help = "Manage users allowed to authenticate.",
})

a:path("users/:username/password", {
  fields = { username = "string", password = "string" },
  write = function(req)
    local key = user_key(req)
    local lock <close> = req.storage:lock(key)
    local u = req.storage:get_json(key)
    if u == nil then coffer.bad_request("username does not exist") end
    if req.data.password == nil or req.data.password == "" then
      coffer.bad_request("missing password")
    end
    u.password = au.hash_password(req.data.password)
    req.storage:put_json(key, u)
  end,
  help = "Reset a user's password.",
})

a:path("users/:username/policies", {
  fields = { username = "string", token_policies = "strings",
             policies = "strings" },
  write = function(req)
    local key = user_key(req)
    local lock <close> = req.storage:lock(key)
    local u = req.storage:get_json(key)
    if u == nil then coffer.bad_request("username does not exist") end
    au.apply_token_fields(u, req.data)
    req.storage:put_json(key, u)
  end,
  help = "Update the policies associated with the username.",
})

a:login("login/:username", {
  fields = { username = "string", password = "string" },
  write = function(req)
    local name = au.check_name(req.params.username):lower()
    local pw = req.data.password
    if pw == nil or pw == "" then
      error(coffer.error { status = 500, errors = { "missing password" } })
    end
    local u = req.storage:get_json("user/" .. name)
    local ok = au.verify_password(pw, u and u.password)
    if not ok or u == nil then
      coffer.bad_request(INVALID)
    end
    if not au.cidr_allows(u.token_bound_cidrs, req.client_addr) then
      coffer.forbidden("login request originated from invalid CIDR")
    end
    return au.identity(u, name, { username = name })
  end,
  help = "Log in with a username and password.",
})
