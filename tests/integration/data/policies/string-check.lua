-- A check returning a non-boolean: denies.
return {
  name = "string-check",
  paths = { ["secret/data/str/*"] = { capabilities = { "read" } } },
  check = function(req)
    return "yes"
  end,
}
