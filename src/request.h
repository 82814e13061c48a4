/*
 * request.h - the logical request and response every backend sees.
 *
 * http.c turns an HTTP exchange into a struct request; core.c runs it
 * through the pipeline (token, policy, router) and hands it to a backend:
 * a C built-in (sys/, auth/token/) or a Lua engine (luavm.c). The backend
 * fills a struct response, which core.c turns into Vault's JSON envelope.
 *
 * Ownership: request and response own every pointer they hold; they are
 * released with request_release/response_release.
 */
#ifndef COFFER_REQUEST_H
#define COFFER_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "crypto.h"

enum req_op {
    OP_READ = 1,
    OP_CREATE = 2,
    OP_UPDATE = 3,
    OP_DELETE = 4,
    OP_LIST = 5,
    OP_PATCH = 6,
    OP_HEAD = 7,
};

/* "read", "create", "update", "delete", "list", "patch", "head". */
const char *req_op_name(enum req_op op);

struct mount;
struct token;

struct request {
    char id[CRYPTO_UUID_LEN + 1]; /* request_id of the envelope */
    enum req_op op;
    char *path;          /* logical path without "/v1/", URL-decoded */
    cJSON *data;         /* JSON object: the body, or the query for GET */
    char *client_token;  /* as sent; NULL if none. Never log it. */
    char remote_addr[64];
    char *content_type;  /* NULL if none */
    int64_t wrap_ttl;    /* X-Vault-Wrap-TTL in seconds, 0 = no wrapping */
    /* X-Coffer-Forwarded-For as sent (HA: a standby's signed note of the
     * client's address; forward.h), NULL if none. Trusted only once its
     * signature is checked. */
    char *forwarded_for;
    /* X-Coffer-Explain: 1 was sent: a 403 carries the explanation
     * (policy_explain.h) when the token may call explain-self. */
    bool explain;

    /* Filled by the pipeline before the backend runs. */
    const struct token *token; /* NULL on unauthenticated paths */
    const struct mount *mount; /* NULL for paths outside any mount */
    const char *rel_path;      /* path relative to the mount (points into path) */
};

/*
 * What a backend answers. The envelope rules (core.c):
 *  - errors != NULL: body {"errors": errors}, status (400 if unset).
 *  - raw != NULL: body is raw as-is, no envelope (sys/health, sys/init).
 *  - text != NULL: body is that text, Content-Type text/plain.
 *  - otherwise, if nothing was set (no data, auth, warnings, lease):
 *    404 {"errors":[]} for read/list, 204 for everything else.
 *  - otherwise the envelope, status 200 unless status is set.
 */
struct response {
    int status;          /* 0 = decide by the rules above */
    cJSON *data;         /* any JSON value, usually an object */
    cJSON *warnings;     /* array of strings or NULL */
    cJSON *auth;         /* auth block or NULL */
    cJSON *errors;       /* array of strings or NULL */
    cJSON *raw;          /* bare JSON body (no envelope) or NULL */
    char *text;          /* plain-text body (Prometheus metrics) or NULL */
    char *lease_id;      /* NULL = "" */
    int64_t lease_duration;
    bool renewable;
    bool inject_top;     /* copy data's members to the top level (sys/mounts) */
    bool no_body;        /* send the status with an empty body (202, HEAD) */
};

void request_init(struct request *r);
void request_release(struct request *r);
void response_init(struct response *r);
void response_release(struct response *r);

/* Sets an error reply: status and one message. Replaces earlier errors. */
void response_error(struct response *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * Sets an error reply in Vault's multi-error form, the text its
 * go-multierror package prints for one error:
 * "1 error occurred:\n\t* <message>\n\n". Clients (hvac, the vault CLI)
 * match on it, so every "permission denied" / "unsupported operation"
 * reply goes through here instead of spelling the frame out.
 */
void response_multierror(struct response *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* go-multierror's frame for one error, for formatters other than these. */
#define MULTIERROR_FMT "1 error occurred:\n\t* %s\n\n"
/* Sets the Vault "nothing here" reply: status with {"errors":[]}. */
void response_empty_error(struct response *r, int status);
/*
 * Sets the reply of a LIST: data {"keys": [...]} copied from keys, or
 * nothing when keys is empty (core then answers Vault's 404).
 */
struct strvec;
void response_keys(struct response *r, const struct strvec *keys);

/* Appends a warning string. */
void response_warn(struct response *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The request time budget (Vault's max_request_duration). core.c opens a
 * budget on the worker thread before a request runs and closes it after;
 * anything that waits on the outside world (database calls, outbound
 * HTTP, Lua's deadline) asks how much is left and never waits longer.
 * Threads with no open budget (expiration workers, the ticker) get -1 and
 * use their own timeouts.
 */
#define REQUEST_MAX_DURATION_DEFAULT_MS (90 * 1000)

/* Sets the budget every request gets; ms <= 0 restores the default. */
void request_budget_configure(int64_t ms);
int64_t request_budget_configured_ms(void);
/*
 * Opens this thread's budget: the configured duration from the origin
 * set with request_budget_set_origin (once), else from now.
 */
void request_budget_begin(void);
/*
 * Makes the next request_budget_begin on this thread count from
 * origin_ms (time_mono() in milliseconds, truncated): http.c sets it to
 * when the request was complete, so time spent waiting for a worker is
 * part of the budget.
 */
void request_budget_set_origin(int64_t origin_ms);
void request_budget_end(void);
/* Milliseconds left (0 once spent), or -1 when no budget is open here. */
int64_t request_budget_left_ms(void);

#endif
