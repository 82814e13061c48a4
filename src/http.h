/*
 * http.h - the HTTP listener (libmicrohttpd, internal thread pool).
 *
 * Turns HTTP exchanges into struct request, hands them to core_handle,
 * and writes the reply with Vault's headers.
 */
#ifndef COFFER_HTTP_H
#define COFFER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct http_config {
    const char *address;       /* "127.0.0.1:8200" */
    unsigned int threads;      /* worker threads in the pool */
    size_t max_request_size;   /* bytes; larger bodies get 413 */
    /*
     * PEM files for HTTPS; both NULL = plain HTTP, both set = TLS. Read
     * once by http_start; the key is wiped from our memory right after.
     */
    const char *tls_cert_file;
    const char *tls_key_file;
};

#define HTTP_DEFAULT_MAX_REQUEST_SIZE ((size_t)32 * 1024 * 1024)
#define HTTP_DEFAULT_THREADS 8

struct http_server;

/*
 * Starts listening, with TLS when cfg names the certificate and key files.
 * Returns the server or NULL with words in err (an unreadable TLS file is
 * named; an invalid PEM pair is reported, with GnuTLS's reason in the log).
 */
struct http_server *http_start(const struct http_config *cfg,
                               struct errbuf *err);
/*
 * Stops accepting, lets in-flight requests finish, and frees the server.
 * Worker threads exit here, which closes their Lua states.
 */
void http_stop(struct http_server *srv);

/* Splits "host:port"; 0 or COFFER_EINVAL. host must hold 256 bytes. */
int http_parse_address(const char *addr, char *host, uint16_t *port);

#endif
