/* The public configuration API (SPEC §1, §12): see config.h. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "common.h"
#include "config_external.h"
#include "diag.h"
#include "hostfilter.h"

/* Room for a normalised entry (a host, "*." and ":port"). */
#define ENTRY_BUF (NP_HOST_BUF + 16)

void
nonoproxy_config_init(struct nonoproxy_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    memset(cfg, 0, sizeof(*cfg));
    cfg->bind_addr = "127.0.0.1";
    cfg->bind_port = 0;
    cfg->max_connections = 256;
    cfg->require_auth = true;
    cfg->audit_capacity = 4096;
    cfg->header_timeout_ms = 30000;
    cfg->connect_timeout_ms = 10000;
    cfg->tls_timeout_ms = 10000;
    cfg->idle_timeout_ms = 600000;
    cfg->response_timeout_ms = 300000;
    cfg->log_level = NONOPROXY_LOG_INFO;
    cfg->decide_timeout_ms = 30000;
}

const struct nonoproxy_config_lists *
np_config_lists(const struct nonoproxy_config *cfg)
{
    static const struct nonoproxy_config_lists none = {NULL, 0, NULL, 0, NULL, NULL, 0, NULL, 0};

    return cfg != NULL && cfg->lists != NULL ? cfg->lists : &none;
}

/* The lists of cfg, allocated on first use; NULL when out of memory. */
static struct nonoproxy_config_lists *
lists_of(struct nonoproxy_config *cfg)
{
    if (cfg->lists == NULL) {
        cfg->lists = np_calloc(1, sizeof(*cfg->lists));
    }
    return cfg->lists;
}

/* Append a copy of s to the owned string list *list of length *len. */
static enum nonoproxy_err
strlist_append(char ***list, size_t *len, const char *s)
{
    char *copy = np_strdup(s);
    char **grown;

    if (copy == NULL) {
        return NONOPROXY_ERR_NOMEM;
    }
    grown = np_realloc(*list, (*len + 1) * sizeof(**list));
    if (grown == NULL) {
        np_free(copy);
        return NONOPROXY_ERR_NOMEM;
    }
    grown[*len] = copy;
    *list = grown;
    (*len)++;
    return NONOPROXY_OK;
}

static void
strlist_free(char **list, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        np_free(list[i]);
    }
    np_free(list);
}

/* Normalise an allowlist or bypass entry host of the list named field and append it. */
static enum nonoproxy_err
add_entry(struct nonoproxy_config *cfg, const char *field, const char *host,
          struct nonoproxy_diag *diag)
{
    char norm[ENTRY_BUF];
    char why[128];
    char shown[96];
    struct nonoproxy_config_lists *l;
    enum nonoproxy_err rc;
    char ***list;
    size_t *len;

    if (cfg == NULL || host == NULL) {
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0, "%s: NULL entry", field);
        return NONOPROXY_ERR_INVALID_ARG;
    }
    if (np_host_entry_normalize(host, norm, sizeof(norm), why, sizeof(why)) == 0 &&
        strcmp(field, "bypass_hosts") == 0 && np_host_entry_is_range(norm)) {
        /* Bypass decides before any lookup, so it takes names (and literals) only. */
        norm[0] = '\0';
        (void)snprintf(why, sizeof(why), "address ranges are not allowed here (names only)");
    }
    if (norm[0] == '\0') {
        np_copy_printable(shown, sizeof(shown), host, strlen(host));
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0, "%s: invalid entry '%s': %s", field, shown,
                    why);
        return NONOPROXY_ERR_INVALID_ARG;
    }
    l = lists_of(cfg);
    if (l == NULL) {
        np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "%s: out of memory", field);
        return NONOPROXY_ERR_NOMEM;
    }
    if (strcmp(field, "bypass_hosts") == 0) {
        list = &l->bypass_hosts;
        len = &l->n_bypass;
    } else if (strcmp(field, "denied_hosts") == 0) {
        list = &l->denied_hosts;
        len = &l->n_denied;
    } else {
        list = &l->allowed_hosts;
        len = &l->n_allowed;
    }
    rc = strlist_append(list, len, norm);
    if (rc != NONOPROXY_OK) {
        np_diag_set(diag, rc, ENOMEM, "%s: out of memory", field);
    }
    return rc;
}

enum nonoproxy_err
nonoproxy_config_allow_host(struct nonoproxy_config *cfg, const char *host,
                            struct nonoproxy_diag *diag)
{
    return add_entry(cfg, "allowed_hosts", host, diag);
}

enum nonoproxy_err
nonoproxy_config_add_bypass_host(struct nonoproxy_config *cfg, const char *host,
                                 struct nonoproxy_diag *diag)
{
    return add_entry(cfg, "bypass_hosts", host, diag);
}

enum nonoproxy_err
nonoproxy_config_deny_host(struct nonoproxy_config *cfg, const char *host,
                           struct nonoproxy_diag *diag)
{
    return add_entry(cfg, "denied_hosts", host, diag);
}

void
nonoproxy_config_set_decide(struct nonoproxy_config *cfg, nonoproxy_decide_fn *fn, void *userdata)
{
    if (cfg == NULL) {
        return;
    }
    cfg->decide_cb = fn;
    cfg->decide_userdata = fn != NULL ? userdata : NULL;
}

enum nonoproxy_err
nonoproxy_config_set_external_proxy(struct nonoproxy_config *cfg, const char *address,
                                    struct nonoproxy_diag *diag)
{
    struct nonoproxy_config_lists *l;
    char why[128];
    char *copy = NULL;

    if (cfg == NULL) {
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0, "external_proxy: NULL config");
        return NONOPROXY_ERR_INVALID_ARG;
    }
    if (address != NULL && np_external_check(address, why, sizeof(why)) != 0) {
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0, "external_proxy: invalid address: %s", why);
        return NONOPROXY_ERR_INVALID_ARG;
    }
    l = lists_of(cfg);
    if (l != NULL && address != NULL) {
        copy = np_strdup(address);
    }
    if (l == NULL || (address != NULL && copy == NULL)) {
        np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "external_proxy: out of memory");
        return NONOPROXY_ERR_NOMEM;
    }
    np_free_secret(l->external_proxy); /* the old address may hold a password */
    l->external_proxy = copy;
    return NONOPROXY_OK;
}

void
nonoproxy_route_config_init(struct nonoproxy_route_config *r, const char *prefix,
                            const char *upstream)
{
    if (r == NULL) {
        return;
    }
    memset(r, 0, sizeof(*r));
    r->prefix = prefix;
    r->upstream = upstream;
    r->inject_mode = NONOPROXY_INJECT_HEADER;
    r->inject_header = "Authorization";
}

/* The string fields of a route config, for copying and freeing them uniformly. */
static const char **
route_field(struct nonoproxy_route_config *r, size_t i)
{
    const char **fields[] = {
        &r->prefix,           &r->upstream,          &r->credential_key,
        &r->inject_header,    &r->credential_format, &r->path_pattern,
        &r->path_replacement, &r->query_param_name,  &r->env_var,
        &r->tls_ca,           &r->tls_client_cert,   &r->tls_client_key,
    };

    return i < NP_ARRAY_LEN(fields) ? fields[i] : NULL;
}

/* Free the endpoint rules of an owned route copy: n rules, each with its two strings. */
static void
rules_free(struct nonoproxy_endpoint_rule *rules, size_t n)
{
    size_t i;

    for (i = 0; rules != NULL && i < n; i++) {
        np_free((void *)(uintptr_t)rules[i].method);
        np_free((void *)(uintptr_t)rules[i].path);
    }
    np_free(rules);
}

/* Deep-copy n rules; NULL when out of memory (or n is 0). A NULL method or path stays NULL
 * and is refused by nonoproxy_start(), which names the rule. */
static struct nonoproxy_endpoint_rule *
rules_copy(const struct nonoproxy_endpoint_rule *rules, size_t n)
{
    struct nonoproxy_endpoint_rule *copy = np_calloc(n, sizeof(*copy));
    size_t i;

    for (i = 0; copy != NULL && i < n; i++) {
        copy[i].method = rules[i].method != NULL ? np_strdup(rules[i].method) : NULL;
        copy[i].path = rules[i].path != NULL ? np_strdup(rules[i].path) : NULL;
        if ((rules[i].method != NULL && copy[i].method == NULL) ||
            (rules[i].path != NULL && copy[i].path == NULL)) {
            rules_free(copy, i + 1);
            return NULL;
        }
    }
    return copy;
}

/* Free the strings and rules of an owned route copy. */
static void
route_copy_free(struct nonoproxy_route_config *r)
{
    const char **f;
    size_t i;

    rules_free((struct nonoproxy_endpoint_rule *)(uintptr_t)r->endpoint_rules, r->n_endpoint_rules);
    r->endpoint_rules = NULL;
    r->n_endpoint_rules = 0;
    for (i = 0; (f = route_field(r, i)) != NULL; i++) {
        np_free((void *)(uintptr_t)*f);
        *f = NULL;
    }
}

enum nonoproxy_err
nonoproxy_config_add_route(struct nonoproxy_config *cfg, const struct nonoproxy_route_config *r)
{
    struct nonoproxy_config_lists *l;
    struct nonoproxy_route_config copy;
    struct nonoproxy_route_config *grown;
    const char **f;
    size_t i;

    if (cfg == NULL || r == NULL || r->prefix == NULL || r->upstream == NULL ||
        (r->n_endpoint_rules > 0 && r->endpoint_rules == NULL)) {
        return NONOPROXY_ERR_INVALID_ARG;
    }
    copy = *r;
    copy.endpoint_rules = NULL;
    copy.n_endpoint_rules = 0;
    for (i = 0; (f = route_field(&copy, i)) != NULL; i++) {
        if (*f != NULL) {
            *f = np_strdup(*f);
            if (*f == NULL) {
                goto nomem;
            }
        }
    }
    if (r->n_endpoint_rules > 0) {
        copy.endpoint_rules = rules_copy(r->endpoint_rules, r->n_endpoint_rules);
        if (copy.endpoint_rules == NULL) {
            route_copy_free(&copy);
            return NONOPROXY_ERR_NOMEM;
        }
        copy.n_endpoint_rules = r->n_endpoint_rules;
    }
    l = lists_of(cfg);
    grown = l != NULL ? np_realloc(l->routes, (l->n_routes + 1) * sizeof(*grown)) : NULL;
    if (grown == NULL) {
        route_copy_free(&copy);
        return NONOPROXY_ERR_NOMEM;
    }
    grown[l->n_routes] = copy;
    l->routes = grown;
    l->n_routes++;
    return NONOPROXY_OK;
nomem:
    /* Fields not yet copied still point at the caller's strings: clear them first. */
    for (; (f = route_field(&copy, i)) != NULL; i++) {
        *f = NULL;
    }
    route_copy_free(&copy);
    return NONOPROXY_ERR_NOMEM;
}

void
nonoproxy_config_free(struct nonoproxy_config *cfg)
{
    struct nonoproxy_config_lists *l;
    size_t i;

    if (cfg == NULL) {
        return;
    }
    l = cfg->lists;
    if (l != NULL) {
        strlist_free(l->allowed_hosts, l->n_allowed);
        strlist_free(l->bypass_hosts, l->n_bypass);
        strlist_free(l->denied_hosts, l->n_denied);
        for (i = 0; i < l->n_routes; i++) {
            route_copy_free(&l->routes[i]);
        }
        np_free(l->routes);
        np_free_secret(l->external_proxy);
        np_free(l);
    }
    nonoproxy_config_init(cfg);
}
