/*
 * fuzz_shamir.c - unseal keys: share decoding (src/seal.c), Shamir's
 * combine (src/shamir.c), and the unseal flow that joins them.
 *
 * A seal is initialised once (5 shares, threshold 3) over in-memory
 * storage. Byte 0 picks the mode:
 *
 *   0  unseal: each line of the rest (up to 16) is a share as an operator
 *      types it (hex or base64) and goes through seal_decode_share and
 *      seal_submit_share; a line "#k" submits the real share k % 5, so
 *      the fuzzer reaches both the failed and the successful unseal (the
 *      input ends after the first complete attempt)
 *   1  combine: the rest is n raw shares (n from byte 1) of equal length
 *   2  split then combine: parts, threshold and secret length from bytes
 *      1-3, then the secret; combined from `threshold` shares picked by
 *      the bytes after it
 *
 * Oracles beyond the sanitizers: decoding gives at most SEAL_DECODED_MAX
 * bytes; an unsealed seal was given the real shares (random bytes never
 * open it); any threshold of a split's shares gives back the secret, and
 * a repeated share is refused.
 */
#include <openssl/crypto.h>

#include "../../src/barrier.h"
#include "../../src/seal.h"
#include "../../src/shamir.h"
#include "../../src/storage.h"
#include "../../src/util.h"

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SHARES 5
#define THRESHOLD 3

static struct storage *phys;
static struct barrier *bar;
static uint8_t *real_shares;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct errbuf err;

    (void)argc;
    (void)argv;
    fuzz_quiet();
    phys = storage_inmem_new();
    bar = barrier_new(phys);
    seal_setup(bar, phys);
    FUZZ_CHECK(seal_init(SHARES, THRESHOLD, &real_shares, &err) == 0);
    barrier_seal(bar);
    return 0;
}

static void hex_of(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static void mode_unseal(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    char *save = NULL;
    bool used_real[SHARES] = {false};
    int real = 0, lines = 0;
    struct seal_status st;

    seal_reset_progress();
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char hex[2 * SEAL_SHARE_LEN + 1];
        uint8_t share[SEAL_DECODED_MAX];
        struct errbuf err;
        size_t len = 0;
        bool unsealed = false;

        if (line[0] == '#' && line[1] != '\0') {
            int k = (unsigned char)line[1] % SHARES;
            hex_of(real_shares + (size_t)k * SEAL_SHARE_LEN, SEAL_SHARE_LEN,
                   hex);
            line = hex;
            if (!used_real[k])
                real++;
            used_real[k] = true;
        }
        if (seal_decode_share(line, share, &len, &err) != 0)
            continue;
        FUZZ_CHECK(len <= SEAL_DECODED_MAX);
        (void)seal_submit_share(share, len, &unsealed, &err);
        if (unsealed || !barrier_sealed(bar)) {
            /* Only the real shares open it. */
            FUZZ_CHECK(real >= THRESHOLD);
            barrier_seal(bar);
            break;
        }
        /* One complete attempt per input: recombining and trying the key
           is the slow path (AES-GCM through OpenSSL's parameter lookups),
           and more attempts teach the fuzzer nothing new. */
        seal_get_status(&st);
        if (len == SEAL_SHARE_LEN && st.progress == 0)
            break;
        if (++lines == 16)
            break;
    }
    free(text);
}

static void mode_combine(const uint8_t *data, size_t size)
{
    const uint8_t *parts[256];
    uint8_t out[4096];
    struct errbuf err;
    int n;
    size_t len;

    if (size < 1)
        return;
    /* Up to 16 shares, or the 255 maximum: combining costs n * n + n *
       len multiplications (see mode_split). */
    n = data[0] == 255 ? 255 : 1 + data[0] % 16;
    data++;
    size--;
    len = size / (size_t)n;
    if (len < 1 || len - 1 > sizeof(out))
        return;
    for (int i = 0; i < n; i++)
        parts[i] = data + (size_t)i * len;
    (void)shamir_combine(parts, n, len, out, &err);
}

static void mode_split(const uint8_t *data, size_t size)
{
    const uint8_t *parts[256];
    uint8_t shares[255 * 65];
    uint8_t out[64];
    struct errbuf err;
    int nparts, threshold, pick = 0;
    size_t len, slen;
    bool chosen[255] = {false};

    if (size < 4)
        return;
    /* Up to 16 parts of up to 33 bytes (an unseal key is 32), and now
       and then the 255-part maximum: a split costs parts * threshold *
       len multiplications, and the fuzzer should spend its time on
       shapes, not arithmetic. */
    nparts = data[0] == 255 && data[1] == 255 ? 255 : 1 + data[0] % 16;
    threshold = 1 + data[1] % nparts;
    len = 1 + data[2] % 33;
    data += 3;
    size -= 3;
    if (size < len)
        return;
    slen = len + 1;
    if (shamir_split(data, len, nparts, threshold, shares, &err) != 0) {
        FUZZ_CHECK(err.msg[0] != '\0');
        return;
    }
    /* Pick `threshold` distinct shares, guided by the bytes after. */
    for (size_t i = len; pick < threshold; i++) {
        int k = (int)(i < size ? data[i] : i) % nparts;
        while (chosen[k])
            k = (k + 1) % nparts;
        chosen[k] = true;
        parts[pick++] = shares + (size_t)k * slen;
    }
    FUZZ_CHECK(shamir_combine(parts, threshold, slen, out, &err) == 0);
    FUZZ_CHECK(CRYPTO_memcmp(out, data, len) == 0);
    if (threshold >= 2) {
        parts[1] = parts[0];
        FUZZ_CHECK(shamir_combine(parts, threshold, slen, out, &err) ==
                   COFFER_EINVAL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        mode_unseal(data + 1, size - 1);
        break;
    case 1:
        mode_combine(data + 1, size - 1);
        break;
    default:
        mode_split(data + 1, size - 1);
        break;
    }
    return 0;
}
