/* In-process integration tests of the host policy of issue 14 (SPEC §13), through real sockets:
 * denied_hosts (names never resolved, ranges on resolved addresses), address ranges in the
 * allowlist (every address inside), strict_allowlist, the decide callback (once, session with
 * its diagnostic and audit reason, deny, deadline, coalescing, never for denied hosts, before
 * DNS, shutdown while pending), the external proxy's paths and the start-time checks.
 *
 * The resolver maps every name to 127.0.0.1 except split.test (127.0.0.1 and 192.0.2.1),
 * sneaky.test (127.0.0.2) and gone.test (no answer), and records each name it is asked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
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

#include "harness.h"

/* ---- fixtures -------------------------------------------------------------------------- */

static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static char seen[64][64]; /* names the resolver was asked, under seen_mu */
static int n_seen;

static void
seen_reset(void)
{
    pthread_mutex_lock(&seen_mu);
    n_seen = 0;
    pthread_mutex_unlock(&seen_mu);
}

static bool
was_resolved(const char *name)
{
    bool found = false;
    int i;

    pthread_mutex_lock(&seen_mu);
    for (i = 0; i < n_seen; i++) {
        found = found || strcmp(seen[i], name) == 0;
    }
    pthread_mutex_unlock(&seen_mu);
    return found;
}

static void
put_v4(struct nonoproxy_addrs *out, const char *text)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->addrs[out->count];

    memset(sin, 0, sizeof(out->addrs[0]));
    sin->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, text, &sin->sin_addr), 1);
    out->count++;
}

static int
test_resolve(void *userdata, const char *host, uint16_t port, struct nonoproxy_addrs *out)
{
    (void)userdata;
    (void)port;
    pthread_mutex_lock(&seen_mu);
    if (n_seen < 64) {
        snprintf(seen[n_seen++], sizeof(seen[0]), "%s", host);
    }
    pthread_mutex_unlock(&seen_mu);
    out->count = 0;
    if (strcmp(host, "gone.test") == 0) {
        return -1;
    }
    if (strcmp(host, "sneaky.test") == 0) {
        put_v4(out, "127.0.0.2");
        return 0;
    }
    put_v4(out, "127.0.0.1");
    if (strcmp(host, "split.test") == 0) {
        put_v4(out, "192.0.2.1");
    }
    return 0;
}

struct opts {
    const char *allow[4];
    const char *deny[6];
    const char *bypass[2];
    bool strict;
    nonoproxy_decide_fn *decide;
    void *decide_ud;
    int decide_timeout_ms; /* -1: the default */
    const char *external;
};

/* Fill cfg from o (the resolver is the test's). */
static void
config_from(struct nonoproxy_config *cfg, const struct opts *o)
{
    size_t i;

    nonoproxy_config_init(cfg);
    cfg->resolver = test_resolve;
    cfg->connect_timeout_ms = 2000;
    cfg->strict_allowlist = o->strict;
    if (o->decide_timeout_ms >= 0) {
        cfg->decide_timeout_ms = (uint32_t)o->decide_timeout_ms;
    }
    nonoproxy_config_set_decide(cfg, o->decide, o->decide_ud);
    for (i = 0; i < 4 && o->allow[i] != NULL; i++) {
        assert_int_equal(nonoproxy_config_allow_host(cfg, o->allow[i], NULL), NONOPROXY_OK);
    }
    for (i = 0; i < 6 && o->deny[i] != NULL; i++) {
        assert_int_equal(nonoproxy_config_deny_host(cfg, o->deny[i], NULL), NONOPROXY_OK);
    }
    for (i = 0; i < 2 && o->bypass[i] != NULL; i++) {
        assert_int_equal(nonoproxy_config_add_bypass_host(cfg, o->bypass[i], NULL), NONOPROXY_OK);
    }
    if (o->external != NULL) {
        assert_int_equal(nonoproxy_config_set_external_proxy(cfg, o->external, NULL), NONOPROXY_OK);
    }
}

static struct nonoproxy_proxy *
start(const struct opts *o)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;

    config_from(&cfg, o);
    memset(&diag, 0, sizeof(diag));
    if (nonoproxy_start(&cfg, &p, &diag) != NONOPROXY_OK) {
        fail_msg("nonoproxy_start: %s", diag.message);
    }
    nonoproxy_config_free(&cfg);
    seen_reset();
    return p;
}

/* nonoproxy_start must fail with a message holding want. */
static void
start_fails(const struct opts *o, const char *want)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;

    config_from(&cfg, o);
    memset(&diag, 0, sizeof(diag));
    assert_int_equal(nonoproxy_start(&cfg, &p, &diag), NONOPROXY_ERR_INVALID_ARG);
    assert_null(p);
    if (strstr(diag.message, want) == NULL) {
        fail_msg("start error '%s', want '%s'", diag.message, want);
    }
    nonoproxy_config_free(&cfg);
}

static struct nonoproxy_audit_event events[256];

/* The last open/deny event of the ring whose target is target (drains the ring). */
static const struct nonoproxy_audit_event *
last_event(struct nonoproxy_proxy *p, const char *target)
{
    size_t n = nonoproxy_drain_audit_events(p, events, 256, NULL);
    const struct nonoproxy_audit_event *found = NULL;
    size_t i;

    for (i = 0; i < n; i++) {
        if (strcmp(events[i].target, target) == 0 && events[i].kind != NONOPROXY_EVENT_CLOSE) {
            found = &events[i];
        }
    }
    if (found == NULL) {
        fail_msg("no audit event for %s among %zu", target, n);
    }
    return found;
}

/* CONNECT host:port; the status, and 1 byte echoed when it is 200. */
static int
connect_status(struct nonoproxy_proxy *p, const char *host, uint16_t port)
{
    int st = -1;
    int fd = open_tunnel(p, host, port, &st);

    if (fd >= 0) {
        char c = 0;

        assert_int_equal(send_all(fd, "x", 1), 0);
        assert_int_equal(recv(fd, &c, 1, 0), 1);
        assert_int_equal(c, 'x');
        close(fd);
    }
    return st;
}

/* A request through the proxy on fd; the status (the body "ok" checked on 200). */
static int
forward_on(struct nonoproxy_proxy *p, int fd, const char *host, uint16_t port)
{
    char req[512];
    char head[2048];
    int st;

    snprintf(req, sizeof(req),
             "GET http://%s:%u/x HTTP/1.1\r\nHost: %s:%u\r\nProxy-Authorization: Bearer %s\r\n\r\n",
             host, (unsigned)port, host, (unsigned)port, proxy_token(p));
    assert_int_equal(send_str(fd, req), 0);
    st = read_head(fd, head, sizeof(head));
    if (st == 200) {
        char body[2];
        assert_int_equal(recv(fd, body, 2, MSG_WAITALL), 2);
        assert_memory_equal(body, "ok", 2);
    } else {
        char body[512];
        (void)recv(fd, body, sizeof(body), 0); /* the reason; the proxy closes */
    }
    return st;
}

static int
forward_status(struct nonoproxy_proxy *p, const char *host, uint16_t port)
{
    int fd = tcp_connect(nonoproxy_port(p));
    int st;

    assert_true(fd >= 0);
    st = forward_on(p, fd, host, port);
    close(fd);
    return st;
}

/* A keep-alive HTTP origin on 127.0.0.1:0: one thread, one connection at a time, answering
 * every request head with 200 "ok". */
struct origin {
    int lfd;
    uint16_t port;
    atomic_int accepted;
    pthread_t t;
};

static void *
origin_main(void *arg)
{
    struct origin *o = arg;

    for (;;) {
        char buf[4096];
        size_t len = 0;
        int fd = accept(o->lfd, NULL, NULL);

        if (fd < 0) {
            return NULL;
        }
        atomic_fetch_add(&o->accepted, 1);
        for (;;) {
            ssize_t r = recv(fd, buf + len, sizeof(buf) - len - 1, 0);
            char *end;

            if (r <= 0) {
                break;
            }
            len += (size_t)r;
            buf[len] = '\0';
            end = strstr(buf, "\r\n\r\n");
            if (end != NULL) {
                static const char ans[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                size_t used = (size_t)(end + 4 - buf);

                (void)send(fd, ans, sizeof(ans) - 1, MSG_NOSIGNAL);
                memmove(buf, buf + used, len - used);
                len -= used;
            } else if (len == sizeof(buf) - 1) {
                break;
            }
        }
        close(fd);
    }
}

static void
origin_start(struct origin *o)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);

    memset(o, 0, sizeof(*o));
    atomic_init(&o->accepted, 0);
    o->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(o->lfd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(o->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(o->lfd, 16), 0);
    assert_int_equal(getsockname(o->lfd, (struct sockaddr *)&sin, &sl), 0);
    o->port = ntohs(sin.sin_port);
    assert_int_equal(pthread_create(&o->t, NULL, origin_main, o), 0);
}

static void
origin_stop(struct origin *o)
{
    shutdown(o->lfd, SHUT_RDWR); /* wakes accept */
    pthread_join(o->t, NULL);
    close(o->lfd);
}

/* ---- denied_hosts ------------------------------------------------------------------------ */

static void
deny_list_on_connect_and_forward(void **state)
{
    struct opts o = {.deny = {"evil.test", "*.ads.test", "127.0.0.2/32", "ok.test:1"},
                     .decide_timeout_ms = -1};
    struct echo_server *e = echo_start();
    struct origin org;
    struct nonoproxy_proxy *p;
    const struct nonoproxy_audit_event *ev;

    (void)state;
    origin_start(&org);
    p = start(&o);
    assert_int_equal(connect_status(p, "evil.test", echo_port(e)), 403);
    ev = last_event(p, "evil.test");
    assert_int_equal(ev->decision, NONOPROXY_DECISION_DENY);
    assert_int_equal(ev->denial_category, NONOPROXY_DENIAL_HOST_DENIED);
    assert_string_equal(ev->reason, "host evil.test denied by denied_hosts");
    assert_int_equal(forward_status(p, "x.ads.test", org.port), 403);
    assert_string_equal(last_event(p, "x.ads.test")->reason,
                        "host x.ads.test denied by denied_hosts");
    assert_false(was_resolved("evil.test"));
    assert_false(was_resolved("x.ads.test"));
    /* A range denies on the resolved address. */
    assert_int_equal(connect_status(p, "sneaky.test", echo_port(e)), 403);
    assert_non_null(strstr(last_event(p, "sneaky.test")->reason, "127.0.0.2/32"));
    assert_int_equal(forward_status(p, "sneaky.test", org.port), 403);
    assert_int_equal(connect_status(p, "127.0.0.2", echo_port(e)), 403);
    /* Everything else still passes. */
    assert_int_equal(connect_status(p, "ok.test", echo_port(e)), 200);
    assert_int_equal(forward_status(p, "ok.test", org.port), 200);
    assert_int_equal(atomic_load(&org.accepted), 1); /* nothing reached it for denied hosts */
    nonoproxy_free(p);
    origin_stop(&org);
    echo_stop(e);
}

/* A route's upstream on the deny list: refused at start (name or literal in a range), and at
 * run time when its name resolves into a denied range. */
static void
deny_list_on_routes(void **state)
{
    struct opts o = {.deny = {"localhost"}, .decide_timeout_ms = -1};
    struct nonoproxy_config cfg;
    struct nonoproxy_route_config r;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;
    struct origin org;
    char up[64];
    char req[256];
    char head[1024];
    int fd;

    (void)state;
    origin_start(&org);
    snprintf(up, sizeof(up), "http://localhost:%u", (unsigned)org.port);
    config_from(&cfg, &o);
    nonoproxy_route_config_init(&r, "svc", up);
    assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    assert_int_equal(nonoproxy_start(&cfg, &p, &diag), NONOPROXY_ERR_INVALID_ARG);
    assert_non_null(
        strstr(diag.message, "routes[0] 'svc': upstream: host is denied by denied_hosts"));
    nonoproxy_config_free(&cfg);

    o.deny[0] = "127.0.0.0/8";
    snprintf(up, sizeof(up), "http://127.0.0.1:%u", (unsigned)org.port);
    config_from(&cfg, &o);
    nonoproxy_route_config_init(&r, "svc", up);
    assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    assert_int_equal(nonoproxy_start(&cfg, &p, &diag), NONOPROXY_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.message, "routes[0] 'svc': upstream"));
    assert_non_null(strstr(diag.message, "127.0.0.0/8"));
    nonoproxy_config_free(&cfg);

    /* A name is not refused at start by a range; its resolved address is, per request. */
    snprintf(up, sizeof(up), "http://localhost:%u", (unsigned)org.port);
    config_from(&cfg, &o);
    nonoproxy_route_config_init(&r, "svc", up);
    assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    assert_int_equal(nonoproxy_start(&cfg, &p, &diag), NONOPROXY_OK);
    nonoproxy_config_free(&cfg);
    fd = tcp_connect(nonoproxy_port(p));
    snprintf(req, sizeof(req), "GET /svc/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
             proxy_token(p));
    assert_int_equal(send_str(fd, req), 0);
    assert_int_equal(read_head(fd, head, sizeof(head)), 403);
    close(fd);
    assert_non_null(strstr(last_event(p, "localhost")->reason, "denied by denied_hosts"));
    assert_int_equal(atomic_load(&org.accepted), 0);
    nonoproxy_free(p);
    origin_stop(&org);
}

/* ---- the allowlist's ranges, strict mode, start errors ---------------------------------- */

static void
allow_ranges(void **state)
{
    struct opts o = {.allow = {"127.0.0.0/8", "fd00::/8"}, .decide_timeout_ms = -1};
    struct echo_server *e = echo_start();
    struct origin org;
    struct nonoproxy_proxy *p;

    (void)state;
    origin_start(&org);
    p = start(&o);
    assert_int_equal(connect_status(p, "lab.test", echo_port(e)), 200);
    assert_int_equal(connect_status(p, "127.0.0.1", echo_port(e)), 200);
    assert_int_equal(forward_status(p, "lab.test", org.port), 200);
    /* One address outside every range: denied, nothing connected. */
    assert_int_equal(connect_status(p, "split.test", echo_port(e)), 403);
    assert_string_equal(last_event(p, "split.test")->reason,
                        "host split.test is not in the allowlist (address 192.0.2.1 is outside "
                        "its ranges)");
    assert_int_equal(forward_status(p, "split.test", org.port), 403);
    assert_int_equal(connect_status(p, "gone.test", echo_port(e)), 403);
    nonoproxy_free(p);
    origin_stop(&org);
    echo_stop(e);
}

static void
strict_empty_allowlist(void **state)
{
    struct opts o = {.strict = true, .decide_timeout_ms = -1};
    struct echo_server *e = echo_start();
    struct nonoproxy_proxy *p;

    (void)state;
    p = start(&o);
    assert_int_equal(connect_status(p, "127.0.0.1", echo_port(e)), 403);
    assert_string_equal(last_event(p, "127.0.0.1")->reason,
                        "host 127.0.0.1 denied: the allowlist is empty and strict_allowlist is "
                        "set");
    assert_int_equal(forward_status(p, "ok.test", echo_port(e)), 403);
    assert_false(was_resolved("ok.test"));
    nonoproxy_free(p);
    echo_stop(e);
}

static void
start_errors(void **state)
{
    struct opts o = {.allow = {"169.254.0.0/16"}, .decide_timeout_ms = -1};
    struct nonoproxy_config cfg;
    struct nonoproxy_diag diag;

    (void)state;
    start_fails(&o, "allowed_hosts[0]: '169.254.0.0/16' overlaps the hard deny list");
    o.allow[0] = "example.com";
    o.allow[1] = "0.0.0.0/0";
    start_fails(&o, "allowed_hosts[1]: '0.0.0.0/0' overlaps the hard deny list");
    o.allow[1] = "::/0";
    start_fails(&o, "'::/0' overlaps the hard deny list");
    o.allow[1] = "::ffff:0:0/96";
    start_fails(&o, "::ffff:169.254.0.0/112");

    nonoproxy_config_init(&cfg);
    memset(&diag, 0, sizeof(diag));
    assert_int_equal(nonoproxy_config_allow_host(&cfg, "10.1.2.3/8", &diag),
                     NONOPROXY_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.message, "allowed_hosts: invalid entry '10.1.2.3/8': host bits"));
    assert_int_equal(nonoproxy_config_deny_host(&cfg, "10.0.0.0/33", &diag),
                     NONOPROXY_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.message, "denied_hosts: invalid entry '10.0.0.0/33'"));
    assert_int_equal(nonoproxy_config_add_bypass_host(&cfg, "10.0.0.0/8", &diag),
                     NONOPROXY_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.message, "bypass_hosts: invalid entry '10.0.0.0/8': address "
                                         "ranges are not allowed here"));
    nonoproxy_config_free(&cfg);
}

/* ---- the external proxy's paths ---------------------------------------------------------- */

static void
deny_list_with_external_proxy(void **state)
{
    char ext[32];
    struct opts o = {.deny = {"evil.test", "x.byp.test", "127.0.0.2/32"},
                     .bypass = {"*.byp.test"},
                     .decide_timeout_ms = -1,
                     .external = ext};
    struct echo_server *e = echo_start();
    struct nonoproxy_proxy *p;

    (void)state;
    snprintf(ext, sizeof(ext), "127.0.0.1:%u", (unsigned)closed_port());
    p = start(&o);
    /* Denied, not tried through the enterprise proxy (which would answer 502). */
    assert_int_equal(connect_status(p, "evil.test", 443), 403);
    assert_int_equal(connect_status(p, "x.byp.test", echo_port(e)), 403);
    assert_int_equal(forward_status(p, "evil.test", 80), 403);
    assert_false(was_resolved("evil.test"));
    /* The local lookup of a non-bypassed name meets the denied range. */
    assert_int_equal(connect_status(p, "sneaky.test", 443), 403);
    /* Bypassed and allowed: direct; not bypassed: through the (dead) enterprise proxy. */
    assert_int_equal(connect_status(p, "y.byp.test", echo_port(e)), 200);
    assert_int_equal(connect_status(p, "ok.test", 443), 502);
    nonoproxy_free(p);
    echo_stop(e);
}

/* ---- the decide callback ---------------------------------------------------------------- */

struct decider {
    enum nonoproxy_decide_answer answer;
    atomic_int calls;
    atomic_bool dns_before; /* the host was resolved before the callback ran */
    atomic_int mode;        /* the last query's mode */
    atomic_uint timeout_ms; /* the last query's timeout */
    bool late;              /* answer after q->timeout_ms */
    bool gate;              /* block until released */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool released; /* under mu */
    int inside;    /* under mu */
};

static enum nonoproxy_decide_answer
decide_cb(void *userdata, const struct nonoproxy_decide_query *q)
{
    struct decider *d = userdata;

    atomic_fetch_add(&d->calls, 1);
    if (was_resolved(q->host)) {
        atomic_store(&d->dns_before, true);
    }
    atomic_store(&d->mode, (int)q->mode);
    atomic_store(&d->timeout_ms, q->timeout_ms);
    pthread_mutex_lock(&d->mu);
    d->inside++;
    pthread_cond_broadcast(&d->cv);
    while (d->gate && !d->released) {
        pthread_cond_wait(&d->cv, &d->mu);
    }
    d->inside--;
    pthread_mutex_unlock(&d->mu);
    if (d->late) {
        struct timespec now;
        struct timespec until;

        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(q->timeout_ms / 1000 + 1); /* well past the deadline */
        do {
            struct timespec ts = {0, 5000000};
            nanosleep(&ts, NULL);
            clock_gettime(CLOCK_MONOTONIC, &now);
        } while (now.tv_sec < until.tv_sec ||
                 (now.tv_sec == until.tv_sec && now.tv_nsec < until.tv_nsec));
    }
    return d->answer;
}

static void
decider_init(struct decider *d, enum nonoproxy_decide_answer answer)
{
    memset(d, 0, sizeof(*d));
    d->answer = answer;
    atomic_init(&d->calls, 0);
    atomic_init(&d->dns_before, false);
    atomic_init(&d->mode, -1);
    atomic_init(&d->timeout_ms, 0);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
}

static void
decider_release(struct decider *d)
{
    pthread_mutex_lock(&d->mu);
    d->released = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static void
decider_wait_inside(struct decider *d)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&d->mu);
    while (d->inside == 0) {
        assert_int_equal(pthread_cond_timedwait(&d->cv, &d->mu, &ts), 0);
    }
    pthread_mutex_unlock(&d->mu);
}

static void
decider_destroy(struct decider *d)
{
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
}

static size_t
count_grants(struct nonoproxy_proxy *p, const char *message)
{
    const struct nonoproxy_diagnostic *list;
    size_t n;
    size_t i;
    size_t found = 0;

    assert_int_equal(nonoproxy_diagnostics(p, &list, &n), NONOPROXY_OK);
    for (i = 0; i < n; i++) {
        if (strcmp(list[i].code, "host_granted") == 0) {
            assert_string_equal(list[i].route, "");
            found += message == NULL || strcmp(list[i].message, message) == 0;
        }
    }
    return found;
}

static void
decide_once(void **state)
{
    struct decider d;
    struct opts o = {.allow = {"allowed.test"}, .deny = {"evil.test"}, .decide_timeout_ms = -1};
    struct echo_server *e = echo_start();
    struct origin org;
    struct nonoproxy_proxy *p;
    int fd;

    (void)state;
    decider_init(&d, NONOPROXY_DECIDE_ALLOW_ONCE);
    o.decide = decide_cb;
    o.decide_ud = &d;
    origin_start(&org);
    p = start(&o);
    assert_int_equal(connect_status(p, "new.test", echo_port(e)), 200);
    assert_string_equal(last_event(p, "new.test")->reason, "allowed once by the decide callback");
    assert_int_equal(atomic_load(&d.timeout_ms), 30000);
    assert_int_equal(atomic_load(&d.mode), NONOPROXY_MODE_CONNECT);
    seen_reset(); /* so that dns_before means "resolved for this request" */
    assert_int_equal(connect_status(p, "new.test", echo_port(e)), 200);
    assert_int_equal(atomic_load(&d.calls), 2);
    /* Forward: two requests on one client connection are asked about twice. */
    fd = tcp_connect(nonoproxy_port(p));
    seen_reset();
    assert_int_equal(forward_on(p, fd, "new.test", org.port), 200);
    seen_reset();
    assert_int_equal(forward_on(p, fd, "new.test", org.port), 200);
    close(fd);
    assert_int_equal(atomic_load(&d.calls), 4);
    assert_int_equal(atomic_load(&d.mode), NONOPROXY_MODE_FORWARD);
    assert_int_equal(atomic_load(&org.accepted), 2); /* not reused without asking */
    /* Never asked about allowed, deny-listed or hard-denied hosts. */
    assert_int_equal(connect_status(p, "allowed.test", echo_port(e)), 200);
    assert_int_equal(connect_status(p, "evil.test", echo_port(e)), 403);
    assert_int_equal(connect_status(p, "metadata.google.internal", 80), 403);
    assert_int_equal(connect_status(p, "169.254.169.254", 80), 403);
    assert_int_equal(atomic_load(&d.calls), 4);
    assert_true(atomic_load(&d.dns_before)); /* asked once the addresses were checked */
    assert_int_equal(count_grants(p, NULL), 0);
    nonoproxy_free(p);
    origin_stop(&org);
    echo_stop(e);
    decider_destroy(&d);
}

static void
decide_session(void **state)
{
    struct decider d;
    struct opts o = {.decide_timeout_ms = 0};
    struct echo_server *e = echo_start();
    struct origin org;
    struct nonoproxy_proxy *p;
    char msg[128];
    int fd;

    (void)state;
    decider_init(&d, NONOPROXY_DECIDE_ALLOW_SESSION);
    o.decide = decide_cb;
    o.decide_ud = &d;
    origin_start(&org);
    p = start(&o);
    /* With a callback, an empty allowlist no longer allows everything: it asks. */
    assert_int_equal(connect_status(p, "kept.test", echo_port(e)), 200);
    assert_int_equal(atomic_load(&d.timeout_ms), 0);
    assert_string_equal(last_event(p, "kept.test")->reason,
                        "granted for the session by the decide callback");
    d.answer = NONOPROXY_DECIDE_DENY; /* a later ask would now be refused */
    assert_int_equal(connect_status(p, "kept.test", echo_port(e)), 200);
    assert_string_equal(last_event(p, "kept.test")->reason,
                        "granted for the session by the decide callback");
    assert_int_equal(atomic_load(&d.calls), 1);
    snprintf(msg, sizeof(msg), "host kept.test:%u granted for the session by the decide callback",
             (unsigned)echo_port(e));
    assert_int_equal(count_grants(p, msg), 1);
    /* Another port is another destination; this one is denied. */
    assert_int_equal(connect_status(p, "kept.test", org.port), 403);
    assert_int_equal(last_event(p, "kept.test")->denial_category, NONOPROXY_DENIAL_HOST_DENIED);
    /* Forward: granted once, then a kept-alive request carries the grant in its reason. */
    d.answer = NONOPROXY_DECIDE_ALLOW_SESSION;
    fd = tcp_connect(nonoproxy_port(p));
    assert_int_equal(forward_on(p, fd, "web.test", org.port), 200);
    assert_int_equal(forward_on(p, fd, "web.test", org.port), 200);
    close(fd);
    assert_string_equal(last_event(p, "web.test")->reason,
                        "granted for the session by the decide callback");
    assert_int_equal(atomic_load(&d.calls), 3);
    assert_int_equal(count_grants(p, NULL), 2);
    nonoproxy_free(p);
    origin_stop(&org);
    echo_stop(e);
    decider_destroy(&d);
}

static void
decide_deny_and_deadline(void **state)
{
    struct decider d;
    struct opts o = {.decide_timeout_ms = 100, .external = NULL};
    struct echo_server *e = echo_start();
    struct nonoproxy_proxy *p;
    const struct nonoproxy_audit_event *ev;

    (void)state;
    decider_init(&d, NONOPROXY_DECIDE_DENY);
    o.decide = decide_cb;
    o.decide_ud = &d;
    p = start(&o);
    assert_int_equal(connect_status(p, "no.test", echo_port(e)), 403);
    ev = last_event(p, "no.test");
    assert_int_equal(ev->denial_category, NONOPROXY_DENIAL_HOST_DENIED);
    assert_non_null(strstr(ev->reason, "denied by the decide callback"));
    assert_true(was_resolved("no.test")); /* its addresses are checked before asking */
    /* An answer after the deadline is a deny, and is not remembered. */
    d.answer = NONOPROXY_DECIDE_ALLOW_SESSION;
    d.late = true;
    assert_int_equal(connect_status(p, "slow.test", echo_port(e)), 403);
    assert_non_null(strstr(last_event(p, "slow.test")->reason, "no answer in time"));
    assert_int_equal(atomic_load(&d.timeout_ms), 100);
    assert_int_equal(count_grants(p, NULL), 0);
    d.late = false;
    assert_int_equal(connect_status(p, "slow.test", echo_port(e)), 200);
    assert_int_equal(atomic_load(&d.calls), 3);
    nonoproxy_free(p);
    echo_stop(e);
    decider_destroy(&d);
}

#define N_CLIENTS 8

struct client {
    struct nonoproxy_proxy *p;
    uint16_t port;
    int status;
    pthread_t t;
};

static void *
client_main(void *arg)
{
    struct client *c = arg;

    c->status = connect_status(c->p, "shared.test", c->port);
    return NULL;
}

/* N concurrent clients for one host:port through real sockets: every client gets the one
 * session answer, and the callback runs once. Which of them waited for the pending ask and
 * which found the grant afterwards is not observable from here: the coalescing itself (all
 * waiting, ALLOW_ONCE, one call) is pinned by test_decide.c's unit test. */
static void
decide_concurrent_clients_share_one_answer(void **state)
{
    struct decider d;
    struct opts o = {.decide_timeout_ms = -1};
    struct echo_server *e = echo_start();
    struct client c[N_CLIENTS];
    struct nonoproxy_proxy *p;
    int i;

    (void)state;
    decider_init(&d, NONOPROXY_DECIDE_ALLOW_SESSION);
    d.gate = true;
    o.decide = decide_cb;
    o.decide_ud = &d;
    p = start(&o);
    for (i = 0; i < N_CLIENTS; i++) {
        c[i].p = p;
        c[i].port = echo_port(e);
        assert_int_equal(pthread_create(&c[i].t, NULL, client_main, &c[i]), 0);
    }
    decider_wait_inside(&d);
    decider_release(&d);
    for (i = 0; i < N_CLIENTS; i++) {
        pthread_join(c[i].t, NULL);
        assert_int_equal(c[i].status, 200);
    }
    assert_int_equal(atomic_load(&d.calls), 1);
    nonoproxy_free(p);
    echo_stop(e);
    decider_destroy(&d);
}

static void *
shutdown_main(void *arg)
{
    nonoproxy_shutdown(arg);
    return NULL;
}

/* Shutdown while a callback is pending: the waiting clients are answered at once; the
 * callback's late answer is a deny; shutdown returns as soon as the callback does. */
static void
decide_shutdown_while_pending(void **state)
{
    struct decider d;
    struct opts o = {.decide_timeout_ms = 0};
    struct echo_server *e = echo_start();
    struct nonoproxy_proxy *p;
    struct pollfd pf[4];
    pthread_t t;
    time_t t0;
    char req[256];
    int answered = 0;
    int i;

    (void)state;
    decider_init(&d, NONOPROXY_DECIDE_ALLOW_SESSION);
    d.gate = true;
    o.decide = decide_cb;
    o.decide_ud = &d;
    p = start(&o);
    snprintf(
        req, sizeof(req),
        "CONNECT pending.test:%u HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Bearer %s\r\n\r\n",
        (unsigned)echo_port(e), proxy_token(p));
    for (i = 0; i < 4; i++) {
        pf[i].fd = tcp_connect(nonoproxy_port(p));
        pf[i].events = POLLIN;
        assert_int_equal(send_str(pf[i].fd, req), 0);
    }
    decider_wait_inside(&d);
    assert_int_equal(pthread_create(&t, NULL, shutdown_main, p), 0);
    /* Three clients wait for the first one's answer: each is answered (or closed) while the
     * callback still blocks. */
    while (answered < 3) {
        int n = poll(pf, 4, 10000);

        assert_true(n > 0);
        for (i = 0; i < 4; i++) {
            if (pf[i].fd >= 0 && pf[i].revents != 0) {
                close(pf[i].fd);
                pf[i].fd = -1;
                answered++;
            }
        }
    }
    t0 = time(NULL);
    decider_release(&d);
    pthread_join(t, NULL);
    assert_true(time(NULL) - t0 <= 2); /* shutdown returns as soon as the callback does */
    for (i = 0; i < 4; i++) {
        if (pf[i].fd >= 0) {
            char head[512];
            assert_true(read_head(pf[i].fd, head, sizeof(head)) != 200);
            close(pf[i].fd);
        }
    }
    assert_int_equal(atomic_load(&d.calls), 1);
    assert_int_equal(count_grants(p, NULL), 0);
    nonoproxy_free(p);
    echo_stop(e);
    decider_destroy(&d);
}

/* With an external proxy, the callback is told the request goes through it. */
static void
decide_external_mode(void **state)
{
    char ext[32];
    struct decider d;
    struct opts o = {.decide_timeout_ms = -1, .external = ext, .bypass = {"*.byp.test"}};
    struct nonoproxy_proxy *p;

    (void)state;
    snprintf(ext, sizeof(ext), "127.0.0.1:%u", (unsigned)closed_port());
    decider_init(&d, NONOPROXY_DECIDE_DENY);
    o.decide = decide_cb;
    o.decide_ud = &d;
    p = start(&o);
    assert_int_equal(connect_status(p, "far.test", 443), 403);
    assert_int_equal(atomic_load(&d.mode), NONOPROXY_MODE_EXTERNAL);
    assert_int_equal(connect_status(p, "x.byp.test", 443), 403);
    assert_int_equal(atomic_load(&d.mode), NONOPROXY_MODE_CONNECT);
    nonoproxy_free(p);
    decider_destroy(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(deny_list_on_connect_and_forward),
        cmocka_unit_test(deny_list_on_routes),
        cmocka_unit_test(allow_ranges),
        cmocka_unit_test(strict_empty_allowlist),
        cmocka_unit_test(start_errors),
        cmocka_unit_test(deny_list_with_external_proxy),
        cmocka_unit_test(decide_once),
        cmocka_unit_test(decide_session),
        cmocka_unit_test(decide_deny_and_deadline),
        cmocka_unit_test(decide_concurrent_clients_share_one_answer),
        cmocka_unit_test(decide_shutdown_while_pending),
        cmocka_unit_test(decide_external_mode),
    };
    int fds = count_fds();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);

    if (rc == 0 && count_fds() != fds) {
        fprintf(stderr, "descriptors: %d at start, %d at the end\n", fds, count_fds());
        return 1;
    }
    return rc;
}
