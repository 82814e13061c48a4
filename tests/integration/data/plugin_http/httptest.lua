-- httptest.lua - an engine whose paths call coffer.http, for
-- tests/integration/test_plugin_http.py. The request body is the request
-- table itself, so a test can send any option (valid or not).
--
--   write httptest/call   {url = ..., method = ..., ...}
--   write httptest/sugar  {fn = "get"|"post"|"put"|"delete", url = ...,
--                          body = ..., opts = {...}}
--
-- Both answer {ok = true, status, headers, body}, {ok = false, err}, or
-- {raised = message} when coffer.http raised (a programming error).
local e = coffer.engine { name = "httptest", help = "calls coffer.http" }

local function answer(ok, a, b)
  if not ok then
    return { data = { raised = tostring(a) } }
  end
  if a == nil then
    return { data = { ok = false, err = b } }
  end
  return { data = { ok = true, status = a.status, headers = a.headers,
                    body = a.body } }
end

e:path("call", {
  write = function(req)
    return answer(pcall(coffer.http.request, req.data))
  end,
})

e:path("sugar", {
  write = function(req)
    local d = req.data
    local fn = coffer.http[d.fn]
    if d.fn == "get" or d.fn == "delete" then
      return answer(pcall(fn, d.url, d.opts))
    end
    return answer(pcall(fn, d.url, d.body, d.opts))
  end,
})

e:path("ping", {
  read = function() return { data = { pong = true } } end,
})
