/*
 * wrapping.h - response wrapping (Vault's X-Vault-Wrap-TTL).
 *
 * A request that carries a wrap TTL runs as usual; its successful reply
 * (200 with a JSON body) is then not sent: it is stored in the cubbyhole
 * of a new single-use token (policy "response-wrapping", orphan, TTL =
 * explicit max TTL = the wrap TTL) and the client gets Vault's envelope
 * with wrap_info instead. sys/wrapping/unwrap consumes the token and
 * returns the stored reply verbatim; lookup reads its creation facts
 * without consuming it; rewrap moves the reply to a new token; wrap
 * wraps the request body.
 *
 * The wrapping token's only use is taken with the token store's atomic
 * token_use: of racing unwraps exactly one gets the reply. Revoking the
 * token (used, expired, rewrapped) destroys its cubbyhole with it.
 */
#ifndef COFFER_WRAPPING_H
#define COFFER_WRAPPING_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "request.h"

/*
 * True for sys/wrapping/unwrap, lookup and rewrap: they validate the
 * wrapping token themselves, before (instead of) the usual token check.
 */
bool wrapping_intercepts(const struct request *req);
/* Runs one of those (the server is active, the state lock held). */
void wrapping_handle(struct request *req, struct response *resp);
/* sys/wrapping/wrap, after the usual authorisation: data = the body. */
void wrapping_handle_wrap(const struct request *req, struct response *resp);

/* True when req's reply is to be wrapped (rewrap makes its own). */
bool wrapping_wanted(const struct request *req);
/*
 * Stores body (a rendered 200 reply) behind a new wrapping token and
 * returns Vault's envelope for it (data null, wrap_info with the token),
 * or NULL with nothing of it left behind. core puts the envelope in the
 * response before its audit entry, so the log records the wrapping
 * token (hashed), never the wrapped secret.
 */
cJSON *wrapping_wrap(const struct request *req, const char *body);

#endif
