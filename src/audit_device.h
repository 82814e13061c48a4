/*
 * audit_device.h - one audit device: its options and its writer (file,
 * socket, syslog), for audit.c's table and fan-out. Internal to the
 * audit subsystem.
 *
 * A device is reference-counted: the table holds one reference and
 * every log call takes one while it writes, so a disabled device is
 * closed when its last writer is done. Writes are bounded by the
 * device's timeout; a socket that failed is refused at once until its
 * back-off passes.
 */
#ifndef COFFER_AUDIT_DEVICE_H
#define COFFER_AUDIT_DEVICE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "common.h"
#include "crypto.h"

enum dev_kind { DEV_FILE, DEV_SOCKET, DEV_SYSLOG };
enum file_target { TARGET_PATH, TARGET_STDOUT, TARGET_DISCARD };

struct audit_device {
    /* What sys/audit shows and the table stores. */
    char *path; /* "file/" */
    char *type;
    char *description;
    cJSON *options; /* object of strings */
    bool local;
    bool declared; /* from the configuration file: not stored, not
                      disableable through the API */
    int line;      /* declared: where, for messages */
    char uuid[CRYPTO_UUID_LEN + 1];
    char *salt; /* the HMAC key; never logged */

    /* Parsed options. */
    enum dev_kind kind;
    bool log_raw, hmac_accessor, elide_list;
    char *prefix;
    enum file_target target;
    char *file_path;
    mode_t mode;
    char *address;
    int sock_type; /* SOCK_STREAM or SOCK_DGRAM */
    bool unix_sock;
    int timeout_ms;
    int facility;
    char *tag;

    /*
     * Writer state, under mu. A file device's fd and regular flag are
     * also changed under fd_rw held exclusively, so that writers to an
     * open regular file take only fd_rw, shared: O_APPEND places each
     * line whole, and the kernel's inode lock is far cheaper to wait on
     * than a sleeping mutex per entry (measured: futex wake-ups were the
     * largest kernel cost of auditing with 16 clients).
     */
    pthread_mutex_t mu;
    pthread_rwlock_t fd_rw;
    int fd;            /* -1 while closed */
    bool regular;      /* fd is a regular file: write(2) never waits */
    double down_until; /* time_mono() before which writes are refused */
    atomic_int refs;
};

/*
 * A device of `type` ("file", "socket", "syslog") with its options
 * parsed and checked (strings only; Vault's names and words), not yet
 * open; one reference. NULL with the reason in err.
 */
struct audit_device *audit_device_new(const char *path, const char *type,
                                      const char *description,
                                      const cJSON *options, bool local,
                                      struct errbuf *err);
/*
 * options (a JSON object) as Vault keeps them: a new map of strings
 * (numbers and booleans written as text). NULL with the reason in err.
 */
cJSON *audit_options_as_strings(const cJSON *options, struct errbuf *err);
/* Frees d at once (it was never shared). */
void audit_device_free(struct audit_device *d);
/* Drops a reference; the last one closes and frees d. */
void audit_device_put(struct audit_device *d);
/*
 * Opens d's file or socket if it is not open (reopen: close it first,
 * for SIGHUP's log rotation). 0, or an error with Vault's "sanity check
 * failed" words in err.
 */
int audit_device_open(struct audit_device *d, bool reopen,
                      struct errbuf *err);
/* Writes one whole line within d's timeout. 0, or COFFER_EIO. */
int audit_device_write(struct audit_device *d, const char *line,
                       size_t len);
/*
 * Whether a write to d never waits on anything but the local disk (a
 * discarding file device, or one holding an open regular file).
 */
bool audit_device_never_waits(struct audit_device *d);

#endif
