/* In-process integration tests of a route's policy (SPEC §13) through the public API, with
 * real sockets on 127.0.0.1 port 0: endpoint rules after the phantom check (an
 * unauthenticated request gets 401, never 403), encoded-path dodges answered 403 or 400 and
 * never seen upstream, what is matched being what is forwarded, the rate limit (429 with
 * Retry-After, waits within the budget, 64 concurrent clients on one route for TSan,
 * shutdown waking sleepers), and per-route client certificates against an mbedTLS upstream
 * that requires one (a throw-away PKI made with the openssl CLI), with the start errors of
 * every new field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "harness.h"

#define SECRET   "sk-policy-secret-0123456789"
#define MAX_UP   160
#define CLIENTS  64
#define PER_CONN 4

/* ---- a plain upstream: one thread per connection, 200 "ok" keep-alive, heads recorded ---- */

struct upstream {
    int lfd;
    uint16_t port;
    pthread_t acceptor;
    pthread_mutex_t mu;
    unsigned requests;
    char log[1 << 16]; /* request lines, one per line */
    size_t log_len;
    int conns[MAX_UP];
    pthread_t threads[MAX_UP];
    size_t n_conns;
};

struct up_conn {
    struct upstream *u;
    int fd;
};

/* Serve requests (bodies by Content-Length) until EOF. */
static void *
up_conn_main(void *arg)
{
    struct up_conn *c = arg;
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
        pthread_mutex_lock(&c->u->mu);
        {
            size_t line = (size_t)(strstr(buf, "\r\n") - buf);
            if (c->u->log_len + line + 2 < sizeof(c->u->log)) {
                memcpy(c->u->log + c->u->log_len, buf, line);
                c->u->log_len += line;
                c->u->log[c->u->log_len++] = '\n';
                c->u->log[c->u->log_len] = '\0';
            }
        }
        c->u->requests++;
        pthread_mutex_unlock(&c->u->mu);
        memmove(buf, buf + head_len + body, have - head_len - body);
        have -= head_len + body;
        if (send(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 40, MSG_NOSIGNAL) != 40) {
            goto out;
        }
    }
out:
    shutdown(c->fd, SHUT_RDWR);
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
        if (c == NULL || u->n_conns == MAX_UP) {
            pthread_mutex_unlock(&u->mu);
            close(fd);
            free(c);
            continue;
        }
        c->u = u;
        c->fd = fd;
        u->conns[u->n_conns] = fd;
        assert_int_equal(pthread_create(&u->threads[u->n_conns], NULL, up_conn_main, c), 0);
        u->n_conns++;
        pthread_mutex_unlock(&u->mu);
    }
}

static struct upstream *
up_start(void)
{
    struct upstream *u = calloc(1, sizeof(*u));
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    assert_non_null(u);
    pthread_mutex_init(&u->mu, NULL);
    u->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(u->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(u->lfd, 128), 0);
    assert_int_equal(getsockname(u->lfd, (struct sockaddr *)&sin, &len), 0);
    u->port = ntohs(sin.sin_port);
    assert_int_equal(pthread_create(&u->acceptor, NULL, up_accept_main, u), 0);
    return u;
}

static unsigned
up_requests(struct upstream *u)
{
    unsigned n;

    pthread_mutex_lock(&u->mu);
    n = u->requests;
    pthread_mutex_unlock(&u->mu);
    return n;
}

/* Whether the upstream received a request line starting with line. */
static bool
up_saw(struct upstream *u, const char *line)
{
    char want[512];
    bool found;

    (void)snprintf(want, sizeof(want), "%s\n", line);
    pthread_mutex_lock(&u->mu);
    found = strstr(u->log, want) != NULL;
    pthread_mutex_unlock(&u->mu);
    return found;
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
    pthread_mutex_destroy(&u->mu);
    free(u);
}

/* ---- the proxy ----------------------------------------------------------------------------- */

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

/* Start a proxy with the routes rs[0..n); fails the test when it does not start. */
static struct nonoproxy_proxy *
start_routes(const struct nonoproxy_route_config *rs, size_t n)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;
    size_t i;

    nonoproxy_config_init(&cfg);
    cfg.credential_cb = cred_cb;
    for (i = 0; i < n; i++) {
        assert_int_equal(nonoproxy_config_add_route(&cfg, &rs[i]), NONOPROXY_OK);
    }
    memset(&diag, 0, sizeof(diag));
    if (nonoproxy_start(&cfg, &p, &diag) != NONOPROXY_OK) {
        fail_msg("nonoproxy_start: %s", diag.message);
    }
    nonoproxy_config_free(&cfg);
    return p;
}

/* The start error of the route r (fails the test when it starts), into diag. */
static void
start_error(const struct nonoproxy_route_config *r, struct nonoproxy_diag *diag)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p = NULL;

    nonoproxy_config_init(&cfg);
    cfg.credential_cb = cred_cb;
    assert_int_equal(nonoproxy_config_add_route(&cfg, r), NONOPROXY_OK);
    memset(diag, 0, sizeof(*diag));
    if (nonoproxy_start(&cfg, &p, diag) == NONOPROXY_OK) {
        nonoproxy_free(p);
        fail_msg("route '%s' started", r->prefix);
    }
    assert_null(p);
    nonoproxy_config_free(&cfg);
}

/* One answer: status, head and body. */
struct answer {
    int status;
    char head[2048];
    char body[512];
};

/* Read the body of a head with Content-Length into a->body. */
static void
read_body(int fd, struct answer *a)
{
    const char *cl = strcasestr(a->head, "\r\nContent-Length:");
    size_t n = cl != NULL ? strtoul(cl + 17, NULL, 10) : 0;
    size_t got = 0;

    a->body[0] = '\0';
    assert_true(n < sizeof(a->body));
    while (got < n) {
        ssize_t r = recv(fd, a->body + got, n - got, 0);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    a->body[got] = '\0';
}

/* Send "<method> <target>" (with the phantom when auth, a 2-byte body for POST) on fd and
 * read the answer. */
static void
ask_on(int fd, const struct nonoproxy_proxy *p, const char *method, const char *target, bool auth,
       struct answer *a)
{
    char req[2048];
    bool post = strcmp(method, "POST") == 0;
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\n%s%s%s%s\r\n%s", method,
                     target, auth ? "Authorization: Bearer " : "", auth ? proxy_token(p) : "",
                     auth ? "\r\n" : "", post ? "Content-Length: 2\r\n" : "", post ? "hi" : "");

    assert_true(n > 0 && (size_t)n < sizeof(req));
    a->status = send_str(fd, req) == 0 ? read_head(fd, a->head, sizeof(a->head)) : -1;
    read_body(fd, a);
}

/* ask_on, on a new connection that is closed after. */
static void
ask(const struct nonoproxy_proxy *p, const char *method, const char *target, bool auth,
    struct answer *a)
{
    int fd = tcp_connect(nonoproxy_port(p));

    assert_true(fd >= 0);
    ask_on(fd, p, method, target, auth, a);
    close(fd);
}

/* The drained event of category cat (the last one), copied to out; false when none. */
static bool
find_event(struct nonoproxy_proxy *p, enum nonoproxy_denial_category cat,
           struct nonoproxy_audit_event *out)
{
    static struct nonoproxy_audit_event ev[512];
    size_t n = nonoproxy_drain_audit_events(p, ev, 512, NULL);
    bool found = false;
    size_t i;

    for (i = 0; i < n; i++) {
        char json[NONOPROXY_AUDIT_JSON_MAX];

        assert_true(nonoproxy_audit_event_to_json(&ev[i], json, sizeof(json)) > 0);
        assert_null(strstr(json, SECRET));
        assert_null(strstr(json, proxy_token(p)));
        if (ev[i].denial_category == cat) {
            *out = ev[i];
            found = true;
        }
    }
    return found;
}

/* A route svc → upstream with the test credential (phantom in Authorization). */
static void
svc_route(struct nonoproxy_route_config *r, char *up, size_t cap, uint16_t port)
{
    (void)snprintf(up, cap, "http://127.0.0.1:%u", (unsigned)port);
    nonoproxy_route_config_init(r, "svc", up);
    r->credential_key = "test-key";
}

/* ---- start errors -------------------------------------------------------------------------- */

static void
start_errors_name_the_field(void **state)
{
    static const struct nonoproxy_endpoint_rule bad_path[] = {{"GET", "/ok"}, {"GET", "/v1/a**"}};
    static const struct nonoproxy_endpoint_rule bad_method[] = {{"G ET", "/ok"}};
    static const struct nonoproxy_endpoint_rule no_slash[] = {{"GET", "v1"}};
    struct {
        const char *expect;
        const struct nonoproxy_endpoint_rule *rules;
        size_t n_rules;
        uint32_t rpm, burst, delay;
        const char *cert, *key, *upstream;
    } rows[] = {
        {"routes[0] 'svc': endpoint_rules[1].path: '**' must be a whole segment", bad_path, 2, 0, 0,
         0, NULL, NULL, NULL},
        {"routes[0] 'svc': endpoint_rules[0].method:", bad_method, 1, 0, 0, 0, NULL, NULL, NULL},
        {"routes[0] 'svc': endpoint_rules[0].path: must start with '/'", no_slash, 1, 0, 0, 0, NULL,
         NULL, NULL},
        {"routes[0] 'svc': rate_limit_per_minute:", NULL, 0, 6000001, 0, 0, NULL, NULL, NULL},
        {"routes[0] 'svc': rate_limit_burst:", NULL, 0, 60, 1000001, 0, NULL, NULL, NULL},
        {"routes[0] 'svc': rate_limit_max_delay_ms:", NULL, 0, 60, 0, 600001, NULL, NULL, NULL},
        {"routes[0] 'svc': rate_limit_burst: set without", NULL, 0, 0, 5, 0, NULL, NULL, NULL},
        {"routes[0] 'svc': tls_client_key: required", NULL, 0, 0, 0, 0, "/c.pem", NULL,
         "https://example.com"},
        {"routes[0] 'svc': tls_client_cert: required", NULL, 0, 0, 0, 0, NULL, "/k.pem",
         "https://example.com"},
        {"routes[0] 'svc': tls_client_cert: needs an https", NULL, 0, 0, 0, 0, "/c.pem", "/k.pem",
         "http://127.0.0.1:9"},
        {"routes[0] 'svc': tls_client_cert: cannot read '/nonexistent/c.pem'", NULL, 0, 0, 0, 0,
         "/nonexistent/c.pem", "/nonexistent/k.pem", "https://example.com"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct nonoproxy_route_config r;
        struct nonoproxy_diag diag;

        nonoproxy_route_config_init(
            &r, "svc", rows[i].upstream != NULL ? rows[i].upstream : "https://example.com");
        r.endpoint_rules = rows[i].rules;
        r.n_endpoint_rules = rows[i].n_rules;
        r.rate_limit_per_minute = rows[i].rpm;
        r.rate_limit_burst = rows[i].burst;
        r.rate_limit_max_delay_ms = rows[i].delay;
        r.tls_client_cert = rows[i].cert;
        r.tls_client_key = rows[i].key;
        start_error(&r, &diag);
        if (strncmp(diag.message, rows[i].expect, strlen(rows[i].expect)) != 0) {
            fail_msg("row %zu: diag '%s', want '%s...'", i, diag.message, rows[i].expect);
        }
    }
}

/* ---- endpoint rules ------------------------------------------------------------------------ */

static const struct nonoproxy_endpoint_rule svc_rules[] = {
    {"GET", "/v1/models"},
    {"*", "/v1/chat/**"},
};

static void
rules_come_after_the_phantom(void **state)
{
    struct upstream *u = up_start();
    struct nonoproxy_route_config r;
    struct nonoproxy_audit_event ev;
    struct nonoproxy_proxy *p;
    struct answer a;
    char target[256];
    char up[64];

    (void)state;
    svc_route(&r, up, sizeof(up), u->port);
    r.endpoint_rules = svc_rules;
    r.n_endpoint_rules = 2;
    p = start_routes(&r, 1);

    /* Unauthenticated: 401 whether or not a rule matches; nothing learnt from the rules. */
    ask(p, "GET", "/svc/v1/admin", false, &a);
    assert_int_equal(a.status, 401);
    ask(p, "GET", "/svc/v1/models", false, &a);
    assert_int_equal(a.status, 401);
    assert_false(find_event(p, NONOPROXY_DENIAL_ENDPOINT_POLICY, &ev));

    ask(p, "GET", "/svc/v1/models", true, &a);
    assert_int_equal(a.status, 200);
    assert_true(up_saw(u, "GET /v1/models HTTP/1.1"));
    ask(p, "POST", "/svc/v1/chat/completions", true, &a);
    assert_int_equal(a.status, 200);
    assert_true(up_saw(u, "POST /v1/chat/completions HTTP/1.1"));

    /* A method no rule allows: 403 JSON, the connection closed, an audit deny. */
    ask(p, "POST", "/svc/v1/models", true, &a);
    assert_int_equal(a.status, 403);
    assert_string_equal(a.body, "{\"error\":\"endpoint not allowed\"}");
    assert_non_null(strcasestr(a.head, "\r\nConnection: close\r\n"));
    assert_non_null(strcasestr(a.head, "\r\nContent-Type: application/json\r\n"));
    assert_true(find_event(p, NONOPROXY_DENIAL_ENDPOINT_POLICY, &ev));
    assert_int_equal(ev.decision, NONOPROXY_DECISION_DENY);
    assert_int_equal(ev.status, 403);
    assert_string_equal(ev.method, "POST");
    assert_string_equal(ev.path, "/v1/models");
    assert_string_equal(ev.route_id, "svc");

    /* The token in the query of a denied request is redacted in the audit path. */
    (void)snprintf(target, sizeof(target), "/svc/v1/nope?t=%s", proxy_token(p));
    ask(p, "GET", target, true, &a);
    assert_int_equal(a.status, 403);
    assert_true(find_event(p, NONOPROXY_DENIAL_ENDPOINT_POLICY, &ev));
    assert_non_null(strstr(ev.path, "[REDACTED]"));

    assert_int_equal(up_requests(u), 2);
    nonoproxy_free(p);
    up_stop(u);
}

/* Spellings that try to reach an endpoint the rules do not allow: 403 or 400, never the
 * upstream; and what the rules matched is what went upstream. */
static void
dodges_never_reach_the_upstream(void **state)
{
    static const struct {
        const char *target;
        int status;
        const char *upstream_line; /* for 200: the request line the upstream must see */
    } rows[] = {
        {"/svc/v1/models%2F..%2Fadmin", 403, NULL},
        {"/svc/v1/models%2f..%2fadmin", 403, NULL},
        {"/svc/v1/chat%2Fx", 403, NULL},
        {"/svc/v1%2Fchat/x", 403, NULL},
        {"/svc/v1/chat/..%2F..%2Fadmin", 403, NULL},
        {"/svc/v1/chat/%2e%2e/%2e%2e/admin", 403, NULL},
        {"/svc/v1/chat/.%2E/models", 200, "GET /v1/models HTTP/1.1"},
        {"/svc/v1/models/", 403, NULL},
        {"/svc/v1//models", 403, NULL},
        {"/svc//v1/models", 403, NULL},
        {"/svc/v1/models;x", 403, NULL},
        {"/svc/v1/models%3Fx", 403, NULL},
        {"/svc/V1/models", 403, NULL},
        {"/svc", 403, NULL},
        {"/svc/../admin", 400, NULL},
        {"/svc/v1/chat/%2e%2e/%2e%2e/%2e%2e/x", 400, NULL},
        {"/svc/v1/chat/..%5C..%5C..%5Cx", 400, NULL},
        {"/svc/v1/x/../models?y=1", 200, "GET /v1/models?y=1 HTTP/1.1"},
        {"/svc/v1/./models", 200, "GET /v1/models HTTP/1.1"},
        {"/svc/v1/model%73", 200, "GET /v1/model%73 HTTP/1.1"},
        {"/svc/v1/chat/a%2Fb", 200, "GET /v1/chat/a%2Fb HTTP/1.1"},
    };
    struct upstream *u = up_start();
    struct nonoproxy_route_config r;
    struct nonoproxy_proxy *p;
    unsigned allowed = 0;
    struct answer a;
    char up[64];
    size_t i;

    (void)state;
    svc_route(&r, up, sizeof(up), u->port);
    r.endpoint_rules = svc_rules;
    r.n_endpoint_rules = 2;
    p = start_routes(&r, 1);
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ask(p, "GET", rows[i].target, true, &a);
        if (a.status != rows[i].status) {
            fail_msg("%s: status %d, want %d", rows[i].target, a.status, rows[i].status);
        }
        if (rows[i].upstream_line != NULL) {
            allowed++;
            if (!up_saw(u, rows[i].upstream_line)) {
                fail_msg("%s: the upstream did not see '%s':\n%s", rows[i].target,
                         rows[i].upstream_line, u->log);
            }
        }
        assert_int_equal(up_requests(u), allowed);
    }
    nonoproxy_free(p);
    up_stop(u);
}

/* ---- rate limit ---------------------------------------------------------------------------- */

static const struct nonoproxy_endpoint_rule ok_rules[] = {{"*", "/ok/**"}};

static void
rate_limit_answers_429_with_retry_after(void **state)
{
    struct upstream *u = up_start();
    struct nonoproxy_route_config r;
    struct nonoproxy_audit_event ev;
    struct nonoproxy_proxy *p;
    const char *ra;
    struct answer a;
    char up[64];

    (void)state;
    svc_route(&r, up, sizeof(up), u->port);
    r.endpoint_rules = ok_rules;
    r.n_endpoint_rules = 1;
    r.rate_limit_per_minute = 1;
    r.rate_limit_burst = 2;
    p = start_routes(&r, 1);

    ask(p, "GET", "/svc/ok/1", false, &a); /* 401: takes no token */
    assert_int_equal(a.status, 401);
    ask(p, "GET", "/svc/nope", true, &a); /* 403: takes no token */
    assert_int_equal(a.status, 403);
    ask(p, "GET", "/svc/ok/1", true, &a);
    assert_int_equal(a.status, 200);
    ask(p, "GET", "/svc/ok/2", true, &a);
    assert_int_equal(a.status, 200);
    ask(p, "GET", "/svc/ok/3", true, &a);
    assert_int_equal(a.status, 429);
    assert_string_equal(a.body, "{\"error\":\"rate limited\"}");
    ra = strcasestr(a.head, "\r\nRetry-After: ");
    assert_non_null(ra);
    /* One token a minute, just taken: the next one is 60 s away (59 on a very slow run). */
    assert_true(strtoul(ra + 15, NULL, 10) >= 59 && strtoul(ra + 15, NULL, 10) <= 60);
    assert_true(find_event(p, NONOPROXY_DENIAL_RATE_LIMITED, &ev));
    assert_int_equal(ev.status, 429);
    assert_int_equal(ev.decision, NONOPROXY_DECISION_DENY);
    assert_string_equal(ev.path, "/ok/3");

    /* With the bucket empty the phantom check and the rules still answer first. */
    ask(p, "GET", "/svc/ok/4", false, &a);
    assert_int_equal(a.status, 401);
    ask(p, "GET", "/svc/nope", true, &a);
    assert_int_equal(a.status, 403);
    assert_int_equal(up_requests(u), 2);
    nonoproxy_free(p);
    up_stop(u);
}

/* Requests beyond the bucket wait for their token within max_delay, on one keep-alive
 * connection. */
static void
rate_limit_waits_within_the_budget(void **state)
{
    struct upstream *u = up_start();
    struct nonoproxy_route_config r;
    struct nonoproxy_proxy *p;
    struct answer a;
    uint64_t t0;
    char up[64];
    int fd;
    int i;

    (void)state;
    svc_route(&r, up, sizeof(up), u->port);
    r.rate_limit_per_minute = 3000; /* one each 20 ms */
    r.rate_limit_burst = 1;
    r.rate_limit_max_delay_ms = 5000;
    p = start_routes(&r, 1);
    fd = tcp_connect(nonoproxy_port(p));
    assert_true(fd >= 0);
    t0 = now_ms();
    for (i = 0; i < 6; i++) {
        ask_on(fd, p, "GET", "/svc/x", true, &a);
        assert_int_equal(a.status, 200);
    }
    assert_true(now_ms() - t0 >= 5 * 20 - 2); /* five waits of 20 ms (ms rounding) */
    close(fd);
    assert_int_equal(up_requests(u), 6);
    nonoproxy_free(p);
    up_stop(u);
}

/* 64 clients at once on one route. */
struct crowd {
    const struct nonoproxy_proxy *p;
    const char *target;
    atomic_uint ok;
    atomic_uint limited;
    atomic_uint other;
    pthread_barrier_t go;
};

static void *
crowd_client(void *arg)
{
    struct crowd *c = arg;
    struct answer a;
    int fd = tcp_connect(nonoproxy_port(c->p));
    int i;

    pthread_barrier_wait(&c->go);
    for (i = 0; i < PER_CONN && fd >= 0; i++) {
        ask_on(fd, c->p, "GET", c->target, true, &a);
        atomic_fetch_add(a.status == 200 ? &c->ok : a.status == 429 ? &c->limited : &c->other, 1);
        if (a.status != 200) {
            break; /* an error answer closes the connection */
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    return NULL;
}

static void
run_crowd(struct crowd *c)
{
    pthread_t t[CLIENTS];
    int i;

    atomic_init(&c->ok, 0);
    atomic_init(&c->limited, 0);
    atomic_init(&c->other, 0);
    assert_int_equal(pthread_barrier_init(&c->go, NULL, CLIENTS), 0);
    for (i = 0; i < CLIENTS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, crowd_client, c), 0);
    }
    for (i = 0; i < CLIENTS; i++) {
        pthread_join(t[i], NULL);
    }
    pthread_barrier_destroy(&c->go);
}

static void
sixty_four_clients_on_one_route(void **state)
{
    static const struct nonoproxy_endpoint_rule rules[] = {{"GET", "/wait/*"}, {"GET", "/now/*"}};
    struct upstream *u = up_start();
    struct nonoproxy_route_config r[2];
    static struct crowd c;
    struct nonoproxy_proxy *p;
    char up[64];
    uint64_t t0;
    uint64_t secs;

    (void)state;
    svc_route(&r[0], up, sizeof(up), u->port);
    r[0].endpoint_rules = rules;
    r[0].n_endpoint_rules = 2;
    r[0].rate_limit_per_minute = 120000; /* one each 0.5 ms: everyone waits within 10 s */
    r[0].rate_limit_burst = 8;
    r[0].rate_limit_max_delay_ms = 10000;
    r[1] = r[0];
    r[1].prefix = "now";
    r[1].env_var = "NOW_TOKEN";
    r[1].rate_limit_per_minute = 60; /* one a second, no waiting: most get 429 */
    r[1].rate_limit_max_delay_ms = 0;
    p = start_routes(r, 2);

    c.p = p;
    c.target = "/svc/wait/x";
    run_crowd(&c);
    assert_int_equal(atomic_load(&c.ok), CLIENTS * PER_CONN);
    assert_int_equal(atomic_load(&c.other), 0);

    c.target = "/now/now/x";
    t0 = now_ms();
    run_crowd(&c);
    secs = (now_ms() - t0) / 1000 + 1;
    assert_int_equal(atomic_load(&c.other), 0);
    assert_true(atomic_load(&c.ok) >= 8);
    assert_true(atomic_load(&c.ok) <= 8 + secs);
    assert_true(atomic_load(&c.limited) >= CLIENTS - 8 - secs);
    assert_int_equal(up_requests(u), CLIENTS * PER_CONN + atomic_load(&c.ok));
    nonoproxy_free(p);
    up_stop(u);
}

/* Requests asleep for a token do not hold up shutdown: they end at once. */
static void
shutdown_wakes_sleepers(void **state)
{
    struct upstream *u = up_start();
    struct nonoproxy_route_config r;
    struct nonoproxy_proxy *p;
    struct answer a;
    int fds[4];
    uint64_t t0;
    char up[64];
    size_t i;

    (void)state;
    svc_route(&r, up, sizeof(up), u->port);
    r.rate_limit_per_minute = 1;
    r.rate_limit_burst = 1;
    r.rate_limit_max_delay_ms = 600000;
    p = start_routes(&r, 1);
    ask(p, "GET", "/svc/x", true, &a);
    assert_int_equal(a.status, 200);
    for (i = 0; i < 4; i++) {
        char req[256];

        fds[i] = tcp_connect(nonoproxy_port(p));
        assert_true(fds[i] >= 0);
        (void)snprintf(req, sizeof(req),
                       "GET /svc/y HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
                       proxy_token(p));
        assert_int_equal(send_str(fds[i], req), 0);
    }
    {
        /* They wait (a minute per token): nothing comes back meanwhile. */
        struct pollfd pf = {fds[0], POLLIN, 0};
        assert_int_equal(poll(&pf, 1, 300), 0);
    }
    t0 = now_ms();
    nonoproxy_shutdown(p);
    nonoproxy_free(p);
    assert_true(now_ms() - t0 < 5000);
    for (i = 0; i < 4; i++) {
        int st = read_head(fds[i], a.head, sizeof(a.head));

        assert_true(st == -1 || st == 503);
        close(fds[i]);
    }
    assert_int_equal(up_requests(u), 1);
    up_stop(u);
}

/* A client that leaves while its request waits for a token frees its worker at once: the
 * request never reaches the upstream, and the audit says why. */
static void
leaving_client_does_not_wait(void **state)
{
    struct upstream *u = up_start();
    struct nonoproxy_route_config r;
    struct nonoproxy_audit_event ev;
    struct nonoproxy_proxy *p;
    struct answer a;
    uint64_t until;
    bool found = false;
    char req[256];
    char up[64];
    int fd;

    (void)state;
    svc_route(&r, up, sizeof(up), u->port);
    r.rate_limit_per_minute = 1;
    r.rate_limit_burst = 1;
    r.rate_limit_max_delay_ms = 600000; /* a token in a minute: it would wait */
    p = start_routes(&r, 1);
    ask(p, "GET", "/svc/x", true, &a);
    assert_int_equal(a.status, 200);
    fd = tcp_connect(nonoproxy_port(p));
    assert_true(fd >= 0);
    (void)snprintf(req, sizeof(req),
                   "GET /svc/y HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
                   proxy_token(p));
    assert_int_equal(send_str(fd, req), 0);
    {
        struct pollfd pf = {fd, POLLIN, 0};
        assert_int_equal(poll(&pf, 1, 200), 0); /* it waits for its token */
    }
    close(fd);
    until = now_ms() + 20000;
    while (!found && now_ms() < until) {
        struct pollfd none = {-1, 0, 0};

        found = find_event(p, NONOPROXY_DENIAL_RATE_LIMITED, &ev);
        if (!found) {
            (void)poll(&none, 1, 20);
        }
    }
    assert_true(found);
    assert_non_null(strstr(ev.reason, "the client left while waiting"));
    nonoproxy_free(p);
    assert_int_equal(up_requests(u), 1);
    up_stop(u);
}

/* The status of a CONNECT (connect) or forward GET to host:port on a new connection. */
static int
status_of(struct nonoproxy_proxy *p, bool connect, const char *host, uint16_t port)
{
    char req[512];
    char head[4096];
    int fd = tcp_connect(nonoproxy_port(p));
    int st;

    assert_true(fd >= 0);
    if (connect) {
        (void)snprintf(req, sizeof(req),
                       "CONNECT %s:%u HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Bearer "
                       "%s\r\n\r\n",
                       host, (unsigned)port, proxy_token(p));
    } else {
        (void)snprintf(req, sizeof(req),
                       "GET http://%s:%u/admin HTTP/1.1\r\nHost: x\r\nProxy-Authorization: "
                       "Bearer %s\r\n\r\n",
                       host, (unsigned)port, proxy_token(p));
    }
    assert_int_equal(send_str(fd, req), 0);
    st = read_head(fd, head, sizeof(head));
    close(fd);
    return st;
}

/* A route's upstream under another spelling is still that upstream: CONNECT and forward
 * requests to it are refused (connect_bypasses_l7), so the endpoint rules cannot be dodged by
 * going around the route. */
static void
other_spellings_of_the_upstream_are_refused(void **state)
{
    static const char *const hosts[] = {"127.0.0.1", "localhost", "[::ffff:127.0.0.1]",
                                        "2130706433", "127.1"};
    struct upstream *u = up_start();
    struct nonoproxy_route_config r;
    struct nonoproxy_audit_event ev;
    struct nonoproxy_proxy *p;
    char up[64];
    size_t i;

    (void)state;
    svc_route(&r, up, sizeof(up), u->port);
    r.endpoint_rules = ok_rules;
    r.n_endpoint_rules = 1;
    p = start_routes(&r, 1);
    for (i = 0; i < sizeof(hosts) / sizeof(hosts[0]) * 2; i++) {
        assert_int_equal(status_of(p, i % 2 == 0, hosts[i / 2], u->port), 403);
        assert_true(find_event(p, NONOPROXY_DENIAL_CONNECT_BYPASSES_L7, &ev));
    }
    nonoproxy_free(p);
    assert_int_equal(up_requests(u), 0);
    up_stop(u);
}

/* ---- mutual TLS ---------------------------------------------------------------------------- */

struct pki {
    char dir[64];
    char ca[128], ca_key[128];
    char srv[128], srv_key[128];
    char cli[128], cli_key[128];
    char other_key[128];
    char garbage[128];
};

static struct pki pki;

static void
path_in(char *out, const char *name)
{
    int n = snprintf(out, 128, "%s/%s", pki.dir, name);

    assert_true(n > 0 && n < 128);
}

/* Run openssl with the NULL-terminated args (no shell), output discarded. */
static void
openssl(const char *const *args)
{
    char *argv[32];
    size_t n = 0;
    posix_spawn_file_actions_t fa;
    pid_t pid;
    int st = -1;

    argv[n++] = (char *)(uintptr_t) "openssl";
    for (; args[n - 1] != NULL && n < 31; n++) {
        argv[n] = (char *)(uintptr_t)args[n - 1];
    }
    argv[n] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    assert_int_equal(posix_spawnp(&pid, "openssl", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");

    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

/* A P-256 key and a certificate for subj signed by the test CA with the extensions ext. */
static void
make_leaf(const char *subj, const char *key, const char *cert, const char *ext_text)
{
    char csr[128];
    char ext[128];
    const char *req[] = {
        "req",    "-new",    "-newkey", "ec",   "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", key,       "-out", csr,        "-subj",
        subj,     NULL};
    const char *sign[] = {"x509",     "-req",     "-in",         csr,  "-CA",   pki.ca,
                          "-CAkey",   pki.ca_key, "-set_serial", "7",  "-days", "2",
                          "-extfile", ext,        "-out",        cert, NULL};

    path_in(csr, "leaf.csr");
    path_in(ext, "leaf.ext");
    write_file(ext, ext_text);
    openssl(req);
    openssl(sign);
}

static int
pki_setup(void **state)
{
    const char *ca[] = {"req",
                        "-x509",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:P-256",
                        "-nodes",
                        "-keyout",
                        pki.ca_key,
                        "-out",
                        pki.ca,
                        "-days",
                        "2",
                        "-subj",
                        "/CN=np-policy-ca",
                        "-addext",
                        "basicConstraints=critical,CA:TRUE",
                        "-addext",
                        "keyUsage=critical,keyCertSign,cRLSign",
                        NULL};
    const char *other[] = {"genpkey", "-algorithm",  "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                           "-out",    pki.other_key, NULL};

    (void)state;
    (void)snprintf(pki.dir, sizeof(pki.dir), "/tmp/np-test-policy-XXXXXX");
    assert_non_null(mkdtemp(pki.dir));
    path_in(pki.ca, "ca.pem");
    path_in(pki.ca_key, "ca.key");
    path_in(pki.srv, "srv.pem");
    path_in(pki.srv_key, "srv.key");
    path_in(pki.cli, "cli.pem");
    path_in(pki.cli_key, "cli.key");
    path_in(pki.other_key, "other.key");
    path_in(pki.garbage, "garbage.pem");
    openssl(ca);
    make_leaf("/CN=np-policy-server", pki.srv_key, pki.srv,
              "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
              "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n");
    make_leaf("/CN=np-route-client", pki.cli_key, pki.cli,
              "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
              "extendedKeyUsage=clientAuth\n");
    openssl(other);
    write_file(pki.garbage, "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n");
    return 0;
}

static int
pki_teardown(void **state)
{
    const char *names[] = {"ca.pem",  "ca.key",    "srv.pem",     "srv.key",  "cli.pem",
                           "cli.key", "other.key", "garbage.pem", "leaf.csr", "leaf.ext"};
    char path[128];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        path_in(path, names[i]);
        (void)unlink(path);
    }
    (void)rmdir(pki.dir);
    return 0;
}

/* An HTTPS server that requires a client certificate from the test CA and answers every
 * request (keep-alive) with the client's subject as the body. One thread per connection. */
struct tls_srv {
    int lfd;
    int stop_fd;
    uint16_t port;
    pthread_t acceptor;
    pthread_t th[16];
    size_t nth;
    atomic_uint handshakes_ok;
    atomic_uint handshakes_failed;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca, cert;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
};

struct tls_sock {
    int fd;
    int stop_fd;
};

static int
srv_send(void *ctx, const unsigned char *buf, size_t len)
{
    const struct tls_sock *k = ctx;
    ssize_t r = send(k->fd, buf, len, MSG_NOSIGNAL);

    return r >= 0 ? (int)r : MBEDTLS_ERR_SSL_INTERNAL_ERROR;
}

static int
srv_recv(void *ctx, unsigned char *buf, size_t len)
{
    const struct tls_sock *k = ctx;
    struct pollfd pf[2] = {{k->fd, POLLIN, 0}, {k->stop_fd, POLLIN, 0}};
    ssize_t r;

    if (poll(pf, 2, 30000) <= 0 || pf[1].revents != 0) {
        return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
    }
    r = recv(k->fd, buf, len, 0);
    return r >= 0 ? (int)r : MBEDTLS_ERR_SSL_INTERNAL_ERROR;
}

struct tls_job {
    struct tls_srv *s;
    int fd;
};

/* Answer each request head on ssl with the peer certificate's subject. */
static void
srv_answer(mbedtls_ssl_context *ssl)
{
    char subject[256] = "none";
    char buf[4096];
    char resp[512];
    size_t have = 0;
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(ssl);

    if (peer != NULL) {
        (void)mbedtls_x509_dn_gets(subject, sizeof(subject), &peer->subject);
    }
    for (;;) {
        int n = mbedtls_ssl_read(ssl, (unsigned char *)buf + have, sizeof(buf) - 1 - have);
        char *end;

        if (n <= 0) {
            return;
        }
        have += (size_t)n;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end == NULL) {
            continue;
        }
        have = 0;
        n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(subject), subject);
        if (mbedtls_ssl_write(ssl, (const unsigned char *)resp, (size_t)n) != n) {
            return;
        }
    }
}

static void *
tls_conn_main(void *arg)
{
    struct tls_job *j = arg;
    struct tls_sock k = {j->fd, j->s->stop_fd};
    mbedtls_ssl_context ssl;

    mbedtls_ssl_init(&ssl);
    if (mbedtls_ssl_setup(&ssl, &j->s->conf) == 0) {
        mbedtls_ssl_set_bio(&ssl, &k, srv_send, srv_recv, NULL);
        if (mbedtls_ssl_handshake(&ssl) == 0) {
            atomic_fetch_add(&j->s->handshakes_ok, 1);
            srv_answer(&ssl);
        } else {
            atomic_fetch_add(&j->s->handshakes_failed, 1);
        }
    }
    mbedtls_ssl_free(&ssl);
    shutdown(j->fd, SHUT_RDWR);
    close(j->fd);
    free(j);
    return NULL;
}

static void *
tls_accept_main(void *arg)
{
    struct tls_srv *s = arg;

    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        struct tls_job *j;

        if (fd < 0) {
            return NULL;
        }
        j = malloc(sizeof(*j));
        if (j == NULL || s->nth == 16) {
            close(fd);
            free(j);
            continue;
        }
        j->s = s;
        j->fd = fd;
        assert_int_equal(pthread_create(&s->th[s->nth++], NULL, tls_conn_main, j), 0);
    }
}

static void
tls_srv_start(struct tls_srv *s)
{
    static const unsigned char pers[] = "np policy test server";
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    memset(s, 0, sizeof(*s));
    mbedtls_entropy_init(&s->entropy);
    mbedtls_ctr_drbg_init(&s->drbg);
    mbedtls_x509_crt_init(&s->ca);
    mbedtls_x509_crt_init(&s->cert);
    mbedtls_pk_init(&s->key);
    mbedtls_ssl_config_init(&s->conf);
    assert_int_equal(
        mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy, pers, sizeof(pers) - 1),
        0);
    assert_int_equal(mbedtls_x509_crt_parse_file(&s->ca, pki.ca), 0);
    assert_int_equal(mbedtls_x509_crt_parse_file(&s->cert, pki.srv), 0);
    assert_int_equal(mbedtls_pk_parse_keyfile(&s->key, pki.srv_key, NULL), 0);
    assert_int_equal(mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER,
                                                 MBEDTLS_SSL_TRANSPORT_STREAM,
                                                 MBEDTLS_SSL_PRESET_DEFAULT),
                     0);
    mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &s->drbg);
    assert_int_equal(mbedtls_ssl_conf_own_cert(&s->conf, &s->cert, &s->key), 0);
    mbedtls_ssl_conf_ca_chain(&s->conf, &s->ca, NULL);
    mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    s->stop_fd = eventfd(0, EFD_CLOEXEC);
    assert_true(s->stop_fd >= 0);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &len), 0);
    s->port = ntohs(sin.sin_port);
    assert_int_equal(pthread_create(&s->acceptor, NULL, tls_accept_main, s), 0);
}

static void
tls_srv_stop(struct tls_srv *s)
{
    uint64_t one = 1;
    size_t i;

    shutdown(s->lfd, SHUT_RDWR);
    pthread_join(s->acceptor, NULL);
    close(s->lfd);
    (void)!write(s->stop_fd, &one, sizeof(one));
    for (i = 0; i < s->nth; i++) {
        pthread_join(s->th[i], NULL);
    }
    close(s->stop_fd);
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_pk_free(&s->key);
    mbedtls_x509_crt_free(&s->cert);
    mbedtls_x509_crt_free(&s->ca);
    mbedtls_ctr_drbg_free(&s->drbg);
    mbedtls_entropy_free(&s->entropy);
}

/* A route prefix → https://127.0.0.1:<port> trusting the test CA, without a credential. */
static void
tls_route(struct nonoproxy_route_config *r, const char *prefix, char *up, size_t cap, uint16_t port)
{
    (void)snprintf(up, cap, "https://127.0.0.1:%u", (unsigned)port);
    nonoproxy_route_config_init(r, prefix, up);
    r->tls_ca = pki.ca;
}

/* ask() for a route without credential: the session token as the bearer. */
static void
mtls_get(const struct nonoproxy_proxy *p, const char *target, struct answer *a, int fd)
{
    ask_on(fd, p, "GET", target, true, a);
}

static void
client_certificate_per_route(void **state)
{
    static struct tls_srv s;
    struct nonoproxy_route_config r[2];
    struct nonoproxy_proxy *p;
    struct answer a;
    char up[2][64];
    int fd;

    (void)state;
    tls_srv_start(&s);
    tls_route(&r[0], "mtls", up[0], sizeof(up[0]), s.port);
    r[0].tls_client_cert = pki.cli;
    r[0].tls_client_key = pki.cli_key;
    tls_route(&r[1], "plain", up[1], sizeof(up[1]), s.port); /* same upstream, no certificate */
    p = start_routes(r, 2);

    /* With the certificate: 200, and the upstream saw the client's name. Twice on one client
     * connection: the second goes on the pooled upstream connection. */
    fd = tcp_connect(nonoproxy_port(p));
    assert_true(fd >= 0);
    mtls_get(p, "/mtls/x", &a, fd);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.body, "CN=np-route-client");
    mtls_get(p, "/mtls/y", &a, fd);
    assert_int_equal(a.status, 200);
    close(fd);
    /* The other route to the same upstream never uses that connection or its session. */
    fd = tcp_connect(nonoproxy_port(p));
    mtls_get(p, "/plain/x", &a, fd);
    assert_int_equal(a.status, 502);
    close(fd);
    fd = tcp_connect(nonoproxy_port(p));
    mtls_get(p, "/mtls/z", &a, fd);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.body, "CN=np-route-client");
    close(fd);
    assert_true(atomic_load(&s.handshakes_failed) >= 1);
    nonoproxy_free(p);
    tls_srv_stop(&s);
}

/* Bad client certificates and keys stop the start, naming the field and the file, never a
 * byte of the key. */
static void
client_certificate_start_errors(void **state)
{
    static char fifo[160]; /* a FIFO with no writer: refused at once, never waited on */
    struct {
        const char *cert;
        const char *key;
        const char *expect;
    } rows[] = {
        {pki.cli, pki.other_key, "tls_client_key: '"},
        {pki.cli, pki.garbage, "tls_client_key: '"},
        {pki.cli, "/nonexistent/key.pem", "tls_client_key: cannot read '/nonexistent/key.pem'"},
        {pki.cli, pki.dir, "tls_client_key: cannot read '"},
        {pki.garbage, pki.cli_key, "tls_client_cert: '"},
        {pki.cli_key, pki.cli_key, "tls_client_cert: '"},
        {pki.cli, fifo, "tls_client_key: cannot read '"},
        {fifo, pki.cli_key, "tls_client_cert: cannot read '"},
    };
    char up[64];
    char key_text[4096];
    size_t i;
    FILE *f;

    (void)state;
    (void)snprintf(fifo, sizeof(fifo), "%s/key.fifo", pki.dir);
    (void)unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    f = fopen(pki.other_key, "re");
    assert_non_null(f);
    key_text[fread(key_text, 1, sizeof(key_text) - 1, f)] = '\0';
    fclose(f);
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct nonoproxy_route_config r;
        struct nonoproxy_diag diag;
        char want[256];
        const char *line;

        tls_route(&r, "mtls", up, sizeof(up), 443);
        r.tls_client_cert = rows[i].cert;
        r.tls_client_key = rows[i].key;
        start_error(&r, &diag);
        (void)snprintf(want, sizeof(want), "routes[0] 'mtls': %s", rows[i].expect);
        if (strncmp(diag.message, want, strlen(want)) != 0) {
            fail_msg("row %zu: diag '%s', want '%s...'", i, diag.message, want);
        }
        /* No line of the key's base64 in the message. */
        for (line = strchr(key_text, '\n'); line != NULL && line[1] != '-';
             line = strchr(line + 1, '\n')) {
            char chunk[17];

            memcpy(chunk, line + 1, 16);
            chunk[16] = '\0';
            assert_null(strstr(diag.message, chunk));
        }
        assert_null(strstr(diag.message, "PRIVATE KEY-----"));
    }
    /* The trust roots too: a FIFO as tls_ca or ca_file is refused, not waited on. */
    {
        struct nonoproxy_route_config r;
        struct nonoproxy_config cfg;
        struct nonoproxy_proxy *p = NULL;
        struct nonoproxy_diag diag;

        tls_route(&r, "mtls", up, sizeof(up), 443);
        r.tls_ca = fifo;
        start_error(&r, &diag);
        assert_non_null(strstr(diag.message, "tls_ca: cannot read '"));
        assert_non_null(strstr(diag.message, "not a regular file"));
        nonoproxy_config_init(&cfg);
        cfg.ca_file = fifo;
        memset(&diag, 0, sizeof(diag));
        assert_int_not_equal(nonoproxy_start(&cfg, &p, &diag), NONOPROXY_OK);
        assert_null(p);
        assert_non_null(strstr(diag.message, "ca_file: cannot read '"));
        assert_non_null(strstr(diag.message, "not a regular file"));
        nonoproxy_config_free(&cfg);
    }
    (void)unlink(fifo);
    /* The mismatch names both files. */
    {
        struct nonoproxy_route_config r;
        struct nonoproxy_diag diag;

        tls_route(&r, "mtls", up, sizeof(up), 443);
        r.tls_client_cert = pki.cli;
        r.tls_client_key = pki.other_key;
        start_error(&r, &diag);
        assert_non_null(strstr(diag.message, "does not match tls_client_cert"));
        assert_non_null(strstr(diag.message, pki.other_key));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(start_errors_name_the_field),
        cmocka_unit_test(rules_come_after_the_phantom),
        cmocka_unit_test(dodges_never_reach_the_upstream),
        cmocka_unit_test(rate_limit_answers_429_with_retry_after),
        cmocka_unit_test(rate_limit_waits_within_the_budget),
        cmocka_unit_test(leaving_client_does_not_wait),
        cmocka_unit_test(other_spellings_of_the_upstream_are_refused),
        cmocka_unit_test(sixty_four_clients_on_one_route),
        cmocka_unit_test(shutdown_wakes_sleepers),
        cmocka_unit_test(client_certificate_per_route),
        cmocka_unit_test(client_certificate_start_errors),
    };
    int fds = count_fds();
    int rc = cmocka_run_group_tests(tests, pki_setup, pki_teardown);

    if (rc == 0 && count_fds() != fds) {
        fprintf(stderr, "descriptors: %d at start, %d at the end\n", fds, count_fds());
        return 1;
    }
    return rc;
}
