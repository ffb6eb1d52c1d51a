/* Reverse-proxy routes (L3).
 *
 * One request: match the route → refuse upgrades → credential loaded? → phantom → the
 * endpoint rules (on the normalised path) → a body already malformed? → the rate limit →
 * build the upstream head (real secret in, phantom out) → the exchange (exchange.c) on a
 * pooled or new connection (host check, connect, TLS). Rules and the rate limit come after
 * the phantom check (SPEC §13): an unauthenticated process learns nothing from them.
 *
 * The rest of the target is normalised once, into relay_a (REST_NORM_CAP bytes, then the
 * rules' scratch): the endpoint rules match that path and the upstream target is built from
 * it, so what was matched is what goes upstream. It may hold the phantom: wiped after use.
 * The upstream target is built in relay_b[0..NP_XCHG_HEAD_OFF) and the head after it; both
 * hold the secret and are wiped as soon as they are used. */
#include "route_serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "buf.h"
#include "exchange.h"
#include "http_body.h"
#include "http_response.h"
#include "ratelimit.h"
#include "route_path.h"
#include "route_pattern.h"
#include "route_phantom.h"
#include "route_rules.h"
#include "route_runtime.h"
#include "route_target.h"
#include "stream.h"
#include "token.h"
#include "upool.h"
#include "upstream_head.h"

#define REST_NORM_CAP (NP_RELAY_CAP / 2) /* relay_a: the normalised rest, then scratch */

/* The route side of one request. */
struct rev_ctx {
    struct np_route_rt *rt; /* its rate limit changes */
    const char *rest;       /* path after the prefix: into se->in, then the normalised copy */
    size_t rest_len;
    size_t path_len; /* of the normalised copy: its path part (the query follows) */
    size_t wipe_len; /* relay_a bytes (from 0 and from REST_NORM_CAP) to wipe */
};

/* The audit path of a URL_PATH route: rest with the slot of path_pattern (found as the
 * phantom check and the upstream target find it) replaced by [REDACTED] whatever it holds. */
static void
audit_slot(const struct np_route *r, const char *rest, size_t len, size_t path_len,
           struct np_buf *out)
{
    struct np_route_pattern_match m;

    if (!np_route_pattern_find(r->path_pattern, rest, path_len, &m)) {
        np_buf_put(out, rest, len);
        return;
    }
    np_buf_put(out, rest, m.c_start);
    np_buf_puts(out, "[REDACTED]");
    np_buf_put(out, rest + m.c_end, len - m.c_end);
}

/* The audit path of a QUERY_PARAM route: rest with the value of every query_param_name pair
 * replaced by [REDACTED] whatever it holds. */
static void
audit_params(const struct np_route *r, const char *rest, size_t len, size_t path_len,
             struct np_buf *out)
{
    size_t name_len = strlen(r->query_param_name);
    size_t i = path_len + 1;

    np_buf_put(out, rest, path_len + 1);
    while (i < len) {
        const char *pair = rest + i;
        const char *amp = memchr(pair, '&', len - i);
        size_t plen = amp != NULL ? (size_t)(amp - pair) : len - i;

        if (plen > name_len && pair[name_len] == '=' &&
            memcmp(pair, r->query_param_name, name_len) == 0) {
            np_buf_put(out, pair, name_len + 1);
            np_buf_puts(out, "[REDACTED]");
        } else {
            np_buf_put(out, pair, plen);
        }
        i += plen;
        if (amp != NULL) {
            np_buf_putc(out, '&');
            i++;
        }
    }
}

/* The audit path of a URL_PATH or QUERY_PARAM route: the phantom's slot replaced by
 * [REDACTED] whatever it holds, so that a near-miss phantom (a token with one character
 * changed) is not recorded either. Other routes: rest as it is. rest has been redacted of the
 * token already; the token is redacted again by np_audit_set_path, in every spelling. */
static void
audit_rest(const struct np_route *r, const char *rest, size_t len, struct np_buf *out)
{
    const char *q = memchr(rest, '?', len);
    size_t path_len = q != NULL ? (size_t)(q - rest) : len;

    if (r->credential_key != NULL && r->mode == NONOPROXY_INJECT_URL_PATH) {
        audit_slot(r, rest, len, path_len, out);
    } else if (r->credential_key != NULL && r->mode == NONOPROXY_INJECT_QUERY_PARAM && q != NULL) {
        audit_params(r, rest, len, path_len, out);
    } else {
        np_buf_put(out, rest, len);
    }
}

/* Audit fields every event of this request carries. */
static void
rev_event_init(struct np_xchg *q, const struct rev_ctx *rc)
{
    const struct np_route *r = rc->rt->r;
    struct nonoproxy_audit_event *ev = &q->ev;
    static const enum nonoproxy_inject_mode inj[] = {
        [NONOPROXY_INJECT_HEADER] = NONOPROXY_INJECT_HEADER,
        [NONOPROXY_INJECT_URL_PATH] = NONOPROXY_INJECT_URL_PATH,
        [NONOPROXY_INJECT_QUERY_PARAM] = NONOPROXY_INJECT_QUERY_PARAM,
        [NONOPROXY_INJECT_BASIC_AUTH] = NONOPROXY_INJECT_BASIC_AUTH,
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
    /* The token first, over the whole rest, into relay_a; then the phantom's slot, whatever
     * it holds, into relay_b (both free until the upstream head is built); only then the cut
     * (SPEC §9). The slots only grow the text by "[REDACTED]" per pair: it always fits. */
    char *redacted = q->se->relay_a;
    size_t red_len =
        np_audit_redact(redacted, NP_RELAY_CAP, rc->rest, rc->rest_len, q->se->ctx->token);
    struct np_buf path;

    np_buf_init(&path, q->se->relay_b, NP_RELAY_CAP);
    audit_rest(r, redacted, red_len, &path);
    np_audit_set_path(ev, path.p, path.len, q->se->ctx->token);
    np_secure_zero(redacted, red_len);
    np_secure_zero(path.p, path.len);
    np_audit_set(ev->route_id, sizeof(ev->route_id), r->prefix, strlen(r->prefix));
    np_audit_set(ev->target, sizeof(ev->target), r->host, strlen(r->host));
    ev->has_port = true;
    ev->port = r->port;
    if (r->credential_key != NULL) {
        ev->auth_mechanism = mech[r->mode];
        ev->injection_mode = inj[r->mode];
        ev->managed_credential_active =
            r->secret != NULL ? NONOPROXY_TRI_TRUE : NONOPROXY_TRI_FALSE;
    } else {
        ev->auth_mechanism = NONOPROXY_AUTH_MECH_PROXY_AUTHORIZATION;
        ev->injection_mode = NONOPROXY_INJECT_NONE;
        ev->managed_credential_active = NONOPROXY_TRI_FALSE;
    }
}

/* What the exchange keeps out of the response head: the route's secret and, for
 * basic_auth, the base64 the upstream received (which no longer spells the secret). */
static void
rev_scrub_init(struct np_xchg *q, const struct np_route *r)
{
    if (r->credential_key == NULL || r->secret == NULL) {
        return;
    }
    q->scrub[0].p = r->secret;
    q->scrub[0].len = r->secret_len;
    if (r->mode == NONOPROXY_INJECT_BASIC_AUTH && r->inject_value_len > 6) {
        size_t len = r->inject_value_len - 6;

        /* Without its padding, so that the unpadded spelling is found too (the padding of the
         * padded one stays behind, after the phantom). */
        while (len > 1 && r->inject_value[6 + len - 1] == '=') {
            len--;
        }
        q->scrub[1].p = r->inject_value + 6; /* after "Basic " */
        q->scrub[1].len = len;
    }
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
            np_http_list_has(h->value, h->value_len, token, strlen(token))) {
            return true;
        }
    }
    return false;
}

/* The checks before anything goes upstream. Returns false when the request was answered. */
static bool
rev_admit(struct np_xchg *q, const struct rev_ctx *rc)
{
    const struct np_route *r = rc->rt->r;
    const struct np_http_req *req = &q->se->req;

    if (np_http_req_header(req, "Upgrade") != NULL ||
        req_header_has(req, "Connection", "upgrade")) {
        np_xchg_deny(q, 501, NONOPROXY_DENIAL_UNSUPPORTED_REQUEST,
                     "protocol upgrades (WebSocket) are not supported on routes",
                     "protocol upgrades are not supported on routes");
        return false;
    }
    if (r->credential_key != NULL && r->secret == NULL) {
        q->ev.auth_outcome = NONOPROXY_AUTH_OUTCOME_FAILED;
        np_xchg_deny(q, 503, NONOPROXY_DENIAL_MANAGED_CREDENTIAL_UNAVAILABLE,
                     "the route's credential is not loaded", "managed credential unavailable");
        return false;
    }
    if (!np_route_phantom_ok(r, req, rc->rest, rc->rest_len, q->se->ctx->token)) {
        q->ev.auth_outcome = NONOPROXY_AUTH_OUTCOME_FAILED;
        np_xchg_deny(q, 401, NONOPROXY_DENIAL_AUTHENTICATION_FAILED,
                     r->credential_key != NULL ? "missing or invalid phantom token"
                                               : "missing or invalid session token",
                     "Unauthorized");
        return false;
    }
    q->ev.auth_outcome = NONOPROXY_AUTH_OUTCOME_SUCCEEDED;
    return true;
}

/* Normalise the path of the rest (route_path.h) into relay_a, the query after it as it is;
 * rc->rest then points there. Returns false after answering 400 (np_route_match has refused
 * every path that does not normalise, so this is a second line). */
static bool
rev_normalise(struct np_xchg *q, struct rev_ctx *rc)
{
    struct np_buf w;
    size_t path_len;
    const char *query;
    size_t query_len;

    np_route_split_rest(rc->rest, rc->rest_len, &path_len, &query, &query_len);
    np_buf_init(&w, q->se->relay_a, REST_NORM_CAP);
    rc->wipe_len = path_len + query_len + 1;
    if (np_route_normalise(rc->rest, path_len, &w) != 0 || w.len == 0 || w.p[0] != '/') {
        np_xchg_deny(q, 400, NONOPROXY_DENIAL_MALFORMED_REQUEST, "the path leaves the route prefix",
                     "the path leaves the route prefix");
        return false;
    }
    rc->path_len = w.len;
    np_buf_put(&w, query, query_len);
    if (!np_buf_ok(&w)) {
        np_xchg_deny(q, 414, NONOPROXY_DENIAL_MALFORMED_REQUEST, "the path is too long",
                     "the path is too long");
        return false;
    }
    rc->rest = w.p;
    rc->rest_len = w.len;
    return true;
}

/* The endpoint rules of the route (route_rules.h) on the normalised path. Returns false after
 * answering 403 endpoint_policy. */
static bool
rev_rules(struct np_xchg *q, const struct rev_ctx *rc)
{
    const struct np_session *se = q->se;
    const struct np_rule_query rq = {se->req.method_name, rc->rest, rc->path_len,
                                     se->relay_a + REST_NORM_CAP, NP_RELAY_CAP - REST_NORM_CAP};

    if (np_route_rules_allow(&rc->rt->r->rules, &rq)) {
        return true;
    }
    np_xchg_deny(q, 403, NONOPROXY_DENIAL_ENDPOINT_POLICY,
                 "no endpoint rule of the route allows this method and path",
                 "endpoint not allowed");
    return false;
}

/* The rate limit of the route: go, sleep for a reserved token (woken by shutdown), or answer
 * 429 rate_limited with Retry-After. Returns false when the request was answered. */
static bool
rev_rate(struct np_xchg *q, const struct rev_ctx *rc)
{
    struct np_session *se = q->se;
    char hdr[48];
    uint64_t wait = 0;
    enum np_rate_verdict v;
    unsigned long after;

    v = np_ratelimit_take(&rc->rt->rate, np_now_ns(), &wait);
    if (v == NP_RATE_GO) {
        return true;
    }
    if (v == NP_RATE_WAIT) {
        uint64_t ms = (wait + 999999u) / 1000000u;
        enum np_io io;

        np_net_watch_peer(se->fd); /* a client that leaves does not wait for its token */
        io = np_net_wait(se->ctx->stop_fd, POLLIN, -1, np_deadline((uint32_t)ms));
        np_net_watch_peer(-1);
        if (io == NP_IO_TIMEOUT) {
            return true;
        }
        if (io == NP_IO_ERR && errno == ECONNABORTED) {
            np_xchg_deny(q, 429, NONOPROXY_DENIAL_RATE_LIMITED,
                         "the client left while waiting for the route's rate limit",
                         "rate limited");
            return false;
        }
        np_xchg_deny(q, 503, NONOPROXY_DENIAL_NONE, "proxy shutting down", "proxy shutting down");
        return false;
    }
    after = np_ratelimit_retry_after(wait);
    (void)snprintf(hdr, sizeof(hdr), "Retry-After: %lu\r\n", after);
    q->ev.decision = NONOPROXY_DECISION_DENY;
    q->ev.denial_category = NONOPROXY_DENIAL_RATE_LIMITED;
    q->ev.status = 429;
    (void)snprintf(q->ev.reason, sizeof(q->ev.reason),
                   "rate limit of the route (%u a minute, burst %u): retry after %lu s",
                   (unsigned)rc->rt->r->rate_rpm, (unsigned)rc->rt->r->rate_burst, after);
    np_emit(se->ctx, &q->ev);
    np_session_reply_json_hdr(se, 429, hdr, "rate limited");
    return false;
}

/* Build the upstream head into relay_b (after the target area). */
static bool
rev_build_head(struct np_xchg *q, const struct rev_ctx *rc)
{
    struct np_session *se = q->se;
    const struct np_route *r = rc->rt->r;
    struct np_uphead u;
    struct np_buf target;
    struct np_buf head;
    size_t target_len = 0;
    bool ok;
    int trc;

    np_buf_init(&target, se->relay_b, NP_XCHG_HEAD_OFF);
    trc = np_route_upstream_target(r, rc->rest, rc->rest_len, &target);
    if (trc == -2) { /* as forward.c's fwd_open: the upstream cannot be reached */
        np_xchg_deny(q, 502, NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED, "out of memory",
                     "out of memory");
        return false;
    }
    ok = trc == 0;
    target_len = target.len;
    if (ok && np_xchg_strip_token(target.p, &target_len, se->ctx->token) != 0) {
        np_secure_zero(target.p, target.len);
        np_xchg_deny(q, 400, NONOPROXY_DENIAL_MALFORMED_REQUEST,
                     "the session token must not appear in the request path",
                     "the session token must not appear in the request path");
        return false;
    }
    np_route_uphead(r, &se->req, (struct np_slice){target.p, target_len}, se->ctx->token, &u);
    u.body = q->body;
    u.body_len = q->body_len;
    np_buf_init(&head, se->relay_b + NP_XCHG_HEAD_OFF, NP_RELAY_CAP - NP_XCHG_HEAD_OFF);
    ok = ok && np_uphead_build(&u, &head) == 0 && np_buf_ok(&head);
    np_secure_zero(target.p, target.len);
    if (!ok) {
        np_secure_zero(se->relay_b, NP_RELAY_CAP); /* whatever a failed build left */
        np_xchg_deny(q, 400, NONOPROXY_DENIAL_MALFORMED_REQUEST,
                     "the request cannot be rewritten for the upstream (too large or the path "
                     "pattern does not match)",
                     "request cannot be forwarded");
        return false;
    }
    q->up_head_len = head.len;
    return true;
}

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

/* TLS on a connected socket when the route's upstream is https. Returns the connection or
 * NULL with f filled (fd closed). */
static struct np_uconn *
rev_tls(struct np_xchg *q, const struct np_route_rt *rt, int fd, struct np_failure *f)
{
    const struct np_ctx *ctx = q->se->ctx;
    const struct np_route *r = rt->r;
    struct np_tls *tls = NULL;
    char why[200] = "";
    enum np_io io;

    if (rt->tls != NULL) {
        struct np_tls_dial d = {fd, r->host, {ctx->stop_fd, np_deadline(ctx->s->tls_timeout_ms)}};

        io = np_tls_connect(rt->tls, &d, &tls, why, sizeof(why));
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
rev_open(struct np_xchg *q, struct np_failure *f)
{
    const struct rev_ctx *rc = q->ops_ctx;
    const struct np_ctx *ctx = q->se->ctx;
    const struct np_route *r = rc->rt->r;
    struct np_host_query hq;
    enum np_host_verdict v;
    struct np_uconn *c;
    char what[NP_HOST_BUF + 8];
    int fd;

    memset(&hq, 0, sizeof(hq));
    hq.host = r->host;
    hq.host_len = strlen(r->host);
    hq.port = r->port;
    hq.self = &ctx->self;
    v = np_host_policy_decide(&ctx->s->route_policy, &hq); /* hard deny list, denied_hosts */
    if (v != NP_HOST_ALLOW) {
        f->status = np_session_verdict_status(v, &f->cat);
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
    (void)snprintf(what, sizeof(what), "%s:%u", r->host, (unsigned)r->port);
    fd = np_xchg_connect_any(q, &hq.addrs, what, f);
    if (fd < 0) {
        return NULL;
    }
    c = rev_tls(q, rc->rt, fd, f);
    if (c == NULL && f->status == 0) {
        f->status = 502;
        f->cat = NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED;
        (void)snprintf(f->reason, sizeof(f->reason), "out of memory");
    }
    return c;
}

/* A pooled connection to the route's upstream, or NULL. */
static struct np_uconn *
rev_take(struct np_xchg *q)
{
    const struct rev_ctx *rc = q->ops_ctx;

    return np_upool_take(rc->rt->pool, (uintptr_t)q->se);
}

/* Back to the route's pool. */
static void
rev_put(struct np_xchg *q, struct np_uconn *c)
{
    const struct rev_ctx *rc = q->ops_ctx;

    np_upool_put(rc->rt->pool, c, (uintptr_t)q->se);
}

static const struct np_xchg_ops rev_ops = {
    .take = rev_take,
    .open = rev_open,
    .put = rev_put,
};

bool
np_reverse_serve(struct np_session *se)
{
    const struct np_route_runtime *gw = se->ctx->routes;
    struct rev_ctx rc;
    struct np_route_hit hit;
    struct np_xchg x;
    bool ok;

    memset(&rc, 0, sizeof(rc));
    memset(&hit, 0, sizeof(hit));
    switch (np_route_match(gw->n > 0 ? gw->rt[0].r : NULL, gw->n, se->req.target,
                           se->req.target_len, &hit)) {
    case NP_ROUTE_FOUND:
        break;
    case NP_ROUTE_ESCAPES:
        np_session_deny(se, &(struct np_refusal){NONOPROXY_MODE_REVERSE, 400,
                                                 NONOPROXY_DENIAL_MALFORMED_REQUEST,
                                                 "the path leaves the route prefix", true});
        return false;
    case NP_ROUTE_NOT_FOUND:
    default:
        np_session_deny(se, &(struct np_refusal){NONOPROXY_MODE_REVERSE, 404,
                                                 NONOPROXY_DENIAL_ROUTE_NOT_FOUND,
                                                 "no route for this path", true});
        return false;
    }
    rc.rt = &gw->rt[hit.index];
    rc.rest = hit.rest;
    rc.rest_len = hit.rest_len;
    np_xchg_init(&x, se, &rev_ops, &rc, true);
    rev_event_init(&x, &rc);
    rev_scrub_init(&x, rc.rt->r);
    ok = rev_admit(&x, &rc) && rev_normalise(&x, &rc) && rev_rules(&x, &rc) &&
         np_xchg_precheck_body(&x) && rev_rate(&x, &rc) && rev_build_head(&x, &rc);
    /* The normalised rest and the rules' scratch may hold the phantom. */
    np_secure_zero(se->relay_a, rc.wipe_len);
    np_secure_zero(se->relay_a + REST_NORM_CAP, rc.wipe_len);
    rc.rest = NULL; /* it pointed into relay_a, which the response now uses */
    rc.rest_len = 0;
    return ok && np_xchg_run(&x);
}
