/* Unit tests for lib/tls.h: upstream TLS clients (SPEC §6.5).
 *
 * The group setup makes a throw-away PKI with the openssl CLI in a mkdtemp directory: a test CA,
 * a server certificate for DNS:localhost, IP:127.0.0.1, IP:::1 (its CN, np-test-server, is not
 * a SAN, so a CN fallback would show) and an unrelated CA. Each test gets an in-process mbedTLS
 * echo server on 127.0.0.1:0 (worker threads sharing one config with a session cache and/or
 * tickets, as the test's prestate says) and a fresh np_tls_conf trusting the test CA only. The
 * teardown stops the server and fails the test if a descriptor leaked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_cache.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>

#include <nonoproxy/nonoproxy.h>

#include "common.h"
#include "listener.h"
#include "net.h"
#include "stream.h"
#include "tls.h"

#define SRV_WORKERS 8
#define IO_MS       30000 /* bound for steps that take milliseconds (CI can be very loaded) */
#define WHY_CAP     256
#define REC_MAX     (16384 + 5 + 2048)
#define CLIENTS     8
#define CYCLES      20

/* ---- throw-away PKI ---------------------------------------------------------------------- */

struct pki {
    char dir[64];
    char ca[128];      /* test CA (signs the server certificate) */
    char other[128];   /* unrelated CA */
    char srv[128];     /* server certificate */
    char srv_key[128]; /* server key */
    char garbage[128]; /* a file with no certificate in it */
    char partial[128]; /* the test CA plus a block that is not a certificate */
    char missing[128]; /* a file that does not exist */
};

static struct pki pki;

/* Join dir and name into out (capacity 128). */
static void
path_in(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, 128, "%s/%s", dir, name);

    assert_true(n > 0 && n < 128);
}

/* Run openssl with the NULL-terminated args (no shell), output discarded. Returns its status. */
static int
run_openssl(const char *const *args)
{
    char *argv[24];
    size_t n = 0;
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int st = -1;
    int r;

    argv[n++] = strdup("openssl");
    for (; args[n - 1] != NULL && n < NP_ARRAY_LEN(argv) - 1; n++) {
        argv[n] = strdup(args[n - 1]);
    }
    argv[n] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    r = posix_spawnp(&pid, "openssl", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (r == 0) {
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
    }
    while (n > 0) {
        free(argv[--n]);
    }
    return (r == 0 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

/* Write text to path. */
static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Make a self-signed P-256 CA named cn: key file key, certificate file cert. */
static void
make_ca(const char *cn, const char *key, const char *cert)
{
    char subj[64];
    const char *args[] = {"req",
                          "-x509",
                          "-newkey",
                          "ec",
                          "-pkeyopt",
                          "ec_paramgen_curve:P-256",
                          "-nodes",
                          "-keyout",
                          key,
                          "-out",
                          cert,
                          "-days",
                          "2",
                          "-subj",
                          subj,
                          "-addext",
                          "basicConstraints=critical,CA:TRUE",
                          "-addext",
                          "keyUsage=critical,keyCertSign,cRLSign",
                          NULL};

    (void)snprintf(subj, sizeof(subj), "/CN=%s", cn);
    assert_int_equal(run_openssl(args), 0);
}

/* Write pki.partial: the test CA, then a PEM block whose content is not a certificate. */
static void
append_partial(void)
{
    FILE *in = fopen(pki.ca, "re");
    FILE *out = fopen(pki.partial, "we");
    char line[256];

    assert_non_null(in);
    assert_non_null(out);
    while (fgets(line, sizeof(line), in) != NULL) {
        assert_true(fputs(line, out) >= 0);
    }
    assert_true(fputs("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", out) >= 0);
    assert_int_equal(fclose(in), 0);
    assert_int_equal(fclose(out), 0);
}

/* Make the throw-away PKI described at the top of the file. */
static int
group_setup(void **state)
{
    char ca_key[128];
    char other_key[128];
    char csr[128];
    char ext[128];

    (void)state;
    (void)snprintf(pki.dir, sizeof(pki.dir), "/tmp/np-test-tls-XXXXXX");
    assert_non_null(mkdtemp(pki.dir));
    path_in(pki.ca, pki.dir, "ca.pem");
    path_in(ca_key, pki.dir, "ca.key");
    path_in(pki.other, pki.dir, "other.pem");
    path_in(other_key, pki.dir, "other.key");
    path_in(pki.srv, pki.dir, "srv.pem");
    path_in(pki.srv_key, pki.dir, "srv.key");
    path_in(csr, pki.dir, "srv.csr");
    path_in(ext, pki.dir, "srv.ext");
    path_in(pki.garbage, pki.dir, "garbage.pem");
    path_in(pki.partial, pki.dir, "partial.pem");
    path_in(pki.missing, pki.dir, "missing.pem");
    make_ca("np-test-ca", ca_key, pki.ca);
    make_ca("np-other-ca", other_key, pki.other);
    write_file(ext, "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n"
                    "basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n");
    write_file(pki.garbage, "this is not a certificate\n");
    {
        const char *req[] = {"req",
                             "-new",
                             "-newkey",
                             "ec",
                             "-pkeyopt",
                             "ec_paramgen_curve:P-256",
                             "-nodes",
                             "-keyout",
                             pki.srv_key,
                             "-out",
                             csr,
                             "-subj",
                             "/CN=np-test-server",
                             NULL};
        const char *sign[] = {"x509",     "-req", "-in",         csr,     "-CA",   pki.ca,
                              "-CAkey",   ca_key, "-set_serial", "2",     "-days", "2",
                              "-extfile", ext,    "-out",        pki.srv, NULL};

        assert_int_equal(run_openssl(req), 0);
        assert_int_equal(run_openssl(sign), 0);
    }
    append_partial();
    return 0;
}

/* Remove the PKI directory (flat: files only). */
static int
group_teardown(void **state)
{
    DIR *d = opendir(pki.dir);
    struct dirent *e;
    char p[400];

    (void)state;
    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) { // NOLINT(concurrency-mt-unsafe): d is this thread's
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            (void)snprintf(p, sizeof(p), "%s/%s", pki.dir, e->d_name);
            (void)unlink(p);
        }
    }
    (void)closedir(d);
    return rmdir(pki.dir) == 0 ? 0 : -1;
}

/* ---- in-process mbedTLS echo server ---------------------------------------------------- */

/* Server behaviour chosen per test (the cmocka prestate). */
struct srv_opts {
    bool tickets;
    bool cache;
    int max_minor;                      /* 0 = default; MBEDTLS_SSL_MINOR_VERSION_2 = TLS 1.1 */
    const mbedtls_ecp_group_id *curves; /* NULL = mbedTLS default */
};

struct srv {
    struct srv_opts o;
    int lfd;
    int stop_fd;
    uint16_t port;
    pthread_t th[SRV_WORKERS];
    size_t nth;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
    mbedtls_ssl_cache_context cache;
    mbedtls_ssl_ticket_context ticket;
};

/* One server connection: its socket and the server's stop descriptor. */
struct srv_sock {
    int fd;
    int stop_fd;
};

static int
srv_bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    const struct srv_sock *k = ctx;
    ssize_t r = send(k->fd, buf, len, MSG_NOSIGNAL);

    return r >= 0 ? (int)r : MBEDTLS_ERR_SSL_INTERNAL_ERROR;
}

/* Blocking receive that gives up when the server stops or after IO_MS of silence. */
static int
srv_bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    const struct srv_sock *k = ctx;
    struct pollfd p[2] = {{k->fd, POLLIN, 0}, {k->stop_fd, POLLIN, 0}};
    ssize_t r;

    if (poll(p, 2, IO_MS) <= 0 || p[1].revents != 0) {
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    }
    r = recv(k->fd, buf, len, 0);
    return r >= 0 ? (int)r : MBEDTLS_ERR_SSL_INTERNAL_ERROR;
}

/* Echo what the client sends; "CLOSE" ends with a close_notify, "DROP" with a bare TCP close. */
static void
srv_echo(mbedtls_ssl_context *ssl, unsigned char *buf, size_t cap)
{
    int w;
    int off;

    for (;;) {
        int n = mbedtls_ssl_read(ssl, buf, cap);

        if (n <= 0) {
            break;
        }
        if (n == 4 && memcmp(buf, "DROP", 4) == 0) {
            return;
        }
        if (n == 5 && memcmp(buf, "CLOSE", 5) == 0) {
            break;
        }
        for (off = 0; off < n; off += w) {
            w = mbedtls_ssl_write(ssl, buf + off, (size_t)(n - off));
            if (w <= 0) {
                return;
            }
        }
    }
    (void)mbedtls_ssl_close_notify(ssl);
}

/* Handshake on fd and echo until the client goes. */
static void
srv_serve(struct srv *s, int fd, unsigned char *buf, size_t cap)
{
    struct srv_sock k = {fd, s->stop_fd};
    mbedtls_ssl_context ssl;

    mbedtls_ssl_init(&ssl);
    if (mbedtls_ssl_setup(&ssl, &s->conf) == 0) {
        mbedtls_ssl_set_bio(&ssl, &k, srv_bio_send, srv_bio_recv, NULL);
        if (mbedtls_ssl_handshake(&ssl) == 0) {
            srv_echo(&ssl, buf, cap);
        }
    }
    mbedtls_ssl_free(&ssl);
}

/* Worker: accept and serve connections until the stop descriptor is written. */
static void *
srv_worker(void *arg)
{
    struct srv *s = arg;
    struct pollfd p[2] = {{s->lfd, POLLIN, 0}, {s->stop_fd, POLLIN, 0}};
    size_t cap = 32768;
    unsigned char *buf = malloc(cap);
    struct timeval tv = {IO_MS / 1000, 0};

    while (buf != NULL) {
        int fd;

        if (poll(p, 2, -1) < 0 && errno != EINTR) {
            break;
        }
        if (p[1].revents != 0) {
            break;
        }
        fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            continue; /* another worker took it */
        }
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        srv_serve(s, fd, buf, cap);
        (void)close(fd);
    }
    free(buf);
    return NULL;
}

/* Fill s->conf from s->o. */
static void
srv_configure(struct srv *s)
{
    static const unsigned char pers[] = "np test server";

    assert_int_equal(
        mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy, pers, sizeof(pers) - 1),
        0);
    assert_int_equal(mbedtls_x509_crt_parse_file(&s->cert, pki.srv), 0);
    assert_int_equal(mbedtls_pk_parse_keyfile(&s->key, pki.srv_key, NULL), 0);
    assert_int_equal(mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER,
                                                 MBEDTLS_SSL_TRANSPORT_STREAM,
                                                 MBEDTLS_SSL_PRESET_DEFAULT),
                     0);
    mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &s->drbg);
    assert_int_equal(mbedtls_ssl_conf_own_cert(&s->conf, &s->cert, &s->key), 0);
    if (s->o.cache) {
        mbedtls_ssl_conf_session_cache(&s->conf, &s->cache, mbedtls_ssl_cache_get,
                                       mbedtls_ssl_cache_set);
    }
    if (s->o.tickets) {
        assert_int_equal(mbedtls_ssl_ticket_setup(&s->ticket, mbedtls_ctr_drbg_random, &s->drbg,
                                                  MBEDTLS_CIPHER_AES_256_GCM, 3600),
                         0);
        mbedtls_ssl_conf_session_tickets_cb(&s->conf, mbedtls_ssl_ticket_write,
                                            mbedtls_ssl_ticket_parse, &s->ticket);
    } else {
        mbedtls_ssl_conf_session_tickets(&s->conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
    }
    if (s->o.max_minor != 0) {
        mbedtls_ssl_conf_min_version(&s->conf, MBEDTLS_SSL_MAJOR_VERSION_3, s->o.max_minor);
        mbedtls_ssl_conf_max_version(&s->conf, MBEDTLS_SSL_MAJOR_VERSION_3, s->o.max_minor);
    }
    if (s->o.curves != NULL) {
        mbedtls_ssl_conf_curves(&s->conf, s->o.curves);
    }
}

/* Start s (s->o set) on 127.0.0.1:0 with SRV_WORKERS workers. */
static void
srv_start(struct srv *s)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

    s->lfd = -1;
    s->stop_fd = -1;
    s->nth = 0;
    mbedtls_entropy_init(&s->entropy);
    mbedtls_ctr_drbg_init(&s->drbg);
    mbedtls_x509_crt_init(&s->cert);
    mbedtls_pk_init(&s->key);
    mbedtls_ssl_config_init(&s->conf);
    mbedtls_ssl_cache_init(&s->cache);
    mbedtls_ssl_ticket_init(&s->ticket);
    srv_configure(s);
    memset(&ss, 0, sizeof(ss));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(np_net_listen(&ss, 64, &s->lfd), 0);
    assert_int_equal(fcntl(s->lfd, F_SETFL, O_NONBLOCK), 0);
    s->port = np_sockaddr_port(&ss);
    s->stop_fd = eventfd(0, EFD_CLOEXEC);
    assert_true(s->stop_fd >= 0);
    for (s->nth = 0; s->nth < SRV_WORKERS; s->nth++) {
        assert_int_equal(pthread_create(&s->th[s->nth], NULL, srv_worker, s), 0);
    }
}

/* Stop s: wake and join the workers, free everything. */
static void
srv_stop(struct srv *s)
{
    uint64_t one = 1;
    size_t i;

    if (s->stop_fd >= 0) {
        (void)!write(s->stop_fd, &one, sizeof(one));
    }
    for (i = 0; i < s->nth; i++) {
        (void)pthread_join(s->th[i], NULL);
    }
    s->nth = 0;
    np_net_close(s->lfd);
    np_net_close(s->stop_fd);
    s->lfd = -1;
    s->stop_fd = -1;
    mbedtls_ssl_ticket_free(&s->ticket);
    mbedtls_ssl_cache_free(&s->cache);
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_pk_free(&s->key);
    mbedtls_x509_crt_free(&s->cert);
    mbedtls_ctr_drbg_free(&s->drbg);
    mbedtls_entropy_free(&s->entropy);
}

/* ---- per-test fixture -------------------------------------------------------------------- */

struct fixture {
    struct srv srv;
    struct np_tls_conf *conf; /* trusts the test CA only */
    size_t fds_before;
};

static struct srv_opts opts_both = {.tickets = true, .cache = true};
static struct srv_opts opts_cache = {.cache = true};
static struct srv_opts opts_tickets = {.tickets = true};
static struct srv_opts opts_none = {.tickets = false};
static struct srv_opts opts_tls11 = {.tickets = true, .max_minor = 2};
static const mbedtls_ecp_group_id only_x25519[] = {MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_NONE};
static const mbedtls_ecp_group_id only_p256[] = {MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_NONE};
static const mbedtls_ecp_group_id only_p384[] = {MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_NONE};
static struct srv_opts opts_x25519 = {.tickets = true, .curves = only_x25519};
static struct srv_opts opts_p256 = {.tickets = true, .curves = only_p256};
static struct srv_opts opts_p384 = {.tickets = true, .curves = only_p384};

/* Number of open descriptors of this process. */
static size_t
count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    size_t n = 0;

    assert_non_null(d);
    while (readdir(d) != NULL) { // NOLINT(concurrency-mt-unsafe): d is this thread's
        n++;
    }
    (void)closedir(d);
    return n;
}

static int
fx_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char why[WHY_CAP];

    assert_non_null(f);
    f->fds_before = count_fds();
    f->srv.o = *state != NULL ? *(const struct srv_opts *)*state : opts_both;
    srv_start(&f->srv);
    assert_int_equal(
        np_tls_conf_new(&(struct np_tls_roots){pki.ca, NULL, NULL}, &f->conf, why, sizeof(why)), 0);
    *state = f;
    return 0;
}

static int
fx_teardown(void **state)
{
    struct fixture *f = *state;
    size_t after;

    np_tls_conf_free(f->conf);
    srv_stop(&f->srv);
    after = count_fds();
    if (after != f->fds_before) {
        print_error("descriptor leak: %zu open before, %zu after\n", f->fds_before, after);
        free(f);
        return -1;
    }
    free(f);
    return 0;
}

/* ---- client helpers (no cmocka asserts: also used from threads) -------------------------- */

/* TCP-connect to 127.0.0.1:port. Returns the socket or -1. */
static int
tcp_to(uint16_t port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    int fd = -1;
    int err = 0;

    memset(&ss, 0, sizeof(ss));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin->sin_port = htons(port);
    if (np_net_connect(&ss, (struct np_dial_limits){IO_MS, -1}, &fd, &err) != NP_IO_OK) {
        return -1;
    }
    return fd;
}

/* A TLS client connection and its socket. */
struct conn {
    int fd;
    struct np_tls *t;
    char why[WHY_CAP];
};

/* Connect c to port with host; returns np_tls_connect's result (NP_IO_ERR if TCP failed). */
static enum np_io
conn_open(struct conn *c, struct np_tls_conf *conf, uint16_t port, const char *host, int stop_fd)
{
    enum np_io rc;

    c->t = NULL;
    c->why[0] = '\0';
    c->fd = tcp_to(port);
    if (c->fd < 0) {
        (void)snprintf(c->why, sizeof(c->why), "tcp connect failed");
        return NP_IO_ERR;
    }
    memset(c->why, 'X', sizeof(c->why) - 1); /* np_tls_connect must write it */
    c->why[sizeof(c->why) - 1] = '\0';
    rc = np_tls_connect(conf, &(struct np_tls_dial){c->fd, host, {stop_fd, np_deadline(IO_MS)}},
                        &c->t, c->why, sizeof(c->why));
    return rc;
}

static void
conn_close(struct conn *c)
{
    np_tls_free(c->t);
    c->t = NULL;
    np_net_close(c->fd);
    c->fd = -1;
}

/* Receive exactly len bytes from s into buf. */
static enum np_io
recv_exact(struct np_stream *s, unsigned char *buf, size_t len, uint64_t deadline)
{
    size_t have = 0;
    size_t got;

    while (have < len) {
        enum np_io rc = np_stream_recv(s, buf + have, len - have, &got, deadline);

        if (rc != NP_IO_OK) {
            return rc;
        }
        have += got;
    }
    return NP_IO_OK;
}

/* Send msg[0..len) through t in chunks of at most chunk bytes, reading each echo back.
 * Returns 0 when every byte came back unchanged. */
static int
echo_check(struct np_tls *t, const unsigned char *msg, size_t len, size_t chunk)
{
    struct np_stream s;
    unsigned char *back = malloc(len == 0 ? 1 : len);
    size_t off;
    size_t n;
    int rc = -1;

    np_tls_stream(t, &s);
    if (back == NULL) {
        return -1;
    }
    for (off = 0; off < len; off += n) {
        n = len - off < chunk ? len - off : chunk;
        if (np_stream_send_all(&s, msg + off, n, np_deadline(IO_MS)) != NP_IO_OK ||
            recv_exact(&s, back + off, n, np_deadline(IO_MS)) != NP_IO_OK) {
            goto out;
        }
    }
    rc = memcmp(back, msg, len) == 0 ? 0 : -1;
out:
    free(back);
    return rc;
}

static int
echo_str(struct np_tls *t, const char *msg)
{
    return echo_check(t, (const unsigned char *)msg, strlen(msg), 4096);
}

/* ---- handshake and data ------------------------------------------------------------------ */

static void
handshake_then_echo_round_trip(void **state)
{
    struct fixture *f = *state;
    struct conn c;
    struct np_stream s;
    size_t big_len = 70000; /* several 16 KiB records per chunk */
    unsigned char *big = malloc(big_len);
    size_t i;

    assert_non_null(big);
    for (i = 0; i < big_len; i++) {
        big[i] = (unsigned char)(i * 7 + 3);
    }
    assert_int_equal(conn_open(&c, f->conf, f->srv.port, "localhost", -1), NP_IO_OK);
    assert_non_null(c.t);
    assert_string_equal(c.why, "");
    assert_false(np_tls_resumed(c.t));
    np_tls_stream(c.t, &s);
    assert_ptr_equal(s.impl, c.t);
    assert_int_equal(s.fd, c.fd);
    assert_int_equal(s.stop_fd, -1);
    assert_int_equal(echo_str(c.t, "hello, upstream"), 0);
    assert_int_equal(echo_check(c.t, big, big_len, 40000), 0);
    conn_close(&c);
    free(big);
}

/* Bytes mbedTLS decrypted but the caller did not take yet are "pending" (poll cannot see them). */
static void
pending_reports_bytes_held_by_mbedtls(void **state)
{
    struct fixture *f = *state;
    struct conn c;
    struct np_stream s;
    unsigned char buf[8];
    size_t got;

    assert_int_equal(conn_open(&c, f->conf, f->srv.port, "localhost", -1), NP_IO_OK);
    np_tls_stream(c.t, &s);
    assert_false(np_stream_pending(&s));
    /* One record out, one record back: 11 bytes read 5 at a time. */
    assert_int_equal(np_stream_send_all(&s, "hello world", 11, np_deadline(IO_MS)), NP_IO_OK);
    assert_int_equal(np_stream_recv(&s, buf, 5, &got, np_deadline(IO_MS)), NP_IO_OK);
    assert_int_equal(got, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_true(np_stream_pending(&s));
    assert_int_equal(np_stream_recv(&s, buf, 5, &got, np_deadline(IO_MS)), NP_IO_OK);
    assert_int_equal(got, 5);
    assert_memory_equal(buf, " worl", 5);
    assert_true(np_stream_pending(&s));
    assert_int_equal(np_stream_recv(&s, buf, 5, &got, np_deadline(IO_MS)), NP_IO_OK);
    assert_int_equal(got, 1);
    assert_memory_equal(buf, "d", 1);
    assert_false(np_stream_pending(&s));
    conn_close(&c);
}

/* A close_notify and a bare TCP close both read as end of stream. */
static void
peer_close_reads_as_eof(void **state)
{
    static const char *const cmds[] = {"CLOSE", "DROP"};
    struct fixture *f = *state;
    struct conn c;
    struct np_stream s;
    unsigned char buf[16];
    size_t got = 99;
    size_t i;

    for (i = 0; i < NP_ARRAY_LEN(cmds); i++) {
        print_message("peer sends %s\n", cmds[i]);
        assert_int_equal(conn_open(&c, f->conf, f->srv.port, "localhost", -1), NP_IO_OK);
        np_tls_stream(c.t, &s);
        assert_int_equal(np_stream_send_all(&s, cmds[i], strlen(cmds[i]), np_deadline(IO_MS)),
                         NP_IO_OK);
        assert_int_equal(np_stream_recv(&s, buf, sizeof(buf), &got, np_deadline(IO_MS)), NP_IO_EOF);
        assert_int_equal(got, 0);
        conn_close(&c);
    }
}

/* A recv on an idle connection ends at its deadline, not before; a written stop fd ends it. */
static void
recv_honours_deadline_and_stop(void **state)
{
    struct fixture *f = *state;
    struct conn c;
    struct np_stream s;
    unsigned char buf[16];
    size_t got = 99;
    uint64_t start;
    uint64_t deadline;
    uint64_t one = 1;
    int stop = eventfd(0, EFD_CLOEXEC);

    assert_true(stop >= 0);
    assert_int_equal(conn_open(&c, f->conf, f->srv.port, "localhost", stop), NP_IO_OK);
    np_tls_stream(c.t, &s);
    assert_int_equal(s.stop_fd, stop);
    start = np_now_ms();
    deadline = start + 150;
    assert_int_equal(np_stream_recv(&s, buf, sizeof(buf), &got, deadline), NP_IO_TIMEOUT);
    assert_true(np_now_ms() >= deadline);
    assert_true(np_now_ms() - start < IO_MS);
    assert_int_equal(got, 0);
    assert_int_equal(write(stop, &one, sizeof(one)), (ssize_t)sizeof(one));
    assert_int_equal(np_stream_recv(&s, buf, sizeof(buf), &got, np_deadline(IO_MS)), NP_IO_STOPPED);
    conn_close(&c);
    np_net_close(stop);
}

/* ---- verification ------------------------------------------------------------------------ */

static void
wrong_ca_fails_verification(void **state)
{
    struct fixture *f = *state;
    struct np_tls_conf *other = NULL;
    struct conn c;
    char why[WHY_CAP];

    assert_int_equal(
        np_tls_conf_new(&(struct np_tls_roots){pki.other, NULL, NULL}, &other, why, sizeof(why)),
        0);
    assert_int_equal(conn_open(&c, other, f->srv.port, "localhost", -1), NP_IO_ERR);
    assert_null(c.t);
    assert_string_equal(c.why, "certificate verification failed: "
                               "The certificate is not correctly signed by the trusted CA");
    conn_close(&c);
    /* The default system bundle does not know the test CA either. */
    np_tls_conf_free(other);
    other = NULL;
    if (access(NP_TLS_SYSTEM_BUNDLE, R_OK) == 0) {
        assert_int_equal(
            np_tls_conf_new(&(struct np_tls_roots){NULL, NULL, NULL}, &other, why, sizeof(why)), 0);
        assert_int_equal(conn_open(&c, other, f->srv.port, "localhost", -1), NP_IO_ERR);
        assert_null(c.t);
        assert_non_null(strstr(c.why, "certificate verification failed: "));
        conn_close(&c);
        np_tls_conf_free(other);
    }
}

/* Host rules: DNS names match dNSName SANs (case-insensitively, a trailing dot ignored), never
 * the CN; IP literals match iPAddress SANs only. Each row runs right after a good connection to
 * "localhost" on the same conf, so a row for another host would pass if that saved session
 * were offered to it (resumption skips verification). */
struct host_row {
    const char *rule;
    const char *host;
    enum np_io rc;
    bool resumed; /* on success */
    const char *why;
};

static const struct host_row host_rows[] = {
    {"dns_name_in_san", "localhost", NP_IO_OK, true, ""},
    {"dns_match_ignores_case", "LocalHost", NP_IO_OK, true, ""},
    {"dns_trailing_dot_ignored", "localhost.", NP_IO_OK, true, ""},
    {"ipv4_in_san", "127.0.0.1", NP_IO_OK, false, ""},
    {"ipv6_in_san", "::1", NP_IO_OK, false, ""},
    {"ipv6_bracketed", "[::1]", NP_IO_OK, false, ""},
    {"ipv6_long_form", "0:0:0:0:0:0:0:1", NP_IO_OK, false, ""},
    {"dns_not_in_san", "example.com", NP_IO_ERR, false,
     "certificate does not match host example.com"},
    {"cn_is_not_a_name", "np-test-server", NP_IO_ERR, false,
     "certificate does not match host np-test-server"},
    {"ipv4_not_in_san", "127.0.0.2", NP_IO_ERR, false, "certificate does not match host 127.0.0.2"},
    {"ipv6_not_in_san", "::2", NP_IO_ERR, false, "certificate does not match host ::2"},
    {"ip_text_is_not_a_dns_name", "127.0.0.1.", NP_IO_ERR, false,
     "certificate does not match host 127.0.0.1"},
    {"empty_host", "", NP_IO_ERR, false, "invalid TLS host name"},
    {"brackets_need_ipv6", "[localhost]", NP_IO_ERR, false, "invalid TLS host name"},
    {"no_spaces", "local host", NP_IO_ERR, false, "invalid TLS host name"},
};

static void
host_must_match_certificate(void **state)
{
    struct fixture *f = *state;
    struct conn c;
    size_t i;

    for (i = 0; i < NP_ARRAY_LEN(host_rows); i++) {
        const struct host_row *row = &host_rows[i];

        print_message("rule %s: host \"%s\"\n", row->rule, row->host);
        assert_int_equal(conn_open(&c, f->conf, f->srv.port, "localhost", -1), NP_IO_OK);
        assert_int_equal(echo_str(c.t, "warm-up"), 0); /* the server finished its handshake */
        conn_close(&c);
        assert_int_equal(conn_open(&c, f->conf, f->srv.port, row->host, -1), row->rc);
        assert_string_equal(c.why, row->why);
        if (row->rc == NP_IO_OK) {
            assert_non_null(c.t);
            assert_int_equal(np_tls_resumed(c.t), row->resumed);
            assert_int_equal(echo_str(c.t, row->host), 0);
        } else {
            assert_null(c.t);
        }
        conn_close(&c);
    }
}

/* "127.0.0.1." above is a DNS name (inet_pton refuses it): mbedTLS compares it with dNSName
 * entries and the reason shows the normalised name. */

/* ---- resumption -------------------------------------------------------------------------- */

/* The first connection does a full handshake, later ones resume (the prestate picks session
 * IDs, tickets or both; with neither nothing can resume). */
static void
second_connection_resumes(void **state)
{
    struct fixture *f = *state;
    bool can_resume = f->srv.o.tickets || f->srv.o.cache;
    struct conn c;
    int i;

    for (i = 0; i < 3; i++) {
        assert_int_equal(conn_open(&c, f->conf, f->srv.port, "localhost", -1), NP_IO_OK);
        assert_int_equal(np_tls_resumed(c.t), i > 0 && can_resume);
        assert_int_equal(echo_str(c.t, "again"), 0);
        conn_close(&c);
    }
}

/* A server that does not know the offered session (restarted: new cache, new ticket key)
 * makes a full handshake, which must still succeed. */
static void
unknown_session_falls_back_to_full_handshake(void **state)
{
    struct fixture *f = *state;
    struct srv *fresh = calloc(1, sizeof(*fresh));
    struct conn c;

    assert_int_equal(conn_open(&c, f->conf, f->srv.port, "localhost", -1), NP_IO_OK);
    assert_int_equal(echo_str(c.t, "first"), 0);
    conn_close(&c);
    assert_non_null(fresh);
    fresh->o = opts_both;
    srv_start(fresh);
    assert_int_equal(conn_open(&c, f->conf, fresh->port, "localhost", -1), NP_IO_OK);
    assert_false(np_tls_resumed(c.t));
    assert_int_equal(echo_str(c.t, "second"), 0);
    conn_close(&c);
    assert_int_equal(conn_open(&c, f->conf, fresh->port, "localhost", -1), NP_IO_OK);
    assert_true(np_tls_resumed(c.t));
    assert_int_equal(echo_str(c.t, "third"), 0);
    conn_close(&c);
    srv_stop(fresh);
    free(fresh);
}

/* ---- protocol parameters ----------------------------------------------------------------- */

/* TLS 1.2 is the minimum: a server that stops at TLS 1.1 is refused. */
static void
tls11_server_is_refused(void **state)
{
    struct fixture *f = *state;
    struct conn c;

    assert_int_equal(conn_open(&c, f->conf, f->srv.port, "localhost", -1), NP_IO_ERR);
    assert_null(c.t);
    assert_non_null(strstr(c.why, "TLS handshake failed: "));
    assert_null(strchr(c.why, '\n'));
    conn_close(&c);
}

/* Every offered group works alone on the server side (the prestate picks it). */
static void
server_with_one_group_works(void **state)
{
    struct fixture *f = *state;
    struct conn c;

    assert_int_equal(conn_open(&c, f->conf, f->srv.port, "localhost", -1), NP_IO_OK);
    assert_int_equal(echo_str(c.t, "group"), 0);
    conn_close(&c);
}

/* A raw listener that records the first TLS record a client sends, then closes. */
struct capture {
    int lfd;
    uint16_t port;
    pthread_t th;
    unsigned char rec[REC_MAX];
    size_t len;
};

static void *
capture_main(void *arg)
{
    struct capture *k = arg;
    struct timeval tv = {IO_MS / 1000, 0};
    size_t want = 5;
    int fd = accept4(k->lfd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0) {
        return NULL;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (k->len < want) {
        ssize_t r = recv(fd, k->rec + k->len, want - k->len, 0);

        if (r <= 0) {
            break;
        }
        k->len += (size_t)r;
        if (k->len == 5) {
            want = 5 + ((size_t)k->rec[3] << 8 | k->rec[4]);
            want = want > sizeof(k->rec) ? sizeof(k->rec) : want;
        }
    }
    (void)close(fd);
    return NULL;
}

/* Start a raw listener on 127.0.0.1:0 (k->lfd, k->port). */
static void
raw_listen(int *lfd, uint16_t *port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

    memset(&ss, 0, sizeof(ss));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(np_net_listen(&ss, 4, lfd), 0);
    *port = np_sockaddr_port(&ss);
}

/* Find extension type in the ClientHello record rec[0..len); *ext and *ext_len get its body.
 * Returns 1 if found, 0 if absent, -1 if the record is malformed. */
static int
hello_ext(const unsigned char *rec, size_t len, unsigned type, const unsigned char **ext,
          size_t *ext_len)
{
    size_t p = 5 + 4 + 2 + 32; /* record header, handshake header, version, random */
    size_t end;

    if (len < p + 1 || rec[0] != 0x16 || rec[5] != 0x01) {
        return -1;
    }
    p += 1 + rec[p]; /* session id */
    if (p + 2 > len) {
        return -1;
    }
    p += 2 + ((size_t)rec[p] << 8 | rec[p + 1]); /* cipher suites */
    if (p + 1 > len) {
        return -1;
    }
    p += 1 + rec[p]; /* compression methods */
    if (p + 2 > len) {
        return -1;
    }
    end = p + 2 + ((size_t)rec[p] << 8 | rec[p + 1]);
    p += 2;
    if (end > len) {
        return -1;
    }
    while (p + 4 <= end) {
        size_t n = (size_t)rec[p + 2] << 8 | rec[p + 3];

        if (p + 4 + n > end) {
            return -1;
        }
        if (((unsigned)rec[p] << 8 | rec[p + 1]) == type) {
            *ext = rec + p + 4;
            *ext_len = n;
            return 1;
        }
        p += 4 + n;
    }
    return 0;
}

/* What the ClientHello says for a host: SNI (RFC 6066: none for IP literals) and the groups,
 * X25519 first. */
struct hello_row {
    const char *rule;
    const char *host;
    const char *sni; /* NULL = no server_name extension */
};

static const struct hello_row hello_rows[] = {
    {"sni_is_the_dns_name", "localhost", "localhost"},
    {"sni_is_normalised", "LocalHost.", "localhost"},
    {"no_sni_for_ipv4", "127.0.0.1", NULL},
    {"no_sni_for_ipv6", "::1", NULL},
};

static void
client_hello_offers_sni_and_x25519_first(void **state)
{
    static const unsigned char groups[] = {0x00, 0x08, 0x00, 0x1d, 0x00,
                                           0x17, 0x00, 0x18, 0x00, 0x19};
    struct fixture *f = *state;
    struct capture *k = calloc(1, sizeof(*k));
    const unsigned char *ext = NULL;
    size_t ext_len = 0;
    struct conn c;
    size_t i;

    assert_non_null(k);
    for (i = 0; i < NP_ARRAY_LEN(hello_rows); i++) {
        const struct hello_row *row = &hello_rows[i];

        print_message("rule %s: host \"%s\"\n", row->rule, row->host);
        memset(k, 0, sizeof(*k));
        raw_listen(&k->lfd, &k->port);
        assert_int_equal(pthread_create(&k->th, NULL, capture_main, k), 0);
        assert_int_equal(conn_open(&c, f->conf, k->port, row->host, -1), NP_IO_ERR);
        assert_string_equal(c.why, "TLS handshake failed: connection closed by peer");
        conn_close(&c);
        assert_int_equal(pthread_join(k->th, NULL), 0);
        np_net_close(k->lfd);
        assert_int_equal(hello_ext(k->rec, k->len, 0x000a, &ext, &ext_len), 1);
        assert_int_equal(ext_len, sizeof(groups));
        assert_memory_equal(ext, groups, sizeof(groups));
        if (row->sni == NULL) {
            assert_int_equal(hello_ext(k->rec, k->len, 0x0000, &ext, &ext_len), 0);
        } else {
            size_t n = strlen(row->sni);

            ext = NULL;
            assert_int_equal(hello_ext(k->rec, k->len, 0x0000, &ext, &ext_len), 1);
            assert_non_null(ext);
            if (ext == NULL) {
                return; /* (for the analyzer: cmocka's assert does not return) */
            }
            assert_int_equal(ext_len, 5 + n);
            assert_int_equal(ext[2], 0); /* host_name */
            assert_int_equal((size_t)ext[3] << 8 | ext[4], n);
            assert_memory_equal(ext + 5, row->sni, n);
        }
    }
    free(k);
}

/* ---- deadline and stop ------------------------------------------------------------------- */

/* A peer that accepts (the kernel does) and never answers: the handshake ends at its deadline,
 * not before. */
static void
silent_peer_times_out_at_deadline(void **state)
{
    struct np_tls_conf *conf = ((struct fixture *)*state)->conf;
    struct np_tls *t = (struct np_tls *)&t; /* must be reset to NULL */
    char why[WHY_CAP];
    uint64_t start;
    uint64_t deadline;
    uint16_t port;
    int lfd;
    int fd;

    raw_listen(&lfd, &port);
    fd = tcp_to(port);
    assert_true(fd >= 0);
    start = np_now_ms();
    deadline = start + 300;
    assert_int_equal(np_tls_connect(conf, &(struct np_tls_dial){fd, "localhost", {-1, deadline}},
                                    &t, why, sizeof(why)),
                     NP_IO_TIMEOUT);
    assert_true(np_now_ms() >= deadline);
    assert_true(np_now_ms() - start < IO_MS);
    assert_null(t);
    assert_string_equal(why, "TLS handshake timed out");
    np_net_close(fd);
    np_net_close(lfd);
}

/* A peer that reads the ClientHello, then writes the stop descriptor and waits for EOF. */
struct staller {
    int lfd;
    int stop_fd;
    pthread_t th;
};

static void *
staller_main(void *arg)
{
    struct staller *k = arg;
    unsigned char buf[4096];
    uint64_t one = 1;
    struct timeval tv = {IO_MS / 1000, 0};
    int fd = accept4(k->lfd, NULL, NULL, SOCK_CLOEXEC);

    if (fd < 0) {
        return NULL;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (recv(fd, buf, sizeof(buf), 0) > 0) {
        (void)!write(k->stop_fd, &one, sizeof(one)); /* the client now waits for an answer */
        while (recv(fd, buf, sizeof(buf), 0) > 0) {
        }
    }
    (void)close(fd);
    return NULL;
}

static void
stop_fd_interrupts_handshake(void **state)
{
    struct np_tls_conf *conf = ((struct fixture *)*state)->conf;
    struct np_tls *t = NULL;
    struct staller k;
    char why[WHY_CAP];
    uint64_t one = 1;
    uint64_t start;
    uint16_t port;
    int fd;

    /* Written while the handshake waits for the server's answer. */
    raw_listen(&k.lfd, &port);
    k.stop_fd = eventfd(0, EFD_CLOEXEC);
    assert_true(k.stop_fd >= 0);
    assert_int_equal(pthread_create(&k.th, NULL, staller_main, &k), 0);
    fd = tcp_to(port);
    assert_true(fd >= 0);
    start = np_now_ms();
    assert_int_equal(
        np_tls_connect(conf,
                       &(struct np_tls_dial){fd, "localhost", {k.stop_fd, np_deadline(IO_MS * 2)}},
                       &t, why, sizeof(why)),
        NP_IO_STOPPED);
    assert_true(np_now_ms() - start < IO_MS);
    assert_null(t);
    assert_string_equal(why, "TLS handshake interrupted: shutting down");
    np_net_close(fd);
    assert_int_equal(pthread_join(k.th, NULL), 0);
    /* Written before the call: the first wait stops at once. */
    fd = tcp_to(port);
    assert_true(fd >= 0);
    assert_int_equal(write(k.stop_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
    assert_int_equal(
        np_tls_connect(conf,
                       &(struct np_tls_dial){fd, "localhost", {k.stop_fd, np_deadline(IO_MS * 2)}},
                       &t, why, sizeof(why)),
        NP_IO_STOPPED);
    assert_null(t);
    np_net_close(fd);
    np_net_close(k.stop_fd);
    np_net_close(k.lfd);
}

/* ---- configuration ------------------------------------------------------------------------- */

enum file_ref { F_NULL, F_CA, F_OTHER, F_MISSING, F_GARBAGE, F_PARTIAL };

struct conf_row {
    const char *rule;
    enum file_ref bundle; /* F_NULL = NP_TLS_SYSTEM_BUNDLE */
    enum file_ref ca_file;
    enum file_ref tls_ca;
    bool trusts_test;     /* on success: a handshake with the test server verifies */
    const char *why_pre;  /* expected reason: why_pre, the failing file, why_post; NULL = success */
    const char *why_post; /* (the reason may go on after why_post) */
};

#define NO_SUCH ": No such file or directory"
#define NO_CERT ": no usable certificate: "

static const struct conf_row conf_rows[] = {
    {"bundle_only", F_CA, F_NULL, F_NULL, true, NULL, NULL},
    {"other_bundle_does_not_trust", F_OTHER, F_NULL, F_NULL, false, NULL, NULL},
    {"ca_file_adds_roots", F_OTHER, F_CA, F_NULL, true, NULL, NULL},
    {"tls_ca_adds_roots", F_OTHER, F_NULL, F_CA, true, NULL, NULL},
    {"system_bundle_plus_ca_file", F_NULL, F_CA, F_NULL, true, NULL, NULL},
    {"missing_bundle_ok_with_ca_file", F_MISSING, F_CA, F_NULL, true, NULL, NULL},
    {"missing_bundle_ok_with_tls_ca", F_MISSING, F_NULL, F_CA, true, NULL, NULL},
    {"missing_bundle_alone_fails", F_MISSING, F_NULL, F_NULL, false,
     "cannot read system trust bundle ", NO_SUCH},
    {"missing_ca_file_fails", F_CA, F_MISSING, F_NULL, false, "cannot read ca_file ", NO_SUCH},
    {"missing_tls_ca_fails", F_CA, F_NULL, F_MISSING, false, "cannot read tls_ca ", NO_SUCH},
    {"garbage_ca_file_fails", F_CA, F_GARBAGE, F_NULL, false, "ca_file ", NO_CERT},
    {"garbage_bundle_fails", F_GARBAGE, F_NULL, F_NULL, false, "system trust bundle ", NO_CERT},
    {"bundle_may_hold_unparsable_certs", F_PARTIAL, F_NULL, F_NULL, true, NULL, NULL},
    {"ca_file_must_parse_fully", F_OTHER, F_PARTIAL, F_NULL, false, "ca_file ",
     ": 1 certificate(s) could not be parsed"},
    {"tls_ca_must_parse_fully", F_OTHER, F_NULL, F_PARTIAL, false, "tls_ca ",
     ": 1 certificate(s) could not be parsed"},
};

static const char *
file_path(enum file_ref r)
{
    switch (r) {
    case F_NULL:
        return NULL;
    case F_CA:
        return pki.ca;
    case F_OTHER:
        return pki.other;
    case F_MISSING:
        return pki.missing;
    case F_GARBAGE:
        return pki.garbage;
    case F_PARTIAL:
        return pki.partial;
    }
    return NULL;
}

static void
conf_new_loads_or_names_the_file(void **state)
{
    struct fixture *f = *state;
    struct np_tls_conf *conf;
    struct conn c;
    char why[WHY_CAP];
    char want[WHY_CAP];
    const char *bad;
    size_t i;

    for (i = 0; i < NP_ARRAY_LEN(conf_rows); i++) {
        const struct conf_row *row = &conf_rows[i];
        struct np_tls_roots roots = {file_path(row->bundle), file_path(row->ca_file),
                                     file_path(row->tls_ca)};
        int rc;

        if (row->bundle == F_NULL && access(NP_TLS_SYSTEM_BUNDLE, R_OK) != 0) {
            print_message("rule %s: skipped, no %s\n", row->rule, NP_TLS_SYSTEM_BUNDLE);
            continue;
        }
        print_message("rule %s\n", row->rule);
        conf = (struct np_tls_conf *)&conf; /* must be reset */
        memset(why, 'X', sizeof(why) - 1);
        why[sizeof(why) - 1] = '\0';
        rc = np_tls_conf_new(&roots, &conf, why, sizeof(why));
        if (row->why_pre != NULL) {
            bad = row->ca_file != F_NULL && row->ca_file != F_CA ? file_path(row->ca_file)
                  : row->tls_ca != F_NULL && row->tls_ca != F_CA ? file_path(row->tls_ca)
                                                                 : file_path(row->bundle);
            (void)snprintf(want, sizeof(want), "%s%s%s", row->why_pre, bad, row->why_post);
            assert_int_equal(rc, -1);
            assert_null(conf);
            assert_memory_equal(why, want, strlen(want));
            assert_null(strchr(why, '\n'));
            continue;
        }
        assert_int_equal(rc, 0);
        assert_non_null(conf);
        assert_string_equal(why, "");
        assert_int_equal(conn_open(&c, conf, f->srv.port, "localhost", -1),
                         row->trusts_test ? NP_IO_OK : NP_IO_ERR);
        conn_close(&c);
        np_tls_conf_free(conf);
    }
}

/* Confs trusting one bundle share its parse: it is parsed by the first, counted by the
 * others (also those adding their own roots, which still verify), freed with the last. */
static void
confs_share_one_parsed_bundle(void **state)
{
    struct fixture *f = *state;
    struct np_tls_conf *a = NULL;
    struct np_tls_conf *b = NULL;
    struct np_tls_conf *c = NULL;
    struct conn k;
    char why[WHY_CAP];

    assert_int_equal(np_tls_shared_bundle_refs(pki.other), 0);
    assert_int_equal(
        np_tls_conf_new(&(struct np_tls_roots){pki.other, NULL, NULL}, &a, why, sizeof(why)), 0);
    assert_int_equal(np_tls_shared_bundle_refs(pki.other), 1);
    assert_int_equal(
        np_tls_conf_new(&(struct np_tls_roots){pki.other, pki.ca, NULL}, &b, why, sizeof(why)), 0);
    assert_int_equal(
        np_tls_conf_new(&(struct np_tls_roots){pki.other, NULL, pki.ca}, &c, why, sizeof(why)), 0);
    assert_int_equal(np_tls_shared_bundle_refs(pki.other), 3);
    assert_int_equal(conn_open(&k, a, f->srv.port, "localhost", -1), NP_IO_ERR);
    conn_close(&k);
    assert_int_equal(conn_open(&k, b, f->srv.port, "localhost", -1), NP_IO_OK);
    conn_close(&k);
    np_tls_conf_free(b);
    assert_int_equal(conn_open(&k, c, f->srv.port, "localhost", -1), NP_IO_OK);
    conn_close(&k);
    assert_int_equal(conn_open(&k, a, f->srv.port, "localhost", -1), NP_IO_ERR);
    conn_close(&k);
    np_tls_conf_free(a);
    assert_int_equal(np_tls_shared_bundle_refs(pki.other), 1);
    np_tls_conf_free(c);
    assert_int_equal(np_tls_shared_bundle_refs(pki.other), 0);
}

/* Send req to the proxy on port (blocking socket, 30 s receive timeout) and read the answer
 * until the proxy closes or has answered a CONNECT; returns the status, or -1. */
static int
proxy_exchange(uint16_t port, const char *req)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    struct timeval tv = {IO_MS / 1000, 0};
    char buf[4096] = "";
    size_t got = 0;
    int status = -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ssize_t r = 1;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
        goto out;
    }
    while (got < sizeof(buf) - 1 && r > 0 && strstr(buf, "\r\n\r\n") == NULL) {
        r = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        got += r > 0 ? (size_t)r : 0;
        buf[got] = '\0';
    }
    if (got > 12 && strncmp(buf, "HTTP/1.1 ", 9) == 0) {
        status = atoi(buf + 9); // NOLINT(cert-err34-c): a test, three digits checked below
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    return status >= 100 && status <= 599 ? status : -1;
}

/* Count the worker stacks in /proc/self/maps: an NP_THREAD_STACK read-write mapping right
 * above a one-page inaccessible one (the guard). */
static int
guarded_stacks(void)
{
    char line[512];
    unsigned long lo;
    unsigned long hi;
    unsigned long guard_end = 0;
    char perm[8];
    int n = 0;
    FILE *f = fopen("/proc/self/maps", "r");

    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) != 3) {
            continue;
        }
        if (lo == guard_end && hi - lo == NP_THREAD_STACK && strcmp(perm, "rw-p") == 0) {
            n++;
        }
        guard_end =
            hi - lo == (unsigned long)sysconf(_SC_PAGESIZE) && strcmp(perm, "---p") == 0 ? hi : 0;
    }
    fclose(f);
    return n;
}

/* The deepest paths of a worker run on exactly NP_THREAD_STACK (with the guard page below
 * it): a route request to a TLS upstream (full handshake, chain and hostname verification;
 * the echo server then answers the request with itself, which the route refuses with 502),
 * and a CONNECT to "localhost" through the resolver (getaddrinfo). The workers' stacks are
 * painted; the deepest use must leave at least three quarters of the stack unused (the margin
 * lib/common.h gives the paths this test cannot reach). */
static void
worker_stack_fits_deepest_path(void **state)
{
    struct fixture *f = *state;
    struct nonoproxy_config cfg;
    struct nonoproxy_route_config r;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;
    const struct nonoproxy_env_var *env;
    const char *tok = NULL;
    char upstream[64];
    char req[512];
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sin);
    int lfd;
    size_t n;
    size_t i;
    size_t hw;

#ifdef NP_SANITIZED_STACK
    skip(); /* sanitizer frames and stacks are not the release ones */
#endif
    /* The CONNECT's target: a listener that never accepts (the backlog completes it). */
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
    np_listener_paint_stacks(true);
    nonoproxy_config_init(&cfg);
    (void)snprintf(upstream, sizeof(upstream), "https://localhost:%u", f->srv.port);
    nonoproxy_route_config_init(&r, "tls", upstream);
    r.tls_ca = pki.ca;
    assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    assert_int_equal(nonoproxy_start(&cfg, &p, &diag), NONOPROXY_OK);
    nonoproxy_config_free(&cfg);
    nonoproxy_env_vars(p, &env, &n);
    for (i = 0; i < n; i++) {
        if (strcmp(env[i].name, "NONO_PROXY_TOKEN") == 0) {
            tok = env[i].value;
        }
    }
    assert_non_null(tok);
    (void)snprintf(req, sizeof(req),
                   "GET /tls/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n",
                   tok);
    assert_int_equal(proxy_exchange(nonoproxy_port(p), req), 502);
    (void)snprintf(req, sizeof(req),
                   "CONNECT localhost:%u HTTP/1.1\r\nHost: localhost\r\n"
                   "Proxy-Authorization: Bearer %s\r\n\r\n",
                   ntohs(sin.sin_port), tok);
    assert_int_equal(proxy_exchange(nonoproxy_port(p), req), 200);
    assert_true(guarded_stacks() >= 1); /* the worker waiting in accept4(), at least */
    nonoproxy_free(p);                  /* joins and frees the workers: their stacks are measured */
    close(lfd);
    hw = np_listener_stack_high_water();
    np_listener_paint_stacks(false);
    print_message("worker stack: deepest use %zu of %zu bytes\n", hw, NP_THREAD_STACK);
    assert_true(hw > 0);
    assert_true(hw <= NP_THREAD_STACK / 4);
}

static void
free_functions_accept_null(void **state)
{
    (void)state;
    np_tls_free(NULL);
    np_tls_conf_free(NULL);
}

/* ---- threads ----------------------------------------------------------------------------- */

struct worker {
    pthread_t th;
    struct np_tls_conf *conf;
    uint16_t port;
    int id;
    int ok;                  /* cycles that connected and echoed */
    int resumed;             /* of which resumed */
    char fail[WHY_CAP + 64]; /* the first failure */
};

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    struct conn c;
    char msg[64];
    int i;

    for (i = 0; i < CYCLES; i++) {
        uint64_t start = np_now_ms();
        enum np_io rc;

        (void)snprintf(msg, sizeof(msg), "thread %d cycle %d", w->id, i);
        rc = conn_open(&c, w->conf, w->port, "localhost", -1);
        if (rc == NP_IO_OK && echo_str(c.t, msg) == 0) {
            w->ok++;
            w->resumed += np_tls_resumed(c.t) ? 1 : 0;
        } else if (w->fail[0] == '\0') {
            (void)snprintf(w->fail, sizeof(w->fail), "cycle %d: rc %d after %llu ms: %s", i,
                           (int)rc, (unsigned long long)(np_now_ms() - start),
                           rc == NP_IO_OK ? "echo failed" : c.why);
        }
        conn_close(&c);
    }
    return NULL;
}

/* 8 threads x 20 connect/echo/free cycles on one conf (run this one under TSan too). */
static void
threads_share_one_conf(void **state)
{
    struct fixture *f = *state;
    struct worker w[CLIENTS];
    int ok = 0;
    int resumed = 0;
    int i;

    memset(w, 0, sizeof(w));
    for (i = 0; i < CLIENTS; i++) {
        w[i].conf = f->conf;
        w[i].port = f->srv.port;
        w[i].id = i;
        assert_int_equal(pthread_create(&w[i].th, NULL, worker_main, &w[i]), 0);
    }
    for (i = 0; i < CLIENTS; i++) {
        assert_int_equal(pthread_join(w[i].th, NULL), 0);
        ok += w[i].ok;
        resumed += w[i].resumed;
        if (w[i].fail[0] != '\0') {
            print_message("thread %d: %s\n", i, w[i].fail);
        }
    }
    assert_int_equal(ok, CLIENTS * CYCLES);
    /* Each thread's second cycle at the latest finds a saved session. */
    assert_true(resumed >= CLIENTS * (CYCLES - 1) / 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn, opts) cmocka_unit_test_prestate_setup_teardown(fn, fx_setup, fx_teardown, opts)
        T(handshake_then_echo_round_trip, &opts_both),
        T(pending_reports_bytes_held_by_mbedtls, &opts_both),
        T(peer_close_reads_as_eof, &opts_both),
        T(recv_honours_deadline_and_stop, &opts_both),
        T(wrong_ca_fails_verification, &opts_both),
        T(host_must_match_certificate, &opts_both),
        T(second_connection_resumes, &opts_both),
        T(second_connection_resumes, &opts_cache),
        T(second_connection_resumes, &opts_tickets),
        T(second_connection_resumes, &opts_none),
        T(unknown_session_falls_back_to_full_handshake, &opts_both),
        T(tls11_server_is_refused, &opts_tls11),
        T(server_with_one_group_works, &opts_x25519),
        T(server_with_one_group_works, &opts_p256),
        T(server_with_one_group_works, &opts_p384),
        T(client_hello_offers_sni_and_x25519_first, &opts_both),
        T(silent_peer_times_out_at_deadline, &opts_both),
        T(stop_fd_interrupts_handshake, &opts_both),
        T(conf_new_loads_or_names_the_file, &opts_both),
        T(confs_share_one_parsed_bundle, &opts_both),
        T(worker_stack_fits_deepest_path, &opts_both),
        T(free_functions_accept_null, &opts_both),
        T(threads_share_one_conf, &opts_both),
#undef T
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
