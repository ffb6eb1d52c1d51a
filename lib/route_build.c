/* One reverse-proxy route as frozen at start (SPEC §1, §1.1): see route_build.h.
 *
 * Every buffer that held the real secret is wiped before return; `why` never quotes a secret
 * or a whole upstream URL (which may carry userinfo or a key in its query). */
#include "route_build.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "hostfilter.h"
#include "http_head.h"
#include "ratelimit.h"
#include "route_env.h"
#include "route_pattern.h"
#include "token.h"

/* Longest value quoted in a start error. */
#define QUOTE_MAX 96

/* State of one np_route_build call. */
struct build {
    const struct nonoproxy_route_config *rc;
    size_t index;
    struct np_route *r;
    char *why;
    size_t why_cap;
    const char *quote_prefix; /* the route's name in messages (raw until validated) */
    bool nomem;               /* a failure was an allocation's: np_route_build returns -2 */
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

/* fail() for an allocation failure: also marks b (np_route_build then returns -2). */
static int
fail_nomem(struct build *b, const char *field)
{
    b->nomem = true;
    return fail(b, field, "out of memory", NULL, 0);
}

/* Copy s into *dst (NULL stays NULL). Returns 0, or -1 on allocation failure. */
static int
copy_opt(struct build *b, const char *field, const char *s, char **dst)
{
    if (s == NULL) {
        *dst = NULL;
        return 0;
    }
    *dst = np_strdup(s);
    return *dst != NULL ? 0 : fail_nomem(b, field);
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
        {"tls_client_cert", rc->tls_client_cert},
        {"tls_client_key", rc->tls_client_key},
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
        if (!np_ascii_is_alnum(p[i]) && p[i] != '.' && p[i] != '_' && p[i] != '-') {
            return fail(b, "prefix", "must be one path segment of [A-Za-z0-9._-]", NULL, 0);
        }
    }
    if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) {
        return fail(b, "prefix", "may not be a dot-segment", NULL, 0);
    }
    b->r->prefix = np_strndup(p, len);
    if (b->r->prefix == NULL) {
        return fail_nomem(b, "prefix");
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
    if (np_route_unsafe_in_target(s, len)) {
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
        return fail_nomem(b, "upstream");
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
    /* NONE (0, a zeroed configuration) is the default, HEADER. */
    b->r->mode =
        rc->inject_mode == NONOPROXY_INJECT_NONE ? NONOPROXY_INJECT_HEADER : rc->inject_mode;
    for (i = 0; hdr[i] != '\0'; i++) {
        if (!np_http_is_tchar(hdr[i])) {
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
    if (np_route_pattern_count(fmt) != 1) {
        return fail(b, "credential_format", "must hold exactly one {}", fmt, strlen(fmt));
    }
    b->r->inject_header = np_strdup(hdr);
    b->r->credential_format = np_strdup(fmt);
    if (b->r->inject_header == NULL || b->r->credential_format == NULL) {
        return fail_nomem(b, "inject_header");
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
    if (np_route_pattern_count(pat) != 1) {
        return fail(b, field, "must hold exactly one {}", pat, strlen(pat));
    }
    if (np_route_unsafe_in_target(pat, strlen(pat)) || strchr(pat, '?') != NULL ||
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
            return fail_nomem(b, "path_pattern");
        }
    }
    if (rc->inject_mode == NONOPROXY_INJECT_QUERY_PARAM) {
        size_t i;

        if (q == NULL || q[0] == '\0') {
            return fail(b, "query_param_name", "required by query_param mode", NULL, 0);
        }
        for (i = 0; q[i] != '\0'; i++) {
            if (!np_uri_is_unreserved(q[i])) {
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
        if (!np_route_env_name_valid(ev, strlen(ev))) {
            return fail(b, "env_var", "must match [A-Za-z_][A-Za-z0-9_]*", ev, strlen(ev));
        }
        if (np_route_env_name_refused(ev, strlen(ev))) {
            return fail(b, "env_var", "refused variable name", ev, strlen(ev));
        }
    } else if (key != NULL && strstr(key, "://") == NULL) {
        char name[QUOTE_MAX];
        size_t klen = strlen(key);
        size_t n = klen < sizeof(name) ? np_route_env_style(key, klen, "", name, sizeof(name)) : 0;

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

/* Endpoint rules, compiled. */
static int
build_rules(struct build *b)
{
    char why[256];
    char pfx[QUOTE_MAX];
    int rc = np_route_rules_compile(b->rc->endpoint_rules, b->rc->n_endpoint_rules, &b->r->rules,
                                    why, sizeof(why));

    if (rc == 0) {
        return 0;
    }
    b->nomem = rc == -2;
    np_copy_printable(pfx, sizeof(pfx), b->quote_prefix, strlen(b->quote_prefix));
    (void)snprintf(b->why, b->why_cap, "routes[%zu] '%s': %s", b->index, pfx, why);
    return -1;
}

/* The rate limit (its bounds in ratelimit.h) and the client certificate of mutual TLS. */
static int
build_limits(struct build *b)
{
    const struct nonoproxy_route_config *rc = b->rc;
    struct np_route *r = b->r;

    if (rc->rate_limit_per_minute > NP_RATE_RPM_MAX) {
        return fail(b, "rate_limit_per_minute", "more than 6000000 (100000 a second)", NULL, 0);
    }
    if (rc->rate_limit_burst > NP_RATE_BURST_MAX) {
        return fail(b, "rate_limit_burst", "more than 1000000", NULL, 0);
    }
    if (rc->rate_limit_max_delay_ms > NP_RATE_DELAY_MAX_MS) {
        return fail(b, "rate_limit_max_delay_ms", "more than 600000 (10 minutes)", NULL, 0);
    }
    if (rc->rate_limit_per_minute == 0 &&
        (rc->rate_limit_burst != 0 || rc->rate_limit_max_delay_ms != 0)) {
        return fail(b, rc->rate_limit_burst != 0 ? "rate_limit_burst" : "rate_limit_max_delay_ms",
                    "set without rate_limit_per_minute", NULL, 0);
    }
    r->rate_rpm = rc->rate_limit_per_minute;
    r->rate_burst = rc->rate_limit_burst != 0 ? rc->rate_limit_burst : NP_RATE_BURST_DEFAULT;
    r->rate_max_delay_ms = rc->rate_limit_max_delay_ms;
    if ((rc->tls_client_cert == NULL) != (rc->tls_client_key == NULL)) {
        return fail(b, rc->tls_client_cert == NULL ? "tls_client_cert" : "tls_client_key",
                    "required with the other: set both tls_client_cert and tls_client_key", NULL,
                    0);
    }
    if (rc->tls_client_cert != NULL && !r->tls) {
        return fail(b, "tls_client_cert", "needs an https:// upstream", NULL, 0);
    }
    if (copy_opt(b, "tls_client_cert", rc->tls_client_cert, &r->tls_client_cert) != 0 ||
        copy_opt(b, "tls_client_key", rc->tls_client_key, &r->tls_client_key) != 0) {
        return -1;
    }
    return 0;
}

/* Validate rc (SPEC §1.1) and freeze it into out, one field group at a time. */
int
np_route_build(const struct nonoproxy_route_config *rc, size_t index, struct np_route *out,
               char *why, size_t why_cap)
{
    struct build b = {NULL, 0, NULL, NULL, 0, NULL, false};
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
        build_inject(&b) != 0 || build_mode_fields(&b) != 0 || build_env(&b) != 0 ||
        build_rules(&b) != 0 || build_limits(&b) != 0) {
        goto out;
    }
    rc_ok = 0;
out:
    if (rc_ok != 0 && out != NULL) {
        np_route_free(out);
    }
    return rc_ok != 0 && b.nomem ? -2 : rc_ok;
}

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
        np_route_pattern_split(r->credential_format, &pre, &suf, &suf_len);
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
    np_free(r->tls_client_cert);
    np_free(r->tls_client_key);
    np_route_rules_free(&r->rules);
    free_secret_n(r->secret, r->secret_len);
    free_secret_n(r->inject_value, r->inject_value_len);
    memset(r, 0, sizeof(*r));
}

/* "<UPPER(prefix)>_BASE_URL", non-alphanumerics as '_'. */
size_t
np_route_base_url_name(const struct np_route *r, char *out, size_t cap)
{
    return np_route_env_style(r->prefix, strlen(r->prefix), "_BASE_URL", out, cap);
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
    return np_route_env_style(r->credential_key, strlen(r->credential_key), "", out, cap);
}
