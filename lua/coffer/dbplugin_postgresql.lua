-- dbplugin_postgresql.lua - everything PostgreSQL-specific about the
-- database engine, behind the small interface every database plugin
-- offers and registers (lua/coffer/dbplugins.lua):
--
--   name                      plugin_name in configs
--   driver                    the coffer.db driver it runs on
--   default_username_template
--   max_username_length       longer names are refused (the server would
--                             truncate them, and revocation miss them)
--   connect_info(config)      -> conninfo string for coffer.db, or nil, err
--   split(stmt, allow_whole)  -> list of statements to run
--   expiration(unix)          -> the {{expiration}} text
--   default_revoke(conn, username, cfg)       -> true | nil, err
--   default_revoke_sql(username, cfg)  (optional)  -> the same as SQL text
--   default_revoke_many_sql(usernames, cfg) (optional) -> one text for many
--                             (cfg: the connection config; unless its
--                             revoke_sessions is false, the user's
--                             sessions are ended before it is dropped)
--   terminate_sessions(conn, username)  (optional) ends the user's
--                             sessions before a role's own revocation
--                             statements, when the config's
--                             revoke_sessions is true; best effort
--   terminate_sessions_sql(username)  (optional) the same as SQL text
--   default_renew, default_rotation, default_root_rotation   statements
--   password_hash(password, method) (optional) -> the text {{password}}
--                             becomes under the config's
--                             password_authentication method (here
--                             "scram-sha-256"), or nil, err
--   list_users(conn, like_prefix) (optional) -> {{name, tag}...} | nil, err
--   tag_statement (optional)  tags a user at creation (reconcile_tag)
--
-- Behaviour follows Vault's postgresql-database-plugin (VAULT_API.md 6).

local dbplugins = require("dbplugins")

local M = {}

M.name = "postgresql-database-plugin"
M.driver = "postgresql"

M.default_username_template =
  '{{ printf "v-%s-%s-%s-%s" (.DisplayName | truncate 8) ' ..
  '(.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}'

-- NAMEDATALEN - 1: PostgreSQL silently truncates longer identifiers.
M.max_username_length = 63

M.default_renew = { [[ALTER ROLE "{{name}}" VALID UNTIL '{{expiration}}';]] }
M.default_rotation = { [[ALTER ROLE "{{name}}" WITH PASSWORD '{{password}}';]] }
M.default_root_rotation =
  { [[ALTER ROLE "{{username}}" WITH PASSWORD '{{password}}';]] }

-- password_authentication = "scram-sha-256": PostgreSQL is sent the
-- SCRAM-SHA-256 verifier instead of the password, and stores it as is
-- (PostgreSQL 10 and later), so the password itself never reaches the
-- server or its statement log. Vault's scram.Hash: 16-byte salt, 4096
-- rounds.
function M.password_hash(password, method)
  if method ~= "scram-sha-256" then
    return nil, "unsupported password authentication " .. tostring(method)
  end
  return coffer.crypto.scram_sha256(password)
end

-- Go layout "2006-01-02 15:04:05-0700" in UTC.
function M.expiration(unix)
  return coffer.time.format_utc("%Y-%m-%d %H:%M:%S+0000", unix)
end

-- Percent-escapes a value for the user-info part of a URL.
local function url_escape(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

-- Quotes a value for a key/value connection string: libpq reads
-- '...' with \' and \\ as escapes.
local function kv_quote(s)
  return "'" .. s:gsub("[\\']", "\\%0") .. "'"
end

local function is_url(s)
  return s:match("^postgres://") ~= nil or s:match("^postgresql://") ~= nil
end

-- Fills {{username}}/{{password}} in the URL and adds what Coffer needs.
-- In a key/value string (host=... password={{password}}) the values are
-- quoted by libpq's key/value rules instead: URL escapes would become part
-- of the password there, and an unquoted space would start a new keyword.
function M.connect_info(cfg)
  local url = cfg.connection_url
  if url == nil or url == "" then
    return nil, "connection_url cannot be empty"
  end
  local user, pass = cfg.username or "", cfg.password or ""
  if not is_url(url) then
    user, pass = kv_quote(user), kv_quote(pass)
    -- Quoted placeholders ('{{password}}') are quoted by us instead.
    url = url:gsub("'{{username}}'", "{{username}}")
             :gsub("'{{password}}'", "{{password}}")
  elseif not cfg.disable_escaping then
    user, pass = url_escape(user), url_escape(pass)
  end
  url = url:gsub("{{username}}", (user:gsub("%%", "%%%%")))
  url = url:gsub("{{password}}", (pass:gsub("%%", "%%%%")))
  if url:match("^postgres") then
    local sep = url:find("?", 1, true) and "&" or "?"
    url = url .. sep .. "application_name=coffer"
  end
  return url
end

-- True if the statement holds the keyword END outside quotes (a DO block
-- or function body), which must run whole rather than split on ';'.
local function has_end_keyword(s)
  local stripped = s:gsub("'[^']*'", "''"):gsub('"[^"]*"', '""')
  stripped = stripped:gsub("%$%$.-%$%$", "")
  return stripped:upper():match("%f[%w_]END%f[^%w_]") ~= nil
end

-- Splits one configured statement string into the statements to execute
-- (a PL/pgSQL body with an END kept whole when allowed).
function M.split(stmt, allow_whole)
  if allow_whole and has_end_keyword(stmt) then
    return { stmt }
  end
  return dbplugins.split_statements(stmt)
end

-- Vault's default revocation, run server-side in one DO block so that a
-- revocation is one round trip instead of nine: strip each user's table,
-- sequence, schema and database privileges, then drop the role. A role
-- that does not exist is a successful revocation. The block takes an
-- array of names: a mass expiry revokes a batch of users in one block,
-- which PostgreSQL compiles once (64 one-user blocks in one transaction:
-- ~6,400 roles/s on 4 connections here; one 64-user block: ~28,000/s).
local REVOKE_BLOCK = [[
DO $coffer_revoke$
DECLARE
  names text[] := ARRAY[%s]::text[];
  r text;
  roid oid;
  s text;
  stmts text[];
  stmt text;
BEGIN
%s
  FOREACH r IN ARRAY names LOOP
    SELECT oid INTO roid FROM pg_roles WHERE rolname = r;
    CONTINUE WHEN NOT FOUND;
    -- A role that holds nothing in any database (no privilege granted to
    -- it or by it, no object, no policy: pg_shdepend has no row for it;
    -- group membership lives in pg_auth_members and goes with the role)
    -- needs only DROP ROLE, which is where the REVOKEs below lead.
    -- Skipping them matters: each REVOKE rewrites the ACL of a row every
    -- revocation shares (schema public, the database), so concurrent
    -- revocations queue on those rows and fail with "tuple concurrently
    -- updated" (mass expiry ran at ~200/s against ~6,000/s for plain
    -- DROP ROLE).
    IF NOT EXISTS (SELECT 1 FROM pg_shdepend d
                   WHERE d.refclassid = 'pg_authid'::regclass
                     AND d.refobjid = roid) THEN
      EXECUTE format('DROP ROLE IF EXISTS %%I', r);
      CONTINUE;
    END IF;
    -- The REVOKEs below rewrite ACLs that such revocations share (schema
    -- public, the database, a table granted to many users): two
    -- transactions doing them at once fail with "tuple concurrently
    -- updated" and their whole batch falls back to one lease at a time.
    -- So one transaction at a time does them, until it ends (the key is
    -- "coffer" in ASCII).
    PERFORM pg_advisory_xact_lock(109330110506354);
    -- Schemas the user was granted something in (the schema itself, or a
    -- table, column or sequence in it).
    -- Vault asks information_schema.role_column_grants, which scans every
    -- column of the database (10 ms with a few thousand roles); the
    -- grants are also recorded in pg_shdepend, indexed by role.
    stmts := ARRAY[]::text[];
    FOR s IN SELECT DISTINCT n.nspname
             FROM pg_shdepend d
             JOIN pg_namespace n ON
               (d.classid = 'pg_namespace'::regclass AND n.oid = d.objid) OR
               (d.classid = 'pg_class'::regclass AND n.oid =
                 (SELECT relnamespace FROM pg_class WHERE oid = d.objid))
             WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = roid
               AND d.deptype = 'a'
               AND d.dbid = (SELECT oid FROM pg_database
                             WHERE datname = current_database()) LOOP
      stmts := stmts || format('REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA %%I FROM %%I', s, r)
                     || format('REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA %%I FROM %%I', s, r)
                     || format('REVOKE USAGE ON SCHEMA %%I FROM %%I', s, r);
    END LOOP;
    stmts := stmts
      || format('REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM %%I', r)
      || format('REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public FROM %%I', r)
      || format('REVOKE USAGE ON SCHEMA public FROM %%I', r)
      || format('REVOKE CONNECT ON DATABASE %%I FROM %%I', current_database(), r);
    -- A REVOKE the admin may not run cannot matter by itself: if the user
    -- still holds anything, DROP ROLE below fails and says what.
    FOREACH stmt IN ARRAY stmts LOOP
      BEGIN
        EXECUTE stmt;
      EXCEPTION WHEN insufficient_privilege THEN
        NULL;
      END;
    END LOOP;
    EXECUTE format('DROP ROLE IF EXISTS %%I', r);
  END LOOP;
END
$coffer_revoke$]]

-- revoke_sessions: the users' sessions end before their roles are
-- dropped (PostgreSQL lets a role be dropped while it is connected, and
-- the session goes on with the rights it had). One scan of
-- pg_stat_activity for the whole batch. A backend the admin may not
-- signal (a superuser's, or no pg_signal_backend) must not fail the
-- revocation: the role is still dropped.
local TERMINATE_SESSIONS = [[
  BEGIN
    PERFORM pg_terminate_backend(a.pid) FROM pg_stat_activity a
      WHERE a.usename::text = ANY(names) AND a.pid <> pg_backend_pid();
  EXCEPTION WHEN insufficient_privilege THEN
    NULL;
  END;]]

-- A string literal for SQL: single quotes doubled, no backslash escapes
-- (standard_conforming_strings is on by default since PostgreSQL 9.1).
local function quote_literal(s)
  return "'" .. s:gsub("'", "''") .. "'"
end

-- The default revocation of many users as one SQL text (one DO block),
-- so that the database engine revokes a batch of leases in one statement
-- (mass expiry). If any of them fails, the whole block does: the engine
-- then revokes them one by one. text | nil, err.
function M.default_revoke_many_sql(usernames, cfg)
  local literals = {}
  for i, username in ipairs(usernames) do
    if username:find("$coffer_revoke$", 1, true) or
       username:find("\0", 1, true) then
      return nil, { class = "sql", message = "refusing to revoke a user " ..
                    "whose name contains the block delimiter" }
    end
    literals[i] = quote_literal(username)
  end
  local terminate = ""
  if cfg == nil or cfg.revoke_sessions ~= false then
    terminate = TERMINATE_SESSIONS
  end
  return REVOKE_BLOCK:format(table.concat(literals, ", "), terminate)
end

-- Ends one user's sessions, for roles with their own revocation
-- statements (the default revocation does it inside its block). One DO
-- block, so a refused signal is caught server-side and never aborts the
-- transaction it runs in.
local TERMINATE_ONE = [[
DO $coffer_terminate$
BEGIN
  PERFORM pg_terminate_backend(a.pid) FROM pg_stat_activity a
    WHERE a.usename::text = %s AND a.pid <> pg_backend_pid();
EXCEPTION WHEN insufficient_privilege THEN
  NULL;
END
$coffer_terminate$]]

function M.terminate_sessions_sql(username)
  if type(username) ~= "string" or
     username:find("$coffer_terminate$", 1, true) or
     username:find("\0", 1, true) then
    return nil
  end
  return TERMINATE_ONE:format(quote_literal(username))
end

function M.terminate_sessions(conn, username)
  local sql = M.terminate_sessions_sql(username)
  if sql == nil then return true end
  return conn:exec(sql)
end

function M.default_revoke_sql(username, cfg)
  return M.default_revoke_many_sql({ username }, cfg)
end

function M.default_revoke(conn, username, cfg)
  local sql, err = M.default_revoke_sql(username, cfg)
  if sql == nil then return nil, err end
  return conn:exec(sql)
end

-- Orphan reconciliation (lua/coffer/reconcile.lua): the users whose
-- name is LIKE like_prefix (the engine escapes the prefix's
-- metacharacters with a backslash and appends '%'), each with its tag
-- (the role's comment). list of {name, tag} | nil, err.
function M.list_users(conn, like_prefix)
  local res, err = conn:exec(
    "SELECT rolname, shobj_description(oid, 'pg_authid') AS tag " ..
    "FROM pg_roles WHERE rolname LIKE $1 ESCAPE '\\'", { like_prefix })
  if res == nil then return nil, err end
  local out = {}
  for i, row in ipairs(res.rows) do
    out[i] = { name = row.rolname, tag = row.tag }
  end
  return out
end

-- Tags a user at creation (reconcile_tag = true), in the creation's
-- transaction: the engine fills in {{tag}}, then {{name}} as usual.
M.tag_statement = [[COMMENT ON ROLE "{{name}}" IS '{{tag}}']]

return dbplugins.register(M)
