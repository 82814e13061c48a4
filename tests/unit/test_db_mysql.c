/*
 * test_db_mysql.c - the MySQL driver's pure parts: DSN parsing and
 * redaction, '?' placeholders, error classes, quoting. The server side is
 * tests/integration/test_database_mysql.py.
 */
#include "../../src/db_mysql.c"

#include "harness.h"

TEST(dsn_tcp_with_port_and_db)
{
    struct dsn d;
    const char *why = NULL;

    CHECK_EQ_INT(dsn_parse("bob:s3cret@tcp(db.example:3307)/app", &d, &why),
                 0);
    CHECK_STREQ(d.user, "bob");
    CHECK_STREQ(d.pass, "s3cret");
    CHECK_STREQ(d.host, "db.example");
    CHECK_EQ_INT(d.port, 3307);
    CHECK_STREQ(d.db, "app");
    CHECK_STREQ(d.charset, "utf8mb4");
    CHECK(d.socket == NULL);
    dsn_release(&d);
}

TEST(dsn_password_may_hold_colon_and_at)
{
    struct dsn d;
    const char *why = NULL;

    CHECK_EQ_INT(dsn_parse("u:p:a@ss@w@tcp(h)/", &d, &why), 0);
    CHECK_STREQ(d.user, "u");
    CHECK_STREQ(d.pass, "p:a@ss@w");
    CHECK_STREQ(d.host, "h");
    CHECK_EQ_INT(d.port, 3306);
    CHECK_STREQ(d.db, "");
    dsn_release(&d);
}

TEST(dsn_ipv6_unix_default)
{
    struct dsn d;
    const char *why = NULL;

    CHECK_EQ_INT(dsn_parse("u:p@tcp([::1]:3310)/x?tls=skip-verify", &d, &why),
                 0);
    CHECK_STREQ(d.host, "::1");
    CHECK_EQ_INT(d.port, 3310);
    CHECK_EQ_INT(d.tls, TLS_SKIP_VERIFY);
    dsn_release(&d);
    CHECK_EQ_INT(dsn_parse("u:p@unix(/run/my.sock)/x?charset=latin1", &d,
                           &why), 0);
    CHECK_STREQ(d.socket, "/run/my.sock");
    CHECK_STREQ(d.charset, "latin1");
    dsn_release(&d);
    CHECK_EQ_INT(dsn_parse("u@/x", &d, &why), 0);
    CHECK_STREQ(d.host, "127.0.0.1");
    CHECK(d.pass == NULL);
    dsn_release(&d);
}

TEST(dsn_refusals)
{
    static const char *bad[] = {
        "u:p@localhost:3306/", "u:p@tcp(h", "u:p@tcp(h:0)/",
        "u:p@tcp(h:99999)/", "u:p@tcp(h:12x)/", "u:p@tcp(h)",
        "u:p@unix(relative)/", "u:p@tcp(h)/?sql_mode=ANSI",
        "u:p@tcp(h)/?tls=maybe", "u:p@tcp(h)/?charset=a;b",
        "u:p@tcp(h)/?novalue", "u:p@tcp([::1)/", "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct dsn d;
        const char *why = NULL;
        CHECK(dsn_parse(bad[i], &d, &why) != 0);
        CHECK(why != NULL);
        /* The reason never quotes the string (it holds the password). */
        CHECK(why == NULL || strstr(why, "u:p") == NULL);
    }
}

TEST(redaction)
{
    char *r = dbmy_redact_dsn("root:hunter2@tcp(h:1)/db");

    CHECK_STREQ(r, "root:xxxxx@tcp(h:1)/db");
    secure_free_str(r);
    r = dbmy_redact_dsn("{{username}}:{{password}}@tcp(h:1)/");
    CHECK_STREQ(r, "{{username}}:{{password}}@tcp(h:1)/");
    secure_free_str(r);
    r = dbmy_redact_dsn("a:b@c@unix(/s)/");
    CHECK_STREQ(r, "a:xxxxx@unix(/s)/");
    secure_free_str(r);
    CHECK(dbmy_dsn_has_password("root:pw@tcp(h)/"));
    CHECK(!dbmy_dsn_has_password("root:{{password}}@tcp(h)/"));
    CHECK(!dbmy_dsn_has_password("root@tcp(h)/"));
    CHECK(!dbmy_dsn_has_password("root:@tcp(h)/"));
    CHECK(dbmy_looks_like_dsn("root:pw@tcp(h)/"));
    CHECK(dbmy_looks_like_dsn("unix(/s)/db"));
    CHECK(!dbmy_looks_like_dsn("postgresql://u:p@h/db"));
    /* libpq key/value strings whose password looks like a DSN's tail. */
    CHECK(!dbmy_looks_like_dsn("host=h password=p@/x"));
    CHECK(!dbmy_looks_like_dsn("password=p@tcp(h)/ host=h"));
    CHECK(!dbmy_looks_like_dsn("user=u password='a:b@unix(/s)/'"));
    CHECK(!dbmy_looks_like_dsn("host=h:1 password=p@/x"));
    CHECK(dbmy_looks_like_dsn("root:a=b@tcp(h)/"));
}

TEST(classes)
{
    CHECK_EQ_INT(classify(1213, false), DB_ERR_TRANSIENT);
    CHECK_EQ_INT(classify(1205, false), DB_ERR_TRANSIENT);
    CHECK_EQ_INT(classify(1045, true), DB_ERR_AUTH);
    CHECK_EQ_INT(classify(1045, false), DB_ERR_SQL);
    CHECK_EQ_INT(classify(2002, true), DB_ERR_UNREACHABLE);
    CHECK_EQ_INT(classify(2003, true), DB_ERR_UNREACHABLE);
    CHECK_EQ_INT(classify(2006, false), DB_ERR_UNREACHABLE);
    CHECK_EQ_INT(classify(2013, false), DB_ERR_UNREACHABLE);
    CHECK_EQ_INT(classify(1969, false), DB_ERR_TIMEOUT);
    CHECK_EQ_INT(classify(1317, false), DB_ERR_TIMEOUT);
    CHECK_EQ_INT(classify(1064, false), DB_ERR_SQL);
    CHECK_EQ_INT(classify(1396, false), DB_ERR_SQL);
}

/* A handle that can escape without a server: the charset set by hand. */
static struct dbmy_conn *offline_conn(void)
{
    struct dbmy_conn *c = xcalloc(1, sizeof(*c));

    pthread_once(&lib_once, lib_init);
    c->m = mysql_init(NULL);
    c->m->charset = mariadb_get_charset_by_name("utf8mb4");
    return c;
}

static void offline_close(struct dbmy_conn *c)
{
    mysql_close(c->m);
    free(c);
}

static char *interp(struct dbmy_conn *c, const char *sql, int n,
                    const char *const *p)
{
    struct db_error err;
    size_t len;

    return interpolate(c, sql, n, p, &len, &err);
}

TEST(placeholders)
{
    struct dbmy_conn *c = offline_conn();
    const char *p[] = {"x' OR '1'='1", NULL, "back\\slash"};
    char *s;

    /* Values become hex literals with their character set: hex digits
     * only, whatever quoting rules the session has. */
    s = interp(c, "SELECT ?, ?, ?", 3, p);
    CHECK_STREQ(s, "SELECT _utf8mb4 X'7827204f52202731273d2731', NULL, _utf8mb4 X'6261636b5c736c617368'");
    secure_free_str(s);
    /* '?' in strings, identifiers and comments is text. */
    s = interp(c, "SELECT '?', \"?\", `?`, 'it\\'s ?', ? -- ?\n# ?\n/* ? */"
                  " --\r?\n--\f?",
               1, p + 2);
    CHECK_STREQ(s, "SELECT '?', \"?\", `?`, 'it\\'s ?', _utf8mb4 X'6261636b5c736c617368' "
                    "-- ?\n# ?\n/* ? */ --\r?\n--\f?");
    secure_free_str(s);
    s = interp(c, "SELECT 1;  \n", 0, NULL);
    CHECK_STREQ(s, "SELECT 1;  \n");
    secure_free_str(s);
    /* Refusals: count mismatches and a second statement. */
    CHECK(interp(c, "SELECT ?", 0, NULL) == NULL);
    CHECK(interp(c, "SELECT ?", 2, p) == NULL);
    CHECK(interp(c, "SELECT 1; DROP USER x", 0, NULL) == NULL);
    CHECK(interp(c, "SELECT ?; DROP USER x", 1, p) == NULL);
    s = interp(c, "SELECT ';'", 0, NULL);
    CHECK_STREQ(s, "SELECT ';'");
    secure_free_str(s);
    offline_close(c);
}

TEST(placeholders_in_executable_comments)
{
    struct dbmy_conn *c = offline_conn();
    const char *p[] = {"a", "b"};
    char *s;

    /* The server runs what is inside /x! ..x/ and /x M! ..x/: a '?' there
     * is a placeholder; in a plain comment it is text. */
    s = interp(c, "SELECT 1 /*! , ? */ /*M! , ? */ /* ? */", 2, p);
    CHECK_STREQ(s, "SELECT 1 /*! , _utf8mb4 X'61' */ /*M! , _utf8mb4 X'62' */ /* ? */");
    secure_free_str(s);
    /* A quote inside one is a quote: the '?' after it is in a string. */
    s = interp(c, "SELECT /*! '?' */ ?", 1, p);
    CHECK_STREQ(s, "SELECT /*! '?' */ _utf8mb4 X'61'");
    secure_free_str(s);
    /* Whether the server runs a version-gated one depends on its own
     * version rules: a '?' in one is refused. */
    CHECK(interp(c, "SELECT 1 /*!99999 , ? */", 1, p) == NULL);
    CHECK(interp(c, "SELECT 1 /*M!100100 , ? */", 1, p) == NULL);
    s = interp(c, "SELECT 1 /*!50100 , 2 */, ?", 1, p);
    CHECK_STREQ(s, "SELECT 1 /*!50100 , 2 */, _utf8mb4 X'61'");
    secure_free_str(s);
    /* ...and a second statement inside one is still refused. */
    CHECK(interp(c, "SELECT 1 /*! ; DROP USER x */", 0, NULL) == NULL);
    offline_close(c);
}

TEST(placeholders_without_backslash_escapes)
{
    struct dbmy_conn *c = offline_conn();
    const char *p[] = {"x' OR '1'='1", "b\\"};
    char *s;

    /* With NO_BACKSLASH_ESCAPES 'a\' is a whole string: the '?' after it
     * is a placeholder. */
    c->m->server_status |= SERVER_STATUS_NO_BACKSLASH_ESCAPES;
    s = interp(c, "SELECT 'a\\', ?, ?", 2, p);
    CHECK_STREQ(s, "SELECT 'a\\', _utf8mb4 X'7827204f52202731273d2731', _utf8mb4 X'625c'");
    secure_free_str(s);
    c->m->server_status &= ~SERVER_STATUS_NO_BACKSLASH_ESCAPES;
    /* With backslash escapes the same text is one unfinished string. */
    CHECK(interp(c, "SELECT 'a\\', ?, ?", 2, p) == NULL);
    offline_close(c);
}

TEST(quoting)
{
    struct dbmy_conn *c = offline_conn();
    struct db_error err;
    char *s;

    s = dbmy_escape(c, "a`b", 3, false, &err);
    CHECK_STREQ(s, "`a``b`");
    secure_free_str(s);
    s = dbmy_escape(c, "o'k", 3, true, &err);
    CHECK_STREQ(s, "'o\\'k'");
    secure_free_str(s);
    CHECK(dbmy_escape(c, "a\0b", 3, false, &err) == NULL);
    offline_close(c);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(dsn_tcp_with_port_and_db);
    RUN(dsn_password_may_hold_colon_and_at);
    RUN(dsn_ipv6_unix_default);
    RUN(dsn_refusals);
    RUN(redaction);
    RUN(classes);
    RUN(placeholders);
    RUN(placeholders_in_executable_comments);
    RUN(placeholders_without_backslash_escapes);
    RUN(quoting);
    return HARNESS_DONE();
}
