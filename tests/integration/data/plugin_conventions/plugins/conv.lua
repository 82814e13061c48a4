-- One style for every kind of plugin: an auth method whose login route is
-- keyed like a path (write), one with the older `handler` key, and an
-- engine that echoes the request fields a handler sees.
local a = coffer.auth { name = "convauth" }
a:login("login", {
  fields = { who = "string" },
  write = function(req)
    if req.data.who ~= "alice" then coffer.bad_request("invalid who") end
    return { display_name = "alice", policies = { "conv-policy" },
             metadata = { how = "write" } }
  end,
})
local b = coffer.auth { name = "convlegacy" }
b:login("login", {
  handler = function(req)
    return { display_name = "bob", metadata = { how = "handler" } }
  end,
})

local e = coffer.engine { name = "convecho" }
e:path("echo/*rest", {
  read = function(req)
    return { data = { path = req.path, full_path = req.full_path,
                      mount_path = req.mount_path, time = req.time,
                      operation = req.operation, id = req.id,
                      client_addr = req.client_addr,
                      token_policies = req.token and req.token.policies } }
  end,
})
