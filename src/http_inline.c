/*
 * http_inline.c - which requests run on libmicrohttpd's I/O thread.
 *
 * Reads that provably cannot wait run on the I/O thread itself, with no
 * suspend, lane wake-up and resume (two context switches and two futex
 * calls per request; tests/bench/README.md). "Cannot wait" means every
 * one of:
 *   - GET, LIST or HEAD, with no X-Vault-Wrap-TTL (wrapping writes);
 *   - the physical storage is local (storage_blocking_in_use: never after
 *     a PostgreSQL storage was touched) and no audit device may wait
 *     (audit_may_block: only regular files, or none);
 *   - no Lua policy is loaded (a policy check runs operator code);
 *   - the path is one whose read only touches storage and memory: the
 *     built-in kv engine (router_reads_local), cubbyhole/, GET
 *     auth/token/lookup-self, and the sys/ reads in inline_sys_path;
 *   - the token, if any, is not use-limited: a use is a storage write
 *     (an fsync). A token found unlimited is remembered per thread by a
 *     keyed fingerprint (token_takes_no_use), since num_uses is fixed
 *     when a token is made; core_handle still looks the token up, so a
 *     revoked token is refused at once whichever thread runs it.
 * Everything else goes to the request workers. http.c adds one rule of
 * its own (no seal-endpoint write in flight) and runs the request.
 */
#include "http_inline.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "audit.h"
#include "crypto.h"
#include "cubbyhole.h"
#include "lifecycle.h"
#include "luavm.h"
#include "router.h"
#include "storage.h"
#include "sys_seal.h"
#include "token.h"
#include "util.h"

static atomic_bool inline_reads = true;

void http_set_inline_reads(bool on)
{
    atomic_store(&inline_reads, on);
}

/* sys/ reads served from memory or local storage, nothing that waits on
   a lease, database or plugin lock (sys/metrics asks the database pools,
   sys/leases the lease manager: they stay on the lanes). */
static bool inline_sys_path(const char *path)
{
    static const char *const exact[] = {
        "sys/health", "sys/seal-status", "sys/leader", "sys/mounts",
        "sys/mounts/", "sys/auth", "sys/auth/", "sys/policy",
        "sys/policy/", "sys/policies/acl", "sys/policies/acl/",
    };
    static const char *const named[] = {"sys/policy/", "sys/policies/acl/"};

    for (size_t i = 0; i < ARRAY_LEN(exact); i++) {
        if (strcmp(path, exact[i]) == 0)
            return true;
    }
    for (size_t i = 0; i < ARRAY_LEN(named); i++) {
        size_t n = strlen(named[i]);
        if (strncmp(path, named[i], n) == 0 && strchr(path + n, '/') == NULL)
            return true;
    }
    return false;
}

/* The mount (or C backend) serving req answers reads locally. */
static bool inline_path(const struct request *req)
{
    const char *p = req->path;

    if (cubbyhole_handles(p))
        return true;
    if (strncmp(p, "sys/", 4) == 0 || strcmp(p, "sys") == 0)
        return inline_sys_path(p);
    if (strncmp(p, "auth/token/", 11) == 0)
        return req->op == OP_READ && strcmp(p, "auth/token/lookup-self") == 0;
    return router_reads_local(p);
}

/*
 * A Lua policy is loaded. Cached per code generation in one word, the
 * generation shifted left and the answer in bit 0, so that a reader never
 * pairs one generation with another's answer.
 */
static bool lua_policies_loaded(void)
{
    static _Atomic uint64_t memo = UINT64_MAX; /* no generation yet */
    uint64_t gen = luavm_generation();
    uint64_t seen = atomic_load(&memo);
    struct luavm_code *c;
    bool loaded;

    if (seen != UINT64_MAX && seen >> 1 == (gen & (UINT64_MAX >> 1)))
        return (seen & 1) != 0;
    c = luavm_code_current();
    loaded = c == NULL || cJSON_GetArraySize(luavm_code_policies(c)) > 0;
    if (c != NULL)
        luavm_code_put(c);
    atomic_store(&memo, (gen << 1) | (loaded ? 1 : 0));
    return loaded;
}

/*
 * Per-thread memory of client tokens found unlimited: a keyed 64-bit
 * fingerprint (never the token) and when it was learnt. A wrong answer
 * (a collision, or a token re-created with the same id and a use limit
 * within TOKEN_MEMO_SECONDS) only puts one use-limited request on the
 * I/O thread: its use is still taken and counted by core_handle.
 */
#define TOKEN_MEMO_SLOTS 64
#define TOKEN_MEMO_SECONDS 30

struct token_memo {
    uint64_t fp;    /* 0 = empty */
    int64_t learnt; /* ms */
};

static _Thread_local struct token_memo token_memo[TOKEN_MEMO_SLOTS];
static uint64_t token_fp_key;
static pthread_once_t token_fp_once = PTHREAD_ONCE_INIT;

static void token_fp_init(void)
{
    if (crypto_random(&token_fp_key, sizeof(token_fp_key)) != 0)
        token_fp_key = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15u;
}

/* FNV-1a over the token from a secret start, then a final mix. */
static uint64_t token_fp(const char *t)
{
    uint64_t h = 0xcbf29ce484222325u ^ token_fp_key;

    for (; *t != '\0'; t++)
        h = (h ^ (unsigned char)*t) * 0x100000001b3u;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    return h != 0 ? h : 1;
}

/*
 * True if req's token takes no use: none given, unknown or revoked (the
 * pipeline refuses it without a write), or looked up unlimited.
 */
static bool token_takes_no_use(const struct request *req)
{
    struct token_memo *slot;
    struct token *t;
    uint64_t fp;
    int64_t now;
    bool unlimited;

    if (req->client_token == NULL || req->client_token[0] == '\0')
        return true;
    pthread_once(&token_fp_once, token_fp_init);
    fp = token_fp(req->client_token);
    slot = &token_memo[fp % TOKEN_MEMO_SLOTS];
    now = (int64_t)(time_mono() * 1000.0);
    if (slot->fp == fp && now - slot->learnt < TOKEN_MEMO_SECONDS * 1000)
        return true;
    t = lifecycle_lookup_token(req);
    unlimited = t == NULL || t->num_uses == 0;
    if (t != NULL && t->num_uses == 0) {
        slot->fp = fp;
        slot->learnt = now;
    }
    token_free(t);
    return unlimited;
}

bool http_inline_eligible(const struct request *req)
{
    if (!atomic_load_explicit(&inline_reads, memory_order_relaxed))
        return false;
    if (req->op != OP_READ && req->op != OP_LIST && req->op != OP_HEAD)
        return false;
    if (req->wrap_ttl != 0 || storage_blocking_in_use() || audit_may_block())
        return false;
    if (!inline_path(req))
        return false;
    /* The seal endpoints read no token and check no policy. */
    if (sys_seal_handles(req->path))
        return true;
    return !lua_policies_loaded() && token_takes_no_use(req);
}
