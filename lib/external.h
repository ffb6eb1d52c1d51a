/* The chained CONNECT through the external (enterprise) proxy (SPEC §8), L3. Its
 * configuration, and the choice between direct and through it, are config_external.h's; the
 * caller (tunnel.c, forward.c) applies the local filter first. Nothing here logs, and the
 * password is never formatted into a reason. */
#ifndef NP_EXTERNAL_H
#define NP_EXTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "config_external.h"
#include "hostfilter.h"

enum np_ext_result {
    NP_EXT_OK = 0,
    NP_EXT_UNREACHABLE, /* the enterprise proxy cannot be resolved, refuses or is
                           unreachable (502 upstream_connect_failed) */
    NP_EXT_REJECTED,    /* it answered the CONNECT with a non-2xx status (502
                           external_proxy_rejected; *status holds it), with garbage, or
                           closed without answering (status 0) */
    NP_EXT_TIMEOUT,     /* the connect timeout ran out, or connected but no complete answer
                           in time (504 upstream_timeout) */
    NP_EXT_STOPPED,     /* the proxy is shutting down */
};

/* One chained CONNECT. */
struct np_ext_tunnel {
    int fd;           /* out: connected to the enterprise proxy, tunnel established */
    unsigned status;  /* out: the enterprise proxy's status code (0 if none) */
    char reason[192]; /* out: one line for the audit and the client's 502 body, e.g.
                         "external proxy 127.0.0.1:3128 answered 407 Proxy Authentication
                         Required" — never the password */
    char *early;      /* in: buffer for bytes the enterprise proxy sent after its 2xx head
                         (they belong to the tunnel); out: early_len of them */
    size_t early_cap;
    size_t early_len;
};

/* One chained CONNECT: the destination and the limits of asking for it. */
struct np_ext_request {
    const struct np_external *e;
    const struct np_resolver *resolver; /* for the enterprise proxy's own name */
    const char *host;                   /* the destination, normalised */
    uint16_t port;
    uint32_t connect_timeout_ms; /* per address of the enterprise proxy */
    uint32_t answer_timeout_ms;  /* for its whole answer head */
    int stop_fd;
};

/* Resolve the enterprise proxy (q->resolver; its addresses are not filtered — it is
 * configuration), connect to each address in turn (connect_timeout_ms each), send
 * "CONNECT host:port HTTP/1.1\r\nHost: host:port\r\n" + auth_header + "\r\n" (IPv6 hosts in
 * brackets) and read its answer head (at most 16 KiB, answer_timeout_ms). On NP_EXT_OK t->fd
 * is the tunnel; otherwise t->fd is -1 and t->reason says why. */
enum np_ext_result np_external_connect(const struct np_ext_request *q, struct np_ext_tunnel *t);

#endif /* NP_EXTERNAL_H */
