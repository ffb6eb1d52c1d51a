/* Route paths (SPEC §6.1), L1: prefix matching, the traversal check and the normalisation of
 * the path after the prefix. A rest path is read as segments split at every separator
 * spelling: '/', '\\', %2f and %5c (any case). A segment is a dot-segment when, up to its first
 * ';' (path parameters, which some servers drop: "..;" is ".." to them), it decodes to "." or
 * ".." with '.' spelt '.', %2e or %2E. np_route_match refuses a path whose ".." would climb
 * above its root; np_route_normalise resolves every dot-segment, so what goes upstream holds
 * no segment that any server could read as a dot-segment, however it decodes. */
#ifndef NP_ROUTE_PATH_H
#define NP_ROUTE_PATH_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "route_build.h"

/* Where a request matched: routes[index], and the rest of the target after the prefix. */
struct np_route_hit {
    size_t index;
    const char *rest;
    size_t rest_len;
};

enum np_route_match {
    NP_ROUTE_FOUND = 0,
    NP_ROUTE_NOT_FOUND, /* no route has this first segment (404) */
    NP_ROUTE_ESCAPES,   /* the path leaves the prefix after decoding (400) */
};

/* Match an origin-form target "/<segment>[/rest][?query]" against routes[0..n): the first
 * segment (up to '/', '?' or the end) must equal a prefix exactly ("/svcX" never matches
 * "svc"). On FOUND hit->index is the route and hit->rest, hit->rest_len the remainder, query
 * included, pointing into target: it starts with '/', or with '?' for a target "/svc?q" (rest "?q",
 * which every function here reads as "/?q"; "/?q" itself is not in target); a target of
 * exactly "/svc" yields "/" (a static string).
 * ESCAPES when, in the path part of rest (before '?'), a dot-segment "." or ".." (also spelt
 * with %2e/%2E) would climb above rest's root, taking '/', '\\', %2f and %5c (any case) all
 * as separators; also when the path holds %00 or a literal '\\'. */
enum np_route_match np_route_match(const struct np_route *routes, size_t n, const char *target,
                                   size_t target_len, struct np_route_hit *hit);

/* Split rest into its path (up to the first '?') and its query ('?' included, may be empty). */
void np_route_split_rest(const char *rest, size_t rest_len, size_t *path_len, const char **query,
                         size_t *query_len);

/* Append the normalised form of the path p[0..len) (empty, or starting with a separator) to w:
 * dot-segments resolved, other bytes as they are, the first separator written as '/', and "/"
 * for an empty path. Returns 0, or -1 when the path climbs above its root (nothing is then
 * guaranteed about w). An overflow of w shows in np_buf_ok. */
int np_route_normalise(const char *p, size_t len, struct np_buf *w);

#endif /* NP_ROUTE_PATH_H */
