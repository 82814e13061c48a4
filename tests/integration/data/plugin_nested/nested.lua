-- An engine whose revoke runs inside a handler (lease:abort()), to check
-- that the handler's call survives it: its storage handle, its deadline,
-- and the one-lock-per-thread rule (no self-deadlock).
local e = coffer.engine { name = "nested" }

e:secret("thing", {
  revoke = function(lease)
    local lock <close> = lease.storage:lock("shared")
    lease.storage:put("revoked/" .. lease.internal.name, "yes")
    return true
  end,
})

e:path("abort/:name", {
  write = function(req)
    local lease = req:pending_lease("thing", { name = req.params.name })
    lease:abort()
    -- The handler's own call must still be usable after the inner call.
    req.storage:put("after/" .. req.params.name, "ok")
    return { data = { revoked = req.storage:get("revoked/" .. req.params.name),
                      after = req.storage:get("after/" .. req.params.name) } }
  end,
})

e:path("abort-locked/:name", {
  write = function(req)
    local lock <close> = req.storage:lock("shared")
    local lease = req:pending_lease("thing", { name = req.params.name })
    lease:abort()   -- its revoke cannot take the lock: fails, never hangs
    req.storage:put("after/" .. req.params.name, "ok")
    return { data = { revoked = req.storage:get("revoked/" .. req.params.name),
                      after = req.storage:get("after/" .. req.params.name) } }
  end,
})

e:path("revoked/:name", {
  read = function(req)
    return { data = { revoked = req.storage:get("revoked/" .. req.params.name) } }
  end,
})
