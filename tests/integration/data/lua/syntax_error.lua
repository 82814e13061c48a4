-- syntax_error.lua - does not parse; the server must refuse to start.
local e = coffer.engine { name = "syntax_error" }
e:path("x", { read = function( return 1 end })
return e
