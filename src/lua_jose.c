/*
 * lua_jose.c - coffer.jose, coffer.x509 and the SHA-2/HMAC helpers of
 * coffer.crypto, over OpenSSL (the work is jose.c's; this is the Lua side).
 *
 * Conventions (contract of issue 10): expected failures - a malformed
 * token, a bad signature, an expired token, a chain that does not verify -
 * return nil, message; misuse (wrong argument types, unknown option keys,
 * an algorithm we never verify in opts.algs) raises.
 *
 * Resources: keys and keysets are userdata whose __gc frees the C object;
 * a parsed token and an X.509 summary live in a "box" userdata created
 * empty before anything is acquired, so a raise (out of memory while
 * pushing the claims, say) frees them through __gc (STYLE 3.4). Keys are
 * public, so nothing here needs wiping, except HMAC output, which may be
 * a derived secret. Stack effects use the Lua manual's [-o, +p, x].
 *
 * Chapters: userdata; base64url; keys; verify; x509; crypto; open.
 */
#include "lua_jose.h"

#include <stdint.h>
#include <string.h>

#include <lauxlib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "crypto.h"
#include "jose.h"
#include "lua_json.h"

#define KEY_MT "coffer.jose.key"
#define KEYSET_MT "coffer.jose.keyset"
#define JWS_MT "coffer.jose.jws"
#define X509_MT "coffer.x509.info"

/* At most this many keys in a plain list given to verify. */
#define VERIFY_MAX_KEYS JOSE_JWKS_MAX_KEYS

struct key_ud {
    struct jose_key *key;
};

struct keyset_ud {
    struct jose_keyset *ks;
};

/* ============================================================ userdata == */

/* Pushes an empty key userdata. [-0, +1, m] */
static struct key_ud *push_key_ud(lua_State *L)
{
    struct key_ud *u = lua_newuserdatauv(L, sizeof(*u), 0);

    u->key = NULL;
    luaL_setmetatable(L, KEY_MT);
    return u;
}

static int l_key_gc(lua_State *L)
{
    struct key_ud *u = luaL_checkudata(L, 1, KEY_MT);

    jose_key_free(u->key);
    u->key = NULL;
    return 0;
}

/* tostring(key) -> "jose key (EC P-256, kid=...)". [-1, +1, m] */
static int l_key_tostring(lua_State *L)
{
    struct key_ud *u = luaL_checkudata(L, 1, KEY_MT);
    char desc[64];

    if (u->key == NULL) {
        lua_pushliteral(L, "jose key (freed)");
        return 1;
    }
    jose_key_describe(u->key, desc, sizeof(desc));
    lua_pushfstring(L, "jose key (%s)", desc);
    return 1;
}

/* key:kid() -> the JWK's kid or nil. [-1, +1, m] */
static int l_key_kid(lua_State *L)
{
    struct key_ud *u = luaL_checkudata(L, 1, KEY_MT);
    const char *kid = u->key != NULL ? jose_key_kid(u->key) : NULL;

    if (kid == NULL)
        lua_pushnil(L);
    else
        lua_pushstring(L, kid);
    return 1;
}

static int l_keyset_gc(lua_State *L)
{
    struct keyset_ud *u = luaL_checkudata(L, 1, KEYSET_MT);

    jose_keyset_free(u->ks);
    u->ks = NULL;
    return 0;
}

/* #keyset -> number of usable keys. [-1, +1, -] */
static int l_keyset_len(lua_State *L)
{
    struct keyset_ud *u = luaL_checkudata(L, 1, KEYSET_MT);

    lua_pushinteger(L, u->ks != NULL ? (lua_Integer)jose_keyset_len(u->ks) : 0);
    return 1;
}

/* keyset:kids() -> array of the kids present, in key order. [-1, +1, m] */
static int l_keyset_kids(lua_State *L)
{
    struct keyset_ud *u = luaL_checkudata(L, 1, KEYSET_MT);
    size_t n = u->ks != NULL ? jose_keyset_len(u->ks) : 0;
    lua_Integer j = 0;

    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        const char *kid = jose_key_kid(jose_keyset_key(u->ks, i));
        if (kid != NULL) {
            lua_pushstring(L, kid);
            lua_rawseti(L, -2, ++j);
        }
    }
    lua_json_mark_array(L, -1);
    return 1;
}

static int l_keyset_tostring(lua_State *L)
{
    struct keyset_ud *u = luaL_checkudata(L, 1, KEYSET_MT);

    lua_pushfstring(L, "jose keyset (%d keys)",
                    u->ks != NULL ? (int)jose_keyset_len(u->ks) : 0);
    return 1;
}

/* Pushes an empty token box. [-0, +1, m] */
static struct jose_jws *push_jws_box(lua_State *L)
{
    struct jose_jws *jws = lua_newuserdatauv(L, sizeof(*jws), 0);

    jose_jws_init(jws);
    luaL_setmetatable(L, JWS_MT);
    return jws;
}

static int l_jws_gc(lua_State *L)
{
    jose_jws_release(luaL_checkudata(L, 1, JWS_MT));
    return 0;
}

static int l_x509_gc(lua_State *L)
{
    jose_x509_info_release(luaL_checkudata(L, 1, X509_MT));
    return 0;
}

/* nil, msg. [-0, +2, m] */
static int push_fail(lua_State *L, const char *msg)
{
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

/* =========================================================== base64url == */

/* coffer.jose.b64url_encode(s) -> unpadded base64url. [-1, +1, m] */
static int l_jose_b64url_encode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, JOSE_B64URL_ENCODED_MAX(len) + 1);

    luaL_pushresultsize(&b, jose_b64url_encode_into(s, len, out));
    return 1;
}

/* coffer.jose.b64url_decode(s) -> bytes | nil, err (strict). [-1, +1|2, m] */
static int l_jose_b64url_decode(lua_State *L)
{
    size_t len, n = 0;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    unsigned char *out = (unsigned char *)luaL_buffinitsize(
        L, &b, JOSE_B64URL_DECODED_MAX(len) + 1);

    if (jose_b64url_decode_into(s, len, out, &n) != 0)
        return push_fail(L, "invalid base64url");
    luaL_pushresultsize(&b, n);
    return 1;
}

/* ================================================================ keys == */

/*
 * coffer.jose.decode(jwt) -> header, claims | nil, err: the shape is
 * checked, the signature is NOT. For reading kid or iss before choosing
 * keys. [-1, +2, m]
 */
static int l_jose_decode(lua_State *L)
{
    size_t len;
    const char *token = luaL_checklstring(L, 1, &len);
    struct jose_jws *jws = push_jws_box(L);
    struct errbuf err;

    if (jose_jws_parse(jws, token, len, &err) != 0)
        return push_fail(L, err.msg);
    lua_json_push(L, jws->header);
    lua_json_push(L, jws->claims);
    jose_jws_release(jws);
    return 2;
}

/* coffer.jose.parse_jwks(text_or_table) -> keyset | nil, err. [-1, +1|2, e] */
static int l_jose_parse_jwks(lua_State *L)
{
    struct keyset_ud *u;
    struct errbuf err;
    cJSON *tree = NULL;
    size_t len;
    const char *text;
    int rc;

    luaL_argexpected(L, lua_type(L, 1) == LUA_TSTRING ||
                            lua_type(L, 1) == LUA_TTABLE, 1, "string or table");
    u = lua_newuserdatauv(L, sizeof(*u), 0);
    u->ks = NULL;
    luaL_setmetatable(L, KEYSET_MT);
    if (lua_type(L, 1) == LUA_TSTRING) {
        text = lua_tolstring(L, 1, &len);
        rc = jose_jwks_parse(text, len, &u->ks, &err);
    } else {
        lua_json_to(L, 1, &tree); /* raises with nothing held */
        rc = jose_jwks_from_json(tree, &u->ks, &err);
        cJSON_Delete(tree);
    }
    if (rc != 0)
        return push_fail(L, err.msg);
    return 1;
}

/* coffer.jose.parse_pem(pem) -> key | nil, err. [-1, +1|2, m] */
static int l_jose_parse_pem(lua_State *L)
{
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    struct key_ud *u = push_key_ud(L);
    struct errbuf err;

    if (jose_key_from_pem(pem, len, &u->key, &err) != 0)
        return push_fail(L, err.msg);
    return 1;
}

/* ============================================================== verify == */

/* What verify's arguments say, all borrowed from the Lua stack. */
struct verify_args {
    const struct jose_keyset *ks;     /* a keyset, or: */
    const struct jose_key **keys;     /* a key or a list of keys */
    size_t n_keys;
    unsigned allowed;
    struct jose_claims_opts claims;
};

/* Reads the keys argument (index 2) into a. [-0, +1, e] (a scratch udata) */
static void check_keys(lua_State *L, struct verify_args *a)
{
    struct keyset_ud *ks = luaL_testudata(L, 2, KEYSET_MT);
    struct key_ud *k = luaL_testudata(L, 2, KEY_MT);
    lua_Unsigned n;

    if (ks != NULL) {
        luaL_argcheck(L, ks->ks != NULL, 2, "empty keyset");
        a->ks = ks->ks;
        lua_pushnil(L);
        return;
    }
    if (k != NULL) {
        luaL_argcheck(L, k->key != NULL, 2, "freed key");
        a->keys = lua_newuserdatauv(L, sizeof(*a->keys), 0);
        a->keys[0] = k->key;
        a->n_keys = 1;
        return;
    }
    luaL_argexpected(L, lua_istable(L, 2), 2, "keyset, key or list of keys");
    n = lua_rawlen(L, 2);
    luaL_argcheck(L, n >= 1 && n <= VERIFY_MAX_KEYS, 2,
                  "a list of 1 to 100 keys");
    a->keys = lua_newuserdatauv(L, (size_t)n * sizeof(*a->keys), 0);
    for (lua_Unsigned i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, (lua_Integer)i);
        k = luaL_testudata(L, -1, KEY_MT);
        if (k == NULL || k->key == NULL)
            luaL_argerror(L, 2, "list holds something other than a key");
        a->keys[a->n_keys++] = k->key;
        lua_pop(L, 1); /* the list still references the key */
    }
}

/* opts.algs: the allowed set, each name one we verify. [-0, +0, e] */
static unsigned check_algs(lua_State *L, int idx)
{
    unsigned allowed = 0;
    lua_Unsigned n;

    luaL_argexpected(L, lua_istable(L, idx), 3, "algs as a list of names");
    n = lua_rawlen(L, idx);
    for (lua_Unsigned i = 1; i <= n; i++) {
        enum jose_alg alg;
        lua_rawgeti(L, idx, (lua_Integer)i);
        alg = jose_alg_from_name(lua_tostring(L, -1));
        if (lua_type(L, -1) != LUA_TSTRING || alg == JOSE_ALG_INVALID)
            luaL_error(L, "coffer.jose.verify: opts.algs: unsupported "
                          "algorithm at index %d", (int)i);
        allowed |= JOSE_ALG_BIT(alg);
        lua_pop(L, 1);
    }
    if (allowed == 0)
        luaL_error(L, "coffer.jose.verify: opts.algs is empty");
    return allowed;
}

/* opts.audiences: a string or a list of strings. [-0, +1, e] */
static void check_audiences(lua_State *L, int idx, struct jose_claims_opts *o)
{
    const char **list;
    lua_Unsigned n;

    if (lua_type(L, idx) == LUA_TSTRING) {
        list = lua_newuserdatauv(L, sizeof(*list), 0);
        list[0] = lua_tostring(L, idx);
        o->audiences = list;
        o->n_audiences = 1;
        return;
    }
    luaL_argexpected(L, lua_istable(L, idx), 3, "audiences as a list");
    n = lua_rawlen(L, idx);
    luaL_argcheck(L, n <= 1000, 3, "too many audiences");
    list = lua_newuserdatauv(L, (size_t)n * sizeof(*list) + 1, 0);
    for (lua_Unsigned i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "coffer.jose.verify: opts.audiences holds a "
                          "non-string");
        list[i - 1] = lua_tostring(L, -1); /* anchored by the list */
        lua_pop(L, 1);
    }
    o->audiences = list;
    o->n_audiences = (size_t)n;
}

/* An integer option (leeways). [-0, +0, e] */
static int64_t int_opt(lua_State *L, int idx, const char *name)
{
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, idx, &isint);

    if (!isint)
        luaL_error(L, "coffer.jose.verify: opts.%s must be an integer", name);
    return (int64_t)v;
}

static const char *str_opt(lua_State *L, int idx, const char *name)
{
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "coffer.jose.verify: opts.%s must be a string", name);
    return lua_tostring(L, idx);
}

/* One option: the key at -2, the value at -1. [-0, +0|1, e] */
static void verify_opt(lua_State *L, struct verify_args *a)
{
    const char *k = lua_tostring(L, -2);
    struct jose_claims_opts *o = &a->claims;
    int v = lua_gettop(L);

    if (strcmp(k, "algs") == 0) {
        a->allowed = check_algs(L, v);
    } else if (strcmp(k, "issuer") == 0) {
        o->issuer = str_opt(L, v, k);
    } else if (strcmp(k, "subject") == 0) {
        o->subject = str_opt(L, v, k);
    } else if (strcmp(k, "audiences") == 0) {
        check_audiences(L, v, o); /* leaves the list's udata */
        lua_insert(L, v - 1); /* below key and value: anchored there */
    } else if (strcmp(k, "now") == 0) {
        lua_Number t = lua_tonumber(L, v);
        if (lua_type(L, v) != LUA_TNUMBER || t != t) /* t != t: NaN */
            luaL_error(L, "coffer.jose.verify: opts.now must be a number");
        o->now = t;
    } else if (strcmp(k, "clock_skew_leeway") == 0) {
        o->clock_skew_leeway = int_opt(L, v, k);
    } else if (strcmp(k, "expiration_leeway") == 0) {
        o->expiration_leeway = int_opt(L, v, k);
    } else if (strcmp(k, "not_before_leeway") == 0) {
        o->not_before_leeway = int_opt(L, v, k);
    } else if (strcmp(k, "require_exp") == 0) {
        luaL_argexpected(L, lua_isboolean(L, v), 3, "require_exp boolean");
        o->require_exp = lua_toboolean(L, v);
    } else if (strcmp(k, "allow_missing_times") == 0) {
        luaL_argexpected(L, lua_isboolean(L, v), 3,
                         "allow_missing_times boolean");
        o->allow_missing_times = lua_toboolean(L, v);
    } else {
        luaL_error(L, "coffer.jose.verify: unknown option \"%s\"", k);
    }
}

/* Reads opts (index 3, optional). Anchors go on the stack. [-0, +n, e] */
static void check_opts(lua_State *L, struct verify_args *a)
{
    a->allowed = JOSE_ALGS_ALL;
    jose_claims_opts_init(&a->claims);
    if (lua_isnoneornil(L, 3))
        return;
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 3) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "coffer.jose.verify: option names are strings");
        verify_opt(L, a);
        lua_pop(L, 1);
    }
}

/*
 * Verifies the token's signature with the chosen keys: 0, or non-zero
 * with err set ("unknown kid" when a keyset lacks the header's kid, so
 * the caller can refresh the JWKS and retry).
 */
static int verify_signature(lua_State *L, struct jose_jws *jws,
                            struct verify_args *a, struct errbuf *err)
{
    const struct jose_key **cand = a->keys;
    size_t n = a->n_keys;
    int rc;

    rc = jose_jws_check_header(jws, a->allowed, err);
    if (rc != 0)
        return rc;
    if (a->ks != NULL) {
        cand = lua_newuserdatauv(L, (jose_keyset_len(a->ks) + 1) *
                                        sizeof(*cand), 0);
        n = jose_keyset_select(a->ks, jws->kid, cand, jose_keyset_len(a->ks));
        /* No such kid: the caller may refresh its JWKS and try again. */
        if (n == 0 && jws->kid != NULL) {
            errbuf_set(err, "unknown kid");
            return COFFER_ENOTFOUND;
        }
    }
    return jose_jws_verify(jws, cand, n, a->allowed, err);
}

/* claims, header of a checked token; the box is emptied. [-0, +2, m] */
static int push_checked(lua_State *L, struct jose_jws *jws)
{
    lua_json_push(L, jws->claims);
    lua_json_push(L, jws->header);
    jose_jws_release(jws);
    return 2;
}

/*
 * coffer.jose.verify(jwt, keys, opts) -> claims, header | nil, err
 * [, "claims"]. The third value is there when the signature verified but
 * a claim was refused (iss, sub, aud, the times; not a malformed one), so
 * a caller can word the two kinds of refusal apart as Vault does. The
 * time rules are hashicorp/cap's (jose.h): a present exp gets only
 * clock_skew_leeway (default 60); expiration_leeway and not_before_leeway
 * (default 150) size a missing exp (max(iat, nbf) + it) and a missing nbf
 * (exp - it); all three missing is refused unless allow_missing_times;
 * require_exp (default false) refuses a token without exp. Leeways are
 * literal seconds, a negative one none. [-3, +2|3, e]
 */
static int l_jose_verify(lua_State *L)
{
    size_t len;
    const char *token = luaL_checklstring(L, 1, &len);
    struct verify_args a;
    struct jose_jws *jws;
    struct errbuf err;
    int rc;

    memset(&a, 0, sizeof(a));
    check_keys(L, &a);
    check_opts(L, &a);
    jws = push_jws_box(L);
    if (jose_jws_parse(jws, token, len, &err) != 0 ||
        verify_signature(L, jws, &a, &err) != 0) {
        jose_jws_release(jws);
        return push_fail(L, err.msg);
    }
    rc = jose_claims_check(jws->claims, &a.claims, &err);
    if (rc != 0) {
        jose_jws_release(jws);
        push_fail(L, err.msg);
        if (rc != COFFER_EPERM) /* malformed, not refused */
            return 2;
        lua_pushliteral(L, "claims");
        return 3;
    }
    return push_checked(L, jws);
}

/*
 * coffer.jose.check_claims(jwt, opts) -> claims, header | nil, err: the
 * claim checks of verify (same options but algs) on a token whose
 * signature is NOT checked - for a caller that has the token vouched for
 * some other way (Kubernetes' TokenReview), never instead of verify.
 * [-2, +2, e]
 */
static int l_jose_check_claims(lua_State *L)
{
    size_t len;
    const char *token = luaL_checklstring(L, 1, &len);
    struct verify_args a;
    struct jose_jws *jws;
    struct errbuf err;

    lua_settop(L, 2);
    lua_pushnil(L); /* the keys verify has at 2: opts go to 3, as there */
    lua_insert(L, 2);
    if (lua_istable(L, 3) && lua_getfield(L, 3, "algs") != LUA_TNIL)
        luaL_error(L, "coffer.jose.check_claims: opts.algs is for verify "
                      "(no signature is checked here)");
    memset(&a, 0, sizeof(a));
    check_opts(L, &a);
    jws = push_jws_box(L);
    if (jose_jws_parse(jws, token, len, &err) != 0 ||
        jose_claims_check(jws->claims, &a.claims, &err) != 0) {
        jose_jws_release(jws);
        return push_fail(L, err.msg);
    }
    return push_checked(L, jws);
}

/* ================================================================ x509 == */

/* Pushes a list of strings marked as a JSON array. [-0, +1, m] */
static void push_strvec(lua_State *L, const struct strvec *sv)
{
    lua_createtable(L, (int)sv->n, 0);
    for (size_t i = 0; i < sv->n; i++) {
        lua_pushstring(L, sv->v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_json_mark_array(L, -1);
}

/* Sets t.public_key when the subject key is one we can verify with. */
static void push_public_key(lua_State *L, const struct jose_x509_info *info)
{
    struct key_ud *u;
    struct errbuf err;

    if (info->pkey == NULL)
        return;
    u = push_key_ud(L);
    if (jose_key_from_pkey(info->pkey, &u->key, &err) != 0) {
        lua_pop(L, 1);
        return;
    }
    lua_setfield(L, -2, "public_key");
}

/* coffer.x509.parse(pem) -> table | nil, err. [-1, +1|2, m] */
static int l_x509_parse(lua_State *L)
{
    size_t len;
    const char *pem = luaL_checklstring(L, 1, &len);
    struct jose_x509_info *info = lua_newuserdatauv(L, sizeof(*info), 0);
    struct errbuf err;

    memset(info, 0, sizeof(*info));
    luaL_setmetatable(L, X509_MT);
    if (jose_x509_parse(pem, len, info, &err) != 0)
        return push_fail(L, err.msg);
    lua_createtable(L, 0, 11);
    lua_pushstring(L, info->subject);
    lua_setfield(L, -2, "subject");
    lua_pushstring(L, info->issuer);
    lua_setfield(L, -2, "issuer");
    lua_pushstring(L, info->serial);
    lua_setfield(L, -2, "serial");
    lua_pushinteger(L, (lua_Integer)info->not_before);
    lua_setfield(L, -2, "not_before");
    lua_pushinteger(L, (lua_Integer)info->not_after);
    lua_setfield(L, -2, "not_after");
    lua_pushboolean(L, info->is_ca);
    lua_setfield(L, -2, "is_ca");
    push_strvec(L, &info->dns_names);
    lua_setfield(L, -2, "dns_names");
    push_strvec(L, &info->ips);
    lua_setfield(L, -2, "ip_addresses");
    push_strvec(L, &info->uris);
    lua_setfield(L, -2, "uris");
    push_strvec(L, &info->emails);
    lua_setfield(L, -2, "emails");
    push_public_key(L, info);
    jose_x509_info_release(info);
    return 1;
}

/* One option of x509.verify: the key at -2, the value at -1. */
static void x509_opt(lua_State *L, struct jose_x509_verify_opts *o)
{
    const char *k = lua_tostring(L, -2);
    int v = lua_gettop(L);

    if (strcmp(k, "now") == 0) {
        lua_Number t = lua_tonumber(L, v);
        if (lua_type(L, v) != LUA_TNUMBER || !(t >= 0 && t < 253402300800.0))
            luaL_error(L, "coffer.x509.verify: opts.now must be a number of "
                          "seconds within years 1970-9999");
        o->has_now = true;
        o->now = (int64_t)lua_tonumber(L, v);
        return;
    }
    if (lua_type(L, v) != LUA_TSTRING)
        luaL_error(L, "coffer.x509.verify: opts.%s must be a string", k);
    if (strcmp(k, "ca_pem") == 0) {
        o->ca_pem = lua_tolstring(L, v, &o->ca_len);
    } else if (strcmp(k, "intermediates_pem") == 0) {
        o->intermediates_pem = lua_tolstring(L, v, &o->intermediates_len);
    } else if (strcmp(k, "dns_name") == 0) {
        o->dns_name = lua_tostring(L, v);
    } else if (strcmp(k, "purpose") == 0) {
        const char *p = lua_tostring(L, v);
        if (strcmp(p, "client") == 0)
            o->purpose = JOSE_PURPOSE_CLIENT;
        else if (strcmp(p, "server") == 0)
            o->purpose = JOSE_PURPOSE_SERVER;
        else
            luaL_error(L, "coffer.x509.verify: purpose is \"client\" or "
                          "\"server\"");
    } else {
        luaL_error(L, "coffer.x509.verify: unknown option \"%s\"", k);
    }
}

/* coffer.x509.verify(leaf_pem, opts) -> true | nil, err. [-2, +1|2, e] */
static int l_x509_verify(lua_State *L)
{
    size_t len;
    const char *leaf = luaL_checklstring(L, 1, &len);
    struct jose_x509_verify_opts o;
    struct errbuf err;

    memset(&o, 0, sizeof(o));
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "coffer.x509.verify: option names are strings");
        x509_opt(L, &o);
        lua_pop(L, 1);
    }
    if (o.ca_pem == NULL)
        luaL_error(L, "coffer.x509.verify: opts.ca_pem is required");
    if (jose_x509_verify(leaf, len, &o, &err) != 0)
        return push_fail(L, err.msg);
    lua_pushboolean(L, 1);
    return 1;
}

/* ============================================================== crypto == */

/* The SHA-2 digest named by argument idx; raises on any other name. */
static const EVP_MD *check_md(lua_State *L, int idx)
{
    static const char *const names[] = {"sha256", "sha384", "sha512", NULL};
    int i = luaL_checkoption(L, idx, NULL, names);

    return i == 0 ? EVP_sha256() : i == 1 ? EVP_sha384() : EVP_sha512();
}

/* coffer.crypto.hash(alg, data) -> raw digest. [-2, +1, e] */
static int l_crypto_hash(lua_State *L)
{
    const EVP_MD *md = check_md(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (EVP_Digest(data, len, out, &n, md, NULL) != 1)
        return luaL_error(L, "coffer.crypto.hash: digest failed");
    lua_pushlstring(L, (const char *)out, n);
    return 1;
}

/*
 * coffer.crypto.hmac(alg, key, data) -> raw MAC. The key is read in
 * place from the Lua string (never copied); the MAC is wiped from the C
 * stack once Lua has it. [-3, +1, e]
 */
static int l_crypto_hmac(lua_State *L)
{
    const EVP_MD *md = check_md(L, 1);
    size_t klen, len;
    const char *key = luaL_checklstring(L, 2, &klen);
    const char *data = luaL_checklstring(L, 3, &len);
    unsigned int n = 0;
    luaL_Buffer b;
    unsigned char *out;

    luaL_argcheck(L, klen <= INT32_MAX, 2, "key too long");
    /* The MAC goes straight into Lua's buffer: no copy left on the C stack. */
    out = (unsigned char *)luaL_buffinitsize(L, &b, EVP_MAX_MD_SIZE);
    if (HMAC(md, key, (int)klen, (const unsigned char *)data, len, out, &n) ==
        NULL)
        return luaL_error(L, "coffer.crypto.hmac: HMAC failed");
    luaL_pushresultsize(&b, n);
    return 1;
}

/* coffer.crypto.hex(raw) -> lowercase hex. [-1, +1, m] */
static int l_crypto_hex(lua_State *L)
{
    static const char digits[] = "0123456789abcdef";
    size_t len;
    const unsigned char *s =
        (const unsigned char *)luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    char *out;

    luaL_argcheck(L, len <= ((size_t)-1) / 4, 1, "too long");
    out = luaL_buffinitsize(L, &b, 2 * len + 1);
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[s[i] >> 4];
        out[2 * i + 1] = digits[s[i] & 15];
    }
    luaL_pushresultsize(&b, 2 * len);
    return 1;
}

/* ================================================================ open == */

static const luaL_Reg jose_funcs[] = {
    {"b64url_encode", l_jose_b64url_encode},
    {"b64url_decode", l_jose_b64url_decode},
    {"decode", l_jose_decode},
    {"parse_jwks", l_jose_parse_jwks},
    {"parse_pem", l_jose_parse_pem},
    {"verify", l_jose_verify},
    {"check_claims", l_jose_check_claims},
    {NULL, NULL},
};

static const luaL_Reg x509_funcs[] = {
    {"parse", l_x509_parse},
    {"verify", l_x509_verify},
    {NULL, NULL},
};

static const luaL_Reg crypto_funcs[] = {
    {"hash", l_crypto_hash},
    {"hmac", l_crypto_hmac},
    {"hex", l_crypto_hex},
    {NULL, NULL},
};

static const luaL_Reg key_methods[] = {
    {"kid", l_key_kid},
    {NULL, NULL},
};

static const luaL_Reg keyset_methods[] = {
    {"kids", l_keyset_kids},
    {NULL, NULL},
};

/* A locked metatable named name with __gc and optional methods. */
static void new_mt(lua_State *L, const char *name, lua_CFunction gc,
                   const luaL_Reg *methods)
{
    luaL_newmetatable(L, name);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    if (methods != NULL) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
}

void lua_jose_open(lua_State *L)
{
    new_mt(L, KEY_MT, l_key_gc, key_methods);
    lua_pushcfunction(L, l_key_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    new_mt(L, KEYSET_MT, l_keyset_gc, keyset_methods);
    lua_pushcfunction(L, l_keyset_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, l_keyset_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    new_mt(L, JWS_MT, l_jws_gc, NULL);
    lua_pop(L, 1);
    new_mt(L, X509_MT, l_x509_gc, NULL);
    lua_pop(L, 1);

    luaL_newlib(L, jose_funcs);
    lua_setfield(L, -2, "jose");
    luaL_newlib(L, x509_funcs);
    lua_setfield(L, -2, "x509");
    /* coffer.crypto exists (lua_api.c): add to it. */
    if (lua_getfield(L, -1, "crypto") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "crypto");
    }
    luaL_setfuncs(L, crypto_funcs, 0);
    lua_pop(L, 1);
}
