/*
 * ticker.c - the periodic-work thread (see ticker.h).
 */
#include "ticker.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "lease.h"
#include "log.h"
#include "luavm.h"
#include "mount.h"
#include "router.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static bool stopping;
static bool running;
static pthread_t thread;
static double tick_seconds;

static void tick(void)
{
    size_t n;
    const struct mount **mounts;

    lease_tick();
    mounts = router_snapshot(&n);
    for (size_t i = 0; i < n; i++) {
        if (mounts[i]->impl == MOUNT_IMPL_LUA)
            luavm_periodic(mounts[i]);
        router_mount_put(mounts[i]);
    }
    free(mounts);
}

static void *ticker_main(void *arg)
{
    struct timespec until;

    (void)arg;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)tick_seconds;
        until.tv_nsec += (long)((tick_seconds - (double)(time_t)tick_seconds) *
                                1e9);
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&cond, &mu, &until);
        if (stopping)
            break;
        pthread_mutex_unlock(&mu);
        tick();
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    luavm_thread_release();
    return NULL;
}

int ticker_start(double interval, struct errbuf *err)
{
    tick_seconds = interval > 0 ? interval : 5;
    stopping = false;
    if (pthread_create(&thread, NULL, ticker_main, NULL) != 0) {
        errbuf_set(err, "cannot start the periodic-work thread");
        return COFFER_EINTERNAL;
    }
    running = true;
    return 0;
}

void ticker_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&mu);
    stopping = true;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&mu);
    pthread_join(thread, NULL);
    running = false;
}
