-- dbplugin_mysql.lua - MySQL and MariaDB for the database engine, on the
-- "mysql" driver of coffer.db (src/db_mysql.c), registered four times as
-- Vault does: one implementation, different username rules per name.
--
--   mysql-database-plugin          template truncated to 32 (MySQL 5.7+,
--                                  MariaDB)
--   mysql-aurora-database-plugin   the legacy template, 16 (MySQL < 5.7)
--   mysql-rds-database-plugin      likewise
--   mysql-legacy-database-plugin   likewise
--
-- The interface is lua/coffer/dbplugins.lua's. Behaviour follows Vault's
-- mysql-database-plugin (VAULT_API.md 6):
--  * connection_url is the Go driver's DSN,
--    {{username}}:{{password}}@tcp(host:3306)/ or ...@unix(/path)/, with
--    the values put in as they are (the Go driver does not unescape them);
--  * renewal does nothing (MySQL accounts do not expire);
--  * the default revocation is Vault's REVOKE ALL PRIVILEGES, GRANT
--    OPTION + DROP USER, in its idempotent one-statement form: DROP USER
--    removes every privilege row of the account, and IF EXISTS makes a
--    second revocation (a retry, a crash-recovery of a user that was never
--    created) succeed.
--
-- MySQL commits DDL at once, so a creation that fails after CREATE USER
-- leaves the user behind whatever transaction it ran in: the engine's
-- failure path (rollback statements, then the pending lease's revocation)
-- drops it, and the default revocation drops it whether or not it exists.

local dbplugins = require("dbplugins")

local M = {}

M.driver = "mysql"

M.default_username_template =
  '{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 10) ' ..
  '(.RoleName | truncate 10) (random 20) (unix_time) | truncate 32 }}'
M.max_username_length = 32

local LEGACY_TEMPLATE =
  '{{ printf "v-%s-%s-%s" (.RoleName | truncate 4) (random 20) ' ..
  '| truncate 16 }}'
local LEGACY_MAX = 16

M.default_renew = {}
M.default_rotation =
  { [[ALTER USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';]] }
M.default_root_rotation =
  { [[ALTER USER '{{username}}'@'%' IDENTIFIED BY '{{password}}';]] }

-- Go layout "2006-01-02 15:04:05-0700" in UTC, as Vault formats it.
function M.expiration(unix)
  return coffer.time.format_utc("%Y-%m-%d %H:%M:%S+0000", unix)
end

-- Fills {{username}} and {{password}} into the DSN. A value holding a
-- character that the DSN uses as a delimiter where it sits would change
-- what the driver reads (a user name with ':' or '@', a password with
-- '/' or '@tcp('): refuse it rather than connect somewhere else.
function M.connect_info(cfg)
  local url = cfg.connection_url
  if url == nil or url == "" then
    return nil, "connection_url cannot be empty"
  end
  local user, pass = cfg.username or "", cfg.password or ""
  if url:find("{{username}}", 1, true) and user:find("[:@/\0]") then
    return nil, "username cannot contain ':', '@', '/' or NUL in a " ..
                "connection_url"
  end
  if url:find("{{password}}", 1, true) and
     (pass:find("@tcp(", 1, true) or pass:find("@unix(", 1, true) or
      pass:find("@/", 1, true) or pass:find("\0", 1, true)) then
    return nil, "password cannot contain '@tcp(', '@unix(', '@/' or NUL " ..
                "in a connection_url"
  end
  url = url:gsub("{{username}}", (user:gsub("%%", "%%%%")))
  url = url:gsub("{{password}}", (pass:gsub("%%", "%%%%")))
  return url
end

-- Vault's TLS fields of the mysql plugin: tls_ca (PEM of the CA),
-- tls_certificate_key (PEM of the client certificate and its key),
-- tls_server_name, tls_skip_verify. The two PEM fields are secret-ish:
-- stored like the password and never returned on read. With either PEM
-- set, TLS is required whatever the DSN's tls= says (src/db_mysql_tls.h).
M.config_fields = {
  tls_ca = { type = "string", sensitive = true },
  tls_certificate_key = { type = "string", sensitive = true },
  tls_server_name = "string",
  tls_skip_verify = "bool",
}
M.secret_config_fields = { "tls_ca", "tls_certificate_key" }

-- The extra options of coffer.db.configure for a stored config.
function M.pool_options(cfg)
  return {
    tls_ca = cfg.tls_ca,
    tls_certificate_key = cfg.tls_certificate_key,
    tls_server_name = cfg.tls_server_name,
    tls_skip_verify = cfg.tls_skip_verify == true,
  }
end

-- Vault's strutil.ParseArbitraryStringSlice(stmt, ";"): a JSON array
-- (possibly base64-encoded) or ';'-separated statements. MySQL has no
-- anonymous blocks to keep whole.
function M.split(stmt)
  return dbplugins.split_statements(stmt)
end

-- The account as SQL, for a name known to be made of safe characters.
local SAFE = "^[A-Za-z0-9_.-]+$"

-- revoke_sessions (unless the config sets it false): a dropped account's
-- open connections go on with the rights they had, so they are killed
-- before DROP USER.
local function revoke_sessions(cfg)
  return cfg == nil or cfg.revoke_sessions ~= false
end

-- text | nil, err: the default revocation of a safe name, as SQL text
-- (the engine sends many at once in mass expiry). With revoke_sessions,
-- MariaDB's KILL CONNECTION USER ends its connections in the same
-- script; MySQL has no such statement, so the script fails there and
-- the engine falls back to default_revoke, one user at a time.
function M.default_revoke_sql(username, cfg)
  if type(username) ~= "string" or not username:match(SAFE) then
    return nil, { class = "sql", message = "refusing to revoke a user " ..
                  "whose name holds characters outside [A-Za-z0-9_.-] " ..
                  "as text" }
  end
  local drop = "DROP USER IF EXISTS '" .. username .. "'@'%'"
  if not revoke_sessions(cfg) then return drop end
  return "KILL CONNECTION USER '" .. username .. "'@'%';\n" .. drop
end

-- The default revocation of many safe names in one statement (mass
-- expiry): DROP USER takes a list. text | nil.
function M.default_revoke_many_sql(names, cfg)
  local accounts = {}
  for i, name in ipairs(names) do
    if type(name) ~= "string" or not name:match(SAFE) then return nil end
    accounts[i] = "'" .. name .. "'@'%'"
  end
  if #accounts == 0 then return "" end
  local drop = "DROP USER IF EXISTS " .. table.concat(accounts, ", ")
  if not revoke_sessions(cfg) then return drop end
  local kills = {}
  for i, account in ipairs(accounts) do
    kills[i] = "KILL CONNECTION USER " .. account
  end
  return table.concat(kills, ";\n") .. ";\n" .. drop
end

-- Kills the connections of one account, found in the process list (works
-- on MySQL and MariaDB). Best effort: a connection that ended meanwhile,
-- or one the admin may not kill, must not stop the revocation.
local function kill_sessions(conn, username)
  local res = conn:exec("SELECT ID FROM information_schema.PROCESSLIST " ..
                        "WHERE USER = ? AND ID <> CONNECTION_ID()",
                        { username })
  for _, row in ipairs(res and res.rows or {}) do
    local id = math.tointeger(tonumber(row.ID or row.id))
    if id ~= nil then
      local ok, err = conn:exec("KILL CONNECTION " .. id)
      if not ok then
        coffer.log.warn("mysql: could not end a session of a revoked " ..
                        "user: " .. tostring(err and err.message))
      end
    end
  end
end

-- For roles with their own revocation statements and revoke_sessions
-- set true (lua/coffer/dbplugin_postgresql.lua has the interface).
function M.terminate_sessions(conn, username)
  kill_sessions(conn, username)
  return true
end

-- MariaDB's form; on MySQL the batch fails and falls back to the above.
function M.terminate_sessions_sql(username)
  if type(username) ~= "string" or not username:match(SAFE) then
    return nil
  end
  return "KILL CONNECTION USER '" .. username .. "'@'%'"
end

-- Any name, quoted by the server's rules (mysql_real_escape_string):
-- leases issued before names were checked may hold a hostile one.
function M.default_revoke(conn, username, cfg)
  local q, err = conn:quote_literal(username)
  if q == nil then return nil, err end
  if revoke_sessions(cfg) then kill_sessions(conn, username) end
  return conn:exec("DROP USER IF EXISTS " .. q .. "@'%'")
end

-- Orphan reconciliation (lua/coffer/reconcile.lua): the accounts of
-- host '%' (the one Vault's statements create) whose name is LIKE
-- like_prefix (metacharacters escaped with a backslash, MySQL's default
-- LIKE escape). MySQL keeps no comment to tag users with: tag is nil.
-- list of {name} | nil, err.
function M.list_users(conn, like_prefix)
  local res, err = conn:exec("SELECT User AS name FROM mysql.user " ..
                             "WHERE Host = '%' AND User LIKE ?",
                             { like_prefix })
  if res == nil then return nil, err end
  local out = {}
  for i, row in ipairs(res.rows) do
    out[i] = { name = row.name or row.User }
  end
  return out
end


-- One registration per Vault name; the legacy three share their rules.
local function register(name, template, max_len)
  local p = {}
  for k, v in pairs(M) do p[k] = v end
  p.name = name
  p.default_username_template = template
  p.max_username_length = max_len
  return dbplugins.register(p)
end

register("mysql-database-plugin", M.default_username_template,
         M.max_username_length)
register("mysql-aurora-database-plugin", LEGACY_TEMPLATE, LEGACY_MAX)
register("mysql-rds-database-plugin", LEGACY_TEMPLATE, LEGACY_MAX)
return register("mysql-legacy-database-plugin", LEGACY_TEMPLATE, LEGACY_MAX)
