/* nonoproxy-run: command-line parsing (SPEC §11). Pure: touches no proxy, no file, no signal. */
#ifndef NONOPROXY_CLI_ARGS_H
#define NONOPROXY_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <nonoproxy/config.h>

#include "sandbox.h"

/** Exit status for nonoproxy-run's own errors (bad option, start failure), as env(1). */
#define CLI_EXIT_FAILURE       125
/** Exit status when COMMAND was found but could not be executed. */
#define CLI_EXIT_CANNOT_INVOKE 126
/** Exit status when COMMAND was not found. */
#define CLI_EXIT_NOT_FOUND     127

/** Size of the error buffer that always holds a parse error. */
#define CLI_ERR_LEN 512

/** Upper bound of the --*-timeout options, in seconds (one day). */
#define CLI_MAX_TIMEOUT_SECS 86400u

/** Upper bound of rpm= / requests_per_minute and of burst= / burst (a million a minute). */
#define CLI_MAX_RATE 1000000u

/** Upper bound of max-delay= / max_delay_ms, in milliseconds (ten minutes). */
#define CLI_MAX_DELAY_MS 600000u

/** Environment variable read for the external proxy's address when --external-proxy is not
 * given; always removed from COMMAND's environment (it may hold a password). */
#define CLI_EXTERNAL_PROXY_ENV "NONOPROXY_EXTERNAL_PROXY"

/** What the command line asks for. */
enum cli_action {
    CLI_ACTION_ERROR = 0,   /**< bad command line; the error buffer says why */
    CLI_ACTION_RUN = 1,     /**< start the proxy and run the command */
    CLI_ACTION_HELP = 2,    /**< print the usage on stdout, exit 0 */
    CLI_ACTION_VERSION = 3, /**< print the version on stdout, exit 0 */
};

/** An unsigned option value that may be absent (absent = keep the library's default). */
struct cli_uint {
    bool set;
    unsigned long long value;
};

/** A boolean that may be absent (absent = keep the library's default). */
struct cli_bool {
    bool set;
    bool value;
};

/** A repeatable option: pointers into argv, in command-line order. After cli_config_merge()
 * the first n_file items come from the --config file (their strings are owned by it). */
struct cli_list {
    const char **items; /**< owned array (not the strings); NULL while empty */
    size_t len;
    size_t cap;
    size_t n_file; /**< leading items that came from --config */
};

/** The inject= key of --route; UNSET keeps the library's default (header). */
enum cli_inject {
    CLI_INJECT_UNSET = 0,
    CLI_INJECT_HEADER = 1,      /**< inject=header */
    CLI_INJECT_URL_PATH = 2,    /**< inject=url_path */
    CLI_INJECT_QUERY_PARAM = 3, /**< inject=query_param */
    CLI_INJECT_BASIC_AUTH = 4,  /**< inject=basic_auth */
};

/**
 * One --route PREFIX=UPSTREAM[,KEY=VALUE...]. The strings point into buf, an owned copy of the
 * argument split in place; NULL = key not given (the library's default applies). A route from
 * the --config file has no buf: its strings are owned by the loaded file (config_file.h).
 */
struct cli_route {
    char *buf;                    /**< owned; freed by cli_args_free(); NULL for a file route */
    const char *prefix;           /**< before the first '='; never empty */
    const char *upstream;         /**< up to the first ','; never empty */
    const char *credential;       /**< credential=KEY */
    const char *inject_name;      /**< inject=..., as written */
    enum cli_inject inject;       /**< inject= as an enum */
    const char *header;           /**< header=H */
    const char *format;           /**< format=F (may hold spaces and "{}") */
    const char *path_pattern;     /**< path-pattern=P */
    const char *path_replacement; /**< path-replacement=R */
    const char *query_param;      /**< query-param=Q */
    const char *env_var;          /**< env-var=V */
    const char *tls_ca;           /**< tls-ca=FILE */
    const char *client_cert;      /**< client-cert=FILE */
    const char *client_key;       /**< client-key=FILE */
    struct nonoproxy_endpoint_rule *rules; /**< rule=METHOD:PATH, repeatable, in order; owned
                                                array (for a file route: owned by the loaded
                                                file), strings in buf or in the file */
    size_t n_rules;
    size_t cap_rules;
    struct cli_uint rpm;          /**< rpm=N: requests per minute; unset = no rate limit */
    struct cli_uint burst;        /**< burst=N; unset = the library's default (5) */
    struct cli_uint max_delay_ms; /**< max-delay=MS; unset = 0 (429 at once) */
};

/** The --route options, in command-line order; after cli_config_merge() the first n_file
 * items are the --config file's routes, in file order. */
struct cli_routes {
    struct cli_route *items; /**< owned array; NULL while empty */
    size_t len;
    size_t cap;
    size_t n_file; /**< leading items that came from --config */
};

/**
 * The parsed command line. Strings point into argv and live as long as argv, except those of
 * routes (owned copies). Timeouts are already converted to milliseconds. cli_config_merge()
 * adds the values of the --config file (config_file.h); the fields marked "file only" have no
 * command-line option and are set only that way.
 */
struct cli_args {
    char *config;                       /**< -c/--config FILE, at most once; NULL = none */
    struct cli_list allow;              /**< --allow HOST, repeatable */
    struct cli_routes routes;           /**< --route SPEC, repeatable */
    const char *ca_file;                /**< --ca-file FILE; NULL = none */
    bool allow_missing_credentials;     /**< --allow-missing-credentials */
    const char *bind_addr;              /**< --bind ADDR; NULL = library default */
    struct cli_uint port;               /**< --port N, 0..65535 */
    struct cli_uint max_connections;    /**< --max-connections N */
    const char *audit_log;              /**< --audit-log FILE; "-" = stderr; NULL = none */
    const char *env_file;               /**< --env-file FILE (only with --serve); NULL */
    struct cli_uint header_timeout_ms;  /**< --header-timeout SECS */
    struct cli_uint idle_timeout_ms;    /**< --idle-timeout SECS */
    struct cli_uint connect_timeout_ms; /**< --connect-timeout SECS */
    struct cli_uint ask_timeout_ms;     /**< --ask-timeout SECS (ask_timeout) */
    char *external_proxy;               /**< --external-proxy ADDR, at most once; NULL = none.
                                             Points into argv, writable: once the address is
                                             copied, cli_blank_userinfo() hides its password
                                             from /proc/<pid>/cmdline */
    struct cli_list bypass;             /**< --bypass HOST, repeatable */
    struct cli_list deny;               /**< --deny HOST, repeatable (denied_hosts) */
    char *file_external_proxy;          /**< file only: external_proxy.address (may hold a
                                             password; owned by the loaded file, writable so
                                             that cli_blank_userinfo() can wipe it); used when
                                             neither --external-proxy nor
                                             NONOPROXY_EXTERNAL_PROXY is given */
    struct cli_uint audit_capacity;     /**< file only: audit_capacity */
    struct cli_bool require_auth;       /**< file only: require_auth */
    struct cli_bool strict;             /**< --strict (strict_allowlist) */
    bool ask;                           /**< --ask: decide unknown hosts on /dev/tty */
    bool serve;                         /**< --serve: no COMMAND, run until SIGINT/SIGTERM */
    enum cli_sandbox_mode sandbox;      /**< --sandbox auto|on|off; default auto */
    bool quiet;                         /**< -q: no summary, no default warning lines */
    unsigned verbose;                   /**< -v count: 1 = INFO, 2+ = DEBUG */
    enum cli_action action;
    char **command; /**< COMMAND [ARG...], NULL-terminated (argv's end); NULL with --serve */
    int command_argc;
};

/**
 * Parse argv (getopt_long, stops at the first non-option or after "--") into *out. COMMAND is
 * required, except with --serve, which refuses one (and --sandbox on); --env-file needs --serve.
 * On CLI_ACTION_ERROR, err receives one line without the program name or a newline, e.g.
 * "--port: invalid value '65536' (expected an integer from 0 to 65535)".
 * Always release *out with cli_args_free(), whatever the result.
 * Uses getopt's globals: not thread-safe.
 */
enum cli_action cli_args_parse(struct cli_args *out, int argc, char **argv, char *err,
                               size_t err_len);

/** Release what cli_args_parse() allocated and reset *a. NULL-safe. */
void cli_args_free(struct cli_args *a);

/** Write the full usage text (synopsis and one line per option) to out. */
void cli_args_usage(FILE *out);

/** Write the two-line hint printed after a command-line error. */
void cli_args_usage_hint(FILE *out);

/**
 * Overwrite with '*' the userinfo of an external proxy address held in value, that is every
 * byte before its last '@' ("user:pw@host:port" becomes "*******@host:port"); the length and
 * the "@host:port" part stay, so the process's command line keeps its shape. An address
 * without '@' is left alone.
 * \return the number of bytes blanked.
 */
size_t cli_blank_userinfo(char *value);

/** Return the "host:port" part of an external proxy address, pointing into addr: what follows
 * its last '@', or all of it. Safe to print: never the userinfo. */
const char *cli_proxy_hostport(const char *addr);

/** Copy s into dst (cap > 0) with control and non-ASCII bytes replaced by '?', truncated with
 * "..." when longer than the buffer: safe to print on a terminal. */
void cli_printable(char *dst, size_t cap, const char *s);

#endif /* NONOPROXY_CLI_ARGS_H */
