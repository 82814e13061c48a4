-- framework.lua - the engine DSL and the request dispatcher.
--
-- The Lua half of the plugin framework (DESIGN.md, STYLE.md 3.2). Scripts
-- register at load time only:
--
--   local e = coffer.engine { name = "kv", help = "..." }
--   e:path("roles/:name", {
--     fields = { ttl = "duration", policies = "strings" },
--     read = fn, write = fn (or create/update), delete = fn, list = fn,
--     patch = fn,
--     help = "synopsis", description = "longer text",
--     when = function(req) return bool end,   -- route applies to this mount?
--   })
--
-- Routes are tried in registration order; the first whose `when` accepts
-- the request and whose pattern matches the path wins (see paths.lua).
--
-- A handler receives the request table built by luavm.c:
--   req.id, req.operation ("read", "create", "update", "delete", "list",
--   "patch"), req.path (relative to the mount), req.full_path,
--   req.mount_path ("auth/jwt/"), req.time (unix seconds), req.data,
--   req.mount, req.token (or nil), req.client_addr, req.storage
-- (a Lua policy's check(req) sees the same fields, without mount and
-- storage)
-- plus, from here:
--   req.params   captures of the path pattern
--   req.raw      the request data as sent (only when fields are declared;
--                req.data then holds the converted declared fields)
-- and returns nil (nothing: the core answers 204, or 404 for read/list) or
-- a response table:
--   { data = <any JSON>, warnings = {<string>...}, status = <int>,
--     lease_duration = <int seconds>, renewable = <bool>, raw = <JSON>,
--     auth = <object>, no_body = <bool>, lease_id = <string> }
-- Leased secrets: lease = req:pending_lease(type, internal) before creating
-- anything outside Coffer, then `return lease:issue(data, {ttl = ...})`.
-- Expected failures raise typed errors (coffer.bad_request(msg) etc.).
--
-- Auth methods (mounted under sys/auth) are engines created with
-- coffer.auth instead of coffer.engine; they have e:path() for their
-- configuration and, in addition, login routes:
--
--   local a = coffer.auth { name = "userpass", help = "..." }
--   a:path("users/:name", { ... })              -- needs a token, as usual
--   a:login("login/:name", {
--     fields = { password = "string" },
--     write = function(req) ... return identity end,
--   })
--
-- A login route is keyed like a path: `write` is the handler of the
-- POST/PUT that logs in. (`handler`, the older spelling, is still
-- accepted.)
--
-- A login route needs no token: the core sends requests for it (POST/PUT
-- auth/<mount>/login/...) straight to the method, without token lookup or
-- ACL check, but rate-limited per client address: every failed login (any
-- error raised) costs the address one token of its bucket. The part of the
-- pattern before its first capture, plus "*", is what skips
-- authentication ("login/:name" -> "login/*"); such a request (req.login
-- is true) reaches login routes only. The handler returns the identity that the
-- core turns into a token and Vault's `auth` block (VAULT_API 3.3):
--
--   { display_name = "alice",          -- token name "<mount>-alice"
--     policies = {"dev"},              -- "default" is added unless
--     no_default_policy = false,       --   no_default_policy; never "root"
--     metadata = {username = "alice"}, -- strings only
--     ttl = 3600, max_ttl = 7200,      -- seconds; 0 = the mount's
--     explicit_max_ttl = 0, period = 0, renewable = true, num_uses = 0,
--     bound_cidrs = {"10.0.0.0/8"} }
--
-- The token is an orphan whose lease is <login path>/<hash>, so disabling
-- the mount revokes every token it issued. Failed logins raise
-- (coffer.bad_request("invalid username or password")) and should take the
-- same time whether or not the user exists.

local fields = require("fields")
local paths = require("paths")
local json = coffer.json
local assert_load_time = coffer.assert_load_time

local M = {}

local engines = {}                                -- name -> record
local auth_order = {}                             -- auth method names
local records = setmetatable({}, { __mode = "k" }) -- engine object -> record

local OPS = { "read", "create", "update", "delete", "list", "patch" }
local SPEC_KEYS = {
  fields = true, read = true, write = true, create = true, update = true,
  delete = true, list = true, patch = true, help = true, description = true,
  when = true,
  exists = true,
}
local LOGIN_KEYS = {
  fields = true, write = true, handler = true, help = true,
  description = true, when = true,
}
local WRITES = { create = true, update = true, patch = true }

local Engine = {}
local engine_mt = {
  __index = Engine,
  __newindex = function() error("engine objects are read-only", 2) end,
  __metatable = "coffer.engine",
  __tostring = function(e) return "coffer.engine(" .. records[e].name .. ")" end,
}

local function new_engine(spec, kind, level)
  if type(spec) ~= "table" or type(spec.name) ~= "string" or
     not spec.name:match("^[%w_%-]+$") then
    error("coffer." .. kind .. ": name must be a word", level + 1)
  end
  if engines[spec.name] ~= nil or spec.name == "token" then
    error("coffer." .. kind .. ": '" .. spec.name ..
          "' is already registered", level + 1)
  end
  local rec = { name = spec.name, help = spec.help or "", routes = {},
                secrets = {}, kind = kind, login = {} }
  local e = setmetatable({}, engine_mt)
  engines[spec.name] = rec
  records[e] = rec
  return e
end

-- coffer.engine{name = ..., help = ...} -> engine object.
function M.engine(spec)
  assert_load_time()
  return new_engine(spec, "engine", 2)
end

-- coffer.policy{name = ..., paths = {...}, check = fn}: a Lua policy, in
-- a file of the configuration's policy_directory (luavm_policy.c calls
-- begin_policy_file and end_policy_file around each). A policy file may
-- also return the same table, the older style.
local policy_loading, policy_spec = false, nil

function M.policy(spec)
  assert_load_time()
  if not policy_loading then
    error("coffer.policy: only in a file of the policy_directory", 2)
  end
  if type(spec) ~= "table" then
    error("coffer.policy{name = ..., paths = {...}, check = function}", 2)
  end
  if policy_spec ~= nil then
    error("coffer.policy: one policy per file", 2)
  end
  policy_spec = spec
  return spec
end

function M.begin_policy_file()
  policy_loading, policy_spec = true, nil
end

function M.end_policy_file()
  local spec = policy_spec
  policy_loading, policy_spec = false, nil
  return spec
end

-- coffer.database_plugin{...}: a database plugin for the database engine
-- (lua/coffer/dbplugins.lua has the interface).
M.database_plugin = require("dbplugins").register

-- coffer.auth{name = ..., help = ...} -> auth method object (see above).
function M.auth(spec)
  assert_load_time()
  local e = new_engine(spec, "auth", 2)
  auth_order[#auth_order + 1] = spec.name
  return e
end

-- The unauthenticated glob of a login pattern: "login/:name" -> "login/*".
local function login_glob(pattern)
  local i = 1
  while i <= #pattern do
    local c = pattern:sub(i, i)
    if (c == ":" or c == "*") and (i == 1 or pattern:sub(i - 1, i - 1) == "/") then
      return pattern:sub(1, i - 1) .. "*"
    end
    i = i + 1
  end
  return pattern
end

-- Turns what a login handler returned into a clean identity object.
local function identity_of(id)
  if type(id) ~= "table" then
    error("login handler must return an identity table, got " .. type(id), 0)
  end
  local out = json.object()
  for _, k in ipairs({ "display_name" }) do
    if id[k] ~= nil then out[k] = tostring(id[k]) end
  end
  for _, k in ipairs({ "ttl", "max_ttl", "explicit_max_ttl", "period",
                       "num_uses" }) do
    if id[k] ~= nil then
      if math.type(id[k]) ~= "integer" or id[k] < 0 then
        error("identity." .. k .. " must be whole non-negative seconds", 0)
      end
      out[k] = id[k]
    end
  end
  for _, k in ipairs({ "renewable", "no_default_policy" }) do
    if id[k] ~= nil then out[k] = id[k] and true or false end
  end
  for _, k in ipairs({ "policies", "bound_cidrs" }) do
    local list = json.array()
    for _, v in ipairs(id[k] or {}) do
      list[#list + 1] = tostring(v)
    end
    out[k] = list
  end
  local meta = json.object()
  for k, v in pairs(id.metadata or {}) do
    meta[tostring(k)] = tostring(v)
  end
  out.metadata = meta
  return out
end

-- a:login(pattern, {fields = ..., write = fn(req) -> identity}) -> a.
function Engine:login(pattern, spec)
  assert_load_time()
  local rec = records[self]
  if rec == nil or rec.kind ~= "auth" then
    error("a:login: not an auth method (use coffer.auth and a:login)", 2)
  end
  if type(spec) ~= "table" then
    error("a:login(pattern, {write = function, fields = ...})", 2)
  end
  for k in pairs(spec) do
    if not LOGIN_KEYS[k] then
      error("a:login: unknown key '" .. tostring(k) .. "'", 2)
    end
  end
  if spec.write ~= nil and spec.handler ~= nil then
    error("a:login: give write or handler, not both", 2)
  end
  local handler = spec.write or spec.handler
  if type(handler) ~= "function" then
    error("a:login(pattern, {write = function, fields = ...})", 2)
  end
  local function login(req)
    return { auth = identity_of(handler(req)) }
  end
  rec.routes[#rec.routes + 1] = {
    compiled = paths.compile(pattern),
    fields = spec.fields and fields.compile(spec.fields, 3),
    handlers = { create = login, update = login },
    when = spec.when,
    help = spec.help or "",
    description = spec.description or "",
    login = true,
  }
  local glob = login_glob(pattern)
  for _, g in ipairs(rec.login) do
    if g == glob then return self end
  end
  rec.login[#rec.login + 1] = glob
  return self
end

-- {{name = ..., login = {glob...}}, ...} for luavm_auth_exists/is_login.
function M.auth_methods()
  local out = {}
  for _, name in ipairs(auth_order) do
    out[#out + 1] = { name = name, login = engines[name].login }
  end
  return out
end

local function handlers_of(spec)
  local h = {
    read = spec.read, delete = spec.delete, list = spec.list,
    patch = spec.patch, create = spec.create or spec.write,
    update = spec.update or spec.write,
  }
  for _, op in ipairs(OPS) do
    if h[op] ~= nil and type(h[op]) ~= "function" then
      error("path handler '" .. op .. "' must be a function", 3)
    end
  end
  return h
end

-- e:path(pattern, spec) -> e. Registers one route.
function Engine:path(pattern, spec)
  assert_load_time()
  local rec = records[self]
  if rec == nil then
    error("e:path: not an engine (use e:path, not e.path)", 2)
  end
  if type(spec) ~= "table" then
    error("e:path: spec must be a table", 2)
  end
  for k in pairs(spec) do
    if not SPEC_KEYS[k] then
      error("e:path: unknown key '" .. tostring(k) .. "'", 2)
    end
  end
  if spec.when ~= nil and type(spec.when) ~= "function" then
    error("e:path: when must be a function", 2)
  end
  if spec.exists ~= nil and type(spec.exists) ~= "function" then
    error("e:path: exists must be a function", 2)
  end
  rec.routes[#rec.routes + 1] = {
    compiled = paths.compile(pattern),
    fields = spec.fields and fields.compile(spec.fields, 3),
    handlers = handlers_of(spec),
    when = spec.when,
    exists = spec.exists,
    help = spec.help or "",
    description = spec.description or "",
  }
  return self
end

-- e:secret(type, {revoke = fn(lease), renew = fn(lease, expire_unix),
-- revoke_batch = fn(leases)}) declares a kind of leased secret. lease is
-- the lease record (id, path, secret_type, internal, issue_time, ...)
-- plus lease.mount and lease.storage. revoke must be idempotent; renew is
-- optional. Both signal failure by raising or by returning nil, message.
-- revoke_batch is optional: it revokes many leases of one mount at once
-- (mass expiry) and returns a list whose i-th entry is true when
-- leases[i] was revoked, else its error message.
function Engine:secret(secret_type, spec)
  assert_load_time()
  local rec = records[self]
  if rec == nil then
    error("e:secret: not an engine (use e:secret, not e.secret)", 2)
  end
  if type(secret_type) ~= "string" or type(spec) ~= "table" or
     type(spec.revoke) ~= "function" or
     (spec.renew ~= nil and type(spec.renew) ~= "function") or
     (spec.revoke_batch ~= nil and type(spec.revoke_batch) ~= "function")
  then
    error("e:secret(type, {revoke = function, renew = function, " ..
          "revoke_batch = function})", 2)
  end
  rec.secrets[secret_type] = { revoke = spec.revoke, renew = spec.renew,
                               revoke_batch = spec.revoke_batch }
  return self
end

-- framework.lease_call(engine_name, "revoke"|"renew", lease, expire_unix),
-- called by luavm.c for the expiration manager.
function M.lease_call(name, action, lease, expire)
  local rec = engines[name]
  if rec == nil then
    error("no engine registered for mount type '" .. tostring(name) .. "'")
  end
  local secret = rec.secrets[lease.secret_type]
  if secret == nil then
    error("engine '" .. name .. "' has no secret type '" ..
          tostring(lease.secret_type) .. "'")
  end
  -- Failure is either an error raised, or `return nil, message` (the
  -- convention of coffer.db calls, which engines pass straight on).
  local ok, msg = true, nil
  if action == "revoke" then
    ok, msg = secret.revoke(lease)
  elseif secret.renew ~= nil then
    ok, msg = secret.renew(lease, expire)
  end
  if ok == false or (ok == nil and msg ~= nil) then
    error(tostring(msg or (action .. " failed")), 0)
  end
end

-- The words of a failed lease call: a message's first line, or a typed
-- error's first error.
local function failure_text(e, default)
  if type(e) == "table" then
    if type(e.errors) == "table" and type(e.errors[1]) == "string" then
      return e.errors[1]
    end
    if type(e.message) == "string" then return e.message end
    return default
  end
  if e == nil or e == false then return default end
  return (tostring(e):match("^[^\n]*"))
end

-- revoke for each lease of one secret type, one at a time, each
-- protected: one lease's failure is its own. Entries of out at idx.
local function revoke_each(secret, leases, idx, out)
  for j, lease in ipairs(leases) do
    local ok, r, msg = pcall(secret.revoke, lease)
    if not ok then
      out[idx[j]] = failure_text(r, "revoke failed")
    elseif r == false or (r == nil and msg ~= nil) then
      out[idx[j]] = failure_text(msg, "revoke failed")
    else
      out[idx[j]] = true
    end
  end
end

-- revoke_batch for the leases of one secret type; its verdicts go to out
-- at idx. A raise fails them all.
local function revoke_group(secret, leases, idx, out)
  local ok, res = pcall(secret.revoke_batch, leases)
  if ok and type(res) ~= "table" then
    ok, res = false, "revoke_batch must return a list"
  end
  for j, i in ipairs(idx) do
    if not ok then
      out[i] = failure_text(res, "revoke_batch failed")
    elseif res[j] == true then
      out[i] = true
    else
      out[i] = failure_text(res[j], "revoke failed")
    end
  end
end

-- framework.lease_revoke_batch(engine_name, leases), called by
-- luavm_lease.c for the expiration manager: leases of one mount, each
-- with .mount and .storage. Returns a list: true where the lease was
-- revoked, else its error text; or nil, having done nothing, when no
-- lease's secret type has revoke_batch (the caller then revokes them one
-- call each, each with its own deadline). In a mixed batch the types
-- without revoke_batch are revoked one by one here.
function M.lease_revoke_batch(name, leases)
  local rec = engines[name]
  if rec == nil then
    error("no engine registered for mount type '" .. tostring(name) .. "'")
  end
  local any = false
  for _, lease in ipairs(leases) do
    local secret = rec.secrets[tostring(lease.secret_type)]
    if secret ~= nil and secret.revoke_batch ~= nil then
      any = true
      break
    end
  end
  if not any then return nil end
  local out, groups, order = {}, {}, {}
  for i, lease in ipairs(leases) do
    local t = tostring(lease.secret_type)
    local g = groups[t]
    if g == nil then
      g = { idx = {}, leases = {} }
      groups[t], order[#order + 1] = g, t
    end
    g.idx[#g.idx + 1], g.leases[#g.leases + 1] = i, lease
  end
  for _, t in ipairs(order) do
    local g, secret = groups[t], rec.secrets[t]
    if secret == nil then
      for _, i in ipairs(g.idx) do
        out[i] = "engine '" .. name .. "' has no secret type '" .. t .. "'"
      end
    elseif secret.revoke_batch ~= nil then
      revoke_group(secret, g.leases, g.idx, out)
    else
      revoke_each(secret, g.leases, g.idx, out)
    end
  end
  return out
end

-- e:periodic(fn): fn({mount = ..., storage = ...}) runs every tick of the
-- ticker thread for each mount of this engine (static role rotation).
function Engine:periodic(fn)
  assert_load_time()
  local rec = records[self]
  if rec == nil or type(fn) ~= "function" then
    error("e:periodic(function)", 2)
  end
  rec.periodic = fn
  return self
end

-- framework.periodic_call(engine_name, ctx), called by luavm.c.
function M.periodic_call(name, ctx)
  local rec = engines[name]
  if rec ~= nil and rec.periodic ~= nil then
    rec.periodic(ctx)
  end
end

-- {engine_name = {secret type...}}: what e:secret declared, for the
-- reload's check that no live lease loses its revoke function.
function M.secret_types()
  local out = {}
  for name, rec in pairs(engines) do
    local types = {}
    for t in pairs(rec.secrets) do
      types[#types + 1] = t
    end
    out[name] = types
  end
  return out
end

-- Sorted names of every registered engine (luavm_engine_exists).
function M.engine_names()
  local names = json.array()
  for name, rec in pairs(engines) do
    if rec.kind == "engine" then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  return names
end

local function find_route(rec, req)
  for _, route in ipairs(rec.routes) do
    if route.when == nil or route.when(req) then
      local params = paths.match(route.compiled, req.path)
      if params ~= nil then
        return route, params
      end
    end
  end
  return nil
end

local function help_text(rec, route, path)
  if route == nil then
    return rec.help
  end
  local out = {
    "Request:        " .. path,
    "Matching Route: " .. route.compiled.lua,
    "", route.help, "",
  }
  if route.fields and next(route.fields) ~= nil then
    out[#out + 1] = "## PARAMETERS"
    out[#out + 1] = ""
    local names = {}
    for name in pairs(route.fields) do
      names[#names + 1] = name
    end
    table.sort(names)
    for _, name in ipairs(names) do
      local f = route.fields[name]
      out[#out + 1] = "    " .. name .. " (" .. f.type .. ")"
      out[#out + 1] = "        " .. f.description
      out[#out + 1] = ""
    end
  end
  if route.description ~= "" then
    out[#out + 1] = "## DESCRIPTION"
    out[#out + 1] = ""
    out[#out + 1] = route.description
  end
  return table.concat(out, "\n")
end

-- Vault's error text for one or more messages (hashicorp/go-multierror),
-- which clients match word for word:
--   "1 error occurred:\n\t* <msg>\n\n"
--   "2 errors occurred:\n\t* <msg 1>\n\t* <msg 2>\n\n"
-- errs is one message or a list of them. The C side has its own copy for
-- the errors C raises (coffer.internal and friends); engines use this one.
function M.multierror(errs)
  if type(errs) ~= "table" then
    errs = { errs }
  end
  local head = #errs == 1 and "1 error occurred:" or
               (#errs .. " errors occurred:")
  return head .. "\n\t* " .. table.concat(errs, "\n\t* ") .. "\n\n"
end

local function add_warning(resp, text)
  if resp.warnings == nil then
    resp.warnings = json.array()
  end
  resp.warnings[#resp.warnings + 1] = text
end

-- Converts declared fields; returns the warnings to add to a response.
local function apply_fields(route, req)
  local notes = {}
  req.raw = req.data
  local data, ignored, replaced = fields.parse(route.fields, req.data,
                                               req.params)
  req.data = data
  if #ignored > 0 then
    notes[#notes + 1] = "Endpoint ignored these unrecognized parameters: [" ..
                        table.concat(ignored, " ") .. "]"
  end
  if #replaced > 0 then
    notes[#notes + 1] = "Endpoint replaced the value of these parameters " ..
                        "with the values captured from the endpoint's path: [" ..
                        table.concat(replaced, " ") .. "]"
  end
  return notes
end

-- framework.exists(engine_name, req) -> true, false, or nil when the route
-- declares no existence check. luavm.c asks before the ACL check, so that
-- a write to something missing needs `create` and to something present
-- needs `update`, as in Vault (VAULT_API 1.9).
function M.exists(name, req)
  local rec = engines[name]
  if rec == nil then
    return nil
  end
  local route, params = find_route(rec, req)
  if route == nil or route.exists == nil then
    return nil
  end
  req.params = params
  return route.exists(req) and true or false
end

-- framework.dispatch(engine_name, req) -> response table or nil. Called by
-- luavm.c for every request to a Lua engine.
function M.dispatch(name, req)
  local rec = engines[name]
  if rec == nil then
    error("no engine registered for mount type '" .. tostring(name) .. "'")
  end
  local op, path = req.operation, req.path
  if op == "read" and req.data.help ~= nil then
    return { data = { help = help_text(rec, find_route(rec, req), path) } }
  end
  if WRITES[op] and (path == "" or path:sub(-1) == "/") then
    coffer.bad_request("cannot write to a path ending in '/'")
  end
  local route, params = find_route(rec, req)
  if route == nil then
    coffer.unsupported_path()
  end
  if req.login and not route.login then
    -- An unauthenticated login request reaches login routes only.
    coffer.forbidden()
  end
  local handler = route.handlers[op]
  if handler == nil then
    coffer.unsupported_operation()
  end
  req.params = params
  local notes = route.fields and apply_fields(route, req) or {}
  local resp = handler(req)
  if type(resp) == "table" then
    for _, text in ipairs(notes) do
      add_warning(resp, text)
    end
  end
  return resp
end

return M
