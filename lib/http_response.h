/* HTTP/1.x response heads (SPEC §1.2, §5, §6.6), L1: the parse of a complete response head
 * (an upstream's answer, or the enterprise proxy's answer to a chained CONNECT) through the
 * grammar of http_head.h, and the framing of its body. */
#ifndef NP_HTTP_RESPONSE_H
#define NP_HTTP_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "http_head.h"

/* A parsed response head. Pointers refer to the buffer given to np_http_resp_parse. */
struct np_http_resp {
    unsigned status;
    unsigned short http_major;
    unsigned short http_minor;
    struct np_header headers[NP_MAX_HEADERS];
    size_t n_headers;
    bool has_content_length;
    uint64_t content_length;
    bool chunked;    /* Transfer-Encoding with chunked as final coding */
    bool keep_alive; /* per version and Connection header */
};

/* Parse a complete response head (delimited by np_head_scan). Refuses, with a static one-line
 * reason in *why: a status line other than "HTTP/1.0|1.1 SP 100..599 [SP reason]", every rule
 * of np_head_check_field and np_head_check_framing (a transfer coding other than chunked
 * included: the proxy re-frames every body and would drop it), and any disagreement with
 * http-parser. keep_alive is http-parser's http_should_keep_alive: false for HTTP/1.0 without
 * "Connection: keep-alive", for "Connection: close", and whenever the body would be
 * close-delimited. Returns 0 or -1 (*resp zeroed). */
int np_http_resp_parse(const char *head, size_t head_len, struct np_http_resp *resp,
                       const char **why);

/* Framing of the body of resp, answering a request with method HEAD when head_request
 * (RFC 9112 §6.3): HEAD, 1xx, 204, 304 ⇒ NONE; chunked ⇒ CHUNKED; Content-Length ⇒ LENGTH
 * (NONE when 0); otherwise CLOSE. */
enum np_framing np_http_resp_framing(const struct np_http_resp *resp, bool head_request);

#endif /* NP_HTTP_RESPONSE_H */
