-- leaselimits.lua - bounds on how many leased credentials a role hands
-- out, and reuse of a credential a token already holds (issue 13,
-- "runaway issuance"). The database engine uses it; any Lua engine that
-- issues leases through req:pending_lease can use it the same way
-- (docs/PLUGIN_API.md, "Lease limits").
--
--   max_leases            live leases of the role at once (0: no limit)
--   max_leases_per_token  live leases of the role held by one holder: the
--                         token's entity if it has one, else the token
--                         (its accessor)
--   reuse_existing        a token asking again for a role it holds an
--                         unexpired lease of gets that lease back (same
--                         lease_id and data, remaining TTL)
--
-- What counts: every lease record of the role that exists, pending ones
-- included (a slot is taken before the credential is created), until its
-- revocation succeeded. Counting reads the lease index under the role's
-- prefix (<mount>/<type>/<role>/), so limits survive restarts with no
-- counter to drift. Admission (count, then record the pending lease)
-- runs under one storage lock per role, so N parallel requests against a
-- limit of n admit exactly n.
--
-- Reuse keeps the issued data in this mount's storage (barrier
-- encrypted, like everything stored) under lease-reuse/<type>/<HMAC of
-- the token's accessor under the mount's salt>; the engine's revoke
-- deletes it (wrap_secret).
-- While a token's first credential is being created the entry is marked
-- pending, and the token's parallel requests wait for it.
--
-- Cost: a count reads the role's lease records (one decryption each),
-- under the role's lock; nothing runs when a role sets no limit.

local authutil = require("authutil")

local M = {}

-- The role fields, merged into an engine's field spec.
M.FIELDS = {
  max_leases = "int", max_leases_per_token = "int", reuse_existing = "bool",
}

local REUSE_PREFIX = "lease-reuse/"

-- Refuses negative limits (a role write): raises a 400.
function M.check(limits)
  for _, k in ipairs({ "max_leases", "max_leases_per_token" }) do
    local v = limits[k]
    if v ~= nil and (math.type(v) ~= "integer" or v < 0) then
      coffer.bad_request(k .. " must be a whole number, 0 or more " ..
                         "(0: no limit)")
    end
  end
end

-- The fields as a role read shows them.
function M.describe(limits, data)
  data.max_leases = limits.max_leases or 0
  data.max_leases_per_token = limits.max_leases_per_token or 0
  data.reuse_existing = limits.reuse_existing == true
  return data
end

local function active(limits)
  return (limits.max_leases or 0) > 0 or
         (limits.max_leases_per_token or 0) > 0 or
         limits.reuse_existing == true
end

-- A token's or entity's id as it lands in lease records and storage
-- keys: an HMAC under the mount's own random salt (authutil.salt), so
-- that what is stored cannot be matched against an accessor seen
-- elsewhere.
local function keyed(req, what)
  return authutil.salted(authutil.salt(req), what)
end

-- Who holds a lease, for max_leases_per_token: the entity when the token
-- has one (every token of one person shares the budget), else the token.
-- Requests whose token has neither share one budget: a limit never fails
-- open.
local function holder_of(req)
  local t = req.token or {}
  if t.entity_id ~= nil and t.entity_id ~= "" then
    return keyed(req, "entity:" .. t.entity_id)
  end
  if t.accessor ~= nil and t.accessor ~= "" then
    return keyed(req, "token:" .. t.accessor)
  end
  return keyed(req, "none")
end

-- The token itself, for reuse: a lease belongs to the token that made
-- it (revoking that token revokes it), so only that token gets it back.
local function token_key(req)
  local t = req.token
  if t == nil or t.accessor == nil or t.accessor == "" then return nil end
  return keyed(req, "token:" .. t.accessor)
end

-- Counts an event in sys/metrics: <mount type>.lease_limit.<event>
-- {mount, role[, limit]}.
local function count(req, event, role, limit)
  if coffer.metrics == nil or req.mount == nil then return end
  coffer.metrics.incr(req.mount.type .. ".lease_limit." .. event,
                      { role = role, limit = limit })
end

local function refuse(req, scope_name, what, n, whose)
  count(req, "refused", scope_name, what)
  error(coffer.error { status = 429, errors = { string.format(
    'role "%s" has reached %s (%d live credential%s%s)',
    scope_name, what, n, n == 1 and "" or "s", whose) } })
end

-- The stored credential a token may get back, as a response; or "wait"
-- while another request of the token is creating it; or nil.
local function reusable(req, slot)
  local entry = req.storage:get_json(slot.reuse_key)
  if entry == nil then return nil end
  -- The lease must still be in the index: a revocation deletes the
  -- entry, but a crash in between leaves one whose lease is gone.
  local alive = type(entry.serial) == "string" and
    req:count_leases(slot.type, "lease_serial", entry.serial) > 0
  if alive and entry.pending then return "wait" end
  local left = math.floor((entry.expire or 0) - coffer.time.now())
  if not alive or left <= 0 then
    req.storage:delete(slot.reuse_key)
    return nil
  end
  return { data = entry.data, lease_id = entry.lease_id,
           lease_duration = left, renewable = entry.renewable }
end

local Slot = {}
Slot.__index = Slot
Slot.__close = function(self) self:release() end

-- Releases the role's lock; call once the pending lease is recorded.
function Slot:release()
  if self.lock ~= nil then
    self.lock:unlock()
    self.lock = nil
  end
end

-- Fields the pending lease must carry for counting and reuse cleanup.
function Slot:internal(t)
  t.role = t.role or self.name
  t.holder = self.holder
  if self.reuse_key ~= nil then
    t.reuse_key = self.reuse_key
    t.lease_serial = self.serial
  end
  return t
end

-- Remembers what lease:issue returned, for reuse. res is the response.
function Slot:issued(res)
  if self.reuse_key == nil then return res end
  self.storage:put_json(self.reuse_key, {
    lease_id = res.lease_id, serial = self.serial, data = res.data,
    renewable = res.renewable,
    expire = math.floor(coffer.time.now()) + (res.lease_duration or 0),
  })
  return res
end

-- Admission before an issuance. spec:
--   type     the lease type as req:pending_lease gets it plus the role,
--            e.g. "creds/" .. role: leases are counted under
--            <mount>/<type>/
--   name     the role's name, for the error text
--   limits   { max_leases, max_leases_per_token, reuse_existing }
-- Returns slot (a to-be-closed value: it holds the role's lock until
-- slot:release() or the end of the scope), and a response when an
-- existing credential is reused (the caller returns it). Raises 429 when
-- a limit is reached.
-- The checks under the role's lock. Returns the reused response, or
-- "wait", or nil (go on and issue).
local function admit_locked(req, spec, slot)
  local limits = spec.limits
  if limits.reuse_existing == true then
    local tk = token_key(req)
    if tk ~= nil then
      slot.reuse_key = REUSE_PREFIX .. spec.type .. "/" .. tk
      slot.serial = slot.serial or coffer.crypto.uuid()
      local res = reusable(req, slot)
      if type(res) == "table" then count(req, "reused", spec.name) end
      if res ~= nil then return res end
    end
  end
  local max = limits.max_leases or 0
  if max > 0 then
    local n = req:count_leases(spec.type, "role", spec.name)
    if n >= max then refuse(req, spec.name, "max_leases", n, "") end
  end
  local per = limits.max_leases_per_token or 0
  if per > 0 then
    local n = req:count_leases(spec.type, "holder", slot.holder)
    if n >= per then
      refuse(req, spec.name, "max_leases_per_token", n,
             " for this token")
    end
  end
  if slot.reuse_key ~= nil then
    -- In flight: parallel requests of this token wait for this one
    -- (reusable() says "wait" while its pending lease exists) instead
    -- of each creating a user.
    req.storage:put_json(slot.reuse_key,
                         { serial = slot.serial, pending = true })
  end
  return nil
end

-- How long a request waits for a parallel one of the same token.
local REUSE_WAIT = 30

function M.admit(req, spec)
  local limits = spec.limits or {}
  local slot = setmetatable({ holder = holder_of(req), type = spec.type,
                              name = spec.name, storage = req.storage },
                            Slot)
  if not active(limits) then return slot end
  local checks = { type = spec.type, name = spec.name, limits = limits }
  local deadline = coffer.time.now() + REUSE_WAIT
  while true do
    slot.lock = req.storage:lock("lease-limit/" .. spec.type)
    -- The lock must not outlive a refusal or an error until collected.
    local ok, res = pcall(admit_locked, req, checks, slot)
    if not ok or res ~= nil then slot:release() end
    if not ok then error(res, 0) end
    if res ~= "wait" then return slot, res end
    if coffer.time.now() > deadline then
      error(coffer.error { status = 503, errors = { 'role "' .. spec.name ..
        '": another request of this token is still creating its ' ..
        'credential' } })
    end
    coffer.time.sleep(0.01)
  end
end

-- The reuse entry of a lease, if it is this lease's.
local function forget(lease)
  local int = lease.internal or {}
  if type(int.reuse_key) ~= "string" or lease.storage == nil then return end
  local entry = lease.storage:get_json(int.reuse_key)
  if entry ~= nil and entry.serial == int.lease_serial then
    lease.storage:delete(int.reuse_key)
  end
end

-- The new expiry of a renewed lease in its reuse entry.
local function renewed(lease, expire_unix)
  local int = lease.internal or {}
  if type(int.reuse_key) ~= "string" or lease.storage == nil then return end
  local entry = lease.storage:get_json(int.reuse_key)
  if entry ~= nil and entry.serial == int.lease_serial then
    entry.expire = math.floor(expire_unix)
    lease.storage:put_json(int.reuse_key, entry)
  end
end

-- Wraps an e:secret spec so that revocation and renewal keep reuse
-- entries right: a revoked lease (by hand, expiry, batch, or abort) is
-- never handed out again. Returns the spec.
function M.wrap_secret(spec)
  local revoke, batch, renew = spec.revoke, spec.revoke_batch, spec.renew
  spec.revoke = function(lease)
    forget(lease)
    return revoke(lease)
  end
  if batch ~= nil then
    spec.revoke_batch = function(leases)
      for _, lease in ipairs(leases) do forget(lease) end
      return batch(leases)
    end
  end
  if renew ~= nil then
    spec.renew = function(lease, expire_unix)
      local ok, err = renew(lease, expire_unix)
      if ok then renewed(lease, expire_unix) end
      return ok, err
    end
  end
  return spec
end

return M
