-- leasegen.lua - a benchmark-only engine, loaded through plugin_directory
-- by tests/bench/bench_restore.py: issues leases that stand for nothing,
-- so that a million leases can be made without a database.
--
--   PUT leasegen/issue  {"count": 10000, "ttl": "720h"}

local e = coffer.engine { name = "leasegen", help = "Benchmark leases." }

e:path("issue", {
  fields = { count = { type = "int", default = 1 },
             ttl = { type = "duration", default = 720 * 3600 } },
  write = function(req)
    local n = req.data.count
    if n < 1 or n > 100000 then coffer.bad_request("count: 1 to 100000") end
    for i = 1, n do
      local lease = req:pending_lease("token", { n = i })
      lease:issue({}, { ttl = req.data.ttl, renewable = true })
    end
    return { data = { issued = n } }
  end,
})

e:secret("token", {
  revoke = function() return true end,
  renew = function() return true end,
})

return e
