-- template.lua - the subset of Go's text/template that Vault's
-- username_template uses, with Vault's template functions.
--
--   {{ printf "v-%s-%s" (.DisplayName | truncate 8) (random 20) | truncate 63 }}
--
-- Supported: text and {{ actions }} (with {{- and -}} trimming), pipelines
-- joined by "|" (the left value becomes the last argument on the right),
-- parenthesised sub-pipelines, .Field lookups, "strings" with Go escapes,
-- integers, and these functions:
--   random N, truncate N, truncate_sha256 N, uppercase, lowercase,
--   replace OLD NEW, sha256, base64, unix_time, unix_time_millis,
--   timestamp LAYOUT, uuid, printf FORMAT ARGS...
--
-- compile(text) parses once and returns a template, or nil and a reason;
-- t:render(vars) returns the string, or nil and a reason.

local M = {}

local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

-- ========================================================== functions ==

local function random_string(n)
  return coffer.crypto.random_string(n, ALNUM)
end

local base64 = coffer.crypto.base64_encode

-- Go's reference-time layout, for the parts people use.
local function go_timestamp(layout, t)
  local map = {
    { "2006", "%Y" }, { "01", "%m" }, { "02", "%d" }, { "15", "%H" },
    { "04", "%M" }, { "05", "%S" }, { "-0700", "+0000" }, { "Z07:00", "Z" },
    { "MST", "UTC" },
  }
  -- A '%' of the layout is literal text to strftime; the replacements
  -- are escaped for gsub, whose replacement strings treat '%' specially.
  local out = layout:gsub("%%", "%%%%")
  for _, p in ipairs(map) do
    out = out:gsub(p[1]:gsub("%p", "%%%0"), (p[2]:gsub("%%", "%%%%")))
  end
  local ok, s = pcall(coffer.time.format_utc, out, t)
  if not ok then
    error({ template = "timestamp: unusable layout " .. string.format("%q", layout) })
  end
  return s
end

local function want_int(name, v)
  local n = math.tointeger(tonumber(v))
  if n == nil then
    error({ template = name .. ": expected an integer, got " .. tostring(v) })
  end
  return n
end

local function sprintf(fmt, ...)
  if type(fmt) ~= "string" then
    error({ template = "printf: format must be a string" })
  end
  local args, i = { ... }, 0
  return (fmt:gsub("%%([%%sdvq])", function(verb)
    if verb == "%" then return "%" end
    i = i + 1
    local v = args[i]
    if verb == "q" then return string.format("%q", tostring(v)) end
    return tostring(v)
  end))
end

local funcs = {
  random = function(n)
    n = want_int("random", n)
    if n < 0 or n > 4096 then
      error({ template = "random: length must be between 0 and 4096, got " .. n })
    end
    return random_string(n)
  end,
  truncate = function(n, s)
    n = want_int("truncate", n)
    s = tostring(s)
    if #s > n then return s:sub(1, n) end
    return s
  end,
  truncate_sha256 = function(n, s)
    n = want_int("truncate_sha256", n)
    s = tostring(s)
    if #s <= n then return s end
    if n <= 8 then
      error({ template = "truncate_sha256: length must be more than 8" })
    end
    return s:sub(1, n - 8) .. coffer.crypto.sha256_hex(s):sub(1, 8)
  end,
  uppercase = function(s) return tostring(s):upper() end,
  lowercase = function(s) return tostring(s):lower() end,
  replace = function(old, new, s)
    old, new, s = tostring(old), tostring(new), tostring(s)
    if old == "" then return s end
    return (s:gsub(old:gsub("%p", "%%%0"), (new:gsub("%%", "%%%%"))))
  end,
  sha256 = function(s) return coffer.crypto.sha256_hex(tostring(s)) end,
  base64 = function(s) return base64(tostring(s)) end,
  unix_time = function() return tostring(math.floor(coffer.time.now())) end,
  unix_time_millis = function()
    return tostring(math.floor(coffer.time.now() * 1000))
  end,
  timestamp = function(layout) return go_timestamp(tostring(layout)) end,
  uuid = function() return coffer.crypto.uuid() end,
  printf = sprintf,
}

-- ============================================================= parsing ==

local ESC = { n = "\n", t = "\t", r = "\r", ['"'] = '"', ["\\"] = "\\" }

-- Tokenises the inside of one action.
local function lex(src)
  local toks, i, n = {}, 1, #src
  while i <= n do
    local c = src:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c == "(" or c == ")" or c == "|" then
      toks[#toks + 1] = { kind = c }
      i = i + 1
    elseif c == '"' then
      local buf, j = {}, i + 1
      while true do
        local d = src:sub(j, j)
        if d == "" then return nil, "unterminated quoted string" end
        if d == '"' then break end
        if d == "\\" then
          local e = ESC[src:sub(j + 1, j + 1)]
          if e == nil then return nil, "invalid escape in string" end
          buf[#buf + 1] = e
          j = j + 2
        else
          buf[#buf + 1] = d
          j = j + 1
        end
      end
      toks[#toks + 1] = { kind = "str", value = table.concat(buf) }
      i = j + 1
    elseif c == "." then
      local name = src:match("^%.([%a_][%w_]*)", i)
      if name == nil then return nil, "bad field reference" end
      toks[#toks + 1] = { kind = "field", value = name }
      i = i + 1 + #name
    elseif c:match("[%d%-]") then
      local num = src:match("^%-?%d+", i)
      if num == nil then return nil, "bad number" end
      toks[#toks + 1] = { kind = "num", value = math.tointeger(tonumber(num)) }
      i = i + #num
    elseif c:match("[%a_]") then
      local name = src:match("^[%a_][%w_]*", i)
      toks[#toks + 1] = { kind = "ident", value = name }
      i = i + #name
    else
      return nil, "unexpected character " .. string.format("%q", c)
    end
  end
  return toks
end

local parse_pipeline

-- operand: string, number, field, ( pipeline ), or a bare function name
local function parse_operand(toks, pos)
  local t = toks[pos]
  if t == nil then return nil, pos, "missing value" end
  if t.kind == "(" then
    local node, npos, err = parse_pipeline(toks, pos + 1)
    if node == nil then return nil, npos, err end
    if toks[npos] == nil or toks[npos].kind ~= ")" then
      return nil, npos, "unclosed left paren"
    end
    return node, npos + 1
  end
  if t.kind == "str" or t.kind == "num" or t.kind == "field" then
    return t, pos + 1
  end
  if t.kind == "ident" then
    if funcs[t.value] == nil then
      return nil, pos, 'function "' .. t.value .. '" not defined'
    end
    return { kind = "call", name = t.value, args = {} }, pos + 1
  end
  return nil, pos, "unexpected " .. t.kind
end

-- command: a function call with arguments, or a single operand
local function parse_command(toks, pos)
  local head, npos, err = parse_operand(toks, pos)
  if head == nil then return nil, npos, err end
  if head.kind ~= "call" or toks[pos].kind == "(" then
    return head, npos
  end
  while toks[npos] and toks[npos].kind ~= "|" and toks[npos].kind ~= ")" do
    local arg
    arg, npos, err = parse_operand(toks, npos)
    if arg == nil then return nil, npos, err end
    head.args[#head.args + 1] = arg
  end
  return head, npos
end

parse_pipeline = function(toks, pos)
  local cmds = {}
  while true do
    local cmd, npos, err = parse_command(toks, pos)
    if cmd == nil then return nil, npos, err end
    cmds[#cmds + 1] = cmd
    pos = npos
    if toks[pos] == nil or toks[pos].kind ~= "|" then break end
    pos = pos + 1
  end
  for i = 2, #cmds do
    if cmds[i].kind ~= "call" then
      return nil, pos, "non-function in pipeline"
    end
  end
  return { kind = "pipe", cmds = cmds }, pos
end

-- ========================================================== evaluation ==

local eval

local function call(node, vars, piped)
  local args = {}
  for i, a in ipairs(node.args) do
    args[i] = eval(a, vars)
  end
  if piped ~= nil then
    args[#args + 1] = piped
  end
  return funcs[node.name](table.unpack(args))
end

eval = function(node, vars)
  if node.kind == "str" or node.kind == "num" then
    return node.value
  elseif node.kind == "field" then
    local v = vars[node.value]
    if v == nil then
      error({ template = "can't evaluate field " .. node.value })
    end
    return v
  elseif node.kind == "call" then
    return call(node, vars, nil)
  end
  local v = eval(node.cmds[1], vars)
  for i = 2, #node.cmds do
    v = call(node.cmds[i], vars, v)
  end
  return v
end

local Template = {}
Template.__index = Template

function M.compile(text)
  if type(text) ~= "string" then
    return nil, "template must be a string"
  end
  local parts, pos = {}, 1
  while true do
    local s, e = text:find("{{", pos, true)
    if s == nil then
      parts[#parts + 1] = text:sub(pos)
      break
    end
    local lit = text:sub(pos, s - 1)
    local close = text:find("}}", e + 1, true)
    if close == nil then
      return nil, "unclosed action"
    end
    local inner = text:sub(e + 1, close - 1)
    if inner:sub(1, 2) == "- " then
      lit = lit:gsub("%s+$", "")
      inner = inner:sub(3)
    end
    local trim_right = inner:sub(-2) == " -"
    if trim_right then inner = inner:sub(1, -3) end
    parts[#parts + 1] = lit
    local toks, lerr = lex(inner)
    if toks == nil then return nil, lerr end
    if #toks == 0 then return nil, "missing value for command" end
    local node, npos, perr = parse_pipeline(toks, 1)
    if node == nil then return nil, perr end
    if npos <= #toks then return nil, "unexpected " .. toks[npos].kind end
    parts[#parts + 1] = node
    pos = close + 2
    if trim_right then
      pos = (text:find("%S", pos)) or (#text + 1)
    end
  end
  return setmetatable({ parts = parts }, Template)
end

function Template:render(vars)
  local out = {}
  local ok, err = pcall(function()
    for _, p in ipairs(self.parts) do
      out[#out + 1] = type(p) == "string" and p or tostring(eval(p, vars))
    end
  end)
  if not ok then
    if type(err) == "table" and err.template then
      return nil, err.template
    end
    error(err, 0)
  end
  return table.concat(out)
end

M.random_string = random_string
M.timestamp = go_timestamp

return M
