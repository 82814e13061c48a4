/*
 * luavm_code.c - code snapshots: every script's text, read from disk at
 * once, and the loader that runs scripts from one.
 *
 * Owns: struct luavm_code (luavm_int.h) - reading lua/coffer,
 * lua/engines, lua/auth, the plugin directory with its folders and the
 * policy directory into memory within bounds, reference counting, the
 * published snapshot with its generation and the one a reload is
 * checking (staged), and the lookups the router and auth make in them;
 * and the script loader - a chunk compiled from a snapshot's text in a
 * fresh _ENV, and `require` (per plugin folder, cached per state).
 * It lives apart from luavm.c because a snapshot is data with its own
 * lifetime and lock, shared by every thread, while a state is one
 * thread's: the loader only reads the snapshot its state holds
 * (luavm__of(L)->code). Does not own states, the sandbox, the bootstrap
 * or calls (luavm.c, whose internals it shares through luavm_int.h),
 * nor Lua policies (luavm_policy.c).
 *
 * Reload (sys_plugins.c): luavm_code_load (luavm.c) reads a snapshot
 * here and validates it in a scratch state; luavm_code_stage marks it
 * while the reload checks the mounts; luavm_code_publish swaps it in
 * under g.lock with the next generation, which luavm__get compares with
 * its state's at the start of every call.
 */
#include "luavm.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>

#include "buf.h"
#include "crypto.h"
#include "log.h"
#include "luavm_int.h"
#include "util.h"

#define VM_MAX_SCRIPT ((size_t)4 * 1024 * 1024)
/* Bounds on one code snapshot: what a plugin directory may hold. */
#define CODE_MAX_FILES 4096
#define CODE_MAX_BYTES ((size_t)128 * 1024 * 1024)

/* Registry key of the require cache: file path -> value (false =
   loading). open_sandbox (luavm.c) creates the table. */
char luavm__key_modules;

/*
 * The published code snapshot. The lock guards the pointer (readers
 * take a reference or finish with it before unlocking); gen mirrors
 * code->gen so that a call can tell its state is stale with one atomic
 * load, without the lock.
 */
static struct {
    pthread_rwlock_t lock;
    struct luavm_code *code;
    struct luavm_code *staged; /* being checked for publication, or NULL */
    _Atomic uint64_t gen;
    uint64_t next_gen;       /* under reload serialisation (publish) */
} g = {.lock = PTHREAD_RWLOCK_INITIALIZER};

/* ====================================================== code snapshots == */

/* Reads path into b. 0, or a COFFER_E* code with errno-style words. */
static int read_file(const char *path, struct buf *b, struct errbuf *err)
{
    struct file_error why;
    int rc = file_read(path, b, &why);

    if (rc == COFFER_ETOOBIG)
        errbuf_set(err, "%s: script too large", path);
    else if (rc != 0 && strcmp(why.op, "open") == 0)
        errbuf_set(err, "cannot open %s: %s", path, strerror(why.errnum));
    else if (rc != 0)
        errbuf_set(err, "cannot read %s", path);
    return rc;
}

static struct luavm_code *code_new(void)
{
    struct luavm_code *c = xcalloc(1, sizeof(*c));

    atomic_init(&c->refs, 1);
    strvec_init(&c->engines);
    strvec_init(&c->auths);
    strvec_init(&c->logins);
    strvec_init(&c->secrets);
    c->policies = cJSON_CreateArray();
    return c;
}

struct luavm_code *luavm__code_ref(struct luavm_code *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

/* Drops a reference; the last one frees the snapshot. */
static void code_put(struct luavm_code *c)
{
    if (c == NULL ||
        atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < c->nfiles; i++) {
        free(c->files[i].path);
        free(c->files[i].text);
    }
    free(c->files);
    strvec_release(&c->engines);
    strvec_release(&c->auths);
    strvec_release(&c->logins);
    strvec_release(&c->secrets);
    cJSON_Delete(c->policies);
    free(c);
}

/* A new "<a>/<b>" string. */
static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = xmalloc(n);

    snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Copies the file at path into the snapshot, within its bounds. */
static int code_add(struct luavm_code *c, const char *path,
                    struct errbuf *err)
{
    struct luavm_file *f;
    struct buf b;
    int rc;

    if (c->nfiles >= CODE_MAX_FILES) {
        errbuf_set(err, "%s: more than %d scripts to load", path,
                   CODE_MAX_FILES);
        return COFFER_ETOOBIG;
    }
    buf_init(&b, VM_MAX_SCRIPT);
    rc = read_file(path, &b, err);
    if (rc == 0 && b.len > CODE_MAX_BYTES - c->bytes) {
        errbuf_set(err, "%s: the scripts to load exceed %zu bytes", path,
                   CODE_MAX_BYTES);
        rc = COFFER_ETOOBIG;
    }
    if (rc == 0) {
        if (c->nfiles == c->cap) {
            c->cap = c->cap != 0 ? c->cap * 2 : 64;
            c->files = xrealloc(c->files, c->cap * sizeof(*c->files));
        }
        f = &c->files[c->nfiles++];
        f->path = xstrdup(path);
        f->len = b.len;
        f->text = xmalloc(b.len + 1);
        if (b.len > 0)
            memcpy(f->text, b.ptr, b.len);
        f->text[b.len] = '\0';
        c->bytes += b.len;
    }
    buf_release(&b);
    return rc;
}

/* Scripts are *.lua; *_test.lua files are for the test harness only. */
static bool is_script(const char *name)
{
    return str_has_suffix(name, ".lua") && !str_has_suffix(name, "_test.lua");
}

/*
 * Adds every script of dir; with folders, also those of its immediate
 * sub-directories (plugin folders). A missing dir adds nothing; names
 * starting with '.' and entries that are neither files nor directories
 * (or dangling links) are skipped.
 */
static int code_read_dir(struct luavm_code *c, const char *dir, bool folders,
                         struct errbuf *err)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    struct stat st;
    char *path;
    int rc = 0;

    if (d == NULL) {
        if (errno == ENOENT)
            return 0;
        errbuf_set(err, "cannot open %s: %s", dir, strerror(errno));
        return COFFER_EIO;
    }
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        path = path_join(dir, de->d_name);
        if (stat(path, &st) != 0)
            log_warn("lua: skipping %s: %s", path, strerror(errno));
        else if (S_ISREG(st.st_mode) && is_script(de->d_name))
            rc = code_add(c, path, err);
        else if (S_ISDIR(st.st_mode) && folders)
            rc = code_read_dir(c, path, false, err);
        free(path);
    }
    closedir(d);
    return rc;
}

static int file_cmp(const void *a, const void *b)
{
    return strcmp(((const struct luavm_file *)a)->path,
                  ((const struct luavm_file *)b)->path);
}

/* The snapshot's file at path, or NULL. */
const struct luavm_file *luavm__code_find(const struct luavm_code *c,
                                          const char *path)
{
    struct luavm_file key = {.path = (char *)path};

    if (c == NULL || c->nfiles == 0)
        return NULL;
    return bsearch(&key, c->files, c->nfiles, sizeof(*c->files), file_cmp);
}

/* Sorts the files by path and drops repeats (overlapping directories). */
static void code_sort(struct luavm_code *c)
{
    size_t i, out = 0;

    if (c->nfiles > 1)
        qsort(c->files, c->nfiles, sizeof(*c->files), file_cmp);
    for (i = 0; i < c->nfiles; i++) {
        if (out > 0 && strcmp(c->files[out - 1].path, c->files[i].path) == 0) {
            c->bytes -= c->files[i].len;
            free(c->files[i].path);
            free(c->files[i].text);
            continue;
        }
        c->files[out++] = c->files[i];
    }
    c->nfiles = out;
}

/*
 * Reads every script the states run into a new snapshot: lua/coffer,
 * lua/engines, lua/auth, the plugin directory with its folders, and the
 * policy directory. NULL with the reason in err.
 */
struct luavm_code *luavm__code_read(struct errbuf *err)
{
    static const char *const dirs[] = {"coffer", "engines", "auth"};
    struct luavm_code *c = code_new();
    const char *pdir = luavm__policy_dir();
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < ARRAY_LEN(dirs); i++) {
        char *dir = path_join(luavm__lua_dir(), dirs[i]);
        rc = code_read_dir(c, dir, false, err);
        free(dir);
    }
    if (rc == 0 && luavm__plugin_dir() != NULL)
        rc = code_read_dir(c, luavm__plugin_dir(), true, err);
    if (rc == 0 && pdir != NULL)
        rc = code_read_dir(c, pdir, false, err);
    if (rc != 0) {
        code_put(c);
        return NULL;
    }
    code_sort(c);
    return c;
}

/* ============================================================ loading == */

static int l_vm_require_in(lua_State *L);

/*
 * Compiles f as text with chunk name "@<path>" (so errors say
 * file:line) and pushes it with a fresh _ENV. A script of a plugin
 * folder gets its own `require` in that _ENV, resolving in folder
 * first. [-0, +1, e]
 */
void luavm__load_chunk(lua_State *L, const struct luavm_file *f,
                       const char *folder)
{
    lua_pushfstring(L, "@%s", f->path);
    if (luaL_loadbufferx(L, f->text, f->len, lua_tostring(L, -1), "t") !=
        LUA_OK)
        lua_error(L); /* a syntax error already says file:line */
    lua_remove(L, -2);
    luavm__push_env(L);
    if (folder != NULL) {
        lua_pushliteral(L, "require");
        lua_pushstring(L, folder);
        lua_pushcclosure(L, l_vm_require_in, 1);
        lua_rawset(L, -3);
    }
    lua_setupvalue(L, -2, 1);
}

/*
 * Loads <root>/<rel> from the state's snapshot and pushes the chunk.
 * Returns false (nothing pushed) only if the snapshot has no such file
 * and missing_ok. [-0, +(0|1), e]
 */
bool luavm__load_path(lua_State *L, const char *root, const char *rel,
                      bool missing_ok)
{
    const char *path = lua_pushfstring(L, "%s/%s", root, rel);
    const struct luavm_file *f = luavm__code_find(luavm__of(L)->code, path);

    if (f == NULL && missing_ok) {
        lua_pop(L, 1);
        return false;
    }
    if (f == NULL)
        luaL_error(L, "cannot open %s: no such script", path);
    lua_pop(L, 1);
    luavm__load_chunk(L, f, NULL);
    return true;
}

/* Module names are plain identifiers: no dots, slashes or "..". */
static bool valid_module_name(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    }
    return true;
}

/*
 * require(name) from a script of folder (a plugin folder, or NULL):
 * folder/<name>.lua first, then lua/coffer/<name>.lua; "coffer.<name>"
 * names lua/coffer only. Loaded once per state and file, so two plugin
 * folders may each have their own "util". Text only, from the code
 * snapshot: no package.path, no C modules, no names outside the safe
 * alphabet. [-1, +1, e]
 */
static int vm_require(lua_State *L, const char *folder)
{
    const struct luavm_code *c = luavm__of(L)->code;
    const char *name = luaL_checkstring(L, 1);
    const struct luavm_file *f = NULL;
    const char *from = NULL;

    if (strncmp(name, "coffer.", 7) == 0) {
        name += 7;
        folder = NULL;
    }
    if (!valid_module_name(name))
        return luaL_error(L, "module '%s' not found", lua_tostring(L, 1));
    lua_settop(L, 1);
    if (folder != NULL) {
        f = luavm__code_find(c, lua_pushfstring(L, "%s/%s.lua", folder, name));
        if (f != NULL)
            from = folder;
        else
            lua_pop(L, 1);
    }
    if (f == NULL)
        f = luavm__code_find(c, lua_pushfstring(L, "%s/coffer/%s.lua",
                                                luavm__lua_dir(), name));
    if (f == NULL)
        return luaL_error(L, "module '%s' not found", name);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &luavm__key_modules); /* 3; 2 = path */
    lua_pushvalue(L, 2);
    if (lua_rawget(L, 3) != LUA_TNIL) {
        if (lua_isboolean(L, -1) && !lua_toboolean(L, -1))
            return luaL_error(L, "module '%s' required while loading", name);
        return 1;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, 2);
    lua_pushboolean(L, 0);
    lua_rawset(L, 3);
    luavm__load_chunk(L, f, from);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, 3);
    return 1;
}

/* The global require: lua/coffer modules. */
int luavm__require(lua_State *L)
{
    return vm_require(L, NULL);
}

/* A plugin folder's require; upvalue 1 is the folder. */
static int l_vm_require_in(lua_State *L)
{
    return vm_require(L, lua_tostring(L, lua_upvalueindex(1)));
}

/* ======================================================== publication == */

/* A reference to the published snapshot. */
static struct luavm_code *code_current(void)
{
    struct luavm_code *c;

    pthread_rwlock_rdlock(&g.lock);
    c = luavm__code_ref(g.code);
    pthread_rwlock_unlock(&g.lock);
    return c;
}

/*
 * Makes c the code new states are built from. Takes the caller's
 * reference; returns its generation. Serialised by the caller.
 */
static uint64_t code_publish(struct luavm_code *c)
{
    struct luavm_code *old;

    c->gen = ++g.next_gen;
    pthread_rwlock_wrlock(&g.lock);
    old = g.code;
    g.code = c;
    if (g.staged == c)
        g.staged = NULL;
    atomic_store_explicit(&g.gen, c->gen, memory_order_release);
    pthread_rwlock_unlock(&g.lock);
    code_put(old);
    return c->gen;
}

/* Drops the published snapshot (shutdown, or a failed init). */
void luavm__code_unpublish(void)
{
    pthread_rwlock_wrlock(&g.lock);
    code_put(g.code);
    g.code = NULL;
    pthread_rwlock_unlock(&g.lock);
}

/* ====================================================== code, reload == */

struct luavm_code *luavm_code_current(void)
{
    return luavm__ready() ? code_current() : NULL;
}

void luavm_code_put(struct luavm_code *c)
{
    code_put(c);
}

uint64_t luavm_code_publish(struct luavm_code *c)
{
    return code_publish(c);
}

void luavm_code_stage(struct luavm_code *c)
{
    pthread_rwlock_wrlock(&g.lock);
    g.staged = c;
    pthread_rwlock_unlock(&g.lock);
}

uint64_t luavm_generation(void)
{
    return atomic_load_explicit(&g.gen, memory_order_acquire);
}

bool luavm_code_has_type(const struct luavm_code *c, bool auth,
                         const char *type)
{
    return c != NULL && type != NULL &&
           strvec_contains(auth ? &c->auths : &c->engines, type);
}

void luavm_code_lost_secrets(const struct luavm_code *old,
                             const struct luavm_code *c, struct strvec *out)
{
    for (size_t i = 0; old != NULL && i < old->secrets.n; i++) {
        if (!strvec_contains(&c->secrets, old->secrets.v[i]))
            strvec_push(out, old->secrets.v[i]);
    }
}

const cJSON *luavm_code_policies(const struct luavm_code *c)
{
    return c != NULL ? c->policies : NULL;
}

size_t luavm_code_files(const struct luavm_code *c)
{
    return c != NULL ? c->nfiles : 0;
}

/*
 * Whether the published snapshot, and the staged one if a reload is
 * checking one, both say so (under the lock): a mount enabled while a
 * reload checks the mounts cannot get a type the reload will drop.
 */
static bool current_has(const struct strvec *(*pick)(
                            const struct luavm_code *),
                        const char *type)
{
    bool ok;

    if (!luavm__ready() || type == NULL)
        return false;
    pthread_rwlock_rdlock(&g.lock);
    ok = strvec_contains(pick(g.code), type) &&
         (g.staged == NULL || strvec_contains(pick(g.staged), type));
    pthread_rwlock_unlock(&g.lock);
    return ok;
}

static const struct strvec *pick_engines(const struct luavm_code *c)
{
    return &c->engines;
}

static const struct strvec *pick_auths(const struct luavm_code *c)
{
    return &c->auths;
}

bool luavm_engine_exists(const char *type)
{
    return current_has(pick_engines, type);
}

bool luavm_auth_exists(const char *type)
{
    return current_has(pick_auths, type);
}

/* Whether rel matches one "<type>\037<pattern>" login entry. */
static bool login_matches(const char *e, const char *type, size_t tn,
                          const char *rel, size_t rn)
{
    const char *pat;
    size_t pn;

    if (strncmp(e, type, tn) != 0 || e[tn] != '\037')
        return false;
    pat = e + tn + 1;
    pn = strlen(pat);
    if (pn > 0 && pat[pn - 1] == '*')
        return rn >= pn - 1 && strncmp(rel, pat, pn - 1) == 0;
    return rn == pn && strncmp(rel, pat, pn) == 0;
}

bool luavm_auth_is_login(const char *type, const char *rel)
{
    size_t tn, rn;
    bool hit = false;

    if (!luavm__ready() || type == NULL || rel == NULL)
        return false;
    tn = strlen(type);
    rn = strlen(rel);
    if (rn > 0 && rel[rn - 1] == '/')
        rn--; /* "login/" is "login" */
    pthread_rwlock_rdlock(&g.lock);
    for (size_t i = 0; !hit && i < g.code->logins.n; i++)
        hit = login_matches(g.code->logins.v[i], type, tn, rel, rn);
    pthread_rwlock_unlock(&g.lock);
    return hit;
}

bool luavm_code_digest(const char *rel, unsigned char out[32], uint64_t *gen)
{
    struct luavm_code *c = code_current();
    const struct luavm_file *f = NULL;
    char *path;

    if (c == NULL)
        return false;
    path = path_join(luavm__lua_dir(), rel);
    f = luavm__code_find(c, path);
    free(path);
    if (f != NULL)
        crypto_sha256(f->text, f->len, out);
    *gen = c->gen;
    code_put(c);
    return f != NULL;
}
