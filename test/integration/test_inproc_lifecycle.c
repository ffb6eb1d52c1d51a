/* In-process integration tests of the proxy lifecycle: start errors, tunnels through the
 * real listener, the connection limit, shutdown with open tunnels, no fd or thread left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct nonoproxy_proxy *
start_proxy(struct nonoproxy_config *cfg)
{
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;

    memset(&diag, 0, sizeof(diag));
    if (nonoproxy_start(cfg, &p, &diag) != NONOPROXY_OK) {
        fail_msg("nonoproxy_start: %s", diag.message);
    }
    return p;
}

/* Count the events of category cat left in the ring. */
static int
count_events(struct nonoproxy_proxy *p, enum nonoproxy_denial_category cat,
             enum nonoproxy_audit_kind kind)
{
    static struct nonoproxy_audit_event ev[256];
    size_t n = nonoproxy_drain_audit_events(p, ev, 256, NULL);
    size_t i;
    int c = 0;

    for (i = 0; i < n; i++) {
        if (ev[i].denial_category == cat && ev[i].kind == kind) {
            c++;
        }
    }
    return c;
}

static void
start_rejects_bad_config(void **state)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;
    int fd;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    char addr[32];

    (void)state;
    nonoproxy_config_init(&cfg);
    cfg.bind_addr = "localhost";
    assert_int_equal(nonoproxy_start(&cfg, &p, &diag), NONOPROXY_ERR_INVALID_ARG);
    assert_null(p);
    assert_non_null(strstr(diag.message, "bind_addr"));
    assert_non_null(strstr(diag.message, "localhost"));

    /* Port in use. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    cfg.bind_addr = "127.0.0.1";
    cfg.bind_port = ntohs(sin.sin_port);
    assert_int_equal(nonoproxy_start(&cfg, &p, &diag), NONOPROXY_ERR_IO);
    assert_null(p);
    snprintf(addr, sizeof(addr), "port %u", (unsigned)cfg.bind_port);
    assert_non_null(strstr(diag.message, addr));
    close(fd);

    assert_int_equal(nonoproxy_config_allow_host(&cfg, "*foo.com", &diag),
                     NONOPROXY_ERR_INVALID_ARG);
    assert_non_null(strstr(diag.message, "*foo.com"));
    assert_null(cfg.lists); /* nothing added */
    nonoproxy_config_free(&cfg);
}

static void
env_vars_point_at_the_proxy(void **state)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p;
    const struct nonoproxy_env_var *v;
    size_t n;
    size_t i;
    char want[160];
    const char *tok;
    int seen = 0;

    (void)state;
    nonoproxy_config_init(&cfg);
    p = start_proxy(&cfg);
    nonoproxy_config_free(&cfg);
    tok = proxy_token(p);
    assert_int_equal(strlen(tok), 64);
    snprintf(want, sizeof(want), "http://nono:%s@127.0.0.1:%u", tok, (unsigned)nonoproxy_port(p));
    assert_int_equal(nonoproxy_env_vars(p, &v, &n), NONOPROXY_OK);
    assert_int_equal(n, 8);
    for (i = 0; i < n; i++) {
        if (strcmp(v[i].name, "HTTP_PROXY") == 0 || strcmp(v[i].name, "https_proxy") == 0) {
            /* Not assert_string_equal: a failure would print the session token. */
            assert_true(strcmp(v[i].value, want) == 0);
            seen++;
        } else if (strcmp(v[i].name, "NO_PROXY") == 0) {
            assert_string_equal(v[i].value, "localhost,127.0.0.1,::1");
            seen++;
        } else if (strcmp(v[i].name, "NODE_USE_ENV_PROXY") == 0) {
            assert_string_equal(v[i].value, "1");
            seen++;
        }
    }
    assert_int_equal(seen, 4);
    nonoproxy_free(p);
}

static void
tunnel_relays_and_audits_close(void **state)
{
    struct echo_server *e = echo_start();
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p;
    struct nonoproxy_audit_event ev[16];
    char buf[64];
    size_t n;
    int fd;
    ssize_t r;

    (void)state;
    assert_non_null(e);
    nonoproxy_config_init(&cfg);
    assert_int_equal(nonoproxy_config_allow_host(&cfg, "127.0.0.1", NULL), NONOPROXY_OK);
    p = start_proxy(&cfg);
    nonoproxy_config_free(&cfg);
    fd = open_tunnel(p, "127.0.0.1", echo_port(e), NULL);
    assert_true(fd >= 0);
    assert_int_equal(send_str(fd, "ping"), 0);
    shutdown(fd, SHUT_WR); /* half-close: the echo must still come back */
    r = recv(fd, buf, sizeof(buf), MSG_WAITALL);
    assert_int_equal(r, 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(recv(fd, buf, sizeof(buf), 0), 0);
    close(fd);
    nonoproxy_shutdown(p);
    n = nonoproxy_drain_audit_events(p, ev, 16, NULL);
    assert_int_equal(n, 2);
    assert_int_equal(ev[0].kind, NONOPROXY_EVENT_DECISION);
    assert_int_equal(ev[0].decision, NONOPROXY_DECISION_ALLOW);
    assert_string_equal(ev[0].target, "127.0.0.1");
    assert_int_equal(ev[0].port, echo_port(e));
    assert_int_equal(ev[1].kind, NONOPROXY_EVENT_CLOSE);
    assert_int_equal(ev[1].bytes_up, 4);
    assert_int_equal(ev[1].bytes_down, 4);
    nonoproxy_free(p);
    echo_stop(e);
}

static void
connection_limit_answers_503_then_recovers(void **state)
{
    struct echo_server *e = echo_start();
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p;
    int fds[4];
    char head[1024];
    int i;
    int fd;
    int st = -1;

    (void)state;
    nonoproxy_config_init(&cfg);
    cfg.max_connections = 4;
    p = start_proxy(&cfg);
    for (i = 0; i < 4; i++) {
        fds[i] = open_tunnel(p, "127.0.0.1", echo_port(e), NULL);
        assert_true(fds[i] >= 0);
    }
    fd = tcp_connect(nonoproxy_port(p));
    assert_true(fd >= 0);
    assert_int_equal(read_head(fd, head, sizeof(head)), 503);
    assert_non_null(strstr(head, "Retry-After: 1\r\n"));
    assert_non_null(strstr(head, "Content-Length: "));
    close(fd);
    close(fds[0]);
    /* The slot frees when the worker sees the close: retry, bounded. */
    for (i = 0; i < 200; i++) {
        fd = open_tunnel(p, "127.0.0.1", echo_port(e), &st);
        if (fd >= 0) {
            break;
        }
        assert_int_equal(st, 503);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_true(fd >= 0);
    close(fd);
    for (i = 1; i < 4; i++) {
        close(fds[i]);
    }
    nonoproxy_shutdown(p);
    assert_true(count_events(p, NONOPROXY_DENIAL_CONNECTION_LIMIT, NONOPROXY_EVENT_DECISION) >= 1);
    nonoproxy_free(p);
    nonoproxy_config_free(&cfg);
    echo_stop(e);
}

static void
shutdown_with_open_tunnels_is_prompt_and_clean(void **state)
{
    struct echo_server *e;
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p;
    int fds[8];
    int base_fds;
    int base_threads;
    int slow;
    uint64_t t0;
    uint64_t took;
    int i;

    (void)state;
    base_fds = count_fds();
    base_threads = count_threads();
    e = echo_start();
    nonoproxy_config_init(&cfg);
    p = start_proxy(&cfg);
    nonoproxy_config_free(&cfg);
    for (i = 0; i < 8; i++) {
        fds[i] = open_tunnel(p, "127.0.0.1", echo_port(e), NULL);
        assert_true(fds[i] >= 0);
    }
    /* A client stuck in the middle of its head is interrupted too. */
    slow = tcp_connect(nonoproxy_port(p));
    assert_int_equal(send_str(slow, "CONNECT 127.0.0.1:1 HTTP/1.1\r\n"), 0);
    t0 = now_ms();
    nonoproxy_shutdown(p);
    took = now_ms() - t0;
    nonoproxy_shutdown(p); /* idempotent */
    nonoproxy_free(p);
    assert_true(took < 2000);
    for (i = 0; i < 8; i++) {
        char c;
        assert_true(recv(fds[i], &c, 1, 0) <= 0); /* the proxy closed its side */
        close(fds[i]);
    }
    close(slow);
    echo_stop(e);
    assert_int_equal(count_fds(), base_fds);
    assert_int_equal(wait_threads(base_threads), base_threads);
}

/* A resolver for tests: "rebind.test" → 169.254.169.254, "good.test" → 127.0.0.1,
 * "self.test" → 127.0.0.1 too; anything else fails. Counts calls. */
static int resolver_calls;

static int
fake_resolver(void *ud, const char *host, uint16_t port, struct nonoproxy_addrs *out)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->addrs[0];
    size_t *count = &out->count;

    (void)ud;
    resolver_calls++;
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    *count = 1;
    if (strcmp(host, "rebind.test") == 0) {
        inet_pton(AF_INET, "169.254.169.254", &sin->sin_addr);
    } else if (strcmp(host, "good.test") == 0 || strcmp(host, "self.test") == 0) {
        inet_pton(AF_INET, "127.0.0.1", &sin->sin_addr);
    } else {
        *count = 0;
        return -1;
    }
    return 0;
}

static void
filter_decisions_through_the_listener(void **state)
{
    struct echo_server *e = echo_start();
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p;
    int st;
    int fd;

    (void)state;
    nonoproxy_config_init(&cfg);
    cfg.resolver = fake_resolver;
    assert_int_equal(nonoproxy_config_allow_host(&cfg, "*.test", NULL), NONOPROXY_OK);
    assert_int_equal(nonoproxy_config_allow_host(&cfg, "metadata.google.internal", NULL),
                     NONOPROXY_OK);
    p = start_proxy(&cfg);
    nonoproxy_config_free(&cfg);
    resolver_calls = 0;
    assert_int_equal(open_tunnel(p, "rebind.test", echo_port(e), &st), -1);
    assert_int_equal(st, 403);
    assert_int_equal(open_tunnel(p, "metadata.google.internal", 80, &st), -1);
    assert_int_equal(st, 403);
    assert_int_equal(open_tunnel(p, "other.example", 80, &st), -1);
    assert_int_equal(st, 403);
    assert_int_equal(resolver_calls, 1); /* denied names never reached the resolver */
    assert_int_equal(open_tunnel(p, "nxdomain.test", 80, &st), -1);
    assert_int_equal(st, 502);
    assert_int_equal(open_tunnel(p, "self.test", nonoproxy_port(p), &st), -1);
    assert_int_equal(st, 403);
    fd = open_tunnel(p, "good.test", echo_port(e), &st);
    assert_int_equal(st, 200);
    close(fd);
    nonoproxy_free(p);
    echo_stop(e);
}

/* A client that puts the token into the CONNECT host or an origin-form path must not get it
 * into any audit field. The host is refused with 400 before any lookup (SPEC §1.2). */
static void
token_smuggled_into_requests_is_never_recorded(void **state)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p;
    struct nonoproxy_audit_event ev[16];
    char host[128];
    char req[512];
    char head[1024];
    char json[NONOPROXY_AUDIT_JSON_MAX];
    const char *tok;
    size_t n;
    size_t i;
    int st;
    int fd;

    (void)state;
    nonoproxy_config_init(&cfg);
    assert_int_equal(nonoproxy_config_allow_host(&cfg, "allowed.test", NULL), NONOPROXY_OK);
    p = start_proxy(&cfg);
    nonoproxy_config_free(&cfg);
    tok = proxy_token(p);
    snprintf(host, sizeof(host), "%s.example", tok);
    assert_int_equal(open_tunnel(p, host, 443, &st), -1);
    assert_int_equal(st, 400);
    fd = tcp_connect(nonoproxy_port(p));
    snprintf(req, sizeof(req), "GET /x/%s?k=%s HTTP/1.1\r\nHost: a\r\n\r\n", tok, tok);
    assert_int_equal(send_str(fd, req), 0);
    assert_int_equal(read_head(fd, head, sizeof(head)), 404);
    close(fd);
    nonoproxy_shutdown(p);
    n = nonoproxy_drain_audit_events(p, ev, 16, NULL);
    assert_int_equal(n, 2);
    for (i = 0; i < n; i++) {
        nonoproxy_audit_event_to_json(&ev[i], json, sizeof(json));
        assert_null(strstr(json, tok));
        assert_non_null(strstr(json, "[REDACTED]"));
    }
    nonoproxy_free(p);
}

/* NULL handling is the same across the API (issue #10): calls that return an error code
 * answer NONOPROXY_ERR_INVALID_ARG (nonoproxy_diagnostics used to succeed silently), the
 * others are harmless no-ops. */
static void
null_arguments_are_answered_alike(void **state)
{
    const struct nonoproxy_env_var *v = NULL;
    const struct nonoproxy_diagnostic *d = NULL;
    struct nonoproxy_route_config r;
    struct nonoproxy_audit_event ev;
    uint64_t dropped = 7;
    size_t n = 0;

    (void)state;
    assert_int_equal(nonoproxy_env_vars(NULL, &v, &n), NONOPROXY_ERR_INVALID_ARG);
    assert_int_equal(nonoproxy_credential_env_vars(NULL, &v, &n), NONOPROXY_ERR_INVALID_ARG);
    assert_int_equal(nonoproxy_diagnostics(NULL, &d, &n), NONOPROXY_ERR_INVALID_ARG);
    assert_int_equal(nonoproxy_start(NULL, NULL, NULL), NONOPROXY_ERR_INVALID_ARG);
    assert_int_equal(nonoproxy_port(NULL), 0);
    assert_int_equal(nonoproxy_drain_audit_events(NULL, &ev, 1, &dropped), 0);
    assert_int_equal(dropped, 0);
    nonoproxy_shutdown(NULL);
    nonoproxy_free(NULL);
    nonoproxy_route_config_init(&r, "p", "https://h");
    assert_int_equal(nonoproxy_config_allow_host(NULL, "h", NULL), NONOPROXY_ERR_INVALID_ARG);
    assert_int_equal(nonoproxy_config_add_route(NULL, &r), NONOPROXY_ERR_INVALID_ARG);
    assert_int_equal(nonoproxy_config_set_external_proxy(NULL, "h:1", NULL),
                     NONOPROXY_ERR_INVALID_ARG);
    assert_int_equal(nonoproxy_config_add_bypass_host(NULL, "h", NULL), NONOPROXY_ERR_INVALID_ARG);
    nonoproxy_config_init(NULL);
    nonoproxy_config_free(NULL);
    nonoproxy_route_config_init(NULL, "p", "u");
}

/* Absolute-form requests need proxy auth before anything else is answered (SPEC §2). */
static void
absolute_form_requires_proxy_auth(void **state)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p;
    char req[512];
    char head[1024];
    int fd;

    (void)state;
    nonoproxy_config_init(&cfg);
    p = start_proxy(&cfg);
    nonoproxy_config_free(&cfg);
    fd = tcp_connect(nonoproxy_port(p));
    assert_int_equal(send_str(fd, "GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
                     0);
    assert_int_equal(read_head(fd, head, sizeof(head)), 407);
    assert_non_null(strstr(head, "Proxy-Authenticate: Basic realm=\"nono\"\r\n"));
    close(fd);
    fd = tcp_connect(nonoproxy_port(p));
    assert_int_equal(send_str(fd, "GET https://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
                     0);
    assert_int_equal(read_head(fd, head, sizeof(head)), 407);
    close(fd);
    fd = tcp_connect(nonoproxy_port(p));
    snprintf(req, sizeof(req),
             "GET https://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Proxy-Authorization: Bearer %s\r\n\r\n",
             proxy_token(p));
    assert_int_equal(send_str(fd, req), 0);
    assert_int_equal(read_head(fd, head, sizeof(head)), 400); /* authenticated: use CONNECT */
    close(fd);
    nonoproxy_shutdown(p);
    assert_int_equal(
        count_events(p, NONOPROXY_DENIAL_AUTHENTICATION_FAILED, NONOPROXY_EVENT_DECISION), 2);
    nonoproxy_free(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(start_rejects_bad_config),
        cmocka_unit_test(env_vars_point_at_the_proxy),
        cmocka_unit_test(tunnel_relays_and_audits_close),
        cmocka_unit_test(connection_limit_answers_503_then_recovers),
        cmocka_unit_test(shutdown_with_open_tunnels_is_prompt_and_clean),
        cmocka_unit_test(filter_decisions_through_the_listener),
        cmocka_unit_test(token_smuggled_into_requests_is_never_recorded),
        cmocka_unit_test(absolute_form_requires_proxy_auth),
        cmocka_unit_test(null_arguments_are_answered_alike),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
