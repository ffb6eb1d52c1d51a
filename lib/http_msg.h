/* HTTP/1.x response heads and message bodies (SPEC §1.2, §5, §6.6), L2. Bodies are streamed
 * from one np_stream to another as they arrive, never buffered whole; http-parser decides
 * where a body ends (Content-Length or chunked framing, with its strict chunk-size checks),
 * so a body can never run into the next message. */
#ifndef NP_HTTP_MSG_H
#define NP_HTTP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "http_req.h"
#include "stream.h"

/* A parsed response head. Pointers refer to the buffer given to np_http_resp_parse. */
struct np_http_resp {
    unsigned status;
    unsigned short http_major;
    unsigned short http_minor;
    struct np_header headers[NP_MAX_HEADERS];
    size_t n_headers;
    bool has_content_length;
    uint64_t content_length;
    bool chunked;     /* Transfer-Encoding with chunked as final coding */
    bool keep_alive;  /* per version and Connection header */
};

/* Parse a complete response head (delimited by np_head_scan) with http-parser. Rejects, with
 * a static one-line reason in *why: bad status line, version other than 1.0/1.1, both
 * Content-Length and Transfer-Encoding, differing duplicate or invalid Content-Length,
 * invalid header names. Returns 0 or -1. */
int np_http_resp_parse(const char *head, size_t head_len, struct np_http_resp *resp,
                       const char **why);

/* First header named name (case-insensitive), or NULL. */
const struct np_header *np_http_resp_header(const struct np_http_resp *resp, const char *name);

/* Framing of the body of resp, answering a request with method HEAD when head_request
 * (RFC 9112 §6.3): HEAD, 1xx, 204, 304 ⇒ NONE; chunked ⇒ CHUNKED; Content-Length ⇒ LENGTH
 * (NONE when 0); otherwise CLOSE. */
enum np_framing np_http_resp_framing(const struct np_http_resp *resp, bool head_request);

/* Framing of a request body (RFC 9112 §6.3: chunked ⇒ CHUNKED; Content-Length > 0 ⇒ LENGTH;
 * otherwise NONE — a request body is never close-delimited). */
enum np_framing np_http_req_framing(const struct np_http_req *req);

/* One body transfer from src to dst. */
struct np_body_xfer {
    struct np_stream *src;
    struct np_stream *dst;
    enum np_framing in;      /* framing of the source body (not NONE) */
    uint64_t length;         /* in == LENGTH: the Content-Length */
    enum np_framing out;     /* CHUNKED: re-encode the decoded data as chunks, one per read,
                                ending with "0\r\n\r\n" (trailers dropped); LENGTH or CLOSE:
                                write the decoded data as it is */
    char *buf;               /* work buffer, cap bytes; on entry buf[0..have) holds body bytes
                                already received after the head */
    size_t cap;
    size_t have;
    uint32_t idle_ms;        /* longest wait for the next source byte; 0 = none */
    uint32_t send_ms;        /* longest wait for one write to dst; 0 = none */

    /* Results. */
    uint64_t body_bytes;     /* decoded body bytes written to dst */
    size_t leftover_off;     /* on NP_BODY_DONE: bytes after the body's end (a pipelined next */
    size_t leftover_len;     /* message) are buf[leftover_off .. +leftover_len) */
};

enum np_body_result {
    NP_BODY_DONE = 0,     /* the whole body went to dst (for CLOSE: the source closed) */
    NP_BODY_TRUNCATED,    /* the source closed before the body's end */
    NP_BODY_MALFORMED,    /* bad chunk framing (size, CRLF, trailer) */
    NP_BODY_SRC_TIMEOUT,  /* no source byte within idle_ms */
    NP_BODY_SRC_ERR,      /* source socket/TLS error */
    NP_BODY_DST_ERR,      /* dst failed or timed out: the receiver is gone */
    NP_BODY_STOPPED,      /* the proxy is shutting down */
};

/* Move one body from src to dst (see struct np_body_xfer). Data is written to dst as soon as
 * it is received (a server-sent event reaches dst without waiting for more). A body written
 * with out == CHUNKED is complete and correctly terminated only on NP_BODY_DONE. */
enum np_body_result np_body_relay(struct np_body_xfer *x);

/* Whether buf[0..len), the first bytes of a chunked body, are well-formed so far (an
 * incomplete body is fine; a bad size, a missing CRLF or a bad trailer is not). Lets a caller
 * refuse a malformed body before anything goes upstream. */
bool np_body_chunked_prefix_ok(const char *buf, size_t len);

/* Write the chunked terminator "0\r\n\r\n" (used when an empty body is re-framed as chunked). */
enum np_io np_body_write_last_chunk(struct np_stream *dst, uint64_t deadline);

#endif /* NP_HTTP_MSG_H */
