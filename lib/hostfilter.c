/* Host filtering (SPEC §3), L1: normalisation, hard deny list, allowlist, one decision function.
 *
 * Matching rules by example (test/unit/test_hostfilter.c):
 *   `example.com`      matches example.com, EXAMPLE.com., any port
 *   `*.example.com`    matches a.example.com, a.b.example.com; not example.com, badexample.com
 *   `example.com:443`  matches example.com on port 443 only
 *   `[::1]:8975`       matches ::1 (normalised: no brackets) on port 8975 only
 * Numeric IPv4 hosts are read the way inet_aton reads them ("2852039166", "0xa9fea9fe",
 * "169.254.43518"), so no spelling of a denied address gets past the hard deny list. */
#include "hostfilter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "decide.h"
#include "hostrange.h"

/* Longest accepted allowlist entry: "*." + name + ":65535" with some slack. */
#define ENTRY_MAX (NP_HOST_BUF + 16)

/* One compiled allowlist entry. Wildcards keep the leading dot: "*.example.com" is stored as
 * ".example.com", so a suffix match is always on a label boundary. */
struct hf_entry {
    char host[NP_HOST_BUF];
    size_t len;
    uint16_t port; /* 0 = any port */
    bool wildcard;
    bool v6;       /* IPv6 literal: written bracketed when a port follows */
    bool is_range; /* an address range: host holds its text, range its value */
    struct np_range range;
};

struct np_hostfilter {
    size_t n;
    size_t n_ranges;
    struct hf_entry e[];
};

static const char *const hard_denied_names[] = {
    "metadata.google.internal",
    "metadata.azure.internal",
    "metadata",
    "instance-data",
};

/* fd00:ec2::254, the AWS IPv6 instance metadata address. */
static const uint8_t aws_v6_metadata[16] = {0xfd, 0x00, 0x0e, 0xc2, 0x00, 0x00, 0x00, 0x00,
                                            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x54};

static bool
is_trim_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static bool
is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* Copy src[0..len) into dst (capacity cap) NUL-terminated. Returns 0, or -1 if it does not fit. */
static int
copy_bounded(char *dst, size_t cap, const char *src, size_t len)
{
    if (cap == 0 || len > cap - 1) {
        return -1;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

/* Parse s as IPv4 the way inet_aton does, but only when the whole string is numeric (inet_aton
 * itself stops at whitespace and ignores what follows). Returns true and fills *a on success. */
static bool
parse_v4_whole(const char *s, struct in_addr *a)
{
    size_t i;

    if (s[0] == '\0') {
        return false;
    }
    for (i = 0; s[i] != '\0'; i++) {
        char c = np_ascii_lower(s[i]);
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == 'x' || c == '.')) {
            return false;
        }
    }
    return inet_aton(s, a) != 0;
}

/* Parse s (no brackets) as an IPv6 literal. Zone ids ('%') are refused by inet_pton. */
static bool
parse_v6(const char *s, struct in6_addr *a)
{
    return strchr(s, ':') != NULL && inet_pton(AF_INET6, s, a) == 1;
}

/* Check that buf is a host name: [a-z0-9-_.] only, no empty label, at most NP_MAX_HOST long.
 * buf must already be lowercased and stripped of trailing dots. */
static bool
is_valid_name(const char *buf, size_t len)
{
    size_t i;

    if (len == 0 || len > NP_MAX_HOST || buf[0] == '.') {
        return false;
    }
    for (i = 0; i < len; i++) {
        if (!is_name_char(buf[i])) {
            return false;
        }
        if (buf[i] == '.' && i + 1 < len && buf[i + 1] == '.') {
            return false;
        }
    }
    return true;
}

/* Lowercase host[0..len) into buf (capacity cap) after trimming whitespace and trailing dots.
 * Rejects control characters, NUL, space and non-ASCII bytes anywhere. Returns the length or
 * -1. The result is not yet checked as a name or address. */
static int
prepare(const char *host, size_t len, char *buf, size_t cap)
{
    size_t start = 0;
    size_t end = len;
    size_t i;

    while (start < end && is_trim_space(host[start])) {
        start++;
    }
    while (end > start && is_trim_space(host[end - 1])) {
        end--;
    }
    while (end > start && host[end - 1] == '.') {
        end--;
    }
    if (end == start || end - start > cap - 1) {
        return -1;
    }
    for (i = start; i < end; i++) {
        unsigned char ch = (unsigned char)host[i];
        if (ch <= 0x20 || ch >= 0x7f) {
            return -1;
        }
        buf[i - start] = np_ascii_lower((char)ch);
    }
    buf[end - start] = '\0';
    return (int)(end - start);
}

/* Normalise an IPv6 literal body (brackets already removed) into out. */
static int
normalize_v6(const char *s, char *out, size_t cap)
{
    struct in6_addr a6;
    char text[INET6_ADDRSTRLEN];

    if (!parse_v6(s, &a6) || inet_ntop(AF_INET6, &a6, text, sizeof(text)) == NULL) {
        return -1;
    }
    return copy_bounded(out, cap, text, strlen(text));
}

int
np_host_normalize(const char *host, size_t len, char *out, size_t cap)
{
    char buf[NP_HOST_BUF + 4];
    struct in_addr a4;
    int n;

    if (host == NULL || out == NULL || cap == 0) {
        return -1;
    }
    out[0] = '\0';
    n = prepare(host, len, buf, sizeof(buf));
    if (n < 0) {
        return -1;
    }
    if (buf[0] == '[') {
        if (n < 3 || buf[n - 1] != ']') {
            return -1;
        }
        buf[n - 1] = '\0';
        return normalize_v6(buf + 1, out, cap);
    }
    if (strchr(buf, ':') != NULL) {
        return normalize_v6(buf, out, cap);
    }
    if (parse_v4_whole(buf, &a4)) {
        char text[INET_ADDRSTRLEN];
        if (inet_ntop(AF_INET, &a4, text, sizeof(text)) == NULL) {
            return -1;
        }
        return copy_bounded(out, cap, text, strlen(text));
    }
    if (!is_valid_name(buf, (size_t)n)) {
        return -1;
    }
    return copy_bounded(out, cap, buf, (size_t)n);
}

bool
np_host_parse_ip(const char *norm, struct sockaddr_storage *ss)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (norm == NULL || ss == NULL) {
        return false;
    }
    if (parse_v6(norm, &a6)) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        memset(ss, 0, sizeof(*ss));
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = a6;
        return true;
    }
    if (parse_v4_whole(norm, &a4)) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        memset(ss, 0, sizeof(*ss));
        s4->sin_family = AF_INET;
        s4->sin_addr = a4;
        return true;
    }
    return false;
}

/* Whether a host-order IPv4 address is hard denied: 169.254.0.0/16, 100.100.100.200,
 * 192.0.0.192. */
static bool
v4_is_hard_denied(uint32_t a)
{
    return (a & 0xffff0000u) == 0xa9fe0000u || a == 0x646464c8u || a == 0xc00000c0u;
}

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

static bool
v6_is_hard_denied(const uint8_t *b)
{
    uint32_t v4 = 0;

    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) {
        return true; /* fe80::/10 link-local */
    }
    if (memcmp(b, aws_v6_metadata, sizeof(aws_v6_metadata)) == 0) {
        return true;
    }
    return np_addr_embedded_v4(b, &v4) && v4_is_hard_denied(v4);
}

bool
np_addr_is_hard_denied(const struct sockaddr *sa)
{
    if (sa == NULL) {
        return true;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        return v4_is_hard_denied(ntohl(s4->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        return v6_is_hard_denied(s6->sin6_addr.s6_addr);
    }
    return true; /* unknown family: fail closed */
}

/* An address reduced for comparison: IPv4 (also when IPv4-mapped) or IPv6, plus port. */
struct flat_addr {
    bool v4;
    uint8_t b[16];
    uint16_t port; /* host order */
};

static bool
flatten(const struct sockaddr *sa, struct flat_addr *f)
{
    memset(f, 0, sizeof(*f));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        f->v4 = true;
        memcpy(f->b, &s4->sin_addr, 4);
        f->port = ntohs(s4->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        const uint8_t *b = s6->sin6_addr.s6_addr;
        f->port = ntohs(s6->sin6_port);
        if (all_zero(b, 10) && b[10] == 0xff && b[11] == 0xff) {
            f->v4 = true;
            memcpy(f->b, b + 12, 4);
        } else {
            memcpy(f->b, b, 16);
        }
        return true;
    }
    return false;
}

static bool
flat_is_unspecified(const struct flat_addr *f)
{
    return all_zero(f->b, f->v4 ? 4 : 16);
}

static bool
flat_is_loopback(const struct flat_addr *f)
{
    if (f->v4) {
        return f->b[0] == 127;
    }
    return all_zero(f->b, 15) && f->b[15] == 1;
}

bool
np_addr_is_self(const struct sockaddr *sa, const struct sockaddr_storage *self)
{
    struct flat_addr a;
    struct flat_addr s;

    if (sa == NULL || self == NULL) {
        return false;
    }
    if (!flatten(sa, &a) || !flatten((const struct sockaddr *)(const void *)self, &s)) {
        return false;
    }
    if (a.port != s.port) {
        return false;
    }
    if (a.v4 == s.v4 && memcmp(a.b, s.b, sizeof(a.b)) == 0) {
        return true;
    }
    /* A wildcard listener answers on every loopback address; connecting to 0.0.0.0 or ::
     * reaches the local host, so it hits a loopback listener too. */
    if (flat_is_unspecified(&s)) {
        return flat_is_loopback(&a) || flat_is_unspecified(&a);
    }
    return flat_is_unspecified(&a) && flat_is_loopback(&s);
}

/* Return why the characters of entry[0..len) are unacceptable, or NULL. */
static const char *
entry_bad_chars(const char *entry, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)entry[i];
        if (ch < 0x20 || ch == 0x7f) {
            return "control character in entry";
        }
        if (ch == ' ') {
            return "space in entry";
        }
        if (ch == '@') {
            return "'@' in entry";
        }
        if (ch == '\\') {
            return "'\\' in entry";
        }
        if (ch == '*' && i > 0) {
            return "'*' is only allowed as a leading '*.'";
        }
    }
    return NULL;
}

/* The pieces of an entry after the optional "*." and before normalisation. */
struct entry_parts {
    const char *host;
    size_t host_len;
    bool bracketed;
    const char *port;
    size_t port_len;
    bool has_port;
};

/* Split p[0..len) into host and optional port: "[v6]", "[v6]:port", bare IPv6 (two or more
 * colons, no port), "host:port" or "host". Returns NULL or the reason it fails. */
static const char *
split_entry(const char *p, size_t len, struct entry_parts *parts)
{
    const char *colon = memchr(p, ':', len);

    memset(parts, 0, sizeof(*parts));
    if (len > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', len);
        if (close == NULL) {
            return "missing ']' after IPv6 address";
        }
        parts->host = p + 1;
        parts->host_len = (size_t)(close - p) - 1;
        parts->bracketed = true;
        colon = close + 1;
        if (colon == p + len) {
            return NULL;
        }
        if (*colon != ':') {
            return "unexpected text after ']'";
        }
    } else {
        parts->host = p;
        parts->host_len = len;
        if (colon == NULL || memchr(colon + 1, ':', len - (size_t)(colon + 1 - p)) != NULL) {
            return NULL; /* no port, or a bare IPv6 literal */
        }
        parts->host_len = (size_t)(colon - p);
    }
    parts->has_port = true;
    parts->port = colon + 1;
    parts->port_len = len - (size_t)(colon + 1 - p);
    return NULL;
}

/* Normalise the host part of an entry into e->host. Returns NULL or the reason it fails. */
static const char *
entry_host(const struct entry_parts *parts, bool wildcard, struct hf_entry *e)
{
    struct sockaddr_storage ss;

    if (parts->host_len == 0) {
        return wildcard ? "'*.' needs a domain" : "empty host";
    }
    if (wildcard) {
        char buf[NP_HOST_BUF];
        int n;

        if (parts->bracketed || memchr(parts->host, ':', parts->host_len) != NULL) {
            return "a wildcard needs a domain name, not an address";
        }
        n = prepare(parts->host, parts->host_len, buf, sizeof(buf));
        if (n < 0 || !is_valid_name(buf, (size_t)n) || (size_t)n > sizeof(e->host) - 2) {
            return "invalid domain after '*.'";
        }
        e->host[0] = '.';
        memcpy(e->host + 1, buf, (size_t)n + 1);
        e->len = (size_t)n + 1;
        return NULL;
    }
    if (np_host_normalize(parts->host, parts->host_len, e->host, sizeof(e->host)) != 0) {
        return parts->bracketed ? "invalid IPv6 address in brackets" : "invalid host";
    }
    e->len = strlen(e->host);
    e->v6 = np_host_parse_ip(e->host, &ss) && ss.ss_family == AF_INET6;
    if (parts->bracketed && !e->v6) {
        return "brackets are only for IPv6 addresses";
    }
    return NULL;
}

/* Parse an address range entry ("10.0.0.0/8", "fd00::/8") into *e; its canonical text goes
 * into e->host, also when the host bits are set (the masked range: the reason's suggestion). */
static const char *
parse_range_entry(const char *entry, size_t len, struct hf_entry *e)
{
    const char *why;

    if (entry[0] == '*') {
        return "'/' is only allowed in an address range such as 10.0.0.0/8, not in a wildcard";
    }
    if (entry[0] == '[') {
        return "write an IPv6 range without brackets, e.g. fd00::/8";
    }
    why = np_range_parse(entry, len, &e->range);
    if (why != NULL && why != np_range_why_host_bits) {
        return why;
    }
    if (np_range_format(&e->range, e->host, sizeof(e->host)) != 0) {
        return "address range does not fit";
    }
    e->len = strlen(e->host);
    e->is_range = true;
    return why;
}

/* Parse and normalise one allowlist or bypass entry into *e. Returns NULL or a short reason. */
static const char *
parse_entry(const char *entry, struct hf_entry *e)
{
    struct entry_parts parts;
    const char *p = entry;
    const char *why;
    size_t len;

    memset(e, 0, sizeof(*e));
    if (entry == NULL || entry[0] == '\0') {
        return "empty entry";
    }
    len = strnlen(entry, ENTRY_MAX + 1);
    if (len > ENTRY_MAX) {
        return "entry too long";
    }
    why = entry_bad_chars(entry, len);
    if (why != NULL) {
        return why;
    }
    if (memchr(entry, '/', len) != NULL) {
        return parse_range_entry(entry, len, e);
    }
    if (p[0] == '*') {
        if (len == 1) {
            return "bare '*' is not allowed (an empty list allows every host)";
        }
        if (p[1] != '.') {
            return "'*' must be followed by '.'";
        }
        e->wildcard = true;
        p += 2;
        len -= 2;
    }
    why = split_entry(p, len, &parts);
    if (why != NULL) {
        return why;
    }
    why = entry_host(&parts, e->wildcard, e);
    if (why != NULL) {
        return why;
    }
    if (parts.has_port) {
        e->port = np_parse_port(parts.port, parts.port_len);
        if (e->port == 0) {
            return "port must be a number from 1 to 65535";
        }
    }
    return NULL;
}

/* Write e in its normalised text form into out. Returns 0 or -1 when it does not fit. */
static int
format_entry(const struct hf_entry *e, char *out, size_t cap)
{
    int n;

    if (e->port == 0 || e->is_range) {
        n = snprintf(out, cap, "%s%s", e->wildcard ? "*" : "", e->host);
    } else if (e->v6) {
        n = snprintf(out, cap, "[%s]:%u", e->host, (unsigned)e->port);
    } else {
        n = snprintf(out, cap, "%s%s:%u", e->wildcard ? "*" : "", e->host, (unsigned)e->port);
    }
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

int
np_host_entry_normalize(const char *entry, char *out, size_t cap, char *why, size_t whycap)
{
    struct hf_entry e;
    const char *reason;
    int rc = -1;

    if (out != NULL && cap > 0) {
        out[0] = '\0';
    }
    if (why != NULL && whycap > 0) {
        why[0] = '\0';
    }
    reason = parse_entry(entry, &e);
    if (reason == NULL && (out == NULL || format_entry(&e, out, cap) != 0)) {
        reason = "normalised entry does not fit the output buffer";
    }
    if (reason == NULL) {
        rc = 0;
    } else if (why != NULL && whycap > 0 && reason == np_range_why_host_bits) {
        (void)snprintf(why, whycap, "%s (the range is %s)", reason, e.host);
    } else if (why != NULL && whycap > 0) {
        (void)snprintf(why, whycap, "%s", reason);
    }
    return rc;
}

int
np_hostfilter_new(const char *const *entries, size_t n, struct np_hostfilter **out)
{
    struct np_hostfilter *f = NULL;
    int rc = -1;
    size_t i;

    if (out == NULL || (n > 0 && entries == NULL) ||
        n > (SIZE_MAX - sizeof(*f)) / sizeof(struct hf_entry)) {
        goto out;
    }
    f = np_calloc(1, sizeof(*f) + n * sizeof(struct hf_entry));
    if (f == NULL) {
        rc = -2;
        goto out;
    }
    for (i = 0; i < n; i++) {
        /* Entries should already be normalised; re-parsing is idempotent and refuses (rather
         * than silently drops) anything malformed, so a bad list never turns into allow-all. */
        if (parse_entry(entries[i], &f->e[i]) != NULL) {
            goto out;
        }
        f->n_ranges += f->e[i].is_range ? 1 : 0;
    }
    f->n = n;
    *out = f;
    f = NULL; /* ownership moved to the caller */
    rc = 0;
out:
    np_free(f);
    return rc;
}

void
np_hostfilter_free(struct np_hostfilter *f)
{
    np_free(f);
}

/* Compare a[0..n) and b[0..n) ignoring ASCII case. */
static bool
equal_nocase(const char *a, const char *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (np_ascii_lower(a[i]) != np_ascii_lower(b[i])) {
            return false;
        }
    }
    return true;
}

bool
np_hostfilter_matches(const struct np_hostfilter *f, const char *norm, uint16_t port)
{
    struct sockaddr_storage ss;
    bool is_ip;
    size_t len;
    size_t i;

    if (f == NULL || norm == NULL) {
        return false;
    }
    len = strnlen(norm, NP_HOST_BUF);
    is_ip = np_host_parse_ip(norm, &ss);
    for (i = 0; i < f->n; i++) {
        const struct hf_entry *e = &f->e[i];
        if (e->is_range || (e->port != 0 && e->port != port)) {
            continue; /* ranges are judged on addresses (np_hostfilter_range_of) */
        }
        if (e->wildcard) {
            /* e->host starts with '.', and the host must be strictly longer: a label boundary,
             * never the bare domain. Addresses are not names: wildcards never match them. */
            if (!is_ip && len > e->len && equal_nocase(norm + len - e->len, e->host, e->len)) {
                return true;
            }
        } else if (len == e->len && equal_nocase(norm, e->host, len)) {
            return true;
        }
    }
    return false;
}

static bool
name_is_hard_denied(const char *norm)
{
    size_t i;

    for (i = 0; i < NP_ARRAY_LEN(hard_denied_names); i++) {
        if (strcmp(norm, hard_denied_names[i]) == 0) {
            return true;
        }
    }
    return false;
}

enum np_host_verdict
np_hostfilter_check_name(const struct np_hostfilter *f, const char *norm, uint16_t port)
{
    char buf[NP_HOST_BUF];
    struct sockaddr_storage ss;

    /* Normalising again is idempotent and cheap; it keeps the hard deny list effective even
     * when a caller passes a host that skipped np_host_normalize. */
    if (norm == NULL ||
        np_host_normalize(norm, strnlen(norm, NP_HOST_BUF), buf, sizeof(buf)) != 0) {
        return NP_HOST_DENY_INVALID;
    }
    if (name_is_hard_denied(buf)) {
        return NP_HOST_DENY_HARD;
    }
    if (np_host_parse_ip(buf, &ss) && np_addr_is_hard_denied((const struct sockaddr *)&ss)) {
        return NP_HOST_DENY_HARD;
    }
    if (f == NULL || f->n == 0 || np_hostfilter_matches(f, buf, port)) {
        return NP_HOST_ALLOW;
    }
    return NP_HOST_DENY_NOT_ALLOWED;
}

bool
np_hostfilter_is_empty(const struct np_hostfilter *f)
{
    return f == NULL || f->n == 0;
}

bool
np_hostfilter_has_ranges(const struct np_hostfilter *f)
{
    return f != NULL && f->n_ranges > 0;
}

bool
np_host_entry_is_range(const char *entry)
{
    return entry != NULL && strchr(entry, '/') != NULL;
}

/* Whether the literal entry e (an IP address, not a range) names sa on port. */
static bool
literal_entry_holds(const struct hf_entry *e, const struct sockaddr *sa, uint16_t port)
{
    struct sockaddr_storage ss;
    struct np_range r;

    if (e->wildcard || (e->port != 0 && e->port != port) || !np_host_parse_ip(e->host, &ss)) {
        return false;
    }
    memset(&r, 0, sizeof(r));
    r.v4 = ss.ss_family == AF_INET;
    r.prefix = r.v4 ? 32 : 128;
    if (r.v4) {
        memcpy(r.net, &((const struct sockaddr_in *)(const void *)&ss)->sin_addr, 4);
    } else {
        memcpy(r.net, &((const struct sockaddr_in6 *)(const void *)&ss)->sin6_addr, 16);
    }
    return np_range_contains(&r, sa, true);
}

const char *
np_hostfilter_addr_match(const struct np_hostfilter *f, const struct sockaddr *sa, uint16_t port,
                         bool deny)
{
    size_t i;

    if (f == NULL || sa == NULL) {
        return NULL;
    }
    for (i = 0; i < f->n; i++) {
        const struct hf_entry *e = &f->e[i];

        if (e->is_range ? np_range_contains(&e->range, sa, deny)
                        : deny && literal_entry_holds(e, sa, port)) {
            return e->host;
        }
    }
    return NULL;
}

static void
set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET) {
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    } else if (ss->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    }
}

/* Write the address of ss as text into buf (capacity cap), "?" when it has no text form. */
static void
addr_text(const struct sockaddr_storage *ss, char *buf, size_t cap)
{
    const void *a = NULL;

    if (ss->ss_family == AF_INET) {
        a = &((const struct sockaddr_in *)(const void *)ss)->sin_addr;
    } else if (ss->ss_family == AF_INET6) {
        a = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
    }
    if (a == NULL || inet_ntop(ss->ss_family, a, buf, (socklen_t)cap) == NULL) {
        (void)snprintf(buf, cap, "?");
    }
}

/* Fill q->reason for a host that failed normalisation, showing it only in printable form. */
static void
invalid_reason(struct np_host_query *q)
{
    char shown[64];

    if (q->host == NULL) {
        (void)snprintf(q->reason, sizeof(q->reason), "invalid host name");
        return;
    }
    np_copy_printable(shown, sizeof(shown), q->host, q->host_len);
    (void)snprintf(q->reason, sizeof(q->reason), "invalid host name \"%s\"", shown);
}

/* Fill q->reason for a verdict of the name phase. */
static void
name_reason(struct np_host_query *q, enum np_host_verdict v)
{
    char shown[96];

    np_copy_printable(shown, sizeof(shown), q->norm, strlen(q->norm));
    if (v == NP_HOST_DENY_HARD) {
        (void)snprintf(q->reason, sizeof(q->reason), "host %s is on the hard deny list", shown);
    } else if (v == NP_HOST_DENY_LISTED) {
        (void)snprintf(q->reason, sizeof(q->reason), "host %s denied by denied_hosts", shown);
    } else {
        (void)snprintf(q->reason, sizeof(q->reason), "invalid host name");
    }
}

/* The state of one decision between its steps. */
struct decision {
    const struct np_host_policy *p;
    struct np_host_query *q;
    size_t n;         /* addresses in q->addrs.addr, their port set */
    bool have_addrs;  /* the literal, or what the resolver answered */
    bool literal;     /* the host is an IP literal */
    bool dns_failed;  /* the resolver was asked and failed (dns_rc) */
    int dns_rc;       /* the resolver's return value */
    bool outside;     /* an address lies outside every allowed range: */
    size_t outside_i; /* this one */
};

/* 2. The names that never reach the resolver: the hard deny list (a name, or a literal in any
 * spelling), then denied_hosts' names (exact, `*.domain`, `host:port`, literal). */
static enum np_host_verdict
deny_by_name(struct decision *d)
{
    struct np_host_query *q = d->q;
    enum np_host_verdict v = np_hostfilter_check_name(NULL, q->norm, q->port);

    if (v == NP_HOST_ALLOW && np_hostfilter_matches(d->p->deny, q->norm, q->port)) {
        v = NP_HOST_DENY_LISTED;
    }
    if (v != NP_HOST_ALLOW) {
        name_reason(q, v);
    }
    return v;
}

/* Every address against the hard deny list, then against denied_hosts (its ranges, and its
 * literals, IPv4 embedded in IPv6 included): one denied address denies the host. */
static enum np_host_verdict
deny_by_addr(struct decision *d)
{
    struct np_host_query *q = d->q;
    char text[INET6_ADDRSTRLEN];
    char shown[36]; /* the longest address, this host and an entry always fit q->reason */
    size_t i;

    for (i = 0; i < d->n; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&q->addrs.addr[i];
        const char *entry;

        if (np_addr_is_hard_denied(sa)) {
            addr_text(&q->addrs.addr[i], text, sizeof(text));
            np_copy_printable(shown, sizeof(shown), q->norm, strlen(q->norm));
            (void)snprintf(q->reason, sizeof(q->reason),
                           "resolved address %s of %s is on the hard deny list "
                           "(link-local / cloud metadata)",
                           text, shown);
            return NP_HOST_DENY_HARD;
        }
        entry = np_hostfilter_addr_match(d->p->deny, sa, q->port, true);
        if (entry != NULL) {
            addr_text(&q->addrs.addr[i], text, sizeof(text));
            np_copy_printable(shown, sizeof(shown), q->norm, strlen(q->norm));
            if (d->literal) {
                (void)snprintf(q->reason, sizeof(q->reason), "host %s denied by denied_hosts (%s)",
                               text, entry);
            } else {
                (void)snprintf(q->reason, sizeof(q->reason),
                               "resolved address %s of %s denied by denied_hosts (%s)", text, shown,
                               entry);
            }
            return NP_HOST_DENY_LISTED;
        }
    }
    return NP_HOST_ALLOW;
}

/* The proxy's own listener among the addresses ⇒ refused. */
static enum np_host_verdict
deny_self(struct decision *d)
{
    size_t i;

    for (i = 0; i < d->n; i++) {
        if (np_addr_is_self((const struct sockaddr *)&d->q->addrs.addr[i], d->q->self)) {
            (void)snprintf(d->q->reason, sizeof(d->q->reason),
                           "request to the proxy itself is refused");
            return NP_HOST_DENY_SELF;
        }
    }
    return NP_HOST_ALLOW;
}

/* Fill q->reason for a failed lookup (rc: the resolver's return value). */
static void
dns_reason(struct np_host_query *q, int rc)
{
    char shown[96];

    np_copy_printable(shown, sizeof(shown), q->norm, strlen(q->norm));
    (void)snprintf(q->reason, sizeof(q->reason), "DNS resolution of %s %s", shown,
                   rc == 0 ? "returned no address" : "failed");
}

/* The addresses of q->norm, resolved at most once per decision (never for a literal). Returns
 * false with q->reason set when the lookup failed. */
static bool
get_addrs(struct decision *d)
{
    struct np_host_query *q = d->q;
    const struct np_resolver *r = d->p->resolver;
    struct nonoproxy_addrs out = {q->addrs.addr, NP_MAX_ADDRS, 0};
    size_t i;

    if (d->have_addrs) {
        return true;
    }
    if (!d->dns_failed) {
        d->dns_rc = -1;
        if (r != NULL && r->fn != NULL) {
            d->dns_rc = r->fn(r->userdata, q->norm, q->port, &out);
        }
        d->n = out.count > NP_MAX_ADDRS ? NP_MAX_ADDRS : out.count; /* never trust more */
        d->dns_failed = d->dns_rc != 0 || d->n == 0;
    }
    if (d->dns_failed) {
        d->n = 0;
        dns_reason(q, d->dns_rc);
        return false;
    }
    for (i = 0; i < d->n; i++) {
        set_port(&q->addrs.addr[i], q->port);
    }
    d->have_addrs = true;
    return true;
}

/* 4. The allowlist. A name entry (exact, `*.domain`, `host:port`, literal) allows at once.
 * Address ranges allow when every address lies in one of them, which needs the addresses: a
 * name that no name entry matches is resolved here (it is not denied by name), and its
 * addresses meet the deny lists before anything else. Sets *allowed. */
static enum np_host_verdict
allow_by_list(struct decision *d, bool *allowed)
{
    const struct np_hostfilter *a = d->p->allow;
    struct np_host_query *q = d->q;
    enum np_host_verdict v;
    size_t i;

    *allowed = np_hostfilter_matches(a, q->norm, q->port);
    if (*allowed || !np_hostfilter_has_ranges(a) || !get_addrs(d)) {
        return NP_HOST_ALLOW; /* allowed by name, or not (yet) allowed */
    }
    v = deny_by_addr(d);
    if (v != NP_HOST_ALLOW) {
        return v;
    }
    for (i = 0; i < d->n; i++) {
        if (np_hostfilter_addr_match(a, (const struct sockaddr *)&q->addrs.addr[i], q->port,
                                     false) == NULL) {
            d->outside = true;
            d->outside_i = i;
            return NP_HOST_ALLOW;
        }
    }
    *allowed = true;
    return NP_HOST_ALLOW;
}

/* Fill q->reason for a host the allowlist does not hold. */
static void
not_allowed_reason(struct decision *d)
{
    struct np_host_query *q = d->q;
    char shown[48]; /* with the longest address, the longest reason fits q->reason */
    char text[INET6_ADDRSTRLEN];

    np_copy_printable(shown, sizeof(shown), q->norm, strlen(q->norm));
    if (np_hostfilter_is_empty(d->p->allow)) {
        (void)snprintf(q->reason, sizeof(q->reason),
                       "host %s denied: the allowlist is empty and strict_allowlist is set", shown);
    } else if (d->outside) {
        addr_text(&q->addrs.addr[d->outside_i], text, sizeof(text));
        (void)snprintf(q->reason, sizeof(q->reason),
                       "host %s is not in the allowlist (address %s is outside its ranges)", shown,
                       text);
    } else if (d->dns_failed && np_hostfilter_has_ranges(d->p->allow)) {
        (void)snprintf(q->reason, sizeof(q->reason),
                       "host %s is not in the allowlist (no DNS answer to match against its "
                       "ranges)",
                       shown);
    } else {
        (void)snprintf(q->reason, sizeof(q->reason), "host %s is not in the allowlist", shown);
    }
}

/* Ask the decide callback (or a grant it gave) about q's host:port. */
static enum np_host_verdict
ask(struct decision *d)
{
    struct np_host_query *q = d->q;
    struct nonoproxy_decide_query dq;
    enum np_decide_outcome o;
    char shown[64];
    bool v6 = strchr(q->norm, ':') != NULL;

    memset(&dq, 0, sizeof(dq));
    dq.host = q->norm;
    dq.port = q->port;
    dq.mode = q->mode;
    dq.method = q->method != NULL ? q->method : "CONNECT";
    o = np_decider_ask(d->p->decider, &dq);
    if (o == NP_DECIDE_ONCE || o == NP_DECIDE_SESSION) {
        (void)snprintf(q->note, sizeof(q->note), "%s by the decide callback",
                       o == NP_DECIDE_ONCE ? "allowed once" : "granted for the session");
        q->once = o == NP_DECIDE_ONCE;
        return NP_HOST_ALLOW;
    }
    np_copy_printable(shown, sizeof(shown), q->norm, strlen(q->norm));
    (void)snprintf(q->reason, sizeof(q->reason), "host %s%s%s:%u denied by the decide callback%s",
                   v6 ? "[" : "", shown, v6 ? "]" : "", (unsigned)q->port,
                   o == NP_DECIDE_LATE      ? " (no answer in time)"
                   : o == NP_DECIDE_STOPPED ? " (the proxy is shutting down)"
                   : o == NP_DECIDE_DENY    ? ""
                                            : " (out of memory)");
    return NP_HOST_DENY_DECIDED;
}

/* 5. A host no list allows: the decide callback when there is one; else allowed only when
 * the allowlist is empty and not strict. */
static enum np_host_verdict
ask_or_default(struct decision *d)
{
    enum np_host_verdict v;

    if (d->p->decider != NULL) {
        /* Resolve first (once): a name that resolves into denied_hosts, the hard deny list or
         * the proxy itself is refused without asking (SPEC §13: never asked about a denied
         * host). A failed lookup is a 502 without asking, except through the external proxy,
         * which resolves the name itself (SPEC §8). */
        if (!get_addrs(d)) {
            if (d->q->mode != NONOPROXY_MODE_EXTERNAL) {
                return NP_HOST_RESOLVE_FAILED;
            }
        } else {
            v = deny_by_addr(d);
            if (v == NP_HOST_ALLOW) {
                v = deny_self(d);
            }
            if (v != NP_HOST_ALLOW) {
                return v;
            }
        }
        return ask(d);
    }
    if (np_hostfilter_is_empty(d->p->allow) && !d->p->strict) {
        return NP_HOST_ALLOW;
    }
    not_allowed_reason(d);
    return NP_HOST_DENY_NOT_ALLOWED;
}

enum np_host_verdict
np_host_policy_decide(const struct np_host_policy *p, struct np_host_query *q)
{
    enum np_host_verdict v = NP_HOST_DENY_INVALID;
    struct decision d;
    bool allowed = false;

    memset(&d, 0, sizeof(d));
    d.p = p;
    d.q = q;
    memset(&q->addrs, 0, sizeof(q->addrs));
    q->norm[0] = '\0';
    q->reason[0] = '\0';
    q->note[0] = '\0';
    q->once = false;

    /* 1. Normalise; fail closed. */
    if (q->host == NULL || np_host_normalize(q->host, q->host_len, q->norm, sizeof(q->norm)) != 0) {
        q->norm[0] = '\0';
        invalid_reason(q);
        goto out;
    }
    /* 2. Names, before any DNS: the hard deny list, then denied_hosts. */
    v = deny_by_name(&d);
    if (v != NP_HOST_ALLOW) {
        goto out;
    }
    /* 3. A literal is its own only address: the address lists judge it now. */
    if (np_host_parse_ip(q->norm, &q->addrs.addr[0])) {
        set_port(&q->addrs.addr[0], q->port);
        d.n = 1;
        d.have_addrs = true;
        d.literal = true;
        v = deny_by_addr(&d);
        if (v != NP_HOST_ALLOW) {
            goto out;
        }
    }
    /* 4. The allowlist; 5. if it does not allow: a grant, the decide callback, the default. */
    v = allow_by_list(&d, &allowed);
    if (v == NP_HOST_ALLOW && !allowed) {
        v = ask_or_default(&d);
    }
    if (v != NP_HOST_ALLOW) {
        goto out;
    }
    /* 6. The addresses (resolved at most once), each against the hard deny list and
     * denied_hosts, then the proxy itself. */
    if (!get_addrs(&d)) {
        v = NP_HOST_RESOLVE_FAILED;
        goto out;
    }
    v = deny_by_addr(&d);
    if (v == NP_HOST_ALLOW) {
        v = deny_self(&d);
    }
out:
    if (v == NP_HOST_ALLOW) {
        q->addrs.n = d.n;
    } else {
        memset(&q->addrs, 0, sizeof(q->addrs));
        q->note[0] = '\0';
        q->once = false;
    }
    return v;
}

enum np_host_verdict
np_hostfilter_decide(const struct np_hostfilter *f, const struct np_resolver *r,
                     struct np_host_query *q)
{
    struct np_host_policy p;

    memset(&p, 0, sizeof(p));
    p.allow = f;
    p.resolver = r;
    return np_host_policy_decide(&p, q);
}
