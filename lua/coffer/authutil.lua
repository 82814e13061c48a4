-- authutil.lua - what auth methods share: Vault's token_* fields, the
-- identity they turn into, password hashing and CIDR checks.
--
-- The token_* fields (VAULT_API 4.1/4.2) are stored on a user or role as
-- they were given, legacy names upgraded:
--   policies -> token_policies, ttl -> token_ttl, max_ttl -> token_max_ttl,
--   period -> token_period, bound_cidrs -> token_bound_cidrs
--
-- Passwords are stored as PBKDF2-HMAC-SHA256 (coffer.crypto.pbkdf2, in C)
-- with a random 16-byte salt and ITERATIONS rounds:
--   { algorithm = "pbkdf2-sha256", iterations = 100000, salt = <hex>,
--     hash = <hex> }
-- verify_password always runs one full hash, against a dummy record when
-- the user does not exist, so a failed login takes the same time whether
-- or not the name is known.

local json = coffer.json
local crypto = coffer.crypto

local M = {}

M.ITERATIONS = 100000

local TOKEN_FIELDS = {
  token_policies = "strings", policies = "strings",
  token_ttl = "duration", ttl = "duration",
  token_max_ttl = "duration", max_ttl = "duration",
  token_explicit_max_ttl = "duration",
  token_period = "duration", period = "duration",
  token_num_uses = "int",
  token_no_default_policy = "bool",
  token_bound_cidrs = "strings", bound_cidrs = "strings",
  token_type = "string",
}

local LEGACY = {
  policies = "token_policies", ttl = "token_ttl", max_ttl = "token_max_ttl",
  period = "token_period", bound_cidrs = "token_bound_cidrs",
}

-- The token fields plus extra (a new table for e:path{fields = ...}).
function M.token_fields(extra)
  local out = {}
  for k, v in pairs(TOKEN_FIELDS) do out[k] = v end
  for k, v in pairs(extra or {}) do out[k] = v end
  return out
end

local function lower_list(list)
  local out = json.array()
  for _, p in ipairs(list) do
    out[#out + 1] = p:lower()
  end
  return out
end

-- Copies the token fields present in data onto stored (legacy upgraded).
function M.apply_token_fields(stored, data)
  for k in pairs(TOKEN_FIELDS) do
    local v = data[k]
    if v ~= nil then
      local target = LEGACY[k] or k
      if LEGACY[k] and data[target] ~= nil then
        -- the token_* name wins when both are given
      else
        if target == "token_policies" then v = lower_list(v) end
        if target == "token_bound_cidrs" then
          for _, c in ipairs(v) do
            if coffer.net.cidr_match(c, "127.0.0.1") == nil and
               coffer.net.cidr_match(c, "::1") == nil then
              coffer.bad_request("invalid CIDR block: " .. c)
            end
          end
        end
        stored[target] = v
        if LEGACY[k] then stored["legacy_" .. k] = true end
      end
    end
  end
  if stored.token_num_uses ~= nil and stored.token_num_uses < 0 then
    coffer.bad_request("token_num_uses cannot be negative")
  end
  local t = stored.token_type
  if t ~= nil and t ~= "default" and t ~= "service" and
     t ~= "default-service" then
    coffer.bad_request("unsupported token type \"" .. t .. "\"")
  end
end

-- Adds the token fields of stored to out (a read response).
function M.read_token_fields(stored, out)
  out.token_policies = lower_list(stored.token_policies or {})
  out.token_bound_cidrs = json.array(stored.token_bound_cidrs or {})
  out.token_ttl = stored.token_ttl or 0
  out.token_max_ttl = stored.token_max_ttl or 0
  out.token_explicit_max_ttl = stored.token_explicit_max_ttl or 0
  out.token_period = stored.token_period or 0
  out.token_num_uses = stored.token_num_uses or 0
  out.token_no_default_policy = stored.token_no_default_policy or false
  out.token_type = stored.token_type or "default"
  for legacy, target in pairs(LEGACY) do
    if stored["legacy_" .. legacy] then
      out[legacy] = out[target]
    end
  end
  return out
end

-- The identity a login returns for a user or role (framework.lua).
function M.identity(stored, display_name, metadata)
  return {
    display_name = display_name,
    policies = stored.token_policies or {},
    no_default_policy = stored.token_no_default_policy or false,
    metadata = metadata or {},
    ttl = stored.token_ttl or 0,
    max_ttl = stored.token_max_ttl or 0,
    explicit_max_ttl = stored.token_explicit_max_ttl or 0,
    period = stored.token_period or 0,
    num_uses = stored.token_num_uses or 0,
    bound_cidrs = stored.token_bound_cidrs or {},
    renewable = true,
  }
end

-- True if addr is inside one of cidrs (an empty list allows everything).
function M.cidr_allows(cidrs, addr)
  if cidrs == nil or #cidrs == 0 then
    return true
  end
  for _, c in ipairs(cidrs) do
    if coffer.net.cidr_match(c, addr or "") then
      return true
    end
  end
  return false
end

-- A new password record (see the header).
function M.hash_password(password)
  local salt = crypto.random_base62(22)
  return {
    algorithm = "pbkdf2-sha256",
    iterations = M.ITERATIONS,
    salt = salt,
    hash = crypto.pbkdf2(password, salt, M.ITERATIONS),
  }
end

-- Made on first use in each state; never matches a real password.
local dummy

-- True if password matches record; hashes against a dummy when record is
-- nil, so that an unknown user costs the same time.
function M.verify_password(password, record)
  if record == nil then
    if dummy == nil then
      dummy = M.hash_password(crypto.random_base62(32))
    end
    record = dummy
  end
  local got = crypto.pbkdf2(password, record.salt, record.iterations)
  return crypto.equal(got, record.hash) and record ~= dummy
end

return M
