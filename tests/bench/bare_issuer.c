/*
 * bare_issuer: a durable credential issuance made of Coffer's pieces and
 * nothing else, as the floor the sqlite server is measured against
 * (issue 14: "which part of the remaining gap belongs to libmicrohttpd,
 * sqlite or PostgreSQL themselves").
 *
 * GET /v1/database/creds/<anything> with the right X-Vault-Token does what
 * a Coffer issuance must do, in the same order and with the same
 * libraries, and no more:
 *
 *   1. a random user name and password (OpenSSL's CSPRNG);
 *   2. with --sqlite: a pending record, AES-256-GCM encrypted, committed
 *      durably (WAL, synchronous=FULL: one fdatasync) before the user
 *      exists;
 *   3. BEGIN; CREATE ROLE ... PASSWORD ... VALID UNTIL ...;
 *      GRANT app_readonly TO ...; COMMIT on a pooled libpq connection,
 *      four round trips as pgbench sends them;
 *   4. with --sqlite: the lease record, encrypted, committed durably
 *      before the reply;
 *   5. the reply as Vault's JSON (cJSON).
 *
 * No policy, token store, Lua, lease bookkeeping, audit or metrics: what
 * Coffer adds over this program is Coffer's own. libmicrohttpd runs one
 * thread per connection, so a blocking call needs no hand-off, the
 * cheapest model for this work. One sqlite connection under a mutex: each
 * commit has its own fsync (no group commit; at most a few hundred
 * credentials/s, the serialised fsyncs are not the limit).
 *
 * Usage: bare_issuer --port N --token T --pg CONNINFO [--sqlite FILE]
 *            [--pool 32]
 * Prints "ready" on stdout once it serves; stops on SIGINT/SIGTERM.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LEASE_TTL 3600
#define MAX_POOL 256
#define TX_ATTEMPTS 3

static struct {
    const char *token;
    sqlite3 *db; /* NULL without --sqlite */
    sqlite3_stmt *put;
    pthread_mutex_t db_mu;
    unsigned char key[32];
    PGconn *pool[MAX_POOL];
    int n_pool, n_free;
    PGconn *free_conns[MAX_POOL];
    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
} g = {.db_mu = PTHREAD_MUTEX_INITIALIZER,
       .pool_mu = PTHREAD_MUTEX_INITIALIZER,
       .pool_cv = PTHREAD_COND_INITIALIZER};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* ------------------------------------------------------------ random -- */

static const char ALNUM[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* n characters of [A-Za-z0-9] (rejection sampling: no modulo bias). */
static int random_alnum(char *out, size_t n)
{
    unsigned char b[64];
    size_t i = 0, j = sizeof b;

    while (i < n) {
        if (j == sizeof b) {
            if (RAND_bytes(b, sizeof b) != 1)
                return -1;
            j = 0;
        }
        if (b[j] < 248) /* 248 = 4 * 62 */
            out[i++] = ALNUM[b[j] % 62];
        j++;
    }
    out[n] = '\0';
    OPENSSL_cleanse(b, sizeof b);
    return 0;
}

/* ------------------------------------------------------------ sqlite -- */

/* nonce || ciphertext || tag of text under g.key, in out (len + 28). */
static int seal(const char *text, unsigned char *out, int *out_len)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = (int)strlen(text), n = 0, fin = 0, rc = -1;

    if (c == NULL || RAND_bytes(out, 12) != 1)
        goto done;
    if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, g.key, out) != 1 ||
        EVP_EncryptUpdate(c, out + 12, &n, (const unsigned char *)text,
                          len) != 1 ||
        EVP_EncryptFinal_ex(c, out + 12 + n, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16,
                            out + 12 + n + fin) != 1)
        goto done;
    *out_len = 12 + n + fin + 16;
    rc = 0;
done:
    EVP_CIPHER_CTX_free(c);
    return rc;
}

/* Stores the record id = text, encrypted, in its own durable commit. */
static int store_record(const char *id, const char *text)
{
    unsigned char blob[1024];
    int len, rc = -1;

    if (strlen(text) + 28 > sizeof blob || seal(text, blob, &len) != 0)
        return -1;
    pthread_mutex_lock(&g.db_mu);
    if (sqlite3_bind_text(g.put, 1, id, -1, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_bind_blob(g.put, 2, blob, len, SQLITE_STATIC) == SQLITE_OK &&
        sqlite3_step(g.put) == SQLITE_DONE)
        rc = 0;
    else
        fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(g.db));
    sqlite3_reset(g.put);
    sqlite3_clear_bindings(g.put);
    pthread_mutex_unlock(&g.db_mu);
    return rc;
}

static int open_sqlite(const char *path)
{
    char *msg = NULL;

    if (sqlite3_open(path, &g.db) != SQLITE_OK)
        return -1;
    if (sqlite3_exec(g.db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                     "CREATE TABLE IF NOT EXISTS records(id TEXT PRIMARY KEY,"
                     " value BLOB NOT NULL)", NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "sqlite: %s\n", msg);
        sqlite3_free(msg);
        return -1;
    }
    if (sqlite3_prepare_v2(g.db, "INSERT OR REPLACE INTO records(id, value) "
                           "VALUES(?1, ?2)", -1, &g.put, NULL) != SQLITE_OK)
        return -1;
    return RAND_bytes(g.key, sizeof g.key) == 1 ? 0 : -1;
}

/* ---------------------------------------------------------- postgres -- */

static PGconn *pool_take(void)
{
    PGconn *c;

    pthread_mutex_lock(&g.pool_mu);
    while (g.n_free == 0)
        pthread_cond_wait(&g.pool_cv, &g.pool_mu);
    c = g.free_conns[--g.n_free];
    pthread_mutex_unlock(&g.pool_mu);
    return c;
}

static void pool_give(PGconn *c)
{
    pthread_mutex_lock(&g.pool_mu);
    g.free_conns[g.n_free++] = c;
    pthread_cond_signal(&g.pool_cv);
    pthread_mutex_unlock(&g.pool_mu);
}

/* Runs sql; on failure copies the message to err and returns its
 * SQLSTATE's class-and-code in state ("" when none). */
static int exec(PGconn *c, const char *sql, char *err, size_t errlen,
                char state[6])
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    const char *code;

    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
        PQclear(r);
        return 0;
    }
    code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(state, 6, "%s", code ? code : "");
    snprintf(err, errlen, "%s", PQerrorMessage(c));
    PQclear(r);
    return -1;
}

/* True for the errors a retry of the whole transaction cures: concurrent
 * catalog updates (XX000 "tuple concurrently updated"), serialisation
 * failures and deadlocks. */
static bool transient(const char *state)
{
    return strcmp(state, "XX000") == 0 || strcmp(state, "40001") == 0 ||
           strcmp(state, "40P01") == 0;
}

static int create_user(const char *name, const char *password,
                       const char *expiration, char *err, size_t errlen)
{
    char create[512], grant[256], state[6] = "";
    PGconn *c = pool_take();
    int rc = -1;

    snprintf(create, sizeof create, "CREATE ROLE \"%s\" WITH LOGIN PASSWORD "
             "'%s' VALID UNTIL '%s'", name, password, expiration);
    snprintf(grant, sizeof grant, "GRANT app_readonly TO \"%s\"", name);
    for (int attempt = 0; attempt < TX_ATTEMPTS && rc != 0; attempt++) {
        if (exec(c, "BEGIN", err, errlen, state) != 0)
            break;
        if (exec(c, create, err, errlen, state) == 0 &&
            exec(c, grant, err, errlen, state) == 0 &&
            exec(c, "COMMIT", err, errlen, state) == 0) {
            rc = 0;
            break;
        }
        PQclear(PQexec(c, "ROLLBACK"));
        if (!transient(state))
            break;
    }
    OPENSSL_cleanse(create, sizeof create);
    pool_give(c);
    return rc;
}

static int open_pool(const char *conninfo, int n)
{
    for (int i = 0; i < n; i++) {
        g.pool[i] = PQconnectdb(conninfo);
        if (PQstatus(g.pool[i]) != CONNECTION_OK) {
            fprintf(stderr, "postgres: %s", PQerrorMessage(g.pool[i]));
            return -1;
        }
        g.free_conns[g.n_free++] = g.pool[i];
        g.n_pool++;
    }
    return 0;
}

/* -------------------------------------------------------------- http -- */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status,
                             char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(body), body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    MHD_add_response_header(r, "Content-Type", "application/json");
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static char *error_body(const char *msg)
{
    cJSON *o = cJSON_CreateObject(), *errs = cJSON_AddArrayToObject(o,
                                                                   "errors");
    char *s;

    cJSON_AddItemToArray(errs, cJSON_CreateString(msg));
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static char *lease_body(const char *lease_id, const char *request_id,
                        const char *name, const char *password)
{
    cJSON *o = cJSON_CreateObject(), *data;
    char *s;

    cJSON_AddStringToObject(o, "request_id", request_id);
    cJSON_AddStringToObject(o, "lease_id", lease_id);
    cJSON_AddBoolToObject(o, "renewable", 1);
    cJSON_AddNumberToObject(o, "lease_duration", LEASE_TTL);
    data = cJSON_AddObjectToObject(o, "data");
    cJSON_AddStringToObject(data, "username", name);
    cJSON_AddStringToObject(data, "password", password);
    cJSON_AddNullToObject(o, "wrap_info");
    cJSON_AddNullToObject(o, "warnings");
    cJSON_AddNullToObject(o, "auth");
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* One credential: steps 1 to 5 of the top of the file. */
static enum MHD_Result issue(struct MHD_Connection *conn, const char *url)
{
    char suffix[21], password[21], request_id[33], name[64], lease_id[256];
    char expiration[40], record[512], err[512];
    time_t due = time(NULL) + LEASE_TTL;
    struct tm tm;

    if (random_alnum(suffix, 20) != 0 || random_alnum(password, 20) != 0 ||
        random_alnum(request_id, 32) != 0)
        return reply(conn, 500, error_body("no randomness"));
    snprintf(name, sizeof name, "v-bare-bench-%s", suffix);
    snprintf(lease_id, sizeof lease_id, "%s/%s", url + strlen("/v1/"),
             suffix);
    gmtime_r(&due, &tm);
    strftime(expiration, sizeof expiration, "%Y-%m-%d %H:%M:%S+0000", &tm);
    snprintf(record, sizeof record, "{\"lease_id\":\"%s\",\"state\":"
             "\"pending\",\"username\":\"%s\",\"expire_time\":%lld}",
             lease_id, name, (long long)due);
    if (g.db != NULL && store_record(lease_id, record) != 0)
        return reply(conn, 500, error_body("cannot store the pending record"));
    if (create_user(name, password, expiration, err, sizeof err) != 0) {
        OPENSSL_cleanse(password, sizeof password);
        return reply(conn, 500, error_body(err));
    }
    snprintf(record, sizeof record, "{\"lease_id\":\"%s\",\"state\":"
             "\"active\",\"username\":\"%s\",\"expire_time\":%lld}",
             lease_id, name, (long long)due);
    if (g.db != NULL && store_record(lease_id, record) != 0) {
        OPENSSL_cleanse(password, sizeof password);
        return reply(conn, 500, error_body("cannot store the lease"));
    }
    enum MHD_Result ret = reply(conn, 200, lease_body(lease_id, request_id,
                                                      name, password));
    OPENSSL_cleanse(password, sizeof password);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn,
                               const char *url, const char *method,
                               const char *version, const char *data,
                               size_t *data_len, void **state)
{
    static int seen;
    const char *token;
    (void)cls, (void)version, (void)data;

    /* Reply on the second call: a reply queued on the first call of a
     * request costs the connection its keep-alive (PERF_NOTES). */
    if (*state == NULL) {
        *state = &seen;
        return MHD_YES;
    }
    if (*data_len != 0) {
        *data_len = 0;
        return MHD_YES;
    }
    token = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                        "X-Vault-Token");
    if (token == NULL || strlen(token) != strlen(g.token) ||
        CRYPTO_memcmp(token, g.token, strlen(g.token)) != 0)
        return reply(conn, 403, error_body("permission denied"));
    if (strcmp(method, "GET") != 0 ||
        strncmp(url, "/v1/database/creds/", 19) != 0 || strlen(url) > 128)
        return reply(conn, 404, error_body("unsupported path"));
    return issue(conn, url);
}

int main(int argc, char **argv)
{
    const char *conninfo = NULL, *sqlite_path = NULL;
    int port = 0, pool = 32;
    struct MHD_Daemon *d;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--token") == 0)
            g.token = argv[i + 1];
        else if (strcmp(argv[i], "--pg") == 0)
            conninfo = argv[i + 1];
        else if (strcmp(argv[i], "--sqlite") == 0)
            sqlite_path = argv[i + 1];
        else if (strcmp(argv[i], "--pool") == 0)
            pool = atoi(argv[i + 1]);
    }
    if (port <= 0 || port > 65535 || g.token == NULL || conninfo == NULL ||
        pool < 1 || pool > MAX_POOL) {
        fprintf(stderr, "usage: bare_issuer --port N --token T --pg CONNINFO "
                        "[--sqlite FILE] [--pool 1..%d]\n", MAX_POOL);
        return 2;
    }
    if ((sqlite_path != NULL && open_sqlite(sqlite_path) != 0) ||
        open_pool(conninfo, pool) != 0)
        return 1;
    d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION |
                         MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
                         MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL,
                         handler, NULL,
                         MHD_OPTION_CONNECTION_LIMIT, 1000u,
                         MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "cannot listen on port %d\n", port);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("ready\n");
    fflush(stdout);
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    for (int i = 0; i < g.n_pool; i++)
        PQfinish(g.pool[i]);
    if (g.db != NULL) {
        sqlite3_finalize(g.put);
        sqlite3_close(g.db);
    }
    OPENSSL_cleanse(g.key, sizeof g.key);
    return 0;
}
