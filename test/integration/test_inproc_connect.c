/* In-process integration tests of the one connect mapping (SPEC §3, issue #10): on every
 * path — CONNECT, the forward proxy, a route's upstream and the enterprise proxy — an
 * upstream that refuses gives 502 upstream_connect_failed, and one whose connect timeout runs
 * out gives 504 upstream_timeout. (CONNECT used to answer 502 for both; the enterprise proxy
 * too.)
 *
 * A "black hole" that never completes a connect on loopback: a listener with backlog 0 that
 * never accepts, whose queue is filled first, so that the kernel drops every further SYN. */
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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define CONNECT_MS 400u
#define FILLERS    8

struct hole {
    int lfd;
    uint16_t port;
    int fill[FILLERS];
    int n_fill;
};

/* A listener that accepts nothing, with its queue full: connects to it time out. */
static void
hole_open(struct hole *h)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    memset(h, 0, sizeof(*h));
    h->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(h->lfd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(h->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(h->lfd, 0), 0);
    assert_int_equal(getsockname(h->lfd, (struct sockaddr *)&sin, &len), 0);
    h->port = ntohs(sin.sin_port);
    /* Fill the queue until a connect stays pending: from then on SYNs are dropped. */
    while (h->n_fill < FILLERS) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        struct pollfd pf;

        assert_true(fd >= 0);
        h->fill[h->n_fill++] = fd;
        if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
            continue;
        }
        assert_int_equal(errno, EINPROGRESS);
        pf.fd = fd;
        pf.events = POLLOUT;
        pf.revents = 0;
        if (poll(&pf, 1, 300) == 0) {
            return; /* pending: the queue is full */
        }
    }
    fail_msg("could not fill the listener's queue");
}

static void
hole_close(struct hole *h)
{
    int i;

    for (i = 0; i < h->n_fill; i++) {
        close(h->fill[i]);
    }
    close(h->lfd);
}

/* A proxy with the short connect timeout; with a route svc to 127.0.0.1:route_port and the
 * enterprise proxy at 127.0.0.1:ext_port (bypass nothing) when those are not 0. */
static struct nonoproxy_proxy *
start_proxy(uint16_t route_port, uint16_t ext_port)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_route_config r;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;
    char buf[64];

    nonoproxy_config_init(&cfg);
    cfg.connect_timeout_ms = CONNECT_MS;
    if (route_port != 0) {
        snprintf(buf, sizeof(buf), "http://127.0.0.1:%u", (unsigned)route_port);
        nonoproxy_route_config_init(&r, "svc", buf);
        assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    }
    if (ext_port != 0) {
        snprintf(buf, sizeof(buf), "127.0.0.1:%u", (unsigned)ext_port);
        assert_int_equal(nonoproxy_config_set_external_proxy(&cfg, buf, NULL), NONOPROXY_OK);
    }
    memset(&diag, 0, sizeof(diag));
    if (nonoproxy_start(&cfg, &p, &diag) != NONOPROXY_OK) {
        fail_msg("nonoproxy_start: %s", diag.message);
    }
    nonoproxy_config_free(&cfg);
    return p;
}

/* The denial category of the last decision event in the ring. */
static enum nonoproxy_denial_category
last_category(struct nonoproxy_proxy *p)
{
    static struct nonoproxy_audit_event ev[64];
    size_t n = nonoproxy_drain_audit_events(p, ev, 64, NULL);

    assert_true(n > 0);
    return ev[n - 1].denial_category;
}

/* Send req on a new connection; the answer's status. */
static int
ask(struct nonoproxy_proxy *p, const char *req)
{
    char head[2048];
    int fd = tcp_connect(nonoproxy_port(p));
    int st;

    assert_true(fd >= 0);
    assert_int_equal(send_str(fd, req), 0);
    st = read_head(fd, head, sizeof(head));
    close(fd);
    return st;
}

/* What one path answers for a refusing and for a silent upstream. */
struct path_case {
    const char *name;
    int (*run)(struct nonoproxy_proxy *p, uint16_t port);
    bool via_route;    /* the port is the route's upstream */
    bool via_external; /* the port is the enterprise proxy's */
};

static int
run_connect(struct nonoproxy_proxy *p, uint16_t port)
{
    int st = -1;

    assert_int_equal(open_tunnel(p, "127.0.0.1", port, &st), -1);
    return st;
}

static int
run_forward(struct nonoproxy_proxy *p, uint16_t port)
{
    char req[512];

    snprintf(req, sizeof(req),
             "GET http://127.0.0.1:%u/ HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Bearer %s\r\n"
             "\r\n",
             (unsigned)port, proxy_token(p));
    return ask(p, req);
}

static int
run_route(struct nonoproxy_proxy *p, uint16_t port)
{
    char req[512];

    (void)port;
    snprintf(req, sizeof(req), "GET /svc/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
             proxy_token(p));
    return ask(p, req);
}

static int
run_external(struct nonoproxy_proxy *p, uint16_t port)
{
    int st = -1;

    (void)port;
    /* Any allowed name: through the enterprise proxy, which is the one that fails. */
    assert_int_equal(open_tunnel(p, "example.com", 443, &st), -1);
    return st;
}

static const struct path_case cases[] = {
    {"connect", run_connect, false, false},
    {"forward", run_forward, false, false},
    {"route", run_route, true, false},
    {"external", run_external, false, true},
};

/* Every path: a refused connect ⇒ 502 upstream_connect_failed; a connect that times out ⇒
 * 504 upstream_timeout. */
static void
one_mapping_on_every_path(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct path_case *c = &cases[i];
        struct hole h;
        uint16_t refused = closed_port();
        struct nonoproxy_proxy *p;
        int st;

        p = start_proxy(c->via_route ? refused : 0, c->via_external ? refused : 0);
        st = c->run(p, refused);
        if (st != 502 || last_category(p) != NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED) {
            fail_msg("%s, refused: status %d", c->name, st);
        }
        nonoproxy_free(p);

        hole_open(&h);
        p = start_proxy(c->via_route ? h.port : 0, c->via_external ? h.port : 0);
        st = c->run(p, h.port);
        if (st != 504 || last_category(p) != NONOPROXY_DENIAL_UPSTREAM_TIMEOUT) {
            fail_msg("%s, timed out: status %d", c->name, st);
        }
        nonoproxy_free(p);
        hole_close(&h);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_mapping_on_every_path),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
