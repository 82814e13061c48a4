/*
 * test_storage_pg_notify.c - the change channel's payloads: a batch's
 * keys split over payloads under PostgreSQL's limit (every key once, in
 * order, none cut), and the flush marker only for what cannot be listed.
 */
#include "../../src/storage_pg_notify.c"

#include "harness.h"

/* The keys of a notify parameter, payloads and keys split apart; checks
 * every payload's size on the way. */
static void split_all(const char *param, struct strvec *keys,
                      size_t *npayloads)
{
    char *copy = xstrdup(param);
    char *save = NULL;

    *npayloads = 0;
    for (char *p = strtok_r(copy, PG_NOTIFY_SEP, &save); p != NULL;
         p = strtok_r(NULL, PG_NOTIFY_SEP, &save)) {
        char *ksave = NULL;

        (*npayloads)++;
        CHECK(strlen(p) <= PG_NOTIFY_MAX);
        CHECK(p[0] != '\001');
        for (char *k = strtok_r(p, "\n", &ksave); k != NULL;
             k = strtok_r(NULL, "\n", &ksave))
            strvec_push(keys, k);
    }
    free(copy);
}

static char *key_of(size_t i, size_t len)
{
    char *k = xmalloc(len + 1);

    memset(k, 'a' + (int)(i % 26), len);
    snprintf(k, len + 1, "sys/expire/id/%zu/", i);
    k[strlen(k)] = 'x';
    k[len] = '\0';
    return k;
}

static void check_batch(size_t n, size_t len, size_t want_payloads)
{
    struct storage_op *ops = xcalloc(n, sizeof(*ops));
    struct strvec keys;
    size_t np = 0;
    char *param;

    strvec_init(&keys);
    for (size_t i = 0; i < n; i++) {
        ops[i].kind = i % 2 ? STORAGE_OP_DELETE : STORAGE_OP_PUT;
        ops[i].key = key_of(i, len);
    }
    param = pg_notify_batch_payloads(ops, n);
    split_all(param, &keys, &np);
    CHECK_EQ_INT(np, want_payloads);
    CHECK_EQ_INT(keys.n, n);
    for (size_t i = 0; i < n && i < keys.n; i++)
        CHECK_STREQ(keys.v[i], ops[i].key);
    for (size_t i = 0; i < n; i++)
        free((char *)ops[i].key);
    free(ops);
    free(param);
    strvec_release(&keys);
}

TEST(one_payload_for_a_small_batch)
{
    check_batch(1, 30, 1);
    check_batch(64, 100, 1); /* 64 * 101 - 1 < 7000 */
}

TEST(a_large_batch_goes_as_several_payloads)
{
    /* 128 keys of 120 bytes: 58 fit in one payload (58 * 121 - 1). */
    check_batch(128, 120, 3);
    check_batch(1000, 200, (1000 + 33) / 34); /* 34 * 201 - 1 */
    /* Keys as long as a payload: one each. */
    check_batch(5, PG_NOTIFY_MAX, 5);
    check_batch(4, PG_NOTIFY_MAX - 1, 4);
}

TEST(what_cannot_be_listed_flushes)
{
    struct storage_op ops[3] = {{.kind = STORAGE_OP_PUT, .key = "a"},
                                {.kind = STORAGE_OP_PUT, .key = "b\001c"},
                                {.kind = STORAGE_OP_PUT, .key = "d"}};
    char *long_key = key_of(1, PG_NOTIFY_MAX + 1);
    char *p;

    p = pg_notify_batch_payloads(ops, 3);
    CHECK_STREQ(p, PG_NOTIFY_FLUSH);
    free(p);
    ops[1].key = "b\036c"; /* the separator itself */
    p = pg_notify_batch_payloads(ops, 3);
    CHECK_STREQ(p, PG_NOTIFY_FLUSH);
    free(p);
    ops[1].key = long_key;
    p = pg_notify_batch_payloads(ops, 3);
    CHECK_STREQ(p, PG_NOTIFY_FLUSH);
    free(p);
    ops[1].key = "";
    p = pg_notify_batch_payloads(ops, 3);
    CHECK_STREQ(p, PG_NOTIFY_FLUSH);
    free(p);
    CHECK_STREQ(pg_notify_key_payload(long_key), PG_NOTIFY_FLUSH);
    CHECK_STREQ(pg_notify_key_payload("k\n"), PG_NOTIFY_FLUSH);
    CHECK_STREQ(pg_notify_key_payload("core/mounts"), "core/mounts");
    free(long_key);
}

TEST(a_batch_beyond_the_total_flushes)
{
    size_t n = PG_NOTIFY_TOTAL_MAX / 100 + 1;
    struct storage_op *ops = xcalloc(n, sizeof(*ops));
    char *p;

    for (size_t i = 0; i < n; i++)
        ops[i].key = key_of(i, 100);
    p = pg_notify_batch_payloads(ops, n);
    CHECK_STREQ(p, PG_NOTIFY_FLUSH);
    free(p);
    for (size_t i = 0; i < n; i++)
        free((char *)ops[i].key);
    free(ops);
}

TEST(sync_payload_and_channel)
{
    char *p = pg_notify_sync_payload("node:1");
    char ch[64];

    CHECK_STREQ(p, "\001sync node:1");
    free(p);
    CHECK(pg_notify_sync_payload("a\036b") == NULL);
    CHECK(pg_notify_sync_payload("") == NULL);
    pg_notify_channel_name("coffer_kv", ch);
    CHECK_STREQ(ch, "coffer_kv_changes");
    pg_notify_channel_name("s2345678901234567890123456789.t234567890123456789"
                           "0123456789", ch);
    CHECK(strncmp(ch, "coffer_changes_", 15) == 0);
    CHECK_EQ_INT(strlen(ch), 15 + 16);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(one_payload_for_a_small_batch);
    RUN(a_large_batch_goes_as_several_payloads);
    RUN(what_cannot_be_listed_flushes);
    RUN(a_batch_beyond_the_total_flushes);
    RUN(sync_payload_and_channel);
    return HARNESS_DONE();
}
