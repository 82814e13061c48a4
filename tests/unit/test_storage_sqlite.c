/*
 * test_storage_sqlite.c - the sqlite backend against real files.
 *
 * Runs the shared contract (storage_contract.h) with a new database file
 * per case, then what only a file-backed store has: the data survives a
 * close and reopen, and a kill -9 in the middle of writes; the file and
 * its WAL companions are mode 0600; WAL and synchronous=FULL are really
 * on; sqlite's own words reach the log when a statement fails inside a
 * batch (which then leaves nothing behind); group commit (concurrent
 * writers sharing a commit, failures inside a group, kill -9 under many
 * writing threads). Timings for listing and scanning a large tree, for 8
 * threads and writes per commit are printed, not asserted.
 *
 * Everything lives in a mkdtemp directory removed at exit. With
 * VALGRIND=1 in the environment (make valgrind) the large cases shrink.
 */
#include "../../src/storage_sqlite.c"

#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>

#include "storage_contract.h"

static char tmpdir[64];
static int fresh_count;
static bool under_valgrind;

/* ========================================================= helpers == */

static void remove_tmpdir(void)
{
    char cmd[128];

    if (tmpdir[0] == '\0')
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stdout, "cannot remove %s\n", tmpdir);
}

/* A path for a new database file in the test directory. */
static void new_path(char *out, size_t n)
{
    snprintf(out, n, "%s/db%d.sqlite", tmpdir, ++fresh_count);
}

static struct storage *open_or_report(const char *path)
{
    struct errbuf err;
    struct storage *s;

    errbuf_clear(&err);
    s = storage_sqlite_open(path, &err);
    if (s == NULL)
        fprintf(stdout, "  storage_sqlite_open(%s): %s\n", path, err.msg);
    return s;
}

static struct storage *fresh_sqlite(void)
{
    char path[128];

    new_path(path, sizeof(path));
    return open_or_report(path);
}

static int file_mode(const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return -1;
    return (int)(st.st_mode & 0777);
}

/* Runs sql on its own connection and returns the first cell as text. */
static void query_text(const char *path, const char *sql, char *out, size_t n)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;

    snprintf(out, n, "(error)");
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static int exec_on(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc;

    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

/* ========================================================== files == */

TEST(file_is_private)
{
    char path[128], side[160];
    mode_t old = umask(0);
    struct storage *s;

    new_path(path, sizeof(path));
    s = open_or_report(path);
    umask(old);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    put_str(s, "k", "v");
    CHECK_EQ_INT(file_mode(path), 0600);
    snprintf(side, sizeof(side), "%s-wal", path);
    CHECK_EQ_INT(file_mode(side), 0600);
    snprintf(side, sizeof(side), "%s-shm", path);
    CHECK_EQ_INT(file_mode(side), 0600);
    storage_free(s);
}

TEST(wal_and_full_sync)
{
    char path[128], text[64];
    struct storage *s;
    struct sq_store *ss;

    new_path(path, sizeof(path));
    s = open_or_report(path);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    query_text(path, "PRAGMA journal_mode", text, sizeof(text));
    CHECK_STREQ(text, "wal");
    query_text(path, "PRAGMA user_version", text, sizeof(text));
    CHECK_STREQ(text, "1");
    /* synchronous is per connection: ask one of the store's own. */
    ss = s->ctx;
    CHECK(ss->idle != NULL);
    if (ss->idle != NULL) {
        sqlite3_stmt *st = NULL;

        CHECK_EQ_INT(sqlite3_prepare_v2(ss->idle->db, "PRAGMA synchronous",
                                        -1, &st, NULL), SQLITE_OK);
        CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
        CHECK_EQ_INT(sqlite3_column_int(st, 0), 2); /* FULL */
        sqlite3_finalize(st);
    }
    storage_free(s);
}

TEST(data_survives_reopen)
{
    char path[128];
    struct storage *s;
    struct storage_op ops[2];

    new_path(path, sizeof(path));
    s = open_or_report(path);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    put_str(s, "core/mounts", "m");
    put_str(s, "logical/a/b", "deep");
    ops[0] = (struct storage_op){STORAGE_OP_PUT, "batch/1", "one", 3};
    ops[1] = (struct storage_op){STORAGE_OP_PUT, "batch/2", "\0two", 4};
    CHECK_EQ_INT(storage_batch(s, ops, 2), 0);
    storage_free(s);

    s = open_or_report(path);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK(has(s, "core/mounts", "m"));
    CHECK(has(s, "logical/a/b", "deep"));
    CHECK(has(s, "batch/1", "one"));
    CHECK_LIST(s, "", "batch/,core/,logical/");
    put_str(s, "after", "reopen");
    storage_free(s);

    /* Twice, and with another store open on the same file meanwhile. */
    s = open_or_report(path);
    if (s != NULL) {
        struct storage *t = open_or_report(path);

        CHECK(t != NULL);
        if (t != NULL) {
            put_str(t, "from/t", "x");
            CHECK(has(s, "from/t", "x"));
            storage_free(t);
        }
        CHECK(has(s, "after", "reopen"));
        storage_free(s);
    }
}

TEST(open_errors_are_words)
{
    char path[128];
    struct errbuf err;
    FILE *f;

    errbuf_clear(&err);
    snprintf(path, sizeof(path), "%s/no/such/dir/db", tmpdir);
    CHECK(storage_sqlite_open(path, &err) == NULL);
    CHECK(strstr(err.msg, "no/such/dir") != NULL);
    CHECK(strstr(err.msg, "No such file") != NULL);

    errbuf_clear(&err);
    CHECK(storage_sqlite_open("", &err) == NULL);
    CHECK(err.msg[0] != '\0');

    /* Not a database: sqlite's message comes through. */
    new_path(path, sizeof(path));
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    for (int i = 0; i < 200; i++)
        fputs("this is not an sqlite database at all. ", f);
    fclose(f);
    errbuf_clear(&err);
    CHECK(storage_sqlite_open(path, &err) == NULL);
    CHECK(strstr(err.msg, "not a database") != NULL);
    if (strstr(err.msg, "not a database") == NULL)
        fprintf(stdout, "  got: %s\n", err.msg);

    /* A file from a newer Coffer is refused rather than misread. */
    new_path(path, sizeof(path));
    CHECK_EQ_INT(exec_on(path, "PRAGMA user_version = 99"), SQLITE_CANTOPEN);
    f = fopen(path, "w");
    if (f != NULL)
        fclose(f);
    CHECK_EQ_INT(exec_on(path, "PRAGMA user_version = 99"), SQLITE_OK);
    errbuf_clear(&err);
    CHECK(storage_sqlite_open(path, &err) == NULL);
    CHECK(strstr(err.msg, "schema version 99") != NULL);
}

/* ================================================= failure inside == */

TEST(batch_rolls_back_on_sql_error)
{
    char path[128];
    struct storage *s;
    struct storage_op ops[4];
    struct capture cap;
    int rc;

    new_path(path, sizeof(path));
    s = open_or_report(path);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    put_str(s, "a", "before");
    put_str(s, "b", "before");
    /* A trigger makes the third op fail inside sqlite, mid-transaction. */
    CHECK_EQ_INT(exec_on(path, "CREATE TRIGGER poison BEFORE INSERT ON "
                               "coffer_kv WHEN NEW.key = 'poison' BEGIN "
                               "SELECT RAISE(ABORT, 'poisoned key'); END"),
                 SQLITE_OK);
    ops[0] = (struct storage_op){STORAGE_OP_PUT, "a", "after", 5};
    ops[1] = (struct storage_op){STORAGE_OP_DELETE, "b", NULL, 0};
    ops[2] = (struct storage_op){STORAGE_OP_PUT, "poison", "x", 1};
    ops[3] = (struct storage_op){STORAGE_OP_PUT, "z", "x", 1};
    capture_begin(&cap);
    rc = storage_batch(s, ops, 4);
    capture_end(&cap);
    CHECK_EQ_INT(rc, COFFER_EIO);
    CHECK(strstr(cap.text, "poisoned key") != NULL);
    CHECK(strstr(cap.text, "poison") != NULL);
    CHECK(has(s, "a", "before"));
    CHECK(has(s, "b", "before"));
    CHECK(missing(s, "poison"));
    CHECK(missing(s, "z"));

    /* A single put reports the same way and the store goes on working. */
    capture_begin(&cap);
    rc = storage_put(s, "poison", "x", 1);
    capture_end(&cap);
    CHECK_EQ_INT(rc, COFFER_EIO);
    CHECK(strstr(cap.text, "poisoned key") != NULL);
    CHECK_EQ_INT(storage_batch(s, ops, 2), 0);
    CHECK(has(s, "a", "after"));
    CHECK(missing(s, "b"));
    storage_free(s);
}

TEST(prefix_successor_edges)
{
    char *hi;
    FRESH(s);

    hi = prefix_successor("ab/");
    CHECK_STREQ(hi, "ab0");
    free(hi);
    hi = prefix_successor("a\xff\xff");
    CHECK_STREQ(hi, "b");
    free(hi);
    CHECK(prefix_successor("\xff\xff") == NULL);
    CHECK(prefix_successor("") == NULL);

    /* Keys with 0xff bytes list and scan within their prefix. */
    put_str(s, "x\xff/a", "1");
    put_str(s, "x\xff\xff", "2");
    put_str(s, "x\xff", "3");
    put_str(s, "y", "4");
    put_str(s, "\xff\xff/z", "5");
    CHECK_LIST(s, "x\xff", ",/,\xff");
    CHECK_SCAN(s, "x\xff", "x\xff=3,x\xff/a=1,x\xff\xff=2");
    CHECK_SCAN(s, "\xff\xff", "\xff\xff/z=5");
    CHECK_LIST(s, "\xff\xff/", "z");
    storage_free(s);
}

/* ========================================================= kill -9 == */

/*
 * The child writes keys in order, one put or batch per commit, and after
 * each acknowledged commit tells the parent its number through a pipe.
 * The parent kills it at a random moment. After reopening, every
 * acknowledged write must be there, each batch must be whole or absent,
 * and sqlite's integrity check must pass.
 */
static void crash_child(const char *path, int fd)
{
    struct errbuf err;
    struct storage *s = storage_sqlite_open(path, &err);
    char key[3][64], val[32];

    if (s == NULL)
        _exit(3);
    for (int i = 0;; i++) {
        int rc;

        snprintf(val, sizeof(val), "v%d", i);
        if (i % 3 == 0) {
            struct storage_op ops[3];

            for (int j = 0; j < 3; j++) {
                snprintf(key[j], sizeof(key[j]), "b/%06d/%d", i, j);
                ops[j] = (struct storage_op){STORAGE_OP_PUT, key[j], val,
                                             strlen(val)};
            }
            rc = storage_batch(s, ops, 3);
        } else {
            snprintf(key[0], sizeof(key[0]), "k/%06d", i);
            rc = storage_put(s, key[0], val, strlen(val));
        }
        if (rc != 0 || write(fd, &i, sizeof(i)) != (ssize_t)sizeof(i))
            _exit(4);
    }
}

struct crash_check {
    int acked;
    int max_seen;
    int missing;
    int torn;
};

static int crash_visit(void *arg, const char *key, const void *value,
                       size_t len)
{
    struct crash_check *c = arg;
    int i = (int)strtol(key + 2, NULL, 10);

    (void)value;
    (void)len;
    if (i > c->max_seen)
        c->max_seen = i;
    return 0;
}

static void crash_round(unsigned seed)
{
    char path[128], text[64], key[64];
    int fds[2], st, last = -1, n;
    struct crash_check c;
    struct storage *s;
    pid_t pid;

    new_path(path, sizeof(path));
    if (pipe(fds) != 0) {
        CHECK(0);
        return;
    }
    pid = fork();
    if (pid == 0) {
        close(fds[0]);
        crash_child(path, fds[1]);
    }
    close(fds[1]);
    srand(seed);
    n = 20 + rand() % 300;
    while (last < n && read(fds[0], &last, sizeof(last)) == sizeof(last))
        ;
    usleep((useconds_t)(rand() % 3000));
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st));
    /* Acks written before the kill are still in the pipe. */
    while (read(fds[0], &n, sizeof(n)) == sizeof(n))
        last = n;
    close(fds[0]);

    s = open_or_report(path);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    memset(&c, 0, sizeof(c));
    c.acked = last;
    for (int i = 0; i <= last + 1; i++) {
        int found = 0;

        if (i % 3 == 0) {
            for (int j = 0; j < 3; j++) {
                snprintf(key, sizeof(key), "b/%06d/%d", i, j);
                found += !missing(s, key);
            }
            if (found != 0 && found != 3)
                c.torn++;
        } else {
            snprintf(key, sizeof(key), "k/%06d", i);
            found = !missing(s, key);
        }
        if (i <= last && found == 0)
            c.missing++;
    }
    CHECK_EQ_INT(storage_scan(s, "k/", crash_visit, &c), 0);
    CHECK_EQ_INT(c.missing, 0);
    CHECK_EQ_INT(c.torn, 0);
    /* At most the one write in flight when the kill landed is extra. */
    CHECK(c.max_seen <= last + 1);
    storage_free(s);
    query_text(path, "PRAGMA integrity_check", text, sizeof(text));
    CHECK_STREQ(text, "ok");
}

TEST(kill_9_loses_no_acknowledged_write)
{
    int rounds = under_valgrind ? 2 : 8;

    for (int r = 0; r < rounds; r++)
        crash_round((unsigned)(r * 7919 + 17));
}

/* ====================================================== many keys == */

static int count_rows(void *arg, const char *key, const void *value,
                      size_t len)
{
    size_t *n = arg;

    (void)key;
    (void)value;
    (void)len;
    (*n)++;
    return 0;
}

/* Writes n keys "pfx<folder>/<i>" in batches of 5000, spread over folders. */
static int fill(struct storage *s, const char *pfx, int n, int folders)
{
    enum { CHUNK = 5000 };
    struct storage_op *ops = xcalloc(CHUNK, sizeof(*ops));
    char(*keys)[64] = xcalloc(CHUNK, sizeof(*keys));
    int rc = 0;

    for (int base = 0; rc == 0 && base < n; base += CHUNK) {
        int m = n - base < CHUNK ? n - base : CHUNK;

        for (int i = 0; i < m; i++) {
            int k = base + i;

            snprintf(keys[i], sizeof(keys[i]), "%s%04d/sub/%07d", pfx,
                     k % folders, k);
            ops[i] = (struct storage_op){STORAGE_OP_PUT, keys[i],
                                         "0123456789abcdef0123456789abcdef",
                                         32};
        }
        rc = storage_batch(s, ops, (size_t)m);
    }
    free(keys);
    free(ops);
    return rc;
}

TEST(list_and_scan_many_keys)
{
    const char *env = getenv("COFFER_STORAGE_KEYS");
    int n = env != NULL ? (int)strtol(env, NULL, 10)
                        : under_valgrind ? 20000 : 200000;
    struct strvec sv;
    double t0, t_fill, t_few, t_many, t_scan;
    size_t rows = 0;

    FRESH(s);
    t0 = now();
    /* Three folders hold almost everything; "many/" has 1000 folders. */
    CHECK_EQ_INT(fill(s, "few/", n - n / 10, 3), 0);
    CHECK_EQ_INT(fill(s, "many/", n / 10, 1000), 0);
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
    CHECK_EQ_INT(storage_scan(s, "", count_rows, &rows), 0);
    t_scan = now() - t0;
    CHECK_EQ_INT(rows, (size_t)n + 1);
    fprintf(stdout,
            "  %d keys: insert %.2fs (batches of 5000), list few/ (3 "
            "folders + 1 key) %.3fms, list many/ (1000 folders) %.2fms, "
            "scan all %.2fs\n",
            n, t_fill, t_few * 1e3, t_many * 1e3, t_scan);
    storage_free(s);
}

/* 8 threads, 90% gets and 10% puts over a shared key set. */
struct bench_arg {
    struct storage *s;
    int id;
    int ops;
    int errors;
};

static void *bench_main(void *arg)
{
    struct bench_arg *b = arg;
    unsigned seed = (unsigned)b->id * 2654435761u;
    char key[32];
    struct buf out;

    buf_init(&out, BUF_MAX_DEFAULT);
    for (int i = 0; i < b->ops; i++) {
        int k = rand_r(&seed) % 10000;

        snprintf(key, sizeof(key), "bench/%05d", k);
        if (i % 10 == 0) {
            if (storage_put(b->s, key, "new-value", 9) != 0)
                b->errors++;
        } else {
            buf_reset(&out);
            if (storage_get(b->s, key, &out) != 0)
                b->errors++;
        }
    }
    buf_release(&out);
    return NULL;
}

TEST(bench_threads)
{
    enum { THREADS = 8 };
    int per = under_valgrind ? 200 : 5000;
    pthread_t th[THREADS];
    struct bench_arg a[THREADS];
    double t0, dt;

    FRESH(s);
    {
        struct storage_op ops[1000];
        char keys[1000][32];

        for (int b = 0; b < 10; b++) {
            for (int i = 0; i < 1000; i++) {
                snprintf(keys[i], sizeof(keys[i]), "bench/%05d", b * 1000 + i);
                ops[i] = (struct storage_op){STORAGE_OP_PUT, keys[i], "v", 1};
            }
            CHECK_EQ_INT(storage_batch(s, ops, 1000), 0);
        }
    }
    t0 = now();
    for (int i = 0; i < THREADS; i++) {
        a[i] = (struct bench_arg){s, i, per, 0};
        CHECK_EQ_INT(pthread_create(&th[i], NULL, bench_main, &a[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(a[i].errors, 0);
    }
    dt = now() - t0;
    fprintf(stdout, "  8 threads x %d ops (90%% get, 10%% put): %.2fs, "
            "%.0f ops/s, %zu connections idle\n", per, dt,
            THREADS * per / dt, ((struct sq_store *)s->ctx)->nidle);
    storage_free(s);
}

/* Concurrent batches wait for each other (busy_timeout), never fail. */
struct batcher {
    struct storage *s;
    int id;
    int errors;
};

static void *batcher_main(void *arg)
{
    struct batcher *b = arg;
    char keys[5][48];
    struct storage_op ops[5];

    for (int i = 0; i < 100; i++) {
        for (int j = 0; j < 5; j++) {
            snprintf(keys[j], sizeof(keys[j]), "cb/%d/%03d/%d", b->id, i, j);
            ops[j] = (struct storage_op){STORAGE_OP_PUT, keys[j], "v", 1};
        }
        if (storage_batch(b->s, ops, 5) != 0)
            b->errors++;
    }
    return NULL;
}

TEST(concurrent_batches_from_two_stores)
{
    enum { THREADS = 8 };
    char path[128];
    struct storage *s[2];
    pthread_t th[THREADS];
    struct batcher b[THREADS];
    size_t rows = 0;

    new_path(path, sizeof(path));
    s[0] = open_or_report(path);
    s[1] = open_or_report(path);
    CHECK(s[0] != NULL && s[1] != NULL);
    if (s[0] == NULL || s[1] == NULL) {
        storage_free(s[0]);
        storage_free(s[1]);
        return;
    }
    for (int i = 0; i < THREADS; i++) {
        b[i] = (struct batcher){s[i % 2], i, 0};
        CHECK_EQ_INT(pthread_create(&th[i], NULL, batcher_main, &b[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(b[i].errors, 0);
    }
    CHECK_EQ_INT(storage_scan(s[0], "cb/", count_rows, &rows), 0);
    CHECK_EQ_INT(rows, THREADS * 100 * 5);
    storage_free(s[0]);
    storage_free(s[1]);
}

/* ==================================================== group commit == */

/*
 * Concurrent writers share one transaction and one fsync (see the top of
 * storage_sqlite.c). What must hold: every acknowledged put, delete and
 * batch is readable by its writer right after the ack and by everyone
 * after, under 16 threads mixing distinct and shared keys; a batch that
 * fails inside a group leaves none of its ops and costs the other writers
 * of that group nothing (the group is formed on purpose: an outside
 * connection holds sqlite's write lock while the writers queue up); a
 * kill -9 of a process with 8 writing threads, at a random moment, 24
 * times, loses no acknowledged write and tears no batch; commits per write
 * drop under concurrency (the store's own counters) while a lone writer
 * still commits alone.
 */

static void counters(struct storage *s, uint64_t *commits, uint64_t *writes)
{
    struct sq_store *ss = s->ctx;

    pthread_mutex_lock(&ss->gc_lock);
    *commits = ss->n_commits;
    *writes = ss->n_writes;
    pthread_mutex_unlock(&ss->gc_lock);
}

static size_t queued(struct storage *s)
{
    struct sq_store *ss = s->ctx;
    size_t n = 0;

    pthread_mutex_lock(&ss->gc_lock);
    for (struct sq_writer *w = ss->q_head; w != NULL; w = w->next)
        n++;
    pthread_mutex_unlock(&ss->gc_lock);
    return n;
}

/* Failing writes log sqlite's words; keep them off the test output. */
static int quiet_begin(void)
{
    int saved = dup(2), devnull = open("/dev/null", O_WRONLY);

    if (devnull != -1) {
        dup2(devnull, 2);
        close(devnull);
    }
    return saved;
}

static void quiet_end(int saved)
{
    if (saved == -1)
        return;
    dup2(saved, 2);
    close(saved);
}

/* =========================================== many threads, mixed == */

enum { MIX_THREADS = 16, HOT_KEYS = 8 };

struct mixer {
    struct storage *s;
    int id;
    int rounds;
    int errors;    /* a write that failed, or a read after its ack that
                      did not see it */
    char hot_last[HOT_KEYS][32]; /* this thread's last value per hot key */
};

/*
 * Round i of thread t: a put of "m/t/i", a batch of "mb/t/i/{0,1,2}" plus
 * a shared hot key, and a delete of the put of round i-1 when i is odd.
 * Each write is read back right after its ack.
 */
static void *mixer_main(void *arg)
{
    struct mixer *m = arg;
    char key[64], bkeys[4][64], val[32];
    struct storage_op ops[4];

    for (int i = 0; i < m->rounds; i++) {
        int hot = (m->id + i) % HOT_KEYS;

        snprintf(key, sizeof(key), "m/%02d/%05d", m->id, i);
        snprintf(val, sizeof(val), "v%d.%d", m->id, i);
        if (storage_put(m->s, key, val, strlen(val)) != 0 ||
            !has(m->s, key, val))
            m->errors++;
        for (int j = 0; j < 3; j++) {
            snprintf(bkeys[j], sizeof(bkeys[j]), "mb/%02d/%05d/%d", m->id,
                     i, j);
            ops[j] = (struct storage_op){STORAGE_OP_PUT, bkeys[j], val,
                                         strlen(val)};
        }
        snprintf(bkeys[3], sizeof(bkeys[3]), "hot/%d", hot);
        ops[3] = (struct storage_op){STORAGE_OP_PUT, bkeys[3], val,
                                     strlen(val)};
        if (storage_batch(m->s, ops, 4) != 0 || !has(m->s, bkeys[2], val))
            m->errors++;
        snprintf(m->hot_last[hot], sizeof(m->hot_last[hot]), "%s", val);
        if (i % 2 == 1) {
            snprintf(key, sizeof(key), "m/%02d/%05d", m->id, i - 1);
            if (storage_delete(m->s, key) != 0 || !missing(m->s, key))
                m->errors++;
        }
    }
    return NULL;
}

TEST(mixed_writers_see_every_ack)
{
    int rounds = under_valgrind ? 10 : 60;
    char path[128], key[64], val[32];
    struct mixer m[MIX_THREADS];
    pthread_t th[MIX_THREADS];
    uint64_t commits, writes;
    struct storage *s;
    int lost = 0, bad_hot = 0;

    new_path(path, sizeof(path));
    s = open_or_report(path);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    for (int t = 0; t < MIX_THREADS; t++) {
        m[t] = (struct mixer){.s = s, .id = t, .rounds = rounds};
        CHECK_EQ_INT(pthread_create(&th[t], NULL, mixer_main, &m[t]), 0);
    }
    for (int t = 0; t < MIX_THREADS; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_INT(m[t].errors, 0);
    }
    counters(s, &commits, &writes);
    storage_free(s);

    /* After a reopen: every acknowledged state, from the file. */
    s = open_or_report(path);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    for (int t = 0; t < MIX_THREADS; t++) {
        for (int i = 0; i < rounds; i++) {
            snprintf(val, sizeof(val), "v%d.%d", t, i);
            snprintf(key, sizeof(key), "m/%02d/%05d", t, i);
            /* The last round's put of an even round is never deleted. */
            if (i % 2 == 1 || i == rounds - 1 ? !has(s, key, val)
                                              : !missing(s, key))
                lost++;
            for (int j = 0; j < 3; j++) {
                snprintf(key, sizeof(key), "mb/%02d/%05d/%d", t, i, j);
                lost += !has(s, key, val);
            }
        }
    }
    /* A shared key ends with some thread's last write to it. */
    for (int h = 0; h < HOT_KEYS; h++) {
        int found = 0;

        snprintf(key, sizeof(key), "hot/%d", h);
        for (int t = 0; t < MIX_THREADS; t++)
            found += m[t].hot_last[h][0] != '\0' &&
                     has(s, key, m[t].hot_last[h]);
        bad_hot += found != 1;
    }
    CHECK_EQ_INT(lost, 0);
    CHECK_EQ_INT(bad_hot, 0);
    CHECK_EQ_INT(writes, (uint64_t)MIX_THREADS * rounds * 5 / 2);
    CHECK(commits <= writes);
    fprintf(stdout, "  %d threads: %llu writes in %llu commits (%.2f per "
            "commit)\n", MIX_THREADS, (unsigned long long)writes,
            (unsigned long long)commits,
            commits > 0 ? (double)writes / (double)commits : 0.0);
    storage_free(s);
}

/* ======================================= failures inside a group == */

struct one_write {
    struct storage *s;
    struct storage_op ops[3];
    char keys[3][48];
    size_t n;
    int rc;
};

static void *one_write_main(void *arg)
{
    struct one_write *w = arg;

    w->rc = storage_batch(w->s, w->ops, w->n);
    return NULL;
}

/* Writer i's batch: good, or with a bad op of one of three kinds last. */
static void make_writer(struct one_write *w, struct storage *s, int i)
{
    int bad = i % 4; /* 0: good; 1: trigger; 2: NULL key; 3: bad kind */

    memset(w, 0, sizeof(*w));
    w->s = s;
    w->n = 3;
    for (int j = 0; j < 3; j++) {
        snprintf(w->keys[j], sizeof(w->keys[j]), "g/%03d/%d", i, j);
        w->ops[j] = (struct storage_op){STORAGE_OP_PUT, w->keys[j], "ok", 2};
    }
    /* A delete of an existing key, undone too when the batch fails. */
    snprintf(w->keys[1], sizeof(w->keys[1]), "pre/%03d", i);
    w->ops[1] = (struct storage_op){STORAGE_OP_DELETE, w->keys[1], NULL, 0};
    if (bad == 1)
        snprintf(w->keys[2], sizeof(w->keys[2]), "poison");
    else if (bad == 2)
        w->ops[2].key = NULL;
    else if (bad == 3)
        w->ops[2].kind = (enum storage_op_kind)99;
}

/*
 * An outside connection holds the write lock, so the first writer (the
 * leader of a group of one) waits inside sqlite's busy handler and the
 * other writers queue behind it; once the lock goes, they form one group.
 */
TEST(failing_batches_in_a_group_undo_only_themselves)
{
    enum { WRITERS = 24 };
    char path[128];
    struct one_write w[WRITERS + 1];
    pthread_t th[WRITERS + 1];
    struct storage *s;
    sqlite3 *blocker = NULL;
    uint64_t c0, w0, c1, w1;
    double t0;
    int quiet;

    new_path(path, sizeof(path));
    s = open_or_report(path);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK_EQ_INT(exec_on(path, "CREATE TRIGGER poison BEFORE INSERT ON "
                                   "coffer_kv WHEN NEW.key = 'poison' BEGIN "
                                   "SELECT RAISE(ABORT, 'poisoned'); END"),
                 SQLITE_OK);
    for (int i = 0; i <= WRITERS; i++) {
        char key[32];

        snprintf(key, sizeof(key), "pre/%03d", i);
        CHECK_EQ_INT(storage_put(s, key, "pre", 3), 0);
    }
    counters(s, &c0, &w0);
    CHECK_EQ_INT(sqlite3_open_v2(path, &blocker, SQLITE_OPEN_READWRITE, NULL),
                 SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                 SQLITE_OK);

    quiet = quiet_begin();
    make_writer(&w[WRITERS], s, WRITERS); /* the blocked leader: good */
    pthread_create(&th[WRITERS], NULL, one_write_main, &w[WRITERS]);
    t0 = now();
    while (queued(s) < 1 && now() - t0 < 5)
        usleep(1000);
    for (int i = 0; i < WRITERS; i++) {
        make_writer(&w[i], s, i);
        pthread_create(&th[i], NULL, one_write_main, &w[i]);
    }
    while (queued(s) < WRITERS + 1 && now() - t0 < 5)
        usleep(1000);
    CHECK_EQ_INT(queued(s), WRITERS + 1);
    CHECK_EQ_INT(sqlite3_exec(blocker, "COMMIT", NULL, NULL, NULL),
                 SQLITE_OK);
    for (int i = 0; i <= WRITERS; i++)
        pthread_join(th[i], NULL);
    quiet_end(quiet);
    sqlite3_close(blocker);

    counters(s, &c1, &w1);
    CHECK_EQ_INT(w1 - w0, WRITERS + 1);
    /* The blocked leader alone, then everyone else together. */
    CHECK_EQ_INT(c1 - c0, 2);
    for (int i = 0; i <= WRITERS; i++) {
        int good = i == WRITERS || i % 4 == 0;

        if (good) {
            CHECK_EQ_INT(w[i].rc, 0);
            CHECK(has(s, w[i].keys[0], "ok"));
            CHECK(missing(s, w[i].keys[1]));
            CHECK(has(s, w[i].keys[2], "ok"));
        } else {
            CHECK(w[i].rc == (i % 4 == 1 ? COFFER_EIO : COFFER_EINVAL));
            CHECK(missing(s, w[i].keys[0]));
            CHECK(has(s, w[i].keys[1], "pre"));
        }
    }
    CHECK(missing(s, "poison"));
    storage_free(s);
}

/* A lone writer commits at once, each write in its own commit. */
TEST(lone_writer_commits_alone)
{
    char path[128], key[32];
    struct storage_op ops[2];
    uint64_t c0, w0, c1, w1;
    struct storage *s;

    new_path(path, sizeof(path));
    s = open_or_report(path);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    counters(s, &c0, &w0);
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "lone/%d", i);
        CHECK_EQ_INT(storage_put(s, key, "x", 1), 0);
        ops[0] = (struct storage_op){STORAGE_OP_DELETE, key, NULL, 0};
        ops[1] = (struct storage_op){STORAGE_OP_PUT, key, "y", 1};
        CHECK_EQ_INT(storage_batch(s, ops, 2), 0);
        CHECK(has(s, key, "y"));
    }
    counters(s, &c1, &w1);
    CHECK_EQ_INT(c1 - c0, 40);
    CHECK_EQ_INT(w1 - w0, 40);
    CHECK_EQ_INT(queued(s), 0);
    storage_free(s);
}

/* ========================================================= kill -9 == */

enum { CRASH_THREADS = 8 };

struct crash_writer {
    struct storage *s;
    int id;
    int fd;
};

/*
 * Thread t's write i: a batch of "c/t/i/{0,1,2}" when i % 3 == 0, else a
 * put of "c/t/i/0". After the ack, (t << 24 | i) goes down the pipe; one
 * write(2) of 4 bytes to a pipe is atomic.
 */
static void *crash_writer_main(void *arg)
{
    struct crash_writer *cw = arg;
    char keys[3][48];
    struct storage_op ops[3];

    for (int i = 0;; i++) {
        uint32_t msg = (uint32_t)cw->id << 24 | (uint32_t)i;
        size_t n = i % 3 == 0 ? 3 : 1;

        for (size_t j = 0; j < n; j++) {
            snprintf(keys[j], sizeof(keys[j]), "c/%d/%07d/%zu", cw->id, i, j);
            ops[j] = (struct storage_op){STORAGE_OP_PUT, keys[j], "v", 1};
        }
        if (storage_batch(cw->s, ops, n) != 0 ||
            write(cw->fd, &msg, sizeof(msg)) != (ssize_t)sizeof(msg))
            _exit(4);
    }
    return NULL;
}

static void group_crash_child(const char *path, int fd)
{
    struct errbuf err;
    struct storage *s = storage_sqlite_open(path, &err);
    struct crash_writer cw[CRASH_THREADS];
    pthread_t th[CRASH_THREADS];

    if (s == NULL)
        _exit(3);
    for (int t = 0; t < CRASH_THREADS; t++) {
        cw[t] = (struct crash_writer){s, t, fd};
        if (pthread_create(&th[t], NULL, crash_writer_main, &cw[t]) != 0)
            _exit(5);
    }
    for (;;)
        pause();
}

/* Returns the number of acknowledged writes checked; counts failures. */
static int group_crash_round(unsigned seed, int *lost, int *torn)
{
    int acked[CRASH_THREADS], fds[2], st, total = 0, want;
    char path[128], key[48];
    struct storage *s;
    uint32_t msg;
    pid_t pid;

    new_path(path, sizeof(path));
    if (pipe(fds) != 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        close(fds[0]);
        group_crash_child(path, fds[1]);
    }
    close(fds[1]);
    for (int t = 0; t < CRASH_THREADS; t++)
        acked[t] = -1;
    srand(seed);
    want = 50 + rand() % 400;
    while (total < want && read(fds[0], &msg, sizeof(msg)) == sizeof(msg)) {
        acked[msg >> 24] = (int)(msg & 0xffffff);
        total++;
    }
    usleep((useconds_t)(rand() % 4000));
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    if (!WIFSIGNALED(st))
        (*lost)++;
    /* Acks written before the kill are still in the pipe. */
    while (read(fds[0], &msg, sizeof(msg)) == sizeof(msg))
        acked[msg >> 24] = (int)(msg & 0xffffff);
    close(fds[0]);

    s = open_or_report(path);
    if (s == NULL) {
        (*lost)++;
        return 0;
    }
    total = 0;
    for (int t = 0; t < CRASH_THREADS; t++) {
        /* One write per thread may have landed unacknowledged. */
        for (int i = 0; i <= acked[t] + 1; i++) {
            int n = i % 3 == 0 ? 3 : 1, found = 0;

            for (int j = 0; j < n; j++) {
                snprintf(key, sizeof(key), "c/%d/%07d/%d", t, i, j);
                found += !missing(s, key);
            }
            if (found != 0 && found != n)
                (*torn)++;
            if (i <= acked[t]) {
                *lost += found == 0;
                total++;
            }
        }
        snprintf(key, sizeof(key), "c/%d/%07d/0", t, acked[t] + 2);
        *lost += !missing(s, key); /* nothing beyond that one */
    }
    storage_free(s);
    return total;
}

TEST(kill_9_with_concurrent_writers_loses_no_ack)
{
    int rounds = under_valgrind ? 2 : 24, lost = 0, torn = 0, checked = 0;

    for (int r = 0; r < rounds; r++)
        checked += group_crash_round((unsigned)(r * 104729 + 3), &lost, &torn);
    fprintf(stdout, "  %d rounds of kill -9 under %d writing threads: %d "
            "acknowledged writes checked\n", rounds, CRASH_THREADS, checked);
    CHECK_EQ_INT(lost, 0);
    CHECK_EQ_INT(torn, 0);
    CHECK(checked > rounds * 50);
}

/* ================================================ commits per write == */

struct putter {
    struct storage *s;
    int id;
    int n;
    int errors;
};

static void *putter_main(void *arg)
{
    struct putter *p = arg;
    char key[48];

    for (int i = 0; i < p->n; i++) {
        snprintf(key, sizeof(key), "p/%d/%d", p->id, i);
        if (storage_put(p->s, key, "0123456789abcdef", 16) != 0)
            p->errors++;
    }
    return NULL;
}

/* Runs threads x n puts; returns the writes per commit, prints figures. */
static double run_putters(struct storage *s, int threads, int n)
{
    struct putter p[32];
    pthread_t th[32];
    uint64_t c0, w0, c1, w1;
    double t0, dt;

    counters(s, &c0, &w0);
    t0 = now();
    for (int t = 0; t < threads; t++) {
        p[t] = (struct putter){s, t, n, 0};
        pthread_create(&th[t], NULL, putter_main, &p[t]);
    }
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_INT(p[t].errors, 0);
    }
    dt = now() - t0;
    counters(s, &c1, &w1);
    CHECK_EQ_INT(w1 - w0, (uint64_t)threads * n);
    fprintf(stdout, "  %2d threads x %d puts: %llu commits, %.2f writes "
            "per commit, %.0f puts/s\n", threads, n,
            (unsigned long long)(c1 - c0),
            (double)(w1 - w0) / (double)(c1 - c0), threads * n / dt);
    return (double)(w1 - w0) / (double)(c1 - c0);
}

TEST(commits_per_write_drop_under_concurrency)
{
    int n = under_valgrind ? 20 : 200;
    char path[128];
    struct storage *s;
    double one, many;

    new_path(path, sizeof(path));
    s = open_or_report(path);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    one = run_putters(s, 1, n * 4);
    run_putters(s, 4, n);
    many = run_putters(s, 16, n);
    CHECK(one == 1.0);
    /* 16 writers, each waiting for an fsync: they share commits. */
    CHECK(many > 2.0);
    storage_free(s);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    under_valgrind = getenv("VALGRIND") != NULL;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/coffer-sqlite-test.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        fprintf(stdout, "mkdtemp: %s\n", strerror(errno));
        tmpdir[0] = '\0';
        return 1;
    }
    atexit(remove_tmpdir);
    contract = (struct contract_backend){"sqlite", fresh_sqlite, 2000};
    contract_run();
    RUN(file_is_private);
    RUN(wal_and_full_sync);
    RUN(data_survives_reopen);
    RUN(open_errors_are_words);
    RUN(batch_rolls_back_on_sql_error);
    RUN(prefix_successor_edges);
    RUN(kill_9_loses_no_acknowledged_write);
    RUN(concurrent_batches_from_two_stores);
    RUN(list_and_scan_many_keys);
    RUN(bench_threads);
    RUN(lone_writer_commits_alone);
    RUN(mixed_writers_see_every_ack);
    RUN(failing_batches_in_a_group_undo_only_themselves);
    RUN(commits_per_write_drop_under_concurrency);
    RUN(kill_9_with_concurrent_writers_loses_no_ack);
    return HARNESS_DONE();
}
