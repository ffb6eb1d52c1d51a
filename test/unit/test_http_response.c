/* Unit tests for lib/http_response.h: response heads (every acceptance and rejection rule,
 * through the grammar of http_head.h) and their body framing decisions. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"
#include "http_response.h"

/* ---------------------------------------------------------------------------------------- */
/* np_http_resp_parse: accepted heads                                                        */
/* ---------------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    const char *head;
    unsigned status;
    unsigned short minor;
    bool has_cl;
    uint64_t cl;
    bool chunked;
    bool keep_alive;
} accept_rows[] = {
    {"http11_length_keeps_alive", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 200, 1, true, 5,
     false, true},
    {"http10_closes_by_default", "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", 200, 0, true, 5,
     false, false},
    {"http10_keep_alive_header",
     "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\n", 200, 0, true, 5,
     false, true},
    {"http11_connection_close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n",
     200, 1, true, 5, false, false},
    {"chunked_keeps_alive", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 200, 1, false,
     0, true, true},
    {"chunked_case_insensitive", "HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n", 200, 1,
     false, 0, true, true},
    {"no_length_is_close_delimited", "HTTP/1.1 200 OK\r\n\r\n", 200, 1, false, 0, false, false},
    {"length_zero", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, 1, true, 0, false, true},
    {"length_max_parser_limit", "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551609\r\n\r\n",
     200, 1, true, UINT64_C(18446744073709551609), false, true},
    {"no_content_204_keeps_alive", "HTTP/1.1 204 No Content\r\n\r\n", 204, 1, false, 0, false,
     true},
    {"not_modified_304_keeps_alive", "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", 304, 1,
     false, 0, false, true},
    {"interim_100", "HTTP/1.1 100 Continue\r\n\r\n", 100, 1, false, 0, false, true},
    {"reason_absent", "HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", 200, 1, true, 1, false, true},
    {"reason_empty", "HTTP/1.1 404 \r\nContent-Length: 1\r\n\r\n", 404, 1, true, 1, false, true},
    {"reason_with_spaces", "HTTP/1.1 503 Service  Unavailable\r\nContent-Length: 1\r\n\r\n", 503, 1,
     true, 1, false, true},
    {"status_599", "HTTP/1.1 599 X\r\nContent-Length: 1\r\n\r\n", 599, 1, true, 1, false, true},
    {"lf_line_endings", "HTTP/1.1 200 OK\nContent-Length: 2\n\n", 200, 1, true, 2, false, true},
    {"length_ows_trimmed", "HTTP/1.1 200 OK\r\nContent-Length: \t7 \r\n\r\n", 200, 1, true, 7,
     false, true},
};

/* Check status, version, framing fields and keep-alive of every accepted head. */
static void
resp_parse_accepts(void **state)
{
    struct np_http_resp *resp = calloc(1, sizeof(*resp));
    size_t i;

    NP_UNUSED(state);
    assert_non_null(resp);
    for (i = 0; i < NP_ARRAY_LEN(accept_rows); i++) {
        const char *why = "unset";
        const char *h = accept_rows[i].head;
        int rc = np_http_resp_parse(h, strlen(h), resp, &why);

        if (rc != 0) {
            fail_msg("%s: rejected (%s)", accept_rows[i].name, why);
        }
        assert_null(why);
        assert_int_equal(resp->status, accept_rows[i].status);
        assert_int_equal(resp->http_major, 1);
        assert_int_equal(resp->http_minor, accept_rows[i].minor);
        assert_int_equal(resp->has_content_length, accept_rows[i].has_cl);
        assert_true(resp->content_length == accept_rows[i].cl);
        assert_int_equal(resp->chunked, accept_rows[i].chunked);
        if (resp->keep_alive != accept_rows[i].keep_alive) {
            fail_msg("%s: keep_alive %d", accept_rows[i].name, resp->keep_alive);
        }
    }
    free(resp);
}

/* ---------------------------------------------------------------------------------------- */
/* np_http_resp_parse: rejected heads                                                        */
/* ---------------------------------------------------------------------------------------- */

#define NUL_HEAD "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n"

static const struct {
    const char *name;
    const char *head;
    size_t len; /* 0: strlen(head) */
    const char *why;
} reject_rows[] = {
    {"version_2", "HTTP/2.0 200 OK\r\n\r\n", 0, "unsupported HTTP version"},
    {"version_0_9", "HTTP/0.9 200 OK\r\n\r\n", 0, "unsupported HTTP version"},
    {"version_1_2", "HTTP/1.2 200 OK\r\n\r\n", 0, "unsupported HTTP version"},
    {"version_without_minor", "HTTP/2 200 OK\r\n\r\n", 0, "malformed status line"},
    {"not_http", "ICY 200 OK\r\n\r\n", 0, "malformed status line"},
    {"lower_case_http", "http/1.1 200 OK\r\n\r\n", 0, "malformed status line"},
    {"status_two_digits", "HTTP/1.1 20 OK\r\n\r\n", 0, "malformed status line"},
    {"status_four_digits", "HTTP/1.1 2000 OK\r\n\r\n", 0, "malformed status line"},
    {"status_letters", "HTTP/1.1 2x0 OK\r\n\r\n", 0, "malformed status line"},
    {"status_two_spaces", "HTTP/1.1  200 OK\r\n\r\n", 0, "malformed status line"},
    {"status_below_100", "HTTP/1.1 099 X\r\n\r\n", 0, "invalid status code"},
    {"status_above_599", "HTTP/1.1 600 X\r\n\r\n", 0, "invalid status code"},
    {"reason_control_char", "HTTP/1.1 200 O\x01K\r\n\r\n", 0, "malformed status line"},
    {"reason_del", "HTTP/1.1 200 O\x7fK\r\n\r\n", 0, "malformed status line"},
    {"cl_and_te", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
     "both Content-Length and Transfer-Encoding"},
    {"te_and_cl", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n", 0,
     "both Content-Length and Transfer-Encoding"},
    {"cl_differing_duplicate", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
     0, "conflicting Content-Length"},
    {"cl_equal_duplicate", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 0,
     "duplicate Content-Length"},
    {"cl_list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", 0, "invalid Content-Length"},
    {"cl_letters", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", 0, "invalid Content-Length"},
    {"cl_negative", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, "invalid Content-Length"},
    {"cl_plus", "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", 0, "invalid Content-Length"},
    {"cl_empty", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", 0, "invalid Content-Length"},
    {"cl_inner_space", "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n", 0,
     "invalid Content-Length"},
    {"cl_overflow", "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551610\r\n\r\n", 0,
     "invalid Content-Length"},
    {"te_coding_after_chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 0,
     "unsupported Transfer-Encoding"},
    {"te_chunked_twice",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
     "unsupported Transfer-Encoding"},
    {"te_empty_element", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,,chunked\r\n\r\n", 0,
     "unsupported Transfer-Encoding"},
    {"te_in_http10", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
     "Transfer-Encoding in an HTTP/1.0 response"},
    /* Issue #9 hole 10: the proxy re-frames every body; another coding would be dropped. */
    {"te_gzip_then_chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0,
     "transfer codings other than chunked are not supported"},
    {"te_gzip_alone", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0,
     "unsupported Transfer-Encoding"},
    {"te_gzip_then_chunked_in_two_fields",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
     "transfer codings other than chunked are not supported"},
    {"header_name_space", "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", 0, "invalid header"},
    {"header_space_before_colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n", 0,
     "invalid header"},
    {"header_no_colon", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", 0, "invalid header"},
    {"header_empty_name", "HTTP/1.1 200 OK\r\n: x\r\n\r\n", 0, "invalid header"},
    {"obs_fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", 0, "malformed response head"},
    {"bare_cr", "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", 0, "malformed response head"},
    {"nul_byte", NUL_HEAD, sizeof(NUL_HEAD) - 1, "malformed response head"},
    {"incomplete_head", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", 0, "malformed response head"},
    {"bytes_after_head", "HTTP/1.1 200 OK\r\n\r\nhello", 0, "malformed response head"},
};

/* Check that every rule rejects, with its reason, and that *resp is zeroed. */
static void
resp_parse_rejects(void **state)
{
    struct np_http_resp *resp = calloc(1, sizeof(*resp));
    size_t i;

    NP_UNUSED(state);
    assert_non_null(resp);
    for (i = 0; i < NP_ARRAY_LEN(reject_rows); i++) {
        const char *why = NULL;
        const char *h = reject_rows[i].head;
        size_t len = reject_rows[i].len != 0 ? reject_rows[i].len : strlen(h);
        int rc;

        resp->status = 777;
        rc = np_http_resp_parse(h, len, resp, &why);
        if (rc != -1 || why == NULL || strcmp(why, reject_rows[i].why) != 0) {
            fail_msg("%s: rc %d why \"%s\"", reject_rows[i].name, rc, why ? why : "(null)");
        }
        assert_int_equal(resp->status, 0);
        assert_int_equal(resp->n_headers, 0);
    }
    assert_int_equal(
        np_http_resp_parse(reject_rows[0].head, strlen(reject_rows[0].head), resp, NULL),
        -1); /* why may be NULL */
    free(resp);
}

/* Check that header names and trimmed values point into the head, in order, and that lookup
 * is case-insensitive over the whole name. */
static void
resp_headers_trimmed_and_found(void **state)
{
    static const char head[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type:   text/event-stream  \r\n"
                               "X-Empty:\r\n"
                               "cache-control:\tno-cache\t\r\n"
                               "Content-Length: 3\r\n\r\n";
    struct np_http_resp *resp = calloc(1, sizeof(*resp));
    const struct np_header *h;

    NP_UNUSED(state);
    assert_non_null(resp);
    assert_int_equal(np_http_resp_parse(head, sizeof(head) - 1, resp, NULL), 0);
    assert_int_equal(resp->n_headers, 4);
    assert_int_equal(resp->headers[0].name_len, 12);
    assert_memory_equal(resp->headers[0].name, "Content-Type", 12);
    assert_int_equal(resp->headers[0].value_len, 17);
    assert_memory_equal(resp->headers[0].value, "text/event-stream", 17);
    assert_int_equal(resp->headers[1].value_len, 0);
    assert_true(resp->headers[1].value >= head && resp->headers[1].value < head + sizeof(head));
    h = np_header_find(resp->headers, resp->n_headers, "Cache-Control");
    assert_non_null(h);
    assert_int_equal(h->value_len, 8);
    assert_memory_equal(h->value, "no-cache", 8);
    assert_ptr_equal(np_header_find(resp->headers, resp->n_headers, "content-type"),
                     &resp->headers[0]);
    assert_null(np_header_find(resp->headers, resp->n_headers, "Content"));
    assert_null(np_header_find(resp->headers, resp->n_headers, "Content-Types"));
    free(resp);
}

/* ---------------------------------------------------------------------------------------- */
/* Framing decisions                                                                         */
/* ---------------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    const char *head;
    bool head_request;
    enum np_framing expect;
} resp_framing_rows[] = {
    {"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, NP_FRAME_LENGTH},
    {"length_zero_is_none", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, NP_FRAME_NONE},
    {"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, NP_FRAME_CHUNKED},
    {"neither_is_close", "HTTP/1.1 200 OK\r\n\r\n", false, NP_FRAME_CLOSE},
    {"http10_neither_is_close", "HTTP/1.0 200 OK\r\n\r\n", false, NP_FRAME_CLOSE},
    {"head_with_length_is_none", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true,
     NP_FRAME_NONE},
    {"head_with_chunked_is_none", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true,
     NP_FRAME_NONE},
    {"head_with_neither_is_none", "HTTP/1.1 200 OK\r\n\r\n", true, NP_FRAME_NONE},
    {"status_100_is_none", "HTTP/1.1 100 Continue\r\n\r\n", false, NP_FRAME_NONE},
    {"status_103_with_length_is_none", "HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\n\r\n",
     false, NP_FRAME_NONE},
    {"status_204_with_length_is_none", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
     false, NP_FRAME_NONE},
    {"status_204_chunked_is_none", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
     false, NP_FRAME_NONE},
    {"status_304_with_length_is_none", "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
     false, NP_FRAME_NONE},
    {"status_304_neither_is_none", "HTTP/1.1 304 Not Modified\r\n\r\n", false, NP_FRAME_NONE},
    {"status_205_neither_is_close", "HTTP/1.1 205 Reset Content\r\n\r\n", false, NP_FRAME_CLOSE},
    {"status_404_length", "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\n", false,
     NP_FRAME_LENGTH},
};

/* Check np_http_resp_framing on parsed heads (RFC 9112 §6.3). */
static void
resp_framing_table(void **state)
{
    struct np_http_resp *resp = calloc(1, sizeof(*resp));
    size_t i;

    NP_UNUSED(state);
    assert_non_null(resp);
    for (i = 0; i < NP_ARRAY_LEN(resp_framing_rows); i++) {
        const char *h = resp_framing_rows[i].head;
        enum np_framing got;

        assert_int_equal(np_http_resp_parse(h, strlen(h), resp, NULL), 0);
        got = np_http_resp_framing(resp, resp_framing_rows[i].head_request);
        if (got != resp_framing_rows[i].expect) {
            fail_msg("%s: framing %d", resp_framing_rows[i].name, (int)got);
        }
    }
    free(resp);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resp_parse_accepts),
        cmocka_unit_test(resp_parse_rejects),
        cmocka_unit_test(resp_headers_trimmed_and_found),
        cmocka_unit_test(resp_framing_table),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
