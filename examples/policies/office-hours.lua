-- office-hours.lua - an example Lua policy: path rules plus a check
-- function. Coffer loads Lua policies only from the configuration's
-- policy_directory (-dev-policy-dir=DIR for a dev server); to use this
-- one, copy it there, or try it with:
--
--   coffer server -dev -dev-policy-dir=examples/policies
--
-- Tokens carrying the "office-hours" policy may read secrets under
-- secret/data/office/*, but only from the local machine, or from
-- anywhere during office hours (09:00-18:00 UTC, Monday to Friday).
-- The check runs after the path rules allowed the request; returning
-- false (with a reason for the server log) denies it. An error, a
-- non-boolean result or a runaway loop denies too (fail closed).
--
-- check(req) sees the fields an engine's handler sees: req.id,
-- req.operation, req.path (relative to the mount: "data/office/x"),
-- req.full_path ("secret/data/office/x"), req.mount_path ("secret/"),
-- req.time (unix seconds), req.client_addr, req.data and req.token
-- ({display_name, accessor, entity_id, type, policies, meta}).
-- A policy registers itself with coffer.policy{...}, as an engine does
-- with coffer.engine{...} (returning the table works too).
-- Edit this file and reload (SIGHUP, or PUT sys/plugins/reload/backend)
-- to change a running server's rules.

local OPEN_HOUR, CLOSE_HOUR = 9, 18
local LOCAL = { ["127.0.0.1"] = true, ["::1"] = true }

-- Day of week (0 = Sunday) and hour (UTC) of a unix time.
local function weekday_hour(t)
  local days = t // 86400
  return (days + 4) % 7, (t % 86400) // 3600 -- 1970-01-01 was a Thursday
end

coffer.policy {
  name = "office-hours",
  paths = {
    ["secret/data/office/*"] = { capabilities = { "read" } },
    ["secret/metadata/office/*"] = { capabilities = { "list" } },
  },
  check = function(req)
    if LOCAL[req.client_addr] then
      return true
    end
    local day, hour = weekday_hour(req.time)
    if day >= 1 and day <= 5 and hour >= OPEN_HOUR and hour < CLOSE_HOUR then
      return true
    end
    return false, "outside office hours and not from 127.0.0.1"
  end,
}
