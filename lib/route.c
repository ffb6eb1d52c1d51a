/* Reverse-proxy routes (SPEC §1, §1.1, §6, §7 env names): pure functions, no I/O.
 *
 * Paths. A rest path is read as segments split at every separator spelling: '/', '\\', %2f and
 * %5c (any case). A segment is a dot-segment when, up to its first ';' (path parameters, which
 * some servers drop: "..;" is ".." to them), it decodes to "." or ".." with '.' spelt '.', %2e
 * or %2E. np_route_match refuses a path whose ".." would climb above its root; the upstream
 * target is rebuilt with every dot-segment resolved, so what goes upstream holds no segment
 * that any server could read as a dot-segment, however it decodes: it cannot leave base_path.
 *
 * Secrets. Every buffer that held the real secret, a decoded Basic credential or a decoded
 * phantom is wiped before return; `why` never quotes a secret or a whole upstream URL (which
 * may carry userinfo or a key in its query). */
#include "route.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "hostfilter.h"
#include "token.h"

/* Longest value quoted in a start error. */
#define QUOTE_MAX  96
/* Largest decoded Basic credential or phantom query value we look at, in bytes. */
#define DECODE_MAX 2048

static const char *const placeholder = "{}";
static const char root_path[] = "/";

/* ---------------------------------------------------------------------------------------- */
/* Small byte helpers                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* The byte ch with ASCII letters folded to upper case (locale-independent). */
static char
upper_ascii(char ch)
{
    if (ch >= 'a' && ch <= 'z') {
        return (char)(ch - 'a' + 'A');
    }
    return ch;
}

static bool
is_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* An unreserved character of RFC 3986 §2.3. */
static bool
is_unreserved(char ch)
{
    return is_alnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~';
}

/* A tchar of RFC 9110 §5.6.2. */
static bool
is_tchar(char ch)
{
    return is_alnum(ch) || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static bool
is_ws(char ch)
{
    return ch == ' ' || ch == '\t';
}

/* First occurrence of needle[0..nlen) in hay[0..hlen), or NULL (nlen 0 matches at hay). */
static const char *
find_bytes(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    size_t i;

    if (nlen == 0) {
        return hay;
    }
    for (i = 0; nlen <= hlen && i <= hlen - nlen; i++) {
        if (hay[i] == needle[0] && memcmp(hay + i, needle, nlen) == 0) {
            return hay + i;
        }
    }
    return NULL;
}

/* Count the non-overlapping "{}" in s. */
static size_t
count_placeholders(const char *s)
{
    size_t n = 0;
    const char *p = strstr(s, placeholder);

    while (p != NULL) {
        n++;
        p = strstr(p + 2, placeholder);
    }
    return n;
}

/* Split a pattern with exactly one "{}" into the text before and after it. */
static void
split_pattern(const char *pat, size_t *pre_len, const char **suf, size_t *suf_len)
{
    const char *ph = strstr(pat, placeholder);

    *pre_len = (size_t)(ph - pat);
    *suf = ph + 2;
    *suf_len = strlen(*suf);
}

/* Whether s holds a control character (C0 or DEL). */
static bool
has_control(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch < 0x20 || ch == 0x7f) {
            return true;
        }
    }
    return false;
}

/* Whether s holds a byte that cannot stand in a request-target: controls, space, non-ASCII. */
static bool
has_non_target_byte(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch <= 0x20 || ch >= 0x7f) {
            return true;
        }
    }
    return false;
}

/* Whether name[0..len) is [A-Za-z_][A-Za-z0-9_]*. */
static bool
is_env_name(const char *name, size_t len)
{
    size_t i;

    if (len == 0 || (name[0] >= '0' && name[0] <= '9')) {
        return false;
    }
    for (i = 0; i < len; i++) {
        if (!is_alnum(name[i]) && name[i] != '_') {
            return false;
        }
    }
    return true;
}

/* Write UPPER(s[0..len)) with every non-alphanumeric byte as '_' followed by suffix into out
 * (capacity cap), NUL-terminated. Returns the length, or 0 when it does not fit. */
static size_t
env_style_name(const char *s, size_t len, const char *suffix, char *out, size_t cap)
{
    size_t slen = strlen(suffix);
    size_t i;

    if (out == NULL || len > SIZE_MAX - slen - 1 || cap < len + slen + 1) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        char ch = '_';

        if (is_alnum(s[i])) {
            ch = upper_ascii(s[i]);
        }
        out[i] = ch;
    }
    memcpy(out + len, suffix, slen);
    out[len + slen] = '\0';
    return len + slen;
}

/* ---------------------------------------------------------------------------------------- */
/* Capped output buffer                                                                     */
/* ---------------------------------------------------------------------------------------- */

struct wbuf {
    char *p;
    size_t cap;
    size_t len;    /* always <= cap */
    bool overflow; /* a put did not fit; len stays where it was */
};

/* Append s[0..n) unless it does not fit (then mark overflow). */
static void
put(struct wbuf *w, const void *s, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = true;
        return;
    }
    if (n > 0) {
        memcpy(w->p + w->len, s, n);
    }
    w->len += n;
}

static void
put_str(struct wbuf *w, const char *s)
{
    put(w, s, strlen(s));
}

/* NUL-terminate when there is room (not counted in len). */
static void
terminate(struct wbuf *w)
{
    if (w->len < w->cap) {
        w->p[w->len] = '\0';
    }
}

/* ---------------------------------------------------------------------------------------- */
/* np_route_build                                                                           */
/* ---------------------------------------------------------------------------------------- */

/* State of one np_route_build call. */
struct build {
    const struct nonoproxy_route_config *rc;
    size_t index;
    struct np_route *r;
    char *why;
    size_t why_cap;
    const char *quote_prefix; /* the route's name in messages (raw until validated) */
};

/* Write "routes[<i>] '<prefix>': <field>: <detail>" plus " ('<value>')" when value is not
 * NULL into b->why. Values are copied printable and shortened; never pass a secret. Returns
 * -1 for the caller's convenience. */
static int
fail(const struct build *b, const char *field, const char *detail, const char *value,
     size_t value_len)
{
    char pfx[QUOTE_MAX];
    const char *qp = b->quote_prefix != NULL ? b->quote_prefix : "";

    if (b->why == NULL || b->why_cap == 0) {
        return -1;
    }
    np_copy_printable(pfx, sizeof(pfx), qp, strlen(qp));
    if (value != NULL) {
        char val[QUOTE_MAX];

        np_copy_printable(val, sizeof(val), value, value_len);
        (void)snprintf(b->why, b->why_cap, "routes[%zu] '%s': %s: %s ('%s')", b->index, pfx, field,
                       detail, val);
    } else {
        (void)snprintf(b->why, b->why_cap, "routes[%zu] '%s': %s: %s", b->index, pfx, field,
                       detail);
    }
    return -1;
}

/* Copy s into *dst (NULL stays NULL). Returns 0, or -1 on allocation failure. */
static int
copy_opt(const struct build *b, const char *field, const char *s, char **dst)
{
    if (s == NULL) {
        *dst = NULL;
        return 0;
    }
    *dst = np_strdup(s);
    return *dst != NULL ? 0 : fail(b, field, "out of memory", NULL, 0);
}

/* Refuse control characters in every string field (they could split a header or a line). */
static int
check_controls(const struct build *b)
{
    const struct nonoproxy_route_config *rc = b->rc;
    const struct {
        const char *name;
        const char *value;
    } fields[] = {
        {"prefix", rc->prefix},
        {"upstream", rc->upstream},
        {"credential_key", rc->credential_key},
        {"inject_header", rc->inject_header},
        {"credential_format", rc->credential_format},
        {"path_pattern", rc->path_pattern},
        {"path_replacement", rc->path_replacement},
        {"query_param_name", rc->query_param_name},
        {"env_var", rc->env_var},
        {"tls_ca", rc->tls_ca},
    };
    size_t i;

    for (i = 0; i < NP_ARRAY_LEN(fields); i++) {
        if (fields[i].value != NULL && has_control(fields[i].value)) {
            return fail(b, fields[i].name, "control character in the value", NULL, 0);
        }
    }
    return 0;
}

/* Strip every leading and trailing '/' from the prefix and check [A-Za-z0-9._-]+ (and not a
 * dot-segment, which no client would send unresolved). */
static int
build_prefix(struct build *b)
{
    const char *p = b->rc->prefix;
    size_t len = strlen(p);
    size_t i;

    while (len > 0 && p[0] == '/') {
        p++;
        len--;
    }
    while (len > 0 && p[len - 1] == '/') {
        len--;
    }
    if (len == 0) {
        return fail(b, "prefix", "empty after stripping '/'", NULL, 0);
    }
    for (i = 0; i < len; i++) {
        if (!is_alnum(p[i]) && p[i] != '.' && p[i] != '_' && p[i] != '-') {
            return fail(b, "prefix", "must be one path segment of [A-Za-z0-9._-]", NULL, 0);
        }
    }
    if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) {
        return fail(b, "prefix", "may not be a dot-segment", NULL, 0);
    }
    b->r->prefix = np_strndup(p, len);
    if (b->r->prefix == NULL) {
        return fail(b, "prefix", "out of memory", NULL, 0);
    }
    b->quote_prefix = b->r->prefix;
    return 0;
}

/* The pieces of an upstream URL. */
struct upstream_parts {
    bool tls;
    const char *host; /* raw, brackets included for IPv6 */
    size_t host_len;
    bool has_port;
    uint16_t port;
    const char *path; /* from the first '/' after the authority; may be empty */
    size_t path_len;
};

/* Split the authority a[0..len) (no userinfo) into host and optional port. Returns the reason
 * for refusing it, or NULL. */
static const char *
split_upstream_authority(const char *a, size_t len, struct upstream_parts *u)
{
    const char *colon;

    if (len == 0) {
        return "no host";
    }
    if (a[0] == '[') {
        const char *close = memchr(a, ']', len);

        if (close == NULL) {
            return "unbalanced '['";
        }
        u->host = a;
        u->host_len = (size_t)(close - a) + 1;
        colon = (u->host_len < len) ? close + 1 : NULL;
        if (colon != NULL && *colon != ':') {
            return "bad host";
        }
    } else {
        colon = memchr(a, ':', len);
        u->host = a;
        u->host_len = colon != NULL ? (size_t)(colon - a) : len;
        if (colon != NULL && memchr(colon + 1, ':', len - u->host_len - 1) != NULL) {
            return "an IPv6 address must be in brackets";
        }
    }
    if (u->host_len == 0 || (a[0] == '[' && u->host_len == 2)) {
        return "no host";
    }
    if (colon != NULL) {
        u->has_port = true;
        u->port = np_parse_port(colon + 1, len - (size_t)(colon + 1 - a));
        if (u->port == 0) {
            return "bad port";
        }
    }
    return NULL;
}

/* Parse "http(s)://host[:port][/path]" (scheme case-insensitive). Returns the reason for
 * refusing s, or NULL. */
static const char *
parse_upstream(const char *s, struct upstream_parts *u)
{
    size_t len = strlen(s);
    const char *auth;
    const char *slash;
    size_t auth_len;

    memset(u, 0, sizeof(*u));
    if (has_non_target_byte(s, len)) {
        return "whitespace, control or non-ASCII character";
    }
    if (len >= 8 && np_ascii_ieq(s, 8, "https://", 8)) {
        u->tls = true;
        auth = s + 8;
    } else if (len >= 7 && np_ascii_ieq(s, 7, "http://", 7)) {
        auth = s + 7;
    } else {
        return "scheme must be http:// or https://";
    }
    if (strchr(s, '?') != NULL) {
        return "a query is not allowed";
    }
    if (strchr(s, '#') != NULL) {
        return "a fragment is not allowed";
    }
    if (strchr(s, '\\') != NULL) {
        return "'\\' is not allowed";
    }
    slash = strchr(auth, '/');
    auth_len = slash != NULL ? (size_t)(slash - auth) : strlen(auth);
    if (memchr(auth, '@', auth_len) != NULL) {
        return "userinfo is not allowed";
    }
    u->path = auth + auth_len;
    u->path_len = strlen(u->path);
    return split_upstream_authority(auth, auth_len, u);
}

/* Whether a normalised host is "localhost", in 127.0.0.0/8 or ::1. */
static bool
host_is_loopback(const char *norm)
{
    struct sockaddr_storage ss;

    if (strcmp(norm, "localhost") == 0) {
        return true;
    }
    if (!np_host_parse_ip(norm, &ss)) {
        return false;
    }
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;

        return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    }
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&ss)->sin6_addr);
}

/* Fill host, port, tls, host_header and base_path of b->r from the validated upstream. */
static int
set_upstream(struct build *b, const struct upstream_parts *u, const char *norm)
{
    struct np_route *r = b->r;
    uint16_t dflt = u->tls ? 443 : 80;
    char hh[NP_HOST_BUF + 16];
    bool v6 = strchr(norm, ':') != NULL;
    size_t path_len = u->path_len;
    int n;

    r->tls = u->tls;
    r->port = u->has_port ? u->port : dflt;
    if (r->port != dflt) {
        n = snprintf(hh, sizeof(hh), v6 ? "[%s]:%u" : "%s:%u", norm, (unsigned)r->port);
    } else {
        n = snprintf(hh, sizeof(hh), v6 ? "[%s]" : "%s", norm);
    }
    if (n < 0 || (size_t)n >= sizeof(hh)) {
        return fail(b, "upstream", "host too long", NULL, 0);
    }
    while (path_len > 0 && u->path[path_len - 1] == '/') {
        path_len--;
    }
    r->host = np_strdup(norm);
    r->host_header = np_strdup(hh);
    r->base_path = np_strndup(u->path, path_len);
    if (r->host == NULL || r->host_header == NULL || r->base_path == NULL) {
        return fail(b, "upstream", "out of memory", NULL, 0);
    }
    return 0;
}

/* Validate the upstream URL: syntax, scheme, hard deny list, http only to loopback. */
static int
build_upstream(struct build *b)
{
    struct upstream_parts u;
    char norm[NP_HOST_BUF];
    const char *reason = parse_upstream(b->rc->upstream, &u);

    if (reason != NULL) {
        return fail(b, "upstream", reason, NULL, 0); /* the URL may hold userinfo or a key */
    }
    if (np_host_normalize(u.host, u.host_len, norm, sizeof(norm)) != 0) {
        return fail(b, "upstream", "invalid host", u.host, u.host_len);
    }
    if (np_hostfilter_check_name(NULL, norm, u.has_port ? u.port : 0) != NP_HOST_ALLOW) {
        return fail(b, "upstream", "host is on the hard deny list", u.host, u.host_len);
    }
    if (!u.tls && !host_is_loopback(norm)) {
        return fail(b, "upstream", "http:// is only allowed to loopback hosts", u.host, u.host_len);
    }
    return set_upstream(b, &u, norm);
}

/* Whether name may not carry the injected credential: Host, framing and hop-by-hop fields. */
static bool
inject_header_reserved(const char *name)
{
    size_t len = strlen(name);

    return np_ascii_ieq(name, len, "host", 4) || np_ascii_ieq(name, len, "content-length", 14) ||
           np_http_hop_by_hop(name, len, NULL, 0);
}

/* Mode, inject_header and credential_format, with their defaults. */
static int
build_inject(struct build *b)
{
    const struct nonoproxy_route_config *rc = b->rc;
    const char *hdr = rc->inject_header != NULL ? rc->inject_header : "Authorization";
    const char *fmt = rc->credential_format;
    size_t i;

    if ((unsigned)rc->inject_mode > (unsigned)NONOPROXY_INJECT_BASIC_AUTH) {
        return fail(b, "inject_mode", "unknown mode", NULL, 0);
    }
    b->r->mode = rc->inject_mode;
    for (i = 0; hdr[i] != '\0'; i++) {
        if (!is_tchar(hdr[i])) {
            break;
        }
    }
    if (i == 0 || hdr[i] != '\0') {
        return fail(b, "inject_header", "not an HTTP token", hdr, strlen(hdr));
    }
    if (inject_header_reserved(hdr)) {
        return fail(b, "inject_header", "a framing or hop-by-hop header cannot carry it", hdr,
                    strlen(hdr));
    }
    if (fmt == NULL) {
        fmt = np_ascii_ieq(hdr, strlen(hdr), "authorization", 13) ? "Bearer {}" : "{}";
    }
    if (count_placeholders(fmt) != 1) {
        return fail(b, "credential_format", "must hold exactly one {}", fmt, strlen(fmt));
    }
    b->r->inject_header = np_strdup(hdr);
    b->r->credential_format = np_strdup(fmt);
    if (b->r->inject_header == NULL || b->r->credential_format == NULL) {
        return fail(b, "inject_header", "out of memory", NULL, 0);
    }
    return 0;
}

/* Check a URL_PATH pattern: exactly one "{}", nothing a request-target cannot hold. */
static int
check_path_pattern(const struct build *b, const char *field, const char *pat)
{
    if (pat == NULL) {
        return fail(b, field, "required by url_path mode", NULL, 0);
    }
    if (count_placeholders(pat) != 1) {
        return fail(b, field, "must hold exactly one {}", pat, strlen(pat));
    }
    if (has_non_target_byte(pat, strlen(pat)) || strchr(pat, '?') != NULL ||
        strchr(pat, '#') != NULL) {
        return fail(b, field, "must be path characters", pat, strlen(pat));
    }
    return 0;
}

/* URL_PATH and QUERY_PARAM fields. */
static int
build_mode_fields(struct build *b)
{
    const struct nonoproxy_route_config *rc = b->rc;
    const char *rep = rc->path_replacement != NULL ? rc->path_replacement : rc->path_pattern;
    const char *q = rc->query_param_name;

    if (rc->inject_mode == NONOPROXY_INJECT_URL_PATH) {
        if (check_path_pattern(b, "path_pattern", rc->path_pattern) != 0 ||
            check_path_pattern(b, "path_replacement", rep) != 0) {
            return -1;
        }
        b->r->path_pattern = np_strdup(rc->path_pattern);
        b->r->path_replacement = np_strdup(rep);
        if (b->r->path_pattern == NULL || b->r->path_replacement == NULL) {
            return fail(b, "path_pattern", "out of memory", NULL, 0);
        }
    }
    if (rc->inject_mode == NONOPROXY_INJECT_QUERY_PARAM) {
        size_t i;

        if (q == NULL || q[0] == '\0') {
            return fail(b, "query_param_name", "required by query_param mode", NULL, 0);
        }
        for (i = 0; q[i] != '\0'; i++) {
            if (!is_unreserved(q[i])) {
                return fail(b, "query_param_name", "must be [A-Za-z0-9._~-]", q, strlen(q));
            }
        }
        if (copy_opt(b, "query_param_name", q, &b->r->query_param_name) != 0) {
            return -1;
        }
    }
    return 0;
}

/* env_var, and the name derived from a bare credential_key when env_var is not set. */
static int
build_env(struct build *b)
{
    const struct nonoproxy_route_config *rc = b->rc;
    const char *ev = rc->env_var;
    const char *key = rc->credential_key;

    if (ev != NULL) {
        if (!is_env_name(ev, strlen(ev))) {
            return fail(b, "env_var", "must match [A-Za-z_][A-Za-z0-9_]*", ev, strlen(ev));
        }
        if (np_route_env_name_refused(ev, strlen(ev))) {
            return fail(b, "env_var", "refused variable name", ev, strlen(ev));
        }
    } else if (key != NULL && strstr(key, "://") == NULL) {
        char name[QUOTE_MAX];
        size_t klen = strlen(key);
        size_t n = klen < sizeof(name) ? env_style_name(key, klen, "", name, sizeof(name)) : 0;

        /* Longer names cannot be refused ones; only their first byte can make them invalid. */
        if (klen == 0 || (key[0] >= '0' && key[0] <= '9') ||
            (n > 0 && np_route_env_name_refused(name, n))) {
            return fail(b, "credential_key", "derived variable name is not usable; set env_var",
                        n > 0 ? name : NULL, n);
        }
    }
    if (copy_opt(b, "env_var", ev, &b->r->env_var) != 0 ||
        copy_opt(b, "credential_key", key, &b->r->credential_key) != 0 ||
        copy_opt(b, "tls_ca", rc->tls_ca, &b->r->tls_ca) != 0) {
        return -1;
    }
    return 0;
}

/* Validate rc (SPEC §1.1) and freeze it into out, one field group at a time. */
int
np_route_build(const struct nonoproxy_route_config *rc, size_t index, struct np_route *out,
               char *why, size_t why_cap)
{
    struct build b;
    int rc_ok = -1;

    if (out == NULL) {
        goto out;
    }
    memset(out, 0, sizeof(*out));
    b.rc = rc;
    b.index = index;
    b.r = out;
    b.why = why;
    b.why_cap = why_cap;
    b.quote_prefix = NULL;
    if (why != NULL && why_cap > 0) {
        why[0] = '\0';
    }
    if (rc == NULL || rc->prefix == NULL || rc->upstream == NULL) {
        (void)fail(&b, rc == NULL || rc->prefix == NULL ? "prefix" : "upstream", "required", NULL,
                   0);
        goto out;
    }
    b.quote_prefix = rc->prefix;
    if (check_controls(&b) != 0 || build_prefix(&b) != 0 || build_upstream(&b) != 0 ||
        build_inject(&b) != 0 || build_mode_fields(&b) != 0 || build_env(&b) != 0) {
        goto out;
    }
    rc_ok = 0;
out:
    if (rc_ok != 0 && out != NULL) {
        np_route_free(out);
    }
    return rc_ok;
}

/* ---------------------------------------------------------------------------------------- */
/* Injection values, free, env names                                                        */
/* ---------------------------------------------------------------------------------------- */

/* Wipe and free a secret buffer of len bytes (plus its NUL). */
static void
free_secret_n(char *p, size_t len)
{
    if (p != NULL) {
        np_secure_zero(p, len + 1);
        np_free(p);
    }
}

/* Build the header value: credential_format with the secret (HEADER) or Basic base64(secret)
 * (BASIC_AUTH). A previous value is wiped first. */
int
np_route_prepare_injection(struct np_route *r)
{
    size_t pre = 0;
    size_t suf_len = 0;
    const char *suf = NULL;
    size_t len;
    char *v;

    free_secret_n(r->inject_value, r->inject_value_len);
    r->inject_value = NULL;
    r->inject_value_len = 0;
    if (r->secret == NULL || r->credential_key == NULL ||
        (r->mode != NONOPROXY_INJECT_HEADER && r->mode != NONOPROXY_INJECT_BASIC_AUTH)) {
        return 0;
    }
    if (r->secret_len > NONOPROXY_SECRET_MAX || memchr(r->secret, '\r', r->secret_len) != NULL ||
        memchr(r->secret, '\n', r->secret_len) != NULL ||
        memchr(r->secret, '\0', r->secret_len) != NULL) {
        return -1; /* credential.c refuses these already: it would split the header */
    }
    if (r->mode == NONOPROXY_INJECT_HEADER) {
        split_pattern(r->credential_format, &pre, &suf, &suf_len);
        len = pre + r->secret_len + suf_len;
    } else {
        len = 6 + (r->secret_len + 2) / 3 * 4;
    }
    v = np_malloc(len + 1);
    if (v == NULL) {
        return -1;
    }
    if (r->mode == NONOPROXY_INJECT_HEADER) {
        memcpy(v, r->credential_format, pre);
        memcpy(v + pre, r->secret, r->secret_len);
        memcpy(v + pre + r->secret_len, suf, suf_len);
    } else {
        memcpy(v, "Basic ", 6);
        (void)np_base64_encode(r->secret, r->secret_len, v + 6, len - 6);
    }
    v[len] = '\0';
    r->inject_value = v;
    r->inject_value_len = len;
    return 0;
}

/* Free every string, wiping the secret and the injected value; leave *r zeroed. */
void
np_route_free(struct np_route *r)
{
    if (r == NULL) {
        return;
    }
    np_free(r->prefix);
    np_free(r->host);
    np_free(r->host_header);
    np_free(r->base_path);
    np_free(r->credential_key);
    np_free(r->inject_header);
    np_free(r->credential_format);
    np_free(r->path_pattern);
    np_free(r->path_replacement);
    np_free(r->query_param_name);
    np_free(r->env_var);
    np_free(r->tls_ca);
    free_secret_n(r->secret, r->secret_len);
    free_secret_n(r->inject_value, r->inject_value_len);
    memset(r, 0, sizeof(*r));
}

/* Names a credential variable may never take (compared ignoring case); DYLD_* separately. */
static const char *const refused_env_names[] = {
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "BASH_ENV",
    "ENV",
    "IFS",
    "CDPATH",
    "PROMPT_COMMAND",
    "NODE_OPTIONS",
    "NODE_PATH",
    "PYTHONSTARTUP",
    "PYTHONPATH",
    "PERL5OPT",
    "PERL5LIB",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "DOTNET_STARTUP_HOOKS",
    "GOFLAGS",
    "PATH",
    "HOME",
    "SHELL",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "NONO_PROXY_TOKEN",
    "NODE_USE_ENV_PROXY",
};

/* Whether name[0..len) is a refused variable name (ignoring case), or starts with DYLD_. */
bool
np_route_env_name_refused(const char *name, size_t len)
{
    size_t i;

    if (name == NULL) {
        return true;
    }
    if (len >= 5 && np_ascii_ieq(name, 5, "DYLD_", 5)) {
        return true;
    }
    for (i = 0; i < NP_ARRAY_LEN(refused_env_names); i++) {
        const char *n = refused_env_names[i];

        if (np_ascii_ieq(name, len, n, strlen(n))) {
            return true;
        }
    }
    return false;
}

/* "<UPPER(prefix)>_BASE_URL", non-alphanumerics as '_'. */
size_t
np_route_base_url_name(const struct np_route *r, char *out, size_t cap)
{
    return env_style_name(r->prefix, strlen(r->prefix), "_BASE_URL", out, cap);
}

/* The phantom variable's name: env_var, else the sanitised bare key; 0 when none. */
size_t
np_route_phantom_name(const struct np_route *r, char *out, size_t cap)
{
    if (r->credential_key == NULL) {
        return 0;
    }
    if (r->env_var != NULL) {
        size_t n = strlen(r->env_var);

        if (out == NULL || cap <= n) {
            return 0;
        }
        memcpy(out, r->env_var, n + 1);
        return n;
    }
    if (strstr(r->credential_key, "://") != NULL) {
        return 0;
    }
    return env_style_name(r->credential_key, strlen(r->credential_key), "", out, cap);
}

/* ---------------------------------------------------------------------------------------- */
/* Paths: separators, dot-segments, the escape check and normalisation                      */
/* ---------------------------------------------------------------------------------------- */

/* Length of the separator starting at p[i] ('/', '\\': 1; %2f, %5c in any case: 3), or 0. */
static size_t
sep_len(const char *p, size_t len, size_t i)
{
    if (p[i] == '/' || p[i] == '\\') {
        return 1;
    }
    if (p[i] == '%' && len - i >= 3) {
        char a = p[i + 1];
        char c = np_ascii_lower(p[i + 2]);

        if ((a == '2' && c == 'f') || (a == '5' && c == 'c')) {
            return 3;
        }
    }
    return 0;
}

/* Classify the segment s[0..len): 1 for ".", 2 for "..", 0 otherwise; '.' may be spelt %2e
 * (any case) and anything from the first ';' on is ignored. */
static int
dot_segment(const char *s, size_t len)
{
    const char *semi = memchr(s, ';', len);
    size_t end = semi != NULL ? (size_t)(semi - s) : len;
    size_t i = 0;
    int dots = 0;

    while (i < end) {
        if (s[i] == '.') {
            i++;
        } else if (s[i] == '%' && end - i >= 3 && s[i + 1] == '2' && np_ascii_lower(s[i + 2]) == 'e') {
            i += 3;
        } else {
            return 0;
        }
        if (++dots > 2) {
            return 0;
        }
    }
    return dots;
}

/* Result of walking a path. */
enum walk_result { WALK_OK = 0, WALK_ESCAPES, WALK_NOROOM };

/* Remove the last segment written to w (and its separator): w->len drops to the start of the
 * last separator in the path part w->p[base..len). */
static void
pop_segment(struct wbuf *w, size_t base)
{
    size_t k = w->len;

    while (k > base) {
        k--;
        if (sep_len(w->p + base, w->len - base, k - base) > 0) {
            break;
        }
    }
    w->len = k;
}

/* State of one walk over a path. */
struct walk {
    struct wbuf *w; /* NULL: only check */
    size_t base;    /* where the path starts in w */
    size_t depth;   /* segments above the root */
};

/* Take one segment seg[0..seg_len) preceded by the separator sep[0..sl) (may be empty
 * for the first one): push it, or resolve it as a dot-segment. Returns the dot-segment kind
 * (0 = ordinary), or -1 when ".." would climb above the root. */
static int
take_segment(struct walk *st, const char *sep, size_t sl, const char *seg, size_t seg_len)
{
    int kind = dot_segment(seg, seg_len);
    struct wbuf *w = st->w;

    if (kind == 2) {
        if (st->depth == 0) {
            return -1;
        }
        st->depth--;
        if (w != NULL) {
            pop_segment(w, st->base);
        }
    } else if (kind == 0) {
        st->depth++;
        if (w != NULL && w->len == st->base) {
            put(w, "/", 1); /* the path's first separator is always '/' */
        } else if (w != NULL) {
            put(w, sep, sl);
        }
        if (w != NULL) {
            put(w, seg, seg_len);
        }
    }
    return kind;
}

/* Walk the path p[0..len) (empty, or starting with a separator) segment by segment. With w
 * NULL only check for escape; else also append its normalised form (dot-segments resolved,
 * other bytes as they are, the first separator written as '/') to w. */
static enum walk_result
walk_path(const char *p, size_t len, struct wbuf *w)
{
    struct walk st = {w, w != NULL ? w->len : 0, 0};
    size_t i = 0;
    int last = 0;

    while (i < len) {
        size_t sl = sep_len(p, len, i);
        size_t j = i + sl;

        while (j < len && sep_len(p, len, j) == 0) {
            j++;
        }
        last = take_segment(&st, p + i, sl, p + i + sl, j - i - sl);
        if (last < 0) {
            return WALK_ESCAPES;
        }
        i = j;
    }
    if (w != NULL && (last != 0 || w->len == st.base)) {
        put(w, "/", 1); /* "/a/.." is "/a/"; an empty path is "/" */
    }
    return (w != NULL && w->overflow) ? WALK_NOROOM : WALK_OK;
}

/* Split rest into its path (up to the first '?') and its query ('?' included, may be empty). */
static void
split_rest(const char *rest, size_t rest_len, size_t *path_len, const char **query,
           size_t *query_len)
{
    const char *q = memchr(rest, '?', rest_len);

    *path_len = q != NULL ? (size_t)(q - rest) : rest_len;
    *query = rest + *path_len;
    *query_len = rest_len - *path_len;
}

/* Find the route of the first segment and check that the rest's path stays inside it. */
enum np_route_match
// NOLINTNEXTLINE(readability-function-size): the signature is fixed by route.h
np_route_match(const struct np_route *routes, size_t n, const char *target, size_t target_len,
               size_t *index, const char **rest, size_t *rest_len)
{
    size_t seg_len = 0;
    size_t path_len;
    size_t query_len;
    const char *query;
    const char *r;
    size_t rlen;
    size_t i;

    if (target == NULL || target_len == 0 || target[0] != '/') {
        return NP_ROUTE_NOT_FOUND;
    }
    while (1 + seg_len < target_len && target[1 + seg_len] != '/' && target[1 + seg_len] != '?') {
        seg_len++;
    }
    for (i = 0; i < n; i++) {
        if (routes[i].prefix != NULL && strlen(routes[i].prefix) == seg_len &&
            memcmp(routes[i].prefix, target + 1, seg_len) == 0) {
            break;
        }
    }
    if (i == n || seg_len == 0) {
        return NP_ROUTE_NOT_FOUND;
    }
    r = target + 1 + seg_len;
    rlen = target_len - 1 - seg_len;
    if (rlen == 0) {
        r = root_path; /* nothing to check */
        rlen = 1;
    } else {
        split_rest(r, rlen, &path_len, &query, &query_len);
        if (memchr(r, '\\', path_len) != NULL || find_bytes(r, path_len, "%00", 3) != NULL ||
            walk_path(r, path_len, NULL) != WALK_OK) {
            return NP_ROUTE_ESCAPES;
        }
    }
    *index = i;
    *rest = r;
    *rest_len = rlen;
    return NP_ROUTE_FOUND;
}

/* ---------------------------------------------------------------------------------------- */
/* Phantom checks                                                                           */
/* ---------------------------------------------------------------------------------------- */

/* Whether v[0..len) is "<scheme> 1*(SP/HTAB) <credentials>" with scheme (any case) given;
 * sets the credentials. */
static bool
scheme_value(const char *v, size_t len, const char *scheme, const char **cred, size_t *cred_len)
{
    size_t sl = strlen(scheme);
    size_t i = sl;

    if (len <= sl || !np_ascii_ieq(v, sl, scheme, sl) || !is_ws(v[sl])) {
        return false;
    }
    while (i < len && is_ws(v[i])) {
        i++;
    }
    if (i == len) {
        return false;
    }
    *cred = v + i;
    *cred_len = len - i;
    return true;
}

/* HEADER: the token bare, as "Bearer <token>", or as credential_format applied to it. */
static bool
header_phantom_ok(const struct np_route *r, const char *v, size_t len, const char *tok,
                  size_t tok_len)
{
    const char *cred = NULL;
    size_t cred_len = 0;
    size_t pre = 0;
    const char *suf = NULL;
    size_t suf_len = 0;
    bool ok = np_ct_equal(v, len, tok, tok_len);

    if (scheme_value(v, len, "bearer", &cred, &cred_len)) {
        ok |= np_ct_equal(cred, cred_len, tok, tok_len);
    }
    split_pattern(r->credential_format, &pre, &suf, &suf_len);
    if (len >= pre + suf_len && len - pre - suf_len == tok_len &&
        memcmp(v, r->credential_format, pre) == 0 && memcmp(v + len - suf_len, suf, suf_len) == 0) {
        ok |= np_ct_equal(v + pre, tok_len, tok, tok_len);
    }
    return ok;
}

/* BASIC_AUTH: "Basic base64(<any user>:<token>)". */
static bool
basic_phantom_ok(const char *v, size_t len, const char *tok, size_t tok_len)
{
    unsigned char dec[DECODE_MAX];
    size_t n = 0;
    const char *b64 = NULL;
    size_t b64_len = 0;
    const unsigned char *colon;
    bool ok = false;

    if (!scheme_value(v, len, "basic", &b64, &b64_len) ||
        np_base64_decode(b64, b64_len, dec, sizeof(dec), &n) != 0) {
        goto out;
    }
    colon = memchr(dec, ':', n);
    if (colon != NULL) {
        colon++;
        ok = np_ct_equal(colon, n - (size_t)(colon - dec), tok, tok_len);
    }
out:
    np_secure_zero(dec, sizeof(dec));
    return ok;
}

/* Where the URL_PATH pattern pre{}suf matches in path[0..len): the match starts at *m_start,
 * the candidate is path[*c_start..*c_end) and the match ends at *m_end. */
struct pattern_match {
    size_t m_start;
    size_t c_start;
    size_t c_end;
    size_t m_end;
};

/* First match of pattern in path: the prefix's first occurrence, then the suffix's first after
 * it, or the next '/' (or the end) when the suffix is empty. */
static bool
find_pattern(const char *pattern, const char *path, size_t len, struct pattern_match *m)
{
    size_t pre = 0;
    const char *suf = NULL;
    size_t suf_len = 0;
    const char *hit;

    split_pattern(pattern, &pre, &suf, &suf_len);
    hit = find_bytes(path, len, pattern, pre);
    if (hit == NULL) {
        return false;
    }
    m->m_start = (size_t)(hit - path);
    m->c_start = m->m_start + pre;
    if (suf_len > 0) {
        hit = find_bytes(path + m->c_start, len - m->c_start, suf, suf_len);
        if (hit == NULL) {
            return false;
        }
        m->c_end = (size_t)(hit - path);
        m->m_end = m->c_end + suf_len;
    } else {
        hit = memchr(path + m->c_start, '/', len - m->c_start);
        m->c_end = hit != NULL ? (size_t)(hit - path) : len;
        m->m_end = m->c_end;
    }
    return true;
}

/* Decode %XX escapes of s[0..len) into out (cap); invalid escapes stay as they are, '+' is
 * not a space. Returns the length, or SIZE_MAX when it does not fit. */
static size_t
pct_decode(const char *s, size_t len, unsigned char *out, size_t cap)
{
    size_t i = 0;
    size_t o = 0;

    while (i < len) {
        int hi = (s[i] == '%' && len - i >= 3) ? np_hex_value(s[i + 1]) : -1;
        int lo = hi >= 0 ? np_hex_value(s[i + 2]) : -1;

        if (o >= cap) {
            return SIZE_MAX;
        }
        if (lo >= 0) {
            out[o++] = (unsigned char)(hi * 16 + lo);
            i += 3;
        } else {
            out[o++] = (unsigned char)s[i++];
        }
    }
    return o;
}

/* Find the first "name=value" pair of query q[0..len) (no '?') whose raw name is name; pairs
 * without '=' are skipped. */
static bool
find_param(const char *q, size_t len, const char *name, const char **val, size_t *val_len)
{
    size_t nlen = strlen(name);
    size_t i = 0;

    while (i < len) {
        const char *amp = memchr(q + i, '&', len - i);
        size_t end = amp != NULL ? (size_t)(amp - q) : len;
        const char *eq = memchr(q + i, '=', end - i);

        if (eq != NULL && (size_t)(eq - (q + i)) == nlen && memcmp(q + i, name, nlen) == 0) {
            *val = eq + 1;
            *val_len = (size_t)(q + end - *val);
            return true;
        }
        i = end + 1;
    }
    return false;
}

/* QUERY_PARAM: the percent-decoded value of the first query_param_name parameter. */
static bool
query_phantom_ok(const struct np_route *r, const char *rest, size_t rest_len, const char *tok,
                 size_t tok_len)
{
    unsigned char dec[DECODE_MAX];
    size_t path_len = 0;
    const char *query = NULL;
    size_t query_len = 0;
    const char *val = NULL;
    size_t val_len = 0;
    size_t n;
    bool ok = false;

    split_rest(rest, rest_len, &path_len, &query, &query_len);
    if (query_len == 0 ||
        !find_param(query + 1, query_len - 1, r->query_param_name, &val, &val_len)) {
        goto out;
    }
    n = pct_decode(val, val_len, dec, sizeof(dec));
    if (n != SIZE_MAX) {
        ok = np_ct_equal(dec, n, tok, tok_len);
    }
out:
    np_secure_zero(dec, sizeof(dec));
    return ok;
}

/* URL_PATH: the token where {} stands in path_pattern, in rest's path. */
static bool
path_phantom_ok(const struct np_route *r, const char *rest, size_t rest_len, const char *tok,
                size_t tok_len)
{
    struct pattern_match m;
    size_t path_len = 0;
    const char *query = NULL;
    size_t query_len = 0;

    split_rest(rest, rest_len, &path_len, &query, &query_len);
    if (!find_pattern(r->path_pattern, rest, path_len, &m)) {
        return false;
    }
    return np_ct_equal(rest + m.c_start, m.c_end - m.c_start, tok, tok_len);
}

/* Check the phantom as the route's mode requires (see route.h). */
bool
np_route_phantom_ok(const struct np_route *r, const struct np_http_req *req, const char *rest,
                    size_t rest_len, const char *token)
{
    size_t tok_len = token != NULL ? strlen(token) : 0;
    const struct np_header *h;

    if (tok_len == 0) {
        return false; /* an empty token would match empty credentials */
    }
    if (r->credential_key == NULL) {
        const char *cred = NULL;
        size_t cred_len = 0;

        if (np_token_check_proxy_auth(req, token) == NP_AUTH_OK) {
            return true;
        }
        h = np_http_req_header(req, "Authorization");
        return h != NULL && scheme_value(h->value, h->value_len, "bearer", &cred, &cred_len) &&
               np_ct_equal(cred, cred_len, token, tok_len);
    }
    switch (r->mode) {
    case NONOPROXY_INJECT_HEADER:
        h = np_http_req_header(req, r->inject_header);
        return h != NULL && header_phantom_ok(r, h->value, h->value_len, token, tok_len);
    case NONOPROXY_INJECT_BASIC_AUTH:
        h = np_http_req_header(req, r->inject_header);
        return h != NULL && basic_phantom_ok(h->value, h->value_len, token, tok_len);
    case NONOPROXY_INJECT_URL_PATH:
        return path_phantom_ok(r, rest, rest_len, token, tok_len);
    case NONOPROXY_INJECT_QUERY_PARAM:
        return query_phantom_ok(r, rest, rest_len, token, tok_len);
    }
    return false;
}

/* ---------------------------------------------------------------------------------------- */
/* Upstream request-target                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* Write the normalised path p[0..len), with the secret where the URL_PATH pattern matches in
 * it on URL_PATH credential routes. The path is normalised into a scratch copy first, so that
 * out needs room for the result only (a popped segment or the phantom takes room before it
 * goes). */
static int
put_path(const struct np_route *r, struct wbuf *w, const char *p, size_t len)
{
    struct pattern_match m = {0, 0, 0, 0};
    struct wbuf s = {NULL, len + 2, 0, false}; /* normalising adds at most one '/' */
    bool inject = r->credential_key != NULL && r->mode == NONOPROXY_INJECT_URL_PATH;
    size_t pre = 0;
    const char *suf = NULL;
    size_t suf_len = 0;
    int rc = -1;

    if (inject && has_non_target_byte(r->secret, r->secret_len)) {
        goto out;
    }
    s.p = np_malloc(s.cap);
    if (s.p == NULL || walk_path(p, len, &s) != WALK_OK) {
        goto out;
    }
    if (!inject) {
        put(w, s.p, s.len);
        rc = 0;
        goto out;
    }
    if (!find_pattern(r->path_pattern, s.p, s.len, &m)) {
        goto out;
    }
    split_pattern(r->path_replacement, &pre, &suf, &suf_len);
    put(w, s.p, m.m_start);
    put(w, r->path_replacement, pre);
    put(w, r->secret, r->secret_len);
    put(w, suf, suf_len);
    put(w, s.p + m.m_end, s.len - m.m_end);
    rc = 0;
out:
    if (s.p != NULL) {
        np_secure_zero(s.p, s.cap); /* it may hold the phantom */
        np_free(s.p);
    }
    return rc;
}

/* Write "name=<percent-encoded secret>". */
static void
put_param(const struct np_route *r, struct wbuf *w)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;

    put_str(w, r->query_param_name);
    put(w, "=", 1);
    for (i = 0; i < r->secret_len; i++) {
        unsigned char ch = (unsigned char)r->secret[i];

        if (is_unreserved((char)ch)) {
            put(w, &r->secret[i], 1);
        } else {
            char esc[3] = {'%', hex[ch >> 4], hex[ch & 0x0f]};

            put(w, esc, sizeof(esc));
        }
    }
}

/* Copy the query q[0..len) ('?' included, or empty) with every query_param_name pair set to
 * the secret, adding the pair when there is none. */
static void
put_query_with_secret(const struct np_route *r, struct wbuf *w, const char *q, size_t len)
{
    size_t nlen = strlen(r->query_param_name);
    bool replaced = false;
    size_t i = 1;

    if (len <= 1) {
        put(w, "?", 1);
        put_param(r, w);
        return;
    }
    put(w, "?", 1);
    while (i <= len) {
        const char *amp = memchr(q + i, '&', len - i);
        size_t end = amp != NULL ? (size_t)(amp - q) : len;
        const char *eq = memchr(q + i, '=', end - i);

        if (i > 1) {
            put(w, "&", 1);
        }
        if (eq != NULL && (size_t)(eq - (q + i)) == nlen &&
            memcmp(q + i, r->query_param_name, nlen) == 0) {
            put_param(r, w);
            replaced = true;
        } else {
            put(w, q + i, end - i);
        }
        i = end + 1;
    }
    if (!replaced) {
        put(w, "&", 1);
        put_param(r, w);
    }
}

/* base_path + normalised path of rest + query, with the secret per mode (see route.h). */
int
// NOLINTNEXTLINE(readability-function-size): the signature is fixed by route.h
np_route_upstream_target(const struct np_route *r, const char *rest, size_t rest_len, char *out,
                         size_t cap, size_t *out_len)
{
    struct wbuf w = {out, cap, 0, false};
    bool cred = r->credential_key != NULL;
    size_t path_len = 0;
    const char *query = NULL;
    size_t query_len = 0;
    int rc = -1;

    if (cred && (r->mode == NONOPROXY_INJECT_URL_PATH || r->mode == NONOPROXY_INJECT_QUERY_PARAM) &&
        r->secret == NULL) {
        goto out;
    }
    split_rest(rest, rest_len, &path_len, &query, &query_len);
    put_str(&w, r->base_path);
    if (put_path(r, &w, rest, path_len) != 0) {
        goto out;
    }
    if (cred && r->mode == NONOPROXY_INJECT_QUERY_PARAM) {
        put_query_with_secret(r, &w, query, query_len);
    } else {
        put(&w, query, query_len);
    }
    if (w.overflow) {
        goto out;
    }
    terminate(&w);
    *out_len = w.len;
    rc = 0;
out:
    if (rc != 0 && out != NULL) {
        np_secure_zero(out, w.len);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Upstream request head                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* Whether the client header h must not go upstream. */
static bool
drop_header(const struct np_route *r, const struct np_http_req *req, const struct np_header *h,
            const char *tok, size_t tok_len)
{
    bool header_mode = r->mode == NONOPROXY_INJECT_HEADER || r->mode == NONOPROXY_INJECT_BASIC_AUTH;

    /* Expect too: the proxy answers 100-continue itself and always sends the body, so an
     * upstream must not be asked to wait for a body it would then take for a request. */
    if (np_http_hop_by_hop(h->name, h->name_len, req->headers, req->n_headers) ||
        np_ascii_ieq(h->name, h->name_len, "host", 4) ||
        np_ascii_ieq(h->name, h->name_len, "content-length", 14) ||
        np_ascii_ieq(h->name, h->name_len, "expect", 6)) {
        return true;
    }
    if (r->credential_key != NULL && header_mode &&
        np_ascii_ieq(h->name, h->name_len, r->inject_header, strlen(r->inject_header))) {
        return true;
    }
    return np_token_in_header(h, tok, tok_len); /* name or value, every spelling */
}

/* Write the framing line for body. Returns false for a framing a request cannot have. */
static bool
put_framing(struct wbuf *w, enum np_framing body, uint64_t content_length)
{
    char num[24];

    switch (body) {
    case NP_FRAME_NONE:
        return true;
    case NP_FRAME_LENGTH:
        (void)snprintf(num, sizeof(num), "%" PRIu64, content_length);
        put_str(w, "Content-Length: ");
        put_str(w, num);
        put(w, "\r\n", 2);
        return true;
    case NP_FRAME_CHUNKED:
        put_str(w, "Transfer-Encoding: chunked\r\n");
        return true;
    case NP_FRAME_CLOSE:
        return false;
    }
    return false;
}

/* Write the upstream request head (see route.h). */
int
// NOLINTNEXTLINE(readability-function-size): the signature is fixed by route.h
np_route_build_head(const struct np_route *r, const struct np_http_req *req, const char *target,
                    size_t target_len, enum np_framing body, uint64_t content_length,
                    const char *token, char *out, size_t cap, size_t *out_len)
{
    struct wbuf w = {out, cap, 0, false};
    size_t tok_len = token != NULL ? strlen(token) : 0;
    bool header_mode = r->mode == NONOPROXY_INJECT_HEADER || r->mode == NONOPROXY_INJECT_BASIC_AUTH;
    size_t i;
    int rc = -1;

    put_str(&w, req->method_name);
    put(&w, " ", 1);
    put(&w, target, target_len);
    put_str(&w, " HTTP/1.1\r\nHost: ");
    put_str(&w, r->host_header);
    put(&w, "\r\n", 2);
    for (i = 0; i < req->n_headers && i < NP_MAX_HEADERS; i++) {
        const struct np_header *h = &req->headers[i];

        if (!drop_header(r, req, h, token, tok_len)) {
            put(&w, h->name, h->name_len);
            put(&w, ": ", 2);
            put(&w, h->value, h->value_len);
            put(&w, "\r\n", 2);
        }
    }
    if (r->credential_key != NULL && header_mode && r->inject_value != NULL) {
        put_str(&w, r->inject_header);
        put(&w, ": ", 2);
        put(&w, r->inject_value, r->inject_value_len);
        put(&w, "\r\n", 2);
    }
    if (!put_framing(&w, body, content_length)) {
        goto out;
    }
    put(&w, "\r\n", 2);
    if (w.overflow) {
        goto out;
    }
    terminate(&w);
    *out_len = w.len;
    rc = 0;
out:
    if (rc != 0 && out != NULL) {
        np_secure_zero(out, w.len);
    }
    return rc;
}
