-- A plugin that declares a config field the engine owns ("password"):
-- the engine refuses to use it rather than return the password on read.
local pg = require("coffer.dbplugin_postgresql")

local p = {}
for k, v in pairs(pg) do p[k] = v end
p.name = "shadowing-postgresql-plugin"
p.config_fields = { password = "string", region = "string" }
coffer.database_plugin(p)
