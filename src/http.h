/*
 * http.h - the HTTP listener (libmicrohttpd) and the request workers.
 *
 * libmicrohttpd's few I/O threads read requests and write replies; a
 * complete request is handed to a pool of request workers, which run it
 * through core_handle, so a backend that waits never stalls the I/O.
 * Reads that cannot wait run on the I/O thread (http_inline.h).
 */
#ifndef COFFER_HTTP_H
#define COFFER_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

struct http_config {
    const char *address;       /* "127.0.0.1:8200" */
    unsigned int threads;      /* request workers (run core_handle) */
    unsigned int io_threads;   /* libmicrohttpd I/O threads; 0 = default */
    size_t max_request_size;   /* bytes; larger bodies get 413 */
    /*
     * Limits against slow or greedy clients; 0 = the default below.
     * read_header_timeout bounds the time from the start of a request to
     * its last header, read_timeout to its last body byte: totals, which
     * a client trickling bytes cannot extend. idle_timeout closes a
     * keep-alive connection that sends nothing.
     */
    int64_t read_header_timeout; /* seconds */
    int64_t read_timeout;        /* seconds */
    int64_t idle_timeout;        /* seconds */
    unsigned int max_connections;        /* in total */
    unsigned int max_connections_per_ip; /* per client address */
    /*
     * PEM files for HTTPS; both NULL = plain HTTP, both set = TLS. Read
     * once by http_start; the key is wiped from our memory right after.
     */
    const char *tls_cert_file;
    const char *tls_key_file;
};

#define HTTP_DEFAULT_MAX_REQUEST_SIZE ((size_t)32 * 1024 * 1024)
/*
 * Request workers: enough that backends stuck on a database (each
 * database config admits only a few calls at once) leave most of them
 * free for everything else.
 */
#define HTTP_DEFAULT_THREADS 32
/* I/O threads only move bytes; one per core is plenty. */
#define HTTP_DEFAULT_IO_THREADS 2
/* Vault's listener defaults (http_read_header_timeout, ...). */
#define HTTP_DEFAULT_READ_HEADER_TIMEOUT 10
#define HTTP_DEFAULT_READ_TIMEOUT 30
#define HTTP_DEFAULT_IDLE_TIMEOUT (5 * 60)
#define HTTP_DEFAULT_MAX_CONNECTIONS 4096
#define HTTP_DEFAULT_MAX_CONNECTIONS_PER_IP 512
/*
 * Query parameters one request may carry (more get a 400) and the longest
 * request target (longer gets a 414). Together they keep the parsed query
 * well inside libmicrohttpd's per-connection memory (http.c).
 */
#define HTTP_MAX_QUERY_PARAMS 256
#define HTTP_MAX_URI_LENGTH ((size_t)16 * 1024)

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
 * Request workers exit here, which closes their Lua states.
 */
void http_stop(struct http_server *srv);

/* Splits "host:port"; 0 or COFFER_EINVAL. host must hold 256 bytes. */
int http_parse_address(const char *addr, char *host, uint16_t *port);

#endif
