/*
 * test_crypto_uuid.c - uuids from the per-thread buffer of CSPRNG bytes
 * (crypto.c): v4 format across buffer refills, no repeats within a thread
 * or across threads, and a forked child never repeats its parent's next
 * uuid (the buffer refills after fork).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "crypto.h"
#include "harness.h"

#define PER_THREAD 3000
#define THREADS 4

static int is_uuid_v4(const char *u)
{
    if (strlen(u) != CRYPTO_UUID_LEN)
        return 0;
    for (int i = 0; i < CRYPTO_UUID_LEN; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;

        if (dash ? u[i] != '-' : !strchr("0123456789abcdef", u[i]))
            return 0;
    }
    return u[14] == '4' && strchr("89ab", u[19]) != NULL;
}

static int cmp_uuid(const void *a, const void *b)
{
    return memcmp(a, b, CRYPTO_UUID_LEN + 1);
}

/* Count of equal neighbours after sorting n uuids of 37 bytes. */
static size_t repeats(char (*v)[CRYPTO_UUID_LEN + 1], size_t n)
{
    size_t dup = 0;

    qsort(v, n, sizeof(*v), cmp_uuid);
    for (size_t i = 1; i < n; i++)
        dup += memcmp(v[i - 1], v[i], sizeof(*v)) == 0;
    return dup;
}

static char (*all)[CRYPTO_UUID_LEN + 1];
static int bad_format;

static void *make_many(void *arg)
{
    size_t base = (size_t)(uintptr_t)arg * PER_THREAD;

    for (size_t i = 0; i < PER_THREAD; i++) {
        if (crypto_uuid(all[base + i]) != 0 || !is_uuid_v4(all[base + i]))
            __atomic_add_fetch(&bad_format, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

TEST(format_and_uniqueness_across_refills_and_threads)
{
    pthread_t t[THREADS];

    all = xcalloc(PER_THREAD * THREADS, sizeof(*all));
    bad_format = 0;
    for (uintptr_t i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, make_many, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(bad_format, 0);
    CHECK_EQ_INT(repeats(all, PER_THREAD * THREADS), 0);
    free(all);
}

TEST(forked_child_does_not_repeat_parent)
{
    char first[CRYPTO_UUID_LEN + 1], mine[CRYPTO_UUID_LEN + 1];
    char theirs[CRYPTO_UUID_LEN + 1];
    int fds[2];
    pid_t pid;
    int status = 0;

    /* the buffer is full and mostly unused when the fork happens */
    CHECK_EQ_INT(crypto_uuid(first), 0);
    CHECK_EQ_INT(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        char u[CRYPTO_UUID_LEN + 1];

        if (crypto_uuid(u) != 0 ||
            write(fds[1], u, sizeof(u)) != (ssize_t)sizeof(u))
            _exit(1);
        _exit(0);
    }
    CHECK(pid > 0);
    close(fds[1]);
    CHECK_EQ_INT(crypto_uuid(mine), 0);
    memset(theirs, 0, sizeof(theirs));
    CHECK(read(fds[0], theirs, sizeof(theirs)) == (ssize_t)sizeof(theirs));
    close(fds[0]);
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(is_uuid_v4(theirs));
    CHECK(strcmp(mine, theirs) != 0);
    CHECK(strcmp(first, theirs) != 0);
}

int main(int argc, char **argv)
{
    HARNESS_INIT(argc, argv);
    RUN(format_and_uniqueness_across_refills_and_threads);
    RUN(forked_child_does_not_repeat_parent);
    return HARNESS_DONE();
}
