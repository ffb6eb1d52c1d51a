/* Unit tests for lib/http_head.h, the one head grammar: np_http_hop_by_hop (the fixed names
 * of RFC 9110 §7.6.1 plus Proxy-Connection in any case, names listed in Connection headers,
 * never Content-Length), the status line, the framing rules shared by requests and responses,
 * header lookup and case-insensitive names. (np_head_scan is tested with the request's caps in
 * test_http_request.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "http_head.h"
#include "http_request.h"

struct hop_row {
    const char *name;
    bool want;
};

/* Without any Connection header: only the fixed list. */
static const struct hop_row fixed_rows[] = {
    {"Connection", true},
    {"connection", true},
    {"Keep-Alive", true},
    {"KEEP-ALIVE", true},
    {"Proxy-Connection", true},
    {"Proxy-Authenticate", true},
    {"Proxy-Authorization", true},
    {"proxy-authorization", true},
    {"TE", true},
    {"te", true},
    {"Trailer", true},
    {"Transfer-Encoding", true},
    {"transfer-encoding", true},
    {"Upgrade", true},
    {"Trailers", false}, /* not a prefix match */
    {"Connections", false},
    {"Connectio", false},
    {"T", false},
    {"Host", false},
    {"Content-Length", false},
    {"Authorization", false},
    {"X-Hop", false},
    {"", false},
};

static void
fixed_names_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(fixed_rows) / sizeof(fixed_rows[0]); i++) {
        print_message("fixed: '%s'\n", fixed_rows[i].name);
        assert_int_equal(
            np_http_hop_by_hop(fixed_rows[i].name, strlen(fixed_rows[i].name), NULL, 0),
            fixed_rows[i].want);
    }
}

/* Names listed in any Connection header (comma list, OWS around elements, empty elements). */
static const char connection_head[] = "GET / HTTP/1.1\r\n"
                                      "Host: h\r\n"
                                      "Connection: keep-alive, X-Foo ,x-bar\r\n"
                                      "X-Foo: 1\r\n"
                                      "Connection: ,  ,\tX-Second\t, close\r\n"
                                      "X-Listed-Elsewhere: Connection, X-Not-Listed\r\n"
                                      "\r\n";

static const struct hop_row listed_rows[] = {
    {"X-Foo", true},
    {"x-foo", true},
    {"X-BAR", true},
    {"X-Second", true},
    {"close", true},      /* a connection option named like a field is still listed */
    {"keep-alive", true}, /* also fixed */
    {"X-Fo", false},
    {"X-Foo ", false},
    {"X-Foo,x-bar", false},
    {"X-Not-Listed", false}, /* only Connection headers list names */
    {"X-Listed-Elsewhere", false},
    {"Content-Type", false},
    {"Host", false},
    {"TE", true},
};

static void
connection_listed_table(void **state)
{
    struct np_http_req req;
    const char *why = NULL;
    size_t i;

    (void)state;
    assert_int_equal(np_http_req_parse(connection_head, strlen(connection_head), &req, &why), 0);
    for (i = 0; i < sizeof(listed_rows) / sizeof(listed_rows[0]); i++) {
        print_message("listed: '%s'\n", listed_rows[i].name);
        assert_int_equal(np_http_hop_by_hop(listed_rows[i].name, strlen(listed_rows[i].name),
                                            req.headers, req.n_headers),
                         listed_rows[i].want);
    }
}

/* Only name[0..name_len) is compared; an empty Connection value lists nothing. */
static void
length_and_empty_value(void **state)
{
    static const char head[] = "GET / HTTP/1.1\r\nHost: h\r\nConnection:\r\n\r\n";
    struct np_http_req req;
    const char *why = NULL;

    (void)state;
    assert_true(np_http_hop_by_hop("TEXT", 2, NULL, 0));
    assert_false(np_http_hop_by_hop("Upgrade", 6, NULL, 0));
    assert_false(np_http_hop_by_hop(NULL, 0, NULL, 0));
    assert_int_equal(np_http_req_parse(head, strlen(head), &req, &why), 0);
    assert_false(np_http_hop_by_hop("X", 1, req.headers, req.n_headers));
    assert_false(np_http_hop_by_hop("", 0, req.headers, req.n_headers));
}

/* Issue #9 hole 8: framing is never hop-by-hop. "Connection: Content-Length" does not make
 * Content-Length hop-by-hop (it would strip a response's framing while the client connection
 * stays open), in any case and among other names; Transfer-Encoding stays hop-by-hop because
 * the proxy re-frames every body itself. */
static void
content_length_is_never_hop_by_hop(void **state)
{
    static const char head[] = "POST / HTTP/1.1\r\nHost: h\r\n"
                               "Connection: close, Content-Length, X-Gone\r\n"
                               "connection: CONTENT-LENGTH\r\nContent-Length: 5\r\n\r\n";
    struct np_http_req req;
    const char *why = NULL;

    (void)state;
    assert_int_equal(np_http_req_parse(head, strlen(head), &req, &why), 0);
    assert_false(np_http_hop_by_hop("Content-Length", 14, req.headers, req.n_headers));
    assert_false(np_http_hop_by_hop("content-length", 14, req.headers, req.n_headers));
    assert_false(np_http_hop_by_hop("CONTENT-LENGTH", 14, NULL, 0));
    assert_true(np_http_hop_by_hop("X-Gone", 6, req.headers, req.n_headers)); /* the control */
    assert_true(np_http_hop_by_hop("Transfer-Encoding", 17, req.headers, req.n_headers));
    assert_true(req.has_content_length);
    assert_int_equal(req.content_length, 5);
}

/* The request and response parsers each had their own copy of these rules, and the copies
 * differed: the request's name comparison took the word in lower case only. One copy now
 * folds both sides. */
static void
names_compare_ignoring_case_on_both_sides(void **state)
{
    static const struct np_header hs[] = {
        {"Content-Type", 12, "a", 1},
        {"X-Dup", 5, "first", 5},
        {"x-dup", 5, "second", 6},
    };

    (void)state;
    assert_true(np_http_ieq("Content-Length", 14, "content-length"));
    assert_true(np_http_ieq("content-length", 14, "Content-Length")); /* the old request copy: no */
    assert_true(np_http_ieq("TRANSFER-ENCODING", 17, "Transfer-Encoding"));
    assert_false(np_http_ieq("Content-Lengt", 13, "content-length"));
    assert_false(np_http_ieq("Content-Lengths", 15, "content-length"));
    assert_ptr_equal(np_header_find(hs, 3, "CONTENT-TYPE"), &hs[0]);
    assert_ptr_equal(np_header_find(hs, 3, "x-DUP"), &hs[1]); /* the first of two */
    assert_null(np_header_find(hs, 3, "Content"));
    assert_null(np_header_find(hs, 0, "X-Dup"));
}

/* The status line: one copy for upstream answers and the enterprise proxy's CONNECT answer
 * (whose own parser used to take any "HTTP/1.x" and control bytes in the reason). */
static void
status_line_table(void **state)
{
    static const struct {
        const char *line;
        const char *why; /* NULL: accepted */
        unsigned status;
    } rows[] = {
        {"HTTP/1.1 200 OK", NULL, 200},
        {"HTTP/1.0 407 Proxy Authentication Required", NULL, 407},
        {"HTTP/1.1 204", NULL, 204},
        {"HTTP/1.1 502 Bad Gateway \xc3\xa9", NULL, 502}, /* obs-text */
        {"HTTP/1.1 200 a\tb", NULL, 200},
        {"HTTP/1.2 200 OK", "unsupported HTTP version", 0},
        {"HTTP/2.0 200 OK", "unsupported HTTP version", 0},
        {"HTTP/1.1 099 X", "invalid status code", 0},
        {"HTTP/1.1 600 X", "invalid status code", 0},
        {"HTTP/1.1 200 O\x01K", "malformed status line", 0},
        {"HTTP/1.1 200 O\x7fK", "malformed status line", 0},
        {"HTTP/1.1 20 OK", "malformed status line", 0},
        {"HTTP/1.1  200 OK", "malformed status line", 0},
        {"HTTP/1.1 200OK", "malformed status line", 0},
        {"http/1.1 200 OK", "malformed status line", 0},
        {"ICY 200 OK", "malformed status line", 0},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct np_head_view v;
        struct np_slice l = {rows[i].line, strlen(rows[i].line)};
        const char *why;

        memset(&v, 0, sizeof(v));
        why = np_head_check_status_line(&l, &v);
        if ((why == NULL) != (rows[i].why == NULL) ||
            (why != NULL && strcmp(why, rows[i].why) != 0)) {
            fail_msg("row %zu: why \"%s\"", i, why != NULL ? why : "(accepted)");
        }
        if (why == NULL) {
            assert_int_equal(v.status, rows[i].status);
        }
    }
    assert_true(np_head_status_prefix_ok("HTTP/1.1 2", 10));
    assert_true(np_head_status_prefix_ok("HTT", 3));
    assert_false(np_head_status_prefix_ok("HTTP/2", 6));
    assert_false(np_head_status_prefix_ok("SSH-2.0", 7));
    assert_false(np_head_status_prefix_ok("HTTP/1.1x", 9));
}

/* The framing rules, in their order, for requests and responses alike. */
static void
framing_rules_table(void **state)
{
    static const struct {
        const char *fields; /* header lines, each ending in \n */
        unsigned short minor;
        const char *why;
        bool unsupported;
    } rows[] = {
        {"Content-Length: 5\n", 1, NULL, false},
        {"Transfer-Encoding: chunked\n", 1, NULL, false},
        {"Transfer-Encoding: gzip, chunked\n", 1,
         "transfer codings other than chunked are not supported", true},
        {"Transfer-Encoding: gzip\nTransfer-Encoding: chunked\n", 1,
         "transfer codings other than chunked are not supported", true},
        {"Transfer-Encoding: gzip\n", 1, "unsupported Transfer-Encoding", false},
        {"Transfer-Encoding: chunked, gzip\n", 1, "unsupported Transfer-Encoding", false},
        {"Transfer-Encoding: chunked\nContent-Length: 5\n", 1,
         "both Content-Length and Transfer-Encoding", false},
        {"Transfer-Encoding: chunked\n", 0, "Transfer-Encoding in an HTTP/1.0 request", false},
        {"Content-Length: 5\nContent-Length: 5\n", 1, "duplicate Content-Length", false},
        {"Content-Length: 5\nContent-Length: 6\n", 1, "conflicting Content-Length", false},
        {"Content-Length: +5\n", 1, "invalid Content-Length", false},
        {"Content-Length : 5\n", 1, "invalid header", false},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct np_head_view v;
        const char *f = rows[i].fields;
        size_t len = strlen(f);
        size_t pos = 0;
        struct np_slice l;
        const char *why = NULL;
        bool unsupported = false;

        memset(&v, 0, sizeof(v));
        v.major = 1;
        v.minor = rows[i].minor;
        while (why == NULL && np_head_next_line(f, len, &pos, &l)) {
            why = np_head_check_field(&l, &v);
        }
        if (why == NULL) {
            why = np_head_check_framing(&v, true, &unsupported);
        }
        if ((why == NULL) != (rows[i].why == NULL) ||
            (why != NULL && strcmp(why, rows[i].why) != 0) || unsupported != rows[i].unsupported) {
            fail_msg("row %zu: why \"%s\" unsupported %d", i, why != NULL ? why : "(accepted)",
                     (int)unsupported);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixed_names_table),
        cmocka_unit_test(connection_listed_table),
        cmocka_unit_test(length_and_empty_value),
        cmocka_unit_test(content_length_is_never_hop_by_hop),
        cmocka_unit_test(names_compare_ignoring_case_on_both_sides),
        cmocka_unit_test(status_line_table),
        cmocka_unit_test(framing_rules_table),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
