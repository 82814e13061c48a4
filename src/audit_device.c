/*
 * audit_device.c - one audit device: option parsing (Vault's option names
 * and error words) and the writers: files (O_APPEND, shared lock for
 * regular files), sockets (non-blocking, every wait bounded by the
 * device's timeout, a back-off after a failure) and syslog.
 */
#include "audit_device.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "util.h"

#define DEFAULT_WRITE_TIMEOUT_MS 2000
#define MIN_BACKOFF_MS 1000

static pthread_mutex_t syslog_mu = PTHREAD_MUTEX_INITIALIZER;

/* ============================================================ devices == */

void audit_device_free(struct audit_device *d)
{
    if (d == NULL)
        return;
    if (d->fd > 2)
        close(d->fd);
    free(d->path);
    free(d->type);
    free(d->description);
    cJSON_Delete(d->options);
    secure_free_str(d->salt);
    free(d->prefix);
    free(d->file_path);
    free(d->address);
    free(d->tag);
    pthread_mutex_destroy(&d->mu);
    pthread_rwlock_destroy(&d->fd_rw);
    free(d);
}

void audit_device_put(struct audit_device *d)
{
    if (d != NULL && atomic_fetch_sub(&d->refs, 1) == 1)
        audit_device_free(d);
}

static const char *opt(const struct audit_device *d, const char *key,
                       const char *def)
{
    return json_get_str(d->options, key, def);
}

static int opt_bool(const struct audit_device *d, const char *key, bool def,
                    bool *out, struct errbuf *err)
{
    const char *s = opt(d, key, NULL);

    *out = def;
    if (s == NULL)
        return 0;
    if (bool_parse(s, out) != 0) {
        errbuf_set(err, "unable to parse '%s': invalid syntax", key);
        return COFFER_EINVAL;
    }
    return 0;
}

/* "2s", "500ms", "1m" or a bare number of seconds. */
static int parse_timeout(const char *s, int *ms, struct errbuf *err)
{
    int64_t secs = 0;
    char *end;
    long v;

    if (str_has_suffix(s, "ms")) {
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno != 0 || end == s || strcmp(end, "ms") != 0 || v <= 0 ||
            v > 600000) {
            errbuf_set(err, "invalid write_timeout \"%s\"", s);
            return COFFER_EINVAL;
        }
        *ms = (int)v;
        return 0;
    }
    if (duration_parse(s, &secs, NULL) != 0 || secs <= 0 || secs > 600) {
        errbuf_set(err, "invalid write_timeout \"%s\"", s);
        return COFFER_EINVAL;
    }
    *ms = (int)secs * 1000;
    return 0;
}

static const struct {
    const char *name;
    int value;
} facilities[] = {
    {"KERN", LOG_KERN},     {"USER", LOG_USER},     {"MAIL", LOG_MAIL},
    {"DAEMON", LOG_DAEMON}, {"AUTH", LOG_AUTH},     {"SYSLOG", LOG_SYSLOG},
    {"LPR", LOG_LPR},       {"NEWS", LOG_NEWS},     {"UUCP", LOG_UUCP},
    {"CRON", LOG_CRON},     {"AUTHPRIV", LOG_AUTHPRIV},
    {"FTP", LOG_FTP},       {"LOCAL0", LOG_LOCAL0}, {"LOCAL1", LOG_LOCAL1},
    {"LOCAL2", LOG_LOCAL2}, {"LOCAL3", LOG_LOCAL3}, {"LOCAL4", LOG_LOCAL4},
    {"LOCAL5", LOG_LOCAL5}, {"LOCAL6", LOG_LOCAL6}, {"LOCAL7", LOG_LOCAL7},
};

static int check_format(const char *fmt, struct errbuf *err)
{
    if (strcmp(fmt, "json") == 0)
        return 0;
    if (strcmp(fmt, "jsonx") == 0)
        errbuf_set(err, "format \"jsonx\" is not supported; use \"json\"");
    else
        errbuf_set(err, "unknown format type \"%s\"", fmt);
    return COFFER_EINVAL;
}

static int parse_file_opts(struct audit_device *d, struct errbuf *err)
{
    const char *p = opt(d, "file_path", NULL);
    const char *mode = opt(d, "mode", "0600");
    const char *fmt = opt(d, "format", "json");
    char *end;
    long m;

    if (p == NULL)
        p = opt(d, "path", NULL); /* Vault's older name */
    if (p == NULL || p[0] == '\0') {
        errbuf_set(err, "file_path is required");
        return COFFER_EINVAL;
    }
    if (check_format(fmt, err) != 0)
        return COFFER_EINVAL;
    errno = 0;
    m = strtol(mode, &end, 8);
    if (errno != 0 || end == mode || *end != '\0' || m < 0 || m > 07777) {
        errbuf_set(err, "invalid file mode \"%s\"", mode);
        return COFFER_EINVAL;
    }
    d->mode = (mode_t)m;
    d->file_path = xstrdup(p);
    d->target = strcmp(p, "stdout") == 0    ? TARGET_STDOUT
                : strcmp(p, "discard") == 0 ? TARGET_DISCARD
                                            : TARGET_PATH;
    if (d->target == TARGET_PATH && p[0] != '/') {
        errbuf_set(err, "file_path must be an absolute path");
        return COFFER_EINVAL;
    }
    return 0;
}

static int parse_socket_opts(struct audit_device *d, struct errbuf *err)
{
    const char *addr = opt(d, "address", NULL);
    const char *type = opt(d, "socket_type", "tcp");
    const char *fmt = opt(d, "format", "json");

    if (addr == NULL || addr[0] == '\0') {
        errbuf_set(err, "address is required");
        return COFFER_EINVAL;
    }
    if (check_format(fmt, err) != 0)
        return COFFER_EINVAL;
    if (strcmp(type, "tcp") == 0 || strcmp(type, "unix") == 0)
        d->sock_type = SOCK_STREAM;
    else if (strcmp(type, "udp") == 0)
        d->sock_type = SOCK_DGRAM;
    else {
        errbuf_set(err, "unsupported socket_type \"%s\"", type);
        return COFFER_EINVAL;
    }
    d->unix_sock = strcmp(type, "unix") == 0;
    if (d->unix_sock && strlen(addr) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        errbuf_set(err, "unix socket address too long");
        return COFFER_EINVAL;
    }
    d->address = xstrdup(addr);
    return parse_timeout(opt(d, "write_timeout", "2s"), &d->timeout_ms, err);
}

static int parse_syslog_opts(struct audit_device *d, struct errbuf *err)
{
    const char *fac = opt(d, "facility", "AUTH");

    d->facility = -1;
    for (size_t i = 0; i < ARRAY_LEN(facilities); i++) {
        if (strcasecmp(fac, facilities[i].name) == 0)
            d->facility = facilities[i].value;
    }
    if (d->facility < 0) {
        errbuf_set(err, "unknown syslog facility \"%s\"", fac);
        return COFFER_EINVAL;
    }
    d->tag = xstrdup(opt(d, "tag", "vault"));
    return 0;
}

/* Options as Vault keeps them: a map of strings. */
cJSON *audit_options_as_strings(const cJSON *in, struct errbuf *err)
{
    cJSON *out = cJSON_CreateObject();
    const cJSON *it;

    if (in == NULL || cJSON_IsNull(in))
        return out;
    if (!cJSON_IsObject(in)) {
        errbuf_set(err, "options must be a map of strings");
        cJSON_Delete(out);
        return NULL;
    }
    cJSON_ArrayForEach(it, in) {
        char num[64];
        if (cJSON_IsString(it)) {
            cJSON_AddStringToObject(out, it->string, it->valuestring);
        } else if (cJSON_IsBool(it)) {
            cJSON_AddStringToObject(out, it->string,
                                    cJSON_IsTrue(it) ? "true" : "false");
        } else if (cJSON_IsNumber(it)) {
            snprintf(num, sizeof(num), "%.15g", it->valuedouble);
            cJSON_AddStringToObject(out, it->string, num);
        } else if (cJSON_IsRaw(it)) {
            cJSON_AddStringToObject(out, it->string, it->valuestring);
        } else {
            errbuf_set(err, "options must be a map of strings");
            cJSON_Delete(out);
            return NULL;
        }
    }
    return out;
}

/* A device from its stored or requested description; not opened yet. */
/*
 * Writer-preferring (a glibc extension, hence _GNU_SOURCE): with the
 * default, a steady stream of entries could keep a SIGHUP reopen waiting
 * for ever, since some writer always holds the lock shared.
 */
static void fd_lock_init(pthread_rwlock_t *l)
{
    pthread_rwlockattr_t a;

    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(l, &a);
    pthread_rwlockattr_destroy(&a);
}

struct audit_device *audit_device_new(const char *path, const char *type,
                                       const char *description,
                                       const cJSON *options, bool local,
                                       struct errbuf *err)
{
    struct audit_device *d = xcalloc(1, sizeof(*d));
    int rc = 0;

    pthread_mutex_init(&d->mu, NULL);
    fd_lock_init(&d->fd_rw);
    atomic_init(&d->refs, 1);
    d->fd = -1;
    d->path = xstrdup(path);
    d->type = xstrdup(type);
    d->description = xstrdup(description != NULL ? description : "");
    d->local = local;
    d->timeout_ms = DEFAULT_WRITE_TIMEOUT_MS;
    d->options = audit_options_as_strings(options, err);
    if (d->options == NULL)
        rc = COFFER_EINVAL;
    if (rc == 0 && strcmp(type, "file") == 0) {
        d->kind = DEV_FILE;
        rc = parse_file_opts(d, err);
    } else if (rc == 0 && strcmp(type, "socket") == 0) {
        d->kind = DEV_SOCKET;
        rc = parse_socket_opts(d, err);
    } else if (rc == 0 && strcmp(type, "syslog") == 0) {
        d->kind = DEV_SYSLOG;
        rc = parse_syslog_opts(d, err);
    } else if (rc == 0) {
        errbuf_set(err, "unknown backend type: \"%s\"", type);
        rc = COFFER_EINVAL;
    }
    if (rc == 0)
        rc = opt_bool(d, "log_raw", false, &d->log_raw, err);
    if (rc == 0)
        rc = opt_bool(d, "hmac_accessor", true, &d->hmac_accessor, err);
    if (rc == 0)
        rc = opt_bool(d, "elide_list_responses", false, &d->elide_list, err);
    if (rc == 0)
        d->prefix = xstrdup(opt(d, "prefix", ""));
    if (rc != 0) {
        audit_device_free(d);
        d = NULL;
    }
    return d;
}

/* ============================================================ writers == */

static int ms_left(double deadline)
{
    double left = (deadline - time_mono()) * 1000.0;

    return left <= 0 ? 0 : (int)left + 1;
}

/* Waits until fd takes bytes, at most until the deadline. */
static int wait_writable(int fd, double deadline)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int left = ms_left(deadline);

    if (left == 0 || poll(&p, 1, left) <= 0)
        return COFFER_EIO;
    return 0;
}

/*
 * Writes all of buf before the deadline. A descriptor we did not open
 * (stdout) may be blocking: each write then waits for POLLOUT first and
 * takes at most PIPE_BUF bytes, which a pipe that polled writable
 * accepts without blocking.
 */
static int write_all(int fd, const char *buf, size_t len, double deadline)
{
    int fl = fcntl(fd, F_GETFL);
    bool blocking = fl >= 0 && (fl & O_NONBLOCK) == 0;

    while (len > 0) {
        size_t chunk = blocking && len > PIPE_BUF ? PIPE_BUF : len;
        ssize_t w;
        if (blocking && wait_writable(fd, deadline) != 0)
            return COFFER_EIO;
        w = send(fd, buf, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == ENOTSOCK)
            w = write(fd, buf, chunk);
        if (w > 0) {
            buf += w;
            len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_writable(fd, deadline) != 0)
                return COFFER_EIO;
            continue;
        }
        return COFFER_EIO;
    }
    return 0;
}

/*
 * A regular file takes the whole line in one write(2) (O_APPEND places it
 * after the others'); poll and the socket path would only add syscalls.
 */
static int write_regular(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return COFFER_EIO; /* ENOSPC, EIO, EFBIG: the entry is lost */
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

static int file_open(struct audit_device *d)
{
    struct stat st;
    int fd;

    if (d->target != TARGET_PATH)
        return 0;
    fd = open(d->file_path,
              O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
              d->mode != 0 ? d->mode : 0600);
    if (fd < 0)
        return COFFER_EIO;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return COFFER_EIO;
    }
    /* Vault sets the mode of an existing file too; never a device's. */
    if (d->mode != 0 && S_ISREG(st.st_mode) &&
        (st.st_mode & 07777) != d->mode && fchmod(fd, d->mode) != 0) {
        close(fd);
        return COFFER_EIO;
    }
    pthread_rwlock_wrlock(&d->fd_rw);
    d->fd = fd;
    d->regular = S_ISREG(st.st_mode);
    pthread_rwlock_unlock(&d->fd_rw);
    return 0;
}

/* "host:port", "[v6]:port". */
static int split_hostport(const char *addr, char *host, size_t hn,
                          char *port, size_t pn)
{
    const char *colon = strrchr(addr, ':');
    size_t hl;

    if (colon == NULL || colon[1] == '\0')
        return COFFER_EINVAL;
    hl = (size_t)(colon - addr);
    if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
        addr++;
        hl -= 2;
    }
    if (hl >= hn || strlen(colon + 1) >= pn)
        return COFFER_EINVAL;
    memcpy(host, addr, hl);
    host[hl] = '\0';
    snprintf(port, pn, "%s", colon + 1);
    return 0;
}

static int connect_wait(int fd, const struct sockaddr *sa, socklen_t len,
                        double deadline)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int soerr = 0;
    socklen_t sl = sizeof(soerr);

    if (connect(fd, sa, len) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return COFFER_EIO;
    if (poll(&p, 1, ms_left(deadline)) <= 0)
        return COFFER_EIO;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0)
        return COFFER_EIO;
    return 0;
}

static int socket_open(struct audit_device *d, double deadline)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char host[256], port[32];
    int fd = -1, rc;

    if (d->unix_sock) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", d->address);
        fd = socket(AF_UNIX, d->sock_type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        rc = fd < 0 ? COFFER_EIO
                    : connect_wait(fd, (struct sockaddr *)&sun, sizeof(sun),
                                   deadline);
    } else {
        hints.ai_socktype = d->sock_type;
        rc = split_hostport(d->address, host, sizeof(host), port,
                            sizeof(port));
        if (rc == 0 && getaddrinfo(host, port, &hints, &ai) != 0)
            rc = COFFER_EIO;
        if (rc == 0) {
            fd = socket(ai->ai_family,
                        ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
            rc = fd < 0 ? COFFER_EIO
                        : connect_wait(fd, ai->ai_addr, ai->ai_addrlen,
                                       deadline);
        }
        if (ai != NULL)
            freeaddrinfo(ai);
    }
    if (rc != 0 && fd >= 0)
        close(fd);
    else if (rc == 0)
        d->fd = fd;
    return rc;
}

/*
 * A stream whose peer has closed still accepts a first write (the reset
 * comes later): look for the peer's EOF before writing, so a listener
 * that went away is noticed on this entry, not the next one.
 */
static void socket_check_peer(struct audit_device *d)
{
    struct pollfd p = {.fd = d->fd, .events = POLLIN};
    char junk[512];

    if (d->sock_type != SOCK_STREAM || poll(&p, 1, 0) <= 0)
        return;
    for (int i = 0; i < 64; i++) { /* a chatty peer cannot keep us here */
        ssize_t r = recv(d->fd, junk, sizeof(junk), MSG_DONTWAIT);
        if (r > 0)
            continue; /* the peer talks back: ignore it */
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        close(d->fd);
        d->fd = -1;
        return;
    }
}

static void device_close_locked(struct audit_device *d)
{
    pthread_rwlock_wrlock(&d->fd_rw);
    if (d->fd > 2)
        close(d->fd);
    d->fd = -1;
    pthread_rwlock_unlock(&d->fd_rw);
}

static int write_syslog(struct audit_device *d, const char *line)
{
    static char ident[64];

    pthread_mutex_lock(&syslog_mu);
    snprintf(ident, sizeof(ident), "%s", d->tag);
    openlog(ident, LOG_PID | LOG_NDELAY, d->facility);
    syslog(LOG_MAKEPRI(d->facility, LOG_INFO), "%s", line);
    pthread_mutex_unlock(&syslog_mu);
    return 0;
}

/* Writes one line (with its newline) under the device's mutex. */
static int device_write_locked(struct audit_device *d, const char *line,
                               size_t len, double deadline)
{
    int rc = 0;

    if (d->kind == DEV_SYSLOG)
        return write_syslog(d, line);
    if (d->kind == DEV_FILE) {
        if (d->target == TARGET_DISCARD)
            return 0;
        if (d->target == TARGET_STDOUT)
            return write_all(STDOUT_FILENO, line, len, deadline);
        if (d->fd < 0)
            rc = file_open(d);
    } else {
        if (d->fd >= 0)
            socket_check_peer(d);
        if (d->fd < 0)
            rc = socket_open(d, deadline);
    }
    if (rc == 0 && d->kind == DEV_FILE && d->regular)
        rc = write_regular(d->fd, line, len);
    else if (rc == 0)
        rc = write_all(d->fd, line, len, deadline);
    if (rc != 0 && d->kind == DEV_SOCKET)
        device_close_locked(d); /* a half-written line ruins the stream */
    if (rc != 0 && d->kind == DEV_FILE)
        device_close_locked(d); /* reopened on the next entry */
    return rc;
}

/*
 * The shared path for an open regular file (fd_rw above). *done is false
 * when it does not apply (not a file, not open yet, after a failure);
 * device_write then takes the mutex. A failed write closes the file, as
 * the locked path does, so the next entry reopens it.
 */
static int write_file_shared(struct audit_device *d, const char *line,
                             size_t len, const struct timespec *abs,
                             bool *done)
{
    int rc = 0, fd = -1;

    *done = false;
    if (d->kind != DEV_FILE || d->target != TARGET_PATH ||
        pthread_rwlock_timedrdlock(&d->fd_rw, abs) != 0)
        return 0;
    if (d->fd >= 0 && d->regular) {
        fd = d->fd;
        rc = write_regular(fd, line, len);
        *done = true;
    }
    pthread_rwlock_unlock(&d->fd_rw);
    if (rc != 0 && pthread_mutex_timedlock(&d->mu, abs) == 0) {
        if (d->fd == fd) /* not already reopened by another writer */
            device_close_locked(d);
        pthread_mutex_unlock(&d->mu);
    }
    return rc;
}

int audit_device_write(struct audit_device *d, const char *line, size_t len)
{
    double start = time_mono();
    double deadline = start + d->timeout_ms / 1000.0;
    struct timespec abs;
    bool done;
    int rc;

    clock_gettime(CLOCK_REALTIME, &abs);
    abs.tv_sec += d->timeout_ms / 1000;
    abs.tv_nsec += (long)(d->timeout_ms % 1000) * 1000000L;
    if (abs.tv_nsec >= 1000000000L) {
        abs.tv_sec++;
        abs.tv_nsec -= 1000000000L;
    }
    rc = write_file_shared(d, line, len, &abs, &done);
    if (done)
        return rc;
    if (pthread_mutex_timedlock(&d->mu, &abs) != 0)
        return COFFER_EIO;
    if (d->down_until > time_mono()) {
        rc = COFFER_EIO; /* still backing off: refuse without waiting */
    } else {
        rc = device_write_locked(d, line, len, deadline);
        if (rc != 0 && d->kind == DEV_SOCKET) {
            int back = d->timeout_ms > MIN_BACKOFF_MS ? d->timeout_ms
                                                      : MIN_BACKOFF_MS;
            d->down_until = time_mono() + back / 1000.0;
        }
    }
    pthread_mutex_unlock(&d->mu);
    return rc;
}


/*
 * Opens what a device writes to (closing it first when reopen), in one
 * section under its mutex so a writer cannot open it in between. A
 * failure is Vault's sanity check.
 */
int audit_device_open(struct audit_device *d, bool reopen,
                       struct errbuf *err)
{
    double deadline = time_mono() + d->timeout_ms / 1000.0;
    char eb[128];
    int rc = 0, saved;

    pthread_mutex_lock(&d->mu);
    errno = 0;
    if (reopen)
        device_close_locked(d);
    if (d->fd < 0 && d->kind == DEV_FILE)
        rc = file_open(d);
    else if (d->fd < 0 && d->kind == DEV_SOCKET)
        rc = socket_open(d, deadline);
    saved = errno;
    pthread_mutex_unlock(&d->mu);
    if (rc != 0)
        errbuf_set(err, "sanity check failed; unable to open \"%s\" for "
                        "writing: %s",
                   d->kind == DEV_FILE ? d->file_path : d->address,
                   saved != 0 ? strerror_r(saved, eb, sizeof(eb))
                              : "timed out");
    return rc;
}

/*
 * A device whose write never waits on anything but the local disk: a file
 * device discarding, or holding an open regular file (a FIFO, stdout or a
 * file not opened yet may wait). Locks held elsewhere count as "may wait".
 */
bool audit_device_never_waits(struct audit_device *d)
{
    bool ok = false;

    if (d->kind != DEV_FILE)
        return false;
    if (d->target == TARGET_DISCARD)
        return true;
    if (d->target != TARGET_PATH ||
        pthread_rwlock_tryrdlock(&d->fd_rw) != 0)
        return false;
    ok = d->fd >= 0 && d->regular;
    pthread_rwlock_unlock(&d->fd_rw);
    return ok;
}
