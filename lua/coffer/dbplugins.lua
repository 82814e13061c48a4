-- dbplugins.lua - the registry of database plugins.
--
-- A database plugin is the SQL dialect of one database on top of a C
-- driver of coffer.db. The database engine (lua/engines/database.lua)
-- looks plugins up here by the plugin_name of a connection config, so a
-- new database is one Lua file that registers itself, with no edit of the
-- engine:
--
--   coffer.database_plugin {
--     name = "mysql-database-plugin",     -- plugin_name in configs
--     driver = "postgresql",              -- a driver of coffer.db.drivers()
--     default_username_template = "...",
--     max_username_length = 32,
--     connect_info = function(config) return conninfo end,   -- or nil, err
--     split = function(stmt, allow_whole) return {stmt...} end,
--     expiration = function(unix) return "..." end,
--     default_revoke = function(conn, username) ... end,     -- true | nil, err
--     default_revoke_sql = function(username) ... end,       -- optional
--     default_revoke_many_sql = function(usernames) ... end, -- optional
--     default_renew = {...}, default_rotation = {...},
--     default_root_rotation = {...},
--   }
--
-- Registration happens at load time only (engines, then plugin_directory),
-- in every Lua state; lookups happen per request. Built-in plugins are
-- the lua/coffer/dbplugin_<database>.lua modules.

local fields = require("fields")

local M = {}

local registry = {}   -- name -> plugin

local FUNCTIONS = { "connect_info", "split", "expiration", "default_revoke" }
-- The default revocation as SQL text, of one user or of a whole batch:
-- the engine sends a batch of due leases in one script when it can.
local OPTIONAL_FUNCTIONS = { "default_revoke_sql", "default_revoke_many_sql",
                             "terminate_sessions", "terminate_sessions_sql",
                             "pool_options", "password_hash" }
local STATEMENT_LISTS = { "default_renew", "default_rotation",
                          "default_root_rotation" }

local function is_driver(name)
  for _, d in ipairs(coffer.db.drivers()) do
    if d == name then return true end
  end
  return false
end

-- Optional: the plugin's own config fields ({name = type | {type = ...,
-- sensitive = true}}, types of fields.lua) and which of them are secret
-- (never returned on read).
local function check_config_fields(declared, secret)
  if declared == nil then
    if secret ~= nil then
      return "secret_config_fields needs config_fields"
    end
    return nil
  end
  if type(declared) ~= "table" then
    return "config_fields must be a table"
  end
  for k, spec in pairs(declared) do
    local t = type(spec) == "table" and spec.type or spec
    if type(k) ~= "string" or not k:match("^[%l][%l%d_]*$") then
      return "config_fields: names are lower-case words"
    end
    if type(t) ~= "string" or fields.types[t] == nil then
      return "config_fields: field '" .. k .. "' has an unknown type"
    end
  end
  for _, k in ipairs(secret or {}) do
    if declared[k] == nil then
      return "secret_config_fields: '" .. tostring(k) ..
             "' is not in config_fields"
    end
  end
  return nil
end

local function check_spec(p)
  if type(p) ~= "table" then
    return "the plugin must be a table"
  end
  if type(p.name) ~= "string" or not p.name:match("^[%w][%w_.%-]*$") then
    return "name must be a word (letters, digits, '.', '-', '_')"
  end
  if type(p.driver) ~= "string" or not is_driver(p.driver) then
    return "driver must be one of: " .. table.concat(coffer.db.drivers(), ", ")
  end
  if type(p.default_username_template) ~= "string" then
    return "default_username_template must be a string"
  end
  if math.type(p.max_username_length) ~= "integer" or
     p.max_username_length < 1 then
    return "max_username_length must be a positive integer"
  end
  for _, k in ipairs(FUNCTIONS) do
    if type(p[k]) ~= "function" then
      return k .. " must be a function"
    end
  end
  for _, k in ipairs(OPTIONAL_FUNCTIONS) do
    if p[k] ~= nil and type(p[k]) ~= "function" then
      return k .. " must be a function when given"
    end
  end
  for _, k in ipairs(STATEMENT_LISTS) do
    if type(p[k]) ~= "table" then
      return k .. " must be a list of statements"
    end
  end
  -- Optional: orphan reconciliation (lua/coffer/reconcile.lua).
  if p.list_users ~= nil and type(p.list_users) ~= "function" then
    return "list_users must be a function"
  end
  if p.tag_statement ~= nil and type(p.tag_statement) ~= "string" then
    return "tag_statement must be a string"
  end
  return check_config_fields(p.config_fields, p.secret_config_fields)
end

-- register(plugin) -> plugin. Load time only; names are unique.
function M.register(p)
  coffer.assert_load_time()
  local why = check_spec(p)
  if why ~= nil then
    error("coffer.database_plugin: " .. why, 2)
  end
  if registry[p.name] ~= nil then
    error("coffer.database_plugin: '" .. p.name .. "' is already registered",
          2)
  end
  registry[p.name] = p
  return p
end

local function decode_base64_or_nil(s)
  if #s % 4 ~= 0 or not s:match("^[%w%+/]+=?=?$") then
    return nil
  end
  return coffer.crypto.base64_decode(s)
end

-- split_statements(stmt) -> list: Vault's strutil.ParseArbitraryStringSlice
-- (stmt, ";"), the statement splitting every plugin starts from: a JSON
-- array of statements (possibly base64-encoded), or ';'-separated text.
function M.split_statements(stmt)
  local text = decode_base64_or_nil(stmt) or stmt
  local ok, list = pcall(coffer.json.decode, text)
  if ok and type(list) == "table" and coffer.json.is_array(list) then
    return list
  end
  local out = {}
  for piece in (text .. ";"):gmatch("(.-);") do
    piece = piece:match("^%s*(.-)%s*$")
    if piece ~= "" then
      out[#out + 1] = piece
    end
  end
  return out
end

-- get(name) -> plugin or nil.
function M.get(name)
  return registry[name]
end

-- names() -> sorted list of registered plugin names.
function M.names()
  local out = {}
  for name in pairs(registry) do
    out[#out + 1] = name
  end
  table.sort(out)
  return out
end

return M
