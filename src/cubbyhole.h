/*
 * cubbyhole.h - the cubbyhole engine: per-token private storage.
 *
 * Every service token has its own cubbyhole under cubbyhole/ (always
 * there, never mounted, moved or tuned). Values are kept under
 *
 *   cubbyhole/<token hmac>/<path>     the JSON object as written
 *
 * so a token sees only its own entries: not even root can read, list or
 * delete another token's. The token store calls cubbyhole_destroy when a
 * token is revoked (by hand, by expiry, by the revocation of its parent),
 * which removes everything under the token's prefix. Response wrapping
 * (wrapping.c) keeps the wrapped response in the wrapping token's
 * cubbyhole with cubbyhole_put.
 */
#ifndef COFFER_CUBBYHOLE_H
#define COFFER_CUBBYHOLE_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "request.h"

struct storage;

/*
 * Start-up wiring (core_init): the logical storage, and the token store's
 * question whether a token (by stored id) still exists.
 */
void cubbyhole_configure(struct storage *s, bool (*alive)(const char *hmac));

/* True for cubbyhole/ and every path under it. */
bool cubbyhole_handles(const char *path);

/*
 * Handles an authorised request to cubbyhole/ for the token whose stored
 * id is hmac (Coffer's tokens are all service tokens).
 */
void cubbyhole_handle(const char *hmac, struct request *req,
                      struct response *resp);

/*
 * Stores obj (a JSON object) at path in the cubbyhole of the token whose
 * stored id is hmac. 0 or COFFER_E*.
 */
int cubbyhole_put(const char *hmac, const char *path, const cJSON *obj);
/*
 * Reads path of hmac's cubbyhole: a new object the caller frees with
 * json_delete_wiped, or NULL when missing or unreadable.
 */
cJSON *cubbyhole_get(const char *hmac, const char *path);

/*
 * Removes a token's whole cubbyhole. Called by the token store on
 * revocation, with its storage. 0 or COFFER_E*.
 */
int cubbyhole_destroy(struct storage *s, const char *hmac);

#endif
