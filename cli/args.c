/* nonoproxy-run: command-line parsing, driven by one option table (SPEC §11). */
#include "args.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CLI_PROG           "nonoproxy-run"
#define CLI_SYNOPSIS       "usage: " CLI_PROG " [OPTIONS] [--] COMMAND [ARG...]"
/* The second form of the synopsis, in the full usage only. */
#define CLI_SYNOPSIS_SERVE "       " CLI_PROG " [OPTIONS] --serve [--env-file FILE]"
#define ARRAY_LEN(a)       (sizeof(a) / sizeof((a)[0]))
/* getopt value of an option without a short name: LONG_ONLY_BASE + its row, beyond any char. */
#define LONG_ONLY_BASE     256
/* How much of an offending value an error message shows. */
#define SHOWN_LEN          80
/* Width of the left column of the usage; a longer left part gets a line of its own. */
#define USAGE_LEFT         26
/* The syntax of a --route value, as error messages repeat it. */
#define ROUTE_SYNTAX       "PREFIX=UPSTREAM[,KEY=VALUE...]"
/* -v beyond this count changes nothing; the cap keeps the counter from wrapping. */
#define MAX_VERBOSE        8u

struct cli_opt;

/* Applies one option (and its value, NULL for flags) to *a; false with err set on a bad value.
 * value is getopt's optarg: it points into argv and is writable (see opt_once). */
typedef bool cli_opt_fn(struct cli_args *a, const struct cli_opt *o, char *value, char *err,
                        size_t err_len);

/* One row of the option table: getopt_long, the handler and the usage text all come from it. */
struct cli_opt {
    const char *name;       /* long name, without "--" */
    int short_name;         /* 0 = long only */
    const char *arg;        /* name of the value in the usage; NULL = takes no value */
    cli_opt_fn *apply;      /* stores the value */
    size_t field;           /* offsetof the target field in struct cli_args */
    unsigned long long max; /* numeric options: largest accepted value */
    const char *help;
};

static cli_opt_fn opt_list;
static cli_opt_fn opt_nonempty_list;
static cli_opt_fn opt_once;
static cli_opt_fn opt_route;
static cli_opt_fn opt_string;
static cli_opt_fn opt_uint;
static cli_opt_fn opt_seconds;
static cli_opt_fn opt_flag;
static cli_opt_fn opt_true;
static cli_opt_fn opt_count;
static cli_opt_fn opt_help;
static cli_opt_fn opt_version;
static cli_opt_fn opt_sandbox;

/* Later options (--config, ...) are new rows, with a new handler where no existing one fits.
 * Help texts stay within 51 columns: the usage fits in 80. */
static const struct cli_opt OPTS[] = {
    {"config", 'c', "FILE", opt_once, offsetof(struct cli_args, config), 0,
     "read settings from JSON FILE (see below)"},
    {"allow", 0, "HOST", opt_list, offsetof(struct cli_args, allow), 0,
     "allow name, *.domain, IP[:port] or CIDR; repeatable"},
    {"deny", 0, "HOST", opt_list, offsetof(struct cli_args, deny), 0,
     "deny HOST (as --allow; wins over it); repeatable"},
    {"strict", 0, NULL, opt_true, offsetof(struct cli_args, strict), 0,
     "no --allow then means deny all, not allow all"},
    {"ask", 0, NULL, opt_flag, offsetof(struct cli_args, ask), 0,
     "ask on the terminal about hosts no list decides"},
    {"ask-timeout", 0, "SECS", opt_seconds, offsetof(struct cli_args, ask_timeout_ms),
     CLI_MAX_TIMEOUT_SECS, "--ask: deny after SECS (default 30; 0: wait)"},
    {"route", 0, ROUTE_SYNTAX, opt_route, offsetof(struct cli_args, routes), 0,
     "proxy /PREFIX/ to UPSTREAM; repeatable (keys below)"},
    {"ca-file", 0, "FILE", opt_string, offsetof(struct cli_args, ca_file), 0,
     "extra PEM trust roots for upstream TLS"},
    {"allow-missing-credentials", 0, NULL, opt_flag,
     offsetof(struct cli_args, allow_missing_credentials), 0,
     "start even if a route's credential is missing"},
    {"external-proxy", 0, "ADDR", opt_once, offsetof(struct cli_args, external_proxy), 0,
     "send traffic via proxy [USER:PASS@]HOST:PORT"},
    {"bypass", 0, "HOST", opt_nonempty_list, offsetof(struct cli_args, bypass), 0,
     "reach HOST (or *.domain) directly; repeatable"},
    {"bind", 0, "ADDR", opt_string, offsetof(struct cli_args, bind_addr), 0,
     "listen on IP address ADDR (default 127.0.0.1)"},
    {"port", 0, "N", opt_uint, offsetof(struct cli_args, port), UINT16_MAX,
     "listen on port N (default 0: any free port)"},
    {"max-connections", 0, "N", opt_uint, offsetof(struct cli_args, max_connections), UINT_MAX,
     "at most N clients at once (default 256; 0: any)"},
    {"audit-log", 0, "FILE", opt_string, offsetof(struct cli_args, audit_log), 0,
     "append audit events as JSON lines ('-': stderr)"},
    {"header-timeout", 0, "SECS", opt_seconds, offsetof(struct cli_args, header_timeout_ms),
     CLI_MAX_TIMEOUT_SECS, "limit for a request head (default 30; 0: none)"},
    {"idle-timeout", 0, "SECS", opt_seconds, offsetof(struct cli_args, idle_timeout_ms),
     CLI_MAX_TIMEOUT_SECS, "close tunnels idle for SECS (default 600; 0: never)"},
    {"connect-timeout", 0, "SECS", opt_seconds, offsetof(struct cli_args, connect_timeout_ms),
     CLI_MAX_TIMEOUT_SECS, "limit for an upstream connect (default 10; 0: none)"},
    {"serve", 0, NULL, opt_flag, offsetof(struct cli_args, serve), 0,
     "run until SIGINT/SIGTERM; print the environment"},
    {"env-file", 0, "FILE", opt_string, offsetof(struct cli_args, env_file), 0,
     "--serve: write it to new FILE (0600), not stdout"},
    {"sandbox", 0, "MODE", opt_sandbox, offsetof(struct cli_args, sandbox), 0,
     "auto (default), on or off: see below"},
    {"quiet", 'q', NULL, opt_flag, offsetof(struct cli_args, quiet), 0,
     "print no summary and no warnings"},
    {"verbose", 'v', NULL, opt_count, offsetof(struct cli_args, verbose), 0,
     "log proxy activity to stderr (-vv: debug)"},
    {"help", 0, NULL, opt_help, 0, 0, "print this help and exit"},
    {"version", 0, NULL, opt_version, 0, 0, "print the version and exit"},
};

/* What the value of a route KEY is, and where it goes. */
enum route_kind {
    RK_STRING, /* a const char * field, at most once */
    RK_UINT,   /* a struct cli_uint field: integer 0..max, at most once */
    RK_RULE,   /* rule=METHOD:PATH, appended to the route's rules (repeatable) */
};

/* One KEY of --route PREFIX=UPSTREAM[,KEY=VALUE...]: parser and usage both come from it. */
struct route_key {
    const char *name;  /* as written on the command line */
    const char *value; /* name of the value in the usage */
    size_t field;      /* offsetof the field in struct cli_route */
    enum route_kind kind;
    unsigned long long max; /* RK_UINT: largest accepted value */
    const char *help;
    unsigned long long min; /* RK_UINT: smallest accepted value (0 when not given) */
};

static const struct route_key ROUTE_KEYS[] = {
    {"credential", "KEY", offsetof(struct cli_route, credential), RK_STRING, 0,
     "env://VAR, file:///PATH, keyring://SVC/ACCT or NAME", 0},
    {"inject", "MODE", offsetof(struct cli_route, inject_name), RK_STRING, 0,
     "header (default), url_path, query_param, basic_auth", 0},
    {"header", "H", offsetof(struct cli_route, header), RK_STRING, 0,
     "header to inject (default Authorization)", 0},
    {"format", "F", offsetof(struct cli_route, format), RK_STRING, 0,
     "{} = secret (default 'Bearer {}' for Authorization)", 0},
    {"path-pattern", "P", offsetof(struct cli_route, path_pattern), RK_STRING, 0,
     "url_path: incoming pattern with one {} (/bot{}/)", 0},
    {"path-replacement", "R", offsetof(struct cli_route, path_replacement), RK_STRING, 0,
     "url_path: outgoing pattern (default: path-pattern)", 0},
    {"query-param", "Q", offsetof(struct cli_route, query_param), RK_STRING, 0,
     "query_param: parameter name", 0},
    {"env-var", "V", offsetof(struct cli_route, env_var), RK_STRING, 0,
     "variable that gives COMMAND the phantom token", 0},
    {"tls-ca", "FILE", offsetof(struct cli_route, tls_ca), RK_STRING, 0,
     "extra PEM trust roots for UPSTREAM", 0},
    {"rule", "METHOD:PATH", offsetof(struct cli_route, rules), RK_RULE, 0,
     "allow only matching requests; repeatable", 0},
    {"rpm", "N", offsetof(struct cli_route, rpm), RK_UINT, CLI_MAX_RATE,
     "rate limit: N requests per minute, then 429", 0},
    /* min 1: the library reads 0 as "the default, 5", which is not what burst=0 says */
    {"burst", "N", offsetof(struct cli_route, burst), RK_UINT, CLI_MAX_RATE,
     "rate limit: bucket size (default 5)", 1},
    {"max-delay", "MS", offsetof(struct cli_route, max_delay_ms), RK_UINT, CLI_MAX_DELAY_MS,
     "rate limit: wait up to MS for a token (default 0)", 0},
    {"client-cert", "FILE", offsetof(struct cli_route, client_cert), RK_STRING, 0,
     "PEM client certificate for UPSTREAM (mutual TLS)", 0},
    {"client-key", "FILE", offsetof(struct cli_route, client_key), RK_STRING, 0,
     "PEM private key of client-cert", 0},
};

/* The values of --sandbox, in the order of enum cli_sandbox_mode (row i is value i). */
static const char *const SANDBOX_NAMES[] = {"auto", "on", "off"};
_Static_assert(CLI_SANDBOX_AUTO == 0 && CLI_SANDBOX_ON == 1 && CLI_SANDBOX_OFF == 2,
               "SANDBOX_NAMES follows enum cli_sandbox_mode");

/* The values of inject=, in the order of enum cli_inject (row i is value i + 1). */
static const char *const INJECT_NAMES[] = {"header", "url_path", "query_param", "basic_auth"};

/* Returns the address of o's target field inside a. */
static void *
field_of(struct cli_args *a, const struct cli_opt *o)
{
    return (char *)a + o->field;
}

/* Returns the getopt value of row i: its short name, or LONG_ONLY_BASE + i. */
static int
opt_val(size_t i)
{
    if (OPTS[i].short_name != 0) {
        return OPTS[i].short_name;
    }
    return LONG_ONLY_BASE + (int)i;
}

/* Returns the row whose getopt value is val, or NULL. */
static const struct cli_opt *
find_opt(int val)
{
    size_t i;

    for (i = 0; i < ARRAY_LEN(OPTS); i++) {
        if (opt_val(i) == val) {
            return &OPTS[i];
        }
    }
    return NULL;
}

size_t
cli_blank_userinfo(char *value)
{
    char *at = strrchr(value, '@');
    size_t n = 0;

    if (at == NULL) {
        return 0;
    }
    n = (size_t)(at - value);
    memset(value, '*', n);
    return n;
}

const char *
cli_proxy_hostport(const char *addr)
{
    const char *at = strrchr(addr, '@');

    return at != NULL ? at + 1 : addr;
}

void
cli_printable(char *dst, size_t cap, const char *s)
{
    size_t i = 0;
    size_t len = strlen(s);

    if (cap == 0) {
        return;
    }
    for (i = 0; i < len && i < cap - 1; i++) {
        unsigned char ch = (unsigned char)s[i];

        dst[i] = '?';
        if (ch >= 0x20 && ch < 0x7f) {
            dst[i] = s[i];
        }
    }
    dst[i] = '\0';
    if (i < len && cap > 4) {
        memcpy(dst + cap - 4, "...", 4);
    }
}

/* Parses s as a decimal integer in 0..max: digits only (no sign, space, suffix), no overflow. */
static bool
parse_decimal(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end = NULL;
    unsigned long long v = 0;

    if (s[0] < '0' || s[0] > '9') {
        return false; /* empty, sign or leading space, all of which strtoull would take */
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* Writes "--NAME: invalid value 'V' (expected an integer from 0 to MAX)" to err. */
static void
bad_number(const struct cli_opt *o, const char *value, char *err, size_t err_len)
{
    char shown[SHOWN_LEN];

    cli_printable(shown, sizeof(shown), value);
    (void)snprintf(err, err_len, "--%s: invalid value '%s' (expected an integer from 0 to %llu)",
                   o->name, shown, o->max);
}

/* Appends value to the cli_list field of o (repeatable options). */
static bool
opt_list(struct cli_args *a, const struct cli_opt *o, char *value, char *err, size_t err_len)
{
    struct cli_list *l = field_of(a, o);
    const char **grown = NULL;
    size_t cap = 0;

    if (l->len == l->cap) {
        if (l->cap > SIZE_MAX / 2 / sizeof(*l->items)) {
            (void)snprintf(err, err_len, "--%s: too many values", o->name);
            return false;
        }
        cap = l->cap == 0 ? 8 : l->cap * 2;
        grown = realloc(l->items, cap * sizeof(*l->items));
        if (grown == NULL) {
            (void)snprintf(err, err_len, "out of memory");
            return false;
        }
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->len] = value;
    l->len++;
    return true;
}

/* Appends a non-empty value to the cli_list field of o. */
static bool
opt_nonempty_list(struct cli_args *a, const struct cli_opt *o, char *value, char *err,
                  size_t err_len)
{
    if (value[0] == '\0') {
        (void)snprintf(err, err_len, "--%s: empty value", o->name);
        return false;
    }
    return opt_list(a, o, value, err, err_len);
}

/* Stores a non-empty value that may be given only once, keeping it writable (a char * into
 * argv): a value that can hold a password is blanked there after use, and a second occurrence
 * would leave the first one unblanked (--config uses it too: one file, never two half-merged).
 * The value is never quoted in an error. */
static bool
opt_once(struct cli_args *a, const struct cli_opt *o, char *value, char *err, size_t err_len)
{
    char **dst = field_of(a, o);

    if (value[0] == '\0') {
        (void)snprintf(err, err_len, "--%s: empty value", o->name);
        return false;
    }
    if (*dst != NULL) {
        (void)snprintf(err, err_len, "--%s: given twice", o->name);
        return false;
    }
    *dst = value;
    return true;
}

/* Returns the address of key k's field inside r. */
static const char **
route_field(struct cli_route *r, const struct route_key *k)
{
    return (const char **)(void *)((char *)r + k->field);
}

/* Returns the ROUTE_KEYS row named name, or NULL. */
static const struct route_key *
find_route_key(const char *name)
{
    size_t i;

    for (i = 0; i < ARRAY_LEN(ROUTE_KEYS); i++) {
        if (strcmp(ROUTE_KEYS[i].name, name) == 0) {
            return &ROUTE_KEYS[i];
        }
    }
    return NULL;
}

/* Writes "NAME1, NAME2 or NAME3" to dst: n string pointers, the first at names, each stride
 * bytes after the previous one (a plain array, or one column of a table of structs). */
static void
join_names(char *dst, size_t cap, const char *const *names, size_t stride, size_t n)
{
    size_t used = 0;
    size_t i = 0;

    dst[0] = '\0';
    for (i = 0; i < n && used < cap; i++) {
        const char *name = *(const char *const *)(const void *)((const char *)names + i * stride);
        const char *sep = i + 1 == n ? " or " : ", ";
        int w = snprintf(dst + used, cap - used, "%s%s", i == 0 ? "" : sep, name);

        if (w < 0) {
            return;
        }
        used += (size_t)w;
    }
}

/* Sets r->inject from value (the text of inject=); false with err set when it names no mode. */
static bool
route_inject(struct cli_route *r, const char *value, const char *shown_prefix, char *err,
             size_t err_len)
{
    char shown[SHOWN_LEN];
    char expected[128];
    size_t i = 0;

    for (i = 0; i < ARRAY_LEN(INJECT_NAMES); i++) {
        if (strcmp(INJECT_NAMES[i], value) == 0) {
            r->inject = (enum cli_inject)(i + 1);
            return true;
        }
    }
    cli_printable(shown, sizeof(shown), value);
    join_names(expected, sizeof(expected), INJECT_NAMES, sizeof(INJECT_NAMES[0]),
               ARRAY_LEN(INJECT_NAMES));
    (void)snprintf(err, err_len, "--route '%s': invalid inject '%s' (expected %s)", shown_prefix,
                   shown, expected);
    return false;
}

/* Stores --sandbox auto|on|off (exact, lower case); any other value is an error. */
static bool
opt_sandbox(struct cli_args *a, const struct cli_opt *o, char *value, char *err, size_t err_len)
{
    enum cli_sandbox_mode *dst = field_of(a, o);
    char shown[SHOWN_LEN];
    char expected[64];
    size_t i = 0;

    for (i = 0; i < ARRAY_LEN(SANDBOX_NAMES); i++) {
        if (strcmp(SANDBOX_NAMES[i], value) == 0) {
            *dst = (enum cli_sandbox_mode)i;
            return true;
        }
    }
    cli_printable(shown, sizeof(shown), value);
    join_names(expected, sizeof(expected), SANDBOX_NAMES, sizeof(SANDBOX_NAMES[0]),
               ARRAY_LEN(SANDBOX_NAMES));
    (void)snprintf(err, err_len, "--%s: invalid value '%s' (expected %s)", o->name, shown,
                   expected);
    return false;
}

/* Returns true when key k of r was already given (a rule may be given any number of times). */
static bool
route_key_given(struct cli_route *r, const struct route_key *k)
{
    switch (k->kind) {
    case RK_STRING:
        return *route_field(r, k) != NULL;
    case RK_UINT:
        return ((struct cli_uint *)(void *)((char *)r + k->field))->set;
    case RK_RULE:
        break;
    }
    return false;
}

/* Where an error about one route goes: the route's printable prefix and the error buffer. */
struct route_err {
    const char *shown_prefix;
    char *err;
    size_t err_len;
};

/* Appends rule=METHOD:PATH (value, split in place at its first ':') to r's rules. The method
 * and the path must not be empty; the library validates them further at start. */
static bool
route_rule(struct cli_route *r, char *value, const struct route_err *re)
{
    const char *shown_prefix = re->shown_prefix;
    char *err = re->err;
    size_t err_len = re->err_len;
    struct nonoproxy_endpoint_rule *grown = NULL;
    char *colon = strchr(value, ':');
    size_t cap = 0;

    if (colon == NULL || colon == value || colon[1] == '\0') {
        char shown[SHOWN_LEN];

        cli_printable(shown, sizeof(shown), value);
        (void)snprintf(err, err_len, "--route '%s': invalid rule '%s' (expected METHOD:PATH)",
                       shown_prefix, shown);
        return false;
    }
    if (r->n_rules == r->cap_rules) {
        if (r->cap_rules > SIZE_MAX / 2 / sizeof(*r->rules)) {
            (void)snprintf(err, err_len, "--route '%s': too many rules", shown_prefix);
            return false;
        }
        cap = r->cap_rules == 0 ? 4 : r->cap_rules * 2;
        grown = realloc(r->rules, cap * sizeof(*r->rules));
        if (grown == NULL) {
            (void)snprintf(err, err_len, "out of memory");
            return false;
        }
        r->rules = grown;
        r->cap_rules = cap;
    }
    *colon = '\0';
    r->rules[r->n_rules].method = value;
    r->rules[r->n_rules].path = colon + 1;
    r->n_rules++;
    return true;
}

/* Stores the value of key k (kind RK_UINT) into r: an integer in k->min..k->max. */
static bool
route_uint(struct cli_route *r, const struct route_key *k, const char *value,
           const struct route_err *re)
{
    struct cli_uint *dst = (struct cli_uint *)(void *)((char *)r + k->field);
    char shown[SHOWN_LEN];
    unsigned long long v = 0;

    if (!parse_decimal(value, k->max, &v) || v < k->min) {
        cli_printable(shown, sizeof(shown), value);
        (void)snprintf(re->err, re->err_len,
                       "--route '%s': invalid %s '%s' (expected an integer from %llu to %llu)",
                       re->shown_prefix, k->name, shown, k->min, k->max);
        return false;
    }
    dst->set = true;
    dst->value = v;
    return true;
}

/* Stores the value of key k into r according to its kind. */
static bool
route_store(struct cli_route *r, const struct route_key *k, char *value, const struct route_err *re)
{
    switch (k->kind) {
    case RK_RULE:
        return route_rule(r, value, re);
    case RK_UINT:
        return route_uint(r, k, value, re);
    case RK_STRING:
        break;
    }
    *route_field(r, k) = value;
    if (k->field == offsetof(struct cli_route, inject_name)) {
        return route_inject(r, value, re->shown_prefix, re->err, re->err_len);
    }
    return true;
}

/* Applies one KEY=VALUE item of a route (item is NUL-terminated and split in place). */
static bool
route_item(struct cli_route *r, char *item, const char *shown_prefix, char *err, size_t err_len)
{
    const struct route_err re = {shown_prefix, err, err_len};
    const struct route_key *k = NULL;
    char *eq = strchr(item, '=');
    char shown[SHOWN_LEN];

    cli_printable(shown, sizeof(shown), item);
    if (item[0] == '\0' || eq == item) {
        (void)snprintf(err, err_len, "--route '%s': empty KEY in KEY=VALUE", shown_prefix);
        return false;
    }
    if (eq == NULL) {
        (void)snprintf(err, err_len, "--route '%s': missing '=' after '%s'", shown_prefix, shown);
        return false;
    }
    *eq = '\0';
    cli_printable(shown, sizeof(shown), item);
    k = find_route_key(item);
    if (k == NULL) {
        char expected[256];

        join_names(expected, sizeof(expected), &ROUTE_KEYS[0].name, sizeof(ROUTE_KEYS[0]),
                   ARRAY_LEN(ROUTE_KEYS));
        (void)snprintf(err, err_len, "--route '%s': unknown key '%s' (expected %s)", shown_prefix,
                       shown, expected);
        return false;
    }
    if (route_key_given(r, k)) {
        (void)snprintf(err, err_len, "--route '%s': key '%s' given twice", shown_prefix, k->name);
        return false;
    }
    if (eq[1] == '\0') {
        (void)snprintf(err, err_len, "--route '%s': empty value for key '%s'", shown_prefix,
                       k->name);
        return false;
    }
    return route_store(r, k, eq + 1, &re);
}

/* Splits buf (an owned copy of a --route value) in place into r: PREFIX at the first '=',
 * UPSTREAM up to the first ',', then KEY=VALUE items separated by ','. */
static bool
parse_route(struct cli_route *r, char *buf, char *err, size_t err_len)
{
    char shown[SHOWN_LEN];
    char *eq = strchr(buf, '=');
    char *item = NULL;
    char *comma = NULL;

    cli_printable(shown, sizeof(shown), buf);
    if (eq == NULL) {
        (void)snprintf(err, err_len, "--route: missing '=' in '%s' (expected " ROUTE_SYNTAX ")",
                       shown);
        return false;
    }
    if (eq == buf) {
        (void)snprintf(err, err_len, "--route: empty PREFIX in '%s' (expected " ROUTE_SYNTAX ")",
                       shown);
        return false;
    }
    *eq = '\0';
    r->prefix = buf;
    cli_printable(shown, sizeof(shown), buf);
    item = eq + 1;
    comma = strchr(item, ',');
    if (comma != NULL) {
        *comma = '\0';
    }
    r->upstream = item;
    if (item[0] == '\0') {
        (void)snprintf(err, err_len, "--route '%s': empty UPSTREAM", shown);
        return false;
    }
    while (comma != NULL) {
        item = comma + 1;
        comma = strchr(item, ',');
        if (comma != NULL) {
            *comma = '\0';
        }
        if (!route_item(r, item, shown, err, err_len)) {
            return false;
        }
    }
    return true;
}

/* Makes room for one more route in l. */
static bool
grow_routes(struct cli_routes *l, char *err, size_t err_len)
{
    struct cli_route *grown = NULL;
    size_t cap = 0;

    if (l->len < l->cap) {
        return true;
    }
    if (l->cap > SIZE_MAX / 2 / sizeof(*l->items)) {
        (void)snprintf(err, err_len, "--route: too many values");
        return false;
    }
    cap = l->cap == 0 ? 4 : l->cap * 2;
    grown = realloc(l->items, cap * sizeof(*l->items));
    if (grown == NULL) {
        (void)snprintf(err, err_len, "out of memory");
        return false;
    }
    l->items = grown;
    l->cap = cap;
    return true;
}

/* Parses a --route value into an owned copy and appends it to the routes (command-line order). */
static bool
opt_route(struct cli_args *a, const struct cli_opt *o, char *value, char *err, size_t err_len)
{
    struct cli_routes *l = field_of(a, o);
    struct cli_route r;
    size_t len = strlen(value);
    bool ok = false;

    memset(&r, 0, sizeof(r));
    if (!grow_routes(l, err, err_len)) {
        goto out;
    }
    r.buf = malloc(len + 1);
    if (r.buf == NULL) {
        (void)snprintf(err, err_len, "out of memory");
        goto out;
    }
    memcpy(r.buf, value, len + 1);
    if (!parse_route(&r, r.buf, err, err_len)) {
        goto out;
    }
    l->items[l->len] = r;
    l->len++;
    r.buf = NULL; /* ownership moved to the list, with r.rules */
    r.rules = NULL;
    ok = true;
out:
    free(r.buf);
    free(r.rules);
    return ok;
}

/* Stores a non-empty string value; the last occurrence wins. */
static bool
opt_string(struct cli_args *a, const struct cli_opt *o, char *value, char *err, size_t err_len)
{
    const char **dst = field_of(a, o);

    if (value[0] == '\0') {
        (void)snprintf(err, err_len, "--%s: empty value", o->name);
        return false;
    }
    *dst = value;
    return true;
}

/* Stores an integer in 0..o->max. */
static bool
opt_uint(struct cli_args *a, const struct cli_opt *o, char *value, char *err, size_t err_len)
{
    struct cli_uint *dst = field_of(a, o);
    unsigned long long v = 0;

    if (!parse_decimal(value, o->max, &v)) {
        bad_number(o, value, err, err_len);
        return false;
    }
    dst->set = true;
    dst->value = v;
    return true;
}

/* Stores a number of seconds in 0..o->max, converted to milliseconds. */
static bool
opt_seconds(struct cli_args *a, const struct cli_opt *o, char *value, char *err, size_t err_len)
{
    struct cli_uint *dst = field_of(a, o);
    unsigned long long v = 0;

    if (!parse_decimal(value, o->max, &v)) {
        bad_number(o, value, err, err_len);
        return false;
    }
    dst->set = true;
    dst->value = v * 1000u;
    return true;
}

/* Sets a bool flag. */
static bool
opt_flag(struct cli_args *a, const struct cli_opt *o, char *value, char *err, size_t err_len)
{
    bool *dst = field_of(a, o);

    (void)value;
    (void)err;
    (void)err_len;
    *dst = true;
    return true;
}

/* Sets a struct cli_bool to true (a flag whose absence leaves the --config file's value). */
static bool
opt_true(struct cli_args *a, const struct cli_opt *o, char *value, char *err, size_t err_len)
{
    struct cli_bool *dst = field_of(a, o);

    (void)value;
    (void)err;
    (void)err_len;
    dst->set = true;
    dst->value = true;
    return true;
}

/* Counts a repeatable flag (-v -v), saturating at MAX_VERBOSE. */
static bool
opt_count(struct cli_args *a, const struct cli_opt *o, char *value, char *err, size_t err_len)
{
    unsigned *dst = field_of(a, o);

    (void)value;
    (void)err;
    (void)err_len;
    if (*dst < MAX_VERBOSE) {
        (*dst)++;
    }
    return true;
}

/* Ends parsing: print the help. */
static bool
opt_help(struct cli_args *a, const struct cli_opt *o, char *value, char *err, size_t err_len)
{
    (void)o;
    (void)value;
    (void)err;
    (void)err_len;
    a->action = CLI_ACTION_HELP;
    return true;
}

/* Ends parsing: print the version. */
static bool
opt_version(struct cli_args *a, const struct cli_opt *o, char *value, char *err, size_t err_len)
{
    (void)o;
    (void)value;
    (void)err;
    (void)err_len;
    a->action = CLI_ACTION_VERSION;
    return true;
}

/* Fills getopt_long's tables from OPTS: longopts (ARRAY_LEN(OPTS) + 1 rows) and shortopts,
 * which starts with "+:" (stop at the first non-option; report a missing value as ':'). */
static void
build_getopt_tables(struct option *longopts, char *shortopts, size_t shortopts_cap)
{
    size_t i = 0;
    size_t n = 0;

    shortopts[n++] = '+';
    shortopts[n++] = ':';
    for (i = 0; i < ARRAY_LEN(OPTS); i++) {
        longopts[i].name = OPTS[i].name;
        longopts[i].has_arg = OPTS[i].arg != NULL ? required_argument : no_argument;
        longopts[i].flag = NULL;
        longopts[i].val = opt_val(i);
        if (OPTS[i].short_name != 0 && n + 3 <= shortopts_cap) {
            shortopts[n++] = (char)OPTS[i].short_name;
            if (OPTS[i].arg != NULL) {
                shortopts[n++] = ':';
            }
        }
    }
    memset(&longopts[i], 0, sizeof(longopts[i]));
    shortopts[n] = '\0';
}

/* Writes the error for getopt's result c ('?' or ':') to err; optind and optopt are getopt's. */
static void
getopt_error(int c, int argc, char **argv, char *err, size_t err_len)
{
    const struct cli_opt *o = find_opt(optopt);
    char shown[SHOWN_LEN];
    char *eq = NULL;

    if (c == ':' && o != NULL) {
        (void)snprintf(err, err_len, "--%s: missing value %s", o->name, o->arg);
    } else if (c == '?' && o != NULL) {
        (void)snprintf(err, err_len, "--%s: takes no value", o->name);
    } else if (optopt > 0 && optopt < LONG_ONLY_BASE) {
        (void)snprintf(err, err_len, "unknown option '-%c'",
                       optopt >= 0x20 && optopt < 0x7f ? optopt : '?');
    } else if (optind > 0 && optind <= argc && argv[optind - 1] != NULL) {
        cli_printable(shown, sizeof(shown), argv[optind - 1]);
        /* Never echo a value: a mistyped --external-proxy=USER:PASS@... would show the password */
        eq = strchr(shown, '=');
        if (eq != NULL) {
            *eq = '\0';
        }
        (void)snprintf(err, err_len, "unknown or ambiguous option '%s'", shown);
    } else {
        (void)snprintf(err, err_len, "bad option");
    }
}

/* Checks what follows the options (n words) against --serve: a COMMAND is required without it
 * and refused with it; --env-file and --sandbox on make sense only one way. */
static bool
check_command(const struct cli_args *a, int n, char *err, size_t err_len)
{
    if (!a->serve) {
        if (a->env_file != NULL) {
            (void)snprintf(err, err_len, "--env-file: only with --serve");
            return false;
        }
        if (n <= 0) {
            (void)snprintf(err, err_len, "missing COMMAND");
            return false;
        }
        return true;
    }
    if (n > 0) {
        (void)snprintf(err, err_len, "--serve: takes no COMMAND");
        return false;
    }
    if (a->sandbox == CLI_SANDBOX_ON) {
        (void)snprintf(err, err_len, "--sandbox on: not with --serve (there is no COMMAND)");
        return false;
    }
    return true;
}

enum cli_action
cli_args_parse(struct cli_args *out, int argc, char **argv, char *err, size_t err_len)
{
    struct option longopts[ARRAY_LEN(OPTS) + 1];
    char shortopts[3 + 2 * ARRAY_LEN(OPTS)];
    enum cli_action act = CLI_ACTION_ERROR;
    const struct cli_opt *o = NULL;
    int c = 0;

    memset(out, 0, sizeof(*out));
    if (err_len > 0) {
        err[0] = '\0';
    }
    build_getopt_tables(longopts, shortopts, sizeof(shortopts));
    optind = 0; /* glibc: full re-initialisation, so that parsing can run more than once */
    opterr = 0; /* errors are reported through err */
    out->action = CLI_ACTION_RUN;
    for (;;) {
        /* getopt keeps state in globals; the CLI parses once, on the main thread. */
        c = getopt_long(argc, argv, shortopts, longopts, NULL); // NOLINT(concurrency-mt-unsafe)
        if (c == -1) {
            break;
        }
        o = find_opt(c);
        if (c == '?' || c == ':' || o == NULL) {
            getopt_error(c, argc, argv, err, err_len);
            goto out;
        }
        if (!o->apply(out, o, optarg, err, err_len)) {
            goto out;
        }
        if (out->action != CLI_ACTION_RUN) {
            act = out->action; /* --help and --version end parsing */
            goto out;
        }
    }
    if (!check_command(out, argc - optind, err, err_len)) {
        goto out;
    }
    if (!out->serve) {
        out->command = argv + optind;
        out->command_argc = argc - optind;
    }
    act = CLI_ACTION_RUN;
out:
    out->action = act;
    return act;
}

void
cli_args_free(struct cli_args *a)
{
    size_t i = 0;

    if (a == NULL) {
        return;
    }
    free(a->allow.items);
    free(a->bypass.items);
    free(a->deny.items);
    for (i = a->routes.n_file; i < a->routes.len; i++) {
        free(a->routes.items[i].buf); /* the file's routes are the loaded file's */
        free(a->routes.items[i].rules);
    }
    free(a->routes.items);
    memset(a, 0, sizeof(*a));
}

/* Writes one usage row: left in a USAGE_LEFT column, or on a line of its own when longer. */
static void
usage_row(FILE *out, const char *left, const char *help)
{
    if (strlen(left) > USAGE_LEFT) {
        (void)fprintf(out, "  %s\n  %-*s %s\n", left, USAGE_LEFT, "", help);
    } else {
        (void)fprintf(out, "  %-*s %s\n", USAGE_LEFT, left, help);
    }
}

static void usage_notes(FILE *out);

void
cli_args_usage(FILE *out)
{
    char left[64];
    size_t i = 0;

    (void)fprintf(out, "%s\n%s\n\n", CLI_SYNOPSIS, CLI_SYNOPSIS_SERVE);
    (void)fprintf(out, "Run COMMAND with its HTTP(S) traffic sent through a filtering proxy on "
                       "loopback.\n\nOptions:\n");
    for (i = 0; i < ARRAY_LEN(OPTS); i++) {
        const struct cli_opt *o = &OPTS[i];
        char shortpart[8] = "    ";

        if (o->short_name != 0) {
            (void)snprintf(shortpart, sizeof(shortpart), "-%c, ", o->short_name);
        }
        (void)snprintf(left, sizeof(left), "%s--%s%s%s", shortpart, o->name,
                       o->arg != NULL ? " " : "", o->arg != NULL ? o->arg : "");
        usage_row(out, left, o->help);
    }
    (void)fprintf(out, "\nRoute keys (--route " ROUTE_SYNTAX "; UPSTREAM is\n"
                       "https://host[:port][/base], or http:// to a loopback host, and cannot\n"
                       "contain ','; each KEY at most once, but rule= any number of times):\n");
    for (i = 0; i < ARRAY_LEN(ROUTE_KEYS); i++) {
        (void)snprintf(left, sizeof(left), "%s=%s", ROUTE_KEYS[i].name, ROUTE_KEYS[i].value);
        usage_row(out, left, ROUTE_KEYS[i].help);
    }
    (void)fprintf(out, "\n--config FILE holds one JSON object with any of the keys allowed_hosts\n"
                       "and denied_hosts (arrays), strict_allowlist, routes (array of objects\n"
                       "with the keys prefix, upstream, credential_key, inject_mode,\n"
                       "inject_header, credential_format, path_pattern, path_replacement,\n"
                       "query_param_name, env_var, tls_ca, tls_client_cert, tls_client_key,\n"
                       "endpoint_rules (array of {method, path}), rate_limit (object:\n"
                       "requests_per_minute, burst, max_delay_ms)), external_proxy (object:\n"
                       "address, bypass_hosts), bind_addr, bind_port, max_connections, ca_file,\n"
                       "audit_log, audit_capacity, require_auth, header_timeout, idle_timeout,\n"
                       "connect_timeout, ask_timeout (seconds); null = not set. Options add to\n"
                       "its lists and override its other values. Example:\n"
                       "docs/examples/nonoproxy.json.\n");
    usage_notes(out);
}

/* Writes the paragraphs of the usage after the config file's: hosts, rules, --serve, the
 * external proxy, the sandbox, the environment and the exit status. */
static void
usage_notes(FILE *out)
{
    (void)fprintf(out, "\nHosts: the built-in deny list, then --deny, then --allow decide; a host\n"
                       "none of them names is allowed when there is no --allow (denied with\n"
                       "--strict), or with --ask the terminal is asked: y allows once, a for the\n"
                       "session, anything else (or no answer within --ask-timeout) denies. A\n"
                       "range (10.0.0.0/8) in --allow must hold every address of the host, in\n"
                       "--deny any one of them.\n");
    (void)fprintf(out, "\nrule=METHOD:PATH: once a route has rules, a request whose method (or *)\n"
                       "and path after the prefix (a glob: * within a segment, ** any segments)\n"
                       "match none gets 403. rpm=N: at most N requests a minute after a burst\n"
                       "of burst=N, then 429 with Retry-After.\n");
    (void)fprintf(out, "\n--serve runs the proxy for processes started elsewhere until SIGINT or\n"
                       "SIGTERM: it prints their environment as export NAME='value' lines on\n"
                       "stdout, or writes them to --env-file FILE, which must not exist (created\n"
                       "with mode 0600, removed at exit; a symlink is refused).\n");
    (void)fprintf(out,
                  "\nWith --external-proxy, or else %s, or else the\n"
                  "external_proxy of the --config file, connections to hosts that are neither\n"
                  "loopback nor named by --bypass (or bypass_hosts) go through that proxy;\n"
                  "--allow and the deny list still apply first. The password is blanked from\n"
                  "the process's command line once read, but others may see it until then;\n"
                  "better: put it in the --config file or in %s.\n",
                  CLI_EXTERNAL_PROXY_ENV, CLI_EXTERNAL_PROXY_ENV);
    (void)fprintf(out,
                  "\n--sandbox (Linux 6.7+, Landlock ABI 4): COMMAND and all it runs may open\n"
                  "TCP connections only to the proxy's port (on any address) and may bind no\n"
                  "TCP port; UDP and unix sockets stay open. auto confines when the kernel\n"
                  "can and otherwise prints a notice; on refuses to run COMMAND unconfined;\n"
                  "off never confines.\n");
    (void)fprintf(out,
                  "\nCOMMAND's environment is this one plus HTTP_PROXY, HTTPS_PROXY, NO_PROXY\n"
                  "(and lowercase forms), NONO_PROXY_TOKEN, NODE_USE_ENV_PROXY, and per route\n"
                  "<PREFIX>_BASE_URL and its phantom-token variable; %s\n"
                  "and the variables named by an env:// credential are removed. A credential\n"
                  "that is not found or not available is an error unless\n"
                  "--allow-missing-credentials is given.\n",
                  CLI_EXTERNAL_PROXY_ENV);
    (void)fprintf(out,
                  "\nExit status: that of COMMAND, or 128+N if signal N killed it; %d for an\n"
                  "error of " CLI_PROG " itself, %d if COMMAND cannot be run, %d if it is\n"
                  "not found.\n",
                  CLI_EXIT_FAILURE, CLI_EXIT_CANNOT_INVOKE, CLI_EXIT_NOT_FOUND);
}

void
cli_args_usage_hint(FILE *out)
{
    (void)fprintf(out, "%s\nTry '" CLI_PROG " --help' for more information.\n", CLI_SYNOPSIS);
}
