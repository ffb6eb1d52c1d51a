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

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_ARGV     24

/* One command line and everything the parser must make of it. String expectations: NULL means
 * "absent" (unset option, no command); numbers are expected as their decimal text. */
struct parse_case {
    const char *rule;
    const char *argv[MAX_ARGV]; /* argv[0] included, NULL-terminated */
    enum cli_action action;
    const char *err;   /* exact error text for CLI_ACTION_ERROR */
    const char *allow; /* --allow values joined by ',' ("" or NULL = none) */
    const char *bind;
    const char *port;
    const char *max_conn;
    const char *audit_log;
    const char *header_ms;
    const char *idle_ms;
    const char *connect_ms;
    bool quiet;
    unsigned verbose;
    const char *command; /* command words joined by ' ' */
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
    {.rule = "unknown_long_option_with_value",
     .argv = {NR, "--frob=1", "x"},
     .err = "unknown or ambiguous option '--frob=1'"},
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

/* Checks the fields of a successful parse against row c. */
static void
check_fields(const struct parse_case *c, const struct cli_args *a)
{
    char *s = join(a->allow.items, a->allow.len, ',');

    assert_string_equal(s, c->allow != NULL ? c->allow : "");
    free(s);
    check_str(a->bind_addr, c->bind);
    check_str(a->audit_log, c->audit_log);
    check_uint(&a->port, c->port);
    check_uint(&a->max_connections, c->max_conn);
    check_uint(&a->header_timeout_ms, c->header_ms);
    check_uint(&a->idle_timeout_ms, c->idle_ms);
    check_uint(&a->connect_timeout_ms, c->connect_ms);
    assert_int_equal(a->quiet, c->quiet);
    assert_int_equal(a->verbose, c->verbose);
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
    } else {
        assert_string_equal(err, "");
    }
    if (act == CLI_ACTION_RUN) {
        check_fields(c, &a);
    }
    cli_args_free(&a);
    assert_null(a.allow.items);
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
        "--allow HOST",
        "--bind ADDR",
        "--port N",
        "--max-connections N",
        "--audit-log FILE",
        "--header-timeout SECS",
        "--idle-timeout SECS",
        "--connect-timeout SECS",
        "-q, --quiet",
        "-v, --verbose",
        "--help",
        "--version",
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
        assert_non_null(strstr(text, want[i]));
    }
    free(text);
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
    struct CMUnitTest tests[ARRAY_LEN(CASES) + 3];
    size_t i = 0;

    memset(tests, 0, sizeof(tests));
    for (i = 0; i < ARRAY_LEN(CASES); i++) {
        tests[i].name = CASES[i].rule;
        tests[i].test_func = run_case;
        tests[i].initial_state = &CASES[i];
    }
    tests[i].name = "printable_replaces_and_truncates";
    tests[i++].test_func = printable_replaces_and_truncates;
    tests[i].name = "usage_lists_every_option";
    tests[i++].test_func = usage_lists_every_option;
    tests[i].name = "usage_hint_is_two_lines";
    tests[i++].test_func = usage_hint_is_two_lines;
    return cmocka_run_group_tests_name("cli_args", tests, NULL, NULL);
}
