/* nonoproxy-run: the --config FILE loader, driven by one key table per JSON object (SPEC §11). */
#include "config_file.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* How much of the file name a message shows. */
#define NAME_SHOWN   200
/* How much of one key a key path shows (an unknown key may be anything). */
#define KEY_SHOWN    64
/* Capacity of a key path such as "external_proxy.bypass_hosts[12]". */
#define PATH_CAP     192
/* First read buffer for a file whose size is unknown (a pipe). */
#define READ_CHUNK   16384u

/* What a key's value must be, and where it goes. */
enum key_kind {
    KIND_STRING,      /* non-empty string -> const char * */
    KIND_SECRET,      /* non-empty string -> char * (may hold a password) */
    KIND_STRING_LIST, /* array of non-empty strings -> struct cli_list */
    KIND_UINT,        /* integer 0..max -> struct cli_uint */
    KIND_SECONDS,     /* integer 0..max seconds -> struct cli_uint in milliseconds */
    KIND_BOOL,        /* true or false -> struct cli_bool */
    KIND_INJECT,      /* inject mode name -> struct cli_route inject_name + inject */
    KIND_ROUTES,      /* array of route objects -> struct cli_routes (top level only) */
    KIND_EXTERNAL,    /* {address, bypass_hosts} (top level only) */
    KIND_RULES,       /* array of {method, path} -> struct cli_route rules (routes only) */
    KIND_RATE,        /* {requests_per_minute, burst, max_delay_ms} (routes only) */
};

/* One key of a JSON object: the loader and the messages come from it. */
struct key_rule {
    const char *name;
    size_t field;           /* offsetof the target in struct cli_args or struct cli_route */
    unsigned long long max; /* KIND_UINT, KIND_SECONDS: largest accepted value */
    enum key_kind kind;
    bool required;
    unsigned long long min; /* KIND_UINT: smallest accepted value (0 when not given) */
};

/* The top-level object: the seed's ProxyConfig field names plus the C-side additions. */
static const struct key_rule TOP_KEYS[] = {
    {"allowed_hosts", offsetof(struct cli_args, allow), 0, KIND_STRING_LIST, false, 0},
    {"denied_hosts", offsetof(struct cli_args, deny), 0, KIND_STRING_LIST, false, 0},
    {"strict_allowlist", offsetof(struct cli_args, strict), 0, KIND_BOOL, false, 0},
    {"routes", offsetof(struct cli_args, routes), 0, KIND_ROUTES, false, 0},
    {"external_proxy", 0, 0, KIND_EXTERNAL, false, 0},
    {"bind_addr", offsetof(struct cli_args, bind_addr), 0, KIND_STRING, false, 0},
    {"bind_port", offsetof(struct cli_args, port), UINT16_MAX, KIND_UINT, false, 0},
    {"max_connections", offsetof(struct cli_args, max_connections), UINT_MAX, KIND_UINT, false, 0},
    {"ca_file", offsetof(struct cli_args, ca_file), 0, KIND_STRING, false, 0},
    {"audit_log", offsetof(struct cli_args, audit_log), 0, KIND_STRING, false, 0},
    {"audit_capacity", offsetof(struct cli_args, audit_capacity), CLI_CONFIG_MAX_AUDIT_CAPACITY,
     KIND_UINT, false, 0},
    {"require_auth", offsetof(struct cli_args, require_auth), 0, KIND_BOOL, false, 0},
    {"header_timeout", offsetof(struct cli_args, header_timeout_ms), CLI_MAX_TIMEOUT_SECS,
     KIND_SECONDS, false, 0},
    {"idle_timeout", offsetof(struct cli_args, idle_timeout_ms), CLI_MAX_TIMEOUT_SECS, KIND_SECONDS,
     false, 0},
    {"connect_timeout", offsetof(struct cli_args, connect_timeout_ms), CLI_MAX_TIMEOUT_SECS,
     KIND_SECONDS, false, 0},
    {"ask_timeout", offsetof(struct cli_args, ask_timeout_ms), CLI_MAX_TIMEOUT_SECS, KIND_SECONDS,
     false, 0},
};

/* external_proxy: the seed's ExternalProxyConfig. */
static const struct key_rule EXTERNAL_KEYS[] = {
    {"address", offsetof(struct cli_args, file_external_proxy), 0, KIND_SECRET, true, 0},
    {"bypass_hosts", offsetof(struct cli_args, bypass), 0, KIND_STRING_LIST, false, 0},
};

/* routes[i]: every RouteConfig field. */
static const struct key_rule ROUTE_KEYS[] = {
    {"prefix", offsetof(struct cli_route, prefix), 0, KIND_STRING, true, 0},
    {"upstream", offsetof(struct cli_route, upstream), 0, KIND_STRING, true, 0},
    {"credential_key", offsetof(struct cli_route, credential), 0, KIND_STRING, false, 0},
    {"inject_mode", offsetof(struct cli_route, inject_name), 0, KIND_INJECT, false, 0},
    {"inject_header", offsetof(struct cli_route, header), 0, KIND_STRING, false, 0},
    {"credential_format", offsetof(struct cli_route, format), 0, KIND_STRING, false, 0},
    {"path_pattern", offsetof(struct cli_route, path_pattern), 0, KIND_STRING, false, 0},
    {"path_replacement", offsetof(struct cli_route, path_replacement), 0, KIND_STRING, false, 0},
    {"query_param_name", offsetof(struct cli_route, query_param), 0, KIND_STRING, false, 0},
    {"env_var", offsetof(struct cli_route, env_var), 0, KIND_STRING, false, 0},
    {"tls_ca", offsetof(struct cli_route, tls_ca), 0, KIND_STRING, false, 0},
    {"tls_client_cert", offsetof(struct cli_route, client_cert), 0, KIND_STRING, false, 0},
    {"tls_client_key", offsetof(struct cli_route, client_key), 0, KIND_STRING, false, 0},
    {"endpoint_rules", 0, 0, KIND_RULES, false, 0},
    {"rate_limit", 0, 0, KIND_RATE, false, 0},
};

/* routes[i].rate_limit: the reference's names; requests_per_minute is what makes a limit. */
static const struct key_rule RATE_KEYS[] = {
    {"requests_per_minute", offsetof(struct cli_route, rpm), CLI_MAX_RATE, KIND_UINT, true, 0},
    /* min 1: the library reads 0 as "the default, 5", which is not what "burst": 0 says */
    {"burst", offsetof(struct cli_route, burst), CLI_MAX_RATE, KIND_UINT, false, 1},
    {"max_delay_ms", offsetof(struct cli_route, max_delay_ms), CLI_MAX_DELAY_MS, KIND_UINT, false,
     0},
};

/* routes[i].endpoint_rules[j]: both keys required (the library validates their values). */
static const struct key_rule RULE_KEYS[] = {
    {"method", offsetof(struct nonoproxy_endpoint_rule, method), 0, KIND_STRING, true, 0},
    {"path", offsetof(struct nonoproxy_endpoint_rule, path), 0, KIND_STRING, true, 0},
};

/* A bit per rule tracks duplicate and required keys. */
_Static_assert(ARRAY_LEN(TOP_KEYS) <= 32 && ARRAY_LEN(ROUTE_KEYS) <= 32 &&
                   ARRAY_LEN(RATE_KEYS) <= 32 && ARRAY_LEN(RULE_KEYS) <= 32,
               "rule bits fit");

/* inject_mode values, in the order of enum cli_inject (row i is value i + 1); matched in any
 * case, so that the seed's "HEADER" spelling works too. */
static const char *const INJECT_NAMES[] = {"header", "url_path", "query_param", "basic_auth"};
#define INJECT_EXPECTED "expected one of header, url_path, query_param, basic_auth"

/* Where the loader is: the file name and key path for messages, and the error buffer. */
struct loader {
    char name[NAME_SHOWN]; /* printable file name */
    char path[PATH_CAP];   /* key path, e.g. "routes[1].inject_mode"; "" at the top */
    size_t path_len;
    char *err;
    size_t err_len;
};

/* Frees p (a cJSON block) after overwriting all of it: the tree holds the file's strings,
 * among them the external proxy's password. */
static void
wiping_free(void *p)
{
    if (p != NULL) {
        explicit_bzero(p, malloc_usable_size(p));
    }
    free(p);
}

/* Makes cJSON free through wiping_free (process-wide; idempotent). */
static void
install_wiping_hooks(void)
{
    cJSON_Hooks hooks;

    hooks.malloc_fn = malloc;
    hooks.free_fn = wiping_free;
    cJSON_InitHooks(&hooks);
}

/* Writes "NAME: PATH: what" (or "NAME: what" at the top) to the error buffer; returns false. */
static bool
fail(struct loader *ld, const char *what)
{
    if (ld->path_len == 0) {
        (void)snprintf(ld->err, ld->err_len, "%s: %s", ld->name, what);
    } else {
        (void)snprintf(ld->err, ld->err_len, "%s: %s: %s", ld->name, ld->path, what);
    }
    return false;
}

/* Appends text to the key path (truncated when full); returns the length to restore. */
static size_t
path_append(struct loader *ld, const char *text)
{
    size_t mark = ld->path_len;
    int w = snprintf(ld->path + ld->path_len, sizeof(ld->path) - ld->path_len, "%s", text);

    if (w > 0) {
        ld->path_len += (size_t)w;
        if (ld->path_len >= sizeof(ld->path)) {
            ld->path_len = sizeof(ld->path) - 1;
        }
    }
    return mark;
}

/* Appends ".key" (or "key" at the top), made printable; returns the length to restore. */
static size_t
path_push_key(struct loader *ld, const char *key)
{
    char shown[KEY_SHOWN];
    size_t mark = ld->path_len;

    cli_printable(shown, sizeof(shown), key != NULL ? key : "");
    if (mark > 0) {
        (void)path_append(ld, ".");
    }
    (void)path_append(ld, shown);
    return mark;
}

/* Appends "[i]"; returns the length to restore. */
static size_t
path_push_index(struct loader *ld, size_t i)
{
    char idx[32];

    (void)snprintf(idx, sizeof(idx), "[%zu]", i);
    return path_append(ld, idx);
}

/* Restores the key path to length mark. */
static void
path_pop(struct loader *ld, size_t mark)
{
    ld->path_len = mark;
    ld->path[mark] = '\0';
}

/* Returns item's string when it is a non-empty string, else NULL. */
static char *
nonempty_string(const cJSON *item)
{
    if (!cJSON_IsString(item) || item->valuestring == NULL || item->valuestring[0] == '\0') {
        return NULL;
    }
    return item->valuestring;
}

/* Stores an array of non-empty strings into the cli_list at dst. */
static bool
load_string_list(struct loader *ld, struct cli_list *dst, const cJSON *item)
{
    const cJSON *el = NULL;
    size_t n = 0;
    size_t i = 0;
    size_t mark = 0;

    if (!cJSON_IsArray(item)) {
        return fail(ld, "expected an array of strings");
    }
    n = (size_t)cJSON_GetArraySize(item);
    if (n == 0) {
        return true;
    }
    dst->items = calloc(n, sizeof(*dst->items));
    if (dst->items == NULL) {
        return fail(ld, "out of memory");
    }
    dst->cap = n;
    for (el = item->child; el != NULL && i < n; el = el->next, i++) {
        mark = path_push_index(ld, i);
        dst->items[i] = nonempty_string(el);
        if (dst->items[i] == NULL) {
            return fail(ld, "expected a non-empty string");
        }
        path_pop(ld, mark);
    }
    dst->len = i;
    return true;
}

/* Stores an integer in 0..r->max (times 1000 for seconds) into the cli_uint at dst. JSON
 * numbers are doubles: a fraction, a sign, an overflow, NaN or infinity is refused. */
static bool
load_uint(struct loader *ld, const struct key_rule *r, struct cli_uint *dst, const cJSON *item)
{
    char what[96];
    double d = 0.0;
    unsigned long long v = 0;

    (void)snprintf(what, sizeof(what), "expected an integer from %llu to %llu%s", r->min, r->max,
                   r->kind == KIND_SECONDS ? " (seconds)" : "");
    if (!cJSON_IsNumber(item)) {
        return fail(ld, what);
    }
    d = item->valuedouble;
    if (!(d >= (double)r->min && d <= (double)r->max)) {
        return fail(ld, what); /* also NaN and infinities */
    }
    v = (unsigned long long)d;
    if ((double)v != d) {
        return fail(ld, what); /* a fraction */
    }
    dst->set = true;
    dst->value = r->kind == KIND_SECONDS ? v * 1000u : v;
    return true;
}

/* Stores inject_mode (any case) into route r: its text and its enum. */
static bool
load_inject(struct loader *ld, struct cli_route *r, const cJSON *item)
{
    const char *s = nonempty_string(item);
    size_t i = 0;

    for (i = 0; s != NULL && i < ARRAY_LEN(INJECT_NAMES); i++) {
        if (strcasecmp(INJECT_NAMES[i], s) == 0) {
            r->inject_name = s;
            r->inject = (enum cli_inject)(i + 1);
            return true;
        }
    }
    return fail(ld, INJECT_EXPECTED);
}

/* Stores the value of a key r (not null) into the struct at base; one kind per table. */
typedef bool value_fn(struct loader *ld, void *base, const struct key_rule *r, const cJSON *item);

/* Stores the value of a scalar or list key r (not null) into the struct at base. */
static bool
load_scalar(struct loader *ld, void *base, const struct key_rule *r, const cJSON *item)
{
    char *field = (char *)base + r->field;
    char *s = NULL;

    switch (r->kind) {
    case KIND_STRING:
    case KIND_SECRET:
        s = nonempty_string(item);
        if (s == NULL) {
            return fail(ld, "expected a non-empty string");
        }
        if (r->kind == KIND_SECRET) {
            *(char **)(void *)field = s;
        } else {
            *(const char **)(void *)field = s;
        }
        return true;
    case KIND_STRING_LIST:
        return load_string_list(ld, (struct cli_list *)(void *)field, item);
    case KIND_UINT:
    case KIND_SECONDS:
        return load_uint(ld, r, (struct cli_uint *)(void *)field, item);
    case KIND_BOOL:
        if (!cJSON_IsBool(item)) {
            return fail(ld, "expected true or false");
        }
        ((struct cli_bool *)(void *)field)->set = true;
        ((struct cli_bool *)(void *)field)->value = cJSON_IsTrue(item) != 0;
        return true;
    case KIND_INJECT:
        return load_inject(ld, (struct cli_route *)base, item);
    case KIND_ROUTES:
    case KIND_EXTERNAL:
    case KIND_RULES:
    case KIND_RATE:
        break; /* objects: load_top() and load_route_value() handle them */
    }
    return fail(ld, "internal error: key not allowed here");
}

/* Returns the rule of item's key among rules, marking it in *seen; NULL with the error set
 * when the key is unknown or was already given. The key is already on the path. */
static const struct key_rule *
match_key(struct loader *ld, const struct key_rule *rules, size_t n, const cJSON *item,
          uint32_t *seen)
{
    size_t i = 0;

    for (i = 0; i < n; i++) {
        if (item->string != NULL && strcmp(rules[i].name, item->string) == 0) {
            break;
        }
    }
    if (i == n) {
        (void)fail(ld, "unknown key");
        return NULL;
    }
    if ((*seen & (UINT32_C(1) << i)) != 0) {
        (void)fail(ld, "duplicate key");
        return NULL;
    }
    *seen |= UINT32_C(1) << i;
    return &rules[i];
}

/* Fails on the first required rule whose bit is not in set. */
static bool
check_required(struct loader *ld, const struct key_rule *rules, size_t n, uint32_t set)
{
    size_t i = 0;

    for (i = 0; i < n; i++) {
        if (rules[i].required && (set & (UINT32_C(1) << i)) == 0) {
            (void)path_push_key(ld, rules[i].name);
            return fail(ld, "missing (required)");
        }
    }
    return true;
}

/* A JSON object's keys: their table and how a value is stored. */
struct object_rules {
    const struct key_rule *rules;
    size_t n;
    value_fn *load; /* load_scalar, or load_route_value for a route */
};

/* Loads the object obj (already on the path) into base through o's rules. A null value leaves
 * its field unset. The nested objects of a route are loaded with load_scalar, so the nesting
 * ends there. */
static bool
load_fields(struct loader *ld, void *base, const struct object_rules *o, const cJSON *obj)
{
    const struct key_rule *rules = o->rules;
    size_t n = o->n;
    const struct key_rule *r = NULL;
    const cJSON *item = NULL;
    uint32_t seen = 0;
    uint32_t set = 0;
    size_t mark = 0;

    if (!cJSON_IsObject(obj)) {
        return fail(ld, "expected an object");
    }
    for (item = obj->child; item != NULL; item = item->next) {
        mark = path_push_key(ld, item->string);
        r = match_key(ld, rules, n, item, &seen);
        if (r == NULL) {
            return false;
        }
        if (!cJSON_IsNull(item)) {
            if (!o->load(ld, base, r, item)) {
                return false;
            }
            set |= UINT32_C(1) << (size_t)(r - rules);
        }
        path_pop(ld, mark);
    }
    return check_required(ld, rules, n, set);
}

static const struct object_rules RATE_OBJECT = {RATE_KEYS, ARRAY_LEN(RATE_KEYS), load_scalar};
static const struct object_rules RULE_OBJECT = {RULE_KEYS, ARRAY_LEN(RULE_KEYS), load_scalar};
static const struct object_rules EXTERNAL_OBJECT = {EXTERNAL_KEYS, ARRAY_LEN(EXTERNAL_KEYS),
                                                    load_scalar};

/* Loads "endpoint_rules": an array of {method, path} objects into route r, in file order. */
static bool
load_rules(struct loader *ld, struct cli_route *r, const cJSON *item)
{
    const cJSON *el = NULL;
    size_t n = 0;
    size_t mark = 0;

    if (!cJSON_IsArray(item)) {
        return fail(ld, "expected an array of objects");
    }
    n = (size_t)cJSON_GetArraySize(item);
    if (n == 0) {
        return true; /* no rules: every endpoint, as when the key is absent */
    }
    r->rules = calloc(n, sizeof(*r->rules));
    if (r->rules == NULL) {
        return fail(ld, "out of memory");
    }
    r->cap_rules = n;
    for (el = item->child; el != NULL && r->n_rules < n; el = el->next) {
        mark = path_push_index(ld, r->n_rules);
        r->n_rules++;
        if (!load_fields(ld, &r->rules[r->n_rules - 1], &RULE_OBJECT, el)) {
            return false;
        }
        path_pop(ld, mark);
    }
    return true;
}

/* The value_fn of a route: endpoint_rules and rate_limit, else a scalar. */
static bool
load_route_value(struct loader *ld, void *base, const struct key_rule *r, const cJSON *item)
{
    if (r->kind == KIND_RULES) {
        return load_rules(ld, (struct cli_route *)base, item);
    }
    if (r->kind == KIND_RATE) {
        return load_fields(ld, base, &RATE_OBJECT, item);
    }
    return load_scalar(ld, base, r, item);
}

static const struct object_rules ROUTE_OBJECT = {ROUTE_KEYS, ARRAY_LEN(ROUTE_KEYS),
                                                 load_route_value};

/* Loads "routes": an array of route objects, in file order. */
static bool
load_routes(struct loader *ld, struct cli_routes *dst, const cJSON *item)
{
    const cJSON *el = NULL;
    size_t n = 0;
    size_t mark = 0;

    if (!cJSON_IsArray(item)) {
        return fail(ld, "expected an array of objects");
    }
    n = (size_t)cJSON_GetArraySize(item);
    if (n == 0) {
        return true;
    }
    dst->items = calloc(n, sizeof(*dst->items));
    if (dst->items == NULL) {
        return fail(ld, "out of memory");
    }
    dst->cap = n;
    for (el = item->child; el != NULL && dst->len < n; el = el->next) {
        mark = path_push_index(ld, dst->len);
        dst->len++; /* counted first: cli_config_free() sees every started route */
        if (!load_fields(ld, &dst->items[dst->len - 1], &ROUTE_OBJECT, el)) {
            return false;
        }
        path_pop(ld, mark);
    }
    return true;
}

/* Loads the top-level object into v. */
static bool
load_top(struct loader *ld, struct cli_args *v, const cJSON *root)
{
    const struct key_rule *r = NULL;
    const cJSON *item = NULL;
    uint32_t seen = 0;
    size_t mark = 0;
    bool ok = true;

    if (!cJSON_IsObject(root)) {
        return fail(ld, "expected a JSON object at the top level");
    }
    for (item = root->child; item != NULL && ok; item = item->next) {
        mark = path_push_key(ld, item->string);
        r = match_key(ld, TOP_KEYS, ARRAY_LEN(TOP_KEYS), item, &seen);
        if (r == NULL) {
            return false;
        }
        if (cJSON_IsNull(item)) {
            ok = true;
        } else if (r->kind == KIND_ROUTES) {
            ok = load_routes(ld, &v->routes, item);
        } else if (r->kind == KIND_EXTERNAL) {
            ok = load_fields(ld, v, &EXTERNAL_OBJECT, item);
        } else {
            ok = load_scalar(ld, v, r, item);
        }
        if (ok) {
            path_pop(ld, mark);
        }
    }
    return ok;
}

/* Writes "NAME: what (line L, column C)" for byte offset off of text; returns false. */
static bool
fail_at(struct loader *ld, const char *what, const char *text, size_t off)
{
    size_t line = 1;
    size_t col = 1;
    size_t i = 0;

    for (i = 0; i < off; i++) {
        col++;
        if (text[i] == '\n') {
            line++;
            col = 1;
        }
    }
    (void)snprintf(ld->err, ld->err_len, "%s: %s (line %zu, column %zu)", ld->name, what, line,
                   col);
    return false;
}

/* Returns the offset of the first "\u0000" escape in a JSON text that cJSON accepted (where a
 * backslash occurs only inside strings), or len. cJSON would cut the string there. */
static size_t
find_nul_escape(const char *text, size_t len)
{
    size_t i = 0;

    while (i < len) {
        if (text[i] != '\\') {
            i++;
            continue;
        }
        if (len - i >= 6 && memcmp(text + i + 1, "u0000", 5) == 0) {
            return i;
        }
        i += 2; /* the escaped character cannot start another escape */
    }
    return len;
}

/* Returns the offset of the first byte of text[from..len) that is not JSON whitespace. */
static size_t
skip_space(const char *text, size_t from, size_t len)
{
    while (from < len &&
           (text[from] == ' ' || text[from] == '\t' || text[from] == '\n' || text[from] == '\r')) {
        from++;
    }
    return from;
}

bool
cli_config_parse(const struct cli_config_text *src, struct cli_file_config *out, char *err,
                 size_t err_len)
{
    struct loader ld;
    const char *text = src->text != NULL ? src->text : "";
    size_t len = src->text != NULL ? src->len : 0;
    const char *end = NULL;
    const char *nul = memchr(text, '\0', len);
    cJSON *root = NULL;
    size_t off = 0;

    memset(out, 0, sizeof(*out));
    memset(&ld, 0, sizeof(ld));
    ld.err = err;
    ld.err_len = err_len;
    cli_printable(ld.name, sizeof(ld.name), src->name);
    if (nul != NULL) {
        return fail_at(&ld, "not valid JSON: a NUL byte", text, (size_t)(nul - text));
    }
    install_wiping_hooks();
    root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    off = end != NULL && end >= text ? (size_t)(end - text) : 0;
    if (root == NULL) {
        return fail_at(&ld, "not valid JSON", text, off);
    }
    out->tree = root;
    off = skip_space(text, off, len);
    if (off < len) {
        return fail_at(&ld, "not valid JSON: text after the object", text, off);
    }
    off = find_nul_escape(text, len);
    if (off < len) {
        return fail_at(&ld, "not allowed: \\u0000 in a string", text, off);
    }
    return load_top(&ld, &out->v, root);
}

/* Replaces *buf (holding len bytes, capacity *cap) by a copy twice as large, at most max;
 * the old copy is wiped before it is freed. */
static bool
grow_wiped(char **buf, size_t len, size_t *cap, size_t max)
{
    size_t ncap = *cap > max / 2 ? max : *cap * 2;
    char *n = malloc(ncap);

    if (n == NULL) {
        return false;
    }
    memcpy(n, *buf, len);
    explicit_bzero(*buf, *cap);
    free(*buf);
    *buf = n;
    *cap = ncap;
    return true;
}

/* Reads fd to EOF into a new buffer (*buf, wiped by the caller with *cap bytes): at most
 * CLI_CONFIG_MAX_BYTES. Returns 0, -1 (too large) or an errno value. */
static int
read_all(int fd, char **buf, size_t *len, size_t *cap)
{
    const size_t max = CLI_CONFIG_MAX_BYTES + 1; /* one more byte detects "too large" */
    struct stat st;
    ssize_t n = 0;

    *len = 0;
    *cap = READ_CHUNK;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0 &&
        (unsigned long long)st.st_size < max) {
        *cap = (size_t)st.st_size + 1; /* + 1: EOF is seen without growing */
    }
    *buf = malloc(*cap);
    if (*buf == NULL) {
        return ENOMEM;
    }
    for (;;) {
        if (*len == *cap && (*cap == max || !grow_wiped(buf, *len, cap, max))) {
            return *cap == max ? -1 : ENOMEM;
        }
        n = read(fd, *buf + *len, *cap - *len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return errno;
        }
        if (n == 0) {
            return 0;
        }
        *len += (size_t)n;
    }
}

bool
cli_config_load(const char *path, struct cli_file_config *out, char *err, size_t err_len)
{
    char shown[NAME_SHOWN];
    char ebuf[128];
    char *buf = NULL;
    size_t len = 0;
    size_t cap = 0;
    bool ok = false;
    int fd = -1;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    cli_printable(shown, sizeof(shown), path);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        rc = errno != 0 ? errno : EIO;
    } else {
        rc = read_all(fd, &buf, &len, &cap);
    }
    if (rc == -1) {
        (void)snprintf(err, err_len, "%s: larger than %zu bytes", shown, CLI_CONFIG_MAX_BYTES);
    } else if (rc != 0 || buf == NULL) {
        (void)snprintf(err, err_len, "%s: cannot read: %s", shown,
                       strerror_r(rc != 0 ? rc : EIO, ebuf, sizeof(ebuf)));
    } else {
        struct cli_config_text src = {path, buf, len};

        ok = cli_config_parse(&src, out, err, err_len);
    }
    if (buf != NULL) {
        explicit_bzero(buf, cap);
        free(buf);
    }
    if (fd >= 0) {
        (void)close(fd);
    }
    return ok;
}

/* A list to concatenate: n items of the given size. */
struct span {
    const void *items;
    size_t n;
};

/* Sets *out to a new array: the items of a then those of b (each of size sz); NULL when both
 * are empty. */
static bool
concat(struct span a, struct span b, size_t sz, void **out)
{
    char *arr = NULL;

    *out = NULL;
    if (a.n + b.n == 0) {
        return true;
    }
    if (b.n > SIZE_MAX / sz - a.n) {
        return false;
    }
    arr = malloc((a.n + b.n) * sz);
    if (arr == NULL) {
        return false;
    }
    if (a.n > 0) {
        memcpy(arr, a.items, a.n * sz);
    }
    if (b.n > 0) {
        memcpy(arr + a.n * sz, b.items, b.n * sz);
    }
    *out = arr;
    return true;
}

/* The string and number fields a command-line option overrides (offsetof in struct cli_args). */
static const size_t STRING_FIELDS[] = {
    offsetof(struct cli_args, bind_addr),
    offsetof(struct cli_args, ca_file),
    offsetof(struct cli_args, audit_log),
};
static const size_t UINT_FIELDS[] = {
    offsetof(struct cli_args, port),
    offsetof(struct cli_args, max_connections),
    offsetof(struct cli_args, header_timeout_ms),
    offsetof(struct cli_args, idle_timeout_ms),
    offsetof(struct cli_args, connect_timeout_ms),
    offsetof(struct cli_args, audit_capacity),
    offsetof(struct cli_args, ask_timeout_ms),
};

/* Takes the file's value of each scalar the command line did not give. */
static void
merge_scalars(struct cli_args *a, const struct cli_args *f)
{
    size_t i = 0;

    for (i = 0; i < ARRAY_LEN(STRING_FIELDS); i++) {
        const char **dst = (const char **)(void *)((char *)a + STRING_FIELDS[i]);
        const char *const *src =
            (const char *const *)(const void *)((const char *)f + STRING_FIELDS[i]);

        if (*dst == NULL) {
            *dst = *src;
        }
    }
    for (i = 0; i < ARRAY_LEN(UINT_FIELDS); i++) {
        struct cli_uint *dst = (struct cli_uint *)(void *)((char *)a + UINT_FIELDS[i]);
        const struct cli_uint *src =
            (const struct cli_uint *)(const void *)((const char *)f + UINT_FIELDS[i]);

        if (!dst->set) {
            *dst = *src;
        }
    }
    if (!a->require_auth.set) {
        a->require_auth = f->require_auth; /* no option sets it today */
    }
    if (!a->strict.set) {
        a->strict = f->strict; /* --strict can only say true: the file's false stays false */
    }
    a->file_external_proxy = f->file_external_proxy; /* precedence is decided in run.c */
}

/* Sets *l to the file's items fl followed by its own, given the concatenated array. */
static void
adopt_list(struct cli_list *l, const struct cli_list *fl, void *items)
{
    free(l->items);
    l->items = items;
    l->len += fl->len;
    l->cap = l->len;
    l->n_file = fl->len;
}

bool
cli_config_merge(struct cli_args *a, const struct cli_file_config *f, char *err, size_t err_len)
{
    const struct cli_args *fv = &f->v;
    void *allow = NULL;
    void *deny = NULL;
    void *bypass = NULL;
    void *routes = NULL;
    struct span fa = {fv->allow.items, fv->allow.len};
    struct span fd = {fv->deny.items, fv->deny.len};
    struct span fb = {fv->bypass.items, fv->bypass.len};
    struct span fr = {fv->routes.items, fv->routes.len};
    struct span ca = {a->allow.items, a->allow.len};
    struct span cd = {a->deny.items, a->deny.len};
    struct span cb = {a->bypass.items, a->bypass.len};
    struct span cr = {a->routes.items, a->routes.len};

    if (!concat(fa, ca, sizeof(*a->allow.items), &allow) ||
        !concat(fd, cd, sizeof(*a->deny.items), &deny) ||
        !concat(fb, cb, sizeof(*a->bypass.items), &bypass) ||
        !concat(fr, cr, sizeof(*a->routes.items), &routes)) {
        free(allow);
        free(deny);
        free(bypass);
        (void)snprintf(err, err_len, "out of memory");
        return false;
    }
    adopt_list(&a->allow, &fv->allow, allow);
    adopt_list(&a->deny, &fv->deny, deny);
    adopt_list(&a->bypass, &fv->bypass, bypass);
    free(a->routes.items); /* the command line's route buffers moved to the new array */
    a->routes.items = routes;
    a->routes.len += fv->routes.len;
    a->routes.cap = a->routes.len;
    a->routes.n_file = fv->routes.len;
    merge_scalars(a, fv);
    return true;
}

void
cli_config_free(struct cli_file_config *f)
{
    if (f == NULL) {
        return;
    }
    cli_args_free(&f->v); /* the arrays; file routes have no buf */
    cJSON_Delete(f->tree);
    memset(f, 0, sizeof(*f));
}
