-- Reads under secret/data/local/* only from 127.0.0.1 (the tests connect
-- from there, so this exercises the allow path of a check).
return {
  name = "local-only",
  paths = { ["secret/data/local/*"] = { capabilities = { "read" } } },
  check = function(req)
    if req.client_addr == "127.0.0.1" then
      return true
    end
    return false, "not from 127.0.0.1"
  end,
}
