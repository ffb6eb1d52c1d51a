/* What one client connection carries through the proxy (L2): the shared per-proxy context,
 * the connection's buffers and parsed head, and the helpers every feature uses to answer and
 * to record audit events. */
#ifndef NP_SESSION_H
#define NP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <nonoproxy/audit.h>

#include "audit.h"
#include "http_request.h"
#include "net.h"
#include "pump.h"
#include "settings.h"
#include "token.h"

struct np_route_runtime;
struct np_uconn;

/* Per-proxy state that connection threads read. Immutable while connections are served. */
struct np_ctx {
    const struct np_settings *s;
    struct np_audit_ring *ring;
    const char *token;               /* session token, 64 hex */
    int stop_fd;                     /* readable once shutdown starts */
    struct sockaddr_storage self;    /* the listener's bound address and port */
    struct np_route_runtime *routes; /* routes at run time (never NULL once started) */
};

#define NP_IN_CAP    ((size_t)NP_MAX_REQUEST_LINE + NP_MAX_HEADER_BLOCK + 4096)
#define NP_RELAY_CAP ((size_t)256 * 1024) /* large reads halve the wake-ups of bulk tunnels */

/* One client connection. Buffers and pipes belong to the worker and are reused between
 * connections; the relay buffers are allocated when first needed (np_session_relay_bufs) and
 * a tunnel spliced through the pipes needs none. */
struct np_session {
    const struct np_ctx *ctx;
    int fd;            /* client socket */
    uint64_t start_ms; /* monotonic */
    char *in;          /* NP_IN_CAP bytes: head, then early body/tunnel bytes; owned by the
                          listener, which maps it in whole pages (in_map bytes) */
    size_t in_map;     /* bytes of whole pages at in; 0 = not page-mapped (never trimmed) */
    char *stack_lo;    /* lowest byte of this worker's stack, or NULL (not trimmed) */
    size_t in_len;     /* bytes received into in */
    size_t head_len;   /* length of the current head in in */
    char *relay_a;     /* NP_RELAY_CAP each, NULL until np_session_relay_bufs */
    char *relay_b;
    struct np_pipes pipes;          /* the spliced tunnel relay's, opened by the first tunnel */
    bool linger;                    /* an error was answered: drain before closing */
    struct np_uconn *fwd_conn;      /* forward proxy: the kept-alive upstream connection of
                                       this client connection (closed when it ends), or NULL */
    char fwd_key[NP_HOST_BUF + 16]; /* "host:port" (and "!" when through the external proxy) */
    size_t req_map;                 /* req starts a page of its own, of req_map bytes, that
                                       np_session_trim may give back; 0 = it does not */
    struct np_http_req req;         /* the current head, pointing into in; last, so that the
                                       listener can give it a page of its own */
};

/* Allocate relay_a and relay_b unless they are. False when out of memory. */
bool np_session_relay_bufs(struct np_session *se);

/* Free what the worker's session holds (relay buffers, pipes; not in, which the listener
 * owns); the struct may be zeroed. */
void np_session_release(struct np_session *se);

/* Give back to the system the memory an idle tunnel does not need: the request buffer (wiped
 * first: it held the head, with Proxy-Authorization) and the pages of this thread's stack
 * below the current frame, which earlier, deeper calls left resident. Called on the worker's
 * own thread, from the tunnel's relay once it has been quiet for a while. */
void np_session_trim(struct np_session *se);

/* How many times np_session_trim gave memory back, in every proxy of the process. */
/* test hook */
unsigned long np_session_trims(void);

/* Record ev: into the ring and to the embedder's audit callback. */
void np_emit(const struct np_ctx *ctx, const struct nonoproxy_audit_event *ev);

/* Send a complete plain-text error response (Content-Length, Connection: close) to the
 * client, bounded in time; failures are ignored (the client may be gone). */
void np_session_reply_text(struct np_session *se, int status, const char *extra_headers,
                           const char *line);

/* Same with a JSON body {"error":"<msg>"} (msg is a static literal without quotes). */
void np_session_reply_json(struct np_session *se, int status, const char *msg);

/* np_session_reply_json with extra_headers (each line ending in \r\n, or NULL). */
void np_session_reply_json_hdr(struct np_session *se, int status, const char *extra_headers,
                               const char *msg);

/* A refusal of the current request before any feature took it. */
struct np_refusal {
    enum nonoproxy_audit_mode mode;
    int status;
    enum nonoproxy_denial_category cat;
    const char *reason; /* a static literal without quotes */
    bool json;          /* answer {"error":"<reason>"} (routes), else plain text */
};

/* Record a deny of the current request (method, target as path with the token redacted, and
 * r's category, status, reason) in r->mode, and answer it. */
void np_session_deny(struct np_session *se, const struct np_refusal *r);

/* The answer to a host filter refusal: 403 host_denied / self_request, 400 for an invalid
 * name, 502 upstream_connect_failed when it did not resolve. Returns the status. */
int np_session_verdict_status(enum np_host_verdict v, enum nonoproxy_denial_category *cat);

/* Why a request is refused after it was admitted: what its deny event and answer say. */
struct np_failure {
    int status; /* 502, 504, 403, ... */
    enum nonoproxy_denial_category cat;
    char reason[NP_REASON_MAX]; /* one line, no secret */
};

/* The answer to a failed np_net_connect_any (SPEC §3), the same on every path: the connect
 * timeout ran out ⇒ 504 upstream_timeout; every address refused or unreachable ⇒ 502
 * upstream_connect_failed; f->reason "upstream connect to <what> failed: <cause>". */
void np_session_connect_failure(enum np_io io, int err, const char *what, struct np_failure *f);

/* Whether host[0..len) (a CONNECT or absolute-URI authority) holds the session token in any
 * spelling np_token_find_encoded knows; such a request is refused with 400 and
 * np_session_why_token_host before any lookup (SPEC §1.2). */
bool np_session_host_has_token(const struct np_session *se, const char *host, size_t len);
extern const char np_session_why_token_host[];

/* Check Proxy-Authorization when the proxy requires it; fills the auth fields of ev. Returns
 * true when the request may go on; otherwise the 407 was sent and ev recorded as a deny. */
bool np_session_require_proxy_auth(struct np_session *se, struct nonoproxy_audit_event *ev);

#endif /* NP_SESSION_H */
