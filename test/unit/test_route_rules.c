/* Unit tests for lib/route_rules.h: the endpoint-rule glob (SPEC §13) on the path the route
 * forwards. Each row sends a rest (what follows "/svc" in the request-target) through the
 * route's own prefix match and normalisation (route_path.h), as route_serve.c does, and then
 * through one rule: BAD rows are refused (400) before the rules, the others are allowed or
 * not. The normalised path is also checked to normalise to itself, since the upstream target
 * is built from it by normalising once more (route_target.c). Then: several rules, the
 * compile errors and their messages, and a scratch buffer too small. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "route_build.h"
#include "route_path.h"
#include "route_rules.h"

enum expect { ALLOW = 0, DENY, BAD };

struct row {
    const char *rule_method;
    const char *rule_path;
    const char *method;
    const char *rest; /* after "/svc" */
    enum expect expect;
};

static const struct row rows[] = {
    /* literal paths, methods */
    {"GET", "/v1/models", "GET", "/v1/models", ALLOW},
    {"GET", "/v1/models", "POST", "/v1/models", DENY},
    {"GET", "/v1/models", "get", "/v1/models", DENY}, /* methods are case-sensitive */
    {"GET", "/v1/models", "HEAD", "/v1/models", DENY},
    {"*", "/v1/models", "DELETE", "/v1/models", ALLOW},
    {"*", "/**", "PATCH", "/x/y", ALLOW},
    {"GET", "/v1/models", "GET", "/v1/models/", DENY}, /* a trailing slash is significant */
    {"GET", "/v1/models", "GET", "/v1/models/x", DENY},
    {"GET", "/v1/models", "GET", "/v1/Models", DENY}, /* paths are case-sensitive */
    {"GET", "/v1/models", "GET", "/V1/models", DENY},
    {"GET", "/v1/models", "GET", "/v1/models?x=1", ALLOW}, /* the query is not matched */
    {"GET", "/v1/models", "GET", "/v1/models?/../../admin", ALLOW},
    {"GET", "/v1/models", "GET", "/v1/models%3Fx", DENY}, /* an encoded '?' is path */
    /* percent-encoding: unreserved decoded, other escapes compared with upper-case digits */
    {"GET", "/v1/models", "GET", "/v1/model%73", ALLOW},
    {"GET", "/v1/models", "GET", "/v1/%6Dodels", ALLOW},
    {"GET", "/v1/models", "GET", "/v1/MODEL%73", DENY},
    {"GET", "/v1/a%3Fb", "GET", "/v1/a%3fb", ALLOW},
    {"GET", "/v1/~user", "GET", "/v1/%7Euser", ALLOW},
    {"GET", "/v1/%7euser", "GET", "/v1/~user", ALLOW},
    {"GET", "/v1/a%20b", "GET", "/v1/a%20b", ALLOW},
    {"GET", "/v1/a%20b", "GET", "/v1/a+b", DENY},
    /* encoded separators: must match split and unsplit */
    {"GET", "/v1/models", "GET", "/v1%2Fmodels", DENY},
    {"GET", "/v1/models", "GET", "/v1%2fmodels", DENY},
    {"GET", "/v1/*", "GET", "/v1/a%2Fb", DENY},
    {"GET", "/v1/*", "GET", "/v1/a%2fb", DENY},
    {"GET", "/v1/*", "GET", "/v1/a%5Cb", DENY},
    {"GET", "/v1/*/content", "GET", "/v1/x%2Fcontent", DENY},
    {"GET", "/v1/**", "GET", "/v1/a%2Fb", ALLOW},
    {"GET", "/v1/**", "GET", "/v1%2Fa", DENY},
    {"GET", "/v1/a*", "GET", "/v1/a%2F", DENY},
    {"GET", "/**", "GET", "/a%2F%2Fb", ALLOW},
    /* dot-segments, in every spelling, resolved before matching */
    {"GET", "/v1/models", "GET", "/v1/./models", ALLOW},
    {"GET", "/v1/models", "GET", "/v1/x/../models", ALLOW},
    {"GET", "/v1/models", "GET", "/v1/x/%2e%2e/models", ALLOW},
    {"GET", "/v1/models", "GET", "/v1/x/%2E%2E/models", ALLOW},
    {"GET", "/v1/models", "GET", "/v1/x/.%2e/models", ALLOW},
    {"GET", "/v1/models", "GET", "/x/../v1/models", ALLOW},
    {"GET", "/v1/**", "GET", "/v1/../admin", DENY},
    {"GET", "/v1/**", "GET", "/v1/a/..%2F..%2Fadmin", DENY},
    {"GET", "/v1/**", "GET", "/v1/%2e%2e%2fadmin", DENY},
    {"GET", "/v1/**", "GET", "/v1%5C..%5Cadmin", DENY},
    {"GET", "/v1/*", "GET", "/v1/..;/admin", DENY},
    {"GET", "/v1/**", "GET", "/v1/.%2e/x", DENY},
    {"GET", "/v1/models", "GET", "/../v1/models", BAD},
    {"GET", "/v1/models", "GET", "/v1/../../models", BAD},
    {"GET", "/v1/**", "GET", "/v1/%2e%2e/%2e%2e/admin", BAD},
    {"GET", "/v1/**", "GET", "/v1/x/..%2f..%2f..%2fadmin", BAD},
    {"GET", "/v1/**", "GET", "/v1/a\\b", BAD},
    {"GET", "/v1/**", "GET", "/v1/%00", BAD},
    /* doubled slashes: must match kept and collapsed */
    {"GET", "/v1/models", "GET", "/v1//models", DENY},
    {"GET", "/v1/*/models", "GET", "/v1//models", DENY},
    {"GET", "/v1/**", "GET", "/v1//models", ALLOW},
    {"GET", "/**", "GET", "//v1", ALLOW},
    {"GET", "/v1/**/x", "GET", "/v1//x", ALLOW},
    /* the empty path: "/svc" and "/svc/" are "/", "/svc?q" is "/?q" */
    {"GET", "/", "GET", "", ALLOW},
    {"GET", "/", "GET", "/", ALLOW},
    {"GET", "/", "GET", "?q=1", ALLOW},
    {"GET", "/*", "GET", "", ALLOW},
    {"GET", "/**", "GET", "", ALLOW},
    {"GET", "/v1", "GET", "", DENY},
    {"GET", "/", "GET", "/v1", DENY},
    /* '*' within one segment */
    {"GET", "/v1/*", "GET", "/v1", DENY},
    {"GET", "/v1/*", "GET", "/v1/", ALLOW},
    {"GET", "/v1/*", "GET", "/v1/a", ALLOW},
    {"GET", "/v1/*", "GET", "/v1/a/b", DENY},
    {"GET", "/v1/*/x", "GET", "/v1/a/x", ALLOW},
    {"GET", "/v1/*/x", "GET", "/v1/a/b/x", DENY},
    {"GET", "/v1/chat-*", "GET", "/v1/chat-completions", ALLOW},
    {"GET", "/v1/chat-*", "GET", "/v1/chat", DENY},
    {"GET", "/v1/*.json", "GET", "/v1/a.json", ALLOW},
    {"GET", "/v1/*.json", "GET", "/v1/a.json.bak", DENY},
    {"GET", "/v1/*a*b*", "GET", "/v1/xaybz", ALLOW},
    {"GET", "/v1/*a*b*", "GET", "/v1/xbya", DENY},
    /* '*' within a segment, never across a separator; a literal '?' only escaped */
    {"GET", "/v1/file*", "GET", "/v1/file1", ALLOW},
    {"GET", "/v1/file*", "GET", "/v1/file", ALLOW},
    {"GET", "/v1/file%3F", "GET", "/v1/file%3f", ALLOW},
    {"GET", "/v1/file%3F", "GET", "/v1/file", DENY},
    {"GET", "/v1/a*b", "GET", "/v1/a/b", DENY},
    /* '**' as a whole segment: zero or more segments */
    {"GET", "/v1/**", "GET", "/v1", ALLOW},
    {"GET", "/v1/**", "GET", "/v1/", ALLOW},
    {"GET", "/v1/**", "GET", "/v1/a/b/c", ALLOW},
    {"GET", "/v1/**", "GET", "/v2/a", DENY},
    {"GET", "/v1/**", "GET", "/v10", DENY},
    {"GET", "/a/**/b", "GET", "/a/b", ALLOW},
    {"GET", "/a/**/b", "GET", "/a/x/y/b", ALLOW},
    {"GET", "/a/**/b", "GET", "/a/x/y/c", DENY},
    {"GET", "/a/**/b", "GET", "/a/b/b", ALLOW},
    {"GET", "/a/**/b", "GET", "/a/b/c", DENY},
    {"GET", "/a/**/b/**/c", "GET", "/a/b/x/c", ALLOW},
    {"GET", "/a/**/b/**/c", "GET", "/a/x/c", DENY},
    {"GET", "/**/admin", "GET", "/admin", ALLOW},
    {"GET", "/**/admin", "GET", "/x/y/admin", ALLOW},
    {"GET", "/**/admin", "GET", "/x/y/admin/z", DENY},
    {"GET", "/**/**", "GET", "/q", ALLOW},
    /* path parameters: must match kept and dropped */
    {"GET", "/v1/*.json", "GET", "/v1/secret;.json", DENY},
    {"GET", "/v1/*", "GET", "/v1/a;b", ALLOW},
    {"GET", "/v1/models", "GET", "/v1/models;x", DENY},
    {"GET", "/v1/**", "GET", "/v1/;x/models", ALLOW},
};

/* The normalised rest of a row into out (capacity cap): route_serve.c's steps. Returns the
 * path length, or 0 when the route refuses it (BAD). */
static size_t
normalised(const char *rest, char *out, size_t cap)
{
    struct np_route route;
    struct np_route_hit hit;
    char target[512];
    struct np_buf w;
    size_t path_len;
    const char *q;
    size_t q_len;

    memset(&route, 0, sizeof(route));
    route.prefix = (char *)(uintptr_t) "svc";
    (void)snprintf(target, sizeof(target), "/svc%s", rest);
    if (np_route_match(&route, 1, target, strlen(target), &hit) != NP_ROUTE_FOUND) {
        return 0;
    }
    np_route_split_rest(hit.rest, hit.rest_len, &path_len, &q, &q_len);
    np_buf_init(&w, out, cap);
    if (np_route_normalise(hit.rest, path_len, &w) != 0 || !np_buf_ok(&w)) {
        return 0;
    }
    return w.len;
}

/* np_route_rules_allow for method and path[0..len) with a scratch of cap bytes. */
static bool
allow(const struct np_route_rules *rs, const char *method, const char *path, size_t len, size_t cap,
      char *scratch)
{
    const struct np_rule_query q = {method, path, len, scratch, cap};

    return np_route_rules_allow(rs, &q);
}

/* Compile one rule; fails the test when it does not compile. */
static void
compile1(const char *method, const char *path, struct np_route_rules *rs)
{
    struct nonoproxy_endpoint_rule r = {method, path};
    char why[256] = "";

    if (np_route_rules_compile(&r, 1, rs, why, sizeof(why)) != 0) {
        fail_msg("rule %s %s: %s", method, path, why);
    }
}

static void
glob_table(void **state)
{
    char norm[1024];
    char again[1024];
    char scratch[1024];
    size_t i;

    (void)state;
    assert_true(NP_ARRAY_LEN(rows) >= 60);
    for (i = 0; i < NP_ARRAY_LEN(rows); i++) {
        const struct row *row = &rows[i];
        struct np_route_rules rs;
        size_t len = normalised(row->rest, norm, sizeof(norm));
        enum expect got;
        struct np_buf w;

        compile1(row->rule_method, row->rule_path, &rs);
        if (len == 0) {
            got = BAD;
        } else {
            got = allow(&rs, row->method, norm, len, sizeof(scratch), scratch) ? ALLOW : DENY;
            np_buf_init(&w, again, sizeof(again));
            assert_int_equal(np_route_normalise(norm, len, &w), 0);
            if (w.len != len || memcmp(again, norm, len) != 0) {
                fail_msg("row %zu: '%.*s' does not normalise to itself", i, (int)len, norm);
            }
        }
        if (got != row->expect) {
            fail_msg("row %zu: %s %s vs %s /svc%s (normalised '%.*s'): got %d, want %d", i,
                     row->rule_method, row->rule_path, row->method, row->rest,
                     len > 0 ? (int)len : 0, norm, (int)got, (int)row->expect);
        }
        np_route_rules_free(&rs);
    }
}

/* A request passes when any rule matches; with no rules every request passes. */
static void
several_rules(void **state)
{
    const struct nonoproxy_endpoint_rule list[] = {
        {"GET", "/v1/models"},
        {"POST", "/v1/chat/**"},
        {"*", "/v1/files/*"},
    };
    struct np_route_rules rs;
    struct np_route_rules none;
    char scratch[256];
    char why[256];

    (void)state;
    assert_int_equal(np_route_rules_compile(list, NP_ARRAY_LEN(list), &rs, why, sizeof(why)), 0);
    assert_int_equal(rs.n, 3);
    assert_true(allow(&rs, "GET", "/v1/models", 10, sizeof(scratch), scratch));
    assert_false(allow(&rs, "POST", "/v1/models", 10, sizeof(scratch), scratch));
    assert_true(allow(&rs, "POST", "/v1/chat/completions", 20, sizeof(scratch), scratch));
    assert_false(allow(&rs, "GET", "/v1/chat/completions", 20, sizeof(scratch), scratch));
    assert_true(allow(&rs, "DELETE", "/v1/files/x", 11, sizeof(scratch), scratch));
    /* Split, "a%2Fb" is two segments: no rule for GET matches that reading. */
    assert_false(allow(&rs, "GET", "/v1/files/a%2Fb", 15, sizeof(scratch), scratch));
    /* A scratch too small for the path: nothing matches. */
    assert_false(allow(&rs, "GET", "/v1/models", 10, 9, scratch));
    /* Not a path. */
    assert_false(allow(&rs, "GET", "v1/models", 9, sizeof(scratch), scratch));
    np_route_rules_free(&rs);
    assert_int_equal(rs.n, 0);
    np_route_rules_free(&rs); /* twice is fine */
    np_route_rules_free(NULL);

    assert_int_equal(np_route_rules_compile(NULL, 0, &none, why, sizeof(why)), 0);
    assert_true(allow(&none, "BREW", "/anything", 9, 1, scratch));
    assert_true(allow(NULL, "GET", "/x", 2, 1, scratch));
}

struct bad_rule {
    const char *method;
    const char *path;
    const char *why; /* the start of the message */
};

static void
compile_errors_name_the_rule(void **state)
{
    static char long_path[NP_RULE_PATH_MAX + 2];
    static const struct bad_rule bad[] = {
        {NULL, "/x", "endpoint_rules[1].method: required"},
        {"", "/x", "endpoint_rules[1].method: empty"},
        {"G ET", "/x", "endpoint_rules[1].method: must be '*' or an HTTP method"},
        {"GET\r\n", "/x", "endpoint_rules[1].method: must be '*' or an HTTP method"},
        {"GET/x", "/x", "endpoint_rules[1].method: must be '*' or an HTTP method"},
        {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "/x", "endpoint_rules[1].method: longer than 32"},
        {"GET", NULL, "endpoint_rules[1].path: required"},
        {"GET", "", "endpoint_rules[1].path: must start with '/'"},
        {"GET", "/v1/a?x=1", "endpoint_rules[1].path: '?' is not allowed"},
        {"GET", "/v1/?", "endpoint_rules[1].path: '?' is not allowed"},
        {"get", "/x", "endpoint_rules[1].method: must be upper case"},
        {"Post", "/x", "endpoint_rules[1].method: must be upper case"},
        {"CONNECT", "/x", "endpoint_rules[1].method: never reaches a route"},
        {"TRACE", "/x", "endpoint_rules[1].method: never reaches a route"},
        {"TRACK", "/x", "endpoint_rules[1].method: never reaches a route"},
        {"GET", "v1/x", "endpoint_rules[1].path: must start with '/'"},
        {"GET", "*", "endpoint_rules[1].path: must start with '/'"},
        {"GET", "/v1/a**", "endpoint_rules[1].path: '**' must be a whole segment"},
        {"GET", "/v1/**b", "endpoint_rules[1].path: '**' must be a whole segment"},
        {"GET", "/v1/***", "endpoint_rules[1].path: '**' must be a whole segment"},
        {"GET", "/v1/../x", "endpoint_rules[1].path: a dot-segment"},
        {"GET", "/v1/./x", "endpoint_rules[1].path: a dot-segment"},
        {"GET", "/v1/%2e%2E", "endpoint_rules[1].path: a dot-segment"},
        {"GET", "/v1//x", "endpoint_rules[1].path: an empty segment"},
        {"GET", "/v1/a;b", "endpoint_rules[1].path: ';' (path parameters)"},
        {"GET", "/v1/a b", "endpoint_rules[1].path: control character, space"},
        {"GET", "/v1/a\tb", "endpoint_rules[1].path: control character, space"},
        {"GET", "/v1/\x7f", "endpoint_rules[1].path: control character, space"},
        {"GET", "/v1/\xc3\xa9", "endpoint_rules[1].path: control character, space"},
        {"GET", "/v1/a#b", "endpoint_rules[1].path: '#' and '\\'"},
        {"GET", "/v1/a\\b", "endpoint_rules[1].path: '#' and '\\'"},
        {"GET", "/v1/a%2Fb", "endpoint_rules[1].path: an encoded separator"},
        {"GET", "/v1/a%5cb", "endpoint_rules[1].path: an encoded separator"},
        {"GET", "/v1/%zz", "endpoint_rules[1].path: '%' must start an escape"},
        {"GET", "/v1/%4", "endpoint_rules[1].path: '%' must start an escape"},
        {"GET", "/v1/%00", "endpoint_rules[1].path: %00 is not allowed"},
        {"GET", long_path, "endpoint_rules[1].path: longer than 1024 bytes"},
    };
    char why[256];
    size_t i;

    (void)state;
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    for (i = 0; i < NP_ARRAY_LEN(bad); i++) {
        struct nonoproxy_endpoint_rule list[2] = {{"GET", "/ok"}, {bad[i].method, bad[i].path}};
        struct np_route_rules rs;

        why[0] = '\0';
        if (np_route_rules_compile(list, 2, &rs, why, sizeof(why)) != -1) {
            fail_msg("case %zu compiled", i);
        }
        if (strncmp(why, bad[i].why, strlen(bad[i].why)) != 0) {
            fail_msg("case %zu: got \"%s\", want \"%s...\"", i, why, bad[i].why);
        }
        assert_null(rs.rules);
        assert_int_equal(rs.n, 0);
    }
    /* The message quotes the path printable and shortened, never a raw control byte. */
    {
        struct nonoproxy_endpoint_rule r = {"GET", "/v1/a\nb"};
        struct np_route_rules rs;

        assert_int_equal(np_route_rules_compile(&r, 1, &rs, why, sizeof(why)), -1);
        assert_null(strchr(why, '\n'));
    }
}

/* Rules that compile, with their canonical spelling. */
static void
compile_canonical(void **state)
{
    struct np_route_rules rs;

    (void)state;
    compile1("*", "/v1/%7e%41%2a/**/x*", &rs);
    assert_null(rs.rules[0].method);
    assert_string_equal(rs.rules[0].path, "/v1/~A%2A/**/x*");
    assert_int_equal(rs.rules[0].n_segs, 4);
    assert_true(rs.rules[0].segs[2].globstar);
    np_route_rules_free(&rs);
    compile1("GET", "/", &rs);
    assert_int_equal(rs.rules[0].n_segs, 1);
    assert_int_equal(rs.rules[0].segs[0].len, 0);
    np_route_rules_free(&rs);
    compile1("GET", "/v1/", &rs); /* a trailing slash: a last, empty segment */
    assert_int_equal(rs.rules[0].n_segs, 2);
    np_route_rules_free(&rs);
}

/* More rules than the cap, and every allocation failing in turn: no leak, -2. */
static void
compile_limits_and_nomem(void **state)
{
    const struct nonoproxy_endpoint_rule list[] = {{"GET", "/a/*"}, {"*", "/b/**"}};
    struct np_route_rules rs;
    char why[256];
    unsigned long n;
    int rc;

    (void)state;
    assert_int_equal(np_route_rules_compile(list, NP_RULES_MAX + 1, &rs, why, sizeof(why)), -1);
    assert_string_equal(why, "endpoint_rules: more than 4096 rules");
    for (n = 1;; n++) {
        np_alloc_fail_at(n);
        rc = np_route_rules_compile(list, 2, &rs, why, sizeof(why));
        np_alloc_fail_at(0);
        if (rc == 0) {
            np_route_rules_free(&rs);
            break;
        }
        assert_int_equal(rc, -2);
        assert_null(rs.rules);
    }
    assert_true(n > 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(glob_table),
        cmocka_unit_test(several_rules),
        cmocka_unit_test(compile_errors_name_the_rule),
        cmocka_unit_test(compile_canonical),
        cmocka_unit_test(compile_limits_and_nomem),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
