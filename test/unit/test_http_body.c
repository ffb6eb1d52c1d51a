/* Unit tests for lib/http_body.h: np_body_relay over socketpairs: Content-Length and chunked
 * bodies, re-encoding, leftover (pipelined) bytes, strict chunk syntax, truncation, timeouts,
 * stop, a vanished receiver, and streaming (each piece forwarded before the next is sent). */
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
#include "http_body.h"
#include "stream.h"

/* Longest a test waits for bytes that must arrive (a safety net, not a timing assertion). */
#define WAIT_MS 10000

#define OUT_CAP  65536
#define WORK_CAP 8192

/* ---------------------------------------------------------------------------------------- */
/* Relay rig: src socketpair (the test writes src_w), dst socketpair (the test reads dst_r)  */
/* ---------------------------------------------------------------------------------------- */

struct rig {
    int src_r; /* the relay's source end */
    int src_w; /* the test writes here */
    int dst_w; /* the relay's destination end */
    int dst_r; /* the test reads here */
    int stop_fd;
    struct np_stream src;
    struct np_stream dst;
    struct np_body_xfer x;
    char buf[WORK_CAP];
    char out[OUT_CAP];
    size_t out_len;
};

/* Close *fd if open and mark it closed. */
static void
close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Make a rig relaying in (length) to out with a work buffer of cap bytes. */
static struct rig *
rig_new(enum np_framing in, uint64_t length, enum np_framing out, size_t cap)
{
    struct rig *r = calloc(1, sizeof(*r));
    int a[2];
    int b[2];

    assert_non_null(r);
    assert_true(cap <= WORK_CAP);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
    r->src_r = a[0];
    r->src_w = a[1];
    r->dst_w = b[0];
    r->dst_r = b[1];
    r->stop_fd = -1;
    np_stream_init_plain(&r->src, r->src_r, -1);
    np_stream_init_plain(&r->dst, r->dst_w, -1);
    r->x.src = &r->src;
    r->x.dst = &r->dst;
    r->x.in = in;
    r->x.length = length;
    r->x.out = out;
    r->x.buf = r->buf;
    r->x.cap = cap;
    r->x.idle_ms = WAIT_MS;
    r->x.send_ms = WAIT_MS;
    return r;
}

/* Close every descriptor of the rig and free it. */
static void
rig_free(struct rig *r)
{
    close_fd(&r->src_r);
    close_fd(&r->src_w);
    close_fd(&r->dst_w);
    close_fd(&r->dst_r);
    close_fd(&r->stop_fd);
    free(r);
}

/* Put len bytes in the work buffer as already received. */
static void
rig_have(struct rig *r, const char *p, size_t len)
{
    assert_true(len <= r->x.cap);
    memcpy(r->buf, p, len);
    r->x.have = len;
}

/* The same with string literals (lengths by sizeof, never counted by hand). */
#define RIG_HAVE(r, lit)        rig_have((r), (lit), sizeof(lit) - 1)
#define RIG_FEED(r, lit, close) rig_feed((r), (lit), sizeof(lit) - 1, (close))

/* Write all of p[0..len) to fd. */
static void
write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);

        assert_true(w > 0);
        p += w;
        len -= (size_t)w;
    }
}

/* Send bytes from the source side, optionally closing it afterwards. */
static void
rig_feed(struct rig *r, const char *p, size_t len, bool close_after)
{
    write_all(r->src_w, p, len);
    if (close_after) {
        close_fd(&r->src_w);
    }
}

/* Read exactly len bytes from fd into p, failing if they do not arrive within WAIT_MS. */
static void
read_exact(int fd, char *p, size_t len)
{
    while (len > 0) {
        struct pollfd pfd = {fd, POLLIN, 0};
        ssize_t n;

        assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
        n = read(fd, p, len);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

/* Close the relay's destination end and collect everything it wrote into r->out. */
static void
rig_collect(struct rig *r)
{
    close_fd(&r->dst_w);
    r->out_len = 0;
    for (;;) {
        ssize_t n = read(r->dst_r, r->out + r->out_len, OUT_CAP - r->out_len);
        assert_true(n >= 0);
        if (n == 0) {
            break;
        }
        r->out_len += (size_t)n;
        assert_true(r->out_len < OUT_CAP);
    }
}

/* Assert that the destination received exactly expect. */
static void
assert_output(struct rig *r, const char *name, const char *expect, size_t len)
{
    rig_collect(r);
    if (r->out_len != len || memcmp(r->out, expect, len) != 0) {
        fail_msg("%s: output \"%.*s\" (%zu), expected \"%.*s\" (%zu)", name, (int)r->out_len,
                 r->out, r->out_len, (int)len, expect, len);
    }
}

#define ASSERT_OUTPUT(r, name, lit) assert_output((r), (name), (lit), sizeof(lit) - 1)

/* Fail, naming the case, unless got is expect. */
static void
assert_result(const char *name, enum np_body_result got, enum np_body_result expect)
{
    if (got != expect) {
        fail_msg("%s: result %d, expected %d", name, (int)got, (int)expect);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Content-Length bodies                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* Check that a body entirely in the buffer stops at its length: the pipelined next request
 * stays in buf as leftover, and nothing is read from the source. */
static void
relay_length_leftover_in_buf(void **state)
{
    static const char in[] = "helloGET /next HTTP/1.1\r\n\r\n";
    struct rig *r = rig_new(NP_FRAME_LENGTH, 5, NP_FRAME_LENGTH, WORK_CAP);

    NP_UNUSED(state);
    rig_have(r, in, sizeof(in) - 1);
    assert_result("leftover_in_buf", np_body_relay(&r->x), NP_BODY_DONE);
    assert_int_equal(r->x.body_bytes, 5);
    assert_int_equal(r->x.leftover_off, 5);
    assert_int_equal(r->x.leftover_len, sizeof(in) - 1 - 5);
    assert_memory_equal(r->buf + r->x.leftover_off, "GET /next HTTP/1.1\r\n\r\n",
                        r->x.leftover_len);
    ASSERT_OUTPUT(r, "leftover_in_buf", "hello");
    rig_free(r);
}

/* Check that leftover bytes arriving in a later read are reported where that read put them. */
static void
relay_length_leftover_after_read(void **state)
{
    struct rig *r = rig_new(NP_FRAME_LENGTH, 5, NP_FRAME_LENGTH, WORK_CAP);

    NP_UNUSED(state);
    RIG_HAVE(r, "he");
    RIG_FEED(r, "lloNEXT", false);
    assert_result("leftover_after_read", np_body_relay(&r->x), NP_BODY_DONE);
    assert_int_equal(r->x.body_bytes, 5);
    assert_int_equal(r->x.leftover_len, 4);
    assert_memory_equal(r->buf + r->x.leftover_off, "NEXT", 4);
    ASSERT_OUTPUT(r, "leftover_after_read", "hello");
    rig_free(r);
}

/* Check Content-Length relaying with work buffers of every size from 1 byte: every read
 * boundary, the exact body, and the exact leftover. */
static void
relay_length_every_cap(void **state)
{
    static const char body[] = "The quick brown fox jumps over the lazy dog, 0123456789.";
    static const char next[] = "POST /x HTTP/1.1\r\n";
    size_t blen = sizeof(body) - 1;
    size_t cap;

    NP_UNUSED(state);
    for (cap = 1; cap <= blen + sizeof(next); cap++) {
        struct rig *r = rig_new(NP_FRAME_LENGTH, blen, NP_FRAME_LENGTH, cap);

        rig_feed(r, body, blen, false);
        rig_feed(r, next, sizeof(next) - 1, true);
        assert_result("every_cap", np_body_relay(&r->x), NP_BODY_DONE);
        assert_int_equal(r->x.body_bytes, blen);
        assert_true(r->x.leftover_off + r->x.leftover_len <= cap);
        assert_memory_equal(r->buf + r->x.leftover_off, next, r->x.leftover_len);
        assert_output(r, "every_cap", body, blen);
        rig_free(r);
    }
}

/* Writer thread: send the bytes in pieces of `piece` bytes, one write each, then close. */
struct piece_writer {
    int fd;
    const char *p;
    size_t len;
    size_t piece;
};

static void *
piece_writer_run(void *arg)
{
    struct piece_writer *w = arg;
    size_t i;

    for (i = 0; i < w->len; i += w->piece) {
        size_t n = w->len - i < w->piece ? w->len - i : w->piece;

        if (write(w->fd, w->p + i, n) != (ssize_t)n) {
            break;
        }
    }
    close(w->fd);
    return NULL;
}

/* Reader thread: collect everything from fd into out until EOF. */
struct drain {
    int fd;
    char *out;
    size_t len;
};

static void *
drain_run(void *arg)
{
    struct drain *d = arg;

    for (;;) {
        ssize_t n = read(d->fd, d->out + d->len, OUT_CAP - d->len);
        if (n <= 0 || d->len + (size_t)n >= OUT_CAP) {
            break;
        }
        d->len += (size_t)n;
    }
    return NULL;
}

/* Check a Content-Length body sent by one thread in many 3-byte writes and read by another
 * as it comes (each small read is one small write to dst). */
static void
relay_length_many_small_writes(void **state)
{
    static char body[3000];
    struct rig *r = rig_new(NP_FRAME_LENGTH, sizeof(body), NP_FRAME_LENGTH, WORK_CAP);
    struct piece_writer w;
    struct drain d;
    pthread_t tw;
    pthread_t td;
    size_t i;

    NP_UNUSED(state);
    for (i = 0; i < sizeof(body); i++) {
        body[i] = (char)('a' + i % 26);
    }
    w.fd = r->src_w;
    r->src_w = -1; /* the writer closes it */
    w.p = body;
    w.len = sizeof(body);
    w.piece = 3;
    d.fd = r->dst_r;
    d.out = r->out;
    d.len = 0;
    assert_int_equal(pthread_create(&td, NULL, drain_run, &d), 0);
    assert_int_equal(pthread_create(&tw, NULL, piece_writer_run, &w), 0);
    assert_result("many_small_writes", np_body_relay(&r->x), NP_BODY_DONE);
    assert_int_equal(pthread_join(tw, NULL), 0);
    close_fd(&r->dst_w);
    assert_int_equal(pthread_join(td, NULL), 0);
    assert_int_equal(r->x.body_bytes, sizeof(body));
    assert_int_equal(r->x.leftover_len, 0);
    assert_int_equal(d.len, sizeof(body));
    assert_memory_equal(r->out, body, sizeof(body));
    rig_free(r);
}

/* ---------------------------------------------------------------------------------------- */
/* Chunked bodies                                                                            */
/* ---------------------------------------------------------------------------------------- */

static const char next_req[] = "GET /next HTTP/1.1\r\n\r\n";

static const struct {
    const char *name;
    const char *in;
    const char *decoded;
    const char *reencoded; /* when the whole input is processed as one read */
} chunk_rows[] = {
    {"one_chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", "5\r\nhello\r\n0\r\n\r\n"},
    {"chunks_of_one_read_coalesce", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world",
     "b\r\nhello world\r\n0\r\n\r\n"},
    {"extensions_dropped", "5;name=value;q=\"a b\"\r\nhello\r\n0;last\r\n\r\n", "hello",
     "5\r\nhello\r\n0\r\n\r\n"},
    {"bws_before_extension", "5 ;x\r\nhello\r\n0\r\n\r\n", "hello", "5\r\nhello\r\n0\r\n\r\n"},
    {"trailers_dropped", "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n", "hello",
     "5\r\nhello\r\n0\r\n\r\n"},
    {"hex_digits_and_leading_zeros",
     "000A\r\n0123456789\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
     "0123456789abcdefghijklmnopqrstuvwxyz",
     "24\r\n0123456789abcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n"},
    {"crlf_inside_data", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n", "4\r\n\r\n\r\n\r\n0\r\n\r\n"},
    {"empty_body", "0\r\n\r\n", "", "0\r\n\r\n"},
};

/* Check CHUNKED in with LENGTH, CLOSE and CHUNKED out, the whole input plus a pipelined
 * request already in the buffer: decoded (or re-encoded) bytes exactly, leftover exactly. */
static void
relay_chunked_one_read(void **state)
{
    static const enum np_framing outs[] = {NP_FRAME_LENGTH, NP_FRAME_CLOSE, NP_FRAME_CHUNKED};
    size_t i;
    size_t k;

    NP_UNUSED(state);
    for (i = 0; i < NP_ARRAY_LEN(chunk_rows); i++) {
        for (k = 0; k < NP_ARRAY_LEN(outs); k++) {
            struct rig *r = rig_new(NP_FRAME_CHUNKED, 0, outs[k], WORK_CAP);
            char in[512];
            size_t ilen = strlen(chunk_rows[i].in);
            const char *expect =
                outs[k] == NP_FRAME_CHUNKED ? chunk_rows[i].reencoded : chunk_rows[i].decoded;

            memcpy(in, chunk_rows[i].in, ilen);
            memcpy(in + ilen, next_req, sizeof(next_req) - 1);
            rig_have(r, in, ilen + sizeof(next_req) - 1);
            assert_result(chunk_rows[i].name, np_body_relay(&r->x), NP_BODY_DONE);
            assert_int_equal(r->x.body_bytes, strlen(chunk_rows[i].decoded));
            assert_int_equal(r->x.leftover_off, ilen);
            assert_int_equal(r->x.leftover_len, sizeof(next_req) - 1);
            assert_memory_equal(r->buf + r->x.leftover_off, next_req, sizeof(next_req) - 1);
            assert_output(r, chunk_rows[i].name, expect, strlen(expect));
            rig_free(r);
        }
    }
}

/* Decode a chunked body with np_body_relay itself (CHUNKED → LENGTH), all in one buffer. */
static void
decode_chunked(const char *in, size_t len, char *out, size_t cap, size_t *out_len)
{
    struct rig *r = rig_new(NP_FRAME_CHUNKED, 0, NP_FRAME_LENGTH, WORK_CAP);

    rig_have(r, in, len);
    assert_result("decode", np_body_relay(&r->x), NP_BODY_DONE);
    assert_int_equal(r->x.leftover_len, 0);
    rig_collect(r);
    assert_true(r->out_len <= cap);
    memcpy(out, r->out, r->out_len);
    *out_len = r->out_len;
    rig_free(r);
}

/* Check every chunked row read through work buffers of every size (every split point of
 * sizes, extensions, data, CRLFs and trailers): the same decoded bytes, the same leftover,
 * and for CHUNKED out a well-formed re-encoding of the same bytes, whatever the reads. */
static void
relay_chunked_every_cap(void **state)
{
    static char out[OUT_CAP];
    size_t i;
    size_t cap;
    size_t out_len;

    NP_UNUSED(state);
    for (i = 0; i < NP_ARRAY_LEN(chunk_rows); i++) {
        size_t ilen = strlen(chunk_rows[i].in);
        const char *dec = chunk_rows[i].decoded;

        for (cap = 1; cap <= ilen + sizeof(next_req); cap++) {
            struct rig *r = rig_new(NP_FRAME_CHUNKED, 0, NP_FRAME_LENGTH, cap);
            struct rig *c = rig_new(NP_FRAME_CHUNKED, 0, NP_FRAME_CHUNKED, cap);

            rig_feed(r, chunk_rows[i].in, ilen, false);
            rig_feed(r, next_req, sizeof(next_req) - 1, true);
            assert_result(chunk_rows[i].name, np_body_relay(&r->x), NP_BODY_DONE);
            assert_memory_equal(r->buf + r->x.leftover_off, next_req, r->x.leftover_len);
            assert_output(r, chunk_rows[i].name, dec, strlen(dec));
            rig_free(r);

            rig_feed(c, chunk_rows[i].in, ilen, true);
            assert_result(chunk_rows[i].name, np_body_relay(&c->x), NP_BODY_DONE);
            assert_int_equal(c->x.body_bytes, strlen(dec));
            rig_collect(c);
            decode_chunked(c->out, c->out_len, out, sizeof(out), &out_len);
            assert_int_equal(out_len, strlen(dec));
            assert_memory_equal(out, dec, out_len);
            rig_free(c);
        }
    }
}

/* Byte i of the long generated bodies. */
static char
pattern_byte(size_t i)
{
    return (char)('a' + (i * 7 + i / 26) % 26);
}

#define LONG_BODY ((size_t)1 << 20)

/* Write all of p[0..len) to fd from a helper thread (no cmocka assertions off the main
 * thread); returns false on a write error. */
static bool
put_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);

        if (w <= 0) {
            return false;
        }
        p += w;
        len -= (size_t)w;
    }
    return true;
}

/* Writer thread: send LONG_BODY pattern bytes chunked in sizes 1..997 (some with an
 * extension), as separate writes of size line, data and CRLF, then the last chunk; close. */
static void *
long_chunked_writer(void *arg)
{
    static const char last[] = "0\r\nX-Done: 1\r\n\r\n";
    int fd = *(int *)arg;
    char data[1024];
    char line[64];
    size_t sent = 0;
    size_t k = 0;
    bool ok = true;

    while (ok && sent < LONG_BODY) {
        size_t n = k % 997 + 1;
        size_t i;
        int m;

        n = n < LONG_BODY - sent ? n : LONG_BODY - sent;
        for (i = 0; i < n; i++) {
            data[i] = pattern_byte(sent + i);
        }
        m = snprintf(line, sizeof(line), k % 5 == 0 ? "%zX;k=%zu\r\n" : "%zx\r\n", n, k);
        ok =
            m > 0 && put_all(fd, line, (size_t)m) && put_all(fd, data, n) && put_all(fd, "\r\n", 2);
        sent += n;
        k++;
    }
    if (ok) {
        (void)put_all(fd, last, sizeof(last) - 1);
    }
    close(fd);
    return NULL;
}

/* Reader thread: check every byte from fd against the pattern until EOF. */
struct verifier {
    int fd;
    size_t len;
    bool mismatch;
};

static void *
verify_run(void *arg)
{
    struct verifier *v = arg;
    char b[4096];
    size_t i;

    for (;;) {
        ssize_t n = read(v->fd, b, sizeof(b));

        if (n <= 0) {
            break;
        }
        for (i = 0; i < (size_t)n; i++) {
            v->mismatch = v->mismatch || b[i] != pattern_byte(v->len + i);
        }
        v->len += (size_t)n;
    }
    return NULL;
}

/* Check a long chunked body (about 2000 chunks of varying sizes, 1 MiB) streamed between
 * three threads: decoded exactly, no limit of the parser hit along the way. */
static void
relay_chunked_long_stream(void **state)
{
    struct rig *r = rig_new(NP_FRAME_CHUNKED, 0, NP_FRAME_LENGTH, WORK_CAP);
    struct verifier v = {-1, 0, false};
    pthread_t tw;
    pthread_t tv;
    int wfd = r->src_w;

    NP_UNUSED(state);
    r->src_w = -1; /* the writer closes it */
    v.fd = r->dst_r;
    assert_int_equal(pthread_create(&tv, NULL, verify_run, &v), 0);
    assert_int_equal(pthread_create(&tw, NULL, long_chunked_writer, &wfd), 0);
    assert_result("long_stream", np_body_relay(&r->x), NP_BODY_DONE);
    assert_int_equal(pthread_join(tw, NULL), 0);
    close_fd(&r->dst_w);
    assert_int_equal(pthread_join(tv, NULL), 0);
    assert_true(r->x.body_bytes == LONG_BODY);
    assert_int_equal(r->x.leftover_len, 0);
    assert_true(v.len == LONG_BODY);
    assert_false(v.mismatch);
    rig_free(r);
}

/* Check re-encoding across reads with the exact bytes: each read's decoded data becomes one
 * chunk, and a read holding only framing bytes writes no data chunk (never "0\r\n\r\n" early). */
static void
relay_chunked_reencode_per_read(void **state)
{
    struct rig *r = rig_new(NP_FRAME_CHUNKED, 0, NP_FRAME_CHUNKED, WORK_CAP);

    NP_UNUSED(state);
    RIG_HAVE(r, "5\r\nhello\r\n3\r");
    RIG_FEED(r, "\nabc\r\n0\r\n\r\n", false);
    assert_result("per_read", np_body_relay(&r->x), NP_BODY_DONE);
    assert_int_equal(r->x.body_bytes, 8);
    ASSERT_OUTPUT(r, "per_read", "5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n");
    rig_free(r);

    r = rig_new(NP_FRAME_CHUNKED, 0, NP_FRAME_CHUNKED, WORK_CAP);
    RIG_HAVE(r, "5\r\nhello\r\n");
    RIG_FEED(r, "0\r\n\r\n", false);
    assert_result("framing_only_read", np_body_relay(&r->x), NP_BODY_DONE);
    ASSERT_OUTPUT(r, "framing_only_read", "5\r\nhello\r\n0\r\n\r\n");
    rig_free(r);
}

/* ---------------------------------------------------------------------------------------- */
/* Malformed chunked bodies                                                                  */
/* ---------------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    const char *in;
} bad_chunk_rows[] = {
    {"size_not_hex", "zz\r\nhello\r\n0\r\n\r\n"},
    {"size_negative", "-5\r\nhello\r\n0\r\n\r\n"},
    {"size_plus", "+5\r\nhello\r\n0\r\n\r\n"},
    {"size_0x_prefix", "0x5\r\nhello\r\n0\r\n\r\n"},
    {"size_empty", "\r\nhello\r\n0\r\n\r\n"},
    {"size_overflow_18_digits", "ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"},
    {"size_overflow_17_digits", "10000000000000000\r\nhello\r\n0\r\n\r\n"},
    {"size_junk_after", "5x\r\nhello\r\n0\r\n\r\n"},
    {"size_space_then_junk", "5 x\r\nhello\r\n0\r\n\r\n"},
    {"extension_without_name", "5 ;\r\nhello\r\n0\r\n\r\n"},
    {"extension_semicolon_only", "5;\r\nhello\r\n0\r\n\r\n"},
    {"extension_name_not_token", "5;=x\r\nhello\r\n0\r\n\r\n"},
    {"size_leading_space", " 5\r\nhello\r\n0\r\n\r\n"},
    {"size_line_bare_lf", "5\nhello\r\n0\r\n\r\n"},
    {"size_line_cr_without_lf", "5\rXhello\r\n0\r\n\r\n"},
    {"extension_control_char", "5;a\x01\r\nhello\r\n0\r\n\r\n"},
    {"extension_bare_lf", "5;a\nb\r\nhello\r\n0\r\n\r\n"},
    {"data_missing_crlf", "5\r\nhelloXX0\r\n\r\n"},
    {"data_too_long", "5\r\nhello!\r\n0\r\n\r\n"},
    {"data_lf_without_cr", "5\r\nhello\n0\r\n\r\n"},
    {"data_cr_without_lf", "5\r\nhello\rX0\r\n\r\n"},
    {"trailer_obs_fold", "0\r\nX: 1\r\n folded\r\n\r\n"},
    {"trailer_bare_cr", "0\r\nX: 1\rY\r\n\r\n"},
    {"trailer_bare_lf", "0\r\nX: 1\n\r\n"},
    {"trailer_name_space", "0\r\nBad Name: 1\r\n\r\n"},
    {"trailer_space_before_colon", "0\r\nX : 1\r\n\r\n"},
    {"trailer_no_colon", "0\r\nNoColon\r\n\r\n"},
    {"trailer_empty_name", "0\r\n: 1\r\n\r\n"},
    {"trailer_control_char", "0\r\nX: \x01\r\n\r\n"},
    {"last_chunk_missing_lf", "0\r\n\rX"},
    {"last_chunk_bare_lf", "0\r\n\n"},
};

/* Check every bad chunk framing: MALFORMED with nothing written, whether the error comes in
 * the buffered bytes or in a read after valid data (then exactly that data is written, none
 * of the read holding the error), and whatever the read boundaries. */
static void
relay_bad_chunks(void **state)
{
    static const char good[] = "3\r\nabc\r\n";
    size_t i;
    size_t cap;

    NP_UNUSED(state);
    for (i = 0; i < NP_ARRAY_LEN(bad_chunk_rows); i++) {
        const char *in = bad_chunk_rows[i].in;
        size_t ilen = strlen(in);
        struct rig *r = rig_new(NP_FRAME_CHUNKED, 0, NP_FRAME_LENGTH, WORK_CAP);

        rig_have(r, in, ilen);
        RIG_FEED(r, "", true);
        assert_result(bad_chunk_rows[i].name, np_body_relay(&r->x), NP_BODY_MALFORMED);
        assert_int_equal(r->x.body_bytes, 0);
        ASSERT_OUTPUT(r, bad_chunk_rows[i].name, "");
        rig_free(r);

        r = rig_new(NP_FRAME_CHUNKED, 0, NP_FRAME_CHUNKED, WORK_CAP);
        rig_have(r, good, sizeof(good) - 1);
        rig_feed(r, in, ilen, true);
        assert_result(bad_chunk_rows[i].name, np_body_relay(&r->x), NP_BODY_MALFORMED);
        assert_int_equal(r->x.body_bytes, 3);
        ASSERT_OUTPUT(r, bad_chunk_rows[i].name, "3\r\nabc\r\n");
        rig_free(r);

        for (cap = 1; cap <= ilen + 1; cap++) {
            r = rig_new(NP_FRAME_CHUNKED, 0, NP_FRAME_LENGTH, cap);
            rig_feed(r, in, ilen, true);
            assert_result(bad_chunk_rows[i].name, np_body_relay(&r->x), NP_BODY_MALFORMED);
            rig_free(r);
        }
    }
}

/* Check that an over-long chunk-size line (extensions) is refused, not read forever. */
static void
relay_chunk_line_too_long(void **state)
{
    static const char rest[] = "\r\nhello\r\n0\r\n\r\n";
    struct rig *r = rig_new(NP_FRAME_CHUNKED, 0, NP_FRAME_LENGTH, WORK_CAP);
    char *in = calloc(1, 6000);
    size_t i;

    NP_UNUSED(state);
    assert_non_null(in);
    in[0] = '5';
    in[1] = ';';
    for (i = 2; i < 5000; i++) {
        in[i] = 'a';
    }
    memcpy(in + 5000, rest, sizeof(rest) - 1);
    rig_have(r, in, 5000 + sizeof(rest) - 1);
    assert_result("chunk_line_too_long", np_body_relay(&r->x), NP_BODY_MALFORMED);
    ASSERT_OUTPUT(r, "chunk_line_too_long", "");
    rig_free(r);
    free(in);
}

/* ---------------------------------------------------------------------------------------- */
/* End of source, close-delimited bodies, empty bodies                                       */
/* ---------------------------------------------------------------------------------------- */

static const struct {
    const char *name;
    enum np_framing in;
    uint64_t length;
    const char *have;
    const char *expect;
} truncated_rows[] = {
    {"length_short", NP_FRAME_LENGTH, 10, "hello", "hello"},
    {"length_nothing", NP_FRAME_LENGTH, 5, "", ""},
    {"chunked_inside_data", NP_FRAME_CHUNKED, 0, "5\r\nhel", "hel"},
    {"chunked_inside_size", NP_FRAME_CHUNKED, 0, "5\r\nhello\r\n1", "hello"},
    {"chunked_no_last_chunk", NP_FRAME_CHUNKED, 0, "5\r\nhello\r\n", "hello"},
    {"chunked_no_final_crlf", NP_FRAME_CHUNKED, 0, "5\r\nhello\r\n0\r\n", "hello"},
    {"chunked_inside_trailer", NP_FRAME_CHUNKED, 0, "0\r\nX: 1\r\n", ""},
    {"chunked_nothing", NP_FRAME_CHUNKED, 0, "", ""},
};

/* Check that the source closing before the body's end is TRUNCATED, with what arrived before
 * written (and, for chunked output, no terminator). */
static void
relay_truncated(void **state)
{
    static const enum np_framing outs[] = {NP_FRAME_LENGTH, NP_FRAME_CHUNKED};
    size_t i;
    size_t k;

    NP_UNUSED(state);
    for (i = 0; i < NP_ARRAY_LEN(truncated_rows); i++) {
        for (k = 0; k < NP_ARRAY_LEN(outs); k++) {
            struct rig *r =
                rig_new(truncated_rows[i].in, truncated_rows[i].length, outs[k], WORK_CAP);
            size_t elen = strlen(truncated_rows[i].expect);
            char expect[64];
            int n = elen == 0 || outs[k] != NP_FRAME_CHUNKED
                        ? snprintf(expect, sizeof(expect), "%s", truncated_rows[i].expect)
                        : snprintf(expect, sizeof(expect), "%zx\r\n%s\r\n", elen,
                                   truncated_rows[i].expect);

            rig_have(r, truncated_rows[i].have, strlen(truncated_rows[i].have));
            RIG_FEED(r, "", true);
            assert_result(truncated_rows[i].name, np_body_relay(&r->x), NP_BODY_TRUNCATED);
            assert_int_equal(r->x.body_bytes, elen);
            assert_output(r, truncated_rows[i].name, expect, (size_t)n);
            rig_free(r);
        }
    }
}

/* Check a close-delimited body: everything until EOF, then DONE; re-encoded as chunked it
 * gets its terminator at EOF. */
static void
relay_close_until_eof(void **state)
{
    struct rig *r = rig_new(NP_FRAME_CLOSE, 0, NP_FRAME_LENGTH, WORK_CAP);

    NP_UNUSED(state);
    RIG_HAVE(r, "abc");
    RIG_FEED(r, "defgh", true);
    assert_result("close_as_is", np_body_relay(&r->x), NP_BODY_DONE);
    assert_int_equal(r->x.body_bytes, 8);
    assert_int_equal(r->x.leftover_len, 0);
    ASSERT_OUTPUT(r, "close_as_is", "abcdefgh");
    rig_free(r);

    r = rig_new(NP_FRAME_CLOSE, 0, NP_FRAME_CHUNKED, WORK_CAP);
    RIG_HAVE(r, "abc");
    RIG_FEED(r, "", true);
    assert_result("close_to_chunked", np_body_relay(&r->x), NP_BODY_DONE);
    assert_int_equal(r->x.body_bytes, 3);
    ASSERT_OUTPUT(r, "close_to_chunked", "3\r\nabc\r\n0\r\n\r\n");
    rig_free(r);

    r = rig_new(NP_FRAME_CLOSE, 0, NP_FRAME_CHUNKED, WORK_CAP);
    RIG_FEED(r, "", true);
    assert_result("close_empty_to_chunked", np_body_relay(&r->x), NP_BODY_DONE);
    assert_int_equal(r->x.body_bytes, 0);
    ASSERT_OUTPUT(r, "close_empty_to_chunked", "0\r\n\r\n");
    rig_free(r);
}

/* Check LENGTH re-encoded as chunked: data chunks, then the terminator at the length. */
static void
relay_length_to_chunked(void **state)
{
    struct rig *r = rig_new(NP_FRAME_LENGTH, 8, NP_FRAME_CHUNKED, WORK_CAP);

    NP_UNUSED(state);
    RIG_HAVE(r, "abcdefghNEXT");
    assert_result("length_to_chunked", np_body_relay(&r->x), NP_BODY_DONE);
    assert_int_equal(r->x.leftover_off, 8);
    assert_int_equal(r->x.leftover_len, 4);
    assert_memory_equal(r->buf + 8, "NEXT", 4);
    ASSERT_OUTPUT(r, "length_to_chunked", "8\r\nabcdefgh\r\n0\r\n\r\n");
    rig_free(r);
}

/* Check empty bodies (LENGTH 0, NONE): nothing read, everything buffered is leftover, and
 * chunked output is just the terminator. */
static void
relay_empty_body(void **state)
{
    static const enum np_framing ins[] = {NP_FRAME_LENGTH, NP_FRAME_NONE};
    size_t i;

    NP_UNUSED(state);
    for (i = 0; i < NP_ARRAY_LEN(ins); i++) {
        struct rig *r = rig_new(ins[i], 0, NP_FRAME_CHUNKED, WORK_CAP);

        RIG_HAVE(r, "NEXT");
        assert_result("empty_body", np_body_relay(&r->x), NP_BODY_DONE);
        assert_int_equal(r->x.body_bytes, 0);
        assert_int_equal(r->x.leftover_off, 0);
        assert_int_equal(r->x.leftover_len, 4);
        ASSERT_OUTPUT(r, "empty_body", "0\r\n\r\n");
        rig_free(r);

        r = rig_new(ins[i], 0, NP_FRAME_LENGTH, WORK_CAP);
        assert_result("empty_body_as_is", np_body_relay(&r->x), NP_BODY_DONE);
        ASSERT_OUTPUT(r, "empty_body_as_is", "");
        rig_free(r);
    }
}

/* Check that a length http-parser cannot represent is refused before any I/O. */
static void
relay_length_beyond_parser(void **state)
{
    struct rig *r = rig_new(NP_FRAME_LENGTH, UINT64_MAX, NP_FRAME_LENGTH, WORK_CAP);

    NP_UNUSED(state);
    RIG_HAVE(r, "abc");
    assert_result("beyond_parser", np_body_relay(&r->x), NP_BODY_MALFORMED);
    ASSERT_OUTPUT(r, "beyond_parser", "");
    rig_free(r);
}

/* Check the argument checks: no buffer, no capacity, more bytes than capacity. */
static void
relay_bad_arguments(void **state)
{
    struct rig *r = rig_new(NP_FRAME_LENGTH, 5, NP_FRAME_LENGTH, WORK_CAP);

    NP_UNUSED(state);
    r->x.have = WORK_CAP + 1;
    assert_result("have_over_cap", np_body_relay(&r->x), NP_BODY_SRC_ERR);
    r->x.have = 0;
    r->x.cap = 0;
    assert_result("cap_zero", np_body_relay(&r->x), NP_BODY_SRC_ERR);
    r->x.cap = WORK_CAP;
    r->x.buf = NULL;
    assert_result("no_buffer", np_body_relay(&r->x), NP_BODY_SRC_ERR);
    ASSERT_OUTPUT(r, "bad_arguments", "");
    rig_free(r);
}

/* ---------------------------------------------------------------------------------------- */
/* Timeouts, stop, failing ends                                                              */
/* ---------------------------------------------------------------------------------------- */

/* Check that a source silent for idle_ms ends with SRC_TIMEOUT, after writing what came. */
static void
relay_idle_timeout(void **state)
{
    struct rig *r = rig_new(NP_FRAME_LENGTH, 10, NP_FRAME_LENGTH, WORK_CAP);

    NP_UNUSED(state);
    r->x.idle_ms = 200;
    RIG_FEED(r, "hello", false);
    assert_result("idle_timeout", np_body_relay(&r->x), NP_BODY_SRC_TIMEOUT);
    assert_int_equal(r->x.body_bytes, 5);
    ASSERT_OUTPUT(r, "idle_timeout", "hello");
    rig_free(r);
}

/* Check that the stop descriptor ends a wait for the source with STOPPED. */
static void
relay_stop_while_reading(void **state)
{
    struct rig *r = rig_new(NP_FRAME_CHUNKED, 0, NP_FRAME_LENGTH, WORK_CAP);
    uint64_t one = 1;

    NP_UNUSED(state);
    r->stop_fd = eventfd(0, EFD_CLOEXEC);
    assert_true(r->stop_fd >= 0);
    np_stream_init_plain(&r->src, r->src_r, r->stop_fd);
    RIG_FEED(r, "5\r\nhello\r\n", false);
    assert_int_equal(write(r->stop_fd, &one, sizeof(one)), sizeof(one));
    assert_result("stop_reading", np_body_relay(&r->x), NP_BODY_STOPPED);
    ASSERT_OUTPUT(r, "stop_reading", "hello");
    rig_free(r);
}

/* Fill fd's send path until a write would block; leaves fd non-blocking. */
static void
fill_socket(int fd)
{
    static char junk[4096];
    int sz = 4096;

    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
    assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
    for (;;) {
        ssize_t w = write(fd, junk, sizeof(junk));

        if (w < 0) {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
    }
}

/* Check that the stop descriptor ends a blocked write to dst with STOPPED. */
static void
relay_stop_while_writing(void **state)
{
    struct rig *r = rig_new(NP_FRAME_LENGTH, 5, NP_FRAME_LENGTH, WORK_CAP);
    uint64_t one = 1;

    NP_UNUSED(state);
    r->stop_fd = eventfd(0, EFD_CLOEXEC);
    assert_true(r->stop_fd >= 0);
    np_stream_init_plain(&r->dst, r->dst_w, r->stop_fd);
    fill_socket(r->dst_w);
    assert_int_equal(write(r->stop_fd, &one, sizeof(one)), sizeof(one));
    RIG_HAVE(r, "hello");
    assert_result("stop_writing", np_body_relay(&r->x), NP_BODY_STOPPED);
    assert_int_equal(r->x.body_bytes, 0);
    rig_free(r);
}

/* Check that a receiver that stops reading for send_ms is DST_ERR. */
static void
relay_dst_send_timeout(void **state)
{
    struct rig *r = rig_new(NP_FRAME_LENGTH, 5, NP_FRAME_LENGTH, WORK_CAP);

    NP_UNUSED(state);
    r->x.send_ms = 200;
    fill_socket(r->dst_w);
    RIG_HAVE(r, "hello");
    assert_result("send_timeout", np_body_relay(&r->x), NP_BODY_DST_ERR);
    assert_int_equal(r->x.body_bytes, 0);
    rig_free(r);
}

/* Check that a receiver that has gone is DST_ERR, without SIGPIPE (which would kill this
 * test), for data and for the chunked terminator alone. */
static void
relay_dst_closed(void **state)
{
    struct rig *r = rig_new(NP_FRAME_CHUNKED, 0, NP_FRAME_CHUNKED, WORK_CAP);

    NP_UNUSED(state);
    close_fd(&r->dst_r);
    RIG_HAVE(r, "5\r\nhello\r\n0\r\n\r\n");
    assert_result("dst_closed", np_body_relay(&r->x), NP_BODY_DST_ERR);
    assert_int_equal(r->x.body_bytes, 0);
    rig_free(r);

    r = rig_new(NP_FRAME_LENGTH, 0, NP_FRAME_CHUNKED, WORK_CAP);
    close_fd(&r->dst_r);
    assert_result("dst_closed_terminator", np_body_relay(&r->x), NP_BODY_DST_ERR);
    rig_free(r);
}

/* Check that a failing source read is SRC_ERR (a pipe is not a socket: recv fails). */
static void
relay_src_error(void **state)
{
    struct rig *r = rig_new(NP_FRAME_LENGTH, 5, NP_FRAME_LENGTH, WORK_CAP);
    int p[2];

    NP_UNUSED(state);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    np_stream_init_plain(&r->src, p[0], -1);
    assert_result("src_error", np_body_relay(&r->x), NP_BODY_SRC_ERR);
    close(p[0]);
    close(p[1]);
    rig_free(r);
}

/* ---------------------------------------------------------------------------------------- */
/* Streaming: each piece reaches dst before the next one is sent                             */
/* ---------------------------------------------------------------------------------------- */

/* Relay thread: run np_body_relay on the rig; the result is returned via pthread_join. */
static void *
relay_thread(void *arg)
{
    struct rig *r = arg;
    static enum np_body_result res; /* read by the main thread only after pthread_join */

    res = np_body_relay(&r->x);
    return &res;
}

/* Send one piece to the relay and read what it must forward before anything else is sent. */
static void
stream_step(struct rig *r, const char *send, const char *expect)
{
    char got[64];
    size_t n = strlen(expect);

    write_all(r->src_w, send, strlen(send));
    assert_true(n <= sizeof(got));
    read_exact(r->dst_r, got, n);
    assert_memory_equal(got, expect, n);
}

/* Check server-sent-event streaming: the relay runs in a thread; the test sends an event and
 * reads it from dst before sending the next (a relay that waited for more input would leave
 * read_exact waiting and fail), including data whose chunk CRLF has not arrived yet. */
static void
relay_streams_each_piece(void **state)
{
    struct rig *r = rig_new(NP_FRAME_CHUNKED, 0, NP_FRAME_CHUNKED, WORK_CAP);
    pthread_t t;
    void *res = NULL;

    NP_UNUSED(state);
    assert_int_equal(pthread_create(&t, NULL, relay_thread, r), 0);
    stream_step(r, "e\r\ndata: event1\n\n\r\n", "e\r\ndata: event1\n\n\r\n");
    stream_step(r, "e\r\ndata: ev", "8\r\ndata: ev\r\n");
    stream_step(r, "ent2\n\n", "6\r\nent2\n\n\r\n");
    stream_step(r, "\r\n", "");
    stream_step(r, "0\r\n\r\n", "0\r\n\r\n");
    assert_int_equal(pthread_join(t, &res), 0);
    assert_result("streams", *(enum np_body_result *)res, NP_BODY_DONE);
    assert_int_equal(r->x.body_bytes, 28);
    ASSERT_OUTPUT(r, "streams_rest", "");
    rig_free(r);

    r = rig_new(NP_FRAME_CLOSE, 0, NP_FRAME_LENGTH, WORK_CAP);
    assert_int_equal(pthread_create(&t, NULL, relay_thread, r), 0);
    stream_step(r, "data: 1\n\n", "data: 1\n\n");
    stream_step(r, "data: 2\n\n", "data: 2\n\n");
    close_fd(&r->src_w);
    assert_int_equal(pthread_join(t, &res), 0);
    assert_result("streams_close", *(enum np_body_result *)res, NP_BODY_DONE);
    assert_int_equal(r->x.body_bytes, 18);
    rig_free(r);
}

/* ---------------------------------------------------------------------------------------- */
/* A head sent with the body (x->pre)                                                        */
/* ---------------------------------------------------------------------------------------- */

/* Writes to the destination, counted by a stream that wraps the plain one. */
static int dst_writes;

static enum np_io
counting_send_all(struct np_stream *s, const void *buf, size_t len, uint64_t deadline)
{
    dst_writes++;
    return np_net_send_all(s->fd, buf, len, s->stop_fd, deadline);
}

static enum np_io
counting_sendv_all(struct np_stream *s, struct iovec *iov, size_t n, uint64_t deadline)
{
    dst_writes++;
    return np_net_sendv_all(s->fd, iov, n, s->stop_fd, deadline);
}

static enum np_io
counting_recv(struct np_stream *s, void *buf, size_t cap, size_t *got, uint64_t deadline)
{
    return np_net_recv(s->fd, buf, cap, got, (struct np_until){s->stop_fd, deadline});
}

static bool
counting_pending(const struct np_stream *s)
{
    NP_UNUSED(s);
    return false;
}

static const struct np_stream_ops counting_ops = {
    .recv = counting_recv,
    .send_all = counting_send_all,
    .pending = counting_pending,
    .sendv_all = counting_sendv_all,
};

/* The head and a body that came with it leave in one write, re-encoded or not. */
static void
relay_pre_one_write(void **state)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const enum np_framing outs[] = {NP_FRAME_CHUNKED, NP_FRAME_CLOSE};
    static const char *const expect[] = {"5\r\nhello\r\n0\r\n\r\n", "hello"};
    char want[256];
    size_t k;

    NP_UNUSED(state);
    for (k = 0; k < NP_ARRAY_LEN(outs); k++) {
        struct rig *r = rig_new(NP_FRAME_CHUNKED, 0, outs[k], WORK_CAP);

        r->dst.ops = &counting_ops;
        r->x.pre = head;
        r->x.pre_len = sizeof(head) - 1;
        RIG_HAVE(r, "5\r\nhello\r\n0\r\n\r\n");
        dst_writes = 0;
        assert_int_equal(np_body_relay(&r->x), NP_BODY_DONE);
        assert_int_equal(dst_writes, 1);
        assert_int_equal(r->x.pre_len, 0);
        (void)snprintf(want, sizeof(want), "%s%s", head, expect[k]);
        assert_output(r, "pre + body", want, strlen(want));
        rig_free(r);
    }
}

/* A head without body bytes is not held back until the body comes (server-sent events). */
static void
relay_pre_sent_before_first_read(void **state)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    struct rig *r = rig_new(NP_FRAME_LENGTH, 5, NP_FRAME_LENGTH, WORK_CAP);
    struct pollfd pfd;
    char got[sizeof(head)];

    NP_UNUSED(state);
    r->x.pre = head;
    r->x.pre_len = sizeof(head) - 1;
    r->x.idle_ms = 100; /* the body never comes */
    assert_int_equal(np_body_relay(&r->x), NP_BODY_SRC_TIMEOUT);
    pfd = (struct pollfd){r->dst_r, POLLIN, 0};
    assert_int_equal(poll(&pfd, 1, 0), 1);
    assert_int_equal(read(r->dst_r, got, sizeof(got)), sizeof(head) - 1);
    assert_memory_equal(got, head, sizeof(head) - 1);
    rig_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(relay_length_leftover_in_buf),
        cmocka_unit_test(relay_length_leftover_after_read),
        cmocka_unit_test(relay_length_every_cap),
        cmocka_unit_test(relay_length_many_small_writes),
        cmocka_unit_test(relay_chunked_one_read),
        cmocka_unit_test(relay_chunked_every_cap),
        cmocka_unit_test(relay_chunked_reencode_per_read),
        cmocka_unit_test(relay_chunked_long_stream),
        cmocka_unit_test(relay_bad_chunks),
        cmocka_unit_test(relay_chunk_line_too_long),
        cmocka_unit_test(relay_truncated),
        cmocka_unit_test(relay_close_until_eof),
        cmocka_unit_test(relay_length_to_chunked),
        cmocka_unit_test(relay_empty_body),
        cmocka_unit_test(relay_length_beyond_parser),
        cmocka_unit_test(relay_bad_arguments),
        cmocka_unit_test(relay_idle_timeout),
        cmocka_unit_test(relay_stop_while_reading),
        cmocka_unit_test(relay_stop_while_writing),
        cmocka_unit_test(relay_dst_send_timeout),
        cmocka_unit_test(relay_dst_closed),
        cmocka_unit_test(relay_src_error),
        cmocka_unit_test(relay_streams_each_piece),
        cmocka_unit_test(relay_pre_one_write),
        cmocka_unit_test(relay_pre_sent_before_first_read),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
