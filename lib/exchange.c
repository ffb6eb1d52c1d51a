/* One HTTP exchange with an upstream (L3): see exchange.h. Moved out of reverse.c so that
 * the forward proxy shares the same body, framing and keep-alive code. */
#include "exchange.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include "alloc.h"
#include "buf.h"
#include "http_answer.h"
#include "token.h"

#define XCHG_SEND_MS     30000u /* longest wait for one write to a peer */
#define XCHG_MAX_INTERIM 8u     /* 1xx answers skipped before the final one */

static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* Longest wait for one write to the upstream: XCHG_SEND_MS, or the response timeout when that
 * is shorter (an upstream that reads nothing for that long is as unresponsive as one that
 * answers nothing). */
static uint32_t
upstream_send_ms(const struct np_xchg *q)
{
    uint32_t t = q->se->ctx->s->response_timeout_ms;

    return t != 0 && t < XCHG_SEND_MS ? t : XCHG_SEND_MS;
}

void
np_xchg_deny(struct np_xchg *q, int status, enum nonoproxy_denial_category cat, const char *reason,
             const char *msg)
{
    q->ev.decision = NONOPROXY_DECISION_DENY;
    q->ev.denial_category = cat;
    q->ev.status = (uint16_t)status;
    np_audit_set(q->ev.reason, sizeof(q->ev.reason), reason, strlen(reason));
    np_emit(q->se->ctx, &q->ev);
    if (q->json) {
        np_session_reply_json(q->se, status, msg);
    } else {
        np_session_reply_text(q->se, status, NULL, reason);
    }
}

int
np_xchg_connect_any(struct np_xchg *q, const struct np_addrlist *al, const char *what,
                    struct np_failure *f)
{
    const struct np_ctx *ctx = q->se->ctx;
    enum np_io io;
    int err = 0;
    int fd = -1;

    io = np_net_connect_any(al->addr, al->n,
                            (struct np_dial_limits){ctx->s->connect_timeout_ms, ctx->stop_fd}, &fd,
                            &err);
    if (io != NP_IO_OK) {
        np_session_connect_failure(io, err, what, f);
        return -1;
    }
    return fd;
}

/* Remove the session token from the upstream target wherever the route did not already
 * replace it (SPEC §6.4: the phantom is stripped wherever it was): query parameters that
 * carry it, in any spelling, are dropped. Returns -1 when it is in the path, where dropping a
 * segment would change the meaning of the request. */
int
np_xchg_strip_token(char *target, size_t *len, const char *token)
{
    size_t tl = strlen(token);
    char *q = memchr(target, '?', *len);
    size_t path_len = q != NULL ? (size_t)(q - target) : *len;
    size_t r;
    size_t w;

    if (np_token_find_encoded(target, path_len, token, tl)) {
        return -1;
    }
    if (q == NULL || !np_token_find_encoded(q, *len - path_len, token, tl)) {
        return 0;
    }
    r = path_len + 1;
    w = path_len + 1;
    while (r < *len) {
        char *amp = memchr(target + r, '&', *len - r);
        size_t plen = amp != NULL ? (size_t)(amp - (target + r)) : *len - r;
        if (!np_token_find_encoded(target + r, plen, token, tl)) {
            if (w > path_len + 1) {
                target[w++] = '&';
            }
            memmove(target + w, target + r, plen);
            w += plen;
        }
        r += plen + (amp != NULL ? 1 : 0);
    }
    if (w == path_len + 1) {
        w = path_len; /* no parameter left: no '?' either */
    }
    np_secure_zero(target + w, *len - w);
    *len = w;
    return 0;
}

bool
np_xchg_precheck_body(struct np_xchg *q)
{
    struct np_session *se = q->se;
    size_t have = se->in_len - se->head_len;

    if (q->body != NP_FRAME_CHUNKED || have == 0 ||
        np_body_chunked_prefix_ok(se->in + se->head_len, have)) {
        return true;
    }
    np_xchg_deny(q, 400, NONOPROXY_DENIAL_MALFORMED_REQUEST, "malformed chunked request body",
                 "malformed chunked request body");
    return false;
}

/* Outcome of reading a response head. */
enum xchg_rh {
    RH_OK = 0,
    RH_MORE,    /* the head is not complete yet (internal to the reading loop) */
    RH_NOTHING, /* the upstream closed or failed before sending a byte */
    RH_TIMEOUT,
    RH_BAD, /* malformed, too large, or closed mid-head */
    RH_STOPPED,
};

/* A response head from the upstream: relay_a holds len bytes, the head's head_len first. */
struct xchg_resp {
    struct np_http_resp h;
    size_t len;
    size_t head_len;
    unsigned interim; /* 1xx heads dropped so far */
    bool up_reusable; /* out of xchg_respond: the upstream connection may be pooled */
};

/* What a failed read or wait means for the head, total bytes into it. */
static enum xchg_rh
rh_of_io(enum np_io io, size_t total)
{
    if (io == NP_IO_TIMEOUT) {
        return RH_TIMEOUT;
    }
    if (io == NP_IO_STOPPED) {
        return RH_STOPPED;
    }
    return total == 0 ? RH_NOTHING : RH_BAD;
}

/* What the bytes in relay_a say: RH_OK for a final head in r->h, RH_BAD for a malformed one, a
 * 101 or too many interim heads, RH_MORE while incomplete. Interim 1xx heads are dropped. */
static enum xchg_rh
xchg_parse_head(struct np_xchg *q, struct xchg_resp *r)
{
    char *buf = q->se->relay_a;
    const char *why = NULL;

    for (;;) {
        enum np_head_scan sc = np_head_scan(buf, r->len, &r->head_len);

        if (sc != NP_HEAD_COMPLETE) {
            return sc == NP_HEAD_NEED_MORE && r->len < NP_RELAY_CAP ? RH_MORE : RH_BAD;
        }
        if (np_http_resp_parse(buf, r->head_len, &r->h, &why) != 0) {
            q->resp_why = why;
            return RH_BAD;
        }
        if (r->h.status < 100 || r->h.status >= 200) {
            return RH_OK;
        }
        if (r->h.status == 101 || ++r->interim > XCHG_MAX_INTERIM) {
            return RH_BAD; /* an endless stream of 1xx would hold the worker */
        }
        memmove(buf, buf + r->head_len, r->len - r->head_len);
        r->len -= r->head_len;
    }
}

/* Read a final (non-1xx) response head into relay_a (see struct xchg_resp). */
static enum xchg_rh
xchg_read_resp_head(struct np_xchg *q, struct np_uconn *c, struct xchg_resp *r)
{
    const struct np_ctx *ctx = q->se->ctx;
    size_t got = 0;
    size_t total = 0;
    enum xchg_rh rh;
    enum np_io io;

    memset(r, 0, sizeof(*r));
    /* The request has just been sent: the answer cannot be there yet. Waiting first saves
     * the read that would only say "not yet". */
    if (!np_stream_pending(&c->st)) {
        io = np_net_wait(c->fd, POLLIN, ctx->stop_fd, np_deadline(ctx->s->response_timeout_ms));
        if (io == NP_IO_TIMEOUT || io == NP_IO_STOPPED) {
            return rh_of_io(io, 0);
        }
    }
    while ((rh = xchg_parse_head(q, r)) == RH_MORE) {
        io = np_stream_recv(&c->st, q->se->relay_a + r->len, NP_RELAY_CAP - r->len, &got,
                            np_deadline(ctx->s->response_timeout_ms));
        if (io != NP_IO_OK) {
            return rh_of_io(io, total);
        }
        r->len += got;
        total += got;
    }
    return rh;
}

/* Move the bytes after the head to the front of se->in; they start the request body (or the
 * next request). */
static void
xchg_shift_in(struct np_session *se, size_t from)
{
    memmove(se->in, se->in + from, se->in_len - from);
    np_secure_zero(se->in + se->in_len - from, from);
    se->in_len -= from;
}

/* Stream the request body from the client to the upstream. Leaves the bytes after the body
 * at the front of se->in. */
static enum np_body_result
xchg_send_body(struct np_xchg *q, struct np_uconn *c)
{
    struct np_session *se = q->se;
    struct np_body_xfer x;
    enum np_body_result br;

    if (q->body == NP_FRAME_NONE) {
        return NP_BODY_DONE;
    }
    if (q->expect_continue && se->in_len == 0) {
        (void)np_stream_send_all(&q->client, continue_100, sizeof(continue_100) - 1,
                                 np_deadline(XCHG_SEND_MS));
    }
    memset(&x, 0, sizeof(x));
    x.src = &q->client;
    x.dst = &c->st;
    x.in = q->body;
    x.length = q->body_len;
    x.out = q->body;
    x.buf = se->in;
    x.cap = NP_IN_CAP;
    x.have = se->in_len;
    x.idle_ms = se->ctx->s->header_timeout_ms;
    x.send_ms = upstream_send_ms(q);
    br = np_body_relay(&x);
    q->ev.bytes_up = x.body_bytes;
    if (br == NP_BODY_DONE) {
        memmove(se->in, se->in + x.leftover_off, x.leftover_len);
        se->in_len = x.leftover_len;
    } else {
        se->in_len = 0;
    }
    return br;
}

/* Whether text[0..len) holds one of the route secrets the exchange must keep from the
 * client (np_xchg.scrub), in any spelling np_token_find_encoded knows. */
static bool
scrub_find(const struct np_xchg *q, const char *text, size_t len)
{
    size_t k;

    for (k = 0; k < NP_ARRAY_LEN(q->scrub); k++) {
        if (q->scrub[k].len > 0 &&
            np_token_find_encoded(text, len, q->scrub[k].p, q->scrub[k].len)) {
            return true;
        }
    }
    return false;
}

/* Append v[0..len) to out with every occurrence of a scrub secret replaced by the session
 * token, the phantom the child already holds: an upstream that echoes the request it got (a
 * redirect's Location with the query or path) must not hand the real key to the child (SPEC
 * §6.7), and a client that follows such a redirect through the route gets the secret injected
 * again. */
static void
put_scrubbed(const struct np_xchg *q, struct np_buf *out, const char *v, size_t len)
{
    size_t i = 0;
    size_t from = 0;

    if (!scrub_find(q, v, len)) {
        np_buf_put(out, v, len);
        return;
    }
    while (i < len) {
        size_t used = 0;
        size_t k;
        bool hit = false;

        for (k = 0; k < NP_ARRAY_LEN(q->scrub) && !hit; k++) {
            hit = q->scrub[k].len > 0 &&
                  np_token_match_encoded(v + i, len - i, q->scrub[k].p, q->scrub[k].len, &used);
        }
        if (hit) {
            np_buf_put(out, v + from, i - from);
            np_buf_put(out, q->se->ctx->token, NP_TOKEN_HEX_LEN);
            i += used;
            from = i;
        } else {
            i++;
        }
    }
    np_buf_put(out, v + from, len - from);
}

/* Write the client's response head for resp with framing out into relay_b; 0 when it does not
 * fit. */
static size_t
xchg_client_head(struct np_xchg *q, const struct np_http_resp *resp, enum np_framing out, bool keep)
{
    struct np_buf b;
    size_t i;

    np_buf_init(&b, q->se->relay_b, NP_RELAY_CAP);
    np_buf_printf(&b, "HTTP/1.1 %u %s\r\n", resp->status, np_http_reason((int)resp->status));
    for (i = 0; i < resp->n_headers; i++) {
        const struct np_header *h = &resp->headers[i];

        /* Framing is re-stated below from what the parser decided, never copied; a name that
         * echoes the route's secret is dropped. */
        if (np_http_hop_by_hop(h->name, h->name_len, resp->headers, resp->n_headers) ||
            np_http_ieq(h->name, h->name_len, "content-length") ||
            scrub_find(q, h->name, h->name_len)) {
            continue;
        }
        np_buf_put(&b, h->name, h->name_len);
        np_buf_puts(&b, ": ");
        put_scrubbed(q, &b, h->value, h->value_len);
        np_buf_puts(&b, "\r\n");
    }
    if (resp->has_content_length && out != NP_FRAME_CHUNKED && out != NP_FRAME_CLOSE &&
        resp->status != 204) {
        /* LENGTH, or NONE for HEAD/304/an empty body: the length the upstream stated. */
        np_buf_puts(&b, "Content-Length: ");
        np_buf_put_u64(&b, resp->content_length);
        np_buf_puts(&b, "\r\n");
    }
    if (out == NP_FRAME_CHUNKED) {
        np_buf_puts(&b, "Transfer-Encoding: chunked\r\n");
    }
    if (!keep) {
        np_buf_puts(&b, "Connection: close\r\n");
    } else if (q->client_http10) {
        np_buf_puts(&b, "Connection: keep-alive\r\n");
    }
    np_buf_puts(&b, "\r\n");
    return np_buf_ok(&b) ? b.len : 0;
}

/* Relay the response body (framing in, to the client as out), the client's head
 * relay_b[0..head) first: with the body bytes that came with the upstream's head in one write,
 * or alone at once when none did. The body is read and relayed in place in relay_a, after the
 * upstream's head (no copy to the front). Sets r->up_reusable. Returns the relay's result. */
static enum np_body_result
xchg_relay_body(struct np_xchg *q, struct xchg_resp *r, struct np_body_xfer *x, size_t head)
{
    struct np_session *se = q->se;
    enum np_body_result br;

    x->dst = &q->client;
    x->length = r->h.content_length;
    x->buf = se->relay_a + r->head_len;
    x->cap = NP_RELAY_CAP - r->head_len;
    x->have = r->len - r->head_len;
    x->idle_ms = se->ctx->s->response_timeout_ms;
    x->send_ms = XCHG_SEND_MS;
    x->pre = se->relay_b;
    x->pre_len = head;
    np_net_watch_peer(se->fd); /* a client that leaves ends a held stream at once */
    br = np_body_relay(x);
    np_net_watch_peer(-1);
    q->ev.bytes_down = x->body_bytes;
    r->up_reusable =
        br == NP_BODY_DONE && x->in != NP_FRAME_CLOSE && r->h.keep_alive && x->leftover_len == 0;
    return br;
}

/* Relay the response: head to the client, then the body. Returns whether the client
 * connection may be reused; r->up_reusable says whether the upstream one may. */
static bool
xchg_respond(struct np_xchg *q, struct np_uconn *c, struct xchg_resp *r)
{
    struct np_session *se = q->se;
    struct np_body_xfer x;
    bool keep;
    size_t n;

    memset(&x, 0, sizeof(x));
    x.src = &c->st;
    x.in = np_http_resp_framing(&r->h, q->head_method);
    x.out = x.in;
    if (x.in == NP_FRAME_CHUNKED || x.in == NP_FRAME_CLOSE) {
        x.out = q->client_http10 ? NP_FRAME_CLOSE : NP_FRAME_CHUNKED;
    }
    keep = q->client_keep_alive && x.out != NP_FRAME_CLOSE && !q->body_incomplete;
    n = xchg_client_head(q, &r->h, x.out, keep);
    r->up_reusable = false;
    if (n == 0) {
        /* The head grew past relay_b (every copy of a short route secret became the 64-byte
         * phantom): an answer, never a silent close, and an event that says so. */
        np_xchg_deny(q, 502, NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED,
                     "upstream response head too large to relay", "upstream unavailable");
        return false;
    }
    q->ev.status = (uint16_t)r->h.status;
    if (x.in == NP_FRAME_LENGTH && r->len - r->head_len == r->h.content_length) {
        /* The whole body came with the head (the common small API answer): head and body
         * in one write, from where each already is. */
        q->ev.bytes_down = r->h.content_length;
        x.in = NP_FRAME_NONE;
    }
    np_emit(se->ctx, &q->ev);
    if (x.in == NP_FRAME_NONE) {
        struct iovec iov[2] = {{se->relay_b, n},
                               {se->relay_a + r->head_len, (size_t)q->ev.bytes_down}};

        if (np_stream_sendv_all(&q->client, iov, 2, np_deadline(XCHG_SEND_MS)) != NP_IO_OK) {
            return false;
        }
        r->up_reusable = r->h.keep_alive && r->len == r->head_len + (size_t)q->ev.bytes_down;
        return keep;
    }
    return xchg_relay_body(q, r, &x, n) == NP_BODY_DONE && keep;
}

/* Answer an upstream failure after the request was admitted. */
static void
xchg_fail_answer(struct np_xchg *q, const struct np_failure *f)
{
    np_xchg_deny(q, f->status, f->cat, f->reason,
                 f->status == 504   ? "upstream timed out"
                 : f->status == 403 ? "upstream host denied"
                                    : "upstream unavailable");
}

/* Answer a response head that could not be read (rh is neither RH_OK nor RH_MORE). */
static void
xchg_fail_head(struct np_xchg *q, enum xchg_rh rh)
{
    struct np_failure f;
    const char *why = rh == RH_BAD ? q->resp_why : NULL;

    memset(&f, 0, sizeof(f));
    f.status = rh == RH_TIMEOUT ? 504 : 502;
    f.cat = rh == RH_TIMEOUT ? NONOPROXY_DENIAL_UPSTREAM_TIMEOUT
                             : NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED;
    (void)snprintf(f.reason, sizeof(f.reason), "%s%s%s",
                   rh == RH_TIMEOUT   ? "upstream response timed out"
                   : rh == RH_NOTHING ? "upstream closed the connection without answering"
                   : rh == RH_STOPPED ? "proxy shutting down"
                                      : "malformed upstream response head",
                   why != NULL ? ": " : "", why != NULL ? why : "");
    xchg_fail_answer(q, &f);
}

/* Answer a request body that did not reach the upstream because of the client or a shutdown.
 * Returns false for the results that leave the exchange going (DONE, or DST_ERR: the upstream
 * stopped reading but may still have answered). */
static bool
xchg_body_refused(struct np_xchg *q, enum np_body_result br)
{
    switch (br) {
    case NP_BODY_STOPPED:
        np_xchg_deny(q, 503, NONOPROXY_DENIAL_NONE, "proxy shutting down", "proxy shutting down");
        return true;
    case NP_BODY_SRC_TIMEOUT:
        np_xchg_deny(q, 408, NONOPROXY_DENIAL_REQUEST_TIMEOUT, "request body incomplete",
                     "bad request body");
        return true;
    case NP_BODY_MALFORMED:
        np_xchg_deny(q, 400, NONOPROXY_DENIAL_MALFORMED_REQUEST, "malformed chunked request body",
                     "bad request body");
        return true;
    case NP_BODY_TRUNCATED:
    case NP_BODY_SRC_ERR:
        np_xchg_deny(q, 400, NONOPROXY_DENIAL_MALFORMED_REQUEST, "request body incomplete",
                     "bad request body");
        return true;
    default:
        return false;
    }
}

/* Result of one attempt at an exchange on one connection. */
enum xchg_try {
    TRY_OK,       /* the response head is in relay_a */
    TRY_AGAIN,    /* a pooled connection was stale and the request may be repeated */
    TRY_ANSWERED, /* the client has its error answer; c is closed */
};

/* A Content-Length request body that is already all in se->in and small goes with the head:
 * copied after it in relay_b, so that head and body leave in one write (one TLS record).
 * Returns the bytes added after the head, or 0 (the body then follows as a stream). */
static size_t
xchg_inline_body(struct np_xchg *q)
{
    struct np_session *se = q->se;
    size_t room = NP_XCHG_INLINE_MAX > q->up_head_len ? NP_XCHG_INLINE_MAX - q->up_head_len : 0;

    if (q->body != NP_FRAME_LENGTH || q->body_len == 0 || q->body_len > se->in_len ||
        q->body_len > room) {
        return 0;
    }
    memcpy(se->relay_b + NP_XCHG_HEAD_OFF + q->up_head_len, se->in, (size_t)q->body_len);
    q->up_body_len = (size_t)q->body_len;
    return q->up_body_len;
}

/* Send the head (and body) on c and read the response head. */
static enum xchg_try
xchg_attempt(struct np_xchg *q, struct np_uconn *c, bool reused, struct xchg_resp *r)
{
    const char *head = q->se->relay_b + NP_XCHG_HEAD_OFF;
    bool may_repeat = reused && q->idempotent && q->body == NP_FRAME_NONE;
    enum np_body_result br;
    enum xchg_rh rh;

    size_t with_body = xchg_inline_body(q);

    if (np_stream_send_all(&c->st, head, q->up_head_len + with_body,
                           np_deadline(upstream_send_ms(q))) != NP_IO_OK) {
        struct np_failure f = {502, NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED,
                               "sending the request upstream failed"};

        np_uconn_close(c);
        if (may_repeat) {
            return TRY_AGAIN;
        }
        xchg_fail_answer(q, &f);
        return TRY_ANSWERED;
    }
    if (with_body > 0) {
        xchg_shift_in(q->se, with_body); /* the body went out with the head */
        q->ev.bytes_up = with_body;
        br = NP_BODY_DONE;
    } else {
        br = xchg_send_body(q, c);
    }
    if (xchg_body_refused(q, br)) {
        np_uconn_close(c);
        return TRY_ANSWERED;
    }
    /* NP_BODY_DST_ERR: the upstream stopped reading; it may still have answered. Its answer
     * is relayed, but the rest of the body is still in flight on both connections: neither
     * may be reused. */
    q->body_incomplete = br != NP_BODY_DONE;
    rh = xchg_read_resp_head(q, c, r);
    if (rh == RH_OK) {
        return TRY_OK;
    }
    np_uconn_close(c);
    if (rh == RH_NOTHING && may_repeat) {
        return TRY_AGAIN;
    }
    xchg_fail_head(q, rh);
    return TRY_ANSWERED;
}

/* Send the request on a pooled or new connection and read the response head, trying a fresh
 * connection once when a pooled one turns out to be stale and the request can be repeated.
 * Returns the connection (response head in relay_a) or NULL when answered. */
static struct np_uconn *
xchg_exchange(struct np_xchg *q, struct xchg_resp *r)
{
    struct np_failure f;
    struct np_uconn *c = q->ops->take(q);

    if (c != NULL) {
        switch (xchg_attempt(q, c, true, r)) {
        case TRY_OK:
            return c;
        case TRY_ANSWERED:
            return NULL;
        case TRY_AGAIN:
            break;
        }
    }
    memset(&f, 0, sizeof(f));
    c = q->ops->open(q, &f);
    if (c == NULL) {
        xchg_fail_answer(q, &f);
        return NULL;
    }
    /* A fresh connection is never repeated: TRY_AGAIN needs a reused one. */
    return xchg_attempt(q, c, false, r) == TRY_OK ? c : NULL;
}

/* Fill the request facts that outlive the head buffer. */
static void
xchg_facts(struct np_xchg *q)
{
    const struct np_http_req *req = &q->se->req;
    const struct np_header *ex = np_http_req_header(req, "Expect");
    static const char *const idem[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"};
    size_t i;

    q->body = np_http_req_framing(req);
    q->body_len = req->content_length;
    q->head_method = req->method == NP_METHOD_HEAD;
    q->client_keep_alive = req->keep_alive;
    q->client_http10 = req->http_major == 1 && req->http_minor == 0;
    q->expect_continue =
        ex != NULL && ex->value_len == 12 && strncasecmp(ex->value, "100-continue", 12) == 0;
    for (i = 0; i < NP_ARRAY_LEN(idem); i++) {
        if (strcmp(req->method_name, idem[i]) == 0) {
            q->idempotent = true;
        }
    }
}

void
np_xchg_init(struct np_xchg *x, struct np_session *se, const struct np_xchg_ops *ops, void *ops_ctx,
             bool json)
{
    memset(x, 0, sizeof(*x));
    x->se = se;
    x->ops = ops;
    x->ops_ctx = ops_ctx;
    x->json = json;
    xchg_facts(x);
    np_stream_init_plain(&x->client, se->fd, se->ctx->stop_fd);
}

bool
np_xchg_run(struct np_xchg *x)
{
    struct np_session *se = x->se;
    struct xchg_resp r;
    struct np_uconn *c;
    bool keep;

    xchg_shift_in(se, se->head_len); /* the head is no longer needed: wipe it */
    memset(&se->req, 0, sizeof(se->req));
    c = xchg_exchange(x, &r);
    np_secure_zero(se->relay_b + NP_XCHG_HEAD_OFF, x->up_head_len + x->up_body_len); /* secret */
    if (c == NULL) {
        return false;
    }
    keep = xchg_respond(x, c, &r);
    if (x->body_incomplete) {
        /* Never pooled, never kept (SPEC §1.2): drain what the client still sends so that
         * it reads the answer before the close. */
        r.up_reusable = false;
        keep = false;
        se->linger = true;
    }
    if (r.up_reusable) {
        x->ops->put(x, c);
    } else {
        np_uconn_close(c);
    }
    return keep;
}
