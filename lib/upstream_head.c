/* The one upstream request head (SPEC §5, §6.4): see upstream_head.h. */
#include "upstream_head.h"

#include <string.h>

#include "alloc.h"
#include "token.h"

/* Whether the client's header h must not go upstream. */
static bool
dropped(const struct np_uphead *u, const struct np_header *h, size_t tok_len)
{
    const struct np_http_req *req = u->req;

    if (np_http_hop_by_hop(h->name, h->name_len, req->headers, req->n_headers) ||
        np_http_ieq(h->name, h->name_len, "host") ||
        np_http_ieq(h->name, h->name_len, "content-length") ||
        np_http_ieq(h->name, h->name_len, "expect")) {
        return true;
    }
    if (u->drop_name != NULL && np_http_ieq(h->name, h->name_len, u->drop_name)) {
        return true;
    }
    return np_token_in_header(h, u->token, tok_len); /* name or value, every spelling */
}

int
np_uphead_build(const struct np_uphead *u, struct np_buf *out)
{
    size_t tok_len = u->token != NULL ? strlen(u->token) : 0;
    size_t start = out->len;
    size_t i;

    if (u->body == NP_FRAME_CLOSE) {
        return -1; /* a request body is never close-delimited */
    }
    np_buf_puts(out, u->req->method_name);
    np_buf_putc(out, ' ');
    np_buf_put(out, u->target.p, u->target.len);
    np_buf_puts(out, " HTTP/1.1\r\nHost: ");
    np_buf_put(out, u->host.p, u->host.len);
    np_buf_puts(out, "\r\n");
    for (i = 0; i < u->req->n_headers && i < NP_MAX_HEADERS; i++) {
        const struct np_header *h = &u->req->headers[i];

        if (!dropped(u, h, tok_len)) {
            np_buf_put(out, h->name, h->name_len);
            np_buf_puts(out, ": ");
            np_buf_put(out, h->value, h->value_len);
            np_buf_puts(out, "\r\n");
        }
    }
    if (u->inject_name != NULL) {
        np_buf_puts(out, u->inject_name);
        np_buf_puts(out, ": ");
        np_buf_put(out, u->inject_value.p, u->inject_value.len);
        np_buf_puts(out, "\r\n");
    }
    if (u->body == NP_FRAME_LENGTH) {
        np_buf_puts(out, "Content-Length: ");
        np_buf_put_u64(out, u->body_len);
        np_buf_puts(out, "\r\n");
    } else if (u->body == NP_FRAME_CHUNKED) {
        np_buf_puts(out, "Transfer-Encoding: chunked\r\n");
    }
    np_buf_puts(out, "\r\n");
    if (!np_buf_ok(out)) {
        np_secure_zero(out->p + start, out->len - start); /* a part may hold the secret */
    }
    return 0;
}
