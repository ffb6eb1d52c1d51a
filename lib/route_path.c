/* Route paths (SPEC §6.1): see route_path.h. */
#include "route_path.h"

#include <string.h>

static const char root_path[] = "/";

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
        } else if (s[i] == '%' && end - i >= 3 && s[i + 1] == '2' &&
                   np_ascii_lower(s[i + 2]) == 'e') {
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
pop_segment(struct np_buf *w, size_t base)
{
    size_t k = w->len;

    while (k > base) {
        k--;
        if (sep_len(w->p + base, w->len - base, k - base) > 0) {
            break;
        }
    }
    np_buf_cut(w, k);
}

/* State of one walk over a path. */
struct walk {
    struct np_buf *w; /* NULL: only check */
    size_t base;      /* where the path starts in w */
    size_t depth;     /* segments above the root */
};

/* Take one segment seg[0..seg_len) preceded by the separator sep[0..sl) (may be empty
 * for the first one): push it, or resolve it as a dot-segment. Returns the dot-segment kind
 * (0 = ordinary), or -1 when ".." would climb above the root. */
static int
take_segment(struct walk *st, const char *sep, size_t sl, const char *seg, size_t seg_len)
{
    int kind = dot_segment(seg, seg_len);
    struct np_buf *w = st->w;

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
            np_buf_put(w, "/", 1); /* the path's first separator is always '/' */
        } else if (w != NULL) {
            np_buf_put(w, sep, sl);
        }
        if (w != NULL) {
            np_buf_put(w, seg, seg_len);
        }
    }
    return kind;
}

/* Walk the path p[0..len) (empty, or starting with a separator) segment by segment. With w
 * NULL only check for escape; else also append its normalised form (dot-segments resolved,
 * other bytes as they are, the first separator written as '/') to w. */
static enum walk_result
walk_path(const char *p, size_t len, struct np_buf *w)
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
        np_buf_put(w, "/", 1); /* "/a/.." is "/a/"; an empty path is "/" */
    }
    return (w != NULL && !np_buf_ok(w)) ? WALK_NOROOM : WALK_OK;
}

void
np_route_split_rest(const char *rest, size_t rest_len, size_t *path_len, const char **query,
                    size_t *query_len)
{
    const char *q = memchr(rest, '?', rest_len);

    *path_len = q != NULL ? (size_t)(q - rest) : rest_len;
    *query = rest + *path_len;
    *query_len = rest_len - *path_len;
}

int
np_route_normalise(const char *p, size_t len, struct np_buf *w)
{
    return walk_path(p, len, w) == WALK_ESCAPES ? -1 : 0;
}

/* Find the route of the first segment and check that the rest's path stays inside it. */
enum np_route_match
np_route_match(const struct np_route *routes, size_t n, const char *target, size_t target_len,
               struct np_route_hit *hit)
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
        np_route_split_rest(r, rlen, &path_len, &query, &query_len);
        if (memchr(r, '\\', path_len) != NULL || memmem(r, path_len, "%00", 3) != NULL ||
            walk_path(r, path_len, NULL) != WALK_OK) {
            return NP_ROUTE_ESCAPES;
        }
    }
    hit->index = i;
    hit->rest = r;
    hit->rest_len = rlen;
    return NP_ROUTE_FOUND;
}
