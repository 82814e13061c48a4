-- servicekeys.lua - a leased secret engine in one file: API keys of an
-- HTTP service, created when a client reads creds/<role> and deleted
-- when the lease ends (revoked, expired, or its token revoked).
--
-- The service (keyservice.py next to this file is a runnable one) has an
-- admin API behind a bearer token:
--   POST   <url>/v1/keys         {"name": ..., "scopes": [...]} -> 201 {"key": ...}
--   DELETE <url>/v1/keys/<name>  -> 204 (404 when already gone)
--
-- Paths (mounted with `coffer secrets enable servicekeys`):
--   roles/            LIST the roles
--   roles/<role>      url, ca_pem, admin_token, scopes, ttl, max_ttl;
--                     the admin token is kept in storage only, never read back
--   creds/<role>      READ: a new key, leased
--
-- Storage under the mount: role/<role> = the role, admin token included.
-- A lease's internal data holds what revocation needs besides the admin
-- token: the role, the key's name and the service URL.

local json = coffer.json

local e = coffer.engine {
  name = "servicekeys",
  help = "Leased API keys of an HTTP service: created on creds/<role>, " ..
         "deleted when the lease ends.",
}

-- ================================================================ roles

local function role_key(name) return "role/" .. name end

local function load_role(storage, name)
  return storage:get_json(role_key(name))
end

-- What a read shows: everything but the admin token.
local function public(role)
  return {
    url = role.url, ca_pem = role.ca_pem or "",
    scopes = json.array(role.scopes or {}),
    ttl = role.ttl or 0, max_ttl = role.max_ttl or 0,
    admin_token_set = role.admin_token ~= nil,
  }
end

local function write_role(req)
  local name = req.params.name
  local lock <close> = req.storage:lock(role_key(name))
  local role = load_role(req.storage, name) or {}
  local d = req.data
  for _, k in ipairs({ "url", "ca_pem", "admin_token", "scopes", "ttl",
                       "max_ttl" }) do
    if d[k] ~= nil then role[k] = d[k] end
  end
  if type(role.url) ~= "string" or not role.url:match("^https?://[^/]") then
    coffer.bad_request("url must be an http:// or https:// URL")
  end
  role.url = role.url:gsub("/+$", "")
  if role.admin_token == nil or role.admin_token == "" then
    coffer.bad_request("admin_token is required")
  end
  if (role.max_ttl or 0) > 0 and (role.ttl or 0) > role.max_ttl then
    coffer.bad_request("ttl cannot be greater than max_ttl")
  end
  req.storage:put_json(role_key(name), role)
end

e:path("roles/", {
  list = function(req)
    return { data = { keys = json.array(req.storage:list("role/")) } }
  end,
  help = "List the roles.",
})

e:path("roles/:name", {
  fields = {
    name = "string", url = "string", ca_pem = "string",
    admin_token = { type = "string", sensitive = true },
    scopes = "strings", ttl = "duration", max_ttl = "duration",
  },
  read = function(req)
    local role = load_role(req.storage, req.params.name)
    if role == nil then return nil end
    return { data = public(role) }
  end,
  write = write_role,
  delete = function(req) req.storage:delete(role_key(req.params.name)) end,
  help = "Where and how keys of this role are created.",
})

-- ======================================================= the service

-- One admin call to the service. Returns the response, or nil and a
-- message (coffer.http's, which never holds the token).
local function call(url, role, method, path, body)
  return coffer.http.request {
    method = method, url = url .. path, json = body,
    headers = { ["Authorization"] = "Bearer " .. role.admin_token },
    ca_pem = (role.ca_pem or "") ~= "" and role.ca_pem or nil,
    timeout = 5,
  }
end

-- ================================================================ creds

local function issue(req)
  local role_name = req.params.name
  local role = load_role(req.storage, role_name)
  if role == nil then
    coffer.bad_request('unknown role "' .. role_name .. '"')
  end
  local ttl, max_ttl = req:lease_ttl(role.ttl, role.max_ttl)
  local name = "coffer-" .. role_name .. "-" ..
               coffer.crypto.hex(coffer.crypto.random_bytes(8))
  -- Recorded before the key exists: whatever happens next, the lease
  -- (and so the deletion) is not lost.
  local lease = req:pending_lease("key", {
    role = role_name, name = name, url = role.url,
  })
  local resp, err = call(role.url, role, "POST", "/v1/keys",
                         { name = name, scopes = json.array(role.scopes or {}) })
  if resp == nil then
    coffer.internal("creating the key: " .. err)
  end
  local body = resp.status == 201 and json.decode(resp.body) or nil
  if type(body) ~= "table" or type(body.key) ~= "string" then
    coffer.internal("creating the key: the service answered " .. resp.status)
  end
  return lease:issue({ name = name, key = body.key,
                       scopes = json.array(role.scopes or {}) },
                     { ttl = ttl, max_ttl = max_ttl, renewable = true })
end

e:path("creds/:name", {
  read = issue,
  help = "Create a leased API key for a role.",
})

-- ================================================================ lease

e:secret("key", {
  -- Idempotent: a key already gone (404) counts as deleted. A failure is
  -- retried by the expiration manager with backoff; the lease stays.
  revoke = function(lease)
    local int = lease.internal
    local role = load_role(lease.storage, int.role)
    if role == nil then
      return nil, 'role "' .. int.role .. '" was deleted: no admin token ' ..
                  "to delete key " .. int.name
    end
    local resp, err = call(int.url, role, "DELETE", "/v1/keys/" .. int.name)
    if resp == nil then return nil, "deleting the key: " .. err end
    if resp.status ~= 204 and resp.status ~= 200 and resp.status ~= 404 then
      return nil, "deleting key " .. int.name .. ": the service answered " ..
                  resp.status
    end
    return true
  end,
  -- The service's keys do not expire by themselves: renewing the lease
  -- (within max_ttl) needs nothing from the service.
  renew = function() return true end,
})
