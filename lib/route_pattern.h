/* The {} patterns of routes (SPEC §1, §6.3), L1: credential_format, path_pattern and
 * path_replacement each hold exactly one "{}"; the phantom check, the upstream target and the
 * audit path all find a path pattern with np_route_pattern_find, so they always agree on where
 * the phantom's slot is. */
#ifndef NP_ROUTE_PATTERN_H
#define NP_ROUTE_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

/* Count the non-overlapping "{}" in s. */
size_t np_route_pattern_count(const char *s);

/* Split a pattern with exactly one "{}" into the text before it (*pre_len bytes of pat) and
 * after it (*suf, *suf_len). */
void np_route_pattern_split(const char *pat, size_t *pre_len, const char **suf, size_t *suf_len);

/* Where pattern pre{}suf matches in path[0..len): the match is path[m_start..m_end), the slot
 * (the text at {}) path[c_start..c_end). */
struct np_route_pattern_match {
    size_t m_start;
    size_t c_start;
    size_t c_end;
    size_t m_end;
};

/* First match of pattern in path: the prefix's first occurrence, then the suffix's first after
 * it, or the next '/' (or the end) when the suffix is empty. */
bool np_route_pattern_find(const char *pattern, const char *path, size_t len,
                           struct np_route_pattern_match *m);

/* Whether s[0..len) holds a byte that cannot stand in a request-target: controls, space,
 * non-ASCII. */
bool np_route_unsafe_in_target(const char *s, size_t len);

#endif /* NP_ROUTE_PATTERN_H */
