-- kv.lua - the KV secrets engine, versions 1 and 2 (VAULT_API.md section 5).
--
-- One engine type "kv"; the mount option `version` ("1" or "2", missing =
-- 1) selects the routes through each route's `when`.
--
-- Storage layout under the mount's view (all values JSON):
--
--   v1   <path>                          the secret object, verbatim
--   v2   config                          {max_versions, cas_required,
--                                         delete_version_after (secs)}
--        metadata/<path>                 key metadata (below)
--        versions/<sha256(path)>/<n>     {"data": <secret object>}
--
--   key metadata:
--   { key, created_time, updated_time, current_version, oldest_version,
--     max_versions, cas_required, delete_version_after (secs),
--     custom_metadata (object or absent),
--     versions = { "<n>" = { created_time, created (unix float),
--                            deletion_time ("" or RFC3339),
--                            deleted_at (unix float or absent),
--                            destroyed } } }
--
-- Version data lives under a hash of the path so that folder listings of
-- metadata/ never see it, as Vault does.

local json = coffer.json
local null = json.null
local time = coffer.time
local fields = require("fields")
local multierror = require("framework").multierror

local DEFAULT_MAX_VERSIONS = 10
local CM_MAX_KEYS, CM_MAX_KEY_LEN, CM_MAX_VALUE_LEN = 64, 128, 512

local e = coffer.engine {
  name = "kv",
  help = "The kv backend reads and writes arbitrary secrets to the " ..
         "backend. Version 2 keeps a history of versions for each key.",
}

local function version_of(req)
  local v = req.mount.options.version
  return (v ~= nil and tostring(v) == "2") and 2 or 1
end

local function is_v1(req) return version_of(req) == 1 end
local function is_v2(req) return version_of(req) == 2 end

local function is_object(v)
  return type(v) == "table" and not json.is_array(v)
end

-- ================================================================= v1 ==

local function v1_read(req)
  local data = req.storage:get_json(req.path)
  if data == nil then
    return nil
  end
  local ttl = req.mount.default_lease_ttl
  local raw = data.ttl
  if raw == nil then
    raw = data.lease
  end
  if raw ~= nil then
    local secs = time.parse_duration(raw)
    if secs ~= nil then
      ttl = secs
    end
  end
  return { data = data, lease_duration = ttl }
end

local function v1_write(req)
  if next(req.data) == nil then
    coffer.bad_request("missing data fields")
  end
  req.storage:put_json(req.path, req.data)
  return nil
end

local function v1_delete(req)
  req.storage:delete(req.path)
  return nil
end

local function list_keys(storage, prefix)
  local keys = storage:list(prefix)
  if #keys == 0 then
    return nil
  end
  return { data = { keys = keys } }
end

local function v1_list(req)
  return list_keys(req.storage, req.path)
end

e:path("*path", {
  when = is_v1,
  help = "Pass-through secret storage to the storage backend, allowing " ..
         "you to read/write arbitrary data into secret storage.",
  read = v1_read, write = v1_write, delete = v1_delete, list = v1_list,
  exists = function(req) return req.storage:get(req.path) ~= nil end,
})

-- ============================================================ v2 state ==

local function load_config(req)
  local c = req.storage:get_json("config") or {}
  return {
    max_versions = c.max_versions or 0,
    cas_required = c.cas_required == true,
    delete_version_after = c.delete_version_after or 0,
  }
end

local function meta_key(path) return "metadata/" .. path end

local function version_key(path, v)
  return "versions/" .. coffer.crypto.sha256_hex(path) .. "/" .. v
end

local function load_meta(req, path)
  return req.storage:get_json(meta_key(path))
end

local function save_meta(req, meta)
  req.storage:put_json(meta_key(meta.key), meta)
end

local function new_meta(path, ts)
  return {
    key = path, created_time = ts, updated_time = ts, current_version = 0,
    oldest_version = 0, max_versions = 0, cas_required = false,
    delete_version_after = 0, versions = {},
  }
end

local function is_deleted(vm, now)
  return vm.deleted_at ~= nil and vm.deleted_at <= (now or time.now())
end

-- A key's own delete_version_after, bounded by the mount's.
local function effective_dva(meta, cfg)
  local k, m = meta.delete_version_after or 0, cfg.delete_version_after
  if k > 0 and m > 0 then
    return math.min(k, m)
  end
  return math.max(k, m)
end

local function custom_metadata_out(meta)
  if meta.custom_metadata == nil or next(meta.custom_metadata) == nil then
    return null
  end
  return meta.custom_metadata
end

-- The "metadata" object of data reads and writes.
local function version_out(meta, vm, v)
  return {
    created_time = vm.created_time, custom_metadata = custom_metadata_out(meta),
    deletion_time = vm.deletion_time, destroyed = vm.destroyed, version = v,
  }
end

local function metadata_out(meta)
  local versions = json.object()
  for k, vm in pairs(meta.versions) do
    versions[k] = {
      created_time = vm.created_time, deletion_time = vm.deletion_time,
      destroyed = vm.destroyed,
    }
  end
  return {
    cas_required = meta.cas_required == true,
    created_time = meta.created_time,
    current_version = meta.current_version,
    custom_metadata = custom_metadata_out(meta),
    delete_version_after = time.format_duration(meta.delete_version_after or 0),
    max_versions = meta.max_versions or 0,
    oldest_version = meta.oldest_version,
    updated_time = meta.updated_time,
    versions = versions,
  }
end

-- 404 with the full envelope: the version exists but was deleted.
local function deleted_response(key, meta, vm, v)
  return { status = 404, data = { [key] = null,
                                  metadata = version_out(meta, vm, v) } }
end

-- Vault keeps the newest max_versions: the larger of the key's and the
-- mount's setting when either is set, else 10.
local function trim_versions(req, cfg, meta)
  local max = math.max(meta.max_versions or 0, cfg.max_versions)
  if max <= 0 then
    max = DEFAULT_MAX_VERSIONS
  end
  if meta.current_version - meta.oldest_version < max then
    return
  end
  local oldest = meta.current_version - max + 1
  for i = meta.oldest_version, oldest - 1 do
    if meta.versions[tostring(i)] ~= nil then
      meta.versions[tostring(i)] = nil
      req.storage:delete(version_key(meta.key, i))
    end
  end
  meta.oldest_version = oldest
end

local function check_cas(req, cfg, meta)
  local options = req.data.options or {}
  local cas = options.cas
  if cas == null then
    cas = nil
  end
  if cas == nil then
    if meta.cas_required or cfg.cas_required then
      coffer.bad_request("check-and-set parameter required for this call")
    end
    return
  end
  local n = fields.convert("int", cas)
  if n == nil then
    coffer.bad_request("error parsing check-and-set parameter")
  end
  if n ~= meta.current_version then
    coffer.bad_request("check-and-set parameter did not match the current " ..
                       "version")
  end
end

-- Stores data as version current+1 and returns its metadata object.
local function add_version(req, cfg, meta, data)
  local now = time.now()
  local ts = time.format_rfc3339(now)
  local v = meta.current_version + 1
  local vm = { created_time = ts, created = now, deletion_time = "",
               destroyed = false }
  local dva = effective_dva(meta, cfg)
  if dva > 0 then
    vm.deleted_at = now + dva
    vm.deletion_time = time.format_rfc3339(now + dva)
  end
  req.storage:put_json(version_key(meta.key, v), { data = data })
  meta.versions[tostring(v)] = vm
  meta.current_version = v
  meta.updated_time = ts
  trim_versions(req, cfg, meta)
  save_meta(req, meta)
  return version_out(meta, vm, v)
end

-- ================================================================ data/ ==

-- Loads the version a read asks for (req.data.version; absent or 0 means
-- the current one). Returns the found version { meta, vm, v, data }, or
-- nil and the response to give instead: nil (nothing there: 404) or, for a
-- deleted or destroyed version, the 404 envelope whose payload member is
-- named key ("data", "subkeys").
local function load_version(req, key)
  local path = req.params.path
  local meta = load_meta(req, path)
  if meta == nil then
    return nil, nil
  end
  local v = req.data.version
  if v == nil or v == 0 then
    v = meta.current_version
  end
  local vm = meta.versions[tostring(v)]
  if vm == nil then
    return nil, nil
  end
  if vm.destroyed or is_deleted(vm) then
    return nil, deleted_response(key, meta, vm, v)
  end
  local stored = req.storage:get_json(version_key(path, v))
  if stored == nil then
    return nil, nil
  end
  return { meta = meta, vm = vm, v = v, data = stored.data }
end

local function data_read(req)
  local found, instead = load_version(req, "data")
  if found == nil then
    return instead
  end
  return { data = { data = found.data,
                    metadata = version_out(found.meta, found.vm, found.v) } }
end

local function data_write(req)
  local path = req.params.path
  if req.data.data == nil then
    coffer.bad_request("no data provided")
  end
  local cfg = load_config(req)
  local meta = load_meta(req, path) or new_meta(path, time.now_rfc3339())
  check_cas(req, cfg, meta)
  return { data = add_version(req, cfg, meta, req.data.data) }
end

-- RFC 7386 JSON merge patch; null removes a member.
local function merge_patch(target, patch)
  if not is_object(patch) then
    return patch
  end
  if not is_object(target) then
    target = {}
  end
  for k, v in pairs(patch) do
    if v == null then
      target[k] = nil
    else
      target[k] = merge_patch(target[k], v)
    end
  end
  return target
end

local function data_patch(req)
  local path = req.params.path
  if req.data.data == nil then
    coffer.bad_request("no data provided")
  end
  local cfg = load_config(req)
  local meta = load_meta(req, path)
  local vm = meta and meta.versions[tostring(meta.current_version)]
  if vm == nil then
    return { status = 404, no_body = true }
  end
  if vm.destroyed or is_deleted(vm) then
    return deleted_response("data", meta, vm, meta.current_version)
  end
  check_cas(req, cfg, meta)
  local current = req.storage:get_json(version_key(path, meta.current_version))
  local merged = merge_patch(current and current.data or {}, req.data.data)
  return { data = add_version(req, cfg, meta, merged) }
end

-- DELETE data/<p>: soft-deletes the latest version.
local function data_delete(req)
  local meta = load_meta(req, req.params.path)
  local vm = meta and meta.versions[tostring(meta.current_version)]
  if vm == nil or vm.destroyed then
    return nil
  end
  local now = time.now()
  if not is_deleted(vm, now) then
    vm.deleted_at = now
    vm.deletion_time = time.format_rfc3339(now)
    save_meta(req, meta)
  end
  return nil
end

local data_fields = {
  data = { type = "map", description = "The contents of the data map " ..
           "will be stored and returned on read." },
  options = { type = "map", description = "Options for writing a KV " ..
              "entry (cas: check-and-set version)." },
  version = { type = "int", description = "If provided during a read, " ..
              "the value at the version number will be returned." },
}

-- Writers of a key's versions and metadata hold the key's storage lock, so
-- that concurrent writes cannot both take version n+1 and check-and-set
-- means what it says.
local function locked(fn)
  return function(req)
    local lock <close> = req.storage:lock(meta_key(req.params.path))
    return fn(req)
  end
end

e:path("data/*path", {
  when = is_v2, fields = data_fields,
  help = "Write, Patch, Read, and Delete data in the Key-Value Store.",
  read = data_read, write = locked(data_write), patch = locked(data_patch),
  delete = locked(data_delete),
  exists = function(req) return load_meta(req, req.params.path) ~= nil end,
})

-- ===================================== delete/, undelete/, destroy/ ==

local versions_fields = {
  versions = { type = "ints", description = "The versions to act on." },
}

-- Runs fn(meta, vm, v) for every listed version that exists.
local function for_versions(req, missing_msg, fn)
  local versions = req.data.versions
  if versions == nil or #versions == 0 then
    coffer.bad_request(missing_msg)
  end
  local lock <close> = req.storage:lock(meta_key(req.params.path))
  local meta = load_meta(req, req.params.path)
  if meta == nil then
    return nil
  end
  for _, v in ipairs(versions) do
    local vm = meta.versions[tostring(v)]
    if vm ~= nil then
      fn(meta, vm, v)
    end
  end
  save_meta(req, meta)
  return nil
end

e:path("delete/*path", {
  when = is_v2, fields = versions_fields,
  help = "Marks one or more versions as deleted in the KV store.",
  write = function(req)
    local now = time.now()
    return for_versions(req, "No version number provided", function(_, vm)
      if not vm.destroyed and not is_deleted(vm, now) then
        vm.deleted_at = now
        vm.deletion_time = time.format_rfc3339(now)
      end
    end)
  end,
})

e:path("undelete/*path", {
  when = is_v2, fields = versions_fields,
  help = "Undeletes one or more versions from the KV store.",
  write = function(req)
    return for_versions(req, "No version number provided", function(_, vm)
      if not vm.destroyed then
        vm.deleted_at = nil
        vm.deletion_time = ""
      end
    end)
  end,
})

e:path("destroy/*path", {
  when = is_v2, fields = versions_fields,
  help = "Permanently removes one or more versions in the KV store.",
  write = function(req)
    return for_versions(req, "no version number provided",
      function(meta, vm, v)
        vm.destroyed = true
        req.storage:delete(version_key(meta.key, v))
      end)
  end,
})

-- ============================================================ metadata/ ==

-- Go's %q, enough for metadata keys.
local function go_quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local named = { ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r",
                    ['"'] = '\\"', ["\\"] = "\\\\" }
    return named[c] or string.format("\\x%02x", c:byte())
  end) .. '"'
end

local function printable(s)
  return not s:find("[%c\127]")
end

-- Converts values to strings and enforces Vault's custom_metadata limits.
local function check_custom_metadata(cm)
  local keys, errs, out = {}, {}, {}
  for k, v in pairs(cm) do
    keys[#keys + 1] = k
    if v ~= null then
      local s, why = fields.convert("string", v)
      if s == nil then
        coffer.bad_request(string.format('Field validation failed: error ' ..
          'converting input %s for field "custom_metadata": %s',
          fields.govalue(cm), why))
      end
      out[k] = s
    else
      out[k] = null
    end
  end
  if #keys > CM_MAX_KEYS then
    coffer.bad_request(multierror({ string.format(
      "payload must contain at most %d keys, provided %d", CM_MAX_KEYS, #keys) }))
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = out[k] == null and "" or out[k]
    if #k == 0 or #k > CM_MAX_KEY_LEN then
      errs[#errs + 1] = string.format("length of key %s is %d but must be " ..
        "0 < len(key) <= %d", go_quote(k), #k, CM_MAX_KEY_LEN)
    end
    if out[k] ~= null and (#v == 0 or #v > CM_MAX_VALUE_LEN) then
      errs[#errs + 1] = string.format("length of value for key %s is %d " ..
        "but must be 0 < len(value) <= %d", go_quote(k), #v, CM_MAX_VALUE_LEN)
    end
    if not printable(k) then
      errs[#errs + 1] = string.format("key %s (%s) contains unprintable " ..
        "characters", go_quote(k), k)
    end
    if not printable(v) then
      errs[#errs + 1] = string.format("value for key %s contains " ..
        "unprintable characters", go_quote(k))
    end
  end
  if #errs > 0 then
    coffer.bad_request(multierror(errs))
  end
  return out
end

local function metadata_read(req)
  local meta = load_meta(req, req.params.path)
  if meta == nil then
    return nil
  end
  return { data = metadata_out(meta) }
end

-- Applies the supplied settings; custom_metadata replaces or merges.
local function apply_metadata(meta, d, merge)
  if d.max_versions ~= nil then
    meta.max_versions = d.max_versions
  end
  if d.cas_required ~= nil then
    meta.cas_required = d.cas_required
  end
  if d.delete_version_after ~= nil then
    meta.delete_version_after = d.delete_version_after
  end
  if d.custom_metadata ~= nil then
    local cm = check_custom_metadata(d.custom_metadata)
    if merge then
      cm = merge_patch(meta.custom_metadata or {}, cm)
    else
      for k, v in pairs(cm) do
        if v == null then cm[k] = nil end
      end
    end
    meta.custom_metadata = next(cm) ~= nil and cm or nil
  end
end

local function metadata_write(req)
  local path = req.params.path
  local meta = load_meta(req, path) or new_meta(path, time.now_rfc3339())
  apply_metadata(meta, req.data, false)
  save_meta(req, meta)
  return nil
end

local function metadata_patch(req)
  local meta = load_meta(req, req.params.path)
  if meta == nil then
    return { status = 404, no_body = true }
  end
  apply_metadata(meta, req.data, true)
  meta.updated_time = time.now_rfc3339()
  save_meta(req, meta)
  return nil
end

local function metadata_delete(req)
  local path = req.params.path
  local meta = load_meta(req, path)
  if meta == nil then
    return nil
  end
  for k in pairs(meta.versions) do
    req.storage:delete(version_key(path, k))
  end
  req.storage:delete(meta_key(path))
  return nil
end

local function metadata_list(req)
  return list_keys(req.storage, meta_key(req.params.path))
end

e:path("metadata/*path", {
  when = is_v2,
  fields = {
    max_versions = { type = "int", description = "The number of versions " ..
                     "to keep. If not set, the backend's configured max " ..
                     "version is used." },
    cas_required = { type = "bool", description = "If true the key will " ..
                     "require the cas parameter to be set on all write " ..
                     "requests." },
    delete_version_after = { type = "duration", description = "The " ..
                             "length of time before a version is deleted." },
    custom_metadata = { type = "map", description = "User-provided " ..
                        "key-value pairs that are used to describe " ..
                        "arbitrary and version-agnostic information about " ..
                        "a secret." },
  },
  help = "Configures settings for the KV store.",
  read = metadata_read, write = locked(metadata_write),
  patch = locked(metadata_patch), delete = locked(metadata_delete),
  list = metadata_list,
  exists = function(req) return load_meta(req, req.params.path) ~= nil end,
})

-- ============================================================= subkeys/ ==

local function subkeys_of(v, depth, level)
  local out = json.object()
  for k, x in pairs(v) do
    if is_object(x) and (depth == 0 or level < depth) then
      out[k] = subkeys_of(x, depth, level + 1)
    else
      out[k] = null
    end
  end
  return out
end

e:path("subkeys/*path", {
  when = is_v2,
  fields = {
    version = { type = "int", description = "The version to read." },
    depth = { type = "int", description = "How deep to descend; 0 = all." },
  },
  help = "Read the structure of a secret entry from the Key-Value store " ..
         "with the values removed.",
  read = function(req)
    local found, instead = load_version(req, "subkeys")
    if found == nil then
      return instead
    end
    local depth = math.max(req.data.depth or 0, 0)
    return { data = { subkeys = subkeys_of(found.data, depth, 1),
                      metadata = version_out(found.meta, found.vm, found.v) } }
  end,
})

-- ============================================================== config ==

e:path("config", {
  when = is_v2,
  fields = {
    max_versions = { type = "int", description = "The number of versions " ..
                     "to keep for each key. Defaults to 10." },
    cas_required = { type = "bool", description = "If true, the backend " ..
                     "will require the cas parameter to be set for each " ..
                     "write." },
    delete_version_after = { type = "duration", description = "If set, " ..
                             "the length of time before a version is " ..
                             "deleted." },
  },
  help = "Configures settings for the KV store.",
  read = function(req)
    local cfg = load_config(req)
    return { data = {
      cas_required = cfg.cas_required,
      delete_version_after = time.format_duration(cfg.delete_version_after),
      max_versions = cfg.max_versions,
    } }
  end,
  write = function(req)
    local cfg = load_config(req)
    for _, k in ipairs({ "max_versions", "cas_required",
                         "delete_version_after" }) do
      if req.data[k] ~= nil then
        cfg[k] = req.data[k]
      end
    end
    req.storage:put_json("config", cfg)
    return nil
  end,
})

-- ======================================================== invalid paths ==

local ROOTS = { data = true, metadata = true, delete = true, undelete = true,
                destroy = true }
local VERBS = { read = "get", list = "list", delete = "delete",
                patch = "patch", create = "put", update = "put" }

local function invalid_path(req)
  local text
  if ROOTS[req.params.rest] then
    text = "Non-listing operations on the root of a K/V v2 mount are not " ..
           "supported."
  else
    text = "Invalid path for a versioned K/V secrets engine. See the API " ..
           "docs for the appropriate API endpoints to use. If using the " ..
           "Vault CLI, use 'vault kv " .. (VERBS[req.operation] or "get") ..
           "' for this operation."
  end
  return { status = 404, warnings = { text } }
end

e:path("*rest", {
  when = is_v2,
  read = invalid_path, write = invalid_path, patch = invalid_path,
  delete = invalid_path, list = invalid_path,
})

return e
