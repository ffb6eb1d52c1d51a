/* HTTP/1.x request heads (SPEC §1.2), L1. The caps are enforced by np_head_scan on the raw
 * bytes before http-parser sees them; np_http_req_parse then parses a complete head with
 * http-parser. This is the only module that includes http_parser.h for requests. */
#ifndef NP_HTTP_REQ_H
#define NP_HTTP_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

enum np_head_scan {
    NP_HEAD_NEED_MORE = 0, /* no complete head yet, no cap exceeded */
    NP_HEAD_COMPLETE,      /* *head_len = bytes up to and including the blank line */
    NP_HEAD_URI_TOO_LONG,  /* request line over NP_MAX_REQUEST_LINE ⇒ 414 */
    NP_HEAD_TOO_LARGE,     /* header block over NP_MAX_HEADER_BLOCK or NP_MAX_HEADERS lines ⇒ 431 */
    NP_HEAD_MALFORMED,     /* NUL, bare CR, obsolete line folding, empty request line ⇒ 400 */
};

/* Scan buf[0..len), the bytes received so far (len may grow between calls; the result only
 * depends on the bytes), for the end of the head. Lines end in CRLF or LF. Caps are checked
 * as soon as the bytes prove them exceeded, even before the line ends. */
enum np_head_scan np_head_scan(const char *buf, size_t len, size_t *head_len);

/* How a message body is delimited. */
enum np_framing {
    NP_FRAME_NONE = 0, /* no body */
    NP_FRAME_LENGTH,   /* Content-Length bytes */
    NP_FRAME_CHUNKED,  /* Transfer-Encoding: chunked */
    NP_FRAME_CLOSE,    /* until the sender closes (responses only) */
};

enum np_method {
    NP_METHOD_OTHER = 0,
    NP_METHOD_CONNECT,
    NP_METHOD_GET,
    NP_METHOD_HEAD,
    NP_METHOD_POST,
};

struct np_header {
    const char *name; /* points into the head buffer; not NUL-terminated */
    size_t name_len;
    const char *value; /* leading and trailing whitespace removed */
    size_t value_len;
};

/* A parsed request head. Pointers refer to the buffer given to np_http_req_parse. */
struct np_http_req {
    enum np_method method;
    char method_name[24];        /* NUL-terminated */
    const char *target;          /* request-target as sent */
    size_t target_len;
    unsigned short http_major;
    unsigned short http_minor;
    struct np_header headers[NP_MAX_HEADERS];
    size_t n_headers;
    bool has_content_length;
    uint64_t content_length;
    bool chunked;                /* Transfer-Encoding: chunked (final coding) */
    bool keep_alive;             /* per HTTP version and Connection header */
};

/* Parse a complete head (as delimited by np_head_scan) with http-parser. Rejects, with a
 * static one-line reason in *why and the status to answer:
 *   400: bad request line, a request-target byte that is a control, SP, HTAB, '#', '\' or
 *        >= 0x80, unsupported version, both Content-Length and Transfer-Encoding, differing
 *        duplicate Content-Length, invalid Content-Length, a Transfer-Encoding whose final
 *        coding is not chunked, invalid header names;
 *   405: the method TRACE or TRACK (SPEC §1.2), whatever the rest of the head;
 *   501: a transfer coding other than chunked before it ("gzip, chunked").
 * Returns 0, or that status. On a refusal *req is zeroed, except method_name and target when
 * the request line was well-formed enough to read them (for the audit event). */
int np_http_req_parse(const char *head, size_t head_len, struct np_http_req *req,
                      const char **why);

/* First header named name (case-insensitive), or NULL. */
const struct np_header *np_http_req_header(const struct np_http_req *req, const char *name);

/* Split a CONNECT authority `host:port` / `[v6]:port` (SPEC §4): the port is required and
 * must be 1..65535; userinfo, percent-escapes, empty host ⇒ -1. host/host_len point into
 * target (brackets removed). */
int np_split_authority(const char *target, size_t len, const char **host, size_t *host_len,
                       uint16_t *port);

/* Whether the comma-separated list value[0..len) (a Connection or Upgrade value) names
 * name[0..name_len), ignoring ASCII case and optional whitespace around elements. */
bool np_http_list_has(const char *value, size_t len, const char *name, size_t name_len);

/* Whether a header is hop-by-hop (RFC 9110 §7.6.1): Connection, Keep-Alive, Proxy-Connection,
 * Proxy-Authenticate, Proxy-Authorization, TE, Trailer, Transfer-Encoding, Upgrade, or a name
 * listed in any of the given Connection header values (comma-separated tokens), except
 * Content-Length, which is framing and never hop-by-hop (SPEC §1.2). */
bool np_http_hop_by_hop(const char *name, size_t name_len, const struct np_header *headers,
                        size_t n_headers);

/* Collects the header slices http-parser hands to its on_header_field / on_header_value
 * callbacks into headers[] (pointers into the head, never copies); shared by the request and
 * response parsers. A name or value delivered in several slices must be contiguous. */
struct np_header_sink {
    struct np_header *headers; /* NP_MAX_HEADERS entries */
    size_t *n;                 /* entries used */
    int last;                  /* 0: nothing yet, 1: a name, 2: a value */
    bool bad;                  /* more headers than fit, or non-contiguous slices */
};

/* The callbacks' bodies: 0 to go on, 1 to stop the parser (then s->bad is set). */
int np_header_sink_field(struct np_header_sink *s, const char *at, size_t len);
int np_header_sink_value(struct np_header_sink *s, const char *at, size_t len);

#endif /* NP_HTTP_REQ_H */
