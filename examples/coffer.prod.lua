-- coffer.prod.lua - a production configuration for Coffer.
--
--   coffer server -config=/etc/coffer/coffer.prod.lua
--
-- The file is Lua written to read like Vault's HCL. It runs once at start-up
-- in a sandbox (no io, os or require) and every mistake stops the server
-- with the file, the line and the key:
--
--   /etc/coffer/coffer.prod.lua:20: unknown key "adress" in listener "tcp"
--
-- Being Lua, it may use comments, locals and string concatenation, but
-- nothing else is allowed to assign globals: only the settings below exist.

local etc = "/etc/coffer"

-- One TCP listener. TLS is on unless tls_disable = true, so a listener
-- without certificate and key files is an error, as in Vault. The key file
-- is read once at start-up and wiped from Coffer's memory after the TLS
-- library has parsed it; keep it readable by the coffer user only (0600).
listener "tcp" {
  address          = "0.0.0.0:8200",
  tls_cert_file    = etc .. "/tls/coffer.crt",   -- PEM; the full chain
  tls_key_file     = etc .. "/tls/coffer.key",   -- PEM, unencrypted
  max_request_size = 33554432,                   -- bytes (32 MiB, Vault's)

  -- Against slow and greedy clients (Vault's names and defaults). The
  -- read timeouts are totals from the start of a request: a client that
  -- trickles a byte at a time cannot stretch them.
  http_read_header_timeout = "10s",  -- request line and headers
  http_read_timeout        = "30s",  -- the whole request, body included
  http_idle_timeout        = "5m",   -- keep-alive with nothing sent
  max_request_duration     = "90s",  -- then 500 "context deadline exceeded"

  -- Open connections in total and per client address (Coffer's). Behind
  -- a proxy or NAT every client shares one address: raise the second.
  max_connections          = 4096,
  max_connections_per_ip   = 512,
}

-- Exactly one storage block. sqlite is the embedded default: one file,
-- WAL mode, fsync'd commits. Every value is encrypted before it reaches
-- the file, so the server starts sealed and needs its unseal keys.
-- Put the directory on local disk (not NFS), owned by the coffer user.
storage "sqlite" {
  path = "/var/lib/coffer/coffer.db",
}

-- For several nodes or an existing PostgreSQL, use this block instead.
-- Keep this file readable by the coffer user only: the URL holds a password.
--
-- storage "postgresql" {
--   connection_url = "postgresql://coffer:PASSWORD@db.internal:5432/coffer"
--                    .. "?sslmode=verify-full",
--   table          = "coffer_kv",   -- created if missing
-- }

-- Leases: a duration such as "768h", "30m", "7d", or whole seconds.
-- default_lease_ttl must not exceed max_lease_ttl.
default_lease_ttl = "168h"    -- one week
max_lease_ttl     = "768h"    -- 32 days, Vault's default

-- Extra Lua engines and auth methods, and the Lua policies loaded at
-- start-up (the only place Lua policies come from; examples/policies/ has
-- one to start from).
plugin_directory  = etc .. "/lua"
policy_directory  = etc .. "/policies"
-- `kill -HUP <pid>` (or PUT sys/plugins/reload/backend) reloads both, and
-- the built-in Lua, on the running server: a file that fails to load
-- leaves the old code serving and the error (file:line) in the log.

-- Where plugins may send HTTP requests (coffer.http: JWKS and OIDC
-- discovery for the jwt auth method, the Kubernetes TokenReview API, your
-- own engines' services). Entries are scheme://host[:port][/path-prefix];
-- plain http:// only where listed. Without this key any https URL is
-- allowed (logged as a warning at start-up).
plugin_http_allowed = {
  "https://kubernetes.default.svc",
  "https://token.actions.githubusercontent.com",
}

-- Decrypted values kept in memory for reads (entries; Vault's option and
-- default). Emptied and wiped at seal; writes always go to storage first.
cache_size        = 131072
-- disable_cache  = true

-- Reads of the built-in kv engine answered in C, with the engine's exact
-- bytes (on by default; false runs every read through lua/engines/kv.lua).
-- kv_native_reads = false

-- trace, debug, info, warn or error. Coffer never logs tokens or secrets.
log_level         = "info"

-- The address advertised to clients, as in Vault.
api_addr          = "https://coffer.example.com:8200"

-- Keep false: unseal keys and the root key stay locked in RAM, never
-- swapped. Only set true where mlock is impossible (some containers).
disable_mlock     = false

-- Request worker threads, each with its own Lua state (made on first use).
-- Requests wait on databases here, not on the I/O threads: keep enough
-- that the databases' own concurrency limits leave most workers free.
workers           = 32

-- Failed logins allowed per second and per client address before logins
-- from that address get 429 (default 1/s with a burst of 10).
login_rate_limit = 1
login_rate_burst = 10

-- How many nice steps (0..19) the threads that revoke expired leases run
-- below the threads that answer requests (Coffer-specific; counted from
-- the server's own nice value, 19 at most; read at start). The default,
-- 10, keeps a mass expiry from slowing the requests being answered
-- meanwhile; 0 runs revocation on a par with them, so roles go sooner
-- while reads wait longer (tests/bench/README.md, "Part expiry", has the
-- trade measured).
lease_revocation_nice = 10

-- Limits of the Lua runtime that runs the engines, auth methods and Lua
-- policies (Coffer-specific). The defaults suit the bundled engines.
-- lua_memory_limit: bytes one Lua state may allocate (default 64 MiB,
--   4 MiB to 16 GiB); a script that needs more fails with "not enough memory".
-- lua_call_timeout: how long one engine call may run (default "10s", 1s to
--   1h); a request's own max_request_duration may end it sooner.
-- lua_policy_budget: Lua instructions one policy check may run (default
--   100000, 10000 to 1e9); a check that runs out denies the request.
lua_memory_limit  = 64 * 1024 * 1024
lua_call_timeout  = "10s"
lua_policy_budget = 100000

-- Audit devices, declared here as OpenBao does: enabled at every unseal
-- before any request is served, listed by GET sys/audit, and not
-- disableable through the API (remove the block and restart). Options
-- are the API's (file_path, mode, format, prefix, log_raw, hmac_accessor,
-- elide_list_responses; socket: address, socket_type, write_timeout;
-- syslog: facility, tag); a mistake stops the server with file:line.
-- `kill -HUP` reopens the file after logrotate moved it.
--
-- audit "file" "main" {
--   description = "the audit trail",
--   options = { file_path = "/var/log/coffer/audit.log", mode = "0600" },
-- }
--
-- With the devices declared here, keep API users from pointing new
-- devices at arbitrary files or sockets (default true, as in Vault):
--
-- unsafe_allow_api_audit_creation = false

-- Auto-unseal (OpenBao's static seal): a 32-byte AES-256-GCM key wraps the
-- root key, so the server unseals itself at every start; `operator init`
-- then returns recovery keys instead of unseal keys. The key file must not
-- be readable by other users. To rotate: the new key as current_key, the
-- old one as previous_key, one restart.
--
-- seal "static" {
--   current_key_id = "2026-12",
--   current_key    = "file:///etc/coffer/unseal.key",
-- }

-- High availability: several nodes on one PostgreSQL, one active, the
-- others forwarding to it and taking over within seconds (README, "Running
-- several nodes"). Replace the storage block above with:
--
-- storage "postgresql" {
--   connection_url = "postgresql://coffer:...@db.internal:5432/coffer"
--   ha_enabled     = true
--   ha_lock_ttl    = "10s"
-- }
-- api_addr = "https://coffer-1.internal:8200"   -- this node, as clients reach it
