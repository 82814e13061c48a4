/*
 * cidr.c - CIDR membership for IPv4 and IPv6 (see cidr.h).
 */
#include "cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* Parses an address into 16 bytes (IPv4 as ::ffff:a.b.c.d); *bits 32/128. */
static int parse_addr(const char *s, unsigned char out[16], int *bits)
{
    struct in_addr v4;

    if (inet_pton(AF_INET, s, &v4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &v4, 4);
        *bits = 32;
        return 0;
    }
    if (inet_pton(AF_INET6, s, out) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0,
                                                 0, 0, 0, 0, 0xff, 0xff};
        *bits = memcmp(out, mapped, 12) == 0 ? 32 : 128;
        return 0;
    }
    return COFFER_EINVAL;
}

int cidr_match(const char *cidr, const char *addr, bool *match)
{
    char net[64];
    const char *slash;
    unsigned char a[16], n[16];
    int nbits, abits, prefix, full;
    char *end = NULL;
    long v;

    *match = false;
    if (cidr == NULL || addr == NULL || strlen(cidr) >= sizeof(net))
        return COFFER_EINVAL;
    slash = strchr(cidr, '/');
    snprintf(net, sizeof(net), "%.*s",
             (int)(slash ? (size_t)(slash - cidr) : strlen(cidr)), cidr);
    if (parse_addr(net, n, &nbits) != 0 || parse_addr(addr, a, &abits) != 0)
        return COFFER_EINVAL;
    prefix = nbits;
    if (slash != NULL) {
        v = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end != '\0' || v < 0 || v > nbits)
            return COFFER_EINVAL;
        prefix = (int)v;
    }
    if (nbits != abits)
        return 0; /* an IPv4 block never holds an IPv6 address */
    full = prefix + (nbits == 32 ? 96 : 0); /* bits of the 16-byte form */
    for (int i = 0; i < full / 8; i++) {
        if (a[i] != n[i])
            return 0;
    }
    if (full % 8 != 0) {
        unsigned char mask = (unsigned char)(0xff << (8 - full % 8));
        if ((a[full / 8] & mask) != (n[full / 8] & mask))
            return 0;
    }
    *match = true;
    return 0;
}
