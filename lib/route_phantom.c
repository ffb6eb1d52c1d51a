/* The phantom check of routes (SPEC §6.3): see route_phantom.h. Every buffer that held a
 * decoded phantom is wiped before return. */
#include "route_phantom.h"

#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "route_path.h"
#include "route_pattern.h"
#include "token.h"

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

    if (np_token_scheme_value(v, len, "bearer", &cred, &cred_len)) {
        ok |= np_ct_equal(cred, cred_len, tok, tok_len);
    }
    np_route_pattern_split(r->credential_format, &pre, &suf, &suf_len);
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
    const char *b64 = NULL;
    size_t b64_len = 0;

    return np_token_scheme_value(v, len, "basic", &b64, &b64_len) &&
           np_token_basic_ok(b64, b64_len, tok, tok_len);
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
    unsigned char dec[NP_TOKEN_HEX_LEN + 1]; /* a longer value cannot be the token */
    size_t path_len = 0;
    const char *query = NULL;
    size_t query_len = 0;
    const char *val = NULL;
    size_t val_len = 0;
    size_t n;
    bool ok = false;

    np_route_split_rest(rest, rest_len, &path_len, &query, &query_len);
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
    struct np_route_pattern_match m;
    size_t path_len = 0;
    const char *query = NULL;
    size_t query_len = 0;

    np_route_split_rest(rest, rest_len, &path_len, &query, &query_len);
    if (!np_route_pattern_find(r->path_pattern, rest, path_len, &m)) {
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
        return h != NULL &&
               np_token_scheme_value(h->value, h->value_len, "bearer", &cred, &cred_len) &&
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
    case NONOPROXY_INJECT_NONE:
        break; /* np_route_build never leaves it */
    }
    return false;
}
