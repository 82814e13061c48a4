-- broken.lua - a secret engine that misbehaves on purpose, for
-- tests/integration/test_lua_engine.py. Every path is one failure mode.
local e = coffer.engine { name = "broken", help = "misbehaves on purpose" }

local function recurse(n) return recurse(n + 1) + 1 end

e:path("ok", { read = function() return { data = { fine = true } } end })
e:path("raise", { read = function() error("boom from lua") end })
e:path("raise-table", { read = function() error({ not_a = "string" }) end })
e:path("raise-nil", { read = function() error(nil) end })
e:path("deep-recursion", { read = function() return recurse(1) end })
e:path("bad-index", { read = function() local t = nil; return t.field end })

e:path("nonsense-number", { read = function() return 42 end })
e:path("nonsense-string", { read = function() return "not a table" end })
e:path("nonsense-function", { read = function() return print end })
e:path("nonsense-data", { read = function() return { data = function() end } end })
e:path("nonsense-status", { read = function() return { status = "teapot", data = {} } end })
e:path("nonsense-cycle", { read = function()
  local t = {}
  t.self = t
  return { data = t }
end })

e:path("bad-request", { read = function() coffer.bad_request("you did it wrong") end })
e:path("not-found", { read = function() coffer.not_found() end })
e:path("nothing", { read = function() return nil end })

e:path("loop", { read = function() while true do end end })
e:path("loop-pcall", { read = function()
  while true do pcall(function() while true do end end) end
end })
e:path("memory-hog", { read = function()
  local t = {}
  for i = 1, 1e9 do t[i] = string.rep("x", 1024) .. i end
  return { data = { n = #t } }
end })

-- Globals are strict: reading an undeclared one raises, so look through
-- pcall and report what is reachable.
local function global(name)
  local ok, v = pcall(function() return _ENV[name] end)
  if ok then return v end
  return nil
end

e:path("sandbox", { read = function()
  local os_ = global("os")
  local load_ = global("load")
  local string_ = global("string")
  local ok_bc = false
  if load_ ~= nil and string_ ~= nil and string_.dump ~= nil then
    local dumped_ok, chunk = pcall(string_.dump, function() return 1 end)
    if dumped_ok then
      ok_bc = load_(chunk, "bc", "b") ~= nil
    end
  end
  local pkg = global("package")
  local ok_req = pkg ~= nil and type(pkg) == "table" and pkg.loadlib ~= nil
  return { data = {
    io = type(global("io")),
    os_execute = type(os_ and os_.execute),
    os_exit = type(os_ and os_.exit),
    dofile = type(global("dofile")),
    loadfile = type(global("loadfile")),
    bytecode_load = ok_bc,
    require_c = ok_req,
  } }
end })

e:path("set-global", { read = function()
  leaked_global = true
  return { data = { set = true } }
end })
e:path("read-global", { read = function()
  local ok, v = pcall(function() return leaked_global end)
  return { data = { leaked = ok and v == true } }
end })

e:path("store", {
  read = function(req)
    local v = req.storage:get_json("store")
    if v == nil then return nil end
    return { data = v }
  end,
  write = function(req) req.storage:put_json("store", req.data) end,
})

return e
