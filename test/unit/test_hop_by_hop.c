/* Unit tests for np_http_hop_by_hop (lib/http_req.h): the fixed hop-by-hop names of RFC 9110
 * §7.6.1 (plus Proxy-Connection) in any case, and names listed in Connection headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "http_req.h"

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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixed_names_table),
        cmocka_unit_test(connection_listed_table),
        cmocka_unit_test(length_and_empty_value),
        cmocka_unit_test(content_length_is_never_hop_by_hop),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
