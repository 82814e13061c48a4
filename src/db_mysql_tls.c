/*
 * db_mysql_tls.c - PEM text of a MySQL pool into memory files (see
 * db_mysql_tls.h).
 */
#include "db_mysql_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/*
 * No passphrase: OpenSSL's default would prompt on the terminal. An
 * encrypted key is refused (Vault takes none either).
 */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* Whether pem holds a certificate, and (want_key) a private key. */
static bool pem_has(const char *pem, bool want_key)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    bool ok;

    if (b == NULL)
        return false;
    x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL);
    ok = x != NULL;
    if (ok && want_key) {
        /* The key may come before or after the certificate. */
        BIO_free(b);
        b = BIO_new_mem_buf(pem, -1);
        k = b != NULL ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL) : NULL;
        ok = k != NULL;
    }
    EVP_PKEY_free(k);
    X509_free(x);
    BIO_free(b);
    return ok;
}

/* A sealed memory file holding text, or -1. */
static int memfile_of(const char *name, const char *text)
{
    size_t len = strlen(text), off = 0;
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (fd < 0)
        return -1;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)n;
    }
    /* Nobody may change what the library reads (it re-reads per connect). */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void memfile_close(int fd)
{
    if (fd < 0)
        return;
    /* Free the pages now rather than when the last reader lets go. */
    if (ftruncate(fd, 0) != 0)
        (void)0;
    close(fd);
}

static bool set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

void dbmy_tls_release(struct dbmy_tls *t)
{
    memfile_close(t->ca_fd);
    memfile_close(t->cert_fd);
    t->ca_fd = t->cert_fd = -1;
    t->custom = false;
}

static int tls_fail(struct dbmy_tls *t, struct db_error *err, const char *why)
{
    dbmy_tls_release(t);
    db_error_set(err, DB_ERR_SQL, "%s", why);
    return COFFER_EINVAL;
}

int dbmy_tls_prepare(struct dbmy_tls *t, const struct db_pool_config *cfg,
                     const char *host, struct db_error *err)
{
    memset(t, 0, sizeof(*t));
    t->ca_fd = t->cert_fd = -1;
    t->custom = set(cfg->tls_ca) || set(cfg->tls_cert_key);
    if (!t->custom)
        return 0;
    t->skip_verify = cfg->tls_skip_verify;
    if (set(cfg->tls_server_name) && !t->skip_verify &&
        (host == NULL || strcmp(cfg->tls_server_name, host) != 0))
        return tls_fail(t, err, "tls_server_name must be the host of "
                        "connection_url: the MySQL client verifies the "
                        "server certificate against that host");
    if (set(cfg->tls_ca)) {
        if (!pem_has(cfg->tls_ca, false))
            return tls_fail(t, err, "failed to parse tls_ca: no PEM "
                            "certificate found");
        t->ca_fd = memfile_of("coffer-mysql-ca", cfg->tls_ca);
        if (t->ca_fd < 0)
            return tls_fail(t, err, "cannot hold tls_ca in memory");
        snprintf(t->ca_path, sizeof(t->ca_path), "/proc/self/fd/%d",
                 t->ca_fd);
    }
    if (set(cfg->tls_cert_key)) {
        if (!pem_has(cfg->tls_cert_key, true))
            return tls_fail(t, err, "failed to parse tls_certificate_key: "
                            "it must hold a PEM certificate and its "
                            "private key");
        t->cert_fd = memfile_of("coffer-mysql-cert", cfg->tls_cert_key);
        if (t->cert_fd < 0)
            return tls_fail(t, err, "cannot hold tls_certificate_key in "
                            "memory");
        snprintf(t->cert_path, sizeof(t->cert_path), "/proc/self/fd/%d",
                 t->cert_fd);
    }
    return 0;
}
