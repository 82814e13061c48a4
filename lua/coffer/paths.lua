-- paths.lua - compiling and matching engine path patterns.
--
-- A pattern is a path relative to the mount, with two kinds of capture:
--
--   roles/:name       ":name" captures one non-empty segment (no "/")
--   data/*path        "*path" captures the rest, "/" included, possibly
--                     empty; it must be the last thing in the pattern
--   roles/            everything else is literal (trailing "/" included)
--
-- Patterns compile once, at registration, into an anchored Lua pattern
-- with the literal characters escaped, so matching is one string.match.

local M = {}

local function escape(c)
  if c:match("%p") then
    return "%" .. c
  end
  return c
end

-- Compiles pattern; raises (at the caller's caller) on malformed input.
function M.compile(pattern)
  if type(pattern) ~= "string" then
    error("path pattern must be a string", 3)
  end
  local out, names = { "^" }, {}
  local i, n = 1, #pattern
  while i <= n do
    local c = pattern:sub(i, i)
    local at_segment = i == 1 or pattern:sub(i - 1, i - 1) == "/"
    if at_segment and (c == ":" or c == "*") then
      local name = pattern:match("^[%a_][%w_]*", i + 1)
      if name == nil then
        error("path pattern '" .. pattern .. "': capture without a name", 3)
      end
      i = i + 1 + #name
      if c == "*" then
        if i <= n then
          error("path pattern '" .. pattern .. "': '*" .. name ..
                "' must come last", 3)
        end
        out[#out + 1] = "(.*)"
      else
        out[#out + 1] = "([^/]+)"
      end
      names[#names + 1] = name
    else
      out[#out + 1] = escape(c)
      i = i + 1
    end
  end
  out[#out + 1] = "$"
  return { pattern = pattern, lua = table.concat(out), names = names }
end

-- Returns a table of captures (name -> string) or nil.
function M.match(compiled, path)
  local caps = table.pack(path:match(compiled.lua))
  if caps[1] == nil then
    return nil
  end
  local params = {}
  for i, name in ipairs(compiled.names) do
    params[name] = caps[i]
  end
  return params
end

return M
