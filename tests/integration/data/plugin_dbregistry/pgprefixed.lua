-- A database plugin registered from the plugin directory: PostgreSQL's
-- dialect with another name and its own username template. The database
-- engine finds it by plugin_name, with no edit of the engine.
local pg = require("coffer.dbplugin_postgresql")

local p = {}
for k, v in pairs(pg) do p[k] = v end
p.name = "prefixed-postgresql-plugin"
p.default_username_template =
  '{{ printf "reg-%s-%s" (.RoleName | truncate 8) (random 12) | truncate 63 }}'
coffer.database_plugin(p)
