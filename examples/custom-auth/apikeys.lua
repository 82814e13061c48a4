-- apikeys.lua - a complete custom auth method: API keys with an expiry.
--
-- Copy this file into your server's plugin_directory, restart, and:
--
--   coffer auth enable apikeys                       (sys/auth/apikeys)
--   curl -H "X-Vault-Token: $ROOT" -X POST \
--        -d '{"policies": "reader", "ttl": "1h", "expires_in": "720h"}' \
--        $VAULT_ADDR/v1/auth/apikeys/keys/ci-runner
--     -> {"data": {"key": "ci-runner.Xy3...", "expires_at": "..."}}
--        (the key is shown once; only its hash is stored)
--   curl -X POST -d '{"key": "ci-runner.Xy3..."}' \
--        $VAULT_ADDR/v1/auth/apikeys/login
--     -> an `auth` block with a token holding "reader" and "default"
--
-- What the framework gives you (lua/coffer/framework.lua has the details):
--   coffer.auth{name=...}    registers the method type ("apikeys")
--   a:path(pattern, spec)    configuration routes; these need a token
--   a:login(pattern, spec)   login routes; no token needed. The handler
--                            returns an identity table and Coffer makes
--                            the token, its lease and Vault's auth block.
--   req.storage              this mount's private, encrypted storage
--   coffer.crypto / coffer.time / coffer.json / coffer.net  C helpers
--
-- Storage (JSON under the mount's view):
--   key/<name>   { hash = sha256(secret), policies = {...}, ttl = secs,
--                  expires_at = unix secs or 0, created_at = unix secs }

local crypto, json, time = coffer.crypto, coffer.json, coffer.time

local a = coffer.auth {
  name = "apikeys",
  help = "Log in with a named API key that may expire.",
}

-- One message for every failure, so a caller learns nothing about which
-- names exist.
local INVALID = "invalid API key"

local KEY_FIELDS = {
  name = "string",
  policies = "strings",        -- "a,b" or ["a", "b"]
  ttl = "duration",            -- token TTL; 0 = the mount's default
  expires_in = "duration",     -- key lifetime; 0 = never expires
}

-- The request's key name. Names become storage keys, the token's display
-- name ("apikeys-<name>") and its metadata, so every path checks them,
-- not only the one that creates keys.
local function key_name(req)
  local name = req.params.name
  if not name:match("^[%w_%-]+$") then
    coffer.bad_request("key names are letters, digits, '-' and '_'")
  end
  return name
end

-- Creates (or replaces) a key and shows it once.
local function write_key(req)
  local name = key_name(req)
  local secret = crypto.random_base62(32)
  local now = math.floor(time.now())
  local expires_in = req.data.expires_in or 0
  local entry = {
    hash = crypto.sha256_hex(secret),
    policies = req.data.policies or {},
    ttl = req.data.ttl or 0,
    created_at = now,
    expires_at = expires_in > 0 and now + expires_in or 0,
  }
  req.storage:put_json("key/" .. name, entry)
  return { data = {
    key = name .. "." .. secret,
    expires_at = entry.expires_at > 0 and time.format_rfc3339(entry.expires_at)
                 or json.null,
  } }
end

-- Shows a key's settings, never its secret.
local function read_key(req)
  local e = req.storage:get_json("key/" .. key_name(req))
  if e == nil then return nil end
  return { data = {
    policies = json.array(e.policies),
    ttl = e.ttl,
    created_at = time.format_rfc3339(e.created_at),
    expires_at = e.expires_at > 0 and time.format_rfc3339(e.expires_at)
                 or json.null,
  } }
end

a:path("keys/", {
  list = function(req)
    return { data = { keys = json.array(req.storage:list("key/")) } }
  end,
  help = "List the API key names.",
})

a:path("keys/:name", {
  fields = KEY_FIELDS,
  write = write_key,
  read = read_key,
  delete = function(req) req.storage:delete("key/" .. key_name(req)) end,
  help = "Create, read or delete an API key.",
})

a:login("login", {
  fields = { key = "string" },
  write = function(req)
    local given = req.data.key or ""
    local name, secret = given:match("^([%w_%-]+)%.(%w+)$")
    local e = name and req.storage:get_json("key/" .. name)
    -- Hash even when the name is unknown: the same work either way.
    local got = crypto.sha256_hex(secret or given)
    if e == nil or not crypto.equal(got, e.hash) then
      coffer.bad_request(INVALID)
    end
    if e.expires_at > 0 and time.now() >= e.expires_at then
      coffer.bad_request(INVALID)
    end
    return {
      display_name = name,              -- token name "apikeys-<name>"
      policies = e.policies,            -- "default" is added for you
      metadata = { key_name = name },
      ttl = e.ttl,
    }
  end,
  help = "Exchange an API key for a token.",
})
