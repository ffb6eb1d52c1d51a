/* Reverse-proxy routes (L3).
 *
 * One request: match the route → refuse upgrades → credential loaded? → phantom → build the
 * upstream head (real secret in, phantom out) → upstream connection from the pool or a new
 * one (host check, connect, TLS) → head, then the request body streamed → response head →
 * response head to the client (hop-by-hop removed, framing chosen for the client) → response
 * body streamed → connection back to the pool when the exchange ended cleanly.
 *
 * Buffers (all the worker's): se->in holds the client's head and then serves as the work
 * buffer of the request body; relay_b holds the upstream target and head (they contain the
 * secret and are wiped as soon as they are sent); relay_a receives the response. */
#include "reverse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "gateway.h"
#include "http_msg.h"
#include "http_resp.h"
#include "route.h"
#include "stream.h"
#include "token.h"
#include "upool.h"

#define REV_TARGET_CAP   ((size_t)32 * 1024)  /* upstream request-target, in relay_b */
#define REV_SEND_MS      30000u               /* longest wait for one write to a peer */
#define REV_MAX_INTERIM  8u                   /* 1xx answers skipped before the final one */

static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* What one request needs besides the session. */
struct rev_req {
    struct np_session *se;
    const struct np_route_rt *rt;
    struct nonoproxy_audit_event ev;
    const char *rest;          /* path after the prefix, points into se->in */
    size_t rest_len;
    enum np_framing body;      /* request body framing */
    uint64_t body_len;
    bool head_method;
    bool idempotent;
    bool client_keep_alive;
    bool client_http10;
    bool expect_continue;
    size_t up_head_len;        /* upstream head in relay_b + REV_TARGET_CAP */
    struct np_stream client;
};

/* Append src[0..n) to out (capacity cap, *len used), silently truncating. */
static void
put(char *out, size_t cap, size_t *len, const char *src, size_t n)
{
    if (n > cap - *len) {
        n = cap - *len;
    }
    memcpy(out + *len, src, n);
    *len += n;
}

/* The audit path of a URL_PATH or QUERY_PARAM route: rest with the phantom's slot replaced
 * by [REDACTED] whatever it holds, so that a near-miss phantom (a token with one character
 * changed) is not recorded either. Other routes: rest as it is. The token itself is redacted
 * again by np_audit_set_path, in every spelling. */
static size_t
audit_rest(const struct np_route *r, const char *rest, size_t len, char *out, size_t cap)
{
    static const char red[] = "[REDACTED]";
    const char *q = memchr(rest, '?', len);
    size_t path_len = q != NULL ? (size_t)(q - rest) : len;
    size_t n = 0;
    size_t i;

    if (r->credential_key != NULL && r->mode == NONOPROXY_INJECT_URL_PATH) {
        const char *brace = strstr(r->path_pattern, "{}");
        size_t pre = (size_t)(brace - r->path_pattern);
        const char *suf = brace + 2;
        const char *at = pre > 0 ? memmem(rest, path_len, r->path_pattern, pre) : rest;
        if (at != NULL) {
            const char *slot = at + pre;
            const char *end = slot;
            const char *lim = rest + path_len;
            const char *hit = *suf != '\0' ? memmem(slot, (size_t)(lim - slot), suf, strlen(suf))
                                            : NULL;
            if (hit != NULL) {
                end = hit;
            } else {
                while (end < lim && *end != '/') {
                    end++;
                }
            }
            put(out, cap, &n, rest, (size_t)(slot - rest));
            put(out, cap, &n, red, sizeof(red) - 1);
            put(out, cap, &n, end, len - (size_t)(end - rest));
            return n;
        }
    }
    if (r->credential_key != NULL && r->mode == NONOPROXY_INJECT_QUERY_PARAM && q != NULL) {
        size_t name_len = strlen(r->query_param_name);
        put(out, cap, &n, rest, path_len + 1);
        i = path_len + 1;
        while (i < len) {
            const char *pair = rest + i;
            const char *amp = memchr(pair, '&', len - i);
            size_t plen = amp != NULL ? (size_t)(amp - pair) : len - i;
            if (plen > name_len && pair[name_len] == '=' &&
                memcmp(pair, r->query_param_name, name_len) == 0) {
                put(out, cap, &n, pair, name_len + 1);
                put(out, cap, &n, red, sizeof(red) - 1);
            } else {
                put(out, cap, &n, pair, plen);
            }
            i += plen;
            if (amp != NULL) {
                put(out, cap, &n, "&", 1);
                i++;
            }
        }
        return n;
    }
    put(out, cap, &n, rest, len);
    return n;
}

/* Audit fields every event of this request carries. */
static void
rev_event_init(struct rev_req *q)
{
    const struct np_route *r = q->rt->r;
    struct nonoproxy_audit_event *ev = &q->ev;
    static const enum nonoproxy_injection_mode inj[] = {
        [NONOPROXY_INJECT_HEADER] = NONOPROXY_INJECTION_HEADER,
        [NONOPROXY_INJECT_URL_PATH] = NONOPROXY_INJECTION_URL_PATH,
        [NONOPROXY_INJECT_QUERY_PARAM] = NONOPROXY_INJECTION_QUERY_PARAM,
        [NONOPROXY_INJECT_BASIC_AUTH] = NONOPROXY_INJECTION_BASIC_AUTH,
    };
    static const enum nonoproxy_auth_mechanism mech[] = {
        [NONOPROXY_INJECT_HEADER] = NONOPROXY_AUTH_MECH_PHANTOM_HEADER,
        [NONOPROXY_INJECT_URL_PATH] = NONOPROXY_AUTH_MECH_PHANTOM_PATH,
        [NONOPROXY_INJECT_QUERY_PARAM] = NONOPROXY_AUTH_MECH_PHANTOM_QUERY,
        [NONOPROXY_INJECT_BASIC_AUTH] = NONOPROXY_AUTH_MECH_PHANTOM_HEADER,
    };

    np_audit_event_init(ev, NONOPROXY_MODE_REVERSE, NONOPROXY_DECISION_ALLOW);
    np_audit_set(ev->method, sizeof(ev->method), q->se->req.method_name,
                 strlen(q->se->req.method_name));
    char path[NONOPROXY_AUDIT_PATH_LEN + 16];
    size_t path_len = audit_rest(r, q->rest, q->rest_len, path, sizeof(path));

    np_audit_set_path(ev, path, path_len, q->se->ctx->token);
    np_audit_set(ev->route_id, sizeof(ev->route_id), r->prefix, strlen(r->prefix));
    np_audit_set(ev->target, sizeof(ev->target), r->host, strlen(r->host));
    ev->has_port = true;
    ev->port = r->port;
    if (r->credential_key != NULL) {
        ev->auth_mechanism = mech[r->mode];
        ev->injection_mode = inj[r->mode];
        ev->managed_credential_active = r->secret != NULL ? NONOPROXY_TRI_TRUE
                                                          : NONOPROXY_TRI_FALSE;
    } else {
        ev->auth_mechanism = NONOPROXY_AUTH_MECH_PROXY_AUTHORIZATION;
        ev->injection_mode = NONOPROXY_INJECTION_NONE;
        ev->managed_credential_active = NONOPROXY_TRI_FALSE;
    }
}

/* Record a deny and answer it with a JSON error (msg: a literal without quotes). */
static void
rev_deny(struct rev_req *q, int status, enum nonoproxy_denial_category cat, const char *reason,
         const char *msg)
{
    q->ev.decision = NONOPROXY_DECISION_DENY;
    q->ev.denial_category = cat;
    q->ev.status = (uint16_t)status;
    np_audit_set(q->ev.reason, sizeof(q->ev.reason), reason, strlen(reason));
    np_emit(q->se->ctx, &q->ev);
    np_session_reply_json(q->se, status, msg);
}

/* Answer a request that matches no route, or escapes its prefix. */
static void
rev_unrouted(struct np_session *se, int status, enum nonoproxy_denial_category cat,
             const char *reason)
{
    struct nonoproxy_audit_event ev;

    np_audit_event_init(&ev, NONOPROXY_MODE_REVERSE, NONOPROXY_DECISION_DENY);
    np_audit_set(ev.method, sizeof(ev.method), se->req.method_name, strlen(se->req.method_name));
    np_audit_set_path(&ev, se->req.target, se->req.target_len, se->ctx->token);
    ev.denial_category = cat;
    ev.status = (uint16_t)status;
    np_audit_set(ev.reason, sizeof(ev.reason), reason, strlen(reason));
    np_emit(se->ctx, &ev);
    np_session_reply_json(se, status, reason);
}

/* Whether a header value lists token (comma-separated, case-insensitive). */
static bool
value_has_token(const struct np_header *h, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;

    while (i < h->value_len) {
        size_t start;
        size_t end;
        while (i < h->value_len && (h->value[i] == ',' || h->value[i] == ' ' ||
                                    h->value[i] == '\t')) {
            i++;
        }
        start = i;
        while (i < h->value_len && h->value[i] != ',') {
            i++;
        }
        end = i;
        while (end > start && (h->value[end - 1] == ' ' || h->value[end - 1] == '\t')) {
            end--;
        }
        if (end - start == tl && strncasecmp(h->value + start, token, tl) == 0) {
            return true;
        }
    }
    return false;
}

/* Whether any header named name carries token in its list. */
static bool
req_header_has(const struct np_http_req *req, const char *name, const char *token)
{
    size_t nl = strlen(name);
    size_t i;

    for (i = 0; i < req->n_headers; i++) {
        const struct np_header *h = &req->headers[i];
        if (h->name_len == nl && strncasecmp(h->name, name, nl) == 0 &&
            value_has_token(h, token)) {
            return true;
        }
    }
    return false;
}

/* The checks before anything goes upstream. Returns false when the request was answered. */
static bool
rev_admit(struct rev_req *q)
{
    const struct np_route *r = q->rt->r;
    const struct np_http_req *req = &q->se->req;

    if (np_http_req_header(req, "Upgrade") != NULL || req_header_has(req, "Connection",
                                                                       "upgrade")) {
        rev_deny(q, 501, NONOPROXY_DENIAL_UNSUPPORTED_REQUEST,
                 "protocol upgrades (WebSocket) are not supported on routes",
                 "protocol upgrades are not supported on routes");
        return false;
    }
    if (r->credential_key != NULL && r->secret == NULL) {
        q->ev.auth_outcome = NONOPROXY_AUTH_OUTCOME_FAILED;
        rev_deny(q, 503, NONOPROXY_DENIAL_MANAGED_CREDENTIAL_UNAVAILABLE,
                 "the route's credential is not loaded", "managed credential unavailable");
        return false;
    }
    if (!np_route_phantom_ok(r, req, q->rest, q->rest_len, q->se->ctx->token)) {
        q->ev.auth_outcome = NONOPROXY_AUTH_OUTCOME_FAILED;
        rev_deny(q, 401, NONOPROXY_DENIAL_AUTHENTICATION_FAILED,
                 r->credential_key != NULL ? "missing or invalid phantom token"
                                           : "missing or invalid session token",
                 "Unauthorized");
        return false;
    }
    q->ev.auth_outcome = NONOPROXY_AUTH_OUTCOME_SUCCEEDED;
    return true;
}

/* Remove the session token from the upstream target wherever the route did not already
 * replace it (SPEC §6.4: the phantom is stripped wherever it was): query parameters that
 * carry it, in any spelling, are dropped. Returns -1 when it is in the path, where dropping a
 * segment would change the meaning of the request. */
static int
strip_token(char *target, size_t *len, const char *token)
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

/* Build the upstream head into relay_b (after the target area). */
static bool
rev_build_head(struct rev_req *q)
{
    struct np_session *se = q->se;
    char *target = se->relay_b;
    char *head = se->relay_b + REV_TARGET_CAP;
    size_t target_len = 0;
    int rc;

    rc = np_route_upstream_target(q->rt->r, q->rest, q->rest_len, target, REV_TARGET_CAP,
                                  &target_len);
    if (rc == 0 && strip_token(target, &target_len, se->ctx->token) != 0) {
        np_secure_zero(target, target_len);
        rev_deny(q, 400, NONOPROXY_DENIAL_MALFORMED_REQUEST,
                 "the session token must not appear in the request path",
                 "the session token must not appear in the request path");
        return false;
    }
    if (rc == 0) {
        rc = np_route_build_head(q->rt->r, &se->req, target, target_len, q->body, q->body_len,
                                 se->ctx->token, head, NP_RELAY_CAP - REV_TARGET_CAP,
                                 &q->up_head_len);
    }
    np_secure_zero(target, target_len);
    if (rc != 0) {
        np_secure_zero(se->relay_b, NP_RELAY_CAP); /* whatever a failed build left */
        rev_deny(q, 400, NONOPROXY_DENIAL_MALFORMED_REQUEST,
                 "the request cannot be rewritten for the upstream (too large or the path "
                 "pattern does not match)",
                 "request cannot be forwarded");
        return false;
    }
    return true;
}

/* How opening an upstream connection failed. */
struct rev_fail {
    int status;
    enum nonoproxy_denial_category cat;
    char reason[256];
};

/* Whether every address is loopback (http:// upstreams may only be local). */
static bool
all_loopback(const struct np_addrlist *al)
{
    size_t i;

    for (i = 0; i < al->n; i++) {
        const struct sockaddr_storage *ss = &al->addr[i];
        if (ss->ss_family == AF_INET) {
            uint32_t a = ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr);
            if ((a >> 24) != 127) {
                return false;
            }
        } else if (!IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr)) {
            return false;
        }
    }
    return al->n > 0;
}

/* Connect to the checked addresses in turn, then TLS. Returns the connection or NULL. */
static struct np_uconn *
rev_connect(struct rev_req *q, const struct np_addrlist *al, struct rev_fail *f)
{
    const struct np_ctx *ctx = q->se->ctx;
    const struct np_route *r = q->rt->r;
    struct np_tls *tls = NULL;
    char why[200] = "";
    enum np_io io = NP_IO_ERR;
    int err = 0;
    int fd = -1;
    size_t i;

    for (i = 0; i < al->n; i++) {
        io = np_net_connect(&al->addr[i], ctx->s->connect_timeout_ms, ctx->stop_fd, &fd, &err);
        if (io == NP_IO_OK || io == NP_IO_STOPPED) {
            break;
        }
    }
    if (io != NP_IO_OK) {
        f->status = io == NP_IO_TIMEOUT || err == ETIMEDOUT ? 504 : 502;
        f->cat = f->status == 504 ? NONOPROXY_DENIAL_UPSTREAM_TIMEOUT
                                  : NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED;
        (void)snprintf(f->reason, sizeof(f->reason), "upstream connect to %s:%u failed: %s",
                       r->host, (unsigned)r->port,
                       io == NP_IO_STOPPED ? "proxy shutting down" : NP_ERRSTR(err));
        return NULL;
    }
    if (q->rt->tls != NULL) {
        io = np_tls_connect(q->rt->tls, fd, r->host, ctx->stop_fd,
                            np_deadline(ctx->s->tls_timeout_ms), &tls, why, sizeof(why));
        if (io != NP_IO_OK) {
            np_net_close(fd);
            f->status = io == NP_IO_TIMEOUT ? 504 : 502;
            f->cat = io == NP_IO_TIMEOUT ? NONOPROXY_DENIAL_UPSTREAM_TIMEOUT
                                         : NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED;
            (void)snprintf(f->reason, sizeof(f->reason), "upstream TLS with %s:%u failed: %s",
                           r->host, (unsigned)r->port,
                           io == NP_IO_TIMEOUT ? "handshake timed out" : why);
            return NULL;
        }
    }
    return np_uconn_new(fd, tls, ctx->stop_fd);
}

/* Open a new upstream connection: host check (hard deny list, self, DNS pinned to the checked
 * addresses), http only to loopback, connect, TLS. Not inlined: its host query is large and
 * its frame should not add to the caller's. */
static __attribute__((noinline)) struct np_uconn *
rev_open(struct rev_req *q, struct rev_fail *f)
{
    const struct np_ctx *ctx = q->se->ctx;
    const struct np_route *r = q->rt->r;
    struct np_host_query hq;
    enum np_host_verdict v;
    struct np_uconn *c;

    memset(&hq, 0, sizeof(hq));
    hq.host = r->host;
    hq.host_len = strlen(r->host);
    hq.port = r->port;
    hq.self = &ctx->self;
    v = np_hostfilter_decide(ctx->gw->any, &ctx->s->resolver, &hq);
    if (v != NP_HOST_ALLOW) {
        f->status = v == NP_HOST_RESOLVE_FAILED ? 502 : 403;
        f->cat = v == NP_HOST_RESOLVE_FAILED ? NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED
                 : v == NP_HOST_DENY_SELF    ? NONOPROXY_DENIAL_SELF_REQUEST
                                             : NONOPROXY_DENIAL_HOST_DENIED;
        (void)snprintf(f->reason, sizeof(f->reason), "%s", hq.reason);
        return NULL;
    }
    if (!r->tls && !all_loopback(&hq.addrs)) {
        f->status = 502;
        f->cat = NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED;
        (void)snprintf(f->reason, sizeof(f->reason),
                       "refusing plain http to %s: it does not resolve to loopback only", r->host);
        return NULL;
    }
    c = rev_connect(q, &hq.addrs, f);
    if (c == NULL && f->status == 0) {
        f->status = 502;
        f->cat = NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED;
        (void)snprintf(f->reason, sizeof(f->reason), "out of memory");
    }
    return c;
}

/* Outcome of reading a response head. */
enum rev_rh {
    RH_OK = 0,
    RH_NOTHING,   /* the upstream closed or failed before sending a byte */
    RH_TIMEOUT,
    RH_BAD,       /* malformed, too large, or closed mid-head */
    RH_STOPPED,
};

/* Read a final (non-1xx) response head into relay_a; *len is what was received, *head_len the
 * head's length. Interim 1xx responses are dropped. */
static enum rev_rh
rev_read_resp_head(struct rev_req *q, struct np_uconn *c, struct np_http_resp *resp,
                   size_t *len, size_t *head_len)
{
    char *buf = q->se->relay_a;
    const char *why = NULL;
    size_t got = 0;
    size_t total = 0;
    unsigned interim = 0;
    enum np_head_scan sc;
    enum np_io io;

    *len = 0;
    /* The request has just been sent: the answer cannot be there yet. Waiting first saves
     * the read that would only say "not yet". */
    if (!np_stream_pending(&c->st)) {
        io = np_net_wait(c->fd, POLLIN, q->se->ctx->stop_fd,
                         np_deadline(q->se->ctx->s->response_timeout_ms));
        if (io == NP_IO_TIMEOUT) {
            return RH_TIMEOUT;
        }
        if (io == NP_IO_STOPPED) {
            return RH_STOPPED;
        }
    }
    for (;;) {
        sc = np_head_scan(buf, *len, head_len);
        if (sc == NP_HEAD_COMPLETE) {
            if (np_http_resp_parse(buf, *head_len, resp, &why) != 0) {
                return RH_BAD;
            }
            if (resp->status >= 100 && resp->status < 200 && resp->status != 101) {
                if (++interim > REV_MAX_INTERIM) {
                    return RH_BAD; /* an endless stream of 1xx would hold the worker */
                }
                memmove(buf, buf + *head_len, *len - *head_len);
                *len -= *head_len;
                continue;
            }
            return resp->status == 101 ? RH_BAD : RH_OK;
        }
        if (sc != NP_HEAD_NEED_MORE || *len == NP_RELAY_CAP) {
            return RH_BAD;
        }
        io = np_stream_recv(&c->st, buf + *len, NP_RELAY_CAP - *len, &got,
                            np_deadline(q->se->ctx->s->response_timeout_ms));
        if (io == NP_IO_TIMEOUT) {
            return RH_TIMEOUT;
        }
        if (io == NP_IO_STOPPED) {
            return RH_STOPPED;
        }
        if (io != NP_IO_OK) {
            return total == 0 ? RH_NOTHING : RH_BAD;
        }
        *len += got;
        total += got;
    }
}

/* Move the bytes after the head to the front of se->in; they start the request body (or the
 * next request). */
static void
rev_shift_in(struct np_session *se, size_t from)
{
    memmove(se->in, se->in + from, se->in_len - from);
    np_secure_zero(se->in + se->in_len - from, from);
    se->in_len -= from;
}

/* Stream the request body from the client to the upstream. Leaves the bytes after the body
 * at the front of se->in. */
static enum np_body_result
rev_send_body(struct rev_req *q, struct np_uconn *c)
{
    struct np_session *se = q->se;
    struct np_body_xfer x;
    enum np_body_result br;

    if (q->body == NP_FRAME_NONE) {
        return NP_BODY_DONE;
    }
    if (q->expect_continue && se->in_len == 0) {
        (void)np_stream_send_all(&q->client, continue_100, sizeof(continue_100) - 1,
                                 np_deadline(REV_SEND_MS));
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
    x.send_ms = REV_SEND_MS;
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

/* Write the client's response head for resp with framing out into relay_b. */
static size_t
rev_client_head(struct rev_req *q, const struct np_http_resp *resp, enum np_framing out,
                bool keep)
{
    char *b = q->se->relay_b;
    size_t cap = NP_RELAY_CAP;
    size_t n;
    size_t i;
    int w;

    w = snprintf(b, cap, "HTTP/1.1 %u %s\r\n", resp->status, np_http_reason((int)resp->status));
    n = (size_t)w;
    for (i = 0; i < resp->n_headers; i++) {
        const struct np_header *h = &resp->headers[i];
        if (np_http_hop_by_hop(h->name, h->name_len, resp->headers, resp->n_headers)) {
            continue;
        }
        if (n + h->name_len + h->value_len + 4 >= cap - 128) {
            return 0;
        }
        memcpy(b + n, h->name, h->name_len);
        n += h->name_len;
        memcpy(b + n, ": ", 2);
        n += 2;
        memcpy(b + n, h->value, h->value_len);
        n += h->value_len;
        memcpy(b + n, "\r\n", 2);
        n += 2;
    }
    w = snprintf(b + n, cap - n, "%s%s\r\n",
                 out == NP_FRAME_CHUNKED ? "Transfer-Encoding: chunked\r\n" : "",
                 !keep ? "Connection: close\r\n"
                 : q->client_http10 ? "Connection: keep-alive\r\n"
                                    : "");
    return n + (size_t)w;
}

/* Relay the response: head to the client, then the body. Returns whether both the client and
 * the upstream connection may be reused. */
static bool
rev_respond(struct rev_req *q, struct np_uconn *c, const struct np_http_resp *resp, size_t len,
            size_t head_len, bool *up_reusable)
{
    struct np_session *se = q->se;
    enum np_framing in = np_http_resp_framing(resp, q->head_method);
    enum np_framing out = in;
    struct np_body_xfer x;
    enum np_body_result br = NP_BODY_DONE;
    bool keep;
    size_t n;

    if (in == NP_FRAME_CHUNKED || in == NP_FRAME_CLOSE) {
        out = q->client_http10 ? NP_FRAME_CLOSE : NP_FRAME_CHUNKED;
    }
    keep = q->client_keep_alive && out != NP_FRAME_CLOSE;
    n = rev_client_head(q, resp, out, keep);
    q->ev.status = (uint16_t)resp->status;
    if (n != 0 && in == NP_FRAME_LENGTH && len - head_len == resp->content_length &&
        resp->content_length <= NP_RELAY_CAP - n) {
        /* The whole body came with the head (the common small API answer): one write. */
        memcpy(se->relay_b + n, se->relay_a + head_len, (size_t)resp->content_length);
        n += (size_t)resp->content_length;
        q->ev.bytes_down = resp->content_length;
        in = NP_FRAME_NONE;
        len = head_len;
    }
    np_emit(se->ctx, &q->ev);
    if (n == 0 || np_stream_send_all(&q->client, se->relay_b, n, np_deadline(REV_SEND_MS)) !=
                      NP_IO_OK) {
        *up_reusable = false;
        return false;
    }
    if (in != NP_FRAME_NONE) {
        memset(&x, 0, sizeof(x));
        x.src = &c->st;
        x.dst = &q->client;
        x.in = in;
        x.length = resp->content_length;
        x.out = out;
        x.buf = se->relay_a;
        x.cap = NP_RELAY_CAP;
        memmove(se->relay_a, se->relay_a + head_len, len - head_len);
        x.have = len - head_len;
        x.idle_ms = se->ctx->s->response_timeout_ms;
        x.send_ms = REV_SEND_MS;
        br = np_body_relay(&x);
        q->ev.bytes_down = x.body_bytes;
        *up_reusable = br == NP_BODY_DONE && in != NP_FRAME_CLOSE && resp->keep_alive &&
                       x.leftover_len == 0;
    } else {
        *up_reusable = resp->keep_alive && len == head_len;
    }
    return keep && br == NP_BODY_DONE;
}

/* Answer an upstream failure after the request was admitted. */
static void
rev_fail_answer(struct rev_req *q, const struct rev_fail *f)
{
    rev_deny(q, f->status, f->cat, f->reason,
             f->status == 504   ? "upstream timed out"
             : f->status == 403 ? "upstream host denied"
                                : "upstream unavailable");
}

/* Send the head (and body) on a pooled or new connection and read the response head, trying
 * a fresh connection once when a pooled one turns out to be stale and the request can be
 * repeated. Returns the connection (response head in relay_a) or NULL when answered. */
static __attribute__((noinline)) struct np_uconn *
rev_exchange(struct rev_req *q, struct np_http_resp *resp, size_t *len, size_t *head_len)
{
    struct np_session *se = q->se;
    const char *head = se->relay_b + REV_TARGET_CAP;
    struct rev_fail f;
    struct np_uconn *c;
    enum np_body_result br;
    enum rev_rh rh;
    int attempt;

    for (attempt = 0; attempt < 2; attempt++) {
        bool reused;
        memset(&f, 0, sizeof(f));
        c = attempt == 0 ? np_upool_take(q->rt->pool) : NULL;
        reused = c != NULL;
        if (c == NULL && (c = rev_open(q, &f)) == NULL) {
            rev_fail_answer(q, &f);
            return NULL;
        }
        c->uses++;
        if (np_stream_send_all(&c->st, head, q->up_head_len, np_deadline(REV_SEND_MS)) !=
            NP_IO_OK) {
            np_uconn_close(c);
            if (reused && q->idempotent && q->body == NP_FRAME_NONE) {
                continue;
            }
            f.status = 502;
            f.cat = NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED;
            (void)snprintf(f.reason, sizeof(f.reason), "sending the request upstream failed");
            rev_fail_answer(q, &f);
            return NULL;
        }
        br = rev_send_body(q, c);
        if (br == NP_BODY_STOPPED) {
            np_uconn_close(c);
            rev_deny(q, 503, NONOPROXY_DENIAL_NONE, "proxy shutting down",
                     "proxy shutting down");
            return NULL;
        }
        if (br == NP_BODY_MALFORMED || br == NP_BODY_TRUNCATED || br == NP_BODY_SRC_TIMEOUT ||
            br == NP_BODY_SRC_ERR) {
            np_uconn_close(c);
            rev_deny(q, br == NP_BODY_SRC_TIMEOUT ? 408 : 400,
                     br == NP_BODY_SRC_TIMEOUT ? NONOPROXY_DENIAL_REQUEST_TIMEOUT
                                               : NONOPROXY_DENIAL_MALFORMED_REQUEST,
                     br == NP_BODY_MALFORMED ? "malformed chunked request body"
                                             : "request body incomplete",
                     "bad request body");
            return NULL;
        }
        /* NP_BODY_DST_ERR: the upstream stopped reading; it may still have answered. */
        rh = rev_read_resp_head(q, c, resp, len, head_len);
        if (rh == RH_OK) {
            return c;
        }
        np_uconn_close(c);
        if (rh == RH_NOTHING && reused && q->idempotent && q->body == NP_FRAME_NONE) {
            continue;
        }
        f.status = rh == RH_TIMEOUT ? 504 : 502;
        f.cat = rh == RH_TIMEOUT ? NONOPROXY_DENIAL_UPSTREAM_TIMEOUT
                                 : NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED;
        (void)snprintf(f.reason, sizeof(f.reason), "%s",
                       rh == RH_TIMEOUT   ? "upstream response timed out"
                       : rh == RH_NOTHING ? "upstream closed the connection without answering"
                       : rh == RH_STOPPED ? "proxy shutting down"
                                          : "malformed upstream response head");
        rev_fail_answer(q, &f);
        return NULL;
    }
    return NULL; /* not reached: the second attempt always answers */
}

/* Fill the request facts that outlive the head buffer. */
static void
rev_req_facts(struct rev_req *q)
{
    const struct np_http_req *req = &q->se->req;
    const struct np_header *ex = np_http_req_header(req, "Expect");
    static const char *const idem[] = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"};
    size_t i;

    q->body = np_http_req_framing(req);
    q->body_len = req->content_length;
    q->head_method = req->method == NP_METHOD_HEAD;
    q->client_keep_alive = req->keep_alive;
    q->client_http10 = req->http_major == 1 && req->http_minor == 0;
    q->expect_continue = ex != NULL && ex->value_len == 12 &&
                         strncasecmp(ex->value, "100-continue", 12) == 0;
    for (i = 0; i < NP_ARRAY_LEN(idem); i++) {
        if (strcmp(req->method_name, idem[i]) == 0) {
            q->idempotent = true;
        }
    }
}

bool
np_reverse_serve(struct np_session *se)
{
    const struct np_gateway *gw = se->ctx->gw;
    struct rev_req q;
    struct np_http_resp resp;
    struct np_uconn *c;
    size_t idx = 0;
    size_t len = 0;
    size_t head_len = 0;
    bool up_reusable = false;
    bool keep;

    memset(&q, 0, sizeof(q));
    q.se = se;
    switch (np_route_match(gw->n > 0 ? gw->rt[0].r : NULL, gw->n, se->req.target,
                           se->req.target_len, &idx, &q.rest, &q.rest_len)) {
    case NP_ROUTE_FOUND:
        break;
    case NP_ROUTE_ESCAPES:
        rev_unrouted(se, 400, NONOPROXY_DENIAL_MALFORMED_REQUEST,
                     "the path leaves the route prefix");
        return false;
    case NP_ROUTE_NOT_FOUND:
    default:
        rev_unrouted(se, 404, NONOPROXY_DENIAL_ROUTE_NOT_FOUND, "no route for this path");
        return false;
    }
    q.rt = &gw->rt[idx];
    rev_event_init(&q);
    rev_req_facts(&q);
    np_stream_init_plain(&q.client, se->fd, se->ctx->stop_fd);
    if (!rev_admit(&q) || !rev_build_head(&q)) {
        return false;
    }
    rev_shift_in(se, se->head_len); /* the head is no longer needed: wipe it */
    memset(&se->req, 0, sizeof(se->req));
    q.rest = NULL;
    q.rest_len = 0;
    c = rev_exchange(&q, &resp, &len, &head_len);
    np_secure_zero(se->relay_b + REV_TARGET_CAP, q.up_head_len); /* it held the secret */
    if (c == NULL) {
        return false;
    }
    keep = rev_respond(&q, c, &resp, len, head_len, &up_reusable);
    if (up_reusable) {
        np_upool_put(q.rt->pool, c);
    } else {
        np_uconn_close(c);
    }
    return keep;
}
