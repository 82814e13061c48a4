-- load_error.lua - parses but raises while registering.
local e = coffer.engine { name = "load_error" }
e:path("x", { read = "not a function" })
return e
