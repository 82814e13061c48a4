-- fields.lua - field types: turning client input into typed values.
--
-- The three target clients send the same field as different JSON types
-- (300, "300", "5m"), so every declared field is converted the way Vault's
-- framework does it (VAULT_API.md 1.5). A converter returns the value, or
-- nil and a reason; the framework turns a reason into Vault's
--   Field validation failed: error converting input <v> for field "<f>": <reason>
--
--   string    string; numbers and booleans are converted ("1"/"0")
--   int       integer; integral floats, digit strings, booleans
--   bool      boolean; "true"/"1"/"t"..., numbers (non-zero = true)
--   duration  whole seconds: integers, digit strings, "90s", "1h30m", "7d"
--   strings   comma-separated string or JSON list -> list, entries trimmed
--   list      JSON list, or a single value -> one-element list (no split)
--   ints      comma-separated string or JSON list -> list of integers
--   map       JSON object
--   kvpairs   object of strings, or a list of "k=v" strings
--   any       passed through untouched
--
-- JSON null means "not supplied" and never reaches a converter.
--
-- A number literal that Lua cannot hold exactly ("1.0", "1e3", 20 digits)
-- arrives as a coffer.json.number (lua_api.h). Vault sees the same input
-- as a json.Number, i.e. its literal text, so the converters treat it as
-- that text: string gives the literal, int and bool refuse it the way
-- strconv does, duration parses the literal as a duration string.

local json = coffer.json
local null = json.null

local M = {}

-- A coffer.json.number (never a plain Lua number).
local function is_bignum(v)
  return type(v) == "userdata" and json.is_number(v)
end

local function is_list(v)
  if json.is_array(v) then
    return true
  end
  local n = #v
  if n == 0 then
    return false
  end
  local count = 0
  for _ in pairs(v) do
    count = count + 1
  end
  return count == n
end

-- Go's %v rendering of a value, for error messages.
local function govalue(v)
  if v == nil or v == null then
    return "<nil>"
  end
  local t = type(v)
  if t ~= "table" then
    return tostring(v)
  end
  local parts = {}
  if is_list(v) or next(v) == nil and json.is_array(v) then
    for i = 1, #v do
      parts[i] = govalue(v[i])
    end
    return "[" .. table.concat(parts, " ") .. "]"
  end
  local keys = {}
  for k in pairs(v) do
    keys[#keys + 1] = tostring(k)
  end
  table.sort(keys)
  for i, k in ipairs(keys) do
    parts[i] = k .. ":" .. govalue(v[k])
  end
  return "map[" .. table.concat(parts, " ") .. "]"
end
M.govalue = govalue

-- Go's name for the dynamic type of a decoded JSON value.
local function gotype(v)
  if is_bignum(v) then
    return "json.Number"
  end
  local t = type(v)
  if t == "table" then
    return is_list(v) and "[]interface {}" or "map[string]interface {}"
  end
  return ({ string = "string", number = "float64", boolean = "bool" })[t]
    or t
end

local function unconvertible(want, v)
  return nil, string.format(
    "'' expected type '%s', got unconvertible type '%s', value: '%s'",
    want, gotype(v), govalue(v))
end

local function number_string(v)
  if math.type(v) == "integer" then
    return tostring(v)
  end
  local s = string.format("%.17g", v)
  if tonumber(string.format("%.15g", v)) == v then
    s = string.format("%.15g", v)
  end
  return s
end

local conv = {}

function conv.any(v)
  return v
end

function conv.string(v)
  local t = type(v)
  if t == "string" then
    return v
  elseif is_bignum(v) then
    return tostring(v)
  elseif t == "number" then
    return number_string(v)
  elseif t == "boolean" then
    return v and "1" or "0"
  end
  return unconvertible("string", v)
end

function conv.int(v)
  local t = type(v)
  if t == "number" then
    local i = math.tointeger(v)
    if i == nil then
      return nil, string.format(
        'strconv.ParseInt: parsing "%s": invalid syntax', number_string(v))
    end
    return i
  elseif is_bignum(v) then
    -- json.Number.Int64: strconv.ParseInt of the literal
    local lit = tostring(v)
    return nil, string.format('strconv.ParseInt: parsing "%s": %s', lit,
      lit:find("^-?%d+$") and "value out of range" or "invalid syntax")
  elseif t == "boolean" then
    return v and 1 or 0
  elseif t == "string" then
    if v == "" then
      return 0
    end
    local i = v:match("^[+-]?%d+$") and math.tointeger(tonumber(v))
    if i == nil then
      return nil, string.format(
        "cannot parse '' as int: strconv.ParseInt: parsing %q: invalid syntax",
        v)
    end
    return i
  end
  return unconvertible("int", v)
end

local bools = {
  ["1"] = true, t = true, T = true, TRUE = true, ["true"] = true,
  True = true, ["0"] = false, f = false, F = false, FALSE = false,
  ["false"] = false, False = false, [""] = false,
}

function conv.bool(v)
  local t = type(v)
  if t == "boolean" then
    return v
  elseif t == "number" then
    return v ~= 0
  elseif is_bignum(v) then
    -- never "0" or "1", which decode as integers
    return nil, string.format(
      "cannot parse '' as bool: strconv.ParseBool: parsing %q: invalid syntax",
      tostring(v))
  elseif t == "string" then
    local b = bools[v]
    if b == nil then
      return nil, string.format(
        "cannot parse '' as bool: strconv.ParseBool: parsing %q: invalid syntax",
        v)
    end
    return b
  end
  return unconvertible("bool", v)
end

function conv.duration(v)
  if is_bignum(v) then
    -- Vault's ParseDurationSecond reads a json.Number as its text
    v = tostring(v)
  end
  local t = type(v)
  if t ~= "number" and t ~= "string" then
    return nil, "could not parse duration from input"
  end
  return coffer.time.parse_duration(v)
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Each element of a JSON list as a string (weakly converted).
local function list_of_strings(v, split)
  local out = json.array()
  if type(v) == "string" then
    if v == "" then
      return out
    end
    if not split then
      out[1] = v
      return out
    end
    for part in (v .. ","):gmatch("([^,]*),") do
      out[#out + 1] = trim(part)
    end
    return out
  end
  if type(v) ~= "table" then
    local s, why = conv.string(v)
    if s == nil then
      return nil, why
    end
    out[1] = s
    return out
  end
  if not is_list(v) and next(v) ~= nil then
    return unconvertible("[]string", v)
  end
  for i = 1, #v do
    local s, why = conv.string(v[i])
    if s == nil then
      return nil, why
    end
    out[i] = split and trim(s) or s
  end
  return out
end

function conv.strings(v)
  return list_of_strings(v, true)
end

function conv.list(v)
  return list_of_strings(v, false)
end

function conv.ints(v)
  local strs, why = list_of_strings(v, true)
  if strs == nil then
    return nil, why
  end
  local out = json.array()
  for i, s in ipairs(strs) do
    local n, err = conv.int(s)
    if n == nil then
      return nil, err
    end
    out[i] = n
  end
  return out
end

function conv.map(v)
  if type(v) ~= "table" or (is_list(v) or json.is_array(v)) then
    local kind = type(v) == "table" and "slice" or gotype(v)
    return nil, string.format("'' expected a map, got '%s'", kind)
  end
  return v
end

function conv.kvpairs(v)
  local out = {}
  if type(v) == "table" and (is_list(v) or json.is_array(v)) then
    for _, item in ipairs(v) do
      local k, val = tostring(item):match("^([^=]*)=(.*)$")
      if k == nil then
        return nil, string.format("invalid key value pair %q", tostring(item))
      end
      out[k] = val
    end
    return out
  end
  local m, why = conv.map(v)
  if m == nil then
    return nil, why
  end
  for k, val in pairs(m) do
    local s, err = conv.string(val)
    if s == nil then
      return nil, err
    end
    out[k] = s
  end
  return out
end

M.types = conv

-- Converts v to type name; returns value or nil, reason.
function M.convert(typename, v)
  return conv[typename](v)
end

local spec_keys = {
  type = true, default = true, description = true, required = true,
  validate = true, sensitive = true,
}

-- Normalises a fields table ({name = "type" | {type = ...}}). Raises on
-- unknown types or options, pointing at the registering script.
function M.compile(fields, level)
  local out = {}
  for name, f in pairs(fields) do
    if type(f) == "string" then
      f = { type = f }
    end
    if type(name) ~= "string" or type(f) ~= "table" then
      error("field '" .. tostring(name) .. "' must be a type name or a table",
            level)
    end
    for k in pairs(f) do
      if not spec_keys[k] then
        error("field '" .. name .. "': unknown option '" .. tostring(k) .. "'",
              level)
      end
    end
    if conv[f.type] == nil then
      error("field '" .. name .. "': unknown type '" .. tostring(f.type) ..
            "'", level)
    end
    if f.validate ~= nil and type(f.validate) ~= "function" then
      error("field '" .. name .. "': validate must be a function", level)
    end
    out[name] = {
      type = f.type, default = f.default, description = f.description or "",
      required = f.required == true, validate = f.validate,
    }
  end
  return out
end

local function copy(v)
  if type(v) ~= "table" then
    return v
  end
  local t = {}
  for k, x in pairs(v) do
    t[k] = copy(x)
  end
  return setmetatable(t, getmetatable(v))
end

local function field_error(name, v, reason)
  coffer.bad_request(string.format(
    'Field validation failed: error converting input %s for field "%s": %s',
    govalue(v), name, reason))
end

-- Converts raw request data against compiled fields. Path captures win
-- over body values of the same name. Returns data, ignored (sorted list
-- of unknown keys), replaced (sorted list of overridden keys).
function M.parse(fields, raw, params)
  local data, ignored, replaced = {}, {}, {}
  for name, f in pairs(fields) do
    local v, from_path = raw[name], params[name] ~= nil
    if from_path then
      if v ~= nil and v ~= null then
        replaced[#replaced + 1] = name
      end
      v = params[name]
    end
    if v ~= nil and v ~= null then
      local cv, reason = conv[f.type](v)
      if cv == nil then
        field_error(name, v, reason)
      end
      if f.validate then
        local msg = f.validate(cv)
        if msg ~= nil then
          coffer.bad_request(msg)
        end
      end
      data[name] = cv
    elseif f.required then
      coffer.bad_request("missing " .. name)
    elseif f.default ~= nil then
      data[name] = copy(f.default)
    end
  end
  for k in pairs(raw) do
    if fields[k] == nil and params[k] == nil then
      ignored[#ignored + 1] = tostring(k)
    end
  end
  table.sort(ignored)
  table.sort(replaced)
  return data, ignored, replaced
end

return M
