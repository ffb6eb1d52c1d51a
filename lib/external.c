/* The external (enterprise) proxy (SPEC §8), L2: its address, the bypass list, and the chained
 * CONNECT through it.
 *
 * Address syntax: "host:port", "user:password@host:port", "[v6]:port". The userinfo is taken
 * literally (no percent-decoding), split nowhere: "user:pass" is base64-encoded as written,
 * "user" without a colon as "user:" (an empty password). At most one '@'; no scheme ("http://"
 * is refused with a reason saying to write host:port), no path, no spaces or control
 * characters anywhere. Reasons for a refused address never quote any part of it: a misplaced
 * password could sit anywhere in the text.
 *
 * Without an external proxy, np_external_new still validates bypass_hosts (a malformed entry
 * is a start error) but returns NULL: a bypass list means nothing without a proxy, and a NULL
 * np_external means "always direct" (np_external_bypassed(NULL, ...) is true).
 *
 * Outcomes of np_external_connect (the caller maps them to statuses and audit categories):
 *   - name does not resolve, connection refused or reset (SPEC §8: an unreachable enterprise
 *     proxy is a 502 upstream_connect_failed) ⇒ NP_EXT_UNREACHABLE, "external proxy H:P
 *     unreachable: <errno text>";
 *   - the connect timeout ran out on every address that did not refuse (SPEC §3: 504 on every
 *     path) ⇒ NP_EXT_TIMEOUT, "external proxy H:P unreachable: connect timed out";
 *   - accepted the connection, then closed it without a byte of answer ⇒ NP_EXT_REJECTED with
 *     status 0, "external proxy H:P closed the connection without answering": it is reachable
 *     and refused to serve us (many proxies close on an ACL deny);
 *   - an answer that is not "HTTP/1.x NNN ..." (checked as soon as the first bytes arrive), a
 *     head over 16 KiB, a bare CR or NUL in it, or a close in the middle of it ⇒ NP_EXT_REJECTED,
 *     status 0, "external proxy H:P sent a malformed answer";
 *   - a well-formed non-2xx status ⇒ NP_EXT_REJECTED, status NNN,
 *     "external proxy H:P answered NNN <reason phrase>" (printable, at most 63 characters);
 *   - no complete answer head within answer_timeout_ms ⇒ NP_EXT_TIMEOUT,
 *     "external proxy H:P did not answer in time";
 *   - the stop descriptor became readable ⇒ NP_EXT_STOPPED.
 * A 2xx CONNECT answer has no body: every byte after its head belongs to the tunnel and is
 * returned in t->early. At most 16 KiB is read in all, so an early_cap of 16 KiB always
 * suffices; with less, and more early bytes than fit, the tunnel is refused (REJECTED, status
 * 0, "sent too much data after its answer") rather than losing bytes. */
#include "external.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "http_head.h"
#include "http_response.h"
#include "net.h"
#include "token.h"

#define ADDRESS_MAX  1024  /* longest accepted external proxy address */
#define ANSWER_MAX   16384 /* the enterprise proxy's answer head, and our request */
#define SHOWN_HOST   64    /* host as shown in reasons (truncated with "...") */
#define SHOWN_PHRASE 64    /* reason phrase as shown in reasons */
#define ENTRY_BUF    (NP_HOST_BUF + 16)

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

/* Re-validate every bypass entry (the list may have been filled by hand). */
static enum nonoproxy_err
check_bypass(const struct nonoproxy_config *cfg, struct nonoproxy_diag *diag)
{
    char norm[ENTRY_BUF];
    char why[128];
    char shown[96];
    size_t i;

    if (cfg->bypass_hosts_len > 0 && cfg->bypass_hosts == NULL) {
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0, "bypass_hosts: NULL list");
        return NONOPROXY_ERR_INVALID_ARG;
    }
    for (i = 0; i < cfg->bypass_hosts_len; i++) {
        const char *e = cfg->bypass_hosts[i];
        if (e == NULL || np_host_entry_normalize(e, norm, sizeof(norm), why, sizeof(why)) != 0) {
            np_copy_printable(shown, sizeof(shown), e == NULL ? "" : e, e == NULL ? 0 : strlen(e));
            np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0,
                        "bypass_hosts[%zu]: invalid entry '%s': %s", i, shown,
                        e == NULL ? "NULL" : why);
            return NONOPROXY_ERR_INVALID_ARG;
        }
    }
    return NONOPROXY_OK;
}

enum nonoproxy_err
np_external_new(const struct nonoproxy_config *cfg, struct np_external **out,
                struct nonoproxy_diag *diag)
{
    enum nonoproxy_err rc = NONOPROXY_ERR_INVALID_ARG;
    struct np_external *e = NULL;
    const char *address;
    struct ext_addr a;
    const char *why;

    memset(&a, 0, sizeof(a));
    if (cfg == NULL || out == NULL) {
        np_diag_set(diag, rc, 0, "external_proxy: NULL argument");
        return rc;
    }
    address = cfg->external_proxy;
    if (address != NULL) {
        why = parse_address(address, &a);
        if (why != NULL) {
            np_diag_set(diag, rc, 0, "external_proxy: invalid address: %s", why);
            goto out;
        }
    }
    rc = check_bypass(cfg, diag);
    if (rc != NONOPROXY_OK || address == NULL) {
        goto out; /* without a proxy everything goes direct: *out = NULL */
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
    if (np_hostfilter_new((const char *const *)cfg->bypass_hosts, cfg->bypass_hosts_len,
                          &e->bypass) != 0) {
        goto nomem;
    }
    rc = NONOPROXY_OK;
    goto out;
nomem:
    np_diag_set(diag, rc, ENOMEM, "external_proxy: out of memory");
out:
    if (rc == NONOPROXY_OK) {
        *out = e;
        e = NULL; /* ownership moved to the caller */
    }
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

void
np_config_external_free(struct nonoproxy_config *cfg)
{
    size_t i;

    if (cfg == NULL) {
        return;
    }
    np_free_secret(cfg->external_proxy);
    cfg->external_proxy = NULL;
    for (i = 0; i < cfg->bypass_hosts_len && cfg->bypass_hosts != NULL; i++) {
        np_free(cfg->bypass_hosts[i]);
    }
    np_free(cfg->bypass_hosts);
    cfg->bypass_hosts = NULL;
    cfg->bypass_hosts_len = 0;
}

enum nonoproxy_err
nonoproxy_config_set_external_proxy(struct nonoproxy_config *cfg, const char *address,
                                    struct nonoproxy_diag *diag)
{
    char why[128];
    char *copy;

    if (cfg == NULL) {
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0, "external_proxy: NULL config");
        return NONOPROXY_ERR_INVALID_ARG;
    }
    if (address != NULL && np_external_check(address, why, sizeof(why)) != 0) {
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0, "external_proxy: invalid address: %s", why);
        return NONOPROXY_ERR_INVALID_ARG;
    }
    copy = NULL;
    if (address != NULL) {
        copy = np_strdup(address);
        if (copy == NULL) {
            np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "external_proxy: out of memory");
            return NONOPROXY_ERR_NOMEM;
        }
    }
    np_free_secret(cfg->external_proxy); /* the old address may hold a password */
    cfg->external_proxy = copy;
    return NONOPROXY_OK;
}

enum nonoproxy_err
nonoproxy_config_add_bypass_host(struct nonoproxy_config *cfg, const char *host,
                                 struct nonoproxy_diag *diag)
{
    char norm[ENTRY_BUF];
    char why[128];
    char shown[96];
    char *copy;
    char **grown;

    if (cfg == NULL || host == NULL) {
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0, "bypass_hosts: NULL entry");
        return NONOPROXY_ERR_INVALID_ARG;
    }
    if (np_host_entry_normalize(host, norm, sizeof(norm), why, sizeof(why)) != 0) {
        np_copy_printable(shown, sizeof(shown), host, strlen(host));
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0, "bypass_hosts: invalid entry '%s': %s",
                    shown, why);
        return NONOPROXY_ERR_INVALID_ARG;
    }
    copy = np_strdup(norm);
    if (copy == NULL) {
        goto nomem;
    }
    grown = np_realloc(cfg->bypass_hosts, (cfg->bypass_hosts_len + 1) * sizeof(*grown));
    if (grown == NULL) {
        np_free(copy);
        goto nomem;
    }
    grown[cfg->bypass_hosts_len] = copy;
    cfg->bypass_hosts = grown;
    cfg->bypass_hosts_len++;
    return NONOPROXY_OK;
nomem:
    np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "bypass_hosts: out of memory");
    return NONOPROXY_ERR_NOMEM;
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

/* ---------------------------------------------------------------------------------------- */
/* np_external_connect                                                                      */
/* ---------------------------------------------------------------------------------------- */

/* State of one chained CONNECT. */
struct chain {
    const struct np_external *e;
    int stop_fd;
    char who[SHOWN_HOST + 24]; /* "external proxy H:P" */
    char *buf;                 /* ANSWER_MAX bytes: first our request, then the answer */
    size_t got;                /* answer bytes received */
    size_t head_len;           /* length of the answer head once complete */
    struct np_ext_tunnel *t;
};

/* Write "external proxy H:P" (or "[v6]:P") into c->who, the host shown printable and
 * truncated to SHOWN_HOST. */
static void
format_who(struct chain *c)
{
    char shown[SHOWN_HOST];
    bool v6 = strchr(c->e->host, ':') != NULL;

    np_copy_printable(shown, sizeof(shown), c->e->host, strlen(c->e->host));
    (void)snprintf(c->who, sizeof(c->who), "external proxy %s%s%s:%u", v6 ? "[" : "", shown,
                   v6 ? "]" : "", (unsigned)c->e->port);
}

/* Set t->reason to "<who> <what>". */
static void
set_reason(struct chain *c, const char *what)
{
    (void)snprintf(c->t->reason, sizeof(c->t->reason), "%s %s", c->who, what);
}

/* Set t->reason to "<who> unreachable: <errno text>". */
static void
set_unreachable(struct chain *c, int err)
{
    (void)snprintf(c->t->reason, sizeof(c->t->reason), "%s unreachable: %s", c->who,
                   NP_ERRSTR(err));
}

/* Resolve the enterprise proxy into addrs (its configured port set on each). Returns the
 * number of addresses, 0 with t->reason set on failure. */
static size_t
resolve_proxy(struct chain *c, const struct np_resolver *r, struct sockaddr_storage *addrs)
{
    size_t count = 0;
    size_t i;

    if (np_host_parse_ip(c->e->host, &addrs[0])) {
        count = 1;
    } else {
        int rc;

        if (r != NULL && r->fn != NULL) {
            rc = r->fn(r->userdata, c->e->host, c->e->port, addrs, NP_MAX_ADDRS, &count);
        } else {
            rc = np_net_resolve(NULL, c->e->host, c->e->port, addrs, NP_MAX_ADDRS, &count);
        }
        if (rc != 0 || count == 0) {
            set_reason(c, rc != 0 ? "unreachable: its name does not resolve"
                                  : "unreachable: its name has no address");
            return 0;
        }
        if (count > NP_MAX_ADDRS) {
            count = NP_MAX_ADDRS; /* never trust more than the array holds */
        }
    }
    for (i = 0; i < count; i++) {
        np_sockaddr_set_port(&addrs[i], c->e->port);
    }
    return count;
}

/* Connect to each address of the enterprise proxy in turn. On NP_EXT_OK *fd is connected. */
static enum np_ext_result
connect_proxy(struct chain *c, const struct np_resolver *r, uint32_t timeout_ms, int *fd)
{
    struct sockaddr_storage addrs[NP_MAX_ADDRS];
    size_t n = resolve_proxy(c, r, addrs);
    enum np_io io;
    int err = 0;

    if (n == 0) {
        return NP_EXT_UNREACHABLE;
    }
    io = np_net_connect_any(addrs, n, timeout_ms, c->stop_fd, fd, &err);
    switch (io) {
    case NP_IO_OK:
        return NP_EXT_OK;
    case NP_IO_STOPPED:
        set_reason(c, "abandoned: shutting down");
        return NP_EXT_STOPPED;
    case NP_IO_TIMEOUT:
        /* SPEC §3: the connect timeout running out is a 504 on every path. */
        set_reason(c, "unreachable: connect timed out");
        return NP_EXT_TIMEOUT;
    case NP_IO_EOF:
    case NP_IO_ERR:
        break;
    }
    /* SPEC §8: an enterprise proxy that refuses or cannot be reached is a 502. */
    set_unreachable(c, err != 0 ? err : ECONNREFUSED);
    return NP_EXT_UNREACHABLE;
}

/* Map a failed send or receive to a result and a reason. */
static enum np_ext_result
io_failure(struct chain *c, enum np_io io, int err)
{
    if (io == NP_IO_TIMEOUT) {
        set_reason(c, "did not answer in time");
        return NP_EXT_TIMEOUT;
    }
    if (io == NP_IO_STOPPED) {
        set_reason(c, "abandoned: shutting down");
        return NP_EXT_STOPPED;
    }
    if (io == NP_IO_EOF) {
        set_reason(c, c->got == 0 ? "closed the connection without answering"
                                  : "sent a malformed answer");
        return NP_EXT_REJECTED;
    }
    set_unreachable(c, err != 0 ? err : EIO);
    return NP_EXT_UNREACHABLE;
}

/* Send "CONNECT target HTTP/1.1" with Host and the optional Proxy-Authorization on fd. The
 * request (which may hold the credentials) is wiped from c->buf afterwards. */
static enum np_ext_result
send_connect(struct chain *c, int fd, const char *target, uint64_t deadline)
{
    const struct np_external *e = c->e;
    enum np_ext_result res = NP_EXT_OK;
    struct np_buf b;
    enum np_io io;

    np_buf_init(&b, c->buf, ANSWER_MAX);
    np_buf_puts(&b, "CONNECT ");
    np_buf_puts(&b, target);
    np_buf_puts(&b, " HTTP/1.1\r\nHost: ");
    np_buf_puts(&b, target);
    np_buf_puts(&b, "\r\n");
    if (e->auth_header != NULL) {
        np_buf_put(&b, e->auth_header, e->auth_header_len);
    }
    np_buf_puts(&b, "\r\n");
    if (!np_buf_ok(&b)) {
        set_reason(c, "cannot be asked: request too long");
        res = NP_EXT_REJECTED;
        goto out;
    }
    io = np_net_send_all(fd, b.p, b.len, c->stop_fd, deadline);
    if (io != NP_IO_OK) {
        res = io_failure(c, io, errno);
    }
out:
    np_secure_zero(c->buf, ANSWER_MAX); /* wipe the Proxy-Authorization header */
    return res;
}

/* Read the answer head into c->buf (c->got bytes, c->head_len once complete). */
static enum np_ext_result
read_answer(struct chain *c, int fd, uint64_t deadline)
{
    size_t n = 0;

    for (;;) {
        enum np_io io;
        enum np_head_scan scan;

        if (c->got == ANSWER_MAX) {
            break; /* head over the cap */
        }
        io = np_net_recv(fd, c->buf + c->got, ANSWER_MAX - c->got, &n, c->stop_fd, deadline);
        if (io != NP_IO_OK) {
            return io_failure(c, io, errno);
        }
        c->got += n;
        if (!np_head_status_prefix_ok(c->buf, c->got)) {
            break;
        }
        scan = np_head_scan(c->buf, c->got, &c->head_len);
        if (scan == NP_HEAD_COMPLETE) {
            return NP_EXT_OK;
        }
        if (scan != NP_HEAD_NEED_MORE) {
            break;
        }
    }
    set_reason(c, "sent a malformed answer");
    return NP_EXT_REJECTED;
}

/* The reason phrase of the status line of a head np_http_resp_parse accepted. */
static struct np_slice
reason_phrase(const char *head, size_t head_len)
{
    struct np_slice line = {head, 0};
    struct np_slice phrase = {head, 0};
    size_t pos = 0;

    while (pos < head_len && (head[pos] == '\r' || head[pos] == '\n')) {
        pos++;
    }
    if (np_head_next_line(head, head_len, &pos, &line) && line.len > 13) {
        phrase.p = line.p + 13; /* after "HTTP/1.x NNN " */
        phrase.len = line.len - 13;
    }
    return phrase;
}

/* Judge the complete answer head in c->buf, read with the same grammar as every response
 * (http_response.c): 2xx ⇒ OK with the early bytes copied out. */
static enum np_ext_result
judge_answer(struct chain *c)
{
    struct np_ext_tunnel *t = c->t;
    struct np_http_resp resp;
    struct np_slice phrase;
    char shown[SHOWN_PHRASE];
    size_t early = c->got - c->head_len;
    size_t i;

    if (np_http_resp_parse(c->buf, c->head_len, &resp, NULL) != 0) {
        set_reason(c, "sent a malformed answer");
        return NP_EXT_REJECTED;
    }
    t->status = resp.status;
    phrase = reason_phrase(c->buf, c->head_len);
    np_copy_printable(shown, sizeof(shown), phrase.p, phrase.len);
    for (i = 0; shown[i] != '\0'; i++) {
        if ((unsigned char)shown[i] >= 0x80) {
            shown[i] = '?'; /* one line of ASCII for the audit and the 502 body */
        }
    }
    (void)snprintf(t->reason, sizeof(t->reason), "%s answered %u%s%s", c->who, t->status,
                   shown[0] != '\0' ? " " : "", shown);
    if (t->status < 200 || t->status > 299) {
        return NP_EXT_REJECTED;
    }
    if (early > 0 && (t->early == NULL || early > t->early_cap)) {
        t->status = 0;
        set_reason(c, "sent too much data after its answer");
        return NP_EXT_REJECTED;
    }
    if (early > 0) {
        memcpy(t->early, c->buf + c->head_len, early);
    }
    t->early_len = early;
    return NP_EXT_OK;
}

/* Normalise the target host and write "host:port" / "[v6]:port" into out. Returns 0 or -1. */
static int
format_target(const char *host, uint16_t port, char *out, size_t cap)
{
    char norm[NP_HOST_BUF];
    bool v6;
    int n;

    if (host == NULL || port == 0 ||
        np_host_normalize(host, strlen(host), norm, sizeof(norm)) != 0) {
        return -1;
    }
    v6 = strchr(norm, ':') != NULL;
    n = snprintf(out, cap, "%s%s%s:%u", v6 ? "[" : "", norm, v6 ? "]" : "", (unsigned)port);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

enum np_ext_result
// NOLINTNEXTLINE(readability-function-size): the signature is fixed by external.h
np_external_connect(const struct np_external *e, const struct np_resolver *r, const char *host,
                    uint16_t port, uint32_t connect_timeout_ms, uint32_t answer_timeout_ms,
                    int stop_fd, struct np_ext_tunnel *t)
{
    enum np_ext_result res = NP_EXT_UNREACHABLE;
    struct chain c;
    char target[NP_HOST_BUF + 8];
    uint64_t deadline;
    int fd = -1;

    memset(&c, 0, sizeof(c));
    c.e = e;
    c.stop_fd = stop_fd;
    c.t = t;
    t->fd = -1;
    t->status = 0;
    t->early_len = 0;
    if (e == NULL || e->port == 0) {
        (void)snprintf(t->reason, sizeof(t->reason), "no external proxy configured");
        return NP_EXT_UNREACHABLE;
    }
    format_who(&c);
    t->reason[0] = '\0';
    if (format_target(host, port, target, sizeof(target)) != 0) {
        set_reason(&c, "not asked: invalid target host or port");
        return NP_EXT_REJECTED;
    }
    c.buf = np_malloc(ANSWER_MAX);
    if (c.buf == NULL) {
        set_unreachable(&c, ENOMEM);
        goto out;
    }
    res = connect_proxy(&c, r, connect_timeout_ms, &fd);
    if (res != NP_EXT_OK) {
        goto out;
    }
    deadline = np_deadline(answer_timeout_ms);
    res = send_connect(&c, fd, target, deadline);
    if (res == NP_EXT_OK) {
        res = read_answer(&c, fd, deadline);
    }
    if (res == NP_EXT_OK) {
        res = judge_answer(&c);
    }
out:
    if (res == NP_EXT_OK) {
        t->fd = fd;
        fd = -1; /* ownership moved to the caller */
    }
    np_net_close(fd);
    np_free(c.buf);
    return res;
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
