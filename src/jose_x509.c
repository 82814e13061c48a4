/*
 * jose_x509.c - coffer.x509's C core: certificate summaries and chain
 * verification over OpenSSL 3 (declared in jose.h, X.509 section).
 *
 * Split from jose.c, whose PEM reader (jose_pem_each, jose_der_cert) it
 * shares. As there, every decision is OpenSSL's (X509_verify_cert,
 * X509_VERIFY_PARAM_set1_host) and each public function clears the
 * thread's OpenSSL error queue on the way out.
 */
#include "jose.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

void jose_x509_info_release(struct jose_x509_info *info)
{
    free(info->subject);
    free(info->issuer);
    free(info->serial);
    strvec_release(&info->dns_names);
    strvec_release(&info->ips);
    strvec_release(&info->uris);
    strvec_release(&info->emails);
    EVP_PKEY_free(info->pkey);
    memset(info, 0, sizeof(*info));
}

/* A name as RFC 2253 text, UTF-8 kept as is. New string (free()). */
static char *name_text(const X509_NAME *name)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL, *out;
    long n;

    if (bio == NULL ||
        X509_NAME_print_ex(bio, name, 0,
                           XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) < 0) {
        BIO_free(bio);
        return xstrdup("");
    }
    n = BIO_get_mem_data(bio, &data);
    out = xstrndup(data != NULL ? data : "", n > 0 ? (size_t)n : 0);
    BIO_free(bio);
    return out;
}

/* The serial number as "0a:1b:..." (Vault's format). */
static char *serial_text(const ASN1_INTEGER *serial)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
    unsigned char *bytes;
    char *out;
    int n;

    if (bn == NULL)
        return xstrdup("");
    n = BN_num_bytes(bn);
    if (n == 0)
        n = 1;
    bytes = xcalloc((size_t)n, 1);
    BN_bn2binpad(bn, bytes, n);
    out = xmalloc((size_t)n * 3 + 1);
    for (int i = 0; i < n; i++)
        snprintf(out + 3 * i, 4, i + 1 < n ? "%02x:" : "%02x", bytes[i]);
    free(bytes);
    BN_free(bn);
    return out;
}

/* An ASN1 time as unix seconds. */
static int64_t asn1_unix(const ASN1_TIME *t)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

/*
 * An IA5String SAN as a C string; refused (skipped) if it holds a NUL,
 * the classic way to make "good.com\0.evil.com" read as good.com.
 */
static void push_ia5(struct strvec *sv, const ASN1_IA5STRING *s)
{
    const unsigned char *d = ASN1_STRING_get0_data(s);
    int n = ASN1_STRING_length(s);

    if (d == NULL || n < 0 || memchr(d, '\0', (size_t)n) != NULL)
        return;
    strvec_push_owned(sv, xstrndup((const char *)d, (size_t)n));
}

static void push_ip(struct strvec *sv, const ASN1_OCTET_STRING *s)
{
    char text[INET6_ADDRSTRLEN];
    const unsigned char *d = ASN1_STRING_get0_data(s);
    int n = ASN1_STRING_length(s);

    if (n == 4 && inet_ntop(AF_INET, d, text, sizeof(text)) != NULL)
        strvec_push(sv, text);
    else if (n == 16 && inet_ntop(AF_INET6, d, text, sizeof(text)) != NULL)
        strvec_push(sv, text);
}

static void collect_sans(X509 *x, struct jose_x509_info *info)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL,
                                            NULL);

    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        switch (g->type) {
        case GEN_DNS:
            push_ia5(&info->dns_names, g->d.dNSName);
            break;
        case GEN_EMAIL:
            push_ia5(&info->emails, g->d.rfc822Name);
            break;
        case GEN_URI:
            push_ia5(&info->uris, g->d.uniformResourceIdentifier);
            break;
        case GEN_IPADD:
            push_ip(&info->ips, g->d.iPAddress);
            break;
        default:
            break;
        }
    }
    GENERAL_NAMES_free(names);
}

/* Callback state: every CERTIFICATE block into a stack. */
struct pem_certs_state {
    STACK_OF(X509) *certs;
    bool only_certs; /* refuse other blocks (else skip them) */
};

static int pem_cert_block(void *arg, const char *label,
                          const unsigned char *der, long der_len,
                          struct errbuf *err)
{
    struct pem_certs_state *st = arg;
    X509 *x;

    if (strcmp(label, "CERTIFICATE") != 0) {
        if (!st->only_certs)
            return COFFER_OK;
        errbuf_set(err, "PEM block is not a CERTIFICATE");
        return COFFER_EINVAL;
    }
    if (sk_X509_num(st->certs) >= JOSE_BUNDLE_MAX_CERTS) {
        errbuf_set(err, "more than %d certificates", JOSE_BUNDLE_MAX_CERTS);
        return COFFER_EINVAL;
    }
    x = jose_der_cert(der, der_len);
    if (x == NULL) {
        errbuf_set(err, "unreadable certificate");
        return COFFER_EINVAL;
    }
    if (sk_X509_push(st->certs, x) <= 0) {
        X509_free(x);
        errbuf_set(err, "out of memory");
        return COFFER_ENOMEM;
    }
    return COFFER_OK;
}

/*
 * Every certificate of a PEM text (what = "ca_pem", ... for messages).
 * *out is a new stack (sk_X509_pop_free(.., X509_free)), possibly empty.
 */
static int load_certs(const char *pem, size_t len, const char *what,
                      bool only_certs, STACK_OF(X509) **out,
                      struct errbuf *err)
{
    struct pem_certs_state st = {sk_X509_new_null(), only_certs};
    struct errbuf perr;
    size_t count = 0;
    int rc;

    *out = NULL;
    if (st.certs == NULL) {
        errbuf_set(err, "x509: out of memory");
        return COFFER_ENOMEM;
    }
    if (len > JOSE_BUNDLE_MAX) {
        errbuf_set(err, "x509: %s larger than %d bytes", what, JOSE_BUNDLE_MAX);
        sk_X509_pop_free(st.certs, X509_free);
        return COFFER_EINVAL;
    }
    rc = jose_pem_each(pem, len, pem_cert_block, &st, &count, &perr);
    if (rc != 0) {
        errbuf_set(err, "x509: %s: %s", what, perr.msg);
        sk_X509_pop_free(st.certs, X509_free);
        return rc;
    }
    *out = st.certs;
    return COFFER_OK;
}

int jose_x509_parse(const char *pem, size_t len, struct jose_x509_info *info,
                    struct errbuf *err)
{
    STACK_OF(X509) *certs = NULL;
    X509 *x;
    int rc;

    memset(info, 0, sizeof(*info));
    if (len > JOSE_PEM_MAX) {
        errbuf_set(err, "x509: PEM text too large");
        return COFFER_EINVAL;
    }
    rc = load_certs(pem, len, "certificate", true, &certs, err);
    if (rc != 0)
        return rc;
    if (sk_X509_num(certs) != 1) {
        errbuf_set(err, "x509: expected exactly one CERTIFICATE block");
        sk_X509_pop_free(certs, X509_free);
        return COFFER_EINVAL;
    }
    x = sk_X509_value(certs, 0);
    info->subject = name_text(X509_get_subject_name(x));
    info->issuer = name_text(X509_get_issuer_name(x));
    info->serial = serial_text(X509_get0_serialNumber(x));
    info->not_before = asn1_unix(X509_get0_notBefore(x));
    info->not_after = asn1_unix(X509_get0_notAfter(x));
    info->is_ca = (X509_get_extension_flags(x) & EXFLAG_CA) != 0;
    collect_sans(x, info);
    info->pkey = X509_get_pubkey(x);
    sk_X509_pop_free(certs, X509_free);
    ERR_clear_error();
    return COFFER_OK;
}

/* Applies time, host name or IP, and purpose to a verification context. */
static int verify_params(X509_STORE_CTX *ctx,
                         const struct jose_x509_verify_opts *o)
{
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    unsigned char ip[16];

    /* Every certificate in ca_pem is an anchor, as in Go's roots pool. */
    if (X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN) != 1)
        return COFFER_ENOMEM;
    if (o->has_now)
        X509_VERIFY_PARAM_set_time(param, (time_t)o->now);
    if (o->dns_name != NULL) {
        bool is_ip = inet_pton(AF_INET, o->dns_name, ip) == 1 ||
                     inet_pton(AF_INET6, o->dns_name, ip) == 1;
        X509_VERIFY_PARAM_set_hostflags(param,
                                        X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if ((is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, o->dns_name)
                   : X509_VERIFY_PARAM_set1_host(param, o->dns_name, 0)) != 1)
            return COFFER_EINVAL;
    }
    if (o->purpose == JOSE_PURPOSE_CLIENT &&
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1)
        return COFFER_EINVAL;
    if (o->purpose == JOSE_PURPOSE_SERVER &&
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER) != 1)
        return COFFER_EINVAL;
    return COFFER_OK;
}

/* A store trusting every certificate of ca_pem (at least one). */
static int trust_store(const struct jose_x509_verify_opts *o,
                       X509_STORE **out, struct errbuf *err)
{
    STACK_OF(X509) *cas = NULL;
    X509_STORE *store = NULL;
    int rc;

    *out = NULL;
    rc = load_certs(o->ca_pem != NULL ? o->ca_pem : "", o->ca_len, "ca_pem",
                    false, &cas, err);
    if (rc != 0)
        return rc;
    rc = COFFER_EINVAL;
    if (sk_X509_num(cas) == 0) {
        errbuf_set(err, "x509: ca_pem holds no certificate");
        goto out;
    }
    store = X509_STORE_new();
    if (store == NULL) {
        errbuf_set(err, "x509: out of memory");
        goto out;
    }
    for (int i = 0; i < sk_X509_num(cas); i++) {
        if (X509_STORE_add_cert(store, sk_X509_value(cas, i)) != 1) {
            errbuf_set(err, "x509: ca_pem: cannot add certificate %d", i + 1);
            goto out;
        }
    }
    *out = store;
    store = NULL;
    rc = COFFER_OK;
out:
    X509_STORE_free(store);
    sk_X509_pop_free(cas, X509_free);
    return rc;
}

int jose_x509_verify(const char *leaf_pem, size_t len,
                     const struct jose_x509_verify_opts *o,
                     struct errbuf *err)
{
    STACK_OF(X509) *chain = NULL, *inter = NULL;
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = NULL;
    X509 *leaf;
    int rc;

    rc = load_certs(leaf_pem, len, "certificate", false, &chain, err);
    if (rc == 0 && sk_X509_num(chain) == 0) {
        errbuf_set(err, "x509: no CERTIFICATE block found");
        rc = COFFER_EINVAL;
    }
    if (rc == 0 && o->intermediates_pem != NULL)
        rc = load_certs(o->intermediates_pem, o->intermediates_len,
                        "intermediates_pem", false, &inter, err);
    for (int i = 0; rc == 0 && inter != NULL && i < sk_X509_num(inter); i++) {
        if (sk_X509_push(chain, sk_X509_value(inter, i)) <= 0)
            rc = COFFER_ENOMEM;
        else
            sk_X509_set(inter, i, NULL); /* moved into chain */
    }
    if (rc == 0)
        rc = trust_store(o, &store, err);
    if (rc != 0)
        goto out;
    leaf = sk_X509_shift(chain);
    ctx = X509_STORE_CTX_new();
    if (ctx == NULL || X509_STORE_CTX_init(ctx, store, leaf, chain) != 1 ||
        verify_params(ctx, o) != 0) {
        errbuf_set(err, "x509: cannot set up the verification");
        rc = COFFER_EINVAL;
    } else if (X509_verify_cert(ctx) != 1) {
        errbuf_set(err, "x509: certificate verify failed: %s",
                   X509_verify_cert_error_string(
                       X509_STORE_CTX_get_error(ctx)));
        rc = COFFER_EPERM;
    }
    X509_STORE_CTX_free(ctx);
    X509_free(leaf);
out:
    X509_STORE_free(store);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(inter, X509_free);
    ERR_clear_error();
    return rc;
}
