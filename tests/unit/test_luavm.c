/*
 * test_luavm.c - the Lua runtime: sandbox, call protocol, framework, KV.
 *
 * Runs real scripts from lua/ through luavm_handle with an in-memory
 * storage and hand-built mounts, plus a test engine (written to a temp
 * directory next to symlinks of the real lua/coffer and lua/engines/kv.lua)
 * whose paths misbehave on purpose: raise, return nonsense, loop forever,
 * exhaust memory, touch the sandbox's walls.
 */
#include "../../src/luavm.c"

#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "router.h"

static struct storage *st;
static char tmpdir[PATH_MAX];
static char gooddir[PATH_MAX]; /* the lua dir the shared runtime uses */
static struct mount kv1, kv2, tm;

/* ============================================================ helpers == */

static void mount_setup(struct mount *m, const char *path, const char *type,
                        const char *uuid, const char *version)
{
    char prefix[128];

    memset(m, 0, sizeof(*m));
    m->path = xstrdup(path);
    m->type = xstrdup(type);
    m->description = xstrdup("");
    snprintf(m->uuid, sizeof(m->uuid), "%s", uuid);
    snprintf(m->accessor, sizeof(m->accessor), "%s_%.8s", type, uuid);
    m->options = cJSON_CreateObject();
    if (version != NULL)
        cJSON_AddStringToObject(m->options, "version", version);
    snprintf(prefix, sizeof(prefix), "logical/%s/", uuid);
    m->storage_prefix = xstrdup(prefix);
    m->klass = MOUNT_SECRET;
    m->impl = MOUNT_IMPL_LUA;
}

static void mount_teardown(struct mount *m)
{
    free(m->path);
    free(m->type);
    free(m->description);
    cJSON_Delete(m->options);
    free(m->storage_prefix);
}

/* Runs one request; resp must be released by the caller. */
static void run(struct mount *m, enum req_op op, const char *rel,
                const char *body, struct response *resp)
{
    struct request req;
    size_t n = strlen(m->path) + strlen(rel) + 1;

    request_init(&req);
    snprintf(req.id, sizeof(req.id), "test-%s", rel);
    req.op = op;
    req.path = xmalloc(n);
    snprintf(req.path, n, "%s%s", m->path, rel);
    req.data = body != NULL ? cJSON_Parse(body) : NULL;
    snprintf(req.remote_addr, sizeof(req.remote_addr), "127.0.0.1");
    req.mount = m;
    req.rel_path = req.path + strlen(m->path);
    response_init(resp);
    luavm_handle(m, &req, resp);
    request_release(&req);
}

/* Compact JSON of item (or "NULL"); the caller frees. */
static char *js(const cJSON *item)
{
    return item != NULL ? cJSON_PrintUnformatted(item) : xstrdup("NULL");
}

#define CHECK_JSON(item, expect)                                             \
    do {                                                                     \
        char *s_ = js(item);                                                 \
        CHECK_STREQ(s_, expect);                                             \
        free(s_);                                                            \
    } while (0)

/* Value at a dotted path inside resp->data ("data.a"), or NULL. */
static const cJSON *at(const cJSON *root, const char *path)
{
    char key[64];
    const char *dot;

    while (root != NULL && *path != '\0') {
        dot = strchr(path, '.');
        snprintf(key, sizeof(key), "%.*s",
                 (int)(dot != NULL ? (size_t)(dot - path) : strlen(path)),
                 path);
        root = cJSON_GetObjectItemCaseSensitive(root, key);
        path = dot != NULL ? dot + 1 : "";
    }
    return root;
}

static const char *str_at(const cJSON *root, const char *path)
{
    const cJSON *v = at(root, path);

    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num_at(const cJSON *root, const char *path)
{
    const cJSON *v = at(root, path);

    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX * 2];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

/* A lua dir: coffer/ -> the real framework, engines/ with the given files. */
static void make_lua_dir(char *out, size_t n, const char *name)
{
    char cwd[PATH_MAX], path[PATH_MAX * 2], target[PATH_MAX * 2];

    if (getcwd(cwd, sizeof(cwd)) == NULL)
        exit(2);
    if ((size_t)snprintf(out, n, "%s/%s", tmpdir, name) >= n)
        exit(2);
    mkdir(out, 0700);
    snprintf(path, sizeof(path), "%s/coffer", out);
    snprintf(target, sizeof(target), "%s/lua/coffer", cwd);
    if (symlink(target, path) != 0 && errno != EEXIST)
        exit(2);
    snprintf(path, sizeof(path), "%s/engines", out);
    mkdir(path, 0700);
}

static void unlink_file(const char *dir, const char *name)
{
    char path[PATH_MAX * 2];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    unlink(path);
}

static void rm_rf(const char *dir)
{
    char cmd[PATH_MAX * 2];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

/* ===================================================== the test engine == */

static const char test_engine[] =
    "local e = coffer.engine { name = 'test', help = 'test engine' }\n"
    "local stash\n"
    "e:path('boom', { read = function(req) error('kaboom') end })\n"
    "e:path('typed', { read = function(req)\n"
    "  error(coffer.error { status = 409, errors = { 'taken' } })\n"
    "end })\n"
    "e:path('notfound', { read = function(req) coffer.not_found() end })\n"
    "e:path('func', { read = function(req) return function() end end })\n"
    "e:path('str', { read = function(req) return 'hello' end })\n"
    "e:path('badkey', { read = function(req) return { keys = {} } end })\n"
    "e:path('loop', { read = function(req)\n"
    "  while true do pcall(function() while true do end end) end\n"
    "end })\n"
    "e:path('naps', { read = function(req)\n"
    /* ~0.25 s: past a 100 ms budget, well inside the 0.5 s call timeout
       even on a loaded machine */
    "  for i = 1, 20 do\n"
    "    coffer.time.sleep(0.01)\n"
    "    local x = 0 for j = 1, 20000 do x = x + j end\n"
    "  end\n"
    "  return { data = { done = true } }\n"
    "end })\n"
    "e:path('mem', { read = function(req)\n"
    "  local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1 << 20) .. i end\n"
    "end })\n"
    "e:path('register', { read = function(req)\n"
    "  coffer.engine { name = 'late' }\n"
    "end })\n"
    "e:path('global', { read = function(req) leaked = 1 end })\n"
    "e:path('stash', { read = function(req) stash = req.storage end })\n"
    "e:path('usestash', { read = function(req) return stash:get('x') end })\n"
    "e:path('sandbox', { read = function(req)\n"
    "  local r = {}\n"
    "  for _, n in ipairs({ 'io', 'os', 'package', 'debug', 'dofile',\n"
    "                       'loadfile', 'collectgarbage' }) do\n"
    "    r[n] = pcall(function() return _ENV[n] end)\n"
    "  end\n"
    "  r.require_io = pcall(require, 'io')\n"
    "  r.require_dots = pcall(require, '../engines/kv')\n"
    "  local f, msg = load(string.dump(function() end))\n"
    "  r.bytecode = f ~= nil\n"
    "  r.bytecode_msg = msg\n"
    "  r.text_load = load('return 1 + 1')() == 2\n"
    "  r.string_mut = pcall(function() string.upper = nil end)\n"
    "  r.coffer_mut = pcall(function() coffer.json.encode = nil end)\n"
    "  r.rawset_mut = pcall(rawset, string, 'x', 1)\n"
    "  r.strmeta = getmetatable('') == 'locked'\n"
    "  r.has_print = pcall(print, 'hello from the sandbox')\n"
    "  return { data = r }\n"
    "end })\n"
    "e:path('json', { read = function(req)\n"
    "  local j = coffer.json\n"
    "  local d = j.decode('{\"a\":[],\"b\":{},\"n\":12345678901,\"f\":1.5,'\n"
    "                     .. '\"z\":null}')\n"
    "  return { data = { enc = j.encode(d), int = math.type(d.n),\n"
    "    empty_arr = j.encode(j.array()), empty_obj = j.encode({}),\n"
    "    big = j.encode(9007199254740993), seq = j.encode({ 1, 2, 3 }),\n"
    "    bad = select(2, j.decode('{x')) ~= nil,\n"
    "    dur = coffer.time.parse_duration('1h30m'),\n"
    "    dur7d = coffer.time.parse_duration('7d'),\n"
    "    durbad = select(2, coffer.time.parse_duration('xyz')),\n"
    "    fmt = coffer.time.format_duration(3600),\n"
    "    ts = coffer.time.format_rfc3339(0.5),\n"
    "    eq = coffer.crypto.equal('abc', 'abc') and\n"
    "         not coffer.crypto.equal('abc', 'abd'),\n"
    "    sha = coffer.crypto.sha256_hex('abc'),\n"
    "    b62 = #coffer.crypto.random_base62(24),\n"
    "    uuid = #coffer.crypto.uuid() } }\n"
    "end })\n"
    "e:path('roles/:name', {\n"
    "  fields = { ttl = 'duration', n = 'int', on = 'bool',\n"
    "             pols = 'strings', stmts = 'list' },\n"
    "  read = function(req) return { data = { name = req.params.name,\n"
    "    ttl = req.data.ttl, n = req.data.n, on = req.data.on,\n"
    "    pols = req.data.pols, stmts = req.data.stmts } } end,\n"
    "})\n"
    "e:path('reqfields', { read = function(req)\n"
    "  return { data = { path = req.path, full_path = req.full_path,\n"
    "    mount_path = req.mount_path, id = req.id,\n"
    "    time_ok = math.type(req.time) == 'integer' and\n"
    "              math.abs(req.time - coffer.time.now()) < 60 } }\n"
    "end })\n"
    "e:path('status', { read = function(req)\n"
    "  return { status = 202, data = { ok = true }, warnings = { 'w' } }\n"
    "end })\n"
    "return e\n";

/* ====================================================== broken scripts == */

static void expect_init_fails(const char *name, const char *script,
                              const char *needle)
{
    char dir[PATH_MAX];
    struct errbuf err;
    struct luavm_config cfg = {.storage = st};

    make_lua_dir(dir, sizeof(dir), name);
    write_file(dir, "engines/bad.lua", script);
    cfg.lua_dir = dir;
    errbuf_clear(&err);
    CHECK(luavm_global_init(&cfg, &err) != 0);
    if (strstr(err.msg, needle) == NULL)
        harness_fail(__FILE__, __LINE__, "'%s' not in '%s'", needle, err.msg);
    CHECK(!g.ready);
}

TEST(broken_scripts_fail_init)
{
    expect_init_fails("b1", "local x = 1\n\nlocal = 3\n", "engines/bad.lua:3:");
    expect_init_fails("b2", "local t = nil\nlocal y = t.x\n",
                      "engines/bad.lua:2: attempt to index");
    expect_init_fails("b3", "\nfoo = 1\n",
                      "bad.lua:2: assignment to undeclared global 'foo'");
    expect_init_fails("b3r", "local x = 1\nlocal y = undeclared_thing\n",
                      "bad.lua:2: attempt to read undeclared global "
                      "'undeclared_thing'");
    /* The globals table stays out of reach: _ENV's metatable is locked,
     * the globals are not in _ENV itself, and they cannot be replaced. */
    expect_init_fails("b3m", "assert(getmetatable(_ENV) == 'locked')\n"
                             "assert(rawget(_ENV, 'coffer') == nil)\n"
                             "assert(type(string.format) == 'function')\n"
                             "assert(_ENV[1] == nil and _ENV[true] == nil)\n"
                             "string = nil\n",
                      "bad.lua:5: assignment to undeclared global 'string'");
    expect_init_fails("b4", "coffer.engine { name = 'd' }\n"
                            "coffer.engine { name = 'd' }\n",
                      "already registered");
    expect_init_fails("b5", "local e = coffer.engine { name = 'x' }\n"
                            "e:path('a', { reed = function() end })\n",
                      "bad.lua:2: e:path: unknown key 'reed'");
    expect_init_fails("b6", "local e = coffer.engine { name = 'y' }\n"
                            "e:path('a', { fields = { t = 'nope' } })\n",
                      "bad.lua:2: field 't': unknown type 'nope'");
}

/* ================================================================ KV v1 == */

TEST(kv1_write_read_list_delete)
{
    struct response r;
    int64_t sys_def, sys_max;

    run(&kv1, OP_UPDATE, "foo", "{\"foo\":\"bar\",\"ttl\":\"1h\",\"n\":"
                                "12345678901}", &r);
    CHECK(r.errors == NULL && r.data == NULL && r.status == 0);
    response_release(&r);

    run(&kv1, OP_READ, "foo", NULL, &r);
    CHECK_JSON(r.data, "{\"foo\":\"bar\",\"n\":12345678901,\"ttl\":\"1h\"}");
    CHECK_EQ_INT(r.lease_duration, 3600);
    CHECK(!r.renewable && r.lease_id == NULL);
    response_release(&r);

    run(&kv1, OP_UPDATE, "dir/sub", "{\"a\":1}", &r);
    response_release(&r);
    run(&kv1, OP_READ, "dir/sub", NULL, &r);
    router_system_ttls(&sys_def, &sys_max);
    CHECK_EQ_INT(r.lease_duration, sys_def);
    response_release(&r);

    run(&kv1, OP_LIST, "", NULL, &r);
    CHECK_JSON(r.data, "{\"keys\":[\"dir/\",\"foo\"]}");
    response_release(&r);
    run(&kv1, OP_LIST, "dir/", NULL, &r);
    CHECK_JSON(r.data, "{\"keys\":[\"sub\"]}");
    response_release(&r);
    run(&kv1, OP_LIST, "nothing/", NULL, &r);
    CHECK(r.data == NULL && r.errors == NULL);
    response_release(&r);

    run(&kv1, OP_DELETE, "foo", NULL, &r);
    CHECK(r.data == NULL && r.errors == NULL);
    response_release(&r);
    run(&kv1, OP_READ, "foo", NULL, &r);
    CHECK(r.data == NULL && r.errors == NULL);
    response_release(&r);

    run(&kv1, OP_UPDATE, "empty", "{}", &r);
    CHECK_EQ_INT(r.status, 400);
    CHECK_JSON(r.errors, "[\"missing data fields\"]");
    response_release(&r);

    run(&kv1, OP_UPDATE, "dir/", "{\"a\":1}", &r);
    CHECK_JSON(r.errors, "[\"cannot write to a path ending in '/'\"]");
    response_release(&r);

    run(&kv1, OP_UPDATE, "a/../b", "{\"a\":1}", &r);
    CHECK_EQ_INT(r.status, 400);
    CHECK_JSON(r.errors, "[\"relative paths not supported\"]");
    response_release(&r);
}

/* ================================================================ KV v2 == */

TEST(kv2_versions_and_cas)
{
    struct response r;

    run(&kv2, OP_UPDATE, "data/app/db", "{\"data\":{\"pw\":\"s1\"}}", &r);
    CHECK_EQ_INT(num_at(r.data, "version"), 1);
    CHECK_STREQ(str_at(r.data, "deletion_time"), "");
    CHECK(cJSON_IsNull(at(r.data, "custom_metadata")));
    CHECK(strlen(str_at(r.data, "created_time") ? str_at(r.data,
                                                         "created_time")
                                                : "") == 30);
    CHECK(r.lease_duration == 0 && r.warnings == NULL);
    response_release(&r);

    run(&kv2, OP_UPDATE, "data/app/db",
        "{\"data\":{\"pw\":\"s2\"},\"options\":{\"cas\":1}}", &r);
    CHECK_EQ_INT(num_at(r.data, "version"), 2);
    response_release(&r);

    run(&kv2, OP_UPDATE, "data/app/db",
        "{\"data\":{\"pw\":\"s3\"},\"options\":{\"cas\":1}}", &r);
    CHECK_EQ_INT(r.status, 400);
    CHECK_JSON(r.errors, "[\"check-and-set parameter did not match the "
                         "current version\"]");
    response_release(&r);

    run(&kv2, OP_UPDATE, "data/new", "{\"data\":{\"a\":1},\"options\":"
                                     "{\"cas\":0}}", &r);
    CHECK_EQ_INT(num_at(r.data, "version"), 1);
    response_release(&r);

    run(&kv2, OP_READ, "data/app/db", NULL, &r);
    CHECK_JSON(at(r.data, "data"), "{\"pw\":\"s2\"}");
    CHECK_EQ_INT(num_at(r.data, "metadata.version"), 2);
    response_release(&r);

    run(&kv2, OP_READ, "data/app/db", "{\"version\":\"1\"}", &r);
    CHECK_JSON(at(r.data, "data"), "{\"pw\":\"s1\"}");
    response_release(&r);

    run(&kv2, OP_READ, "data/app/db", "{\"version\":7}", &r);
    CHECK(r.data == NULL && r.errors == NULL);
    response_release(&r);

    run(&kv2, OP_UPDATE, "data/app/db", "{\"options\":{}}", &r);
    CHECK_JSON(r.errors, "[\"no data provided\"]");
    response_release(&r);

    run(&kv2, OP_READ, "data/app/db", "{\"version\":\"abc\"}", &r);
    CHECK_EQ_INT(r.status, 400);
    CHECK_JSON(r.errors, "[\"Field validation failed: error converting "
                         "input abc for field \\\"version\\\": cannot parse "
                         "'' as int: strconv.ParseInt: parsing \\\"abc\\\": "
                         "invalid syntax\"]");
    response_release(&r);

    run(&kv2, OP_UPDATE, "data/app/db", "{\"data\":{\"x\":1},\"bogus\":1,"
                                        "\"alpha\":2}", &r);
    CHECK_JSON(r.warnings, "[\"Endpoint ignored these unrecognized "
                           "parameters: [alpha bogus]\"]");
    response_release(&r);
}

TEST(kv2_delete_undelete_destroy)
{
    struct response r;

    run(&kv2, OP_UPDATE, "data/d", "{\"data\":{\"v\":1}}", &r);
    response_release(&r);
    run(&kv2, OP_UPDATE, "data/d", "{\"data\":{\"v\":2}}", &r);
    response_release(&r);

    run(&kv2, OP_DELETE, "data/d", NULL, &r);
    CHECK(r.data == NULL && r.errors == NULL);
    response_release(&r);
    run(&kv2, OP_READ, "data/d", NULL, &r);
    CHECK_EQ_INT(r.status, 404);
    CHECK(r.errors == NULL);
    CHECK(cJSON_IsNull(at(r.data, "data")));
    CHECK(str_at(r.data, "metadata.deletion_time") != NULL &&
          str_at(r.data, "metadata.deletion_time")[0] != '\0');
    response_release(&r);

    run(&kv2, OP_UPDATE, "undelete/d", "{\"versions\":[2]}", &r);
    CHECK(r.errors == NULL);
    response_release(&r);
    run(&kv2, OP_READ, "data/d", NULL, &r);
    CHECK(r.status == 0 && num_at(r.data, "data.v") == 2);
    response_release(&r);

    run(&kv2, OP_UPDATE, "delete/d", "{\"versions\":\"1\"}", &r);
    response_release(&r);
    run(&kv2, OP_READ, "data/d", "{\"version\":1}", &r);
    CHECK_EQ_INT(r.status, 404);
    response_release(&r);

    run(&kv2, OP_UPDATE, "destroy/d", "{\"versions\":[2]}", &r);
    response_release(&r);
    run(&kv2, OP_READ, "data/d", NULL, &r);
    CHECK_EQ_INT(r.status, 404);
    CHECK(cJSON_IsTrue(at(r.data, "metadata.destroyed")));
    response_release(&r);

    run(&kv2, OP_UPDATE, "destroy/d", "{}", &r);
    CHECK_JSON(r.errors, "[\"no version number provided\"]");
    response_release(&r);
    run(&kv2, OP_UPDATE, "delete/d", "{\"versions\":[]}", &r);
    CHECK_JSON(r.errors, "[\"No version number provided\"]");
    response_release(&r);

    run(&kv2, OP_READ, "metadata/d", NULL, &r);
    CHECK_EQ_INT(num_at(r.data, "current_version"), 2);
    CHECK_STREQ(str_at(r.data, "delete_version_after"), "0s");
    CHECK(cJSON_IsTrue(at(r.data, "versions.2.destroyed")));
    CHECK(cJSON_IsFalse(at(r.data, "versions.1.destroyed")));
    response_release(&r);

    run(&kv2, OP_DELETE, "metadata/d", NULL, &r);
    response_release(&r);
    run(&kv2, OP_READ, "metadata/d", NULL, &r);
    CHECK(r.data == NULL && r.errors == NULL);
    response_release(&r);
}

TEST(kv2_metadata_config_patch)
{
    struct response r;

    run(&kv2, OP_UPDATE, "config", "{\"max_versions\":2,\"cas_required\":"
                                   "false,\"delete_version_after\":\"0s\"}",
        &r);
    CHECK(r.errors == NULL);
    response_release(&r);
    run(&kv2, OP_READ, "config", NULL, &r);
    CHECK_JSON(r.data, "{\"cas_required\":false,\"delete_version_after\":"
                       "\"0s\",\"max_versions\":2}");
    response_release(&r);

    for (int i = 0; i < 3; i++) {
        run(&kv2, OP_UPDATE, "data/m", "{\"data\":{\"a\":{\"b\":1},\"c\":2}}",
            &r);
        response_release(&r);
    }
    run(&kv2, OP_READ, "metadata/m", NULL, &r);
    CHECK_EQ_INT(num_at(r.data, "oldest_version"), 2);
    CHECK(at(r.data, "versions.1") == NULL && at(r.data, "versions.3"));
    response_release(&r);

    run(&kv2, OP_PATCH, "data/m", "{\"data\":{\"c\":null,\"d\":\"x\","
                                  "\"a\":{\"e\":true}}}", &r);
    CHECK_EQ_INT(num_at(r.data, "version"), 4);
    response_release(&r);
    run(&kv2, OP_READ, "data/m", NULL, &r);
    CHECK_JSON(at(r.data, "data"), "{\"a\":{\"b\":1,\"e\":true},\"d\":\"x\"}");
    response_release(&r);

    run(&kv2, OP_READ, "subkeys/m", "{\"depth\":\"1\"}", &r);
    CHECK_JSON(at(r.data, "subkeys"), "{\"a\":null,\"d\":null}");
    response_release(&r);
    run(&kv2, OP_READ, "subkeys/m", NULL, &r);
    CHECK_JSON(at(r.data, "subkeys"), "{\"a\":{\"b\":null,\"e\":null},"
                                      "\"d\":null}");
    response_release(&r);

    run(&kv2, OP_PATCH, "data/nope", "{\"data\":{\"a\":1}}", &r);
    CHECK(r.status == 404 && r.no_body);
    response_release(&r);

    run(&kv2, OP_UPDATE, "metadata/m", "{\"cas_required\":\"true\","
                                       "\"custom_metadata\":{\"k\":\"v\"},"
                                       "\"delete_version_after\":\"1h\"}",
        &r);
    CHECK(r.errors == NULL);
    response_release(&r);
    run(&kv2, OP_READ, "metadata/m", NULL, &r);
    CHECK(cJSON_IsTrue(at(r.data, "cas_required")));
    CHECK_STREQ(str_at(r.data, "delete_version_after"), "1h0m0s");
    CHECK_JSON(at(r.data, "custom_metadata"), "{\"k\":\"v\"}");
    response_release(&r);
    run(&kv2, OP_UPDATE, "data/m", "{\"data\":{\"a\":1}}", &r);
    CHECK_JSON(r.errors, "[\"check-and-set parameter required for this "
                         "call\"]");
    response_release(&r);

    run(&kv2, OP_UPDATE, "metadata/m", "{\"custom_metadata\":{\"k\":\"\"}}",
        &r);
    CHECK_JSON(r.errors, "[\"1 error occurred:\\n\\t* length of value for "
                         "key \\\"k\\\" is 0 but must be 0 < len(value) <= "
                         "512\\n\\n\"]");
    response_release(&r);

    run(&kv2, OP_LIST, "metadata/", NULL, &r);
    CHECK(at(r.data, "keys") != NULL);
    response_release(&r);
}

TEST(kv2_invalid_paths)
{
    struct response r;

    run(&kv2, OP_READ, "foo", NULL, &r);
    CHECK_EQ_INT(r.status, 404);
    CHECK(r.errors == NULL && r.data == NULL);
    CHECK_JSON(r.warnings, "[\"Invalid path for a versioned K/V secrets "
                           "engine. See the API docs for the appropriate API "
                           "endpoints to use. If using the Vault CLI, use "
                           "'vault kv get' for this operation.\"]");
    response_release(&r);
    run(&kv2, OP_UPDATE, "foo", "{\"a\":1}", &r);
    CHECK(strstr(r.warnings->child->valuestring, "'vault kv put'") != NULL);
    response_release(&r);
    run(&kv2, OP_READ, "metadata", NULL, &r);
    CHECK_JSON(r.warnings, "[\"Non-listing operations on the root of a K/V "
                           "v2 mount are not supported.\"]");
    response_release(&r);
    run(&kv2, OP_LIST, "data/x/", NULL, &r);
    CHECK_EQ_INT(r.status, 405);
    CHECK_JSON(r.errors, "[\"1 error occurred:\\n\\t* unsupported "
                         "operation\\n\\n\"]");
    response_release(&r);
}

/* ======================================================= errors, sandbox == */

TEST(script_errors_become_500)
{
    static const char *const paths[] = {"boom", "func", "str", "badkey",
                                        "register", "global", "usestash"};
    struct response r;
    size_t i;

    run(&tm, OP_READ, "stash", NULL, &r);
    response_release(&r);
    for (i = 0; i < ARRAY_LEN(paths); i++) {
        run(&tm, OP_READ, paths[i], NULL, &r);
        CHECK_EQ_INT(r.status, 500);
        CHECK_JSON(r.errors, "[\"internal error\"]");
        CHECK(r.data == NULL);
        response_release(&r);
    }
}

TEST(typed_errors_keep_status)
{
    struct response r;

    run(&tm, OP_READ, "typed", NULL, &r);
    CHECK_EQ_INT(r.status, 409);
    CHECK_JSON(r.errors, "[\"taken\"]");
    response_release(&r);
    run(&tm, OP_READ, "notfound", NULL, &r);
    CHECK_EQ_INT(r.status, 404);
    CHECK_JSON(r.errors, "[]");
    response_release(&r);
    run(&tm, OP_READ, "nowhere", NULL, &r);
    CHECK_EQ_INT(r.status, 404);
    CHECK_JSON(r.errors, "[\"1 error occurred:\\n\\t* unsupported "
                         "path\\n\\n\"]");
    response_release(&r);
    run(&tm, OP_DELETE, "boom", NULL, &r);
    CHECK_EQ_INT(r.status, 405);
    response_release(&r);
    run(&tm, OP_READ, "status", NULL, &r);
    CHECK_EQ_INT(r.status, 202);
    CHECK_JSON(r.warnings, "[\"w\"]");
    response_release(&r);
}

TEST(timeout_and_memory_cap)
{
    struct response r;
    double t0 = time_mono();

    run(&tm, OP_READ, "loop", NULL, &r);
    CHECK_EQ_INT(r.status, 500);
    CHECK(time_mono() - t0 < 5.0);
    response_release(&r);
    run(&tm, OP_READ, "mem", NULL, &r);
    CHECK_EQ_INT(r.status, 500);
    response_release(&r);
    /* the state survives both */
    run(&tm, OP_READ, "typed", NULL, &r);
    CHECK_EQ_INT(r.status, 409);
    response_release(&r);
}

/*
 * The request's max_request_duration (request.h) stops a script sooner
 * than the call timeout (0.5 s here): the hook compares against whichever
 * comes first, including after a blocking call returns.
 */
TEST(request_budget_stops_scripts)
{
    struct response r;
    double t0;

    request_budget_configure(100);
    request_budget_begin();
    t0 = time_mono();
    run(&tm, OP_READ, "loop", NULL, &r);
    CHECK_EQ_INT(r.status, 500);
    CHECK(time_mono() - t0 < 0.4);
    response_release(&r);
    request_budget_end();

    /* Waiting in C (sleep, a database call) then computing: stopped at
       the first check after the budget ran out. */
    request_budget_begin();
    t0 = time_mono();
    run(&tm, OP_READ, "naps", NULL, &r);
    CHECK_EQ_INT(r.status, 500);
    CHECK(time_mono() - t0 < 0.35);
    response_release(&r);
    request_budget_end();

    /* A larger budget does not lengthen the call timeout... */
    request_budget_configure(60 * 1000);
    request_budget_begin();
    t0 = time_mono();
    run(&tm, OP_READ, "loop", NULL, &r);
    CHECK_EQ_INT(r.status, 500);
    CHECK(time_mono() - t0 < 2.0);
    response_release(&r);
    /* ...and a script within both finishes. */
    run(&tm, OP_READ, "naps", NULL, &r);
    CHECK_EQ_INT(r.status, 0);
    CHECK_JSON(r.data, "{\"done\":true}");
    response_release(&r);
    request_budget_end();

    /* Outside a request (no budget open) only the call timeout counts. */
    request_budget_configure(1);
    run(&tm, OP_READ, "naps", NULL, &r);
    CHECK_JSON(r.data, "{\"done\":true}");
    response_release(&r);
    request_budget_configure(0);
}

TEST(sandbox_walls)
{
    struct response r;

    run(&tm, OP_READ, "sandbox", NULL, &r);
    CHECK_JSON(r.data,
               "{\"bytecode\":false,\"bytecode_msg\":\"attempt to load a "
               "binary chunk (mode is 't')\",\"coffer_mut\":false,"
               "\"collectgarbage\":false,\"debug\":false,\"dofile\":false,"
               "\"has_print\":true,\"io\":false,\"loadfile\":false,"
               "\"os\":false,\"package\":false,\"rawset_mut\":false,"
               "\"require_dots\":false,\"require_io\":false,"
               "\"string_mut\":false,\"strmeta\":true,\"text_load\":true}");
    response_release(&r);
}

TEST(api_json_time_crypto)
{
    struct response r;

    run(&tm, OP_READ, "json", NULL, &r);
    CHECK_STREQ(str_at(r.data, "enc"),
                "{\"a\":[],\"b\":{},\"f\":1.5,\"n\":12345678901,\"z\":null}");
    CHECK_STREQ(str_at(r.data, "int"), "integer");
    CHECK_STREQ(str_at(r.data, "empty_arr"), "[]");
    CHECK_STREQ(str_at(r.data, "empty_obj"), "{}");
    CHECK_STREQ(str_at(r.data, "big"), "9007199254740993");
    CHECK_STREQ(str_at(r.data, "seq"), "[1,2,3]");
    CHECK(cJSON_IsTrue(at(r.data, "bad")));
    CHECK_EQ_INT(num_at(r.data, "dur"), 5400);
    CHECK_EQ_INT(num_at(r.data, "dur7d"), 604800);
    CHECK(str_at(r.data, "durbad") != NULL);
    CHECK_STREQ(str_at(r.data, "fmt"), "1h0m0s");
    CHECK_STREQ(str_at(r.data, "ts"), "1970-01-01T00:00:00.500000000Z");
    CHECK(cJSON_IsTrue(at(r.data, "eq")));
    CHECK_STREQ(str_at(r.data, "sha"), "ba7816bf8f01cfea414140de5dae2223"
                                       "b00361a396177a9cb410ff61f20015ad");
    CHECK_EQ_INT(num_at(r.data, "b62"), 24);
    CHECK_EQ_INT(num_at(r.data, "uuid"), 36);
    response_release(&r);
}

TEST(fields_and_captures)
{
    struct response r;

    run(&tm, OP_READ, "roles/web",
        "{\"ttl\":\"5m\",\"n\":\"42\",\"on\":\"t\",\"pols\":\"a, b,c\","
        "\"stmts\":\"x,y\",\"name\":\"other\"}", &r);
    CHECK_JSON(r.data, "{\"n\":42,\"name\":\"web\",\"on\":true,"
                       "\"pols\":[\"a\",\"b\",\"c\"],\"stmts\":[\"x,y\"],"
                       "\"ttl\":300}");
    CHECK(r.warnings == NULL);
    response_release(&r);
    run(&tm, OP_READ, "roles/web", "{\"ttl\":null,\"on\":\"maybe\"}", &r);
    CHECK_JSON(r.errors, "[\"Field validation failed: error converting "
                         "input maybe for field \\\"on\\\": cannot parse '' "
                         "as bool: strconv.ParseBool: parsing \\\"maybe\\\": "
                         "invalid syntax\"]");
    response_release(&r);
    run(&tm, OP_READ, "roles/web", "{\"help\":\"1\"}", &r);
    CHECK(str_at(r.data, "help") != NULL &&
          strstr(str_at(r.data, "help"), "ttl (duration)") != NULL);
    response_release(&r);
}

/* Each thread gets its own state, closed when the thread exits. */
static void *thread_main(void *arg)
{
    struct response r;

    (void)arg;
    run(&tm, OP_READ, "typed", NULL, &r);
    CHECK_EQ_INT(r.status, 409);
    response_release(&r);
    return NULL;
}

TEST(per_thread_states)
{
    pthread_t t[3];
    int i;

    for (i = 0; i < 3; i++)
        CHECK(pthread_create(&t[i], NULL, thread_main, NULL) == 0);
    for (i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
}

/* ============================================================ reload == */

TEST(request_table_fields)
{
    struct response r;

    run(&tm, OP_READ, "reqfields", NULL, &r);
    CHECK_EQ_INT(r.status, 0);
    CHECK_STREQ(str_at(r.data, "path"), "reqfields");
    CHECK_STREQ(str_at(r.data, "full_path"), "test/reqfields");
    CHECK_STREQ(str_at(r.data, "mount_path"), "test/");
    CHECK_STREQ(str_at(r.data, "id"), "test-reqfields");
    CHECK(cJSON_IsTrue(at(r.data, "time_ok")));
    response_release(&r);
}

static const char zreload_fmt[] =
    "local e = coffer.engine { name = 'zreload' }\n"
    "e:path('v', { read = function(req) return { data = { v = %d } } end })\n"
    "%s";
static const char zreload_secret[] =
    "e:secret('s', { revoke = function(lease) end })\n";

static void write_zreload(int v, bool secret)
{
    char text[512];

    snprintf(text, sizeof(text), zreload_fmt, v, secret ? zreload_secret : "");
    write_file(gooddir, "engines/zreload.lua", text);
}

/* The v a request to m answers, or -1. */
static int zreload_v(struct mount *m)
{
    struct response r;
    int v;

    run(m, OP_READ, "v", NULL, &r);
    v = (int)num_at(r.data, "v");
    response_release(&r);
    return v;
}

static struct mount zm;

static void *zreload_v_thread(void *arg)
{
    *(int *)arg = zreload_v(&zm);
    luavm_thread_release();
    return NULL;
}

TEST(reload_publishes_validated_code)
{
    struct luavm_code *c, *cur;
    struct strvec lost;
    struct errbuf err;
    uint64_t gen0 = luavm_generation();
    pthread_t t;
    int v = 0;

    mount_setup(&zm, "zr/", "zreload", "44444444-dddd", NULL);
    write_zreload(1, true);
    /* On disk is not loaded: states run the published snapshot. */
    CHECK(!luavm_engine_exists("zreload"));
    c = luavm_code_load(&err);
    CHECK(c != NULL);
    if (c == NULL)
        return;
    CHECK(luavm_code_has_type(c, false, "zreload"));
    CHECK(luavm_code_has_type(c, false, "kv"));
    CHECK(!luavm_code_has_type(c, true, "zreload"));
    CHECK(luavm_generation() == gen0);
    CHECK(luavm_code_publish(c) == gen0 + 1);
    CHECK(luavm_engine_exists("zreload"));
    CHECK_EQ_INT(zreload_v(&zm), 1);

    /* A new version that drops a secret type: reported, not published. */
    write_zreload(2, false);
    c = luavm_code_load(&err);
    CHECK(c != NULL);
    cur = luavm_code_current();
    strvec_init(&lost);
    luavm_code_lost_secrets(cur, c, &lost);
    CHECK_EQ_INT((int)lost.n, 1);
    if (lost.n == 1)
        CHECK_STREQ(lost.v[0], "zreload\037s");
    strvec_release(&lost);
    luavm_code_put(cur);
    luavm_code_put(c);
    /* A thread born after the file changed still builds the snapshot. */
    CHECK(pthread_create(&t, NULL, zreload_v_thread, &v) == 0);
    pthread_join(t, NULL);
    CHECK_EQ_INT(v, 1);
    CHECK_EQ_INT(zreload_v(&zm), 1);

    /* Broken code is refused with file:line; the old code serves. */
    write_file(gooddir, "engines/zreload.lua", "return {\n  = 1 }\n");
    CHECK(luavm_code_load(&err) == NULL);
    if (strstr(err.msg, "engines/zreload.lua:2:") == NULL)
        harness_fail(__FILE__, __LINE__, "no file:line in '%s'", err.msg);
    CHECK(luavm_generation() == gen0 + 1);
    CHECK_EQ_INT(zreload_v(&zm), 1);

    /* Publishing again: this thread and new threads run version 3. */
    write_zreload(3, true);
    c = luavm_code_load(&err);
    CHECK(c != NULL);
    if (c != NULL)
        luavm_code_publish(c);
    CHECK_EQ_INT(zreload_v(&zm), 3);
    CHECK(pthread_create(&t, NULL, zreload_v_thread, &v) == 0);
    pthread_join(t, NULL);
    CHECK_EQ_INT(v, 3);
}

/*
 * A state in the middle of a call (a nested call on its thread) is never
 * swapped: the outer call would be left on a closed lua_State.
 */
TEST(reload_never_swaps_a_running_state)
{
    struct luavm_code *c;
    struct errbuf err;
    struct vm *vm = luavm__get(), *again;

    CHECK(vm != NULL);
    if (vm == NULL)
        return;
    write_zreload(4, true);
    c = luavm_code_load(&err);
    CHECK(c != NULL);
    if (c == NULL)
        return;
    luavm_code_publish(c);
    vm->depth = 1;
    again = luavm__get();
    CHECK(again == vm);
    vm->depth = 0;
    again = luavm__get();
    CHECK(again != NULL && again != vm);
    CHECK(again != NULL && again->code->gen == luavm_generation());
    CHECK_EQ_INT(zreload_v(&zm), 4);

    /* Restore the shared runtime: no zreload engine. */
    unlink_file(gooddir, "engines/zreload.lua");
    c = luavm_code_load(&err);
    CHECK(c != NULL);
    if (c != NULL)
        luavm_code_publish(c);
    CHECK(!luavm_engine_exists("zreload"));
    mount_teardown(&zm);
}

/* ====================================================== JSON numbers == */

/*
 * Big numbers through a bare state: lua_api_open plus the real fields.lua,
 * outside any request. The script asserts; the C side checks it returned
 * true, or shows the failing assertion.
 */
static const char json_numbers_script[] =
    "local j = coffer.json\n"
    "local F = ...\n"
    "local d = j.decode('{\"big\":12345678901234567890,\"p\":0.1,'\n"
    "  .. '\"i\":9007199254740993,\"one\":1.0,\"e\":1e3,\"nz\":-0,'\n"
    "  .. '\"f\":0.5,\"n\":42}')\n"
    "assert(math.type(d.i) == 'integer' and d.i == 9007199254740993)\n"
    "assert(math.type(d.n) == 'integer' and math.type(d.f) == 'float')\n"
    "assert(d.p == 0.1)\n"
    "assert(type(d.big) == 'userdata' and type(d.one) == 'userdata')\n"
    "assert(tostring(d.big) == '12345678901234567890')\n"
    "assert(j.is_number(d.big) and j.is_number(1) and not j.is_number('1'))\n"
    "assert(j.encode(d) == '{\"big\":12345678901234567890,\"e\":1e3,'\n"
    "  .. '\"f\":0.5,\"i\":9007199254740993,\"n\":42,\"nz\":-0,'\n"
    "  .. '\"one\":1.0,\"p\":0.1}', j.encode(d))\n"
    "assert(d.big > 9007199254740993 and d.big < 1e20)\n"
    "assert(d.big > 2^63 and -2^63 < d.big and not (d.big < 0/0))\n"
    "assert(d.one == j.number('1e0') and d.one ~= d.e and d.big ~= j.null)\n"
    "assert(d.one <= 1 and d.one >= 1 and not (d.one < 1))\n"
    "local exact = j.number('0.1000000000000000055511151231257827021181583'\n"
    "                      .. '404541015625')\n"
    "assert(not (exact < 0.1) and not (0.1 < exact) and exact <= 0.1)\n"
    "assert(j.number('0.1000000000000000055511151231257827') < 0.1)\n"
    "assert(j.number('1e400') > math.huge == false)\n"
    "assert(j.tonumber(d.big) == 1.2345678901234567e19)\n"
    "assert(math.type(j.tonumber(d.one)) == 'float' and j.tonumber(d.nz) == 0)\n"
    "assert(j.tonumber(7) == 7 and j.tonumber('8') == 8 and not j.tonumber({}))\n"
    "local ok, msg = pcall(function() return d.big + 1 end)\n"
    "assert(not ok and msg:find('coffer.json.tonumber', 1, true), msg)\n"
    "assert(not pcall(function() return -d.big end))\n"
    "assert(not pcall(function() return d.big < 'x' end))\n"
    "assert('x' .. d.big .. 1 == 'x123456789012345678901')\n"
    "assert(math.type(j.number('42')) == 'integer' and j.number('0.5') == 0.5)\n"
    "assert(j.number('nope') == nil and j.number('1 ') == nil)\n"
    "assert(tostring(j.number('1.50')) == '1.50' and j.number(d.big) == d.big)\n"
    "assert(j.decode('{\"a\":1,}') == nil and j.decode('{\"a\":1} x') == nil)\n"
    "assert(select(2, j.decode('[1,,2]')):find('byte 3', 1, true))\n"
    "assert(j.decode('{\"k\":1,\"k\":2}').k == 2)\n"
    "assert(F.convert('string', d.big) == '12345678901234567890')\n"
    "local v, why = F.convert('int', d.big)\n"
    "assert(v == nil and why == 'strconv.ParseInt: parsing '\n"
    "  .. '\"12345678901234567890\": value out of range', why)\n"
    "v, why = F.convert('int', d.one)\n"
    "assert(v == nil and why:find('invalid syntax', 1, true), why)\n"
    "v, why = F.convert('bool', d.one)\n"
    "assert(v == nil and why:find('ParseBool', 1, true), why)\n"
    "v, why = F.convert('duration', d.e)\n"
    "assert(v == nil and type(why) == 'string', why)\n"
    "assert(F.convert('list', d.big)[1] == '12345678901234567890')\n"
    "assert(F.convert('ints', d.big) == nil)\n"
    "v, why = F.convert('map', d.big)\n"
    "assert(v == nil and why == \"'' expected a map, got 'json.Number'\", why)\n"
    "assert(F.govalue({ d.big }) == '[12345678901234567890]')\n"
    "assert(F.convert('any', d.big) == d.big)\n"
    "return true\n";

static int open_for_json_numbers(lua_State *L)
{
    luaL_openlibs(L);
    lua_api_open(L);
    lua_setglobal(L, "coffer");
    if (luaL_loadfilex(L, "lua/coffer/fields.lua", "t") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 1);
    if (luaL_loadbufferx(L, json_numbers_script, strlen(json_numbers_script),
                         "=json_numbers", "t") != LUA_OK)
        return lua_error(L);
    lua_insert(L, -2);
    lua_call(L, 1, 1);
    return 1;
}

TEST(json_big_numbers_in_lua)
{
    lua_State *L = luaL_newstate();

    lua_pushcfunction(L, open_for_json_numbers);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK)
        harness_fail(__FILE__, __LINE__, "%s", lua_tostring(L, -1));
    else
        CHECK(lua_toboolean(L, -1));
    lua_close(L);
}

int main(int argc, char **argv)
{
    char dir[PATH_MAX], cwd[PATH_MAX], path[PATH_MAX * 2];
    char target[PATH_MAX * 2];
    struct errbuf err;
    struct luavm_config cfg = {0};
    int rc;

    HARNESS_INIT(argc, argv);
    log_set_level(LOG_LEVEL_ERROR);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/coffer-luavm.XXXXXX");
    if (mkdtemp(tmpdir) == NULL || getcwd(cwd, sizeof(cwd)) == NULL)
        return 2;
    st = storage_inmem_new();
    RUN(broken_scripts_fail_init);

    make_lua_dir(dir, sizeof(dir), "good");
    snprintf(gooddir, sizeof(gooddir), "%s", dir);
    snprintf(path, sizeof(path), "%s/engines/kv.lua", dir);
    snprintf(target, sizeof(target), "%s/lua/engines/kv.lua", cwd);
    if (symlink(target, path) != 0)
        return 2;
    write_file(dir, "engines/test.lua", test_engine);
    cfg.lua_dir = dir;
    cfg.storage = st;
    cfg.call_timeout = 0.5;
    cfg.memory_limit = 32u * 1024 * 1024;
    rc = luavm_global_init(&cfg, &err);
    if (rc != 0) {
        printf("luavm_global_init: %s\n", err.msg);
        return 1;
    }
    CHECK(luavm_engine_exists("kv") && luavm_engine_exists("test"));
    CHECK(!luavm_engine_exists("late"));
    mount_setup(&kv1, "secret/", "kv", "11111111-aaaa", NULL);
    mount_setup(&kv2, "kv2/", "kv", "22222222-bbbb", "2");
    mount_setup(&tm, "test/", "test", "33333333-cccc", NULL);

    RUN(kv1_write_read_list_delete);
    RUN(kv2_versions_and_cas);
    RUN(kv2_delete_undelete_destroy);
    RUN(kv2_metadata_config_patch);
    RUN(kv2_invalid_paths);
    RUN(script_errors_become_500);
    RUN(typed_errors_keep_status);
    RUN(timeout_and_memory_cap);
    RUN(request_budget_stops_scripts);
    RUN(sandbox_walls);
    RUN(api_json_time_crypto);
    RUN(fields_and_captures);
    RUN(per_thread_states);
    RUN(request_table_fields);
    RUN(reload_publishes_validated_code);
    RUN(reload_never_swaps_a_running_state);
    RUN(json_big_numbers_in_lua);

    luavm_global_shutdown();
    mount_teardown(&kv1);
    mount_teardown(&kv2);
    mount_teardown(&tm);
    storage_free(st);
    rm_rf(tmpdir);
    return HARNESS_DONE();
}
