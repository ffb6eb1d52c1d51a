/* Unit tests for lib/external.c (SPEC §8): address syntax, the config functions, the bypass
 * decision, and the chained CONNECT against an in-process fake enterprise proxy on
 * 127.0.0.1:0 (one thread per test, joined before the test ends). The proxy's name goes
 * through a stub resolver, so no DNS is involved. */
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
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "common.h"
#include "config.h"
#include "config_external.h"
#include "external.h"
#include "net.h"

#define PASSWORD "s3cr3t-PW"

/* Number of open descriptors of this process. */
static int
count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) { // NOLINT(concurrency-mt-unsafe): one thread reads d
        if (de->d_name[0] != '.') {
            n++;
        }
    }
    (void)closedir(d);
    return n;
}

/* Fill *ss from an address literal and a port. */
static void
mk_addr(const char *text, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
    }
}

/* ---- np_external_check -------------------------------------------------------------------- */

struct check_row {
    const char *rule;
    const char *address;
    int want;        /* 0 accepted, -1 refused */
    const char *why; /* expected reason (refused rows) */
};

static const struct check_row check_rows[] = {
    {"host_port", "proxy.corp:3128", 0, ""},
    {"host_upper_trailing_dot", "PROXY.Corp.:8080", 0, ""},
    {"ipv4_literal", "10.0.0.1:3128", 0, ""},
    {"ipv6_in_brackets", "[::1]:3128", 0, ""},
    {"port_max", "h:65535", 0, ""},
    {"user_and_password", "user:" PASSWORD "@h:1", 0, ""},
    {"empty_user", ":" PASSWORD "@h:1", 0, ""},
    {"empty_password", "user:@h:1", 0, ""},
    {"both_empty", ":@h:1", 0, ""},
    {"user_without_colon", "user@h:1", 0, ""},
    {"password_with_colon", "user:" PASSWORD ":x@h:1", 0, ""},
    {"password_with_slash", "user:a/" PASSWORD "@h:1", 0, ""},
    {"userinfo_with_ipv6", "u:" PASSWORD "@[2001:db8::1]:8080", 0, ""},
    {"null", NULL, -1, "empty address"},
    {"empty", "", -1, "empty address"},
    {"missing_port", "proxy.corp", -1, "missing port (write host:port)"},
    {"missing_port_after_userinfo", "u:" PASSWORD "@proxy.corp", -1,
     "missing port (write host:port)"},
    {"empty_port", "h:", -1, "port must be a number from 1 to 65535"},
    {"port_zero", "h:0", -1, "port must be a number from 1 to 65535"},
    {"port_too_big", "h:65536", -1, "port must be a number from 1 to 65535"},
    {"port_not_number", "h:abc", -1, "port must be a number from 1 to 65535"},
    {"port_signed", "h:+1", -1, "port must be a number from 1 to 65535"},
    {"port_too_long", "h:000001", -1, "port must be a number from 1 to 65535"},
    {"password_as_port", "user:" PASSWORD, -1, "port must be a number from 1 to 65535"},
    {"empty_host", ":3128", -1, "empty host"},
    {"empty_host_after_userinfo", "u:" PASSWORD "@:3128", -1, "empty host"},
    {"nothing_after_at", "u:" PASSWORD "@", -1, "missing host and port (write host:port)"},
    {"nothing_before_at", "@h:1", -1, "nothing before '@' (write user:password@host:port)"},
    {"path_after_port", "h:1/", -1, "'/' in the address (no scheme or path: write host:port)"},
    {"scheme_http", "http://h:1", -1,
     "a URL scheme such as \"http://\" is not allowed (write host:port)"},
    {"scheme_with_userinfo", "HTTPS://u:" PASSWORD "@h:1", -1,
     "a URL scheme such as \"http://\" is not allowed (write host:port)"},
    {"scheme_socks5h", "socks5h://h:1080", -1,
     "a URL scheme such as \"http://\" is not allowed (write host:port)"},
    {"control_char_in_host", "h\x01:1", -1, "control character in the address"},
    {"crlf_in_password", "u:" PASSWORD "\r\nX: y@h:1", -1, "control character in the address"},
    {"tab_in_user", "u\t:" PASSWORD "@h:1", -1, "control character in the address"},
    {"del_char", "h\x7f:1", -1, "control character in the address"},
    {"space_in_password", "u:" PASSWORD " x@h:1", -1, "space in the address"},
    {"trailing_space", "h:1 ", -1, "space in the address"},
    {"two_at_signs", "u:" PASSWORD "@x@h:1", -1,
     "more than one '@' (the user name and password may not contain '@')"},
    {"ipv6_without_brackets", "::1:3128", -1, "an IPv6 address needs brackets: [v6]:port"},
    {"ipv6_no_port", "[::1]", -1, "missing port (write [v6]:port)"},
    {"ipv6_unclosed", "[::1:3128", -1, "missing ']' after the IPv6 address"},
    {"ipv6_junk_after_bracket", "[::1]x:1", -1, "unexpected text after ']'"},
    {"ipv4_in_brackets", "[1.2.3.4]:1", -1, "invalid IPv6 address in brackets"},
    {"invalid_host_char", "pro%78y:1", -1, "invalid host"},
    {"backslash_in_host", "a\\b:1", -1, "invalid host"},
    {"empty_label", "a..b:1", -1, "invalid host"},
};

static void
test_check_table(void **state)
{
    char why[128];
    size_t i;

    NP_UNUSED(state);
    for (i = 0; i < NP_ARRAY_LEN(check_rows); i++) {
        const struct check_row *r = &check_rows[i];
        int rc;

        memset(why, 'X', sizeof(why));
        rc = np_external_check(r->address, why, sizeof(why));
        if (rc != r->want || strcmp(why, r->why) != 0) {
            print_error("row %s: rc %d (want %d), why \"%s\" (want \"%s\")\n", r->rule, rc, r->want,
                        why, r->why);
        }
        assert_int_equal(rc, r->want);
        assert_string_equal(why, r->why);
        /* The userinfo never appears in a reason. */
        assert_null(strstr(why, PASSWORD));
    }
}

static void
test_check_limits(void **state)
{
    char addr[1100];
    char why[16];

    NP_UNUSED(state);
    /* Longest accepted: 1024 bytes in all. */
    memset(addr, 'a', sizeof(addr));
    memcpy(addr + 1024 - 7, "@h:3128", 8);
    assert_int_equal(np_external_check(addr, why, sizeof(why)), 0);
    memset(addr, 'a', sizeof(addr));
    memcpy(addr + 1025 - 7, "@h:3128", 8);
    assert_int_equal(np_external_check(addr, why, sizeof(why)), -1);
    /* A short why buffer is truncated, not overrun; NULL why is allowed. */
    assert_string_equal(why, "address too lon");
    assert_int_equal(np_external_check("h", NULL, 0), -1);
    assert_int_equal(np_external_check("h:1", NULL, 0), 0);
}

/* np_external_new from what the configuration API collected in cfg. */
static enum nonoproxy_err
new_from(const struct nonoproxy_config *cfg, struct np_external **e, struct nonoproxy_diag *diag)
{
    const struct nonoproxy_config_lists *l = np_config_lists(cfg);

    return np_external_new(l->external_proxy, (const char *const *)l->bypass_hosts, l->n_bypass, e,
                           diag);
}

/* ---- config functions ------------------------------------------------------------------- */

static void
test_set_external_proxy(void **state)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_diag diag;
    const char *addr = "user:" PASSWORD "@proxy.corp:3128";

    NP_UNUSED(state);
    nonoproxy_config_init(&cfg);
    assert_int_equal(nonoproxy_config_set_external_proxy(&cfg, addr, &diag), NONOPROXY_OK);
    assert_non_null(np_config_lists(&cfg)->external_proxy);
    assert_ptr_not_equal(np_config_lists(&cfg)->external_proxy, addr); /* a copy */
    assert_string_equal(np_config_lists(&cfg)->external_proxy, addr);

    /* Invalid: refused, config unchanged, diag names the field but never the password. */
    memset(&diag, 0, sizeof(diag));
    assert_int_equal(nonoproxy_config_set_external_proxy(&cfg, "http://u:" PASSWORD "@h:1", &diag),
                     NONOPROXY_ERR_INVALID_ARG);
    assert_int_equal(diag.code, NONOPROXY_ERR_INVALID_ARG);
    assert_string_equal(diag.message, "external_proxy: invalid address: a URL scheme such as "
                                      "\"http://\" is not allowed (write host:port)");
    assert_null(strstr(diag.message, PASSWORD));
    assert_string_equal(np_config_lists(&cfg)->external_proxy, addr);
    assert_int_equal(nonoproxy_config_set_external_proxy(&cfg, "u:" PASSWORD "@h", NULL),
                     NONOPROXY_ERR_INVALID_ARG);
    assert_string_equal(np_config_lists(&cfg)->external_proxy, addr);

    /* Replace (the old copy is freed: ASan would report a leak), then clear with NULL. */
    assert_int_equal(nonoproxy_config_set_external_proxy(&cfg, "[::1]:8080", NULL), NONOPROXY_OK);
    assert_string_equal(np_config_lists(&cfg)->external_proxy, "[::1]:8080");
    assert_int_equal(nonoproxy_config_set_external_proxy(&cfg, NULL, NULL), NONOPROXY_OK);
    assert_null(np_config_lists(&cfg)->external_proxy);
    assert_int_equal(nonoproxy_config_set_external_proxy(&cfg, addr, NULL), NONOPROXY_OK);

    /* NULL config. */
    assert_int_equal(nonoproxy_config_set_external_proxy(NULL, addr, &diag),
                     NONOPROXY_ERR_INVALID_ARG);

    nonoproxy_config_free(&cfg);
    assert_null(np_config_lists(&cfg)->external_proxy);
    nonoproxy_config_free(&cfg); /* idempotent */
    nonoproxy_config_free(NULL);
}

struct bypass_entry_row {
    const char *rule;
    const char *entry;
    const char *want; /* normalised copy, or NULL = refused */
};

static const struct bypass_entry_row bypass_entry_rows[] = {
    {"exact_lowercased", "Intranet.Corp", "intranet.corp"},
    {"trailing_dot_stripped", "intranet.corp.", "intranet.corp"},
    {"wildcard", "*.Example.COM", "*.example.com"},
    {"with_port", "Host.example:8080", "host.example:8080"},
    {"wildcard_with_port", "*.corp:443", "*.corp:443"},
    {"ipv4", "10.1.2.3", "10.1.2.3"},
    {"ipv6_port", "[2001:DB8::5]:443", "[2001:db8::5]:443"},
    {"reject_empty", "", NULL},
    {"reject_bare_star", "*", NULL},
    {"reject_star_without_dot", "*corp", NULL},
    {"reject_star_dot_only", "*.", NULL},
    {"reject_space", "a b", NULL},
    {"reject_control", "a\nb", NULL},
    {"reject_slash", "a/b", NULL},
    {"reject_at", "u@h", NULL},
    {"reject_port_zero", "h:0", NULL},
};

static void
test_add_bypass_host_table(void **state)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_diag diag;
    size_t i;
    size_t added = 0;

    NP_UNUSED(state);
    nonoproxy_config_init(&cfg);
    for (i = 0; i < NP_ARRAY_LEN(bypass_entry_rows); i++) {
        const struct bypass_entry_row *r = &bypass_entry_rows[i];
        enum nonoproxy_err rc;

        memset(&diag, 0, sizeof(diag));
        rc = nonoproxy_config_add_bypass_host(&cfg, r->entry, &diag);
        if ((rc == NONOPROXY_OK) != (r->want != NULL)) {
            print_error("row %s: rc %d, diag \"%s\"\n", r->rule, (int)rc, diag.message);
        }
        if (r->want == NULL) {
            assert_int_equal(rc, NONOPROXY_ERR_INVALID_ARG);
            assert_int_equal(diag.code, NONOPROXY_ERR_INVALID_ARG);
            assert_memory_equal(diag.message, "bypass_hosts: invalid entry '", 29);
            assert_int_equal(np_config_lists(&cfg)->n_bypass, added); /* unchanged */
        } else {
            assert_int_equal(rc, NONOPROXY_OK);
            added++;
            assert_int_equal(np_config_lists(&cfg)->n_bypass, added);
            assert_string_equal(np_config_lists(&cfg)->bypass_hosts[added - 1], r->want);
        }
    }
    assert_int_equal(nonoproxy_config_add_bypass_host(&cfg, NULL, &diag),
                     NONOPROXY_ERR_INVALID_ARG);
    assert_int_equal(nonoproxy_config_add_bypass_host(NULL, "h", &diag), NONOPROXY_ERR_INVALID_ARG);
    nonoproxy_config_free(&cfg);
    assert_null(np_config_lists(&cfg)->bypass_hosts);
    assert_int_equal(np_config_lists(&cfg)->n_bypass, 0);
}

static void
test_new_builds_host_port_and_auth(void **state)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_diag diag;
    struct np_external *e = NULL;
    static const char want_auth[] = "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n";

    NP_UNUSED(state);
    nonoproxy_config_init(&cfg);
    /* Nothing configured: NULL, everything direct. */
    e = (struct np_external *)&cfg; /* must be overwritten */
    assert_int_equal(new_from(&cfg, &e, &diag), NONOPROXY_OK);
    assert_null(e);

    assert_int_equal(nonoproxy_config_set_external_proxy(&cfg, "user:pass@PROXY.corp.:3128", NULL),
                     NONOPROXY_OK);
    assert_int_equal(new_from(&cfg, &e, &diag), NONOPROXY_OK);
    assert_non_null(e);
    assert_string_equal(e->host, "proxy.corp");
    assert_int_equal(e->port, 3128);
    assert_non_null(e->auth_header);
    assert_int_equal(e->auth_header_len, strlen(want_auth));
    assert_string_equal(e->auth_header, want_auth);
    assert_non_null(e->bypass);
    assert_false(np_hostfilter_matches(e->bypass, "proxy.corp", 3128));
    np_external_free(e);

    /* "user" alone means an empty password: base64("user:"). */
    assert_int_equal(nonoproxy_config_set_external_proxy(&cfg, "user@[::1]:1", NULL), NONOPROXY_OK);
    assert_int_equal(new_from(&cfg, &e, &diag), NONOPROXY_OK);
    assert_string_equal(e->host, "::1");
    assert_int_equal(e->port, 1);
    assert_string_equal(e->auth_header, "Proxy-Authorization: Basic dXNlcjo=\r\n");
    np_external_free(e);

    /* No userinfo: no header. */
    assert_int_equal(nonoproxy_config_set_external_proxy(&cfg, "10.0.0.1:8080", NULL),
                     NONOPROXY_OK);
    assert_int_equal(new_from(&cfg, &e, &diag), NONOPROXY_OK);
    assert_null(e->auth_header);
    assert_int_equal(e->auth_header_len, 0);
    np_external_free(e);
    np_external_free(NULL);
    nonoproxy_config_free(&cfg);
}

/* A refused address (the API checks it as it is set) never reaches the frozen form; the
 * frozen form's own parse refuses one too, and never quotes the password. */
static void
test_new_refuses_a_bad_address(void **state)
{
    struct nonoproxy_diag diag;
    struct np_external *e = (struct np_external *)&diag;

    NP_UNUSED(state);
    memset(&diag, 0, sizeof(diag));
    assert_int_equal(np_external_new("u:" PASSWORD "@h:99999", NULL, 0, &e, &diag),
                     NONOPROXY_ERR_INVALID_ARG);
    assert_null(e);
    assert_string_equal(diag.message,
                        "external_proxy: invalid address: port must be a number from 1 to 65535");
    assert_null(strstr(diag.message, PASSWORD));
    assert_int_equal(np_external_new(NULL, NULL, 0, &e, &diag), NONOPROXY_OK);
    assert_null(e); /* no proxy: everything goes direct */
}

/* ---- np_external_bypassed ---------------------------------------------------------------- */

struct bypass_row { // NOLINT(clang-analyzer-optin.performance.Padding): a test table
    const char *rule;
    const char *norm;
    uint16_t port;
    const char *resolved[3]; /* addresses (NULL-terminated); all NULL = no list */
    bool empty_list;         /* pass a resolved list with n = 0 */
    bool want;
};

static const struct bypass_row bypass_rows[] = {
    {"exact_match", "intranet.corp", 443, {NULL}, false, true},
    {"exact_any_port", "intranet.corp", 8080, {NULL}, false, true},
    {"exact_not_subdomain", "a.intranet.corp", 443, {NULL}, false, false},
    {"wildcard_subdomain", "a.example.com", 443, {NULL}, false, true},
    {"wildcard_deep_subdomain", "a.b.example.com", 443, {NULL}, false, true},
    {"wildcard_not_bare_domain", "example.com", 443, {NULL}, false, false},
    {"wildcard_label_boundary", "evilexample.com", 443, {NULL}, false, false},
    {"wildcard_not_suffix_elsewhere", "example.com.evil", 443, {NULL}, false, false},
    {"port_entry_matching_port", "api.corp", 8443, {NULL}, false, true},
    {"port_entry_other_port", "api.corp", 443, {NULL}, false, false},
    {"v6_port_entry", "2001:db8::5", 443, {NULL}, false, true},
    {"v6_port_entry_other_port", "2001:db8::5", 80, {NULL}, false, false},
    {"ipv4_entry", "10.1.2.3", 22, {NULL}, false, true},
    {"not_listed", "github.com", 443, {NULL}, false, false},
    {"localhost", "localhost", 8080, {NULL}, false, true},
    {"localhost_lookalike", "localhost.evil.com", 80, {NULL}, false, false},
    {"loopback_v4", "127.0.0.1", 80, {NULL}, false, true},
    {"loopback_v4_range", "127.0.0.2", 80, {NULL}, false, true},
    {"loopback_v6", "::1", 80, {NULL}, false, true},
    {"loopback_v4_mapped", "::ffff:127.0.0.1", 80, {NULL}, false, true},
    {"not_loopback_v4", "128.0.0.1", 80, {NULL}, false, false},
    {"not_loopback_v6", "::2", 80, {NULL}, false, false},
    {"not_loopback_private", "10.0.0.1", 80, {NULL}, false, false},
    {"resolved_all_loopback", "dev.test", 80, {"127.0.0.1", "::1", NULL}, false, true},
    {"resolved_one_loopback", "dev.test", 80, {"127.0.1.1", NULL}, false, true},
    {"resolved_mixed", "dev.test", 80, {"127.0.0.1", "10.0.0.1", NULL}, false, false},
    {"resolved_mixed_v6", "dev.test", 80, {"::1", "2001:db8::1", NULL}, false, false},
    {"resolved_not_loopback", "dev.test", 80, {"93.184.216.34", NULL}, false, false},
    {"resolved_empty_list", "dev.test", 80, {NULL}, true, false},
};

static void
test_bypassed_table(void **state)
{
    static const char *const entries[] = {"intranet.corp", "*.example.com", "api.corp:8443",
                                          "[2001:db8::5]:443", "10.1.2.3"};
    struct nonoproxy_config cfg;
    struct np_external *e = NULL;
    struct np_addrlist list;
    size_t i;
    size_t k;

    NP_UNUSED(state);
    nonoproxy_config_init(&cfg);
    assert_int_equal(nonoproxy_config_set_external_proxy(&cfg, "proxy.corp:3128", NULL),
                     NONOPROXY_OK);
    for (i = 0; i < NP_ARRAY_LEN(entries); i++) {
        assert_int_equal(nonoproxy_config_add_bypass_host(&cfg, entries[i], NULL), NONOPROXY_OK);
    }
    assert_int_equal(new_from(&cfg, &e, NULL), NONOPROXY_OK);
    assert_non_null(e);
    for (i = 0; i < NP_ARRAY_LEN(bypass_rows); i++) {
        const struct bypass_row *r = &bypass_rows[i];
        const struct np_addrlist *res = NULL;
        bool got;

        memset(&list, 0, sizeof(list));
        for (k = 0; r->resolved[k] != NULL; k++) {
            mk_addr(r->resolved[k], r->port, &list.addr[k]);
        }
        list.n = k;
        if (k > 0 || r->empty_list) {
            res = &list;
        }
        got = np_external_bypassed(e, r->norm, r->port, res);
        if (got != r->want) {
            print_error("row %s: got %d\n", r->rule, (int)got);
        }
        assert_int_equal(got, r->want);
    }
    /* No external proxy at all: everything is direct. */
    assert_true(np_external_bypassed(NULL, "github.com", 443, NULL));
    assert_false(np_external_bypassed(e, NULL, 443, NULL));
    np_external_free(e);
    nonoproxy_config_free(&cfg);
}

/* ---- the fake enterprise proxy ---------------------------------------------------------- */

enum fake_mode {
    FAKE_ANSWER_ECHO,  /* read the request, send the answer, echo until EOF */
    FAKE_ANSWER_HOLD,  /* read the request, send the answer, wait for EOF */
    FAKE_ANSWER_CLOSE, /* read the request, send the answer, close */
    FAKE_CLOSE,        /* read the request, close without a byte */
    FAKE_SILENT,       /* read the request, never answer, wait for EOF */
};

struct fake {
    int lfd;
    uint16_t port;
    int quit[2]; /* written by the test to end the thread */
    pthread_t th;
    enum fake_mode mode;
    const char *answer;
    size_t answer_len;
    bool bytewise; /* send the answer one byte per send() */
    /* recorded; read by the test only after the join */
    int accepted;
    int send_failed;
    char req[4096];
    size_t req_len;
};

/* Wait until fd is readable or the test says quit. Returns true when fd is readable. */
static bool
fake_wait(struct fake *f, int fd)
{
    struct pollfd p[2] = {{fd, POLLIN, 0}, {f->quit[0], POLLIN, 0}};

    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        if (p[1].revents != 0) {
            return false;
        }
        if (p[0].revents != 0) {
            return true;
        }
    }
}

/* Record the request up to its blank line (or EOF). */
static void
fake_read_request(struct fake *f, int fd)
{
    while (f->req_len < sizeof(f->req) - 1 && fake_wait(f, fd)) {
        ssize_t r = recv(fd, f->req + f->req_len, sizeof(f->req) - 1 - f->req_len, 0);
        if (r <= 0) {
            break;
        }
        f->req_len += (size_t)r;
        f->req[f->req_len] = '\0';
        if (strstr(f->req, "\r\n\r\n") != NULL) {
            break;
        }
    }
}

/* Send the scripted answer (cmocka asserts are for the test thread only: record failures). */
static void
fake_send_answer(struct fake *f, int fd)
{
    size_t i;

    if (!f->bytewise) {
        if (send(fd, f->answer, f->answer_len, MSG_NOSIGNAL) != (ssize_t)f->answer_len) {
            f->send_failed++;
        }
        return;
    }
    for (i = 0; i < f->answer_len; i++) {
        if (send(fd, f->answer + i, 1, MSG_NOSIGNAL) != 1) {
            f->send_failed++;
        }
    }
}

/* After the answer: echo (or swallow) whatever arrives until EOF. */
static void
fake_drain(struct fake *f, int fd, bool echo)
{
    char buf[512];

    while (fake_wait(f, fd)) {
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r <= 0) {
            break;
        }
        if (echo) {
            (void)send(fd, buf, (size_t)r, MSG_NOSIGNAL);
        }
    }
}

static void *
fake_main(void *arg)
{
    struct fake *f = arg;
    int one = 1;
    int fd;

    if (!fake_wait(f, f->lfd)) {
        return NULL;
    }
    fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        return NULL;
    }
    f->accepted++;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fake_read_request(f, fd);
    if (f->mode != FAKE_CLOSE && f->mode != FAKE_SILENT) {
        fake_send_answer(f, fd);
    }
    if (f->mode != FAKE_CLOSE && f->mode != FAKE_ANSWER_CLOSE) {
        fake_drain(f, fd, f->mode == FAKE_ANSWER_ECHO);
    }
    (void)close(fd);
    return NULL;
}

static void
fake_start(struct fake *f, enum fake_mode mode, const char *answer, size_t answer_len)
{
    struct sockaddr_storage ss;

    memset(f, 0, sizeof(*f));
    f->mode = mode;
    f->answer = answer;
    f->answer_len = answer_len;
    mk_addr("127.0.0.1", 0, &ss);
    assert_int_equal(np_net_listen(&ss, 8, &f->lfd), 0);
    f->port = np_sockaddr_port(&ss);
    assert_int_equal(pipe2(f->quit, O_CLOEXEC), 0);
}

static void
fake_run(struct fake *f)
{
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void
fake_stop(struct fake *f)
{
    assert_int_equal(write(f->quit[1], "q", 1), 1);
    assert_int_equal(pthread_join(f->th, NULL), 0);
    (void)close(f->quit[0]);
    (void)close(f->quit[1]);
    (void)close(f->lfd);
}

/* ---- stub resolver ----------------------------------------------------------------------- */

struct stub {
    int calls;
    char host[64];
    uint16_t port;
    int rc;
    const char *addrs[3]; /* literals, NULL-terminated */
};

static int
stub_resolve(void *userdata, const char *host, uint16_t port, struct nonoproxy_addrs *out)
{
    struct stub *s = userdata;
    size_t n = 0;

    s->calls++;
    (void)snprintf(s->host, sizeof(s->host), "%s", host);
    s->port = port;
    out->count = 0;
    if (s->rc != 0) {
        return s->rc;
    }
    while (n < out->max && s->addrs[n] != NULL) {
        mk_addr(s->addrs[n], 9, &out->addrs[n]); /* wrong port on purpose: the caller sets it */
        n++;
    }
    out->count = n;
    return 0;
}

/* Build an np_external for "<userinfo><host>:<port>" plus no bypass entries. */
static struct np_external *
mk_external(const char *userinfo, const char *host, uint16_t port)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_diag diag;
    struct np_external *e = NULL;
    char addr[256];

    (void)snprintf(addr, sizeof(addr), "%s%s:%u", userinfo, host, (unsigned)port);
    nonoproxy_config_init(&cfg);
    assert_int_equal(nonoproxy_config_set_external_proxy(&cfg, addr, &diag), NONOPROXY_OK);
    assert_int_equal(new_from(&cfg, &e, &diag), NONOPROXY_OK);
    nonoproxy_config_free(&cfg);
    assert_non_null(e);
    return e;
}

/* ---- np_external_connect against the fake ------------------------------------------------ */

/* np_external_connect with its request spelled out. */
static enum np_ext_result
ext_connect(const struct np_external *e, const struct np_resolver *r, const char *host,
            uint16_t port, uint32_t connect_ms, uint32_t answer_ms, int stop_fd,
            struct np_ext_tunnel *t)
{
    struct np_ext_request q = {e, r, host, port, connect_ms, answer_ms, stop_fd};

    return np_external_connect(&q, t);
}

#define OK_200    "HTTP/1.1 200 Connection established\r\n\r\n"
#define REQ_PLAIN "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"

struct connect_row {
    const char *rule;
    const char *userinfo; /* prefix of the proxy address */
    const char *target;   /* as the caller passes it */
    uint16_t target_port;
    enum fake_mode mode;
    const char *answer;
    bool bytewise;
    uint32_t answer_timeout_ms;
    size_t early_cap;
    enum np_ext_result want;
    unsigned want_status;
    const char *want_reason; /* after "external proxy proxy.test:<port> " */
    const char *want_early;
    const char *want_req; /* exact bytes the fake received */
};

static const struct connect_row connect_rows[] = {
    {"established_with_early_bytes", "", "example.com", 443, FAKE_ANSWER_ECHO, OK_200 "hello",
     false, 5000, 64, NP_EXT_OK, 200, "answered 200 Connection established", "hello", REQ_PLAIN},
    {"established_bytewise", "", "example.com", 443, FAKE_ANSWER_ECHO,
     "HTTP/1.1 200 Connection established\r\nVia: 1.1 corp\r\n\r\n", true, 5000, 64, NP_EXT_OK, 200,
     "answered 200 Connection established", "", REQ_PLAIN},
    {"established_with_headers", "", "example.com", 443, FAKE_ANSWER_ECHO,
     "HTTP/1.1 200 Connection established\r\nProxy-Agent: corp/1.0\r\n\r\n", false, 5000, 64,
     NP_EXT_OK, 200, "answered 200 Connection established", "", REQ_PLAIN},
    {"established_lf_only", "", "example.com", 443, FAKE_ANSWER_ECHO, "HTTP/1.1 200 OK\n\n", false,
     5000, 64, NP_EXT_OK, 200, "answered 200 OK", "", REQ_PLAIN},
    {"http10_proxy_2xx_is_fine", "", "example.com", 443, FAKE_ANSWER_ECHO,
     "HTTP/1.0 200 OK\r\n\r\n", false, 5000, 64, NP_EXT_OK, 200, "answered 200 OK", "", REQ_PLAIN},
    {"any_2xx_is_success", "", "example.com", 443, FAKE_ANSWER_ECHO,
     "HTTP/1.1 204 No Content\r\n\r\n", false, 5000, 64, NP_EXT_OK, 204, "answered 204 No Content",
     "", REQ_PLAIN},
    {"with_userinfo_sends_basic", "user:pass@", "example.com", 443, FAKE_ANSWER_ECHO, OK_200, false,
     5000, 64, NP_EXT_OK, 200, "answered 200 Connection established", "",
     "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
     "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n"},
    {"ipv6_target_in_brackets", "", "2001:DB8::1", 8443, FAKE_ANSWER_ECHO, OK_200, false, 5000, 64,
     NP_EXT_OK, 200, "answered 200 Connection established", "",
     "CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n\r\n"},
    {"bracketed_target_normalised", "", "[::1]", 22, FAKE_ANSWER_ECHO, OK_200, false, 5000, 64,
     NP_EXT_OK, 200, "answered 200 Connection established", "",
     "CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\n\r\n"},
    {"target_name_normalised", "", "Example.COM.", 443, FAKE_ANSWER_ECHO, OK_200, false, 5000, 64,
     NP_EXT_OK, 200, "answered 200 Connection established", "", REQ_PLAIN},
    {"early_bytes_over_cap", "", "example.com", 443, FAKE_ANSWER_HOLD, OK_200 "hello", false, 5000,
     4, NP_EXT_REJECTED, 0, "sent too much data after its answer", "", REQ_PLAIN},
    {"auth_required_407_with_body", "user:pass@", "example.com", 443, FAKE_ANSWER_HOLD,
     "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\n"
     "Content-Length: 13\r\n\r\naccess denied",
     false, 5000, 64, NP_EXT_REJECTED, 407, "answered 407 Proxy Authentication Required", "",
     "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
     "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n"},
    {"forbidden_403", "", "example.com", 443, FAKE_ANSWER_HOLD, "HTTP/1.1 403 Forbidden\r\n\r\n",
     false, 5000, 64, NP_EXT_REJECTED, 403, "answered 403 Forbidden", "", REQ_PLAIN},
    {"redirect_is_not_success", "", "example.com", 443, FAKE_ANSWER_HOLD,
     "HTTP/1.1 302 Found\r\nLocation: http://portal/\r\n\r\n", false, 5000, 64, NP_EXT_REJECTED,
     302, "answered 302 Found", "", REQ_PLAIN},
    {"informational_is_not_success", "", "example.com", 443, FAKE_ANSWER_HOLD,
     "HTTP/1.1 100 Continue\r\n\r\n", false, 5000, 64, NP_EXT_REJECTED, 100,
     "answered 100 Continue", "", REQ_PLAIN},
    {"status_without_phrase", "", "example.com", 443, FAKE_ANSWER_HOLD, "HTTP/1.1 403\r\n\r\n",
     false, 5000, 64, NP_EXT_REJECTED, 403, "answered 403", "", REQ_PLAIN},
    /* The answer is read with the one response grammar (issue #10): a control byte in the
     * reason phrase, or a version other than 1.0/1.1, is a malformed answer, where the
     * chained CONNECT's own parser used to take it. */
    {"phrase_control_char_is_malformed", "", "example.com", 443, FAKE_ANSWER_HOLD,
     "HTTP/1.1 502 Bad\x01Gate\x7fway\r\n\r\n", false, 5000, 64, NP_EXT_REJECTED, 0,
     "sent a malformed answer", "", REQ_PLAIN},
    {"version_1_2_is_malformed", "", "example.com", 443, FAKE_ANSWER_HOLD,
     "HTTP/1.2 200 OK\r\n\r\n", false, 5000, 64, NP_EXT_REJECTED, 0, "sent a malformed answer", "",
     REQ_PLAIN},
    {"header_without_colon_is_malformed", "", "example.com", 443, FAKE_ANSWER_HOLD,
     "HTTP/1.1 200 OK\r\nProxy-agent squid\r\n\r\n", false, 5000, 64, NP_EXT_REJECTED, 0,
     "sent a malformed answer", "", REQ_PLAIN},
    {"phrase_obs_text_made_ascii", "", "example.com", 443, FAKE_ANSWER_HOLD,
     "HTTP/1.1 502 Bad Gateway \xc3\xa9\r\n\r\n", false, 5000, 64, NP_EXT_REJECTED, 502,
     "answered 502 Bad Gateway ??", "", REQ_PLAIN},
    {"phrase_truncated", "", "example.com", 443, FAKE_ANSWER_HOLD,
     "HTTP/1.1 503 0123456789012345678901234567890123456789012345678901234567890123456789\r\n\r\n",
     false, 5000, 64, NP_EXT_REJECTED, 503,
     "answered 503 012345678901234567890123456789012345678901234567890123456789...", "", REQ_PLAIN},
    {"garbage", "", "example.com", 443, FAKE_ANSWER_HOLD, "garbage\r\n\r\n", false, 5000, 64,
     NP_EXT_REJECTED, 0, "sent a malformed answer", "", REQ_PLAIN},
    {"non_http_fails_before_timeout", "", "example.com", 443, FAKE_ANSWER_HOLD,
     "SSH-2.0-OpenSSH_9.6", false, 5000, 64, NP_EXT_REJECTED, 0, "sent a malformed answer", "",
     REQ_PLAIN},
    {"http2_status_line", "", "example.com", 443, FAKE_ANSWER_HOLD, "HTTP/2 200\r\n\r\n", false,
     5000, 64, NP_EXT_REJECTED, 0, "sent a malformed answer", "", REQ_PLAIN},
    {"two_digit_status", "", "example.com", 443, FAKE_ANSWER_HOLD, "HTTP/1.1 20 OK\r\n\r\n", false,
     5000, 64, NP_EXT_REJECTED, 0, "sent a malformed answer", "", REQ_PLAIN},
    {"status_600", "", "example.com", 443, FAKE_ANSWER_HOLD, "HTTP/1.1 600 What\r\n\r\n", false,
     5000, 64, NP_EXT_REJECTED, 0, "sent a malformed answer", "", REQ_PLAIN},
    {"status_glued_to_phrase", "", "example.com", 443, FAKE_ANSWER_HOLD, "HTTP/1.1 200OK\r\n\r\n",
     false, 5000, 64, NP_EXT_REJECTED, 0, "sent a malformed answer", "", REQ_PLAIN},
    {"leading_empty_line", "", "example.com", 443, FAKE_ANSWER_HOLD, "\r\n" OK_200, false, 5000, 64,
     NP_EXT_REJECTED, 0, "sent a malformed answer", "", REQ_PLAIN},
    {"bare_cr_in_head", "", "example.com", 443, FAKE_ANSWER_HOLD,
     "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", false, 5000, 64, NP_EXT_REJECTED, 0,
     "sent a malformed answer", "", REQ_PLAIN},
    {"closed_mid_head", "", "example.com", 443, FAKE_ANSWER_CLOSE,
     "HTTP/1.1 200 Connection established\r\n", false, 5000, 64, NP_EXT_REJECTED, 0,
     "sent a malformed answer", "", REQ_PLAIN},
    {"closed_without_answer", "", "example.com", 443, FAKE_CLOSE, "", false, 5000, 64,
     NP_EXT_REJECTED, 0, "closed the connection without answering", "", REQ_PLAIN},
    {"never_answers", "", "example.com", 443, FAKE_SILENT, "", false, 300, 64, NP_EXT_TIMEOUT, 0,
     "did not answer in time", "", REQ_PLAIN},
    {"head_never_ends", "", "example.com", 443, FAKE_ANSWER_HOLD,
     "HTTP/1.1 200 Connection established\r\nX: y\r\n", false, 300, 64, NP_EXT_TIMEOUT, 0,
     "did not answer in time", "", REQ_PLAIN},
};

/* Check that the tunnel on fd reaches the echoing fake. */
static void
assert_tunnel_echoes(int fd)
{
    char buf[8];
    size_t got = 0;
    size_t n = 0;

    assert_int_equal(np_net_send_all(fd, "ping", 4, -1, np_deadline(5000)), NP_IO_OK);
    while (got < 4) {
        assert_int_equal(
            np_net_recv(fd, buf + got, 4 - got, &n, (struct np_until){-1, np_deadline(5000)}),
            NP_IO_OK);
        got += n;
    }
    assert_memory_equal(buf, "ping", 4);
}

static void
run_connect_row(const struct connect_row *r)
{
    struct stub stub = {0, "", 0, 0, {"127.0.0.1", NULL, NULL}};
    struct np_resolver res = {stub_resolve, &stub};
    struct np_external *e;
    struct np_ext_tunnel t;
    struct fake f;
    char early[64];
    char want_reason[256];
    enum np_ext_result got;
    int fds = count_fds();

    fake_start(&f, r->mode, r->answer, strlen(r->answer));
    f.bytewise = r->bytewise;
    fake_run(&f);
    e = mk_external(r->userinfo, "proxy.test", f.port);
    memset(&t, 0x5a, sizeof(t));
    t.early = early;
    t.early_cap = r->early_cap;
    got = ext_connect(e, &res, r->target, r->target_port, 5000, r->answer_timeout_ms, -1, &t);
    (void)snprintf(want_reason, sizeof(want_reason), "external proxy proxy.test:%u %s",
                   (unsigned)f.port, r->want_reason);
    if (got != r->want || strcmp(t.reason, want_reason) != 0) {
        print_error("row %s: result %d (want %d), reason \"%s\"\n", r->rule, (int)got, (int)r->want,
                    t.reason);
    }
    assert_int_equal(got, r->want);
    assert_int_equal(t.status, r->want_status);
    assert_string_equal(t.reason, want_reason);
    assert_null(strstr(t.reason, "pass"));
    assert_int_equal(stub.calls, 1);
    assert_string_equal(stub.host, "proxy.test");
    assert_int_equal(stub.port, f.port);
    if (got == NP_EXT_OK) {
        assert_true(t.fd >= 0);
        assert_int_equal(t.early_len, strlen(r->want_early));
        assert_memory_equal(t.early, r->want_early, t.early_len);
        assert_tunnel_echoes(t.fd);
        np_net_close(t.fd);
    } else {
        assert_int_equal(t.fd, -1);
        assert_int_equal(t.early_len, 0);
    }
    fake_stop(&f);
    assert_int_equal(f.accepted, 1);
    assert_int_equal(f.send_failed, 0);
    assert_string_equal(f.req, r->want_req);
    np_external_free(e);
    assert_int_equal(count_fds(), fds);
}

static void
test_connect_table(void **state)
{
    size_t i;

    NP_UNUSED(state);
    for (i = 0; i < NP_ARRAY_LEN(connect_rows); i++) {
        run_connect_row(&connect_rows[i]);
    }
}

/* An answer head over 16 KiB is refused, not buffered further. */
static void
test_connect_head_too_large(void **state)
{
    static char answer[20000];
    struct np_external *e;
    struct np_ext_tunnel t;
    struct fake f;
    char early[16];
    size_t n;
    int fds = count_fds();

    NP_UNUSED(state);
    n = (size_t)snprintf(answer, sizeof(answer), "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(answer + n, 'a', 17000);
    memcpy(answer + n + 17000, "\r\n\r\n", 5);
    fake_start(&f, FAKE_ANSWER_HOLD, answer, strlen(answer));
    fake_run(&f);
    e = mk_external("", "127.0.0.1", f.port);
    memset(&t, 0, sizeof(t));
    t.early = early;
    t.early_cap = sizeof(early);
    assert_int_equal(ext_connect(e, NULL, "example.com", 443, 5000, 5000, -1, &t), NP_EXT_REJECTED);
    assert_int_equal(t.status, 0);
    assert_int_equal(t.fd, -1);
    assert_non_null(strstr(t.reason, "sent a malformed answer"));
    np_external_free(e);
    fake_stop(&f);
    assert_int_equal(count_fds(), fds);
}

/* A literal proxy address is not resolved; the answer's 16 KiB cap bounds the early bytes. */
static void
test_connect_literal_proxy_skips_resolver(void **state)
{
    struct stub stub = {0, "", 0, 0, {"10.9.9.9", NULL, NULL}};
    struct np_resolver res = {stub_resolve, &stub};
    struct np_external *e;
    struct np_ext_tunnel t;
    struct fake f;
    char early[16];
    char want[96];
    int fds = count_fds();

    NP_UNUSED(state);
    fake_start(&f, FAKE_ANSWER_ECHO, OK_200, strlen(OK_200));
    fake_run(&f);
    e = mk_external("", "127.0.0.1", f.port);
    memset(&t, 0, sizeof(t));
    t.early = early;
    t.early_cap = sizeof(early);
    assert_int_equal(ext_connect(e, &res, "example.com", 443, 5000, 5000, -1, &t), NP_EXT_OK);
    assert_int_equal(stub.calls, 0);
    (void)snprintf(want, sizeof(want),
                   "external proxy 127.0.0.1:%u answered 200 Connection "
                   "established",
                   (unsigned)f.port);
    assert_string_equal(t.reason, want);
    assert_tunnel_echoes(t.fd);
    np_net_close(t.fd);
    np_external_free(e);
    fake_stop(&f);
    assert_string_equal(f.req, REQ_PLAIN);
    assert_int_equal(count_fds(), fds);
}

/* Each resolved address is tried in turn: 127.0.0.2 refuses (the fake listens on 127.0.0.1
 * only, and a wildcard listener on the same port could not coexist with it). */
static void
test_connect_tries_each_address(void **state)
{
    struct stub stub = {0, "", 0, 0, {"127.0.0.2", "127.0.0.1", NULL}};
    struct np_resolver res = {stub_resolve, &stub};
    struct np_external *e;
    struct np_ext_tunnel t;
    struct fake f;
    int fds = count_fds();

    NP_UNUSED(state);
    fake_start(&f, FAKE_ANSWER_ECHO, OK_200, strlen(OK_200));
    fake_run(&f);
    e = mk_external("", "proxy.test", f.port);
    memset(&t, 0, sizeof(t));
    assert_int_equal(ext_connect(e, &res, "example.com", 443, 5000, 5000, -1, &t), NP_EXT_OK);
    assert_int_equal(t.early_len, 0);
    assert_tunnel_echoes(t.fd);
    np_net_close(t.fd);
    np_external_free(e);
    fake_stop(&f);
    assert_int_equal(f.accepted, 1);
    assert_int_equal(count_fds(), fds);
}

/* A closed port: unreachable at once, with the errno text. */
static void
test_connect_closed_port_unreachable(void **state)
{
    struct stub stub = {0, "", 0, 0, {"127.0.0.1", NULL, NULL}};
    struct np_resolver res = {stub_resolve, &stub};
    struct sockaddr_storage ss;
    struct np_external *e;
    struct np_ext_tunnel t;
    char want[128];
    uint16_t port;
    int lfd = -1;
    int fds = count_fds();

    NP_UNUSED(state);
    mk_addr("127.0.0.1", 0, &ss);
    assert_int_equal(np_net_listen(&ss, 1, &lfd), 0);
    port = np_sockaddr_port(&ss);
    (void)close(lfd); /* nothing listens there now */
    e = mk_external("user:" PASSWORD "@", "proxy.test", port);
    memset(&t, 0, sizeof(t));
    assert_int_equal(ext_connect(e, &res, "example.com", 443, 5000, 5000, -1, &t),
                     NP_EXT_UNREACHABLE);
    (void)snprintf(want, sizeof(want), "external proxy proxy.test:%u unreachable: %s",
                   (unsigned)port, NP_ERRSTR(ECONNREFUSED));
    assert_string_equal(t.reason, want);
    assert_int_equal(t.status, 0);
    assert_int_equal(t.fd, -1);
    assert_null(strstr(t.reason, PASSWORD));
    np_external_free(e);
    assert_int_equal(count_fds(), fds);
}

/* An IPv6 proxy is shown in brackets; port 1 on ::1 is closed (or IPv6 is unavailable). */
static void
test_connect_ipv6_proxy_reason(void **state)
{
    static const char want[] = "external proxy [::1]:1 unreachable: ";
    struct np_external *e = mk_external("u:" PASSWORD "@", "[::1]", 1);
    struct np_ext_tunnel t;
    int fds = count_fds();

    NP_UNUSED(state);
    memset(&t, 0, sizeof(t));
    assert_int_equal(ext_connect(e, NULL, "example.com", 443, 5000, 5000, -1, &t),
                     NP_EXT_UNREACHABLE);
    assert_memory_equal(t.reason, want, sizeof(want) - 1);
    assert_true(strlen(t.reason) > sizeof(want) - 1);
    assert_null(strstr(t.reason, PASSWORD));
    assert_int_equal(t.fd, -1);
    np_external_free(e);
    assert_int_equal(count_fds(), fds);
}

struct resolve_fail_row {
    const char *rule;
    int rc;
    const char *want;
};

static void
test_connect_resolver_failure(void **state)
{
    static const struct resolve_fail_row rows[] = {
        {"resolver_error", -1,
         "external proxy proxy.test:3128 unreachable: its name does not resolve"},
        {"no_address", 0, "external proxy proxy.test:3128 unreachable: its name has no address"},
    };
    struct np_external *e = mk_external("", "proxy.test", 3128);
    struct np_ext_tunnel t;
    size_t i;

    NP_UNUSED(state);
    for (i = 0; i < NP_ARRAY_LEN(rows); i++) {
        struct stub stub = {0, "", 0, rows[i].rc, {NULL, NULL, NULL}};
        struct np_resolver res = {stub_resolve, &stub};

        memset(&t, 0, sizeof(t));
        if (ext_connect(e, &res, "example.com", 443, 5000, 5000, -1, &t) != NP_EXT_UNREACHABLE) {
            print_error("row %s: reason \"%s\"\n", rows[i].rule, t.reason);
            fail();
        }
        assert_string_equal(t.reason, rows[i].want);
        assert_int_equal(t.fd, -1);
        assert_int_equal(stub.calls, 1);
    }
    np_external_free(e);
}

/* A readable stop descriptor ends the wait for the answer. */
static void
test_connect_stopped(void **state)
{
    struct stub stub = {0, "", 0, 0, {"127.0.0.1", NULL, NULL}};
    struct np_resolver res = {stub_resolve, &stub};
    struct np_external *e;
    struct np_ext_tunnel t;
    struct fake f;
    char want[96];
    int stop[2];
    int fds = count_fds();

    NP_UNUSED(state);
    assert_int_equal(pipe2(stop, O_CLOEXEC), 0);
    assert_int_equal(write(stop[1], "s", 1), 1);
    fake_start(&f, FAKE_SILENT, "", 0);
    fake_run(&f);
    e = mk_external("", "proxy.test", f.port);
    memset(&t, 0, sizeof(t));
    assert_int_equal(ext_connect(e, &res, "example.com", 443, 5000, 5000, stop[0], &t),
                     NP_EXT_STOPPED);
    assert_int_equal(t.fd, -1);
    (void)snprintf(want, sizeof(want), "external proxy proxy.test:%u abandoned: shutting down",
                   (unsigned)f.port);
    assert_string_equal(t.reason, want);
    np_external_free(e);
    fake_stop(&f);
    (void)close(stop[0]);
    (void)close(stop[1]);
    assert_int_equal(count_fds(), fds);
}

/* Bad arguments fail before any connection. */
static void
test_connect_bad_arguments(void **state)
{
    struct stub stub = {0, "", 0, 0, {"127.0.0.1", NULL, NULL}};
    struct np_resolver res = {stub_resolve, &stub};
    struct np_external *e = mk_external("", "proxy.test", 3128);
    struct np_ext_tunnel t;
    int fds = count_fds();

    NP_UNUSED(state);
    memset(&t, 0, sizeof(t));
    assert_int_equal(ext_connect(NULL, &res, "example.com", 443, 5000, 5000, -1, &t),
                     NP_EXT_UNREACHABLE);
    assert_int_equal(t.fd, -1);
    assert_string_equal(t.reason, "no external proxy configured");
    assert_int_equal(ext_connect(e, &res, "bad host\r\nX: y", 443, 5000, 5000, -1, &t),
                     NP_EXT_REJECTED);
    assert_string_equal(t.reason,
                        "external proxy proxy.test:3128 not asked: invalid target host or port");
    assert_int_equal(ext_connect(e, &res, "example.com", 0, 5000, 5000, -1, &t), NP_EXT_REJECTED);
    assert_int_equal(t.fd, -1);
    assert_int_equal(stub.calls, 0);
    np_external_free(e);
    assert_int_equal(count_fds(), fds);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_table),
        cmocka_unit_test(test_check_limits),
        cmocka_unit_test(test_set_external_proxy),
        cmocka_unit_test(test_add_bypass_host_table),
        cmocka_unit_test(test_new_builds_host_port_and_auth),
        cmocka_unit_test(test_new_refuses_a_bad_address),
        cmocka_unit_test(test_bypassed_table),
        cmocka_unit_test(test_connect_table),
        cmocka_unit_test(test_connect_head_too_large),
        cmocka_unit_test(test_connect_literal_proxy_skips_resolver),
        cmocka_unit_test(test_connect_tries_each_address),
        cmocka_unit_test(test_connect_closed_port_unreachable),
        cmocka_unit_test(test_connect_ipv6_proxy_reason),
        cmocka_unit_test(test_connect_resolver_failure),
        cmocka_unit_test(test_connect_stopped),
        cmocka_unit_test(test_connect_bad_arguments),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
