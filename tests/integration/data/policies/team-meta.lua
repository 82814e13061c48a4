-- Reads under secret/data/team/* only for tokens whose metadata says
-- team=blue; also denies writes that carry data.danger.
return {
  name = "team-meta",
  paths = { ["secret/data/team/*"] = { capabilities = { "read", "create", "update" } } },
  check = function(req)
    local meta = req.token and req.token.meta or {}
    if meta.team ~= "blue" then
      return false, "team is not blue"
    end
    if req.operation ~= "read" and req.data.data and req.data.data.danger then
      return false, "no danger"
    end
    return true
  end,
}
