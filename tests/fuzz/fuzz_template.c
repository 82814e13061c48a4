/*
 * fuzz_template.c - the username template engine (lua/coffer/template.lua)
 * in the server's own Lua sandbox (src/luavm.c, included).
 *
 * One state is built at start-up as a worker's is (the capped allocator,
 * the sandboxed globals and the `coffer` module of luavm.c's
 * open_sandbox) and template.lua is loaded with the sandbox's require.
 * Each input then runs under a deadline hook like the sandbox's:
 *
 *   byte 0 even  the rest is a template: compile, then render with fixed
 *                values (as database/config validates username_template)
 *   byte 0 odd   the rest is values (DisplayName, RoleName split at the
 *                first 0x1f) rendered into fixed templates, among them
 *                the PostgreSQL plugin's default
 *
 * Oracles beyond the sanitizers: compile returns a template or nil and a
 * string; render returns a string or nil and a string; the default
 * template's output is at most 63 bytes. An error that escapes compile or
 * render as a Lua error (the engine would answer 500) aborts: strict is
 * the default (FUZZ_TEMPLATE_STRICT=0 turns it off, to fuzz past a known
 * one; the ones found are in regressions/template/);
 * FUZZ_TEMPLATE_ESCAPES=FILE appends each such error to FILE instead, to
 * survey them in one run.
 * The state's memory cap and deadline errors are expected: they are the
 * sandbox doing its job.
 *
 * libFuzzer sees only C coverage, and template.lua is Lua: a line hook
 * turns each (previous line, line) pair the Lua code runs into one of
 * libFuzzer's extra counters, so new paths through the template engine
 * count as new coverage too.
 *
 * The Lua directory: $COFFER_LUA_DIR, else ../../lua from the binary.
 */
#include "../../src/luavm.c"

#include <libgen.h>
#include <limits.h>
#include <unistd.h>

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MEMORY ((size_t)32 * 1024 * 1024)
#define FUZZ_BUDGET 2.0 /* seconds of Lua per input */

static struct vm fz_vm;
static char fz_module;     /* registry key: the template module */
static bool fz_strict;

#define FZ_EDGES 8192
__attribute__((section("__libfuzzer_extra_counters"), used))
static uint8_t fz_lua_edges[FZ_EDGES];
static unsigned fz_prev_line;

static double fz_deadline;
static bool fz_timed_out;

/*
 * Lua line edges for libFuzzer, and the deadline (as the sandbox's own
 * hook does it: once past, raise on every instruction).
 */
static void fz_hook(lua_State *L, lua_Debug *ar)
{
    if (ar->event == LUA_HOOKLINE) {
        unsigned line = (unsigned)ar->currentline;
        unsigned edge = (fz_prev_line * 2654435761u ^ line) % FZ_EDGES;
        if (fz_lua_edges[edge] != 255)
            fz_lua_edges[edge]++;
        fz_prev_line = line;
        return;
    }
    if (time_mono() < fz_deadline)
        return;
    fz_timed_out = true;
    lua_sethook(L, fz_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "fuzz: input ran past its deadline");
}
static FILE *fz_escapes;

static const char *const fixed_templates[] = {
    "{{ printf \"v-%s-%s-%s-%s\" (.DisplayName | truncate 8) "
    "(.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}",
    "{{.DisplayName}}-{{.RoleName}}",
    "{{ .DisplayName | lowercase | replace \"-\" \"_\" | truncate_sha256 20 "
    "}}",
    "{{ printf \"%q/%v\" .RoleName (.DisplayName | sha256) | base64 | "
    "uppercase }}",
    "{{- .RoleName -}} {{ timestamp \"2006-01-02\" }}",
};

/* Opens the sandbox and loads template.lua. [-0, +0, e] */
static int fz_boot(lua_State *L)
{
    lua_gc(L, LUA_GCGEN, 0, 0);
    open_sandbox(L);
    lua_pushcfunction(L, luavm__require);
    lua_pushliteral(L, "template");
    lua_call(L, 1, 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &fz_module);
    return 0;
}

static char *lua_dir_default(void)
{
    char exe[PATH_MAX];
    char out[PATH_MAX + 16];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (n <= 0)
        return xstrdup("lua");
    exe[n] = '\0';
    snprintf(out, sizeof(out), "%s/../../lua", dirname(exe));
    return xstrdup(out);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static struct lua_api_ctx ctx = {.lock_stripe = -1};
    const char *dir = getenv("COFFER_LUA_DIR");
    const char *strict = getenv("FUZZ_TEMPLATE_STRICT");
    struct errbuf err;
    int status;

    (void)argc;
    (void)argv;
    fuzz_quiet();
    fz_strict = strict == NULL || strcmp(strict, "0") != 0;
    if (getenv("FUZZ_TEMPLATE_ESCAPES") != NULL)
        fz_escapes = fopen(getenv("FUZZ_TEMPLATE_ESCAPES"), "a");
    g.lua_dir = dir != NULL ? xstrdup(dir) : lua_dir_default();
    /* States run only code from a snapshot of the scripts (luavm_code.c). */
    fz_vm.code = luavm__code_read(&err);
    if (fz_vm.code == NULL)
        fprintf(stderr, "fuzz: cannot read %s: %s\n", g.lua_dir, err.msg);
    FUZZ_CHECK(fz_vm.code != NULL);
    fz_vm.limit = FUZZ_MEMORY;
    fz_vm.deadline = INFINITY;
    fz_vm.L = lua_newstate(vm_alloc, &fz_vm);
    FUZZ_CHECK(fz_vm.L != NULL);
    lua_atpanic(fz_vm.L, vm_panic);
    LUA_API_CTX(fz_vm.L) = &ctx;
    lua_pushcfunction(fz_vm.L, fz_boot);
    status = lua_pcall(fz_vm.L, 0, 0, 0);
    if (status != LUA_OK)
        fprintf(stderr, "fuzz: cannot load template.lua from %s: %s\n",
                g.lua_dir, lua_tostring(fz_vm.L, -1));
    FUZZ_CHECK(status == LUA_OK);
    return 0;
}

/*
 * compile(text) then render(vars); checks the result shapes and returns
 * the rendered string (on the stack) or nil. Runs protected.
 * Upvalue-free; args: text, display, role, max_len (0 = none).
 */
static int fz_run(lua_State *L)
{
    lua_Integer max_len = lua_tointeger(L, 4);

    lua_rawgetp(L, LUA_REGISTRYINDEX, &fz_module); /* 5 */
    lua_getfield(L, 5, "compile");
    lua_pushvalue(L, 1);
    lua_call(L, 1, 2); /* 6: t or nil, 7: err */
    if (lua_isnil(L, 6)) {
        FUZZ_CHECK(lua_type(L, 7) == LUA_TSTRING);
        return 0;
    }
    FUZZ_CHECK(lua_istable(L, 6));
    lua_getfield(L, 6, "render"); /* 8 */
    lua_pushvalue(L, 6);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "DisplayName");
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "RoleName");
    lua_call(L, 2, 2); /* 8: out or nil, 9: err */
    if (lua_isnil(L, 8)) {
        FUZZ_CHECK(lua_type(L, 9) == LUA_TSTRING);
        return 0;
    }
    FUZZ_CHECK(lua_type(L, 8) == LUA_TSTRING);
    if (max_len > 0)
        FUZZ_CHECK((lua_Integer)lua_rawlen(L, 8) <= max_len);
    return 0;
}

static void run_one(const char *text, size_t tlen, const char *display,
                    size_t dlen, const char *role, size_t rlen,
                    lua_Integer max_len)
{
    lua_State *L = fz_vm.L;
    int status;

    lua_settop(L, 0);
    lua_pushcfunction(L, fz_run);
    lua_pushlstring(L, text, tlen);
    lua_pushlstring(L, display, dlen);
    lua_pushlstring(L, role, rlen);
    lua_pushinteger(L, max_len);
    fz_deadline = time_mono() + FUZZ_BUDGET;
    fz_timed_out = false;
    fz_prev_line = 0;
    lua_sethook(L, fz_hook, LUA_MASKLINE | LUA_MASKCOUNT, LUAVM_HOOK_COUNT);
    status = lua_pcall(L, 4, 0, 0);
    lua_sethook(L, NULL, 0, 0);
    if (status != LUA_OK && fz_escapes != NULL && status != LUA_ERRMEM &&
        !fz_timed_out) {
        fprintf(fz_escapes, "%.200s\t%.*s\n",
                lua_tostring(L, -1) ? lua_tostring(L, -1) : "?",
                (int)(tlen > 300 ? 300 : tlen), text);
        fflush(fz_escapes);
    }
    if (status != LUA_OK && fz_strict && status != LUA_ERRMEM &&
        !fz_timed_out) {
        fprintf(stderr, "fuzz: a Lua error escaped the template engine: "
                        "%s\n", lua_tostring(L, -1) ? lua_tostring(L, -1)
                                                    : "(not a string)");
        abort();
    }
    lua_settop(L, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data + 1;
    size_t n;

    if (size < 1 || size > 64 * 1024)
        return 0;
    n = size - 1;
    if ((data[0] & 1) == 0) {
        run_one(s, n, "token", 5, "my-role", 7, 0);
    } else {
        const char *sep = memchr(s, 0x1f, n);
        size_t dlen = sep != NULL ? (size_t)(sep - s) : n;
        const char *role = sep != NULL ? sep + 1 : "role";
        size_t rlen = sep != NULL ? n - dlen - 1 : 4;
        size_t which = (size_t)(data[0] >> 1) % ARRAY_LEN(fixed_templates);
        const char *t = fixed_templates[which];

        run_one(t, strlen(t), s, dlen, role, rlen, which == 0 ? 63 : 0);
    }
    /* The state is reused: a full collection frees what this input
       allocated, so one input's garbage is not the next one's
       out-of-memory, and libFuzzer sees as many frees as mallocs (else it
       runs a leak scan after every input, which costs 10x the input). */
    lua_gc(fz_vm.L, LUA_GCCOLLECT);
    return 0;
}
