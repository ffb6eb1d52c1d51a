/* HTTP/1.x request heads (SPEC §1.2): the request line, the request-target alphabet, the
 * refused methods and the CONNECT authority; the rest of the grammar is http_head.c's. */
#include "http_request.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

/* Longest "HTTP/x.y" we accept, and the longest IPv6 literal we copy for inet_pton. */
#define VERSION_LEN 8
#define V6_BUF      64

static const char why_request_line[] = "malformed request line";
static const char why_version[] = "unsupported HTTP version";
static const char why_target[] = "invalid character in the request target";
static const char why_trace[] = "TRACE and TRACK are not allowed";
static const char why_head[] = "malformed request head";
static const char why_authority[] = "invalid CONNECT authority";

/* Whether ch may stand in a request-target as sent (SPEC §1.2, RFC 9112 §3.2): no control
 * byte, SP, HTAB, '#' (a fragment is never sent), '\' (some servers take it for '/') or byte
 * >= 0x80 (real clients percent-encode all of these). "<>^`{|} pass unchanged. */
static bool
is_target_byte(char ch)
{
    unsigned char c = (unsigned char)ch;

    return c > 0x20 && c < 0x7f && c != '#' && c != '\\';
}

/* Check the request line "method SP target SP HTTP/d.d": exactly two single spaces, non-empty
 * parts, version 1.0 or 1.1, and the target alphabet. http-parser is more lenient (several
 * spaces, HTTP/0.9, '#' and HTAB in the target). */
static const char *
check_request_line(const struct np_slice *l, struct np_head_view *v)
{
    const char *sp1 = memchr(l->p, ' ', l->len);
    const char *end = l->p + l->len;
    const char *sp2;
    const char *ver;
    size_t i;

    if (sp1 == NULL || sp1 == l->p) {
        return why_request_line;
    }
    sp2 = memchr(sp1 + 1, ' ', (size_t)(end - (sp1 + 1)));
    if (sp2 == NULL || sp2 == sp1 + 1) {
        return why_request_line;
    }
    ver = sp2 + 1;
    if (end - ver != VERSION_LEN || memcmp(ver, "HTTP/", 5) != 0 || ver[5] < '0' || ver[5] > '9' ||
        ver[6] != '.' || ver[7] < '0' || ver[7] > '9') {
        return why_request_line;
    }
    v->method.p = l->p;
    v->method.len = (size_t)(sp1 - l->p);
    v->target.p = sp1 + 1;
    v->target.len = (size_t)(sp2 - (sp1 + 1));
    v->major = (unsigned short)(ver[5] - '0');
    v->minor = (unsigned short)(ver[7] - '0');
    if (v->major != 1 || (v->minor != 0 && v->minor != 1)) {
        return why_version;
    }
    for (i = 0; i < v->target.len; i++) {
        if (!is_target_byte(v->target.p[i])) {
            return why_target;
        }
    }
    return NULL;
}

/* Whether the method of v is TRACE or TRACK (methods are case-sensitive): a proxy that
 * injects credentials must never let an upstream echo a request back (SPEC §1.2). */
static bool
is_trace(const struct np_head_view *v)
{
    return v->method.len == 5 &&
           (memcmp(v->method.p, "TRACE", 5) == 0 || memcmp(v->method.p, "TRACK", 5) == 0);
}

/* Read the request line and the framing headers of head ourselves (the visible smuggling
 * rules of SPEC §1.2). Returns NULL if acceptable, else the reason; *status is the answer
 * for it: 405 for TRACE/TRACK, 501 for a transfer coding other than chunked, else 400. */
static const char *
check_own_rules(const char *head, size_t head_len, struct np_head_view *v, int *status)
{
    size_t pos = 0;
    struct np_slice l;
    const char *why = NULL;
    bool unsupported = false;

    *status = 400;
    while (pos < head_len && (head[pos] == '\r' || head[pos] == '\n')) {
        pos++; /* leading empty lines, already capped by np_head_scan */
    }
    if (!np_head_next_line(head, head_len, &pos, &l)) {
        return why_request_line;
    }
    why = check_request_line(&l, v);
    if (why == NULL && is_trace(v)) {
        *status = 405; /* whatever its headers: nothing of it goes anywhere */
        return why_trace;
    }
    while (why == NULL && np_head_next_line(head, head_len, &pos, &l)) {
        why = np_head_check_field(&l, v);
    }
    if (why == NULL) {
        why = np_head_check_framing(v, true, &unsupported);
        if (unsupported) {
            *status = 501; /* "gzip, chunked": re-framing would drop gzip (SPEC §1.2) */
        }
    }
    return why;
}

/* Whether m[0..len) may be recorded as the method of a refused head: a method http-parser
 * knows, or TRACK (refused by name). An arbitrary first word could carry a piece of the
 * token (SPEC §9). */
static bool
is_known_method(const char *m, size_t len)
{
    return np_http_method_known(m, len) || (len == 5 && memcmp(m, "TRACK", 5) == 0);
}

/* After a refusal, keep in the zeroed req what our own reading of a well-formed request line
 * found (a known method name, the target), so that the refusal can be audited with them. */
static void
keep_request_line(struct np_http_req *req, const struct np_head_view *v)
{
    if (v->target.p == NULL) {
        return;
    }
    if (v->method.len < sizeof(req->method_name) && is_known_method(v->method.p, v->method.len)) {
        memcpy(req->method_name, v->method.p, v->method.len);
        req->method_name[v->method.len] = '\0';
    }
    req->target = v->target.p;
    req->target_len = v->target.len;
}

/* Fill req's method from http-parser's method number. */
static void
set_method(struct np_http_req *req, unsigned method)
{
    static const struct {
        const char *name;
        enum np_method m;
    } kinds[] = {{"CONNECT", NP_METHOD_CONNECT},
                 {"GET", NP_METHOD_GET},
                 {"HEAD", NP_METHOD_HEAD},
                 {"POST", NP_METHOD_POST}};
    const char *name = np_http_method_name(method);
    size_t n = strlen(name);
    size_t i;

    if (n >= sizeof(req->method_name)) {
        n = sizeof(req->method_name) - 1;
    }
    memcpy(req->method_name, name, n);
    req->method_name[n] = '\0';
    req->method = NP_METHOD_OTHER;
    for (i = 0; i < NP_ARRAY_LEN(kinds); i++) {
        if (strcmp(name, kinds[i].name) == 0) {
            req->method = kinds[i].m;
        }
    }
}

/* Check that a CONNECT request-target is an authority np_split_authority accepts. */
static bool
connect_target_ok(const struct np_http_req *req)
{
    const char *host = NULL;
    size_t host_len = 0;
    uint16_t port = 0;

    return np_split_authority(req->target, req->target_len, &host, &host_len, &port) == 0;
}

/* Parse a complete head: re-check the caps, apply our own rules, run http-parser, insist that
 * both agree. */
int
np_http_req_parse(const char *head, size_t head_len, struct np_http_req *req, const char **why)
{
    struct np_head_view own;
    struct np_head_parsed parsed;
    int status = 400;
    const char *reason = why_head;

    memset(req, 0, sizeof(*req));
    memset(&own, 0, sizeof(own));
    memset(&parsed, 0, sizeof(parsed));
    parsed.hs.headers = req->headers;
    parsed.hs.n = &req->n_headers;
    if (!np_head_whole(head, head_len)) {
        goto out;
    }
    reason = check_own_rules(head, head_len, &own, &status);
    if (reason != NULL) {
        goto out;
    }
    status = 400;
    reason = np_head_parse_agreed(true, head, head_len, &own, &parsed);
    if (reason != NULL) {
        goto out;
    }
    set_method(req, parsed.method);
    req->target = parsed.target.p;
    req->target_len = parsed.target.len;
    req->http_major = parsed.major;
    req->http_minor = parsed.minor;
    req->keep_alive = parsed.keep_alive;
    req->has_content_length = own.has_cl;
    req->content_length = own.cl;
    req->chunked = own.chunked;
    if (req->method == NP_METHOD_CONNECT && !connect_target_ok(req)) {
        reason = why_authority; /* http-parser 2.9 lets "CONNECT /" through */
    }
out:
    if (reason != NULL) {
        memset(req, 0, sizeof(*req));
        keep_request_line(req, &own);
    }
    if (why != NULL) {
        *why = reason;
    }
    return reason == NULL ? 0 : status;
}

const struct np_header *
np_http_req_header(const struct np_http_req *req, const char *name)
{
    return np_header_find(req->headers, req->n_headers, name);
}

/* Decide the body framing of a request; a request body is never close-delimited. */
enum np_framing
np_http_req_framing(const struct np_http_req *req)
{
    if (req->chunked) {
        return NP_FRAME_CHUNKED;
    }
    if (req->has_content_length && req->content_length > 0) {
        return NP_FRAME_LENGTH;
    }
    return NP_FRAME_NONE;
}

/* ---------------------------------------------------------------------------------------- */
/* np_split_authority                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* A reg-name byte of RFC 3986 without pct-encoded: unreserved or sub-delims. */
static bool
is_reg_name_char(char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9')) {
        return true;
    }
    return ch != '\0' && strchr("-._~!$&'()*+,;=", ch) != NULL;
}

/* Check a bracketed IPv6 literal's inside: it must parse as IPv6 (no zone id: '%' fails). */
static bool
is_ipv6_literal(const char *p, size_t len)
{
    char tmp[V6_BUF];
    struct in6_addr addr;

    if (len == 0 || len >= sizeof(tmp) || memchr(p, '%', len) != NULL) {
        return false;
    }
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    return inet_pton(AF_INET6, tmp, &addr) == 1;
}

/* Take the host of target[0..len) as a bracketed IPv6 literal "[v6]:..." (brackets removed)
 * or a reg-name "name:..."; *colon is set to the ':' that must precede the port. */
static bool
split_host(const char *target, size_t len, struct np_slice *host, const char **colon)
{
    const char *c;
    size_t i;

    if (target[0] == '[') {
        c = memchr(target, ']', len);
        if (c == NULL || c + 1 == target + len || c[1] != ':') {
            return false; /* unbalanced, or no port after the literal */
        }
        host->p = target + 1;
        host->len = (size_t)(c - host->p);
        *colon = c + 1;
        return is_ipv6_literal(host->p, host->len);
    }
    c = memchr(target, ':', len);
    if (c == NULL || c == target) {
        return false; /* no port, or empty host */
    }
    host->p = target;
    host->len = (size_t)(c - target);
    *colon = c;
    for (i = 0; i < host->len; i++) {
        if (!is_reg_name_char(target[i])) {
            return false; /* '@', '%', '/', '[', ']', whitespace, controls, non-ASCII */
        }
    }
    return true;
}

/* Split "host:port" or "[v6]:port". Examples: "example.com:443" → example.com, 443;
 * "[::1]:8443" → ::1, 8443. Refused: "example.com" (no port), ":443", "u@h:443", "h%41:443",
 * "h/x:443", "[::1]", "::1:443" (bare IPv6), "h:0", "h:65536", "h:+443", "h:000443".
 * The out-parameters are written only on success. */
int
np_split_authority(const char *target, size_t len, const char **host, size_t *host_len,
                   uint16_t *port)
{
    struct np_slice h = {NULL, 0};
    const char *colon = NULL;
    uint16_t pv = 0;
    int rc = -1;

    if (len == 0 || !split_host(target, len, &h, &colon)) {
        goto out;
    }
    /* a second ':' (a bare IPv6 address) lands in the port part and fails there */
    pv = np_parse_port(colon + 1, len - (size_t)(colon + 1 - target));
    if (pv == 0) {
        goto out;
    }
    *host = h.p;
    *host_len = h.len;
    *port = pv;
    rc = 0;
out:
    return rc;
}
