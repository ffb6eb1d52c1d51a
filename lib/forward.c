/* Plain-HTTP forward proxy (L3).
 *
 * One request: parse the absolute URI (no userinfo, no fragment) → a request to the proxy's
 * own address goes to the reverse routes → host filter (allowlist, deny list, DNS pinned) →
 * direct, or through the external proxy unless bypassed → a body already malformed? → the
 * origin-form head (Host from the URI; Proxy-Authorization, Proxy-Connection and every
 * hop-by-hop header removed) → the exchange (exchange.c) on this client's kept-alive
 * connection to the same origin, or a new one. */
#include "forward.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "buf.h"
#include "config_external.h"
#include "decide.h"
#include "exchange.h"
#include "external.h"
#include "hostfilter.h"
#include "route_runtime.h"
#include "route_serve.h"
#include "token.h"
#include "upool.h"
#include "upstream_head.h"

/* The parts of an absolute http:// URI. Pointers into the request target. */
struct fwd_uri {
    const char *authority; /* host[:port] as sent, for the Host header */
    size_t authority_len;
    const char *host; /* without brackets */
    size_t host_len;
    uint16_t port;
    const char *path; /* from the first '/' or '?' on; empty means "/" */
    size_t path_len;
};

/* Everything the connection callbacks need. */
struct fwd_ctx {
    const struct fwd_uri *u; /* points into the client's head: valid until np_xchg_run */
    char host[NP_HOST_BUF];  /* when a kept-alive decision is reused: u's host, copied for a
                                decision taken after the head is gone; else "" */
    struct np_host_query q;  /* the filter's verdict and checked addresses */
    bool decided;            /* q is filled (false while a kept-alive decision is reused) */
    bool via_ext;            /* through the external proxy */
    char key[NP_HOST_BUF + 16];
};

/* Parse "http://authority[/path][?query]" (scheme already checked). Returns 0 or -1. */
static int
fwd_parse(const char *t, size_t len, struct fwd_uri *u)
{
    const char *a = t + 7; /* after "http://" (the caller checked the scheme) */
    const char *end = t + len;
    const char *p = a;
    const char *colon = NULL;
    uint16_t port = 80;

    memset(u, 0, sizeof(*u));
    if (len < 7) {
        return -1;
    }
    while (p < end && *p != '/' && *p != '?') {
        if (*p == '@' || *p == '#' || *p == '\\' || (unsigned char)*p <= ' ') {
            return -1; /* userinfo, fragment, odd bytes: never a guess */
        }
        p++;
    }
    if (p < end && memchr(p, '#', (size_t)(end - p)) != NULL) {
        return -1;
    }
    u->authority = a;
    u->authority_len = (size_t)(p - a);
    u->path = p;
    u->path_len = (size_t)(end - p);
    if (u->authority_len > 0 && a[0] == '[') {
        const char *rb = memchr(a, ']', u->authority_len);
        if (rb == NULL) {
            return -1;
        }
        u->host = a + 1;
        u->host_len = (size_t)(rb - a - 1);
        colon = rb + 1 < p ? rb + 1 : NULL;
        if (colon != NULL && *colon != ':') {
            return -1;
        }
    } else {
        colon = memchr(a, ':', u->authority_len);
        u->host = a;
        u->host_len = colon != NULL ? (size_t)(colon - a) : u->authority_len;
    }
    if (colon != NULL) {
        port = np_parse_port(colon + 1, (size_t)(p - colon - 1));
    }
    if (u->host_len == 0 || port == 0) {
        return -1;
    }
    u->port = port;
    return 0;
}

/* Whether norm:port is the proxy's own listener (then the request is for a route). */
static bool
fwd_is_self(const struct np_session *se, const char *norm, uint16_t port)
{
    struct sockaddr_storage ss;

    if (strcmp(norm, "localhost") == 0) {
        /* localhost is the proxy when the proxy listens on loopback (or everywhere). */
        if (np_sockaddr_port(&se->ctx->self) != port ||
            !np_host_parse_ip(se->ctx->self.ss_family == AF_INET6 ? "::1" : "127.0.0.1", &ss)) {
            return false;
        }
    } else if (!np_host_parse_ip(norm, &ss)) {
        return false;
    }
    np_sockaddr_set_port(&ss, port);
    return np_addr_is_self((const struct sockaddr *)&ss, &se->ctx->self);
}

/* The origin-form head into relay_b + NP_XCHG_HEAD_OFF, its target (the URI's path and query,
 * the session token stripped from the query) in relay_b first. */
static bool
fwd_build_head(struct np_xchg *x, const struct fwd_uri *u)
{
    struct np_session *se = x->se;
    struct np_uphead up;
    struct np_buf target;
    struct np_buf head;
    size_t target_len;

    np_buf_init(&target, se->relay_b, NP_XCHG_HEAD_OFF);
    if (u->path_len == 0 || u->path[0] == '?') {
        np_buf_putc(&target, '/');
    }
    np_buf_put(&target, u->path, u->path_len);
    target_len = target.len;
    if (np_buf_ok(&target) && np_xchg_strip_token(target.p, &target_len, se->ctx->token) != 0) {
        np_xchg_deny(x, 400, NONOPROXY_DENIAL_MALFORMED_REQUEST,
                     "the session token must not appear in the request path", NULL);
        return false;
    }
    memset(&up, 0, sizeof(up));
    up.req = &se->req;
    up.target.p = target.p;
    up.target.len = target_len;
    up.host.p = u->authority;
    up.host.len = u->authority_len;
    up.token = se->ctx->token;
    up.body = x->body;
    up.body_len = x->body_len;
    np_buf_init(&head, se->relay_b + NP_XCHG_HEAD_OFF, NP_RELAY_CAP - NP_XCHG_HEAD_OFF);
    if (!np_buf_ok(&target) || np_uphead_build(&up, &head) != 0 || !np_buf_ok(&head)) {
        np_xchg_deny(x, 431, NONOPROXY_DENIAL_MALFORMED_REQUEST,
                     "the request head is too large to forward", NULL);
        return false;
    }
    x->up_head_len = head.len;
    return true;
}

static const char fwd_bypass_reason[] =
    "a request to a route's upstream bypasses credential injection; use the route's base URL";

/* Apply the host filter and decide direct or external. Returns false with f filled when the
 * request must be refused. */
static bool
fwd_decide(struct np_xchg *x, struct fwd_ctx *fc, struct np_failure *f)
{
    const struct np_ctx *ctx = x->se->ctx;
    const struct fwd_uri *u = fc->u;
    enum np_host_verdict v;

    memset(&fc->q, 0, sizeof(fc->q));
    /* After a reused decision the head has been shifted out of se->in (np_xchg_run) and u
     * points into body bytes: decide on the copy then (SPEC §3: the host of the URI). */
    fc->q.host = fc->host[0] != '\0' ? fc->host : u->host;
    fc->q.host_len = fc->host[0] != '\0' ? strlen(fc->host) : u->host_len;
    fc->q.port = u->port;
    fc->q.self = &ctx->self;
    fc->q.method = x->se->req.method_name;
    fc->q.mode = NONOPROXY_MODE_FORWARD;
    if (np_host_normalize(fc->q.host, fc->q.host_len, fc->q.norm, sizeof(fc->q.norm)) == 0) {
        fc->q.mode = np_external_mode(ctx->s->ext, fc->q.norm, u->port, NONOPROXY_MODE_FORWARD);
    }
    fc->decided = true;
    v = np_host_policy_decide(&ctx->s->policy, &fc->q);
    if (fc->q.norm[0] != '\0') {
        np_audit_set_redacted(x->ev.target, sizeof(x->ev.target), fc->q.norm, strlen(fc->q.norm),
                              ctx->token);
    }
    if (v == NP_HOST_ALLOW) {
        /* A grant of the decide callback names itself in the audit event. */
        np_audit_set(x->ev.reason, sizeof(x->ev.reason), fc->q.note, strlen(fc->q.note));
    }
    fc->via_ext = np_external_applies(ctx->s->ext, v, &fc->q);
    if (v != NP_HOST_ALLOW && !fc->via_ext) {
        f->status = np_session_verdict_status(v, &f->cat);
        (void)snprintf(f->reason, sizeof(f->reason), "%s", fc->q.reason);
        return false;
    }
    /* A route's upstream under another spelling (a name for its address, [::ffff:127.0.0.1]). */
    if (!fc->via_ext && np_route_runtime_find_upstream_addr(ctx->routes, &fc->q.addrs, u->port)) {
        f->status = 403;
        f->cat = NONOPROXY_DENIAL_CONNECT_BYPASSES_L7;
        (void)snprintf(f->reason, sizeof(f->reason), "%s", fwd_bypass_reason);
        return false;
    }
    x->ev.mode = fc->via_ext ? NONOPROXY_MODE_EXTERNAL : NONOPROXY_MODE_FORWARD;
    (void)snprintf(fc->key, sizeof(fc->key), "%s:%u%s", fc->q.norm, (unsigned)u->port,
                   fc->via_ext ? "!" : "");
    return true;
}

/* This client's kept-alive connection, when it goes to the same origin the same way and the
 * origin has not closed it meanwhile. */
static struct np_uconn *
fwd_take(struct np_xchg *x)
{
    const struct fwd_ctx *fc = x->ops_ctx;
    struct np_session *se = x->se;
    struct np_uconn *c = se->fwd_conn;
    struct pollfd pfd;

    if (c == NULL) {
        return NULL;
    }
    se->fwd_conn = NULL;
    pfd.fd = c->fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (strcmp(se->fwd_key, fc->key) != 0 || poll(&pfd, 1, 0) != 0) {
        np_uconn_close(c); /* another origin, or closed (or chatty) while idle */
        return NULL;
    }
    return c;
}

/* Keep the connection for this client's next request; not when the decide callback allowed
 * this request once (the next one would reuse the decision without asking). */
static void
fwd_put_conn(struct np_xchg *x, struct np_uconn *c)
{
    const struct fwd_ctx *fc = x->ops_ctx;
    struct np_session *se = x->se;

    if (fc->decided && fc->q.once) {
        np_uconn_close(c);
        return;
    }
    np_uconn_close(se->fwd_conn);
    se->fwd_conn = c;
    (void)snprintf(se->fwd_key, sizeof(se->fwd_key), "%s", fc->key);
}

/* A tunnel to the origin through the external proxy. Returns the socket or -1 with f. */
static int
fwd_open_external(struct np_xchg *x, const struct fwd_ctx *fc, struct np_failure *f)
{
    const struct np_ctx *ctx = x->se->ctx;
    struct np_ext_tunnel t;
    char early[64];
    enum np_ext_result r;

    memset(&t, 0, sizeof(t));
    t.fd = -1;
    t.early = early;
    t.early_cap = sizeof(early);
    r = np_external_connect(&(struct np_ext_request){ctx->s->ext, &ctx->s->resolver, fc->q.norm,
                                                     fc->q.port, ctx->s->connect_timeout_ms,
                                                     ctx->s->response_timeout_ms, ctx->stop_fd},
                            &t);
    if (r == NP_EXT_OK && t.early_len == 0) {
        return t.fd;
    }
    np_net_close(t.fd);
    f->status = r == NP_EXT_TIMEOUT ? 504 : 502;
    f->cat = r == NP_EXT_REJECTED || r == NP_EXT_OK ? NONOPROXY_DENIAL_EXTERNAL_PROXY_REJECTED
             : r == NP_EXT_TIMEOUT                  ? NONOPROXY_DENIAL_UPSTREAM_TIMEOUT
                                                    : NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED;
    (void)snprintf(f->reason, sizeof(f->reason), "%s",
                   r == NP_EXT_OK ? "external proxy sent data before the request" : t.reason);
    return -1;
}

/* A new connection to the origin: directly to the checked addresses, or through the
 * external proxy. */
static struct np_uconn *
fwd_open(struct np_xchg *x, struct np_failure *f)
{
    struct fwd_ctx *fc = x->ops_ctx;
    struct np_uconn *c;
    int fd;

    if (!fc->decided && !fwd_decide(x, fc, f)) {
        return NULL; /* the kept-alive connection was gone: the filter runs after all */
    }
    fd = fc->via_ext ? fwd_open_external(x, fc, f)
                     : np_xchg_connect_any(x, &fc->q.addrs, fc->key, f);
    if (fd < 0) {
        return NULL;
    }
    c = np_uconn_new(fd, NULL, x->se->ctx->stop_fd);
    if (c == NULL) {
        f->status = 502;
        f->cat = NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED;
        (void)snprintf(f->reason, sizeof(f->reason), "out of memory");
    }
    return c;
}

static const struct np_xchg_ops fwd_ops = {
    .take = fwd_take,
    .open = fwd_open,
    .put = fwd_put_conn,
};

/* When this client's kept-alive connection goes to the same origin, the filter's decision
 * for it stands (the configuration is immutable and the connection is pinned to the addresses
 * checked then): skip the filter and its DNS lookup. Returns true when reused. */
static bool
fwd_reuse_decision(const struct np_session *se, struct fwd_ctx *fc, const char *norm, uint16_t port,
                   struct np_xchg *x)
{
    char key[sizeof(fc->key)];
    size_t n;

    if (se->fwd_conn == NULL || norm[0] == '\0' || fc->u->host_len >= sizeof(fc->host)) {
        return false;
    }
    (void)snprintf(key, sizeof(key), "%s:%u", norm, (unsigned)port);
    n = strlen(key);
    if (strncmp(se->fwd_key, key, n) != 0 ||
        (se->fwd_key[n] != '\0' && strcmp(se->fwd_key + n, "!") != 0)) {
        return false;
    }
    (void)snprintf(fc->key, sizeof(fc->key), "%s", se->fwd_key);
    /* fwd_open decides after all if the kept connection turns out dead, by then without the
     * head: keep the host as the URI gave it (the port is a copy in u already). */
    memcpy(fc->host, fc->u->host, fc->u->host_len);
    fc->host[fc->u->host_len] = '\0';
    fc->via_ext = se->fwd_key[n] == '!';
    if (fc->via_ext) {
        x->ev.mode = NONOPROXY_MODE_EXTERNAL;
    }
    if (np_decider_granted(se->ctx->s->decider, norm, port)) {
        static const char granted[] = "granted for the session by the decide callback";

        np_audit_set(x->ev.reason, sizeof(x->ev.reason), granted, sizeof(granted) - 1);
    }
    np_audit_set_redacted(x->ev.target, sizeof(x->ev.target), norm, strlen(norm), se->ctx->token);
    return true;
}

bool
np_forward_serve(struct np_session *se)
{
    struct fwd_ctx fc;
    struct fwd_uri u;
    struct np_xchg x;
    struct np_failure f;
    char norm[NP_HOST_BUF] = "";

    memset(&fc, 0, sizeof(fc));
    memset(&f, 0, sizeof(f));
    np_xchg_init(&x, se, &fwd_ops, &fc, false);
    np_audit_event_init(&x.ev, NONOPROXY_MODE_FORWARD, NONOPROXY_DECISION_ALLOW);
    np_audit_set(x.ev.method, sizeof(x.ev.method), se->req.method_name,
                 strlen(se->req.method_name));
    x.ev.auth_mechanism = se->ctx->s->require_auth ? NONOPROXY_AUTH_MECH_PROXY_AUTHORIZATION
                                                   : NONOPROXY_AUTH_MECH_NONE;
    x.ev.auth_outcome =
        se->ctx->s->require_auth ? NONOPROXY_AUTH_OUTCOME_SUCCEEDED : NONOPROXY_AUTH_OUTCOME_NONE;
    if (fwd_parse(se->req.target, se->req.target_len, &u) != 0) {
        np_audit_set_path(&x.ev, se->req.target, se->req.target_len, se->ctx->token);
        np_xchg_deny(&x, 400, NONOPROXY_DENIAL_MALFORMED_REQUEST,
                     "malformed absolute URI (userinfo, fragment, bad host or port)", NULL);
        return false;
    }
    np_audit_set_redacted(x.ev.target, sizeof(x.ev.target), u.host, u.host_len, se->ctx->token);
    x.ev.has_port = true;
    x.ev.port = u.port;
    np_audit_set_path(&x.ev, u.path, u.path_len, se->ctx->token);
    if (np_session_host_has_token(se, u.authority, u.authority_len)) {
        /* Before any lookup: the name would go into DNS and the Host header (SPEC §1.2). */
        np_xchg_deny(&x, 400, NONOPROXY_DENIAL_MALFORMED_REQUEST, np_session_why_token_host, NULL);
        return false;
    }
    if (np_host_normalize(u.host, u.host_len, norm, sizeof(norm)) != 0) {
        norm[0] = '\0';
    } else if (fwd_is_self(se, norm, u.port) && se->ctx->routes != NULL && se->ctx->routes->n > 0 &&
               u.path_len > 0 && u.path[0] == '/') {
        /* A client that sends its base-URL requests through HTTP_PROXY: serve the route. */
        se->req.target = u.path;
        se->req.target_len = u.path_len;
        return np_reverse_serve(se);
    }
    if (norm[0] != '\0' && np_route_runtime_find_upstream(se->ctx->routes, norm, u.port) != NULL) {
        np_xchg_deny(&x, 403, NONOPROXY_DENIAL_CONNECT_BYPASSES_L7, fwd_bypass_reason, NULL);
        return false;
    }
    fc.u = &u;
    if (!fwd_reuse_decision(se, &fc, norm, u.port, &x) && !fwd_decide(&x, &fc, &f)) {
        np_xchg_deny(&x, f.status, f.cat, f.reason, NULL);
        return false;
    }
    if (!np_xchg_precheck_body(&x) || !fwd_build_head(&x, &u)) {
        return false;
    }
    return np_xchg_run(&x);
}
