/* Host filtering (SPEC §3, §13), L1: no sockets. The resolver and the decide callback are
 * injected.
 *
 * Order, in one function (np_host_policy_decide): normalise → hard deny list (names, literal
 * addresses in every spelling) → denied_hosts names → (a literal: its address against the
 * hard deny list and denied_hosts) → allowlist (names; address ranges judged on every address,
 * so a name no name entry matches is resolved first when the allowlist has ranges) → a
 * remembered grant or the decide callback → the default (allow only when the allowlist is
 * empty, not strict, and there is no callback) → resolve (at most once) → every address
 * against the hard deny list, denied_hosts (ranges and literals) and the proxy itself →
 * return exactly the checked addresses. Hard-denied and deny-listed names never reach the
 * resolver nor the callback; the callback is asked only once the name's addresses were
 * resolved and passed the hard deny list, denied_hosts and the self check, so that a name
 * resolving into a denied range is never asked about (SPEC §13). */
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
    NP_HOST_DENY_LISTED,      /* denied_hosts: a name entry, or an address in a range/literal */
    NP_HOST_DENY_DECIDED,     /* the decide callback: deny, no answer in time, or shutdown */
};

/* A compiled host list (allowed_hosts, denied_hosts, bypass_hosts). Immutable after
 * np_hostfilter_new: shared by all threads. */
struct np_hostfilter;

/* Normalise host[0..len) for matching: trim, lowercase, strip trailing dots, reject control
 * characters, NUL, space, '@', '/', '\\'; IPv6 literals lose their brackets and are
 * canonicalised (inet_ntop); numeric IPv4 in any spelling inet_aton accepts becomes dotted
 * quad. Returns 0 and writes out (capacity cap) or -1 when the host is invalid. */
int np_host_normalize(const char *host, size_t len, char *out, size_t cap);

/* Whether a normalised host is an IP literal; if so, fill *ss (port 0). */
bool np_host_parse_ip(const char *norm, struct sockaddr_storage *ss);

/* Validate one allowlist, deny list or bypass entry (SPEC §1.1, §13) and write its normalised
 * form into out (capacity cap): a name, `*.domain`, a literal, each with an optional `:port`,
 * or an address range `10.0.0.0/8` / `fd00::/8` (dotted-quad IPv4 or IPv6, no brackets, no
 * port; host bits set, a prefix over 32/128 or anything else is refused). Returns 0, or -1
 * with a short reason in why (capacity whycap). Bypass lists take no ranges: see
 * np_host_entry_is_range. */
int np_host_entry_normalize(const char *entry, char *out, size_t cap, char *why, size_t whycap);

/* Whether a (normalised) entry is an address range. */
bool np_host_entry_is_range(const char *entry);

/* Build a filter from normalised entries (as produced by np_host_entry_normalize). An empty
 * list allows every host not on the hard deny list. Returns 0, -1 when an entry is malformed,
 * or -2 on allocation failure. */
int np_hostfilter_new(const char *const *entries, size_t n, struct np_hostfilter **out);
void np_hostfilter_free(struct np_hostfilter *f);

/* Whether a normalised host matches the entry list, exact or `*.domain` (label boundary),
 * honouring `:port` entries. Address ranges never match here (np_hostfilter_addr_match).
 * Usable for bypass lists too. */
bool np_hostfilter_matches(const struct np_hostfilter *f, const char *norm, uint16_t port);

/* Whether f is NULL or has no entry; whether it has address ranges. */
bool np_hostfilter_is_empty(const struct np_hostfilter *f);
bool np_hostfilter_has_ranges(const struct np_hostfilter *f);

/* The entry of f (its normalised text) that holds the address sa (port: the destination's):
 * an address range (hostrange.h: IPv4-mapped addresses match IPv4 ranges); with deny, also a
 * literal entry (its port honoured), and IPv4 embedded in IPv6 in any form. NULL when none. */
const char *np_hostfilter_addr_match(const struct np_hostfilter *f, const struct sockaddr *sa,
                                     uint16_t port, bool deny);

/* Phase A, no DNS: hard deny list on the name (and on the address when it is a literal), then
 * the allowlist's names (its address ranges are not considered). */
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

struct np_decider; /* decide.h */

/* Everything a host decision consults. The settings hold one for CONNECT and forward requests
 * and one for route upstreams (denied_hosts only: a route's upstream is configuration). */
struct np_host_policy {
    const struct np_hostfilter *allow; /* allowed_hosts; NULL = empty */
    const struct np_hostfilter *deny;  /* denied_hosts; NULL = empty */
    bool strict;                       /* strict_allowlist: an empty allowlist denies */
    struct np_decider *decider;        /* the decide callback; NULL = none */
    const struct np_resolver *resolver;
};

/* Inputs and outputs of one decision. */
struct np_host_query {
    const char *host; /* as received (raw); normalised inside */
    size_t host_len;
    uint16_t port;
    const struct sockaddr_storage *self; /* may be NULL */
    enum nonoproxy_audit_mode mode;      /* for the decide callback */
    const char *method;                  /* for the decide callback; NULL = "CONNECT" */
    char norm[NP_HOST_BUF];              /* out: normalised host ("" when invalid) */
    struct np_addrlist addrs;            /* out: checked addresses (ALLOW only) */
    char reason[160];                    /* out: one line for the 403/502 body and audit */
    char note[64]; /* out, ALLOW only: the grant that allowed it, for the audit reason
                      ("granted for the session by the decide callback"), else "" */
    bool once;     /* out, ALLOW only: allowed once by the callback: never reuse the decision */
};

/* The whole decision (order in the header comment). Fills q->addrs only on ALLOW. May call
 * the decide callback, on this thread. */
enum np_host_verdict np_host_policy_decide(const struct np_host_policy *p, struct np_host_query *q);

/* np_host_policy_decide with the allowlist f only (no deny list, not strict, no callback). */
/* test hook */
enum np_host_verdict np_hostfilter_decide(const struct np_hostfilter *f,
                                          const struct np_resolver *r, struct np_host_query *q);

#endif /* NP_HOSTFILTER_H */
