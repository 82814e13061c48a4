/*
 * request.c - lifecycle of struct request and struct response, and the
 * helpers backends use to answer.
 */
#include "request.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "json.h"
#include "util.h"

const char *req_op_name(enum req_op op)
{
    switch (op) {
    case OP_READ: return "read";
    case OP_CREATE: return "create";
    case OP_UPDATE: return "update";
    case OP_DELETE: return "delete";
    case OP_LIST: return "list";
    case OP_PATCH: return "patch";
    case OP_HEAD: return "head";
    }
    return "unknown";
}

/* ---------------------------------------------------- time budget ---- */

static _Atomic int64_t budget_ms = REQUEST_MAX_DURATION_DEFAULT_MS;
/* Monotonic deadline in ms of this thread's request; 0 = none open. */
static _Thread_local int64_t budget_deadline;
/* Start of the next budget on this thread; 0 = now. */
static _Thread_local int64_t budget_origin;

static int64_t mono_ms(void)
{
    return (int64_t)(time_mono() * 1000.0);
}

void request_budget_configure(int64_t ms)
{
    budget_ms = ms > 0 ? ms : REQUEST_MAX_DURATION_DEFAULT_MS;
}

int64_t request_budget_configured_ms(void)
{
    return budget_ms;
}

void request_budget_begin(void)
{
    budget_deadline = (budget_origin > 0 ? budget_origin : mono_ms()) +
                      budget_ms;
    budget_origin = 0;
}

void request_budget_set_origin(int64_t origin_ms)
{
    budget_origin = origin_ms;
}

void request_budget_end(void)
{
    budget_deadline = 0;
}

int64_t request_budget_left_ms(void)
{
    int64_t left;

    if (budget_deadline == 0)
        return -1;
    left = budget_deadline - mono_ms();
    return left > 0 ? left : 0;
}

/* ------------------------------------------------------- lifecycle ---- */

void request_init(struct request *r)
{
    memset(r, 0, sizeof(*r));
}

void request_release(struct request *r)
{
    free(r->path);
    json_delete_wiped(r->data); /* request bodies carry secrets */
    secure_free_str(r->client_token);
    free(r->content_type);
    free(r->forwarded_for);
    request_init(r);
}

void response_init(struct response *r)
{
    memset(r, 0, sizeof(*r));
}

void response_release(struct response *r)
{
    cJSON_Delete(r->data);
    cJSON_Delete(r->warnings);
    cJSON_Delete(r->auth);
    cJSON_Delete(r->errors);
    cJSON_Delete(r->raw);
    free(r->text);
    free(r->lease_id);
    response_init(r);
}

void response_empty_error(struct response *r, int status)
{
    cJSON_Delete(r->errors);
    r->errors = cJSON_CreateArray();
    r->status = status;
}

void response_error(struct response *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    response_empty_error(r, status);
    cJSON_AddItemToArray(r->errors, cJSON_CreateString(msg));
}

void response_multierror(struct response *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    response_error(r, status, MULTIERROR_FMT, msg);
}

void response_keys(struct response *r, const struct strvec *keys)
{
    cJSON *arr;

    if (keys->n == 0)
        return;
    arr = cJSON_CreateArray();
    for (size_t i = 0; i < keys->n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(keys->v[i]));
    r->data = cJSON_CreateObject();
    cJSON_AddItemToObject(r->data, "keys", arr);
}

void response_warn(struct response *r, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (r->warnings == NULL)
        r->warnings = cJSON_CreateArray();
    cJSON_AddItemToArray(r->warnings, cJSON_CreateString(msg));
}
