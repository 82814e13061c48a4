-- apidoc.lua - an introspection engine and auth method for
-- tests/integration/test_plugin_api_doc.py, which keeps docs/PLUGIN_API.md
-- true. Everything here reports names as the running server has them:
--
--   GET  apidoc/names      the whole `coffer` table (walked through the
--                          frozen proxies' __pairs), the standard
--                          libraries' tables, and the keys of the real
--                          handler `req` (plus req.mount and req.token)
--   POST apidoc/globals    {names = {...}}: which of these globals exist
--   POST apidoc/probe      {objects = {storage = {...}, lock = {...},
--                          lease = {...}, key = {...}, keyset = {...}},
--                          jwks = "...", pem = "..."}: which of the given
--                          method names each real object answers
--   POST apidoc/http       {url = "..."}: the keys of a coffer.http response
--   POST apidoc/compile    {chunks = {...}}: syntax errors of Lua examples
--   POST apidoc/issue      a leased secret (type "probe") to renew/revoke
--   GET  apidoc/seen       keys of the tables revoke, renew and periodic got
--   POST auth/<m>/login    (type apidoc_auth) the login req's keys come back
--                          in the token's metadata
--
-- Userdata methods cannot be enumerated from Lua (their metatables are
-- locked), so the test sends candidate names and learns which exist.

local json = coffer.json

local e = coffer.engine { name = "apidoc", help = "Plugin API introspection." }

local function sorted_keys(t)
  local out = json.array()
  if type(t) ~= "table" then return out end
  for k in pairs(t) do out[#out + 1] = tostring(k) end
  table.sort(out)
  return out
end

-- name -> Lua type of every value reachable from the coffer table.
local function walk(t, prefix, out, seen, depth)
  if seen[t] or depth > 6 then return end
  seen[t] = true
  for k, v in pairs(t) do
    local name = prefix .. "." .. tostring(k)
    out[name] = type(v)
    if type(v) == "table" then
      walk(v, name, out, seen, depth + 1)
    end
  end
end

local LIBS = { "string", "table", "math", "utf8", "coroutine" }

-- Reads a global without raising for an undeclared one.
local function global(name)
  local ok, v = pcall(function() return _ENV[name] end)
  if ok then return v end
  return nil
end

e:path("names", {
  read = function(req)
    local names = json.object()
    walk(coffer, "coffer", names, {}, 0)
    local libs = json.object()
    for _, lib in ipairs(LIBS) do
      local t = global(lib)
      if type(t) == "table" then libs[lib] = sorted_keys(t) end
    end
    return { data = {
      coffer = names,
      libs = libs,
      req = sorted_keys(req),
      req_mount = sorted_keys(req.mount),
      req_token = sorted_keys(req.token),
    } }
  end,
})

e:path("globals", {
  fields = { names = "list" },
  write = function(req)
    local present = json.object()
    for _, n in ipairs(req.data.names or {}) do
      local v = global(n)
      if v ~= nil then present[n] = type(v) end
    end
    -- The handler req with declared fields: params and raw appear.
    return { data = { present = present, req = sorted_keys(req) } }
  end,
})

-- Which of names the object answers (a non-nil index that does not raise).
local function answers(obj, names)
  local out = json.array()
  for _, n in ipairs(names or {}) do
    local ok, v = pcall(function() return obj[n] end)
    if ok and v ~= nil then out[#out + 1] = n end
  end
  return out
end

e:path("probe", {
  fields = { objects = "map", jwks = "string", pem = "string",
             cert = "string" },
  write = function(req)
    local o, found, notes = req.data.objects or {}, json.object(), json.array()
    found.storage = answers(req.storage, o.storage)
    do
      local lock <close> = req.storage:lock("apidoc/probe")
      found.lock = answers(lock, o.lock)
    end
    local jose = coffer.jose
    if type(jose) == "table" and jose.parse_jwks and req.data.jwks then
      local ks, err = jose.parse_jwks(req.data.jwks)
      if ks ~= nil then
        found.keyset = answers(ks, o.keyset)
      else
        notes[#notes + 1] = "parse_jwks: " .. tostring(err)
      end
    end
    if type(jose) == "table" and jose.parse_pem and req.data.pem then
      local key, err = jose.parse_pem(req.data.pem)
      if key ~= nil then
        found.key = answers(key, o.key)
      else
        notes[#notes + 1] = "parse_pem: " .. tostring(err)
      end
    end
    local x509 = coffer.x509
    if type(x509) == "table" and x509.parse and req.data.cert then
      local info, err = x509.parse(req.data.cert)
      if info ~= nil then
        found.cert = sorted_keys(info)
      else
        notes[#notes + 1] = "x509.parse: " .. tostring(err)
      end
    end
    -- Last: abort() runs the secret's revoke in this same Lua state, and
    -- the request's storage handle does not work after it returns.
    local lease = req:pending_lease("probe", { aborted = true })
    found.lease = answers(lease, o.lease)
    lease:abort()
    return { data = { found = found, notes = notes } }
  end,
})

e:path("http", {
  fields = { url = "string" },
  write = function(req)
    local http = coffer.http
    if type(http) ~= "table" or http.request == nil then
      return { data = { error = "coffer.http.request is missing" } }
    end
    local resp, err = http.request { url = req.data.url }
    if resp == nil then
      return { data = { error = tostring(err) } }
    end
    return { data = { keys = sorted_keys(resp),
                      headers_type = type(resp.headers) } }
  end,
})

e:path("issue", {
  write = function(req)
    local lease = req:pending_lease("probe", { probe = true })
    return lease:issue({ probe = true }, { ttl = 600, renewable = true })
  end,
})

e:path("seen", {
  read = function(req)
    return { data = {
      revoke = req.storage:get_json("seen/revoke") or json.array(),
      renew = req.storage:get_json("seen/renew") or json.array(),
      periodic = req.storage:get_json("seen/periodic") or json.array(),
    } }
  end,
})

-- Compiles (does not run) each chunk: the document's Lua examples.
e:path("compile", {
  fields = { chunks = "list" },
  write = function(req)
    local errors = json.array()
    for i, text in ipairs(req.data.chunks or {}) do
      local f, err = load(text, "=example " .. i)
      if f == nil then errors[#errors + 1] = err end
    end
    return { data = { errors = errors } }
  end,
})

e:path("ping", {
  read = function() return { data = { pong = true } } end,
})

e:secret("probe", {
  revoke = function(lease)
    if lease.internal and lease.internal.probe then
      lease.storage:put_json("seen/revoke", sorted_keys(lease))
    end
    return true
  end,
  renew = function(lease)
    lease.storage:put_json("seen/renew", sorted_keys(lease))
    return true
  end,
})

e:periodic(function(ctx)
  ctx.storage:put_json("seen/periodic", sorted_keys(ctx))
end)

local a = coffer.auth { name = "apidoc_auth", help = "Login req introspection." }

a:login("login", {
  fields = { who = "string" },
  write = function(req)
    return {
      display_name = req.data.who or "probe",
      policies = {},
      metadata = {
        req = table.concat(sorted_keys(req), ","),
        has_token = tostring(req.token ~= nil),
      },
      ttl = 60,
    }
  end,
})

return e
