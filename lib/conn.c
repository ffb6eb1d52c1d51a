/* Per-connection lifecycle (L4). */
#include "conn.h"

#include <poll.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "alloc.h"
#include "forward.h"
#include "route_serve.h"
#include "tunnel.h"
#include "upool.h"

/* How long an idle client keep-alive connection waits for its next request. */
#define NP_KEEPALIVE_IDLE_MS 60000u

enum head_result {
    HEAD_OK = 0,
    HEAD_GONE,     /* client closed or failed before a complete head; nothing to answer */
    HEAD_ANSWERED, /* an error was answered and recorded */
};

/* Record a deny for a request that never got to a feature (mode connect: nothing else is
 * known yet) and answer it. */
static void
reject_head(struct np_session *se, int status, enum nonoproxy_denial_category cat,
            const char *reason)
{
    struct nonoproxy_audit_event ev;

    np_audit_event_init(&ev, NONOPROXY_MODE_CONNECT, NONOPROXY_DECISION_DENY);
    ev.denial_category = cat;
    ev.status = (uint16_t)status;
    np_audit_set(ev.reason, sizeof(ev.reason), reason, strlen(reason));
    if (se->req.method_name[0] != '\0') {
        np_audit_set(ev.method, sizeof(ev.method), se->req.method_name,
                     strlen(se->req.method_name));
    }
    if (se->req.target != NULL) {
        np_audit_set_path(&ev, se->req.target, se->req.target_len, se->ctx->token);
    }
    np_emit(se->ctx, &ev);
    np_session_reply_text(se, status, NULL, reason);
}

/* Answer a scan verdict that ends the request. */
static enum head_result
reject_scan(struct np_session *se, enum np_head_scan sc)
{
    switch (sc) {
    case NP_HEAD_URI_TOO_LONG:
        reject_head(se, 414, NONOPROXY_DENIAL_MALFORMED_REQUEST, "request line too long");
        break;
    case NP_HEAD_TOO_LARGE:
        reject_head(se, 431, NONOPROXY_DENIAL_MALFORMED_REQUEST, "request header too large");
        break;
    case NP_HEAD_MALFORMED:
    case NP_HEAD_NEED_MORE:
    case NP_HEAD_COMPLETE:
        reject_head(se, 400, NONOPROXY_DENIAL_MALFORMED_REQUEST, "malformed request head");
        break;
    }
    return HEAD_ANSWERED;
}

/* Read until a complete head is in se->in, enforcing the caps on every byte received and the
 * head timeout over the whole head. */
static enum head_result
read_head(struct np_session *se, bool next)
{
    uint64_t deadline;
    enum np_head_scan sc = np_head_scan(se->in, se->in_len, &se->head_len);
    size_t got;
    enum np_io io;

    if (next && se->in_len == 0 &&
        np_net_wait(se->fd, POLLIN, se->ctx->stop_fd, np_deadline(NP_KEEPALIVE_IDLE_MS)) !=
            NP_IO_OK) {
        return HEAD_GONE; /* an idle keep-alive connection ends silently */
    }
    deadline = np_deadline(se->ctx->s->header_timeout_ms);

    while (sc == NP_HEAD_NEED_MORE) {
        if (se->in_len == NP_IN_CAP) {
            return reject_scan(se, NP_HEAD_TOO_LARGE);
        }
        io = np_net_recv(se->fd, se->in + se->in_len, NP_IN_CAP - se->in_len, &got,
                         (struct np_until){se->ctx->stop_fd, deadline});
        if (io == NP_IO_TIMEOUT) {
            reject_head(se, 408, NONOPROXY_DENIAL_REQUEST_TIMEOUT,
                        "request head not received in time");
            return HEAD_ANSWERED;
        }
        if (io == NP_IO_EOF && se->in_len > 0) {
            reject_head(se, 400, NONOPROXY_DENIAL_MALFORMED_REQUEST,
                        "connection closed inside the request head");
            return HEAD_ANSWERED;
        }
        if (io != NP_IO_OK) {
            return HEAD_GONE;
        }
        se->in_len += got;
        sc = np_head_scan(se->in, se->in_len, &se->head_len);
    }
    if (sc != NP_HEAD_COMPLETE) {
        return reject_scan(se, sc);
    }
    return HEAD_OK;
}

/* Answer a head that np_http_req_parse refused with status (400, 405 or 501). A refused
 * TRACE/TRACK or transfer coding is audited like a request of the path it was meant for: a
 * route request (origin-form, JSON answer) or a forward one. */
static void
reject_parse(struct np_session *se, int status, const char *why)
{
    bool route = se->req.target_len > 0 && se->req.target[0] == '/';
    struct np_refusal r = {route ? NONOPROXY_MODE_REVERSE : NONOPROXY_MODE_FORWARD, status,
                           NONOPROXY_DENIAL_UNSUPPORTED_REQUEST, why, route};

    if (status == 400 || se->req.target == NULL) {
        reject_head(se, status, NONOPROXY_DENIAL_MALFORMED_REQUEST, why);
        return;
    }
    np_session_deny(se, &r);
}

/* Whether the request-target starts with scheme (e.g. "http://"), case-insensitive. */
static int
target_has_scheme(const struct np_http_req *r, const char *scheme)
{
    size_t n = strlen(scheme);
    return r->target_len >= n && strncasecmp(r->target, scheme, n) == 0;
}

/* Proxy authentication for absolute-form requests (SPEC §2); answers 407 when it fails. */
static bool
absolute_form_authorized(struct np_session *se)
{
    struct nonoproxy_audit_event ev;

    np_audit_event_init(&ev, NONOPROXY_MODE_FORWARD, NONOPROXY_DECISION_ALLOW);
    np_audit_set(ev.method, sizeof(ev.method), se->req.method_name, strlen(se->req.method_name));
    np_audit_set_path(&ev, se->req.target, se->req.target_len, se->ctx->token);
    return np_session_require_proxy_auth(se, &ev);
}

/* The forward and route paths build heads and relay bodies in the relay buffers, allocated
 * on the worker's first such request. Answers 503 when there is no memory for them. */
static bool
relay_bufs_or_refuse(struct np_session *se, bool route)
{
    if (np_session_relay_bufs(se)) {
        return true;
    }
    np_session_deny(se,
                    &(struct np_refusal){route ? NONOPROXY_MODE_REVERSE : NONOPROXY_MODE_FORWARD,
                                         503, NONOPROXY_DENIAL_CONNECTION_LIMIT,
                                         "out of memory for the request buffers", route});
    return false;
}

/* Hand a parsed request to the feature that serves it. Returns true when the connection may
 * carry another request (se->in then starts with the bytes after this one). */
static bool
dispatch(struct np_session *se)
{
    const struct np_http_req *r = &se->req;

    if (r->method == NP_METHOD_CONNECT) {
        np_tunnel_serve(se);
    } else if ((target_has_scheme(r, "https://") || target_has_scheme(r, "http://")) &&
               !absolute_form_authorized(se)) {
        return false; /* 407 answered and recorded */
    } else if (target_has_scheme(r, "https://")) {
        np_session_deny(se, &(struct np_refusal){
                                NONOPROXY_MODE_FORWARD, 400, NONOPROXY_DENIAL_UNSUPPORTED_REQUEST,
                                "absolute-form https:// is not forwarded; use CONNECT for https",
                                false});
    } else if (target_has_scheme(r, "http://")) {
        return relay_bufs_or_refuse(se, false) && np_forward_serve(se);
    } else if (r->target_len > 0 && r->target[0] == '/') {
        return relay_bufs_or_refuse(se, true) && np_reverse_serve(se);
    } else {
        np_session_deny(se, &(struct np_refusal){NONOPROXY_MODE_FORWARD, 400,
                                                 NONOPROXY_DENIAL_MALFORMED_REQUEST,
                                                 "unsupported request target", false});
    }
    return false;
}

#define NP_LINGER_MS    2000
#define NP_LINGER_BYTES ((size_t)1024 * 1024)

/* After an error answer, half-close and read what the client still sends (bounded in time
 * and bytes), so that closing with unread data does not reset the connection before the
 * client has read the answer. */
static void
linger_close(struct np_session *se)
{
    struct np_until until = {se->ctx->stop_fd, np_deadline(NP_LINGER_MS)};
    char small[2048]; /* when the worker has no relay buffer (it served only tunnels) */
    char *sink = se->relay_a != NULL ? se->relay_a : small;
    size_t cap = se->relay_a != NULL ? NP_RELAY_CAP : sizeof(small);
    size_t total = 0;
    size_t got;

    (void)shutdown(se->fd, SHUT_WR);
    while (total < NP_LINGER_BYTES && np_net_recv(se->fd, sink, cap, &got, until) == NP_IO_OK) {
        total += got;
    }
}

void
np_conn_serve(struct np_session *se, const struct np_ctx *ctx, int fd)
{
    const char *why = NULL;
    bool next = false;
    int status;

    se->ctx = ctx;
    se->fd = fd;
    se->start_ms = np_now_ms();
    se->in_len = 0;
    se->head_len = 0;
    se->linger = false;
    /* One request per turn; the connection stays while the last answer kept it alive. */
    for (;;) {
        se->head_len = 0;
        memset(&se->req, 0, sizeof(se->req));
        if (read_head(se, next) != HEAD_OK) {
            break;
        }
        status = np_http_req_parse(se->in, se->head_len, &se->req, &why);
        if (status != 0) {
            reject_parse(se, status, why != NULL ? why : "malformed request");
            break;
        }
        if (!dispatch(se)) {
            break;
        }
        next = true;
    }
    if (se->linger) {
        linger_close(se);
    }
    np_uconn_close(se->fwd_conn);
    se->fwd_conn = NULL;
    /* The head held Proxy-Authorization (the token): wipe it before the buffer is reused. */
    np_secure_zero(se->in, se->in_len);
    np_net_close(fd);
    se->fd = -1;
}
