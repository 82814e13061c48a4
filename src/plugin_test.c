/*
 * plugin_test.c - "coffer plugin test PATH": a plugin's tests, run
 * in-process against a dev core, without HTTP.
 *
 *   coffer plugin test [-run=PATTERN] [-timeout=SECS] [-log-level=LEVEL]
 *                      [-http-allowed=URL]... [-v] PATH
 *
 * PATH is a plugin file (dir/x.lua: its tests are dir/x_test.lua, or every
 * every *_test.lua of dir when there is none), one test file (dir/x_test.lua), or a
 * folder (every *_test.lua in it). The folder is the core's plugin
 * directory, unless it is Coffer's own lua/engines or lua/auth, which the
 * core loads anyway (the built-in plugins' tests live next to them).
 *
 * What runs, in order:
 *
 *   core_init(dev)        in-memory storage, unsealed, a random root token,
 *                         the plugin folder loaded like -dev-plugin-dir
 *   for each test file    a new Lua state: the sandbox's libraries (base
 *                         without dofile/loadfile/collectgarbage, string,
 *                         table, math, utf8, coroutine) and `coffer`
 *                         (lua_api_open), plus the harness below; the file
 *                         runs with the test module as its argument
 *                         (`local t = ...`) and registers cases (t.case)
 *     for each case       the plugin's types are mounted fresh (engine X at
 *                         X/, auth method Y at auth/Y/), the case runs under
 *                         a deadline, then every mount of the case is
 *                         disabled (its leases revoked; force-revoked if
 *                         revocation fails)
 *   core_shutdown
 *
 * t.request goes through core_handle, as an HTTP worker does: token
 * lookup and CIDR check, the ACL, use counting, the router, the engine,
 * leases and Vault's JSON envelope; the reply's body is decoded for the
 * test. Shared by every case of a run: the core, tokens, policies, the
 * dev mount secret/ and leases outside the cases' mounts. Fresh per case:
 * the mounts. Fresh per file: the test's Lua state.
 *
 * The test module itself is Lua (`prelude` below) over a few C
 * primitives (`h`): request, kind, run_case, out, sleep. Its reference is
 * docs/PLUGIN_API.md ("Testing plugins").
 */
#include "plugin_test.h"

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "buf.h"
#include "core.h"
#include "json.h"
#include "log.h"
#include "lua_api.h"
#include "lua_http.h"
#include "luavm.h"
#include "request.h"
#include "storage.h"
#include "util.h"

#define PT_DEFAULT_TIMEOUT 60.0 /* seconds per case */
#define PT_MAX_SLEEP 60.0
#define PT_MAX_SOURCE ((size_t)4 * 1024 * 1024)

/* One run: what the command line asked for and what the core gave. */
struct run {
    const char *path;      /* as given */
    const char *filter;    /* -run=PATTERN (a Lua pattern), or NULL */
    const char *log_level;
    struct strvec http_allowed; /* -http-allowed=URL, repeatable */
    bool http_allowed_set;
    double timeout;        /* seconds per case */
    bool verbose;
    char *lua_dir;
    char *plugin_dir;      /* NULL: the plugin is a built-in one */
    struct strvec tests;   /* test files, in order */
    struct strvec sources; /* plugin files to find registered types in */
    struct storage *storage;
    char *root_token;
    char *unseal_key;
    int number;            /* cases reported so far */
    int passed, failed;
    double deadline;       /* time_mono() limit of the running case */
};

/* To stdout when asked for (-h), to stderr after a usage error. */
static void usage(FILE *out)
{
    fprintf(out,
            "Usage: coffer plugin test [options] PATH\n\n"
            "  Runs a Lua plugin's tests in-process against a dev core "
            "(in-memory\n"
            "  storage, unsealed, root token), without HTTP. PATH is a "
            "plugin file\n"
            "  (its tests: NAME_test.lua next to it, else every *_test.lua "
            "there),\n"
            "  a *_test.lua file, or a folder (every *_test.lua in it).\n\n"
            "  -run=PATTERN       Run only cases whose name matches the Lua "
            "pattern.\n"
            "  -timeout=SECS      Longest a case may run (default 60).\n"
            "  -log-level=LEVEL   The core's log level (default error).\n"
            "  -http-allowed=URL  A URL prefix coffer.http may call "
            "(repeatable; as\n"
            "                     the server's -dev-plugin-http-allowed).\n"
            "  -v                 Print the traceback of each failure.\n");
}

/* ============================================================ options == */

static int parse_timeout(const char *arg, const char *v, double *out)
{
    char *end = NULL;

    *out = strtod(v, &end);
    if (end == v || *end != '\0' || !(*out > 0) || *out > 86400) {
        fprintf(stderr, "Error: invalid value in \"%s\"\n", arg);
        return -1;
    }
    return 0;
}

/*
 * argv: "plugin" "test" options... PATH. 0, 1 after printing the help
 * (-h), or -1 after printing why.
 */
static int parse_args(int argc, char **argv, struct run *r)
{
    const char *v;

    for (int i = 3; i < argc; i++) {
        const char *a = argv[i];
        if ((v = flag_value(a, "run")) != NULL) {
            r->filter = v;
        } else if ((v = flag_value(a, "log-level")) != NULL) {
            r->log_level = v;
        } else if ((v = flag_value(a, "http-allowed")) != NULL) {
            struct errbuf err;
            if (v[0] != '\0' && lua_http_allow_check(v, &err) != 0) {
                fprintf(stderr, "Error: invalid URL in \"%s\": %s\n", a,
                        err.msg);
                return -1;
            }
            if (v[0] != '\0')
                strvec_push(&r->http_allowed, v);
            r->http_allowed_set = true;
        } else if ((v = flag_value(a, "timeout")) != NULL) {
            if (parse_timeout(a, v, &r->timeout) != 0)
                return -1;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--v") == 0) {
            r->verbose = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "-help") == 0 ||
                   strcmp(a, "--help") == 0) {
            usage(stdout);
            return 1;
        } else if (a[0] == '-') {
            fprintf(stderr, "Error: unknown flag \"%s\"\n\n", a);
            usage(stderr);
            return -1;
        } else if (r->path == NULL) {
            r->path = a;
        } else {
            fprintf(stderr, "Error: give one PATH\n\n");
            usage(stderr);
            return -1;
        }
    }
    if (r->path == NULL) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/* ============================================================== files == */

static bool is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* True if a and b name the same existing folder. */
static bool same_dir(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];

    return realpath(a, ra) != NULL && realpath(b, rb) != NULL &&
           strcmp(ra, rb) == 0;
}

/* dir/name as a new string. */
static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = xmalloc(n);

    snprintf(p, n, "%s/%s", dir, name);
    return p;
}


/* ============================================================ prelude == */

/* The test module: Lua run in each test state with h as its argument. */
static const char prelude[] =
    "-- The test module, `t`, over the C primitives in h (plugin_test.c).\n"
    "local h = ...\n"
    "local json = coffer.json\n"
    "local null = json.null\n"
    "local t = { root = h.root, mounts = {} }\n"
    "local cases = {}\n"
    "local case_mounts = {}\n"
    "\n"
    "local function show(v)\n"
    "  if type(v) == \"string\" then return string.format(\"%q\", v) end\n"
    "  if type(v) == \"table\" then\n"
    "    local ok, s = pcall(json.encode, v)\n"
    "    if ok then return s end\n"
    "  end\n"
    "  return tostring(v)\n"
    "end\n"
    "\n"
    "local function prefix(msg)\n"
    "  return msg ~= nil and (tostring(msg) .. \": \") or \"\"\n"
    "end\n"
    "\n"
    "local function nonnull(v)\n"
    "  if v == null then return nil end\n"
    "  return v\n"
    "end\n"
    "\n"
    "-- ================================================================ requests\n"
    "\n"
    "-- t.request{op=, path=, data=, token=, client_addr=} -> r\n"
    "--   r = {status, body (decoded JSON, {} if none), text (as sent),\n"
    "--        data, errors ({} if none), lease_id, auth, warnings}\n"
    "-- token: nil = the root token, false = none, else the token to send.\n"
    "function t.request(spec)\n"
    "  if type(spec) ~= \"table\" or type(spec.path) ~= \"string\" then\n"
    "    error(\"t.request{op = ..., path = ..., data = ..., token = ...}\", 2)\n"
    "  end\n"
    "  local token = spec.token\n"
    "  if token == nil then token = h.root elseif token == false then token = nil end\n"
    "  local body\n"
    "  if spec.data ~= nil then\n"
    "    if type(spec.data) ~= \"table\" then\n"
    "      error(\"t.request: data must be a table\", 2)\n"
    "    end\n"
    "    body = next(spec.data) == nil and \"{}\" or json.encode(spec.data)\n"
    "  end\n"
    "  local status, text = h.request(spec.op or \"read\", spec.path, body, token,\n"
    "                                 spec.client_addr)\n"
    "  local decoded\n"
    "  if text ~= nil and text:match(\"^%s*[{%[]\") then\n"
    "    local ok, v = pcall(json.decode, text)\n"
    "    if ok then decoded = v end\n"
    "  end\n"
    "  local b = type(decoded) == \"table\" and decoded or {}\n"
    "  return {\n"
    "    status = status, body = b, text = text or \"\",\n"
    "    data = nonnull(b.data), errors = nonnull(b.errors) or {},\n"
    "    lease_id = nonnull(b.lease_id), auth = nonnull(b.auth),\n"
    "    warnings = nonnull(b.warnings),\n"
    "  }\n"
    "end\n"
    "\n"
    "function t.read(path, token)\n"
    "  return t.request { op = \"read\", path = path, token = token }\n"
    "end\n"
    "function t.list(path, token)\n"
    "  return t.request { op = \"list\", path = path, token = token }\n"
    "end\n"
    "function t.delete(path, token)\n"
    "  return t.request { op = \"delete\", path = path, token = token }\n"
    "end\n"
    "function t.write(path, data, token)\n"
    "  return t.request { op = \"update\", path = path, data = data or {},\n"
    "                     token = token }\n"
    "end\n"
    "\n"
    "-- Raises (at the caller's line) unless r.status is want.\n"
    "local function expect(r, want, what, level)\n"
    "  if r.status ~= want then\n"
    "    error(prefix(what) .. \"expected status \" .. want .. \", got \" ..\n"
    "          r.status .. \": \" .. r.text:gsub(\"%s+$\", \"\"), level + 1)\n"
    "  end\n"
    "  return r\n"
    "end\n"
    "\n"
    "-- ================================================================== mounts\n"
    "\n"
    "local function mount(path, mtype, opts, kind)\n"
    "  local base = kind == \"auth\" and \"sys/auth/\" or \"sys/mounts/\"\n"
    "  return t.request { op = \"update\", path = base .. path, data = {\n"
    "    type = mtype, description = opts.description, options = opts.options,\n"
    "    config = opts.config,\n"
    "  } }\n"
    "end\n"
    "\n"
    "-- Force-revokes every lease under prefix (which ends in \"/\"), one lease\n"
    "-- id at a time: the core refuses writes to paths ending in \"/\".\n"
    "local function force_revoke(prefix, depth)\n"
    "  local r = t.request { op = \"list\", path = \"sys/leases/lookup/\" .. prefix }\n"
    "  for _, k in ipairs(r.status == 200 and r.data.keys or {}) do\n"
    "    if k:sub(-1) == \"/\" then\n"
    "      if depth < 16 then force_revoke(prefix .. k, depth + 1) end\n"
    "    else\n"
    "      t.request { op = \"update\", path = \"sys/leases/revoke-force/\" ..\n"
    "                  prefix .. k }\n"
    "    end\n"
    "  end\n"
    "end\n"
    "\n"
    "local function unmount(m)\n"
    "  local base = m.kind == \"auth\" and \"sys/auth/\" or \"sys/mounts/\"\n"
    "  local r = t.request { op = \"delete\", path = base .. m.path }\n"
    "  if r.status >= 300 then\n"
    "    -- Revocation failed (a service down?): drop the leases, then retry.\n"
    "    force_revoke((m.kind == \"auth\" and \"auth/\" or \"\") .. m.path .. \"/\", 0)\n"
    "    r = t.request { op = \"delete\", path = base .. m.path }\n"
    "  end\n"
    "  return r\n"
    "end\n"
    "\n"
    "-- t.enable(path, type, {options=, config=, description=, auth=bool}) -> r.\n"
    "-- An auth method (a type registered with coffer.auth) goes under auth/.\n"
    "-- Disabled again when the case ends.\n"
    "function t.enable(path, mtype, opts)\n"
    "  opts = opts or {}\n"
    "  if type(path) ~= \"string\" or type(mtype) ~= \"string\" then\n"
    "    error(\"t.enable(path, type, opts)\", 2)\n"
    "  end\n"
    "  local kind = opts.auth and \"auth\" or\n"
    "               (opts.auth == nil and h.kind(mtype)) or \"engine\"\n"
    "  path = path:gsub(\"/+$\", \"\")\n"
    "  if kind == \"auth\" then path = path:gsub(\"^auth/\", \"\") end\n"
    "  local r = mount(path, mtype, opts, kind)\n"
    "  expect(r, 204, \"t.enable(\" .. show(path) .. \", \" .. show(mtype) .. \")\", 2)\n"
    "  case_mounts[#case_mounts + 1] = { path = path, kind = kind }\n"
    "  return r\n"
    "end\n"
    "\n"
    "-- t.disable(path) -> r: disables a mount now (revoking its leases).\n"
    "function t.disable(path, opts)\n"
    "  local kind = (opts and opts.auth or path:match(\"^auth/\")) and \"auth\" or\n"
    "               \"engine\"\n"
    "  path = path:gsub(\"/+$\", \"\")\n"
    "  if kind == \"auth\" then path = path:gsub(\"^auth/\", \"\") end\n"
    "  local base = kind == \"auth\" and \"sys/auth/\" or \"sys/mounts/\"\n"
    "  local r = t.request { op = \"delete\", path = base .. path }\n"
    "  if r.status < 300 then\n"
    "    for i = #case_mounts, 1, -1 do\n"
    "      if case_mounts[i].path == path and case_mounts[i].kind == kind then\n"
    "        table.remove(case_mounts, i)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  return r\n"
    "end\n"
    "\n"
    "-- The types the plugin registers, found in its source and checked\n"
    "-- against what the core loaded: each is mounted at its name per case.\n"
    "do\n"
    "  local seen = {}\n"
    "  for _, text in ipairs(h.sources) do\n"
    "    for kind, spec in text:gmatch(\"coffer%.(%a+)%s*%(?%s*(%b{})\") do\n"
    "      local name = spec:match(\"[{,;%s]name%s*=%s*[\\\"']([%w_%-]+)[\\\"']\")\n"
    "      if (kind == \"engine\" or kind == \"auth\") and name and not seen[name]\n"
    "         and h.kind(name) == kind then\n"
    "        seen[name] = true\n"
    "        t.mounts[#t.mounts + 1] = { path = name, type = name, kind = kind }\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "\n"
    "local function setup_case()\n"
    "  for _, m in ipairs(t.mounts) do\n"
    "    local r = mount(m.path, m.type, {}, m.kind)\n"
    "    if r.status >= 300 then\n"
    "      error(\"harness: cannot mount \" .. m.type .. \" at \" .. m.path .. \": \" ..\n"
    "            r.text:gsub(\"%s+$\", \"\"), 0)\n"
    "    end\n"
    "    case_mounts[#case_mounts + 1] = { path = m.path, kind = m.kind }\n"
    "  end\n"
    "end\n"
    "\n"
    "local function teardown_case()\n"
    "  for i = #case_mounts, 1, -1 do\n"
    "    local m = case_mounts[i]\n"
    "    local r = unmount(m)\n"
    "    if r.status >= 300 then\n"
    "      h.out(\"# warning: cannot disable \" .. m.path .. \": \" ..\n"
    "            r.text:gsub(\"%s+$\", \"\"))\n"
    "    end\n"
    "  end\n"
    "  case_mounts = {}\n"
    "end\n"
    "\n"
    "-- ======================================================= tokens, leases\n"
    "\n"
    "-- t.token{policies=, ttl=, num_uses=, meta=, no_default_policy=, ...}\n"
    "--   -> token, r: a child of the root token (auth/token/create).\n"
    "function t.token(spec)\n"
    "  local r = t.request { op = \"update\", path = \"auth/token/create\",\n"
    "                        data = spec or {} }\n"
    "  expect(r, 200, \"t.token\", 2)\n"
    "  return r.auth.client_token, r\n"
    "end\n"
    "\n"
    "-- t.policy(name, hcl_text): writes an ACL policy.\n"
    "function t.policy(name, text)\n"
    "  local r = t.request { op = \"update\", path = \"sys/policies/acl/\" .. name,\n"
    "                        data = { policy = text } }\n"
    "  expect(r, 204, \"t.policy(\" .. show(name) .. \")\", 2)\n"
    "  return r\n"
    "end\n"
    "\n"
    "-- t.login(path, data) -> token or nil, r. path \"auth/userpass/login/alice\"\n"
    "-- (the \"auth/\" is optional). Sent without a token, as a login is.\n"
    "function t.login(path, data)\n"
    "  if not path:match(\"^auth/\") then path = \"auth/\" .. path end\n"
    "  local r = t.request { op = \"update\", path = path, data = data or {},\n"
    "                        token = false }\n"
    "  return r.status == 200 and r.auth and r.auth.client_token or nil, r\n"
    "end\n"
    "\n"
    "function t.revoke(lease_id)\n"
    "  return t.request { op = \"update\", path = \"sys/leases/revoke\",\n"
    "                     data = { lease_id = lease_id } }\n"
    "end\n"
    "function t.renew(lease_id, increment)\n"
    "  return t.request { op = \"update\", path = \"sys/leases/renew\",\n"
    "                     data = { lease_id = lease_id, increment = increment } }\n"
    "end\n"
    "function t.lease(lease_id)\n"
    "  return t.request { op = \"update\", path = \"sys/leases/lookup\",\n"
    "                     data = { lease_id = lease_id } }\n"
    "end\n"
    "\n"
    "t.sleep = h.sleep\n"
    "\n"
    "-- t.wait_until(fn, timeout_secs, msg): polls fn every 50 ms until it\n"
    "-- returns true; fails at the caller's line after timeout (default 5 s).\n"
    "function t.wait_until(fn, timeout, msg)\n"
    "  local limit = coffer.time.now() + (timeout or 5)\n"
    "  while not fn() do\n"
    "    if coffer.time.now() > limit then\n"
    "      error(prefix(msg) .. \"condition not met within \" .. (timeout or 5) ..\n"
    "            \" s\", 2)\n"
    "    end\n"
    "    h.sleep(0.05)\n"
    "  end\n"
    "end\n"
    "\n"
    "-- ============================================================= assertions\n"
    "\n"
    "local function same(a, b, depth)\n"
    "  if a == b then return true end\n"
    "  if type(a) ~= \"table\" or type(b) ~= \"table\" or depth > 50 then\n"
    "    return false\n"
    "  end\n"
    "  for k, v in pairs(a) do\n"
    "    if not same(v, b[k], depth + 1) then return false end\n"
    "  end\n"
    "  for k in pairs(b) do\n"
    "    if a[k] == nil then return false end\n"
    "  end\n"
    "  return true\n"
    "end\n"
    "\n"
    "function t.eq(got, want, msg)\n"
    "  if not same(got, want, 0) then\n"
    "    error(prefix(msg) .. \"expected \" .. show(want) .. \", got \" .. show(got), 2)\n"
    "  end\n"
    "end\n"
    "function t.ne(got, other, msg)\n"
    "  if same(got, other, 0) then\n"
    "    error(prefix(msg) .. \"expected something other than \" .. show(other), 2)\n"
    "  end\n"
    "end\n"
    "function t.ok(v, msg)\n"
    "  if not v then\n"
    "    error(msg ~= nil and tostring(msg) or \"expected a true value, got \" ..\n"
    "          show(v), 2)\n"
    "  end\n"
    "  return v\n"
    "end\n"
    "function t.match(s, pattern, msg)\n"
    "  if type(s) ~= \"string\" or not s:find(pattern) then\n"
    "    error(prefix(msg) .. show(s) .. \" does not match \" .. show(pattern), 2)\n"
    "  end\n"
    "  return s\n"
    "end\n"
    "-- t.status(r, code, msg) -> r: r.status must be code (the body is shown\n"
    "-- otherwise).\n"
    "function t.status(r, want, msg)\n"
    "  local checked = expect(r, want, msg, 2) -- not a tail call\n"
    "  return checked\n"
    "end\n"
    "-- t.fails(fn, pattern, msg) -> message: fn must raise an error whose text\n"
    "-- (tostring of it) matches the Lua pattern.\n"
    "function t.fails(fn, pattern, msg)\n"
    "  local ok, err = pcall(fn)\n"
    "  if ok then\n"
    "    error(prefix(msg) .. \"expected an error, got none\", 2)\n"
    "  end\n"
    "  local text = type(err) == \"string\" and err or tostring(err)\n"
    "  if pattern ~= nil and not text:find(pattern) then\n"
    "    error(prefix(msg) .. \"error \" .. show(text) .. \" does not match \" ..\n"
    "          show(pattern), 2)\n"
    "  end\n"
    "  return text\n"
    "end\n"
    "\n"
    "function t.case(name, fn)\n"
    "  if type(name) ~= \"string\" or type(fn) ~= \"function\" then\n"
    "    error(\"t.case(name, function)\", 2)\n"
    "  end\n"
    "  cases[#cases + 1] = { name = name, fn = fn }\n"
    "end\n"
    "\n"
    "-- ================================================================= runner\n"
    "\n"
    "-- run(chunk or load error, file, first case number) -> passed, failed\n"
    "return function(chunk, file, first)\n"
    "  local n, passed, failed = first - 1, 0, 0\n"
    "  local function report(ok, name, msg)\n"
    "    n = n + 1\n"
    "    if ok then\n"
    "      passed = passed + 1\n"
    "      h.out(\"ok \" .. n .. \" - \" .. name)\n"
    "      return\n"
    "    end\n"
    "    failed = failed + 1\n"
    "    msg = tostring(msg)\n"
    "    local line, rest = msg:match(\"^([^\\n]*)\\n?(.*)$\")\n"
    "    h.out(\"not ok \" .. n .. \" - \" .. name .. \": \" .. line)\n"
    "    if h.verbose then\n"
    "      for l in rest:gmatch(\"[^\\n]+\") do h.out(\"#   \" .. l) end\n"
    "    end\n"
    "  end\n"
    "  h.out(\"# \" .. file)\n"
    "  if type(chunk) ~= \"function\" then\n"
    "    report(false, file, chunk)\n"
    "    return passed, failed\n"
    "  end\n"
    "  local ok, msg = h.run_case(function() chunk(t) end)\n"
    "  if not ok then\n"
    "    report(false, file, msg)\n"
    "    return passed, failed\n"
    "  end\n"
    "  if #cases == 0 then\n"
    "    report(false, file, file .. \": no test cases (t.case)\")\n"
    "  end\n"
    "  for _, c in ipairs(cases) do\n"
    "    if h.filter == nil or c.name:find(h.filter) then\n"
    "      local cok, cmsg = h.run_case(function()\n"
    "        setup_case()\n"
    "        c.fn(t)\n"
    "      end)\n"
    "      local tok, tmsg = pcall(teardown_case)\n"
    "      if cok and not tok then cok, cmsg = false, \"harness: \" .. tostring(tmsg) end\n"
    "      report(cok, c.name, cmsg)\n"
    "    end\n"
    "  end\n"
    "  return passed, failed\n"
    "end\n";

/*
 * Adds the .lua files of dir, sorted: the *_test.lua ones to tests (if not
 * NULL), the others to sources (if not NULL).
 */
static void list_dir(const char *dir, struct strvec *tests,
                     struct strvec *sources)
{
    struct strvec names;
    struct dirent *de;
    DIR *d = opendir(dir);

    if (d == NULL)
        return;
    strvec_init(&names);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.' && str_has_suffix(de->d_name, ".lua"))
            strvec_push(&names, de->d_name);
    }
    closedir(d);
    strvec_sort(&names);
    for (size_t i = 0; i < names.n; i++) {
        struct strvec *to = str_has_suffix(names.v[i], "_test.lua") ? tests
                                                                   : sources;
        if (to != NULL)
            strvec_push_owned(to, join(dir, names.v[i]));
    }
    strvec_release(&names);
}

/* For a file dir/x.lua or dir/x_test.lua: the sibling dir/<x><suffix>. */
static char *sibling(const char *file, const char *strip, const char *suffix)
{
    size_t n = strlen(file) - strlen(strip);
    size_t len = n + strlen(suffix) + 1;
    char *p = xmalloc(len);

    snprintf(p, len, "%.*s%s", (int)n, file, suffix);
    return p;
}

/* The tests and sources of a plugin file or a test file in dir. */
static void plan_file(struct run *r, const char *dir)
{
    char *other = NULL;

    if (str_has_suffix(r->path, "_test.lua")) {
        strvec_push(&r->tests, r->path);
        other = sibling(r->path, "_test.lua", ".lua");
        if (is_file(other))
            strvec_push(&r->sources, other);
        else
            list_dir(dir, NULL, &r->sources);
    } else {
        strvec_push(&r->sources, r->path);
        other = sibling(r->path, ".lua", "_test.lua");
        if (is_file(other))
            strvec_push(&r->tests, other);
        else
            list_dir(dir, &r->tests, NULL);
    }
    free(other);
}

/*
 * Fills r->tests, r->sources and r->plugin_dir from r->path. 0, or -1
 * after printing why.
 */
static int plan(struct run *r)
{
    const char *slash = strrchr(r->path, '/');
    char *dir = NULL, *engines = NULL, *auths = NULL, *init = NULL;
    int rc = -1;

    if (is_dir(r->path)) {
        dir = xstrdup(r->path);
        list_dir(dir, &r->tests, &r->sources);
    } else if (is_file(r->path) && str_has_suffix(r->path, ".lua")) {
        dir = slash != NULL ? xstrndup(r->path, (size_t)(slash - r->path))
                            : xstrdup(".");
        if (dir[0] == '\0') {
            free(dir);
            dir = xstrdup("/");
        }
        plan_file(r, dir);
    } else {
        fprintf(stderr, "Error: %s is neither a .lua file nor a folder\n",
                r->path);
        goto out;
    }
    if (r->tests.n == 0) {
        fprintf(stderr, "Error: no *_test.lua file for %s\n", r->path);
        goto out;
    }
    /* Coffer's own folders are loaded by the core already; a plugin
       folder (<name>/init.lua) is loaded from the folder above it. */
    engines = join(r->lua_dir, "engines");
    auths = join(r->lua_dir, "auth");
    init = join(dir, "init.lua");
    if (is_file(init))
        r->plugin_dir = join(dir, "..");
    else if (!same_dir(dir, engines) && !same_dir(dir, auths))
        r->plugin_dir = xstrdup(dir);
    rc = 0;
out:
    free(dir);
    free(engines);
    free(auths);
    free(init);
    return rc;
}

/* ================================================================ core == */

/* The dev core of `coffer server -dev`, without its listener. */
static int boot(struct run *r, struct errbuf *err)
{
    struct core_config cfg = {0};

    r->storage = storage_inmem_new();
    cfg.dev_mode = true;
    cfg.lua_dir = r->lua_dir;
    cfg.plugin_dir = r->plugin_dir;
    cfg.physical = r->storage;
    /* Failed revocations are retried soon, so a test sees the retry. */
    cfg.lease_retry_base = 0.2;
    cfg.lease_retry_max = 2;
    return core_init(&cfg, &r->root_token, &r->unseal_key, err);
}

/* ========================================================= primitives == */

/* Only the main thread runs test states: the running case's deadline. */
static double case_deadline;
static double case_timeout;

/*
 * Count hook: raises once the case's deadline passed, then fires on
 * every instruction so a pcall in the test cannot swallow the timeout.
 */
static void deadline_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    if (time_mono() < case_deadline)
        return;
    lua_sethook(L, deadline_hook, LUA_MASKCOUNT, 1);
    luaL_where(L, 0); /* the interrupted function's file:line */
    lua_pushfstring(L, "test timed out after %f s", case_timeout);
    lua_concat(L, 2);
    lua_error(L);
}

/* Message handler: the message (any value, as text) and a traceback. */
static int msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);

    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") &&
            lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)",
                                  luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static struct run *run_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static int op_parse(const char *s, enum req_op *op)
{
    static const struct {
        const char *name;
        enum req_op op;
    } ops[] = {
        {"read", OP_READ},     {"create", OP_CREATE}, {"update", OP_UPDATE},
        {"write", OP_UPDATE},  {"delete", OP_DELETE}, {"list", OP_LIST},
        {"patch", OP_PATCH},
    };

    for (size_t i = 0; i < ARRAY_LEN(ops); i++) {
        if (strcmp(s, ops[i].name) == 0) {
            *op = ops[i].op;
            return 0;
        }
    }
    return -1;
}

/*
 * h.request(op, path, json_body|nil, token|nil, client_addr|nil)
 *   -> status, body|nil
 * One request through core_handle, as an HTTP worker runs it. Arguments
 * are checked before anything is allocated; nothing raises between
 * building the request and releasing the reply but the final pushes.
 * [-5, +2, e]
 */
static int l_pt_request(lua_State *L)
{
    const char *opname = luaL_checkstring(L, 1);
    const char *path = luaL_checkstring(L, 2);
    size_t blen = 0;
    const char *body = luaL_optlstring(L, 3, NULL, &blen);
    const char *token = luaL_optstring(L, 4, NULL);
    const char *addr = luaL_optstring(L, 5, "127.0.0.1");
    struct request req;
    struct reply reply;
    struct errbuf err;
    enum req_op op = OP_READ;
    cJSON *data;

    if (op_parse(opname, &op) != 0)
        return luaL_argerror(L, 1, "read, create, update, write, delete, "
                                   "list or patch");
    while (*path == '/')
        path++;
    if (strncmp(path, "v1/", 3) == 0)
        path += 3;
    data = body != NULL ? json_parse(body, blen, JSON_DEPTH_LIMIT, false, &err)
                        : cJSON_CreateObject();
    if (data == NULL)
        return luaL_error(L, "t.request: data: %s", err.msg);
    if (!cJSON_IsObject(data)) {
        cJSON_Delete(data);
        return luaL_error(L, "t.request: data must be a JSON object");
    }
    request_init(&req);
    req.op = op;
    req.path = xstrdup(path);
    req.data = data;
    req.client_token = token != NULL ? xstrdup(token) : NULL;
    snprintf(req.remote_addr, sizeof(req.remote_addr), "%s", addr);
    core_handle(&req, &reply);
    request_release(&req);
    lua_pushinteger(L, reply.status);
    if (reply.body != NULL)
        lua_pushlstring(L, reply.body, reply.len);
    else
        lua_pushnil(L);
    reply_release(&reply);
    return 2;
}

/* h.kind(type) -> "engine", "auth" or nil: what the core loaded. */
static int l_pt_kind(lua_State *L)
{
    const char *type = luaL_checkstring(L, 1);

    if (luavm_auth_exists(type))
        lua_pushliteral(L, "auth");
    else if (luavm_engine_exists(type))
        lua_pushliteral(L, "engine");
    else
        lua_pushnil(L);
    return 1;
}

/*
 * h.run_case(fn) -> true | false, message-with-traceback: fn() under
 * pcall with the case's deadline armed. The hook is removed before any
 * more Lua runs. [-1, +(1|2), -]
 */
static int l_pt_run_case(lua_State *L)
{
    struct run *r = run_of(L);
    int status;

    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_pushcfunction(L, msgh);
    lua_insert(L, 1);
    case_timeout = r->timeout;
    case_deadline = time_mono() + r->timeout;
    lua_sethook(L, deadline_hook, LUA_MASKCOUNT, 1000);
    status = lua_pcall(L, 0, 0, 1);
    lua_sethook(L, NULL, 0, 0);
    if (status == LUA_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

/* h.out(line): one line on stdout, flushed (the test report). */
static int l_pt_out(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);

    fwrite(s, 1, n, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    return 0;
}

/* h.sleep(seconds), at most PT_MAX_SLEEP. */
static int l_pt_sleep(lua_State *L)
{
    lua_Number secs = luaL_checknumber(L, 1);
    struct timespec ts;

    luaL_argcheck(L, secs >= 0 && secs <= PT_MAX_SLEEP, 1,
                  "between 0 and 60 seconds");
    ts.tv_sec = (time_t)secs;
    ts.tv_nsec = (long)((secs - (lua_Number)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0)
        ;
    return 0;
}

/* print(...): a TAP comment line, "# " and the values, tab-separated. */
static int l_pt_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;

    luaL_buffinit(L, &b);
    luaL_addstring(&b, "# ");
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    fprintf(stdout, "%s\n", lua_tostring(L, -1));
    fflush(stdout);
    return 0;
}

/* load(text, name, mode, env): text chunks only, as in the sandbox. */
static int l_pt_load(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *name = luaL_optstring(L, 2, "=(load)");
    bool has_env = !lua_isnone(L, 4);

    if (luaL_loadbufferx(L, s, n, name, "t") != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (has_env) {
        lua_pushvalue(L, 4);
        if (lua_setupvalue(L, -2, 1) == NULL)
            lua_pop(L, 1);
    }
    return 1;
}

/* ======================================================== test states == */

static void pcall_or_raise(lua_State *L, int nargs, int nres)
{
    if (lua_pcall(L, nargs, nres, 0) != LUA_OK)
        lua_error(L);
}

/* The sandbox's libraries and `coffer` as globals. [-0, +0, e] */
static void open_libs(lua_State *L)
{
    static const char *const drop[] = {"dofile", "loadfile",
                                       "collectgarbage"};
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},        {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table},  {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},  {LUA_COLIBNAME, luaopen_coroutine},
    };

    for (size_t i = 0; i < ARRAY_LEN(libs); i++) {
        luaL_requiref(L, libs[i].name, libs[i].func, 1);
        lua_pop(L, 1);
    }
    for (size_t i = 0; i < ARRAY_LEN(drop); i++) {
        lua_pushnil(L);
        lua_setglobal(L, drop[i]);
    }
    lua_pushcfunction(L, l_pt_print);
    lua_setglobal(L, "print");
    lua_pushcfunction(L, l_pt_load);
    lua_setglobal(L, "load");
    lua_api_open(L);
    lua_setglobal(L, "coffer");
}

/* Pushes h: the primitives, bound to r, and the run's settings. */
static void push_primitives(lua_State *L, struct run *r)
{
    static const luaL_Reg funcs[] = {
        {"request", l_pt_request}, {"kind", l_pt_kind},
        {"run_case", l_pt_run_case}, {"out", l_pt_out},
        {"sleep", l_pt_sleep},     {NULL, NULL},
    };
    struct buf b;
    struct file_error why;

    lua_newtable(L);
    lua_pushlightuserdata(L, r);
    luaL_setfuncs(L, funcs, 1);
    lua_pushstring(L, r->root_token);
    lua_setfield(L, -2, "root");
    lua_pushboolean(L, r->verbose);
    lua_setfield(L, -2, "verbose");
    if (r->filter != NULL) {
        lua_pushstring(L, r->filter);
        lua_setfield(L, -2, "filter");
    }
    lua_createtable(L, (int)r->sources.n, 0);
    for (size_t i = 0; i < r->sources.n; i++) {
        buf_init(&b, PT_MAX_SOURCE);
        if (file_read(r->sources.v[i], &b, &why) == 0 && b.ptr != NULL) {
            lua_pushlstring(L, b.ptr, b.len); /* may raise: b leaks then */
            lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        }
        buf_release(&b);
    }
    lua_setfield(L, -2, "sources");
}

/*
 * Runs one test file, protected (argument 1: the run, 2: the file): the
 * state, the prelude, the file's chunk (or its load error), the runner.
 */
static int file_main(lua_State *L)
{
    struct run *r = lua_touserdata(L, 1);
    const char *file = lua_tostring(L, 2);

    open_libs(L);
    push_primitives(L, r);
    if (luaL_loadbufferx(L, prelude, sizeof(prelude) - 1, "=harness",
                         "t") != LUA_OK)
        lua_error(L);
    lua_insert(L, -2);
    pcall_or_raise(L, 1, 1); /* the runner */
    luaL_loadfilex(L, file, "t"); /* the chunk, or its error message */
    lua_pushstring(L, file);
    lua_pushinteger(L, r->number + 1);
    pcall_or_raise(L, 3, 2);
    r->passed += (int)lua_tointeger(L, -2);
    r->failed += (int)lua_tointeger(L, -1);
    r->number += (int)(lua_tointeger(L, -2) + lua_tointeger(L, -1));
    return 0;
}

/* A failure outside any case, reported as one. */
static void report_failure(struct run *r, const char *what, const char *msg)
{
    size_t n = msg != NULL ? strcspn(msg, "\n") : 0;

    r->number++;
    r->failed++;
    printf("not ok %d - %s: %.*s\n", r->number, what, (int)n,
           msg != NULL ? msg : "?");
    fflush(stdout);
}

static void run_file(struct run *r, const char *file)
{
    lua_State *L = luaL_newstate();

    if (L == NULL) {
        report_failure(r, file, "cannot create a Lua state");
        return;
    }
    LUA_API_CTX(L) = NULL; /* no request: coffer.* calls that need one
                              raise */
    lua_pushcfunction(L, msgh);
    lua_pushcfunction(L, file_main);
    lua_pushlightuserdata(L, r);
    lua_pushstring(L, file);
    if (lua_pcall(L, 2, 0, 1) != LUA_OK)
        report_failure(r, file, lua_tostring(L, -1));
    lua_close(L);
}

/* ============================================================== main == */

int plugin_test_main(int argc, char **argv)
{
    struct run r = {.timeout = PT_DEFAULT_TIMEOUT, .log_level = "error"};
    struct errbuf err = {{0}};
    bool core_up = false;
    bool help = false;
    int level;

    strvec_init(&r.tests);
    strvec_init(&r.sources);
    strvec_init(&r.http_allowed);
    if (argc >= 3 && (strcmp(argv[2], "-h") == 0 ||
                      strcmp(argv[2], "-help") == 0 ||
                      strcmp(argv[2], "--help") == 0)) {
        usage(stdout);
        help = true;
        goto out;
    }
    if (argc < 3 || strcmp(argv[2], "test") != 0) {
        usage(stderr);
        goto out;
    }
    switch (parse_args(argc, argv, &r)) {
    case 0:
        break;
    case 1: /* -h */
        help = true;
        goto out;
    default:
        goto out;
    }
    level = log_level_parse(r.log_level);
    if (level < 0) {
        fprintf(stderr, "Error: unknown log level \"%s\"\n", r.log_level);
        goto out;
    }
    log_set_level((enum log_level)level);
    r.lua_dir = lua_dir_locate();
    if (plan(&r) != 0)
        goto out;
    signal(SIGPIPE, SIG_IGN);
    if (lua_http_global_init(r.http_allowed_set ? &r.http_allowed : NULL,
                             &err) != 0) {
        fprintf(stderr, "Error: %s\n", err.msg);
        goto out;
    }
    core_up = true;
    if (boot(&r, &err) != 0) {
        report_failure(&r, "loading the plugins", err.msg);
    } else {
        for (size_t i = 0; i < r.tests.n; i++)
            run_file(&r, r.tests.v[i]);
    }
    printf("%d passed, %d failed\n", r.passed, r.failed);
    fflush(stdout);
out:
    if (core_up) {
        core_shutdown();
        lua_http_global_shutdown();
    }
    storage_free(r.storage);
    secure_free_str(r.root_token);
    secure_free_str(r.unseal_key);
    free(r.lua_dir);
    free(r.plugin_dir);
    strvec_release(&r.tests);
    strvec_release(&r.sources);
    strvec_release(&r.http_allowed);
    if (help)
        return 0;
    return core_up && r.failed == 0 && r.passed > 0 ? 0 : 1;
}
