/* The external (enterprise) proxy's configuration (SPEC §8), L1: the address syntax, the
 * frozen form built at start (host, port, the prebuilt Proxy-Authorization line, the bypass
 * list), and the choice between direct and through it. The chained CONNECT itself is
 * external.c's. Nothing here logs, and the password is never formatted into a reason. */
#ifndef NP_CONFIG_EXTERNAL_H
#define NP_CONFIG_EXTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nonoproxy/error.h>

#include "common.h"
#include "hostfilter.h"

/* A parsed, validated external proxy. Immutable after np_external_new: shared by threads. */
struct np_external {
    char host[NP_HOST_BUF]; /* normalised (lower case; IPv6 without brackets) */
    uint16_t port;
    char *auth_header; /* "Proxy-Authorization: Basic <b64(user:pass)>\r\n", or NULL;
                          np_malloc'd, wiped at free */
    size_t auth_header_len;
    struct np_hostfilter *bypass; /* compiled bypass list (never NULL; may be empty) */
};

/* Check the syntax of an address ("host:port", "user:pass@host:port", "[v6]:port"; port
 * 1..65535 required; user and password may be empty but not contain '@', control characters
 * or spaces; the host as np_host_normalize accepts it). Returns 0, or -1 with a one-line
 * reason in why that never quotes the userinfo. */
int np_external_check(const char *address, char *why, size_t why_cap);

/* Build from the address (NULL: no external proxy, *out = NULL, everything goes direct) and
 * the bypass entries (validated when they were added) into *out. On error fills diag naming
 * "external_proxy" and returns the error. */
enum nonoproxy_err np_external_new(const char *address, const char *const *bypass, size_t n_bypass,
                                   struct np_external **out, struct nonoproxy_diag *diag);
void np_external_free(struct np_external *e); /* NULL-safe; wipes auth_header */

/* Whether a request to norm:port (normalised host) goes directly rather than through the
 * external proxy: on the bypass list, or a loopback destination (a loopback IP literal,
 * "localhost", or — when resolved is non-NULL and non-empty — every resolved address is
 * loopback). */
bool np_external_bypassed(const struct np_external *e, const char *norm, uint16_t port,
                          const struct np_addrlist *resolved);

/* The audit mode a request to norm:port is asked about (decide callback) before its addresses
 * are known: NONOPROXY_MODE_EXTERNAL when an external proxy is configured and norm is neither
 * bypassed nor a loopback name or literal, else direct. */
enum nonoproxy_audit_mode np_external_mode(const struct np_external *e, const char *norm,
                                           uint16_t port, enum nonoproxy_audit_mode direct);

/* Whether a request the local filter judged v (for q) goes through the external proxy: one is
 * configured, the destination is neither bypassed nor loopback, and the filter allowed it —
 * or the name only failed to resolve locally (SPEC §8: the enterprise proxy resolves names
 * the local resolver cannot; a name that resolved to a denied address was refused already). */
bool np_external_applies(const struct np_external *e, enum np_host_verdict v,
                         const struct np_host_query *q);

#endif /* NP_CONFIG_EXTERNAL_H */
