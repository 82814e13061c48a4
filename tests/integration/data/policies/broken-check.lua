-- A check that raises: must deny (fail closed).
return {
  name = "broken-check",
  paths = { ["secret/data/broken/*"] = { capabilities = { "read" } } },
  check = function(req)
    return req.no_such_field.x
  end,
}
