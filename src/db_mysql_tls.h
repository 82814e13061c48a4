/*
 * db_mysql_tls.h - the TLS material of a MySQL pool given as PEM text
 * (Vault's tls_ca and tls_certificate_key), handed to Connector/C.
 *
 * Connector/C only takes file names for a CA and a client certificate
 * and key (MYSQL_OPT_SSL_CA/CERT/KEY), and reads them again on every
 * connect. The PEM text is never written to a file system: it goes into
 * an anonymous memory file (memfd_create, close-on-exec, sealed against
 * writes), named to the library as /proc/self/fd/<n>, which only this
 * process can open. The memory file lives as long as the pool and is
 * emptied before it is closed.
 *
 * Semantics, as Vault's mysql plugin: when tls_ca or tls_certificate_key
 * is set, the connection must use TLS (whatever the DSN's tls= says), and
 * the server's certificate is verified against tls_ca (the system's CAs
 * when only a client certificate is given) and the host name, unless
 * tls_skip_verify. tls_skip_verify alone, without either PEM, changes
 * nothing (Vault ignores it then). tls_server_name must be the host
 * connected to: Connector/C verifies the certificate against that host
 * and cannot be told another name, so a different one is refused rather
 * than silently not checked.
 */
#ifndef COFFER_DB_MYSQL_TLS_H
#define COFFER_DB_MYSQL_TLS_H

#include <stdbool.h>

#include "db_pool.h"

struct dbmy_tls {
    bool custom;        /* tls_ca or tls_certificate_key given */
    bool skip_verify;
    int ca_fd, cert_fd; /* memory files, -1 when absent */
    char ca_path[32], cert_path[32];
};

/*
 * Checks the PEM text of cfg (a CA must hold a certificate; the client
 * PEM a certificate and a private key) and puts it in memory files.
 * host is the DSN's host (NULL for a socket). Returns 0, or COFFER_EINVAL
 * with err filled (DB_ERR_SQL); t is then released.
 */
int dbmy_tls_prepare(struct dbmy_tls *t, const struct db_pool_config *cfg,
                     const char *host, struct db_error *err);
void dbmy_tls_release(struct dbmy_tls *t);

#endif
