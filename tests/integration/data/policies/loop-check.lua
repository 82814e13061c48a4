-- A check that never ends, and tries to swallow the budget error: denies.
return {
  name = "loop-check",
  paths = { ["secret/data/loop/*"] = { capabilities = { "read" } } },
  check = function(req)
    while true do
      pcall(function() while true do end end)
    end
  end,
}
