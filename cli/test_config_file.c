/* Unit tests of the --config loader and its merge with the command line (cli/config_file.c):
 * one row per rule. JSON texts are written with ' for " and turned back before parsing. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "args.h"
#include "config_file.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NAME         "cfg.json"
#define PASSWORD     "hunter2"
#define RENDER_CAP   2048
#define MAX_ARGV     16

#ifndef NONOPROXY_EXAMPLE_CONFIG
#define NONOPROXY_EXAMPLE_CONFIG "docs/examples/nonoproxy.json"
#endif

/* Returns a malloc'd copy of s with every ' turned into " (the rows' JSON spelling). */
static char *
dq(const char *s)
{
    char *out = strdup(s);
    size_t i = 0;

    assert_non_null(out);
    for (i = 0; out[i] != '\0'; i++) {
        if (out[i] == '\'') {
            out[i] = '"';
        }
    }
    return out;
}

/* Appends text to dst (RENDER_CAP bytes); fails the test when it does not fit. */
static void
add(char *dst, const char *text)
{
    size_t used = strlen(dst);
    size_t n = strlen(text);

    assert_true(n < RENDER_CAP - used);
    memcpy(dst + used, text, n + 1);
}

/* Appends the decimal text of v to dst. */
static void
add_num(char *dst, unsigned long long v)
{
    char num[32];

    (void)snprintf(num, sizeof(num), "%llu", v);
    add(dst, num);
}

/* Appends ",KEY=VALUE" (or "KEY=VALUE" when first is true) to dst. */
static void
add_pair(char *dst, bool first, const char *key, const char *value)
{
    if (!first) {
        add(dst, ",");
    }
    add(dst, key);
    add(dst, "=");
    add(dst, value);
}

/* Parses text (len bytes) as the file name into *f; err has CLI_ERR_LEN bytes. */
static bool
parse_as(const char *name, const char *text, size_t len, struct cli_file_config *f, char *err)
{
    struct cli_config_text src = {name, text, len};

    return cli_config_parse(&src, f, err, CLI_ERR_LEN);
}

/* Appends "; " unless dst is empty. */
static void
sep(char *dst)
{
    if (dst[0] != '\0') {
        add(dst, "; ");
    }
}

/* Renders a list as "NAME/N_FILE=a,b" (nothing when empty). */
static void
render_list(char *dst, const char *name, const struct cli_list *l)
{
    size_t i = 0;

    if (l->len == 0) {
        assert_null(l->items);
        assert_int_equal(l->n_file, 0);
        return;
    }
    sep(dst);
    add(dst, name);
    add(dst, "/");
    add_num(dst, l->n_file);
    add(dst, "=");
    for (i = 0; i < l->len; i++) {
        if (i > 0) {
            add(dst, ",");
        }
        add(dst, l->items[i]);
    }
}

/* Appends ",KEY=VALUE" when value is set. */
static void
render_key(char *dst, const char *key, const char *value)
{
    if (value != NULL) {
        add_pair(dst, false, key, value);
    }
}

/* Appends ",rule=METHOD:PATH" for each endpoint rule of r. */
static void
render_rules(char *dst, const struct cli_route *r)
{
    size_t i = 0;

    if (r->n_rules == 0) {
        assert_null(r->rules);
        return;
    }
    assert_true(r->n_rules <= r->cap_rules);
    for (i = 0; i < r->n_rules; i++) {
        assert_non_null(r->rules[i].method);
        assert_non_null(r->rules[i].path);
        add_pair(dst, false, "rule", r->rules[i].method);
        add(dst, ":");
        add(dst, r->rules[i].path);
    }
}

/* Appends ",KEY=N" for a set number of a route. */
static void
render_route_uint(char *dst, const char *key, const struct cli_uint *u)
{
    if (u->set) {
        add(dst, ",");
        add(dst, key);
        add(dst, "=");
        add_num(dst, u->value);
    } else {
        assert_int_equal(u->value, 0);
    }
}

/* Renders routes as "routes/N_FILE=P=U[,KEY=VALUE...] | ...", inject as "NAME#ENUM". */
static void
render_routes(char *dst, const struct cli_routes *l)
{
    size_t i = 0;

    if (l->len == 0) {
        assert_int_equal(l->n_file, 0);
        return;
    }
    sep(dst);
    add(dst, "routes/");
    add_num(dst, l->n_file);
    add(dst, "=");
    for (i = 0; i < l->len; i++) {
        const struct cli_route *r = &l->items[i];

        assert_non_null(r->prefix);
        assert_non_null(r->upstream);
        if (i < l->n_file) {
            assert_null(r->buf); /* a file route owns no buffer */
        }
        if (i > 0) {
            add(dst, " | ");
        }
        add_pair(dst, true, r->prefix, r->upstream);
        render_key(dst, "credential", r->credential);
        if (r->inject_name != NULL) {
            add_pair(dst, false, "inject", r->inject_name);
            add(dst, "#");
            add_num(dst, (unsigned long long)r->inject);
        } else {
            assert_int_equal(r->inject, CLI_INJECT_UNSET);
        }
        render_key(dst, "header", r->header);
        render_key(dst, "format", r->format);
        render_key(dst, "path-pattern", r->path_pattern);
        render_key(dst, "path-replacement", r->path_replacement);
        render_key(dst, "query-param", r->query_param);
        render_key(dst, "env-var", r->env_var);
        render_key(dst, "tls-ca", r->tls_ca);
        render_key(dst, "client-cert", r->client_cert);
        render_key(dst, "client-key", r->client_key);
        render_rules(dst, r);
        render_route_uint(dst, "rpm", &r->rpm);
        render_route_uint(dst, "burst", &r->burst);
        render_route_uint(dst, "max-delay", &r->max_delay_ms);
    }
}

/* Appends "NAME=VALUE" for a set string. */
static void
render_str(char *dst, const char *name, const char *value)
{
    if (value != NULL) {
        sep(dst);
        add_pair(dst, true, name, value);
    }
}

/* Appends "NAME=N" for a set number. */
static void
render_uint(char *dst, const char *name, const struct cli_uint *u)
{
    if (u->set) {
        sep(dst);
        add(dst, name);
        add(dst, "=");
        add_num(dst, u->value);
    } else {
        assert_int_equal(u->value, 0);
    }
}

/* Renders every field the loader and the merge touch, in a fixed order; unset ones are left
 * out, so "" means "nothing set". */
static void
render(char *dst, const struct cli_args *v)
{
    dst[0] = '\0';
    render_list(dst, "allow", &v->allow);
    render_list(dst, "deny", &v->deny);
    if (v->strict.set) {
        sep(dst);
        add_pair(dst, true, "strict", v->strict.value ? "true" : "false");
    }
    render_uint(dst, "ask-ms", &v->ask_timeout_ms);
    render_routes(dst, &v->routes);
    render_str(dst, "ext", v->file_external_proxy);
    render_str(dst, "cli-ext", v->external_proxy);
    render_list(dst, "bypass", &v->bypass);
    render_str(dst, "bind", v->bind_addr);
    render_uint(dst, "port", &v->port);
    render_uint(dst, "maxconn", &v->max_connections);
    render_str(dst, "ca", v->ca_file);
    render_str(dst, "audit", v->audit_log);
    render_uint(dst, "cap", &v->audit_capacity);
    if (v->require_auth.set) {
        sep(dst);
        add_pair(dst, true, "auth", v->require_auth.value ? "true" : "false");
    }
    render_uint(dst, "header-ms", &v->header_timeout_ms);
    render_uint(dst, "idle-ms", &v->idle_timeout_ms);
    render_uint(dst, "connect-ms", &v->connect_timeout_ms);
}

/* ---------------------------------------------------------------------------------------- */
/* Accepted files: {rule, JSON, what the loader makes of it}                                 */
/* ---------------------------------------------------------------------------------------- */

struct accept_case {
    const char *rule;
    const char *json;
    const char *want;
};

#define R0 "{'routes': [{'prefix': 'p', 'upstream': 'https://h'"

static const struct accept_case ACCEPT[] = {
    {"empty_object_sets_nothing", "{}", ""},
    {"whitespace_around_object", " \n\t{ }\r\n ", ""},
    {"utf8_bom_is_skipped", "\xef\xbb\xbf{'bind_port': 1}", "port=1"},
    {"every_null_value_is_unset",
     "{'allowed_hosts': null, 'routes': null, 'external_proxy': null, 'bind_addr': null, "
     "'bind_port': null, 'max_connections': null, 'ca_file': null, 'audit_log': null, "
     "'audit_capacity': null, 'require_auth': null, 'header_timeout': null, "
     "'idle_timeout': null, 'connect_timeout': null}",
     ""},

    /* allowed_hosts */
    {"allowed_hosts_in_file_order", "{'allowed_hosts': ['a.com', '*.b.org', 'c.net:443']}",
     "allow/0=a.com,*.b.org,c.net:443"},
    {"allowed_hosts_empty_array", "{'allowed_hosts': []}", ""},
    {"allowed_hosts_not_validated_by_the_loader", "{'allowed_hosts': ['a b', '*']}",
     "allow/0=a b,*"},

    /* scalars */
    {"bind_addr", "{'bind_addr': '::1'}", "bind=::1"},
    {"bind_port_zero", "{'bind_port': 0}", "port=0"},
    {"bind_port_max", "{'bind_port': 65535}", "port=65535"},
    {"bind_port_integral_float", "{'bind_port': 8080.0}", "port=8080"},
    {"bind_port_exponent", "{'bind_port': 8e3}", "port=8000"},
    {"bind_port_negative_zero", "{'bind_port': -0}", "port=0"},
    {"max_connections_zero", "{'max_connections': 0}", "maxconn=0"},
    {"max_connections_uint_max", "{'max_connections': 4294967295}", "maxconn=4294967295"},
    {"ca_file", "{'ca_file': '/etc/corp-ca.pem'}", "ca=/etc/corp-ca.pem"},
    {"audit_log_dash_is_stderr", "{'audit_log': '-'}", "audit=-"},
    {"audit_capacity_zero", "{'audit_capacity': 0}", "cap=0"},
    {"audit_capacity_max", "{'audit_capacity': 4294967295}", "cap=4294967295"},
    {"require_auth_false", "{'require_auth': false}", "auth=false"},
    {"require_auth_true", "{'require_auth': true}", "auth=true"},
    {"header_timeout_seconds_to_ms", "{'header_timeout': 30}", "header-ms=30000"},
    {"idle_timeout_zero_disables", "{'idle_timeout': 0}", "idle-ms=0"},
    {"connect_timeout_one_day", "{'connect_timeout': 86400}", "connect-ms=86400000"},
    {"string_escapes_decoded", "{'bind_addr': 'a\\u00e9\\n\\\\'}", "bind=a\xc3\xa9\n\\"},
    {"escaped_backslash_before_u0000_text", "{'bind_addr': 'a\\\\u0000'}", "bind=a\\u0000"},

    /* external_proxy */
    {"external_proxy_address_only", "{'external_proxy': {'address': 'proxy.corp:3128'}}",
     "ext=proxy.corp:3128"},
    {"external_proxy_with_userinfo_and_bypass",
     "{'external_proxy': {'address': 'u:" PASSWORD "@[::1]:3128', 'bypass_hosts': "
     "['localhost', '*.internal']}}",
     "ext=u:" PASSWORD "@[::1]:3128; bypass/0=localhost,*.internal"},
    {"external_proxy_bypass_null", "{'external_proxy': {'address': 'h:1', 'bypass_hosts': null}}",
     "ext=h:1"},
    {"external_proxy_bypass_empty", "{'external_proxy': {'bypass_hosts': [], 'address': 'h:1'}}",
     "ext=h:1"},

    /* routes */
    {"route_minimal", R0 "}]}", "routes/0=p=https://h"},
    {"route_every_key",
     "{'routes': [{'prefix': 'gh', 'upstream': 'https://api.github.com', "
     "'credential_key': 'env://GH_TOKEN', 'inject_mode': 'header', 'inject_header': 'X-Auth', "
     "'credential_format': 'token {}', 'path_pattern': '/bot{}/', 'path_replacement': '/b/{}/', "
     "'query_param_name': 'key', 'env_var': 'GH_PHANTOM', 'tls_ca': '/etc/gh-ca.pem'}]}",
     "routes/0=gh=https://api.github.com,credential=env://GH_TOKEN,inject=header#1,"
     "header=X-Auth,format=token {},path-pattern=/bot{}/,path-replacement=/b/{}/,"
     "query-param=key,env-var=GH_PHANTOM,tls-ca=/etc/gh-ca.pem"},
    {"route_keys_in_any_order", "{'routes': [{'env_var': 'V', 'upstream': 'u', 'prefix': 'p'}]}",
     "routes/0=p=u,env-var=V"},
    {"route_inject_header", R0 ", 'inject_mode': 'header'}]}",
     "routes/0=p=https://h,inject=header#1"},
    {"route_inject_url_path", R0 ", 'inject_mode': 'url_path'}]}",
     "routes/0=p=https://h,inject=url_path#2"},
    {"route_inject_query_param", R0 ", 'inject_mode': 'query_param'}]}",
     "routes/0=p=https://h,inject=query_param#3"},
    {"route_inject_basic_auth", R0 ", 'inject_mode': 'basic_auth'}]}",
     "routes/0=p=https://h,inject=basic_auth#4"},
    {"route_inject_seed_upper_case", R0 ", 'inject_mode': 'HEADER'}]}",
     "routes/0=p=https://h,inject=HEADER#1"},
    {"route_inject_seed_upper_case_url_path", R0 ", 'inject_mode': 'URL_PATH'}]}",
     "routes/0=p=https://h,inject=URL_PATH#2"},
    {"route_inject_mixed_case", R0 ", 'inject_mode': 'Basic_Auth'}]}",
     "routes/0=p=https://h,inject=Basic_Auth#4"},
    {"route_null_optional_keys",
     R0 ", 'credential_key': null, 'inject_mode': null, 'inject_header': null, "
        "'credential_format': null, 'path_pattern': null, 'path_replacement': null, "
        "'query_param_name': null, 'env_var': null, 'tls_ca': null}]}",
     "routes/0=p=https://h"},
    {"route_value_may_contain_comma_and_equals", R0 ", 'credential_format': 'k=v, {}'}]}",
     "routes/0=p=https://h,format=k=v, {}"},
    {"route_values_not_validated_by_the_loader",
     "{'routes': [{'prefix': '/a b/', 'upstream': 'ftp://x'}]}", "routes/0=/a b/=ftp://x"},
    {"routes_in_file_order",
     "{'routes': [{'prefix': 'b', 'upstream': 'https://b'}, {'prefix': 'a', 'upstream': "
     "'https://a', 'credential_key': 'k'}, {'prefix': 'c', 'upstream': 'https://c'}]}",
     "routes/0=b=https://b | a=https://a,credential=k | c=https://c"},
    {"routes_empty_array", "{'routes': []}", ""},

    /* policy (issue 14) */
    {"denied_hosts_in_file_order",
     "{'denied_hosts': ['evil.example.com', '*.ads.example', '10.9.0.0/16', 'fd00::/8']}",
     "deny/0=evil.example.com,*.ads.example,10.9.0.0/16,fd00::/8"},
    {"denied_hosts_empty_array", "{'denied_hosts': []}", ""},
    {"allowed_hosts_ranges_as_they_are", "{'allowed_hosts': ['10.0.0.0/8', '203.0.113.7/32']}",
     "allow/0=10.0.0.0/8,203.0.113.7/32"},
    {"strict_allowlist_true", "{'strict_allowlist': true}", "strict=true"},
    {"strict_allowlist_false", "{'strict_allowlist': false}", "strict=false"},
    {"ask_timeout_seconds_to_ms", "{'ask_timeout': 45}", "ask-ms=45000"},
    {"ask_timeout_zero_waits", "{'ask_timeout': 0}", "ask-ms=0"},
    {"route_endpoint_rules_in_order",
     R0 ", 'endpoint_rules': [{'method': 'GET', 'path': '/v1/models'}, "
        "{'path': '/v1/chat/**', 'method': '*'}]}]}",
     "routes/0=p=https://h,rule=GET:/v1/models,rule=*:/v1/chat/**"},
    {"route_endpoint_rules_empty_is_none", R0 ", 'endpoint_rules': []}]}", "routes/0=p=https://h"},
    {"route_endpoint_rule_values_not_validated_by_the_loader",
     R0 ", 'endpoint_rules': [{'method': 'get me', 'path': 'no-slash'}]}]}",
     "routes/0=p=https://h,rule=get me:no-slash"},
    {"route_rate_limit_every_key",
     R0 ", 'rate_limit': {'requests_per_minute': 60, 'burst': 5, 'max_delay_ms': 250}}]}",
     "routes/0=p=https://h,rpm=60,burst=5,max-delay=250"},
    {"route_rate_limit_only_rpm", R0 ", 'rate_limit': {'requests_per_minute': 1}}]}",
     "routes/0=p=https://h,rpm=1"},
    {"route_rate_limit_maxima",
     R0 ", 'rate_limit': {'requests_per_minute': 1000000, 'burst': 1000000, "
        "'max_delay_ms': 600000}}]}",
     "routes/0=p=https://h,rpm=1000000,burst=1000000,max-delay=600000"},
    {"route_rate_limit_null_burst",
     R0 ", 'rate_limit': {'requests_per_minute': 2, 'burst': null}}]}",
     "routes/0=p=https://h,rpm=2"},
    {"route_client_certificate",
     R0 ", 'tls_client_cert': '/abs/cert.pem', 'tls_client_key': '/abs/key.pem'}]}",
     "routes/0=p=https://h,client-cert=/abs/cert.pem,client-key=/abs/key.pem"},
    {"route_policy_nulls",
     R0 ", 'endpoint_rules': null, 'rate_limit': null, 'tls_client_cert': null, "
        "'tls_client_key': null}]}",
     "routes/0=p=https://h"},

    /* everything */
    {"every_top_level_key",
     "{'connect_timeout': 3, 'idle_timeout': 2, 'header_timeout': 1, 'require_auth': false, "
     "'audit_capacity': 64, 'audit_log': '/tmp/a.jsonl', 'ca_file': '/ca.pem', "
     "'max_connections': 8, 'bind_port': 3128, 'bind_addr': '127.0.0.2', "
     "'external_proxy': {'address': 'h:1', 'bypass_hosts': ['x']}, "
     "'routes': [{'prefix': 'p', 'upstream': 'u'}], 'allowed_hosts': ['a']}",
     "allow/0=a; routes/0=p=u; ext=h:1; bypass/0=x; bind=127.0.0.2; port=3128; maxconn=8; "
     "ca=/ca.pem; audit=/tmp/a.jsonl; cap=64; auth=false; header-ms=1000; idle-ms=2000; "
     "connect-ms=3000"},
};

/* Parses one accepted row and compares the rendering. */
static void
run_accept(void **state)
{
    const struct accept_case *c = *state;
    struct cli_file_config f;
    char err[CLI_ERR_LEN] = "untouched";
    char got[RENDER_CAP];
    char *json = dq(c->json);

    if (!parse_as(NAME, json, strlen(json), &f, err)) {
        fail_msg("refused: %s", err);
    }
    assert_string_equal(err, "untouched"); /* no error text on success */
    render(got, &f.v);
    assert_string_equal(got, c->want);
    assert_int_equal(f.v.action, CLI_ACTION_ERROR); /* only the file's fields are set */
    assert_null(f.v.command);
    assert_null(f.v.config);
    cli_config_free(&f);
    assert_null(f.tree);
    assert_null(f.v.allow.items);
    assert_null(f.v.routes.items);
    free(json);
}

/* ---------------------------------------------------------------------------------------- */
/* Refused files: {rule, JSON, exact message}. No message may hold the password.             */
/* ---------------------------------------------------------------------------------------- */

struct reject_case {
    const char *rule;
    const char *json;
    const char *err;
};

#define EXT_PW     "{'external_proxy': {'address': 'u:" PASSWORD "@h:1'"
#define INJECT_ERR "expected one of header, url_path, query_param, basic_auth"
#define KEY100                                                                                     \
    "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"     \
    "kkkkkkkkkkkk"

static const struct reject_case REJECT[] = {
    /* not a JSON object */
    {"empty_file", "", NAME ": not valid JSON (line 1, column 1)"},
    {"only_whitespace", "  \n ", NAME ": not valid JSON (line 2, column 1)"},
    {"top_level_array", "[]", NAME ": expected a JSON object at the top level"},
    {"top_level_string", "'x'", NAME ": expected a JSON object at the top level"},
    {"top_level_number", "1", NAME ": expected a JSON object at the top level"},
    {"top_level_null", "null", NAME ": expected a JSON object at the top level"},
    {"trailing_comma", "{\n  'bind_port': 1,\n}", NAME ": not valid JSON (line 3, column 1)"},
    {"missing_colon", "{'bind_port' 1}", NAME ": not valid JSON (line 1, column 14)"},
    {"bare_word_value", "{'bind_addr': localhost}", NAME ": not valid JSON (line 1, column 15)"},
    {"unterminated_object", "{'bind_port': 1", NAME ": not valid JSON (line 1, column 15)"},
    {"comment_is_not_json", "// c\n{}", NAME ": not valid JSON (line 1, column 1)"},
    {"text_after_object", "{} x",
     NAME ": not valid JSON: text after the object (line 1, column 4)"},
    {"two_objects", "{}\n{}", NAME ": not valid JSON: text after the object (line 2, column 1)"},
    {"nul_escape_in_string", "{\n 'bind_addr': 'a\\u0000b'}",
     NAME ": not allowed: \\u0000 in a string (line 2, column 17)"},
    {"nul_escape_in_key", "{'a\\u0000': 1}",
     NAME ": not allowed: \\u0000 in a string (line 1, column 4)"},

    /* unknown and duplicate keys */
    {"unknown_top_level_key", "{'allowed_host': []}", NAME ": allowed_host: unknown key"},
    {"keys_are_case_sensitive", "{'Bind_Port': 1}", NAME ": Bind_Port: unknown key"},
    {"unknown_key_even_when_null", "{'sandbox': null}", NAME ": sandbox: unknown key"},
    {"unknown_route_key",
     "{'routes': [{'prefix': 'a', 'upstream': 'u'}, {'prefix': 'b', 'upstream': 'u', "
     "'token': 'x'}]}",
     NAME ": routes[1].token: unknown key"},
    {"route_keys_use_underscores", R0 ", 'env-var': 'X'}]}",
     NAME ": routes[0].env-var: unknown key"},
    {"route_key_from_the_command_line_is_unknown", R0 ", 'credential': 'k'}]}",
     NAME ": routes[0].credential: unknown key"},
    {"unknown_external_proxy_key", EXT_PW ", 'auth': 'basic'}}",
     NAME ": external_proxy.auth: unknown key"},
    {"unknown_key_shown_printable", "{'a\\u001bb': 1}", NAME ": a?b: unknown key"},
    {"unknown_key_shown_truncated", "{'" KEY100 "': 1}",
     NAME ": kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...: unknown key"},
    {"duplicate_top_level_key", "{'bind_port': 1, 'bind_port': 2}",
     NAME ": bind_port: duplicate key"},
    {"duplicate_key_after_null", "{'bind_port': null, 'bind_port': 2}",
     NAME ": bind_port: duplicate key"},
    {"duplicate_route_key", R0 ", 'prefix': 'q'}]}", NAME ": routes[0].prefix: duplicate key"},
    {"duplicate_external_proxy_key", EXT_PW ", 'address': 'h:2'}}",
     NAME ": external_proxy.address: duplicate key"},

    /* wrong types: lists */
    {"allowed_hosts_string", "{'allowed_hosts': 'a.com'}",
     NAME ": allowed_hosts: expected an array of strings"},
    {"allowed_hosts_object", "{'allowed_hosts': {}}",
     NAME ": allowed_hosts: expected an array of strings"},
    {"allowed_hosts_number_item", "{'allowed_hosts': ['a', 1]}",
     NAME ": allowed_hosts[1]: expected a non-empty string"},
    {"allowed_hosts_empty_item", "{'allowed_hosts': ['a', 'b', '']}",
     NAME ": allowed_hosts[2]: expected a non-empty string"},
    {"allowed_hosts_null_item", "{'allowed_hosts': [null]}",
     NAME ": allowed_hosts[0]: expected a non-empty string"},
    {"allowed_hosts_nested_array", "{'allowed_hosts': [['a']]}",
     NAME ": allowed_hosts[0]: expected a non-empty string"},
    {"routes_object", "{'routes': {'prefix': 'p', 'upstream': 'u'}}",
     NAME ": routes: expected an array of objects"},
    {"routes_item_string", "{'routes': ['p=https://h']}", NAME ": routes[0]: expected an object"},
    {"routes_item_null", "{'routes': [null]}", NAME ": routes[0]: expected an object"},
    {"routes_second_item_null", "{'routes': [{'prefix': 'p', 'upstream': 'u'}, null]}",
     NAME ": routes[1]: expected an object"},
    {"external_proxy_string", "{'external_proxy': 'proxy:3128'}",
     NAME ": external_proxy: expected an object"},
    {"external_proxy_array", "{'external_proxy': []}", NAME ": external_proxy: expected an object"},
    {"bypass_hosts_string", EXT_PW ", 'bypass_hosts': 'x'}}",
     NAME ": external_proxy.bypass_hosts: expected an array of strings"},
    {"bypass_hosts_bool_item", EXT_PW ", 'bypass_hosts': ['a', 'b', true]}}",
     NAME ": external_proxy.bypass_hosts[2]: expected a non-empty string"},

    /* wrong types: strings */
    {"bind_addr_number", "{'bind_addr': 127}", NAME ": bind_addr: expected a non-empty string"},
    {"bind_addr_empty", "{'bind_addr': ''}", NAME ": bind_addr: expected a non-empty string"},
    {"ca_file_array", "{'ca_file': ['/a.pem']}", NAME ": ca_file: expected a non-empty string"},
    {"audit_log_bool", "{'audit_log': true}", NAME ": audit_log: expected a non-empty string"},
    {"route_prefix_number", "{'routes': [{'prefix': 1, 'upstream': 'u'}]}",
     NAME ": routes[0].prefix: expected a non-empty string"},
    {"route_upstream_empty", "{'routes': [{'prefix': 'p', 'upstream': ''}]}",
     NAME ": routes[0].upstream: expected a non-empty string"},
    {"route_credential_key_number", R0 ", 'credential_key': 1}]}",
     NAME ": routes[0].credential_key: expected a non-empty string"},
    {"route_inject_header_array", R0 ", 'inject_header': []}]}",
     NAME ": routes[0].inject_header: expected a non-empty string"},
    {"route_credential_format_object", R0 ", 'credential_format': {}}]}",
     NAME ": routes[0].credential_format: expected a non-empty string"},
    {"route_path_pattern_bool", R0 ", 'path_pattern': true}]}",
     NAME ": routes[0].path_pattern: expected a non-empty string"},
    {"route_path_replacement_number", R0 ", 'path_replacement': 1}]}",
     NAME ": routes[0].path_replacement: expected a non-empty string"},
    {"route_query_param_name_empty", R0 ", 'query_param_name': ''}]}",
     NAME ": routes[0].query_param_name: expected a non-empty string"},
    {"route_env_var_number", R0 ", 'env_var': 2}]}",
     NAME ": routes[0].env_var: expected a non-empty string"},
    {"route_tls_ca_false", R0 ", 'tls_ca': false}]}",
     NAME ": routes[0].tls_ca: expected a non-empty string"},

    /* inject_mode */
    {"inject_mode_unknown_in_second_route",
     "{'routes': [{'prefix': 'a', 'upstream': 'u'}, {'prefix': 'b', 'upstream': 'u', "
     "'inject_mode': 'bearer'}]}",
     NAME ": routes[1].inject_mode: " INJECT_ERR},
    {"inject_mode_dash_spelling", R0 ", 'inject_mode': 'url-path'}]}",
     NAME ": routes[0].inject_mode: " INJECT_ERR},
    {"inject_mode_number", R0 ", 'inject_mode': 0}]}", NAME ": routes[0].inject_mode: " INJECT_ERR},
    {"inject_mode_empty", R0 ", 'inject_mode': ''}]}", NAME ": routes[0].inject_mode: " INJECT_ERR},
    {"inject_mode_prefix_of_a_mode", R0 ", 'inject_mode': 'head'}]}",
     NAME ": routes[0].inject_mode: " INJECT_ERR},

    /* required keys */
    {"route_without_prefix", "{'routes': [{'upstream': 'u'}]}",
     NAME ": routes[0].prefix: missing (required)"},
    {"route_without_upstream", "{'routes': [{'prefix': 'p'}]}",
     NAME ": routes[0].upstream: missing (required)"},
    {"route_upstream_null_is_missing", "{'routes': [{'prefix': 'p', 'upstream': null}]}",
     NAME ": routes[0].upstream: missing (required)"},
    {"route_empty_object", "{'routes': [{}]}", NAME ": routes[0].prefix: missing (required)"},
    {"external_proxy_without_address", "{'external_proxy': {'bypass_hosts': ['x']}}",
     NAME ": external_proxy.address: missing (required)"},
    {"external_proxy_address_null", "{'external_proxy': {'address': null}}",
     NAME ": external_proxy.address: missing (required)"},

    /* numbers */
    {"bind_port_65536", "{'bind_port': 65536}",
     NAME ": bind_port: expected an integer from 0 to 65535"},
    {"bind_port_negative", "{'bind_port': -1}",
     NAME ": bind_port: expected an integer from 0 to 65535"},
    {"bind_port_fraction", "{'bind_port': 80.5}",
     NAME ": bind_port: expected an integer from 0 to 65535"},
    {"bind_port_tiny_fraction", "{'bind_port': 1e-300}",
     NAME ": bind_port: expected an integer from 0 to 65535"},
    {"bind_port_string", "{'bind_port': '8080'}",
     NAME ": bind_port: expected an integer from 0 to 65535"},
    {"bind_port_bool", "{'bind_port': true}",
     NAME ": bind_port: expected an integer from 0 to 65535"},
    {"bind_port_overflows_double", "{'bind_port': 1e400}",
     NAME ": bind_port: expected an integer from 0 to 65535"},
    {"bind_port_huge_negative", "{'bind_port': -1e400}",
     NAME ": bind_port: expected an integer from 0 to 65535"},
    {"max_connections_above_uint", "{'max_connections': 4294967296}",
     NAME ": max_connections: expected an integer from 0 to 4294967295"},
    {"max_connections_2_to_the_64", "{'max_connections': 18446744073709551616}",
     NAME ": max_connections: expected an integer from 0 to 4294967295"},
    {"max_connections_negative", "{'max_connections': -5}",
     NAME ": max_connections: expected an integer from 0 to 4294967295"},
    {"audit_capacity_above_max", "{'audit_capacity': 4294967296}",
     NAME ": audit_capacity: expected an integer from 0 to 4294967295"},
    {"audit_capacity_negative", "{'audit_capacity': -1}",
     NAME ": audit_capacity: expected an integer from 0 to 4294967295"},
    {"header_timeout_above_one_day", "{'header_timeout': 86401}",
     NAME ": header_timeout: expected an integer from 0 to 86400 (seconds)"},
    {"idle_timeout_negative", "{'idle_timeout': -1}",
     NAME ": idle_timeout: expected an integer from 0 to 86400 (seconds)"},
    {"connect_timeout_fraction", "{'connect_timeout': 0.5}",
     NAME ": connect_timeout: expected an integer from 0 to 86400 (seconds)"},
    {"connect_timeout_string", "{'connect_timeout': '10'}",
     NAME ": connect_timeout: expected an integer from 0 to 86400 (seconds)"},
    {"require_auth_string", "{'require_auth': 'true'}",
     NAME ": require_auth: expected true or false"},
    {"require_auth_number", "{'require_auth': 1}", NAME ": require_auth: expected true or false"},

    /* policy (issue 14) */
    {"denied_hosts_string", "{'denied_hosts': 'evil.example'}",
     NAME ": denied_hosts: expected an array of strings"},
    {"denied_hosts_number_item", "{'denied_hosts': ['a', 10]}",
     NAME ": denied_hosts[1]: expected a non-empty string"},
    {"strict_allowlist_string", "{'strict_allowlist': 'yes'}",
     NAME ": strict_allowlist: expected true or false"},
    {"ask_timeout_negative", "{'ask_timeout': -1}",
     NAME ": ask_timeout: expected an integer from 0 to 86400 (seconds)"},
    {"ask_timeout_above_one_day", "{'ask_timeout': 86401}",
     NAME ": ask_timeout: expected an integer from 0 to 86400 (seconds)"},
    {"endpoint_rules_object", R0 ", 'endpoint_rules': {'method': 'GET', 'path': '/'}}]}",
     NAME ": routes[0].endpoint_rules: expected an array of objects"},
    {"endpoint_rule_string", R0 ", 'endpoint_rules': ['GET /v1']}]}",
     NAME ": routes[0].endpoint_rules[0]: expected an object"},
    {"endpoint_rule_unknown_key",
     R0 ", 'endpoint_rules': [{'method': 'GET', 'path': '/a'}, {'method': 'GET', 'path': '/b', "
        "'verb': 'POST'}]}]}",
     NAME ": routes[0].endpoint_rules[1].verb: unknown key"},
    {"endpoint_rule_without_path", R0 ", 'endpoint_rules': [{'method': 'GET'}]}]}",
     NAME ": routes[0].endpoint_rules[0].path: missing (required)"},
    {"endpoint_rule_without_method", R0 ", 'endpoint_rules': [{'path': '/'}]}]}",
     NAME ": routes[0].endpoint_rules[0].method: missing (required)"},
    {"endpoint_rule_method_number", R0 ", 'endpoint_rules': [{'method': 1, 'path': '/'}]}]}",
     NAME ": routes[0].endpoint_rules[0].method: expected a non-empty string"},
    {"endpoint_rule_path_empty", R0 ", 'endpoint_rules': [{'method': 'GET', 'path': ''}]}]}",
     NAME ": routes[0].endpoint_rules[0].path: expected a non-empty string"},
    {"endpoint_rule_duplicate_key",
     R0 ", 'endpoint_rules': [{'method': 'GET', 'path': '/', 'path': '/x'}]}]}",
     NAME ": routes[0].endpoint_rules[0].path: duplicate key"},
    {"endpoint_rules_nested_object", R0 ", 'endpoint_rules': [{'method': 'GET', 'path': {}}]}]}",
     NAME ": routes[0].endpoint_rules[0].path: expected a non-empty string"},
    {"rate_limit_number", R0 ", 'rate_limit': 60}]}",
     NAME ": routes[0].rate_limit: expected an object"},
    {"rate_limit_unknown_key", R0 ", 'rate_limit': {'requests_per_minute': 1, 'per_hour': 2}}]}",
     NAME ": routes[0].rate_limit.per_hour: unknown key"},
    {"rate_limit_without_rpm", R0 ", 'rate_limit': {'burst': 5}}]}",
     NAME ": routes[0].rate_limit.requests_per_minute: missing (required)"},
    {"rate_limit_rpm_negative", R0 ", 'rate_limit': {'requests_per_minute': -1}}]}",
     NAME ": routes[0].rate_limit.requests_per_minute: expected an integer from 0 to 1000000"},
    {"rate_limit_rpm_too_large", R0 ", 'rate_limit': {'requests_per_minute': 1000001}}]}",
     NAME ": routes[0].rate_limit.requests_per_minute: expected an integer from 0 to 1000000"},
    {"rate_limit_rpm_fraction", R0 ", 'rate_limit': {'requests_per_minute': 0.5}}]}",
     NAME ": routes[0].rate_limit.requests_per_minute: expected an integer from 0 to 1000000"},
    {"rate_limit_burst_string", R0 ", 'rate_limit': {'requests_per_minute': 1, 'burst': '5'}}]}",
     NAME ": routes[0].rate_limit.burst: expected an integer from 1 to 1000000"},
    {"rate_limit_burst_zero", R0 ", 'rate_limit': {'requests_per_minute': 1, 'burst': 0}}]}",
     NAME ": routes[0].rate_limit.burst: expected an integer from 1 to 1000000"},
    {"rate_limit_max_delay_too_large",
     R0 ", 'rate_limit': {'requests_per_minute': 1, 'max_delay_ms': 600001}}]}",
     NAME ": routes[0].rate_limit.max_delay_ms: expected an integer from 0 to 600000"},
    {"rate_limit_rules_key_inside",
     R0 ", 'rate_limit': {'requests_per_minute': 1, "
        "'endpoint_rules': []}}]}",
     NAME ": routes[0].rate_limit.endpoint_rules: unknown key"},
    {"tls_client_cert_number", R0 ", 'tls_client_cert': 1}]}",
     NAME ": routes[0].tls_client_cert: expected a non-empty string"},
    {"tls_client_key_empty", R0 ", 'tls_client_key': ''}]}",
     NAME ": routes[0].tls_client_key: expected a non-empty string"},
    {"policy_keys_are_route_keys_not_top_level", "{'endpoint_rules': []}",
     NAME ": endpoint_rules: unknown key"},

    /* the first error in file order is the one reported */
    {"first_error_wins", "{'bind_port': -1, 'bogus': 1}",
     NAME ": bind_port: expected an integer from 0 to 65535"},
    {"first_error_wins_across_routes",
     "{'routes': [{'prefix': 'a', 'upstream': 'u', 'x': 1}, {'prefix': 1}]}",
     NAME ": routes[0].x: unknown key"},

    /* the external proxy's password never shows, wherever the error is */
    {"password_address_wrong_type", "{'external_proxy': {'address': ['u:" PASSWORD "@h:1']}}",
     NAME ": external_proxy.address: expected a non-empty string"},
    {"password_bad_json_after_address", EXT_PW " 'x'}}",
     NAME ": not valid JSON (line 1, column 48)"},
    {"password_unterminated_string", "{'external_proxy': {'address': 'u:" PASSWORD "@h:1",
     NAME ": not valid JSON (line 1, column 33)"},
    {"password_bad_key_after_address", EXT_PW "}, 'bind_port': -1}",
     NAME ": bind_port: expected an integer from 0 to 65535"},
    {"password_nul_escape_after_address", EXT_PW "}, 'bind_addr': '\\u0000'}",
     NAME ": not allowed: \\u0000 in a string (line 1, column 64)"},
};

/* Parses text (len bytes, ' for ") as NAME; asserts it is refused with message want, which
 * never holds the password. */
static void
check_refused(const char *text, size_t len, const char *want)
{
    struct cli_file_config f;
    char err[CLI_ERR_LEN];
    char *json = malloc(len + 1);
    size_t i = 0;

    assert_non_null(json);
    memcpy(json, text, len);
    json[len] = '\0';
    for (i = 0; i < len; i++) {
        if (json[i] == '\'') {
            json[i] = '"';
        }
    }
    memset(err, 0, sizeof(err));
    assert_false(parse_as(NAME, json, len, &f, err));
    assert_string_equal(err, want);
    assert_null(strstr(err, PASSWORD));
    cli_config_free(&f);
    assert_null(f.tree);
    free(json);
}

/* Runs one refused row. */
static void
run_reject(void **state)
{
    const struct reject_case *c = *state;

    check_refused(c->json, strlen(c->json), c->err);
}

/* A NUL byte anywhere is refused (cJSON would stop reading there): {text, length, message}. */
static void
nul_byte_refused(void **state)
{
    static const struct {
        const char *text;
        size_t len;
        const char *err;
    } rows[] = {
        {"{}\0", 3, NAME ": not valid JSON: a NUL byte (line 1, column 3)"},
        {"{'bind_addr': 'a\0b'}", 20, NAME ": not valid JSON: a NUL byte (line 1, column 17)"},
        {"\0{}", 3, NAME ": not valid JSON: a NUL byte (line 1, column 1)"},
        {EXT_PW "}\0", 48, NAME ": not valid JSON: a NUL byte (line 1, column 48)"},
    };
    size_t i = 0;

    (void)state;
    for (i = 0; i < ARRAY_LEN(rows); i++) {
        check_refused(rows[i].text, rows[i].len, rows[i].err);
    }
}

/* A message longer than the caller's buffer is cut, never overflowed. */
static void
message_truncated_to_buffer(void **state)
{
    struct cli_file_config f;
    char err[16];
    char *json = dq("{'allowed_host': []}");
    struct cli_config_text src = {NAME, json, strlen(json)};

    (void)state;
    memset(err, 'Z', sizeof(err));
    assert_false(cli_config_parse(&src, &f, err, sizeof(err)));
    assert_string_equal(err, "cfg.json: allow");
    cli_config_free(&f);
    free(json);
}

/* The file name in a message is made printable and cut (it comes from the command line). */
static void
file_name_printable_in_message(void **state)
{
    struct cli_file_config f;
    char err[CLI_ERR_LEN];
    char name[300];

    (void)state;
    assert_false(parse_as("a\x1b[31m.json", "[]", 2, &f, err));
    assert_string_equal(err, "a?[31m.json: expected a JSON object at the top level");
    cli_config_free(&f);
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    assert_false(parse_as(name, "[]", 2, &f, err));
    assert_int_equal(strlen(err), 196 + strlen("...: expected a JSON object at the top level"));
    assert_non_null(strstr(err, "nnn...: expected a JSON object at the top level"));
    cli_config_free(&f);
}

/* ---------------------------------------------------------------------------------------- */
/* Reading files                                                                            */
/* ---------------------------------------------------------------------------------------- */

/* A scratch directory for the file rows, made once. */
static char g_dir[64];

static int
make_dir(void **state)
{
    (void)state;
    (void)snprintf(g_dir, sizeof(g_dir), "/tmp/np-test-config-XXXXXX");
    return mkdtemp(g_dir) != NULL ? 0 : -1;
}

/* Removes the scratch files and directory. */
static int
remove_dir(void **state)
{
    static const char *const names[] = {"ok.json",      "big.json", "max.json", "list.json",
                                        "mode000.json", "bad.json", "sub"};
    char path[128];
    size_t i = 0;

    (void)state;
    for (i = 0; i < ARRAY_LEN(names); i++) {
        (void)snprintf(path, sizeof(path), "%s/%s", g_dir, names[i]);
        (void)unlink(path);
        (void)rmdir(path);
    }
    return rmdir(g_dir);
}

/* Writes path with n bytes: n - strlen(tail) bytes of pad, then tail. */
static void
write_file(const char *path, char pad, size_t n, const char *tail)
{
    size_t tail_len = strlen(tail);
    FILE *fp = fopen(path, "wb");
    size_t i = 0;

    assert_non_null(fp);
    assert_true(n >= tail_len);
    for (i = 0; i < n - tail_len; i++) {
        assert_int_equal(fputc(pad, fp), pad);
    }
    assert_int_equal(fwrite(tail, 1, tail_len, fp), tail_len);
    assert_int_equal(fclose(fp), 0);
}

/* Loads path; returns the rendering ("ERR:" + message when refused). */
static void
load_render(const char *path, char *got)
{
    struct cli_file_config f;
    char err[CLI_ERR_LEN];

    if (cli_config_load(path, &f, err, sizeof(err))) {
        render(got, &f.v);
    } else {
        (void)snprintf(got, RENDER_CAP, "ERR:%s", err);
    }
    cli_config_free(&f);
}

/* File rows: a good file, the size limit (exactly the maximum is fine, one byte more is not),
 * a missing file, a directory, a file that is not JSON or not an object: the message always
 * names the file. */
static void
load_files(void **state)
{
    char path[128];
    char want[RENDER_CAP];
    char got[RENDER_CAP];

    (void)state;
    (void)snprintf(path, sizeof(path), "%s/ok.json", g_dir);
    write_file(path, ' ', 64, "{\"bind_port\": 7, \"allowed_hosts\": [\"a\"]}\n");
    load_render(path, got);
    assert_string_equal(got, "allow/0=a; port=7");

    (void)snprintf(path, sizeof(path), "%s/max.json", g_dir);
    write_file(path, ' ', CLI_CONFIG_MAX_BYTES, "{\"bind_port\": 9}");
    load_render(path, got);
    assert_string_equal(got, "port=9");

    (void)snprintf(path, sizeof(path), "%s/big.json", g_dir);
    write_file(path, ' ', CLI_CONFIG_MAX_BYTES + 1, "{\"bind_port\": 9}");
    load_render(path, got);
    (void)snprintf(want, sizeof(want), "ERR:%s: larger than 1048576 bytes", path);
    assert_string_equal(got, want);

    (void)snprintf(path, sizeof(path), "%s/missing.json", g_dir);
    load_render(path, got);
    (void)snprintf(want, sizeof(want), "ERR:%s: cannot read: No such file or directory", path);
    assert_string_equal(got, want);

    (void)snprintf(path, sizeof(path), "%s/sub", g_dir);
    assert_int_equal(mkdir(path, 0700), 0);
    load_render(path, got);
    (void)snprintf(want, sizeof(want), "ERR:%s: cannot read: Is a directory", path);
    assert_string_equal(got, want);

    (void)snprintf(path, sizeof(path), "%s/bad.json", g_dir);
    write_file(path, ' ', 10, "nope");
    load_render(path, got);
    (void)snprintf(want, sizeof(want), "ERR:%s: not valid JSON (line 1, column 7)", path);
    assert_string_equal(got, want);

    write_file(path, ' ', 2, "[]");
    load_render(path, got);
    (void)snprintf(want, sizeof(want), "ERR:%s: expected a JSON object at the top level", path);
    assert_string_equal(got, want);

    write_file(path, ' ', 40, "{\"routes\": [{\"prefix\": \"p\"}]}");
    load_render(path, got);
    (void)snprintf(want, sizeof(want), "ERR:%s: routes[0].upstream: missing (required)", path);
    assert_string_equal(got, want);
}

/* A file without read permission is refused naming it (root reads anything: skipped then). */
static void
load_unreadable_file(void **state)
{
    char path[128];
    char want[RENDER_CAP];
    char got[RENDER_CAP];

    (void)state;
    if (geteuid() == 0) {
        skip();
    }
    (void)snprintf(path, sizeof(path), "%s/mode000.json", g_dir);
    write_file(path, ' ', 2, "{}");
    assert_int_equal(chmod(path, 0), 0);
    load_render(path, got);
    (void)snprintf(want, sizeof(want), "ERR:%s: cannot read: Permission denied", path);
    assert_string_equal(got, want);
}

/* A pipe (e.g. bash's <(...) or /dev/stdin) has no size: read in growing steps. */
static void
load_from_pipe(void **state)
{
    static const char tail[] = "{\"idle_timeout\": 5}";
    char path[64];
    char got[RENDER_CAP];
    char *text = malloc(40000);
    int fds[2] = {-1, -1};

    (void)state;
    assert_non_null(text);
    memset(text, '\n', 40000);
    memcpy(text + 40000 - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], text, 40000), 40000); /* below the 64 KiB pipe buffer */
    assert_int_equal(close(fds[1]), 0);
    (void)snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[0]);
    load_render(path, got);
    assert_string_equal(got, "idle-ms=5000");
    assert_int_equal(close(fds[0]), 0);
    free(text);
}

/* The documented example (docs/examples/nonoproxy.json) loads and holds every kind of key. */
static void
documented_example_loads(void **state)
{
    char got[RENDER_CAP];

    (void)state;
    load_render(NONOPROXY_EXAMPLE_CONFIG, got);
    assert_string_equal(
        got, "allow/0=api.github.com,*.pypi.org,files.pythonhosted.org,registry.npmjs.org:443,"
             "10.20.0.0/16; deny/0=evil.example.com,*.ads.example,10.9.0.0/16; strict=true; "
             "ask-ms=30000; "
             "routes/0=openai=https://api.openai.com/v1,credential=env://OPENAI_API_KEY,"
             "env-var=OPENAI_API_KEY,rule=GET:/models,rule=*:/chat/**,rpm=60,burst=5,max-delay=0"
             " | github=https://api.github.com,"
             "credential=keyring://nono/github-token,inject=header#1,header=Authorization,"
             "format=token {},env-var=GH_TOKEN | telegram=https://api.telegram.org,"
             "credential=file:///run/secrets/telegram-bot-token,inject=url_path#2,"
             "path-pattern=/bot{}/,path-replacement=/bot{}/ | maps=https://maps.googleapis.com,"
             "credential=google-maps-key,inject=query_param#3,query-param=key | "
             "registry=https://registry.corp.example,credential=env://REGISTRY_USER_PASS,"
             "inject=basic_auth#4,tls-ca=/etc/ssl/corp/registry-ca.pem,"
             "client-cert=/etc/ssl/corp/registry-client.pem,"
             "client-key=/etc/ssl/corp/registry-client.key; "
             "ext=proxy.corp.example:3128; bypass/0=*.corp.example; bind=127.0.0.1; port=0; "
             "maxconn=256; cap=4096; auth=true; header-ms=30000; idle-ms=600000; "
             "connect-ms=10000");
}

/* ---------------------------------------------------------------------------------------- */
/* Merge: {rule, file JSON, command line, result}                                           */
/* ---------------------------------------------------------------------------------------- */

struct merge_case {
    const char *rule;
    const char *json;
    const char *argv[MAX_ARGV]; /* without argv[0] and the command; NULL-terminated */
    const char *want;
};

static const struct merge_case MERGE[] = {
    {"empty_file_keeps_the_command_line",
     "{}",
     {"--allow", "a", "--port", "1"},
     "allow/0=a; port=1"},
    {"file_alone", "{'allowed_hosts': ['f'], 'bind_port': 2}", {NULL}, "allow/1=f; port=2"},
    {"allow_appends_after_the_file",
     "{'allowed_hosts': ['f1', 'f2']}",
     {"--allow", "c1", "--allow", "c2"},
     "allow/2=f1,f2,c1,c2"},
    {"routes_append_after_the_file",
     "{'routes': [{'prefix': 'f', 'upstream': 'https://f', 'inject_mode': 'BASIC_AUTH'}]}",
     {"--route", "c=https://c,credential=env://K", "--route", "d=https://d"},
     "routes/1=f=https://f,inject=BASIC_AUTH#4 | c=https://c,credential=env://K | d=https://d"},
    {"same_prefix_twice_is_left_to_the_library",
     "{'routes': [{'prefix': 'p', 'upstream': 'https://f'}]}",
     {"--route", "p=https://c"},
     "routes/1=p=https://f | p=https://c"},
    {"bypass_appends_after_the_file",
     "{'external_proxy': {'address': 'f:1', 'bypass_hosts': ['fb']}}",
     {"--bypass", "cb"},
     "ext=f:1; bypass/1=fb,cb"},
    {"external_proxy_option_kept_next_to_the_file_address",
     "{'external_proxy': {'address': 'u:" PASSWORD "@f:1'}}",
     {"--external-proxy", "c:2"},
     "ext=u:" PASSWORD "@f:1; cli-ext=c:2"},
    {"options_override_file_scalars",
     "{'bind_addr': '127.0.0.2', 'bind_port': 2, 'max_connections': 3, 'ca_file': '/f.pem', "
     "'audit_log': '/f.log', 'header_timeout': 4, 'idle_timeout': 5, 'connect_timeout': 6}",
     {"--bind", "::1", "--port", "20", "--max-connections", "30", "--ca-file", "/c.pem",
      "--audit-log", "-", "--header-timeout", "40", "--idle-timeout", "50", "--connect-timeout",
      "60"},
     "bind=::1; port=20; maxconn=30; ca=/c.pem; audit=-; header-ms=40000; idle-ms=50000; "
     "connect-ms=60000"},
    {"file_scalars_fill_what_options_leave",
     "{'bind_addr': '127.0.0.2', 'bind_port': 2, 'max_connections': 3, 'ca_file': '/f.pem', "
     "'audit_log': '/f.log', 'header_timeout': 4, 'idle_timeout': 5, 'connect_timeout': 6, "
     "'audit_capacity': 7, 'require_auth': false}",
     {"--port", "20", "--idle-timeout", "0"},
     "bind=127.0.0.2; port=20; maxconn=3; ca=/f.pem; audit=/f.log; cap=7; auth=false; "
     "header-ms=4000; idle-ms=0; connect-ms=6000"},
    {"option_zero_overrides_file_value",
     "{'max_connections': 9}",
     {"--max-connections", "0"},
     "maxconn=0"},
    {"file_only_keys", "{'audit_capacity': 0, 'require_auth': true}", {NULL}, "cap=0; auth=true"},
    {"deny_appends_after_the_file",
     "{'denied_hosts': ['f1', '10.0.0.0/8']}",
     {"--deny", "c1", "--deny", "*.c2"},
     "deny/2=f1,10.0.0.0/8,c1,*.c2"},
    {"strict_option_overrides_file_false",
     "{'strict_allowlist': false}",
     {"--strict"},
     "strict=true"},
    {"strict_file_true_stays_without_option", "{'strict_allowlist': true}", {NULL}, "strict=true"},
    {"ask_timeout_option_overrides_file",
     "{'ask_timeout': 5}",
     {"--ask-timeout", "7"},
     "ask-ms=7000"},
    {"ask_timeout_from_file", "{'ask_timeout': 5}", {"--ask"}, "ask-ms=5000"},
    {"route_policy_of_file_and_command_line",
     "{'routes': [{'prefix': 'f', 'upstream': 'https://f', 'endpoint_rules': [{'method': 'GET', "
     "'path': '/a'}], 'rate_limit': {'requests_per_minute': 6}}]}",
     {"--route", "c=https://c,rule=POST:/b/**,rule=*:/c,rpm=7,burst=2,max-delay=10"},
     "routes/1=f=https://f,rule=GET:/a,rpm=6 | c=https://c,rule=POST:/b/**,rule=*:/c,rpm=7,"
     "burst=2,max-delay=10"},
};

/* Parses the row's command line and file, merges them and compares the result. */
static void
run_merge(void **state)
{
    const struct merge_case *c = *state;
    char *argv[MAX_ARGV + 3];
    struct cli_args a;
    struct cli_file_config f;
    char err[CLI_ERR_LEN];
    char got[RENDER_CAP];
    char *json = dq(c->json);
    int argc = 0;
    int i = 0;

    memset(argv, 0, sizeof(argv));
    argv[argc++] = strdup("nonoproxy-run");
    for (i = 0; i < MAX_ARGV && c->argv[i] != NULL; i++) {
        argv[argc++] = strdup(c->argv[i]);
    }
    argv[argc++] = strdup("true");
    for (i = 0; i < argc; i++) {
        assert_non_null(argv[i]);
    }
    assert_int_equal(cli_args_parse(&a, argc, argv, err, sizeof(err)), CLI_ACTION_RUN);
    assert_true(parse_as(NAME, json, strlen(json), &f, err));
    assert_true(cli_config_merge(&a, &f, err, sizeof(err)));
    render(got, &a);
    assert_string_equal(got, c->want);
    assert_int_equal(a.action, CLI_ACTION_RUN); /* the rest of the command line is untouched */
    assert_string_equal(a.command[0], "true");
    render(got, &f.v); /* the file's values are unchanged */
    assert_null(strstr(got, "/1="));
    cli_args_free(&a); /* frees the command line's route buffers, not the file's strings */
    cli_config_free(&f);
    for (i = 0; i < argc; i++) {
        free(argv[i]);
    }
    free(json);
}

/* Merging an empty file (or a zeroed one) changes nothing: same values, n_file all zero. */
static void
merge_empty_file_changes_nothing(void **state)
{
    static const char *const words[] = {"nonoproxy-run", "--allow",  "a", "--route",
                                        "p=u",           "--bypass", "b", "x"};
    char *argv[ARRAY_LEN(words) + 1];
    struct cli_args a;
    struct cli_file_config f;
    char err[CLI_ERR_LEN];
    char before[RENDER_CAP];
    char after[RENDER_CAP];
    size_t i = 0;

    (void)state;
    memset(argv, 0, sizeof(argv));
    for (i = 0; i < ARRAY_LEN(words); i++) {
        argv[i] = strdup(words[i]);
        assert_non_null(argv[i]);
    }
    assert_int_equal(cli_args_parse(&a, (int)ARRAY_LEN(words), argv, err, sizeof(err)),
                     CLI_ACTION_RUN);
    render(before, &a);
    memset(&f, 0, sizeof(f));
    assert_true(cli_config_merge(&a, &f, err, sizeof(err)));
    render(after, &a);
    assert_string_equal(after, before);
    assert_string_equal(after, "allow/0=a; routes/0=p=u; bypass/0=b");
    cli_args_free(&a);
    for (i = 0; i < ARRAY_LEN(words); i++) {
        free(argv[i]);
    }
}

/* --help names every key the loader accepts (it is written by hand: this keeps them in step). */
static void
usage_names_every_config_key(void **state)
{
    static const char *const keys[] = {"allowed_hosts",
                                       "routes",
                                       "external_proxy",
                                       "address",
                                       "bypass_hosts",
                                       "bind_addr",
                                       "bind_port",
                                       "max_connections",
                                       "ca_file",
                                       "audit_log",
                                       "audit_capacity",
                                       "require_auth",
                                       "header_timeout",
                                       "idle_timeout",
                                       "connect_timeout",
                                       "prefix",
                                       "upstream",
                                       "credential_key",
                                       "inject_mode",
                                       "inject_header",
                                       "credential_format",
                                       "path_pattern",
                                       "path_replacement",
                                       "query_param_name",
                                       "env_var",
                                       "tls_ca",
                                       "denied_hosts",
                                       "strict_allowlist",
                                       "ask_timeout",
                                       "tls_client_cert",
                                       "tls_client_key",
                                       "endpoint_rules",
                                       "method, path",
                                       "rate_limit",
                                       "requests_per_minute",
                                       "burst",
                                       "max_delay_ms",
                                       "docs/examples/nonoproxy.json",
                                       "-c, --config FILE",
                                       "--sandbox MODE"};
    char *text = NULL;
    size_t len = 0;
    size_t i = 0;
    FILE *fp = open_memstream(&text, &len);

    (void)state;
    assert_non_null(fp);
    cli_args_usage(fp);
    assert_int_equal(fclose(fp), 0);
    for (i = 0; i < ARRAY_LEN(keys); i++) {
        if (strstr(text, keys[i]) == NULL) {
            fail_msg("--help does not name '%s'", keys[i]);
        }
    }
    free(text);
}

int
main(void)
{
    static struct CMUnitTest tests[ARRAY_LEN(ACCEPT) + ARRAY_LEN(REJECT) + ARRAY_LEN(MERGE) + 10];
    size_t n = 0;
    size_t i = 0;

    memset(tests, 0, sizeof(tests));
    for (i = 0; i < ARRAY_LEN(ACCEPT); i++, n++) {
        tests[n].name = ACCEPT[i].rule;
        tests[n].test_func = run_accept;
        tests[n].initial_state = (void *)(uintptr_t)&ACCEPT[i];
    }
    for (i = 0; i < ARRAY_LEN(REJECT); i++, n++) {
        tests[n].name = REJECT[i].rule;
        tests[n].test_func = run_reject;
        tests[n].initial_state = (void *)(uintptr_t)&REJECT[i];
    }
    for (i = 0; i < ARRAY_LEN(MERGE); i++, n++) {
        tests[n].name = MERGE[i].rule;
        tests[n].test_func = run_merge;
        tests[n].initial_state = (void *)(uintptr_t)&MERGE[i];
    }
    tests[n].name = "nul_byte_refused";
    tests[n++].test_func = nul_byte_refused;
    tests[n].name = "message_truncated_to_buffer";
    tests[n++].test_func = message_truncated_to_buffer;
    tests[n].name = "file_name_printable_in_message";
    tests[n++].test_func = file_name_printable_in_message;
    tests[n].name = "load_files";
    tests[n++].test_func = load_files;
    tests[n].name = "load_unreadable_file";
    tests[n++].test_func = load_unreadable_file;
    tests[n].name = "load_from_pipe";
    tests[n++].test_func = load_from_pipe;
    tests[n].name = "documented_example_loads";
    tests[n++].test_func = documented_example_loads;
    tests[n].name = "merge_empty_file_changes_nothing";
    tests[n++].test_func = merge_empty_file_changes_nothing;
    tests[n].name = "usage_names_every_config_key";
    tests[n++].test_func = usage_names_every_config_key;
    return _cmocka_run_group_tests("config_file", tests, n, make_dir, remove_dir);
}
