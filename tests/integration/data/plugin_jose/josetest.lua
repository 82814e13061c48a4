-- josetest.lua - a secret engine that exposes coffer.jose, coffer.x509 and
-- the coffer.crypto hash helpers to tests/integration/test_plugin_jose.py.
-- Library failures (nil, err) come back as 200 {ok = false, error = err}
-- so the test sees the exact message; misuse raises and gives a 500.
local e = coffer.engine { name = "josetest", help = "coffer.jose for tests" }

local function keys_of(d)
  if d.jwks ~= nil then
    local ks, err = coffer.jose.parse_jwks(d.jwks)
    if ks == nil then return nil, err end
    return ks
  end
  local list = {}
  for i, pem in ipairs(d.pems or {}) do
    local k, err = coffer.jose.parse_pem(pem)
    if k == nil then return nil, "pem " .. i .. ": " .. err end
    list[#list + 1] = k
  end
  if d.single then return list[1] end
  return list
end

local function fail(err) return { data = { ok = false, error = err } } end

e:path("verify", { write = function(req)
  local keys, err = keys_of(req.data)
  if keys == nil then return fail(err) end
  local claims, header = coffer.jose.verify(req.data.jwt, keys, req.data.opts)
  if claims == nil then return fail(header) end
  return { data = { ok = true, claims = claims, header = header } }
end })

e:path("decode", { write = function(req)
  local header, claims = coffer.jose.decode(req.data.jwt)
  if header == nil then return fail(claims) end
  return { data = { ok = true, header = header, claims = claims } }
end })

e:path("keyset", { write = function(req)
  local ks, err = coffer.jose.parse_jwks(req.data.jwks)
  if ks == nil then return fail(err) end
  return { data = { ok = true, kids = ks:kids(), count = #ks,
                    text = tostring(ks) } }
end })

e:path("x509", { write = function(req)
  local info, err = coffer.x509.parse(req.data.pem)
  if info == nil then return fail(err) end
  info.public_key = info.public_key and tostring(info.public_key) or nil
  return { data = { ok = true, info = info } }
end })

e:path("x509verify", { write = function(req)
  local ok, err = coffer.x509.verify(req.data.pem, req.data.opts)
  if not ok then return fail(err) end
  return { data = { ok = true } }
end })

e:path("crypto", { write = function(req)
  local d = req.data
  local b64 = coffer.jose.b64url_encode(d.data)
  local back, berr = coffer.jose.b64url_decode(d.b64 or b64)
  return { data = {
    sha256 = coffer.crypto.hex(coffer.crypto.hash("sha256", d.data)),
    sha512 = coffer.crypto.hex(coffer.crypto.hash("sha512", d.data)),
    hmac384 = coffer.crypto.hex(coffer.crypto.hmac("sha384", d.key, d.data)),
    b64url = b64, decoded = back, decode_error = berr,
  } }
end })

-- Misuse raises: the message is reported through pcall.
e:path("misuse", { write = function(req)
  local keys = keys_of(req.data)
  local ok, err = pcall(coffer.jose.verify, req.data.jwt or "a.b.c", keys,
                        req.data.opts)
  return { data = { raised = not ok, error = tostring(err) } }
end })

return e
