/* libFuzzer target: host filtering (SPEC §3, §8): np_host_normalize, np_host_entry_normalize
 * and np_hostfilter_new over fuzzed allowlist entries, the bypass list of an external proxy
 * (np_external_check, np_external_new, np_external_bypassed, np_external_applies), and the
 * whole decision np_hostfilter_decide with a resolver returning fuzzed addresses.
 * Input: bytes 0-1 the port, byte 2 flags; then lines (LF): the host, then allowlist entries
 * up to an empty line; the bytes after it are the resolver's answer, each address one byte
 * (even: IPv4, odd: IPv6) and then its 4 or 16 bytes.
 * Property: no address on the hard deny list of SPEC §3 (169.254.0.0/16 with the metadata
 * address, 100.100.100.200, 192.0.0.192, fe80::/10, fd00:ec2::254, and each IPv4 one embedded
 * in IPv6: mapped, compatible, NAT64 64:ff9b::/96, 6to4 2002::/16) is ever allowed, however the
 * host spells it or the resolver returns it; the classifier here is written independently of
 * hostfilter.c and must agree with np_addr_is_hard_denied. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <nonoproxy/config.h>
#include <nonoproxy/error.h>

#include "config_external.h"
#include "hostfilter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT   4096
#define MAX_ENTRIES 8

static bool
v4_denied(uint32_t a)
{
    return (a >> 16) == ((169u << 8) | 254u) ||
           a == ((100u << 24) | (100u << 16) | (100u << 8) | 200u) || a == ((192u << 24) | 192u);
}

static uint32_t
be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static bool
v6_denied(const uint8_t *b)
{
    static const uint8_t aws[16] = {0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
    static const uint8_t zero[12] = {0};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) {
        return true;
    }
    if (memcmp(b, aws, 16) == 0) {
        return true;
    }
    if (memcmp(b, zero, 10) == 0 &&
        ((b[10] == 0xff && b[11] == 0xff) || (b[10] == 0 && b[11] == 0))) {
        return v4_denied(be32(b + 12));
    }
    if (memcmp(b, nat64, 12) == 0) {
        return v4_denied(be32(b + 12));
    }
    return b[0] == 0x20 && b[1] == 0x02 && v4_denied(be32(b + 2));
}

/* The independent classifier, checked against the library's. */
static bool
denied(const struct sockaddr_storage *ss)
{
    bool d;

    if (ss->ss_family == AF_INET) {
        d = v4_denied(ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr));
    } else if (ss->ss_family == AF_INET6) {
        d = v6_denied(((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr);
    } else {
        abort();
    }
    if (d != np_addr_is_hard_denied((const struct sockaddr *)ss)) {
        abort();
    }
    return d;
}

/* The resolver: the addresses after the entry lines. */
struct answer {
    const uint8_t *p;
    size_t len;
    bool fail;
    unsigned calls;
};

static int
resolve(void *userdata, const char *host, uint16_t port, struct nonoproxy_addrs *out)
{
    struct answer *a = userdata;
    size_t i = 0;

    (void)host;
    a->calls++;
    out->count = 0;
    if (a->fail) {
        return -1;
    }
    while (i < a->len && out->count < out->max) {
        struct sockaddr_storage *ss = &out->addrs[out->count];
        size_t need = (a->p[i] & 1u) ? 16u : 4u;

        if (a->len - i - 1 < need) {
            break;
        }
        memset(ss, 0, sizeof(*ss));
        if (need == 4) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

            s4->sin_family = AF_INET;
            s4->sin_port = htons(port);
            memcpy(&s4->sin_addr, a->p + i + 1, 4);
        } else {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons(port);
            memcpy(&s6->sin6_addr, a->p + i + 1, 16);
        }
        out->count++;
        i += 1 + need;
    }
    return 0;
}

/* Whether the raw host, read by the C library as an address literal, is hard denied. */
static bool
literal_denied(const char *host)
{
    struct sockaddr_storage ss;
    char buf[128];
    size_t n = strlen(host);

    memset(&ss, 0, sizeof(ss));
    if (inet_aton(host, &((struct sockaddr_in *)&ss)->sin_addr)) {
        ss.ss_family = AF_INET;
        return denied(&ss);
    }
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(buf)) {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        host = buf;
    }
    if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ss.ss_family = AF_INET6;
        return denied(&ss);
    }
    return false;
}

/* Split data at the next LF into a NUL-terminated copy; advances *pos. NULL at the end. */
static char *
next_line(const uint8_t *data, size_t size, size_t *pos)
{
    const uint8_t *nl;
    size_t n;
    char *s;

    if (*pos >= size) {
        return NULL;
    }
    nl = memchr(data + *pos, '\n', size - *pos);
    n = nl != NULL ? (size_t)(nl - (data + *pos)) : size - *pos;
    s = malloc(n + 1);
    if (s == NULL) {
        abort();
    }
    memcpy(s, data + *pos, n);
    s[n] = '\0';
    *pos += n + (nl != NULL ? 1u : 0u);
    return s;
}

static void
decide(const uint8_t *data, size_t size, const char *host, const char *const *entries,
       size_t n_entries, const struct answer *tmpl)
{
    struct np_hostfilter *f = NULL;
    struct np_external *ext = NULL;
    struct nonoproxy_diag diag;
    struct np_host_query *q = calloc(1, sizeof(*q));
    struct sockaddr_storage self;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&self;
    struct answer ans = *tmpl;
    struct np_resolver r = {resolve, &ans};
    enum np_host_verdict v;
    size_t i;

    if (q == NULL || np_hostfilter_new(entries, n_entries, &f) != 0) {
        abort();
    }
    memset(&self, 0, sizeof(self));
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s4->sin_port = htons(3128);
    q->host = host;
    q->host_len = strlen(host);
    q->port = (uint16_t)(data[0] << 8 | data[1]);
    q->self = (data[2] & 2u) ? &self : NULL;
    v = np_hostfilter_decide(f, &r, q);
    if (v == NP_HOST_ALLOW) {
        if (q->addrs.n == 0 || q->addrs.n > NP_MAX_ADDRS) {
            abort();
        }
        for (i = 0; i < q->addrs.n; i++) {
            if (denied(&q->addrs.addr[i])) {
                abort(); /* a hard-denied address allowed */
            }
        }
        if (literal_denied(host)) {
            abort();
        }
    } else if (q->addrs.n != 0) {
        abort();
    }
    (void)np_hostfilter_matches(f, q->norm, q->port);

    memset(&diag, 0, sizeof(diag));
    if (np_external_new("127.0.0.1:3128", entries, n_entries, &ext, &diag) == NONOPROXY_OK &&
        ext != NULL) {
        (void)np_external_bypassed(ext, q->norm, q->port, v == NP_HOST_ALLOW ? &q->addrs : NULL);
        (void)np_external_applies(ext, v, q);
        np_external_free(ext);
    }
    np_hostfilter_free(f);
    free(q);
    (void)size;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *host;
    char *entries[MAX_ENTRIES];
    char norm[MAX_ENTRIES][NP_HOST_BUF];
    const char *valid[MAX_ENTRIES];
    size_t n_lines = 0;
    size_t n_valid = 0;
    size_t pos = 3;
    struct answer ans;
    char buf[NP_HOST_BUF];
    char why[128];
    struct sockaddr_storage ss;
    size_t i;

    if (size < 3 || size > MAX_INPUT) {
        return -1;
    }
    host = next_line(data, size, &pos);
    if (host == NULL) {
        return 0;
    }
    while (n_lines < MAX_ENTRIES) {
        char *e = next_line(data, size, &pos);

        if (e == NULL) {
            break;
        }
        if (e[0] == '\0') {
            free(e);
            break;
        }
        entries[n_lines++] = e;
    }
    for (i = 0; i < n_lines; i++) {
        if (np_host_entry_normalize(entries[i], norm[n_valid], NP_HOST_BUF, why, sizeof(why)) ==
            0) {
            valid[n_valid] = norm[n_valid];
            n_valid++;
        }
        (void)np_external_check(entries[i], why, sizeof(why));
    }
    if (np_host_normalize(host, strlen(host), buf, sizeof(buf)) == 0 &&
        np_host_parse_ip(buf, &ss)) {
        (void)denied(&ss);
    }
    ans.p = data + pos;
    ans.len = size - pos;
    ans.fail = (data[2] & 1u) != 0;
    ans.calls = 0;
    decide(data, size, host, valid, n_valid, &ans);
    for (i = 0; i < n_lines; i++) {
        free(entries[i]);
    }
    free(host);
    return 0;
}
