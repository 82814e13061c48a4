/*
 * lua_http.h - coffer.http: outbound HTTP for plugins, over libcurl.
 *
 * Owns: the coffer.http.* functions (request, get, post, put, delete),
 * the operator's allowlist (the configuration's plugin_http_allowed) and
 * libcurl's process-wide initialisation for the server. Does not own the
 * configuration file (config.c reads the list and checks each entry with
 * lua_http_allow_check) nor the request time budget (request.h), which
 * it only reads.
 *
 * Lua sees (docs/PLUGIN_API.md has the full reference):
 *
 *   resp, err = coffer.http.request{ method =, url =, headers =, body =,
 *       json =, ca_pem =, client_cert_pem =, client_key_pem =, timeout =,
 *       connect_timeout =, max_body =, follow_redirects = }
 *   resp = { status = 200, headers = { ["content-type"] = ... }, body = }
 *   coffer.http.get(url, opts), .post(url, body, opts),
 *   .put(url, body, opts), .delete(url, opts)
 *
 * Any HTTP status is a response; transport failures, refused URLs,
 * oversize bodies, timeouts and TLS failures return nil and
 * "http: <METHOD> <scheme://host[:port]/path>: <reason>" (never the query
 * string, never a header). Misuse (unknown keys, wrong types, body and
 * json together, out-of-range limits) raises.
 *
 * Threads: lua_http_global_init runs once, before any thread starts; the
 * allowlist is read-only afterwards, so calls on any thread read it
 * without a lock. Each call uses its own curl handle.
 */
#ifndef COFFER_LUA_HTTP_H
#define COFFER_LUA_HTTP_H

#include <lua.h>

#include "common.h"

struct strvec;

/* Entries in plugin_http_allowed at most. */
#define LUA_HTTP_ALLOW_MAX 256

/*
 * Checks one allowlist entry, "scheme://host[:port][/path-prefix]" with
 * scheme http or https and no credentials, query or fragment. Returns 0,
 * or COFFER_EINVAL with the reason in err (the entry is not repeated).
 * Never blocks or raises.
 */
int lua_http_allow_check(const char *entry, struct errbuf *err);

/*
 * Start-up, before any thread: initialises libcurl and installs the
 * allowlist. allowed NULL means "not configured" (any https:// URL may be
 * called; a warning is logged); otherwise exactly its entries (copied;
 * an empty list refuses every URL). Returns 0, or a negative COFFER_E*
 * with the reason in err. Calling it again replaces the allowlist and is
 * only safe while no plugin call can run.
 */
int lua_http_global_init(const struct strvec *allowed, struct errbuf *err);

/* Frees the allowlist and cleans libcurl up; after every thread ended. */
void lua_http_global_shutdown(void);

/*
 * Adds this module's functions to the `coffer` table at the top of the
 * stack. Called once per state by lua_api_open, under a pcall.
 * [-0, +0, m]
 */
void lua_http_open(lua_State *L);

#endif
