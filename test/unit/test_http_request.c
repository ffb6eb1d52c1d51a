/* Unit tests for lib/http_request.h: request parsing and our framing rules, header lookup,
 * request body framing, CONNECT authority splitting; and the head scanner of http_head.h,
 * whose caps are the request's (at their boundaries and at every split point, each prefix
 * placed right before a PROT_NONE page), with the generators the parse rows share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_request.h"

/* ---------------------------------------------------------------------------------------- */
/* Guard-page buffer: input placed so that its last byte is the last readable byte           */
/* ---------------------------------------------------------------------------------------- */

struct guard {
    char *base;
    size_t map_len;
    char *end; /* first byte of the PROT_NONE page */
};

/* Map enough pages for cap bytes plus one PROT_NONE page after them. */
static void
guard_open(struct guard *g, size_t cap)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (cap + page - 1) / page + 1;
    void *m;

    g->map_len = (data_pages + 1) * page;
    m = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    g->base = m;
    g->end = g->base + data_pages * page;
    assert_int_equal(mprotect(g->end, page, PROT_NONE), 0);
}

static void
guard_close(struct guard *g)
{
    assert_int_equal(munmap(g->base, g->map_len), 0);
}

/* Copy in[0..n) so that it ends right before the guard page; returns its new address. */
static const char *
guard_place(const struct guard *g, const char *in, size_t n)
{
    char *dst = g->end - n;

    if (n > 0) {
        memcpy(dst, in, n);
    }
    return dst;
}

/* ---------------------------------------------------------------------------------------- */
/* np_head_scan table                                                                        */
/* ---------------------------------------------------------------------------------------- */

/* One scanner case. The verdict must appear exactly at prefix length `decide`: every shorter
 * prefix gives NEED_MORE, every longer one the same verdict (and head_len). decide == 0 means
 * the default: head_len for COMPLETE, len for an error (the row ends at its deciding byte),
 * never for NEED_MORE. */
struct scan_row {
    const char *name;
    const char *in;
    size_t len;
    enum np_head_scan want;
    size_t want_head_len;
    size_t decide;
};

/* head and tail are literals: the input is head followed by tail (bytes after the head). */
#define SROW(name, head, tail, want)                                                               \
    name, head tail, sizeof(head tail) - 1, want, sizeof(head) - 1, 0

static const struct scan_row scan_rows[] = {
    {SROW("empty_input_needs_more", "", "", NP_HEAD_NEED_MORE)},
    {SROW("crlf_head_complete", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "", NP_HEAD_COMPLETE)},
    {SROW("lf_only_head_complete", "GET / HTTP/1.1\nHost: a\n\n", "", NP_HEAD_COMPLETE)},
    {SROW("lf_then_crlf_ends_head", "GET / HTTP/1.1\nHost: a\n\r\n", "", NP_HEAD_COMPLETE)},
    {SROW("crlf_then_lf_ends_head", "GET / HTTP/1.1\r\nHost: a\r\n\n", "", NP_HEAD_COMPLETE)},
    {SROW("no_headers_complete", "GET / HTTP/1.1\r\n\r\n", "", NP_HEAD_COMPLETE)},
    {SROW("mixed_line_endings", "GET / HTTP/1.1\r\nA: 1\nB: 2\r\n\n", "", NP_HEAD_COMPLETE)},
    {SROW("body_bytes_not_examined", "POST / HTTP/1.1\r\nContent-Length: 6\r\n\r\n", "\0\r\rx \n",
          NP_HEAD_COMPLETE)},
    {SROW("tunnel_bytes_not_examined", "CONNECT a:443 HTTP/1.1\r\n\r\n", "\x16\x03\x01\0\r",
          NP_HEAD_COMPLETE)},
    {SROW("leading_crlf_ignored", "\r\nGET / HTTP/1.1\r\n\r\n", "", NP_HEAD_COMPLETE)},
    {SROW("leading_lf_ignored", "\n\nGET / HTTP/1.1\r\n\r\n", "", NP_HEAD_COMPLETE)},
    {SROW("leading_8_bytes_allowed", "\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", "",
          NP_HEAD_COMPLETE)},
    {SROW("leading_8_lf_allowed", "\n\n\n\n\n\n\n\nGET / HTTP/1.1\n\n", "", NP_HEAD_COMPLETE)},
    {SROW("leading_9th_lf_malformed", "\n\n\n\n\n\n\n\n\n", "", NP_HEAD_MALFORMED)},
    {SROW("leading_9th_cr_malformed", "\r\n\r\n\r\n\r\n\r", "", NP_HEAD_MALFORMED)},
    {SROW("leading_crlf_crossing_cap_malformed", "\n\n\n\n\n\n\n\r\n", "", NP_HEAD_MALFORMED)},
    {SROW("leading_bare_cr_malformed", "\r\r", "", NP_HEAD_MALFORMED)},
    {SROW("leading_cr_then_text_malformed", "\rG", "", NP_HEAD_MALFORMED)},
    {SROW("nul_first_byte_malformed", "\0", "", NP_HEAD_MALFORMED)},
    {SROW("nul_in_request_line_malformed", "GET /\0", "", NP_HEAD_MALFORMED)},
    {SROW("nul_in_header_value_malformed", "GET / HTTP/1.1\r\nA: \0", "", NP_HEAD_MALFORMED)},
    {SROW("nul_at_header_line_start_malformed", "GET / HTTP/1.1\r\nA: b\r\n\0", "",
          NP_HEAD_MALFORMED)},
    {SROW("bare_cr_in_request_line_malformed", "GET /\rX", "", NP_HEAD_MALFORMED)},
    {SROW("bare_cr_before_version_end_malformed", "GET / HTTP/1.1\r\r", "", NP_HEAD_MALFORMED)},
    {SROW("bare_cr_in_header_malformed", "GET / HTTP/1.1\r\nA: b\rc", "", NP_HEAD_MALFORMED)},
    {SROW("bare_cr_as_final_line_malformed", "GET / HTTP/1.1\r\nA: b\r\n\rX", "",
          NP_HEAD_MALFORMED)},
    {SROW("cr_last_byte_needs_more", "GET / HTTP/1.1\r", "", NP_HEAD_NEED_MORE)},
    {SROW("header_cr_last_byte_needs_more", "GET / HTTP/1.1\r\nA: b\r", "", NP_HEAD_NEED_MORE)},
    {SROW("final_cr_last_byte_needs_more", "GET / HTTP/1.1\r\nA: b\r\n\r", "", NP_HEAD_NEED_MORE)},
    {SROW("partial_head_needs_more", "GET / HTTP/1.1\r\nHost: a\r\n", "", NP_HEAD_NEED_MORE)},
    {SROW("obs_fold_sp_malformed", "GET / HTTP/1.1\r\nA: b\r\n ", "", NP_HEAD_MALFORMED)},
    {SROW("obs_fold_htab_malformed", "GET / HTTP/1.1\nA: b\n\t", "", NP_HEAD_MALFORMED)},
    {SROW("whitespace_first_header_malformed", "GET / HTTP/1.1\r\n ", "", NP_HEAD_MALFORMED)},
    {SROW("whitespace_inside_value_allowed", "GET / HTTP/1.1\r\nA: b \t c\r\n\r\n", "",
          NP_HEAD_COMPLETE)},
};

/* Generated rows for the caps (too big for literals); built once into heap buffers. */
struct built_row {
    struct scan_row row;
    char *buf;
};

struct gen {
    char *buf;
    size_t len;
    size_t cap;
};

static void
gen_put(struct gen *g, const char *s, size_t n)
{
    if (n > g->cap - g->len) {
        size_t cap = (g->cap + n) * 2;
        char *p = realloc(g->buf, cap);

        assert_non_null(p);
        g->buf = p;
        g->cap = cap;
    }
    memcpy(g->buf + g->len, s, n);
    g->len += n;
}

static void
gen_str(struct gen *g, const char *s)
{
    gen_put(g, s, strlen(s));
}

static void
gen_fill(struct gen *g, char ch, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        gen_put(g, &ch, 1);
    }
}

/* A request line of exactly line_len bytes (without its ending): "GET /aaa...a HTTP/1.1". */
static void
gen_request_line(struct gen *g, size_t line_len)
{
    gen_str(g, "GET /");
    gen_fill(g, 'a', line_len - strlen("GET /") - strlen(" HTTP/1.1"));
    gen_str(g, " HTTP/1.1");
}

/* Header lines "X: vvv<eol>" totalling exactly total bytes, line endings included, in lines
 * of at most 1000 bytes (so well under the 100-line cap). */
static void
gen_header_block(struct gen *g, size_t total, const char *eol)
{
    size_t eol_len = strlen(eol);
    size_t left = total;

    while (left > 0) {
        size_t line = left > 1000 ? 1000 : left;

        if (left > 1000 && left - 1000 < 16) {
            line = left - 16; /* keep the last line long enough for "X: v" + eol */
        }
        gen_str(g, "X: ");
        gen_fill(g, 'v', line - 3 - eol_len);
        gen_str(g, eol);
        left -= line;
    }
}

/* n header lines "H<i>: v<eol>". */
static void
gen_header_lines(struct gen *g, size_t n, const char *eol)
{
    char line[32];
    size_t i;

    for (i = 0; i < n; i++) {
        int k = snprintf(line, sizeof(line), "H%zu: v%s", i, eol);

        assert_true(k > 0 && (size_t)k < sizeof(line));
        gen_put(g, line, (size_t)k);
    }
}

enum built_kind {
    B_LINE_8192_CRLF,
    B_LINE_8192_LF,
    B_LINE_8192_CR_PENDING,
    B_LINE_8193_OPEN,
    B_LINE_8193_ENDED,
    B_BLOCK_65536_CRLF,
    B_BLOCK_65536_LF,
    B_BLOCK_65537_LF_DECIDES,
    B_BLOCK_65537_CR_DECIDES,
    B_BLOCK_65537_TEXT_DECIDES,
    B_BLOCK_65537_LF_ONLY,
    B_LINES_100_CRLF,
    B_LINES_100_LF,
    B_LINES_101,
    B_KIND_COUNT
};

static const char *const built_names[B_KIND_COUNT] = {
    "request_line_8192_crlf_complete",
    "request_line_8192_lf_complete",
    "request_line_8192_cr_pending_needs_more",
    "request_line_8193_open_uri_too_long",
    "request_line_8193_ended_uri_too_long",
    "header_block_65536_crlf_complete",
    "header_block_65536_lf_complete",
    "header_block_65537th_byte_is_lf_too_large",
    "header_block_65537th_byte_is_cr_too_large",
    "header_block_65537th_byte_is_text_too_large",
    "header_block_65537_lf_only_too_large",
    "header_lines_100_crlf_complete",
    "header_lines_100_lf_complete",
    "header_lines_101_too_large",
};

/* The request line "GET / HTTP/1.1\r\n" that precedes the header-block rows. */
#define RL     "GET / HTTP/1.1\r\n"
#define RL_LEN (sizeof(RL) - 1)

/* Build the bytes of one generated row and its expectations. */
static void
build_row(enum built_kind kind, struct built_row *out)
{
    struct gen g = {NULL, 0, 0};
    struct scan_row *r = &out->row;

    r->name = built_names[kind];
    r->want = NP_HEAD_COMPLETE;
    r->decide = 0;
    switch (kind) {
    case B_LINE_8192_CRLF:
    case B_LINE_8192_LF:
        gen_request_line(&g, NP_MAX_REQUEST_LINE);
        gen_str(&g, kind == B_LINE_8192_LF ? "\n\n" : "\r\n\r\n");
        break;
    case B_LINE_8192_CR_PENDING:
        gen_request_line(&g, NP_MAX_REQUEST_LINE);
        gen_str(&g, "\r");
        r->want = NP_HEAD_NEED_MORE;
        break;
    case B_LINE_8193_OPEN:
    case B_LINE_8193_ENDED:
        gen_request_line(&g, NP_MAX_REQUEST_LINE + 1);
        r->want = NP_HEAD_URI_TOO_LONG;
        r->decide = NP_MAX_REQUEST_LINE + 1;
        if (kind == B_LINE_8193_ENDED) {
            gen_str(&g, "\r\n\r\n");
        }
        break;
    case B_BLOCK_65536_CRLF:
    case B_BLOCK_65536_LF:
        gen_str(&g, RL);
        gen_header_block(&g, NP_MAX_HEADER_BLOCK, kind == B_BLOCK_65536_LF ? "\n" : "\r\n");
        gen_str(&g, kind == B_BLOCK_65536_LF ? "\n" : "\r\n");
        break;
    case B_BLOCK_65537_LF_DECIDES:
    case B_BLOCK_65537_CR_DECIDES:
    case B_BLOCK_65537_TEXT_DECIDES:
    case B_BLOCK_65537_LF_ONLY:
        gen_str(&g, RL);
        gen_header_block(&g,
                         NP_MAX_HEADER_BLOCK + (kind == B_BLOCK_65537_CR_DECIDES     ? 2
                                                : kind == B_BLOCK_65537_TEXT_DECIDES ? 40
                                                                                     : 1),
                         kind == B_BLOCK_65537_LF_ONLY ? "\n" : "\r\n");
        gen_str(&g, "\r\n");
        r->want = NP_HEAD_TOO_LARGE;
        r->decide = RL_LEN + NP_MAX_HEADER_BLOCK + 1;
        break;
    case B_LINES_100_CRLF:
    case B_LINES_100_LF:
        gen_str(&g, kind == B_LINES_100_LF ? "GET / HTTP/1.1\n" : RL);
        gen_header_lines(&g, NP_MAX_HEADERS, kind == B_LINES_100_LF ? "\n" : "\r\n");
        gen_str(&g, kind == B_LINES_100_LF ? "\n" : "\r\n");
        break;
    case B_LINES_101:
        gen_str(&g, RL);
        gen_header_lines(&g, NP_MAX_HEADERS, "\r\n");
        r->decide = g.len + 1; /* the first byte of line 101 */
        gen_header_lines(&g, 1, "\r\n");
        gen_str(&g, "\r\n");
        r->want = NP_HEAD_TOO_LARGE;
        break;
    case B_KIND_COUNT:
        fail();
    }
    out->buf = g.buf;
    r->in = g.buf;
    r->len = g.len;
    r->want_head_len = g.len;
}

/* The prefix length at which r's verdict must first appear (len + 1 = never). */
static size_t
row_decide(const struct scan_row *r)
{
    if (r->decide != 0) {
        return r->decide;
    }
    switch (r->want) {
    case NP_HEAD_COMPLETE:
        return r->want_head_len;
    case NP_HEAD_NEED_MORE:
        return r->len + 1;
    default:
        return r->len;
    }
}

/* Scan the first p bytes of r placed right before the guard page and check the verdict. */
static void
check_prefix(const struct guard *g, const struct scan_row *r, size_t p)
{
    size_t decide = row_decide(r);
    enum np_head_scan want = p < decide ? NP_HEAD_NEED_MORE : r->want;
    size_t head_len = 12345;
    enum np_head_scan got = np_head_scan(guard_place(g, r->in, p), p, &head_len);

    if (got != want) {
        print_error("row %s, prefix %zu of %zu: verdict %d, want %d\n", r->name, p, r->len,
                    (int)got, (int)want);
        fail();
    }
    if (want == NP_HEAD_COMPLETE && head_len != r->want_head_len) {
        print_error("row %s, prefix %zu: head_len %zu, want %zu\n", r->name, p, head_len,
                    r->want_head_len);
        fail();
    }
    if (want != NP_HEAD_COMPLETE && head_len != 12345) {
        print_error("row %s, prefix %zu: head_len written without COMPLETE\n", r->name, p);
        fail();
    }
}

/* Check every prefix 0..len of every literal row, each ending right before a PROT_NONE page. */
static void
head_scan_every_split_point_literal_rows(void **state)
{
    struct guard g;
    size_t i;
    size_t p;

    NP_UNUSED(state);
    guard_open(&g, 4096);
    for (i = 0; i < NP_ARRAY_LEN(scan_rows); i++) {
        for (p = 0; p <= scan_rows[i].len; p++) {
            check_prefix(&g, &scan_rows[i], p);
        }
    }
    guard_close(&g);
}

static bool
is_eol(char ch)
{
    return ch == '\r' || ch == '\n';
}

/* Whether prefix p of a big row is checked: every prefix near the start, near the deciding
 * byte and near the end, every one that ends next to a CR or LF, and every 97th elsewhere
 * (all of them would be quadratic). */
static bool
sampled(const struct scan_row *r, size_t p)
{
    size_t decide = row_decide(r);

    if (p < 64 || p % 97 == 0 || (p + 300 >= decide && p <= decide + 300) || p + 64 >= r->len) {
        return true;
    }
    return is_eol(r->in[p - 1]) || (p < r->len && is_eol(r->in[p]));
}

/* Check the cap rows at and around each boundary, with the guard page after every prefix. */
static void
head_scan_caps_at_boundaries(void **state)
{
    struct guard g;
    int k;
    size_t p;

    NP_UNUSED(state);
    guard_open(&g, NP_MAX_REQUEST_LINE + NP_MAX_HEADER_BLOCK + 4096);
    for (k = 0; k < B_KIND_COUNT; k++) {
        struct built_row b;

        build_row((enum built_kind)k, &b);
        assert_true(b.row.len <= NP_MAX_REQUEST_LINE + NP_MAX_HEADER_BLOCK + 4096);
        for (p = 0; p <= b.row.len; p++) {
            if (sampled(&b.row, p)) {
                check_prefix(&g, &b.row, p);
            }
        }
        free(b.buf);
    }
    guard_close(&g);
}

/* Check the generated rows really sit on the boundary they claim (guards the test itself). */
static void
head_scan_generated_rows_have_claimed_sizes(void **state)
{
    struct built_row b;
    const char *lf;

    NP_UNUSED(state);
    build_row(B_LINE_8192_CRLF, &b);
    lf = memchr(b.buf, '\r', b.row.len);
    assert_non_null(lf);
    assert_int_equal(lf - b.buf, NP_MAX_REQUEST_LINE);
    free(b.buf);

    build_row(B_BLOCK_65536_CRLF, &b);
    assert_int_equal(b.row.len, RL_LEN + NP_MAX_HEADER_BLOCK + 2);
    assert_memory_equal(b.buf + b.row.len - 4, "\r\n\r\n", 4);
    free(b.buf);

    build_row(B_BLOCK_65537_CR_DECIDES, &b);
    assert_int_equal(b.buf[RL_LEN + NP_MAX_HEADER_BLOCK], '\r');
    free(b.buf);

    build_row(B_BLOCK_65537_LF_DECIDES, &b);
    assert_int_equal(b.buf[RL_LEN + NP_MAX_HEADER_BLOCK], '\n');
    assert_int_equal(b.buf[RL_LEN + NP_MAX_HEADER_BLOCK - 1], '\r');
    free(b.buf);

    build_row(B_LINES_101, &b);
    assert_memory_equal(b.buf + b.row.decide - 3, "\r\nH0: v\r\n\r\n", 11);
    assert_memory_equal(b.buf + b.row.decide - 11, "\r\nH99: v\r\nH", 11);
    free(b.buf);
}

/* A verdict, once given, does not change when more bytes (any bytes) arrive. */
static void
head_scan_verdict_stable_when_more_bytes_arrive(void **state)
{
    static const char suffixes[][6] = {"\r\n\r\n", "X", "\0", "\r", " ", "\n"};
    char buf[512];
    size_t i;
    size_t k;

    NP_UNUSED(state);
    for (i = 0; i < NP_ARRAY_LEN(scan_rows); i++) {
        const struct scan_row *r = &scan_rows[i];

        if (r->want == NP_HEAD_NEED_MORE) {
            continue;
        }
        for (k = 0; k < NP_ARRAY_LEN(suffixes); k++) {
            size_t slen = k == 2 ? 1 : strlen(suffixes[k]);
            size_t head_len = 0;

            assert_true(r->len + slen <= sizeof(buf));
            memcpy(buf, r->in, r->len);
            memcpy(buf + r->len, suffixes[k], slen);
            assert_int_equal(np_head_scan(buf, r->len + slen, &head_len), r->want);
            if (r->want == NP_HEAD_COMPLETE) {
                assert_int_equal(head_len, r->want_head_len);
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* np_http_req_parse table                                                                   */
/* ---------------------------------------------------------------------------------------- */

struct parse_row {
    const char *name;
    const char *in;
    const char *why; /* rc != 0 */
    const char *method_name;
    const char *target;
    uint64_t cl;
    int rc;
    enum np_method method;
    unsigned short major;
    unsigned short minor;
    bool has_cl;
    bool chunked;
    bool keep_alive;
};

#define OK_ROW(name, in, m, mn, target, maj, min, has_cl, cl, chunked, ka)                         \
    name, in, NULL, mn, target, cl, 0, m, maj, min, has_cl, chunked, ka
#define BAD_ROW(name, in, why)                                                                     \
    name, in, why, "", NULL, 0, 400, NP_METHOD_OTHER, 0, 0, false, false, false
/* A refusal with another status; the request line is kept for the audit event. */
#define STATUS_ROW(name, in, why, status, mn, target)                                              \
    name, in, why, mn, target, 0, status, NP_METHOD_OTHER, 0, 0, false, false, false
/* A refusal (400) of a well-formed request line whose target holds a forbidden byte. */
#define TARGET_ROW(name, in, mn, target)                                                           \
    name, in, "invalid character in the request target", mn, target, 0, 400, NP_METHOD_OTHER, 0,   \
        0, false, false, false

static const struct parse_row parse_rows[] = {
    {OK_ROW("connect_http11", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            NP_METHOD_CONNECT, "CONNECT", "example.com:443", 1, 1, false, 0, false, true)},
    {OK_ROW("connect_http10_openssl", "CONNECT example.com:443 HTTP/1.0\r\n\r\n", NP_METHOD_CONNECT,
            "CONNECT", "example.com:443", 1, 0, false, 0, false, false)},
    {OK_ROW("connect_ipv6_brackets", "CONNECT [::1]:8443 HTTP/1.1\r\n\r\n", NP_METHOD_CONNECT,
            "CONNECT", "[::1]:8443", 1, 1, false, 0, false, true)},
    {OK_ROW("get_origin_form", "GET /a/b?c=d HTTP/1.1\r\nHost: x\r\n\r\n", NP_METHOD_GET, "GET",
            "/a/b?c=d", 1, 1, false, 0, false, true)},
    {OK_ROW("get_absolute_form", "GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n",
            NP_METHOD_GET, "GET", "http://example.com/x?y", 1, 1, false, 0, false, true)},
    {OK_ROW("head_method", "HEAD / HTTP/1.1\r\n\r\n", NP_METHOD_HEAD, "HEAD", "/", 1, 1, false, 0,
            false, true)},
    {OK_ROW("put_is_other_method", "PUT /f HTTP/1.1\r\nContent-Length: 3\r\n\r\n", NP_METHOD_OTHER,
            "PUT", "/f", 1, 1, true, 3, false, true)},
    {OK_ROW("lf_only_head", "GET / HTTP/1.1\nHost: a\n\n", NP_METHOD_GET, "GET", "/", 1, 1, false,
            0, false, true)},
    {OK_ROW("leading_empty_lines_skipped", "\r\n\nGET / HTTP/1.1\r\n\r\n", NP_METHOD_GET, "GET",
            "/", 1, 1, false, 0, false, true)},
    {OK_ROW("content_length", "POST /u HTTP/1.1\r\nContent-Length: 42\r\n\r\n", NP_METHOD_POST,
            "POST", "/u", 1, 1, true, 42, false, true)},
    {OK_ROW("content_length_zero", "POST /u HTTP/1.1\r\ncontent-length: 0\r\n\r\n", NP_METHOD_POST,
            "POST", "/u", 1, 1, true, 0, false, true)},
    {OK_ROW("content_length_leading_zeros", "POST /u HTTP/1.1\r\nContent-Length: 007\r\n\r\n",
            NP_METHOD_POST, "POST", "/u", 1, 1, true, 7, false, true)},
    {OK_ROW("content_length_largest",
            "POST /u HTTP/1.1\r\nContent-Length: 18446744073709551609\r\n\r\n", NP_METHOD_POST,
            "POST", "/u", 1, 1, true, UINT64_C(18446744073709551609), false, true)},
    {OK_ROW("chunked", "POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", NP_METHOD_POST,
            "POST", "/u", 1, 1, false, 0, true, true)},
    {OK_ROW("chunked_any_case", "POST /u HTTP/1.1\r\ntransfer-encoding:  Chunked \r\n\r\n",
            NP_METHOD_POST, "POST", "/u", 1, 1, false, 0, true, true)},
    /* Issue #9 hole 10: re-framing would drop gzip; refused with 501, never passed on. */
    {STATUS_ROW("gzip_then_chunked", "POST /u HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                "transfer codings other than chunked are not supported", 501, "POST", "/u")},
    {STATUS_ROW("te_two_fields_chunked_last",
                "POST /u HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
                "transfer codings other than chunked are not supported", 501, "POST", "/u")},
    {STATUS_ROW("identity_then_chunked",
                "POST /u HTTP/1.1\r\nTransfer-Encoding: identity, Chunked\r\n\r\n",
                "transfer codings other than chunked are not supported", 501, "POST", "/u")},
    /* Issue #9 hole 9: TRACE and TRACK are refused on every path, whatever follows. */
    {STATUS_ROW("trace", "TRACE /svc/x HTTP/1.1\r\nHost: a\r\n\r\n",
                "TRACE and TRACK are not allowed", 405, "TRACE", "/svc/x")},
    {STATUS_ROW("track", "TRACK /svc/x HTTP/1.1\r\n\r\n", "TRACE and TRACK are not allowed", 405,
                "TRACK", "/svc/x")},
    {STATUS_ROW("trace_absolute", "TRACE http://h/ HTTP/1.1\r\nX: a\x01\r\n\r\n",
                "TRACE and TRACK are not allowed", 405, "TRACE", "http://h/")},
    {BAD_ROW("trace_lower_case", "trace / HTTP/1.1\r\n\r\n", "invalid method")},
    /* An unknown first word is not kept for the audit: it could be a piece of the token. */
    {STATUS_ROW("unknown_method_not_kept", "0123456789abcdef0123456 /svc/x HTTP/1.1\r\n\r\n",
                "invalid method", 400, "", "/svc/x")},
    {STATUS_ROW("known_method_kept", "PATCH /svc/\x01 HTTP/1.1\r\n\r\n",
                "invalid character in the request target", 400, "PATCH", "/svc/\x01")},
    /* Issue #9 hole 2: the request-target alphabet (RFC 9112 §3.2), on every path. */
    {TARGET_ROW("target_hash", "GET /svc/..# HTTP/1.1\r\n\r\n", "GET", "/svc/..#")},
    {TARGET_ROW("target_htab", "GET /svc/..\t HTTP/1.1\r\n\r\n", "GET", "/svc/..\t")},
    {TARGET_ROW("target_ff", "GET /svc/..\x0c HTTP/1.1\r\n\r\n", "GET", "/svc/..\x0c")},
    {TARGET_ROW("target_vt", "GET /a\x0bb HTTP/1.1\r\n\r\n", "GET", "/a\x0bb")},
    {TARGET_ROW("target_del", "GET /a\x7f HTTP/1.1\r\n\r\n", "GET", "/a\x7f")},
    {TARGET_ROW("target_control", "GET /a\x01 HTTP/1.1\r\n\r\n", "GET", "/a\x01")},
    {TARGET_ROW("target_backslash", "GET /svc\\..\\x HTTP/1.1\r\n\r\n", "GET", "/svc\\..\\x")},
    {TARGET_ROW("target_utf8", "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", "GET", "/caf\xc3\xa9")},
    {TARGET_ROW("target_high_byte", "GET /\x80 HTTP/1.1\r\n\r\n", "GET", "/\x80")},
    {TARGET_ROW("target_absolute_fragment", "GET http://h/a#b HTTP/1.1\r\n\r\n", "GET",
                "http://h/a#b")},
    {TARGET_ROW("target_connect_tab", "CONNECT h\t:443 HTTP/1.1\r\n\r\n", "CONNECT", "h\t:443")},
    {OK_ROW("target_unsafe_but_allowed", "GET /a{b}|^`\"<> HTTP/1.1\r\n\r\n", NP_METHOD_GET, "GET",
            "/a{b}|^`\"<>", 1, 1, false, 0, false, true)},
    {OK_ROW("upgrade_request_head_parses",
            "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", NP_METHOD_GET,
            "GET", "/ws", 1, 1, false, 0, false, true)},
    {OK_ROW("options_asterisk_form", "OPTIONS * HTTP/1.1\r\n\r\n", NP_METHOD_OTHER, "OPTIONS", "*",
            1, 1, false, 0, false, true)},
    {OK_ROW("keep_alive_http11_default", "GET / HTTP/1.1\r\n\r\n", NP_METHOD_GET, "GET", "/", 1, 1,
            false, 0, false, true)},
    {OK_ROW("keep_alive_http11_connection_close", "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
            NP_METHOD_GET, "GET", "/", 1, 1, false, 0, false, false)},
    {OK_ROW("keep_alive_http11_close_any_case", "GET / HTTP/1.1\r\nconnection: CLOSE\r\n\r\n",
            NP_METHOD_GET, "GET", "/", 1, 1, false, 0, false, false)},
    {OK_ROW("keep_alive_http10_default_off", "GET / HTTP/1.0\r\n\r\n", NP_METHOD_GET, "GET", "/", 1,
            0, false, 0, false, false)},
    {OK_ROW("keep_alive_http10_connection_keep_alive",
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", NP_METHOD_GET, "GET", "/", 1, 0,
            false, 0, false, true)},

    {BAD_ROW("cl_and_te",
             "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
             "both Content-Length and Transfer-Encoding")},
    {BAD_ROW("te_and_cl",
             "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
             "both Content-Length and Transfer-Encoding")},
    {BAD_ROW("cl_and_te_gzip",
             "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n",
             "both Content-Length and Transfer-Encoding")},
    {BAD_ROW("cl_duplicate_differing",
             "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
             "conflicting Content-Length")},
    {BAD_ROW("cl_duplicate_equal",
             "POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
             "duplicate Content-Length")},
    {BAD_ROW("cl_list_equal", "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
             "invalid Content-Length")},
    {BAD_ROW("cl_negative", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
             "invalid Content-Length")},
    {BAD_ROW("cl_plus_sign", "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
             "invalid Content-Length")},
    {BAD_ROW("cl_hex", "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
             "invalid Content-Length")},
    {BAD_ROW("cl_empty", "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", "invalid Content-Length")},
    {BAD_ROW("cl_inner_space", "POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
             "invalid Content-Length")},
    {BAD_ROW("cl_largest_plus_one",
             "POST / HTTP/1.1\r\nContent-Length: 18446744073709551610\r\n\r\n",
             "invalid Content-Length")},
    {BAD_ROW("cl_uint64_max", "POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n",
             "invalid Content-Length")},
    {BAD_ROW("cl_overflow", "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
             "invalid Content-Length")},
    {BAD_ROW("te_gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
             "unsupported Transfer-Encoding")},
    {BAD_ROW("te_chunked_then_gzip", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
             "unsupported Transfer-Encoding")},
    {BAD_ROW("te_chunked_twice", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
             "unsupported Transfer-Encoding")},
    {BAD_ROW("te_chunked_then_gzip_in_two_fields",
             "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
             "unsupported Transfer-Encoding")},
    {BAD_ROW("te_chunked_in_two_fields",
             "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
             "unsupported Transfer-Encoding")},
    {BAD_ROW("te_empty_list_element", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked,\r\n\r\n",
             "unsupported Transfer-Encoding")},
    {BAD_ROW("te_empty", "POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n",
             "unsupported Transfer-Encoding")},
    {BAD_ROW("te_chunked_with_parameter",
             "POST / HTTP/1.1\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
             "unsupported Transfer-Encoding")},
    {BAD_ROW("te_in_http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
             "Transfer-Encoding in an HTTP/1.0 request")},
    {BAD_ROW("http20", "GET / HTTP/2.0\r\n\r\n", "unsupported HTTP version")},
    {BAD_ROW("http12", "GET / HTTP/1.2\r\n\r\n", "unsupported HTTP version")},
    {BAD_ROW("http09_explicit", "GET / HTTP/0.9\r\n\r\n", "unsupported HTTP version")},
    {BAD_ROW("http09_no_version", "GET /\r\n\r\n", "malformed request line")},
    {BAD_ROW("version_lower_case", "GET / http/1.1\r\n\r\n", "malformed request line")},
    {BAD_ROW("version_two_digits", "GET / HTTP/1.10\r\n\r\n", "malformed request line")},
    {BAD_ROW("double_space", "GET  / HTTP/1.1\r\n\r\n", "malformed request line")},
    {BAD_ROW("space_in_target", "GET /a b HTTP/1.1\r\n\r\n", "malformed request line")},
    {BAD_ROW("trailing_space", "GET / HTTP/1.1 \r\n\r\n", "malformed request line")},
    {BAD_ROW("leading_space", " GET / HTTP/1.1\r\n\r\n", "malformed request line")},
    {BAD_ROW("tab_separator", "GET\t/ HTTP/1.1\r\n\r\n", "malformed request line")},
    {BAD_ROW("lower_case_connect", "connect example.com:443 HTTP/1.1\r\n\r\n", "invalid method")},
    {BAD_ROW("unknown_method", "FROB / HTTP/1.1\r\n\r\n", "invalid method")},
    {BAD_ROW("connect_origin_form", "CONNECT / HTTP/1.1\r\n\r\n", "invalid CONNECT authority")},
    {BAD_ROW("connect_without_port", "CONNECT example.com HTTP/1.1\r\n\r\n",
             "invalid CONNECT authority")},
    {BAD_ROW("connect_userinfo", "CONNECT u@example.com:443 HTTP/1.1\r\n\r\n",
             "invalid CONNECT authority")},
    {BAD_ROW("connect_absolute_url", "CONNECT http://example.com:443/ HTTP/1.1\r\n\r\n",
             "invalid CONNECT authority")},
    {BAD_ROW("header_without_colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", "invalid header")},
    {BAD_ROW("header_empty_name", "GET / HTTP/1.1\r\n: x\r\n\r\n", "invalid header")},
    {BAD_ROW("header_space_before_colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", "invalid header")},
    {BAD_ROW("te_space_before_colon", "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
             "invalid header")},
    {BAD_ROW("cl_space_before_colon", "POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\n",
             "invalid header")},
    {BAD_ROW("header_non_ascii_name", "GET / HTTP/1.1\r\nX\x80: 5\r\n\r\n", "invalid header")},
    {BAD_ROW("header_control_in_value", "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", "invalid header")},
    {BAD_ROW("header_bad_name_char", "GET / HTTP/1.1\r\nX(y): z\r\n\r\n", "invalid header")},
    {BAD_ROW("obs_fold", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", "malformed request head")},
    {BAD_ROW("bare_cr", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", "malformed request head")},
    {BAD_ROW("incomplete_head", "GET / HTTP/1.1\r\nHost: a\r\n", "malformed request head")},
    {BAD_ROW("bytes_after_head", "GET / HTTP/1.1\r\n\r\nBODY", "malformed request head")},
    {BAD_ROW("empty", "", "malformed request head")},
};

/* Check one parse row: return value, reason, and every field of the request. */
static void
check_parse_row(const struct parse_row *r, const char *in, size_t len)
{
    struct np_http_req req;
    const char *why = "untouched";
    int rc = np_http_req_parse(in, len, &req, &why);

    if (rc != r->rc) {
        print_error("row %s: rc %d (%s), want %d\n", r->name, rc, why ? why : "NULL", r->rc);
        fail();
    }
    if (rc != 0) {
        if (why == NULL || strcmp(why, r->why) != 0) {
            print_error("row %s: why \"%s\", want \"%s\"\n", r->name, why ? why : "NULL", r->why);
            fail();
        }
        assert_int_equal(req.n_headers, 0); /* zeroed on failure... */
        if (r->target == NULL) {
            return;
        }
        /* ...but for the request line, kept for the audit event. */
        assert_string_equal(req.method_name, r->method_name);
        assert_int_equal(req.target_len, strlen(r->target));
        assert_memory_equal(req.target, r->target, req.target_len);
        return;
    }
    assert_null(why);
    assert_int_equal(req.method, r->method);
    assert_string_equal(req.method_name, r->method_name);
    assert_int_equal(req.target_len, strlen(r->target));
    assert_memory_equal(req.target, r->target, req.target_len);
    assert_true(req.target > in && req.target < in + len); /* points into the head */
    assert_int_equal(req.http_major, r->major);
    assert_int_equal(req.http_minor, r->minor);
    assert_int_equal(req.has_content_length, r->has_cl);
    assert_true(req.content_length == r->cl);
    assert_int_equal(req.chunked, r->chunked);
    assert_int_equal(req.keep_alive, r->keep_alive);
}

/* Check the parse table, each head placed right before a PROT_NONE page. */
static void
parse_table(void **state)
{
    struct guard g;
    size_t i;

    NP_UNUSED(state);
    guard_open(&g, 4096);
    for (i = 0; i < NP_ARRAY_LEN(parse_rows); i++) {
        const struct parse_row *r = &parse_rows[i];
        size_t len = strlen(r->in);

        check_parse_row(r, guard_place(&g, r->in, len), len);
    }
    guard_close(&g);
}

/* Check that header names and values are slices of the head, values trimmed of SP/HTAB. */
static void
parse_headers_are_trimmed_slices(void **state)
{
    static const char head[] = "GET / HTTP/1.1\r\n"
                               "Host:  example.com \t\r\n"
                               "X-Empty:\r\n"
                               "X-Blank: \t \r\n"
                               "X-A: 1\r\n"
                               "x-a:\tsecond value\r\n"
                               "\r\n";
    static const struct {
        const char *name;
        const char *value;
    } want[] = {
        {"Host", "example.com"}, {"X-Empty", ""}, {"X-Blank", ""}, {"X-A", "1"},
        {"x-a", "second value"},
    };
    struct np_http_req req;
    const char *why = NULL;
    size_t i;

    NP_UNUSED(state);
    assert_int_equal(np_http_req_parse(head, sizeof(head) - 1, &req, &why), 0);
    assert_int_equal(req.n_headers, NP_ARRAY_LEN(want));
    for (i = 0; i < NP_ARRAY_LEN(want); i++) {
        const struct np_header *h = &req.headers[i];

        assert_int_equal(h->name_len, strlen(want[i].name));
        assert_memory_equal(h->name, want[i].name, h->name_len);
        assert_int_equal(h->value_len, strlen(want[i].value));
        assert_memory_equal(h->value, want[i].value, h->value_len);
        assert_true(h->name >= head && h->name + h->name_len <= head + sizeof(head));
        assert_true(h->value >= head && h->value + h->value_len <= head + sizeof(head));
    }
    assert_ptr_equal(req.headers[0].value, strstr(head, "example.com"));
}

/* Check case-insensitive lookup of the first header of a name, and exact-length matching. */
static void
header_lookup_is_case_insensitive_first_match(void **state)
{
    static const char head[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
    struct np_http_req req;
    const char *why = NULL;
    const struct np_header *h;

    NP_UNUSED(state);
    assert_int_equal(np_http_req_parse(head, sizeof(head) - 1, &req, &why), 0);
    h = np_http_req_header(&req, "HOST");
    assert_non_null(h);
    assert_ptr_equal(h, &req.headers[0]);
    h = np_http_req_header(&req, "x-A");
    assert_non_null(h);
    assert_ptr_equal(h, &req.headers[1]);
    assert_memory_equal(h->value, "1", 1);
    assert_null(np_http_req_header(&req, "Hos"));
    assert_null(np_http_req_header(&req, "Hostx"));
    assert_null(np_http_req_header(&req, ""));
    assert_null(np_http_req_header(&req, "Content-Length"));
}

/* Check that exactly NP_MAX_HEADERS headers parse, and that a NULL why pointer is allowed. */
static void
parse_max_headers(void **state)
{
    struct gen g = {NULL, 0, 0};
    struct np_http_req *req = malloc(sizeof(*req));

    NP_UNUSED(state);
    assert_non_null(req);
    gen_str(&g, RL);
    gen_header_lines(&g, NP_MAX_HEADERS, "\r\n");
    gen_str(&g, "\r\n");
    assert_int_equal(np_http_req_parse(g.buf, g.len, req, NULL), 0);
    assert_int_equal(req->n_headers, NP_MAX_HEADERS);
    assert_memory_equal(req->headers[99].name, "H99", 3);
    assert_int_equal(np_http_req_parse(g.buf, g.len - 2, req, NULL), 400);
    free(req);
    free(g.buf);
}

/* Check that a head over the caps is refused by the parser too (it re-runs the scanner). */
static void
parse_refuses_heads_over_caps(void **state)
{
    struct built_row b;
    struct np_http_req *req = malloc(sizeof(*req));
    const char *why = NULL;

    NP_UNUSED(state);
    assert_non_null(req);
    build_row(B_LINE_8193_ENDED, &b);
    assert_int_equal(np_http_req_parse(b.buf, b.row.len, req, &why), 400);
    assert_string_equal(why, "malformed request head");
    free(b.buf);
    build_row(B_LINES_101, &b);
    assert_int_equal(np_http_req_parse(b.buf, b.row.len, req, &why), 400);
    assert_string_equal(why, "malformed request head");
    free(b.buf);
    build_row(B_BLOCK_65536_CRLF, &b);
    assert_int_equal(np_http_req_parse(b.buf, b.row.len, req, &why), 0);
    free(b.buf);
    free(req);
}

/* ---------------------------------------------------------------------------------------- */
/* np_split_authority table                                                                  */
/* ---------------------------------------------------------------------------------------- */

struct authority_row {
    const char *name;
    const char *in;
    const char *host;
    size_t host_off; /* where host starts in in */
    int rc;
    uint16_t port;
};

#define AUTH_OK(name, in, host, off, port) name, in, host, off, 0, port
#define AUTH_BAD(name, in)                 name, in, NULL, 0, -1, 0

static const struct authority_row authority_rows[] = {
    {AUTH_OK("name_and_port", "example.com:443", "example.com", 0, 443)},
    {AUTH_OK("case_kept", "EXAMPLE.com:8080", "EXAMPLE.com", 0, 8080)},
    {AUTH_OK("ipv4", "127.0.0.1:1", "127.0.0.1", 0, 1)},
    {AUTH_OK("ipv6_loopback", "[::1]:443", "::1", 1, 443)},
    {AUTH_OK("ipv6_full", "[2001:db8::1]:65535", "2001:db8::1", 1, 65535)},
    {AUTH_OK("ipv6_mapped_v4", "[::ffff:1.2.3.4]:443", "::ffff:1.2.3.4", 1, 443)},
    {AUTH_OK("port_five_digits_leading_zeros", "a:00443", "a", 0, 443)},
    {AUTH_OK("underscore_and_dash", "my_host-1.internal:80", "my_host-1.internal", 0, 80)},

    {AUTH_BAD("empty", "")},
    {AUTH_BAD("missing_port", "example.com")},
    {AUTH_BAD("empty_port", "example.com:")},
    {AUTH_BAD("empty_host", ":443")},
    {AUTH_BAD("port_zero", "example.com:0")},
    {AUTH_BAD("port_65536", "example.com:65536")},
    {AUTH_BAD("port_99999", "example.com:99999")},
    {AUTH_BAD("port_six_digits", "example.com:000443")},
    {AUTH_BAD("port_plus", "example.com:+443")},
    {AUTH_BAD("port_minus", "example.com:-1")},
    {AUTH_BAD("port_not_digits", "example.com:44a")},
    {AUTH_BAD("port_trailing_space", "example.com:443 ")},
    {AUTH_BAD("port_with_path", "example.com:443/")},
    {AUTH_BAD("userinfo", "user@example.com:443")},
    {AUTH_BAD("userinfo_with_password", "user:pw@example.com:443")},
    {AUTH_BAD("percent_escape", "exa%6dple.com:443")},
    {AUTH_BAD("slash_in_host", "example.com/x:443")},
    {AUTH_BAD("backslash_in_host", "example.com\\x:443")},
    {AUTH_BAD("space_in_host", "exa mple.com:443")},
    {AUTH_BAD("space_before_colon", "example.com :443")},
    {AUTH_BAD("leading_tab", "\texample.com:443")},
    {AUTH_BAD("control_in_host", "exa\x01mple.com:443")},
    {AUTH_BAD("non_ascii_host", "\xc3\xa9.com:443")},
    {AUTH_BAD("two_colons", "a:b:443")},
    {AUTH_BAD("bare_ipv6", "::1:443")},
    {AUTH_BAD("bare_ipv6_full", "2001:db8::1:443")},
    {AUTH_BAD("ipv6_without_port", "[::1]")},
    {AUTH_BAD("ipv6_empty_port", "[::1]:")},
    {AUTH_BAD("ipv6_no_colon", "[::1]443")},
    {AUTH_BAD("ipv6_unclosed", "[::1:443")},
    {AUTH_BAD("ipv6_unopened", "::1]:443")},
    {AUTH_BAD("ipv6_extra_bracket", "[::1]]:443")},
    {AUTH_BAD("ipv6_empty", "[]:443")},
    {AUTH_BAD("ipv6_name_inside", "[example.com]:443")},
    {AUTH_BAD("ipv6_zone_id", "[fe80::1%25eth0]:443")},
    {AUTH_BAD("ipv6_port_zero", "[::1]:0")},
    {AUTH_BAD("bracket_in_name", "a]b:443")},
};

/* Check the authority table, each input placed right before a PROT_NONE page. */
static void
split_authority_table(void **state)
{
    struct guard g;
    size_t i;

    NP_UNUSED(state);
    guard_open(&g, 4096);
    for (i = 0; i < NP_ARRAY_LEN(authority_rows); i++) {
        const struct authority_row *r = &authority_rows[i];
        size_t len = strlen(r->in);
        const char *in = guard_place(&g, r->in, len);
        const char *host = NULL;
        size_t host_len = 999;
        uint16_t port = 7;
        int rc = np_split_authority(in, len, &host, &host_len, &port);

        if (rc != r->rc) {
            print_error("row %s: rc %d, want %d\n", r->name, rc, r->rc);
            fail();
        }
        if (rc != 0) {
            /* out-params untouched on failure */
            assert_null(host);
            assert_int_equal(host_len, 999);
            assert_int_equal(port, 7);
            continue;
        }
        assert_ptr_equal(host, in + r->host_off);
        assert_int_equal(host_len, strlen(r->host));
        assert_memory_equal(host, r->host, host_len);
        assert_int_equal(port, r->port);
    }
    guard_close(&g);
}

static const struct {
    const char *name;
    uint64_t cl;
    enum np_framing expect;
    bool has_cl;
    bool chunked;
} req_framing_rows[] = {
    {"no_body", 0, NP_FRAME_NONE, false, false},
    {"length_zero_is_none", 0, NP_FRAME_NONE, true, false},
    {"length", 10, NP_FRAME_LENGTH, true, false},
    {"length_huge", UINT64_C(18446744073709551609), NP_FRAME_LENGTH, true, false},
    {"chunked", 0, NP_FRAME_CHUNKED, false, true},
};

/* Check np_http_req_framing: never CLOSE for a request. */
static void
req_framing_table(void **state)
{
    struct np_http_req *req = calloc(1, sizeof(*req));
    size_t i;

    NP_UNUSED(state);
    assert_non_null(req);
    for (i = 0; i < NP_ARRAY_LEN(req_framing_rows); i++) {
        memset(req, 0, sizeof(*req));
        req->has_content_length = req_framing_rows[i].has_cl;
        req->content_length = req_framing_rows[i].cl;
        req->chunked = req_framing_rows[i].chunked;
        if (np_http_req_framing(req) != req_framing_rows[i].expect) {
            fail_msg("%s: framing %d", req_framing_rows[i].name, (int)np_http_req_framing(req));
        }
    }
    free(req);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(head_scan_every_split_point_literal_rows),
        cmocka_unit_test(head_scan_generated_rows_have_claimed_sizes),
        cmocka_unit_test(head_scan_caps_at_boundaries),
        cmocka_unit_test(head_scan_verdict_stable_when_more_bytes_arrive),
        cmocka_unit_test(parse_table),
        cmocka_unit_test(parse_headers_are_trimmed_slices),
        cmocka_unit_test(header_lookup_is_case_insensitive_first_match),
        cmocka_unit_test(parse_max_headers),
        cmocka_unit_test(parse_refuses_heads_over_caps),
        cmocka_unit_test(split_authority_table),
        cmocka_unit_test(req_framing_table),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
