-- jwt.lua - JWT/OIDC auth with Vault's API (mount types "jwt" and "oidc").
--
-- A workload presents a JWT its platform signed (a CI job, a cloud VM, a
-- pod); the mount checks it against the issuer's keys and a role:
--
--   auth/<mount>/config      one key source: jwt_validation_pubkeys (PEM),
--                            jwks_url (+ jwks_ca_pem), or oidc_discovery_url
--                            (+ oidc_discovery_ca_pem; its jwks_uri is used);
--                            bound_issuer, default_role, jwt_supported_algs
--   auth/<mount>/role/:name  what a token must claim (bound_audiences,
--                            bound_subject, bound_claims) and what it becomes
--                            (user_claim, claim_mappings, token_* fields)
--   auth/<mount>/login       { role, jwt }
--
-- Storage (JSON under the mount's view): config, role/<name>.
--
-- Remote keys come through coffer.http (TLS verified, against the
-- config's CA PEM when set) and are cached per Lua state and mount, keyed
-- by the config's key source, for KEYS_MAX_AGE. An unknown kid triggers
-- one refetch, and at most one per REFETCH_EVERY seconds per mount, so
-- tokens with random kids cannot turn logins into fetches.
--
-- Checks follow Vault (hashicorp/cap) and its texts: signature and alg,
-- then iss, sub, aud, the times with the role's leeways, then the user
-- claim, claim_mappings, groups_claim and bound_claims. Claim names that
-- start with "/" are JSON pointers. The browser OIDC flow (oidc/auth_url,
-- oidc/callback) is not provided: both answer 400.

local au = require("authutil")
local json, jose, http, time = coffer.json, coffer.jose, coffer.http, coffer.time

local ALGS = { "RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
               "PS256", "PS384", "PS512", "EdDSA" }
local KEYS_MAX_AGE, REFETCH_EVERY, FETCH_TIMEOUT = 600, 5, 5

local function set_of(list)
  local s = {}
  for _, v in ipairs(list or {}) do s[v] = true end
  return s
end
local ALG_SET = set_of(ALGS)

local function q(s) return string.format("%q", tostring(s)) end
local function empty(s) return s == nil or s == "" end
-- A URL as messages show it: no query or fragment (they may hold secrets).
local function shown(url) return (url:gsub("[?#].*$", "")) end

local function num(v)
  if type(v) == "number" then return v end
  if json.is_number(v) then return json.tonumber(v) end
end

-- Vault's TypeSignedDurationSecond: a duration that may be negative.
local function signed_duration(name, v)
  if math.type(v) == "integer" then return v end
  local neg = type(v) == "string" and v:sub(1, 1) == "-"
  local secs, why = time.parse_duration(neg and v:sub(2) or v)
  if secs == nil then
    coffer.bad_request(string.format('Field validation failed: error ' ..
      'converting input %s for field "%s": %s', tostring(v), name, why))
  end
  return neg and -secs or secs
end

-- A claim by name, or by JSON pointer ("/a/b") when it starts with "/".
local function claim(claims, name)
  local v = claims[name]
  if name:sub(1, 1) == "/" then
    v = claims
    for seg in (name:sub(2) .. "/"):gmatch("([^/]*)/") do
      seg = seg:gsub("~1", "/"):gsub("~0", "~")
      if type(v) ~= "table" then return nil end
      v = json.is_array(v) and v[(math.tointeger(tonumber(seg)) or -1) + 1]
          or v[seg]
    end
  end
  if v ~= json.null then return v end
end

-- A string, bool, number or list as a list, numbers as integer text
-- (Vault's normalizeList over json.Number); nil for anything else.
local function as_list(v)
  if type(v) == "string" or type(v) == "boolean" then return { v } end
  if num(v) then return { tostring(math.floor(num(v))) } end
  if type(v) ~= "table" or not (json.is_array(v) or #v > 0 or next(v) == nil) then
    return nil
  end
  local out = {}
  for i, x in ipairs(v) do out[i] = num(x) and tostring(math.floor(num(x))) or x end
  return out
end

-- The first CERTIFICATE block of a PEM bundle, or nil.
local function first_cert(pem)
  return pem:match("%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-.-" ..
                   "%-%-%-%-%-END CERTIFICATE%-%-%-%-%-")
end

-- ============================================================= keys ==

-- GET url -> decoded JSON object | nil, reason.
local function get_json(url, ca)
  local resp, err = http.request { url = url, timeout = FETCH_TIMEOUT,
    ca_pem = not empty(ca) and ca or nil, connect_timeout = 2,
    headers = { Accept = "application/json" } }
  if resp == nil then return nil, err end
  if resp.status ~= 200 then
    return nil, "GET " .. shown(url) .. ": HTTP status " .. resp.status
  end
  local doc = json.decode(resp.body)
  if type(doc) ~= "table" then
    return nil, "GET " .. shown(url) .. ": the answer is not a JSON object"
  end
  return doc
end

-- The keyset of a jwks_url or oidc_discovery_url config, fetched now.
local function fetch_keys(cfg)
  local url, ca = cfg.jwks_url, cfg.jwks_ca_pem
  if not empty(cfg.oidc_discovery_url) then
    local base = cfg.oidc_discovery_url
    ca = cfg.oidc_discovery_ca_pem
    local doc, err = get_json(base:gsub("/$", "") ..
                              "/.well-known/openid-configuration", ca)
    if doc == nil then return nil, err end
    if doc.issuer ~= base then -- cap's rule: the document names its URL
      return nil, "issuer did not match the returned issuer, expected " ..
                  q(base) .. " got " .. q(doc.issuer or "")
    end
    if type(doc.jwks_uri) ~= "string" then
      return nil, "the discovery document has no jwks_uri"
    end
    url = doc.jwks_uri
  end
  local set, err = get_json(url, ca)
  if set == nil then return nil, err end
  return jose.parse_jwks(set)
end

local cache = {} -- mount uuid -> { src, keys, at, refreshed, failed, err }

local function entry_for(uuid, cfg)
  local src = table.concat({ cfg.jwks_url, cfg.jwks_ca_pem,
    cfg.oidc_discovery_url, cfg.oidc_discovery_ca_pem,
    table.concat(cfg.jwt_validation_pubkeys, "\0") }, "\1")
  local c = cache[uuid]
  if c == nil or c.src ~= src then
    c = { src = src, at = -math.huge, refreshed = -math.huge,
          failed = -math.huge }
    cache[uuid] = c
  end
  return c
end

-- The mount's keys -> keys, fetched_now | nil, reason. Remote keys are
-- fetched when missing or old, or when refresh asks (an unknown kid) and
-- the last such refresh is REFETCH_EVERY seconds past; after a failed
-- fetch, only a refresh tries again within REFETCH_EVERY seconds.
local function keys_for(req, cfg, refresh)
  local c, t = entry_for(req.mount.uuid, cfg), time.now()
  if #cfg.jwt_validation_pubkeys > 0 then
    if c.keys == nil then
      local keys = {}
      for i, pem in ipairs(cfg.jwt_validation_pubkeys) do
        local k, err = jose.parse_pem(pem)
        if k == nil then return nil, "error parsing public key: " .. err end
        keys[i] = k
      end
      c.keys = keys
    end
    return c.keys, false
  end
  local due = c.keys == nil or t - c.at >= KEYS_MAX_AGE
  if refresh and t - c.refreshed >= REFETCH_EVERY then
    c.refreshed, due = t, true
  elseif refresh or t - c.failed < REFETCH_EVERY then
    due = false
  end
  if not due then
    if c.keys == nil then return nil, c.err end
    return c.keys, false
  end
  local keys, err = fetch_keys(cfg)
  if keys == nil then
    coffer.log.warn("jwt: " .. req.mount.path .. " fetching keys: " .. err)
    c.failed, c.err = t, "fetching keys: " .. err
    if c.keys ~= nil and not refresh then return c.keys, false end
    return nil, c.err
  end
  c.keys, c.at = keys, t
  return keys, true
end

-- ========================================================= checking ==

-- The role's leeways as coffer.jose.verify options (which apply cap's
-- time rules with literal seconds): in Vault's role config 0 means cap's
-- default (60 s of clock skew, 150 s for the others), a negative value
-- none.
local function leeway_opts(role, opts)
  local function pick(v, default)
    v = math.floor(num(v) or 0)
    return v == 0 and default or v
  end
  opts.clock_skew_leeway = pick(role.clock_skew_leeway, 60)
  opts.expiration_leeway = pick(role.expiration_leeway, 150)
  opts.not_before_leeway = pick(role.not_before_leeway, 150)
  return opts
end

-- Signature (the keys refetched once for an unknown kid), then cap's
-- registered-claim checks, both by coffer.jose.verify -> claims | nil,
-- text after "error validating token: ".
local function validated_claims(req, cfg, role, token)
  local keys, err = keys_for(req, cfg, false)
  if keys == nil then return nil, "error verifying token signature: " .. err end
  local opts = leeway_opts(role, { now = time.now(),
    algs = #cfg.jwt_supported_algs > 0 and cfg.jwt_supported_algs or ALGS,
    issuer = not empty(cfg.bound_issuer) and cfg.bound_issuer or nil,
    subject = not empty(role.bound_subject) and role.bound_subject or nil,
    audiences = #role.bound_audiences > 0 and role.bound_audiences or nil })
  local c, why, stage = jose.verify(token, keys, opts)
  if c == nil and tostring(why):find("unknown kid", 1, true) then
    local fresh, fetched = keys_for(req, cfg, true)
    if fresh == nil then why = fetched end
    if fetched == true then c, why, stage = jose.verify(token, fresh, opts) end
  end
  if c == nil and stage == "claims" then return nil, why end -- cap's own text
  if c == nil then return nil, "error verifying token signature: " .. tostring(why) end
  return c
end

-- The token's metadata (claim_mappings and the role), once the groups
-- claim is found to be a list of strings (Vault's createIdentity).
local function identity_meta(c, role, name)
  local meta = {}
  for source, target in pairs(role.claim_mappings or {}) do
    local v = claim(c, source)
    if v ~= nil and type(v) ~= "string" then
      coffer.bad_request("error converting claim '" .. source .. "' to string")
    end
    meta[target] = v
  end
  meta.role = name
  if not empty(role.groups_claim) then
    local groups = claim(c, role.groups_claim)
    if groups == nil then
      coffer.bad_request("failed to fetch groups: " .. q(role.groups_claim) ..
                         " claim not found in token")
    end
    for _, g in ipairs(as_list(groups) or { {} }) do
      if type(g) ~= "string" then
        coffer.bad_request(q(role.groups_claim) ..
                           " claim could not be converted to string list")
      end
    end
  end
  return meta
end

local function bound_claims_error(c, role)
  for name, want in pairs(role.bound_claims or {}) do
    local have = claim(c, name)
    if have == nil then return "claim " .. q(name) .. " is missing" end
    local got = as_list(have)
    if got == nil then
      return "received claim is not a string, bool, int or list: " .. tostring(have)
    end
    local found = false
    for _, w in ipairs(as_list(want)) do
      for _, g in ipairs(got) do
        found = found or g == w or (role.bound_claims_type == "glob" and
                                    type(g) == "string" and au.glob(w, g))
      end
    end
    if not found then
      return "claim " .. q(name) .. " does not match any associated bound claim values"
    end
  end
end

local function login(req)
  local cfg = req.storage:get_json("config")
  if cfg == nil then coffer.bad_request("could not load configuration") end
  local name = (empty(req.data.role) and cfg.default_role or req.data.role):lower()
  if name == "" then coffer.bad_request("missing role") end
  local role = au.valid_name(name) and req.storage:get_json("role/" .. name)
  if not role then coffer.bad_request("role " .. q(name) .. " could not be found") end
  if role.role_type == "oidc" then
    coffer.bad_request("role with oidc role_type is not allowed")
  end
  if empty(req.data.jwt) then coffer.bad_request("missing token") end
  if not au.cidr_allows(role.token_bound_cidrs, req.client_addr) then
    coffer.forbidden()
  end
  local c, err = validated_claims(req, cfg, role, req.data.jwt)
  if err then coffer.bad_request("error validating token: " .. err) end
  if #role.bound_audiences == 0 and (type(c.aud) == "table" and #c.aud > 0 or
                                     type(c.aud) == "string" and c.aud ~= "") then
    coffer.bad_request("audience claim found in JWT but no audiences bound to the role")
  end
  local user = role.user_claim_json_pointer and claim(c, role.user_claim)
               or c[role.user_claim]
  if user == nil or user == json.null then
    coffer.bad_request("claim " .. q(role.user_claim) .. " not found in token")
  elseif type(user) ~= "string" then
    coffer.bad_request("claim " .. q(role.user_claim) .. " could not be converted to string")
  end
  local meta = identity_meta(c, role, name)
  err = bound_claims_error(c, role)
  if err then coffer.bad_request("error validating claims: " .. err) end
  return au.identity(role, user, meta)
end

-- ============================================================ paths ==

local CONFIG_FIELDS = {
  oidc_discovery_url = "string", oidc_discovery_ca_pem = "string",
  oidc_client_id = "string", oidc_client_secret = "string",
  oidc_response_mode = "string", oidc_response_types = "strings",
  jwks_url = "string", jwks_ca_pem = "string", default_role = "string",
  jwt_validation_pubkeys = "strings", jwt_supported_algs = "strings",
  bound_issuer = "string", provider_config = "map", namespace_in_state = "bool",
}

-- Vault's pathConfigWrite: the whole config is replaced, then checked; a
-- remote key source is fetched once, which also warms this state's cache.
local function write_config(req)
  local cfg = {}
  for k, kind in pairs(CONFIG_FIELDS) do
    cfg[k] = req.data[k] or (kind == "strings" and {}) or (kind == "string" and "") or nil
  end
  cfg.default_role = cfg.default_role:lower()
  cfg.namespace_in_state = cfg.namespace_in_state ~= false
  local disc, jwks = cfg.oidc_discovery_url, cfg.jwks_url
  if (disc ~= "" and 1 or 0) + (jwks ~= "" and 1 or 0) +
     (#cfg.jwt_validation_pubkeys > 0 and 1 or 0) ~= 1 then
    coffer.bad_request("exactly one of 'jwt_validation_pubkeys', 'jwks_url' " ..
                       "or 'oidc_discovery_url' must be set")
  elseif empty(cfg.oidc_client_id) ~= empty(cfg.oidc_client_secret) then
    coffer.bad_request("both 'oidc_client_id' and 'oidc_client_secret' must be set for OIDC")
  elseif cfg.oidc_client_id ~= "" and disc == "" then
    coffer.bad_request("'oidc_discovery_url' must be set for OIDC")
  end
  for _, pem in ipairs({ cfg.jwks_ca_pem, cfg.oidc_discovery_ca_pem }) do
    if pem ~= "" and coffer.x509.parse(first_cert(pem) or "") == nil then
      coffer.bad_request("could not parse CA PEM value successfully")
    end
  end
  for _, pem in ipairs(cfg.jwt_validation_pubkeys) do
    local k, why = jose.parse_pem(pem)
    if k == nil then coffer.bad_request("error parsing public key: " .. why) end
  end
  for _, a in ipairs(cfg.jwt_supported_algs) do
    if not ALG_SET[a] then
      coffer.bad_request("invalid jwt_supported_algs: unsupported signing algorithm " .. q(a))
    end
  end
  local url, what = disc ~= "" and disc or jwks, disc ~= "" and "oidc discovery URL"
                                                  or "jwks URL " .. shown(jwks)
  local keys, err
  if url ~= "" then
    if not url:match("^https?://[^/?#]") then err = "not an https:// URL"
    else keys, err = fetch_keys(cfg) end
    if keys == nil then coffer.bad_request("error checking " .. what .. ": " .. err) end
  end
  req.storage:put_json("config", cfg)
  if keys ~= nil then
    local c = entry_for(req.mount.uuid, cfg)
    c.keys, c.at = keys, time.now()
  end
end

local function read_config(req)
  local cfg = req.storage:get_json("config")
  if cfg == nil then return nil end
  local out = {}
  for k, kind in pairs(CONFIG_FIELDS) do
    out[k] = kind == "strings" and json.array(cfg[k]) or cfg[k]
  end
  out.oidc_client_secret = nil -- never shown
  out.provider_config = json.object(cfg.provider_config or {})
  return { data = out }
end

local ROLE_FIELDS = au.token_fields({
  name = "string", role_type = "string", bound_audiences = "strings",
  user_claim = "string", user_claim_json_pointer = "bool",
  bound_subject = "string", bound_claims = "map", bound_claims_type = "string",
  claim_mappings = "kvpairs", groups_claim = "string", oidc_scopes = "strings",
  allowed_redirect_uris = "strings", verbose_oidc_logging = "bool",
  max_age = "duration", clock_skew_leeway = "any", expiration_leeway = "any",
  not_before_leeway = "any",
})
-- Stored as given; on read, lists come back as lists.
local ROLE_KEYS = { bound_audiences = {}, bound_subject = "", user_claim = "",
  user_claim_json_pointer = false, groups_claim = "", oidc_scopes = {},
  allowed_redirect_uris = {}, verbose_oidc_logging = false, max_age = 0,
  clock_skew_leeway = 0, expiration_leeway = 0, not_before_leeway = 0,
  bound_claims_type = "string" }

local function role_key(req)
  return "role/" .. au.check_name(req.params.name):lower()
end

-- Vault's pathRoleCreateUpdate, check for check.
local function write_role(req)
  local key, d = role_key(req), req.data
  local lock <close> = req.storage:lock(key)
  local r = req.storage:get_json(key) or {}
  r.role_type = empty(d.role_type) and "oidc" or d.role_type -- Vault's default
  if r.role_type ~= "jwt" and r.role_type ~= "oidc" then
    coffer.bad_request("invalid 'role_type': " .. r.role_type)
  end
  au.apply_token_fields(r, d)
  for k, default in pairs(ROLE_KEYS) do
    if d[k] ~= nil then
      r[k] = k:find("leeway$") and signed_duration(k, d[k]) or d[k]
    elseif r[k] == nil then
      r[k] = default
    end
  end
  r.bound_claims_type = d.bound_claims_type or "string"
  if r.bound_claims_type ~= "string" and r.bound_claims_type ~= "glob" then
    coffer.bad_request("invalid 'bound_claims_type': " .. r.bound_claims_type)
  end
  r.bound_claims = d.bound_claims or r.bound_claims
  for _, v in pairs(r.bound_claims or {}) do
    for _, x in ipairs(as_list(v) or coffer.bad_request(
        "claim is not a string or list: " .. tostring(v))) do
      if r.bound_claims_type == "glob" and type(x) ~= "string" then
        coffer.bad_request("claim is not a string: " .. tostring(x))
      end
    end
  end
  local targets = {}
  for _, meta in pairs(d.claim_mappings or {}) do
    if meta == "role" then
      coffer.bad_request('metadata key "role" is reserved and may not be a mapping destination')
    elseif targets[meta] then
      coffer.bad_request("multiple keys are mapped to metadata key " .. q(meta))
    end
    targets[meta] = true
  end
  r.claim_mappings = d.claim_mappings or r.claim_mappings
  if r.user_claim == "" then
    coffer.bad_request("a user claim must be defined on the role")
  elseif r.role_type == "oidc" and #r.allowed_redirect_uris == 0 then
    coffer.bad_request("'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or unspecified.")
  elseif r.role_type == "jwt" and #r.bound_audiences == 0 and r.bound_subject == "" and
         #(r.token_bound_cidrs or {}) == 0 and next(r.bound_claims or {}) == nil then
    coffer.bad_request("must have at least one bound constraint when creating/updating a role")
  elseif (r.token_max_ttl or 0) > 0 and (r.token_ttl or 0) > r.token_max_ttl then
    coffer.bad_request("ttl should not be greater than max ttl")
  end
  req.storage:put_json(key, r)
end

local function read_role(req)
  local r = req.storage:get_json(role_key(req))
  if r == nil then return nil end
  local out = au.read_token_fields(r, { role_type = r.role_type,
    bound_claims = r.bound_claims and json.object(r.bound_claims) or json.null,
    claim_mappings = r.claim_mappings and json.object(r.claim_mappings) or json.null })
  for k, default in pairs(ROLE_KEYS) do
    out[k] = type(default) == "table" and json.array(r[k] or {}) or r[k]
  end
  return { data = out }
end

local function no_browser_flow()
  coffer.bad_request("the OIDC browser flow (oidc/auth_url, oidc/callback) " ..
                     "is not supported; log in with a JWT at login")
end

-- One implementation, mountable as either type.
local function define(a)
  a:path("config", { fields = CONFIG_FIELDS, read = read_config, write = write_config,
                     help = "Configure the JWT authentication backend." })
  a:path("role/", {
    list = function(req)
      return { data = { keys = json.array(req.storage:list("role/")) } }
    end,
    help = "Lists all the roles registered with the backend.",
  })
  a:path("role/:name", {
    fields = ROLE_FIELDS, read = read_role, write = write_role,
    delete = function(req) req.storage:delete(role_key(req)) end,
    help = "Register a role with the backend.",
  })
  a:login("login", {
    fields = { role = "string", jwt = "string", distributed_claim_access_token = "string" },
    write = login, help = "Authenticates to Coffer using a JWT (or OIDC) token.",
  })
  for _, p in ipairs({ "oidc/auth_url", "oidc/callback" }) do
    a:login(p, { write = no_browser_flow, help = "Not supported." })
  end
end

define(coffer.auth { name = "jwt", help = "Authenticates JWTs signed by " ..
  "configured keys, a JWKS or an OIDC provider's discovery document." })
define(coffer.auth { name = "oidc", help = "The JWT/OIDC auth method " ..
  "(JWT logins; the browser flow is not supported)." })
