/*
 * seal_wrap.h - what seal.c needs from an auto-unseal seal: wrap and
 * unwrap the root key. seal "static" (seal_static.c) and seal "pkcs11"
 * (seal_pkcs11.c) each fill one of these; seal.c knows nothing else of
 * them.
 *
 * A wrapped value is NUL-terminated text (JSON) that is stored as is in
 * core/root-key. label is bound into the wrapping as associated data, so
 * a blob cannot be moved to another storage slot.
 */
#ifndef COFFER_SEAL_WRAP_H
#define COFFER_SEAL_WRAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct seal_wrapper {
    /* The seal's type in config and core/seal-config: "static", "pkcs11". */
    const char *type;
    void *ctx;
    /*
     * Wraps len bytes into *blob (free with free()). 0, or COFFER_E*
     * with the reason in err.
     */
    int (*wrap)(void *ctx, const char *label, const uint8_t *plain,
                size_t len, char **blob, struct errbuf *err);
    /*
     * Unwraps into plain (cap bytes), *len its length. *rewrap says the
     * blob was opened with an older key and should be wrapped again.
     * 0, or COFFER_EPERM with the reason in err.
     */
    int (*unwrap)(void *ctx, const char *label, const char *blob,
                  size_t blob_len, uint8_t *plain, size_t cap, size_t *len,
                  bool *rewrap, struct errbuf *err);
    /* Names the key that wraps now, for the log ("2026-12", a label). */
    const char *(*key_name)(const void *ctx);
};

/*
 * A key id or label from the config: 1..max characters, none of them a
 * control character, quote or backslash (it goes into JSON, the log and
 * the wrapping's associated data). 0, or COFFER_EINVAL naming `what`.
 */
int seal_wrap_check_name(const char *what, const char *s, size_t max,
                         struct errbuf *err);

#endif
