/* Allocation-failure injection (issue 11) through lib/alloc.h's test hook np_alloc_fail_at():
 *   - start-up: every allocation of a start with routes of the four inject modes, an external
 *     proxy with a bypass list and an allowlist fails once in turn; start must return an error
 *     with a diagnostic and leave no fd and no thread behind;
 *   - one request of each kind (CONNECT tunnel, plain-HTTP forward, a route of each inject
 *     mode, CONNECT chained through a fake enterprise proxy): every allocation of the request
 *     fails once in turn; the client must get a 5xx or a close (never a hang, never another
 *     answer), and the next request, with injection off, must succeed.
 * Only allocations of lib/ are counted: mbedTLS, http-parser and libc allocate with their own
 * malloc. Routes use plain http:// upstreams on 127.0.0.1 (no TLS origin here).
 * NP_ALLOC_STEP=n (default 1) tries only every n-th allocation (./project.sh valgrind). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "harness.h"

#define SECRET       "user:sk-REAL-secret-0123456789"
#define CHAIN_HOST   "chain.example"
#define MAX_CONNS    4096
#define SLACK_ALLOCS 4 /* also try a few allocations past the counted ones */

/* ---------------------------------------------------------------------------------------- */
/* A small server: ORIGIN answers every request "200 ok" (keep-alive); ENTERPRISE answers the  */
/* first head "200 Connection established" and then echoes until EOF.                        */

enum srv_mode { SRV_ORIGIN, SRV_ENTERPRISE };

struct srv {
    int lfd;
    uint16_t port;
    enum srv_mode mode;
    atomic_bool stop;
    pthread_t acceptor;
    pthread_mutex_t mu;
    int conns[MAX_CONNS];
    pthread_t threads[MAX_CONNS];
    size_t n;
};

struct srv_conn {
    struct srv *s;
    int fd;
};

/* Wait for fd to be readable while the server runs; false when stopping. */
static bool
srv_wait(struct srv *s, int fd)
{
    while (!atomic_load(&s->stop)) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, 100);
        if (r > 0) {
            return true;
        }
        if (r < 0 && errno != EINTR) {
            return false;
        }
    }
    return false;
}

static void *
srv_conn_main(void *arg)
{
    struct srv_conn *c = arg;
    struct srv *s = c->s;
    int fd = c->fd;
    char buf[16384];
    size_t have = 0;
    bool tunnel = false;

    free(c);
    while (srv_wait(s, fd)) {
        char *end;
        ssize_t n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);

        if (n <= 0) {
            break;
        }
        if (tunnel) {
            if (send_all(fd, buf, (size_t)n) != 0) {
                break;
            }
            continue;
        }
        have += (size_t)n;
        buf[have] = '\0';
        while ((end = strstr(buf, "\r\n\r\n")) != NULL) {
            size_t head_len = (size_t)(end - buf) + 4;
            static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            static const char est[] = "HTTP/1.1 200 Connection established\r\n\r\n";

            if (s->mode == SRV_ENTERPRISE) {
                if (send_all(fd, est, sizeof(est) - 1) != 0 ||
                    send_all(fd, buf + head_len, have - head_len) != 0) {
                    goto out;
                }
                tunnel = true;
                have = 0;
                break;
            }
            if (send_all(fd, ok, sizeof(ok) - 1) != 0) {
                goto out;
            }
            memmove(buf, buf + head_len, have - head_len + 1);
            have -= head_len;
        }
        if (have == sizeof(buf) - 1) {
            break;
        }
    }
out:
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++) {
        if (s->conns[i] == fd) {
            s->conns[i] = -1;
        }
    }
    close(fd);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void *
srv_accept_main(void *arg)
{
    struct srv *s = arg;

    while (srv_wait(s, s->lfd)) {
        struct srv_conn *c;
        int fd = accept(s->lfd, NULL, NULL);

        if (fd < 0) {
            continue;
        }
        pthread_mutex_lock(&s->mu);
        c = malloc(sizeof(*c));
        if (c == NULL || s->n == MAX_CONNS) {
            free(c);
            close(fd);
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        c->s = s;
        c->fd = fd;
        if (pthread_create(&s->threads[s->n], NULL, srv_conn_main, c) != 0) {
            free(c);
            close(fd);
        } else {
            s->conns[s->n++] = fd;
        }
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

static struct srv *
srv_start(enum srv_mode mode)
{
    struct srv *s = calloc(1, sizeof(*s));
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    assert_non_null(s);
    s->mode = mode;
    atomic_init(&s->stop, false);
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(s->lfd, 64), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &len), 0);
    s->port = ntohs(sin.sin_port);
    assert_int_equal(pthread_create(&s->acceptor, NULL, srv_accept_main, s), 0);
    return s;
}

static void
srv_stop(struct srv *s)
{
    size_t i;

    atomic_store(&s->stop, true);
    pthread_join(s->acceptor, NULL);
    for (i = 0; i < s->n; i++) {
        pthread_join(s->threads[i], NULL);
    }
    close(s->lfd);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---------------------------------------------------------------------------------------- */
/* The proxy under test.                                                                       */

static enum nonoproxy_credential_result
cred_cb(void *userdata, const char *key, char *buf, size_t cap, size_t *len)
{
    (void)userdata;
    if (strcmp(key, "test-key") == 0 && cap > sizeof(SECRET)) {
        memcpy(buf, SECRET, sizeof(SECRET) - 1);
        *len = sizeof(SECRET) - 1;
        return NONOPROXY_CREDENTIAL_FOUND;
    }
    return NONOPROXY_CREDENTIAL_PASS;
}

/* No name resolves (the chained host is resolved by the enterprise proxy). */
static int
no_resolve(void *userdata, const char *host, uint16_t port, struct nonoproxy_addrs *out)
{
    (void)userdata;
    (void)host;
    (void)port;
    out->count = 0;
    return -1;
}

static void
add_route(struct nonoproxy_config *cfg, const char *prefix, const char *up,
          enum nonoproxy_inject_mode mode)
{
    struct nonoproxy_route_config r;

    nonoproxy_route_config_init(&r, prefix, up);
    r.credential_key = "test-key";
    r.inject_mode = mode;
    if (mode == NONOPROXY_INJECT_URL_PATH) {
        r.path_pattern = "/bot{}/";
    } else if (mode == NONOPROXY_INJECT_QUERY_PARAM) {
        r.query_param_name = "key";
    }
    assert_int_equal(nonoproxy_config_add_route(cfg, &r), NONOPROXY_OK);
}

/* Routes h/u/q/b (one per inject mode) to origin_port, the enterprise proxy at ext_port with
 * 127.0.0.1 bypassed, an allowlist of 127.0.0.1 and CHAIN_HOST. */
static void
make_config(struct nonoproxy_config *cfg, uint16_t origin_port, uint16_t ext_port)
{
    char buf[64];

    nonoproxy_config_init(cfg);
    cfg->credential_cb = cred_cb;
    cfg->resolver = no_resolve;
    cfg->connect_timeout_ms = 5000;
    cfg->response_timeout_ms = 10000;
    snprintf(buf, sizeof(buf), "http://127.0.0.1:%u", (unsigned)origin_port);
    add_route(cfg, "h", buf, NONOPROXY_INJECT_HEADER);
    add_route(cfg, "u", buf, NONOPROXY_INJECT_URL_PATH);
    add_route(cfg, "q", buf, NONOPROXY_INJECT_QUERY_PARAM);
    add_route(cfg, "b", buf, NONOPROXY_INJECT_BASIC_AUTH);
    snprintf(buf, sizeof(buf), "127.0.0.1:%u", (unsigned)ext_port);
    assert_int_equal(nonoproxy_config_set_external_proxy(cfg, buf, NULL), NONOPROXY_OK);
    assert_int_equal(nonoproxy_config_add_bypass_host(cfg, "127.0.0.1", NULL), NONOPROXY_OK);
    assert_int_equal(nonoproxy_config_allow_host(cfg, "127.0.0.1", NULL), NONOPROXY_OK);
    assert_int_equal(nonoproxy_config_allow_host(cfg, CHAIN_HOST, NULL), NONOPROXY_OK);
}

static unsigned long
step(void)
{
    const char *s = getenv("NP_ALLOC_STEP");
    unsigned long n = s != NULL ? strtoul(s, NULL, 10) : 1UL;

    return n == 0 ? 1UL : n;
}

/* ---------------------------------------------------------------------------------------- */
/* Start-up.                                                                                   */

static void
test_start(void **state)
{
    struct srv *origin = srv_start(SRV_ORIGIN);
    struct srv *ext = srv_start(SRV_ENTERPRISE);
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;
    unsigned long total;
    unsigned long k;
    unsigned long failed = 0;
    unsigned long started = 0;
    int fds;
    int threads;

    (void)state;
    make_config(&cfg, origin->port, ext->port);
    fds = count_fds();
    threads = count_threads();

    np_alloc_fail_at(0);
    memset(&diag, 0, sizeof(diag));
    assert_int_equal(nonoproxy_start(&cfg, &p, &diag), NONOPROXY_OK);
    total = np_alloc_count();
    nonoproxy_free(p);
    p = NULL;
    assert_int_equal(wait_threads(threads), threads);
    assert_int_equal(count_fds(), fds);
    assert_true(total > 0);

    for (k = 1; k <= total + SLACK_ALLOCS; k += step()) {
        enum nonoproxy_err rc;

        memset(&diag, 0, sizeof(diag));
        np_alloc_fail_at(k);
        rc = nonoproxy_start(&cfg, &p, &diag);
        np_alloc_fail_at(0);
        if (rc == NONOPROXY_OK) {
            /* The failure fell outside start (k past the end): the proxy must be whole. */
            assert_non_null(p);
            started++;
            nonoproxy_free(p);
            p = NULL;
        } else {
            if (p != NULL) {
                fail_msg("allocation %lu: start failed but wrote *out", k);
            }
            if (rc != NONOPROXY_ERR_NOMEM) {
                fail_msg("allocation %lu: start failed with %s (%s), not out of memory", k,
                         nonoproxy_strerror(rc), diag.message);
            }
            if (diag.message[0] == '\0') {
                fail_msg("allocation %lu: start failed (%s) without a diagnostic", k,
                         nonoproxy_strerror(rc));
            }
            failed++;
        }
        if (wait_threads(threads) != threads) {
            fail_msg("allocation %lu: %d threads left, %d before", k, count_threads(), threads);
        }
        if (count_fds() != fds) {
            fail_msg("allocation %lu: %d fds open, %d before", k, count_fds(), fds);
        }
    }
    print_message("start: %lu allocations; %lu injected failures -> %lu clean errors, "
                  "%lu starts (failure past the last allocation)\n",
                  total, failed + started, failed, started);
    assert_true(failed > 0);
    nonoproxy_config_free(&cfg);
    srv_stop(ext);
    srv_stop(origin);
}

/* ---------------------------------------------------------------------------------------- */
/* Requests.                                                                                   */

enum kind { K_CONNECT, K_FORWARD, K_HEADER, K_URL_PATH, K_QUERY, K_BASIC, K_CHAIN, K_COUNT };

static const char *const kind_names[K_COUNT] = {
    "CONNECT tunnel",    "plain-HTTP forward", "route header",         "route url_path",
    "route query_param", "route basic_auth",   "external-proxy chain",
};

struct ctx {
    struct nonoproxy_proxy *p;
    struct srv *origin;  /* the routes' upstream */
    struct srv *forward; /* the forward target (another port: the routes' one is refused) */
    struct srv *ext;
    struct echo_server *echo;
};

enum outcome { OUT_OK, OUT_5XX, OUT_CLOSED, OUT_OTHER, OUT_HANG };

static void
base64(const char *in, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t len = strlen(in);
    size_t i;
    size_t o = 0;

    for (i = 0; i < len; i += 3) {
        unsigned v = (unsigned char)in[i] << 16;
        if (i + 1 < len) {
            v |= (unsigned)(unsigned char)in[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= (unsigned char)in[i + 2];
        }
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

/* Read until EOF (the requests say Connection: close) into buf; OUT_HANG when a read times
 * out (tcp_connect's 10 s). Returns the number of bytes in *len. */
static enum outcome
read_all(int fd, char *buf, size_t cap, size_t *len)
{
    *len = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + *len, cap - 1 - *len, 0);

        if (n == 0) {
            break;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return OUT_HANG;
            }
            break; /* reset: a close */
        }
        *len += (size_t)n;
        if (*len == cap - 1) {
            break;
        }
    }
    buf[*len] = '\0';
    return OUT_OK;
}

static enum outcome
classify(const char *buf, size_t len, const char *want_body)
{
    int status;

    if (len == 0) {
        return OUT_CLOSED;
    }
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) {
        return OUT_OTHER;
    }
    if (status >= 500 && status <= 599) {
        return OUT_5XX;
    }
    if (status != 200) {
        return OUT_OTHER;
    }
    /* A 200 whose body was cut short is a close mid-answer. */
    return strstr(buf, want_body) != NULL ? OUT_OK : OUT_CLOSED;
}

/* One request of kind k on a new connection. */
static enum outcome
request(const struct ctx *c, enum kind k, char *buf, size_t cap)
{
    const char *tok = proxy_token(c->p);
    char req[1024];
    char b64[256];
    char user[160];
    size_t len = 0;
    enum outcome o;
    bool tunnel = false;
    int fd = tcp_connect(nonoproxy_port(c->p));

    assert_true(fd >= 0);
    switch (k) {
    case K_CONNECT:
        snprintf(req, sizeof(req),
                 "CONNECT 127.0.0.1:%u HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                 "Proxy-Authorization: Bearer %s\r\n\r\n",
                 (unsigned)echo_port(c->echo), (unsigned)echo_port(c->echo), tok);
        tunnel = true;
        break;
    case K_CHAIN:
        snprintf(req, sizeof(req),
                 "CONNECT " CHAIN_HOST ":443 HTTP/1.1\r\nHost: " CHAIN_HOST ":443\r\n"
                 "Proxy-Authorization: Bearer %s\r\n\r\n",
                 tok);
        tunnel = true;
        break;
    case K_FORWARD:
        snprintf(req, sizeof(req),
                 "GET http://127.0.0.1:%u/x HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                 "Proxy-Authorization: Bearer %s\r\nConnection: close\r\n\r\n",
                 (unsigned)c->forward->port, (unsigned)c->forward->port, tok);
        break;
    case K_HEADER:
        snprintf(req, sizeof(req),
                 "GET /h/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Connection: close\r\n\r\n",
                 tok);
        break;
    case K_URL_PATH:
        snprintf(req, sizeof(req),
                 "GET /u/bot%s/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", tok);
        break;
    case K_QUERY:
        snprintf(req, sizeof(req),
                 "GET /q/x?a=1&key=%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", tok);
        break;
    case K_BASIC:
    default:
        snprintf(user, sizeof(user), "user:%s", tok);
        base64(user, b64);
        snprintf(req, sizeof(req),
                 "GET /b/x HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\n"
                 "Connection: close\r\n\r\n",
                 b64);
        break;
    }
    if (send_str(fd, req) != 0) {
        close(fd);
        return OUT_CLOSED;
    }
    if (tunnel) {
        /* Status line, then a round trip through the tunnel and a half-close. */
        int st = read_head(fd, buf, cap);

        if (st == 200) {
            if (send_str(fd, "ping-through-tunnel") == 0) {
                shutdown(fd, SHUT_WR);
            }
            o = read_all(fd, buf, cap, &len);
            if (o == OUT_OK) {
                o = strstr(buf, "ping-through-tunnel") != NULL ? OUT_OK : OUT_CLOSED;
            }
        } else if (st >= 500 && st <= 599) {
            o = OUT_5XX;
        } else if (st < 0) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            /* read_head's -1 is EOF or a timeout: a close is readable at once. */
            o = poll(&pfd, 1, 0) == 1 ? OUT_CLOSED : OUT_HANG;
        } else {
            o = OUT_OTHER;
        }
    } else {
        o = read_all(fd, buf, cap, &len);
        if (o == OUT_OK) {
            o = classify(buf, len, "\r\n\r\nok");
        }
    }
    close(fd);
    return o;
}

static int
setup_requests(void **state)
{
    struct ctx *c = calloc(1, sizeof(*c));
    struct nonoproxy_config cfg;
    struct nonoproxy_diag diag;

    if (c == NULL) {
        return -1;
    }
    c->origin = srv_start(SRV_ORIGIN);
    c->forward = srv_start(SRV_ORIGIN);
    c->ext = srv_start(SRV_ENTERPRISE);
    c->echo = echo_start();
    assert_non_null(c->echo);
    make_config(&cfg, c->origin->port, c->ext->port);
    memset(&diag, 0, sizeof(diag));
    if (nonoproxy_start(&cfg, &c->p, &diag) != NONOPROXY_OK) {
        fail_msg("nonoproxy_start: %s", diag.message);
    }
    nonoproxy_config_free(&cfg);
    *state = c;
    return 0;
}

static int
teardown_requests(void **state)
{
    struct ctx *c = *state;

    np_alloc_fail_at(0);
    nonoproxy_free(c->p);
    echo_stop(c->echo);
    srv_stop(c->ext);
    srv_stop(c->forward);
    srv_stop(c->origin);
    free(c);
    return 0;
}

static void
run_kind(struct ctx *c, enum kind k)
{
    static char buf[65536];
    unsigned long total;
    unsigned long i;
    unsigned long counts[5] = {0};
    enum outcome o;

    /* Warm-up (opens pooled upstream connections), then count one request: the fewest of
     * three, as a request that finds no idle worker also counts the new worker's. */
    assert_int_equal(request(c, k, buf, sizeof(buf)), OUT_OK);
    total = ULONG_MAX;
    for (i = 0; i < 3; i++) {
        np_alloc_fail_at(0);
        o = request(c, k, buf, sizeof(buf));
        assert_int_equal(o, OUT_OK);
        if (np_alloc_count() < total) {
            total = np_alloc_count();
        }
    }

    for (i = 1; i <= total + SLACK_ALLOCS; i += step()) {
        np_alloc_fail_at(i);
        o = request(c, k, buf, sizeof(buf));
        np_alloc_fail_at(0);
        counts[o]++;
        if (o == OUT_HANG || o == OUT_OTHER) {
            fail_msg("%s: allocation %lu of %lu failing: %s: %.40s", kind_names[k], i, total,
                     o == OUT_HANG ? "the client hung" : "an answer neither 2xx nor 5xx", buf);
        }
        o = request(c, k, buf, sizeof(buf));
        if (o != OUT_OK) {
            fail_msg("%s: after allocation %lu failed, the next request got outcome %d",
                     kind_names[k], i, (int)o);
        }
    }
    print_message("%s: %lu allocations; injected %lu: %lu 5xx, %lu closed, %lu served "
                  "anyway\n",
                  kind_names[k], total, counts[OUT_OK] + counts[OUT_5XX] + counts[OUT_CLOSED],
                  counts[OUT_5XX], counts[OUT_CLOSED], counts[OUT_OK]);
}

/* The first request of a fresh proxy also spawns its worker (lib/listener.c worker_spawn):
 * each allocation of that request fails in turn, each time on a new proxy. */
static void
test_first_request(void **state)
{
    static char buf[65536];
    struct ctx *c = *state;
    struct nonoproxy_config cfg;
    struct nonoproxy_diag diag;
    unsigned long total = 0;
    unsigned long i;
    unsigned long counts[5] = {0};
    int fds;
    int threads;

    make_config(&cfg, c->origin->port, c->ext->port);
    nonoproxy_free(c->p);
    c->p = NULL;
    fds = count_fds();
    threads = count_threads();
    for (i = 0; i <= total + SLACK_ALLOCS; i += i == 0 ? 1 : step()) {
        enum outcome o;

        memset(&diag, 0, sizeof(diag));
        np_alloc_fail_at(0);
        assert_int_equal(nonoproxy_start(&cfg, &c->p, &diag), NONOPROXY_OK);
        np_alloc_fail_at(i); /* i = 0: count the first request */
        o = request(c, K_HEADER, buf, sizeof(buf));
        if (i == 0) {
            total = np_alloc_count();
            assert_int_equal(o, OUT_OK);
        } else {
            counts[o]++;
        }
        np_alloc_fail_at(0);
        if (o == OUT_HANG || o == OUT_OTHER) {
            fail_msg("first request: allocation %lu of %lu failing: %s: %.40s", i, total,
                     o == OUT_HANG ? "the client hung" : "an answer neither 2xx nor 5xx", buf);
        }
        if (request(c, K_HEADER, buf, sizeof(buf)) != OUT_OK) {
            fail_msg("first request: after allocation %lu failed, the next request failed", i);
        }
        nonoproxy_free(c->p);
        c->p = NULL;
        if (wait_threads(threads) != threads || count_fds() != fds) {
            fail_msg("first request: allocation %lu: %d threads, %d fds; %d, %d before", i,
                     count_threads(), count_fds(), threads, fds);
        }
    }
    print_message("first request (worker spawn, route header): %lu allocations; injected %lu: "
                  "%lu 5xx, %lu closed, %lu served anyway\n",
                  total, counts[OUT_OK] + counts[OUT_5XX] + counts[OUT_CLOSED], counts[OUT_5XX],
                  counts[OUT_CLOSED], counts[OUT_OK]);
    nonoproxy_config_free(&cfg);
}

static void
test_connect(void **state)
{
    run_kind(*state, K_CONNECT);
}

static void
test_forward(void **state)
{
    run_kind(*state, K_FORWARD);
}

static void
test_route_header(void **state)
{
    run_kind(*state, K_HEADER);
}

static void
test_route_url_path(void **state)
{
    run_kind(*state, K_URL_PATH);
}

static void
test_route_query_param(void **state)
{
    run_kind(*state, K_QUERY);
}

static void
test_route_basic_auth(void **state)
{
    run_kind(*state, K_BASIC);
}

static void
test_chain(void **state)
{
    run_kind(*state, K_CHAIN);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start),
        cmocka_unit_test_setup_teardown(test_first_request, setup_requests, teardown_requests),
        cmocka_unit_test_setup_teardown(test_connect, setup_requests, teardown_requests),
        cmocka_unit_test_setup_teardown(test_forward, setup_requests, teardown_requests),
        cmocka_unit_test_setup_teardown(test_route_header, setup_requests, teardown_requests),
        cmocka_unit_test_setup_teardown(test_route_url_path, setup_requests, teardown_requests),
        cmocka_unit_test_setup_teardown(test_route_query_param, setup_requests, teardown_requests),
        cmocka_unit_test_setup_teardown(test_route_basic_auth, setup_requests, teardown_requests),
        cmocka_unit_test_setup_teardown(test_chain, setup_requests, teardown_requests),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
