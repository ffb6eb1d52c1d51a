/* Unit tests for lib/http_resp.h: reason phrases, exact response bytes, Content-Length always
 * equal to the body, and all-or-nothing output when the buffer is too small. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"
#include "http_answer.h"

/* np_http_format_response with its answer spelled out. */
static size_t
fmt(char *buf, size_t cap, int status, const char *extra, const char *type, const char *body)
{
    struct np_answer a = {status, extra, type, body};

    return np_http_format_response(buf, cap, &a);
}

/* ---------------------------------------------------------------------------------------- */
/* Reason phrases                                                                            */
/* ---------------------------------------------------------------------------------------- */

static const struct {
    int status;
    const char *reason;
} reason_rows[] = {
    {200, "OK"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {0, "Unknown"},
    {-1, "Unknown"},
    {299, "Unknown"},
    {999, "Unknown"},
};

/* Check the reason phrase of each status the proxy sends, and "Unknown" for the others. */
static void
reason_table(void **state)
{
    size_t i;

    NP_UNUSED(state);
    for (i = 0; i < NP_ARRAY_LEN(reason_rows); i++) {
        assert_string_equal(np_http_reason(reason_rows[i].status), reason_rows[i].reason);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Exact bytes                                                                               */
/* ---------------------------------------------------------------------------------------- */

/* One response: which formatter, its arguments and the exact expected bytes. */
struct resp_row {
    const char *name;
    int text_error; /* 1: np_http_format_text_error(status, extra, body) */
    int status;
    const char *extra;
    const char *content_type;
    const char *body;
    const char *want;
};

static const struct resp_row resp_rows[] = {
    {"forbidden_with_body", 0, 403, NULL, "text/plain", "denied\n",
     "HTTP/1.1 403 Forbidden\r\n"
     "Content-Type: text/plain\r\n"
     "Content-Length: 7\r\n"
     "Connection: close\r\n"
     "\r\n"
     "denied\n"},
    {"proxy_auth_no_body_no_content_type", 0, 407, "Proxy-Authenticate: Basic realm=\"nono\"\r\n",
     "text/plain", NULL,
     "HTTP/1.1 407 Proxy Authentication Required\r\n"
     "Proxy-Authenticate: Basic realm=\"nono\"\r\n"
     "Content-Length: 0\r\n"
     "Connection: close\r\n"
     "\r\n"},
    {"empty_body_same_as_null", 0, 200, NULL, "text/plain", "",
     "HTTP/1.1 200 OK\r\n"
     "Content-Length: 0\r\n"
     "Connection: close\r\n"
     "\r\n"},
    {"two_extra_headers_json", 0, 503, "Retry-After: 1\r\nX-A: b\r\n", "application/json",
     "{\"error\":\"busy\"}",
     "HTTP/1.1 503 Service Unavailable\r\n"
     "Retry-After: 1\r\n"
     "X-A: b\r\n"
     "Content-Type: application/json\r\n"
     "Content-Length: 16\r\n"
     "Connection: close\r\n"
     "\r\n"
     "{\"error\":\"busy\"}"},
    {"body_crlf_kept", 0, 400, "", "text/plain", "a\r\nb\n%s%n",
     "HTTP/1.1 400 Bad Request\r\n"
     "Content-Type: text/plain\r\n"
     "Content-Length: 9\r\n"
     "Connection: close\r\n"
     "\r\n"
     "a\r\nb\n%s%n"},
    {"unknown_status", 0, 599, NULL, NULL, NULL,
     "HTTP/1.1 599 Unknown\r\n"
     "Content-Length: 0\r\n"
     "Connection: close\r\n"
     "\r\n"},
    {"text_error_plain", 1, 403, NULL, NULL, "host denied: evil.example",
     "HTTP/1.1 403 Forbidden\r\n"
     "Content-Type: text/plain; charset=utf-8\r\n"
     "Content-Length: 26\r\n"
     "Connection: close\r\n"
     "\r\n"
     "host denied: evil.example\n"},
    {"text_error_controls_become_spaces", 1, 502, NULL, NULL, "a\r\nb\tc\x7f\x1b[0m",
     "HTTP/1.1 502 Bad Gateway\r\n"
     "Content-Type: text/plain; charset=utf-8\r\n"
     "Content-Length: 12\r\n"
     "Connection: close\r\n"
     "\r\n"
     "a  b c  [0m\n"},
    {"text_error_utf8_kept", 1, 400, NULL, NULL, "caf\xc3\xa9",
     "HTTP/1.1 400 Bad Request\r\n"
     "Content-Type: text/plain; charset=utf-8\r\n"
     "Content-Length: 6\r\n"
     "Connection: close\r\n"
     "\r\n"
     "caf\xc3\xa9\n"},
    {"text_error_null_line", 1, 414, NULL, NULL, NULL,
     "HTTP/1.1 414 URI Too Long\r\n"
     "Content-Type: text/plain; charset=utf-8\r\n"
     "Content-Length: 1\r\n"
     "Connection: close\r\n"
     "\r\n"
     "\n"},
    {"text_error_with_extra_header", 1, 503, "Retry-After: 1\r\n", NULL, "too many connections",
     "HTTP/1.1 503 Service Unavailable\r\n"
     "Retry-After: 1\r\n"
     "Content-Type: text/plain; charset=utf-8\r\n"
     "Content-Length: 21\r\n"
     "Connection: close\r\n"
     "\r\n"
     "too many connections\n"},
};

static size_t
format_row(const struct resp_row *r, char *buf, size_t cap)
{
    if (r->text_error) {
        return np_http_format_text_error(buf, cap, r->status, r->extra, r->body);
    }
    return fmt(buf, cap, r->status, r->extra, r->content_type, r->body);
}

/* Check the exact bytes of every row, NUL-terminated. */
static void
exact_bytes(void **state)
{
    char buf[1024];
    size_t i;

    NP_UNUSED(state);
    for (i = 0; i < NP_ARRAY_LEN(resp_rows); i++) {
        const struct resp_row *r = &resp_rows[i];
        size_t n;

        memset(buf, 'Z', sizeof(buf));
        n = format_row(r, buf, sizeof(buf));
        if (n != strlen(r->want) || memcmp(buf, r->want, n) != 0) {
            print_error("row %s: got %zu bytes \"%.*s\"\n", r->name, n, (int)n, buf);
            fail();
        }
        assert_int_equal(buf[n], '\0');
    }
}

/* Parse the Content-Length header out of a formatted response and check it against the
 * number of bytes after the blank line. */
static void
check_content_length(const char *resp, size_t n)
{
    const char *end = strstr(resp, "\r\n\r\n");
    const char *cl = strstr(resp, "\r\nContent-Length: ");
    char *num_end = NULL;
    unsigned long v;

    assert_non_null(end);
    assert_non_null(cl);
    assert_true(cl < end);
    v = strtoul(cl + strlen("\r\nContent-Length: "), &num_end, 10);
    assert_memory_equal(num_end, "\r\n", 2);
    assert_int_equal(v, n - (size_t)(end + 4 - resp));
    assert_non_null(strstr(resp, "\r\nConnection: close\r\n\r\n"));
}

/* Check that Content-Length equals the body length for bodies of many sizes and contents. */
static void
content_length_matches_body(void **state)
{
    char body[300];
    char buf[1024];
    size_t len;

    NP_UNUSED(state);
    for (len = 0; len < sizeof(body); len++) {
        size_t n;

        memset(body, len % 2 ? '\n' : 'x', len);
        body[len] = '\0';
        n = fmt(buf, sizeof(buf), 404, NULL, "application/json", body);
        assert_true(n > 0);
        check_content_length(buf, n);
        n = np_http_format_text_error(buf, sizeof(buf), 400, NULL, body);
        assert_true(n > 0);
        check_content_length(buf, n);
    }
}

/* Check that every capacity below the needed one gives 0 and an empty buffer (never a
 * partial response), and that exactly enough room (length + NUL) succeeds. */
static void
truncation_returns_zero(void **state)
{
    char buf[1024];
    size_t i;
    size_t cap;

    NP_UNUSED(state);
    for (i = 0; i < NP_ARRAY_LEN(resp_rows); i++) {
        const struct resp_row *r = &resp_rows[i];
        size_t need = strlen(r->want) + 1;

        for (cap = 1; cap < need; cap++) {
            memset(buf, 'Z', sizeof(buf));
            if (format_row(r, buf, cap) != 0) {
                print_error("row %s: cap %zu of %zu did not return 0\n", r->name, cap, need);
                fail();
            }
            assert_int_equal(buf[0], '\0');
            assert_int_equal(buf[cap], 'Z'); /* nothing written past cap */
        }
        memset(buf, 'Z', sizeof(buf));
        assert_int_equal(format_row(r, buf, need), need - 1);
        assert_memory_equal(buf, r->want, need - 1);
        assert_int_equal(buf[need], 'Z');
    }
    assert_int_equal(fmt(NULL, 0, 200, NULL, NULL, NULL), 0);
    assert_int_equal(np_http_format_text_error(NULL, 0, 400, NULL, "x"), 0);
}

/* Check that malformed extra headers (which could end the head early or inject a line) and
 * statuses that are not three digits are refused. */
static void
bad_arguments_refused(void **state)
{
    static const char *const bad_extra[] = {
        "X: y",           /* no CRLF */
        "X: y\n",         /* bare LF */
        "X: y\r",         /* bare CR at end */
        "X: y\rZ: w\r\n", /* bare CR inside */
        "X: y\r\n\r\n",   /* empty line ends the head */
        "\r\n",           /* empty line */
        " X: y\r\n",      /* continuation line */
        "X: y\r\n\tz\r\n",
    };
    char buf[512];
    size_t i;

    NP_UNUSED(state);
    for (i = 0; i < NP_ARRAY_LEN(bad_extra); i++) {
        memset(buf, 'Z', sizeof(buf));
        if (fmt(buf, sizeof(buf), 403, bad_extra[i], NULL, NULL) != 0) {
            print_error("extra headers %zu accepted\n", i);
            fail();
        }
        assert_int_equal(np_http_format_text_error(buf, sizeof(buf), 403, bad_extra[i], "x"), 0);
    }
    assert_int_equal(fmt(buf, sizeof(buf), 99, NULL, NULL, NULL), 0);
    assert_int_equal(fmt(buf, sizeof(buf), 1000, NULL, NULL, NULL), 0);
    assert_int_equal(np_http_format_text_error(buf, sizeof(buf), -403, NULL, "x"), 0);
    assert_true(fmt(buf, sizeof(buf), 100, "", NULL, NULL) > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reason_table),
        cmocka_unit_test(exact_bytes),
        cmocka_unit_test(content_length_matches_body),
        cmocka_unit_test(truncation_returns_zero),
        cmocka_unit_test(bad_arguments_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
