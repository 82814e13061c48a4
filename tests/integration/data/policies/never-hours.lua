-- Allowed only during a window that never comes (hour 25): denies by time.
return {
  name = "never-hours",
  paths = { ["secret/data/hours/*"] = { capabilities = { "read" } } },
  check = function(req)
    local hour = (req.time % 86400) // 3600
    return hour == 25, "outside the allowed hours"
  end,
}
