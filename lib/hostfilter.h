/* Host filtering (SPEC §3), L1: pure policy, no sockets. The resolver is injected.
 *
 * Order, in one function (np_hostfilter_decide): normalise → hard deny list (names, literal
 * addresses in every spelling) → allowlist → resolve → check every resolved address (hard deny,
 * self) → return exactly the checked addresses. Denied names never reach the resolver. */
#ifndef NP_HOSTFILTER_H
#define NP_HOSTFILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <nonoproxy/config.h>

#include "common.h"

/* Checked socket addresses: the only ones a caller may connect to. */
struct np_addrlist {
    struct sockaddr_storage addr[NP_MAX_ADDRS];
    size_t n;
};

enum np_host_verdict {
    NP_HOST_ALLOW = 0,
    NP_HOST_DENY_INVALID,     /* normalisation failed (fail closed) */
    NP_HOST_DENY_HARD,        /* hard deny list: metadata names or addresses */
    NP_HOST_DENY_NOT_ALLOWED, /* not on the allowlist */
    NP_HOST_DENY_SELF,        /* the proxy's own listening address and port */
    NP_HOST_RESOLVE_FAILED,   /* DNS error or no address ⇒ 502 */
};

/* The compiled allowlist. Immutable after np_hostfilter_new: shared by all threads. */
struct np_hostfilter;

/* Normalise host[0..len) for matching: trim, lowercase, strip trailing dots, reject control
 * characters, NUL, space, '@', '/', '\\'; IPv6 literals lose their brackets and are
 * canonicalised (inet_ntop); numeric IPv4 in any spelling inet_aton accepts becomes dotted
 * quad. Returns 0 and writes out (capacity cap) or -1 when the host is invalid. */
int np_host_normalize(const char *host, size_t len, char *out, size_t cap);

/* Whether a normalised host is an IP literal; if so, fill *ss (port 0). */
bool np_host_parse_ip(const char *norm, struct sockaddr_storage *ss);

/* Validate one allowlist or bypass entry (SPEC §1.1) and write its normalised form into out
 * (capacity cap). Returns 0, or -1 with a short reason in why (capacity whycap). */
int np_host_entry_normalize(const char *entry, char *out, size_t cap, char *why, size_t whycap);

/* Build a filter from normalised entries (as produced by np_host_entry_normalize). An empty
 * list allows every host not on the hard deny list. Returns 0 or -1 on allocation failure. */
int np_hostfilter_new(const char *const *entries, size_t n, struct np_hostfilter **out);
void np_hostfilter_free(struct np_hostfilter *f);

/* Whether a normalised host matches the entry list, exact or `*.domain` (label boundary),
 * honouring `:port` entries. Usable for bypass lists too. */
bool np_hostfilter_matches(const struct np_hostfilter *f, const char *norm, uint16_t port);

/* Phase A, no DNS: hard deny list on the name (and on the address when it is a literal), then
 * the allowlist. */
enum np_host_verdict np_hostfilter_check_name(const struct np_hostfilter *f, const char *norm,
                                              uint16_t port);

/* Whether an address is on the hard deny list (including IPv4 embedded in IPv6). */
bool np_addr_is_hard_denied(const struct sockaddr *sa);

/* Whether sa:port is the proxy's own listener (self->port included). A listener on an
 * unspecified address (0.0.0.0, ::) matches every loopback and unspecified address. */
bool np_addr_is_self(const struct sockaddr *sa, const struct sockaddr_storage *self);

struct np_resolver {
    nonoproxy_resolve_fn *fn; /* never NULL */
    void *userdata;
};

/* Inputs and outputs of one decision. */
struct np_host_query {
    const char *host; /* as received (raw); normalised inside */
    size_t host_len;
    uint16_t port;
    const struct sockaddr_storage *self; /* may be NULL */
    char norm[NP_HOST_BUF];              /* out: normalised host ("" when invalid) */
    struct np_addrlist addrs;            /* out: checked addresses (ALLOW only) */
    char reason[160];                    /* out: one line for the 403/502 body and audit */
};

/* The whole decision (order in the header comment). Fills q->addrs only on ALLOW. */
enum np_host_verdict np_hostfilter_decide(const struct np_hostfilter *f,
                                          const struct np_resolver *r, struct np_host_query *q);

#endif /* NP_HOSTFILTER_H */
