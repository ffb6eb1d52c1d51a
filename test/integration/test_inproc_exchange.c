/* In-process integration tests of the exchange that routes and the forward proxy share
 * (lib/exchange.c), through the public API, against a scripted plain-HTTP origin on 127.0.0.1
 * port 0: what happens to connections after a request body that did not reach the origin
 * completely, and where a forward request goes when its kept-alive origin connection turns
 * out dead after its head was consumed (issue #9, holes 1 and 3).
 *
 * The origin answers each request after its head and Content-Length body; its first
 * connection can instead be told to answer at once and then stop reading until released (an
 * origin that rejects an upload early, or that is simply slow), while it watches every byte
 * that later arrives on that connection for a needle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define SECRET "sk-REAL-secret-0123456789"
/* What client A uploads: more than every socket buffer on the way can hold. */
#define BIG_BODY ((size_t)64 * 1024 * 1024)
/* The proxy's response timeout, which also bounds one write to the origin. */
#define RESPONSE_MS 1500u
#define MAX_CONNS   8

/* ---------------------------------------------------------------------------------------- */
/* Scripted origin.                                                                           */

struct origin_conn_log {
    unsigned requests;      /* requests answered on this connection */
    bool needle_after_head; /* the needle arrived after the first request's head */
    bool eof_in_body;       /* EOF before the first request's body was complete */
};

struct origin {
    int lfd;
    uint16_t port;
    bool stall_first;  /* the first connection answers at once, then stops reading */
    int release_fd;    /* eventfd: readable once the stalled connection may read again */
    const char *needle;
    pthread_t acceptor;
    pthread_mutex_t mu;
    unsigned accepted;
    struct origin_conn_log log[MAX_CONNS];
    int fds[MAX_CONNS];
    pthread_t threads[MAX_CONNS];
};

struct origin_conn {
    struct origin *o;
    int fd;
    unsigned idx;
};

static int
send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read a head into buf (NUL-terminated); returns its length or 0 at EOF/error. *have is what
 * the buffer holds (the head and what followed it). */
static size_t
origin_read_head(int fd, char *buf, size_t cap, size_t *have)
{
    char *end;

    buf[*have] = '\0';
    while ((end = strstr(buf, "\r\n\r\n")) == NULL) {
        ssize_t n;

        if (*have + 1 >= cap) {
            return 0;
        }
        n = recv(fd, buf + *have, cap - 1 - *have, 0);
        if (n <= 0) {
            return 0;
        }
        *have += (size_t)n;
        buf[*have] = '\0';
    }
    return (size_t)(end - buf) + 4;
}

static uint64_t
content_length(const char *head, size_t head_len)
{
    const char *cl = strcasestr(head, "\r\nContent-Length:");

    return cl != NULL && cl < head + head_len ? strtoull(cl + 17, NULL, 10) : 0;
}

/* Consume `body` bytes (some already in buf[0..have)) watching for the needle across reads.
 * Returns false at EOF before the end. */
static bool
origin_drain(struct origin_conn *c, const char *buf, size_t have, uint64_t body, bool *needle)
{
    size_t nl = strlen(c->o->needle);
    char win[65536 + 64];
    size_t keep = 0;

    if (have > body) {
        have = (size_t)body;
    }
    memcpy(win, buf, have < sizeof(win) - 1 ? have : sizeof(win) - 1);
    keep = have < sizeof(win) - 1 ? have : sizeof(win) - 1;
    body -= have;
    for (;;) {
        win[keep] = '\0';
        if (memmem(win, keep, c->o->needle, nl) != NULL) {
            *needle = true;
        }
        if (keep >= nl) {
            memmove(win, win + keep - (nl - 1), nl - 1);
            keep = nl - 1;
        }
        if (body == 0) {
            return true;
        }
        {
            size_t want = body < 65536 ? (size_t)body : 65536;
            ssize_t n = recv(c->fd, win + keep, want, 0);

            if (n <= 0) {
                return false;
            }
            keep += (size_t)n;
            body -= (uint64_t)n;
        }
    }
}

static void *
origin_conn_main(void *arg)
{
    struct origin_conn *c = arg;
    struct origin *o = c->o;
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    char buf[65536];
    size_t have = 0;
    bool stall = o->stall_first && c->idx == 0;

    for (;;) {
        size_t head_len = origin_read_head(c->fd, buf, sizeof(buf), &have);
        uint64_t body;
        bool needle = false;
        bool done;
        uint64_t ev;

        if (head_len == 0) {
            break;
        }
        body = content_length(buf, head_len);
        if (stall) {
            /* Answer before reading the body, then read nothing until released. */
            (void)send_all(c->fd, ok, sizeof(ok) - 1);
            if (read(o->release_fd, &ev, sizeof(ev)) != (ssize_t)sizeof(ev)) {
                break;
            }
        }
        done = origin_drain(c, buf + head_len, have - head_len, body, &needle);
        pthread_mutex_lock(&o->mu);
        o->log[c->idx].needle_after_head |= needle;
        o->log[c->idx].eof_in_body |= !done;
        pthread_mutex_unlock(&o->mu);
        if (!done) {
            break;
        }
        if (stall) {
            /* Whatever follows the body on this connection is another request: record it,
             * and watch it for the needle too. */
            stall = false;
            have = 0;
            needle = false;
            head_len = origin_read_head(c->fd, buf, sizeof(buf), &have);
            if (head_len == 0) {
                break;
            }
            pthread_mutex_lock(&o->mu);
            o->log[c->idx].needle_after_head |= strstr(buf, o->needle) != NULL;
            o->log[c->idx].requests++;
            pthread_mutex_unlock(&o->mu);
            break;
        }
        (void)send_all(c->fd, ok, sizeof(ok) - 1);
        pthread_mutex_lock(&o->mu);
        o->log[c->idx].requests++;
        pthread_mutex_unlock(&o->mu);
        have = 0; /* this origin answers one request per read of a head: no pipelining */
    }
    (void)shutdown(c->fd, SHUT_RDWR);
    free(c);
    return NULL;
}

static void *
origin_accept_main(void *arg)
{
    struct origin *o = arg;

    for (;;) {
        int fd = accept4(o->lfd, NULL, NULL, SOCK_CLOEXEC);
        struct origin_conn *c;

        if (fd < 0) {
            return NULL;
        }
        c = calloc(1, sizeof(*c));
        pthread_mutex_lock(&o->mu);
        if (c == NULL || o->accepted == MAX_CONNS) {
            pthread_mutex_unlock(&o->mu);
            close(fd);
            free(c);
            continue;
        }
        c->o = o;
        c->fd = fd;
        c->idx = o->accepted;
        o->fds[o->accepted] = fd;
        pthread_create(&o->threads[o->accepted], NULL, origin_conn_main, c);
        o->accepted++;
        pthread_mutex_unlock(&o->mu);
    }
}

/* An origin listening on addr (host byte order) port `port` (0: any). */
static struct origin *
origin_start(uint32_t addr, uint16_t port, bool stall_first, const char *needle)
{
    struct origin *o = calloc(1, sizeof(*o));
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    assert_non_null(o);
    pthread_mutex_init(&o->mu, NULL);
    o->stall_first = stall_first;
    o->needle = needle;
    o->release_fd = eventfd(0, EFD_CLOEXEC);
    assert_true(o->release_fd >= 0);
    o->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(addr);
    sin.sin_port = htons(port);
    assert_int_equal(bind(o->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(o->lfd, 16), 0);
    assert_int_equal(getsockname(o->lfd, (struct sockaddr *)&sin, &len), 0);
    o->port = ntohs(sin.sin_port);
    pthread_create(&o->acceptor, NULL, origin_accept_main, o);
    return o;
}

static void
origin_release(struct origin *o)
{
    uint64_t one = 1;

    assert_int_equal(write(o->release_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
}

/* Stop accepting, end every connection, join every thread. */
static void
origin_stop(struct origin *o)
{
    unsigned i;

    origin_release(o); /* a stalled connection must not wait forever */
    shutdown(o->lfd, SHUT_RDWR);
    pthread_join(o->acceptor, NULL);
    close(o->lfd);
    for (i = 0; i < o->accepted; i++) {
        shutdown(o->fds[i], SHUT_RDWR);
    }
    for (i = 0; i < o->accepted; i++) {
        pthread_join(o->threads[i], NULL);
        close(o->fds[i]);
    }
    close(o->release_fd);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

static struct origin_conn_log
origin_log(struct origin *o, unsigned idx)
{
    struct origin_conn_log l;

    pthread_mutex_lock(&o->mu);
    l = o->log[idx];
    pthread_mutex_unlock(&o->mu);
    return l;
}

static unsigned
origin_accepted(struct origin *o)
{
    unsigned n;

    pthread_mutex_lock(&o->mu);
    n = o->accepted;
    pthread_mutex_unlock(&o->mu);
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* Proxy and clients.                                                                         */

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

/* A proxy; with a route svc → http://127.0.0.1:<route_port> when route_port is not 0. */
static struct nonoproxy_proxy *
start_proxy(uint16_t route_port)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_route_config r;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;
    char up[64];

    nonoproxy_config_init(&cfg);
    cfg.credential_cb = cred_cb;
    cfg.response_timeout_ms = RESPONSE_MS;
    if (route_port != 0) {
        snprintf(up, sizeof(up), "http://127.0.0.1:%u", (unsigned)route_port);
        nonoproxy_route_config_init(&r, "/svc", up);
        r.credential_key = "test-key";
        assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    }
    memset(&diag, 0, sizeof(diag));
    if (nonoproxy_start(&cfg, &p, &diag) != NONOPROXY_OK) {
        fail_msg("nonoproxy_start: %s", diag.message);
    }
    nonoproxy_config_free(&cfg);
    return p;
}

/* "Proxy-Authorization: Basic base64(nono:<token>)\r\n" for absolute-form requests. */
static void
proxy_auth_line(const struct nonoproxy_proxy *p, char *out, size_t cap)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char plain[80];
    char enc[128];
    size_t n;
    size_t i;
    size_t o = 0;

    n = (size_t)snprintf(plain, sizeof(plain), "nono:%s", proxy_token(p));
    for (i = 0; i < n; i += 3) {
        unsigned v = (unsigned)(unsigned char)plain[i] << 16;
        v |= i + 1 < n ? (unsigned)(unsigned char)plain[i + 1] << 8 : 0;
        v |= i + 2 < n ? (unsigned)(unsigned char)plain[i + 2] : 0;
        enc[o++] = b64[(v >> 18) & 63];
        enc[o++] = b64[(v >> 12) & 63];
        enc[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        enc[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    enc[o] = '\0';
    snprintf(out, cap, "Proxy-Authorization: Basic %s\r\n", enc);
}

/* Streams BIG_BODY bytes of 'x' to fd until done or a send fails (the proxy closed). */
struct uploader {
    int fd;
    pthread_t thread;
    size_t sent;
};

static void *
upload_main(void *arg)
{
    struct uploader *u = arg;
    static char chunk[65536];

    memset(chunk, 'x', sizeof(chunk));
    while (u->sent < BIG_BODY) {
        ssize_t w = send(u->fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
        if (w <= 0) {
            break;
        }
        u->sent += (size_t)w;
    }
    return NULL;
}

/* Whether fd reaches EOF (or a reset) within the harness's receive timeout, discarding data. */
static bool
ends(int fd)
{
    char buf[4096];

    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            return true;
        }
        if (n < 0) {
            return false; /* the receive timeout ran out: the connection stayed open */
        }
    }
}

/* Client A uploads a large body that the origin answers early and stops reading; the answer
 * must close both connections. Then client B's request must go out on a fresh connection.
 * head_fmt has one %s for the extra header lines and one %zu for the length. */
static void
incomplete_body_case(struct nonoproxy_proxy *p, struct origin *o, const char *a_head,
                     const char *b_req)
{
    struct uploader up = {-1, 0, 0};
    struct origin_conn_log first;
    char head[4096];
    int a;
    int b;

    a = tcp_connect(nonoproxy_port(p));
    assert_true(a >= 0);
    assert_int_equal(send_str(a, a_head), 0);
    up.fd = a;
    pthread_create(&up.thread, NULL, upload_main, &up);
    /* The origin answered at once; the proxy relays that answer once its write to the origin
     * has waited RESPONSE_MS in vain. */
    assert_int_equal(read_head(a, head, sizeof(head)), 200);
    if (strstr(head, "Connection: close") == NULL) {
        fail_msg("the answer to an incomplete upload must close the connection:\n%s", head);
    }
    assert_true(ends(a)); /* and the client connection really ends */
    shutdown(a, SHUT_RDWR);
    pthread_join(up.thread, NULL);
    close(a);
    assert_true(up.sent < BIG_BODY);

    /* The origin reads again: what it finds on the first connection after A's head must be
     * A's bytes only, followed by EOF. */
    origin_release(o);
    b = tcp_connect(nonoproxy_port(p));
    assert_true(b >= 0);
    assert_int_equal(send_str(b, b_req), 0);
    assert_int_equal(read_head(b, head, sizeof(head)), 200);
    close(b);
    assert_int_equal(origin_accepted(o), 2); /* B had a connection of its own */
    first = origin_log(o, 0);
    assert_false(first.needle_after_head);
    assert_int_equal(first.requests, 0); /* nothing after A's (incomplete) body */
    origin_stop(o);
}

/* ---------------------------------------------------------------------------------------- */

/* Hole 1 on a route: the real key of B's request must never land in A's unfinished body on a
 * pooled connection, and A's connection must not carry another request. */
static void
route_incomplete_body_is_never_pooled(void **state)
{
    struct origin *o = origin_start(INADDR_LOOPBACK, 0, true, SECRET);
    struct nonoproxy_proxy *p = start_proxy(o->port);
    char a_head[512];
    char b_req[512];

    (void)state;
    snprintf(a_head, sizeof(a_head),
             "POST /svc/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Content-Length: %zu\r\n\r\n",
             proxy_token(p), BIG_BODY);
    snprintf(b_req, sizeof(b_req),
             "GET /svc/next HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
             proxy_token(p));
    incomplete_body_case(p, o, a_head, b_req);
    nonoproxy_free(p);
}

/* Hole 1 on the forward path: the same shape through the per-client kept connection. */
static void
forward_incomplete_body_closes_both(void **state)
{
    struct origin *o = origin_start(INADDR_LOOPBACK, 0, true, "GET /next");
    struct nonoproxy_proxy *p = start_proxy(0);
    char auth[256];
    char a_head[768];
    char b_req[768];

    (void)state;
    proxy_auth_line(p, auth, sizeof(auth));
    snprintf(a_head, sizeof(a_head),
             "POST http://127.0.0.1:%u/upload HTTP/1.1\r\nHost: x\r\n%sContent-Length: %zu\r\n\r\n",
             (unsigned)o->port, auth, BIG_BODY);
    snprintf(b_req, sizeof(b_req), "GET http://127.0.0.1:%u/next HTTP/1.1\r\nHost: x\r\n%s\r\n",
             (unsigned)o->port, auth);
    incomplete_body_case(p, o, a_head, b_req);
    nonoproxy_free(p);
}

/* Hole 3: a forward request reuses the filter decision of its kept-alive origin connection;
 * when that connection turns out dead, the decision is taken again, after the head has been
 * shifted out of the buffer. It must be taken on the URI's host, never on body bytes that now
 * lie where the host was: here the body spells 127.0.0.2 at the host's old offset, where a
 * second origin listens on the same port. */
static void
forward_redecides_on_the_uri_not_the_body(void **state)
{
    struct origin *o1 = origin_start(INADDR_LOOPBACK, 0, false, "never");
    struct origin *o2 = origin_start(INADDR_LOOPBACK + 1, o1->port, false, "never");
    struct nonoproxy_proxy *p = start_proxy(0);
    char auth[256];
    char req[1024];
    char body[256];
    char head[2048];
    size_t n;
    int fd;

    (void)state;
    proxy_auth_line(p, auth, sizeof(auth));
    fd = tcp_connect(nonoproxy_port(p));
    assert_true(fd >= 0);
    snprintf(req, sizeof(req), "GET http://127.0.0.1:%u/one HTTP/1.1\r\nHost: x\r\n%s\r\n",
             (unsigned)o1->port, auth);
    assert_int_equal(send_str(fd, req), 0);
    assert_int_equal(read_head(fd, head, sizeof(head)), 200);
    assert_int_equal(recv(fd, head, 2, MSG_WAITALL), 2);
    /* The origin drops the kept connection while the client is idle; on loopback its FIN is
     * queued at the proxy's socket before shutdown() returns. */
    shutdown(o1->fds[0], SHUT_RDWR);
    /* Head and body in one write, so that the body is in the proxy's buffer with the head;
     * the body puts "127.0.0.2" where the host of the head was. */
    memset(body, 'z', sizeof(body));
    memcpy(body + strlen("POST http://"), "127.0.0.2", 9);
    n = (size_t)snprintf(req, sizeof(req),
                         "POST http://127.0.0.1:%u/two HTTP/1.1\r\nHost: x\r\n%s"
                         "Content-Length: %zu\r\n\r\n",
                         (unsigned)o1->port, auth, sizeof(body));
    assert_true(n + sizeof(body) < sizeof(req));
    memcpy(req + n, body, sizeof(body));
    assert_int_equal(send(fd, req, n + sizeof(body), MSG_NOSIGNAL), (ssize_t)(n + sizeof(body)));
    assert_int_equal(read_head(fd, head, sizeof(head)), 200);
    close(fd);
    nonoproxy_free(p);
    assert_int_equal(origin_accepted(o2), 0); /* nothing went where the body pointed */
    assert_int_equal(origin_accepted(o1), 2);
    origin_stop(o1);
    origin_stop(o2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(route_incomplete_body_is_never_pooled),
        cmocka_unit_test(forward_incomplete_body_closes_both),
        cmocka_unit_test(forward_redecides_on_the_uri_not_the_body),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
