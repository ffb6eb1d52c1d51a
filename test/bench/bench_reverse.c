/* Reverse- and forward-proxy benchmark: requests per second of keep-alive HTTP/1.1 GETs, N
 * clients at once (one thread and one persistent connection each, one request at a time), in up
 * to four setups with the same client code.
 *
 * Reverse mode (issue #3, item 8; the default):
 *   direct     HTTPS straight to the upstream (this client does the TLS, mbedTLS), sending the
 *              real key itself;
 *   nonoproxy  plain HTTP to the route base URL nonoproxy-run gave this process (<VAR>), with
 *              "Authorization: Bearer <phantom>"; nonoproxy injects the real key and forwards
 *              over TLS;
 *   nginx      plain HTTP to an nginx configured as the same reverse proxy, same phantom header
 *              (nginx overwrites it with the real key).
 *
 * Forward mode (--forward; issue #4, item 4), plain HTTP only:
 *   direct     "GET /bench" (origin form) straight to the origin;
 *   nonoproxy  "GET http://127.0.0.1:<port>/bench" (absolute form) to the proxy in $HTTP_PROXY,
 *              with "Proxy-Authorization: Basic base64(nono:<token>)", the token from
 *              $NONO_PROXY_TOKEN (nonoproxy-run sets both);
 *   tinyproxy, squid  the same absolute-form request without credentials.
 *
 * Setups are alternated round by round; the table shows the median of the rounds and the median
 * of the per-round ratios. CPU time per request of the client, the proxy and the upstream is
 * read from /proc (process CPU clock for the client).
 *
 * A benchmark, not a test: it exits 0 whatever the numbers; 1 when a measurement is invalid (any
 * failed request: connect or I/O error, non-200 answer, bad framing) or a setup does not answer
 * 200 before the first round; 2 for a bad command line. Run it through test/bench/reverse.sh or
 * test/bench/forward.sh. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "benchutil.h"

#if !defined(MBEDTLS_THREADING_C)
#error "the client threads share one ctr_drbg: mbedTLS must be built with MBEDTLS_THREADING_C"
#endif

#define MAX_MODES       4
#define MAX_ROUNDS      15
#define MAX_CLIENTS     64
#define MAX_PIDS        16
#define RESP_CAP        ((size_t)32 * 1024)
#define REQ_CAP         1024
#define SOCK_TIMEOUT_S  5
#define READY_WAIT_MS   10000
#define CLIENT_STACK    ((size_t)256 * 1024)
#define SAMPLE_LEN      200
#define TARGET_VS_NGINX 1.0
#define TARGET_VS_SQUID 2.0 /* forward: nonoproxy's ratio to direct >= 2 x squid's */
#define AUTH_CAP        256

enum mode_id {
    MODE_DIRECT = 0,
    MODE_NONOPROXY = 1,
    MODE_NGINX = 2,     /* reverse mode */
    MODE_TINYPROXY = 2, /* forward mode */
    MODE_SQUID = 3,     /* forward mode */
};

static const char *const reverse_names[MAX_MODES] = {"direct", "nonoproxy", "nginx", "-"};
static const char *const forward_names[MAX_MODES] = {"direct", "nonoproxy", "tinyproxy", "squid"};

/* Ways a request can fail; any of them makes the measurement invalid. */
enum fail {
    FAIL_CONNECT = 0, /* TCP connect or TLS handshake */
    FAIL_IO,          /* send or receive error: reset, timeout, TLS alert */
    FAIL_EOF,         /* the server closed the connection before a complete answer */
    FAIL_FRAMING,     /* unparsable head, bad chunk, answer too large, bytes after the answer */
    FAIL_STATUS,      /* a complete answer that is not 200 */
    FAIL_COUNT,
};

static const char *const fail_names[FAIL_COUNT] = {"connect", "io", "eof", "framing", "non-200"};

/* One setup: where to connect, the request to send, whose CPU time to read. */
struct mode {
    bool present;
    bool tls;
    char host[128]; /* Host header, SNI and certificate name */
    uint16_t port;  /* always on 127.0.0.1 */
    char request[REQ_CAP];
    size_t request_len;
    pid_t proxy_pids[MAX_PIDS];
    size_t nproxy_pids;
    /* A kept-alive connection that the server closed before any byte of the next answer (no
     * "Connection: close" announced it) is reopened and the request resent, as HTTP clients do,
     * and counted as a reopen; otherwise it is a failure. Set for tinyproxy only, which closes
     * every client connection after one answer. */
    bool retry_stale;
};

/* One client connection; TLS state only for TLS modes. */
struct conn {
    int fd;
    bool tls_up;
    int sys_err; /* errno of the last failed socket call, 0 = none */
    int tls_err; /* mbedTLS code of the last failed TLS call, 0 = none */
    mbedtls_ssl_context ssl;
};

struct client {
    _Alignas(64) _Atomic uint64_t done; /* 200 answers; on its own cache line */
    _Atomic uint64_t fails[FAIL_COUNT];
    _Atomic uint64_t closes;  /* answers with "Connection: close" (the client reconnects) */
    _Atomic uint64_t reopens; /* unannounced closes of a kept-alive connection (retry_stale) */
    struct measurement *m;
    pthread_t thread;
    char *buf;               /* RESP_CAP bytes */
    char sample[SAMPLE_LEN]; /* the first failure, printable */
    bool started;
    struct conn c;
};

/* Shared client TLS setup: read-only once the clients run (the ctr_drbg locks itself). */
struct tls {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca;
    mbedtls_ssl_config conf;
    bool ready;
};

/* One measurement: one setup, one round. */
struct measurement {
    const struct mode *mode;
    const struct tls *tls;
    unsigned nclients;
    atomic_bool stop;
    atomic_uint ready;
    struct client cl[MAX_CLIENTS];
};

struct options {
    unsigned window_ms;
    unsigned warmup_ms;
    unsigned rounds;
    unsigned clients;
    bool verbose;
    const char *ca_file;
    const char *path;
    const char *direct_url;
    const char *direct_key_env;
    const char *nonoproxy_url_env;
    const char *nginx_url;
    const char *phantom_env;
    pid_t nginx_pid;
    pid_t upstream_pid;
    /* forward mode */
    bool forward;
    const char *proxy_env;        /* nonoproxy: its proxy URL ($HTTP_PROXY) */
    const char *token_env;        /* nonoproxy: its token ($NONO_PROXY_TOKEN) */
    const char *nonoproxy_target; /* the origin URL each proxied setup fetches (default: direct) */
    const char *tinyproxy_addr;
    const char *tinyproxy_target;
    pid_t tinyproxy_pid;
    const char *squid_addr;
    const char *squid_target;
    pid_t squid_pid;
    const char *results; /* --results FILE: machine-readable lines for report.py */
    unsigned sse;        /* --sse N: time to first byte of an event stream, N requests */
};

/* The values of one measurement. */
struct sample {
    double rps;
    double client_us; /* CPU µs per request */
    double proxy_us;
    double upstream_us;
    uint64_t requests;
    uint64_t fails[FAIL_COUNT];
    uint64_t closes;
    uint64_t reopens;
    char first_fail[SAMPLE_LEN]; /* the first failure of the measurement, or "" */
};

struct bench {
    struct options o;
    const char *const *names; /* reverse_names or forward_names */
    unsigned nmodes;          /* 3 (reverse) or 4 (forward) */
    struct mode modes[MAX_MODES];
    struct tls tls;
    pid_t upstream_pids[MAX_PIDS];
    size_t nupstream_pids;
    long clk_tck;
    struct sample s[MAX_MODES][MAX_ROUNDS];
    char first_fail[MAX_MODES][SAMPLE_LEN];
    bool invalid;
};

static double
process_cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- connections ------------------------------------------------------------------------- */

/* Socket send for mbedTLS and the plain path: bytes sent or a negative mbedTLS code. */
static int
bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct conn *c = ctx;
    ssize_t n;

    do {
        n = send(c->fd, buf, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        c->sys_err = errno;
        return errno == ECONNRESET || errno == EPIPE ? MBEDTLS_ERR_NET_CONN_RESET
                                                     : MBEDTLS_ERR_NET_SEND_FAILED;
    }
    return (int)n;
}

/* Socket receive for mbedTLS and the plain path: bytes, 0 at end of stream, or a negative
 * mbedTLS code (a receive timeout is an error too: the server is stuck). */
static int
bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct conn *c = ctx;
    ssize_t n;

    do {
        n = recv(c->fd, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        c->sys_err = errno;
        return errno == ECONNRESET ? MBEDTLS_ERR_NET_CONN_RESET : MBEDTLS_ERR_NET_RECV_FAILED;
    }
    return (int)n;
}

static void
conn_close(struct conn *c)
{
    if (c->tls_up) {
        mbedtls_ssl_free(&c->ssl);
        c->tls_up = false;
    }
    if (c->fd >= 0) {
        (void)close(c->fd);
        c->fd = -1;
    }
}

/* Connect to 127.0.0.1:<mode port>, with a TLS handshake for TLS modes. 0 or -1. */
static int
conn_open(struct conn *c, const struct mode *m, const struct tls *tls)
{
    struct sockaddr_in to;
    struct timeval tv = {SOCK_TIMEOUT_S, 0};
    int one = 1;
    int r;

    c->sys_err = 0;
    c->tls_err = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->sys_err = errno;
        return -1;
    }
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    memset(&to, 0, sizeof(to));
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(m->port);
    if (connect(c->fd, (const struct sockaddr *)&to, sizeof(to)) != 0) {
        c->sys_err = errno;
        goto fail;
    }
    if (!m->tls) {
        return 0;
    }
    mbedtls_ssl_init(&c->ssl);
    c->tls_up = true;
    r = mbedtls_ssl_setup(&c->ssl, &tls->conf);
    if (r == 0) {
        r = mbedtls_ssl_set_hostname(&c->ssl, m->host);
    }
    if (r == 0) {
        mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
        do {
            r = mbedtls_ssl_handshake(&c->ssl);
        } while (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE);
    }
    if (r != 0) {
        c->tls_err = r;
        goto fail;
    }
    return 0;
fail:
    conn_close(c);
    return -1;
}

/* Send all of buf. 0 or -1. */
static int
conn_write(struct conn *c, const char *buf, size_t len)
{
    size_t off = 0;
    int r;

    while (off < len) {
        if (c->tls_up) {
            r = mbedtls_ssl_write(&c->ssl, (const unsigned char *)buf + off, len - off);
            if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) {
                continue;
            }
            c->tls_err = r < 0 ? r : 0;
        } else {
            r = bio_send(c, (const unsigned char *)buf + off, len - off);
        }
        if (r <= 0) {
            return -1;
        }
        off += (size_t)r;
    }
    return 0;
}

/* Read some bytes: > 0 bytes, 0 end of stream (TCP FIN or TLS close_notify), -1 error. */
static int
conn_read(struct conn *c, char *buf, size_t cap)
{
    int r;

    if (!c->tls_up) {
        r = bio_recv(c, (unsigned char *)buf, cap);
        return r < 0 ? -1 : r;
    }
    do {
        r = mbedtls_ssl_read(&c->ssl, (unsigned char *)buf, cap);
    } while (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE);
    if (r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || r == MBEDTLS_ERR_SSL_CONN_EOF) {
        return 0;
    }
    c->tls_err = r < 0 ? r : 0;
    return r < 0 ? -1 : r;
}

/* ---- answers ----------------------------------------------------------------------------- */

/* What the head of an answer says about its framing. */
struct answer {
    int status;
    size_t head_len; /* 0 until the blank line arrived */
    bool has_len;
    uint64_t content_len;
    bool chunked;
    bool close;
    size_t len; /* head + body, once complete */
    size_t got; /* bytes received so far */
};

/* True when value[0..len) equals word, ignoring case and surrounding blanks. */
static bool
value_is(const char *value, size_t len, const char *word)
{
    size_t wl = strlen(word);

    while (len > 0 && (*value == ' ' || *value == '\t')) {
        value++;
        len--;
    }
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t')) {
        len--;
    }
    return len == wl && strncasecmp(value, word, wl) == 0;
}

/* Apply one header line [p, eol) to a. 0, or -1 for a malformed Content-Length. */
static int
header_line(const char *p, const char *eol, struct answer *a)
{
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    const char *v;
    size_t nlen;
    uint64_t n = 0;

    if (colon == NULL) {
        return -1;
    }
    nlen = (size_t)(colon - p);
    v = colon + 1;
    if (nlen == 14 && strncasecmp(p, "content-length", nlen) == 0) {
        while (v < eol && *v == ' ') {
            v++;
        }
        if (v == eol) {
            return -1;
        }
        for (; v < eol && *v >= '0' && *v <= '9'; v++) {
            n = n * 10 + (uint64_t)(*v - '0');
            if (n > RESP_CAP) {
                return -1;
            }
        }
        a->has_len = true;
        a->content_len = n;
    } else if (nlen == 17 && strncasecmp(p, "transfer-encoding", nlen) == 0) {
        a->chunked = value_is(v, (size_t)(eol - v), "chunked");
    } else if (nlen == 10 && strncasecmp(p, "connection", nlen) == 0) {
        a->close = value_is(v, (size_t)(eol - v), "close");
    }
    return 0;
}

/* Parse the head buf[0..head_len), which ends in the blank line, into a. 0 or -1. */
static int
parse_head(const char *buf, size_t head_len, struct answer *a)
{
    const char *end = buf + head_len;
    const char *p;
    const char *eol;

    if (head_len < 16 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ' ||
        !isdigit((unsigned char)buf[9]) || !isdigit((unsigned char)buf[10]) ||
        !isdigit((unsigned char)buf[11])) {
        return -1;
    }
    a->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    a->head_len = head_len;
    p = memmem(buf, head_len, "\r\n", 2);
    p += 2;
    while (p < end) {
        eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (eol == NULL) {
            return -1;
        }
        if (eol == p) {
            break; /* the blank line */
        }
        if (header_line(p, eol, a) != 0) {
            return -1;
        }
        p = eol + 2;
    }
    return 0;
}

static int
hex_value(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* Parse the chunk-size line at buf[*off]: 1 with *size and *off moved past the line, 0 while
 * more bytes are needed, -1 when malformed. */
static int
chunk_size_line(const char *buf, size_t have, size_t *off, uint64_t *size)
{
    const char *eol;
    size_t i = *off;
    unsigned digits = 0;
    int h;

    *size = 0;
    while (i < have && (h = hex_value(buf[i])) >= 0) {
        *size = *size * 16 + (uint64_t)h;
        if (++digits > 8) {
            return -1;
        }
        i++;
    }
    if (i == have) {
        return 0;
    }
    eol = memmem(buf + i, have - i, "\r\n", 2);
    if (digits == 0 || (eol == NULL && have - i > 256)) {
        return -1;
    }
    if (eol == NULL) {
        return 0;
    }
    *off = (size_t)(eol - buf) + 2;
    return 1;
}

/* Skip the trailer lines after the last chunk, from buf[off]: 1 with *total = the end of the
 * blank line, 0 while more bytes are needed. */
static int
chunk_trailer_end(const char *buf, size_t have, size_t off, size_t *total)
{
    const char *eol;

    for (;;) {
        eol = memmem(buf + off, have - off, "\r\n", 2);
        if (eol == NULL) {
            return 0;
        }
        if (eol == buf + off) {
            *total = off + 2;
            return 1;
        }
        off = (size_t)(eol - buf) + 2;
    }
}

/* Walk the chunked body that starts at buf[off]. Returns 1 with *total = the answer's length
 * once buf[0..have) holds all of it, 0 while more bytes are needed, -1 when it is malformed. */
static int
chunked_end(const char *buf, size_t have, size_t off, size_t *total)
{
    uint64_t size = 0;
    int r;

    for (;;) {
        r = chunk_size_line(buf, have, &off, &size);
        if (r <= 0) {
            return r;
        }
        if (size == 0) {
            return chunk_trailer_end(buf, have, off, total);
        }
        if (size > RESP_CAP) {
            return -1;
        }
        if (have - off < size + 2) {
            return 0;
        }
        if (buf[off + size] != '\r' || buf[off + size + 1] != '\n') {
            return -1;
        }
        off += (size_t)size + 2;
    }
}

/* Once the head is parsed: 1 with a->len set when buf[0..have) holds the whole answer, 0 when
 * more is needed, -1 when the framing is bad or not keep-alive friendly (body to end of stream). */
static int
answer_complete(const char *buf, size_t have, struct answer *a)
{
    if (a->chunked) {
        return chunked_end(buf, have, a->head_len, &a->len);
    }
    if (a->has_len) {
        a->len = a->head_len + (size_t)a->content_len;
        return have >= a->len ? 1 : 0;
    }
    if (a->status == 204 || a->status == 304 || a->status / 100 == 1) {
        a->len = a->head_len;
        return 1;
    }
    return -1;
}

/* Read one answer on c into buf (RESP_CAP bytes). true with a filled, or false with *why. */
static bool
read_answer(struct conn *c, char *buf, struct answer *a, enum fail *why)
{
    const char *eoh;
    size_t have = 0;
    int n;
    int done = 0;

    memset(a, 0, sizeof(*a));
    while (done == 0) {
        if (have == RESP_CAP - 1) {
            *why = FAIL_FRAMING;
            return false;
        }
        n = conn_read(c, buf + have, RESP_CAP - 1 - have);
        if (n <= 0) {
            *why = n == 0 ? FAIL_EOF : FAIL_IO;
            return false;
        }
        have += (size_t)n;
        a->got = have;
        buf[have] = '\0';
        if (a->head_len == 0) {
            eoh = memmem(buf, have, "\r\n\r\n", 4);
            if (eoh == NULL) {
                continue;
            }
            if (parse_head(buf, (size_t)(eoh - buf) + 4, a) != 0) {
                *why = FAIL_FRAMING;
                return false;
            }
        }
        done = answer_complete(buf, have, a);
    }
    /* Pipelining is off: nothing may follow the answer. */
    if (done < 0 || have != a->len) {
        *why = FAIL_FRAMING;
        return false;
    }
    return true;
}

/* ---- clients ----------------------------------------------------------------------------- */

/* Copy up to cap-1 bytes of src[0..len) into dst, control characters as spaces. */
static void
printable(char *dst, size_t cap, const char *src, size_t len)
{
    size_t i;

    for (i = 0; i < len && i + 1 < cap; i++) {
        dst[i] = ' ';
        if (src[i] >= 0x20 && src[i] < 0x7f) {
            dst[i] = src[i];
        }
    }
    dst[i] = '\0';
}

/* Count a failure of kind why; the first one of the client is kept as a sample (what for
 * a non-200: its status line and the start of its body). */
static void
client_fail(struct client *cl, enum fail why, const struct answer *a)
{
    const char *eol;
    size_t used;

    char ebuf[80];
    char sys[96] = "";
    char tls[96] = "";

    bench_count(&cl->fails[why], 1);
    if (cl->sample[0] != '\0') {
        return;
    }
    if (why != FAIL_STATUS || a == NULL) {
        if (cl->c.sys_err != 0) {
            (void)snprintf(sys, sizeof(sys), " %s", strerror_r(cl->c.sys_err, ebuf, sizeof(ebuf)));
        }
        if (cl->c.tls_err != 0) {
            tls[0] = ' ';
            mbedtls_strerror(cl->c.tls_err, tls + 1, sizeof(tls) - 1);
        }
        (void)snprintf(cl->sample, sizeof(cl->sample), "%s error:%s%s", fail_names[why], sys, tls);
        return;
    }
    eol = memmem(cl->buf, a->head_len, "\r\n", 2);
    printable(cl->sample, sizeof(cl->sample), cl->buf, (size_t)(eol - cl->buf));
    used = strlen(cl->sample);
    if (used + 4 < sizeof(cl->sample)) {
        memcpy(cl->sample + used, " | ", 4);
        used += 3;
        printable(cl->sample + used, sizeof(cl->sample) - used, cl->buf + a->head_len,
                  a->len - a->head_len);
    }
}

/* After a failed send, or a receive that failed before any byte of the answer, on a connection
 * that has served answers already: when the mode allows it (retry_stale), count a reopen, close
 * the connection and return true (the caller reopens and resends). */
static bool
stale_reopen(struct client *cl, uint64_t served)
{
    if (!cl->m->mode->retry_stale || served == 0) {
        return false;
    }
    bench_count(&cl->reopens, 1);
    conn_close(&cl->c);
    return true;
}

/* Send one request on cl's open connection and read the answer: count a 200, a failure (the
 * connection is then closed) or a reopen. *served counts the answers on the connection. */
static void
client_exchange(struct client *cl, uint64_t *served)
{
    const struct mode *mode = cl->m->mode;
    struct answer a;
    enum fail why = FAIL_IO;

    if (conn_write(&cl->c, mode->request, mode->request_len) != 0) {
        if (!stale_reopen(cl, *served)) {
            client_fail(cl, FAIL_IO, NULL);
            conn_close(&cl->c);
        }
        return;
    }
    if (!read_answer(&cl->c, cl->buf, &a, &why)) {
        if (why == FAIL_FRAMING || a.got != 0 || !stale_reopen(cl, *served)) {
            client_fail(cl, why, NULL);
            conn_close(&cl->c);
        }
        return;
    }
    (*served)++;
    if (a.status == 200) {
        bench_count(&cl->done, 1);
    } else {
        client_fail(cl, FAIL_STATUS, &a);
    }
    if (a.close) {
        bench_count(&cl->closes, 1);
        conn_close(&cl->c);
    }
}

/* A client: one connection (reopened after a failure), one request at a time, until stop. */
static void *
client_main(void *arg)
{
    struct client *cl = arg;
    struct measurement *m = cl->m;
    struct timespec pause = {0, 1000000L};
    uint64_t served = 0; /* answers on the current connection */
    bool ready = false;

    (void)pthread_setname_np(pthread_self(), "bench-client"); /* tells perf samples apart */
    while (!atomic_load_explicit(&m->stop, memory_order_relaxed)) {
        if (cl->c.fd < 0) {
            served = 0;
            if (conn_open(&cl->c, m->mode, m->tls) != 0) {
                client_fail(cl, FAIL_CONNECT, NULL);
                nanosleep(&pause, NULL); /* do not spin on a refusing server */
            }
        }
        if (cl->c.fd >= 0 && !ready) {
            atomic_fetch_add(&m->ready, 1);
            ready = true;
        }
        if (cl->c.fd >= 0) {
            client_exchange(cl, &served);
        }
    }
    if (!ready) {
        atomic_fetch_add(&m->ready, 1);
    }
    if (cl->c.tls_up) {
        (void)mbedtls_ssl_close_notify(&cl->c.ssl);
    }
    conn_close(&cl->c);
    return NULL;
}

/* ---- measurements ------------------------------------------------------------------------ */

static uint64_t
done_sum(struct measurement *m)
{
    uint64_t sum = 0;
    unsigned i;

    for (i = 0; i < m->nclients; i++) {
        sum += atomic_load_explicit(&m->cl[i].done, memory_order_relaxed);
    }
    return sum;
}

/* Allocate a measurement of mode with n clients, each with its buffer. NULL on failure. */
static struct measurement *
measurement_new(const struct mode *mode, const struct tls *tls, unsigned n)
{
    struct measurement *m = aligned_alloc(64, sizeof(struct measurement));
    unsigned i;

    if (m == NULL) {
        return NULL;
    }
    memset(m, 0, sizeof(*m));
    m->mode = mode;
    m->tls = tls;
    m->nclients = n;
    atomic_init(&m->stop, false);
    atomic_init(&m->ready, 0);
    for (i = 0; i < n; i++) {
        m->cl[i].m = m;
        m->cl[i].c.fd = -1;
        m->cl[i].buf = malloc(RESP_CAP);
        if (m->cl[i].buf == NULL) {
            break;
        }
    }
    if (i < n) {
        while (i > 0) {
            free(m->cl[--i].buf);
        }
        free(m);
        return NULL;
    }
    return m;
}

static void
measurement_free(struct measurement *m)
{
    unsigned i;

    for (i = 0; i < m->nclients; i++) {
        free(m->cl[i].buf);
    }
    free(m);
}

/* Start m's clients; returns the number started. */
static unsigned
start_clients(struct measurement *m)
{
    pthread_attr_t attr;
    unsigned i;

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, CLIENT_STACK);
    for (i = 0; i < m->nclients; i++) {
        if (pthread_create(&m->cl[i].thread, &attr, client_main, &m->cl[i]) != 0) {
            break;
        }
        m->cl[i].started = true;
    }
    pthread_attr_destroy(&attr);
    return i;
}

/* Counters read at the start and the end of the window. */
struct snap {
    double t;
    uint64_t done;
    double client_cpu;
    unsigned long long proxy_ticks;
    unsigned long long upstream_ticks;
};

static void
take_snap(const struct bench *b, struct measurement *m, struct snap *s)
{
    s->done = done_sum(m);
    s->t = bench_now_s();
    s->client_cpu = process_cpu_s();
    s->proxy_ticks = bench_cpu_ticks(m->mode->proxy_pids, m->mode->nproxy_pids);
    s->upstream_ticks = bench_cpu_ticks(b->upstream_pids, b->nupstream_pids);
}

/* With m's clients running: wait until they are connected (bounded), let warmup_ms pass, then
 * read the counters over window_ms into out. */
static void
measure_window(const struct bench *b, struct measurement *m, unsigned window_ms, unsigned warmup_ms,
               struct sample *out)
{
    struct snap s0;
    struct snap s1;
    unsigned waited = 0;
    double cpu_per_tick;

    while (atomic_load(&m->ready) < m->nclients && waited < READY_WAIT_MS) {
        bench_sleep_ms(1);
        waited++;
    }
    bench_sleep_ms(warmup_ms);
    take_snap(b, m, &s0);
    bench_sleep_ms(window_ms);
    take_snap(b, m, &s1);
    out->requests = s1.done - s0.done;
    out->rps = (double)out->requests / (s1.t - s0.t);
    if (out->requests > 0) {
        cpu_per_tick = 1e6 / (double)b->clk_tck / (double)out->requests;
        out->client_us = (s1.client_cpu - s0.client_cpu) * 1e6 / (double)out->requests;
        out->proxy_us = (double)(s1.proxy_ticks - s0.proxy_ticks) * cpu_per_tick;
        out->upstream_us = (double)(s1.upstream_ticks - s0.upstream_ticks) * cpu_per_tick;
    }
}

/* Measure mode mi once: clients connected, warm-up, window. *out receives the values and the
 * first failure, if any. 0, or -1 when the clients could not be started. */
static int
measure(struct bench *b, enum mode_id mi, unsigned window_ms, unsigned warmup_ms,
        struct sample *out)
{
    struct measurement *m = measurement_new(&b->modes[mi], &b->tls, b->o.clients);
    unsigned started;
    unsigned i;
    unsigned k;

    memset(out, 0, sizeof(*out));
    if (m == NULL) {
        return -1;
    }
    started = start_clients(m);
    if (started == m->nclients) {
        measure_window(b, m, window_ms, warmup_ms, out);
    }
    atomic_store(&m->stop, true);
    for (i = 0; i < started; i++) {
        pthread_join(m->cl[i].thread, NULL);
        for (k = 0; k < FAIL_COUNT; k++) {
            out->fails[k] += atomic_load(&m->cl[i].fails[k]);
        }
        out->closes += atomic_load(&m->cl[i].closes);
        out->reopens += atomic_load(&m->cl[i].reopens);
        if (out->first_fail[0] == '\0' && m->cl[i].sample[0] != '\0') {
            memcpy(out->first_fail, m->cl[i].sample, SAMPLE_LEN);
        }
    }
    measurement_free(m);
    return started == b->o.clients ? 0 : -1;
}

static uint64_t
fail_total(const struct sample *s)
{
    uint64_t sum = 0;
    unsigned k;

    for (k = 0; k < FAIL_COUNT; k++) {
        sum += s->fails[k];
    }
    return sum;
}

/* Send one request on a fresh connection and check for a 200. Prints what went wrong and
 * returns -1 otherwise. */
static int
preflight(struct bench *b, enum mode_id mi)
{
    struct client *cl = calloc(1, sizeof(*cl));
    struct measurement *m = calloc(1, sizeof(*m));
    struct answer a;
    enum fail why = FAIL_IO;
    int rc = -1;

    if (cl == NULL || m == NULL || (cl->buf = malloc(RESP_CAP)) == NULL) {
        goto out;
    }
    cl->m = m;
    m->mode = &b->modes[mi];
    m->tls = &b->tls;
    cl->c.fd = -1;
    if (conn_open(&cl->c, m->mode, m->tls) != 0) {
        client_fail(cl, FAIL_CONNECT, NULL);
    } else if (conn_write(&cl->c, m->mode->request, m->mode->request_len) != 0) {
        client_fail(cl, FAIL_IO, NULL);
    } else if (!read_answer(&cl->c, cl->buf, &a, &why)) {
        client_fail(cl, why, NULL);
    } else if (a.status != 200) {
        client_fail(cl, FAIL_STATUS, &a);
    } else {
        rc = 0;
        if (b->o.verbose) {
            (void)fprintf(stderr, "preflight %-9s HTTP 200, %zu-byte answer\n", b->names[mi],
                          a.len);
        }
    }
    if (rc != 0) {
        (void)fprintf(stderr, "bench_reverse: %s does not answer 200: %s\n", b->names[mi],
                      cl->sample);
    }
    conn_close(&cl->c);
out:
    if (cl != NULL) {
        free(cl->buf);
    }
    free(cl);
    free(m);
    return rc;
}

/* ---- setup ------------------------------------------------------------------------------- */

/* Load the CA and prepare the shared client TLS configuration (verification required). */
static int
tls_setup(struct tls *t, const char *ca_file)
{
    static const char pers[] = "bench_reverse";
    char err[128];
    int r;

    mbedtls_entropy_init(&t->entropy);
    mbedtls_ctr_drbg_init(&t->drbg);
    mbedtls_x509_crt_init(&t->ca);
    mbedtls_ssl_config_init(&t->conf);
    t->ready = true;
    r = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy,
                              (const unsigned char *)pers, sizeof(pers) - 1);
    if (r == 0) {
        r = mbedtls_x509_crt_parse_file(&t->ca, ca_file);
        if (r > 0) {
            r = MBEDTLS_ERR_X509_CERT_VERIFY_FAILED; /* some certificates did not parse */
        }
    }
    if (r == 0) {
        r = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT,
                                        MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
    }
    if (r != 0) {
        mbedtls_strerror(r, err, sizeof(err));
        (void)fprintf(stderr, "bench_reverse: TLS setup with CA %s: %s\n", ca_file, err);
        return -1;
    }
    mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
    mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
    return 0;
}

static void
tls_free(struct tls *t)
{
    if (!t->ready) {
        return;
    }
    mbedtls_ssl_config_free(&t->conf);
    mbedtls_x509_crt_free(&t->ca);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_entropy_free(&t->entropy);
}

/* The parts of an "http[s]://[userinfo@]host[:port][/base]" URL. */
struct url {
    bool tls;
    char host[128];
    uint16_t port;
    const char *base; /* points into the URL; blen bytes, trailing '/' left out */
    size_t blen;
};

/* Split url into u. The host must be localhost or 127.0.0.1 (connections always go to
 * 127.0.0.1); userinfo, if any, is skipped. 0 or -1 with a message. */
static int
url_split(const char *url, const char *name, struct url *u)
{
    const char *hp;
    const char *hend;
    const char *at;
    const char *colon;
    size_t hlen;
    unsigned long port;
    char *end = NULL;

    memset(u, 0, sizeof(*u));
    u->tls = strncmp(url, "https://", 8) == 0;
    if (!u->tls && strncmp(url, "http://", 7) != 0) {
        goto bad;
    }
    hp = url + (u->tls ? 8 : 7);
    hend = hp + strcspn(hp, "/");
    at = memchr(hp, '@', (size_t)(hend - hp));
    while (at != NULL) { /* the last '@' of the authority ends the userinfo */
        hp = at + 1;
        at = memchr(hp, '@', (size_t)(hend - hp));
    }
    colon = memchr(hp, ':', (size_t)(hend - hp));
    hlen = (size_t)((colon != NULL ? colon : hend) - hp);
    port = u->tls ? 443 : 80;
    if (colon != NULL) {
        port = strtoul(colon + 1, &end, 10);
        if (end != hend || port == 0 || port > 65535) {
            goto bad;
        }
    }
    if (hlen == 0 || hlen >= sizeof(u->host)) {
        goto bad;
    }
    memcpy(u->host, hp, hlen);
    u->host[hlen] = '\0';
    if (strcmp(u->host, "localhost") != 0 && strcmp(u->host, "127.0.0.1") != 0) {
        (void)fprintf(stderr, "bench_reverse: %s: only localhost or 127.0.0.1\n", name);
        return -1;
    }
    u->port = (uint16_t)port;
    u->base = hend;
    u->blen = strlen(hend);
    while (u->blen > 0 && u->base[u->blen - 1] == '/') {
        u->blen--;
    }
    return 0;
bad:
    /* The URL itself is not printed: a proxy URL carries the session token. */
    (void)fprintf(stderr, "bench_reverse: %s: bad URL (http[s]://host[:port][/base])\n", name);
    return -1;
}

/* Set up reverse-mode setup m from url ("http[s]://host[:port][/base]"): the request for base +
 * path with "Authorization: Bearer <auth>". 0 or -1 with a message. */
static int
mode_set(struct mode *m, const char *name, const char *url, const char *path, const char *auth)
{
    struct url u;
    int n;

    if (url_split(url, name, &u) != 0) {
        return -1;
    }
    m->tls = u.tls;
    memcpy(m->host, u.host, sizeof(m->host));
    m->port = u.port;
    n = snprintf(m->request, sizeof(m->request),
                 "GET %.*s%s HTTP/1.1\r\nHost: %s:%u\r\nAuthorization: Bearer %s\r\n"
                 "User-Agent: bench_reverse\r\nAccept: */*\r\n\r\n",
                 (int)u.blen, u.base, path, m->host, (unsigned)m->port, auth);
    if (n <= 0 || (size_t)n >= sizeof(m->request)) {
        (void)fprintf(stderr, "bench_reverse: %s: request too long\n", name);
        return -1;
    }
    m->request_len = (size_t)n;
    m->present = true;
    return 0;
}

/* Encode in[0..len) in base64 (RFC 4648, padded) into out. 0, or -1 when out is too small. */
static int
base64_encode(const char *in, size_t len, char *out, size_t cap)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)in;
    size_t i;
    size_t o = 0;
    uint32_t v;

    if ((len + 2) / 3 * 4 + 1 > cap) {
        return -1;
    }
    for (i = 0; i + 2 < len; i += 3) {
        v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = abc[v >> 6 & 63];
        out[o++] = abc[v & 63];
    }
    if (i < len) {
        v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = '=';
        out[o++] = '=';
        if (i + 1 < len) {
            out[o - 2] = abc[v >> 6 & 63];
        }
    }
    out[o] = '\0';
    return 0;
}

/* One forward-mode setup, as the command line and the environment give it. */
struct forward_spec {
    const char *name;
    const char *proxy;  /* "http://[userinfo@]host:port" (userinfo ignored), NULL = direct */
    const char *target; /* the origin's base URL */
    const char *path;
    const char *basic; /* base64 credentials for Proxy-Authorization, or NULL */
};

/* Write m's request for the origin t: origin form when spec has no proxy, else absolute form
 * with the Proxy-Authorization header when spec has credentials. 0 or -1 with a message. */
static int
forward_request(struct mode *m, const struct forward_spec *spec, const struct url *t)
{
    char auth[AUTH_CAP + 64] = "";
    char abs[192] = "";
    int n;

    if (spec->proxy != NULL) {
        (void)snprintf(abs, sizeof(abs), "http://%s:%u", t->host, (unsigned)t->port);
    }
    if (spec->basic != NULL) {
        (void)snprintf(auth, sizeof(auth), "Proxy-Authorization: Basic %s\r\n", spec->basic);
    }
    n = snprintf(m->request, sizeof(m->request),
                 "GET %s%.*s%s HTTP/1.1\r\nHost: %s:%u\r\n%s"
                 "User-Agent: bench_forward\r\nAccept: */*\r\n\r\n",
                 abs, (int)t->blen, t->base, spec->path, t->host, (unsigned)t->port, auth);
    if (n <= 0 || (size_t)n >= sizeof(m->request)) {
        (void)fprintf(stderr, "bench_reverse: %s: request too long\n", spec->name);
        return -1;
    }
    m->request_len = (size_t)n;
    return 0;
}

/* Set up forward-mode setup m from spec: a GET of target + path, sent straight to the target
 * or to the proxy. 0 or -1 with a message. */
static int
forward_mode_set(struct mode *m, const struct forward_spec *spec)
{
    struct url t;
    struct url px;

    if (url_split(spec->target, spec->name, &t) != 0) {
        return -1;
    }
    if (t.tls) {
        (void)fprintf(stderr, "bench_reverse: %s: --forward measures plain http only\n",
                      spec->name);
        return -1;
    }
    memcpy(m->host, t.host, sizeof(m->host));
    m->port = t.port;
    if (spec->proxy != NULL) {
        if (url_split(spec->proxy, spec->name, &px) != 0) {
            return -1;
        }
        if (px.tls || px.blen != 0) {
            (void)fprintf(stderr, "bench_reverse: %s: the proxy must be http://host:port\n",
                          spec->name);
            return -1;
        }
        m->port = px.port;
    }
    if (forward_request(m, spec, &t) != 0) {
        return -1;
    }
    m->present = true;
    return 0;
}

/* The value of environment variable name, or NULL (with a message naming it). */
static const char *
env_value(const char *name, const char *what)
{
    const char *v = getenv(name); /* NOLINT(concurrency-mt-unsafe): before any thread */

    if (v == NULL || *v == '\0') {
        (void)fprintf(stderr, "bench_reverse: %s: $%s is not set\n", what, name);
        return NULL;
    }
    return v;
}

/* When this process runs under nonoproxy-run, the proxy is the parent process: record it as
 * the nonoproxy mode's CPU account. */
static void
find_nonoproxy(struct mode *m)
{
    char path[64];
    char comm[64] = "";
    pid_t parent = getppid();
    FILE *f;

    (void)snprintf(path, sizeof(path), "/proc/%ld/comm", (long)parent);
    f = fopen(path, "re");
    if (f == NULL) {
        return;
    }
    if (fgets(comm, sizeof(comm), f) != NULL && strncmp(comm, "nonoproxy-run", 13) == 0) {
        m->proxy_pids[0] = parent;
        m->nproxy_pids = 1;
    }
    (void)fclose(f);
}

/* Build the modes from the options. 0 or -1 (message printed). */
static int
setup_modes(struct bench *b)
{
    const struct options *o = &b->o;
    const char *key;
    const char *phantom = "phantom-unset"; /* nginx replaces it whatever it is */
    const char *url;

    key = env_value(o->direct_key_env, "direct");
    if (key == NULL ||
        mode_set(&b->modes[MODE_DIRECT], "direct", o->direct_url, o->path, key) != 0) {
        return -1;
    }
    if (!b->modes[MODE_DIRECT].tls && o->sse == 0) {
        (void)fprintf(stderr, "bench_reverse: --direct must be an https URL\n");
        return -1;
    }
    if (o->phantom_env != NULL && getenv(o->phantom_env) != NULL) { /* NOLINT: no threads */
        phantom = env_value(o->phantom_env, "phantom");
    }
    if (o->nonoproxy_url_env != NULL) {
        url = env_value(o->nonoproxy_url_env, "nonoproxy (not run under nonoproxy-run?)");
        if (url != NULL && o->phantom_env != NULL && strcmp(phantom, "phantom-unset") == 0) {
            (void)fprintf(stderr, "bench_reverse: nonoproxy: $%s (the phantom) is not set\n",
                          o->phantom_env);
            url = NULL;
        }
        if (url != NULL &&
            mode_set(&b->modes[MODE_NONOPROXY], "nonoproxy", url, o->path, phantom) != 0) {
            return -1;
        }
        find_nonoproxy(&b->modes[MODE_NONOPROXY]);
    }
    if (o->nginx_url != NULL) {
        if (mode_set(&b->modes[MODE_NGINX], "nginx", o->nginx_url, o->path, phantom) != 0) {
            return -1;
        }
        b->modes[MODE_NGINX].nproxy_pids =
            bench_family_of(o->nginx_pid, b->modes[MODE_NGINX].proxy_pids, MAX_PIDS);
    }
    b->nupstream_pids = bench_family_of(o->upstream_pid, b->upstream_pids, MAX_PIDS);
    return 0;
}

/* Build nonoproxy's forward setup from $proxy_env and $token_env (what nonoproxy-run gives this
 * process). Returns 0 when it is set up or absent (not under nonoproxy-run: a message, no mode),
 * -1 on a bad value. */
static int
setup_forward_nonoproxy(struct bench *b, const char *target)
{
    const struct options *o = &b->o;
    struct mode *m = &b->modes[MODE_NONOPROXY];
    const char *proxy;
    const char *token;
    char userpass[AUTH_CAP];
    char basic[AUTH_CAP];
    int n;
    int rc = -1;

    proxy = env_value(o->proxy_env, "nonoproxy (not run under nonoproxy-run?)");
    token = o->token_env != NULL ? env_value(o->token_env, "nonoproxy token") : NULL;
    if (proxy == NULL || token == NULL) {
        return 0;
    }
    n = snprintf(userpass, sizeof(userpass), "nono:%s", token);
    if (n <= 0 || (size_t)n >= sizeof(userpass) ||
        base64_encode(userpass, (size_t)n, basic, sizeof(basic)) != 0) {
        (void)fprintf(stderr, "bench_reverse: nonoproxy: $%s is too long\n", o->token_env);
        goto out;
    }
    {
        const struct forward_spec spec = {"nonoproxy", proxy, target, o->path, basic};

        rc = forward_mode_set(m, &spec);
    }
    find_nonoproxy(m);
out:
    memset(userpass, 0, sizeof(userpass));
    return rc;
}

/* The origin URL a proxied setup fetches: its own target, or the direct one. */
static const char *
target_or_direct(const struct options *o, const char *target)
{
    return target != NULL ? target : o->direct_url;
}

/* Build the forward-mode setups from the options. 0 or -1 (message printed). */
static int
setup_forward_modes(struct bench *b)
{
    const struct options *o = &b->o;
    const struct forward_spec direct = {"direct", NULL, o->direct_url, o->path, NULL};
    const struct forward_spec tinyproxy = {"tinyproxy", o->tinyproxy_addr,
                                           target_or_direct(o, o->tinyproxy_target), o->path, NULL};
    const struct forward_spec squid = {"squid", o->squid_addr, target_or_direct(o, o->squid_target),
                                       o->path, NULL};
    struct mode *m;

    if (forward_mode_set(&b->modes[MODE_DIRECT], &direct) != 0) {
        return -1;
    }
    if (o->proxy_env != NULL &&
        setup_forward_nonoproxy(b, target_or_direct(o, o->nonoproxy_target)) != 0) {
        return -1;
    }
    if (o->tinyproxy_addr != NULL) {
        m = &b->modes[MODE_TINYPROXY];
        if (forward_mode_set(m, &tinyproxy) != 0) {
            return -1;
        }
        m->retry_stale = true;
        m->nproxy_pids = bench_family_of(o->tinyproxy_pid, m->proxy_pids, MAX_PIDS);
    }
    if (o->squid_addr != NULL) {
        m = &b->modes[MODE_SQUID];
        if (forward_mode_set(m, &squid) != 0) {
            return -1;
        }
        m->nproxy_pids = bench_family_of(o->squid_pid, m->proxy_pids, MAX_PIDS);
    }
    b->nupstream_pids = bench_family_of(o->upstream_pid, b->upstream_pids, MAX_PIDS);
    return 0;
}

/* ---- command line ------------------------------------------------------------------------ */

static void
usage(FILE *f)
{
    (void)fprintf(
        f,
        "usage: bench_reverse --ca FILE --direct URL --direct-key-env VAR [--nginx URL]\n"
        "                     [--nonoproxy-url-env VAR] [--phantom-env VAR] [--path P]\n"
        "                     [--nginx-pid PID] [--upstream-pid PID] [--clients N]\n"
        "                     [--window-ms N] [--warmup-ms N] [--rounds N] [--quick] [-v]\n"
        "  --direct URL           https base URL of the upstream (this client does TLS)\n"
        "  --direct-key-env VAR   the real key, sent as 'Bearer <key>' in direct mode\n"
        "  --nginx URL            http base URL of an nginx reverse proxy to the upstream\n"
        "  --nonoproxy-url-env V  nonoproxy's route base URL is in $V (nonoproxy-run sets it)\n"
        "  --phantom-env VAR      the phantom token, sent by the proxied modes\n"
        "  --path P               appended to every base URL (default /bench)\n"
        "  --nginx-pid, --upstream-pid  nginx master pids, for CPU time per request\n"
        "  --quick                1000 ms windows, 200 ms warm-up, 3 rounds\n"
        "                         (default: 3000 ms, 500 ms, 5 rounds, 16 clients)\n"
        "\n"
        "       bench_reverse --forward --direct URL [--proxy-env VAR --token-env VAR]\n"
        "                     [--nonoproxy-target URL] [--tinyproxy URL [--tinyproxy-target URL]\n"
        "                     [--tinyproxy-pid PID]] [--squid URL [--squid-target URL]\n"
        "                     [--squid-pid PID]] [--path P] [--upstream-pid PID] [--clients N]\n"
        "                     [--window-ms N] [--warmup-ms N] [--rounds N] [--quick] [-v]\n"
        "  --forward              plain-HTTP forward-proxy mode (no TLS, no keys)\n"
        "  --direct URL           http base URL of the origin (origin-form requests)\n"
        "  --proxy-env VAR        nonoproxy's proxy URL is in $VAR (HTTP_PROXY)\n"
        "  --token-env VAR        its token is in $VAR (NONO_PROXY_TOKEN): Proxy-Authorization\n"
        "  --tinyproxy, --squid URL  http://127.0.0.1:PORT of that proxy (no credentials)\n"
        "  --X-target URL         the origin base URL setup X fetches (default: --direct)\n"
        "  --tinyproxy-pid, --squid-pid  their pids, for CPU time per request\n"
        "\n"
        "  both: --results FILE   append machine-readable lines (medians) to FILE\n"
        "  reverse: --sse N       instead of req/s: N event-stream requests per setup and round,\n"
        "                         time to the first body byte (--direct may then be http)\n");
}

static int
parse_pid(const char *s, pid_t *out)
{
    unsigned v = 0;

    if (bench_parse_uint("bench_reverse", s, 1, INT32_MAX, &v) != 0) {
        return -1;
    }
    *out = (pid_t)v;
    return 0;
}

/* Long-only options. */
enum {
    OPT_FORWARD = 256,
    OPT_PROXY_ENV,
    OPT_TOKEN_ENV,
    OPT_NONOPROXY_TARGET,
    OPT_TINYPROXY,
    OPT_TINYPROXY_TARGET,
    OPT_TINYPROXY_PID,
    OPT_SQUID,
    OPT_SQUID_TARGET,
    OPT_SQUID_PID,
    OPT_RESULTS,
    OPT_SSE,
};

/* Apply forward-mode option ch (with its value arg) to o. 0 or -1. */
static int
apply_forward_opt(int ch, const char *arg, struct options *o)
{
    switch (ch) {
    case OPT_FORWARD:
        o->forward = true;
        return 0;
    case OPT_PROXY_ENV:
        o->proxy_env = arg;
        return 0;
    case OPT_TOKEN_ENV:
        o->token_env = arg;
        return 0;
    case OPT_NONOPROXY_TARGET:
        o->nonoproxy_target = arg;
        return 0;
    case OPT_TINYPROXY:
        o->tinyproxy_addr = arg;
        return 0;
    case OPT_TINYPROXY_TARGET:
        o->tinyproxy_target = arg;
        return 0;
    case OPT_TINYPROXY_PID:
        return parse_pid(arg, &o->tinyproxy_pid);
    case OPT_SQUID:
        o->squid_addr = arg;
        return 0;
    case OPT_SQUID_TARGET:
        o->squid_target = arg;
        return 0;
    case OPT_SQUID_PID:
        return parse_pid(arg, &o->squid_pid);
    case OPT_RESULTS:
        o->results = arg;
        return 0;
    case OPT_SSE:
        return bench_parse_uint("bench_reverse", arg, 1, 100000, &o->sse);
    default:
        usage(stderr);
        return -1;
    }
}

/* Apply option ch (with its value optarg) to o. 0 or -1. */
static int
apply_opt(int ch, const char *arg, struct options *o)
{
    if (ch >= OPT_FORWARD) {
        return apply_forward_opt(ch, arg, o);
    }
    switch (ch) {
    case 'C':
        o->ca_file = arg;
        return 0;
    case 'd':
        o->direct_url = arg;
        return 0;
    case 'k':
        o->direct_key_env = arg;
        return 0;
    case 'n':
        o->nginx_url = arg;
        return 0;
    case 'N':
        o->nonoproxy_url_env = arg;
        return 0;
    case 'p':
        o->phantom_env = arg;
        return 0;
    case 'P':
        o->path = arg;
        return 0;
    case 'g':
        return parse_pid(arg, &o->nginx_pid);
    case 'u':
        return parse_pid(arg, &o->upstream_pid);
    case 'c':
        return bench_parse_uint("bench_reverse", arg, 1, MAX_CLIENTS, &o->clients);
    case 'w':
        return bench_parse_uint("bench_reverse", arg, 100, 60000, &o->window_ms);
    case 'W':
        return bench_parse_uint("bench_reverse", arg, 0, 60000, &o->warmup_ms);
    case 'r':
        return bench_parse_uint("bench_reverse", arg, 1, MAX_ROUNDS, &o->rounds);
    case 'q':
        o->window_ms = 1000;
        o->warmup_ms = 200;
        o->rounds = 3;
        return 0;
    case 'v':
        o->verbose = true;
        return 0;
    default:
        usage(stderr);
        return -1;
    }
}

/* Parse argv into o. 0, 1 (help) or -1. */
static int
parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"ca", required_argument, NULL, 'C'},
        {"direct", required_argument, NULL, 'd'},
        {"direct-key-env", required_argument, NULL, 'k'},
        {"nginx", required_argument, NULL, 'n'},
        {"nonoproxy-url-env", required_argument, NULL, 'N'},
        {"phantom-env", required_argument, NULL, 'p'},
        {"path", required_argument, NULL, 'P'},
        {"nginx-pid", required_argument, NULL, 'g'},
        {"upstream-pid", required_argument, NULL, 'u'},
        {"clients", required_argument, NULL, 'c'},
        {"window-ms", required_argument, NULL, 'w'},
        {"warmup-ms", required_argument, NULL, 'W'},
        {"rounds", required_argument, NULL, 'r'},
        {"quick", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"forward", no_argument, NULL, OPT_FORWARD},
        {"proxy-env", required_argument, NULL, OPT_PROXY_ENV},
        {"token-env", required_argument, NULL, OPT_TOKEN_ENV},
        {"nonoproxy-target", required_argument, NULL, OPT_NONOPROXY_TARGET},
        {"tinyproxy", required_argument, NULL, OPT_TINYPROXY},
        {"tinyproxy-target", required_argument, NULL, OPT_TINYPROXY_TARGET},
        {"tinyproxy-pid", required_argument, NULL, OPT_TINYPROXY_PID},
        {"squid", required_argument, NULL, OPT_SQUID},
        {"squid-target", required_argument, NULL, OPT_SQUID_TARGET},
        {"squid-pid", required_argument, NULL, OPT_SQUID_PID},
        {"results", required_argument, NULL, OPT_RESULTS},
        {"sse", required_argument, NULL, OPT_SSE},
        {NULL, 0, NULL, 0},
    };
    int ch;
    int rc = 0;

    /* getopt_long is not thread-safe: this runs before any thread starts. */
    while (rc == 0 && (ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) { /* NOLINT */
        if (ch == 'h') {
            usage(stdout);
            return 1;
        }
        rc = apply_opt(ch, optarg, o);
    }
    if (rc == 0 && o->forward &&
        (optind != argc || o->direct_url == NULL || o->path[0] != '/' ||
         (o->proxy_env == NULL) != (o->token_env == NULL))) {
        usage(stderr);
        rc = -1;
    }
    if (rc == 0 && !o->forward &&
        (optind != argc || o->ca_file == NULL || o->direct_url == NULL ||
         o->direct_key_env == NULL || o->path[0] != '/')) {
        usage(stderr);
        rc = -1;
    }
    return rc;
}

/* ---- report ------------------------------------------------------------------------------ */

/* Which value of a sample a column shows. */
enum field {
    F_RPS,
    F_CLIENT,
    F_PROXY,
    F_UPSTREAM,
};

static double
field_of(const struct sample *s, enum field f)
{
    switch (f) {
    case F_RPS:
        return s->rps;
    case F_CLIENT:
        return s->client_us;
    case F_PROXY:
        return s->proxy_us;
    case F_UPSTREAM:
        return s->upstream_us;
    }
    return 0.0;
}

/* The median over the rounds of field f in mode mi. */
static double
mode_median(const struct bench *b, enum mode_id mi, enum field f)
{
    double v[MAX_ROUNDS];
    unsigned i;

    for (i = 0; i < b->o.rounds; i++) {
        v[i] = field_of(&b->s[mi][i], f);
    }
    return bench_median(v, b->o.rounds);
}

/* The median over the rounds of rps(num) / rps(den), both measured in the same round. */
static double
ratio(const struct bench *b, enum mode_id num, enum mode_id den)
{
    double r[MAX_ROUNDS];
    unsigned i;

    for (i = 0; i < b->o.rounds; i++) {
        r[i] = b->s[den][i].rps > 0.0 ? b->s[num][i].rps / b->s[den][i].rps : 0.0;
    }
    return bench_median(r, b->o.rounds);
}

/* Print the median of field f in mode mi, or "-" for a mode that is absent or has no value. */
static void
print_cell(const struct bench *b, enum mode_id mi, enum field f, int width)
{
    bool none = !b->modes[mi].present || (f == F_PROXY && b->modes[mi].nproxy_pids == 0) ||
                (f == F_UPSTREAM && b->nupstream_pids == 0);

    if (none) {
        (void)printf(" %*s", width, "-");
    } else {
        (void)printf(" %*.1f", width, mode_median(b, mi, f));
    }
}

static void
print_ratio(const struct bench *b, enum mode_id num, enum mode_id den)
{
    if (b->modes[num].present && b->modes[den].present) {
        (void)printf(" %9.3f", ratio(b, num, den));
    } else {
        (void)printf(" %9s", "-");
    }
}

/* Print the CPU time per request of every present setup. */
static void
print_cpu_table(const struct bench *b)
{
    unsigned mi;
    double total;

    (void)printf(
        "\n\nCPU time per request, microseconds (median of the rounds; client: this process, "
        "proxy and upstream: /proc)\n");
    (void)printf("%-10s %8s %8s %9s %8s\n", "setup", "client", "proxy", "upstream", "total");
    for (mi = 0; mi < MAX_MODES; mi++) {
        if (!b->modes[mi].present) {
            continue;
        }
        (void)printf("%-10s", b->names[mi]);
        print_cell(b, (enum mode_id)mi, F_CLIENT, 8);
        print_cell(b, (enum mode_id)mi, F_PROXY, 8);
        print_cell(b, (enum mode_id)mi, F_UPSTREAM, 9);
        total = mode_median(b, (enum mode_id)mi, F_CLIENT) +
                mode_median(b, (enum mode_id)mi, F_PROXY) +
                mode_median(b, (enum mode_id)mi, F_UPSTREAM);
        (void)printf(" %8.1f\n", total);
    }
    (void)printf("\n");
}

/* Print the forward-mode tables: req/s and ratios, CPU time, the target line. */
static void
print_forward_table(const struct bench *b)
{
    const bool np = b->modes[MODE_NONOPROXY].present;
    const bool tp = b->modes[MODE_TINYPROXY].present;
    const bool sq = b->modes[MODE_SQUID].present;
    double r;
    char label[48];

    (void)snprintf(label, sizeof(label), "GET keep-alive, %u cl.", b->o.clients);
    (void)printf("\n%-22s %-5s %10s %10s %10s %10s %9s %9s %9s\n", "case", "unit", "direct",
                 "nonoproxy", "tinyproxy", "squid", "np/direct", "tp/direct", "sq/direct");
    (void)printf("%-22s %-5s", label, "req/s");
    print_cell(b, MODE_DIRECT, F_RPS, 10);
    print_cell(b, MODE_NONOPROXY, F_RPS, 10);
    print_cell(b, MODE_TINYPROXY, F_RPS, 10);
    print_cell(b, MODE_SQUID, F_RPS, 10);
    print_ratio(b, MODE_NONOPROXY, MODE_DIRECT);
    print_ratio(b, MODE_TINYPROXY, MODE_DIRECT);
    print_ratio(b, MODE_SQUID, MODE_DIRECT);
    print_cpu_table(b);
    /* Per round, (np/direct) / (sq/direct) = np/sq: the median of the per-round np/sq. */
    if (np && sq) {
        r = ratio(b, MODE_NONOPROXY, MODE_SQUID);
        (void)printf(
            "  %s  nonoproxy's ratio / squid's ratio %.3f %s %.2f (median of the per-round "
            "nonoproxy/squid)\n",
            r >= TARGET_VS_SQUID ? "PASS" : "FAIL", r, r >= TARGET_VS_SQUID ? ">=" : "< ",
            TARGET_VS_SQUID);
    } else {
        (void)printf("  n/a   nonoproxy / squid: %s not measured\n", np ? "squid" : "nonoproxy");
    }
    if (np && tp) {
        (void)printf("  info  nonoproxy's ratio / tinyproxy's ratio %.3f (median of the per-round "
                     "nonoproxy/tinyproxy)\n",
                     ratio(b, MODE_NONOPROXY, MODE_TINYPROXY));
    } else {
        (void)printf("  n/a   nonoproxy / tinyproxy: %s not measured\n",
                     np ? "tinyproxy" : "nonoproxy");
    }
}

static void
print_table(const struct bench *b)
{
    const bool np = b->modes[MODE_NONOPROXY].present;
    const bool ng = b->modes[MODE_NGINX].present;
    char label[48];

    (void)snprintf(label, sizeof(label), "GET keep-alive, %u cl.", b->o.clients);
    (void)printf("\n%-22s %-5s %10s %10s %10s %9s %9s %9s\n", "case", "unit", "direct", "nonoproxy",
                 "nginx", "np/direct", "ng/direct", "np/nginx");
    (void)printf("%-22s %-5s", label, "req/s");
    print_cell(b, MODE_DIRECT, F_RPS, 10);
    print_cell(b, MODE_NONOPROXY, F_RPS, 10);
    print_cell(b, MODE_NGINX, F_RPS, 10);
    print_ratio(b, MODE_NONOPROXY, MODE_DIRECT);
    print_ratio(b, MODE_NGINX, MODE_DIRECT);
    print_ratio(b, MODE_NONOPROXY, MODE_NGINX);
    print_cpu_table(b);
    if (np && ng) {
        (void)printf("  %s  nonoproxy / nginx %.3f %s %.2f (median of the per-round ratios)\n",
                     ratio(b, MODE_NONOPROXY, MODE_NGINX) >= TARGET_VS_NGINX ? "PASS" : "FAIL",
                     ratio(b, MODE_NONOPROXY, MODE_NGINX),
                     ratio(b, MODE_NONOPROXY, MODE_NGINX) >= TARGET_VS_NGINX ? ">=" : "< ",
                     TARGET_VS_NGINX);
    } else {
        (void)printf("  n/a   nonoproxy / nginx: %s not measured\n", np ? "nginx" : "nonoproxy");
    }
}

/* Print every mode's failures; true when there were any (the run is then invalid). */
static bool
print_failures(const struct bench *b)
{
    bool any = false;
    uint64_t sum[FAIL_COUNT];
    uint64_t closes;
    uint64_t reopens;
    uint64_t requests;
    unsigned mi;
    unsigned i;
    unsigned k;

    for (mi = 0; mi < MAX_MODES; mi++) {
        memset(sum, 0, sizeof(sum));
        closes = 0;
        reopens = 0;
        requests = 0;
        for (i = 0; b->modes[mi].present && i < b->o.rounds; i++) {
            for (k = 0; k < FAIL_COUNT; k++) {
                sum[k] += b->s[mi][i].fails[k];
            }
            closes += b->s[mi][i].closes;
            reopens += b->s[mi][i].reopens;
            requests += b->s[mi][i].requests;
        }
        for (k = 0; k < FAIL_COUNT; k++) {
            if (sum[k] != 0) {
                (void)printf("  INVALID  %s: %llu %s failures\n", b->names[mi],
                             (unsigned long long)sum[k], fail_names[k]);
                any = true;
            }
        }
        if (closes != 0) {
            (void)printf(
                "  warning  %s: %llu answers with Connection: close (client reconnected)\n",
                b->names[mi], (unsigned long long)closes);
        }
        if (reopens != 0) {
            (void)printf("  note     %s: %llu kept-alive connections closed by the server without "
                         "Connection: close (reopened, request resent; %llu answers in the "
                         "windows)\n",
                         b->names[mi], (unsigned long long)reopens, (unsigned long long)requests);
        }
        if (b->first_fail[mi][0] != '\0') {
            (void)printf("           %s, first failure: %s\n", b->names[mi], b->first_fail[mi]);
        }
    }
    if (!any) {
        (void)printf("  no failed requests (every answer a complete 200)\n");
    }
    return any;
}

/* ---- issue #12: results file, RSS, SSE time to first byte -------------------------------- */

/* One results line per present setup (medians of the rounds): req/s, ratio to direct, to nginx
 * (reverse), proxy CPU µs per request, failed requests. */
static void
write_results(const struct bench *b)
{
    uint64_t fails;
    unsigned mi;
    unsigned i;

    for (mi = 0; mi < MAX_MODES; mi++) {
        if (!b->modes[mi].present) {
            continue;
        }
        fails = 0;
        for (i = 0; i < b->o.rounds; i++) {
            fails += fail_total(&b->s[mi][i]);
        }
        bench_result(
            b->o.results,
            "%s %s value=%.4f ratio=%.4f ratio_nginx=%.4f cpu=%.4f errors=%llu rounds=%u",
            b->o.forward ? "fwd16" : "route16", b->names[mi],
            mode_median(b, (enum mode_id)mi, F_RPS), ratio(b, (enum mode_id)mi, MODE_DIRECT),
            !b->o.forward && b->modes[MODE_NGINX].present ? ratio(b, (enum mode_id)mi, MODE_NGINX)
                                                          : 0.0,
            b->modes[mi].nproxy_pids > 0 ? mode_median(b, (enum mode_id)mi, F_PROXY) : -1.0,
            (unsigned long long)fails, b->o.rounds);
    }
}

/* The RSS of the proxies before any request reached them (reverse mode: nonoproxy with its one
 * TLS route, the nginx reverse proxy), one results line each. */
static void
write_idle_rss(const struct bench *b)
{
    unsigned mi;

    for (mi = 1; mi < MAX_MODES; mi++) {
        if (b->modes[mi].present && b->modes[mi].nproxy_pids > 0) {
            bench_result(b->o.results, "rss_route %s idle_kib=%lu", b->names[mi],
                         bench_rss_kib(b->modes[mi].proxy_pids, b->modes[mi].nproxy_pids));
        }
    }
}

/* One event-stream request on a new connection: ms from connect() to the first byte of the
 * body (after a 200 head). 0, or -1 on any failure. */
static int
sse_once(const struct mode *m, const struct tls *tls, char *buf, double *ms)
{
    struct conn c;
    const char *eoh = NULL;
    size_t have = 0;
    double t0 = bench_now_s();
    int n;
    int rc = -1;

    memset(&c, 0, sizeof(c));
    c.fd = -1;
    if (conn_open(&c, m, tls) != 0) {
        return -1;
    }
    if (conn_write(&c, m->request, m->request_len) != 0) {
        goto out;
    }
    while (eoh == NULL || (size_t)(eoh + 4 - buf) >= have) {
        n = conn_read(&c, buf + have, RESP_CAP - have);
        if (n <= 0) {
            goto out;
        }
        have += (size_t)n;
        eoh = memmem(buf, have, "\r\n\r\n", 4);
    }
    *ms = (bench_now_s() - t0) * 1e3;
    rc = memcmp(buf, "HTTP/1.1 200", 12) == 0 ? 0 : -1;
out:
    conn_close(&c);
    return rc;
}

/* --sse N: per round and setup (rotated), N event-stream requests one after the other; the
 * median time to the first body byte per round, then the medians of the rounds and of the
 * per-round differences to direct. Returns 0, or 1 when any request failed. */
static int
run_sse(struct bench *b)
{
    static double med[MAX_MODES][MAX_ROUNDS];
    double *v = calloc(b->o.sse, sizeof(double));
    char *buf = malloc(RESP_CAP);
    uint64_t fails[MAX_MODES] = {0};
    double added[MAX_ROUNDS];
    unsigned round;
    unsigned mi;
    unsigned j;
    unsigned k;
    unsigned ok;

    if (v == NULL || buf == NULL) {
        free(v);
        free(buf);
        return 1;
    }
    for (round = 0; round < b->o.rounds; round++) {
        for (j = 0; j < b->nmodes; j++) {
            mi = (j + round) % b->nmodes;
            for (k = 0, ok = 0; b->modes[mi].present && k < b->o.sse; k++) {
                if (sse_once(&b->modes[mi], &b->tls, buf, &v[ok]) == 0) {
                    ok++;
                } else {
                    fails[mi]++;
                }
            }
            med[mi][round] = ok > 0 ? bench_median_any(v, ok) : 0.0;
        }
    }
    (void)printf("\nSSE time to first byte, ms (median of %u requests per round, median of %u "
                 "rounds):\n",
                 b->o.sse, b->o.rounds);
    for (mi = 0; mi < b->nmodes; mi++) {
        if (!b->modes[mi].present) {
            continue;
        }
        for (round = 0; round < b->o.rounds; round++) {
            added[round] = med[mi][round] - med[MODE_DIRECT][round];
        }
        (void)printf("  %-10s %8.3f ms  added %+8.3f ms  failed %llu\n", b->names[mi],
                     bench_median(med[mi], b->o.rounds), bench_median(added, b->o.rounds),
                     (unsigned long long)fails[mi]);
        bench_result(b->o.results, "sse %s value=%.4f added=%.4f errors=%llu rounds=%u",
                     b->names[mi], bench_median(med[mi], b->o.rounds),
                     bench_median(added, b->o.rounds), (unsigned long long)fails[mi], b->o.rounds);
        b->invalid = b->invalid || fails[mi] != 0;
    }
    free(v);
    free(buf);
    return b->invalid ? 1 : 0;
}

/* ---- main -------------------------------------------------------------------------------- */

/* Measure every present mode in every round, the order rotated by the round; the first pass
 * (unrecorded) warms up every setup (worker pools, upstream connections). 0 or -1. */
static int
run_all(struct bench *b)
{
    enum mode_id order[MAX_MODES];
    struct sample warm;
    struct sample *v;
    unsigned n = 0;
    unsigned round;
    unsigned j;
    enum mode_id mi;

    for (j = 0; j < MAX_MODES; j++) {
        if (b->modes[j].present) {
            order[n++] = (enum mode_id)j;
        }
    }
    for (j = 0; j < n; j++) {
        if (measure(b, order[j], 300, 100, &warm) != 0) {
            return -1;
        }
    }
    for (round = 0; round < b->o.rounds; round++) {
        for (j = 0; j < n; j++) {
            mi = order[(j + round) % n];
            v = &b->s[mi][round];
            if (measure(b, mi, b->o.window_ms, b->o.warmup_ms, v) != 0) {
                (void)fprintf(stderr, "bench_reverse: cannot start the clients\n");
                return -1;
            }
            if (b->first_fail[mi][0] == '\0') {
                memcpy(b->first_fail[mi], v->first_fail, SAMPLE_LEN);
            }
            b->invalid = b->invalid || fail_total(&b->s[mi][round]) != 0;
            if (b->o.verbose) {
                (void)fprintf(stderr,
                              "round %u %-9s %9.1f req/s  cpu/req us: client %.1f proxy %.1f "
                              "upstream %.1f  failures %llu reopens %llu\n",
                              round, b->names[mi], b->s[mi][round].rps, b->s[mi][round].client_us,
                              b->s[mi][round].proxy_us, b->s[mi][round].upstream_us,
                              (unsigned long long)fail_total(&b->s[mi][round]),
                              (unsigned long long)b->s[mi][round].reopens);
            }
        }
    }
    return 0;
}

static void
print_header(const struct bench *b)
{
    unsigned mi;

    if (b->o.sse > 0) {
        (void)printf("SSE time-to-first-byte benchmark: %ld CPUs, one client, %u new connections "
                     "per setup and round, %u rounds, setups alternated\n",
                     sysconf(_SC_NPROCESSORS_ONLN), b->o.sse, b->o.rounds);
    } else {
        (void)printf(
            "%s benchmark: %ld CPUs, %u clients (keep-alive, one request at a time "
            "each), %u ms window after %u ms warm-up, median of %u rounds, setups alternated\n",
            b->o.forward ? "forward-proxy (plain HTTP)" : "reverse-proxy",
            sysconf(_SC_NPROCESSORS_ONLN), b->o.clients, b->o.window_ms, b->o.warmup_ms,
            b->o.rounds);
    }
    for (mi = 0; mi < b->nmodes; mi++) {
        const struct mode *m = &b->modes[mi];
        const char *eol;

        if (!m->present) {
            (void)printf("  %-9s not measured\n", b->names[mi]);
            continue;
        }
        eol = strstr(m->request, " HTTP/1.1");
        if (b->o.forward) {
            /* The request line only: the headers may carry the token. */
            (void)printf("  %-9s to 127.0.0.1:%u: %.*s  (%zu CPU-accounted processes)\n",
                         b->names[mi], (unsigned)m->port, (int)(eol - m->request), m->request,
                         m->nproxy_pids);
            continue;
        }
        (void)printf("  %-9s %s://%s:%u%.*s  (%zu CPU-accounted processes)\n", b->names[mi],
                     m->tls ? "https" : "http", m->host, (unsigned)m->port,
                     (int)(eol - m->request - 4), m->request + 4, m->nproxy_pids);
    }
    (void)fflush(stdout);
}

/* Set up the setups of b's mode and send each one request: a setup that does not answer 200 is
 * dropped and *missing set (also when nonoproxy was asked for and is absent). 0, or -1 when
 * the setup failed or direct does not answer. */
static int
prepare(struct bench *b, bool *missing)
{
    unsigned mi;

    b->names = b->o.forward ? forward_names : reverse_names;
    b->nmodes = b->o.forward ? 4 : 3;
    if (b->o.forward ? setup_forward_modes(b) != 0
                     : (setup_modes(b) != 0 || tls_setup(&b->tls, b->o.ca_file) != 0)) {
        return -1;
    }
    if (!b->o.forward && b->o.sse == 0) {
        write_idle_rss(b);
    }
    for (mi = 0; b->o.sse == 0 && mi < MAX_MODES; mi++) {
        if (b->modes[mi].present && preflight(b, (enum mode_id)mi) != 0) {
            b->modes[mi].present = false;
            *missing = true;
        }
    }
    if ((b->o.nonoproxy_url_env != NULL || b->o.proxy_env != NULL) &&
        !b->modes[MODE_NONOPROXY].present) {
        *missing = true;
    }
    return b->modes[MODE_DIRECT].present ? 0 : -1;
}

int
main(int argc, char **argv)
{
    static struct bench b;
    bool missing = false;
    int rc = 1;
    int pr;

    b.o.window_ms = 3000;
    b.o.warmup_ms = 500;
    b.o.rounds = 5;
    b.o.clients = 16;
    b.o.path = "/bench";
    pr = parse_args(argc, argv, &b.o);
    if (pr != 0) {
        return pr > 0 ? 0 : 2;
    }
    b.clk_tck = sysconf(_SC_CLK_TCK);
    if (b.clk_tck <= 0 || prepare(&b, &missing) != 0) {
        goto out;
    }
    print_header(&b);
    if (b.o.sse > 0) {
        rc = run_sse(&b) != 0 || missing ? 1 : 0;
        goto out;
    }
    if (run_all(&b) != 0) {
        goto out;
    }
    write_results(&b);
    if (b.o.forward) {
        print_forward_table(&b);
    } else {
        print_table(&b);
    }
    if (print_failures(&b) || missing) {
        goto out;
    }
    rc = 0;
out:
    tls_free(&b.tls);
    return rc;
}
