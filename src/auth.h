/*
 * auth.h - logins to auth methods written in Lua.
 *
 * A request to auth/<mount>/<login path> (as the method declared with
 * a:login, see lua/coffer/framework.lua) skips token authentication and
 * ACL checks. It is rate-limited per client address (every attempt takes
 * a token of the address's bucket before it runs and a success gives it
 * back, so failures cost one each even when they run concurrently; an
 * empty bucket answers 429 with Vault's words), runs in the method's Lua
 * handler, and the identity the handler
 * returns becomes a token (token_create_identity) and Vault's auth block.
 */
#ifndef COFFER_AUTH_H
#define COFFER_AUTH_H

#include <stdbool.h>

#include "request.h"

/*
 * Sets the login rate limit: rate tokens per second, burst tokens per
 * address (defaults when <= 0: 1 per second, burst 10). Call before
 * serving; auth_shutdown frees the table.
 */
void auth_configure(double rate, double burst);
void auth_shutdown(void);

/*
 * True if req is a login request. Then req->mount holds a counted
 * reference to its auth mount, which the caller drops as for any request.
 */
bool auth_is_login(struct request *req);

/* Runs a login request (auth_is_login was true); fills resp. */
void auth_login(struct request *req, struct response *resp);

#endif
