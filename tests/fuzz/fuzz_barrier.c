/*
 * fuzz_barrier.c - the barrier's decoders (src/barrier.c, included):
 * the value envelope and the keyring, as read back from storage that an
 * attacker (a stolen or tampered backup, a shared database) controls.
 *
 * A barrier over in-memory storage is initialised once and rotated, so
 * its keyring holds terms 1 and 2. Byte 0 picks the mode:
 *
 *   0  the rest is a stored value: written raw to physical storage, read
 *      through the view (open_for_key: version, term lookup, GCM)
 *   1  the rest is a one-shot envelope for barrier_open_value (the
 *      sealed root key)
 *   2  the rest is a keyring's plaintext: keyring_decode directly, then
 *      sealed with a root key and unsealed by a second barrier, which
 *      must then encrypt and decrypt a value with its active term
 *   3  the rest is a plaintext: sealed by the view and the one-shot
 *      helper, opened again; byte 1 then flips one bit of each envelope,
 *      which must no longer open
 *
 * Oracles beyond the sanitizers: a value that does not open leaves the
 * output empty; round trips give back the plaintext; a flipped bit is
 * always detected.
 */
#include "../../src/barrier.c"

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct storage *phys;
static struct barrier *bar;
static struct storage *view;
static uint8_t root_key[BARRIER_KEY_LEN];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct errbuf err;

    (void)argc;
    (void)argv;
    fuzz_quiet();
    memset(root_key, 0x42, sizeof(root_key));
    phys = storage_inmem_new();
    bar = barrier_new(phys);
    FUZZ_CHECK(barrier_initialize(bar, root_key, &err) == 0);
    FUZZ_CHECK(barrier_rotate(bar, &err) == 0);
    view = barrier_storage(bar);
    return 0;
}

static void mode_stored(const uint8_t *data, size_t size)
{
    struct buf out;
    int rc;

    FUZZ_CHECK(storage_put(phys, "fuzz/value", data, size) == 0);
    buf_init(&out, BUF_MAX_DEFAULT);
    rc = storage_get(view, "fuzz/value", &out);
    if (rc != 0)
        FUZZ_CHECK(out.len == 0);
    else
        FUZZ_CHECK(out.len + ENV_OVERHEAD == size);
    buf_release(&out);
}

static void mode_oneshot(const uint8_t *data, size_t size)
{
    uint8_t *plain = NULL;
    size_t n = 0;
    int rc = barrier_open_value(root_key, "core/root-key", data, size, &plain,
                                &n);

    if (rc != 0)
        FUZZ_CHECK(plain == NULL && n == 0);
    secure_free(plain, n);
}

/* A second barrier whose stored keyring is data, sealed with root_key. */
static void mode_keyring(const uint8_t *data, size_t size)
{
    struct keyring *kr = keyring_decode(data, size, root_key);
    struct storage *p2 = storage_inmem_new();
    struct barrier *b2 = barrier_new(p2);
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    struct errbuf err;
    struct buf out;
    int rc;

    FUZZ_CHECK(barrier_seal_value(root_key, KEYRING_KEY, data, size, &sealed,
                                  &sealed_len) == 0);
    FUZZ_CHECK(storage_put(p2, KEYRING_KEY, sealed, sealed_len) == 0);
    rc = barrier_unseal(b2, root_key, &err);
    FUZZ_CHECK((rc == 0) == (kr != NULL));
    if (rc == 0) {
        struct storage *v2 = barrier_storage(b2);
        FUZZ_CHECK(storage_put(v2, "x", "secret", 6) == 0);
        buf_init(&out, BUF_MAX_DEFAULT);
        FUZZ_CHECK(storage_get(v2, "x", &out) == 0);
        FUZZ_CHECK(out.len == 6 && memcmp(out.ptr, "secret", 6) == 0);
        buf_release(&out);
    }
    secmem_free(kr);
    free(sealed);
    barrier_free(b2);
    storage_free(p2);
}

static void mode_roundtrip(const uint8_t *data, size_t size)
{
    uint8_t flip;
    uint8_t *env = NULL, *plain = NULL;
    size_t env_len = 0, n = 0, bit;
    struct buf raw, out;

    if (size < 1)
        return;
    flip = data[0];
    data++;
    size--;
    /* through the view */
    FUZZ_CHECK(storage_put(view, "fuzz/rt", data, size) == 0);
    buf_init(&out, BUF_MAX_DEFAULT);
    FUZZ_CHECK(storage_get(view, "fuzz/rt", &out) == 0);
    FUZZ_CHECK(out.len == size && (size == 0 ||
                                   memcmp(out.ptr, data, size) == 0));
    buf_release(&out);
    buf_init(&raw, BUF_MAX_DEFAULT);
    FUZZ_CHECK(storage_get(phys, "fuzz/rt", &raw) == 0);
    bit = (size_t)flip * 7919 % (raw.len * 8);
    raw.ptr[bit / 8] ^= (char)(1u << (bit % 8));
    FUZZ_CHECK(storage_put(phys, "fuzz/rt", raw.ptr, raw.len) == 0);
    buf_init(&out, BUF_MAX_DEFAULT);
    FUZZ_CHECK(storage_get(view, "fuzz/rt", &out) != 0);
    buf_release(&out);
    buf_release(&raw);
    /* one-shot */
    FUZZ_CHECK(barrier_seal_value(root_key, "aad", data, size, &env,
                                  &env_len) == 0);
    FUZZ_CHECK(barrier_open_value(root_key, "aad", env, env_len, &plain,
                                  &n) == 0);
    FUZZ_CHECK(n == size && (size == 0 || memcmp(plain, data, size) == 0));
    secure_free(plain, n);
    env[bit % env_len] ^= 1; /* one byte of the envelope */
    FUZZ_CHECK(barrier_open_value(root_key, "aad", env, env_len, &plain,
                                  &n) != 0);
    free(env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 20)
        return 0;
    switch (data[0] % 4) {
    case 0:
        mode_stored(data + 1, size - 1);
        break;
    case 1:
        mode_oneshot(data + 1, size - 1);
        break;
    case 2:
        mode_keyring(data + 1, size - 1);
        break;
    default:
        mode_roundtrip(data + 1, size - 1);
        break;
    }
    return 0;
}
