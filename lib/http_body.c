/* HTTP/1.x message bodies (SPEC §1.2, §5, §6.6): the body relay.
 *
 * A fresh http-parser is first fed a synthetic response head that states the framing, then the
 * body bytes as they arrive. Its on_body callbacks deliver the decoded data, which is compacted
 * in place and written to dst at the end of every read (never waiting for more), and
 * on_message_complete pauses it, so bytes after the body stay unconsumed in the buffer.
 *
 * Debian's libhttp-parser 2.9.4 is built with HTTP_PARSER_STRICT=0: it does not check the CRLF
 * after chunk data nor the LF after a chunk-size line ("5\r\nhelloXX0\r\n\r\n" passes, a
 * smuggling vector). A small strict chunk-syntax checker (struct chunk_check) therefore reads
 * the same bytes first; it can only reject, and both must agree on where the body ends.
 * http_parser_set_max_header_size() is never called: it writes a process-global. */
#include "http_body.h"

#include <errno.h>
#include <http_parser.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

/* Longest chunk-size line (size and extensions, CRLF excluded), and longest trailer section. */
#define CHUNK_LINE_MAX 4096
#define TRAILER_MAX    NP_MAX_HEADER_BLOCK

/* "<up to 16 hex digits>\r\n", and the reserve kept before received data for it (only when
 * the work buffer holds at least CHUNK_RESERVE_MIN bytes). */
#define CHUNK_HDR_MAX     ((size_t)24)
#define CHUNK_RESERVE_MIN ((size_t)96)

/* Synthetic head stating the body framing; the longest is the Content-Length one. */
#define SYNTH_HEAD_MAX 96

/* ---------------------------------------------------------------------------------------- */
/* Strict chunk syntax (RFC 9112 §7.1), the checks http-parser's non-strict build skips    */
/* ---------------------------------------------------------------------------------------- */

enum chk_state {
    CHK_SIZE_START = 0, /* first hex digit of a chunk size */
    CHK_SIZE,           /* more hex digits */
    CHK_SIZE_WS,        /* BWS after the size, before ';' or CR */
    CHK_EXT_NAME,       /* after ';': optional whitespace, then an extension name */
    CHK_EXT,            /* the rest of the chunk extensions, up to CR */
    CHK_SIZE_LF,        /* the LF ending the size line */
    CHK_DATA,           /* size bytes of data */
    CHK_DATA_CR,        /* the CRLF after the data */
    CHK_DATA_LF,
    CHK_TRAILER_START, /* start of a trailer line, or the final CRLF */
    CHK_TRAILER_NAME,  /* field name, up to ':' */
    CHK_TRAILER,       /* field value, up to CR */
    CHK_TRAILER_LF,
    CHK_END_LF, /* the LF ending the message */
    CHK_DONE,
};

enum chk_result { CHK_MORE, CHK_END, CHK_BAD };

struct chunk_check {
    enum chk_state state;
    uint64_t size;   /* the chunk size being read, then the data bytes still to come */
    size_t line_len; /* bytes of the current size line, or of the whole trailer section */
};

/* Take the byte ending a chunk size (or the whitespace after it). */
static bool
chk_size_end(struct chunk_check *c, char ch)
{
    if (np_http_is_ows(ch)) {
        c->state = CHK_SIZE_WS;
    } else if (ch == ';') {
        c->state = CHK_EXT_NAME;
    } else if (ch == '\r') {
        c->state = CHK_SIZE_LF;
    } else {
        return false;
    }
    return true;
}

/* Take one byte of a chunk-size line: 1*HEXDIG (no overflow) [BWS] [";" ext] CRLF. */
static bool
chk_size_line(struct chunk_check *c, char ch)
{
    int h = np_hex_value(ch);

    if (++c->line_len > CHUNK_LINE_MAX) {
        return false;
    }
    switch (c->state) {
    case CHK_SIZE_START:
        c->size = (uint64_t)(h < 0 ? 0 : h);
        c->state = CHK_SIZE;
        return h >= 0;
    case CHK_SIZE:
        if (h < 0) {
            return chk_size_end(c, ch);
        }
        if (c->size > (UINT64_MAX >> 4)) {
            return false;
        }
        c->size = (c->size << 4) | (uint64_t)h;
        return true;
    case CHK_SIZE_WS:
        return chk_size_end(c, ch);
    case CHK_EXT_NAME:
        /* RFC 9112 §7.1.1: a ';' must introduce a name ("5 ;" is malformed). */
        if (np_http_is_ows(ch)) {
            return true;
        }
        c->state = CHK_EXT;
        return np_http_is_tchar(ch);
    case CHK_EXT:
        if (ch == '\r') {
            c->state = CHK_SIZE_LF;
            return true;
        }
        return np_http_is_text(ch);
    case CHK_SIZE_LF:
        c->state = c->size == 0 ? CHK_TRAILER_START : CHK_DATA;
        c->line_len = 0;
        return ch == '\n';
    default:
        return false;
    }
}

/* Take one byte of the trailer section: "token ':' text" lines ending in CRLF (no obsolete
 * folding; the non-strict http-parser takes a space as a token byte), then an empty line. */
static bool
chk_trailer(struct chunk_check *c, char ch)
{
    if (++c->line_len > TRAILER_MAX) {
        return false;
    }
    switch (c->state) {
    case CHK_TRAILER_START:
        if (ch == '\r') {
            c->state = CHK_END_LF;
            return true;
        }
        c->state = CHK_TRAILER_NAME;
        return np_http_is_tchar(ch);
    case CHK_TRAILER_NAME:
        if (ch == ':') {
            c->state = CHK_TRAILER;
            return true;
        }
        return np_http_is_tchar(ch);
    case CHK_TRAILER:
        if (ch == '\r') {
            c->state = CHK_TRAILER_LF;
            return true;
        }
        return np_http_is_text(ch);
    case CHK_TRAILER_LF:
        c->state = CHK_TRAILER_START;
        return ch == '\n';
    case CHK_END_LF:
        c->state = CHK_DONE;
        return ch == '\n';
    default:
        return false;
    }
}

/* Take one byte outside chunk data. */
static bool
chk_byte(struct chunk_check *c, char ch)
{
    switch (c->state) {
    case CHK_SIZE_START:
    case CHK_SIZE:
    case CHK_SIZE_WS:
    case CHK_EXT_NAME:
    case CHK_EXT:
    case CHK_SIZE_LF:
        return chk_size_line(c, ch);
    case CHK_DATA_CR:
        c->state = CHK_DATA_LF;
        return ch == '\r';
    case CHK_DATA_LF:
        c->state = CHK_SIZE_START;
        c->line_len = 0;
        return ch == '\n';
    case CHK_TRAILER_START:
    case CHK_TRAILER_NAME:
    case CHK_TRAILER:
    case CHK_TRAILER_LF:
    case CHK_END_LF:
        return chk_trailer(c, ch);
    default:
        return false; /* CHK_DATA is taken in bulk; nothing may follow CHK_DONE */
    }
}

/* Check p[0..n), the next bytes of a chunked body. *used = bytes up to the end of the body
 * (CHK_END), up to the bad byte (CHK_BAD), or n (CHK_MORE). */
static enum chk_result
chk_feed(struct chunk_check *c, const char *p, size_t n, size_t *used)
{
    size_t i = 0;

    while (i < n) {
        if (c->state == CHK_DATA) {
            uint64_t avail = (uint64_t)(n - i);
            uint64_t take = c->size < avail ? c->size : avail;

            i += (size_t)take;
            c->size -= take;
            if (c->size == 0) {
                c->state = CHK_DATA_CR;
            }
            continue;
        }
        if (!chk_byte(c, p[i])) {
            *used = i;
            return CHK_BAD;
        }
        i++;
        if (c->state == CHK_DONE) {
            *used = i;
            return CHK_END;
        }
    }
    *used = n;
    return CHK_MORE;
}

bool
np_body_chunked_prefix_ok(const char *buf, size_t len)
{
    struct chunk_check c;
    size_t used = 0;

    memset(&c, 0, sizeof(c));
    return chk_feed(&c, buf, len, &used) != CHK_BAD;
}

/* ---------------------------------------------------------------------------------------- */
/* np_body_relay                                                                            */
/* ---------------------------------------------------------------------------------------- */

/* State of one np_body_relay call, reached through http_parser.data. */
struct relay {
    struct np_body_xfer *x;
    http_parser parser;
    struct chunk_check chk;
    bool chunked_in;
    bool complete;  /* on_message_complete ran */
    char *out_base; /* first decoded byte of the current read; NULL if none yet */
    char *out_end;  /* one past the last decoded byte (compacted over framing bytes) */
};

/* Collect decoded body bytes: move them down over the framing bytes already consumed in this
 * read, so that a read's data ends up contiguous at out_base. at always lies in x->buf, at or
 * after out_end, and bytes before it are never looked at again by the parser. */
static int
relay_on_body(http_parser *p, const char *at, size_t len)
{
    struct relay *r = p->data;
    char *src = r->x->buf + (at - r->x->buf); /* the same byte, without const */

    if (r->out_base == NULL) {
        r->out_base = src;
        r->out_end = src;
    }
    if (r->out_end != src) {
        memmove(r->out_end, src, len);
    }
    r->out_end += len;
    return 0;
}

/* Note the end of the body and pause, so that the bytes after it are not consumed. */
static int
relay_on_message_complete(http_parser *p)
{
    struct relay *r = p->data;

    r->complete = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings relay_settings = {
    .on_body = relay_on_body,
    .on_message_complete = relay_on_message_complete,
};

/* Write the pieces iov[0..n) to dst within send_ms (pieces may be empty; x->pre, when still
 * pending, first): one write for a plain socket. */
static enum np_body_result
send_pieces(struct np_body_xfer *x, const struct iovec *pieces, size_t n)
{
    struct iovec iov[NP_NET_IOV_MAX];
    size_t k = 0;
    size_t i;
    enum np_io io;

    if (x->pre_len > 0) {
        iov[k++] = (struct iovec){(void *)(uintptr_t)x->pre, x->pre_len};
    }
    for (i = 0; i < n && k < NP_NET_IOV_MAX; i++) {
        if (pieces[i].iov_len > 0) {
            iov[k++] = pieces[i];
        }
    }
    if (k == 0) {
        return NP_BODY_DONE;
    }
    io = np_stream_sendv_all(x->dst, iov, k, np_deadline(x->send_ms));
    if (io == NP_IO_OK) {
        x->pre_len = 0;
        return NP_BODY_DONE;
    }
    return io == NP_IO_STOPPED ? NP_BODY_STOPPED : NP_BODY_DST_ERR;
}

/* Write the decoded bytes data[0..len) (len may be 0, data then unused) in the output
 * framing; last adds the chunked terminator. For chunked output the chunk header is put in
 * place just before data when the consumed bytes there leave room, and the tail just after
 * data when it stays below limit (a TLS destination then gets one record); the pieces go out
 * in one write. */
static enum np_body_result
emit(struct relay *r, char *data, size_t len, const char *limit, bool last)
{
    static const char tails[] = "\r\n0\r\n\r\n"; /* end of a data chunk, then the last chunk */
    struct np_body_xfer *x = r->x;
    char hdr[CHUNK_HDR_MAX];
    struct iovec iov[3] = {{hdr, 0}, {data, len}, {(void *)(uintptr_t)tails, 0}};
    enum np_body_result res;

    if (x->out == NP_FRAME_CHUNKED && len > 0) {
        int k = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
        size_t hlen = k > 0 ? (size_t)k : 0;
        size_t tlen = last ? sizeof(tails) - 1 : 2;

        iov[0].iov_len = hlen;
        if ((size_t)(data - x->buf) >= hlen) {
            memcpy(data - hlen, hdr, hlen);
            iov[1].iov_base = data - hlen;
            iov[1].iov_len += hlen;
            iov[0].iov_len = 0;
        }
        iov[2].iov_len = tlen;
        if ((size_t)(limit - (data + len)) >= tlen) {
            memcpy(data + len, tails, tlen);
            iov[1].iov_len += tlen;
            iov[2].iov_len = 0;
        }
    } else if (x->out == NP_FRAME_CHUNKED && last) {
        iov[2].iov_base = (void *)(uintptr_t)(tails + 2);
        iov[2].iov_len = sizeof(tails) - 3;
    }
    res = send_pieces(x, iov, 3);
    if (res == NP_BODY_DONE) {
        x->body_bytes += len;
    }
    return res;
}

/* Start the parser with a synthetic head stating the source framing. An empty body
 * (LENGTH 0, or NONE) completes the message here already. */
static enum np_body_result
relay_start(struct relay *r)
{
    char head[SYNTH_HEAD_MAX];
    const char *h = head;
    size_t n = 0;
    size_t parsed;
    enum http_errno err;
    int k;

    http_parser_init(&r->parser, HTTP_RESPONSE);
    r->parser.data = r;
    if (r->x->in == NP_FRAME_CHUNKED) {
        h = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        n = strlen(h);
    } else if (r->x->in == NP_FRAME_CLOSE) {
        h = "HTTP/1.1 200 OK\r\n\r\n"; /* neither header: http-parser reads until EOF */
        n = strlen(h);
    } else {
        k = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %" PRIu64 "\r\n\r\n",
                     r->x->in == NP_FRAME_LENGTH ? r->x->length : 0);
        n = (k > 0 && (size_t)k < sizeof(head)) ? (size_t)k : 0;
    }
    parsed = http_parser_execute(&r->parser, &relay_settings, h, n);
    err = HTTP_PARSER_ERRNO(&r->parser);
    if (n == 0 || parsed != n || (err != HPE_OK && !(err == HPE_PAUSED && r->complete))) {
        return NP_BODY_MALFORMED; /* a length beyond http-parser's limit */
    }
    return NP_BODY_DONE;
}

/* Check that http-parser's run over n bytes (parsed of them) is clean and, for chunked input,
 * ends the body exactly where the strict checker does. */
static bool
relay_agrees(const struct relay *r, size_t parsed, size_t n, enum chk_result cr, size_t checked)
{
    enum http_errno err = HTTP_PARSER_ERRNO(&r->parser);

    if (r->complete) {
        return err == HPE_PAUSED && (!r->chunked_in || (cr == CHK_END && checked == parsed));
    }
    return err == HPE_OK && parsed == n && (!r->chunked_in || cr == CHK_MORE);
}

/* Process data[0..n) (inside x->buf), the bytes of one read: check, decode, write. On a
 * framing error nothing of this read is written. */
static enum np_body_result
relay_step(struct relay *r, char *data, size_t n)
{
    struct np_body_xfer *x = r->x;
    enum chk_result cr = CHK_MORE;
    size_t checked = n;
    size_t parsed;
    const char *limit;
    enum np_body_result res;

    if (r->chunked_in) {
        cr = chk_feed(&r->chk, data, n, &checked);
        if (cr == CHK_BAD) {
            return NP_BODY_MALFORMED;
        }
    }
    r->out_base = NULL;
    r->out_end = NULL;
    parsed = http_parser_execute(&r->parser, &relay_settings, data, n);
    if (!relay_agrees(r, parsed, n, cr, checked)) {
        return NP_BODY_MALFORMED;
    }
    /* Decoded data may be followed in place by framing bytes up to limit: after a complete
     * body the leftover starts at data + parsed; otherwise the whole read was consumed. */
    limit = r->complete ? data + parsed : x->buf + x->cap;
    res = emit(r, r->out_base, r->out_base != NULL ? (size_t)(r->out_end - r->out_base) : 0, limit,
               r->complete);
    if (res == NP_BODY_DONE && r->complete) {
        x->leftover_off = (size_t)(data - x->buf) + parsed;
        x->leftover_len = n - parsed;
    }
    return res;
}

/* Finish at the source's EOF: the end of a close-delimited body, else a truncated one. */
static enum np_body_result
relay_eof(struct relay *r)
{
    (void)http_parser_execute(&r->parser, &relay_settings, NULL, 0);
    if (!r->complete) {
        return NP_BODY_TRUNCATED;
    }
    return emit(r, NULL, 0, NULL, true);
}

/* Map a failed source read to the result. */
static enum np_body_result
src_failure(enum np_io io)
{
    switch (io) {
    case NP_IO_TIMEOUT:
        return NP_BODY_SRC_TIMEOUT;
    case NP_IO_STOPPED:
        return NP_BODY_STOPPED;
    default:
        return NP_BODY_SRC_ERR;
    }
}

/* Relay one body: the bytes already in buf first, then read after read, each read's decoded
 * data written before the next read. Reads after the first land at buf + off, so that a
 * chunk header fits in front of the data they hold. */
enum np_body_result
np_body_relay(struct np_body_xfer *x)
{
    struct relay r;
    enum np_body_result res = NP_BODY_SRC_ERR;
    size_t off = 0;
    size_t n = 0;
    enum np_io io;

    x->body_bytes = 0;
    x->leftover_off = 0;
    x->leftover_len = 0;
    if (x->buf == NULL || x->cap == 0 || x->have > x->cap) {
        errno = EINVAL;
        goto out;
    }
    memset(&r, 0, sizeof(r));
    r.x = x;
    r.chunked_in = x->in == NP_FRAME_CHUNKED;
    if (x->out == NP_FRAME_CHUNKED && x->cap >= CHUNK_RESERVE_MIN) {
        off = CHUNK_HDR_MAX;
    }
    res = relay_start(&r);
    if (res == NP_BODY_DONE && r.complete) {
        x->leftover_len = x->have; /* empty body: everything received belongs to what follows */
        res = emit(&r, NULL, 0, NULL, true);
        goto out;
    }
    if (res == NP_BODY_DONE && x->have > 0) {
        res = relay_step(&r, x->buf, x->have);
    }
    while (res == NP_BODY_DONE && !r.complete) {
        if (x->pre_len > 0) {
            res = send_pieces(x, NULL, 0); /* nothing to send with it: it goes now */
            continue;
        }
        io = np_stream_recv(x->src, x->buf + off, x->cap - off, &n, np_deadline(x->idle_ms));
        if (io == NP_IO_OK) {
            res = relay_step(&r, x->buf + off, n);
        } else if (io == NP_IO_EOF) {
            res = relay_eof(&r);
        } else {
            res = src_failure(io);
        }
    }
out:
    if (x->pre_len > 0 && res != NP_BODY_DST_ERR && res != NP_BODY_STOPPED) {
        (void)send_pieces(x, NULL, 0); /* the head the caller meant to send, as before */
    }
    return res;
}
