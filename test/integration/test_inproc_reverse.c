/* In-process integration tests of reverse-proxy routes (SPEC §6, §7) through the public API,
 * against a scripted plain-HTTP upstream on 127.0.0.1 port 0 (http:// upstreams are allowed
 * to loopback; TLS upstreams are covered by the e2e tests): start-time validation, the
 * credential callback and diagnostics, 502/504, the keep-alive pool and its stale-connection
 * retry, pipelining, framing for HTTP/1.0 clients, secrets kept out of the audit, shutdown
 * while a response streams, and no fd or thread left behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define SECRET "sk-REAL-secret-0123456789"

/* ---------------------------------------------------------------------------------------- */
/* Scripted upstream: one thread per connection; each request gets the answer of the mode.   */

enum up_mode {
    UP_OK = 0,        /* 200 keep-alive, body "ok" */
    UP_OK_CLOSE,      /* 200 keep-alive, then the server closes the idle connection */
    UP_SILENT,        /* never answers */
    UP_DROP,          /* closes without answering */
    UP_CHUNKED,       /* 200 chunked "hello" + " world" */
    UP_STREAM,        /* 200 chunked, one chunk, then waits until the client goes away */
    UP_INTERIM,       /* 100 and 103 interim answers, then 200 "ok" */
    UP_INTERIM_FLOOD, /* nine 100 interim answers, then 200 "ok" */
};

struct upstream {
    int lfd;
    uint16_t port;
    enum up_mode mode;
    pthread_t acceptor;
    pthread_mutex_t mu;
    unsigned accepted;
    unsigned requests;
    unsigned ended; /* connections whose peer (the proxy) went away */
    pthread_cond_t ended_cv;
    char log[65536]; /* every request head received, concatenated */
    size_t log_len;
    int conns[64];
    size_t n_conns;
    pthread_t threads[64];
};

struct up_conn {
    struct upstream *u;
    int fd;
};

static void
up_record(struct upstream *u, const char *head, size_t len)
{
    pthread_mutex_lock(&u->mu);
    if (u->log_len + len < sizeof(u->log)) {
        memcpy(u->log + u->log_len, head, len);
        u->log_len += len;
        u->log[u->log_len] = '\0';
    }
    u->requests++;
    pthread_mutex_unlock(&u->mu);
}

static int
up_send(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n <= 0) {
            return -1;
        }
        s += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Serve requests on one connection until EOF. Request bodies are read by Content-Length. */
static void *
up_conn_main(void *arg)
{
    struct up_conn *c = arg;
    struct upstream *u = c->u;
    char buf[16384];
    size_t have = 0;

    for (;;) {
        char *end;
        size_t head_len;
        size_t body = 0;
        const char *cl;
        ssize_t n;

        buf[have] = '\0';
        while ((end = strstr(buf, "\r\n\r\n")) == NULL) {
            n = recv(c->fd, buf + have, sizeof(buf) - 1 - have, 0);
            if (n <= 0) {
                goto out;
            }
            have += (size_t)n;
            buf[have] = '\0';
        }
        head_len = (size_t)(end - buf) + 4;
        cl = strcasestr(buf, "\r\nContent-Length:");
        if (cl != NULL && cl < end) {
            body = strtoul(cl + 17, NULL, 10);
        }
        while (have < head_len + body) {
            n = recv(c->fd, buf + have, sizeof(buf) - 1 - have, 0);
            if (n <= 0) {
                goto out;
            }
            have += (size_t)n;
        }
        up_record(u, buf, head_len);
        memmove(buf, buf + head_len + body, have - head_len - body);
        have -= head_len + body;
        switch (u->mode) {
        case UP_OK:
            up_send(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Up: 1\r\n\r\nok");
            break;
        case UP_OK_CLOSE:
            up_send(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            goto out;
        case UP_SILENT: {
            char drain[512];
            while (recv(c->fd, drain, sizeof(drain), 0) > 0) {
            }
            goto out;
        }
        case UP_DROP:
            goto out;
        case UP_CHUNKED:
            up_send(c->fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
            break;
        case UP_INTERIM:
            up_send(c->fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                           "Link: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            break;
        case UP_INTERIM_FLOOD: {
            int k;
            for (k = 0; k < 9; k++) {
                up_send(c->fd, "HTTP/1.1 100 Continue\r\n\r\n");
            }
            up_send(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            break;
        }
        case UP_STREAM: {
            char drain[512];
            up_send(c->fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "6\r\nevent1\r\n");
            while (recv(c->fd, drain, sizeof(drain), 0) > 0) {
            }
            goto out;
        }
        }
    }
out:
    shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_lock(&u->mu);
    u->ended++;
    pthread_cond_broadcast(&u->ended_cv);
    pthread_mutex_unlock(&u->mu);
    free(c);
    return NULL;
}

static void *
up_accept_main(void *arg)
{
    struct upstream *u = arg;

    for (;;) {
        int fd = accept4(u->lfd, NULL, NULL, SOCK_CLOEXEC);
        struct up_conn *c;
        if (fd < 0) {
            return NULL;
        }
        c = malloc(sizeof(*c));
        pthread_mutex_lock(&u->mu);
        if (c == NULL || u->n_conns == 64) {
            pthread_mutex_unlock(&u->mu);
            close(fd);
            free(c);
            continue;
        }
        c->u = u;
        c->fd = fd;
        u->conns[u->n_conns] = fd;
        u->accepted++;
        pthread_create(&u->threads[u->n_conns], NULL, up_conn_main, c);
        u->n_conns++;
        pthread_mutex_unlock(&u->mu);
    }
}

static struct upstream *
up_start(enum up_mode mode)
{
    struct upstream *u = calloc(1, sizeof(*u));
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    assert_non_null(u);
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->ended_cv, NULL);
    u->mode = mode;
    u->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(u->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(u->lfd, 64), 0);
    assert_int_equal(getsockname(u->lfd, (struct sockaddr *)&sin, &len), 0);
    u->port = ntohs(sin.sin_port);
    pthread_create(&u->acceptor, NULL, up_accept_main, u);
    return u;
}

static unsigned
up_accepted(struct upstream *u)
{
    unsigned n;
    pthread_mutex_lock(&u->mu);
    n = u->accepted;
    pthread_mutex_unlock(&u->mu);
    return n;
}

static void
up_stop(struct upstream *u)
{
    size_t i;

    shutdown(u->lfd, SHUT_RDWR);
    pthread_join(u->acceptor, NULL);
    close(u->lfd);
    for (i = 0; i < u->n_conns; i++) {
        shutdown(u->conns[i], SHUT_RDWR);
    }
    for (i = 0; i < u->n_conns; i++) {
        pthread_join(u->threads[i], NULL);
        close(u->conns[i]);
    }
    pthread_cond_destroy(&u->ended_cv);
    pthread_mutex_destroy(&u->mu);
    free(u);
}

/* ---------------------------------------------------------------------------------------- */
/* Proxy helpers.                                                                             */

static enum nonoproxy_credential_result
cred_cb(void *userdata, const char *key, char *buf, size_t cap, size_t *len)
{
    (void)userdata;
    if (strcmp(key, "test-key") == 0 && cap > sizeof(SECRET)) {
        memcpy(buf, SECRET, sizeof(SECRET) - 1);
        *len = sizeof(SECRET) - 1;
        return NONOPROXY_CREDENTIAL_FOUND;
    }
    if (strcmp(key, "vault://kv/svc") == 0 && cap > sizeof(SECRET)) {
        memcpy(buf, SECRET, sizeof(SECRET) - 1);
        *len = sizeof(SECRET) - 1;
        return NONOPROXY_CREDENTIAL_FOUND;
    }
    if (strcmp(key, "absent-key") == 0) {
        return NONOPROXY_CREDENTIAL_NOT_FOUND;
    }
    return NONOPROXY_CREDENTIAL_PASS;
}

/* Start a proxy with one route svc → http://127.0.0.1:<port> using credential key. */
static struct nonoproxy_proxy *
start_route_proxy(uint16_t port, const char *key, uint32_t response_timeout_ms)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_route_config r;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;
    char up[64];

    snprintf(up, sizeof(up), "http://127.0.0.1:%u", (unsigned)port);
    nonoproxy_config_init(&cfg);
    cfg.credential_cb = cred_cb;
    cfg.response_timeout_ms = response_timeout_ms;
    nonoproxy_route_config_init(&r, "/svc", up);
    r.credential_key = key;
    assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    memset(&diag, 0, sizeof(diag));
    if (nonoproxy_start(&cfg, &p, &diag) != NONOPROXY_OK) {
        fail_msg("nonoproxy_start: %s", diag.message);
    }
    nonoproxy_config_free(&cfg);
    return p;
}

/* Send a GET for path with the phantom and read the answer's head; returns the status. */
static int
get(int fd, const struct nonoproxy_proxy *p, const char *path, char *head, size_t cap)
{
    char req[1024];
    int n =
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
                 path, proxy_token(p));

    if (n < 0 || (size_t)n >= sizeof(req) || send_str(fd, req) != 0) {
        return -1;
    }
    return read_head(fd, head, cap);
}

/* Read exactly n body bytes into buf (NUL-terminated). */
static int
read_n(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r <= 0) {
            return -1;
        }
        got += (size_t)r;
    }
    buf[n] = '\0';
    return 0;
}

/* Whether any drained event has category cat (and, when status != 0, that status). */
static bool
has_event(struct nonoproxy_proxy *p, enum nonoproxy_denial_category cat, unsigned status)
{
    static struct nonoproxy_audit_event ev[256];
    size_t n = nonoproxy_drain_audit_events(p, ev, 256, NULL);
    size_t i;
    bool found = false;

    for (i = 0; i < n; i++) {
        char json[NONOPROXY_AUDIT_JSON_MAX];
        assert_true(nonoproxy_audit_event_to_json(&ev[i], json, sizeof(json)) > 0);
        assert_null(strstr(json, SECRET)); /* never a secret in the audit */
        if (ev[i].denial_category == cat && (status == 0 || ev[i].status == status)) {
            found = true;
        }
    }
    return found;
}

/* ---------------------------------------------------------------------------------------- */

/* Every §1.1 route error stops the start with a line naming the route and the field. */
static void
start_rejects_bad_routes(void **state)
{
    static const struct {
        const char *name;
        const char *prefix;
        const char *upstream;
        const char *key;
        const char *format;
        const char *expect; /* substring of the diag */
    } rows[] = {
        {"prefix_with_slash", "a/b", "https://example.com", NULL, NULL, "prefix"},
        {"empty_prefix", "/", "https://example.com", NULL, NULL, "prefix"},
        {"http_not_loopback", "svc", "http://example.com", NULL, NULL, "upstream"},
        {"ftp_scheme", "svc", "ftp://example.com", NULL, NULL, "upstream"},
        {"metadata_upstream", "svc", "https://169.254.169.254", NULL, NULL, "upstream"},
        {"unsupported_scheme", "svc", "https://example.com", "op://vault/item/field", NULL,
         "credential_key"},
        {"refused_env_name", "svc", "https://example.com", "env://LD_PRELOAD", NULL,
         "credential_key"},
        {"format_without_braces", "svc", "https://example.com", NULL, "Bearer", "format"},
        {"prefix_over_63", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "https://example.com", NULL, NULL, "prefix"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct nonoproxy_config cfg;
        struct nonoproxy_route_config r;
        struct nonoproxy_proxy *p = NULL;
        struct nonoproxy_diag diag;

        nonoproxy_config_init(&cfg);
        nonoproxy_route_config_init(&r, rows[i].prefix, rows[i].upstream);
        r.credential_key = rows[i].key;
        r.credential_format = rows[i].format;
        assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
        memset(&diag, 0, sizeof(diag));
        if (nonoproxy_start(&cfg, &p, &diag) == NONOPROXY_OK) {
            nonoproxy_free(p);
            fail_msg("row %s: start succeeded", rows[i].name);
        }
        assert_null(p);
        if (strstr(diag.message, rows[i].expect) == NULL ||
            strstr(diag.message, "routes[0]") == NULL) {
            fail_msg("row %s: diag '%s' lacks '%s' or the route", rows[i].name, diag.message,
                     rows[i].expect);
        }
        nonoproxy_config_free(&cfg);
    }
}

/* Duplicate prefixes (after normalisation) are refused. */
static void
start_rejects_duplicate_prefix(void **state)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_route_config r;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;

    (void)state;
    nonoproxy_config_init(&cfg);
    nonoproxy_route_config_init(&r, "/svc", "https://a.example");
    assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    nonoproxy_route_config_init(&r, "svc/", "https://b.example");
    assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    assert_int_not_equal(nonoproxy_start(&cfg, &p, &diag), NONOPROXY_OK);
    assert_non_null(strstr(diag.message, "duplicate"));
    nonoproxy_config_free(&cfg);
}

/* The callback's secret is injected; the child's variables hold only the phantom. */
static void
callback_credential_injected(void **state)
{
    struct upstream *u = up_start(UP_OK);
    struct nonoproxy_proxy *p = start_route_proxy(u->port, "test-key", 0);
    const struct nonoproxy_env_var *env;
    char head[4096];
    char body[8];
    char expect[128];
    size_t n;
    size_t i;
    bool base = false;
    bool phantom = false;
    int fd;

    (void)state;
    assert_int_equal(nonoproxy_credential_env_vars(p, &env, &n), NONOPROXY_OK);
    snprintf(expect, sizeof(expect), "http://127.0.0.1:%u/svc", (unsigned)nonoproxy_port(p));
    for (i = 0; i < n; i++) {
        assert_null(strstr(env[i].value, SECRET));
        if (strcmp(env[i].name, "SVC_BASE_URL") == 0 && strcmp(env[i].value, expect) == 0) {
            base = true;
        }
        if (strcmp(env[i].name, "TEST_KEY") == 0 && strcmp(env[i].value, proxy_token(p)) == 0) {
            phantom = true;
        }
    }
    assert_true(base);
    assert_true(phantom);

    fd = tcp_connect(nonoproxy_port(p));
    assert_int_equal(get(fd, p, "/svc/v1/models?x=1", head, sizeof(head)), 200);
    assert_int_equal(read_n(fd, body, 2), 0);
    assert_string_equal(body, "ok");
    assert_null(strstr(head, SECRET));
    pthread_mutex_lock(&u->mu);
    assert_non_null(strstr(u->log, "GET /v1/models?x=1 HTTP/1.1\r\n"));
    assert_non_null(strstr(u->log, "Authorization: Bearer " SECRET "\r\n"));
    assert_null(strstr(u->log, proxy_token(p)));
    pthread_mutex_unlock(&u->mu);
    close(fd);
    assert_false(has_event(p, NONOPROXY_DENIAL_AUTHENTICATION_FAILED, 0));
    nonoproxy_free(p);
    up_stop(u);
}

/* A credential that is not found keeps the route: 503, a diagnostic, no phantom variable. */
static void
missing_credential_503(void **state)
{
    struct upstream *u = up_start(UP_OK);
    struct nonoproxy_proxy *p = start_route_proxy(u->port, "absent-key", 0);
    const struct nonoproxy_diagnostic *d;
    const struct nonoproxy_env_var *env;
    char head[4096];
    size_t n;
    size_t i;
    int fd;

    (void)state;
    nonoproxy_diagnostics(p, &d, &n);
    assert_int_equal(n, 1);
    assert_string_equal(d[0].code, "credential_not_found");
    assert_string_equal(d[0].route, "svc");
    assert_non_null(strstr(d[0].message, "absent-key"));
    assert_int_equal(nonoproxy_credential_env_vars(p, &env, &n), NONOPROXY_OK);
    for (i = 0; i < n; i++) {
        assert_string_not_equal(env[i].value, proxy_token(p));
    }
    fd = tcp_connect(nonoproxy_port(p));
    assert_int_equal(get(fd, p, "/svc/x", head, sizeof(head)), 503);
    close(fd);
    assert_int_equal(up_accepted(u), 0);
    assert_true(has_event(p, NONOPROXY_DENIAL_MANAGED_CREDENTIAL_UNAVAILABLE, 503));
    nonoproxy_free(p);
    up_stop(u);
}

/* An upstream that never answers gives 504 at the response timeout; one that closes, 502. */
static void
upstream_timeout_504_and_close_502(void **state)
{
    struct upstream *silent = up_start(UP_SILENT);
    struct upstream *drop = up_start(UP_DROP);
    struct nonoproxy_proxy *p = start_route_proxy(silent->port, "test-key", 300);
    struct nonoproxy_proxy *q = start_route_proxy(drop->port, "test-key", 0);
    char head[4096];
    int fd;

    (void)state;
    fd = tcp_connect(nonoproxy_port(p));
    assert_int_equal(get(fd, p, "/svc/slow", head, sizeof(head)), 504);
    assert_non_null(strstr(head, "application/json"));
    close(fd);
    assert_true(has_event(p, NONOPROXY_DENIAL_UPSTREAM_TIMEOUT, 504));

    fd = tcp_connect(nonoproxy_port(q));
    assert_int_equal(get(fd, q, "/svc/gone", head, sizeof(head)), 502);
    close(fd);
    assert_true(has_event(q, NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED, 502));
    nonoproxy_free(p);
    nonoproxy_free(q);
    up_stop(silent);
    up_stop(drop);
}

/* Several requests on one client connection reuse one upstream connection. */
static void
keepalive_reuses_upstream(void **state)
{
    struct upstream *u = up_start(UP_OK);
    struct nonoproxy_proxy *p = start_route_proxy(u->port, "test-key", 0);
    char head[4096];
    char body[8];
    int fd;
    int i;

    (void)state;
    fd = tcp_connect(nonoproxy_port(p));
    for (i = 0; i < 5; i++) {
        assert_int_equal(get(fd, p, "/svc/again", head, sizeof(head)), 200);
        assert_int_equal(read_n(fd, body, 2), 0);
    }
    close(fd);
    /* A second client connection also reuses the pooled upstream connection. */
    fd = tcp_connect(nonoproxy_port(p));
    assert_int_equal(get(fd, p, "/svc/again", head, sizeof(head)), 200);
    assert_int_equal(read_n(fd, body, 2), 0);
    close(fd);
    assert_int_equal(up_accepted(u), 1);
    nonoproxy_free(p);
    up_stop(u);
}

/* A pooled connection the server closed while idle is replaced transparently for a GET. */
static void
stale_pooled_connection_retried(void **state)
{
    struct upstream *u = up_start(UP_OK_CLOSE);
    struct nonoproxy_proxy *p = start_route_proxy(u->port, "test-key", 0);
    char head[4096];
    char body[8];
    int fd;
    int i;

    (void)state;
    fd = tcp_connect(nonoproxy_port(p));
    for (i = 0; i < 3; i++) {
        assert_int_equal(get(fd, p, "/svc/r", head, sizeof(head)), 200);
        assert_int_equal(read_n(fd, body, 2), 0);
        assert_string_equal(body, "ok");
    }
    close(fd);
    assert_int_equal(up_accepted(u), 3);
    nonoproxy_free(p);
    up_stop(u);
}

/* Two requests in one write get two answers, in order. */
static void
pipelined_requests(void **state)
{
    struct upstream *u = up_start(UP_OK);
    struct nonoproxy_proxy *p = start_route_proxy(u->port, "test-key", 0);
    char req[1024];
    char head[4096];
    char body[8];
    int fd;

    (void)state;
    snprintf(req, sizeof(req),
             "GET /svc/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
             "GET /svc/2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
             proxy_token(p), proxy_token(p));
    fd = tcp_connect(nonoproxy_port(p));
    assert_int_equal(send_str(fd, req), 0);
    assert_int_equal(read_head(fd, head, sizeof(head)), 200);
    assert_int_equal(read_n(fd, body, 2), 0);
    assert_int_equal(read_head(fd, head, sizeof(head)), 200);
    assert_int_equal(read_n(fd, body, 2), 0);
    close(fd);
    pthread_mutex_lock(&u->mu);
    assert_int_equal(u->requests, 2);
    assert_non_null(strstr(u->log, "GET /1 HTTP/1.1"));
    assert_non_null(strstr(u->log, "GET /2 HTTP/1.1"));
    pthread_mutex_unlock(&u->mu);
    nonoproxy_free(p);
    up_stop(u);
}

/* A chunked upstream body reaches an HTTP/1.0 client de-chunked and delimited by close. */
static void
chunked_to_http10_client(void **state)
{
    struct upstream *u = up_start(UP_CHUNKED);
    struct nonoproxy_proxy *p = start_route_proxy(u->port, "test-key", 0);
    char req[512];
    char buf[4096];
    size_t got = 0;
    ssize_t n;
    int fd;

    (void)state;
    snprintf(req, sizeof(req), "GET /svc/c HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n",
             proxy_token(p));
    fd = tcp_connect(nonoproxy_port(p));
    assert_int_equal(send_str(fd, req), 0);
    while ((n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0)) > 0) {
        got += (size_t)n;
    }
    buf[got] = '\0';
    close(fd);
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
    assert_null(strcasestr(buf, "Transfer-Encoding"));
    assert_non_null(strstr(buf, "\r\n\r\nhello world"));
    assert_non_null(strstr(buf, "Connection: close"));
    nonoproxy_free(p);
    up_stop(u);
}

/* Shutdown while a response streams returns promptly and leaves no fd or thread. */
static void
shutdown_while_streaming(void **state)
{
    int fds0 = count_fds();
    int threads0 = count_threads();
    struct upstream *u = up_start(UP_STREAM);
    struct nonoproxy_proxy *p = start_route_proxy(u->port, "test-key", 0);
    char head[4096];
    char body[64];
    int fd;

    (void)state;
    fd = tcp_connect(nonoproxy_port(p));
    assert_int_equal(get(fd, p, "/svc/stream", head, sizeof(head)), 200);
    assert_non_null(strstr(head, "Transfer-Encoding: chunked"));
    assert_int_equal(read_n(fd, body, 11), 0); /* "6\r\nevent1\r\n" */
    assert_string_equal(body, "6\r\nevent1\r\n");
    nonoproxy_free(p);
    close(fd);
    up_stop(u);
    assert_int_equal(wait_threads(threads0), threads0);
    assert_int_equal(count_fds(), fds0);
}

/* Whether n upstream connections ended within ms milliseconds. */
static bool
up_wait_ended(struct upstream *u, unsigned n, unsigned ms)
{
    struct timespec until;
    bool ok;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    pthread_mutex_lock(&u->mu);
    while (u->ended < n) {
        if (pthread_cond_timedwait(&u->ended_cv, &u->mu, &until) != 0) {
            break;
        }
    }
    ok = u->ended >= n;
    pthread_mutex_unlock(&u->mu);
    return ok;
}

/* A client that leaves while the upstream holds a stream (server-sent events, long poll)
 * frees the worker and the upstream connection at once, not at the upstream's next byte: the
 * upstream sees its connection end while it sends nothing more. */
static void
client_leaving_a_held_stream_frees_the_upstream(void **state)
{
    struct upstream *u = up_start(UP_STREAM);
    struct nonoproxy_proxy *p = start_route_proxy(u->port, "test-key", 0);
    char head[4096];
    char body[64];
    int fd;

    (void)state;
    fd = tcp_connect(nonoproxy_port(p));
    assert_int_equal(get(fd, p, "/svc/stream", head, sizeof(head)), 200);
    assert_int_equal(read_n(fd, body, 11), 0); /* "6\r\nevent1\r\n" */
    close(fd);
    assert_true(up_wait_ended(u, 1, 10000)); /* the response timeout is 60 s */
    nonoproxy_free(p);
    up_stop(u);
}

/* A token the client also put in the query is dropped before the request goes upstream;
 * one in the path is refused (dropping a segment would change the request). */
static void
token_outside_its_slot_removed(void **state)
{
    struct upstream *u = up_start(UP_OK);
    struct nonoproxy_proxy *p = start_route_proxy(u->port, "test-key", 0);
    char path[512];
    char head[4096];
    char body[8];
    char enc[256];
    char upper[128];
    const char *t;
    size_t i;
    size_t n = 0;
    int fd;

    (void)state;
    t = proxy_token(p);
    for (i = 0; t[i] != '\0' && n + 4 < sizeof(enc); i++) { /* every byte percent-encoded */
        n += (size_t)snprintf(enc + n, sizeof(enc) - n, "%%%02X", (unsigned char)t[i]);
    }
    for (i = 0; t[i] != '\0' && i + 1 < sizeof(upper); i++) {
        upper[i] = (char)toupper((unsigned char)t[i]);
    }
    upper[i] = '\0';
    fd = tcp_connect(nonoproxy_port(p));
    snprintf(path, sizeof(path), "/svc/q?a=1&t=%s&b=2&e=%s&u=%s", t, enc, upper);
    assert_int_equal(get(fd, p, path, head, sizeof(head)), 200);
    assert_int_equal(read_n(fd, body, 2), 0);
    snprintf(path, sizeof(path), "/svc/x%s/y", t);
    assert_int_equal(get(fd, p, path, head, sizeof(head)), 400);
    close(fd);
    pthread_mutex_lock(&u->mu);
    assert_non_null(strstr(u->log, "GET /q?a=1&b=2 HTTP/1.1\r\n"));
    assert_null(strstr(u->log, t));
    assert_null(strstr(u->log, enc));
    assert_null(strstr(u->log, upper));
    assert_int_equal(u->requests, 1);
    pthread_mutex_unlock(&u->mu);
    nonoproxy_free(p);
    up_stop(u);
}

/* A custom scheme is accepted when a callback is installed, and only the callback is asked;
 * without a callback it is a start error. */
static void
custom_scheme_through_callback(void **state)
{
    struct upstream *u = up_start(UP_OK);
    struct nonoproxy_proxy *p = start_route_proxy(u->port, "vault://kv/svc", 0);
    struct nonoproxy_config cfg;
    struct nonoproxy_route_config r;
    struct nonoproxy_proxy *q = NULL;
    struct nonoproxy_diag diag;
    char head[4096];
    char body[8];
    int fd;

    (void)state;
    fd = tcp_connect(nonoproxy_port(p));
    assert_int_equal(get(fd, p, "/svc/v", head, sizeof(head)), 200);
    assert_int_equal(read_n(fd, body, 2), 0);
    close(fd);
    pthread_mutex_lock(&u->mu);
    assert_non_null(strstr(u->log, "Authorization: Bearer " SECRET "\r\n"));
    pthread_mutex_unlock(&u->mu);
    nonoproxy_free(p);
    up_stop(u);

    nonoproxy_config_init(&cfg);
    nonoproxy_route_config_init(&r, "svc", "https://example.com");
    r.credential_key = "vault://kv/svc";
    assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    assert_int_equal(nonoproxy_start(&cfg, &q, &diag), NONOPROXY_ERR_CREDENTIAL);
    assert_non_null(strstr(diag.message, "unsupported"));
    nonoproxy_config_free(&cfg);
}

/* Two prefixes that give the child the same variable name are refused. */
static void
start_rejects_colliding_variable_names(void **state)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_route_config r;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;

    (void)state;
    nonoproxy_config_init(&cfg);
    nonoproxy_route_config_init(&r, "my-api", "https://a.example");
    assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    nonoproxy_route_config_init(&r, "my_api", "https://b.example");
    assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    assert_int_equal(nonoproxy_start(&cfg, &p, &diag), NONOPROXY_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.message, "routes[1] 'my_api'"));
    nonoproxy_config_free(&cfg);

    /* A phantom variable named like another route's base URL. */
    nonoproxy_config_init(&cfg);
    nonoproxy_route_config_init(&r, "a", "https://a.example");
    r.credential_key = "env://A_KEY";
    r.env_var = "B_BASE_URL";
    assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    nonoproxy_route_config_init(&r, "b", "https://b.example");
    assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    assert_int_equal(nonoproxy_start(&cfg, &p, &diag), NONOPROXY_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.message, "env_var"));
    nonoproxy_config_free(&cfg);
}

/* Shutdown closes the pooled idle upstream connections (the upstream sees them end) before
 * nonoproxy_free. */
static void
shutdown_closes_pooled_connections(void **state)
{
    struct upstream *u = up_start(UP_OK);
    struct nonoproxy_proxy *p = start_route_proxy(u->port, "test-key", 0);
    char head[4096];
    char body[8];
    int fd;

    (void)state;
    fd = tcp_connect(nonoproxy_port(p));
    assert_int_equal(get(fd, p, "/svc/pool", head, sizeof(head)), 200);
    assert_int_equal(read_n(fd, body, 2), 0);
    close(fd);
    nonoproxy_shutdown(p);
    /* The upstream's connection thread ends when it reads EOF: join it before free. */
    pthread_mutex_lock(&u->mu);
    assert_int_equal(u->n_conns, 1);
    pthread_mutex_unlock(&u->mu);
    assert_int_equal(pthread_join(u->threads[0], NULL), 0);
    u->n_conns = 0;
    close(u->conns[0]);
    nonoproxy_free(p);
    up_stop(u);
}

/* A client that sends its base-URL request through HTTP_PROXY (absolute form, to the proxy's
 * own address) is served by the route, after proxy authentication. */
static void
absolute_form_to_self_served_by_route(void **state)
{
    struct upstream *u = up_start(UP_OK);
    struct nonoproxy_proxy *p = start_route_proxy(u->port, "test-key", 0);
    char req[1024];
    char head[4096];
    char body[8];
    char basic[256];
    const struct nonoproxy_env_var *env;
    size_t n;
    size_t i;
    int fd;

    (void)state;
    assert_int_equal(nonoproxy_env_vars(p, &env, &n), NONOPROXY_OK);
    basic[0] = '\0';
    for (i = 0; i < n; i++) {
        if (strcmp(env[i].name, "HTTP_PROXY") == 0) {
            snprintf(basic, sizeof(basic), "%s", env[i].value);
        }
    }
    assert_true(basic[0] != '\0');
    fd = tcp_connect(nonoproxy_port(p));
    /* Without proxy credentials: 407, nothing upstream. */
    snprintf(req, sizeof(req),
             "GET http://127.0.0.1:%u/svc/abs HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer %s\r\n\r\n",
             (unsigned)nonoproxy_port(p), proxy_token(p));
    assert_int_equal(send_str(fd, req), 0);
    assert_int_equal(read_head(fd, head, sizeof(head)), 407);
    close(fd);
    /* Plain HTTP straight to the route's upstream would skip the route: 403. */
    fd = tcp_connect(nonoproxy_port(p));
    snprintf(req, sizeof(req),
             "GET http://127.0.0.1:%u/direct HTTP/1.1\r\nHost: x\r\n"
             "Proxy-Authorization: Bearer %s\r\n\r\n",
             (unsigned)u->port, proxy_token(p));
    assert_int_equal(send_str(fd, req), 0);
    assert_int_equal(read_head(fd, head, sizeof(head)), 403);
    close(fd);
    assert_true(has_event(p, NONOPROXY_DENIAL_CONNECT_BYPASSES_L7, 403));
    fd = tcp_connect(nonoproxy_port(p));
    snprintf(req, sizeof(req),
             "GET http://127.0.0.1:%u/svc/abs HTTP/1.1\r\nHost: x\r\n"
             "Proxy-Authorization: Bearer %s\r\nAuthorization: Bearer %s\r\n\r\n",
             (unsigned)nonoproxy_port(p), proxy_token(p), proxy_token(p));
    assert_int_equal(send_str(fd, req), 0);
    assert_int_equal(read_head(fd, head, sizeof(head)), 200);
    assert_int_equal(read_n(fd, body, 2), 0);
    close(fd);
    pthread_mutex_lock(&u->mu);
    assert_int_equal(u->requests, 1);
    assert_non_null(strstr(u->log, "GET /abs HTTP/1.1\r\n"));
    assert_non_null(strstr(u->log, "Authorization: Bearer " SECRET "\r\n"));
    assert_null(strstr(u->log, proxy_token(p)));
    pthread_mutex_unlock(&u->mu);
    nonoproxy_free(p);
    up_stop(u);
}

/* Interim 1xx answers of the upstream are skipped and the final one relayed; an upstream that
 * sends more than 8 of them gets 502. */
static void
interim_answers_skipped_then_capped(void **state)
{
    struct upstream *u = up_start(UP_INTERIM);
    struct upstream *flood = up_start(UP_INTERIM_FLOOD);
    struct nonoproxy_proxy *p = start_route_proxy(u->port, "test-key", 0);
    struct nonoproxy_proxy *q = start_route_proxy(flood->port, "test-key", 0);
    char head[4096];
    char body[8];
    int fd;

    (void)state;
    fd = tcp_connect(nonoproxy_port(p));
    assert_int_equal(get(fd, p, "/svc/i", head, sizeof(head)), 200);
    assert_null(strstr(head, "Early Hints"));
    assert_int_equal(read_n(fd, body, 2), 0);
    assert_string_equal(body, "ok");
    close(fd);
    fd = tcp_connect(nonoproxy_port(q));
    assert_int_equal(get(fd, q, "/svc/i", head, sizeof(head)), 502);
    close(fd);
    assert_true(has_event(q, NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED, 502));
    nonoproxy_free(p);
    nonoproxy_free(q);
    up_stop(u);
    up_stop(flood);
}

/* A client that sends Expect: 100-continue gets the 100 from the proxy, then the answer; the
 * body reaches the upstream. A protocol upgrade is refused with 501 and sent nowhere. */
static void
expect_continue_and_upgrade(void **state)
{
    struct upstream *u = up_start(UP_OK);
    struct nonoproxy_proxy *p = start_route_proxy(u->port, "test-key", 0);
    char req[1024];
    char head[4096];
    char body[8];
    int fd;

    (void)state;
    fd = tcp_connect(nonoproxy_port(p));
    snprintf(req, sizeof(req),
             "POST /svc/up HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n",
             proxy_token(p));
    assert_int_equal(send_str(fd, req), 0);
    assert_int_equal(read_head(fd, head, sizeof(head)), 100);
    assert_int_equal(send_str(fd, "hello"), 0);
    assert_int_equal(read_head(fd, head, sizeof(head)), 200);
    assert_int_equal(read_n(fd, body, 2), 0);
    close(fd);
    pthread_mutex_lock(&u->mu);
    assert_int_equal(u->requests, 1);
    assert_non_null(strstr(u->log, "Content-Length: 5\r\n"));
    pthread_mutex_unlock(&u->mu);

    fd = tcp_connect(nonoproxy_port(p));
    snprintf(req, sizeof(req),
             "GET /svc/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
             proxy_token(p));
    assert_int_equal(send_str(fd, req), 0);
    assert_int_equal(read_head(fd, head, sizeof(head)), 501);
    close(fd);
    pthread_mutex_lock(&u->mu);
    assert_int_equal(u->requests, 1);
    pthread_mutex_unlock(&u->mu);
    assert_true(has_event(p, NONOPROXY_DENIAL_UNSUPPORTED_REQUEST, 501));
    nonoproxy_free(p);
    up_stop(u);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(start_rejects_bad_routes),
        cmocka_unit_test(start_rejects_duplicate_prefix),
        cmocka_unit_test(callback_credential_injected),
        cmocka_unit_test(missing_credential_503),
        cmocka_unit_test(upstream_timeout_504_and_close_502),
        cmocka_unit_test(keepalive_reuses_upstream),
        cmocka_unit_test(stale_pooled_connection_retried),
        cmocka_unit_test(pipelined_requests),
        cmocka_unit_test(chunked_to_http10_client),
        cmocka_unit_test(shutdown_while_streaming),
        cmocka_unit_test(client_leaving_a_held_stream_frees_the_upstream),
        cmocka_unit_test(token_outside_its_slot_removed),
        cmocka_unit_test(custom_scheme_through_callback),
        cmocka_unit_test(start_rejects_colliding_variable_names),
        cmocka_unit_test(shutdown_closes_pooled_connections),
        cmocka_unit_test(absolute_form_to_self_served_by_route),
        cmocka_unit_test(interim_answers_skipped_then_capped),
        cmocka_unit_test(expect_continue_and_upgrade),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
