-- coffer.dev-sqlite.lua - a real server on your machine, for trying things.
--
--   build/coffer server -config=examples/coffer.dev-sqlite.lua
--   export VAULT_ADDR=http://127.0.0.1:8200      # or COFFER_ADDR
--   build/coffer operator init                   # keep the keys it prints
--   build/coffer operator unseal                 # threshold times
--
-- Unlike `coffer server -dev`, this server starts sealed and keeps its data
-- in /tmp/coffer-dev/coffer.db across restarts, so init, unseal, seal and
-- crash recovery behave as in production. Delete the directory to start
-- over. Plain HTTP on loopback only: never use tls_disable on a network.

listener "tcp" {
  address     = "127.0.0.1:8200",
  tls_disable = true,
}

storage "sqlite" {
  path = "/tmp/coffer-dev/coffer.db",
}

default_lease_ttl = "1h"
max_lease_ttl     = "24h"
log_level         = "debug"
api_addr          = "http://127.0.0.1:8200"
disable_mlock     = true   -- mlock limits are often low on a workstation
workers           = 2
