/* The upstream request-target of a route (SPEC §6.4): see route_target.h. */
#include "route_target.h"

#include <stdbool.h>
#include <string.h>

#include "alloc.h"
#include "route_path.h"
#include "route_pattern.h"

/* Write the normalised path p[0..len), with the secret where the URL_PATH pattern matches in
 * it on URL_PATH credential routes. The path is normalised into a scratch copy first, so that
 * out needs room for the result only (a popped segment or the phantom takes room before it
 * goes). Returns 0, -1 (see np_route_upstream_target) or -2 when out of memory. */
static int
put_path(const struct np_route *r, struct np_buf *w, const char *p, size_t len)
{
    struct np_route_pattern_match m = {0, 0, 0, 0};
    size_t cap = len + 2; /* normalising adds at most one '/' */
    char small[256];      /* the usual path: no allocation per request */
    char *scratch = cap <= sizeof(small) ? small : np_malloc(cap);
    struct np_buf s;
    bool inject = r->credential_key != NULL && r->mode == NONOPROXY_INJECT_URL_PATH;
    size_t pre = 0;
    const char *suf = NULL;
    size_t suf_len = 0;
    int rc = -1;

    if (inject && np_route_unsafe_in_target(r->secret, r->secret_len)) {
        goto out;
    }
    if (scratch == NULL) {
        rc = -2;
        goto out;
    }
    np_buf_init(&s, scratch, cap);
    if (np_route_normalise(p, len, &s) != 0 || !np_buf_ok(&s)) {
        goto out;
    }
    if (!inject) {
        np_buf_put(w, s.p, s.len);
        rc = 0;
        goto out;
    }
    if (!np_route_pattern_find(r->path_pattern, s.p, s.len, &m)) {
        goto out;
    }
    np_route_pattern_split(r->path_replacement, &pre, &suf, &suf_len);
    np_buf_put(w, s.p, m.m_start);
    np_buf_put(w, r->path_replacement, pre);
    np_buf_put(w, r->secret, r->secret_len);
    np_buf_put(w, suf, suf_len);
    np_buf_put(w, s.p + m.m_end, s.len - m.m_end);
    rc = 0;
out:
    if (scratch != NULL) {
        np_secure_zero(scratch, cap); /* it may hold the phantom */
    }
    if (scratch != small) {
        np_free(scratch);
    }
    return rc;
}

/* Write "name=<percent-encoded secret>". */
static void
put_param(const struct np_route *r, struct np_buf *w)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;

    np_buf_puts(w, r->query_param_name);
    np_buf_put(w, "=", 1);
    for (i = 0; i < r->secret_len; i++) {
        unsigned char ch = (unsigned char)r->secret[i];

        if (np_uri_is_unreserved((char)ch)) {
            np_buf_put(w, &r->secret[i], 1);
        } else {
            char esc[3] = {'%', hex[ch >> 4], hex[ch & 0x0f]};

            np_buf_put(w, esc, sizeof(esc));
        }
    }
}

/* Copy the query q[0..len) ('?' included, or empty) with every query_param_name pair set to
 * the secret, adding the pair when there is none. */
static void
put_query_with_secret(const struct np_route *r, struct np_buf *w, const char *q, size_t len)
{
    size_t nlen = strlen(r->query_param_name);
    bool replaced = false;
    size_t i = 1;

    if (len <= 1) {
        np_buf_put(w, "?", 1);
        put_param(r, w);
        return;
    }
    np_buf_put(w, "?", 1);
    while (i <= len) {
        const char *amp = memchr(q + i, '&', len - i);
        size_t end = amp != NULL ? (size_t)(amp - q) : len;
        const char *eq = memchr(q + i, '=', end - i);

        if (i > 1) {
            np_buf_put(w, "&", 1);
        }
        if (eq != NULL && (size_t)(eq - (q + i)) == nlen &&
            memcmp(q + i, r->query_param_name, nlen) == 0) {
            put_param(r, w);
            replaced = true;
        } else {
            np_buf_put(w, q + i, end - i);
        }
        i = end + 1;
    }
    if (!replaced) {
        np_buf_put(w, "&", 1);
        put_param(r, w);
    }
}

/* base_path + normalised path of rest + query, with the secret per mode (see route_target.h). */
int
np_route_upstream_target(const struct np_route *r, const char *rest, size_t rest_len,
                         struct np_buf *w)
{
    size_t start = w->len;
    bool cred = r->credential_key != NULL;
    size_t path_len = 0;
    const char *query = NULL;
    size_t query_len = 0;
    int rc = -1;

    if (cred && (r->mode == NONOPROXY_INJECT_URL_PATH || r->mode == NONOPROXY_INJECT_QUERY_PARAM) &&
        r->secret == NULL) {
        goto out;
    }
    np_route_split_rest(rest, rest_len, &path_len, &query, &query_len);
    np_buf_puts(w, r->base_path);
    rc = put_path(r, w, rest, path_len);
    if (rc != 0) {
        goto out;
    }
    rc = -1;
    if (cred && r->mode == NONOPROXY_INJECT_QUERY_PARAM) {
        put_query_with_secret(r, w, query, query_len);
    } else {
        np_buf_put(w, query, query_len);
    }
    if (!np_buf_ok(w)) {
        goto out;
    }
    rc = 0;
out:
    if (rc != 0 && w->p != NULL) {
        np_secure_zero(w->p + start, w->len - start);
        np_buf_cut(w, start);
    }
    return rc;
}

void
np_route_uphead(const struct np_route *r, const struct np_http_req *req, struct np_slice target,
                const char *token, struct np_uphead *u)
{
    bool header_mode = r->credential_key != NULL && (r->mode == NONOPROXY_INJECT_HEADER ||
                                                     r->mode == NONOPROXY_INJECT_BASIC_AUTH);

    memset(u, 0, sizeof(*u));
    u->req = req;
    u->target = target;
    u->host.p = r->host_header;
    u->host.len = strlen(r->host_header);
    u->token = token;
    u->drop_name = header_mode ? r->inject_header : NULL;
    u->inject_name = header_mode && r->inject_value != NULL ? r->inject_header : NULL;
    u->inject_value.p = r->inject_value;
    u->inject_value.len = r->inject_value_len;
}
