/* CONNECT tunnels (L3). */
#include "tunnel.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "config_external.h"
#include "external.h"
#include "hostfilter.h"
#include "pump.h"
#include "route_runtime.h"

/* np_external_connect reads at most 16 KiB in all (external.h), so this always suffices. */
#define EXT_EARLY_CAP ((size_t)16 * 1024)

static const char established[] = "HTTP/1.1 200 Connection established\r\n\r\n";

/* Record a deny with category cat and reason, and answer status with the reason as body. */
static void
deny(struct np_session *se, struct nonoproxy_audit_event *ev, int status,
     enum nonoproxy_denial_category cat, const char *reason)
{
    ev->decision = NONOPROXY_DECISION_DENY;
    ev->denial_category = cat;
    ev->status = (uint16_t)status;
    np_audit_set(ev->reason, sizeof(ev->reason), reason, strlen(reason));
    np_emit(se->ctx, ev);
    np_session_reply_text(se, status, NULL, reason);
}

/* Answer a host filter refusal. */
static void
deny_verdict(struct np_session *se, struct nonoproxy_audit_event *ev, enum np_host_verdict v,
             const struct np_host_query *q)
{
    enum nonoproxy_denial_category cat;
    int status = np_session_verdict_status(v, &cat);

    deny(se, ev, status, cat, q->reason);
}

/* Record the close event of an opened tunnel: bytes each way, duration, why it ended (NULL
 * for an orderly end). */
static void
record_close(struct np_session *se, struct nonoproxy_audit_event *ev, uint64_t up, uint64_t down,
             const char *why)
{
    ev->kind = NONOPROXY_EVENT_CLOSE;
    ev->timestamp_unix_ms = np_wall_ms();
    ev->bytes_up = up;
    ev->bytes_down = down;
    ev->duration_ms = np_now_ms() - se->start_ms;
    np_audit_set(ev->reason, sizeof(ev->reason), why == NULL ? "" : why,
                 why == NULL ? 0 : strlen(why));
    np_emit(se->ctx, ev);
}

/* The buffer relay's buffers, when the tunnel is not spliced (np_pump.want_bufs). */
static bool
tunnel_bufs(struct np_pump *p)
{
    struct np_session *se = p->arg;

    if (!np_session_relay_bufs(se)) {
        return false;
    }
    p->buf_ab = se->relay_a;
    p->buf_ba = se->relay_b;
    return true;
}

/* An idle tunnel gives back the memory its worker no longer needs (np_pump.on_quiet). */
static void
tunnel_quiet(struct np_pump *p)
{
    np_session_trim(p->arg);
}

/* How long a tunnel must see no byte before its worker gives memory back: long enough that a
 * busy tunnel never pays for it, short enough that a held-open idle one soon costs little. */
#define NP_TUNNEL_QUIET_MS 200

/* Relay between the client and up after the 200, then record the close event. */
static void
relay(struct np_session *se, struct nonoproxy_audit_event *ev, int up)
{
    struct np_pump p;
    const char *why = NULL;
    size_t early = se->in_len - se->head_len;

    memset(&p, 0, sizeof(p));
    p.a = se->fd;
    p.b = up;
    p.stop_fd = se->ctx->stop_fd;
    p.nonblocking = true; /* the listener's accepted socket, np_net_connect_any's upstream */
    p.idle_ms = se->ctx->s->idle_timeout_ms;
    p.pipes = np_pipes_ready(&se->pipes) ? &se->pipes : NULL; /* else the buffer relay */
    p.buf_ab = se->relay_a;
    p.buf_ba = se->relay_b;
    p.buf_cap = NP_RELAY_CAP;
    p.want_bufs = tunnel_bufs;
    p.arg = se;
    p.on_quiet = tunnel_quiet;
    p.quiet_ms = NP_TUNNEL_QUIET_MS;
    if (early > 0) {
        /* Bytes the client sent right after the head belong to the tunnel. */
        if (np_net_send_all(up, se->in + se->head_len, early, se->ctx->stop_fd,
                            np_deadline(p.idle_ms)) != NP_IO_OK) {
            why = "upstream write failed";
        } else {
            p.bytes_ab = early;
        }
    }
    if (why == NULL) {
        switch (np_pump_run(&p)) {
        case NP_PUMP_DONE:
            break;
        case NP_PUMP_IDLE:
            why = "idle timeout";
            break;
        case NP_PUMP_STOPPED:
            why = "proxy shutdown";
            break;
        case NP_PUMP_ERROR:
            why = "connection reset";
            break;
        }
    }
    record_close(se, ev, p.bytes_ab, p.bytes_ba, why);
}

/* Refuse a CONNECT to a route's upstream (SPEC §4): an opaque tunnel would let the client
 * talk to that API without the proxy injecting (or policing) the credential. */
static bool
bypasses_route(struct np_session *se, struct nonoproxy_audit_event *ev, const char *host,
               size_t host_len, uint16_t port)
{
    char norm[NP_HOST_BUF];
    const struct np_route_rt *rt;

    if (se->ctx->routes == NULL || se->ctx->routes->n == 0 ||
        np_host_normalize(host, host_len, norm, sizeof(norm)) != 0) {
        return false; /* an invalid name is refused by the filter next */
    }
    rt = np_route_runtime_find_upstream(se->ctx->routes, norm, port);
    if (rt == NULL) {
        return false;
    }
    np_audit_set_redacted(ev->target, sizeof(ev->target), norm, strlen(norm), se->ctx->token);
    np_audit_set(ev->route_id, sizeof(ev->route_id), rt->r->prefix, strlen(rt->r->prefix));
    deny(se, ev, 403, NONOPROXY_DENIAL_CONNECT_BYPASSES_L7,
         "CONNECT to a route's upstream bypasses credential injection; use the route's base URL");
    return true;
}

/* The same refusal once the name is resolved: a route's upstream under another spelling (a
 * name for its address, [::ffff:127.0.0.1] for 127.0.0.1) is still that upstream. */
static bool
bypasses_route_addr(struct np_session *se, struct nonoproxy_audit_event *ev,
                    const struct np_host_query *q)
{
    const struct np_route_rt *rt =
        np_route_runtime_find_upstream_addr(se->ctx->routes, &q->addrs, q->port);

    if (rt == NULL) {
        return false;
    }
    np_audit_set(ev->route_id, sizeof(ev->route_id), rt->r->prefix, strlen(rt->r->prefix));
    deny(se, ev, 403, NONOPROXY_DENIAL_CONNECT_BYPASSES_L7,
         "CONNECT to a route's upstream bypasses credential injection; use the route's base URL");
    return true;
}

/* Chain the CONNECT through the external proxy, then relay. */
static void
external_tunnel(struct np_session *se, struct nonoproxy_audit_event *ev,
                const struct np_host_query *q)
{
    const struct np_ctx *ctx = se->ctx;
    struct np_ext_tunnel t;
    enum np_ext_result r;

    ev->mode = NONOPROXY_MODE_EXTERNAL;
    memset(&t, 0, sizeof(t));
    t.fd = -1;
    /* The leftovers go after what se->in holds (it has room unless the head was huge). */
    if (NP_IN_CAP - se->in_len >= EXT_EARLY_CAP) {
        t.early = se->in + se->in_len;
        t.early_cap = EXT_EARLY_CAP;
    } else if (np_session_relay_bufs(se)) {
        t.early = se->relay_b; /* free until the relay starts */
        t.early_cap = NP_RELAY_CAP;
    }
    r = np_external_connect(&(struct np_ext_request){ctx->s->ext, &ctx->s->resolver, q->norm,
                                                     q->port, ctx->s->connect_timeout_ms,
                                                     ctx->s->response_timeout_ms, ctx->stop_fd},
                            &t);
    if (r != NP_EXT_OK) {
        deny(se, ev, r == NP_EXT_TIMEOUT ? 504 : 502,
             r == NP_EXT_REJECTED  ? NONOPROXY_DENIAL_EXTERNAL_PROXY_REJECTED
             : r == NP_EXT_TIMEOUT ? NONOPROXY_DENIAL_UPSTREAM_TIMEOUT
                                   : NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED,
             t.reason);
        return;
    }
    ev->status = 200;
    np_emit(ctx, ev);
    if (np_net_send_all(se->fd, established, sizeof(established) - 1, ctx->stop_fd,
                        np_deadline(5000)) != NP_IO_OK ||
        (t.early_len > 0 && np_net_send_all(se->fd, t.early, t.early_len, ctx->stop_fd,
                                            np_deadline(5000)) != NP_IO_OK)) {
        record_close(se, ev, 0, 0, "client gone before the tunnel opened");
    } else {
        if (t.early_len > 0) {
            np_secure_zero(t.early, t.early_len); /* the copy in se->in is not wiped later */
        }
        relay(se, ev, t.fd);
    }
    np_net_close(t.fd);
}

/* Connect to the checked addresses of q and relay: the tunnel without an enterprise proxy. */
static void
direct_tunnel(struct np_session *se, struct nonoproxy_audit_event *ev,
              const struct np_host_query *q)
{
    const struct np_ctx *ctx = se->ctx;
    struct np_failure fail;
    enum np_io io;
    int up = -1;
    int err = 0;

    io = np_net_connect_any(q->addrs.addr, q->addrs.n,
                            (struct np_dial_limits){ctx->s->connect_timeout_ms, ctx->stop_fd}, &up,
                            &err);
    if (io != NP_IO_OK) {
        char what[NP_HOST_BUF + 8];

        (void)snprintf(what, sizeof(what), "%s:%u", q->norm, (unsigned)q->port);
        np_session_connect_failure(io, err, what, &fail);
        deny(se, ev, fail.status, fail.cat, fail.reason);
        return;
    }
    ev->status = 200;
    np_emit(ctx, ev);
    if (np_net_send_all(se->fd, established, sizeof(established) - 1, ctx->stop_fd,
                        np_deadline(5000)) == NP_IO_OK) {
        relay(se, ev, up);
    } else {
        record_close(se, ev, 0, 0, "client gone before the tunnel opened");
    }
    np_net_close(up);
}

/* The checks before any lookup: the authority's grammar, proxy auth, the token in the host,
 * a CONNECT to a route's upstream. Fills q's host and port; returns false when answered. */
static bool
tunnel_admit(struct np_session *se, struct nonoproxy_audit_event *ev, struct np_host_query *q)
{
    const char *host;
    size_t host_len;
    uint16_t port;

    if (np_split_authority(se->req.target, se->req.target_len, &host, &host_len, &port) != 0) {
        np_audit_set_redacted(ev->target, sizeof(ev->target), se->req.target, se->req.target_len,
                              se->ctx->token);
        deny(se, ev, 400, NONOPROXY_DENIAL_MALFORMED_REQUEST,
             "CONNECT needs host:port (no userinfo, no escapes, port 1-65535)");
        return false;
    }
    np_audit_set_redacted(ev->target, sizeof(ev->target), host, host_len, se->ctx->token);
    ev->has_port = true;
    ev->port = port;
    if (!np_session_require_proxy_auth(se, ev)) {
        return false;
    }
    if (np_session_host_has_token(se, host, host_len)) {
        deny(se, ev, 400, NONOPROXY_DENIAL_MALFORMED_REQUEST, np_session_why_token_host);
        return false;
    }
    if (bypasses_route(se, ev, host, host_len, port)) {
        return false;
    }
    memset(q, 0, sizeof(*q));
    q->host = host;
    q->host_len = host_len;
    q->port = port;
    q->self = &se->ctx->self;
    q->method = "CONNECT";
    q->mode = NONOPROXY_MODE_CONNECT;
    if (np_host_normalize(host, host_len, q->norm, sizeof(q->norm)) == 0) {
        /* What the decide callback is told: through the external proxy or not. */
        q->mode = np_external_mode(se->ctx->s->ext, q->norm, port, NONOPROXY_MODE_CONNECT);
    }
    return true;
}

void
np_tunnel_serve(struct np_session *se)
{
    struct nonoproxy_audit_event ev;
    struct np_host_query q;
    enum np_host_verdict v;

    np_audit_event_init(&ev, NONOPROXY_MODE_CONNECT, NONOPROXY_DECISION_ALLOW);
    np_audit_set(ev.method, sizeof(ev.method), "CONNECT", 7);
    if (!tunnel_admit(se, &ev, &q)) {
        return;
    }
    v = np_host_policy_decide(&se->ctx->s->policy, &q);
    if (q.norm[0] != '\0') {
        np_audit_set_redacted(ev.target, sizeof(ev.target), q.norm, strlen(q.norm), se->ctx->token);
    }
    if (v == NP_HOST_ALLOW) {
        np_audit_set(ev.reason, sizeof(ev.reason), q.note, strlen(q.note)); /* a grant, or "" */
    }
    if (np_external_applies(se->ctx->s->ext, v, &q)) {
        external_tunnel(se, &ev, &q);
    } else if (v != NP_HOST_ALLOW) {
        deny_verdict(se, &ev, v, &q);
    } else if (!bypasses_route_addr(se, &ev, &q)) {
        direct_tunnel(se, &ev, &q);
    }
}
