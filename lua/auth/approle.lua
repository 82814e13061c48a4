-- approle.lua - machine logins with a role ID and a secret ID
-- (VAULT_API.md 4.2).
--
-- Storage under the mount's view (JSON):
--   salt                              { salt, layout } (authutil.salt)
--   role/<name>                       the role: role_id, bind_secret_id,
--                                     secret_id_ttl, secret_id_num_uses,
--                                     secret_id_bound_cidrs, token_* fields
--   role_id_hmac/<H(role_id)>         { name = <role name> }
--   secret_id_hmac/<name>/<S(secret)> a secret ID: accessor, ttl (secs),
--                                     num_uses, cidr_list,
--                                     token_bound_cidrs, metadata,
--                                     creation_time, expiration_time (unix)
--   accessor/<name>/<accessor>        { hmac = <S(secret)> }
--
--   H(x) = hex HMAC-SHA256(mount salt, x)
--   S(x) = H(hex SHA-256(x))
--
-- Storage keys are not encrypted (values are), so no key holds a role ID
-- or anything a guess of a secret ID could be checked against without
-- the salt, which only exists inside an encrypted value. S hashes first
-- so that layout 1 (below) could be re-keyed without the secrets.
--
-- Layout 1 (before the salt) kept role_id/<role_id> in clear and
-- secret_id/<name>/<sha256(secret)>, with accessors { hash = ... }. The
-- first request to a mount after the upgrade moves every entry to
-- layout 2 (migrate, under the salt's lock) and deletes the old keys.
--
-- Role names follow Vault's name rule (authutil.valid_name). A secret
-- ID can only narrow its role: no more uses, no longer TTL, CIDRs inside
-- the role's (Vault's rules and texts); the role_name in a login's
-- metadata is always the role's. A secret ID with num_uses is
-- decremented by each login and deleted with its last use; one past its
-- TTL is deleted when met. Every login failure is the same 400
-- "invalid role or secret ID", whatever was wrong.

local au = require("authutil")
local json = coffer.json
local crypto, time = coffer.crypto, coffer.time

local a = coffer.auth {
  name = "approle",
  help = "Any registered Role can authenticate itself with Coffer using " ..
         "a role ID and a secret ID.",
}

local INVALID = "invalid role or secret ID"

local function now() return math.floor(time.now()) end

local function role_name(req)
  return au.check_name(req.params.role_name):lower()
end

local function load_role(req, name)
  return req.storage:get_json("role/" .. (name or role_name(req)))
end

local function must_role(req)
  local r = load_role(req)
  if r == nil then
    coffer.bad_request("role \"" .. role_name(req) .. "\" does not exist")
  end
  return r
end

local function role_id_key(salt, role_id)
  return "role_id_hmac/" .. au.salted(salt, role_id)
end
local function secret_hmac(salt, secret_id)
  return au.salted(salt, crypto.sha256_hex(secret_id))
end
local function secret_key(name, h) return "secret_id_hmac/" .. name .. "/" .. h end
local function accessor_key(name, acc) return "accessor/" .. name .. "/" .. acc end

local function delete_secret(req, name, h, entry)
  req.storage:delete(secret_key(name, h))
  if entry and entry.accessor then
    req.storage:delete(accessor_key(name, entry.accessor))
  end
end

-- ============================================================ layout ==

local LAYOUT = 2

-- Calls fn(relative key) for every entry below prefix, folders included.
local function walk(req, prefix, fn, rel)
  rel = rel or ""
  for _, k in ipairs(req.storage:list(prefix .. rel)) do
    if k:sub(-1) == "/" then
      walk(req, prefix, fn, rel .. k)
    else
      fn(rel .. k)
    end
  end
end

-- Layout 1 -> 2 (see the header). Each entry is written under its new
-- key before the old key goes, so a crash part-way loses nothing and
-- the next request runs this again from where it stopped.
local function migrate(req, salt)
  walk(req, "role_id/", function(role_id)
    local v = req.storage:get("role_id/" .. role_id)
    if v ~= nil then req.storage:put(role_id_key(salt, role_id), v) end
    req.storage:delete("role_id/" .. role_id)
  end)
  for _, dir in ipairs(req.storage:list("secret_id/")) do
    -- Layout 1 had one folder per role and one hash per secret in it.
    local name = dir:sub(-1) == "/" and dir:sub(1, -2) or nil
    for _, old in ipairs(name and req.storage:list("secret_id/" .. dir) or {}) do
      local okey = "secret_id/" .. dir .. old
      local raw = req.storage:get(okey)
      if raw ~= nil then
        local h = au.salted(salt, old) -- old is sha256(secret)
        local entry = json.decode(raw)
        req.storage:put(secret_key(name, h), raw)
        if type(entry) == "table" and entry.accessor ~= nil then
          req.storage:put_json(accessor_key(name, entry.accessor),
                               { hmac = h })
        end
      end
      req.storage:delete(okey)
    end
  end
  coffer.log.info("approle: storage moved to salted keys")
end

-- The mount's salt (migrating first if needed). Before any other lock.
local function salt_of(req)
  return au.salt(req, LAYOUT, migrate)
end

-- ============================================================== roles ==

local ROLE_FIELDS = au.token_fields({
  role_name = "string", bind_secret_id = "bool",
  secret_id_bound_cidrs = "strings", bound_cidr_list = "strings",
  secret_id_num_uses = "int", secret_id_ttl = "duration",
  local_secret_ids = "bool", role_id = "string",
})

local function write_role(req)
  local name = role_name(req)
  local salt = salt_of(req)
  local lock <close> = req.storage:lock("role/" .. name)
  local r = load_role(req, name) or { bind_secret_id = true,
                                      secret_id_num_uses = 0,
                                      secret_id_ttl = 0 }
  local d = req.data
  for _, k in ipairs({ "bind_secret_id", "secret_id_num_uses",
                       "secret_id_ttl", "local_secret_ids" }) do
    if d[k] ~= nil then r[k] = d[k] end
  end
  local cidrs = d.secret_id_bound_cidrs or d.bound_cidr_list
  if cidrs ~= nil then r.secret_id_bound_cidrs = cidrs end
  if (r.secret_id_num_uses or 0) < 0 then
    coffer.bad_request("secret_id_num_uses cannot be negative")
  end
  au.apply_token_fields(r, d)
  if d.role_id ~= nil and d.role_id ~= r.role_id then
    local other = req.storage:get_json(role_id_key(salt, d.role_id))
    if other ~= nil and other.name ~= name then
      coffer.bad_request("role_id already in use")
    end
  end
  if r.role_id == nil or d.role_id ~= nil then
    if r.role_id ~= nil then
      req.storage:delete(role_id_key(salt, r.role_id))
    end
    r.role_id = d.role_id or crypto.uuid()
  end
  if not r.bind_secret_id and #(r.secret_id_bound_cidrs or {}) == 0 and
     #(r.token_bound_cidrs or {}) == 0 then
    coffer.bad_request("at least one constraint should be enabled on the role")
  end
  req.storage:put_json(role_id_key(salt, r.role_id), { name = name })
  req.storage:put_json("role/" .. name, r)
end

local function read_role(req)
  salt_of(req) -- any access moves an old layout (see the header)
  local r = load_role(req)
  if r == nil then return nil end
  local out = au.read_token_fields(r, {
    bind_secret_id = r.bind_secret_id,
    secret_id_bound_cidrs = json.array(r.secret_id_bound_cidrs or {}),
    secret_id_num_uses = r.secret_id_num_uses or 0,
    secret_id_ttl = r.secret_id_ttl or 0,
    local_secret_ids = r.local_secret_ids or false,
  })
  return { data = out }
end

local function delete_role(req)
  local name = role_name(req)
  local salt = salt_of(req)
  local r = load_role(req, name)
  if r == nil then return nil end
  for _, h in ipairs(req.storage:list("secret_id_hmac/" .. name .. "/")) do
    req.storage:delete(secret_key(name, h))
  end
  for _, acc in ipairs(req.storage:list("accessor/" .. name .. "/")) do
    req.storage:delete(accessor_key(name, acc))
  end
  req.storage:delete(role_id_key(salt, r.role_id))
  req.storage:delete("role/" .. name)
end

a:path("role/", {
  list = function(req)
    salt_of(req)
    return { data = { keys = json.array(req.storage:list("role/")) } }
  end,
  help = "List the registered roles.",
})

a:path("role/:role_name", {
  fields = ROLE_FIELDS,
  read = read_role, write = write_role, delete = delete_role,
  help = "Register a role.",
})

a:path("role/:role_name/role-id", {
  fields = { role_name = "string", role_id = "string" },
  read = function(req)
    local r = load_role(req)
    if r == nil then return nil end
    return { data = { role_id = r.role_id } }
  end,
  write = function(req)
    local name = role_name(req)
    local salt = salt_of(req)
    local lock <close> = req.storage:lock("role/" .. name)
    local r = must_role(req)
    if req.data.role_id == nil or req.data.role_id == "" then
      coffer.bad_request("missing role_id")
    end
    local other = req.storage:get_json(role_id_key(salt, req.data.role_id))
    if other ~= nil and other.name ~= name then
      coffer.bad_request("role_id already in use")
    end
    req.storage:delete(role_id_key(salt, r.role_id))
    r.role_id = req.data.role_id
    req.storage:put_json(role_id_key(salt, r.role_id), { name = name })
    req.storage:put_json("role/" .. name, r)
  end,
  help = "Read or set the role ID of a role.",
})

-- ========================================================== secret IDs ==

local function secret_response(secret_id, entry)
  return { data = {
    secret_id = secret_id, secret_id_accessor = entry.accessor,
    secret_id_ttl = entry.ttl, secret_id_num_uses = entry.num_uses,
  } }
end

-- Vault's num_uses and ttl rules: given, they may only narrow the
-- role's limits (0 = unlimited is wider than any limit); absent, the
-- role's apply.
local function secret_limits(r, d)
  local role_uses, role_ttl = r.secret_id_num_uses or 0, r.secret_id_ttl or 0
  local uses, ttl = role_uses, role_ttl
  if d.num_uses ~= nil then
    uses = d.num_uses
    if uses < 0 then coffer.bad_request("num_uses cannot be negative") end
    if role_uses > 0 and (uses == 0 or uses > role_uses) then
      coffer.bad_request("num_uses cannot be higher than the role's " ..
                         "secret_id_num_uses")
    end
  end
  if d.ttl ~= nil then
    ttl = d.ttl
    if role_ttl > 0 and (ttl == 0 or ttl > role_ttl) then
      coffer.bad_request("ttl cannot be longer than the role's secret_id_ttl")
    end
  end
  return uses, ttl
end

-- A secret ID's CIDR lists: valid blocks, inside the role's (Vault's
-- texts, which are 500s there: the handler returns an error).
local function secret_cidrs(r, d)
  local cidrs, tcidrs = d.cidr_list or {}, d.token_bound_cidrs or {}
  local err = au.cidr_list_error(cidrs)
  if err ~= nil then
    coffer.internal("failed to validate CIDR blocks: " .. err)
  end
  au.check_cidr_subset(cidrs, r.secret_id_bound_cidrs)
  err = au.cidr_list_error(tcidrs)
  if err ~= nil then
    coffer.internal("failed to validate token CIDR blocks: " .. err)
  end
  au.check_cidr_subset(tcidrs, r.token_bound_cidrs)
  return cidrs, tcidrs
end

-- The metadata of a new secret ID (a JSON object of strings). A
-- role_name in it is the role's own: logins set it anyway, and a
-- lookup must not show another role's name.
local function secret_metadata(d, name)
  local meta = json.object()
  if d.metadata ~= nil and d.metadata ~= "" then
    local m = d.metadata
    if type(m) == "string" then
      m = json.decode(m)
    end
    if type(m) ~= "table" then
      coffer.bad_request("failed to parse metadata: must be a JSON object")
    end
    for k, v in pairs(m) do
      if type(v) ~= "string" then
        coffer.bad_request("metadata values must be strings")
      end
      meta[tostring(k)] = v
    end
  end
  if meta.role_name ~= nil then meta.role_name = name end
  return meta
end

local function new_secret(req, secret_id)
  local name = role_name(req)
  local salt = salt_of(req)
  local r = must_role(req)
  local d = req.data
  if not r.bind_secret_id then
    coffer.bad_request("bind_secret_id is not set on the role")
  end
  local cidrs, tcidrs = secret_cidrs(r, d)
  local uses, ttl = secret_limits(r, d)
  local meta = secret_metadata(d, name)
  local created = now()
  local entry = {
    accessor = crypto.uuid(), ttl = ttl, num_uses = uses,
    cidr_list = cidrs, token_bound_cidrs = tcidrs,
    metadata = meta, creation_time = created,
    expiration_time = ttl > 0 and created + ttl or 0,
  }
  secret_id = secret_id or crypto.uuid()
  local h = secret_hmac(salt, secret_id)
  local lock <close> = req.storage:lock(secret_key(name, h))
  if req.storage:get_json(secret_key(name, h)) ~= nil then
    coffer.bad_request("secret_id is already registered")
  end
  req.storage:put_json(accessor_key(name, entry.accessor), { hmac = h })
  req.storage:put_json(secret_key(name, h), entry)
  return secret_response(secret_id, entry)
end

local SECRET_FIELDS = {
  role_name = "string", metadata = "any", cidr_list = "strings",
  token_bound_cidrs = "strings", ttl = "duration", num_uses = "int",
  secret_id = "string",
}

a:path("role/:role_name/secret-id", {
  fields = SECRET_FIELDS,
  write = function(req) return new_secret(req, nil) end,
  help = "Generate a secret ID for a role.",
})

a:path("role/:role_name/custom-secret-id", {
  fields = SECRET_FIELDS,
  write = function(req)
    if req.data.secret_id == nil or req.data.secret_id == "" then
      coffer.bad_request("missing secret_id")
    end
    return new_secret(req, req.data.secret_id)
  end,
  help = "Register a secret ID of your choosing for a role.",
})

a:path("role/:role_name/secret-id/", {
  list = function(req)
    salt_of(req)
    must_role(req)
    local keys = req.storage:list("accessor/" .. role_name(req) .. "/")
    return { data = { keys = json.array(keys) } }
  end,
  help = "List the accessors of a role's secret IDs.",
})

local function lookup_data(entry)
  return {
    secret_id_accessor = entry.accessor,
    secret_id_ttl = entry.ttl, secret_id_num_uses = entry.num_uses,
    cidr_list = json.array(entry.cidr_list or {}),
    token_bound_cidrs = json.array(entry.token_bound_cidrs or {}),
    metadata = entry.metadata or json.object(),
    creation_time = time.format_rfc3339(entry.creation_time),
    last_updated_time = time.format_rfc3339(entry.creation_time),
    expiration_time = entry.expiration_time > 0 and
                      time.format_rfc3339(entry.expiration_time) or
                      "0001-01-01T00:00:00Z",
  }
end

-- Finds a live secret entry by its key; deletes it if it expired.
local function live_secret(req, name, h)
  local entry = req.storage:get_json(secret_key(name, h))
  if entry ~= nil and entry.expiration_time > 0 and
     now() >= entry.expiration_time then
    delete_secret(req, name, h, entry)
    return nil
  end
  return entry
end

local function by_secret(req, salt)
  local sid = req.data.secret_id
  if sid == nil or sid == "" then coffer.bad_request("missing secret_id") end
  return secret_hmac(salt, sid)
end

local function by_accessor(req)
  local acc = req.data.secret_id_accessor
  if acc == nil or acc == "" then
    coffer.bad_request("missing secret_id_accessor")
  end
  local ref = req.storage:get_json(accessor_key(role_name(req), acc))
  if ref == nil or ref.hmac == nil then
    coffer.bad_request("failed to find accessor entry for " ..
                       "secret_id_accessor: \"" .. acc .. "\"")
  end
  return ref.hmac
end

local function lookup(find)
  return function(req)
    local salt = salt_of(req)
    must_role(req)
    local entry = live_secret(req, role_name(req), find(req, salt))
    if entry == nil then return nil end
    return { data = lookup_data(entry) }
  end
end

local function destroy(find)
  return function(req)
    local salt = salt_of(req)
    must_role(req)
    local name, h = role_name(req), find(req, salt)
    local lock <close> = req.storage:lock(secret_key(name, h))
    local entry = req.storage:get_json(secret_key(name, h))
    if entry ~= nil then delete_secret(req, name, h, entry) end
  end
end

local ID_FIELDS = { role_name = "string", secret_id = "string",
                    secret_id_accessor = "string" }

a:path("role/:role_name/secret-id/lookup", {
  fields = ID_FIELDS, write = lookup(by_secret),
  help = "Read the properties of a secret ID.",
})
a:path("role/:role_name/secret-id/destroy", {
  fields = ID_FIELDS, write = destroy(by_secret), delete = destroy(by_secret),
  help = "Invalidate a secret ID.",
})
a:path("role/:role_name/secret-id-accessor/lookup", {
  fields = ID_FIELDS, write = lookup(by_accessor),
  help = "Read the properties of a secret ID by its accessor.",
})
a:path("role/:role_name/secret-id-accessor/destroy", {
  fields = ID_FIELDS, write = destroy(by_accessor),
  delete = destroy(by_accessor),
  help = "Invalidate a secret ID by its accessor.",
})

-- ============================================================== login ==

-- Checks the secret ID and counts one use; raises INVALID on any failure.
local function use_secret(req, salt, name, r, secret_id)
  local h = secret_hmac(salt, secret_id)
  local lock <close> = req.storage:lock(secret_key(name, h))
  local entry = live_secret(req, name, h)
  if entry == nil then coffer.bad_request(INVALID) end
  if not au.cidr_allows(entry.cidr_list, req.client_addr) or
     not au.cidr_allows(r.secret_id_bound_cidrs, req.client_addr) then
    coffer.bad_request(INVALID)
  end
  if entry.num_uses > 0 then
    entry.num_uses = entry.num_uses - 1
    if entry.num_uses == 0 then
      delete_secret(req, name, h, entry)
    else
      req.storage:put_json(secret_key(name, h), entry)
    end
  end
  return entry
end

a:login("login", {
  fields = { role_id = "string", secret_id = "string" },
  write = function(req)
    local role_id, secret_id = req.data.role_id, req.data.secret_id
    if role_id == nil or role_id == "" then
      coffer.bad_request("missing role_id")
    end
    local salt = salt_of(req)
    local ref = req.storage:get_json(role_id_key(salt, role_id))
    local r = ref and load_role(req, ref.name)
    if r == nil then coffer.bad_request(INVALID) end
    local meta = {}
    local entry
    if r.bind_secret_id then
      if secret_id == nil or secret_id == "" then
        coffer.bad_request("missing secret_id")
      end
      entry = use_secret(req, salt, ref.name, r, secret_id)
      for k, v in pairs(entry.metadata or {}) do meta[k] = v end
    elseif not au.cidr_allows(r.secret_id_bound_cidrs, req.client_addr) then
      coffer.bad_request(INVALID)
    end
    -- Set last: a secret ID's metadata never names another role.
    meta.role_name = ref.name
    local id = au.identity(r, "", meta)
    if entry and #(entry.token_bound_cidrs or {}) > 0 then
      id.bound_cidrs = entry.token_bound_cidrs
    end
    return id
  end,
  help = "Issue a token based on the credentials supplied.",
})
