/* One HTTP exchange with an upstream (SPEC §5, §6), L3: shared by reverse routes and the
 * forward proxy. The caller builds the upstream head; this module sends it on a reused or new
 * upstream connection (retrying once on a fresh one when a reused connection turns out dead
 * and the request can be repeated), streams the request body, reads the response head
 * (skipping interim 1xx), answers the client with hop-by-hop headers removed and framing
 * chosen for the client, streams the response body, and hands the connection back when the
 * exchange ended cleanly.
 *
 * Buffers (the worker's): se->in holds the client's head and then serves as the work buffer
 * of the request body; the upstream head lives in relay_b at NP_XCHG_HEAD_OFF (it may hold a
 * secret and is wiped once sent); relay_a receives the response. */
#ifndef NP_EXCHANGE_H
#define NP_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nonoproxy/audit.h>

#include "http_body.h"
#include "http_response.h"
#include "session.h"
#include "stream.h"
#include "upool.h"

#define NP_XCHG_HEAD_OFF   ((size_t)32 * 1024) /* relay_b[0..OFF) is free for the target */
/* Head and inlined request body together stay within one TLS record (16 KiB of data). */
#define NP_XCHG_INLINE_MAX ((size_t)16384)

struct np_xchg;

/* Where upstream connections come from. */
struct np_xchg_ops {
    /* A connection that may be reused for this request, or NULL. */
    struct np_uconn *(*take)(struct np_xchg *x);
    /* A new connection, or NULL with f filled. */
    struct np_uconn *(*open)(struct np_xchg *x, struct np_failure *f);
    /* The exchange ended cleanly: c may be reused. */
    void (*put)(struct np_xchg *x, struct np_uconn *c);
};

struct np_xchg {
    struct np_session *se;
    struct nonoproxy_audit_event ev; /* allow event, filled by the caller; status set here */
    const struct np_xchg_ops *ops;
    void *ops_ctx;
    bool json; /* error answers as JSON (routes) or plain text */

    /* Request facts that outlive the head (np_xchg_facts). */
    enum np_framing body;
    uint64_t body_len;
    bool head_method;
    bool idempotent;
    bool client_keep_alive;
    bool client_http10;
    bool expect_continue;

    /* Set when the request body did not reach the upstream completely (it stopped reading,
     * or failed): neither the upstream connection nor the client connection may carry
     * another request, since the next one would land inside this body (SPEC §1.2). */
    bool body_incomplete;
    const char *resp_why; /* why the response head was refused (static text) */

    /* Route secrets that must not reach the client in the response head (SPEC §6.7): the
     * secret itself and, for basic_auth, its base64; len 0 = unused. Set by the caller. */
    struct {
        const char *p;
        size_t len;
    } scrub[2];

    size_t up_head_len; /* relay_b + NP_XCHG_HEAD_OFF, written by the caller */
    size_t up_body_len; /* request body bytes copied after the head (sent with it), or 0 */
    struct np_stream client;
};

/* Start an exchange for the request in se->req: facts, client stream, ev zeroed. */
void np_xchg_init(struct np_xchg *x, struct np_session *se, const struct np_xchg_ops *ops,
                  void *ops_ctx, bool json);

/* Record x->ev as a deny (cat, reason) and answer status with msg (JSON or text). */
void np_xchg_deny(struct np_xchg *x, int status, enum nonoproxy_denial_category cat,
                  const char *reason, const char *msg);

/* Check the request body bytes already received (after the head) for malformed chunk
 * framing, so that a bad body is refused before anything goes upstream. Returns false after
 * answering 400 when they are malformed. */
bool np_xchg_precheck_body(struct np_xchg *x);

/* Remove the session token from a request-target (literal, percent-encoded, either case):
 * query parameters carrying it are dropped. Returns -1 when it is in the path (the caller
 * refuses the request: removing a segment would change its meaning). */
int np_xchg_strip_token(char *target, size_t *len, const char *token);

/* Connect to the checked addresses in turn (np_net_connect_any). Returns the socket or -1 with
 * f filled as np_session_connect_failure says (504 on a timeout, else 502). */
int np_xchg_connect_any(struct np_xchg *x, const struct np_addrlist *al, const char *what,
                        struct np_failure *f);

/* Run the exchange (the upstream head is ready). Every outcome is answered and audited.
 * Returns true when the client connection may carry another request (se->in then starts
 * with the bytes after this request). */
bool np_xchg_run(struct np_xchg *x);

#endif /* NP_EXCHANGE_H */
