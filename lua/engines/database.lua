-- database.lua - dynamic and static database credentials.
--
-- Vault's database secrets engine: connection configs, roles that say how
-- to create a user, and creds/<role>, which creates one on the spot bound
-- to a lease. Everything database-specific sits in a plugin module
-- (lua/coffer/dbplugin_postgresql.lua) registered with
-- lua/coffer/dbplugins.lua; this file only speaks the plugin interface, so
-- another database is one more file calling coffer.database_plugin{}.
--
-- Storage (this mount's view):
--   config/<name>        connection config, including the root password
--   role/<name>          dynamic role
--   static-role/<name>   static role
--   static-cred/<name>   current password of a static role, and a pending
--                        one while a rotation is in flight (write-ahead)
--
-- Crash safety of issuance: a pending lease that records the username is
-- stored before CREATE ROLE runs, so a crash anywhere after that leaves a
-- record that start-up revokes (DROP ROLE IF EXISTS), never a stray user.

local template = require("template")

local dbplugins = require("dbplugins")

local reconcile = require("reconcile")

local leaselimits = require("leaselimits")

local fields = require("fields")

local multierror = require("framework").multierror

local json = coffer.json

local e = coffer.engine {
  name = "database",
  help = "The database backend creates database credentials dynamically.",
}

-- ============================================================ helpers ==

-- Raises status with Vault's multierror text of msg.
local function raise_multierror(status, msg)
  error(coffer.error { status = status, errors = { multierror(msg) } })
end

local function internal_error(msg)
  raise_multierror(500, msg)
end

-- Copies into rec each field of spec that the request supplied (present
-- and not JSON null: Vault's d.GetOk), converted; check(k), if given, runs
-- before a field is copied and may raise. Returns rec.
local function merge_supplied(rec, req, spec, check)
  for k in pairs(spec) do
    if req.raw[k] ~= nil and req.raw[k] ~= json.null then
      if check ~= nil then check(k) end
      rec[k] = req.data[k]
    end
  end
  return rec
end

-- The registered plugin of a config or lease. A plugin can disappear
-- after a reload of the plugin directory; say so instead of failing on nil.
local function plugin_of(name)
  local p = dbplugins.get(name)
  if p == nil then
    error(coffer.error { status = 500, errors = { multierror(
      'database plugin "' .. tostring(name) .. '" is not registered') } })
  end
  return p
end

local function supported_plugins()
  return table.concat(dbplugins.names(), ", ")
end

local function pool_key(mount, name)
  return mount.uuid .. "/" .. name
end

local function load_config(storage, name)
  return storage:get_json("config/" .. name)
end

-- Parsed role and config records of the issuance path, per Lua state.
-- Every use reads the stored text again (a storage-cache hit, no JSON
-- parse) and reuses the parsed table only while that text is byte for
-- byte the one it was parsed from: a write by any thread or node is seen
-- by the very next request. Callers must not modify what this returns.
local PARSED_MAX = 256
local parsed_cache, parsed_cached = {}, 0

local function shared_json(ctx, key)
  local raw = ctx.storage:get(key)
  local slot = ctx.mount.uuid .. "/" .. key
  if raw == nil then
    parsed_cache[slot] = nil -- a deleted config's password leaves memory
    return nil
  end
  local hit = parsed_cache[slot]
  if hit ~= nil and hit.raw == raw then return hit.value end
  local value, err = json.decode(raw)
  if value == nil then
    error(coffer.error { status = 500, errors = {
      "stored " .. key .. " is not valid JSON: " .. tostring(err) } })
  end
  if hit == nil then
    if parsed_cached >= PARSED_MAX then parsed_cache, parsed_cached = {}, 0 end
    parsed_cached = parsed_cached + 1
  end
  parsed_cache[slot] = { raw = raw, value = value }
  return value
end

-- Placeholders in statements. {{name}} is replaced literally, as Vault
-- does (no escaping: the engine refuses names and passwords outside a safe
-- alphabet before any statement runs). {{name | ident}} and
-- {{password | literal}} quote the value by the database's own rules
-- (PostgreSQL: PQescapeIdentifier / PQescapeLiteral on the connection that
-- will run the statement), for statements that want belt and braces.
local QUOTERS = { ident = "quote_ident", literal = "quote_literal" }

local function subst(stmt, vars, conn)
  local failure
  local out = stmt:gsub("{{%s*([%w_]+)%s*|?%s*([%w_]*)%s*}}",
                        function(k, filter)
    local v = vars[k]
    if v == nil or failure then return nil end
    v = tostring(v)
    if filter == "" then return v end
    local method = QUOTERS[filter]
    if method == nil then
      failure = { class = "sql", message = 'unknown quoting function "' ..
                  filter .. '" in a statement: use ident or literal' }
      return nil
    end
    if conn == nil then
      failure = { class = "internal", message = "quoting needs a connection" }
      return nil
    end
    local q, err = conn[method](conn, v)
    if q == nil then failure = err end
    return q
  end)
  if failure then return nil, failure end
  return out
end

-- The shortest start of a secret that scrub() still hides at the end of
-- a message.
local SCRUB_TAIL_MIN = 4

-- Replaces every occurrence of the strings in secrets (a list; nils and
-- empty strings skipped) by xxxxx: server messages may quote a statement
-- that holds a password.
local function scrub(msg, secrets)
  msg = tostring(msg)
  for _, sec in pairs(secrets or {}) do
    if type(sec) == "string" and #sec > 0 then
      local from = 1
      while true do
        local i, j = msg:find(sec, from, true)
        if i == nil then break end
        msg = msg:sub(1, i - 1) .. "xxxxx" .. msg:sub(j + 1)
        from = i + 5
      end
      -- The driver keeps at most 511 bytes of a database's message, so a
      -- value the database quoted near that limit arrives cut: hide a
      -- start of the secret the message ends with, too.
      for k = #sec - 1, SCRUB_TAIL_MIN, -1 do
        if msg:sub(-k) == sec:sub(1, k) then
          msg = msg:sub(1, #msg - k) .. "xxxxx"
          break
        end
      end
    end
  end
  return msg
end

local function configure_pool(mount, name, cfg, verify)
  local plugin = plugin_of(cfg.plugin_name)
  local conninfo, why = plugin.connect_info(cfg)
  if conninfo == nil then
    return nil, { message = why, class = "sql" }
  end
  local opts = {
    driver = plugin.driver,
    conninfo = conninfo,
    max_open = cfg.max_open_connections,
    max_idle = cfg.max_idle_connections,
    max_waiting = cfg.max_waiting_requests,
    max_lifetime = cfg.max_connection_lifetime,
    connect_timeout = cfg.connect_timeout,
    statement_timeout = cfg.statement_timeout,
    secrets = { cfg.password, cfg.pending_password },
  }
  -- The plugin's own connection settings (the mysql plugin's TLS).
  if plugin.pool_options ~= nil then
    for k, v in pairs(plugin.pool_options(cfg)) do opts[k] = v end
  end
  return coffer.db.configure(pool_key(mount, name), opts, verify)
end

-- Borrows a connection to the named config's database, creating the pool
-- from the stored config when this process has not yet.
local function acquire(ctx, name)
  local cfg = shared_json(ctx, "config/" .. name)
  if cfg == nil then
    return nil, { class = "sql", message =
      'failed to find entry for connection with name: "' .. name .. '"' }
  end
  local key = pool_key(ctx.mount, name)
  if not coffer.db.exists(key) then
    local ok, err = configure_pool(ctx.mount, name, cfg, false)
    if not ok then return nil, err end
  end
  local conn, err = coffer.db.acquire(key)
  if conn == nil and err.class == "auth" and cfg.pending_password then
    -- A root rotation was interrupted after the database changed the
    -- password: adopt the pending one if the database takes it.
    local trial = {}
    for k, v in pairs(cfg) do trial[k] = v end
    trial.password = cfg.pending_password
    if configure_pool(ctx.mount, name, trial, true) then
      trial.pending_password = nil
      cfg = trial -- the shared parsed table stays as stored
      ctx.storage:put_json("config/" .. name, cfg)
      coffer.log.warn("database: config " .. name .. " adopted the " ..
                      "password of an interrupted root rotation")
      conn, err = coffer.db.acquire(key)
    end
  end
  return conn, err, cfg
end

-- Runs statements as one transaction in one round trip: PostgreSQL runs a
-- multi-statement simple query atomically, so there is no BEGIN/COMMIT
-- exchange (issuing a credential was four round trips, now it is one).
local function run_in_tx(conn, stmts)
  if #stmts == 0 then return true end
  return conn:exec_script(table.concat(stmts, ";\n"))
end

-- Calls fn(conn, cfg) with a connection to the named config's database,
-- and calls it again when the failure is not the caller's:
--  * transient: PostgreSQL answers concurrent GRANTs on one object with
--    "tuple concurrently updated", and serialization failures and
--    deadlocks likewise resolve on retry. Passing them to the client
--    would be a bug, so fn runs again, after a short growing pause.
--  * unreachable: a pooled connection can be dead without knowing it (the
--    server restarted); the failure closes it and fn runs once more on a
--    fresh one.
-- fn must therefore be safe to repeat: one transaction, or idempotent.
local function with_db(ctx, name, fn)
  local err
  local reconnected = false
  for attempt = 1, 10 do
    local conn <close>, cerr, cfg = acquire(ctx, name)
    if conn == nil then return nil, cerr end
    local ok
    ok, err = fn(conn, cfg)
    if ok then return ok end
    local class = type(err) == "table" and err.class or nil
    if class == "unreachable" and not reconnected then
      reconnected = true
    elseif class == "transient" then
      coffer.time.sleep(0.002 * attempt * attempt)
    else
      break
    end
  end
  return nil, err
end


-- Per-state caches of work that depends only on configuration text: a
-- role's statements are split, and a username template compiled, once per
-- thread rather than on every request. Bounded: cleared when full.
local CACHE_MAX = 256
local split_cache, split_cached = {}, 0
local template_cache, templates_cached = {}, 0

local function split_cached_stmt(plugin, stmt, allow_whole)
  local key = plugin.name .. (allow_whole and "\1" or "\0") .. stmt
  local pieces = split_cache[key]
  if pieces == nil then
    if split_cached >= CACHE_MAX then split_cache, split_cached = {}, 0 end
    pieces = plugin.split(stmt, allow_whole)
    split_cache[key], split_cached = pieces, split_cached + 1
  end
  return pieces
end

local function compile_template(text)
  local t = template_cache[text]
  if t == nil then
    local err
    t, err = template.compile(text)
    if t == nil then return nil, err end
    if templates_cached >= CACHE_MAX then
      template_cache, templates_cached = {}, 0
    end
    template_cache[text], templates_cached = t, templates_cached + 1
  end
  return t
end

-- Expands configured statements (each may hold several) with vars; conn
-- serves the quoting placeholders. Splitting happens before substitution,
-- so a value can never add a statement boundary.
local function expand(plugin, list, vars, allow_whole, conn)
  local out = {}
  for _, stmt in ipairs(list or {}) do
    for _, piece in ipairs(split_cached_stmt(plugin, stmt, allow_whole)) do
      local text, err = subst(piece, vars, conn)
      if text == nil then return nil, err end
      out[#out + 1] = text
    end
  end
  return out
end

-- Expands list with vars on a connection of the named config and runs the
-- result as one transaction (with_db's retries included).
local function exec_template(ctx, name, plugin, list, vars, allow_whole)
  return with_db(ctx, name, function(conn)
    local stmts, err = expand(plugin, list, vars, allow_whole, conn)
    if stmts == nil then return nil, err end
    return run_in_tx(conn, stmts)
  end)
end

-- Names and passwords reach statements as literal text ({{name}} is not
-- escaped, as in Vault), so whatever produced them, they must not be able
-- to end a quoted identifier or literal: letters, digits, '-', '_', '.'.
local SAFE_VALUE = "^[A-Za-z0-9_.-]+$"

-- nil when value is safe, else the reason (without the value itself).
local function unsafe_reason(value, max_len)
  if type(value) ~= "string" or value == "" then return "is empty" end
  -- the whole character, continuation bytes included, so that the
  -- message stays valid UTF-8
  local bad = value:match("[^A-Za-z0-9_.-][\128-\191]*")
  if bad then
    return string.format("contains %q, which is not allowed: only " ..
      "letters, digits, '-', '_' and '.' are", bad)
  end
  if max_len and #value > max_len then
    return string.format("is %d bytes long; the database keeps %d, so " ..
      "revocation would miss it", #value, max_len)
  end
  return nil
end



local function role_allowed(cfg, role)
  for _, pattern in ipairs(cfg.allowed_roles or {}) do
    if pattern == "*" or pattern == role then return true end
    local glob = "^" .. pattern:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0")
                                 :gsub("%*", ".*") .. "$"
    if role:match(glob) then return true end
  end
  return false
end

-- Vault's default generator: 20 characters of [a-zA-Z0-9-] holding at
-- least one lowercase, uppercase, digit and dash.
local PW_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"

-- With a password policy (sys/policies/password) named by the role's
-- credential_config, or else by the connection, that policy's generator
-- instead; nil and why when it fails (deleted policy, impossible rules),
-- as Vault words it.
local function generate_password(cfg, role)
  local cc = role and role.credential_config
  local policy = cc and cc.password_policy
  if policy == nil or policy == "" then policy = cfg.password_policy end
  if policy and policy ~= "" then
    local pw, err = coffer.password.generate(policy)
    if not pw then return nil, "unable to generate password: " .. err end
    return pw
  end
  while true do
    local pw = coffer.crypto.random_string(20, PW_ALPHABET)
    if pw:find("%l") and pw:find("%u") and pw:find("%d") and
       pw:find("-", 1, true) then
      return pw
    end
  end
end

-- A role's (or static role's) credential_type and credential_config:
-- only "password" exists here, and its config names at most the password
-- policy that overrides the connection's. Unknown fields are refused, not
-- ignored: a misspelt policy key would otherwise silently fall back.
local function check_credential(role)
  role.credential_type = role.credential_type or "password"
  if role.credential_type ~= "password" then
    coffer.bad_request('credential_type "' .. role.credential_type ..
                       '" is not supported; use "password"')
  end
  local cc = role.credential_config
  if cc == nil then return end
  for k, v in pairs(cc) do
    if k ~= "password_policy" then
      coffer.bad_request('invalid credential_config: unknown field "' ..
                         tostring(k):sub(1, 64) .. '" (credential_type ' ..
                         '"password" takes only password_policy)')
    end
    if type(v) ~= "string" then
      coffer.bad_request("invalid credential_config: password_policy " ..
                         "must be a string")
    end
  end
  if next(cc) == nil then role.credential_config = nil end
end

local function db_message(err)
  if type(err) == "table" then return err.message or "unknown error" end
  return tostring(err)
end

-- The status and words of a failed database call.
local function db_status(err)
  if type(err) == "table" and err.class == "busy" then return 503 end
  return 500
end

local function db_error(prefix, err, secrets)
  raise_multierror(db_status(err),
                   prefix .. scrub(db_message(err), secrets))
end

-- ============================================================ configs ==

local CONFIG_FIELDS = {
  plugin_name = "string", plugin_version = "string",
  verify_connection = { type = "bool", default = true },
  allowed_roles = "strings", root_rotation_statements = "list",
  password_policy = "string", connection_url = "string", username = "string",
  password = { type = "string", sensitive = true },
  max_open_connections = "int", max_idle_connections = "int",
  max_connection_lifetime = "duration", username_template = "string",
  disable_escaping = "bool", password_authentication = "string",
  -- Coffer's own (no Vault postgres field has these names): time limits
  -- of every call to this database, and how many requests may queue for
  -- a connection before the next one is refused with a 503.
  connect_timeout = "duration", statement_timeout = "duration",
  max_waiting_requests = "int",
  -- Coffer's own: orphan reconciliation (lua/coffer/reconcile.lua).
  reconcile = "string", reconcile_interval = "duration",
  reconcile_tag = "bool",
  -- Coffer's own: end the user's sessions when its lease is revoked
  -- (default on; false keeps them, as Vault does).
  revoke_sessions = "bool",
}

-- Connection details: the fields a plugin reads, kept as the client sent
-- them (Vault returns them under connection_details).
local DETAIL_FIELDS = {
  "connection_url", "username", "password", "max_open_connections",
  "max_idle_connections", "max_connection_lifetime", "username_template",
  "disable_escaping", "password_authentication", "connect_timeout",
  "statement_timeout", "max_waiting_requests",
}

local function validate_username_template(text)
  local t, err = template.compile(text)
  if t ~= nil then
    local out
    out, err = t:render({ DisplayName = "token", RoleName = "role" })
    if out ~= nil then return nil end
  end
  coffer.bad_request("invalid username template: " .. err)
end

-- A plugin's own config fields (plugin.config_fields: the mysql plugin's
-- TLS settings), converted like the engine's. Another plugin's field is
-- refused rather than stored unused, and a plugin change drops the old
-- plugin's values.
-- Internal members of a stored config that no plugin field may name.
local INTERNAL_CONFIG = { pending_password = true }

-- The plugin's own config fields; one that shadows the engine's (a
-- "password" not listed as secret would be returned on read) stops the
-- request instead.
local function plugin_fields(plugin)
  local own = plugin and plugin.config_fields or {}
  for k in pairs(own) do
    if CONFIG_FIELDS[k] ~= nil or INTERNAL_CONFIG[k] then
      error(coffer.error { status = 500, errors = { multierror(
        "database plugin " .. plugin.name .. " declares the config field " ..
        k .. ", which the engine owns") } })
    end
  end
  return own
end

local function merge_plugin_fields(cfg, req)
  local plugin = dbplugins.get(cfg.plugin_name or "")
  local own = plugin_fields(plugin)
  for _, name in ipairs(dbplugins.names()) do
    for k in pairs(dbplugins.get(name).config_fields or {}) do
      if own[k] == nil and CONFIG_FIELDS[k] == nil and
         not INTERNAL_CONFIG[k] then
        if req.raw[k] ~= nil and req.raw[k] ~= json.null then
          coffer.bad_request(k .. " is not a setting of " ..
                             tostring(cfg.plugin_name))
        end
        cfg[k] = nil
      end
    end
  end
  for k, spec in pairs(own) do
    local v = req.raw[k]
    if v ~= nil and v ~= json.null then
      local value, why = fields.convert(type(spec) == "table" and spec.type
                                        or spec, v)
      if value == nil then
        coffer.bad_request('Field validation failed: error converting ' ..
                           'input for field "' .. k .. '": ' .. why)
      end
      cfg[k] = value
    end
  end
end

local function merge_config(cfg, req)
  merge_supplied(cfg, req, CONFIG_FIELDS)
  merge_plugin_fields(cfg, req)
  cfg.allowed_roles = cfg.allowed_roles or json.array()
  cfg.root_rotation_statements = cfg.root_rotation_statements or json.array()
  cfg.max_open_connections = cfg.max_open_connections or 4
  if cfg.max_open_connections < 1 then cfg.max_open_connections = 4 end
  if cfg.max_idle_connections == nil or
     cfg.max_idle_connections > cfg.max_open_connections then
    cfg.max_idle_connections = cfg.max_open_connections
  end
  cfg.max_connection_lifetime = cfg.max_connection_lifetime or 0
end

-- connect_timeout and statement_timeout default to 10s and 30s (db_pg.c),
-- max_waiting_requests to half of max_open_connections.
local function check_limits(cfg)
  for _, k in ipairs({ "connect_timeout", "statement_timeout",
                       "max_waiting_requests" }) do
    if cfg[k] ~= nil and cfg[k] < 0 then
      coffer.bad_request(k .. " cannot be negative")
    end
  end
end

-- The config's password_authentication when it is not the default
-- ("password": {{password}} is the password itself), else nil.
local function hashing_method(cfg)
  local auth = cfg.password_authentication
  if auth == nil or auth == "" or auth == "password" then return nil end
  return auth
end

local function check_config(cfg)
  if cfg.plugin_name == nil or cfg.plugin_name == "" then
    coffer.bad_request("empty plugin name")
  end
  if dbplugins.get(cfg.plugin_name) == nil then
    coffer.bad_request('unsupported database plugin "' .. cfg.plugin_name ..
                       '": supported plugins are ' .. supported_plugins())
  end
  if cfg.connection_url == nil or cfg.connection_url == "" then
    coffer.bad_request("error creating database object: connection_url " ..
                       "cannot be empty")
  end
  for _, v in ipairs({ cfg.username or "", cfg.password or "" }) do
    if v:find("{{username}}", 1, true) or v:find("{{password}}", 1, true) then
      coffer.bad_request("username and/or password cannot contain the " ..
                         "template variables")
    end
  end
  if cfg.username_template then
    validate_username_template(cfg.username_template)
  end
  local auth = hashing_method(cfg)
  if auth then
    if auth ~= "scram-sha-256" then
      coffer.bad_request("error creating database object: '" .. auth ..
                         "' is not a valid password authentication type")
    end
    if dbplugins.get(cfg.plugin_name).password_hash == nil then
      coffer.bad_request('password_authentication "' .. auth .. '" is not ' ..
                         "supported by " .. cfg.plugin_name ..
                         ' (set it to "password" to use this plugin)')
    end
  end
  check_limits(cfg)
end

-- What {{password}} becomes in the statements of a config, or nil and
-- why not (to follow "the generated password "). With the default
-- password_authentication the password itself, which must then keep to
-- the safe alphabet (unsafe_reason: it is pasted into SQL). With one that
-- hashes (PostgreSQL's "scram-sha-256") the verifier the plugin computes:
-- the database never sees the password, so any printable ASCII will do
-- (SASLprep leaves ASCII as it is; the client still gets the password).
local function statement_password(cfg, plugin, password)
  local auth = hashing_method(cfg)
  if auth == nil then
    local why = unsafe_reason(password)
    if why then return nil, why end
    return password
  end
  if type(password) ~= "string" or password == "" then
    return nil, "is empty"
  end
  local bad = password:match("[^\32-\126][\128-\191]*")
  if bad then
    return nil, string.format("contains %q, which is not allowed: with " ..
      "password_authentication %s only printable ASCII characters are",
      bad, auth)
  end
  if plugin.password_hash == nil then
    return nil, 'cannot be hashed: password_authentication "' .. auth ..
                '" is not supported by ' .. plugin.name
  end
  local hashed, err = plugin.password_hash(password, auth)
  if hashed == nil then return nil, "cannot be hashed: " .. tostring(err) end
  return hashed
end

-- The connection string with every literal password (URL user-info,
-- ?password=, key/value password='...') replaced by xxxxx, and whether it
-- held one. Templated ({{password}}) values are kept, as Vault does.
local function redact_url(url, plugin_name)
  local plugin = plugin_name and dbplugins.get(plugin_name)
  return coffer.db.redact_conninfo(url or "", plugin and plugin.driver)
end

local function write_config(req)
  local name = req.params.name
  local cfg = load_config(req.storage, name) or {}
  merge_config(cfg, req)
  check_config(cfg)
  reconcile.check_config(cfg, name, dbplugins.get(cfg.plugin_name))
  local verify = req.data.verify_connection
  local ok, err = configure_pool(req.mount, name, cfg, verify)
  if not ok then
    coffer.bad_request("error creating database object: " ..
                       (verify and "error verifying connection: " or "") ..
                       scrub(db_message(err), { cfg.password }))
  end
  cfg.verify_connection = nil
  req.storage:put_json("config/" .. name, cfg)
  local _, literal = redact_url(cfg.connection_url, cfg.plugin_name)
  if literal then
    return { warnings = { "Password found in connection_url, use a " ..
      "templated url to enable root rotation and prevent read access " ..
      "to password information." } }
  end
end

local function read_config(req)
  local cfg = load_config(req.storage, req.params.name)
  if cfg == nil then return nil end
  local details = {}
  for _, k in ipairs(DETAIL_FIELDS) do
    if k ~= "password" and cfg[k] ~= nil then details[k] = cfg[k] end
  end
  -- The plugin's own settings, but never its secret ones (PEM keys).
  local plugin = dbplugins.get(cfg.plugin_name or "")
  if plugin ~= nil and plugin.config_fields ~= nil then
    local secret = {}
    for _, k in ipairs(plugin.secret_config_fields or {}) do
      secret[k] = true
    end
    for k in pairs(plugin_fields(plugin)) do
      if not secret[k] and cfg[k] ~= nil then details[k] = cfg[k] end
    end
  end
  details.connection_url = (redact_url(cfg.connection_url,
                                       cfg.plugin_name))
  return { data = {
    allowed_roles = json.array(cfg.allowed_roles or {}),
    connection_details = details,
    password_policy = cfg.password_policy or "",
    plugin_name = cfg.plugin_name,
    plugin_version = cfg.plugin_version or "",
    root_credentials_rotate_statements =
      json.array(cfg.root_rotation_statements or {}),
    reconcile = cfg.reconcile or reconcile.DEFAULT_MODE,
    reconcile_interval = cfg.reconcile_interval or reconcile.DEFAULT_INTERVAL,
    reconcile_tag = cfg.reconcile_tag == true,
    verify_connection = true,
    revoke_sessions = cfg.revoke_sessions ~= false,
  } }
end

local function delete_config(req)
  local name = req.params.name
  local live = req:count_leases("creds", "db_name", name)
  if live > 0 then
    coffer.bad_request(string.format(
      'cannot delete connection "%s": %d lease%s issued through it %s ' ..
      "still active; revoke them first (coffer lease revoke -prefix %screds/)",
      name, live, live == 1 and "" or "s", live == 1 and "is" or "are",
      req.mount.path))
  end
  req.storage:delete("config/" .. name)
  req.storage:delete("reconcile/" .. name)
  coffer.db.remove(pool_key(req.mount, name))
end

local function list_keys(req, prefix)
  local keys = req.storage:list(prefix)
  if #keys == 0 then return nil end
  return { data = { keys = keys } }
end

e:path("config/", {
  list = function(req) return list_keys(req, "config/") end,
  help = "List the configured database connections.",
})

e:path("config/:name", {
  fields = CONFIG_FIELDS,
  write = write_config, read = read_config, delete = delete_config,
  help = "Configure a connection to a database.",
  exists = function(req)
    return req.storage:get("config/" .. req.params.name) ~= nil
  end,
})

e:path("reset/:name", {
  write = function(req)
    local name = req.params.name
    local cfg = load_config(req.storage, name)
    if cfg == nil then
      internal_error('failed to find entry for connection with name: "' ..
                     name .. '"')
    end
    coffer.db.remove(pool_key(req.mount, name))
    local ok, err = configure_pool(req.mount, name, cfg, false)
    if not ok then internal_error(scrub(db_message(err), { cfg.password })) end
  end,
  help = "Close and re-open the connections of a database config.",
})

e:path("rotate-root/:name", {
  write = function(req)
    local name = req.params.name
    local cfg = load_config(req.storage, name)
    if cfg == nil then
      internal_error('failed to find entry for connection with name: "' ..
                     name .. '"')
    end
    for _, k in ipairs({ "username", "password" }) do
      if cfg[k] == nil or cfg[k] == "" then
        internal_error("unable to rotate root credentials: no " .. k ..
                       " in configuration")
      end
    end
    local plugin = plugin_of(cfg.plugin_name)
    local why = unsafe_reason(cfg.username)
    if why then
      coffer.bad_request("unable to rotate root credentials: the " ..
                         "configured username " .. why)
    end
    local new, perr = generate_password(cfg)
    if not new then internal_error(perr) end
    why = unsafe_reason(new)
    if why then
      coffer.bad_request("unable to rotate root credentials: the " ..
                         "generated password " .. why)
    end
    local sent, herr = statement_password(cfg, plugin, new)
    if not sent then
      coffer.bad_request("unable to rotate root credentials: the " ..
                         "generated password " .. herr)
    end
    -- Write-ahead: if Coffer dies after PostgreSQL took the new password
    -- but before the config says so, acquire() finds the pending password
    -- and adopts it when the stored one is refused.
    cfg.pending_password = new
    req.storage:put_json("config/" .. name, cfg)
    local ok, err = exec_template(req, name, plugin,
      #cfg.root_rotation_statements > 0 and cfg.root_rotation_statements or
        plugin.default_root_rotation,
      { username = cfg.username, name = cfg.username, password = sent },
      false)
    if not ok then
      db_error("unable to rotate root credentials: ", err,
               { new, sent, cfg.password })
    end
    cfg.password, cfg.pending_password = new, nil
    req.storage:put_json("config/" .. name, cfg)
    coffer.db.remove(pool_key(req.mount, name))
    configure_pool(req.mount, name, cfg, false)
  end,
  help = "Rotate the password of the config's own database user.",
})

-- ============================================================== roles ==

local ROLE_FIELDS = {
  db_name = "string", creation_statements = "list",
  revocation_statements = "list", rollback_statements = "list",
  renew_statements = "list", default_ttl = "duration", max_ttl = "duration",
  credential_type = "string", credential_config = "map",
}
for k, v in pairs(leaselimits.FIELDS) do ROLE_FIELDS[k] = v end

local function write_role(req)
  local name = req.params.name
  if req.storage:get("static-role/" .. name) ~= nil then
    coffer.bad_request("Role and Static Role names must be unique")
  end
  local role = merge_supplied(req.storage:get_json("role/" .. name) or {},
                              req, ROLE_FIELDS)
  if role.db_name == nil or role.db_name == "" then
    coffer.bad_request("database name is required")
  end
  check_credential(role)
  role.default_ttl = role.default_ttl or 0
  role.max_ttl = role.max_ttl or 0
  if role.max_ttl > 0 and role.default_ttl > role.max_ttl then
    coffer.bad_request("ttl cannot be greater than max_ttl")
  end
  leaselimits.check(role)
  req.storage:put_json("role/" .. name, role)
end

local function read_role(req)
  local role = req.storage:get_json("role/" .. req.params.name)
  if role == nil then return nil end
  local data = {
    db_name = role.db_name, default_ttl = role.default_ttl,
    max_ttl = role.max_ttl, credential_type = role.credential_type,
  }
  for _, k in ipairs({ "creation_statements", "revocation_statements",
                       "rollback_statements", "renew_statements" }) do
    data[k] = json.array(role[k] or {})
  end
  if role.credential_config then data.credential_config = role.credential_config end
  return { data = leaselimits.describe(role, data) }
end

e:path("roles/", {
  list = function(req) return list_keys(req, "role/") end,
  help = "List the dynamic roles.",
})

e:path("roles/:name", {
  fields = ROLE_FIELDS,
  write = write_role, read = read_role,
  delete = function(req) req.storage:delete("role/" .. req.params.name) end,
  help = "Manage the roles that can create database credentials.",
  exists = function(req)
    return req.storage:get("role/" .. req.params.name) ~= nil
  end,
})

-- ============================================================== creds ==

local function make_username(cfg, plugin, req, role_name)
  local text = cfg.username_template or plugin.default_username_template
  local t, err = compile_template(text)
  if t == nil then internal_error("invalid username template: " .. err) end
  local display = req.token and req.token.display_name or "token"
  local name
  name, err = t:render({ DisplayName = display, RoleName = role_name })
  if name == nil then internal_error("unable to generate username: " .. err) end
  -- Display names, role names and the template's own text can all carry
  -- characters that end a quoted identifier: refuse before any statement.
  local why = unsafe_reason(name, plugin.max_username_length)
  if why then
    coffer.bad_request("unable to generate username: the username " ..
      "produced by username_template " .. string.format("%q", text) ..
      " " .. why)
  end
  return name
end

-- Undoes a failed creation: the role's rollback statements (best effort),
-- then the pending lease's revocation drops whatever is left.
local function roll_back(req, plugin, role, vars, lease)
  if role.rollback_statements and #role.rollback_statements > 0 then
    local ok, err = exec_template(req, role.db_name, plugin,
                                  role.rollback_statements, vars, true)
    if not ok then
      coffer.log.warn("database: rollback statements failed: " ..
                      scrub(db_message(err), { vars.password }))
    end
  end
  lease:abort()
end

local revoke_user -- below, with the lease side

-- The lease could not be stored (the HA lock was lost meanwhile and the
-- storage refuses our writes, or the new active already revoked the
-- pending record): nobody will ever revoke this user, and the client
-- gets an error, so drop it now, straight on the database (no storage
-- write needed), with the revocation its lease would have run.
local function drop_unleased(req, role, cfg, lease, username)
  local gone = { id = lease:id(), internal = {
    username = username, plugin = cfg.plugin_name,
    revocation_statements = role.revocation_statements or {} } }
  local ok, err = with_db(req, role.db_name,
    function(conn, c) return revoke_user(conn, c, gone) end)
  if not ok then
    coffer.log.error("database: the lease of " .. username .. " could not " ..
      "be stored and dropping the user failed: " .. db_message(err))
  end
end

local function issue_creds(req)
  local role_name = req.params.name
  local role = shared_json(req, "role/" .. role_name)
  if role == nil then coffer.bad_request("unknown role: " .. role_name) end
  local cfg = shared_json(req, "config/" .. role.db_name)
  if cfg == nil then
    internal_error('failed to find entry for connection with name: "' ..
                   role.db_name .. '"')
  end
  if not role_allowed(cfg, role_name) then
    internal_error('"' .. role_name .. '" is not an allowed role')
  end
  if #(role.creation_statements or {}) == 0 then
    internal_error("empty creation statements")
  end
  local plugin = plugin_of(cfg.plugin_name)
  local ttl, max_ttl = req:lease_ttl(role.default_ttl, role.max_ttl)
  local username = make_username(cfg, plugin, req, role_name)
  local password, perr = generate_password(cfg, role)
  if not password then internal_error(perr) end
  local sent, why = statement_password(cfg, plugin, password)
  if not sent then coffer.bad_request("the generated password " .. why) end
  local vars = {
    name = username, username = username, password = sent,
    expiration = plugin.expiration(math.floor(coffer.time.now()) + ttl + 5),
  }
  -- max_leases, max_leases_per_token, reuse_existing (leaselimits.lua):
  -- the role's lock is held from the count until the pending lease is.
  local slot <close>, reused = leaselimits.admit(req,
    { type = "creds/" .. role_name, name = role_name, limits = role })
  if reused then return reused end
  -- Recorded before the user exists: a crash from here on is revoked.
  local lease = req:pending_lease("creds", slot:internal {
    username = username, db_name = role.db_name, role = role_name,
    plugin = cfg.plugin_name,
    revocation_statements = json.array(role.revocation_statements or {}),
    renew_statements = json.array(role.renew_statements or {}),
  })
  slot:release()
  local ok, err = exec_template(req, role.db_name, plugin,
                                reconcile.creation_statements(cfg, plugin,
                                  req.mount, role.db_name,
                                  role.creation_statements), vars, true)
  if not ok then
    roll_back(req, plugin, role, vars, lease)
    db_error("failed to execute query: ", err, { password, sent })
  end
  local issued, res = pcall(lease.issue, lease,
                            { username = username, password = password },
                            { ttl = ttl, max_ttl = max_ttl, renewable = true })
  if not issued then
    drop_unleased(req, role, cfg, lease, username)
    error(res, 0)
  end
  return slot:issued(res)
end

e:path("creds/:name", {
  read = issue_creds,
  help = "Request database credentials for a role.",
})

-- Revokes one lease's user on conn: the lease's revocation statements,
-- or the plugin's default revocation. A lease issued before names were
-- checked may hold a hostile one: never paste it into statements again;
-- the default revocation quotes it properly (and drops the role if it
-- exists). true | nil, err.
function revoke_user(conn, cfg, lease)
  local int = lease.internal
  local unsafe = unsafe_reason(int.username)
  local plugin = plugin_of(int.plugin or cfg.plugin_name)
  if int.revocation_statements and #int.revocation_statements > 0 and
     not unsafe then
    local stmts, xerr = expand(plugin, int.revocation_statements,
      { name = int.username, username = int.username }, true, conn)
    if stmts == nil then return nil, xerr end
    -- revoke_sessions set true: also before the role's own statements
    -- (unset, it applies to the default revocation only).
    if cfg.revoke_sessions == true and plugin.terminate_sessions then
      plugin.terminate_sessions(conn, int.username)
    end
    local ok, err = run_in_tx(conn, stmts)
    -- A lease never issued (its creation failed, or crashed mid-way) may
    -- name a user that was never or only half created, which the role's
    -- statements may not handle (MySQL: DROP USER of a missing user
    -- fails). The plugin's default revocation drops whatever exists.
    if ok or lease.state ~= "pending" or type(err) ~= "table" or
       err.class ~= "sql" then
      return ok, err
    end
    coffer.log.warn("database: lease " .. tostring(lease.id) .. " was " ..
      "never issued and its revocation statements failed; using the " ..
      "default revocation")
  end
  if unsafe then
    coffer.log.warn("database: lease " .. tostring(lease.id) .. ": " ..
      "its username " .. unsafe .. "; using the default revocation")
  end
  return plugin.default_revoke(conn, int.username, cfg)
end

-- Errors after which the connection or transaction cannot go on: the
-- whole batch fails (and with_db may retry it on a fresh connection).
local BATCH_FATAL = { unreachable = true, timeout = true, busy = true,
                      internal = true, auth = true }

local function batch_fatal(err)
  return type(err) ~= "table" or BATCH_FATAL[err.class] == true
end

-- revoke_user inside a savepoint of the batch's transaction: a lease that
-- fails is rolled back alone and the others go on. A transient failure
-- (tuple concurrently updated, deadlock) is tried again, as with_db does
-- for a lone revocation. Returns true | nil, err, fatal.
local function revoke_in_savepoint(conn, cfg, lease)
  local err
  for attempt = 1, 4 do
    local ok, serr = conn:exec("SAVEPOINT coffer_lease")
    if not ok then return nil, serr, true end
    ok, err = revoke_user(conn, cfg, lease)
    if ok then
      ok, serr = conn:exec("RELEASE SAVEPOINT coffer_lease")
      if not ok then return nil, serr, true end
      return true
    end
    if batch_fatal(err) then return nil, err, true end
    ok, serr = conn:exec_script("ROLLBACK TO SAVEPOINT coffer_lease; " ..
                                "RELEASE SAVEPOINT coffer_lease")
    if not ok then return nil, serr, true end
    if err.class ~= "transient" then break end
    coffer.time.sleep(0.002 * attempt * attempt)
  end
  return nil, err
end

-- What revoke_user runs for a lease: "sql" and the lease's own
-- statements as one text, or "default" and the plugin whose default
-- revocation it is; nil when it has no text form (statements that do
-- not expand, a name the default revocation must quote alone).
local function revoke_sql(conn, cfg, lease)
  local int = lease.internal
  local unsafe = unsafe_reason(int.username)
  local plugin = plugin_of(int.plugin or cfg.plugin_name)
  if int.revocation_statements and #int.revocation_statements > 0 and
     not unsafe then
    local stmts = expand(plugin, int.revocation_statements,
      { name = int.username, username = int.username }, true, conn)
    if stmts and cfg.revoke_sessions == true and
       plugin.terminate_sessions_sql then
      local kill = plugin.terminate_sessions_sql(int.username)
      if kill == nil then return nil end
      table.insert(stmts, 1, kill)
    end
    return stmts and "sql", stmts and table.concat(stmts, ";\n")
  end
  if unsafe then return nil end
  return "default", plugin
end

-- The default revocations of a batch, one text per plugin: one statement
-- for all of its users when the plugin can (default_revoke_many_sql),
-- else one per user. Appends to parts; false if one has no text form.
local function default_revocations(parts, by_plugin, cfg)
  for plugin, names in pairs(by_plugin) do
    if plugin.default_revoke_many_sql then
      local sql = plugin.default_revoke_many_sql(names, cfg)
      if sql == nil then return false end
      parts[#parts + 1] = sql
    elseif plugin.default_revoke_sql then
      for _, name in ipairs(names) do
        local sql = plugin.default_revoke_sql(name, cfg)
        if sql == nil then return false end
        parts[#parts + 1] = sql
      end
    else
      return false
    end
  end
  return true
end

-- The common case in one round trip: every lease's revocation and the
-- COMMIT in one script. true when all committed; false when the script
-- could not be built or a statement failed (rolled back: nothing
-- happened); nil, err when the connection cannot go on.
local function revoke_all_at_once(conn, cfg, list)
  local parts = { "BEGIN" }
  local by_plugin = {}
  for _, lease in ipairs(list) do
    local kind, what = revoke_sql(conn, cfg, lease)
    if kind == nil then return false end
    if kind == "default" then
      local names = by_plugin[what] or {}
      by_plugin[what] = names
      names[#names + 1] = lease.internal.username
    elseif what ~= "" then
      parts[#parts + 1] = what
    end
  end
  if not default_revocations(parts, by_plugin, cfg) then return false end
  parts[#parts + 1] = "COMMIT"
  local ok, err = conn:exec_script(table.concat(parts, ";\n"))
  if ok then return true end
  if batch_fatal(err) then return nil, err end
  conn:rollback()
  return false
end

-- Revokes the leases of one connection config in one transaction (one
-- fsync instead of one per lease): all in one script first; if any
-- fails, again with each lease in its own savepoint, so that the failing
-- ones are rolled back alone and the others commit. Sets out[idx[j]] to
-- true or the error text of list[j]. If the transaction cannot commit,
-- every lease of the group fails (each is retried later on its own).
local function revoke_db_group(name, list, idx, out)
  local verdicts
  local ok, err = with_db(list[1], name, function(conn, cfg)
    verdicts = {}
    local all, aerr = revoke_all_at_once(conn, cfg, list)
    if all == nil then return nil, aerr end
    if all then
      for j = 1, #list do verdicts[j] = true end
      return true
    end
    local began, berr = conn:begin()
    if not began then return nil, berr end
    for j, lease in ipairs(list) do
      local r, lerr, fatal = revoke_in_savepoint(conn, cfg, lease)
      if fatal then return nil, lerr end
      verdicts[j] = r and true or db_message(lerr)
    end
    return conn:commit()
  end)
  for j, i in ipairs(idx) do
    out[i] = ok and verdicts[j] or db_message(err)
  end
end

-- The lease side: what the expiration manager calls.
-- leaselimits.wrap_secret: a revoked lease is never reused.
e:secret("creds", leaselimits.wrap_secret {
  revoke = function(lease)
    local ok, err = with_db(lease, lease.internal.db_name,
      function(conn, cfg) return revoke_user(conn, cfg, lease) end)
    if not ok then return nil, db_message(err) end
    return true
  end,
  -- Mass expiry: the leases grouped by connection config, one
  -- transaction per group.
  revoke_batch = function(leases)
    local out, groups, order = {}, {}, {}
    for i, lease in ipairs(leases) do
      local name = tostring(lease.internal.db_name)
      local g = groups[name]
      if g == nil then
        g = { list = {}, idx = {} }
        groups[name], order[#order + 1] = g, name
      end
      g.list[#g.list + 1], g.idx[#g.idx + 1] = lease, i
    end
    for _, name in ipairs(order) do
      revoke_db_group(name, groups[name].list, groups[name].idx, out)
    end
    return out
  end,
  renew = function(lease, expire_unix)
    local int = lease.internal
    local unsafe = unsafe_reason(int.username)
    if unsafe then
      return nil, "refusing to renew: the lease's username " .. unsafe
    end
    local ok, err = with_db(lease, int.db_name, function(conn, cfg)
      local plugin = plugin_of(int.plugin or cfg.plugin_name)
      local stmts = int.renew_statements
      if stmts == nil or #stmts == 0 then stmts = plugin.default_renew end
      local list, xerr = expand(plugin, stmts, {
        name = int.username, username = int.username,
        expiration = plugin.expiration(expire_unix + 5),
      }, false, conn)
      if list == nil then return nil, xerr end
      return run_in_tx(conn, list)
    end)
    if not ok then return nil, db_message(err) end
    return true
  end,
})

-- ======================================================= static roles ==

local STATIC_FIELDS = {
  db_name = "string", username = "string", rotation_period = "duration",
  rotation_statements = "list", credential_type = "string",
  credential_config = "map",
}

local function rfc3339(unix)
  return coffer.time.format_rfc3339(unix)
end

-- Sets a new password for a static role. The new password is stored as
-- pending before the database changes it, so a crash in between leaves a
-- pending rotation that the next tick completes instead of a password
-- nobody knows. Callers hold the role's lock (lock_static), so a rotation
-- by hand, at creation and by the ticker never overlap.
local function rotate_static(ctx, name, srole)
  local cfg = load_config(ctx.storage, srole.db_name)
  if cfg == nil then
    return nil, 'failed to find entry for connection with name: "' ..
                srole.db_name .. '"'
  end
  local plugin = plugin_of(cfg.plugin_name)
  local why = unsafe_reason(srole.username)
  if why then return nil, "the static role's username " .. why, 400 end
  local cred = ctx.storage:get_json("static-cred/" .. name) or {}
  local new, perr = generate_password(cfg, srole)
  if not new then return nil, perr end
  local sent
  sent, why = statement_password(cfg, plugin, new)
  if not sent then return nil, "the generated password " .. why, 400 end
  cred.pending = new
  ctx.storage:put_json("static-cred/" .. name, cred)
  local stmts = srole.rotation_statements
  if stmts == nil or #stmts == 0 then stmts = plugin.default_rotation end
  local ok, err = exec_template(ctx, srole.db_name, plugin, stmts, {
    name = srole.username, username = srole.username, password = sent,
  }, false)
  if not ok then
    return nil, scrub(db_message(err), { new, sent }), db_status(err)
  end
  cred.password, cred.pending = new, nil
  cred.last_vault_rotation = math.floor(coffer.time.now())
  ctx.storage:put_json("static-cred/" .. name, cred)
  return true
end

local function lock_static(ctx, name)
  return ctx.storage:lock("static-cred/" .. name)
end

local function write_static_role(req)
  local name = req.params.name
  local lock <close> = lock_static(req, name)
  if req.storage:get("role/" .. name) ~= nil then
    coffer.bad_request("Role and Static Role names must be unique")
  end
  local old = req.storage:get_json("static-role/" .. name)
  local srole = merge_supplied(old or {}, req, STATIC_FIELDS, function(k)
    if k == "username" and old and old.username ~= req.data.username then
      coffer.bad_request("cannot update static account username")
    end
  end)
  if srole.db_name == nil or srole.db_name == "" then
    coffer.bad_request("database name is a required field")
  end
  if srole.username == nil or srole.username == "" then
    coffer.bad_request("username is a required field to create a static account")
  end
  if srole.rotation_period == nil then
    coffer.bad_request("rotation_period is required to create static accounts")
  end
  if srole.rotation_period < 5 then
    coffer.bad_request("rotation_period must be 5 seconds or more")
  end
  local why = unsafe_reason(srole.username)
  if why then
    coffer.bad_request("username " .. why)
  end
  check_credential(srole)
  local cfg = load_config(req.storage, srole.db_name)
  if cfg == nil then
    coffer.bad_request('failed to find entry for connection with name: "' ..
                       srole.db_name .. '"')
  end
  req.storage:put_json("static-role/" .. name, srole)
  if old == nil then
    local ok, err, status = rotate_static(req, name, srole)
    if not ok then
      raise_multierror(status or 500, "error setting credentials: " .. err)
    end
  end
end

local function read_static_role(req)
  local name = req.params.name
  local srole = req.storage:get_json("static-role/" .. name)
  if srole == nil then return nil end
  local cred = req.storage:get_json("static-cred/" .. name) or {}
  return { data = {
    db_name = srole.db_name, username = srole.username,
    rotation_period = srole.rotation_period,
    rotation_statements = json.array(srole.rotation_statements or {}),
    credential_type = srole.credential_type,
    credential_config = srole.credential_config,
    last_vault_rotation = cred.last_vault_rotation and
                          rfc3339(cred.last_vault_rotation) or json.null,
  } }
end

e:path("static-roles/", {
  list = function(req) return list_keys(req, "static-role/") end,
  help = "List the static roles.",
})

e:path("static-roles/:name", {
  fields = STATIC_FIELDS,
  write = write_static_role, read = read_static_role,
  delete = function(req)
    req.storage:delete("static-role/" .. req.params.name)
    req.storage:delete("static-cred/" .. req.params.name)
  end,
  help = "Manage roles whose database user exists and whose password " ..
         "Coffer rotates.",
  exists = function(req)
    return req.storage:get("static-role/" .. req.params.name) ~= nil
  end,
})

e:path("static-creds/:name", {
  read = function(req)
    local name = req.params.name
    local srole = req.storage:get_json("static-role/" .. name)
    if srole == nil then coffer.bad_request("unknown role: " .. name) end
    local cfg = load_config(req.storage, srole.db_name)
    if cfg == nil or not role_allowed(cfg, name) then
      internal_error('"' .. name .. '" is not an allowed role')
    end
    local cred = req.storage:get_json("static-cred/" .. name) or {}
    if cred.password == nil then
      internal_error("the password of static role \"" .. name ..
                     "\" has not been set yet; it will be retried")
    end
    local last = cred.last_vault_rotation or 0
    local left = last + srole.rotation_period - math.floor(coffer.time.now())
    return { data = {
      username = srole.username, password = cred.password,
      last_vault_rotation = rfc3339(last),
      rotation_period = srole.rotation_period,
      ttl = left > 0 and left or 0,
    } }
  end,
  help = "Read the current credentials of a static role.",
})

e:path("rotate-role/:name", {
  write = function(req)
    local name = req.params.name
    local lock <close> = lock_static(req, name)
    local srole = req.storage:get_json("static-role/" .. name)
    if srole == nil then
      coffer.bad_request("no static role found for role name")
    end
    local ok, err, status = rotate_static(req, name, srole)
    if not ok then
      raise_multierror(status or 500, "unable to rotate: " .. err)
    end
  end,
  help = "Rotate the password of a static role now.",
})

-- Orphan reconciliation (lua/coffer/reconcile.lua): reconcile/:name, and
-- a run per config every reconcile_interval from the periodic below.
local reconcile_deps = { with_db = with_db, plugin_of = plugin_of,
                         load_config = load_config, message = db_message }
reconcile.register(e, reconcile_deps)

-- Every few seconds: rotate static roles whose period has passed, and
-- finish rotations a crash interrupted.
e:periodic(function(ctx)
  local now = math.floor(coffer.time.now())
  for _, name in ipairs(ctx.storage:list("static-role/")) do
    local lock <close> = lock_static(ctx, name)
    local srole = ctx.storage:get_json("static-role/" .. name)
    local cred = ctx.storage:get_json("static-cred/" .. name) or {}
    if srole ~= nil and (cred.pending ~= nil or cred.password == nil or
       now >= (cred.last_vault_rotation or 0) + srole.rotation_period) then
      local ok, err = rotate_static(ctx, name, srole)
      if not ok then
        coffer.log.warn("database: rotating static role " .. name ..
                        " failed: " .. err)
      end
    end
  end
  reconcile.periodic(reconcile_deps, ctx)
end)

return e
