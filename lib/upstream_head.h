/* The one upstream request head (SPEC §5, §6.4), L1: routes and the forward proxy build the
 * head they send upstream here, so the rules of what never leaves the proxy hold on both paths
 * from one copy. */
#ifndef NP_UPSTREAM_HEAD_H
#define NP_UPSTREAM_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http_head.h"
#include "http_request.h"

/* What goes into one upstream head. */
struct np_uphead {
    const struct np_http_req *req; /* the client's head: method and headers */
    struct np_slice target;        /* origin-form request-target */
    struct np_slice host;          /* the Host value */
    const char *token;             /* the session token: a header holding it is dropped */
    const char *drop_name;         /* also drop every header of this name, or NULL (a route's
                                      inject_header, replaced by the real one) */
    const char *inject_name;       /* added header, or NULL: the route's credential */
    struct np_slice inject_value;
    enum np_framing body; /* NONE, LENGTH or CHUNKED */
    uint64_t body_len;    /* LENGTH */
};

/* Write "<METHOD> <target> HTTP/1.1\r\nHost: <host>\r\n", then the client's headers in order
 * and byte for byte, except: hop-by-hop ones (np_http_hop_by_hop, with the client's
 * Connection), Host, Content-Length, Expect (the proxy answers 100-continue itself and always
 * sends the body), drop_name, and every header whose name or value holds the token
 * (np_token_in_header); then "<inject_name>: <inject_value>\r\n"; then the body framing
 * ("Content-Length: N" or "Transfer-Encoding: chunked"); then "\r\n". Everything goes to out;
 * the caller checks np_buf_ok: on an overflow what was written is wiped (a part may hold the
 * secret); on success the head may hold it, and the caller wipes it once sent. Returns -1 for
 * a framing a request cannot have (CLOSE), else 0. */
int np_uphead_build(const struct np_uphead *h, struct np_buf *out);

#endif /* NP_UPSTREAM_HEAD_H */
