/* Address ranges of the allow and deny lists (SPEC §13), L1: CIDR parsing, matching, and the
 * overlap check against the hard deny list (SPEC §3). Pure functions, no sockets.
 *
 * By example (test/unit/test_hostrange.c):
 *   `10.0.0.0/8`          matches 10.1.2.3 and ::ffff:10.1.2.3 (IPv4-mapped)
 *   `fd00::/8`            matches fd12::1; never an IPv4 address
 *   `::ffff:0:0/96`       matches every IPv4 address (through its mapped form)
 *   `203.0.113.7/32`      matches that one address; `::1/128` likewise
 *   `10.1.2.3/8`          refused: host bits set (the range starts at 10.0.0.0)
 *   `0.0.0.0/0`           every IPv4 address; `::/0` every address
 * With `embedded` (deny lists), IPv4 inside IPv6 in every form the hard deny list knows
 * (mapped, compatible, NAT64, 6to4) matches IPv4 ranges too: a deny list is never weaker than
 * the hard deny list's reading of an address. Allow lists read only the mapped form. */
#ifndef NP_HOSTRANGE_H
#define NP_HOSTRANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* One range: v4 (net[0..4)) or v6 (net[0..16)); the bits after prefix are zero. */
struct np_range {
    bool v4;
    uint8_t prefix; /* 0..32 or 0..128 */
    uint8_t net[16];
};

/* The reason np_range_parse returns for a range with host bits set; r then holds the masked
 * network, so the caller can suggest it. */
extern const char np_range_why_host_bits[];

/* Parse text[0..len) as "a.b.c.d/N" (dotted quad only) or "v6/N" (no brackets, no zone).
 * Returns NULL and fills *r, or a short static reason. */
const char *np_range_parse(const char *text, size_t len, struct np_range *r);

/* Write r as "net/prefix" (inet_ntop form) into out. Returns 0, or -1 when it does not fit. */
int np_range_format(const struct np_range *r, char *out, size_t cap);

/* Whether sa (AF_INET or AF_INET6; any other family: false) lies in r; with embedded, also
 * IPv4 embedded in IPv6 (see the header comment). */
bool np_range_contains(const struct np_range *r, const struct sockaddr *sa, bool embedded);

/* How a range of an allowlist meets the hard deny list (SPEC §3). */
enum np_range_overlap {
    NP_RANGE_CLEAR = 0,
    NP_RANGE_HOLDS_DENIED_ADDRESS, /* holds one hard-denied address inside a wider network (e.g.
                                      fd00::/8 holds fd00:ec2::254, 100.64.0.0/10 holds
                                      100.100.100.200): usable, that address stays denied */
    NP_RANGE_OVERLAPS_DENIED,      /* meets a hard-denied range (169.254.0.0/16, fe80::/10, or
                                      IPv4 link-local in an IPv6 form), or lies inside a
                                      hard-denied address: refused at start */
};

/* Judge r against the hard deny list; the worst finding wins. Unless NP_RANGE_CLEAR, the
 * hard-denied range it meets is written into what (capacity cap), e.g. "169.254.0.0/16". */
enum np_range_overlap np_range_hard_deny_overlap(const struct np_range *r, char *what, size_t cap);

/* The IPv4 address (host order) embedded in the IPv6 address b: IPv4-mapped ::ffff:0:0/96,
 * IPv4-compatible ::/96 (from ::1.0.0.0 on: not "::" and "::1"), NAT64 64:ff9b::/96 or 6to4
 * 2002::/16. Returns false when none. */
bool np_addr_embedded_v4(const uint8_t *b, uint32_t *v4);

#endif /* NP_HOSTRANGE_H */
