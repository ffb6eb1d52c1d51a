/* The external (enterprise) proxy's configuration (SPEC §8): see config_external.h.
 *
 * Address syntax: "host:port", "user:password@host:port", "[v6]:port". The userinfo is taken
 * literally (no percent-decoding), split nowhere: "user:pass" is base64-encoded as written,
 * "user" without a colon as "user:" (an empty password). At most one '@'; no scheme ("http://"
 * is refused with a reason saying to write host:port), no path, no spaces or control
 * characters anywhere. Reasons for a refused address never quote any part of it: a misplaced
 * password could sit anywhere in the text. */
#include "config_external.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "diag.h"
#include "token.h"

#define ADDRESS_MAX 1024 /* longest accepted external proxy address */

static const char auth_prefix[] = "Proxy-Authorization: Basic ";

/* A parsed address. userinfo points into the address text: it is never copied here. */
struct ext_addr {
    char host[NP_HOST_BUF]; /* normalised */
    uint16_t port;
    const char *userinfo; /* NULL = none */
    size_t userinfo_len;
};

static bool
is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Whether s[0..len) starts with a URL scheme followed by "://" (RFC 3986 scheme syntax). */
static bool
has_scheme(const char *s, size_t len)
{
    size_t i = 1;

    if (len == 0 || !is_alpha(s[0])) {
        return false;
    }
    while (i < len && (is_alpha(s[i]) || (s[i] >= '0' && s[i] <= '9') || s[i] == '+' ||
                       s[i] == '-' || s[i] == '.')) {
        i++;
    }
    if (len < i + 3) {
        return false;
    }
    return memcmp(s + i, "://", 3) == 0;
}

/* Return why the characters of s[0..len) are unacceptable anywhere in an address, or NULL. */
static const char *
bad_chars(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) {
            return "control character in the address";
        }
        if (ch == ' ') {
            return "space in the address";
        }
    }
    return NULL;
}

/* Split "host:port" / "[v6]:port" at p[0..len) into a->host (normalised) and a->port.
 * Returns NULL or the reason it fails. */
static const char *
split_hostport(const char *p, size_t len, struct ext_addr *a)
{
    const char *colon;
    size_t host_len;

    if (len == 0) {
        return "missing host and port (write host:port)";
    }
    if (memchr(p, '/', len) != NULL) {
        return "'/' in the address (no scheme or path: write host:port)";
    }
    if (p[0] == '[') {
        const char *close = memchr(p, ']', len);
        if (close == NULL) {
            return "missing ']' after the IPv6 address";
        }
        colon = close + 1;
        if (colon == p + len) {
            return "missing port (write [v6]:port)";
        }
        if (*colon != ':') {
            return "unexpected text after ']'";
        }
    } else {
        colon = memrchr(p, ':', len);
        if (colon == NULL) {
            return "missing port (write host:port)";
        }
        if (memchr(p, ':', (size_t)(colon - p)) != NULL) {
            return "an IPv6 address needs brackets: [v6]:port";
        }
    }
    host_len = (size_t)(colon - p);
    if (host_len == 0) {
        return "empty host";
    }
    a->port = np_parse_port(colon + 1, len - host_len - 1);
    if (a->port == 0) {
        return "port must be a number from 1 to 65535";
    }
    if (np_host_normalize(p, host_len, a->host, sizeof(a->host)) != 0) {
        return p[0] == '[' ? "invalid IPv6 address in brackets" : "invalid host";
    }
    return NULL;
}

/* Parse and validate an external proxy address into *a. Returns NULL or a reason that quotes
 * nothing of the address. */
static const char *
parse_address(const char *address, struct ext_addr *a)
{
    const char *at;
    const char *why;
    size_t len;

    memset(a, 0, sizeof(*a));
    if (address == NULL || address[0] == '\0') {
        return "empty address";
    }
    len = strnlen(address, ADDRESS_MAX + 1);
    if (len > ADDRESS_MAX) {
        return "address too long";
    }
    why = bad_chars(address, len);
    if (why != NULL) {
        return why;
    }
    if (has_scheme(address, len)) {
        return "a URL scheme such as \"http://\" is not allowed (write host:port)";
    }
    at = memchr(address, '@', len);
    if (at == NULL) {
        return split_hostport(address, len, a);
    }
    if (memchr(at + 1, '@', len - (size_t)(at + 1 - address)) != NULL) {
        return "more than one '@' (the user name and password may not contain '@')";
    }
    if (at == address) {
        return "nothing before '@' (write user:password@host:port)";
    }
    a->userinfo = address;
    a->userinfo_len = (size_t)(at - address);
    return split_hostport(at + 1, len - a->userinfo_len - 1, a);
}

int
np_external_check(const char *address, char *why, size_t why_cap)
{
    struct ext_addr a;
    const char *reason = parse_address(address, &a);

    if (why != NULL && why_cap > 0) {
        why[0] = '\0';
        if (reason != NULL) {
            (void)snprintf(why, why_cap, "%s", reason);
        }
    }
    return reason == NULL ? 0 : -1;
}

/* Build e->auth_header from a->userinfo: "Proxy-Authorization: Basic <b64(user:pass)>\r\n".
 * The temporary "user:pass" copy is wiped. Returns 0, or -1 when out of memory. */
static int
build_auth(const struct ext_addr *a, struct np_external *e)
{
    bool colon = memchr(a->userinfo, ':', a->userinfo_len) != NULL;
    size_t cred_len = a->userinfo_len + (colon ? 0 : 1);
    size_t b64_len = (cred_len + 2) / 3 * 4;
    size_t plen = sizeof(auth_prefix) - 1;
    char *cred = np_malloc(cred_len);
    char *hdr = NULL;
    int rc = -1;

    if (cred == NULL) {
        goto out;
    }
    memcpy(cred, a->userinfo, a->userinfo_len);
    if (!colon) {
        cred[a->userinfo_len] = ':';
    }
    hdr = np_malloc(plen + b64_len + 3);
    if (hdr == NULL) {
        goto out;
    }
    memcpy(hdr, auth_prefix, plen);
    if (np_base64_encode(cred, cred_len, hdr + plen, b64_len + 1) != b64_len) {
        goto out;
    }
    memcpy(hdr + plen + b64_len, "\r\n", 3);
    e->auth_header = hdr;
    e->auth_header_len = plen + b64_len + 2;
    hdr = NULL; /* ownership moved to e */
    rc = 0;
out:
    np_secure_zero(cred, cred_len);
    np_free(cred);
    np_free(hdr); /* only on failure: nothing secret was completed in it */
    return rc;
}

enum nonoproxy_err
np_external_new(const char *address, const char *const *bypass, size_t n_bypass,
                struct np_external **out, struct nonoproxy_diag *diag)
{
    enum nonoproxy_err rc = NONOPROXY_ERR_INVALID_ARG;
    struct np_external *e = NULL;
    struct ext_addr a;
    const char *why;

    memset(&a, 0, sizeof(a));
    *out = NULL;
    if (address == NULL) {
        return NONOPROXY_OK; /* without a proxy everything goes direct: *out = NULL */
    }
    why = parse_address(address, &a);
    if (why != NULL) {
        np_diag_set(diag, rc, 0, "external_proxy: invalid address: %s", why);
        return rc;
    }
    rc = NONOPROXY_ERR_NOMEM;
    e = np_calloc(1, sizeof(*e));
    if (e == NULL) {
        goto nomem;
    }
    memcpy(e->host, a.host, sizeof(e->host));
    e->port = a.port;
    if (a.userinfo != NULL && build_auth(&a, e) != 0) {
        goto nomem;
    }
    if (np_hostfilter_new(bypass, n_bypass, &e->bypass) != 0) {
        goto nomem;
    }
    *out = e;
    return NONOPROXY_OK;
nomem:
    np_diag_set(diag, rc, ENOMEM, "external_proxy: out of memory");
    np_external_free(e);
    return rc;
}

void
np_external_free(struct np_external *e)
{
    if (e == NULL) {
        return;
    }
    if (e->auth_header != NULL) {
        np_secure_zero(e->auth_header, e->auth_header_len);
        np_free(e->auth_header);
    }
    np_hostfilter_free(e->bypass);
    np_free(e);
}

/* Whether ss is a loopback address: 127.0.0.0/8, ::1, or IPv4-mapped 127.0.0.0/8. */
static bool
addr_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)ss;
        return (ntohl(s4->sin_addr.s_addr) >> 24) == 127u;
    }
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
    }
    return false;
}

bool
np_external_bypassed(const struct np_external *e, const char *norm, uint16_t port,
                     const struct np_addrlist *resolved)
{
    struct sockaddr_storage ss;
    size_t i;

    if (e == NULL) {
        return true; /* no external proxy: everything goes direct */
    }
    if (norm == NULL) {
        return false;
    }
    if (strcmp(norm, "localhost") == 0) {
        return true;
    }
    if (np_host_parse_ip(norm, &ss)) {
        if (addr_is_loopback(&ss)) {
            return true;
        }
    }
    if (np_hostfilter_matches(e->bypass, norm, port)) {
        return true;
    }
    if (resolved == NULL || resolved->n == 0 || resolved->n > NP_MAX_ADDRS) {
        return false;
    }
    for (i = 0; i < resolved->n; i++) {
        if (!addr_is_loopback(&resolved->addr[i])) {
            return false;
        }
    }
    return true;
}

enum nonoproxy_audit_mode
np_external_mode(const struct np_external *e, const char *norm, uint16_t port,
                 enum nonoproxy_audit_mode direct)
{
    if (e == NULL || e->host[0] == '\0' || np_external_bypassed(e, norm, port, NULL)) {
        return direct;
    }
    return NONOPROXY_MODE_EXTERNAL;
}

bool
np_external_applies(const struct np_external *e, enum np_host_verdict v,
                    const struct np_host_query *q)
{
    if (e == NULL || e->host[0] == '\0') {
        return false;
    }
    if (v == NP_HOST_ALLOW) {
        return !np_external_bypassed(e, q->norm, q->port, &q->addrs);
    }
    return v == NP_HOST_RESOLVE_FAILED && !np_external_bypassed(e, q->norm, q->port, NULL);
}
