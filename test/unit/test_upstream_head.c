/* Unit tests for lib/upstream_head.h, the one upstream request head of routes and the forward
 * proxy (which each had their own builder): every header that never goes upstream, the
 * injected header, the framing, and overflow wiping what was written. The route's own use
 * (np_route_uphead) is tested in test_route.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "http_request.h"
#include "upstream_head.h"

#define TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void
parse(const char *head, struct np_http_req *req)
{
    const char *why = NULL;

    if (np_http_req_parse(head, strlen(head), req, &why) != 0) {
        fail_msg("parse: %s", why != NULL ? why : "?");
    }
}

/* A forward-style head (no header dropped by name, nothing injected): every rule of the one
 * builder, in one request. */
static void
drops_every_header_that_never_goes_upstream(void **state)
{
    static const char client[] =
        "POST http://origin.test:8080/p?q HTTP/1.1\r\n"
        "Host: elsewhere\r\n"
        "Connection: keep-alive, X-Listed\r\nX-Listed: 1\r\nKeep-Alive: 5\r\n"
        "Proxy-Connection: keep-alive\r\nProxy-Authorization: Bearer " TOKEN "\r\n"
        "TE: trailers\r\nTrailer: X\r\nUpgrade: h2c\r\n"
        "Expect: 100-continue\r\n"
        "X-" TOKEN ": name\r\n"
        "X-Cred: Basic bm9ubzowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzN"
        "DU2Nzg5YWJjZGVm\r\n"
        "X-Upper: 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\r\n"
        "Content-Length: 5\r\n"
        "Accept: */*\r\nX-Keep: 1\r\n\r\n";
    static const char want[] = "POST /p?q HTTP/1.1\r\nHost: origin.test:8080\r\n"
                               "Accept: */*\r\nX-Keep: 1\r\nContent-Length: 5\r\n\r\n";
    struct np_http_req req;
    struct np_uphead u;
    struct np_buf b;
    char out[2048];

    (void)state;
    parse(client, &req);
    memset(&u, 0, sizeof(u));
    u.req = &req;
    u.target = (struct np_slice){"/p?q", 4};
    u.host = (struct np_slice){"origin.test:8080", 16};
    u.token = TOKEN;
    u.body = NP_FRAME_LENGTH;
    u.body_len = 5;
    np_buf_init(&b, out, sizeof(out));
    assert_int_equal(np_uphead_build(&u, &b), 0);
    assert_true(np_buf_ok(&b));
    assert_int_equal(b.len, sizeof(want) - 1);
    assert_memory_equal(out, want, b.len);
}

/* A route-style head: the client's copies of the inject header dropped, the real one added,
 * chunked framing re-stated; too small a buffer fails and leaves no byte of the secret. */
static void
injects_and_wipes_on_overflow(void **state)
{
    static const char client[] = "PUT /svc/x HTTP/1.1\r\nHost: h\r\nX-Api-Key: " TOKEN "\r\n"
                                 "x-api-key: other\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char want[] = "PUT /v1/x HTTP/1.1\r\nHost: api.test\r\nX-Api-Key: sk-real\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n";
    struct np_http_req req;
    struct np_uphead u;
    struct np_buf b;
    char out[512];
    size_t cap;

    (void)state;
    parse(client, &req);
    memset(&u, 0, sizeof(u));
    u.req = &req;
    u.target = (struct np_slice){"/v1/x", 5};
    u.host = (struct np_slice){"api.test", 8};
    u.token = TOKEN;
    u.drop_name = "X-Api-Key";
    u.inject_name = "X-Api-Key";
    u.inject_value = (struct np_slice){"sk-real", 7};
    u.body = NP_FRAME_CHUNKED;
    np_buf_init(&b, out, sizeof(out));
    assert_int_equal(np_uphead_build(&u, &b), 0);
    assert_true(np_buf_ok(&b));
    assert_int_equal(b.len, sizeof(want) - 1);
    assert_memory_equal(out, want, b.len);
    for (cap = 0; cap < sizeof(want) - 1; cap++) {
        memset(out, 'Z', sizeof(out));
        np_buf_init(&b, out, cap);
        assert_int_equal(np_uphead_build(&u, &b), 0);
        assert_false(np_buf_ok(&b));
        assert_null(memmem(out, cap, "sk-real", 7));
    }
    u.body = NP_FRAME_CLOSE; /* a request body is never close-delimited */
    np_buf_init(&b, out, sizeof(out));
    assert_int_equal(np_uphead_build(&u, &b), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(drops_every_header_that_never_goes_upstream),
        cmocka_unit_test(injects_and_wipes_on_overflow),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
