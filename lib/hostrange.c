/* Address ranges of the allow and deny lists (SPEC §13): see hostrange.h. */
#include "hostrange.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

const char np_range_why_host_bits[] = "host bits set after the prefix length";

/* The hard deny list (SPEC §3) as ranges. hostfilter.c's np_addr_is_hard_denied is the
 * authority on addresses; test_hostrange.c checks that both agree. */
static const struct np_range hard_v4[] = {
    {true, 16, {169, 254}},           /* link-local, cloud metadata */
    {true, 32, {100, 100, 100, 200}}, /* Alibaba metadata */
    {true, 32, {192, 0, 0, 192}},     /* Oracle metadata */
};

static const struct np_range hard_v6[] = {
    {false, 10, {0xfe, 0x80}}, /* link-local */
    {false,
     128,
     {0xfd, 0x00, 0x0e, 0xc2, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
      0x54}}, /* fd00:ec2::254, AWS metadata */
};

/* The IPv6 forms that embed an IPv4 address: prefix bytes, where the IPv4 address starts. */
struct embedding {
    uint8_t base[16];
    uint8_t prefix; /* bits before the IPv4 address */
};

static const struct embedding embeddings[] = {
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 96}, /* IPv4-mapped ::ffff:0:0/96 */
    {{0}, 96},                                        /* IPv4-compatible ::/96 */
    {{0x00, 0x64, 0xff, 0x9b}, 96},                   /* NAT64 64:ff9b::/96 */
    {{0x20, 0x02}, 16},                               /* 6to4 2002::/16 */
};

static bool
all_zero(const uint8_t *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

/* Whether the first bits bits of a and b are equal. */
static bool
prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8;
    unsigned rest = bits % 8;
    uint8_t mask;

    if (whole > 0 && memcmp(a, b, whole) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    mask = (uint8_t)(0xffu << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

static uint32_t
v4_from_bytes(const uint8_t *b)
{
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

bool
np_addr_embedded_v4(const uint8_t *b, uint32_t *v4)
{
    /* IPv4-compatible addresses start at 1.0.0.0: "::" and "::1" are IPv6's own. */
    if (all_zero(b, 10) &&
        ((b[10] == 0xff && b[11] == 0xff) || (b[10] == 0 && b[11] == 0 && b[12] != 0))) {
        *v4 = v4_from_bytes(b + 12);
        return true;
    }
    if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && all_zero(b + 4, 8)) {
        *v4 = v4_from_bytes(b + 12);
        return true;
    }
    if (b[0] == 0x20 && b[1] == 0x02) {
        *v4 = v4_from_bytes(b + 2);
        return true;
    }
    return false;
}

/* Read a prefix length of at most max from s[0..len): decimal, no sign, no leading zero. */
static const char *
parse_prefix(const char *s, size_t len, unsigned max, uint8_t *out)
{
    unsigned v = 0;
    size_t i;

    if (len == 0) {
        return "missing prefix length after '/'";
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return "prefix length must be a decimal number";
        }
    }
    if (len > 1 && s[0] == '0') {
        return "prefix length must not have a leading zero";
    }
    for (i = 0; i < len && v <= max; i++) {
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max) {
        return max == 32 ? "prefix length must be 0 to 32 for an IPv4 range"
                         : "prefix length must be 0 to 128 for an IPv6 range";
    }
    *out = (uint8_t)v;
    return NULL;
}

/* Clear the bits of r->net after r->prefix. Returns whether any was set. */
static bool
clear_host_bits(struct np_range *r)
{
    size_t n = r->v4 ? 4 : 16;
    bool any = false;
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned first = (unsigned)i * 8; /* the first bit of byte i */
        uint8_t keep = 0;

        if (r->prefix >= first + 8) {
            continue;
        }
        if (r->prefix > first) {
            keep = (uint8_t)(0xffu << (8 - (r->prefix - first)));
        }
        any = any || (r->net[i] & (uint8_t)~keep) != 0;
        r->net[i] &= keep;
    }
    return any;
}

const char *
np_range_parse(const char *text, size_t len, struct np_range *r)
{
    char addr[INET6_ADDRSTRLEN];
    const char *slash;
    const char *why;
    size_t alen;
    unsigned max = 128;

    memset(r, 0, sizeof(*r));
    slash = text != NULL ? memchr(text, '/', len) : NULL;
    if (slash == NULL) {
        return "an address range needs '/' and a prefix length";
    }
    alen = (size_t)(slash - text);
    if (alen == 0 || alen >= sizeof(addr)) {
        return "an address range needs an IPv4 address (a.b.c.d) or an IPv6 address before '/'";
    }
    memcpy(addr, text, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, r->net) == 1) {
        r->v4 = true;
        max = 32;
    } else if (memchr(addr, ':', alen) == NULL || inet_pton(AF_INET6, addr, r->net) != 1) {
        memset(r, 0, sizeof(*r));
        return "an address range needs an IPv4 address (a.b.c.d) or an IPv6 address before '/'";
    }
    why = parse_prefix(slash + 1, len - alen - 1, max, &r->prefix);
    if (why != NULL) {
        return why;
    }
    return clear_host_bits(r) ? np_range_why_host_bits : NULL;
}

int
np_range_format(const struct np_range *r, char *out, size_t cap)
{
    char text[INET6_ADDRSTRLEN];
    int n;

    if (inet_ntop(r->v4 ? AF_INET : AF_INET6, r->net, text, sizeof(text)) == NULL) {
        return -1;
    }
    n = snprintf(out, cap, "%s/%u", text, (unsigned)r->prefix);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

/* Whether the IPv6 address b lies in r (either family): a v4 range holds b when b is
 * IPv4-mapped (or, with embedded, embeds IPv4 in another form) and that address is in it. */
static bool
v6_in_range(const struct np_range *r, const uint8_t *b, bool embedded)
{
    uint8_t v4[4];
    uint32_t a = 0;

    if (!r->v4) {
        return prefix_equal(r->net, b, r->prefix);
    }
    if (all_zero(b, 10) && b[10] == 0xff && b[11] == 0xff) {
        return prefix_equal(r->net, b + 12, r->prefix);
    }
    if (!embedded || !np_addr_embedded_v4(b, &a)) {
        return false;
    }
    v4[0] = (uint8_t)(a >> 24);
    v4[1] = (uint8_t)(a >> 16);
    v4[2] = (uint8_t)(a >> 8);
    v4[3] = (uint8_t)a;
    return prefix_equal(r->net, v4, r->prefix);
}

bool
np_range_contains(const struct np_range *r, const struct sockaddr *sa, bool embedded)
{
    if (r == NULL || sa == NULL) {
        return false;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

        memcpy(mapped + 12, &s4->sin_addr, 4);
        return r->v4 ? prefix_equal(r->net, mapped + 12, r->prefix)
                     : prefix_equal(r->net, mapped, r->prefix);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        return v6_in_range(r, s6->sin6_addr.s6_addr, embedded);
    }
    return false;
}

/* Whether two ranges of one family overlap: the shorter prefix holds the other's network. */
static bool
ranges_overlap(const struct np_range *a, const struct np_range *b)
{
    unsigned p = a->prefix < b->prefix ? a->prefix : b->prefix;

    return a->v4 == b->v4 && prefix_equal(a->net, b->net, p);
}

/* Judge r against one hard-denied range h: single says h stands for one address (a /32, the
 * /128, or an IPv6 form of a /32). Writes h into what when r meets it. */
static enum np_range_overlap
judge_one(const struct np_range *r, const struct np_range *h, bool single, char *what, size_t cap)
{
    if (!ranges_overlap(r, h)) {
        return NP_RANGE_CLEAR;
    }
    if (what != NULL && cap > 0 && np_range_format(h, what, cap) != 0) {
        what[0] = '\0';
    }
    return single && r->prefix < h->prefix ? NP_RANGE_HOLDS_DENIED_ADDRESS
                                           : NP_RANGE_OVERLAPS_DENIED;
}

/* Keep the worse of two judgements (and its what). */
static enum np_range_overlap
worse(enum np_range_overlap have, enum np_range_overlap got, char *what, size_t cap,
      const char *got_what)
{
    if (got > have) {
        if (what != NULL && cap > 0) {
            (void)snprintf(what, cap, "%s", got_what);
        }
        return got;
    }
    return have;
}

enum np_range_overlap
np_range_hard_deny_overlap(const struct np_range *r, char *what, size_t cap)
{
    enum np_range_overlap res = NP_RANGE_CLEAR;
    char seen[INET6_ADDRSTRLEN + 8];
    size_t i;
    size_t j;

    if (what != NULL && cap > 0) {
        what[0] = '\0';
    }
    for (i = 0; i < NP_ARRAY_LEN(hard_v4) + NP_ARRAY_LEN(hard_v6); i++) {
        const struct np_range *h =
            i < NP_ARRAY_LEN(hard_v4) ? &hard_v4[i] : &hard_v6[i - NP_ARRAY_LEN(hard_v4)];
        bool single = h->prefix == (h->v4 ? 32 : 128);

        res = worse(res, judge_one(r, h, single, seen, sizeof(seen)), what, cap, seen);
    }
    /* Each IPv4 range of the list in each IPv6 form that embeds IPv4. */
    for (i = 0; i < NP_ARRAY_LEN(embeddings); i++) {
        for (j = 0; j < NP_ARRAY_LEN(hard_v4); j++) {
            struct np_range h;
            unsigned at = embeddings[i].prefix / 8u;

            memset(&h, 0, sizeof(h));
            memcpy(h.net, embeddings[i].base, sizeof(h.net));
            memcpy(h.net + at, hard_v4[j].net, 4);
            h.prefix = (uint8_t)(embeddings[i].prefix + hard_v4[j].prefix);
            res = worse(res, judge_one(r, &h, hard_v4[j].prefix == 32, seen, sizeof(seen)), what,
                        cap, seen);
        }
    }
    return res;
}
