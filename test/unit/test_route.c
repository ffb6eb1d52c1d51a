/* Unit tests for the route_* modules: route validation (SPEC §1.1) and defaults, upstream
 * fields (route_build.h), prefix matching and the traversal check (route_path.h), phantom
 * checks per mode (route_phantom.h), the upstream request-target and head of a route
 * (route_target.h, through upstream_head.h), injection values and the env variable names
 * (route_env.h). */
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
#include "route_env.h"
#include "route_path.h"
#include "route_phantom.h"
#include "route_target.h"
#include "upstream_head.h"

#define TOKEN         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define TOKEN_CHANGED "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdee"
#define TOKEN_SHORT   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"
#define TOKEN_LONG    TOKEN "0"
#define TOKEN_UPPER   "0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"
/* TOKEN with its first byte percent-encoded, and with every byte encoded in part. */
#define TOKEN_PCT     "%30123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define TOKEN_PCT_LOW "0123456789%61bcdef0123456789abcdef0123456789abcdef0123456789abcde%66"

/* base64 of "user:" TOKEN, ":" TOKEN, "x:y:" TOKEN, "user:" TOKEN_CHANGED, "nono:" TOKEN. */
#define B64_USER_TOKEN                                                                             \
    "dXNlcjowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm"
#define B64_EMPTYUSER_TOKEN                                                                        \
    "OjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
#define B64_XY_TOKEN                                                                               \
    "eDp5OjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
#define B64_USER_CHANGED                                                                           \
    "dXNlcjowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVl"
#define B64_NONO_TOKEN                                                                             \
    "bm9ubzowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm"

#define WHY_CAP 256

/* ---------------------------------------------------------------------------------------- */
/* Fixtures                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* The routes the tables refer to by kind. */
enum kind {
    K_HDR = 0,    /* HEADER, Authorization, "Bearer {}", secret sk-real, base /v1 */
    K_HDR_X,      /* HEADER, X-Api-Key, "{}" */
    K_HDR_TOKEN,  /* HEADER, Authorization, "token {}" */
    K_BASIC,      /* BASIC_AUTH, secret user:pass */
    K_PATH,       /* URL_PATH "/bot{}/", secret 123:ABC */
    K_PATH_REPL,  /* URL_PATH "/bot{}/" -> "/v2/bot{}/" */
    K_PATH_NOSUF, /* URL_PATH "/key/{}", secret s3cr3t */
    K_QUERY,      /* QUERY_PARAM "key", secret with reserved and non-ASCII bytes */
    K_NOCRED,     /* no credential */
    K_ROOT,       /* HEADER, upstream without a path */
    K_NOSECRET,   /* HEADER with a credential that is not loaded */
};

#define QUERY_SECRET     "s k&=/~-._\xc3\xa9"
#define QUERY_SECRET_ENC "s%20k%26%3D%2F~-._%C3%A9"

/* Fill rc for kind k and return the secret to load (NULL = none). */
static const char *
kind_config(enum kind k, struct nonoproxy_route_config *rc)
{
    memset(rc, 0, sizeof(*rc));
    rc->prefix = "svc";
    rc->upstream = "https://api.example.com/v1";
    rc->credential_key = "env://SVC_KEY";
    switch (k) {
    case K_HDR:
        return "sk-real";
    case K_HDR_X:
        rc->inject_header = "X-Api-Key";
        return "sk-real";
    case K_HDR_TOKEN:
        rc->credential_format = "token {}";
        return "sk-real";
    case K_BASIC:
        rc->inject_mode = NONOPROXY_INJECT_BASIC_AUTH;
        return "user:pass";
    case K_PATH:
        rc->upstream = "https://api.telegram.org";
        rc->inject_mode = NONOPROXY_INJECT_URL_PATH;
        rc->path_pattern = "/bot{}/";
        return "123:ABC";
    case K_PATH_REPL:
        rc->upstream = "https://api.telegram.org";
        rc->inject_mode = NONOPROXY_INJECT_URL_PATH;
        rc->path_pattern = "/bot{}/";
        rc->path_replacement = "/v2/bot{}/";
        return "123:ABC";
    case K_PATH_NOSUF:
        rc->upstream = "https://maps.example.com";
        rc->inject_mode = NONOPROXY_INJECT_URL_PATH;
        rc->path_pattern = "/key/{}";
        return "s3cr3t";
    case K_QUERY:
        rc->upstream = "https://maps.example.com";
        rc->inject_mode = NONOPROXY_INJECT_QUERY_PARAM;
        rc->query_param_name = "key";
        return QUERY_SECRET;
    case K_NOCRED:
        rc->credential_key = NULL;
        return NULL;
    case K_ROOT:
        rc->upstream = "https://api.example.com";
        return "sk-real";
    case K_NOSECRET:
        return NULL;
    }
    return NULL;
}

/* Build route r for kind k with its secret loaded and the injection prepared. */
static void
route_for(enum kind k, struct np_route *r)
{
    struct nonoproxy_route_config rc;
    char why[WHY_CAP] = "";
    const char *secret = kind_config(k, &rc);

    assert_int_equal(np_route_build(&rc, 0, r, why, sizeof(why)), 0);
    assert_string_equal(why, "");
    if (secret != NULL) {
        r->secret = np_strdup(secret);
        assert_non_null(r->secret);
        r->secret_len = strlen(secret);
    }
    assert_int_equal(np_route_prepare_injection(r), 0);
}

/* Parse a literal head (must be valid). */
static void
parse_head(const char *head, struct np_http_req *req)
{
    const char *why = NULL;

    assert_int_equal(np_http_req_parse(head, strlen(head), req, &why), 0);
}

#define REQ_LINE "GET /svc/x HTTP/1.1\r\nHost: 127.0.0.1:4000\r\n"

/* ---------------------------------------------------------------------------------------- */
/* np_route_build: accept / reject                                                           */
/* ---------------------------------------------------------------------------------------- */

struct build_row {
    const char *name;
    struct nonoproxy_route_config rc;
    const char *why_has; /* NULL = must be accepted; else a substring of why */
};

#define UP "https://api.example.com"

static const struct build_row build_rows[] = {
    /* accepted */
    {"https_upstream", {.prefix = "svc", .upstream = UP}, NULL},
    {"prefix_slashes_stripped", {.prefix = "//svc//", .upstream = UP}, NULL},
    {"prefix_all_allowed_chars", {.prefix = "a.B_c-9", .upstream = UP}, NULL},
    {"http_loopback_v4", {.prefix = "s", .upstream = "http://127.0.0.1:8080/x"}, NULL},
    {"http_loopback_v4_any_127", {.prefix = "s", .upstream = "http://127.5.6.7"}, NULL},
    {"http_loopback_v4_integer", {.prefix = "s", .upstream = "http://2130706433"}, NULL},
    {"http_loopback_v6", {.prefix = "s", .upstream = "http://[::1]:9000"}, NULL},
    {"http_localhost", {.prefix = "s", .upstream = "http://LocalHost:3000/"}, NULL},
    {"scheme_case_insensitive", {.prefix = "s", .upstream = "HTTPS://api.example.com"}, NULL},
    {"private_address_is_ordinary", {.prefix = "s", .upstream = "https://10.0.0.1"}, NULL},
    {"url_path_with_pattern",
     {.prefix = "s",
      .upstream = UP,
      .credential_key = "k",
      .inject_mode = NONOPROXY_INJECT_URL_PATH,
      .path_pattern = "/bot{}/"},
     NULL},
    {"query_param_with_name",
     {.prefix = "s",
      .upstream = UP,
      .credential_key = "k",
      .inject_mode = NONOPROXY_INJECT_QUERY_PARAM,
      .query_param_name = "api_key-1.~"},
     NULL},
    {"basic_auth",
     {.prefix = "s", .upstream = UP, .inject_mode = NONOPROXY_INJECT_BASIC_AUTH},
     NULL},
    {"format_token_style", {.prefix = "s", .upstream = UP, .credential_format = "token {}"}, NULL},
    {"env_var_valid", {.prefix = "s", .upstream = UP, .env_var = "_My_Token1"}, NULL},
    {"bare_key_derives_valid_name",
     {.prefix = "s", .upstream = UP, .credential_key = "openai-key"},
     NULL},
    {"uri_key_no_derived_name",
     {.prefix = "s", .upstream = UP, .credential_key = "keyring://svc/acct"},
     NULL},
    {"refused_derived_name_overridden_by_env_var",
     {.prefix = "s", .upstream = UP, .credential_key = "path", .env_var = "MY_PATH"},
     NULL},

    /* prefix */
    {"prefix_inner_slash", {.prefix = "a/b", .upstream = UP}, "': prefix: "},
    {"prefix_empty", {.prefix = "", .upstream = UP}, "': prefix: empty"},
    {"prefix_only_slash", {.prefix = "/", .upstream = UP}, "': prefix: empty"},
    {"prefix_space", {.prefix = "a b", .upstream = UP}, "': prefix: must be one path segment"},
    {"prefix_percent", {.prefix = "a%2f", .upstream = UP}, "': prefix: "},
    {"prefix_dotdot", {.prefix = "..", .upstream = UP}, "': prefix: may not be a dot-segment"},
    {"prefix_null", {.prefix = NULL, .upstream = UP}, "prefix: required"},

    /* upstream syntax */
    {"upstream_null", {.prefix = "s", .upstream = NULL}, "upstream: required"},
    {"upstream_ftp", {.prefix = "s", .upstream = "ftp://example.com"}, "upstream: scheme"},
    {"upstream_no_scheme", {.prefix = "s", .upstream = "example.com"}, "upstream: scheme"},
    {"upstream_empty_host", {.prefix = "s", .upstream = "https://"}, "upstream: no host"},
    {"upstream_empty_host_path", {.prefix = "s", .upstream = "https:///x"}, "upstream: no host"},
    {"upstream_port_no_host", {.prefix = "s", .upstream = "https://:443"}, "upstream: no host"},
    {"upstream_empty_brackets", {.prefix = "s", .upstream = "https://[]"}, "upstream: no host"},
    {"upstream_userinfo",
     {.prefix = "s", .upstream = "https://u:p@example.com"},
     "upstream: userinfo"},
    {"upstream_query",
     {.prefix = "s", .upstream = "https://example.com/v1?key=x"},
     "upstream: a query"},
    {"upstream_fragment",
     {.prefix = "s", .upstream = "https://example.com/#f"},
     "upstream: a fragment"},
    {"upstream_port_zero",
     {.prefix = "s", .upstream = "https://example.com:0"},
     "upstream: bad port"},
    {"upstream_port_too_big",
     {.prefix = "s", .upstream = "https://example.com:65536"},
     "upstream: bad port"},
    {"upstream_port_non_digit",
     {.prefix = "s", .upstream = "https://example.com:44a"},
     "upstream: bad port"},
    {"upstream_port_empty",
     {.prefix = "s", .upstream = "https://example.com:"},
     "upstream: bad port"},
    {"upstream_port_signed",
     {.prefix = "s", .upstream = "https://example.com:+443"},
     "upstream: bad port"},
    {"upstream_space", {.prefix = "s", .upstream = "https://exa mple.com"}, "upstream: whitespace"},
    {"upstream_tab_in_path",
     {.prefix = "s", .upstream = "https://example.com/a\tb"},
     "upstream: control character"},
    {"upstream_backslash", {.prefix = "s", .upstream = "https://example.com\\x"}, "upstream: '\\'"},
    {"upstream_bare_ipv6", {.prefix = "s", .upstream = "https://::1"}, "upstream: "},
    {"upstream_unbalanced_bracket", {.prefix = "s", .upstream = "https://[::1"}, "upstream: "},
    {"upstream_junk_after_bracket", {.prefix = "s", .upstream = "https://[::1]x"}, "upstream: "},
    {"upstream_bad_name", {.prefix = "s", .upstream = "https://a..b"}, "upstream: invalid host"},

    /* http only to loopback */
    {"http_to_name",
     {.prefix = "s", .upstream = "http://example.com"},
     "upstream: http:// is only allowed to loopback hosts ('example.com')"},
    {"http_to_private", {.prefix = "s", .upstream = "http://10.0.0.1"}, "loopback"},
    {"http_to_unspecified", {.prefix = "s", .upstream = "http://0.0.0.0"}, "loopback"},
    {"http_to_localhost_suffix",
     {.prefix = "s", .upstream = "http://localhost.example.com"},
     "loopback"},

    /* hard deny list */
    {"deny_metadata_v4", {.prefix = "s", .upstream = "https://169.254.169.254"}, "hard deny"},
    {"deny_metadata_google",
     {.prefix = "s", .upstream = "https://metadata.google.internal"},
     "hard deny"},
    {"deny_metadata_google_case_dot",
     {.prefix = "s", .upstream = "https://METADATA.Google.Internal./x"},
     "hard deny"},
    {"deny_metadata_bare", {.prefix = "s", .upstream = "https://metadata"}, "hard deny"},
    {"deny_link_local_v6", {.prefix = "s", .upstream = "https://[fe80::1]"}, "hard deny"},
    {"deny_hex_v4", {.prefix = "s", .upstream = "https://0xa9fea9fe"}, "hard deny"},
    {"deny_integer_v4", {.prefix = "s", .upstream = "https://2852039166:443"}, "hard deny"},
    {"deny_octal_v4", {.prefix = "s", .upstream = "https://0251.0376.0251.0376"}, "hard deny"},
    {"deny_mapped_v6",
     {.prefix = "s", .upstream = "https://[::ffff:169.254.169.254]"},
     "hard deny"},
    {"deny_http_link_local", {.prefix = "s", .upstream = "http://169.254.169.254"}, "hard deny"},

    /* inject fields */
    {"format_without_placeholder",
     {.prefix = "s", .upstream = UP, .credential_format = "Bearer"},
     "credential_format: must hold exactly one {}"},
    {"format_two_placeholders",
     {.prefix = "s", .upstream = UP, .credential_format = "{} {}"},
     "credential_format: must hold exactly one {}"},
    {"format_crlf",
     {.prefix = "s", .upstream = UP, .credential_format = "{}\r\nX: y"},
     "credential_format: control character"},
    {"url_path_without_pattern",
     {.prefix = "s", .upstream = UP, .inject_mode = NONOPROXY_INJECT_URL_PATH},
     "path_pattern: required"},
    {"url_path_pattern_no_placeholder",
     {.prefix = "s",
      .upstream = UP,
      .inject_mode = NONOPROXY_INJECT_URL_PATH,
      .path_pattern = "/bot/"},
     "path_pattern: must hold exactly one {}"},
    {"url_path_replacement_two_placeholders",
     {.prefix = "s",
      .upstream = UP,
      .inject_mode = NONOPROXY_INJECT_URL_PATH,
      .path_pattern = "/bot{}/",
      .path_replacement = "/{}/{}"},
     "path_replacement: must hold exactly one {}"},
    {"url_path_pattern_with_query",
     {.prefix = "s",
      .upstream = UP,
      .inject_mode = NONOPROXY_INJECT_URL_PATH,
      .path_pattern = "/x?k={}"},
     "path_pattern: must be path characters"},
    {"query_param_without_name",
     {.prefix = "s", .upstream = UP, .inject_mode = NONOPROXY_INJECT_QUERY_PARAM},
     "query_param_name: required"},
    {"query_param_empty_name",
     {.prefix = "s",
      .upstream = UP,
      .inject_mode = NONOPROXY_INJECT_QUERY_PARAM,
      .query_param_name = ""},
     "query_param_name: required"},
    {"query_param_reserved_name",
     {.prefix = "s",
      .upstream = UP,
      .inject_mode = NONOPROXY_INJECT_QUERY_PARAM,
      .query_param_name = "a=b"},
     "query_param_name: must be"},
    {"inject_header_space",
     {.prefix = "s", .upstream = UP, .inject_header = "Auth orization"},
     "inject_header: not an HTTP token"},
    {"inject_header_empty",
     {.prefix = "s", .upstream = UP, .inject_header = ""},
     "inject_header: not an HTTP token"},
    {"inject_header_colon",
     {.prefix = "s", .upstream = UP, .inject_header = "X-Key:"},
     "inject_header: not an HTTP token"},
    {"inject_header_host",
     {.prefix = "s", .upstream = UP, .inject_header = "host"},
     "inject_header: a framing or hop-by-hop"},
    {"inject_header_framing",
     {.prefix = "s", .upstream = UP, .inject_header = "Content-Length"},
     "inject_header: a framing or hop-by-hop"},
    {"inject_header_hop_by_hop",
     {.prefix = "s", .upstream = UP, .inject_header = "Proxy-Authorization"},
     "inject_header: a framing or hop-by-hop"},
    {"inject_mode_unknown",
     {.prefix = "s", .upstream = UP, .inject_mode = (enum nonoproxy_inject_mode)7},
     "inject_mode: unknown"},

    /* names */
    {"env_var_refused",
     {.prefix = "s", .upstream = UP, .env_var = "LD_PRELOAD"},
     "env_var: refused variable name ('LD_PRELOAD')"},
    {"env_var_refused_any_case",
     {.prefix = "s", .upstream = UP, .env_var = "Path"},
     "env_var: refused"},
    {"env_var_refused_dyld",
     {.prefix = "s", .upstream = UP, .env_var = "DYLD_INSERT_LIBRARIES"},
     "env_var: refused"},
    {"env_var_leading_digit",
     {.prefix = "s", .upstream = UP, .env_var = "1ABC"},
     "env_var: must match"},
    {"env_var_dash", {.prefix = "s", .upstream = UP, .env_var = "A-B"}, "env_var: must match"},
    {"env_var_empty", {.prefix = "s", .upstream = UP, .env_var = ""}, "env_var: must match"},
    {"derived_name_refused",
     {.prefix = "s", .upstream = UP, .credential_key = "path"},
     "credential_key: derived variable name is not usable; set env_var ('PATH')"},
    {"derived_name_leading_digit",
     {.prefix = "s", .upstream = UP, .credential_key = "1key"},
     "credential_key: derived variable name"},
    {"credential_key_control",
     {.prefix = "s", .upstream = UP, .credential_key = "a\nb"},
     "credential_key: control character"},
    {"tls_ca_control",
     {.prefix = "s", .upstream = UP, .tls_ca = "/etc/ca\x7f.pem"},
     "tls_ca: control character"},
};

static void
build_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(build_rows); i++) {
        const struct build_row *row = &build_rows[i];
        struct np_route r;
        char why[WHY_CAP] = "";
        int rc;

        print_message("build: %s\n", row->name);
        memset(&r, 0xa5, sizeof(r));
        rc = np_route_build(&row->rc, 3, &r, why, sizeof(why));
        if (row->why_has == NULL) {
            assert_int_equal(rc, 0);
            assert_string_equal(why, "");
            assert_non_null(r.prefix);
            np_route_free(&r);
        } else {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(why, row->why_has));
            assert_true(strncmp(why, "routes[3] '", 11) == 0);
            assert_null(r.prefix); /* out is zeroed on failure */
            assert_null(r.host);
        }
    }
}

struct why_row {
    const char *name;
    size_t index;
    struct nonoproxy_route_config rc;
    const char *why;
};

static const struct why_row why_rows[] = {
    {"http_non_loopback",
     1,
     {.prefix = "/svc/", .upstream = "http://example.com/v1"},
     "routes[1] 'svc': upstream: http:// is only allowed to loopback hosts ('example.com')"},
    {"bad_prefix_quotes_raw_value",
     0,
     {.prefix = "a b", .upstream = UP},
     "routes[0] 'a b': prefix: must be one path segment of [A-Za-z0-9._-]"},
    {"format_names_field_and_value",
     2,
     {.prefix = "svc", .upstream = UP, .credential_format = "Bearer"},
     "routes[2] 'svc': credential_format: must hold exactly one {} ('Bearer')"},
    {"userinfo_never_quoted",
     4,
     {.prefix = "gh", .upstream = "https://me:hunter2@github.com"},
     "routes[4] 'gh': upstream: userinfo is not allowed"},
    {"query_never_quoted",
     0,
     {.prefix = "m", .upstream = "https://maps.example.com/?key=AIza"},
     "routes[0] 'm': upstream: a query is not allowed"},
    {"deny_list_names_host",
     5,
     {.prefix = "meta", .upstream = "https://0xa9fea9fe/latest"},
     "routes[5] 'meta': upstream: host is on the hard deny list ('0xa9fea9fe')"},
    {"query_mode_names_field",
     0,
     {.prefix = "q", .upstream = UP, .inject_mode = NONOPROXY_INJECT_QUERY_PARAM},
     "routes[0] 'q': query_param_name: required by query_param mode"},
};

static void
build_why_exact(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(why_rows); i++) {
        struct np_route r;
        char why[WHY_CAP] = "";

        print_message("why: %s\n", why_rows[i].name);
        assert_int_equal(np_route_build(&why_rows[i].rc, why_rows[i].index, &r, why, sizeof(why)),
                         -1);
        assert_string_equal(why, why_rows[i].why);
    }
}

/* A small why buffer is truncated, never overrun; a NULL why is allowed. */
static void
build_why_truncated_or_null(void **state)
{
    struct nonoproxy_route_config rc = {.prefix = "svc", .upstream = "http://example.com"};
    struct np_route r;
    char why[12];

    (void)state;
    memset(why, 'X', sizeof(why));
    assert_int_equal(np_route_build(&rc, 0, &r, why, sizeof(why)), -1);
    assert_string_equal(why, "routes[0] '");
    assert_int_equal(np_route_build(&rc, 0, &r, NULL, 0), -1);
}

/* ---------------------------------------------------------------------------------------- */
/* np_route_build: defaults and upstream fields                                              */
/* ---------------------------------------------------------------------------------------- */

struct default_row {
    const char *name;
    struct nonoproxy_route_config rc;
    const char *prefix;
    const char *inject_header;
    const char *format;
    const char *pattern;
    const char *replacement;
};

static const struct default_row default_rows[] = {
    {"authorization_gets_bearer",
     {.prefix = "/openai/", .upstream = UP, .credential_key = "k"},
     "openai",
     "Authorization",
     "Bearer {}",
     NULL,
     NULL},
    {"authorization_any_case_gets_bearer",
     {.prefix = "a", .upstream = UP, .inject_header = "authorization"},
     "a",
     "authorization",
     "Bearer {}",
     NULL,
     NULL},
    {"other_header_gets_bare",
     {.prefix = "a", .upstream = UP, .inject_header = "X-Api-Key"},
     "a",
     "X-Api-Key",
     "{}",
     NULL,
     NULL},
    {"explicit_format_kept",
     {.prefix = "a", .upstream = UP, .inject_header = "X-Api-Key", .credential_format = "k={}"},
     "a",
     "X-Api-Key",
     "k={}",
     NULL,
     NULL},
    {"replacement_defaults_to_pattern",
     {.prefix = "a",
      .upstream = UP,
      .inject_mode = NONOPROXY_INJECT_URL_PATH,
      .path_pattern = "/bot{}/"},
     "a",
     "Authorization",
     "Bearer {}",
     "/bot{}/",
     "/bot{}/"},
    {"replacement_explicit",
     {.prefix = "a",
      .upstream = UP,
      .inject_mode = NONOPROXY_INJECT_URL_PATH,
      .path_pattern = "/bot{}/",
      .path_replacement = "/v2/{}"},
     "a",
     "Authorization",
     "Bearer {}",
     "/bot{}/",
     "/v2/{}"},
};

static void
assert_opt_string(const char *got, const char *want)
{
    if (want == NULL) {
        assert_null(got);
    } else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
}

static void
build_defaults_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(default_rows); i++) {
        const struct default_row *row = &default_rows[i];
        struct np_route r;

        print_message("defaults: %s\n", row->name);
        assert_int_equal(np_route_build(&row->rc, 0, &r, NULL, 0), 0);
        assert_string_equal(r.prefix, row->prefix);
        assert_string_equal(r.inject_header, row->inject_header);
        assert_string_equal(r.credential_format, row->format);
        assert_opt_string(r.path_pattern, row->pattern);
        assert_opt_string(r.path_replacement, row->replacement);
        assert_opt_string(r.credential_key, row->rc.credential_key);
        assert_null(r.secret);
        assert_null(r.inject_value);
        np_route_free(&r);
    }
}

/* One inject-mode enum for configuration and audit (issue #10): a zeroed configuration's
 * NONOPROXY_INJECT_NONE means the default, HEADER; a value past BASIC_AUTH is refused. */
static void
build_inject_mode_none_is_header(void **state)
{
    struct nonoproxy_route_config rc;
    struct np_route r;
    char why[WHY_CAP];

    (void)state;
    memset(&rc, 0, sizeof(rc));
    rc.prefix = "svc";
    rc.upstream = "https://api.example.com";
    rc.credential_key = "key";
    assert_int_equal(rc.inject_mode, NONOPROXY_INJECT_NONE);
    assert_int_equal(np_route_build(&rc, 0, &r, why, sizeof(why)), 0);
    assert_int_equal(r.mode, NONOPROXY_INJECT_HEADER);
    assert_string_equal(r.inject_header, "Authorization");
    np_route_free(&r);
    rc.inject_mode = (enum nonoproxy_inject_mode)(NONOPROXY_INJECT_BASIC_AUTH + 1);
    assert_int_equal(np_route_build(&rc, 0, &r, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "inject_mode"));
}

struct upstream_row { // NOLINT(clang-analyzer-optin.performance.Padding): a test table
    const char *name;
    const char *upstream;
    bool tls;
    const char *host;
    uint16_t port;
    const char *host_header;
    const char *base_path;
};

static const struct upstream_row upstream_rows[] = {
    {"https_default_port", "https://api.example.com", true, "api.example.com", 443,
     "api.example.com", ""},
    {"root_path_is_empty", "https://api.example.com/", true, "api.example.com", 443,
     "api.example.com", ""},
    {"base_path_trailing_slash", "https://api.example.com/v1/", true, "api.example.com", 443,
     "api.example.com", "/v1"},
    {"base_path_all_trailing_slashes", "https://api.example.com/v1//", true, "api.example.com", 443,
     "api.example.com", "/v1"},
    {"host_lowercased_default_port_omitted", "https://API.Example.COM.:443/v1", true,
     "api.example.com", 443, "api.example.com", "/v1"},
    {"explicit_port_in_host_header", "https://api.example.com:8443/a/b", true, "api.example.com",
     8443, "api.example.com:8443", "/a/b"},
    {"http_default_port", "http://127.0.0.1:80", false, "127.0.0.1", 80, "127.0.0.1", ""},
    {"http_explicit_port", "http://127.0.0.1:8080/", false, "127.0.0.1", 8080, "127.0.0.1:8080",
     ""},
    {"http_443_is_not_default", "http://localhost:443", false, "localhost", 443, "localhost:443",
     ""},
    {"ipv6_bracketed_with_port", "http://[::1]:8080/x", false, "::1", 8080, "[::1]:8080", "/x"},
    {"ipv6_canonicalised", "https://[2001:DB8:0::1]", true, "2001:db8::1", 443, "[2001:db8::1]",
     ""},
    {"ipv6_default_port_omitted", "https://[2001:db8::1]:443/v2", true, "2001:db8::1", 443,
     "[2001:db8::1]", "/v2"},
    {"integer_loopback_normalised", "http://2130706433:81", false, "127.0.0.1", 81, "127.0.0.1:81",
     ""},
};

static void
build_upstream_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(upstream_rows); i++) {
        const struct upstream_row *row = &upstream_rows[i];
        struct nonoproxy_route_config rc = {.prefix = "svc", .upstream = row->upstream};
        struct np_route r;
        char why[WHY_CAP] = "";

        print_message("upstream: %s\n", row->name);
        assert_int_equal(np_route_build(&rc, 0, &r, why, sizeof(why)), 0);
        assert_int_equal(r.tls, row->tls);
        assert_string_equal(r.host, row->host);
        assert_int_equal(r.port, row->port);
        assert_string_equal(r.host_header, row->host_header);
        assert_string_equal(r.base_path, row->base_path);
        np_route_free(&r);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* np_route_match                                                                            */
/* ---------------------------------------------------------------------------------------- */

struct match_row {
    const char *name;
    const char *target;
    enum np_route_match want;
    size_t index;
    const char *rest;
};

static const struct match_row match_rows[] = {
    {"exact_prefix_gives_root", "/svc", NP_ROUTE_FOUND, 0, "/"},
    {"prefix_with_slash", "/svc/", NP_ROUTE_FOUND, 0, "/"},
    {"rest_kept", "/svc/x/y", NP_ROUTE_FOUND, 0, "/x/y"},
    {"second_route", "/other/a", NP_ROUTE_FOUND, 1, "/a"},
    {"query_on_prefix", "/svc?x=1", NP_ROUTE_FOUND, 0, "?x=1"},
    {"query_after_slash", "/svc/?x=1", NP_ROUTE_FOUND, 0, "/?x=1"},
    {"query_is_not_a_path", "/svc/x?y=/../../z", NP_ROUTE_FOUND, 0, "/x?y=/../../z"},
    {"query_on_prefix_not_a_path", "/svc?y=/../..", NP_ROUTE_FOUND, 0, "?y=/../.."},
    {"dotdot_inside_stays", "/svc/a/../b", NP_ROUTE_FOUND, 0, "/a/../b"},
    {"dot_segment_harmless", "/svc/./x", NP_ROUTE_FOUND, 0, "/./x"},
    {"three_dots_not_dot_segment", "/svc/.../x", NP_ROUTE_FOUND, 0, "/.../x"},
    {"encoded_dot_alone", "/svc/%2e", NP_ROUTE_FOUND, 0, "/%2e"},
    {"encoded_slash_counts_as_level", "/svc/a%2fb/../../x", NP_ROUTE_FOUND, 0, "/a%2fb/../../x"},
    {"empty_segment_counts_as_level", "/svc//../x", NP_ROUTE_FOUND, 0, "//../x"},
    {"dotdot_in_name", "/svc/a..b/..c", NP_ROUTE_FOUND, 0, "/a..b/..c"},

    {"longer_segment_no_match", "/svcX/y", NP_ROUTE_NOT_FOUND, 0, NULL},
    {"shorter_segment_no_match", "/sv/y", NP_ROUTE_NOT_FOUND, 0, NULL},
    {"case_sensitive", "/SVC/x", NP_ROUTE_NOT_FOUND, 0, NULL},
    {"empty_first_segment", "//svc", NP_ROUTE_NOT_FOUND, 0, NULL},
    {"root", "/", NP_ROUTE_NOT_FOUND, 0, NULL},
    {"not_origin_form", "svc/x", NP_ROUTE_NOT_FOUND, 0, NULL},
    {"absolute_form", "http://h/svc/x", NP_ROUTE_NOT_FOUND, 0, NULL},
    {"encoded_slash_in_first_segment", "/svc%2fx", NP_ROUTE_NOT_FOUND, 0, NULL},
    {"encoded_first_segment", "/%73vc/x", NP_ROUTE_NOT_FOUND, 0, NULL},

    {"dotdot_escapes", "/svc/../x", NP_ROUTE_ESCAPES, 0, NULL},
    {"dotdot_at_end_escapes", "/svc/..", NP_ROUTE_ESCAPES, 0, NULL},
    {"encoded_dotdot_escapes", "/svc/%2e%2e/x", NP_ROUTE_ESCAPES, 0, NULL},
    {"encoded_dotdot_and_slash_escapes", "/svc/%2E%2e%2fx", NP_ROUTE_ESCAPES, 0, NULL},
    {"mixed_dot_spelling_escapes", "/svc/.%2e/x", NP_ROUTE_ESCAPES, 0, NULL},
    {"encoded_slashes_climb_twice", "/svc/a/..%2f..%2fx", NP_ROUTE_ESCAPES, 0, NULL},
    {"encoded_backslashes_climb_twice", "/svc/a/..%5c..%5Cx", NP_ROUTE_ESCAPES, 0, NULL},
    {"climb_two_from_one", "/svc/a/../../b", NP_ROUTE_ESCAPES, 0, NULL},
    {"encoded_climb_two_from_one", "/svc/a/%2e%2e/%2e%2e/x", NP_ROUTE_ESCAPES, 0, NULL},
    {"literal_backslash", "/svc/..\\x", NP_ROUTE_ESCAPES, 0, NULL},
    {"literal_backslash_anywhere", "/svc/a\\b", NP_ROUTE_ESCAPES, 0, NULL},
    {"percent_nul", "/svc/a%00.txt", NP_ROUTE_ESCAPES, 0, NULL},
    {"path_parameter_dotdot", "/svc/..;x=1/y", NP_ROUTE_ESCAPES, 0, NULL},
    {"dotdot_after_query_free_prefix", "/svc/..?x=1", NP_ROUTE_ESCAPES, 0, NULL},
};

static void
match_table(void **state)
{
    static char svc[] = "svc";
    static char other[] = "other";
    struct np_route routes[2];
    size_t i;

    (void)state;
    memset(routes, 0, sizeof(routes));
    routes[0].prefix = svc;
    routes[1].prefix = other;
    for (i = 0; i < NP_ARRAY_LEN(match_rows); i++) {
        const struct match_row *row = &match_rows[i];
        struct np_route_hit hit = {99, NULL, 0};
        enum np_route_match got;

        print_message("match: %s\n", row->name);
        got = np_route_match(routes, 2, row->target, strlen(row->target), &hit);
        assert_int_equal(got, row->want);
        if (row->want == NP_ROUTE_FOUND) {
            assert_int_equal(hit.index, row->index);
            assert_int_equal(hit.rest_len, strlen(row->rest));
            assert_memory_equal(hit.rest, row->rest, hit.rest_len);
        }
    }
}

/* Only target[0..target_len) is read: a longer buffer does not change the answer. */
static void
match_respects_length(void **state)
{
    static char svc[] = "svc";
    struct np_route route;
    struct np_route_hit hit = {9, NULL, 0};
    const char *t = "/svc/../x";

    (void)state;
    memset(&route, 0, sizeof(route));
    route.prefix = svc;
    assert_int_equal(np_route_match(&route, 1, t, 4, &hit), NP_ROUTE_FOUND);
    assert_int_equal(hit.rest_len, 1);
    assert_memory_equal(hit.rest, "/", 1);
    assert_int_equal(np_route_match(&route, 1, t, 0, &hit), NP_ROUTE_NOT_FOUND);
    assert_int_equal(np_route_match(&route, 0, t, 4, &hit), NP_ROUTE_NOT_FOUND);
}

/* ---------------------------------------------------------------------------------------- */
/* np_route_phantom_ok                                                                       */
/* ---------------------------------------------------------------------------------------- */

struct phantom_row { // NOLINT(clang-analyzer-optin.performance.Padding): a test table
    const char *name;
    enum kind kind;
    const char *headers; /* header lines after Host, each ending in CRLF */
    const char *rest;
    bool want;
};

static const struct phantom_row phantom_rows[] = {
    /* HEADER, Authorization with "Bearer {}" */
    {"hdr_bearer", K_HDR, "Authorization: Bearer " TOKEN "\r\n", "/x", true},
    {"hdr_bare_token", K_HDR, "Authorization: " TOKEN "\r\n", "/x", true},
    {"hdr_bearer_odd_case_and_spacing", K_HDR, "authorization:   bEaReR \t  " TOKEN " \r\n", "/x",
     true},
    {"hdr_one_char_changed", K_HDR, "Authorization: Bearer " TOKEN_CHANGED "\r\n", "/x", false},
    {"hdr_one_char_shorter", K_HDR, "Authorization: Bearer " TOKEN_SHORT "\r\n", "/x", false},
    {"hdr_one_char_longer", K_HDR, "Authorization: Bearer " TOKEN_LONG "\r\n", "/x", false},
    {"hdr_different_case", K_HDR, "Authorization: Bearer " TOKEN_UPPER "\r\n", "/x", false},
    {"hdr_bearer_without_space", K_HDR, "Authorization: Bearer" TOKEN "\r\n", "/x", false},
    {"hdr_other_scheme", K_HDR, "Authorization: token " TOKEN "\r\n", "/x", false},
    {"hdr_basic_not_accepted", K_HDR, "Authorization: Basic " B64_USER_TOKEN "\r\n", "/x", false},
    {"hdr_missing", K_HDR, "Accept: */*\r\n", "/x", false},
    {"hdr_only_first_counts", K_HDR,
     "Authorization: Bearer wrong\r\nAuthorization: Bearer " TOKEN "\r\n", "/x", false},
    {"hdr_first_counts_when_right", K_HDR,
     "Authorization: Bearer " TOKEN "\r\nAuthorization: Bearer wrong\r\n", "/x", true},
    {"hdr_proxy_auth_not_enough", K_HDR, "Proxy-Authorization: Bearer " TOKEN "\r\n", "/x", false},
    {"hdr_token_in_query_not_enough", K_HDR, "", "/x?key=" TOKEN, false},
    /* HEADER, X-Api-Key with "{}" */
    {"hdrx_bare", K_HDR_X, "X-Api-Key: " TOKEN "\r\n", "/x", true},
    {"hdrx_name_any_case", K_HDR_X, "x-api-KEY: " TOKEN "\r\n", "/x", true},
    {"hdrx_bearer_also", K_HDR_X, "X-Api-Key: Bearer " TOKEN "\r\n", "/x", true},
    {"hdrx_authorization_ignored", K_HDR_X, "Authorization: Bearer " TOKEN "\r\n", "/x", false},
    {"hdrx_changed", K_HDR_X, "X-Api-Key: " TOKEN_CHANGED "\r\n", "/x", false},
    /* HEADER, "token {}" */
    {"hdr_token_format", K_HDR_TOKEN, "Authorization: token " TOKEN "\r\n", "/x", true},
    {"hdr_token_format_bearer_too", K_HDR_TOKEN, "Authorization: Bearer " TOKEN "\r\n", "/x", true},
    {"hdr_token_format_exact_case", K_HDR_TOKEN, "Authorization: Token " TOKEN "\r\n", "/x", false},
    {"hdr_token_format_changed", K_HDR_TOKEN, "Authorization: token " TOKEN_CHANGED "\r\n", "/x",
     false},
    /* BASIC_AUTH */
    {"basic_user_token", K_BASIC, "Authorization: Basic " B64_USER_TOKEN "\r\n", "/x", true},
    {"basic_empty_user", K_BASIC, "Authorization: Basic " B64_EMPTYUSER_TOKEN "\r\n", "/x", true},
    {"basic_scheme_case_spacing", K_BASIC, "Authorization: bAsIc    " B64_USER_TOKEN "\r\n", "/x",
     true},
    {"basic_split_at_first_colon", K_BASIC, "Authorization: Basic " B64_XY_TOKEN "\r\n", "/x",
     false},
    {"basic_changed", K_BASIC, "Authorization: Basic " B64_USER_CHANGED "\r\n", "/x", false},
    {"basic_bearer_refused", K_BASIC, "Authorization: Bearer " TOKEN "\r\n", "/x", false},
    {"basic_not_base64", K_BASIC, "Authorization: Basic user:" TOKEN "\r\n", "/x", false},
    {"basic_missing", K_BASIC, "", "/x", false},
    /* URL_PATH "/bot{}/" */
    {"path_with_suffix", K_PATH, "", "/bot" TOKEN "/getMe", true},
    {"path_with_query", K_PATH, "", "/bot" TOKEN "/getMe?x=1", true},
    {"path_not_at_start", K_PATH, "", "/a/bot" TOKEN "/x", true},
    {"path_changed", K_PATH, "", "/bot" TOKEN_CHANGED "/getMe", false},
    {"path_shorter", K_PATH, "", "/bot" TOKEN_SHORT "/getMe", false},
    {"path_longer", K_PATH, "", "/bot" TOKEN_LONG "/getMe", false},
    {"path_suffix_missing", K_PATH, "", "/bot" TOKEN, false},
    {"path_first_match_counts", K_PATH, "", "/botwrong/bot" TOKEN "/", false},
    {"path_pattern_missing", K_PATH, "", "/getMe", false},
    {"path_suffix_only_in_query", K_PATH, "", "/bot" TOKEN "?a=/", false},
    {"path_header_not_enough", K_PATH, "Authorization: Bearer " TOKEN "\r\n", "/getMe", false},
    /* URL_PATH "/key/{}" (empty suffix) */
    {"path_nosuffix_end", K_PATH_NOSUF, "", "/key/" TOKEN, true},
    {"path_nosuffix_to_slash", K_PATH_NOSUF, "", "/key/" TOKEN "/more", true},
    {"path_nosuffix_to_query", K_PATH_NOSUF, "", "/key/" TOKEN "?x=1", true},
    {"path_nosuffix_longer", K_PATH_NOSUF, "", "/key/" TOKEN "x", false},
    /* QUERY_PARAM "key" */
    {"query_plain", K_QUERY, "", "/x?key=" TOKEN, true},
    {"query_on_prefix_root", K_QUERY, "", "?key=" TOKEN, true},
    {"query_among_others", K_QUERY, "", "/x?a=1&key=" TOKEN "&b=2", true},
    {"query_percent_encoded", K_QUERY, "", "/x?key=" TOKEN_PCT, true},
    {"query_percent_encoded_lower_hex", K_QUERY, "", "/x?key=" TOKEN_PCT_LOW, true},
    {"query_duplicate_first_wins_bad", K_QUERY, "", "/x?key=bad&key=" TOKEN, false},
    {"query_duplicate_first_wins_good", K_QUERY, "", "/x?key=" TOKEN "&key=bad", true},
    {"query_pair_without_equals_skipped", K_QUERY, "", "/x?key&key=" TOKEN, true},
    {"query_name_case_sensitive", K_QUERY, "", "/x?KEY=" TOKEN, false},
    {"query_name_exact", K_QUERY, "", "/x?akey=" TOKEN, false},
    {"query_name_not_prefix", K_QUERY, "", "/x?keyx=" TOKEN, false},
    {"query_changed", K_QUERY, "", "/x?key=" TOKEN_CHANGED, false},
    {"query_plus_is_not_space", K_QUERY, "", "/x?key=+" TOKEN, false},
    {"query_missing", K_QUERY, "", "/x?a=1", false},
    {"query_no_query", K_QUERY, "", "/x/key=" TOKEN, false},
    /* no credential */
    {"nocred_proxy_auth_basic", K_NOCRED, "Proxy-Authorization: Basic " B64_NONO_TOKEN "\r\n", "/x",
     true},
    {"nocred_proxy_auth_bearer", K_NOCRED, "Proxy-Authorization: Bearer " TOKEN "\r\n", "/x", true},
    {"nocred_authorization_bearer", K_NOCRED, "Authorization: bearer  " TOKEN "\r\n", "/x", true},
    {"nocred_authorization_bare_refused", K_NOCRED, "Authorization: " TOKEN "\r\n", "/x", false},
    {"nocred_wrong", K_NOCRED, "Proxy-Authorization: Bearer " TOKEN_CHANGED "\r\n", "/x", false},
    {"nocred_missing", K_NOCRED, "", "/x", false},
    {"nocred_query_not_enough", K_NOCRED, "", "/x?key=" TOKEN, false},
};

static void
phantom_table(void **state)
{
    char head[2048];
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(phantom_rows); i++) {
        const struct phantom_row *row = &phantom_rows[i];
        struct np_http_req req;
        struct np_route r;
        int n;

        print_message("phantom: %s\n", row->name);
        n = snprintf(head, sizeof(head), "%s%s\r\n", REQ_LINE, row->headers);
        assert_true(n > 0 && (size_t)n < sizeof(head));
        parse_head(head, &req);
        route_for(row->kind, &r);
        assert_int_equal(np_route_phantom_ok(&r, &req, row->rest, strlen(row->rest), TOKEN),
                         row->want);
        np_route_free(&r);
    }
}

/* An empty token never matches, even empty credentials. */
static void
phantom_empty_token_refused(void **state)
{
    struct np_http_req req;
    struct np_route r;

    (void)state;
    parse_head(REQ_LINE "X-Api-Key:\r\n\r\n", &req);
    route_for(K_HDR_X, &r);
    assert_false(np_route_phantom_ok(&r, &req, "/x", 2, ""));
    assert_false(np_route_phantom_ok(&r, &req, "/x", 2, NULL));
    np_route_free(&r);
}

/* ---------------------------------------------------------------------------------------- */
/* np_route_upstream_target                                                                  */
/* ---------------------------------------------------------------------------------------- */

struct target_row {
    const char *name;
    enum kind kind;
    const char *rest;
    const char *want; /* NULL = -1 */
};

static const struct target_row target_rows[] = {
    {"base_plus_root", K_HDR, "/", "/v1/"},
    {"base_plus_path", K_HDR, "/chat/completions", "/v1/chat/completions"},
    {"no_base", K_ROOT, "/chat", "/chat"},
    {"no_base_root", K_ROOT, "/", "/"},
    {"query_kept", K_HDR, "/x?b=2&a=%20+1", "/v1/x?b=2&a=%20+1"},
    {"query_on_root", K_HDR, "?x=1", "/v1/?x=1"},
    {"dotdot_resolved", K_HDR, "/a/../b?x=1", "/v1/b?x=1"},
    {"encoded_dotdot_resolved", K_HDR, "/a/%2e%2E/b", "/v1/b"},
    {"dot_resolved", K_HDR, "/a/./b/.", "/v1/a/b/"},
    {"trailing_dotdot_keeps_slash", K_HDR, "/a/b/..", "/v1/a/"},
    {"three_dots_is_a_name", K_HDR, "/a/.../b/...", "/v1/a/.../b/..."},
    {"path_parameter_dot_resolved", K_HDR, "/a/b/..;x/c", "/v1/a/c"},
    {"encoded_separator_kept", K_HDR, "/projects/group%2Fproject/x",
     "/v1/projects/group%2Fproject/x"},
    {"encoded_separator_dotdot_resolved", K_HDR, "/a/..%2fx", "/v1/x"},
    {"empty_segments_kept", K_HDR, "/a//b", "/v1/a//b"},
    {"query_dots_untouched", K_HDR, "/x?q=/../", "/v1/x?q=/../"},
    {"header_mode_query_untouched", K_HDR, "/x?key=" TOKEN, "/v1/x?key=" TOKEN},
    {"nocred_untouched", K_NOCRED, "/x?key=1", "/v1/x?key=1"},
    /* URL_PATH */
    {"path_replaced", K_PATH, "/bot" TOKEN "/getMe", "/bot123:ABC/getMe"},
    {"path_replaced_query_kept", K_PATH, "/bot" TOKEN "/getMe?x=1", "/bot123:ABC/getMe?x=1"},
    {"path_replaced_after_normalising", K_PATH, "/x/../bot" TOKEN "/y", "/bot123:ABC/y"},
    {"path_replacement_pattern", K_PATH_REPL, "/bot" TOKEN "/send", "/v2/bot123:ABC/send"},
    {"path_not_found", K_PATH, "/getMe", NULL},
    {"path_nosuffix_end", K_PATH_NOSUF, "/key/" TOKEN, "/key/s3cr3t"},
    {"path_nosuffix_more", K_PATH_NOSUF, "/key/" TOKEN "/more?z", "/key/s3cr3t/more?z"},
    /* QUERY_PARAM */
    {"query_added_without_query", K_QUERY, "/x", "/x?key=" QUERY_SECRET_ENC},
    {"query_added_to_empty_query", K_QUERY, "/x?", "/x?key=" QUERY_SECRET_ENC},
    {"query_added_when_absent", K_QUERY, "/x?a=1&b=%41", "/x?a=1&b=%41&key=" QUERY_SECRET_ENC},
    {"query_replaced_others_identical", K_QUERY, "/x?a=1&key=" TOKEN "&b=%20+2",
     "/x?a=1&key=" QUERY_SECRET_ENC "&b=%20+2"},
    {"query_every_occurrence", K_QUERY, "/x?key=" TOKEN "&keyx=1&key=2&key&=k",
     "/x?key=" QUERY_SECRET_ENC "&keyx=1&key=" QUERY_SECRET_ENC "&key&=k"},
    {"query_on_root", K_QUERY, "?key=" TOKEN, "/?key=" QUERY_SECRET_ENC},
    {"query_empty_pairs_kept", K_QUERY, "/x?&a=1&&key=t&", "/x?&a=1&&key=" QUERY_SECRET_ENC "&"},
};

/* The upstream target of r for rest into out[0..cap); its length in *len. */
static int
target_into(const struct np_route *r, const char *rest, char *out, size_t cap, size_t *len)
{
    struct np_buf b;
    int rc;

    np_buf_init(&b, out, cap);
    rc = np_route_upstream_target(r, rest, strlen(rest), &b);
    *len = b.len;
    return rc;
}

static void
target_table(void **state)
{
    char out[1024];
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(target_rows); i++) {
        const struct target_row *row = &target_rows[i];
        struct np_route r;
        size_t len = 0;
        int rc;

        print_message("target: %s\n", row->name);
        route_for(row->kind, &r);
        rc = target_into(&r, row->rest, out, sizeof(out), &len);
        if (row->want == NULL) {
            assert_int_equal(rc, -1);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(len, strlen(row->want));
            assert_memory_equal(out, row->want, len);
            /* exactly the length fits; one byte less does not */
            {
                size_t want = len;

                assert_int_equal(target_into(&r, row->rest, out, want, &len), 0);
                assert_int_equal(target_into(&r, row->rest, out, want - 1, &len), -1);
            }
        }
        np_route_free(&r);
    }
}

/* URL_PATH/QUERY_PARAM need the secret; a URL_PATH secret must fit in a request-target. */
static void
target_needs_usable_secret(void **state)
{
    char out[256];
    size_t len = 0;
    struct np_route r;

    (void)state;
    route_for(K_PATH, &r);
    np_free_secret(r.secret);
    r.secret = NULL;
    r.secret_len = 0;
    assert_int_equal(target_into(&r, "/bot" TOKEN "/", out, sizeof(out), &len), -1);
    r.secret = np_strdup("a b");
    r.secret_len = 3;
    assert_int_equal(target_into(&r, "/bot" TOKEN "/", out, sizeof(out), &len), -1);
    np_route_free(&r);
    route_for(K_NOSECRET, &r);
    assert_int_equal(target_into(&r, "/x", out, sizeof(out), &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(out, "/v1/x", 5);
    np_route_free(&r);
}

/* ---------------------------------------------------------------------------------------- */
/* The upstream head of a route: np_route_uphead + np_uphead_build                           */
/* ---------------------------------------------------------------------------------------- */

/* Build the route's upstream head for req into out[0..cap); its length in *len. */
static int
head_into(const struct np_route *r, const struct np_http_req *req, const char *target,
          enum np_framing body, uint64_t length, char *out, size_t cap, size_t *len)
{
    struct np_uphead u;
    struct np_buf b;

    np_route_uphead(r, req, (struct np_slice){target, strlen(target)}, TOKEN, &u);
    u.body = body;
    u.body_len = length;
    np_buf_init(&b, out, cap);
    if (np_uphead_build(&u, &b) != 0 || !np_buf_ok(&b)) {
        return -1;
    }
    *len = b.len;
    return 0;
}

struct head_row { // NOLINT(clang-analyzer-optin.performance.Padding): a test table
    const char *name;
    enum kind kind;
    const char *client; /* the whole client head */
    const char *target;
    enum np_framing body;
    uint64_t length;
    const char *want;
};

#define HOPS                                                                                       \
    "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n"                       \
    "Proxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: h2c\r\nTrailer: X\r\n"

static const struct head_row head_rows[] = {
    {"header_mode", K_HDR,
     "POST /svc/chat HTTP/1.1\r\nHost: 127.0.0.1:4000\r\nAuthorization: Bearer " TOKEN "\r\n" HOPS
     "Proxy-Authorization: Basic " B64_NONO_TOKEN "\r\nContent-Type: application/json\r\n"
     "Content-Length: 5\r\nAccept:   */*  \r\nX-Empty:\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n",
     "/v1/chat", NP_FRAME_LENGTH, 5,
     "POST /v1/chat HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/json\r\n"
     "Accept: */*\r\nX-Empty: \r\nX-Dup: 1\r\nx-dup: 2\r\n"
     "Authorization: Bearer sk-real\r\nContent-Length: 5\r\n\r\n"},
    {"header_mode_every_inject_header_dropped", K_HDR_X,
     "GET /svc/x HTTP/1.1\r\nHost: h\r\nX-Api-Key: " TOKEN "\r\nx-api-key: other\r\n"
     "Authorization: Bearer client-own\r\n\r\n",
     "/v1/x", NP_FRAME_NONE, 0,
     "GET /v1/x HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer client-own\r\n"
     "X-Api-Key: sk-real\r\n\r\n"},
    {"header_mode_token_format", K_HDR_TOKEN,
     "GET /svc/x HTTP/1.1\r\nHost: h\r\nAuthorization: token " TOKEN "\r\n\r\n", "/v1/x",
     NP_FRAME_NONE, 0,
     "GET /v1/x HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: token sk-real\r\n\r\n"},
    {"basic_mode", K_BASIC,
     "PUT /svc/x HTTP/1.1\r\nHost: h\r\nAuthorization: Basic " B64_USER_TOKEN "\r\n"
     "Transfer-Encoding: chunked\r\n\r\n",
     "/v1/x", NP_FRAME_CHUNKED, 0,
     "PUT /v1/x HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Basic dXNlcjpwYXNz\r\n"
     "Transfer-Encoding: chunked\r\n\r\n"},
    {"url_path_mode_phantom_headers_dropped", K_PATH,
     "GET /svc/bot" TOKEN "/getMe HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer client-own\r\n"
     "X-Phantom: " TOKEN "\r\nCookie: a=b; t=" TOKEN "x\r\nReferer: http://127.0.0.1/bot" TOKEN
     "/\r\nX-Basic: Basic " B64_USER_TOKEN "\r\nUser-Agent: t\r\n\r\n",
     "/bot123:ABC/getMe", NP_FRAME_NONE, 0,
     "GET /bot123:ABC/getMe HTTP/1.1\r\nHost: api.telegram.org\r\n"
     "Authorization: Bearer client-own\r\nUser-Agent: t\r\n\r\n"},
    {"query_mode_chunked", K_QUERY,
     "POST /svc/x?key=" TOKEN " HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
     "Connection: close\r\nX-A: 1\r\n\r\n",
     "/x?key=" QUERY_SECRET_ENC, NP_FRAME_CHUNKED, 0,
     "POST /x?key=" QUERY_SECRET_ENC " HTTP/1.1\r\nHost: maps.example.com\r\nX-A: 1\r\n"
     "Transfer-Encoding: chunked\r\n\r\n"},
    {"nocred_auth_headers", K_NOCRED,
     "GET /svc/x HTTP/1.1\r\nHost: h\r\nProxy-Authorization: Bearer " TOKEN "\r\n"
     "Authorization: Bearer " TOKEN "\r\nAuthorization: Bearer other\r\n\r\n",
     "/v1/x", NP_FRAME_NONE, 0,
     "GET /v1/x HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer other\r\n\r\n"},
    {"credential_not_loaded_no_injection", K_NOSECRET,
     "GET /svc/x HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer other\r\nX-A: 1\r\n\r\n", "/v1/x",
     NP_FRAME_LENGTH, 0,
     "GET /v1/x HTTP/1.1\r\nHost: api.example.com\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n"},
    {"large_content_length", K_ROOT, "POST /svc/ HTTP/1.1\r\nHost: h\r\n\r\n", "/", NP_FRAME_LENGTH,
     UINT64_C(18446744073709551609),
     "POST / HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer sk-real\r\n"
     "Content-Length: 18446744073709551609\r\n\r\n"},
};

static void
head_table(void **state)
{
    char out[4096];
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(head_rows); i++) {
        const struct head_row *row = &head_rows[i];
        struct np_http_req req;
        struct np_route r;
        size_t len = 0;
        size_t want_len = strlen(row->want);
        size_t cap;

        print_message("head: %s\n", row->name);
        parse_head(row->client, &req);
        route_for(row->kind, &r);
        assert_int_equal(
            head_into(&r, &req, row->target, row->body, row->length, out, sizeof(out), &len), 0);
        assert_int_equal(len, want_len);
        assert_memory_equal(out, row->want, len);
        /* every smaller capacity fails and leaves nothing behind */
        for (cap = 0; cap < want_len; cap++) {
            memset(out, 'Z', sizeof(out));
            assert_int_equal(
                head_into(&r, &req, row->target, row->body, row->length, out, cap, &len), -1);
            assert_null(memmem(out, cap, "sk-real", 7));
        }
        assert_int_equal(
            head_into(&r, &req, row->target, row->body, row->length, out, want_len, &len), 0);
        np_route_free(&r);
    }
}

/* A request body is never close-delimited: CLOSE framing is refused. */
static void
head_refuses_close_framing(void **state)
{
    char out[512];
    size_t len = 0;
    struct np_http_req req;
    struct np_route r;

    (void)state;
    parse_head("GET /svc/x HTTP/1.1\r\nHost: h\r\n\r\n", &req);
    route_for(K_HDR, &r);
    assert_int_equal(head_into(&r, &req, "/v1/x", NP_FRAME_CLOSE, 0, out, sizeof(out), &len), -1);
    np_route_free(&r);
}

/* ---------------------------------------------------------------------------------------- */
/* np_route_prepare_injection, np_route_free                                                 */
/* ---------------------------------------------------------------------------------------- */

struct inject_row { // NOLINT(clang-analyzer-optin.performance.Padding): a test table
    const char *name;
    enum kind kind;
    const char *secret;
    int rc;
    const char *want; /* NULL = no value */
};

static const struct inject_row inject_rows[] = {
    {"header_bearer", K_HDR, "sk-real", 0, "Bearer sk-real"},
    {"header_bare", K_HDR_X, "abc", 0, "abc"},
    {"header_token_format", K_HDR_TOKEN, "abc", 0, "token abc"},
    {"basic_base64", K_BASIC, "u:p", 0, "Basic dTpw"},
    {"basic_base64_padding", K_BASIC, "user:pass1", 0, "Basic dXNlcjpwYXNzMQ=="},
    {"url_path_none", K_PATH, "abc", 0, NULL},
    {"query_none", K_QUERY, "abc", 0, NULL},
    {"no_credential_none", K_NOCRED, "abc", 0, NULL},
    {"header_crlf_refused", K_HDR, "a\r\nX-Evil: 1", -1, NULL},
    {"basic_lf_refused", K_BASIC, "u:p\n", -1, NULL},
};

static void
inject_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(inject_rows); i++) {
        const struct inject_row *row = &inject_rows[i];
        struct nonoproxy_route_config rc;
        struct np_route r;

        print_message("inject: %s\n", row->name);
        (void)kind_config(row->kind, &rc);
        assert_int_equal(np_route_build(&rc, 0, &r, NULL, 0), 0);
        assert_int_equal(np_route_prepare_injection(&r), 0); /* no secret: nothing */
        assert_null(r.inject_value);
        r.secret = np_strdup(row->secret);
        r.secret_len = strlen(row->secret);
        assert_int_equal(np_route_prepare_injection(&r), row->rc);
        assert_opt_string(r.inject_value, row->want);
        if (row->want != NULL) {
            assert_int_equal(r.inject_value_len, strlen(row->want));
            assert_int_equal(np_route_prepare_injection(&r), 0); /* again: replaced */
            assert_string_equal(r.inject_value, row->want);
        }
        np_route_free(&r);
    }
}

static void
free_zeroes_and_is_null_safe(void **state)
{
    struct np_route r;
    struct np_route zero;

    (void)state;
    memset(&zero, 0, sizeof(zero));
    route_for(K_BASIC, &r);
    assert_non_null(r.inject_value);
    np_route_free(&r);
    assert_memory_equal(&r, &zero, sizeof(r));
    np_route_free(&r); /* twice */
    np_route_free(NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Environment variable names                                                                */
/* ---------------------------------------------------------------------------------------- */

struct name_row {
    const char *name;
    const char *prefix;
    const char *key;
    const char *env_var;
    const char *base_url; /* np_route_base_url_name */
    const char *phantom;  /* np_route_phantom_name; NULL = none */
};

static const struct name_row name_rows[] = {
    {"dash_prefix_and_key", "my-api", "openai-key", NULL, "MY_API_BASE_URL", "OPENAI_KEY"},
    {"slashes_stripped", "/openai/", "openai_api_key", NULL, "OPENAI_BASE_URL", "OPENAI_API_KEY"},
    {"dot_prefix", "a.b", "k.e-y", NULL, "A_B_BASE_URL", "K_E_Y"},
    {"env_key_without_env_var", "svc", "env://X", NULL, "SVC_BASE_URL", NULL},
    {"env_key_with_env_var", "svc", "env://X", "MY_TOKEN", "SVC_BASE_URL", "MY_TOKEN"},
    {"file_key_without_env_var", "svc", "file:///run/k", NULL, "SVC_BASE_URL", NULL},
    {"keyring_key_without_env_var", "svc", "keyring://s/a", NULL, "SVC_BASE_URL", NULL},
    {"env_var_beats_bare_key", "svc", "openai", "OTHER", "SVC_BASE_URL", "OTHER"},
    {"no_credential_no_phantom", "svc", NULL, "MY_TOKEN", "SVC_BASE_URL", NULL},
};

static void
names_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(name_rows); i++) {
        const struct name_row *row = &name_rows[i];
        struct nonoproxy_route_config rc = {.prefix = row->prefix,
                                            .upstream = UP,
                                            .credential_key = row->key,
                                            .env_var = row->env_var};
        struct np_route r;
        char out[64];
        size_t n;

        print_message("names: %s\n", row->name);
        assert_int_equal(np_route_build(&rc, 0, &r, NULL, 0), 0);
        n = np_route_base_url_name(&r, out, sizeof(out));
        assert_int_equal(n, strlen(row->base_url));
        assert_string_equal(out, row->base_url);
        /* exactly len + 1 fits, len does not */
        assert_int_equal(np_route_base_url_name(&r, out, n + 1), n);
        assert_int_equal(np_route_base_url_name(&r, out, n), 0);
        memset(out, 0, sizeof(out));
        n = np_route_phantom_name(&r, out, sizeof(out));
        if (row->phantom == NULL) {
            assert_int_equal(n, 0);
            assert_string_equal(out, "");
        } else {
            assert_int_equal(n, strlen(row->phantom));
            assert_string_equal(out, row->phantom);
            assert_int_equal(np_route_phantom_name(&r, out, n + 1), n);
            assert_int_equal(np_route_phantom_name(&r, out, n), 0);
        }
        np_route_free(&r);
    }
}

struct refused_row {
    const char *name;
    bool want;
};

static const struct refused_row refused_rows[] = {
    {"LD_PRELOAD", true},
    {"ld_preload", true},
    {"Ld_Library_Path", true},
    {"LD_AUDIT", true},
    {"DYLD_INSERT_LIBRARIES", true},
    {"dyld_anything", true},
    {"DYLD_", true},
    {"BASH_ENV", true},
    {"ENV", true},
    {"IFS", true},
    {"CDPATH", true},
    {"PROMPT_COMMAND", true},
    {"NODE_OPTIONS", true},
    {"NODE_PATH", true},
    {"PYTHONSTARTUP", true},
    {"PYTHONPATH", true},
    {"PERL5OPT", true},
    {"PERL5LIB", true},
    {"RUBYOPT", true},
    {"RUBYLIB", true},
    {"JAVA_TOOL_OPTIONS", true},
    {"_JAVA_OPTIONS", true},
    {"DOTNET_STARTUP_HOOKS", true},
    {"GOFLAGS", true},
    {"PATH", true},
    {"home", true},
    {"SHELL", true},
    {"HTTP_PROXY", true},
    {"http_proxy", true},
    {"HTTPS_PROXY", true},
    {"https_proxy", true},
    {"NO_PROXY", true},
    {"no_proxy", true},
    {"NONO_PROXY_TOKEN", true},
    {"NODE_USE_ENV_PROXY", true},
    {"OPENAI_API_KEY", false},
    {"PATHX", false},
    {"MY_PATH", false},
    {"ENV_X", false},
    {"LD_PRELOADX", false},
    {"DYLD", false},
    {"LD", false},
    {"", false},
};

static void
env_name_refused_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < NP_ARRAY_LEN(refused_rows); i++) {
        print_message("refused: '%s'\n", refused_rows[i].name);
        assert_int_equal(
            np_route_env_name_refused(refused_rows[i].name, strlen(refused_rows[i].name)),
            refused_rows[i].want);
    }
    /* only name[0..len) counts */
    assert_true(np_route_env_name_refused("PATHX", 4));
    assert_false(np_route_env_name_refused("PATH", 3));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(build_table),
        cmocka_unit_test(build_why_exact),
        cmocka_unit_test(build_why_truncated_or_null),
        cmocka_unit_test(build_defaults_table),
        cmocka_unit_test(build_inject_mode_none_is_header),
        cmocka_unit_test(build_upstream_table),
        cmocka_unit_test(match_table),
        cmocka_unit_test(match_respects_length),
        cmocka_unit_test(phantom_table),
        cmocka_unit_test(phantom_empty_token_refused),
        cmocka_unit_test(target_table),
        cmocka_unit_test(target_needs_usable_secret),
        cmocka_unit_test(head_table),
        cmocka_unit_test(head_refuses_close_framing),
        cmocka_unit_test(inject_table),
        cmocka_unit_test(free_zeroes_and_is_null_safe),
        cmocka_unit_test(names_table),
        cmocka_unit_test(env_name_refused_table),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
