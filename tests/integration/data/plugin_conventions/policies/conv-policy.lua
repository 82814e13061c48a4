-- Registered with coffer.policy; its check sees the handler's fields.
coffer.policy {
  name = "conv-policy",
  paths = { ["conv/echo/*"] = { capabilities = { "read" } } },
  check = function(req)
    local tail = req.data.expect_tail
    if tail ~= nil and req.path ~= "echo/" .. tail then
      return false, "path mismatch"
    end
    return req.full_path == req.mount_path .. req.path and
           math.type(req.time) == "integer" and req.operation == "read" and
           req.token ~= nil and req.id ~= ""
  end,
}
