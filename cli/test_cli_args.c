/* Unit tests of the nonoproxy-run command-line parser (cli/args.c): one row per rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "args.h"
#include "childenv.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_ARGV     24

/* One command line and everything the parser must make of it. String expectations: NULL means
 * "absent" (unset option, no command); numbers are expected as their decimal text. */
struct parse_case {
    const char *rule;
    const char *argv[MAX_ARGV]; /* argv[0] included, NULL-terminated */
    enum cli_action action;
    enum cli_sandbox_mode sandbox; /* default (0) = auto */
    const char *err;               /* exact error text for CLI_ACTION_ERROR */
    const char *allow;             /* --allow values joined by ',' ("" or NULL = none) */
    const char *routes;            /* routes as render_routes() writes them ("" or NULL = none) */
    const char *ca_file;
    const char *bind;
    const char *port;
    const char *max_conn;
    const char *audit_log;
    const char *header_ms;
    const char *idle_ms;
    const char *connect_ms;
    const char *external_proxy;
    const char *bypass; /* --bypass values joined by ',' ("" or NULL = none) */
    bool quiet;
    bool allow_missing;
    unsigned verbose;
    const char *config;
    const char *command; /* command words joined by ' ' */
    const char *deny;    /* --deny values joined by ',' ("" or NULL = none) */
    const char *ask_ms;
    const char *env_file;
    bool strict;
    bool ask;
    bool serve;
};

#define NR "nonoproxy-run"

static struct parse_case CASES[] = {
    /* COMMAND and "--" */
    {.rule = "command_alone_runs",
     .argv = {NR, "true"},
     .action = CLI_ACTION_RUN,
     .command = "true"},
    {.rule = "double_dash_is_optional_before_command",
     .argv = {NR, "-q", "ls", "-l"},
     .action = CLI_ACTION_RUN,
     .quiet = true,
     .command = "ls -l"},
    {.rule = "double_dash_ends_options",
     .argv = {NR, "-v", "--", "sh", "-c", "x"},
     .action = CLI_ACTION_RUN,
     .verbose = 1,
     .command = "sh -c x"},
    {.rule = "double_dash_allows_command_starting_with_dash",
     .argv = {NR, "--", "-weird", "-q"},
     .action = CLI_ACTION_RUN,
     .command = "-weird -q"},
    {.rule = "options_after_command_belong_to_command",
     .argv = {NR, "cmd", "--allow", "x.com", "--port", "1"},
     .action = CLI_ACTION_RUN,
     .command = "cmd --allow x.com --port 1"},
    {.rule = "second_double_dash_belongs_to_command",
     .argv = {NR, "--", "env", "--", "x"},
     .action = CLI_ACTION_RUN,
     .command = "env -- x"},
    {.rule = "missing_command_is_an_error", .argv = {NR}, .err = "missing COMMAND"},
    {.rule = "missing_command_after_options",
     .argv = {NR, "--allow", "a.com"},
     .err = "missing COMMAND"},
    {.rule = "missing_command_after_double_dash",
     .argv = {NR, "-q", "--"},
     .err = "missing COMMAND"},

    /* --allow */
    {.rule = "allow_once",
     .argv = {NR, "--allow", "example.com", "true"},
     .action = CLI_ACTION_RUN,
     .allow = "example.com",
     .command = "true"},
    {.rule = "allow_is_repeatable_in_order",
     .argv = {NR, "--allow", "a.com", "--allow=*.b.org", "--allow", "c.net:443", "true"},
     .action = CLI_ACTION_RUN,
     .allow = "a.com,*.b.org,c.net:443",
     .command = "true"},
    {.rule = "allow_grows_past_initial_capacity",
     .argv = {NR,  "--allow", "1", "--allow", "2",  "--allow", "3", "--allow",
              "4", "--allow", "5", "--allow", "6",  "--allow", "7", "--allow",
              "8", "--allow", "9", "--allow", "10", "x"},
     .action = CLI_ACTION_RUN,
     .allow = "1,2,3,4,5,6,7,8,9,10",
     .command = "x"},
    {.rule = "allow_value_is_not_validated_by_the_parser",
     .argv = {NR, "--allow", "a b", "x"},
     .action = CLI_ACTION_RUN,
     .allow = "a b",
     .command = "x"},
    {.rule = "allow_value_may_start_with_dash",
     .argv = {NR, "--allow", "-q", "x"},
     .action = CLI_ACTION_RUN,
     .allow = "-q",
     .command = "x"},
    {.rule = "allow_needs_a_value", .argv = {NR, "--allow"}, .err = "--allow: missing value HOST"},

    /* --route: PREFIX at the first '=', UPSTREAM up to the first ',', then KEY=VALUE items */
    {.rule = "route_minimal",
     .argv = {NR, "--route", "openai=https://api.openai.com", "x"},
     .action = CLI_ACTION_RUN,
     .routes = "openai=https://api.openai.com",
     .command = "x"},
    {.rule = "route_equals_form",
     .argv = {NR, "--route=openai=https://api.openai.com/v1", "x"},
     .action = CLI_ACTION_RUN,
     .routes = "openai=https://api.openai.com/v1",
     .command = "x"},
    {.rule = "route_all_keys",
     .argv = {NR, "--route",
              "gh=https://api.github.com,credential=env://GH_TOKEN,inject=header,header=X-Auth,"
              "format=token {},path-pattern=/bot{}/,path-replacement=/b/{}/,query-param=key,"
              "env-var=GH_PHANTOM,tls-ca=/etc/gh-ca.pem",
              "x"},
     .action = CLI_ACTION_RUN,
     .routes = "gh=https://api.github.com,credential=env://GH_TOKEN,inject=header#1,"
               "header=X-Auth,format=token {},path-pattern=/bot{}/,path-replacement=/b/{}/,"
               "query-param=key,env-var=GH_PHANTOM,tls-ca=/etc/gh-ca.pem",
     .command = "x"},
    {.rule = "route_keys_in_any_order",
     .argv = {NR, "--route", "p=https://h,tls-ca=/ca.pem,env-var=V,credential=k", "x"},
     .action = CLI_ACTION_RUN,
     .routes = "p=https://h,credential=k,env-var=V,tls-ca=/ca.pem",
     .command = "x"},
    {.rule = "route_inject_header",
     .argv = {NR, "--route", "p=https://h,inject=header", "x"},
     .action = CLI_ACTION_RUN,
     .routes = "p=https://h,inject=header#1",
     .command = "x"},
    {.rule = "route_inject_url_path",
     .argv = {NR, "--route", "tg=https://api.telegram.org,inject=url_path,path-pattern=/bot{}/",
              "x"},
     .action = CLI_ACTION_RUN,
     .routes = "tg=https://api.telegram.org,inject=url_path#2,path-pattern=/bot{}/",
     .command = "x"},
    {.rule = "route_inject_query_param",
     .argv = {NR, "--route", "g=https://h,inject=query_param,query-param=key", "x"},
     .action = CLI_ACTION_RUN,
     .routes = "g=https://h,inject=query_param#3,query-param=key",
     .command = "x"},
    {.rule = "route_inject_basic_auth",
     .argv = {NR, "--route", "b=https://h,inject=basic_auth", "x"},
     .action = CLI_ACTION_RUN,
     .routes = "b=https://h,inject=basic_auth#4",
     .command = "x"},
    {.rule = "route_format_keeps_space_and_braces",
     .argv = {NR, "--route", "gh=https://api.github.com,format=token {}", "x"},
     .action = CLI_ACTION_RUN,
     .routes = "gh=https://api.github.com,format=token {}",
     .command = "x"},
    {.rule = "route_value_may_contain_equals",
     .argv = {NR, "--route", "p=https://h,format=k=v {}", "x"},
     .action = CLI_ACTION_RUN,
     .routes = "p=https://h,format=k=v {}",
     .command = "x"},
    {.rule = "route_prefix_split_at_first_equals",
     .argv = {NR, "--route", "p=https://h/v1?a=b", "x"},
     .action = CLI_ACTION_RUN,
     .routes = "p=https://h/v1?a=b",
     .command = "x"},
    {.rule = "route_prefix_and_upstream_not_validated_by_the_parser",
     .argv = {NR, "--route", "/a b/=ftp://x", "x"},
     .action = CLI_ACTION_RUN,
     .routes = "/a b/=ftp://x",
     .command = "x"},
    {.rule = "route_is_repeatable_in_order",
     .argv = {NR, "--route", "b=https://b", "--allow", "h", "--route", "a=https://a,credential=k",
              "--route=c=https://c", "x"},
     .action = CLI_ACTION_RUN,
     .allow = "h",
     .routes = "b=https://b | a=https://a,credential=k | c=https://c",
     .command = "x"},
    {.rule = "route_grows_past_initial_capacity",
     .argv = {NR, "--route", "a=u", "--route", "b=u", "--route", "c=u", "--route", "d=u", "--route",
              "e=u", "--route", "f=u", "x"},
     .action = CLI_ACTION_RUN,
     .routes = "a=u | b=u | c=u | d=u | e=u | f=u",
     .command = "x"},
    {.rule = "route_needs_a_value",
     .argv = {NR, "--route"},
     .err = "--route: missing value PREFIX=UPSTREAM[,KEY=VALUE...]"},
    {.rule = "route_missing_equals",
     .argv = {NR, "--route", "openai", "x"},
     .err = "--route: missing '=' in 'openai' (expected PREFIX=UPSTREAM[,KEY=VALUE...])"},
    {.rule = "route_empty_value",
     .argv = {NR, "--route=", "x"},
     .err = "--route: missing '=' in '' (expected PREFIX=UPSTREAM[,KEY=VALUE...])"},
    {.rule = "route_empty_prefix",
     .argv = {NR, "--route", "=https://h", "x"},
     .err = "--route: empty PREFIX in '=https://h' (expected PREFIX=UPSTREAM[,KEY=VALUE...])"},
    {.rule = "route_empty_upstream",
     .argv = {NR, "--route", "p=", "x"},
     .err = "--route 'p': empty UPSTREAM"},
    {.rule = "route_empty_upstream_before_keys",
     .argv = {NR, "--route", "p=,credential=k", "x"},
     .err = "--route 'p': empty UPSTREAM"},
    {.rule = "route_duplicate_key",
     .argv = {NR, "--route", "p=https://h,credential=a,header=H,credential=b", "x"},
     .err = "--route 'p': key 'credential' given twice"},
    {.rule = "route_duplicate_key_with_same_value",
     .argv = {NR, "--route", "p=https://h,format={},format={}", "x"},
     .err = "--route 'p': key 'format' given twice"},
    {.rule = "route_duplicate_inject",
     .argv = {NR, "--route", "p=https://h,inject=header,inject=basic_auth", "x"},
     .err = "--route 'p': key 'inject' given twice"},
    {.rule = "route_unknown_key",
     .argv = {NR, "--route", "p=https://h,token=x", "x"},
     .err = "--route 'p': unknown key 'token' (expected credential, inject, header, format, "
            "path-pattern, path-replacement, query-param, env-var, tls-ca, rule, rpm, burst, "
            "max-delay, client-cert or client-key)"},
    {.rule = "route_keys_use_dashes",
     .argv = {NR, "--route", "p=https://h,env_var=X", "x"},
     .err = "--route 'p': unknown key 'env_var' (expected credential, inject, header, format, "
            "path-pattern, path-replacement, query-param, env-var, tls-ca, rule, rpm, burst, "
            "max-delay, client-cert or client-key)"},
    {.rule = "route_keys_are_case_sensitive",
     .argv = {NR, "--route", "p=https://h,Credential=k", "x"},
     .err = "--route 'p': unknown key 'Credential' (expected credential, inject, header, format, "
            "path-pattern, path-replacement, query-param, env-var, tls-ca, rule, rpm, burst, "
            "max-delay, client-cert or client-key)"},
    {.rule = "route_empty_key_value",
     .argv = {NR, "--route", "p=https://h,header=", "x"},
     .err = "--route 'p': empty value for key 'header'"},
    {.rule = "route_empty_credential",
     .argv = {NR, "--route", "p=https://h,credential=", "x"},
     .err = "--route 'p': empty value for key 'credential'"},
    {.rule = "route_key_missing_equals",
     .argv = {NR, "--route", "p=https://h,credential", "x"},
     .err = "--route 'p': missing '=' after 'credential'"},
    {.rule = "route_upstream_cannot_contain_comma",
     .argv = {NR, "--route", "p=https://h/a,b", "x"},
     .err = "--route 'p': missing '=' after 'b'"},
    {.rule = "route_trailing_comma",
     .argv = {NR, "--route", "p=https://h,", "x"},
     .err = "--route 'p': empty KEY in KEY=VALUE"},
    {.rule = "route_double_comma",
     .argv = {NR, "--route", "p=https://h,,credential=k", "x"},
     .err = "--route 'p': empty KEY in KEY=VALUE"},
    {.rule = "route_empty_key",
     .argv = {NR, "--route", "p=https://h,=v", "x"},
     .err = "--route 'p': empty KEY in KEY=VALUE"},
    {.rule = "route_inject_unknown",
     .argv = {NR, "--route", "p=https://h,inject=bearer", "x"},
     .err = "--route 'p': invalid inject 'bearer' (expected header, url_path, query_param or "
            "basic_auth)"},
    {.rule = "route_inject_is_case_sensitive",
     .argv = {NR, "--route", "p=https://h,inject=HEADER", "x"},
     .err = "--route 'p': invalid inject 'HEADER' (expected header, url_path, query_param or "
            "basic_auth)"},
    {.rule = "route_inject_dash_spelling_rejected",
     .argv = {NR, "--route", "p=https://h,inject=url-path", "x"},
     .err = "--route 'p': invalid inject 'url-path' (expected header, url_path, query_param or "
            "basic_auth)"},
    {.rule = "route_error_after_good_route",
     .argv = {NR, "--route", "a=https://a,credential=k", "--route", "b=https://b,x=1", "x"},
     .err = "--route 'b': unknown key 'x' (expected credential, inject, header, format, "
            "path-pattern, path-replacement, query-param, env-var, tls-ca, rule, rpm, burst, "
            "max-delay, client-cert or client-key)"},
    {.rule = "route_control_characters_not_echoed",
     .argv = {NR, "--route", "p\x1b=https://h,k\n=1", "x"},
     .err = "--route 'p?': unknown key 'k?' (expected credential, inject, header, format, "
            "path-pattern, path-replacement, query-param, env-var, tls-ca, rule, rpm, burst, "
            "max-delay, client-cert or client-key)"},

    /* --ca-file, --allow-missing-credentials */
    {.rule = "ca_file",
     .argv = {NR, "--ca-file", "/etc/corp-ca.pem", "x"},
     .action = CLI_ACTION_RUN,
     .ca_file = "/etc/corp-ca.pem",
     .command = "x"},
    {.rule = "ca_file_last_wins",
     .argv = {NR, "--ca-file", "/a.pem", "--ca-file=/b.pem", "x"},
     .action = CLI_ACTION_RUN,
     .ca_file = "/b.pem",
     .command = "x"},
    {.rule = "ca_file_empty_rejected",
     .argv = {NR, "--ca-file=", "x"},
     .err = "--ca-file: empty value"},
    {.rule = "ca_file_needs_a_value",
     .argv = {NR, "--ca-file"},
     .err = "--ca-file: missing value FILE"},
    {.rule = "allow_missing_credentials",
     .argv = {NR, "--allow-missing-credentials", "x"},
     .action = CLI_ACTION_RUN,
     .allow_missing = true,
     .command = "x"},
    {.rule = "allow_missing_credentials_takes_no_value",
     .argv = {NR, "--allow-missing-credentials=yes", "x"},
     .err = "--allow-missing-credentials: takes no value"},
    {.rule = "allow_stays_exact_next_to_allow_missing_credentials",
     .argv = {NR, "--allow", "h", "x"},
     .action = CLI_ACTION_RUN,
     .allow = "h",
     .command = "x"},
    {.rule = "allow_missing_credentials_unique_prefix",
     .argv = {NR, "--allow-m", "x"},
     .action = CLI_ACTION_RUN,
     .allow_missing = true,
     .command = "x"},

    /* --external-proxy: at most once, never empty, not validated here (the library does it) */
    {.rule = "external_proxy_host_port",
     .argv = {NR, "--external-proxy", "proxy.corp:3128", "x"},
     .action = CLI_ACTION_RUN,
     .external_proxy = "proxy.corp:3128",
     .command = "x"},
    {.rule = "external_proxy_with_userinfo_equals_form",
     .argv = {NR, "--external-proxy=user:secret@proxy.corp:3128", "x"},
     .action = CLI_ACTION_RUN,
     .external_proxy = "user:secret@proxy.corp:3128",
     .command = "x"},
    {.rule = "external_proxy_ipv6_with_userinfo",
     .argv = {NR, "--external-proxy", "u:secret@[2001:db8::1]:8080", "x"},
     .action = CLI_ACTION_RUN,
     .external_proxy = "u:secret@[2001:db8::1]:8080",
     .command = "x"},
    {.rule = "external_proxy_not_validated_by_the_parser",
     .argv = {NR, "--external-proxy", "no port here", "x"},
     .action = CLI_ACTION_RUN,
     .external_proxy = "no port here",
     .command = "x"},
    {.rule = "external_proxy_unique_prefix_accepted",
     .argv = {NR, "--ext", "h:1", "x"},
     .action = CLI_ACTION_RUN,
     .external_proxy = "h:1",
     .command = "x"},
    {.rule = "external_proxy_empty_rejected",
     .argv = {NR, "--external-proxy=", "x"},
     .err = "--external-proxy: empty value"},
    {.rule = "external_proxy_empty_separate_value_rejected",
     .argv = {NR, "--external-proxy", "", "x"},
     .err = "--external-proxy: empty value"},
    {.rule = "external_proxy_given_twice_rejected",
     .argv = {NR, "--external-proxy", "a:secret@h:1", "--external-proxy=b:secret@h:2", "x"},
     .err = "--external-proxy: given twice"},
    {.rule = "external_proxy_same_value_twice_rejected",
     .argv = {NR, "--external-proxy", "h:1", "--external-proxy", "h:1", "x"},
     .err = "--external-proxy: given twice"},
    {.rule = "external_proxy_needs_a_value",
     .argv = {NR, "--external-proxy"},
     .err = "--external-proxy: missing value ADDR"},
    {.rule = "external_proxy_mistyped_never_echoes_password",
     .argv = {NR, "--external-proxyy=user:secret@h:1", "x"},
     .err = "unknown or ambiguous option '--external-proxyy'"},

    /* --bypass: repeatable, never empty, not validated here */
    {.rule = "bypass_once_without_external_proxy",
     .argv = {NR, "--bypass", "intranet.corp", "x"},
     .action = CLI_ACTION_RUN,
     .bypass = "intranet.corp",
     .command = "x"},
    {.rule = "bypass_is_repeatable_in_order",
     .argv = {NR, "--bypass", "b.com", "--bypass=*.corp.example", "--bypass", "10.0.0.1", "x"},
     .action = CLI_ACTION_RUN,
     .bypass = "b.com,*.corp.example,10.0.0.1",
     .command = "x"},
    {.rule = "bypass_grows_past_initial_capacity",
     .argv = {NR,  "--bypass", "1", "--bypass", "2", "--bypass", "3", "--bypass", "4", "--bypass",
              "5", "--bypass", "6", "--bypass", "7", "--bypass", "8", "--bypass", "9", "x"},
     .action = CLI_ACTION_RUN,
     .bypass = "1,2,3,4,5,6,7,8,9",
     .command = "x"},
    {.rule = "bypass_and_allow_are_separate_lists",
     .argv = {NR, "--allow", "a.com", "--bypass", "b.com", "--allow", "c.com", "--bypass", "d.com",
              "x"},
     .action = CLI_ACTION_RUN,
     .allow = "a.com,c.com",
     .bypass = "b.com,d.com",
     .command = "x"},
    {.rule = "bypass_with_external_proxy",
     .argv = {NR, "--bypass", "localhost", "--external-proxy", "u:secret@[::1]:3128", "--bypass",
              "*.internal", "x"},
     .action = CLI_ACTION_RUN,
     .external_proxy = "u:secret@[::1]:3128",
     .bypass = "localhost,*.internal",
     .command = "x"},
    {.rule = "bypass_value_not_validated_by_the_parser",
     .argv = {NR, "--bypass", "a b", "x"},
     .action = CLI_ACTION_RUN,
     .bypass = "a b",
     .command = "x"},
    {.rule = "bypass_empty_rejected",
     .argv = {NR, "--bypass=", "x"},
     .err = "--bypass: empty value"},
    {.rule = "bypass_empty_after_good_one_rejected",
     .argv = {NR, "--bypass", "a.com", "--bypass", "", "x"},
     .err = "--bypass: empty value"},
    {.rule = "bypass_needs_a_value",
     .argv = {NR, "--bypass"},
     .err = "--bypass: missing value HOST"},
    {.rule = "prefix_b_is_ambiguous_between_bind_and_bypass",
     .argv = {NR, "--b", "x", "y"},
     .err = "unknown or ambiguous option '--b'"},

    /* --bind, --audit-log */
    {.rule = "bind_literal",
     .argv = {NR, "--bind", "::1", "x"},
     .action = CLI_ACTION_RUN,
     .bind = "::1",
     .command = "x"},
    {.rule = "bind_last_wins",
     .argv = {NR, "--bind", "127.0.0.2", "--bind=0.0.0.0", "x"},
     .action = CLI_ACTION_RUN,
     .bind = "0.0.0.0",
     .command = "x"},
    {.rule = "bind_empty_rejected", .argv = {NR, "--bind=", "x"}, .err = "--bind: empty value"},
    {.rule = "audit_log_file",
     .argv = {NR, "--audit-log", "/tmp/a.jsonl", "x"},
     .action = CLI_ACTION_RUN,
     .audit_log = "/tmp/a.jsonl",
     .command = "x"},
    {.rule = "audit_log_dash_is_stderr",
     .argv = {NR, "--audit-log", "-", "x"},
     .action = CLI_ACTION_RUN,
     .audit_log = "-",
     .command = "x"},
    {.rule = "audit_log_empty_rejected",
     .argv = {NR, "--audit-log", "", "x"},
     .err = "--audit-log: empty value"},

    /* --port */
    {.rule = "port_zero_is_any",
     .argv = {NR, "--port", "0", "x"},
     .action = CLI_ACTION_RUN,
     .port = "0",
     .command = "x"},
    {.rule = "port_max",
     .argv = {NR, "--port=65535", "x"},
     .action = CLI_ACTION_RUN,
     .port = "65535",
     .command = "x"},
    {.rule = "port_leading_zeros_are_decimal",
     .argv = {NR, "--port", "0080", "x"},
     .action = CLI_ACTION_RUN,
     .port = "80",
     .command = "x"},
    {.rule = "port_65536_rejected",
     .argv = {NR, "--port", "65536", "x"},
     .err = "--port: invalid value '65536' (expected an integer from 0 to 65535)"},
    {.rule = "port_negative_rejected",
     .argv = {NR, "--port", "-1", "x"},
     .err = "--port: invalid value '-1' (expected an integer from 0 to 65535)"},
    {.rule = "port_plus_sign_rejected",
     .argv = {NR, "--port", "+1", "x"},
     .err = "--port: invalid value '+1' (expected an integer from 0 to 65535)"},
    {.rule = "port_leading_space_rejected",
     .argv = {NR, "--port", " 1", "x"},
     .err = "--port: invalid value ' 1' (expected an integer from 0 to 65535)"},
    {.rule = "port_trailing_junk_rejected",
     .argv = {NR, "--port", "1x", "x"},
     .err = "--port: invalid value '1x' (expected an integer from 0 to 65535)"},
    {.rule = "port_trailing_space_rejected",
     .argv = {NR, "--port", "1 ", "x"},
     .err = "--port: invalid value '1 ' (expected an integer from 0 to 65535)"},
    {.rule = "port_hex_rejected",
     .argv = {NR, "--port", "0x10", "x"},
     .err = "--port: invalid value '0x10' (expected an integer from 0 to 65535)"},
    {.rule = "port_empty_rejected",
     .argv = {NR, "--port", "", "x"},
     .err = "--port: invalid value '' (expected an integer from 0 to 65535)"},
    {.rule = "port_huge_rejected",
     .argv = {NR, "--port", "99999999999", "x"},
     .err = "--port: invalid value '99999999999' (expected an integer from 0 to 65535)"},
    {.rule = "port_needs_a_value", .argv = {NR, "--port"}, .err = "--port: missing value N"},

    /* --max-connections */
    {.rule = "max_connections_zero_is_unlimited",
     .argv = {NR, "--max-connections", "0", "x"},
     .action = CLI_ACTION_RUN,
     .max_conn = "0",
     .command = "x"},
    {.rule = "max_connections_uint_max",
     .argv = {NR, "--max-connections", "4294967295", "x"},
     .action = CLI_ACTION_RUN,
     .max_conn = "4294967295",
     .command = "x"},
    {.rule = "max_connections_above_uint_rejected",
     .argv = {NR, "--max-connections", "4294967296", "x"},
     .err = "--max-connections: invalid value '4294967296' (expected an integer from 0 to "
            "4294967295)"},
    {.rule = "max_connections_strtoull_overflow_rejected",
     .argv = {NR, "--max-connections", "99999999999999999999999", "x"},
     .err = "--max-connections: invalid value '99999999999999999999999' (expected an integer "
            "from 0 to 4294967295)"},
    {.rule = "max_connections_negative_rejected",
     .argv = {NR, "--max-connections", "-1", "x"},
     .err = "--max-connections: invalid value '-1' (expected an integer from 0 to 4294967295)"},

    /* timeouts: seconds in, milliseconds out */
    {.rule = "header_timeout_to_ms",
     .argv = {NR, "--header-timeout", "30", "x"},
     .action = CLI_ACTION_RUN,
     .header_ms = "30000",
     .command = "x"},
    {.rule = "idle_timeout_zero_disables",
     .argv = {NR, "--idle-timeout", "0", "x"},
     .action = CLI_ACTION_RUN,
     .idle_ms = "0",
     .command = "x"},
    {.rule = "connect_timeout_one_day_max",
     .argv = {NR, "--connect-timeout=86400", "x"},
     .action = CLI_ACTION_RUN,
     .connect_ms = "86400000",
     .command = "x"},
    {.rule = "timeouts_together",
     .argv = {NR, "--header-timeout", "1", "--idle-timeout", "2", "--connect-timeout", "3", "x"},
     .action = CLI_ACTION_RUN,
     .header_ms = "1000",
     .idle_ms = "2000",
     .connect_ms = "3000",
     .command = "x"},
    {.rule = "timeout_above_one_day_rejected",
     .argv = {NR, "--connect-timeout", "86401", "x"},
     .err = "--connect-timeout: invalid value '86401' (expected an integer from 0 to 86400)"},
    {.rule = "timeout_negative_rejected",
     .argv = {NR, "--idle-timeout", "-1", "x"},
     .err = "--idle-timeout: invalid value '-1' (expected an integer from 0 to 86400)"},
    {.rule = "timeout_fraction_rejected",
     .argv = {NR, "--header-timeout", "1.5", "x"},
     .err = "--header-timeout: invalid value '1.5' (expected an integer from 0 to 86400)"},
    {.rule = "timeout_huge_rejected",
     .argv = {NR, "--header-timeout", "99999999999", "x"},
     .err = "--header-timeout: invalid value '99999999999' (expected an integer from 0 to "
            "86400)"},
    {.rule = "timeout_empty_rejected",
     .argv = {NR, "--idle-timeout=", "x"},
     .err = "--idle-timeout: invalid value '' (expected an integer from 0 to 86400)"},

    /* -q, -v */
    {.rule = "quiet_short",
     .argv = {NR, "-q", "x"},
     .action = CLI_ACTION_RUN,
     .quiet = true,
     .command = "x"},
    {.rule = "quiet_long",
     .argv = {NR, "--quiet", "x"},
     .action = CLI_ACTION_RUN,
     .quiet = true,
     .command = "x"},
    {.rule = "verbose_once",
     .argv = {NR, "--verbose", "x"},
     .action = CLI_ACTION_RUN,
     .verbose = 1,
     .command = "x"},
    {.rule = "verbose_counts_clustered",
     .argv = {NR, "-vv", "x"},
     .action = CLI_ACTION_RUN,
     .verbose = 2,
     .command = "x"},
    {.rule = "verbose_counts_repeated",
     .argv = {NR, "-v", "-v", "--verbose", "x"},
     .action = CLI_ACTION_RUN,
     .verbose = 3,
     .command = "x"},
    {.rule = "verbose_saturates",
     .argv = {NR, "-vvvvvvvvvvvv", "x"},
     .action = CLI_ACTION_RUN,
     .verbose = 8,
     .command = "x"},
    {.rule = "short_flags_cluster",
     .argv = {NR, "-qv", "x"},
     .action = CLI_ACTION_RUN,
     .quiet = true,
     .verbose = 1,
     .command = "x"},
    {.rule = "flag_takes_no_value",
     .argv = {NR, "--quiet=1", "x"},
     .err = "--quiet: takes no value"},
    {.rule = "long_option_unique_prefix_accepted",
     .argv = {NR, "--verb", "x"},
     .action = CLI_ACTION_RUN,
     .verbose = 1,
     .command = "x"},

    /* -c/--config: at most once, never empty, read later (cli_config_load) */
    {.rule = "config_short",
     .argv = {NR, "-c", "np.json", "x"},
     .action = CLI_ACTION_RUN,
     .config = "np.json",
     .command = "x"},
    {.rule = "config_long_equals_form",
     .argv = {NR, "--config=/etc/np.json", "x"},
     .action = CLI_ACTION_RUN,
     .config = "/etc/np.json",
     .command = "x"},
    {.rule = "config_clustered_with_flags",
     .argv = {NR, "-qc", "np.json", "x"},
     .action = CLI_ACTION_RUN,
     .quiet = true,
     .config = "np.json",
     .command = "x"},
    {.rule = "config_with_other_options_in_any_order",
     .argv = {NR, "--allow", "a", "-c", "np.json", "--port", "1", "x"},
     .action = CLI_ACTION_RUN,
     .allow = "a",
     .port = "1",
     .config = "np.json",
     .command = "x"},
    {.rule = "config_given_twice_rejected",
     .argv = {NR, "-c", "a.json", "--config", "b.json", "x"},
     .err = "--config: given twice"},
    {.rule = "config_empty_rejected",
     .argv = {NR, "--config=", "x"},
     .err = "--config: empty value"},
    {.rule = "config_needs_a_value", .argv = {NR, "-c"}, .err = "--config: missing value FILE"},
    {.rule = "config_not_read_by_the_parser",
     .argv = {NR, "-c", "/nonexistent/np.json", "x"},
     .action = CLI_ACTION_RUN,
     .config = "/nonexistent/np.json",
     .command = "x"},

    /* --sandbox auto|on|off */
    {.rule = "sandbox_default_is_auto",
     .argv = {NR, "x"},
     .action = CLI_ACTION_RUN,
     .sandbox = CLI_SANDBOX_AUTO,
     .command = "x"},
    {.rule = "sandbox_auto",
     .argv = {NR, "--sandbox", "auto", "x"},
     .action = CLI_ACTION_RUN,
     .sandbox = CLI_SANDBOX_AUTO,
     .command = "x"},
    {.rule = "sandbox_on",
     .argv = {NR, "--sandbox=on", "x"},
     .action = CLI_ACTION_RUN,
     .sandbox = CLI_SANDBOX_ON,
     .command = "x"},
    {.rule = "sandbox_off",
     .argv = {NR, "--sandbox", "off", "x"},
     .action = CLI_ACTION_RUN,
     .sandbox = CLI_SANDBOX_OFF,
     .command = "x"},
    {.rule = "sandbox_last_wins",
     .argv = {NR, "--sandbox", "on", "--sandbox", "off", "x"},
     .action = CLI_ACTION_RUN,
     .sandbox = CLI_SANDBOX_OFF,
     .command = "x"},
    {.rule = "sandbox_unknown_value",
     .argv = {NR, "--sandbox", "yes", "x"},
     .err = "--sandbox: invalid value 'yes' (expected auto, on or off)"},
    {.rule = "sandbox_is_case_sensitive",
     .argv = {NR, "--sandbox", "ON", "x"},
     .err = "--sandbox: invalid value 'ON' (expected auto, on or off)"},
    {.rule = "sandbox_empty_value",
     .argv = {NR, "--sandbox=", "x"},
     .err = "--sandbox: invalid value '' (expected auto, on or off)"},
    {.rule = "sandbox_value_shown_printable",
     .argv = {NR, "--sandbox", "o\x1b", "x"},
     .err = "--sandbox: invalid value 'o?' (expected auto, on or off)"},
    {.rule = "sandbox_needs_a_value",
     .argv = {NR, "--sandbox"},
     .err = "--sandbox: missing value MODE"},

    /* policy (issue 14): --deny, --strict, --ask, --ask-timeout */
    {.rule = "deny_is_repeatable_in_order",
     .argv = {NR, "--deny", "evil.example", "--allow", "a", "--deny=*.ads.example", "--deny",
              "10.9.0.0/16", "x"},
     .action = CLI_ACTION_RUN,
     .allow = "a",
     .deny = "evil.example,*.ads.example,10.9.0.0/16",
     .command = "x"},
    {.rule = "deny_value_is_not_validated_by_the_parser",
     .argv = {NR, "--deny", "a b", "x"},
     .action = CLI_ACTION_RUN,
     .deny = "a b",
     .command = "x"},
    {.rule = "deny_needs_a_value", .argv = {NR, "--deny"}, .err = "--deny: missing value HOST"},
    {.rule = "allow_takes_a_range",
     .argv = {NR, "--allow", "127.0.0.1/32", "--allow", "fd00::/8", "x"},
     .action = CLI_ACTION_RUN,
     .allow = "127.0.0.1/32,fd00::/8",
     .command = "x"},
    {.rule = "strict_flag",
     .argv = {NR, "--strict", "x"},
     .action = CLI_ACTION_RUN,
     .strict = true,
     .command = "x"},
    {.rule = "strict_takes_no_value",
     .argv = {NR, "--strict=yes", "x"},
     .err = "--strict: takes no value"},
    {.rule = "ask_flag_and_timeout",
     .argv = {NR, "--ask", "--ask-timeout", "5", "x"},
     .action = CLI_ACTION_RUN,
     .ask = true,
     .ask_ms = "5000",
     .command = "x"},
    {.rule = "ask_timeout_zero_means_wait",
     .argv = {NR, "--ask-timeout=0", "x"},
     .action = CLI_ACTION_RUN,
     .ask_ms = "0",
     .command = "x"},
    {.rule = "ask_timeout_above_one_day",
     .argv = {NR, "--ask-timeout", "86401", "x"},
     .err = "--ask-timeout: invalid value '86401' (expected an integer from 0 to 86400)"},
    {.rule = "ask_timeout_negative",
     .argv = {NR, "--ask-timeout", "-1", "x"},
     .err = "--ask-timeout: invalid value '-1' (expected an integer from 0 to 86400)"},

    /* --serve and --env-file */
    {.rule = "serve_without_command",
     .argv = {NR, "--serve", "--port", "3128"},
     .action = CLI_ACTION_RUN,
     .serve = true,
     .port = "3128"},
    {.rule = "serve_with_env_file",
     .argv = {NR, "--serve", "--env-file", "/run/np.env"},
     .action = CLI_ACTION_RUN,
     .serve = true,
     .env_file = "/run/np.env"},
    {.rule = "serve_after_double_dash_alone",
     .argv = {NR, "--serve", "--"},
     .action = CLI_ACTION_RUN,
     .serve = true},
    {.rule = "serve_refuses_a_command",
     .argv = {NR, "--serve", "curl", "https://x"},
     .err = "--serve: takes no COMMAND"},
    {.rule = "serve_refuses_a_command_after_double_dash",
     .argv = {NR, "--serve", "--", "sh"},
     .err = "--serve: takes no COMMAND"},
    {.rule = "serve_refuses_sandbox_on",
     .argv = {NR, "--sandbox", "on", "--serve"},
     .err = "--sandbox on: not with --serve (there is no COMMAND)"},
    {.rule = "serve_accepts_sandbox_off",
     .argv = {NR, "--sandbox", "off", "--serve"},
     .action = CLI_ACTION_RUN,
     .sandbox = CLI_SANDBOX_OFF,
     .serve = true},
    {.rule = "env_file_needs_serve",
     .argv = {NR, "--env-file", "/tmp/e", "x"},
     .err = "--env-file: only with --serve"},
    {.rule = "env_file_empty_rejected",
     .argv = {NR, "--serve", "--env-file="},
     .err = "--env-file: empty value"},

    /* route policy keys: rule=, rpm=, burst=, max-delay=, client-cert=, client-key= */
    {.rule = "route_rules_repeatable_in_order",
     .argv = {NR, "--route", "o=https://h,rule=GET:/v1/models,rule=*:/v1/chat/**,rule=POST:/a",
              "x"},
     .action = CLI_ACTION_RUN,
     .routes = "o=https://h,rule=GET:/v1/models,rule=*:/v1/chat/**,rule=POST:/a",
     .command = "x"},
    {.rule = "route_rule_splits_at_first_colon",
     .argv = {NR, "--route", "o=https://h,rule=GET:/a:b", "x"},
     .action = CLI_ACTION_RUN,
     .routes = "o=https://h,rule=GET:/a:b",
     .command = "x"},
    {.rule = "route_rule_grows_past_initial_capacity",
     .argv = {NR, "--route", "o=u,rule=A:/1,rule=B:/2,rule=C:/3,rule=D:/4,rule=E:/5,rule=F:/6",
              "x"},
     .action = CLI_ACTION_RUN,
     .routes = "o=u,rule=A:/1,rule=B:/2,rule=C:/3,rule=D:/4,rule=E:/5,rule=F:/6",
     .command = "x"},
    {.rule = "route_rule_without_colon",
     .argv = {NR, "--route", "o=https://h,rule=/v1", "x"},
     .err = "--route 'o': invalid rule '/v1' (expected METHOD:PATH)"},
    {.rule = "route_rule_empty_method",
     .argv = {NR, "--route", "o=https://h,rule=:/v1", "x"},
     .err = "--route 'o': invalid rule ':/v1' (expected METHOD:PATH)"},
    {.rule = "route_rule_empty_path",
     .argv = {NR, "--route", "o=https://h,rule=GET:", "x"},
     .err = "--route 'o': invalid rule 'GET:' (expected METHOD:PATH)"},
    {.rule = "route_rule_error_after_a_good_rule",
     .argv = {NR, "--route", "o=https://h,rule=GET:/a,rule=bad", "x"},
     .err = "--route 'o': invalid rule 'bad' (expected METHOD:PATH)"},
    {.rule = "route_rate_limit_keys",
     .argv = {NR, "--route", "o=https://h,rpm=60,burst=5,max-delay=250", "x"},
     .action = CLI_ACTION_RUN,
     .routes = "o=https://h,rpm=60,burst=5,max-delay=250",
     .command = "x"},
    {.rule = "route_rate_limit_maxima",
     .argv = {NR, "--route", "o=https://h,rpm=1000000,burst=1000000,max-delay=600000", "x"},
     .action = CLI_ACTION_RUN,
     .routes = "o=https://h,rpm=1000000,burst=1000000,max-delay=600000",
     .command = "x"},
    {.rule = "route_rpm_too_large",
     .argv = {NR, "--route", "o=https://h,rpm=1000001", "x"},
     .err = "--route 'o': invalid rpm '1000001' (expected an integer from 0 to 1000000)"},
    {.rule = "route_rpm_negative",
     .argv = {NR, "--route", "o=https://h,rpm=-1", "x"},
     .err = "--route 'o': invalid rpm '-1' (expected an integer from 0 to 1000000)"},
    {.rule = "route_burst_not_a_number",
     .argv = {NR, "--route", "o=https://h,burst=5x", "x"},
     .err = "--route 'o': invalid burst '5x' (expected an integer from 1 to 1000000)"},
    {.rule = "route_burst_zero",
     .argv = {NR, "--route", "o=https://h,rpm=1,burst=0", "x"},
     .err = "--route 'o': invalid burst '0' (expected an integer from 1 to 1000000)"},
    {.rule = "route_max_delay_too_large",
     .argv = {NR, "--route", "o=https://h,max-delay=600001", "x"},
     .err = "--route 'o': invalid max-delay '600001' (expected an integer from 0 to 600000)"},
    {.rule = "route_rpm_given_twice",
     .argv = {NR, "--route", "o=https://h,rpm=1,rpm=2", "x"},
     .err = "--route 'o': key 'rpm' given twice"},
    {.rule = "route_client_certificate",
     .argv = {NR, "--route", "m=https://h,client-cert=/c.pem,client-key=/k.pem", "x"},
     .action = CLI_ACTION_RUN,
     .routes = "m=https://h,client-cert=/c.pem,client-key=/k.pem",
     .command = "x"},
    {.rule = "route_client_key_given_twice",
     .argv = {NR, "--route", "m=https://h,client-key=/a,client-key=/b", "x"},
     .err = "--route 'm': key 'client-key' given twice"},

    /* --help, --version */
    {.rule = "help_needs_no_command", .argv = {NR, "--help"}, .action = CLI_ACTION_HELP},
    {.rule = "help_stops_parsing", .argv = {NR, "--help", "--bogus"}, .action = CLI_ACTION_HELP},
    {.rule = "error_before_help_wins",
     .argv = {NR, "--bogus", "--help"},
     .err = "unknown or ambiguous option '--bogus'"},
    {.rule = "version_needs_no_command", .argv = {NR, "--version"}, .action = CLI_ACTION_VERSION},
    {.rule = "help_after_command_belongs_to_command",
     .argv = {NR, "x", "--help"},
     .action = CLI_ACTION_RUN,
     .command = "x --help"},

    /* unknown options */
    {.rule = "unknown_long_option",
     .argv = {NR, "--frob", "x"},
     .err = "unknown or ambiguous option '--frob'"},
    {.rule = "unknown_long_option_value_not_echoed",
     .argv = {NR, "--frob=1", "x"},
     .err = "unknown or ambiguous option '--frob'"},
    {.rule = "ambiguous_option_value_not_echoed",
     .argv = {NR, "--a=secret", "x"},
     .err = "unknown or ambiguous option '--a'"},
    {.rule = "ambiguous_prefix_rejected",
     .argv = {NR, "--a", "x", "y"},
     .err = "unknown or ambiguous option '--a'"},
    {.rule = "unknown_short_option", .argv = {NR, "-x", "y"}, .err = "unknown option '-x'"},
    {.rule = "unknown_short_option_in_cluster",
     .argv = {NR, "-qz", "y"},
     .err = "unknown option '-z'"},
    {.rule = "control_characters_not_echoed",
     .argv = {NR, "--\x1b[31m", "x"},
     .err = "unknown or ambiguous option '--?[31m'"},
};

/* Returns a malloc'd copy of items joined by sep ("" when n == 0). */
static char *
join(const char *const *items, size_t n, char sep)
{
    size_t len = 1;
    size_t i = 0;
    char *s = NULL;

    for (i = 0; i < n; i++) {
        len += strlen(items[i]) + 1;
    }
    s = calloc(1, len);
    assert_non_null(s);
    for (i = 0; i < n; i++) {
        if (i > 0) {
            s[strlen(s)] = sep;
        }
        memcpy(s + strlen(s), items[i], strlen(items[i]) + 1);
    }
    return s;
}

/* Checks an optional number against its expected decimal text (NULL = must be unset). */
static void
check_uint(const struct cli_uint *got, const char *want)
{
    char buf[32];

    if (want == NULL) {
        assert_false(got->set);
        return;
    }
    assert_true(got->set);
    (void)snprintf(buf, sizeof(buf), "%llu", got->value);
    assert_string_equal(buf, want);
}

/* Checks an optional string (NULL = must be unset). */
static void
check_str(const char *got, const char *want)
{
    if (want == NULL) {
        assert_null(got);
    } else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
}

/* Appends ",KEY=VALUE" to dst (cap bytes) when value is set. */
static void
render_key(char *dst, size_t cap, const char *key, const char *value)
{
    size_t used = strlen(dst);

    if (value != NULL) {
        assert_true(snprintf(dst + used, cap - used, ",%s=%s", key, value) < (int)(cap - used));
    }
}

/* Appends ",rule=METHOD:PATH" per endpoint rule, then ",rpm=N", ",burst=N", ",max-delay=N"
 * for the numbers that are set. */
static void
render_policy(char *dst, size_t cap, const struct cli_route *r)
{
    char buf[256];
    size_t i = 0;

    assert_true(r->n_rules <= r->cap_rules);
    for (i = 0; i < r->n_rules; i++) {
        (void)snprintf(buf, sizeof(buf), "%s:%s", r->rules[i].method, r->rules[i].path);
        render_key(dst, cap, "rule", buf);
    }
    if (r->rpm.set) {
        (void)snprintf(buf, sizeof(buf), "%llu", r->rpm.value);
        render_key(dst, cap, "rpm", buf);
    }
    if (r->burst.set) {
        (void)snprintf(buf, sizeof(buf), "%llu", r->burst.value);
        render_key(dst, cap, "burst", buf);
    }
    if (r->max_delay_ms.set) {
        (void)snprintf(buf, sizeof(buf), "%llu", r->max_delay_ms.value);
        render_key(dst, cap, "max-delay", buf);
    }
}

/* Writes the routes as "PREFIX=UPSTREAM[,KEY=VALUE...]" joined by " | ", keys in a fixed
 * order, inject as "NAME#ENUM" so that both the text and the enum are checked. */
static void
render_routes(const struct cli_routes *l, char *dst, size_t cap)
{
    char inject[64];
    size_t used = 0;
    size_t i = 0;

    dst[0] = '\0';
    for (i = 0; i < l->len; i++) {
        const struct cli_route *r = &l->items[i];

        assert_non_null(r->prefix);
        assert_non_null(r->upstream);
        used = strlen(dst);
        assert_true(snprintf(dst + used, cap - used, "%s%s=%s", i > 0 ? " | " : "", r->prefix,
                             r->upstream) < (int)(cap - used));
        render_key(dst, cap, "credential", r->credential);
        if (r->inject_name != NULL) {
            (void)snprintf(inject, sizeof(inject), "%s#%d", r->inject_name, (int)r->inject);
            render_key(dst, cap, "inject", inject);
        } else {
            assert_int_equal(r->inject, CLI_INJECT_UNSET);
        }
        render_key(dst, cap, "header", r->header);
        render_key(dst, cap, "format", r->format);
        render_key(dst, cap, "path-pattern", r->path_pattern);
        render_key(dst, cap, "path-replacement", r->path_replacement);
        render_key(dst, cap, "query-param", r->query_param);
        render_key(dst, cap, "env-var", r->env_var);
        render_key(dst, cap, "tls-ca", r->tls_ca);
        render_key(dst, cap, "client-cert", r->client_cert);
        render_key(dst, cap, "client-key", r->client_key);
        render_policy(dst, cap, r);
    }
}

/* Checks the fields of a successful parse against row c. */
static void
check_fields(const struct parse_case *c, const struct cli_args *a)
{
    char *s = join(a->allow.items, a->allow.len, ',');

    char routes[1024];

    assert_string_equal(s, c->allow != NULL ? c->allow : "");
    free(s);
    render_routes(&a->routes, routes, sizeof(routes));
    assert_string_equal(routes, c->routes != NULL ? c->routes : "");
    check_str(a->ca_file, c->ca_file);
    assert_int_equal(a->allow_missing_credentials, c->allow_missing);
    check_str(a->bind_addr, c->bind);
    check_str(a->audit_log, c->audit_log);
    check_uint(&a->port, c->port);
    check_uint(&a->max_connections, c->max_conn);
    check_uint(&a->header_timeout_ms, c->header_ms);
    check_uint(&a->idle_timeout_ms, c->idle_ms);
    check_uint(&a->connect_timeout_ms, c->connect_ms);
    check_str(a->external_proxy, c->external_proxy);
    s = join(a->bypass.items, a->bypass.len, ',');
    assert_string_equal(s, c->bypass != NULL ? c->bypass : "");
    free(s);
    assert_int_equal(a->quiet, c->quiet);
    assert_int_equal(a->verbose, c->verbose);
    check_str(a->config, c->config);
    assert_int_equal(a->sandbox, c->sandbox);
    s = join(a->deny.items, a->deny.len, ',');
    assert_string_equal(s, c->deny != NULL ? c->deny : "");
    free(s);
    assert_int_equal(a->strict.set, c->strict);
    assert_int_equal(a->strict.value, c->strict);
    assert_int_equal(a->ask, c->ask);
    check_uint(&a->ask_timeout_ms, c->ask_ms);
    assert_int_equal(a->serve, c->serve);
    check_str(a->env_file, c->env_file);
    /* the fields only a --config file sets stay unset */
    assert_null(a->file_external_proxy);
    assert_false(a->audit_capacity.set);
    assert_false(a->require_auth.set);
    assert_int_equal(a->allow.n_file + a->bypass.n_file + a->routes.n_file + a->deny.n_file, 0);
    if (c->command == NULL) {
        assert_null(a->command);
        return;
    }
    assert_non_null(a->command);
    assert_null(a->command[a->command_argc]); /* argv's own terminator */
    s = join((const char *const *)a->command, (size_t)a->command_argc, ' ');
    assert_string_equal(s, c->command);
    free(s);
}

/* Runs one row: parse a private copy of its argv and compare everything. */
static void
run_case(void **state)
{
    const struct parse_case *c = *state;
    char *argv[MAX_ARGV + 1];
    struct cli_args a;
    char err[CLI_ERR_LEN];
    enum cli_action act = CLI_ACTION_ERROR;
    int argc = 0;
    int i = 0;

    memset(argv, 0, sizeof(argv));
    while (argc < MAX_ARGV && c->argv[argc] != NULL) {
        argv[argc] = strdup(c->argv[argc]);
        assert_non_null(argv[argc]);
        argc++;
    }
    act = cli_args_parse(&a, argc, argv, err, sizeof(err));
    assert_int_equal(act, c->action);
    assert_int_equal(a.action, c->action);
    if (act == CLI_ACTION_ERROR) {
        assert_non_null(c->err);
        assert_string_equal(err, c->err);
        assert_null(strstr(err, "secret")); /* no error quotes a password */
    } else {
        assert_string_equal(err, "");
    }
    if (act == CLI_ACTION_RUN) {
        check_fields(c, &a);
    }
    cli_args_free(&a);
    assert_null(a.allow.items);
    assert_null(a.bypass.items);
    assert_null(a.routes.items);
    assert_null(a.external_proxy);
    for (i = 0; i < argc; i++) {
        free(argv[i]);
    }
}

/* cli_printable rows: {input, capacity, expected}. */
static void
printable_replaces_and_truncates(void **state)
{
    static const struct {
        const char *in;
        size_t cap;
        const char *want;
    } rows[] = {
        {"plain", 16, "plain"},
        {"", 4, ""},
        {"tab\there", 16, "tab?here"},
        {"esc\x1b[0m", 16, "esc?[0m"},
        {"caf\xc3\xa9", 16, "caf??"},
        {"exactly7", 9, "exactly7"},
        {"longer than nine", 10, "longer..."},
        {"abc", 2, "a"},
        {"abcdef", 4, "abc"},
    };
    char buf[32];
    size_t i = 0;

    (void)state;
    for (i = 0; i < ARRAY_LEN(rows); i++) {
        memset(buf, 'Z', sizeof(buf));
        cli_printable(buf, rows[i].cap, rows[i].in);
        assert_string_equal(buf, rows[i].want);
        assert_true(strlen(buf) < rows[i].cap);
    }
}

/* The usage names every option with its value (it is generated from the option table). */
static void
usage_lists_every_option(void **state)
{
    static const char *const want[] = {
        "usage: nonoproxy-run [OPTIONS] [--] COMMAND [ARG...]",
        "-c, --config FILE",
        "--allow HOST",
        "--route PREFIX=UPSTREAM[,KEY=VALUE...]",
        "--ca-file FILE",
        "--allow-missing-credentials",
        "--external-proxy ADDR",
        "[USER:PASS@]HOST:PORT",
        "--bypass HOST",
        "or else NONOPROXY_EXTERNAL_PROXY, or else the\nexternal_proxy of the --config file",
        "password is blanked from\nthe process's command line",
        "better: put it in the --config file or in NONOPROXY_EXTERNAL_PROXY.",
        "NONOPROXY_EXTERNAL_PROXY\nand the variables named by an env:// credential are removed",
        "credential=KEY",
        "inject=MODE",
        "header=H",
        "format=F",
        "path-pattern=P",
        "path-replacement=R",
        "query-param=Q",
        "env-var=V",
        "tls-ca=FILE",
        "--bind ADDR",
        "--port N",
        "--max-connections N",
        "--audit-log FILE",
        "--header-timeout SECS",
        "--idle-timeout SECS",
        "--connect-timeout SECS",
        "--sandbox MODE",
        "auto (default), on or off",
        "Landlock ABI 4",
        "-q, --quiet",
        "-v, --verbose",
        "--help",
        "--version",
        "--deny HOST",
        "--strict",
        "--ask",
        "--ask-timeout SECS",
        "--serve",
        "--env-file FILE",
        "nonoproxy-run [OPTIONS] --serve [--env-file FILE]",
        "rule=METHOD:PATH",
        "rpm=N",
        "burst=N",
        "max-delay=MS",
        "client-cert=FILE",
        "client-key=FILE",
        "export NAME='value'",
    };
    char *text = NULL;
    size_t len = 0;
    size_t i = 0;
    FILE *f = open_memstream(&text, &len);

    (void)state;
    assert_non_null(f);
    cli_args_usage(f);
    assert_int_equal(fclose(f), 0);
    for (i = 0; i < ARRAY_LEN(want); i++) {
        if (strstr(text, want[i]) == NULL) {
            fail_msg("the usage does not contain '%s'", want[i]);
        }
    }
    free(text);
}

/* Every usage line fits in 80 columns, including the long options on a line of their own. */
static void
usage_fits_in_80_columns(void **state)
{
    char *text = NULL;
    char *line = NULL;
    char *nl = NULL;
    size_t len = 0;
    size_t lines = 0;
    FILE *f = open_memstream(&text, &len);

    (void)state;
    assert_non_null(f);
    cli_args_usage(f);
    assert_int_equal(fclose(f), 0);
    for (line = text; *line != '\0'; line = nl + 1) {
        nl = strchr(line, '\n');
        assert_non_null(nl); /* every line ends with a newline */
        if ((size_t)(nl - line) > 80) {
            *nl = '\0';
            fail_msg("line longer than 80 columns: '%s'", line);
        }
        lines++;
    }
    assert_true(lines > 30);
    free(text);
}

/* cli_env_ref_name rows: {credential reference, variable name or NULL}. */
static void
env_ref_name_only_for_env_scheme(void **state)
{
    static const struct {
        const char *ref;
        const char *want;
    } rows[] = {
        {"env://OPENAI_API_KEY", "OPENAI_API_KEY"},
        {"ENV://FOO", "FOO"},
        {"Env://foo", "foo"},
        {"env://FOO/bar", "FOO/bar"}, /* malformed: the library refuses it at start */
        {"env://", NULL},
        {"env:/FOO", NULL},
        {"env:FOO", NULL},
        {"envx://FOO", NULL},
        {" env://FOO", NULL},
        {"file:///run/secrets/key", NULL},
        {"keyring://svc/FOO", NULL},
        {"FOO", NULL},
        {"", NULL},
        {NULL, NULL},
    };
    size_t i = 0;

    (void)state;
    for (i = 0; i < ARRAY_LEN(rows); i++) {
        const char *got = cli_env_ref_name(rows[i].ref);

        if (rows[i].want == NULL) {
            assert_null(got);
        } else {
            assert_non_null(got);
            assert_string_equal(got, rows[i].want);
            assert_ptr_equal(got, rows[i].ref + strlen(rows[i].ref) - strlen(rows[i].want));
        }
    }
}

/* NONOPROXY_EXTERNAL_PROXY always comes first, then only env:// credentials, in route order,
 * up to the capacity. */
static void
env_removals_from_routes(void **state)
{
    struct cli_route items[5];
    struct cli_routes routes = {items, ARRAY_LEN(items), ARRAY_LEN(items), 0};
    const char *names[5 + CLI_ENV_FIXED_REMOVALS];

    (void)state;
    memset(items, 0, sizeof(items));
    items[0].credential = "env://B";
    items[1].credential = NULL; /* route without a credential */
    items[2].credential = "file:///k";
    items[3].credential = "env://A";
    items[4].credential = "openai-key";
    assert_int_equal(cli_env_collect_removals(&routes, names, ARRAY_LEN(names)), 3);
    assert_string_equal(names[0], "NONOPROXY_EXTERNAL_PROXY");
    assert_string_equal(names[1], "B");
    assert_string_equal(names[2], "A");
    assert_int_equal(cli_env_collect_removals(&routes, names, 2), 2);
    assert_string_equal(names[0], "NONOPROXY_EXTERNAL_PROXY");
    assert_string_equal(names[1], "B");
    assert_int_equal(cli_env_collect_removals(&routes, names, 0), 0);
    routes.len = 0;
    assert_int_equal(cli_env_collect_removals(&routes, names, ARRAY_LEN(names)), 1);
    assert_string_equal(names[0], "NONOPROXY_EXTERNAL_PROXY");
}

/* cli_blank_userinfo rows: {address, expected after blanking, bytes blanked}. Everything
 * before the last '@' is the userinfo; the "@host:port" part and the length stay. */
static void
blank_userinfo_hides_everything_before_last_at(void **state)
{
    static const struct {
        const char *in;
        const char *want;
        size_t blanked;
    } rows[] = {
        {"proxy.corp:3128", "proxy.corp:3128", 0},
        {"user:secret@proxy.corp:3128", "***********@proxy.corp:3128", 11},
        {"user@proxy.corp:3128", "****@proxy.corp:3128", 4},
        {":secret@h:1", "*******@h:1", 7},
        {"user:@h:1", "*****@h:1", 5},
        {"@h:1", "@h:1", 0},
        {"u:secret@[::1]:3128", "********@[::1]:3128", 8},
        {"u:secret@[2001:db8::1]:8080", "********@[2001:db8::1]:8080", 8},
        {"[2001:db8::1]:8080", "[2001:db8::1]:8080", 0},
        {"[::ffff:10.0.0.1]:3128", "[::ffff:10.0.0.1]:3128", 0},
        {"u:p@", "***@", 3},
        {"a@secret@h:1", "********@h:1", 8}, /* refused by the library; blanked up to the last */
        {"u:s\x1b\xc3\xa9@h:1", "******@h:1", 6},
        {"", "", 0},
    };
    char buf[64];
    size_t i = 0;

    (void)state;
    for (i = 0; i < ARRAY_LEN(rows); i++) {
        assert_true(strlen(rows[i].in) < sizeof(buf));
        memcpy(buf, rows[i].in, strlen(rows[i].in) + 1);
        assert_int_equal(cli_blank_userinfo(buf), rows[i].blanked);
        assert_string_equal(buf, rows[i].want);
        assert_null(strstr(buf, "secret"));
    }
}

/* The value the parser stores points into argv: blanking it through a.external_proxy changes
 * argv itself (what /proc/<pid>/cmdline shows), in both the separate and the '=' form. Rows:
 * {argv[1], argv[2], which argv changes, its text afterwards}. */
static void
blank_through_parsed_value_changes_argv(void **state)
{
    static const struct {
        const char *arg1;
        const char *arg2;
        int changed;
        const char *want;
    } rows[] = {
        {"--external-proxy", "user:secret@proxy:3128", 2, "***********@proxy:3128"},
        {"--external-proxy=user:secret@proxy:3128", "-q", 1,
         "--external-proxy=***********@proxy:3128"},
        {"--ext=u:secret@[::1]:3128", "-q", 1, "--ext=********@[::1]:3128"},
        {"--external-proxy", "proxy:3128", 2, "proxy:3128"},
    };
    char *argv[5];
    struct cli_args a;
    char err[CLI_ERR_LEN];
    size_t i = 0;
    int j = 0;

    (void)state;
    for (i = 0; i < ARRAY_LEN(rows); i++) {
        argv[0] = strdup(NR);
        argv[1] = strdup(rows[i].arg1);
        argv[2] = strdup(rows[i].arg2);
        argv[3] = strdup("true");
        argv[4] = NULL;
        for (j = 0; j < 4; j++) {
            assert_non_null(argv[j]);
        }
        assert_int_equal(cli_args_parse(&a, 4, argv, err, sizeof(err)), CLI_ACTION_RUN);
        assert_non_null(a.external_proxy);
        (void)cli_blank_userinfo(a.external_proxy);
        assert_string_equal(argv[rows[i].changed], rows[i].want);
        for (j = 0; j < 4; j++) {
            assert_null(strstr(argv[j], "secret"));
        }
        cli_args_free(&a);
        for (j = 0; j < 4; j++) {
            free(argv[j]);
        }
    }
}

/* cli_proxy_hostport rows: {address, what may be printed}. */
static void
proxy_hostport_never_shows_userinfo(void **state)
{
    static const struct {
        const char *in;
        const char *want;
    } rows[] = {
        {"proxy.corp:3128", "proxy.corp:3128"},
        {"user:secret@proxy.corp:3128", "proxy.corp:3128"},
        {"***********@proxy.corp:3128", "proxy.corp:3128"},
        {"u:secret@[::1]:3128", "[::1]:3128"},
        {"[2001:db8::1]:8080", "[2001:db8::1]:8080"},
        {"a@secret@h:1", "h:1"},
        {"u:secret@", ""},
        {"", ""},
    };
    size_t i = 0;

    (void)state;
    for (i = 0; i < ARRAY_LEN(rows); i++) {
        const char *got = cli_proxy_hostport(rows[i].in);

        assert_string_equal(got, rows[i].want);
        assert_ptr_equal(got, rows[i].in + strlen(rows[i].in) - strlen(rows[i].want));
    }
}

/* cli_env_value rows: {environment, name, value or NULL}. */
static void
env_value_exact_name_first_entry(void **state)
{
    static const char *const env1[] = {
        "NONOPROXY_EXTERNAL_PROXYX=wrong", "XNONOPROXY_EXTERNAL_PROXY=wrong",
        "NONOPROXY_EXTERNAL_PROX=wrong",   "nonoproxy_external_proxy=wrong",
        "NONOPROXY_EXTERNAL_PROXY",        "NONOPROXY_EXTERNAL_PROXY=u:p@h:1=x",
        "NONOPROXY_EXTERNAL_PROXY=second", NULL,
    };
    static const char *const env2[] = {"A=1", "NONOPROXY_EXTERNAL_PROXY=", NULL};
    static const char *const env3[] = {"A=1", NULL};
    static const struct {
        const char *const *envp;
        const char *name;
        const char *want;
    } rows[] = {
        {env1, "NONOPROXY_EXTERNAL_PROXY", "u:p@h:1=x"},
        {env2, "NONOPROXY_EXTERNAL_PROXY", ""},
        {env2, "A", "1"},
        {env3, "NONOPROXY_EXTERNAL_PROXY", NULL},
        {env3, "A=1", NULL},
        {NULL, "NONOPROXY_EXTERNAL_PROXY", NULL},
    };
    size_t i = 0;

    (void)state;
    for (i = 0; i < ARRAY_LEN(rows); i++) {
        const char *got = cli_env_value((char *const *)(uintptr_t)rows[i].envp, rows[i].name);

        if (rows[i].want == NULL) {
            assert_null(got);
        } else {
            assert_non_null(got);
            assert_string_equal(got, rows[i].want);
        }
    }
}

#define ENV_MAX 8

/* One child environment: inherited entries, route credentials (for the removals), the two
 * proxy sources as "NAME=value", and the expected envp joined by '\n'. */
struct env_case {
    const char *rule;
    const char *base[ENV_MAX]; /* NULL-terminated; base_null = pass NULL instead */
    bool base_null;
    const char *creds[ENV_MAX]; /* credential of each route, NULL-terminated; "-" = none */
    const char *proxy[ENV_MAX]; /* nonoproxy_env_vars() */
    const char *route[ENV_MAX]; /* nonoproxy_credential_env_vars() */
    const char *want;
    size_t inherited; /* how many of want's entries come from base */
};

static const struct env_case ENV_CASES[] = {
    {.rule = "env_ref_removes_exact_name_only",
     .base = {"FOO=real-secret", "FOOBAR=1", "FO=2", "XFOO=3", "foo=4"},
     .creds = {"env://FOO"},
     .proxy = {"HTTPS_PROXY=p"},
     .want = "FOOBAR=1\nFO=2\nXFOO=3\nfoo=4\nHTTPS_PROXY=p",
     .inherited = 4},
    {.rule = "env_ref_longer_name_keeps_shorter_variable",
     .base = {"FOO=1", "FOOBAR=2"},
     .creds = {"env://FOOBAR"},
     .want = "FOO=1",
     .inherited = 1},
    {.rule = "env_ref_scheme_case_insensitive",
     .base = {"KEY=real", "OTHER=1"},
     .creds = {"ENV://KEY"},
     .want = "OTHER=1",
     .inherited = 1},
    {.rule = "env_refs_of_every_route_removed",
     .base = {"A=1", "B=2", "C=3", "D=4"},
     .creds = {"env://C", "-", "file:///B", "env://A", "env://A"},
     .want = "B=2\nD=4",
     .inherited = 2},
    {.rule = "non_env_refs_remove_nothing",
     .base = {"openai-key=1", "svc=2", "k=3"},
     .creds = {"openai-key", "keyring://svc/acct", "file:///k", "env://"},
     .want = "openai-key=1\nsvc=2\nk=3",
     .inherited = 3},
    {.rule = "env_ref_removes_entry_without_equals",
     .base = {"FOO", "WEIRD", "=x"},
     .creds = {"env://FOO"},
     .want = "WEIRD\n=x",
     .inherited = 2},
    {.rule = "proxy_vars_replace_inherited",
     .base = {"HTTPS_PROXY=http://corp:3128", "A=1", "https_proxy=http://corp:3128",
              "NONO_PROXY_TOKEN=stale"},
     .proxy = {"HTTPS_PROXY=http://nono:T@127.0.0.1:9", "NONO_PROXY_TOKEN=T"},
     .want = "A=1\nhttps_proxy=http://corp:3128\nHTTPS_PROXY=http://nono:T@127.0.0.1:9\n"
             "NONO_PROXY_TOKEN=T",
     .inherited = 2},
    {.rule = "route_vars_replace_inherited",
     .base = {"OPENAI_BASE_URL=https://api.openai.com/v1", "Z=1"},
     .route = {"OPENAI_BASE_URL=http://127.0.0.1:9/openai"},
     .want = "Z=1\nOPENAI_BASE_URL=http://127.0.0.1:9/openai",
     .inherited = 1},
    {.rule = "phantom_replaces_removed_real_key",
     .base = {"OPENAI_API_KEY=sk-real", "HOME=/h"},
     .creds = {"env://OPENAI_API_KEY"},
     .proxy = {"HTTP_PROXY=p"},
     .route = {"OPENAI_BASE_URL=b", "OPENAI_API_KEY=T"},
     .want = "HOME=/h\nHTTP_PROXY=p\nOPENAI_BASE_URL=b\nOPENAI_API_KEY=T",
     .inherited = 1},
    {.rule = "order_is_inherited_then_proxy_then_routes",
     .base = {"Z=1", "A=2", "M=3"},
     .proxy = {"HTTP_PROXY=h", "HTTPS_PROXY=s", "NO_PROXY=n"},
     .route = {"B_BASE_URL=b", "A_BASE_URL=a"},
     .want = "Z=1\nA=2\nM=3\nHTTP_PROXY=h\nHTTPS_PROXY=s\nNO_PROXY=n\nB_BASE_URL=b\n"
             "A_BASE_URL=a",
     .inherited = 3},
    {.rule = "later_source_wins_on_duplicate",
     .proxy = {"X=1", "Y=1"},
     .route = {"X=2"},
     .want = "Y=1\nX=2"},
    {.rule = "later_entry_of_one_source_wins", .proxy = {"Y=1", "Z=0", "Y=2"}, .want = "Z=0\nY=2"},
    {.rule = "value_may_contain_equals",
     .base = {"A=b=c"},
     .creds = {"env://A=b"},
     .proxy = {"U=http://x/?a=b"},
     .want = "A=b=c\nU=http://x/?a=b",
     .inherited = 1},
    {.rule = "external_proxy_variable_always_removed",
     .base = {"NONOPROXY_EXTERNAL_PROXY=user:secret@proxy:3128", "A=1",
              "NONOPROXY_EXTERNAL_PROXY_X=2", "NONOPROXY_EXTERNAL_PROXY"},
     .proxy = {"HTTPS_PROXY=p"},
     .want = "A=1\nNONOPROXY_EXTERNAL_PROXY_X=2\nHTTPS_PROXY=p",
     .inherited = 2},
    {.rule = "external_proxy_variable_removed_with_env_refs",
     .base = {"KEY=real", "NONOPROXY_EXTERNAL_PROXY=h:1", "B=2"},
     .creds = {"env://KEY"},
     .want = "B=2",
     .inherited = 1},
    {.rule = "no_inherited_environment", .base_null = true, .proxy = {"P=1"}, .want = "P=1"},
    {.rule = "empty_everything", .want = ""},
};

/* Returns the number of entries of a NULL-terminated row array. */
static size_t
count_of(const char *const *v)
{
    size_t n = 0;

    while (n < ENV_MAX && v[n] != NULL) {
        n++;
    }
    return n;
}

/* Splits "NAME=value" rows into vars (owned copies in bufs; the caller frees bufs[i]). */
static size_t
split_vars(const char *const *rows, struct nonoproxy_env_var *vars, char **bufs)
{
    size_t n = count_of(rows);
    size_t i = 0;
    char *eq = NULL;

    for (i = 0; i < n; i++) {
        bufs[i] = strdup(rows[i]);
        assert_non_null(bufs[i]);
        eq = strchr(bufs[i], '=');
        assert_non_null(eq);
        *eq = '\0';
        vars[i].name = bufs[i];
        vars[i].value = eq + 1;
    }
    return n;
}

/* Returns true when e is one of c's base pointers. */
static bool
is_base_entry(const struct env_case *c, const char *e)
{
    size_t i = 0;

    for (i = 0; i < ENV_MAX && c->base[i] != NULL; i++) {
        if (c->base[i] == e) {
            return true;
        }
    }
    return false;
}

/* Builds one row's environment and compares it entry by entry. */
static void
run_env_case(void **state)
{
    const struct env_case *c = *state;
    struct cli_route items[ENV_MAX];
    struct cli_routes routes = {items, 0, ENV_MAX, 0};
    struct nonoproxy_env_var vars[2][ENV_MAX];
    char *bufs[2][ENV_MAX];
    struct cli_env_source src[2];
    const char *removals[ENV_MAX + CLI_ENV_FIXED_REMOVALS];
    struct cli_env_plan plan;
    struct cli_env env;
    char *got = NULL;
    size_t i = 0;

    memset(items, 0, sizeof(items));
    memset(bufs, 0, sizeof(bufs));
    routes.len = count_of(c->creds);
    for (i = 0; i < routes.len; i++) {
        items[i].credential = strcmp(c->creds[i], "-") == 0 ? NULL : c->creds[i];
    }
    src[0].vars = vars[0];
    src[0].n = split_vars(c->proxy, vars[0], bufs[0]);
    src[1].vars = vars[1];
    src[1].n = split_vars(c->route, vars[1], bufs[1]);
    plan.base = c->base_null ? NULL : (char *const *)(uintptr_t)c->base;
    plan.remove = removals;
    plan.n_remove = cli_env_collect_removals(&routes, removals, ARRAY_LEN(removals));
    plan.sources = src;
    plan.n_sources = 2;
    assert_true(cli_env_build(&plan, &env));
    assert_non_null(env.envp);
    assert_null(env.envp[env.len]);
    assert_int_equal(env.owned_from, c->inherited);
    for (i = 0; i < env.owned_from; i++) {
        assert_true(is_base_entry(c, env.envp[i])); /* inherited entries are not copied */
    }
    got = join((const char *const *)env.envp, env.len, '\n');
    assert_string_equal(got, c->want);
    free(got);
    cli_env_free(&env);
    assert_null(env.envp);
    assert_int_equal(env.len, 0);
    for (i = 0; i < ENV_MAX; i++) {
        free(bufs[0][i]);
        free(bufs[1][i]);
    }
}

/* cli_export_line rows: {name, value, line or NULL when refused}. The value is single-quoted,
 * each ' written as '\'' (close, escaped quote, reopen), so a shell reads it back unchanged. */
static void
export_line_quotes_for_the_shell(void **state)
{
    static const struct {
        const char *name;
        const char *value;
        const char *want;
    } rows[] = {
        {"HTTPS_PROXY", "http://nono:abc@127.0.0.1:9",
         "export HTTPS_PROXY='http://nono:abc@127.0.0.1:9'\n"},
        {"A", "", "export A=''\n"},
        {"_x9", "it's", "export _x9='it'\\''s'\n"},
        {"Q", "''", "export Q=''\\'''\\'''\n"},
        {"D", "$(id) `id` \\ \" ;", "export D='$(id) `id` \\ \" ;'\n"},
        {"N", "a\nb", "export N='a\nb'\n"},
        {"9A", "v", NULL},
        {"A-B", "v", NULL},
        {"A=B", "v", NULL},
        {"", "v", NULL},
        {"A B", "v", NULL},
    };
    char buf[128];
    size_t i = 0;

    (void)state;
    for (i = 0; i < ARRAY_LEN(rows); i++) {
        size_t n = cli_export_line(buf, sizeof(buf), rows[i].name, rows[i].value);

        if (rows[i].want == NULL) {
            assert_int_equal(n, 0);
        } else {
            assert_int_equal(n, strlen(rows[i].want));
            assert_string_equal(buf, rows[i].want);
        }
    }
    /* too small a buffer: refused, never cut ("export AB='v'\n" is 14 bytes + NUL) */
    assert_int_equal(cli_export_line(buf, 14, "AB", "v"), 0);
    assert_int_equal(cli_export_line(buf, 15, "AB", "v"), 14);
    assert_string_equal(buf, "export AB='v'\n");
    assert_int_equal(cli_export_line(buf, 17, "AB", "'"), 0);
    assert_int_equal(cli_export_line(buf, 18, "AB", "'"), 17);
    assert_int_equal(cli_export_line(buf, sizeof(buf), NULL, "v"), 0);
}

/* The hint after an error is the synopsis plus a pointer to --help. */
static void
usage_hint_is_two_lines(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    (void)state;
    assert_non_null(f);
    cli_args_usage_hint(f);
    assert_int_equal(fclose(f), 0);
    assert_string_equal(text, "usage: nonoproxy-run [OPTIONS] [--] COMMAND [ARG...]\n"
                              "Try 'nonoproxy-run --help' for more information.\n");
    free(text);
}

int
main(void)
{
    static struct CMUnitTest tests[ARRAY_LEN(CASES) + ARRAY_LEN(ENV_CASES) + 11];
    size_t i = 0;
    size_t j = 0;

    memset(tests, 0, sizeof(tests));
    for (i = 0; i < ARRAY_LEN(CASES); i++) {
        tests[i].name = CASES[i].rule;
        tests[i].test_func = run_case;
        tests[i].initial_state = &CASES[i];
    }
    for (j = 0; j < ARRAY_LEN(ENV_CASES); j++, i++) {
        tests[i].name = ENV_CASES[j].rule;
        tests[i].test_func = run_env_case;
        tests[i].initial_state = (void *)(uintptr_t)&ENV_CASES[j];
    }
    tests[i].name = "usage_fits_in_80_columns";
    tests[i++].test_func = usage_fits_in_80_columns;
    tests[i].name = "env_ref_name_only_for_env_scheme";
    tests[i++].test_func = env_ref_name_only_for_env_scheme;
    tests[i].name = "env_removals_from_routes";
    tests[i++].test_func = env_removals_from_routes;
    tests[i].name = "printable_replaces_and_truncates";
    tests[i++].test_func = printable_replaces_and_truncates;
    tests[i].name = "usage_lists_every_option";
    tests[i++].test_func = usage_lists_every_option;
    tests[i].name = "usage_hint_is_two_lines";
    tests[i++].test_func = usage_hint_is_two_lines;
    tests[i].name = "blank_userinfo_hides_everything_before_last_at";
    tests[i++].test_func = blank_userinfo_hides_everything_before_last_at;
    tests[i].name = "blank_through_parsed_value_changes_argv";
    tests[i++].test_func = blank_through_parsed_value_changes_argv;
    tests[i].name = "proxy_hostport_never_shows_userinfo";
    tests[i++].test_func = proxy_hostport_never_shows_userinfo;
    tests[i].name = "export_line_quotes_for_the_shell";
    tests[i++].test_func = export_line_quotes_for_the_shell;
    tests[i].name = "env_value_exact_name_first_entry";
    tests[i++].test_func = env_value_exact_name_first_entry;
    return cmocka_run_group_tests_name("cli_args", tests, NULL, NULL);
}
