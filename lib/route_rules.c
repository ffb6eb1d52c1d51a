/* Endpoint rules of a route (SPEC §13): see route_rules.h. */
#include "route_rules.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "common.h"
#include "http_head.h"

/* Readings of a request path (route_rules.h), as bits of a mask. */
#define READ_SPLIT    1u /* %2F and %5C separate segments */
#define READ_STRIP    2u /* ";..." to the end of a segment is dropped */
#define READ_COLLAPSE 4u /* empty segments other than the last are dropped */

#define QUOTE_MAX 96 /* bytes of a rule path quoted in a start error */

/* The canonical spelling of in[0..len) into out (capacity cap): %XX of an unreserved character
 * decoded, every other %XX with upper-case digits, other bytes as they are. Never longer than
 * the input. Returns the length, or SIZE_MAX when out is too small. */
static size_t
canonical(const char *in, size_t len, char *out, size_t cap)
{
    size_t i = 0;
    size_t n = 0;

    if (cap < len) {
        return SIZE_MAX;
    }
    while (i < len) {
        int hi = i + 2 < len && in[i] == '%' ? np_hex_value(in[i + 1]) : -1;
        int lo = hi >= 0 ? np_hex_value(in[i + 2]) : -1;
        char ch = (char)(hi * 16 + lo);

        if (lo < 0) {
            out[n++] = in[i++];
        } else if (np_uri_is_unreserved(ch)) {
            out[n++] = ch;
            i += 3;
        } else {
            out[n++] = '%';
            out[n++] = np_ascii_upper(in[i + 1]);
            out[n++] = np_ascii_upper(in[i + 2]);
            i += 3;
        }
    }
    return n;
}

/* A canonical request path read one way. */
struct reading {
    const char *p;
    size_t len;
    unsigned how; /* READ_* bits */
};

/* Length of the separator at p[i] under rd ('/': 1; %2F, %5C when split: 3), or 0. */
static size_t
sep_at(const struct reading *rd, size_t i)
{
    const char *p = rd->p;

    if (p[i] == '/') {
        return 1;
    }
    if ((rd->how & READ_SPLIT) != 0 && p[i] == '%' && rd->len - i >= 3 &&
        ((p[i + 1] == '2' && p[i + 2] == 'F') || (p[i + 1] == '5' && p[i + 2] == 'C'))) {
        return 3;
    }
    return 0;
}

/* The segment that starts at *pos (1 = the first, after the leading '/'; len + 1 = none
 * left) into *s, *slen, and *pos past it. Returns false when none is left. */
static bool
seg_next(const struct reading *rd, size_t *pos, const char **s, size_t *slen)
{
    for (;;) {
        size_t start = *pos;
        size_t end = start;
        size_t sl = 0;
        const char *semi;

        if (start > rd->len) {
            return false;
        }
        while (end < rd->len && (sl = sep_at(rd, end)) == 0) {
            end++;
        }
        *pos = end < rd->len ? end + sl : rd->len + 1;
        *s = rd->p + start;
        *slen = end - start;
        semi = (rd->how & READ_STRIP) != 0 ? memchr(*s, ';', *slen) : NULL;
        if (semi != NULL) {
            *slen = (size_t)(semi - *s);
        }
        if (*slen > 0 || (rd->how & READ_COLLAPSE) == 0 || end == rd->len) {
            return true;
        }
    }
}

/* Whether the segment s[0..len) matches the glob segment g ('*' any run of bytes). */
static bool
seg_match(const struct np_rule_seg *g, const char *s, size_t len)
{
    size_t gi = 0;
    size_t si = 0;
    size_t star = SIZE_MAX;
    size_t mark = 0;

    while (si < len) {
        if (gi < g->len && g->p[gi] != '*' && g->p[gi] == s[si]) {
            gi++;
            si++;
        } else if (gi < g->len && g->p[gi] == '*') {
            star = gi++;
            mark = si;
        } else if (star != SIZE_MAX) {
            gi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (gi < g->len && g->p[gi] == '*') {
        gi++;
    }
    return gi == g->len;
}

/* Whether the path read as rd matches r's glob: segments one for one, "**" absorbing any
 * number of them (the greedy wildcard walk with one backtracking point, as seg_match). */
static bool
path_match(const struct np_rule *r, const struct reading *rd)
{
    size_t gi = 0;
    size_t pos = 1;
    size_t star = SIZE_MAX;
    size_t star_pos = 0;
    const char *s;
    size_t sl;
    size_t next = pos;

    while (seg_next(rd, &next, &s, &sl)) {
        if (gi < r->n_segs && r->segs[gi].globstar) {
            star = gi++;
            star_pos = pos;
        } else if (gi < r->n_segs && seg_match(&r->segs[gi], s, sl)) {
            gi++;
            pos = next;
        } else if (star != SIZE_MAX) {
            gi = star + 1;
            next = star_pos;
            (void)seg_next(rd, &next, &s, &sl); /* "**" takes one more segment */
            star_pos = next;
            pos = next;
        } else {
            return false;
        }
        next = pos;
    }
    while (gi < r->n_segs && r->segs[gi].globstar) {
        gi++;
    }
    return gi == r->n_segs;
}

/* Whether some rule for method matches the path read as rd. */
static bool
any_rule(const struct np_route_rules *rs, const char *method, const struct reading *rd)
{
    size_t i;

    for (i = 0; i < rs->n; i++) {
        const struct np_rule *r = &rs->rules[i];

        if ((r->method == NULL || strcmp(r->method, method) == 0) && path_match(r, rd)) {
            return true;
        }
    }
    return false;
}

/* The readings that can differ from the plain one for the canonical path p[0..len). */
static unsigned
relevant_readings(const char *p, size_t len)
{
    unsigned m = 0;

    if (memmem(p, len, "%2F", 3) != NULL || memmem(p, len, "%5C", 3) != NULL) {
        m |= READ_SPLIT | READ_COLLAPSE;
    }
    if (memchr(p, ';', len) != NULL) {
        m |= READ_STRIP | READ_COLLAPSE;
    }
    if (memmem(p, len, "//", 2) != NULL) {
        m |= READ_COLLAPSE;
    }
    return m;
}

bool
np_route_rules_allow(const struct np_route_rules *rs, const struct np_rule_query *q)
{
    struct reading rd;
    unsigned all;
    unsigned m;

    if (rs == NULL || rs->n == 0) {
        return true;
    }
    if (q->method == NULL || q->path == NULL || q->len == 0 || q->path[0] != '/') {
        return false;
    }
    rd.p = q->scratch;
    rd.len = canonical(q->path, q->len, q->scratch, q->cap);
    if (rd.len == SIZE_MAX) {
        return false;
    }
    all = relevant_readings(rd.p, rd.len);
    /* Every subset of the relevant readings, all down to the plain one (0). */
    for (m = all;; m = (m - 1) & all) {
        rd.how = m;
        if (!any_rule(rs, q->method, &rd)) {
            return false;
        }
        if (m == 0) {
            return true;
        }
    }
}

/* ---- compiling ---------------------------------------------------------------------------- */

/* Where a compile error goes: why (capacity cap), about rule j. */
struct rule_err {
    char *why;
    size_t cap;
    size_t j;
};

/* Write "endpoint_rules[j].<field>: <detail>" (and " ('<value>')") into e->why. Returns -1. */
static int
rule_fail(const struct rule_err *e, const char *field, const char *detail, const char *value)
{
    char shown[QUOTE_MAX];

    if (e->why == NULL || e->cap == 0) {
        return -1;
    }
    if (value != NULL) {
        np_copy_printable(shown, sizeof(shown), value, strlen(value));
        (void)snprintf(e->why, e->cap, "endpoint_rules[%zu].%s: %s ('%s')", e->j, field, detail,
                       shown);
    } else {
        (void)snprintf(e->why, e->cap, "endpoint_rules[%zu].%s: %s", e->j, field, detail);
    }
    return -1;
}

/* Why method cannot be a rule's method, or NULL. */
static const char *
method_problem(const char *m)
{
    size_t i;

    if (m == NULL) {
        return "required";
    }
    if (strcmp(m, "*") == 0) {
        return NULL;
    }
    if (m[0] == '\0') {
        return "empty";
    }
    if (strlen(m) > NP_RULE_METHOD_MAX) {
        return "longer than 32 bytes";
    }
    for (i = 0; m[i] != '\0'; i++) {
        if (!np_http_is_tchar(m[i])) {
            return "must be '*' or an HTTP method (a token, case-sensitive)";
        }
        if (m[i] >= 'a' && m[i] <= 'z') {
            return "must be upper case: a request with another method never reaches a route";
        }
    }
    if (strcmp(m, "CONNECT") == 0 || strcmp(m, "TRACE") == 0 || strcmp(m, "TRACK") == 0) {
        return "never reaches a route (CONNECT is a tunnel; TRACE and TRACK get 405)";
    }
    return NULL;
}

/* Why the escape at p (a '%') cannot be in a rule path, or NULL. */
static const char *
escape_problem(const char *p)
{
    int hi = np_hex_value(p[1]);
    int lo = hi >= 0 ? np_hex_value(p[2]) : -1;
    int v = hi * 16 + lo;

    if (lo < 0) {
        return "'%' must start an escape %XX";
    }
    if (v == 0) {
        return "%00 is not allowed";
    }
    if (v == '/' || v == '\\') {
        return "an encoded separator (%2F, %5C) is not allowed; write '/'";
    }
    return NULL;
}

/* Why the bytes of the rule path p cannot be a glob, or NULL (the segments are checked later). */
static const char *
path_chars_problem(const char *p)
{
    size_t i;

    if (p == NULL) {
        return "required";
    }
    if (p[0] != '/') {
        return "must start with '/'";
    }
    if (strlen(p) > NP_RULE_PATH_MAX) {
        return "longer than 1024 bytes";
    }
    for (i = 0; p[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)p[i];
        const char *e = ch == '%' ? escape_problem(p + i) : NULL;

        if (ch <= 0x20 || ch >= 0x7f) {
            return "control character, space or non-ASCII byte";
        }
        if (ch == '#' || ch == '\\') {
            return "'#' and '\\' are not allowed";
        }
        if (ch == '?') {
            return "'?' is not allowed: rules match the path only, never the query";
        }
        if (ch == ';') {
            return "';' (path parameters) is not allowed: requests are matched with and "
                   "without them";
        }
        if (e != NULL) {
            return e;
        }
    }
    return NULL;
}

/* Why the canonical segment s[0..len) (not the last when !last) cannot be in a glob, or NULL. */
static const char *
seg_problem(const char *s, size_t len, bool last)
{
    if (len == 0 && !last) {
        return "an empty segment ('//') is not allowed";
    }
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.')) {
        return "a dot-segment ('.', '..') is not allowed: requests are normalised";
    }
    if (memmem(s, len, "**", 2) != NULL && len != 2) {
        return "'**' must be a whole segment";
    }
    return NULL;
}

/* Split r->path (canonical) into r->segs. Returns NULL, or why it cannot be a glob. Sets
 * *nomem when an allocation failed. */
static const char *
split_segments(struct np_rule *r, bool *nomem)
{
    const char *p = r->path + 1;
    size_t n = 1;
    size_t i;
    const char *why;

    for (i = 0; p[i] != '\0'; i++) {
        n += p[i] == '/';
    }
    r->segs = np_calloc(n, sizeof(*r->segs));
    if (r->segs == NULL) {
        *nomem = true;
        return "out of memory";
    }
    for (i = 0; i < n; i++) {
        const char *slash = strchr(p, '/');
        size_t len = slash != NULL ? (size_t)(slash - p) : strlen(p);

        why = seg_problem(p, len, i + 1 == n);
        if (why != NULL) {
            return why;
        }
        r->segs[i] = (struct np_rule_seg){p, len, len == 2 && p[0] == '*' && p[1] == '*'};
        p += len + 1;
    }
    r->n_segs = n;
    return NULL;
}

/* Compile one rule into r (errors to e). Returns 0, -1 or -2 (see np_route_rules_compile). */
static int
compile_one(const struct nonoproxy_endpoint_rule *in, const struct rule_err *e, struct np_rule *r)
{
    const char *problem = method_problem(in->method);
    bool nomem = false;
    size_t len;

    if (problem != NULL) {
        return rule_fail(e, "method", problem, in->method);
    }
    problem = path_chars_problem(in->path);
    if (problem != NULL) {
        return rule_fail(e, "path", problem, in->path);
    }
    len = strlen(in->path);
    r->method = strcmp(in->method, "*") == 0 ? NULL : np_strdup(in->method);
    r->path = np_malloc(len + 1);
    if ((r->method == NULL && strcmp(in->method, "*") != 0) || r->path == NULL) {
        (void)rule_fail(e, "path", "out of memory", NULL);
        return -2;
    }
    len = canonical(in->path, len, r->path, len);
    r->path[len] = '\0';
    problem = split_segments(r, &nomem);
    if (problem != NULL) {
        (void)rule_fail(e, "path", problem, nomem ? NULL : in->path);
        return nomem ? -2 : -1;
    }
    return 0;
}

int
np_route_rules_compile(const struct nonoproxy_endpoint_rule *rules, size_t n,
                       struct np_route_rules *out, char *why, size_t why_cap)
{
    size_t j;
    int rc;

    memset(out, 0, sizeof(*out));
    if (n == 0) {
        return 0;
    }
    if (rules == NULL || n > NP_RULES_MAX) {
        (void)snprintf(why, why_cap, "endpoint_rules: %s",
                       rules == NULL ? "NULL list" : "more than 4096 rules");
        return -1;
    }
    out->rules = np_calloc(n, sizeof(*out->rules));
    if (out->rules == NULL) {
        (void)snprintf(why, why_cap, "endpoint_rules: out of memory");
        return -2;
    }
    out->n = n;
    for (j = 0; j < n; j++) {
        struct rule_err e = {why, why_cap, j};

        rc = compile_one(&rules[j], &e, &out->rules[j]);
        if (rc != 0) {
            np_route_rules_free(out);
            return rc;
        }
    }
    return 0;
}

void
np_route_rules_free(struct np_route_rules *rs)
{
    size_t i;

    if (rs == NULL) {
        return;
    }
    for (i = 0; rs->rules != NULL && i < rs->n; i++) {
        np_free(rs->rules[i].method);
        np_free(rs->rules[i].path);
        np_free(rs->rules[i].segs);
    }
    np_free(rs->rules);
    memset(rs, 0, sizeof(*rs));
}
