/* HTTP/1.x message bodies (SPEC §1.2, §5, §6.6), L2: the body relay. Bodies are streamed from
 * one np_stream to another as they arrive, never buffered whole; http-parser decides where a
 * body ends (Content-Length or chunked framing), checked by a strict chunk-syntax checker, so a
 * body can never run into the next message. */
#ifndef NP_HTTP_BODY_H
#define NP_HTTP_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "http_head.h"
#include "stream.h"

/* One body transfer from src to dst. */
struct np_body_xfer {
    struct np_stream *src;
    struct np_stream *dst;
    enum np_framing in;  /* framing of the source body (not NONE) */
    uint64_t length;     /* in == LENGTH: the Content-Length */
    enum np_framing out; /* CHUNKED: re-encode the decoded data as chunks, one per read,
                            ending with "0\r\n\r\n" (trailers dropped); LENGTH or CLOSE:
                            write the decoded data as it is */
    char *buf;           /* work buffer, cap bytes; on entry buf[0..have) holds body bytes
                            already received after the head */
    size_t cap;
    size_t have;
    uint32_t idle_ms; /* longest wait for the next source byte; 0 = none */
    uint32_t send_ms; /* longest wait for one write to dst; 0 = none */
    const char *pre;  /* pre[0..pre_len) (a response head) goes to dst first: in the same
                         write as the body bytes already in buf, or on its own before the
                         first read when there are none (it is never held back waiting) */
    size_t pre_len;

    /* Results. */
    uint64_t body_bytes; /* decoded body bytes written to dst */
    size_t leftover_off; /* on NP_BODY_DONE: bytes after the body's end (a pipelined next */
    size_t leftover_len; /* message) are buf[leftover_off .. +leftover_len) */
};

enum np_body_result {
    NP_BODY_DONE = 0,    /* the whole body went to dst (for CLOSE: the source closed) */
    NP_BODY_TRUNCATED,   /* the source closed before the body's end */
    NP_BODY_MALFORMED,   /* bad chunk framing (size, CRLF, trailer) */
    NP_BODY_SRC_TIMEOUT, /* no source byte within idle_ms */
    NP_BODY_SRC_ERR,     /* source socket/TLS error */
    NP_BODY_DST_ERR,     /* dst failed or timed out: the receiver is gone */
    NP_BODY_STOPPED,     /* the proxy is shutting down */
};

/* Move one body from src to dst (see struct np_body_xfer). Data is written to dst as soon as
 * it is received (a server-sent event reaches dst without waiting for more). A body written
 * with out == CHUNKED is complete and correctly terminated only on NP_BODY_DONE. */
enum np_body_result np_body_relay(struct np_body_xfer *x);

/* Whether buf[0..len), the first bytes of a chunked body, are well-formed so far (an
 * incomplete body is fine; a bad size, a missing CRLF or a bad trailer is not). Lets a caller
 * refuse a malformed body before anything goes upstream. */
bool np_body_chunked_prefix_ok(const char *buf, size_t len);

#endif /* NP_HTTP_BODY_H */
