/* Answers and audit helpers shared by the features (L2). */
#include "session.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "http_answer.h"

#define NP_REPLY_DEADLINE_MS 5000

/* Whether field holds the token anywhere, literal or percent-encoded (a client may put it in
 * a host name or a path). */
static bool
holds_token(const char *field, const char *token)
{
    return np_token_find_encoded(field, strlen(field), token, NP_TOKEN_HEX_LEN);
}

const char np_session_why_token_host[] = "the session token must not appear in the host";

bool
np_session_host_has_token(const struct np_session *se, const char *host, size_t len)
{
    return np_token_find_encoded(host, len, se->ctx->token, NP_TOKEN_HEX_LEN);
}

void
np_emit(const struct np_ctx *ctx, const struct nonoproxy_audit_event *ev)
{
    struct nonoproxy_audit_event clean;
    char copy[NONOPROXY_AUDIT_PATH_LEN];

    /* The token never reaches the audit log, whichever field a client smuggled it into. */
    if (holds_token(ev->target, ctx->token) || holds_token(ev->path, ctx->token) ||
        holds_token(ev->reason, ctx->token)) {
        clean = *ev;
        np_audit_set_path(&clean, ev->target, strlen(ev->target), ctx->token);
        memcpy(copy, clean.path, sizeof(copy));
        np_audit_set(clean.target, sizeof(clean.target), copy, strlen(copy));
        np_audit_set_path(&clean, ev->reason, strlen(ev->reason), ctx->token);
        memcpy(copy, clean.path, sizeof(copy));
        np_audit_set(clean.reason, sizeof(clean.reason), copy, strlen(copy));
        np_audit_set_path(&clean, ev->path, strlen(ev->path), ctx->token);
        ev = &clean;
    }
    np_audit_ring_push(ctx->ring, ev);
    if (ctx->s->audit_cb != NULL) {
        ctx->s->audit_cb(ctx->s->audit_userdata, ev);
    }
}

/* Send buf[0..len) to the client with the reply deadline. */
static void
send_reply(struct np_session *se, const char *buf, size_t len)
{
    se->linger = true;
    if (len > 0) {
        (void)np_net_send_all(se->fd, buf, len, se->ctx->stop_fd,
                              np_deadline(NP_REPLY_DEADLINE_MS));
    }
}

void
np_session_reply_text(struct np_session *se, int status, const char *extra_headers,
                      const char *line)
{
    char buf[1024];
    size_t n = np_http_format_text_error(buf, sizeof(buf), status, extra_headers, line);

    if (n == 0) {
        n = np_http_format_text_error(buf, sizeof(buf), status, extra_headers,
                                      np_http_reason(status));
    }
    send_reply(se, buf, n);
}

void
np_session_reply_json(struct np_session *se, int status, const char *msg)
{
    np_session_reply_json_hdr(se, status, NULL, msg);
}

void
np_session_reply_json_hdr(struct np_session *se, int status, const char *extra_headers,
                          const char *msg)
{
    char body[256];
    char buf[1024];
    struct np_answer a = {status, extra_headers, "application/json", body};
    struct np_buf b;

    /* msg is a static literal without quotes or backslashes: no JSON escaping needed. */
    np_buf_init_str(&b, body, sizeof(body));
    np_buf_puts(&b, "{\"error\":\"");
    np_buf_puts(&b, msg);
    np_buf_puts(&b, "\"}");
    if (!np_buf_ok(&b)) {
        a.body = "{\"error\":\"error\"}";
    }
    send_reply(se, buf, np_http_format_response(buf, sizeof(buf), &a));
}

bool
np_session_require_proxy_auth(struct np_session *se, struct nonoproxy_audit_event *ev)
{
    static const struct np_answer challenge = {407, "Proxy-Authenticate: Basic realm=\"nono\"\r\n",
                                               NULL, NULL};
    enum np_auth a;
    const char *reason;
    char buf[256];
    size_t n;

    if (!se->ctx->s->require_auth) {
        return true;
    }
    a = np_token_check_proxy_auth(&se->req, se->ctx->token);
    ev->auth_mechanism = NONOPROXY_AUTH_MECH_PROXY_AUTHORIZATION;
    if (a == NP_AUTH_OK) {
        ev->auth_outcome = NONOPROXY_AUTH_OUTCOME_SUCCEEDED;
        return true;
    }
    ev->auth_outcome = NONOPROXY_AUTH_OUTCOME_FAILED;
    ev->decision = NONOPROXY_DECISION_DENY;
    ev->denial_category = NONOPROXY_DENIAL_AUTHENTICATION_FAILED;
    ev->status = 407;
    reason = a == NP_AUTH_MISSING ? "proxy authentication missing" : "proxy authentication invalid";
    np_audit_set(ev->reason, sizeof(ev->reason), reason, strlen(reason));
    np_emit(se->ctx, ev);
    /* SPEC §2: an empty 407 (Content-Length: 0) with the Basic challenge. */
    n = np_http_format_response(buf, sizeof(buf), &challenge);
    send_reply(se, buf, n);
    return false;
}

void
np_session_deny(struct np_session *se, const struct np_refusal *r)
{
    struct nonoproxy_audit_event ev;

    np_audit_event_init(&ev, r->mode, NONOPROXY_DECISION_DENY);
    np_audit_set(ev.method, sizeof(ev.method), se->req.method_name, strlen(se->req.method_name));
    np_audit_set_path(&ev, se->req.target, se->req.target_len, se->ctx->token);
    ev.denial_category = r->cat;
    ev.status = (uint16_t)r->status;
    np_audit_set(ev.reason, sizeof(ev.reason), r->reason, strlen(r->reason));
    np_emit(se->ctx, &ev);
    if (r->json) {
        np_session_reply_json(se, r->status, r->reason);
    } else {
        np_session_reply_text(se, r->status, NULL, r->reason);
    }
}

void
np_session_connect_failure(enum np_io io, int err, const char *what, struct np_failure *f)
{
    struct np_buf b;
    bool timeout = io == NP_IO_TIMEOUT;

    f->status = timeout ? 504 : 502;
    f->cat = timeout ? NONOPROXY_DENIAL_UPSTREAM_TIMEOUT : NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED;
    np_buf_init_str(&b, f->reason, sizeof(f->reason));
    np_buf_printf(&b, "upstream connect to %s failed: %s", what,
                  io == NP_IO_STOPPED ? "proxy shutting down"
                  : timeout           ? "connect timed out"
                                      : NP_ERRSTR(err));
}

int
np_session_verdict_status(enum np_host_verdict v, enum nonoproxy_denial_category *cat)
{
    switch (v) {
    case NP_HOST_DENY_SELF:
        *cat = NONOPROXY_DENIAL_SELF_REQUEST;
        return 403;
    case NP_HOST_RESOLVE_FAILED:
        *cat = NONOPROXY_DENIAL_UPSTREAM_CONNECT_FAILED;
        return 502;
    case NP_HOST_DENY_INVALID:
        *cat = NONOPROXY_DENIAL_MALFORMED_REQUEST;
        return 400;
    case NP_HOST_ALLOW:
    case NP_HOST_DENY_HARD:
    case NP_HOST_DENY_NOT_ALLOWED:
    default:
        *cat = NONOPROXY_DENIAL_HOST_DENIED;
        return 403;
    }
}

bool
np_session_relay_bufs(struct np_session *se)
{
    if (se->relay_a == NULL) {
        se->relay_a = np_malloc(NP_RELAY_CAP);
    }
    if (se->relay_b == NULL) {
        se->relay_b = np_malloc(NP_RELAY_CAP);
    }
    return se->relay_a != NULL && se->relay_b != NULL;
}

void
np_session_release(struct np_session *se)
{
    np_free(se->relay_a);
    np_free(se->relay_b);
    se->relay_a = NULL;
    se->relay_b = NULL;
    np_pipes_close(&se->pipes);
}

static atomic_ulong trims; /* np_session_trims (test hook) */

unsigned long
np_session_trims(void)
{
    return atomic_load(&trims);
}

/* Bytes below this frame's mark that np_session_trim keeps mapped: its own locals and
 * madvise's call fit many times over. */
#define NP_TRIM_MARGIN 512

void
np_session_trim(struct np_session *se)
{
    long pg = sysconf(_SC_PAGESIZE);
    uintptr_t page = pg > 0 ? (uintptr_t)pg : 4096;
    volatile char mark = 0; /* this frame's lowest local: the stack in use ends near it */
    uintptr_t here = (uintptr_t)&mark;
    uintptr_t lo = (uintptr_t)se->stack_lo;
    /* The page that holds madvise's return address must stay: it is this frame's bottom
     * (a few words below mark) or, near a page start, the page below. */
    uintptr_t hi = (here - NP_TRIM_MARGIN) & ~(page - 1);

    if (se->in_map > 0) {
        np_secure_zero(se->in, se->in_len);
        se->in_len = 0;
        se->head_len = 0;
        (void)madvise(se->in, se->in_map, MADV_DONTNEED);
    }
    if (se->req_map > 0) {
        /* The tunnel's head: read before the relay started, not after. */
        (void)madvise(&se->req, se->req_map, MADV_DONTNEED);
    }
    if (lo != 0 && here > lo + 2 * page && hi > lo) {
        (void)madvise(se->stack_lo, hi - lo, MADV_DONTNEED);
    }
    atomic_fetch_add(&trims, 1);
}
