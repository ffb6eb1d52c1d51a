/* libFuzzer target: message bodies (SPEC §1.2, §5, §6.6): the strict chunk checker
 * np_body_chunked_prefix_ok and np_body_relay between two socketpairs, every input framing
 * (Content-Length, chunked, close-delimited) to every output framing (Content-Length as is,
 * chunked re-encoding, close-delimited). No thread: the source bytes are written whole into
 * one socketpair and its write side shut, the relay runs, then what reached the other
 * socketpair is read back; inputs are capped so both fit in the socket buffers.
 * Input: byte 0 the framings, bytes 1-2 the Content-Length, byte 3 the work buffer size,
 * byte 4 how many bytes were "already received" with the head; the rest is the body.
 * Properties: on DONE a Content-Length body delivered exactly that many bytes; the output of
 * a LENGTH/CLOSE relay is exactly body_bytes long; a CHUNKED output that completed is a
 * well-formed chunked body ending in the last chunk; the leftover lies inside the buffer. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_body.h"
#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR       5
#define MAX_BODY  16384
#define OUT_CAP   (8 * MAX_BODY + 4096)
#define SNDBUF_SZ (1 << 20)

static const enum np_framing in_framings[] = {NP_FRAME_LENGTH, NP_FRAME_CHUNKED, NP_FRAME_CLOSE,
                                              NP_FRAME_CHUNKED};
static const enum np_framing out_framings[] = {NP_FRAME_CHUNKED, NP_FRAME_LENGTH, NP_FRAME_CLOSE,
                                               NP_FRAME_CHUNKED};

static void
pair(int sv[2])
{
    int sz = SNDBUF_SZ;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        abort();
    }
    (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    (void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    (void)setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    (void)setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

/* Read everything available from fd (non-blocking) into out; the length read. */
static size_t
drain(int fd, char *out, size_t cap)
{
    size_t got = 0;

    for (;;) {
        ssize_t r;

        if (got == cap) {
            abort(); /* more output than the relay can produce from this input */
        }
        r = recv(fd, out + got, cap - got, MSG_DONTWAIT);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    return got;
}

static void
check_output(const struct np_body_xfer *x, enum np_body_result res, const char *out, size_t n)
{
    static const char last[] = "0\r\n\r\n";

    if (res == NP_BODY_DONE && x->in == NP_FRAME_LENGTH && x->body_bytes != x->length) {
        abort();
    }
    if (x->leftover_off > x->cap || x->leftover_len > x->cap - x->leftover_off) {
        abort();
    }
    if (x->out != NP_FRAME_CHUNKED) {
        if (n != x->body_bytes) {
            abort();
        }
        return;
    }
    if (res == NP_BODY_DONE) {
        if (n < sizeof(last) - 1 || memcmp(out + n - (sizeof(last) - 1), last, sizeof(last) - 1) ||
            !np_body_chunked_prefix_ok(out, n)) {
            abort();
        }
    } else if (!np_body_chunked_prefix_ok(out, n)) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct np_stream src;
    struct np_stream dst;
    struct np_body_xfer x;
    int s[2];
    int d[2];
    const char *body = (const char *)data + HDR;
    size_t body_len;
    size_t have;
    char *out;
    size_t n;
    enum np_body_result res;

    if (size < HDR || size - HDR > MAX_BODY) {
        return -1;
    }
    body_len = size - HDR;
    (void)np_body_chunked_prefix_ok(body, body_len);

    memset(&x, 0, sizeof(x));
    x.in = in_framings[data[0] & 3u];
    x.out = out_framings[(data[0] >> 2) & 3u];
    x.length = ((uint64_t)data[1] << 8 | data[2]) + 1u;
    if (x.in == NP_FRAME_LENGTH && x.out == NP_FRAME_CLOSE && (data[0] & 0x10u)) {
        x.out = NP_FRAME_LENGTH;
    }
    x.cap = (size_t)data[3] * 32u + 1u + (data[0] >> 5);
    have = data[4] <= body_len ? data[4] : body_len;
    if (have > x.cap) {
        have = x.cap;
    }
    x.buf = malloc(x.cap);
    out = malloc(OUT_CAP);
    if (x.buf == NULL || out == NULL) {
        abort();
    }
    memcpy(x.buf, body, have);
    x.have = have;
    x.idle_ms = 2000;
    x.send_ms = 2000;

    pair(s);
    pair(d);
    if (body_len > have &&
        send(s[1], body + have, body_len - have, MSG_NOSIGNAL) != (ssize_t)(body_len - have)) {
        abort();
    }
    (void)shutdown(s[1], SHUT_WR);
    np_stream_init_plain(&src, s[0], -1);
    np_stream_init_plain(&dst, d[0], -1);
    x.src = &src;
    x.dst = &dst;

    res = np_body_relay(&x);
    n = drain(d[1], out, OUT_CAP);
    check_output(&x, res, out, n);

    close(s[0]);
    close(s[1]);
    close(d[0]);
    close(d[1]);
    free(out);
    free(x.buf);
    return 0;
}
