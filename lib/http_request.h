/* HTTP/1.x request heads (SPEC §1.2), L1: the request line, the request-target alphabet, the
 * refused methods, and the parse of a complete head through the grammar of http_head.h. */
#ifndef NP_HTTP_REQUEST_H
#define NP_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "http_head.h"

enum np_method {
    NP_METHOD_OTHER = 0,
    NP_METHOD_CONNECT,
    NP_METHOD_GET,
    NP_METHOD_HEAD,
    NP_METHOD_POST,
};

/* A parsed request head. Pointers refer to the buffer given to np_http_req_parse. */
struct np_http_req {
    enum np_method method;
    char method_name[24]; /* NUL-terminated */
    const char *target;   /* request-target as sent */
    size_t target_len;
    unsigned short http_major;
    unsigned short http_minor;
    struct np_header headers[NP_MAX_HEADERS];
    size_t n_headers;
    bool has_content_length;
    uint64_t content_length;
    bool chunked;    /* Transfer-Encoding: chunked (final coding) */
    bool keep_alive; /* per HTTP version and Connection header */
};

/* Parse a complete head (as delimited by np_head_scan). Refuses, with a static one-line
 * reason in *why and the status to answer:
 *   400: a request line other than "METHOD SP target SP HTTP/1.0|1.1", a request-target byte
 *        that is a control, SP, HTAB, '#', '\' or >= 0x80, every rule of np_head_check_field
 *        and np_head_check_framing, and any disagreement with http-parser;
 *   405: the method TRACE or TRACK (SPEC §1.2), whatever the rest of the head;
 *   501: a transfer coding other than chunked before it ("gzip, chunked").
 * Returns 0, or that status. On a refusal *req is zeroed, except method_name (a method
 * http-parser knows, or TRACK) and target when the request line was well-formed enough to
 * read them (for the audit event). */
int np_http_req_parse(const char *head, size_t head_len, struct np_http_req *req, const char **why);

/* First header named name (case-insensitive), or NULL. */
const struct np_header *np_http_req_header(const struct np_http_req *req, const char *name);

/* Framing of a request body (RFC 9112 §6.3: chunked ⇒ CHUNKED; Content-Length > 0 ⇒ LENGTH;
 * otherwise NONE — a request body is never close-delimited). */
enum np_framing np_http_req_framing(const struct np_http_req *req);

/* Split a CONNECT authority `host:port` / `[v6]:port` (SPEC §4): the port is required and
 * must be 1..65535; userinfo, percent-escapes, empty host ⇒ -1. host/host_len point into
 * target (brackets removed). */
int np_split_authority(const char *target, size_t len, const char **host, size_t *host_len,
                       uint16_t *port);

#endif /* NP_HTTP_REQUEST_H */
