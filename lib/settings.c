/* The frozen settings of a running proxy (SPEC §1.1): see settings.h. */
#include "settings.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "common.h"
#include "config.h"
#include "config_external.h"
#include "decide.h"
#include "diag.h"
#include "hostrange.h"
#include "route_config.h"

void
np_log(const struct np_settings *s, enum nonoproxy_log_level level, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (s == NULL || s->log_cb == NULL || level > s->log_level) {
        return;
    }
    va_start(ap, fmt);
    (void)vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    s->log_cb(s->log_userdata, level, line);
}

int
np_parse_ip_literal(const char *text, uint16_t port, struct sockaddr_storage *ss)
{
    char buf[INET6_ADDRSTRLEN + 4];
    size_t len = strlen(text);
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
        text++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        return 0;
    }
    if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        return 0;
    }
    return -1;
}

/* Copy the scalar fields that need no validation. */
static void
settings_copy_scalars(struct np_settings *s, const struct nonoproxy_config *cfg)
{
    s->max_connections = cfg->max_connections;
    s->require_auth = cfg->require_auth;
    s->audit_capacity = cfg->audit_capacity;
    s->header_timeout_ms = cfg->header_timeout_ms;
    s->connect_timeout_ms = cfg->connect_timeout_ms;
    s->tls_timeout_ms = cfg->tls_timeout_ms;
    s->idle_timeout_ms = cfg->idle_timeout_ms;
    s->response_timeout_ms = cfg->response_timeout_ms;
    s->log_cb = cfg->log_cb;
    s->log_userdata = cfg->log_userdata;
    s->log_level = cfg->log_level;
    s->audit_cb = cfg->audit_cb;
    s->audit_userdata = cfg->audit_userdata;
}

/* Validate and copy the optional ca_file: it must be readable now. */
static enum nonoproxy_err
settings_ca_file(struct np_settings *s, const char *path, struct nonoproxy_diag *diag)
{
    char shown[160];
    int e;

    if (path == NULL) {
        return NONOPROXY_OK;
    }
    np_copy_printable(shown, sizeof(shown), path, strlen(path));
    e = np_regular_file_check(path);
    if (e != 0) {
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, e > 0 ? e : 0, "ca_file: cannot read '%s': %s",
                    shown, e > 0 ? NP_ERRSTR(e) : "not a regular file");
        return NONOPROXY_ERR_INVALID_ARG;
    }
    s->ca_file = np_strdup(path);
    if (s->ca_file == NULL) {
        np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "ca_file: out of memory");
        return NONOPROXY_ERR_NOMEM;
    }
    return NONOPROXY_OK;
}

/* Refuse an allowlist range that meets the hard deny list (SPEC §3: the hard deny list cannot
 * be allowed); log one that only holds a hard-denied address inside a wider network. */
static enum nonoproxy_err
settings_allow_ranges(const struct np_settings *s, const struct nonoproxy_config_lists *l,
                      struct nonoproxy_diag *diag)
{
    char what[64];
    size_t i;

    for (i = 0; i < l->n_allowed; i++) {
        struct np_range r;
        const char *e = l->allowed_hosts[i];
        enum np_range_overlap o;

        if (!np_host_entry_is_range(e) || np_range_parse(e, strlen(e), &r) != NULL) {
            continue; /* a name; or malformed, which np_hostfilter_new refuses */
        }
        o = np_range_hard_deny_overlap(&r, what, sizeof(what));
        if (o == NP_RANGE_OVERLAPS_DENIED) {
            np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0,
                        "allowed_hosts[%zu]: '%s' overlaps the hard deny list (%s: link-local / "
                        "cloud metadata), which can never be allowed",
                        i, e, what);
            return NONOPROXY_ERR_INVALID_ARG;
        }
        if (o == NP_RANGE_HOLDS_DENIED_ADDRESS) {
            np_log(s, NONOPROXY_LOG_INFO,
                   "allowed_hosts: %s holds %s (hard deny list), which stays denied", e, what);
        }
    }
    return NONOPROXY_OK;
}

/* Compile one host list named field into *out. */
static enum nonoproxy_err
settings_compile(char *const *entries, size_t n, const char *field, struct np_hostfilter **out,
                 struct nonoproxy_diag *diag)
{
    int r = np_hostfilter_new((const char *const *)entries, n, out);

    if (r == -2) {
        np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "%s: out of memory", field);
        return NONOPROXY_ERR_NOMEM;
    }
    if (r != 0) {
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0, "%s: malformed entry", field);
        return NONOPROXY_ERR_INVALID_ARG;
    }
    return NONOPROXY_OK;
}

/* Compile the allowlist and the deny list (their entries were validated as they were added). */
static enum nonoproxy_err
settings_host_lists(struct np_settings *s, const struct nonoproxy_config_lists *l,
                    struct nonoproxy_diag *diag)
{
    enum nonoproxy_err rc = settings_allow_ranges(s, l, diag);

    if (rc != NONOPROXY_OK) {
        return rc;
    }
    rc = settings_compile(l->allowed_hosts, l->n_allowed, "allowed_hosts", &s->allow, diag);
    if (rc == NONOPROXY_OK) {
        rc = settings_compile(l->denied_hosts, l->n_denied, "denied_hosts", &s->deny, diag);
    }
    return rc;
}

/* Refuse a route whose upstream host is on denied_hosts: by name, or a literal that an entry
 * holds (a range or the same literal). */
static enum nonoproxy_err
settings_routes_denied(const struct np_settings *s, struct nonoproxy_diag *diag)
{
    size_t i;

    for (i = 0; i < s->n_routes; i++) {
        const struct np_route *r = &s->routes[i];
        struct sockaddr_storage ss;
        const char *entry = NULL;
        char shown[96];

        if (np_hostfilter_matches(s->deny, r->host, r->port)) {
            entry = "a name entry";
        } else if (np_host_parse_ip(r->host, &ss)) {
            entry = np_hostfilter_addr_match(s->deny, (const struct sockaddr *)&ss, r->port, true);
        }
        if (entry != NULL) {
            np_copy_printable(shown, sizeof(shown), r->host, strlen(r->host));
            np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0,
                        "routes[%zu] '%s': upstream: host is denied by denied_hosts (%s) ('%s')", i,
                        r->prefix, entry, shown);
            return NONOPROXY_ERR_INVALID_ARG;
        }
    }
    return NONOPROXY_OK;
}

/* The decide callback's state, and the two host policies that point into s. */
static enum nonoproxy_err
settings_policy(struct np_settings *s, const struct nonoproxy_config *cfg,
                struct nonoproxy_diag *diag)
{
    s->strict_allowlist = cfg->strict_allowlist;
    if (cfg->decide_cb != NULL) {
        struct np_decider_config dc = {
            cfg->decide_cb, cfg->decide_userdata, cfg->decide_timeout_ms, 0,
            cfg->log_cb,    cfg->log_userdata,    cfg->log_level};

        if (np_decider_new(&dc, &s->decider) != 0) {
            np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "decide_cb: out of memory");
            return NONOPROXY_ERR_NOMEM;
        }
    }
    s->policy.allow = s->allow;
    s->policy.deny = s->deny;
    s->policy.strict = s->strict_allowlist;
    s->policy.decider = s->decider;
    s->policy.resolver = &s->resolver;
    s->route_policy.deny = s->deny;
    s->route_policy.resolver = &s->resolver;
    return NONOPROXY_OK;
}

enum nonoproxy_err
np_settings_new(const struct nonoproxy_config *cfg, struct np_settings **out,
                struct nonoproxy_diag *diag)
{
    enum nonoproxy_err rc = NONOPROXY_ERR_INVALID_ARG;
    const struct nonoproxy_config_lists *l = np_config_lists(cfg);
    struct np_route_input routes;
    struct np_settings *s = NULL;
    char shown[96];

    if (cfg == NULL || out == NULL) {
        np_diag_set(diag, rc, 0, "config: NULL argument");
        return rc;
    }
    s = np_calloc(1, sizeof(*s));
    if (s == NULL) {
        np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "config: out of memory");
        return NONOPROXY_ERR_NOMEM;
    }
    settings_copy_scalars(s, cfg);
    if (cfg->bind_addr == NULL ||
        np_parse_ip_literal(cfg->bind_addr, cfg->bind_port, &s->bind_ss) != 0) {
        const char *b = cfg->bind_addr == NULL ? "(null)" : cfg->bind_addr;
        np_copy_printable(shown, sizeof(shown), b, strlen(b));
        np_diag_set(diag, rc, 0, "bind_addr: '%s' is not an IPv4 or IPv6 address", shown);
        goto out;
    }
    rc = settings_ca_file(s, cfg->ca_file, diag);
    if (rc != NONOPROXY_OK) {
        goto out;
    }
    rc = settings_host_lists(s, l, diag);
    if (rc != NONOPROXY_OK) {
        goto out;
    }
    s->credential_cb = cfg->credential_cb;
    s->credential_userdata = cfg->credential_userdata;
    routes.cfgs = l->routes;
    routes.n = l->n_routes;
    routes.has_callback = cfg->credential_cb != NULL;
    rc = np_routes_validate(&routes, &s->routes, &s->n_routes, diag);
    if (rc == NONOPROXY_OK) {
        rc = settings_routes_denied(s, diag);
    }
    if (rc == NONOPROXY_OK) {
        rc = settings_policy(s, cfg, diag);
    }
    if (rc != NONOPROXY_OK) {
        goto out;
    }
    rc = np_external_new(l->external_proxy, (const char *const *)l->bypass_hosts, l->n_bypass,
                         &s->ext, diag);
    if (rc != NONOPROXY_OK) {
        goto out;
    }
    s->resolver.fn = cfg->resolver;
    s->resolver.userdata = cfg->resolver_userdata;
    *out = s;
    s = NULL;
out:
    np_settings_free(s);
    return rc;
}

void
np_settings_free(struct np_settings *s)
{
    if (s == NULL) {
        return;
    }
    np_hostfilter_free(s->allow);
    np_hostfilter_free(s->deny);
    np_decider_free(s->decider);
    np_routes_free(s->routes, s->n_routes);
    np_external_free(s->ext);
    np_free(s->ca_file);
    np_free(s);
}
