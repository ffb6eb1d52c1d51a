/* Upstream TLS clients over mbedTLS 2.28 (SPEC §6.5), L2.
 *
 * Threads: a struct np_tls_conf is written only in np_tls_conf_new(). Afterwards connection
 * threads read its ssl config and CA chain (mbedTLS only reads them), draw from its CTR-DRBG
 * (locked by mbedTLS itself: MBEDTLS_THREADING_C, checked below) and use the session slot under
 * c->lock. A struct np_tls belongs to one thread at a time.
 *
 * Resumption skips certificate verification, so a saved session is only offered again for the
 * same host it was verified for (the slot remembers the host).
 *
 * The system bundle (about 140 roots, ~0.5 MiB parsed) is parsed once per process and shared
 * by every conf that trusts it: a refcounted entry per bundle path in a process-wide list under
 * a static mutex (the one piece of process-wide state of this module, see docs/THREADING.md).
 * A conf's own roots (ca_file, tls_ca) are parsed into its own chain, whose last certificate
 * is linked to the shared chain for verification and unlinked again before it is freed. The
 * last conf released frees the shared chain, so nothing outlives the last proxy.
 *
 * A conf may carry a client certificate for mutual TLS (a route's tls_client_cert and key).
 * The session slot and the upstream pool belong to one conf, i.e. one route, so a session or
 * a connection made with one route's certificate is never used by another route. */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/config.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#include "alloc.h"
#include "common.h"

/* Build-configuration checks (skipped by linters that do not read the system headers). */
#if defined(MBEDTLS_VERSION_NUMBER)
#if MBEDTLS_VERSION_NUMBER < 0x021C0000 || MBEDTLS_VERSION_NUMBER >= 0x03000000
#error "lib/tls.c is written for mbedTLS 2.28"
#endif
#if !defined(MBEDTLS_THREADING_C) || !defined(MBEDTLS_THREADING_PTHREAD)
#error "the shared CTR-DRBG needs mbedTLS built with MBEDTLS_THREADING_C and _PTHREAD"
#endif
#if !defined(MBEDTLS_SSL_KEEP_PEER_CERTIFICATE)
#error "the iPAddress check needs MBEDTLS_SSL_KEEP_PEER_CERTIFICATE"
#endif
#if !defined(MBEDTLS_SSL_SERVER_NAME_INDICATION) || !defined(MBEDTLS_SSL_PROTO_TLS1_2)
#error "mbedTLS lacks SNI or TLS 1.2"
#endif
#endif

/* GeneralName tag of an iPAddress entry in subjectAltName (RFC 5280 §4.2.1.6). */
#define SAN_IP_TAG   (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7)
#define PATH_SHOWN   160                   /* bytes of a file name quoted in a reason */
#define KEY_FILE_MAX ((size_t)1024 * 1024) /* largest client key file read */

/* One parsed system bundle, shared by every conf of the process that trusts it. */
struct shared_roots {
    struct shared_roots *next; /* under shared_lock */
    unsigned refs;             /* under shared_lock */
    char *path;
    mbedtls_x509_crt crt; /* read-only once listed */
};

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct shared_roots *shared_list; /* under shared_lock */

struct np_tls_conf {
    mbedtls_ssl_config ssl;
    mbedtls_x509_crt ca;           /* ca_file + tls_ca; linked to sys->crt while in use */
    mbedtls_x509_crt *ca_tail;     /* the last certificate of ca while linked, else NULL */
    struct shared_roots *sys;      /* the system bundle, or NULL */
    const mbedtls_x509_crt *chain; /* what verification trusts: ca (+ sys), or sys alone */
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    pthread_mutex_t lock;      /* guards last and last_host */
    mbedtls_ssl_session *last; /* newest session, or NULL */
    char last_host[NP_HOST_BUF];
    mbedtls_x509_crt own_crt;   /* client certificate (chain) of mutual TLS, if any */
    mbedtls_pk_context own_key; /* its private key (wiped by mbedtls_pk_free) */
};

#define NP_TLS_READAHEAD ((size_t)16384 + 512) /* one full record and its overhead */

struct np_tls {
    mbedtls_ssl_context ssl;
    int fd;
    int stop_fd;
    int sock_err;      /* errno of the last failed send/recv of the current call; 0 = none */
    unsigned verified; /* certificates checked in this handshake: 0 after a resumption */
    bool established;
    /* Read-ahead: mbedTLS asks for a record's 5-byte header and then its body; one recv()
     * into this buffer usually serves both (and several small records), halving the reads. */
    size_t roff;
    size_t rlen;
    unsigned char rbuf[NP_TLS_READAHEAD];
};

/* The host as given to np_tls_connect, normalised. */
struct host_id {
    char name[NP_HOST_BUF]; /* lower case, no trailing dot; or the IP in inet_ntop form */
    unsigned char ip[16];
    size_t ip_len; /* 4 or 16 for an IP literal, 0 for a DNS name */
};

/* X25519 first, then the NIST curves servers actually use. Must outlive every conf. */
/* Forward-secret AEAD suites only, AES-GCM first (AES-NI makes it the cheapest here), then
 * ChaCha20-Poly1305. No CBC, no static RSA key exchange. */
static const int tls_ciphersuites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

static const mbedtls_ecp_group_id tls_curves[] = {
    MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_SECP521R1,  MBEDTLS_ECP_DP_NONE,
};

static const unsigned char drbg_label[] = "nonoproxy upstream tls";

static void set_why(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Format a one-line reason into why (capacity cap; nothing when cap is 0). */
static void
set_why(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (why != NULL && cap > 0) {
        (void)vsnprintf(why, cap, fmt, ap);
    }
    va_end(ap);
}

/* Copy path into buf for quoting in a reason (control characters become '?'). */
static const char *
shown_path(const char *path, char *buf, size_t cap)
{
    return np_copy_printable(buf, cap, path, strlen(path));
}

/* One source of trust roots. */
struct root_src {
    const char *what; /* how a reason names it: "ca_file", ... */
    const char *path; /* NULL = not configured */
    bool optional;    /* a missing file is skipped */
    bool lenient;     /* certificates mbedTLS cannot parse are skipped (the system bundle) */
};

/* Load the PEM file of src into chain. Returns 0, or -1 with a reason naming the file. */
static int
load_roots(mbedtls_x509_crt *chain, const struct root_src *src, char *why, size_t cap)
{
    char shown[PATH_SHOWN];
    char err[128];
    int e;
    int r;

    if (src->optional && access(src->path, F_OK) != 0 && errno == ENOENT) {
        return 0;
    }
    errno = 0;
    r = mbedtls_x509_crt_parse_file(chain, src->path);
    e = errno;
    if (r == 0 || (r > 0 && src->lenient)) {
        return 0;
    }
    (void)shown_path(src->path, shown, sizeof(shown));
    if (r == MBEDTLS_ERR_PK_FILE_IO_ERROR) {
        set_why(why, cap, "cannot read %s %s: %s", src->what, shown,
                e != 0 ? NP_ERRSTR(e) : "read error");
    } else if (r > 0) {
        set_why(why, cap, "%s %s: %d certificate(s) could not be parsed", src->what, shown, r);
    } else {
        mbedtls_strerror(r, err, sizeof(err));
        set_why(why, cap, "%s %s: no usable certificate: %s", src->what, shown, err);
    }
    return -1;
}

/* Drop one reference to a shared bundle; the last one frees it. NULL-safe. */
static void
shared_put(struct shared_roots *sr)
{
    struct shared_roots **pp;
    bool last = false;

    if (sr == NULL) {
        return;
    }
    (void)pthread_mutex_lock(&shared_lock);
    if (--sr->refs == 0) {
        for (pp = &shared_list; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == sr) {
                *pp = sr->next;
                break;
            }
        }
        last = true;
    }
    (void)pthread_mutex_unlock(&shared_lock);
    if (last) {
        mbedtls_x509_crt_free(&sr->crt);
        np_free(sr->path);
        np_free(sr);
    }
}

/* Parse the bundle of src into a new shared entry (called under shared_lock). *out is NULL
 * when the file holds no usable certificate or is optional and missing. 0, or -1 with why. */
static int
shared_parse(const struct root_src *src, struct shared_roots **out, char *why, size_t cap)
{
    struct shared_roots *sr = np_calloc(1, sizeof(*sr));
    int rc;

    *out = NULL;
    if (sr == NULL || (sr->path = np_strdup(src->path)) == NULL) {
        np_free(sr);
        set_why(why, cap, "out of memory");
        return -1;
    }
    mbedtls_x509_crt_init(&sr->crt);
    rc = load_roots(&sr->crt, src, why, cap);
    if (rc != 0 || sr->crt.version == 0) { /* an error, or no root: missing and optional */
        mbedtls_x509_crt_free(&sr->crt);
        np_free(sr->path);
        np_free(sr);
        return rc;
    }
    sr->refs = 1;
    sr->next = shared_list;
    shared_list = sr;
    *out = sr;
    return 0;
}

/* Take a reference to the parsed bundle of src, parsing it on first use. *out is NULL when
 * the bundle gives no root (missing and optional). 0, or -1 with why. */
static int
shared_get(const struct root_src *src, struct shared_roots **out, char *why, size_t cap)
{
    struct shared_roots *sr;
    int rc = 0;

    *out = NULL;
    (void)pthread_mutex_lock(&shared_lock);
    for (sr = shared_list; sr != NULL; sr = sr->next) {
        if (strcmp(sr->path, src->path) == 0) {
            sr->refs++;
            *out = sr;
            break;
        }
    }
    if (sr == NULL) {
        rc = shared_parse(src, out, why, cap);
    }
    (void)pthread_mutex_unlock(&shared_lock);
    return rc;
}

unsigned
np_tls_shared_bundle_refs(const char *path)
{
    const struct shared_roots *sr;
    unsigned refs = 0;

    (void)pthread_mutex_lock(&shared_lock);
    for (sr = shared_list; sr != NULL; sr = sr->next) {
        if (strcmp(sr->path, path) == 0) {
            refs = sr->refs;
        }
    }
    (void)pthread_mutex_unlock(&shared_lock);
    return refs;
}

/* Load the system bundle (shared) and the conf's own sources srcs[1..n) into c, and link them
 * into the one chain verification trusts. Returns 0, or -1 with why. */
static int
load_all_roots(struct np_tls_conf *c, const struct root_src *srcs, size_t n, char *why, size_t cap)
{
    mbedtls_x509_crt *tail;
    size_t i;

    if (shared_get(&srcs[0], &c->sys, why, cap) != 0) {
        return -1;
    }
    for (i = 1; i < n; i++) {
        if (srcs[i].path != NULL && load_roots(&c->ca, &srcs[i], why, cap) != 0) {
            return -1;
        }
    }
    if (c->ca.version == 0) {
        c->chain = c->sys != NULL ? &c->sys->crt : NULL;
    } else {
        for (tail = &c->ca; tail->next != NULL; tail = tail->next) {
        }
        if (c->sys != NULL) {
            tail->next = &c->sys->crt; /* read-only from here; unlinked in np_tls_conf_free */
            c->ca_tail = tail;
        }
        c->chain = &c->ca;
    }
    if (c->chain == NULL) {
        set_why(why, cap, "no trust roots loaded");
        return -1;
    }
    return 0;
}

/* Seed the DRBG and fill the client ssl config (verification required, TLS 1.2+, X25519
 * first). Returns 0, or -1 with why. */
static int
setup_ssl(struct np_tls_conf *c, char *why, size_t cap)
{
    char err[128];
    int r;

    r = mbedtls_ctr_drbg_seed(&c->drbg, mbedtls_entropy_func, &c->entropy, drbg_label,
                              sizeof(drbg_label) - 1);
    if (r != 0) {
        mbedtls_strerror(r, err, sizeof(err));
        set_why(why, cap, "cannot seed the TLS random generator: %s", err);
        return -1;
    }
    r = mbedtls_ssl_config_defaults(&c->ssl, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT);
    if (r != 0) {
        mbedtls_strerror(r, err, sizeof(err));
        set_why(why, cap, "cannot set up the TLS config: %s", err);
        return -1;
    }
    mbedtls_ssl_conf_authmode(&c->ssl, MBEDTLS_SSL_VERIFY_REQUIRED);
    /* mbedTLS only reads the chain; the cast drops a const its 2.28 API lacks. */
    mbedtls_ssl_conf_ca_chain(&c->ssl, (mbedtls_x509_crt *)(uintptr_t)c->chain, NULL);
    mbedtls_ssl_conf_rng(&c->ssl, mbedtls_ctr_drbg_random, &c->drbg);
    mbedtls_ssl_conf_min_version(&c->ssl, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_curves(&c->ssl, tls_curves);
    mbedtls_ssl_conf_ciphersuites(&c->ssl, tls_ciphersuites);
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
    mbedtls_ssl_conf_session_tickets(&c->ssl, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
#endif
#if defined(MBEDTLS_SSL_RENEGOTIATION)
    mbedtls_ssl_conf_renegotiation(&c->ssl, MBEDTLS_SSL_RENEGOTIATION_DISABLED);
#endif
    return 0;
}

/* Build a shared client config: trust roots, DRBG, ssl config, empty session slot. */
int
np_tls_conf_new(const struct np_tls_roots *roots, struct np_tls_conf **out, char *why,
                size_t why_cap)
{
    struct np_tls_conf *c = np_calloc(1, sizeof(*c));
    const struct root_src srcs[] = {
        {"system trust bundle",
         roots->system_bundle != NULL ? roots->system_bundle : NP_TLS_SYSTEM_BUNDLE,
         roots->ca_file != NULL || roots->tls_ca != NULL, true},
        {"ca_file", roots->ca_file, false, false},
        {"tls_ca", roots->tls_ca, false, false},
    };
    int rc = -1;

    *out = NULL;
    set_why(why, why_cap, "%s", "");
    if (c == NULL) {
        set_why(why, why_cap, "out of memory");
        return -1;
    }
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        set_why(why, why_cap, "cannot create a mutex");
        np_free(c);
        return -1;
    }
    mbedtls_ssl_config_init(&c->ssl);
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_x509_crt_init(&c->own_crt);
    mbedtls_pk_init(&c->own_key);
    mbedtls_entropy_init(&c->entropy);
    mbedtls_ctr_drbg_init(&c->drbg);
    if (load_all_roots(c, srcs, NP_ARRAY_LEN(srcs), why, why_cap) != 0 ||
        setup_ssl(c, why, why_cap) != 0) {
        goto out;
    }
    *out = c;
    c = NULL; /* ownership moved to the caller */
    rc = 0;
out:
    np_tls_conf_free(c);
    return rc;
}

/* Free a heap session made by save_session(). NULL-safe. */
static void
session_destroy(mbedtls_ssl_session *s)
{
    if (s != NULL) {
        mbedtls_ssl_session_free(s);
        np_free(s);
    }
}

void
np_tls_conf_free(struct np_tls_conf *c)
{
    if (c == NULL) {
        return;
    }
    session_destroy(c->last);
    mbedtls_ssl_config_free(&c->ssl);
    if (c->ca_tail != NULL) {
        c->ca_tail->next = NULL; /* the shared chain is not this conf's to free */
    }
    mbedtls_x509_crt_free(&c->ca);
    mbedtls_x509_crt_free(&c->own_crt);
    mbedtls_pk_free(&c->own_key);
    shared_put(c->sys);
    mbedtls_ctr_drbg_free(&c->drbg);
    mbedtls_entropy_free(&c->entropy);
    (void)pthread_mutex_destroy(&c->lock);
    np_free(c);
}

/* Read the key file path (at most KEY_FILE_MAX bytes) into a NUL-terminated np_malloc'd *buf
 * of *len bytes, NUL included (as mbedtls_pk_parse_key wants PEM). Returns 0, or -1 with why;
 * the caller wipes and frees *buf. */
static int
read_key_file(const char *path, unsigned char **buf, size_t *len, char *why, size_t cap)
{
    char shown[PATH_SHOWN];
    struct stat st;
    size_t got = 0;
    ssize_t n = 0;
    /* O_NONBLOCK: opening a FIFO with no writer would wait forever; it is refused below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    (void)shown_path(path, shown, sizeof(shown));
    if (fd < 0) {
        set_why(why, cap, "tls_client_key: cannot read '%s': %s", shown, NP_ERRSTR(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_why(why, cap, "tls_client_key: cannot read '%s': not a regular file", shown);
        goto fail;
    }
    if ((uintmax_t)st.st_size > KEY_FILE_MAX) {
        set_why(why, cap, "tls_client_key: '%s': larger than 1 MiB", shown);
        goto fail;
    }
    *buf = np_malloc((size_t)st.st_size + 1);
    if (*buf == NULL) {
        set_why(why, cap, "tls_client_key: out of memory");
        goto fail;
    }
    while (got < (size_t)st.st_size) {
        n = read(fd, *buf + got, (size_t)st.st_size - got);
        if (n > 0) {
            got += (size_t)n;
        } else if (n == 0 || errno != EINTR) {
            break; /* a short file is parsed as it is (and refused when incomplete) */
        }
    }
    (*buf)[got] = '\0';
    *len = got + 1;
    (void)close(fd);
    return 0;
fail:
    (void)close(fd);
    return -1;
}

/* Parse the unencrypted PEM key of key_path into c->own_key. Returns 0, or -1 with why. */
static int
load_client_key(struct np_tls_conf *c, const char *key_path, char *why, size_t cap)
{
    char shown[PATH_SHOWN];
    char err[128];
    unsigned char *buf = NULL;
    size_t len = 0;
    int r;

    if (read_key_file(key_path, &buf, &len, why, cap) != 0) {
        return -1;
    }
    r = mbedtls_pk_parse_key(&c->own_key, buf, len, NULL, 0);
    np_secure_zero(buf, len);
    np_free(buf);
    if (r == 0) {
        return 0;
    }
    (void)shown_path(key_path, shown, sizeof(shown));
    if (r == MBEDTLS_ERR_PK_PASSWORD_REQUIRED || r == MBEDTLS_ERR_PK_PASSWORD_MISMATCH) {
        set_why(why, cap, "tls_client_key: '%s' is encrypted; give an unencrypted PEM key", shown);
    } else {
        mbedtls_strerror(r, err, sizeof(err));
        set_why(why, cap, "tls_client_key: '%s' is not a usable PEM private key: %s", shown, err);
    }
    return -1;
}

int
np_tls_conf_set_client_cert(struct np_tls_conf *c, const char *cert_path, const char *key_path,
                            char *why, size_t why_cap)
{
    char shown[PATH_SHOWN];
    char err[128];
    int e;
    int r;

    (void)shown_path(cert_path, shown, sizeof(shown));
    e = np_regular_file_check(cert_path);
    if (e != 0) {
        set_why(why, why_cap, "tls_client_cert: cannot read '%s': %s", shown,
                e > 0 ? NP_ERRSTR(e) : "not a regular file");
        return -1;
    }
    errno = 0;
    r = mbedtls_x509_crt_parse_file(&c->own_crt, cert_path);
    e = errno;
    if (r == MBEDTLS_ERR_PK_FILE_IO_ERROR) {
        set_why(why, why_cap, "tls_client_cert: cannot read '%s': %s", shown,
                e != 0 ? NP_ERRSTR(e) : "read error");
        return -1;
    }
    if (r != 0) {
        mbedtls_strerror(r < 0 ? r : 0, err, sizeof(err));
        set_why(why, why_cap, "tls_client_cert: '%s' holds no usable PEM certificate%s%s", shown,
                r < 0 ? ": " : "", r < 0 ? err : "");
        return -1;
    }
    if (load_client_key(c, key_path, why, why_cap) != 0) {
        return -1;
    }
    r = mbedtls_pk_check_pair(&c->own_crt.pk, &c->own_key);
    if (r != 0) {
        char key_shown[PATH_SHOWN];

        (void)shown_path(key_path, key_shown, sizeof(key_shown));
        set_why(why, why_cap, "tls_client_key: '%s' does not match tls_client_cert '%s'", key_shown,
                shown);
        return -1;
    }
    r = mbedtls_ssl_conf_own_cert(&c->ssl, &c->own_crt, &c->own_key);
    if (r != 0) {
        mbedtls_strerror(r, err, sizeof(err));
        set_why(why, why_cap, "tls_client_cert: '%s' cannot be used: %s", shown, err);
        return -1;
    }
    return 0;
}

/* Offer c's saved session to ssl when it was made for host key. Returns whether it did. */
static bool
offer_session(struct np_tls_conf *c, mbedtls_ssl_context *ssl, const char *key)
{
    bool offered = false;

    (void)pthread_mutex_lock(&c->lock);
    if (c->last != NULL && strcmp(c->last_host, key) == 0) {
        offered = mbedtls_ssl_set_session(ssl, c->last) == 0; /* deep copy */
    }
    (void)pthread_mutex_unlock(&c->lock);
    return offered;
}

/* Keep ssl's session (just verified for host key) as c's newest. Failures only cost a future
 * full handshake, so they are ignored. */
static void
save_session(struct np_tls_conf *c, const mbedtls_ssl_context *ssl, const char *key)
{
    mbedtls_ssl_session *s = np_calloc(1, sizeof(*s));
    mbedtls_ssl_session *old;
    size_t n = strlen(key);

    if (s == NULL) {
        return;
    }
    mbedtls_ssl_session_init(s);
    if (n >= sizeof(c->last_host) || mbedtls_ssl_get_session(ssl, s) != 0) {
        session_destroy(s);
        return;
    }
    (void)pthread_mutex_lock(&c->lock);
    old = c->last;
    c->last = s;
    memcpy(c->last_host, key, n + 1);
    (void)pthread_mutex_unlock(&c->lock);
    session_destroy(old);
}

/* Forget c's saved session for host key (a handshake that offered it failed). */
static void
drop_session(struct np_tls_conf *c, const char *key)
{
    mbedtls_ssl_session *old = NULL;

    (void)pthread_mutex_lock(&c->lock);
    if (c->last != NULL && strcmp(c->last_host, key) == 0) {
        old = c->last;
        c->last = NULL;
    }
    (void)pthread_mutex_unlock(&c->lock);
    session_destroy(old);
}

/* Parse host into id: an IPv4/IPv6 literal (brackets allowed) or a DNS name, lower-cased and
 * without a trailing dot. Returns 0, or -1 when host is empty, too long or has spaces or
 * control characters. */
static int
parse_host(const char *host, struct host_id *id)
{
    size_t n = strlen(host);
    bool bracketed = n >= 2 && host[0] == '[' && host[n - 1] == ']';
    size_t i;
    char lit[NP_HOST_BUF];

    memset(id, 0, sizeof(*id));
    if (bracketed) {
        host++;
        n -= 2;
    }
    if (n == 0 || n > NP_MAX_HOST) {
        return -1;
    }
    memcpy(lit, host, n);
    lit[n] = '\0';
    if (inet_pton(AF_INET, lit, id->ip) == 1) {
        id->ip_len = 4;
    } else if (inet_pton(AF_INET6, lit, id->ip) == 1) {
        id->ip_len = 16;
    }
    if (bracketed && id->ip_len != 16) {
        return -1; /* brackets only around an IPv6 address */
    }
    if (id->ip_len != 0) {
        /* The canonical text keys the session slot: "::1" and "0:0:0:0:0:0:0:1" are one host. */
        if (inet_ntop(id->ip_len == 4 ? AF_INET : AF_INET6, id->ip, id->name,
                      (socklen_t)sizeof(id->name)) == NULL) {
            return -1;
        }
        return 0;
    }
    if (lit[n - 1] == '.') {
        n--; /* "example.com." is example.com; SNI carries no trailing dot */
    }
    for (i = 0; i < n; i++) {
        char ch = lit[i];

        if ((unsigned char)ch <= 0x20 || (unsigned char)ch >= 0x7f) {
            return -1;
        }
        if (ch >= 'A' && ch <= 'Z') {
            ch = (char)(ch - 'A' + 'a');
        }
        id->name[i] = ch;
    }
    id->name[n] = '\0';
    return n == 0 ? -1 : 0;
}

/* mbedTLS send callback on the non-blocking socket. */
static int
bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct np_tls *t = ctx;

    if (len > INT_MAX) {
        len = INT_MAX;
    }
    for (;;) {
        ssize_t r = send(t->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (r >= 0) {
            return (int)r;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return MBEDTLS_ERR_SSL_WANT_WRITE;
        }
        t->sock_err = errno;
        return (errno == EPIPE || errno == ECONNRESET) ? MBEDTLS_ERR_NET_CONN_RESET
                                                       : MBEDTLS_ERR_NET_SEND_FAILED;
    }
}

/* mbedTLS receive callback on the non-blocking socket; 0 is the TCP end of stream. */
static int
bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct np_tls *t = ctx;

    if (len > INT_MAX) {
        len = INT_MAX;
    }
    for (;;) {
        ssize_t r;

        if (t->roff < t->rlen) {
            size_t n = t->rlen - t->roff < len ? t->rlen - t->roff : len;
            memcpy(buf, t->rbuf + t->roff, n);
            t->roff += n;
            return (int)n;
        }
        r = recv(t->fd, t->rbuf, sizeof(t->rbuf), MSG_DONTWAIT);
        if (r > 0) {
            t->roff = 0;
            t->rlen = (size_t)r;
            continue;
        }
        if (r == 0) {
            return 0;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return MBEDTLS_ERR_SSL_WANT_READ;
        }
        t->sock_err = errno;
        return errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_RECV_FAILED;
    }
}

/* Count the certificates mbedTLS verifies (none when the handshake resumed a session). */
static int
count_verify(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    struct np_tls *t = ctx;

    NP_UNUSED(crt);
    NP_UNUSED(depth);
    NP_UNUSED(flags);
    t->verified++;
    return 0;
}

/* Wait for what mbedTLS asked for (want = MBEDTLS_ERR_SSL_WANT_READ / _WRITE), bounded by
 * deadline and stop_fd. A peer that keeps trickling bytes cannot stretch past the deadline. */
static enum np_io
tls_wait(const struct np_tls *t, int want, int stop_fd, uint64_t deadline)
{
    short ev = want == MBEDTLS_ERR_SSL_WANT_READ ? POLLIN : POLLOUT;
    enum np_io w = np_net_wait(t->fd, ev, stop_fd, deadline);

    if (w == NP_IO_OK && deadline != 0 && np_now_ms() >= deadline) {
        w = NP_IO_TIMEOUT;
    }
    return w;
}

/* Turn mbedtls_x509_crt_verify_info's lines into "a; b" in dst (capacity cap > 0). */
static void
verify_text(uint32_t flags, char *dst, size_t cap)
{
    char lines[512];
    size_t o = 0;
    size_t i;
    int n = mbedtls_x509_crt_verify_info(lines, sizeof(lines), "", flags);

    if (n < 0) {
        lines[0] = '\0';
    }
    for (i = 0; lines[i] != '\0' && o + 1 < cap; i++) {
        if (lines[i] != '\n') {
            dst[o++] = lines[i];
        } else if (lines[i + 1] != '\0' && o + 3 < cap) {
            dst[o++] = ';';
            dst[o++] = ' ';
        }
    }
    dst[o] = '\0';
}

/* Describe handshake failure r of t (for host) in why. */
static void
handshake_why(const struct np_tls *t, int r, const struct host_id *id, char *why, size_t cap)
{
    uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
    char text[400];

    if (flags == MBEDTLS_X509_BADCERT_CN_MISMATCH) {
        set_why(why, cap, "certificate does not match host %s", id->name);
    } else if (flags != 0 && flags != UINT32_MAX) {
        verify_text(flags, text, sizeof(text));
        set_why(why, cap, "certificate verification failed: %s", text);
    } else if (r == MBEDTLS_ERR_SSL_CONN_EOF) {
        set_why(why, cap, "TLS handshake failed: connection closed by peer");
    } else if (t->sock_err != 0) {
        set_why(why, cap, "TLS handshake failed: %s", NP_ERRSTR(t->sock_err));
    } else {
        mbedtls_strerror(r, text, sizeof(text));
        set_why(why, cap, "TLS handshake failed: %s", text);
    }
}

/* Drive the handshake of t to its end. */
static enum np_io
handshake(struct np_tls *t, uint64_t deadline, const struct host_id *id, char *why, size_t cap)
{
    for (;;) {
        int r = mbedtls_ssl_handshake(&t->ssl);
        enum np_io w;

        if (r == 0) {
            return NP_IO_OK;
        }
        if (r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE) {
            handshake_why(t, r, id, why, cap);
            errno = t->sock_err != 0 ? t->sock_err : EPROTO;
            return NP_IO_ERR;
        }
        w = tls_wait(t, r, t->stop_fd, deadline);
        if (w == NP_IO_TIMEOUT) {
            set_why(why, cap, "TLS handshake timed out");
        } else if (w == NP_IO_STOPPED) {
            set_why(why, cap, "TLS handshake interrupted: shutting down");
        } else if (w == NP_IO_ERR) {
            int e = errno;

            set_why(why, cap, "TLS handshake failed: poll: %s", NP_ERRSTR(e));
            errno = e;
        }
        if (w != NP_IO_OK) {
            return w;
        }
    }
}

/* Whether the peer certificate of ssl lists id's address as an iPAddress SAN. (mbedTLS 2.28
 * keeps every SAN entry raw in subject_alt_names; its own name check covers dNSName only.) */
static bool
peer_has_ip(const mbedtls_ssl_context *ssl, const struct host_id *id)
{
    const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(ssl);
    const mbedtls_x509_sequence *san;

    if (crt == NULL || (crt->ext_types & MBEDTLS_X509_EXT_SUBJECT_ALT_NAME) == 0) {
        return false;
    }
    for (san = &crt->subject_alt_names; san != NULL; san = san->next) {
        if (san->buf.tag == SAN_IP_TAG && san->buf.len == id->ip_len &&
            memcmp(san->buf.p, id->ip, id->ip_len) == 0) {
            return true;
        }
    }
    return false;
}

/* Bind t to c's config, to the host's name (not for an IP literal: no SNI, RFC 6066 §3) and
 * to its socket. Returns 0, or -1 with why. */
static int
tls_setup(struct np_tls_conf *c, struct np_tls *t, const struct host_id *id, char *why, size_t cap)
{
    int r = mbedtls_ssl_setup(&t->ssl, &c->ssl);

    if (r == 0 && id->ip_len == 0) {
        r = mbedtls_ssl_set_hostname(&t->ssl, id->name); /* SNI and the dNSName check */
    }
    if (r != 0) {
        char err[128];

        mbedtls_strerror(r, err, sizeof(err));
        set_why(why, cap, "TLS setup failed: %s", err);
        errno = r == MBEDTLS_ERR_SSL_ALLOC_FAILED ? ENOMEM : EINVAL;
        return -1;
    }
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    mbedtls_ssl_set_verify(&t->ssl, count_verify, t);
    return 0;
}

/* Handshake on fd for host: offer the slot's session if it was made for this host, verify
 * (mbedTLS checks the chain and dNSName; iPAddress is checked here), then save the session. */
enum np_io
np_tls_connect(struct np_tls_conf *c, const struct np_tls_dial *d, struct np_tls **out, char *why,
               size_t why_cap)
{
    enum np_io rc = NP_IO_ERR;
    struct np_tls *t = NULL;
    struct host_id id;
    bool offered;

    *out = NULL;
    set_why(why, why_cap, "%s", "");
    if (parse_host(d->host, &id) != 0) {
        set_why(why, why_cap, "invalid TLS host name");
        errno = EINVAL;
        goto out;
    }
    t = np_calloc(1, sizeof(*t));
    if (t == NULL) {
        set_why(why, why_cap, "out of memory");
        errno = ENOMEM;
        goto out;
    }
    mbedtls_ssl_init(&t->ssl);
    t->fd = d->fd;
    t->stop_fd = d->until.stop_fd;
    if (tls_setup(c, t, &id, why, why_cap) != 0) {
        goto out;
    }
    offered = offer_session(c, &t->ssl, id.name);
    rc = handshake(t, d->until.deadline, &id, why, why_cap);
    if (rc != NP_IO_OK) {
        if (rc == NP_IO_ERR && offered) {
            drop_session(c, id.name);
        }
        goto out;
    }
    t->established = true;
    if (id.ip_len != 0 && !peer_has_ip(&t->ssl, &id)) {
        set_why(why, why_cap, "certificate does not match host %s", id.name);
        errno = EPROTO;
        rc = NP_IO_ERR;
        goto out;
    }
    save_session(c, &t->ssl, id.name);
    *out = t;
    t = NULL; /* ownership moved to the caller */
out:
    if (t != NULL) {
        int e = errno; /* the reason's errno outlives the cleanup */

        np_tls_free(t);
        errno = e;
    }
    return rc;
}

bool
np_tls_resumed(const struct np_tls *t)
{
    return t->established && t->verified == 0;
}

/* NP_IO_ERR for a failed mbedTLS call on t, with errno from the socket or EPROTO. */
static enum np_io
tls_io_error(const struct np_tls *t)
{
    errno = t->sock_err != 0 ? t->sock_err : EPROTO;
    return NP_IO_ERR;
}

/* Stream op: decrypted bytes, first those mbedTLS already holds. */
static enum np_io
tls_recv(struct np_stream *s, void *buf, size_t cap, size_t *got, uint64_t deadline)
{
    struct np_tls *t = s->impl;

    *got = 0;
    t->sock_err = 0;
    if (cap == 0) {
        errno = EINVAL;
        return NP_IO_ERR;
    }
    for (;;) {
        int r = mbedtls_ssl_read(&t->ssl, buf, cap);
        enum np_io w;

        if (r > 0) {
            *got = (size_t)r;
            return NP_IO_OK;
        }
        if (r == 0 || r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == MBEDTLS_ERR_SSL_CONN_EOF) {
            return NP_IO_EOF;
        }
        if (r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE) {
            return tls_io_error(t);
        }
        w = tls_wait(t, r, s->stop_fd, deadline);
        if (w != NP_IO_OK) {
            return w;
        }
    }
}

/* Stream op: encrypt and send all len bytes. After WANT_* mbedTLS must be called again with
 * the same data, which the loop does. */
static enum np_io
tls_send_all(struct np_stream *s, const void *buf, size_t len, uint64_t deadline)
{
    struct np_tls *t = s->impl;
    const unsigned char *p = buf;

    t->sock_err = 0;
    while (len > 0) {
        int r = mbedtls_ssl_write(&t->ssl, p, len);
        enum np_io w;

        if (r > 0) {
            p += r;
            len -= (size_t)r;
            continue;
        }
        if (r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE) {
            return tls_io_error(t);
        }
        w = tls_wait(t, r, s->stop_fd, deadline);
        if (w != NP_IO_OK) {
            return w;
        }
    }
    return NP_IO_OK;
}

/* Stream op: whether decrypted bytes wait inside mbedTLS (poll() on the fd cannot see them). */
static bool
tls_pending(const struct np_stream *s)
{
    const struct np_tls *t = s->impl;

    return mbedtls_ssl_get_bytes_avail(&t->ssl) > 0 || t->roff < t->rlen;
}

static const struct np_stream_ops tls_ops = {
    .recv = tls_recv,
    .send_all = tls_send_all,
    .pending = tls_pending,
};

void
np_tls_stream(struct np_tls *t, struct np_stream *s)
{
    s->ops = &tls_ops;
    s->fd = t->fd;
    s->stop_fd = t->stop_fd;
    s->impl = t;
}

/* Try one close_notify (a connection whose handshake failed gets none) and free t. */
void
np_tls_free(struct np_tls *t)
{
    if (t == NULL) {
        return;
    }
    if (t->established) {
        (void)mbedtls_ssl_close_notify(&t->ssl); /* best effort: one non-blocking try */
    }
    mbedtls_ssl_free(&t->ssl);
    np_free(t);
}
