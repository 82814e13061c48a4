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

-- ============================================================ names ==

-- Vault's framework.GenericNameRegex, \w(([\w-.]+)?\w)?: one or more
-- ASCII letters, digits or '_', with '-' and '.' allowed inside. Names
-- that pass it are safe in storage keys, token display names, metadata
-- and (through username templates) generated database usernames.
function M.valid_name(name)
  return type(name) == "string" and
         (name:match("^[%w_]$") ~= nil or
          name:match("^[%w_][%w_%-%.]*[%w_]$") ~= nil)
end

-- name, or Vault's answer for a path whose name segment does not match
-- the pattern: 404 "unsupported path" (raises).
function M.check_name(name)
  if not M.valid_name(name) then
    coffer.unsupported_path()
  end
  return name
end

-- ============================================================ CIDRs ==

local function is_v6(addr) return addr:find(":", 1, true) ~= nil end

-- addr, bits of a "a.b.c.d/n" or "x::y/n" block, or nil when it is not
-- one (Go's net.ParseCIDR, which Vault uses, wants the "/n").
local function parse_cidr(block)
  local addr, bits = block:match("^%s*([^/%s]+)/(%d+)%s*$")
  if addr == nil then return nil end
  if coffer.net.cidr_match(addr .. "/" .. bits, "127.0.0.1") == nil and
     coffer.net.cidr_match(addr .. "/" .. bits, "::1") == nil then
    return nil
  end
  return addr, tonumber(bits)
end

-- Vault's cidrutil.ValidateCIDRListSlice: nil, or Go's error text for
-- the first block that is not a CIDR block.
function M.cidr_list_error(blocks)
  for _, b in ipairs(blocks) do
    if parse_cidr(b) == nil then
      return "invalid CIDR address: " .. b
    end
  end
  return nil
end

local function zero_addr(addr)
  return addr == "0.0.0.0" or addr:match("^[0:]+$") ~= nil
end

-- Vault's cidrutil.Subset: is inner inside outer? true/false, or nil and
-- an error. Blocks of different families are never subsets here (Go
-- would compare an IPv4-mapped IPv6 block's /120 with an IPv4 /8).
local function subset(outer, inner)
  local oaddr, obits = parse_cidr(outer)
  if oaddr == nil then
    return nil, "failed to parse the CIDR to be checked against: " ..
                "invalid CIDR address: " .. outer
  end
  if obits == 0 and not zero_addr(oaddr) then
    return nil, "CIDR to be checked against is not in its canonical form"
  end
  local iaddr, ibits = parse_cidr(inner)
  if iaddr == nil then
    return nil, "failed to parse the CIDR that needs to be checked: " ..
                "invalid CIDR address: " .. inner
  end
  if ibits == 0 and not zero_addr(iaddr) then
    return nil, "CIDR that needs to be checked is not in its canonical form"
  end
  if is_v6(oaddr) ~= is_v6(iaddr) or ibits < obits then
    return false
  end
  -- With ibits >= obits, every address of inner shares outer's first
  -- obits bits with iaddr, so one membership test decides.
  return coffer.net.cidr_match(outer, iaddr) == true
end

-- Go's %q of a []string: ["a" "b"].
local function go_quote_list(list)
  local out = {}
  for i, v in ipairs(list) do
    out[i] = string.format("%q", v)
  end
  return "[" .. table.concat(out, " ") .. "]"
end

-- Vault's approle verifyCIDRRoleSecretIDSubset: every block of inner
-- must lie in one of outer's (an empty outer allows anything). Raises
-- Vault's 500 otherwise. Bare addresses on the role count as /32 (/128).
function M.check_cidr_subset(inner, outer)
  if #inner == 0 or #(outer or {}) == 0 then return end
  local role = {}
  for i, b in ipairs(outer) do
    if b:find("/", 1, true) == nil then
      b = b .. (is_v6(b) and "/128" or "/32")
    end
    role[i] = b
  end
  local err
  for _, want in ipairs(inner) do
    local inside = false
    for _, have in ipairs(role) do
      local ok, e = subset(have, want)
      if ok == nil then err = e break end
      if ok then inside = true break end
    end
    if err ~= nil or not inside then
      -- Go prints a nil %w as "%!w(<nil>)"; Vault's text carries it.
      coffer.internal("failed to verify subset relationship between CIDR " ..
        "blocks on the role " .. go_quote_list(role) .. " and CIDR " ..
        "blocks on the secret ID " .. go_quote_list(inner) .. ": " ..
        (err or "%!w(<nil>)"))
    end
  end
end

-- ==================================================== salted keys ==
--
-- Storage keys are not encrypted by the barrier (only values are), so a
-- key derived from a credential must not let a backup's reader test
-- guesses offline. Such keys are HMAC-SHA256 under a random per-mount
-- salt that lives in a value (encrypted) of the mount's own storage:
--
--   salt   { salt = <32 random base62 chars>, layout = <n> }
--
-- `layout` counts the storage migrations the method has run on this
-- mount (see M.salt).

local SALT_KEY = "salt"

-- The mount's salt, created on first use. migrate(req, salt), when
-- given, moves entries of an older key layout to the salted one; it
-- runs once per mount, under the salt's lock (so every request of the
-- method waits for it), and must be safe to run again after a crash
-- part-way (the layout number is written only when it has finished).
-- Call it before taking any other storage lock (one lock at a time).
function M.salt(req, layout, migrate)
  layout = layout or 1
  local rec = req.storage:get_json(SALT_KEY)
  if rec ~= nil and (rec.layout or 1) >= layout then
    return rec.salt
  end
  local lock <close> = req.storage:lock(SALT_KEY)
  rec = req.storage:get_json(SALT_KEY)
  if rec == nil then
    rec = { salt = crypto.random_base62(32), layout = 1 }
    req.storage:put_json(SALT_KEY, rec)
  end
  if (rec.layout or 1) < layout then
    if migrate ~= nil then migrate(req, rec.salt) end
    rec.layout = layout
    req.storage:put_json(SALT_KEY, rec)
  end
  return rec.salt
end

-- The salted key form of a credential: hex HMAC-SHA256(salt, value).
function M.salted(salt, value)
  return crypto.hmac_sha256_hex(salt, value)
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

-- glob(pattern, s): Vault's bound-claim and service-account globs
-- (go-glob): '*' matches any run of characters, nothing else is special.
function M.glob(pat, s)
  if not pat:find("*", 1, true) then return pat == s end
  local parts = {}
  for p in (pat .. "*"):gmatch("(.-)%*") do parts[#parts + 1] = p end
  local first, last = parts[1], parts[#parts]
  if s:sub(1, #first) ~= first then return false end
  local pos = #first + 1
  for i = 2, #parts - 1 do
    local _, stop = s:find(parts[i], pos, true)
    if stop == nil then return false end
    pos = stop + 1
  end
  return #s - #last + 1 >= pos and s:sub(#s - #last + 1) == last
end

return M
