/*
 * pg_scratch.h - a scratch PostgreSQL cluster for tests that need a real
 * server (test_db_pg.c, test_storage_pg.c).
 *
 * cluster_up() creates one: initdb into a mkdtemp dir, SCRAM password
 * auth (user postgres, password PG_PASSWORD), a free TCP port on
 * 127.0.0.1, the unix socket in the same dir, fsync off. PostgreSQL
 * refuses to run as root, so when we are root its tools run as the
 * "postgres" OS user through runuser. COFFER_PG_BINDIR overrides where
 * the tools are found.
 *
 * Cleanup must happen even if the test crashes or is killed, so it is
 * done by a watchdog child: a shell blocked reading a pipe whose only
 * writer is us (close-on-exec, so the postmaster does not inherit it).
 * When we exit for any reason, its read sees EOF and it stops the cluster
 * and removes the directory. cluster_down() does the same on purpose.
 */
#ifndef COFFER_TEST_PG_SCRATCH_H
#define COFFER_TEST_PG_SCRATCH_H

#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#define PG_PASSWORD "Coffer-test-pw1"

static struct {
    char dir[64];       /* cluster root; also the unix socket directory */
    char bindir[256];   /* .../postgresql/NN/bin */
    char runas[128];    /* "cd DIR && runuser -u postgres --" or "cd DIR &&" */
    int port;
    pid_t watchdog;
    int watchdog_fd;
    bool up;
} pg = {.watchdog = -1, .watchdog_fd = -1};

/* ========================================================== cluster == */

/* Picks the newest /usr/lib/postgresql/NN/bin that has initdb. */
static int find_bindir(void)
{
    glob_t g;
    long best = -1;
    const char *env = getenv("COFFER_PG_BINDIR");

    if (env != NULL && env[0] != '\0') {
        snprintf(pg.bindir, sizeof(pg.bindir), "%s", env);
        return 0;
    }
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0)
        return -1;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        long v = strtol(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"), NULL,
                        10);
        if (v > best) {
            best = v;
            snprintf(pg.bindir, sizeof(pg.bindir), "%.*s",
                     (int)(strlen(g.gl_pathv[i]) - strlen("/initdb")),
                     g.gl_pathv[i]);
        }
    }
    globfree(&g);
    return best < 0 ? -1 : 0;
}

/* A port nobody listens on right now (the kernel picks it). */
static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Runs a PostgreSQL tool (as postgres when we are root); 0 on success. */
static int pg_tool(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int pg_tool(const char *fmt, ...)
{
    char args[1024], cmd[1600];
    va_list ap;
    int st;

    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "%s %s/%s >>%s/tool.log 2>&1", pg.runas,
             pg.bindir, args, pg.dir);
    st = system(cmd);
    return st == 0 ? 0 : -1;
}

static int pg_start(void)
{
    return pg_tool("pg_ctl -D %s/data -l %s/server.log -w -t 60 -o "
                   "\"-p %d -k %s -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=40\" start",
                   pg.dir, pg.dir, pg.port, pg.dir);
}

/* Forks the watchdog that stops the cluster and removes pg.dir. */
static int start_watchdog(void)
{
    int fds[2];
    char cmd[1200];
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    snprintf(cmd, sizeof(cmd),
             "cat >/dev/null; %s %s/pg_ctl -D %s/data -m immediate -w stop "
             ">/dev/null 2>&1; rm -rf %s",
             pg.runas, pg.bindir, pg.dir, pg.dir);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* Ctrl-C hits the whole process group: survive it to clean up. */
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        dup2(fds[0], 0);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fds[0]);
    pg.watchdog = pid;
    pg.watchdog_fd = fds[1];
    return 0;
}

static void cluster_down(void)
{
    int st;

    if (pg.watchdog_fd >= 0)
        close(pg.watchdog_fd);
    if (pg.watchdog > 0)
        waitpid(pg.watchdog, &st, 0);
    pg.watchdog_fd = -1;
    pg.watchdog = -1;
}

static void show_logs(void)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "tail -n 20 %s/tool.log %s/server.log 2>&1",
             pg.dir, pg.dir);
    if (system(cmd) != 0)
        fprintf(stdout, "(no logs)\n");
}

static int cluster_up(void)
{
    struct passwd *pw = NULL;
    char path[128];
    FILE *f;

    snprintf(pg.dir, sizeof(pg.dir), "/tmp/coffer-pgtest.XXXXXX");
    if (find_bindir() != 0 || mkdtemp(pg.dir) == NULL)
        return -1;
    if (geteuid() == 0) {
        pw = getpwnam("postgres");
        if (pw == NULL || chown(pg.dir, pw->pw_uid, pw->pw_gid) != 0)
            return -1;
        snprintf(pg.runas, sizeof(pg.runas),
                 "cd %s && runuser -u postgres --", pg.dir);
    } else {
        snprintf(pg.runas, sizeof(pg.runas), "cd %s &&", pg.dir);
    }
    if (start_watchdog() != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/pwfile", pg.dir);
    f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs(PG_PASSWORD "\n", f);
    if (fclose(f) != 0 ||
        (pw != NULL && chown(path, pw->pw_uid, pw->pw_gid) != 0))
        return -1;
    if (pg_tool("initdb -D %s/data -U postgres --auth=scram-sha-256 "
                "--pwfile=%s -E UTF8 --locale=C --no-sync",
                pg.dir, path) != 0)
        return -1;
    pg.port = free_port();
    if (pg.port < 0 || pg_start() != 0)
        return -1;
    pg.up = true;
    return 0;
}

/* A URL for the cluster's postgres database over TCP. */
static void tcp_url(char *out, size_t n, const char *password)
{
    snprintf(out, n,
             "postgresql://postgres:%s@127.0.0.1:%d/postgres?sslmode=disable",
             password, pg.port);
}

#endif
