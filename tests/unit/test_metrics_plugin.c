/*
 * test_metrics_plugin.c - the Lua engines' counters: one series per name
 * and label set, long values cut (and still one series), the table
 * bounded with the overflow going to one "other" series, and concurrent
 * increments never lost.
 */
#include "../../src/metrics_plugin.c"

#include <pthread.h>

#include "harness.h"

struct found {
    const char *name;
    const char *value; /* of the last label, or NULL for any */
    uint64_t count;
    size_t series;
};

static void find(void *arg, const struct metrics_plugin_series *s)
{
    struct found *f = arg;

    f->series++;
    if (strcmp(s->name, f->name) != 0)
        return;
    if (f->value != NULL &&
        (s->nlabels == 0 || strcmp(s->value[s->nlabels - 1], f->value) != 0))
        return;
    f->count += s->count;
}

static struct found lookup(const char *name, const char *value)
{
    struct found f = {name, value, 0, 0};

    metrics_plugin_each(find, &f);
    return f;
}

TEST(same_labels_same_series)
{
    const char *keys[2] = {"mount", "role"};
    const char *a[2] = {"database/", "a"};
    const char *b[2] = {"database/", "b"};

    CHECK_EQ_INT(metrics_plugin_incr("t.same", 2, keys, a, 1), 0);
    CHECK_EQ_INT(metrics_plugin_incr("t.same", 2, keys, a, 2), 0);
    CHECK_EQ_INT(metrics_plugin_incr("t.same", 2, keys, b, 1), 0);
    CHECK_EQ_INT((int)lookup("t.same", "a").count, 3);
    CHECK_EQ_INT((int)lookup("t.same", "b").count, 1);
    CHECK_EQ_INT(metrics_plugin_incr("t.same", 5, keys, a, 1), -1);
    CHECK_EQ_INT(metrics_plugin_incr("t.same", -1, keys, a, 1), -1);
}

TEST(long_values_are_cut_into_one_series)
{
    char long1[300], long2[300];
    const char *keys[1] = {"role"};
    const char *v1[1] = {long1}, *v2[1] = {long2};
    size_t before = lookup("", NULL).series;

    memset(long1, 'x', sizeof(long1) - 1);
    long1[sizeof(long1) - 1] = '\0';
    memcpy(long2, long1, sizeof(long2));
    long2[200] = 'y'; /* differs past the kept prefix */
    metrics_plugin_incr("t.long", 1, keys, v1, 1);
    metrics_plugin_incr("t.long", 1, keys, v2, 1);
    CHECK_EQ_INT((int)(lookup("", NULL).series - before), 1);
    CHECK_EQ_INT((int)lookup("t.long", NULL).count, 2);
}

TEST(bounded_with_an_other_series)
{
    const char *keys[1] = {"n"};
    char v[16];
    const char *vals[1] = {v};

    for (int i = 0; i < METRICS_PLUGIN_MAX_SERIES + 50; i++) {
        snprintf(v, sizeof(v), "%d", i);
        metrics_plugin_incr("t.many", 1, keys, vals, 1);
    }
    CHECK_EQ_INT((int)lookup("", NULL).series,
                 METRICS_PLUGIN_MAX_SERIES + 1);
    CHECK(lookup("plugin.other", "other").count >= 50);
}

static void *bump(void *arg)
{
    const char *keys[1] = {"k"};
    const char *vals[1] = {"v"};

    (void)arg;
    for (int i = 0; i < 10000; i++)
        metrics_plugin_incr("t.race", 1, keys, vals, 1);
    return NULL;
}

/* Runs first: the table still has room. */
TEST(concurrent_increments)
{
    pthread_t th[4];

    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, bump, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ_INT((int)lookup("t.race", "v").count, 40000);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(concurrent_increments);
    RUN(same_labels_same_series);
    RUN(long_values_are_cut_into_one_series);
    RUN(bounded_with_an_other_series);
    return HARNESS_DONE();
}
