/*
 * test_storage_pg.c - the postgresql backend against a real, scratch
 * PostgreSQL (pg_scratch.h starts it and always removes it).
 *
 * Runs the shared contract (storage_contract.h) with a new table per case,
 * then what only this backend has: table-name validation and the default
 * name; the schema (COLLATE "C", the (path, name) index); data surviving a
 * close and reopen and shared by two stores; a failing statement in the
 * middle of a batch (a trigger) leaving nothing behind, with the server's
 * words in the log; bytewise order inside a database whose own collation
 * is ICU's; reconnecting after the server restarts or comes back from
 * being down. Listing and scanning a large table are timed, not asserted.
 *
 * With VALGRIND=1 in the environment (make valgrind) the large cases
 * shrink.
 */
#include "../../src/storage_pg.c"

#include "storage_contract.h"
#include "pg_scratch.h"

static int fresh_count;
static bool under_valgrind;
static char url[256];

/* ========================================================= helpers == */

static struct storage *open_or_report(const char *conninfo, const char *table)
{
    struct errbuf err;
    struct storage *s;

    errbuf_clear(&err);
    s = storage_pg_open(conninfo, table, &err);
    if (s == NULL)
        fprintf(stdout, "  storage_pg_open(%s): %s\n",
                table != NULL ? table : "(default)", err.msg);
    return s;
}

static struct storage *fresh_pg(void)
{
    char table[32];

    snprintf(table, sizeof(table), "contract_%d", ++fresh_count);
    return open_or_report(url, table);
}

/* Runs sql on its own connection; returns cell (0,0) in out ("" if none). */
static int sql_on(const char *conninfo, const char *sql, char *out, size_t n)
{
    PGconn *conn = PQconnectdb(conninfo);
    PGresult *res = NULL;
    int rc = -1;

    if (out != NULL)
        snprintf(out, n, "%s", "");
    if (PQstatus(conn) == CONNECTION_OK) {
        res = PQexec(conn, sql);
        if (PQresultStatus(res) == PGRES_COMMAND_OK ||
            PQresultStatus(res) == PGRES_TUPLES_OK)
            rc = 0;
        else
            fprintf(stdout, "  %s: %s", sql, PQresultErrorMessage(res));
        if (rc == 0 && out != NULL && PQntuples(res) > 0 && PQnfields(res) > 0)
            snprintf(out, n, "%s", PQgetvalue(res, 0, 0));
    } else {
        fprintf(stdout, "  connect: %s", PQerrorMessage(conn));
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

static int sql_run(const char *sql, char *out, size_t n)
{
    return sql_on(url, sql, out, n);
}

static int scan_count_rows(void *arg, const char *key, const void *value,
                           size_t len)
{
    size_t *n = arg;

    (void)key;
    (void)value;
    (void)len;
    (*n)++;
    return 0;
}

/* ============================================== names and schema == */

TEST(table_names_are_validated)
{
    static const char *const bad[] = {
        "a;drop table x", "1abc", "a b", "a.b.c", ".a", "a.", "a-b",
        "\"quoted\"", "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij",
        "tab\xc3\xa9",
    };
    struct errbuf err;
    char out[64];

    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct storage *s;

        errbuf_clear(&err);
        s = storage_pg_open(url, bad[i], &err);
        CHECK(s == NULL);
        if (s != NULL) {
            fprintf(stdout, "  accepted \"%s\"\n", bad[i]);
            storage_free(s);
        }
        CHECK(strstr(err.msg, "invalid table name") != NULL);
    }

    /* NULL and "" mean coffer_kv; schema.table works. */
    {
        struct storage *s = open_or_report(url, NULL);

        CHECK(s != NULL);
        if (s != NULL) {
            put_str(s, "default/k", "v");
            storage_free(s);
        }
        s = open_or_report(url, "");
        CHECK(s != NULL);
        if (s != NULL) {
            CHECK(has(s, "default/k", "v"));
            storage_free(s);
        }
    }
    CHECK_EQ_INT(sql_run("SELECT count(*) FROM coffer_kv", out, sizeof(out)),
                 0);
    CHECK_STREQ(out, "1");
    CHECK_EQ_INT(sql_run("CREATE SCHEMA IF NOT EXISTS vault", NULL, 0), 0);
    {
        struct storage *s = open_or_report(url, "vault.Mixed_Case_1");

        CHECK(s != NULL);
        if (s != NULL) {
            put_str(s, "k", "v");
            storage_free(s);
        }
    }
    CHECK_EQ_INT(sql_run("SELECT count(*) FROM vault.\"Mixed_Case_1\"", out,
                         sizeof(out)), 0);
    CHECK_STREQ(out, "1");
}

TEST(schema_as_designed)
{
    char out[256];
    struct storage *s = open_or_report(url, "schema_check");

    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK_EQ_INT(sql_run("SELECT string_agg(a.attname || ':' || "
                         "format_type(a.atttypid, a.atttypmod) || ':' || "
                         "coalesce(c.collname, '-'), ',' ORDER BY a.attnum) "
                         "FROM pg_attribute a LEFT JOIN pg_collation c "
                         "ON c.oid = a.attcollation "
                         "WHERE a.attrelid = 'schema_check'::regclass "
                         "AND a.attnum > 0",
                         out, sizeof(out)), 0);
    CHECK_STREQ(out, "key:text:C,path:text:C,name:text:C,value:bytea:-");
    CHECK_EQ_INT(sql_run("SELECT indexdef FROM pg_indexes WHERE "
                         "indexname = 'schema_check_path_idx'",
                         out, sizeof(out)), 0);
    CHECK(strstr(out, "(path, name)") != NULL);
    put_str(s, "a/b/c", "v");
    put_str(s, "top", "v");
    CHECK_EQ_INT(sql_run("SELECT string_agg(key || '|' || path || '|' || "
                         "name, ',' ORDER BY key) FROM schema_check",
                         out, sizeof(out)), 0);
    CHECK_STREQ(out, "a/b/c|a/b/|c,top||top");
    storage_free(s);
}

TEST(open_errors_are_words)
{
    struct errbuf err;
    char bad[256];

    errbuf_clear(&err);
    CHECK(storage_pg_open("postgresql://x:y@[::1", NULL, &err) == NULL);
    CHECK(strstr(err.msg, "connection_url") != NULL);

    tcp_url(bad, sizeof(bad), "Wrong-password-77");
    errbuf_clear(&err);
    CHECK(storage_pg_open(bad, NULL, &err) == NULL);
    CHECK(strstr(err.msg, "password authentication failed") != NULL);
    CHECK(strstr(err.msg, "Wrong-password-77") == NULL);
    if (strstr(err.msg, "password authentication failed") == NULL)
        fprintf(stdout, "  got: %s\n", err.msg);

    errbuf_clear(&err);
    CHECK(storage_pg_open(NULL, NULL, &err) == NULL);
    CHECK(err.msg[0] != '\0');
}

/* ==================================================== persistence == */

TEST(data_survives_reopen)
{
    struct storage *s = open_or_report(url, "persist");
    struct storage *t;

    CHECK(s != NULL);
    if (s == NULL)
        return;
    put_str(s, "core/mounts", "m");
    CHECK_EQ_INT(storage_put(s, "bin", "\0\1\0", 3), 0);
    storage_free(s);

    s = open_or_report(url, "persist");
    t = open_or_report(url, "persist");
    CHECK(s != NULL && t != NULL);
    if (s != NULL && t != NULL) {
        struct buf b;

        CHECK(has(s, "core/mounts", "m"));
        buf_init(&b, BUF_MAX_DEFAULT);
        CHECK_EQ_INT(storage_get(s, "bin", &b), 0);
        CHECK(b.len == 3 && memcmp(b.ptr, "\0\1\0", 3) == 0);
        buf_release(&b);
        /* Two stores on one table: two nodes sharing a database. */
        put_str(t, "from/t", "x");
        CHECK(has(s, "from/t", "x"));
        CHECK_LIST(s, "", "bin,core/,from/");
    }
    storage_free(s);
    storage_free(t);
}

/* ================================================= failure inside == */

TEST(batch_rolls_back_on_sql_error)
{
    struct storage *s = open_or_report(url, "poisoned");
    struct storage_op ops[4];
    struct capture cap;
    int rc;

    CHECK(s != NULL);
    if (s == NULL)
        return;
    put_str(s, "a", "before");
    put_str(s, "b", "before");
    CHECK_EQ_INT(sql_run("CREATE FUNCTION poison() RETURNS trigger "
                         "LANGUAGE plpgsql AS $$ BEGIN "
                         "IF NEW.key = 'poison' THEN "
                         "RAISE EXCEPTION 'poisoned key'; END IF; "
                         "RETURN NEW; END $$",
                         NULL, 0), 0);
    CHECK_EQ_INT(sql_run("CREATE TRIGGER poison BEFORE INSERT ON poisoned "
                         "FOR EACH ROW EXECUTE FUNCTION poison()",
                         NULL, 0), 0);
    ops[0] = (struct storage_op){STORAGE_OP_PUT, "a", "after", 5};
    ops[1] = (struct storage_op){STORAGE_OP_DELETE, "b", NULL, 0};
    ops[2] = (struct storage_op){STORAGE_OP_PUT, "poison", "x", 1};
    ops[3] = (struct storage_op){STORAGE_OP_PUT, "z", "x", 1};
    capture_begin(&cap);
    rc = storage_batch(s, ops, 4);
    capture_end(&cap);
    CHECK_EQ_INT(rc, COFFER_EIO);
    CHECK(strstr(cap.text, "poisoned key") != NULL);
    CHECK(has(s, "a", "before"));
    CHECK(has(s, "b", "before"));
    CHECK(missing(s, "poison"));
    CHECK(missing(s, "z"));
    /* The connection went back clean: the next batch works. */
    CHECK_EQ_INT(storage_batch(s, ops, 2), 0);
    CHECK(has(s, "a", "after"));
    CHECK(missing(s, "b"));
    storage_free(s);
}

/* Bytewise order even where the database's own collation is ICU's. */
TEST(order_is_bytewise_under_icu)
{
    char icu_url[256];
    struct storage *s;

    if (sql_run("CREATE DATABASE icu TEMPLATE template0 ENCODING 'UTF8' "
                "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'",
                NULL, 0) != 0) {
        fprintf(stdout, "  no ICU here: skipped\n");
        return;
    }
    snprintf(icu_url, sizeof(icu_url),
             "postgresql://postgres:%s@127.0.0.1:%d/icu?sslmode=disable",
             PG_PASSWORD, pg.port);
    s = open_or_report(icu_url, NULL);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    /* en-US would say a < B < _x; bytes say B < _x < a. */
    put_str(s, "o/a", "1");
    put_str(s, "o/B", "1");
    put_str(s, "o/_x", "1");
    put_str(s, "o/a-b/c", "1");
    put_str(s, "o/ab", "1");
    CHECK_LIST(s, "o/", "B,_x,a,a-b/,ab");
    CHECK_SCAN(s, "o/", "o/B=1,o/_x=1,o/a=1,o/a-b/c=1,o/ab=1");
    storage_free(s);
}

TEST(prefix_not_ending_in_slash)
{
    struct storage *s = open_or_report(url, "partial");

    CHECK(s != NULL);
    if (s == NULL)
        return;
    put_str(s, "d/part", "1");
    put_str(s, "d/partx", "1");
    put_str(s, "d/party/a", "1");
    put_str(s, "d/part/b", "1");
    put_str(s, "d/other", "1");
    put_str(s, "d/\xc3\xa9t\xc3\xa9/x", "1");
    put_str(s, "d/\xc3\xa9t\xc3\xa9s", "1");
    /* The same answers as the other backends give. */
    CHECK_LIST(s, "d/part", ",/,x,y/");
    CHECK_LIST(s, "d/\xc3\xa9t\xc3\xa9", "/,s");
    CHECK_SCAN(s, "d/\xc3\xa9t\xc3\xa9", "d/\xc3\xa9t\xc3\xa9/x=1,"
                                        "d/\xc3\xa9t\xc3\xa9s=1");
    CHECK_LIST(s, "d/\xc3\xa9", "t\xc3\xa9/,t\xc3\xa9s");
    storage_free(s);
}

/* ======================================================= restarts == */

TEST(reconnect_after_restart)
{
    struct storage *s = open_or_report(url, "restart");
    struct pg_store *ps;
    struct pg_conn *held[4];
    struct storage_op ops[2];
    struct capture cap;
    size_t rows = 0;
    bool fresh;
    int rc;

    CHECK(s != NULL);
    if (s == NULL)
        return;
    put_str(s, "k", "v");
    /* Four idle connections, all of which the restart will kill. */
    ps = s->ctx;
    for (int i = 0; i < 4; i++)
        held[i] = conn_get(ps, &fresh);
    for (int i = 0; i < 4; i++) {
        if (held[i] != NULL)
            conn_put(ps, held[i]);
    }
    CHECK_EQ_INT(ps->nidle, 4);
    CHECK_EQ_INT(pg_tool("pg_ctl -D %s/data -l %s/server.log -m fast -w "
                         "-t 60 restart", pg.dir, pg.dir), 0);
    /* Every operation works straight away: the dead pool is dropped. */
    capture_begin(&cap);
    CHECK(has(s, "k", "v"));
    capture_end(&cap);
    CHECK(strstr(cap.text, "retrying") != NULL);
    CHECK_EQ_INT(ps->nidle, 1);
    put_str(s, "k2", "v2");
    ops[0] = (struct storage_op){STORAGE_OP_PUT, "b/1", "1", 1};
    ops[1] = (struct storage_op){STORAGE_OP_DELETE, "k2", NULL, 0};
    CHECK_EQ_INT(storage_batch(s, ops, 2), 0);
    CHECK_LIST(s, "", "b/,k");

    /* Down: calls fail with words, quickly; back up: they work again. */
    CHECK_EQ_INT(pg_tool("pg_ctl -D %s/data -m fast -w -t 60 stop", pg.dir),
                 0);
    capture_begin(&cap);
    rc = storage_put(s, "k3", "v3", 2);
    capture_end(&cap);
    CHECK_EQ_INT(rc, COFFER_EIO);
    CHECK(strstr(cap.text, "storage/pg") != NULL);
    CHECK_EQ_INT(pg_start(), 0);
    put_str(s, "k3", "v3");
    CHECK_EQ_INT(storage_scan(s, "", scan_count_rows, &rows), 0);
    CHECK_EQ_INT(rows, 3);
    storage_free(s);
}

/* ====================================================== many keys == */

TEST(list_and_scan_many_keys)
{
    const char *env = getenv("COFFER_STORAGE_KEYS");
    int n = env != NULL ? (int)strtol(env, NULL, 10)
                        : under_valgrind ? 20000 : 200000;
    int nput = under_valgrind ? 1000 : 20000;
    struct storage *s = open_or_report(url, "many");
    struct storage_op *ops;
    char(*keys)[48];
    char sql[1024];
    struct strvec sv;
    double t0, t_put, t_fill, t_few, t_many, t_scan;
    size_t rows = 0;

    CHECK(s != NULL);
    if (s == NULL)
        return;
    /* Through the backend: nput keys in batches of 1000. */
    ops = xcalloc(1000, sizeof(*ops));
    keys = xcalloc(1000, sizeof(*keys));
    t0 = now();
    for (int b = 0; b < nput / 1000; b++) {
        for (int i = 0; i < 1000; i++) {
            snprintf(keys[i], sizeof(keys[i]), "put/%03d/%06d", i % 100,
                     b * 1000 + i);
            ops[i] = (struct storage_op){STORAGE_OP_PUT, keys[i],
                                         "0123456789abcdef", 16};
        }
        CHECK_EQ_INT(storage_batch(s, ops, 1000), 0);
    }
    t_put = now() - t0;
    free(keys);
    free(ops);

    /* The bulk straight in SQL; the backend only lists and scans it. */
    t0 = now();
    snprintf(sql, sizeof(sql),
             "INSERT INTO many (key, path, name, value) "
             "SELECT f || '/sub/' || k, f || '/sub/', k, "
             "'\\x0123456789abcdef0123456789abcdef'::bytea FROM ("
             " SELECT CASE WHEN i < %d THEN 'few/' || lpad((i %% 3)::text, "
             "4, '0') ELSE 'many/' || lpad((i %% 1000)::text, 4, '0') END "
             "AS f, lpad(i::text, 7, '0') AS k "
             " FROM generate_series(0, %d) i) g",
             n - n / 10, n - 1);
    CHECK_EQ_INT(sql_run(sql, NULL, 0), 0);
    CHECK_EQ_INT(sql_run("ANALYZE many", NULL, 0), 0);
    put_str(s, "few/leaf", "x");
    t_fill = now() - t0;

    strvec_init(&sv);
    t0 = now();
    CHECK_EQ_INT(storage_list(s, "few/", &sv), 0);
    t_few = now() - t0;
    CHECK_EQ_INT(sv.n, 4);
    if (sv.n == 4) {
        CHECK_STREQ(sv.v[0], "0000/");
        CHECK_STREQ(sv.v[3], "leaf");
    }
    strvec_release(&sv);

    strvec_init(&sv);
    t0 = now();
    CHECK_EQ_INT(storage_list(s, "many/", &sv), 0);
    t_many = now() - t0;
    CHECK_EQ_INT(sv.n, 1000);
    strvec_release(&sv);

    t0 = now();
    CHECK_EQ_INT(storage_scan(s, "", scan_count_rows, &rows), 0);
    t_scan = now() - t0;
    CHECK_EQ_INT(rows, (size_t)n + 1 + (size_t)nput);
    fprintf(stdout,
            "  %d puts in batches of 1000: %.2fs; bulk insert of %d keys "
            "%.2fs; "
            "list few/ (3 folders + 1 key) %.2fms; list many/ (1000 folders) "
            "%.1fms; scan all %zu rows %.2fs\n",
            nput, t_put, n, t_fill, t_few * 1e3, t_many * 1e3, rows, t_scan);
    storage_free(s);
}

TEST(cluster_setup)
{
    CHECK(pg.up);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    under_valgrind = getenv("VALGRIND") != NULL;
    if (cluster_up() != 0) {
        fprintf(stdout, "cannot start a scratch PostgreSQL in %s\n", pg.dir);
        show_logs();
    }
    RUN(cluster_setup);
    if (pg.up) {
        tcp_url(url, sizeof(url), PG_PASSWORD);
        contract = (struct contract_backend){"postgresql", fresh_pg, 2000};
        contract_run();
        RUN(table_names_are_validated);
        RUN(schema_as_designed);
        RUN(open_errors_are_words);
        RUN(data_survives_reopen);
        RUN(batch_rolls_back_on_sql_error);
        RUN(order_is_bytewise_under_icu);
        RUN(prefix_not_ending_in_slash);
        RUN(list_and_scan_many_keys);
        RUN(reconnect_after_restart);
    }
    cluster_down();
    return HARNESS_DONE();
}
