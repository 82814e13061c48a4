/*
 * cli_http.h - the HTTP client of the client commands (cli_http.c).
 *
 * Private to the cli*.c files: every name here carries the cli__ prefix
 * (or a cli_ type name) and nothing outside the CLI includes this header.
 *
 * What it offers: one client per command run, one call that sends a
 * request and reads the answer the way the Go client (api.Logical, api.Sys)
 * does, the k=v body builder of `vault write`, and the path helpers the
 * commands use to build API paths.
 *
 * Ownership, once for the whole header:
 *   - const char * and const cJSON * arguments are borrowed;
 *   - char * results are new strings, freed with free();
 *   - cJSON * results are new trees, freed with json_delete_wiped() (json.h)
 *     (responses and bodies hold secrets, so they are wiped first);
 *   - error words go into a caller's `struct out` (cli_format.h), with
 *     Vault's wording, and never include the token.
 * Functions that talk to the server block for up to 30 seconds.
 */
#ifndef COFFER_CLI_HTTP_H
#define COFFER_CLI_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "../buf.h"
#include "cli_format.h"
#include "../util.h"

/* The server address, the token and TLS settings, plus one curl handle. */
struct cli_client {
    CURL *curl;
    char *addr;  /* base address without trailing '/' */
    char *token; /* NULL when none; wiped on release */
    char *ca_cert;
    bool skip_verify;
    char *wrap_ttl; /* X-Vault-Wrap-TTL to send, or NULL */
};

/* One HTTP exchange: what was asked and what came back. */
struct cli_http_result {
    long status;        /* 0 when the request never got an answer */
    char method[16];
    struct buf url;     /* full URL as sent, for error messages */
    struct buf body;    /* response body, wiped on release */
};

/* How cli__api_call reads the answer (which Go client call it mimics). */
enum cli_call_mode {
    /* Logical().Read/List: a 404 is "no value" unless it carries data. */
    CLI_CALL_READ = 1,
    /* Logical().Write/Delete: a 404 with data returns data and error. */
    CLI_CALL_WRITE = 2,
    /* Any other call: a status >= 400 is an error; body is a secret. */
    CLI_CALL_RAW = 3,
    /* Bare JSON endpoints (sys/seal-status, sys/leader). */
    CLI_CALL_BARE = 4,
};

/* ---- client ---------------------------------------------------------- */

/*
 * Sets up c: address from `address` or $COFFER_ADDR/$VAULT_ADDR (default
 * http://127.0.0.1:8200), token from $COFFER_TOKEN/$VAULT_TOKEN or
 * ~/.vault-token, CA file from `ca_cert` or $VAULT_CACERT, and
 * verification off when skip_verify or $VAULT_SKIP_VERIFY says so.
 * Returns 0, or COFFER_ENOMEM with the reason in err; either way release
 * c with cli__client_release().
 */
int cli__client_init(struct cli_client *c, const char *address,
                     const char *ca_cert, bool skip_verify, struct out *err);
/* Frees everything c holds; the token is wiped first. */
void cli__client_release(struct cli_client *c);

/* The first of two environment variables that is set and not empty. */
const char *cli__env_first(const char *a, const char *b);

/* ---- requests --------------------------------------------------------- */

void cli__http_result_init(struct cli_http_result *r);
/* Frees r's buffers; the response body is wiped first. */
void cli__http_result_release(struct cli_http_result *r);

/*
 * Sends one request to /v1/<path>[?query] (query already encoded) with an
 * optional JSON body. Returns 0 when the server answered, whatever the
 * status (in r), or COFFER_EIO with Go's transport error text in err.
 */
int cli__request(struct cli_client *c, const char *method, const char *path,
                 const char *query, const char *body,
                 struct cli_http_result *r, struct out *err);

/* Appends Vault's "Error making API request. ..." text for r to err. */
void cli__api_error_text(const struct cli_http_result *r, struct out *err);

/*
 * Makes one API call and reads the answer as `mode` says. Returns 0 with
 * *secret set to the parsed response (NULL when there is none), or
 * COFFER_EIO with Vault's error text in err. In CLI_CALL_WRITE mode
 * *secret may be set even on error (a 404 carrying data). status, when
 * not NULL, receives the HTTP status (0 if the server never answered).
 */
int cli__api_call(struct cli_client *c, const char *method,
                  const char *path, const char *query, const cJSON *body,
                  enum cli_call_mode mode, cJSON **secret, long *status,
                  struct out *err);

/* ---- JSON helpers ----------------------------------------------------- */

/* True for a missing member or a JSON null. */
bool cli__json_is_nullish(const cJSON *v);
/* The string member `key` of obj, or "" (borrowed from obj). */
const char *cli__str_member(const cJSON *obj, const char *key);
/* "true" when member `key` of obj is true, else "false". */
const char *cli__bool_member(const cJSON *obj, const char *key);
/* A new object with one string member, such as {"token": "..."}. */
cJSON *cli__one_member(const char *key, const char *value);

/* ---- bodies and queries ---------------------------------------------- */

/*
 * Builds the JSON object of `vault write PATH k=v...` from args[from..].
 * Values are strings; "k=@file" reads a file, "k=-" and a lone "-" read
 * stdin (once per run: *stdin_used records it), "@file" alone merges a
 * JSON object. Returns 0 with a new object in *out (NULL when there were
 * no arguments, like Go's nil map), or COFFER_EINVAL with Vault's message
 * in err.
 */
int cli__args_to_json(const struct strvec *args, size_t from,
                      bool *stdin_used, cJSON **out, struct out *err);
/*
 * Appends obj's members to q as a query string in Go's url.Values.Encode
 * order: keys sorted, a list gives one pair per item.
 */
void cli__json_to_query(const cJSON *obj, struct buf *q);

/* ---- paths and strings ------------------------------------------------ */

/* A copy of s without leading and trailing white space (Go TrimSpace). */
char *cli__trim_dup(const char *s);
/* Trims white space and every leading and trailing '/'. */
char *cli__sanitize_path(const char *s);
/* Trims white space and ends the path with exactly one '/'. */
char *cli__ensure_trailing_slash(const char *s);
/* Go's path.Join of up to three parts (NULL or "" parts are skipped). */
char *cli__path_join(const char *a, const char *b, const char *c);
/* a + b + c. */
char *cli__str_concat3(const char *a, const char *b, const char *c);

#endif
