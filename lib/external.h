/* The external (enterprise) proxy (SPEC §8), L2: parsing its address, the bypass list, and
 * opening a CONNECT tunnel through it. The caller (tunnel.c, forward.c) applies the local
 * filter first; this module only decides "direct or through the enterprise proxy" and does
 * the chained CONNECT. Nothing here logs, and the password is never formatted into a reason. */
#ifndef NP_EXTERNAL_H
#define NP_EXTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nonoproxy/config.h>

#include "common.h"
#include "hostfilter.h"

/* A parsed, validated external proxy. Immutable after np_external_new: shared by threads. */
struct np_external {
    char host[NP_HOST_BUF];      /* normalised (lower case; IPv6 without brackets) */
    uint16_t port;
    char *auth_header;           /* "Proxy-Authorization: Basic <b64(user:pass)>\r\n", or NULL;
                                    np_malloc'd, wiped at free */
    size_t auth_header_len;
    struct np_hostfilter *bypass; /* compiled bypass list (never NULL; may be empty) */
};

/* Check the syntax of an address ("host:port", "user:pass@host:port", "[v6]:port"; port
 * 1..65535 required; user and password may be empty but not contain '@', control characters
 * or spaces; the host as np_host_normalize accepts it). Returns 0, or -1 with a one-line
 * reason in why that never quotes the userinfo. */
int np_external_check(const char *address, char *why, size_t why_cap);

/* Build from cfg->external_proxy and cfg->bypass_hosts (re-validated) into *out (NULL when no
 * external proxy is configured and the bypass list is empty). On error fills diag naming
 * "external_proxy" or "bypass_hosts[i]" and returns the error. */
enum nonoproxy_err np_external_new(const struct nonoproxy_config *cfg, struct np_external **out,
                                   struct nonoproxy_diag *diag);
void np_external_free(struct np_external *e); /* NULL-safe; wipes auth_header */

/* Free (wiping the address) cfg's external_proxy and bypass_hosts; called by
 * nonoproxy_config_free. */
void np_config_external_free(struct nonoproxy_config *cfg);

/* Whether a request to norm:port (normalised host) goes directly rather than through the
 * external proxy: on the bypass list, or a loopback destination (a loopback IP literal,
 * "localhost", or — when resolved is non-NULL and non-empty — every resolved address is
 * loopback). */
bool np_external_bypassed(const struct np_external *e, const char *norm, uint16_t port,
                          const struct np_addrlist *resolved);

/* Whether a request the local filter judged v (for q) goes through the external proxy: one is
 * configured, the destination is neither bypassed nor loopback, and the filter allowed it —
 * or the name only failed to resolve locally (SPEC §8: the enterprise proxy resolves names
 * the local resolver cannot; a name that resolved to a denied address was refused already). */
bool np_external_applies(const struct np_external *e, enum np_host_verdict v,
                         const struct np_host_query *q);

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
    int fd;              /* out: connected to the enterprise proxy, tunnel established */
    unsigned status;     /* out: the enterprise proxy's status code (0 if none) */
    char reason[192];    /* out: one line for the audit and the client's 502 body, e.g.
                            "external proxy 127.0.0.1:3128 answered 407 Proxy Authentication
                            Required" — never the password */
    char *early;         /* in: buffer for bytes the enterprise proxy sent after its 2xx head
                            (they belong to the tunnel); out: early_len of them */
    size_t early_cap;
    size_t early_len;
};

/* Resolve the enterprise proxy (resolver; its addresses are not filtered — it is
 * configuration), connect to each address in turn (connect_timeout_ms each), send
 * "CONNECT host:port HTTP/1.1\r\nHost: host:port\r\n" + auth_header + "\r\n" (IPv6 hosts in
 * brackets) and read its answer head (at most 16 KiB, answer_timeout_ms). On NP_EXT_OK t->fd
 * is the tunnel; otherwise t->fd is -1 and t->reason says why. */
enum np_ext_result np_external_connect(const struct np_external *e, const struct np_resolver *r,
                                       const char *host, uint16_t port,
                                       uint32_t connect_timeout_ms, uint32_t answer_timeout_ms,
                                       int stop_fd, struct np_ext_tunnel *t);

#endif /* NP_EXTERNAL_H */
