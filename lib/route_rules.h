/* Endpoint rules of a route (SPEC §13), L1: a list of {method, path glob} compiled once at
 * start and matched against every request that passed the phantom check.
 *
 * Globs. A rule path is split into segments at '/'. A segment "**" matches zero or more whole
 * segments; in any other segment '*' matches any run of characters (never a separator: a
 * segment holds none), everything else is literal ('?' is refused: rules never match the
 * query). Examples, with
 * spaces around '/' since a C comment cannot hold a slash and a star side by side
 * (test/unit/test_route_rules.c holds the full table, docs/ROUTES.md the plain spelling):
 *   / v1 / models   matches "/v1/models" only (not "/v1/models/", not "/v1/models/x")
 *   / v1 / *        matches "/v1/a" and "/v1/" (an empty segment), not "/v1/a/b" nor "/v1"
 *   / v1 / **       matches "/v1", "/v1/", "/v1/a/b"
 *   / a / ** / b    matches "/a/b" and "/a/x/y/b"
 *
 * Requests. What is matched is the path part (no query) of the request's rest after the
 * route's one normalisation (route_path.h, dot-segments resolved): the very bytes that go
 * upstream. Both sides are compared in a canonical spelling: %XX of an unreserved character
 * decoded ("%7e" is "~"), every other %XX upper-cased. Servers disagree on three readings of
 * a path, so a request passes only when it matches under every reading its path allows:
 *   - encoded separators: %2F and %5C split segments, or are plain characters;
 *   - path parameters: ";..." up to the end of a segment is part of it, or is dropped
 *     ("/x.json;y" is "/x.json" to some servers, "/secret;.json" is "/secret");
 *   - empty segments ("//") other than a trailing one: kept, or collapsed.
 * So / v1 / files / * does not let "/v1/files/a%2Fb" through: split, that is two segments.
 * A method matches exactly (case-sensitive) or the rule says "*".
 *
 * Validation (np_route_rules_compile): method "*" or an HTTP token of at most
 * NP_RULE_METHOD_MAX bytes; path starting with '/', at most NP_RULE_PATH_MAX bytes, printable
 * ASCII without space, '#', '\\', ';', a bad or NUL escape, an encoded separator (%2F, %5C),
 * a dot-segment (no normalised request holds one), or '**' inside a segment ("a**"). At most
 * NP_RULES_MAX rules per route. */
#ifndef NP_ROUTE_RULES_H
#define NP_ROUTE_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include <nonoproxy/config.h>

#define NP_RULE_METHOD_MAX 32
#define NP_RULE_PATH_MAX   1024
#define NP_RULES_MAX       4096

/* One segment of a compiled rule path. */
struct np_rule_seg {
    const char *p; /* into the rule's canonical path; not NUL-terminated */
    size_t len;
    bool globstar; /* "**" */
};

/* One compiled rule. */
struct np_rule {
    char *method; /* NULL = any method ("*") */
    char *path;   /* canonical spelling of the glob */
    struct np_rule_seg *segs;
    size_t n_segs;
};

/* The rules of one route. n == 0: the route has none (every request passes). */
struct np_route_rules {
    struct np_rule *rules;
    size_t n;
};

/* Compile rules[0..n) into out (zeroed first). Returns 0, -2 when out of memory, or -1 with
 * why holding "endpoint_rules[<j>].<field>: <detail>" (the caller prefixes the route). */
int np_route_rules_compile(const struct nonoproxy_endpoint_rule *rules, size_t n,
                           struct np_route_rules *out, char *why, size_t why_cap);

/* A request as the rules see it. */
struct np_rule_query {
    const char *method;
    const char *path; /* normalised, without the query; starts with '/' */
    size_t len;
    char *scratch; /* holds the canonical spelling while matching: at least len bytes */
    size_t cap;
};

/* Whether the request q matches a rule of rs; true when rs has no rules. A path the scratch
 * cannot hold matches nothing. No allocation. */
bool np_route_rules_allow(const struct np_route_rules *rs, const struct np_rule_query *q);

/* Free what np_route_rules_compile allocated; leaves *rs empty. NULL-safe. */
void np_route_rules_free(struct np_route_rules *rs);

#endif /* NP_ROUTE_RULES_H */
