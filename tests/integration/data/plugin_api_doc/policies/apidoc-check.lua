-- A Lua policy for tests/integration/test_plugin_api_doc.py: its check
-- logs the keys of the real policy `req` (and of req.token) so the test
-- can compare them with docs/PLUGIN_API.md, and allows the request.
local function keys(t)
  local out = {}
  for k in pairs(t or {}) do out[#out + 1] = tostring(k) end
  table.sort(out)
  return table.concat(out, ",")
end

coffer.policy {
  name = "apidoc-check",
  paths = { ["apidoc/*"] = { capabilities = { "read" } } },
  check = function(req)
    coffer.log.info("apidoc-policy-req=[" .. keys(req) .. "] token=[" ..
                    keys(req.token) .. "]")
    return true
  end,
}
