/*
 * shamir.h - Shamir's secret sharing over GF(2^8), as Vault does it.
 *
 * A share is the secret's length plus one byte:
 *
 *   | y_1 ... y_len (one polynomial per secret byte) | x (1..255) |
 *
 * Any `threshold` distinct shares recombine the secret; fewer reveal
 * nothing about it. x values are distinct and random. The field is
 * GF(2^8) mod x^8+x^4+x^3+x+1 (AES, as Vault's shamir package), with
 * constant-time arithmetic on secret bytes (see shamir.c).
 */
#ifndef COFFER_SHAMIR_H
#define COFFER_SHAMIR_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* The most shares a split makes (x runs over 1..255). */
#define SHAMIR_MAX_PARTS 255

/*
 * Checks a share count and threshold as Vault's SealConfig.Validate does,
 * in its order: parts 1..255, threshold 1..255 and <= parts, and more
 * than one share needs a threshold above one. Returns 0, or COFFER_EINVAL
 * with Vault's bare reason in err ("threshold cannot be larger than
 * shares"); sys/init prefixes "invalid seal configuration: ". The one
 * copy of these rules: validate through it rather than repeat them.
 */
int shamir_check_config(int parts, int threshold, struct errbuf *err);

/*
 * Splits secret (len >= 1) into parts shares (2..255, or 1 with
 * threshold 1), threshold of which recombine it (2..parts, or 1).
 * out must hold parts * (len + 1) bytes: share i at out + i * (len + 1).
 * With one share the share is the secret followed by an x byte.
 * Returns 0, or COFFER_EINVAL with shamir_check_config's reason in err,
 * or COFFER_EINTERNAL if the random generator fails (out is then wiped).
 */
int shamir_split(const uint8_t *secret, size_t len, int parts, int threshold,
                 uint8_t *out, struct errbuf *err);

/*
 * Recombines n shares of share_len bytes each (share i at
 * shares[i], borrowed) into out (share_len - 1 bytes). Needs n >= 1
 * (n == 1 only makes sense for a one-share split), share_len >= 2 and
 * distinct, non-zero x values; with fewer than the threshold it returns a
 * wrong secret, which the caller detects (the root key fails to
 * decrypt). 0, or COFFER_EINVAL with err ("duplicate share detected").
 */
int shamir_combine(const uint8_t *const *shares, int n, size_t share_len,
                   uint8_t *out, struct errbuf *err);

#endif
