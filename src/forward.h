/*
 * forward.h - HA request forwarding from a standby to the active node.
 */
#ifndef COFFER_FORWARD_H
#define COFFER_FORWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "request.h"

/* The header that carries the client's signed address. */
#define FORWARD_HEADER "X-Coffer-Forwarded-For"

/* The active's reply, relayed as it came. */
struct forward_reply {
    int status;
    char *body;         /* NULL if empty; free with free() */
    size_t len;
    char *location;     /* a redirect's Location, or NULL */
    bool text_plain;    /* Content-Type text/plain (else JSON) */
};

/*
 * The PEM file of CAs trusted when the active's api_addr is https://
 * (config cluster_ca_file); NULL or "" for the system's store. Peer and
 * host name verification are always on. Thread-safe.
 */
void forward_set_ca_file(const char *path);

/*
 * Sends req to the active node at leader (its api_addr), signing the
 * client's address with key, and fills out with the active's reply
 * (status, body, Location). budget_ms bounds the whole call. 0, or
 * COFFER_EIO with words in err when the active could not be reached.
 * An active whose certificate does not verify is a reply of ours: 502
 * with the reason (a misconfiguration, not an outage to retry).
 */
int forward_request(const char *leader, const struct request *req,
                    const uint8_t key[32], int64_t budget_ms,
                    struct forward_reply *out, struct errbuf *err);

/*
 * Where a standby that does not forward sends the client (307): the
 * active's api_addr and the request's path and query. Free with free().
 */
char *forward_redirect_url(const char *leader, const struct request *req);

/*
 * On the active: checks a FORWARD_HEADER value for a request with this
 * operation and path. True, with the client's address in addr, if it was
 * signed with key within the last 30 seconds.
 */
bool forward_verify_client_addr(const char *value, const uint8_t key[32],
                                enum req_op op, const char *path,
                                char *addr, size_t n);

#endif
