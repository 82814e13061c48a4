-- kubernetes.lua - Kubernetes service-account logins with Vault's API.
--
--   auth/<mount>/config      kubernetes_host, kubernetes_ca_cert,
--                            token_reviewer_jwt (never shown), pem_keys,
--                            issuer, disable_iss_validation,
--                            disable_local_ca_jwt
--   auth/<mount>/role/:name  bound_service_account_names and
--                            bound_service_account_namespaces (globs, "*"),
--                            audience, alias_name_source, token_* fields
--   auth/<mount>/login       { role, jwt }
--
-- Storage (JSON under the mount's view): config, role/<name>.
--
-- A login reads the service account from the JWT's claims (the legacy
-- "kubernetes.io/serviceaccount/..." ones, or the projected token's
-- nested "kubernetes.io"), checks its signature only when pem_keys are
-- configured (as Vault does), checks the role's names, namespaces and
-- audience, then asks the cluster: POST <kubernetes_host>/apis/
-- authentication.k8s.io/v1/tokenreviews, bearer = token_reviewer_jwt or
-- else the login JWT itself, TLS verified against kubernetes_ca_cert.
-- The review must say authenticated, for the same namespace, name and
-- uid. Refusals are Vault's 403s; a failed review is "permission denied"
-- (the reason goes to the log, at debug level).
--
-- disable_local_ca_jwt is stored and shown but changes nothing: Coffer
-- never reads the pod's own CA and token files.

local au = require("authutil")
local json, jose, time = coffer.json, coffer.jose, coffer.time

local ALGS = { "RS256", "RS384", "RS512", "ES256", "ES384", "ES512",
               "PS256", "PS384", "PS512" }
local ALG_SET = {}
for _, a in ipairs(ALGS) do ALG_SET[a] = true end
local REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
local SA = "kubernetes.io/serviceaccount/"
local ALIAS_SOURCES = { serviceaccount_uid = true, serviceaccount_name = true }

local function empty(s) return s == nil or s == "" end

-- The first PEM block of a given type in text, or nil.
local function first_pem(text, label)
  return text:match("%-%-%-%-%-BEGIN " .. label .. "%-%-%-%-%-.-%-%-%-%-%-END " ..
                    label .. "%-%-%-%-%-")
end

local function any_glob(list, s)
  for _, p in ipairs(list) do
    if au.glob(p, s) then return true end
  end
  return false
end

-- ============================================================ config ==

local CONFIG_FIELDS = {
  kubernetes_host = "string", kubernetes_ca_cert = "string",
  token_reviewer_jwt = "string", pem_keys = "strings", issuer = "string",
  disable_iss_validation = { type = "bool", default = true },
  disable_local_ca_jwt = { type = "bool", default = false },
  use_annotations_as_alias_metadata = { type = "bool", default = false },
}

-- Vault's pathConfigWrite: the whole config is replaced.
local function write_config(req)
  local d = req.data
  local host = d.kubernetes_host or ""
  if host == "" then coffer.bad_request("no host provided") end
  if not host:match("^https?://[^/?#]") then
    coffer.bad_request("kubernetes_host must be an https:// URL")
  end
  local ca = d.kubernetes_ca_cert or ""
  if ca ~= "" then
    local cert = first_pem(ca, "CERTIFICATE")
    if cert == nil or coffer.x509.parse(cert) == nil then
      coffer.bad_request("The provided CA PEM data contains no valid certificates")
    end
  end
  for _, pem in ipairs(d.pem_keys or {}) do
    if jose.parse_pem(pem) == nil then
      coffer.bad_request("data does not contain any valid RSA or ECDSA public keys")
    end
  end
  if d.use_annotations_as_alias_metadata then
    coffer.bad_request("use_annotations_as_alias_metadata is not supported")
  end
  req.storage:put_json("config", {
    kubernetes_host = host:gsub("/+$", ""), kubernetes_ca_cert = ca,
    token_reviewer_jwt = d.token_reviewer_jwt or "",
    pem_keys = d.pem_keys or {}, issuer = d.issuer or "",
    disable_iss_validation = d.disable_iss_validation,
    disable_local_ca_jwt = d.disable_local_ca_jwt,
  })
end

local function read_config(req)
  local c = req.storage:get_json("config")
  if c == nil then return nil end
  return { data = {
    kubernetes_host = c.kubernetes_host, kubernetes_ca_cert = c.kubernetes_ca_cert,
    pem_keys = json.array(c.pem_keys), issuer = c.issuer,
    disable_iss_validation = c.disable_iss_validation,
    disable_local_ca_jwt = c.disable_local_ca_jwt,
    token_reviewer_jwt_set = c.token_reviewer_jwt ~= "",
    use_annotations_as_alias_metadata = false,
  } }
end

-- ============================================================= roles ==

local ROLE_FIELDS = au.token_fields({
  name = "string", bound_service_account_names = "strings",
  bound_service_account_namespaces = "strings",
  bound_service_account_namespace_selector = "string",
  audience = "string", alias_name_source = "string",
})

local function role_key(req)
  return "role/" .. au.check_name(req.params.name):lower()
end

local function check_star(list)
  if #list > 1 then
    for _, v in ipairs(list) do
      if v == "*" then coffer.bad_request('can not mix "*" with values') end
    end
  end
end

-- Vault's pathRoleCreateUpdate: given fields replace stored ones.
local function write_role(req)
  local key, d = role_key(req), req.data
  local lock <close> = req.storage:lock(key)
  local r = req.storage:get_json(key) or {}
  au.apply_token_fields(r, d)
  if (r.token_max_ttl or 0) > 0 and (r.token_ttl or 0) > r.token_max_ttl then
    coffer.bad_request("token ttl should not be greater than token max ttl")
  end
  r.bound_service_account_names = d.bound_service_account_names or
                                  r.bound_service_account_names or {}
  if #r.bound_service_account_names == 0 then
    coffer.bad_request('"bound_service_account_names" can not be empty')
  end
  check_star(r.bound_service_account_names)
  if not empty(d.bound_service_account_namespace_selector) then
    coffer.bad_request("bound_service_account_namespace_selector is not supported")
  end
  r.bound_service_account_namespaces = d.bound_service_account_namespaces or
                                       r.bound_service_account_namespaces or {}
  if #r.bound_service_account_namespaces == 0 then
    coffer.bad_request('"bound_service_account_namespaces" can not be empty ' ..
                       'if "bound_service_account_namespace_selector" is not set')
  end
  check_star(r.bound_service_account_namespaces)
  if d.audience ~= nil then r.audience = d.audience end
  r.alias_name_source = d.alias_name_source or r.alias_name_source or
                        "serviceaccount_uid"
  if not ALIAS_SOURCES[r.alias_name_source] then
    coffer.bad_request("invalid alias_name_source, must be one of: " ..
                       "serviceaccount_uid, serviceaccount_name")
  end
  req.storage:put_json(key, r)
  if empty(r.audience) then
    return { warnings = { "Role " .. req.params.name:lower() .. " does not " ..
      "have an audience configured. While audiences are not required, " ..
      "consider specifying one if your use case would benefit from " ..
      "additional JWT claim verification." } }
  end
end

local function read_role(req)
  local r = req.storage:get_json(role_key(req))
  if r == nil then return nil end
  return { data = au.read_token_fields(r, {
    bound_service_account_names = json.array(r.bound_service_account_names),
    bound_service_account_namespaces =
      json.array(r.bound_service_account_namespaces),
    bound_service_account_namespace_selector = "",
    audience = r.audience, alias_name_source = r.alias_name_source,
  }) }
end

-- ============================================================= login ==

-- The JWT's claims -> claims | nil, reason (Vault's parseAndValidateJWT,
-- cap's ValidateAllowMissingIatNbfExp with the default leeways): its
-- signature checked when pem_keys are configured, else only its shape and
-- alg (the TokenReview vouches for it); then iss, aud and the times by
-- coffer.jose's rules.
local function jwt_claims(cfg, role, token)
  local opts = { now = time.now(), allow_missing_times = true,
    issuer = not cfg.disable_iss_validation and cfg.issuer ~= "" and
             cfg.issuer or nil,
    audiences = not empty(role.audience) and { role.audience } or nil }
  local claims, why, stage
  if #cfg.pem_keys > 0 then
    local keys = {}
    for i, pem in ipairs(cfg.pem_keys) do keys[i] = jose.parse_pem(pem) end
    opts.algs = ALGS
    claims, why, stage = jose.verify(token, keys, opts)
    if claims == nil and stage ~= "claims" then
      return nil, "error verifying token signature: " .. why
    end
    return claims, claims == nil and why or nil
  end
  local header, err = jose.decode(token)
  if header == nil then return nil, "error parsing token: " .. err end
  if not ALG_SET[header.alg] then
    return nil, "error verifying token signature: unexpected signature " ..
                "algorithm " .. string.format("%q", tostring(header.alg))
  end
  claims, why = jose.check_claims(token, opts)
  return claims, claims == nil and why or nil
end

-- The service account a JWT names: projected token claims first.
local function service_account(c)
  local k = type(c["kubernetes.io"]) == "table" and c["kubernetes.io"]
  local sa = k and type(k.serviceaccount) == "table" and k.serviceaccount
  local s = function(v) return type(v) == "string" and v or "" end
  return {
    namespace = s(k and k.namespace or c[SA .. "namespace"]),
    name = s(sa and sa.name or c[SA .. "service-account.name"]),
    uid = s(sa and sa.uid or c[SA .. "service-account.uid"]),
    secret_name = s(c[SA .. "secret.name"]),
    aud = type(c.aud) == "table" and c.aud or (type(c.aud) == "string" and
          { c.aud }) or {},
  }
end

-- The TokenReview of token -> nil | the reason it failed.
local function review_error(cfg, sa, role, token)
  local want = empty(role.audience) and sa.aud or { role.audience }
  local spec = { token = token }
  if #want > 0 then spec.audiences = json.array(want) end
  local resp, err = coffer.http.request {
    method = "POST", url = cfg.kubernetes_host .. REVIEW_PATH,
    ca_pem = not empty(cfg.kubernetes_ca_cert) and cfg.kubernetes_ca_cert or nil,
    headers = { Authorization = "Bearer " .. (empty(cfg.token_reviewer_jwt)
                and token or cfg.token_reviewer_jwt), Accept = "application/json" },
    json = { apiVersion = "authentication.k8s.io/v1", kind = "TokenReview",
             spec = spec },
    timeout = 5, connect_timeout = 2,
  }
  if resp == nil then return err, true end
  if resp.status == 401 then
    return "lookup failed: service account unauthorized; this could mean it " ..
           "has been deleted or recreated with a new token"
  elseif resp.status < 200 or resp.status > 206 then
    return "lookup failed: HTTP status " .. resp.status
  end
  local r = json.decode(resp.body)
  local st = type(r) == "table" and r.status
  if type(st) ~= "table" then return "lookup failed: not a TokenReview" end
  if not empty(st.error) then return "lookup failed: " .. tostring(st.error) end
  if st.authenticated ~= true then
    return "lookup failed: service account jwt not valid"
  end
  if #want > 0 then
    local ok = false
    for _, a in ipairs(type(st.audiences) == "table" and st.audiences or {}) do
      for _, w in ipairs(want) do ok = ok or a == w end
    end
    if not ok then return "lookup failed: service account jwt not valid " ..
                          "for the wanted audience(s)" end
  end
  local user = type(st.user) == "table" and st.user or {}
  local sys, kind, ns, name = tostring(user.username or ""):match(
    "^([^:]*):([^:]*):([^:]*):([^:]*)$")
  if sys == nil then return "lookup failed: unexpected username format" end
  if sys ~= "system" or kind ~= "serviceaccount" then
    return "lookup failed: username returned is not a service account"
  end
  if name ~= sa.name then return "JWT names did not match" end
  if user.uid ~= sa.uid then return "JWT UIDs did not match" end
  if ns ~= sa.namespace then return "JWT namespaces did not match" end
end

local function login(req)
  local name, token = req.data.role, req.data.jwt
  if empty(name) then coffer.bad_request("missing role") end
  if empty(token) then coffer.bad_request("missing jwt") end
  local role = au.valid_name(name) and req.storage:get_json("role/" .. name:lower())
  if not role then
    coffer.bad_request(string.format("invalid role name %q", name))
  end
  if not au.cidr_allows(role.token_bound_cidrs, req.client_addr) then
    coffer.forbidden()
  end
  local cfg = req.storage:get_json("config")
  if cfg == nil then coffer.internal("could not load backend configuration") end
  local claims, err = jwt_claims(cfg, role, token)
  if err then coffer.forbidden(err) end
  local sa = service_account(claims)
  if not any_glob(role.bound_service_account_names, sa.name) then
    coffer.forbidden("service account name not authorized")
  end
  if not any_glob(role.bound_service_account_namespaces, sa.namespace) then
    coffer.forbidden("namespace not authorized")
  end
  if sa.uid == "" then coffer.internal("could not parse UID from claims") end
  local transport
  err, transport = review_error(cfg, sa, role, token)
  if err then
    local log = transport and coffer.log.warn or coffer.log.debug
    log("kubernetes: " .. req.mount.path .. " login unauthorized: " .. err)
    coffer.forbidden()
  end
  return au.identity(role, sa.namespace .. "-" .. sa.name, {
    service_account_uid = sa.uid, service_account_name = sa.name,
    service_account_namespace = sa.namespace,
    service_account_secret_name = sa.secret_name, role = name,
  })
end

-- ============================================================= paths ==

local a = coffer.auth {
  name = "kubernetes",
  help = "The Kubernetes auth method authenticates service accounts " ..
         "with the cluster's TokenReview API.",
}

a:path("config", {
  fields = CONFIG_FIELDS, read = read_config, write = write_config,
  help = "Configures the JWT Public Key and Kubernetes API information.",
})
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
  fields = { role = "string", jwt = "string" },
  write = login,
  help = "Authenticates Kubernetes service accounts.",
})
