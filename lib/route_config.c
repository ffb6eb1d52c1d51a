/* Route configuration (SPEC §1, §1.1), L2 (it checks credential references): the public route API (init, deep-copying add) and
 * the validation of every route into the frozen settings. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <nonoproxy/config.h>

#include "alloc.h"
#include "config.h"
#include "credential.h"
#include "route_build.h"
#include "route_env.h"

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
        &r->prefix,       &r->upstream,         &r->credential_key,   &r->inject_header,
        &r->credential_format, &r->path_pattern, &r->path_replacement, &r->query_param_name,
        &r->env_var,      &r->tls_ca,
    };

    return i < NP_ARRAY_LEN(fields) ? fields[i] : NULL;
}

/* Free the strings of an owned route copy. */
static void
route_copy_free(struct nonoproxy_route_config *r)
{
    const char **f;
    size_t i;

    for (i = 0; (f = route_field(r, i)) != NULL; i++) {
        np_free((void *)(uintptr_t)*f);
        *f = NULL;
    }
}

enum nonoproxy_err
nonoproxy_config_add_route(struct nonoproxy_config *cfg, const struct nonoproxy_route_config *r)
{
    struct nonoproxy_route_config copy;
    struct nonoproxy_route_config *grown;
    const char **f;
    size_t i;

    if (cfg == NULL || r == NULL || r->prefix == NULL || r->upstream == NULL) {
        return NONOPROXY_ERR_INVALID_ARG;
    }
    copy = *r;
    for (i = 0; (f = route_field(&copy, i)) != NULL; i++) {
        if (*f != NULL) {
            *f = np_strdup(*f);
            if (*f == NULL) {
                goto nomem;
            }
        }
    }
    grown = np_realloc(cfg->routes, (cfg->routes_len + 1) * sizeof(*grown));
    if (grown == NULL) {
        goto nomem;
    }
    grown[cfg->routes_len] = copy;
    cfg->routes = grown;
    cfg->routes_len++;
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
np_config_routes_free(struct nonoproxy_config *cfg)
{
    size_t i;

    for (i = 0; i < cfg->routes_len; i++) {
        route_copy_free(&cfg->routes[i]);
    }
    np_free(cfg->routes);
    cfg->routes = NULL;
    cfg->routes_len = 0;
}

/* Check one route's credential reference and tls_ca file. */
static enum nonoproxy_err
route_check_sources(const struct np_settings *s, const struct np_route *r, size_t i,
                    struct nonoproxy_diag *diag)
{
    char why[256];
    FILE *f;

    if (r->credential_key != NULL &&
        !(s->credential_cb != NULL && np_cred_ref_is_custom(r->credential_key)) &&
        np_cred_ref_check(r->credential_key, NULL, why, sizeof(why)) != 0) {
        np_diag_set(diag, NONOPROXY_ERR_CREDENTIAL, 0, "routes[%zu] '%s': credential_key: %s", i,
                    r->prefix, why);
        return NONOPROXY_ERR_CREDENTIAL;
    }
    if (r->tls_ca != NULL) {
        f = fopen(r->tls_ca, "re");
        if (f == NULL) {
            int e = errno;
            np_copy_printable(why, sizeof(why), r->tls_ca, strlen(r->tls_ca));
            np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, e, "routes[%zu] '%s': tls_ca: cannot read '%s': %s",
                        i, r->prefix, why, NP_ERRSTR(e));
            return NONOPROXY_ERR_INVALID_ARG;
        }
        (void)fclose(f);
    }
    return NONOPROXY_OK;
}

/* Whether two routes would give the child the same <PREFIX>_BASE_URL name ("my-api" and
 * "my_api"): the second would silently replace the first. */
static bool
same_base_url_name(const struct np_route *a, const struct np_route *b)
{
    char na[NONOPROXY_AUDIT_ROUTE_LEN + 64];
    char nb[NONOPROXY_AUDIT_ROUTE_LEN + 64];

    return np_route_base_url_name(a, na, sizeof(na)) != 0 &&
           np_route_base_url_name(b, nb, sizeof(nb)) != 0 && strcmp(na, nb) == 0;
}

/* Whether a's phantom variable (explicit env_var or derived) is named like b's base URL. */
static bool
phantom_is_base_url(const struct np_route *a, const struct np_route *b)
{
    char na[NONOPROXY_AUDIT_ROUTE_LEN + 320];
    char nb[NONOPROXY_AUDIT_ROUTE_LEN + 64];
    const char *key = a->credential_key;

    if (key == NULL || (a->env_var == NULL && strstr(key, "://") != NULL)) {
        return false;
    }
    if (a->env_var == NULL && strlen(key) >= sizeof(na) - 1) {
        return false;
    }
    return np_route_phantom_name(a, na, sizeof(na)) != 0 &&
           np_route_base_url_name(b, nb, sizeof(nb)) != 0 && strcmp(na, nb) == 0;
}

enum nonoproxy_err
np_settings_routes(struct np_settings *s, const struct nonoproxy_config *cfg,
                   struct nonoproxy_diag *diag)
{
    char why[384];
    enum nonoproxy_err rc;
    size_t i;
    size_t j;

    if (cfg->routes_len == 0) {
        return NONOPROXY_OK;
    }
    s->routes = np_calloc(cfg->routes_len, sizeof(*s->routes));
    if (s->routes == NULL) {
        np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "routes: out of memory");
        return NONOPROXY_ERR_NOMEM;
    }
    for (i = 0; i < cfg->routes_len; i++) {
        if (np_route_build(&cfg->routes[i], i, &s->routes[i], why, sizeof(why)) != 0) {
            np_route_free(&s->routes[i]); /* whatever the failed build left */
            np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0, "%s", why);
            return NONOPROXY_ERR_INVALID_ARG;
        }
        s->n_routes = i + 1;
        if (strlen(s->routes[i].prefix) >= NONOPROXY_AUDIT_ROUTE_LEN) {
            np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0,
                        "routes[%zu]: prefix: longer than %d characters", i,
                        NONOPROXY_AUDIT_ROUTE_LEN - 1);
            return NONOPROXY_ERR_INVALID_ARG;
        }
        for (j = 0; j < i; j++) {
            if (strcmp(s->routes[j].prefix, s->routes[i].prefix) == 0) {
                np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0,
                            "routes[%zu] '%s': prefix: duplicate of routes[%zu]", i,
                            s->routes[i].prefix, j);
                return NONOPROXY_ERR_INVALID_ARG;
            }
            if (phantom_is_base_url(&s->routes[i], &s->routes[j]) ||
                phantom_is_base_url(&s->routes[j], &s->routes[i])) {
                np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0,
                            "routes[%zu] '%s': env_var: a phantom variable and a base-URL "
                            "variable of routes[%zu] '%s' have the same name",
                            i, s->routes[i].prefix, j, s->routes[j].prefix);
                return NONOPROXY_ERR_INVALID_ARG;
            }
            if (same_base_url_name(&s->routes[i], &s->routes[j])) {
                np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0,
                            "routes[%zu] '%s': prefix: its child variable name is the same as "
                            "routes[%zu] '%s' (non-alphanumerics become '_')",
                            i, s->routes[i].prefix, j, s->routes[j].prefix);
                return NONOPROXY_ERR_INVALID_ARG;
            }
        }
        rc = route_check_sources(s, &s->routes[i], i, diag);
        if (rc != NONOPROXY_OK) {
            return rc;
        }
    }
    return NONOPROXY_OK;
}

void
np_settings_routes_free(struct np_settings *s)
{
    size_t i;

    for (i = 0; i < s->n_routes; i++) {
        np_route_free(&s->routes[i]);
    }
    np_free(s->routes);
    s->routes = NULL;
    s->n_routes = 0;
}
