/*
 * seal_static.c - the static seal's keys and AES-256-GCM wrapping (see
 * seal_static.h).
 */
#include "seal_static.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "crypto.h"

#define NONCE_LEN 12
#define TAG_LEN 16
/* A key file is 32 raw bytes or their text: anything bigger is a mistake. */
#define KEY_FILE_MAX 256
#define AAD_PREFIX "coffer/seal/static/v1"

struct seal_key {
    char id[SEAL_STATIC_ID_MAX + 1];
    uint8_t key[SEAL_STATIC_KEY_LEN];
    bool set;
};

struct seal_static {
    struct seal_key current;
    struct seal_key previous;
};

/* ========================================================== decoding == */

static bool is_hex_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* 64 hex or 44 base64 characters -> 32 bytes. */
static int decode_text(const char *what, const char *s, size_t n,
                       uint8_t key[SEAL_STATIC_KEY_LEN], struct errbuf *err)
{
    uint8_t tmp[48];
    char hex[3] = {0};
    int got;
    int rc = COFFER_EINVAL;

    if (n == 2 * SEAL_STATIC_KEY_LEN && is_hex_text(s, n)) {
        for (size_t i = 0; i < SEAL_STATIC_KEY_LEN; i++) {
            hex[0] = s[2 * i];
            hex[1] = s[2 * i + 1];
            key[i] = (uint8_t)strtoul(hex, NULL, 16);
        }
        rc = 0;
    } else if (n == 44 && s[43] == '=' && s[42] != '=') {
        got = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
        if (got == 33) { /* 33 with one '=' of padding: 32 bytes */
            memcpy(key, tmp, SEAL_STATIC_KEY_LEN);
            rc = 0;
        }
    }
    if (rc != 0)
        errbuf_set(err, "%s: the key must be 32 bytes (AES-256), given as "
                        "64 hex or 44 base64 characters, file://PATH or "
                        "env://VAR (got %zu characters)", what, n);
    crypto_wipe(tmp, sizeof(tmp));
    crypto_wipe(hex, sizeof(hex));
    return rc;
}

/* Length of s without trailing whitespace (a newline from an editor). */
static size_t trimmed_len(const char *s, size_t n)
{
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    return n;
}

/*
 * A key file must be a regular file no other user can read and only its
 * owner can write: the key opens everything in storage.
 */
static int check_key_file(const char *what, const char *path, int fd,
                          struct errbuf *err)
{
    struct stat st;

    if (fstat(fd, &st) != 0) {
        errbuf_set(err, "%s: cannot stat key file %s: %s", what, path,
                   strerror(errno));
        return COFFER_EINVAL;
    }
    if (!S_ISREG(st.st_mode)) {
        errbuf_set(err, "%s: key file %s is not a regular file", what, path);
        return COFFER_EINVAL;
    }
    if ((st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP)) != 0) {
        errbuf_set(err, "%s: key file %s has mode %04o; other users must "
                        "not read it nor anyone but its owner write it "
                        "(chmod 0600 or 0400)", what, path,
                   (unsigned)(st.st_mode & 07777));
        return COFFER_EINVAL;
    }
    return 0;
}

static int read_key_file(const char *what, const char *path,
                         uint8_t key[SEAL_STATIC_KEY_LEN], struct errbuf *err)
{
    char data[KEY_FILE_MAX + 1];
    size_t n = 0;
    ssize_t got;
    int fd, rc;

    if (path[0] != '/') {
        errbuf_set(err, "%s: file:// needs an absolute path "
                        "(file:///etc/coffer/unseal.key)", what);
        return COFFER_EINVAL;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        errbuf_set(err, "%s: cannot open key file %s: %s", what, path,
                   strerror(errno));
        return COFFER_EINVAL;
    }
    rc = check_key_file(what, path, fd, err);
    while (rc == 0 && n < sizeof(data) &&
           (got = read(fd, data + n, sizeof(data) - n)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            errbuf_set(err, "%s: cannot read key file %s: %s", what, path,
                       strerror(errno));
            rc = COFFER_EINVAL;
            break;
        }
        n += (size_t)got;
    }
    close(fd);
    if (rc == 0 && n > KEY_FILE_MAX) {
        errbuf_set(err, "%s: key file %s is too big for a 32-byte key",
                   what, path);
        rc = COFFER_EINVAL;
    }
    /* 32 bytes exactly are the raw key (openssl rand -out FILE 32). */
    if (rc == 0 && n == SEAL_STATIC_KEY_LEN)
        memcpy(key, data, SEAL_STATIC_KEY_LEN);
    else if (rc == 0)
        rc = decode_text(what, data, trimmed_len(data, n), key, err);
    crypto_wipe(data, sizeof(data));
    return rc;
}

static int read_key_env(const char *what, const char *name,
                        uint8_t key[SEAL_STATIC_KEY_LEN], struct errbuf *err)
{
    const char *v = name[0] != '\0' ? getenv(name) : NULL;

    if (v == NULL || v[0] == '\0') {
        errbuf_set(err, "%s: environment variable \"%s\" is not set", what,
                   name);
        return COFFER_EINVAL;
    }
    return decode_text(what, v, trimmed_len(v, strlen(v)), key, err);
}

int seal_static_decode_key(const char *what, const char *source,
                           uint8_t key[SEAL_STATIC_KEY_LEN],
                           struct errbuf *err)
{
    if (source == NULL || source[0] == '\0') {
        errbuf_set(err, "%s is required", what);
        return COFFER_EINVAL;
    }
    if (strncmp(source, "file://", 7) == 0)
        return read_key_file(what, source + 7, key, err);
    if (strncmp(source, "env://", 6) == 0)
        return read_key_env(what, source + 6, key, err);
    return decode_text(what, source, strlen(source), key, err);
}

/* ============================================================== keys == */

static int load_key(struct seal_key *k, const char *id_what, const char *id,
                    const char *key_what, const char *source,
                    struct errbuf *err)
{
    int rc = seal_wrap_check_name(id_what, id, SEAL_STATIC_ID_MAX, err);

    if (rc == 0)
        rc = seal_static_decode_key(key_what, source, k->key, err);
    if (rc == 0) {
        snprintf(k->id, sizeof(k->id), "%s", id);
        k->set = true;
    }
    return rc;
}

/* Both keys loaded and consistent: different ids for different keys. */
static int check_pair(const struct seal_static *s, struct errbuf *err)
{
    if (!s->previous.set || strcmp(s->current.id, s->previous.id) != 0)
        return 0;
    if (crypto_equal(s->current.key, SEAL_STATIC_KEY_LEN, s->previous.key,
                     SEAL_STATIC_KEY_LEN))
        return 0;
    errbuf_set(err, "previous_key_id and current_key_id are both \"%s\" "
                    "but name different keys", s->current.id);
    return COFFER_EINVAL;
}

struct seal_static *seal_static_new(const char *cur_id, const char *cur,
                                    const char *prev_id, const char *prev,
                                    struct errbuf *err)
{
    struct seal_static *s = xcalloc(1, sizeof(*s));
    int rc;

    /* Best effort: keep the keys out of swap. */
    (void)mlock(s, sizeof(*s));
    rc = load_key(&s->current, "current_key_id", cur_id, "current_key",
                  cur, err);
    if (rc == 0 && (prev_id != NULL) != (prev != NULL)) {
        errbuf_set(err, "previous_key and previous_key_id go together: "
                        "give both or neither");
        rc = COFFER_EINVAL;
    }
    if (rc == 0 && prev != NULL)
        rc = load_key(&s->previous, "previous_key_id", prev_id,
                      "previous_key", prev, err);
    if (rc == 0)
        rc = check_pair(s, err);
    if (rc != 0) {
        seal_static_free(s);
        s = NULL;
    }
    return s;
}

void seal_static_free(struct seal_static *s)
{
    if (s == NULL)
        return;
    crypto_wipe(s, sizeof(*s));
    (void)munlock(s, sizeof(*s));
    free(s);
}

const char *seal_static_current_id(const struct seal_static *s)
{
    return s->current.id;
}

/* ========================================================== wrapping == */

/* "coffer/seal/static/v1\0<label>\0<key id>" into a new buffer. */
static char *make_aad(const char *label, const char *id, size_t *len)
{
    size_t a = sizeof(AAD_PREFIX), b = strlen(label) + 1, c = strlen(id);
    char *aad = xmalloc(a + b + c + 1);

    memcpy(aad, AAD_PREFIX, a);
    memcpy(aad + a, label, b);
    memcpy(aad + a + b, id, c + 1);
    *len = a + b + c;
    return aad;
}

/* One AES-256-GCM pass; enc selects the direction. tag is in/out. */
static int gcm(bool enc, const uint8_t *key, const uint8_t *nonce,
               const char *aad, size_t aad_len, const uint8_t *in,
               size_t len, uint8_t *out, uint8_t *tag)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, ok;

    ok = c != NULL && len <= (size_t)INT32_MAX &&
         EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce,
                           enc ? 1 : 0) == 1 &&
         EVP_CipherUpdate(c, NULL, &n, (const unsigned char *)aad,
                          (int)aad_len) == 1 &&
         EVP_CipherUpdate(c, out, &n, in, (int)len) == 1;
    if (ok && !enc)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) == 1;
    if (ok)
        ok = EVP_CipherFinal_ex(c, out + n, &n) == 1;
    if (ok && enc)
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : COFFER_EPERM;
}

int seal_static_wrap(const struct seal_static *s, const char *label,
                     const uint8_t *plain, size_t len, char **blob)
{
    size_t raw_len = NONCE_LEN + len + TAG_LEN, aad_len;
    uint8_t *raw = xmalloc(raw_len);
    char *b64 = xmalloc(4 * ((raw_len + 2) / 3) + 1);
    char *aad = make_aad(label, s->current.id, &aad_len);
    cJSON *o = NULL;
    int rc = crypto_random(raw, NONCE_LEN);

    *blob = NULL;
    if (rc == 0)
        rc = gcm(true, s->current.key, raw, aad, aad_len, plain, len,
                 raw + NONCE_LEN, raw + NONCE_LEN + len);
    if (rc == 0) {
        EVP_EncodeBlock((unsigned char *)b64, raw, (int)raw_len);
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "key_id", s->current.id);
        cJSON_AddStringToObject(o, "ciphertext", b64);
        *blob = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
    }
    if (rc == 0 && *blob == NULL)
        rc = COFFER_EINTERNAL;
    else if (rc != 0)
        rc = COFFER_EINTERNAL;
    free(aad);
    free(b64);
    secure_free(raw, raw_len);
    return rc;
}

/* The key named id, and whether it is the previous one; NULL if none. */
static const struct seal_key *key_for(const struct seal_static *s,
                                      const char *id, bool *previous)
{
    *previous = false;
    if (strcmp(id, s->current.id) == 0)
        return &s->current;
    if (s->previous.set && strcmp(id, s->previous.id) == 0) {
        *previous = true;
        return &s->previous;
    }
    return NULL;
}

/* Decodes the blob's base64 ciphertext into a new buffer. */
static uint8_t *decode_ciphertext(const char *b64, size_t *len)
{
    size_t n = strlen(b64), pad = 0;
    uint8_t *raw;
    int got;

    if (n == 0 || n % 4 != 0 || n > (size_t)INT32_MAX)
        return NULL;
    raw = xmalloc(n / 4 * 3 + 1);
    got = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n);
    while (pad < 2 && b64[n - 1 - pad] == '=')
        pad++;
    if (got < 0 || (size_t)got < pad) {
        free(raw);
        return NULL;
    }
    *len = (size_t)got - pad;
    return raw;
}

int seal_static_unwrap(const struct seal_static *s, const char *label,
                       const char *blob, size_t blob_len, uint8_t *plain,
                       size_t cap, size_t *len, bool *by_previous,
                       struct errbuf *err)
{
    cJSON *o = cJSON_ParseWithLength(blob, blob_len);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "key_id");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(o, "ciphertext");
    const struct seal_key *k = NULL;
    uint8_t *raw = NULL;
    size_t raw_len = 0, aad_len, n;
    char *aad = NULL;
    int rc = COFFER_EPERM;

    *len = 0;
    *by_previous = false;
    if (!cJSON_IsString(id) || !cJSON_IsString(ct) ||
        (raw = decode_ciphertext(ct->valuestring, &raw_len)) == NULL ||
        raw_len < NONCE_LEN + TAG_LEN) {
        errbuf_set(err, "the wrapped %s in storage is malformed", label);
        goto out;
    }
    k = key_for(s, id->valuestring, by_previous);
    if (k == NULL) {
        errbuf_set(err, "the %s is wrapped with key id \"%.128s\", which is "
                        "neither current_key_id nor previous_key_id", label,
                   id->valuestring);
        goto out;
    }
    n = raw_len - NONCE_LEN - TAG_LEN;
    if (n > cap) {
        errbuf_set(err, "the wrapped %s in storage is too long", label);
        goto out;
    }
    aad = make_aad(label, k->id, &aad_len);
    rc = gcm(false, k->key, raw, aad, aad_len, raw + NONCE_LEN, n, plain,
             raw + NONCE_LEN + n);
    if (rc != 0) {
        crypto_wipe(plain, cap);
        errbuf_set(err, "the %s does not open with the key of id \"%s\" "
                        "(wrong key, or the stored value was altered)",
                   label, k->id);
        goto out;
    }
    *len = n;
out:
    free(aad);
    secure_free(raw, raw_len);
    cJSON_Delete(o);
    return rc;
}

/* ====================================================== seal_wrapper == */

static int wrapper_wrap(void *ctx, const char *label, const uint8_t *plain,
                        size_t len, char **blob, struct errbuf *err)
{
    int rc = seal_static_wrap(ctx, label, plain, len, blob);

    if (rc != 0)
        errbuf_set(err, "wrapping the %s with the static key failed", label);
    return rc;
}

static int wrapper_unwrap(void *ctx, const char *label, const char *blob,
                          size_t blob_len, uint8_t *plain, size_t cap,
                          size_t *len, bool *rewrap, struct errbuf *err)
{
    return seal_static_unwrap(ctx, label, blob, blob_len, plain, cap, len,
                              rewrap, err);
}

static const char *wrapper_key_name(const void *ctx)
{
    return seal_static_current_id(ctx);
}

void seal_static_wrapper(const struct seal_static *s,
                         struct seal_wrapper *w)
{
    /* The cast only drops const: every function above reads s. */
    *w = (struct seal_wrapper){"static", (void *)s, wrapper_wrap,
                               wrapper_unwrap, wrapper_key_name};
}
