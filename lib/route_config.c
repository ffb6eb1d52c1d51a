/* The validation of every route at start (SPEC §1, §1.1): see route_config.h. */
#include "route_config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "credential_ref.h"
#include "diag.h"
#include "route_build.h"
#include "route_env.h"

/* Check one route's credential reference and tls_ca file. */
static enum nonoproxy_err
route_check_sources(bool has_callback, const struct np_route *r, size_t i,
                    struct nonoproxy_diag *diag)
{
    char why[256];
    int e;

    if (r->credential_key != NULL && !(has_callback && np_cred_ref_is_custom(r->credential_key)) &&
        np_cred_ref_check(r->credential_key, NULL, why, sizeof(why)) != 0) {
        np_diag_set(diag, NONOPROXY_ERR_CREDENTIAL, 0, "routes[%zu] '%s': credential_key: %s", i,
                    r->prefix, why);
        return NONOPROXY_ERR_CREDENTIAL;
    }
    e = r->tls_ca != NULL ? np_regular_file_check(r->tls_ca) : 0;
    if (e != 0) {
        np_copy_printable(why, sizeof(why), r->tls_ca, strlen(r->tls_ca));
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, e > 0 ? e : 0,
                    "routes[%zu] '%s': tls_ca: cannot read '%s': %s", i, r->prefix, why,
                    e > 0 ? NP_ERRSTR(e) : "not a regular file");
        return NONOPROXY_ERR_INVALID_ARG;
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

/* Check route i against the routes before it: prefix, base-URL and phantom names. */
static enum nonoproxy_err
route_check_unique(const struct np_route *routes, size_t i, struct nonoproxy_diag *diag)
{
    size_t j;

    for (j = 0; j < i; j++) {
        if (strcmp(routes[j].prefix, routes[i].prefix) == 0) {
            np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0,
                        "routes[%zu] '%s': prefix: duplicate of routes[%zu]", i, routes[i].prefix,
                        j);
            return NONOPROXY_ERR_INVALID_ARG;
        }
        if (phantom_is_base_url(&routes[i], &routes[j]) ||
            phantom_is_base_url(&routes[j], &routes[i])) {
            np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0,
                        "routes[%zu] '%s': env_var: a phantom variable and a base-URL "
                        "variable of routes[%zu] '%s' have the same name",
                        i, routes[i].prefix, j, routes[j].prefix);
            return NONOPROXY_ERR_INVALID_ARG;
        }
        if (same_base_url_name(&routes[i], &routes[j])) {
            np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0,
                        "routes[%zu] '%s': prefix: its child variable name is the same as "
                        "routes[%zu] '%s' (non-alphanumerics become '_')",
                        i, routes[i].prefix, j, routes[j].prefix);
            return NONOPROXY_ERR_INVALID_ARG;
        }
    }
    return NONOPROXY_OK;
}

/* Build and check route i of cfgs into routes[i]. */
static enum nonoproxy_err
route_validate_one(const struct nonoproxy_route_config *cfgs, size_t i, bool has_callback,
                   struct np_route *routes, struct nonoproxy_diag *diag)
{
    char why[384];
    enum nonoproxy_err rc;
    int brc;

    brc = np_route_build(&cfgs[i], i, &routes[i], why, sizeof(why));
    if (brc != 0) {
        rc = brc == -2 ? NONOPROXY_ERR_NOMEM : NONOPROXY_ERR_INVALID_ARG;
        np_diag_set(diag, rc, brc == -2 ? ENOMEM : 0, "%s", why);
        return rc;
    }
    if (strlen(routes[i].prefix) >= NONOPROXY_AUDIT_ROUTE_LEN) {
        np_diag_set(diag, NONOPROXY_ERR_INVALID_ARG, 0,
                    "routes[%zu]: prefix: longer than %d characters", i,
                    NONOPROXY_AUDIT_ROUTE_LEN - 1);
        return NONOPROXY_ERR_INVALID_ARG;
    }
    rc = route_check_unique(routes, i, diag);
    return rc == NONOPROXY_OK ? route_check_sources(has_callback, &routes[i], i, diag) : rc;
}

enum nonoproxy_err
np_routes_validate(const struct np_route_input *in, struct np_route **out, size_t *n_out,
                   struct nonoproxy_diag *diag)
{
    size_t n = in->n;
    struct np_route *routes = NULL;
    enum nonoproxy_err rc = NONOPROXY_OK;
    size_t built = 0;

    *out = NULL;
    *n_out = 0;
    if (n == 0) {
        return NONOPROXY_OK;
    }
    routes = np_calloc(n, sizeof(*routes));
    if (routes == NULL) {
        np_diag_set(diag, NONOPROXY_ERR_NOMEM, ENOMEM, "routes: out of memory");
        return NONOPROXY_ERR_NOMEM;
    }
    for (built = 0; built < n && rc == NONOPROXY_OK; built++) {
        rc = route_validate_one(in->cfgs, built, in->has_callback, routes, diag);
    }
    if (rc != NONOPROXY_OK) {
        np_routes_free(routes, built); /* the failed one included: np_route_free is NULL-safe */
        return rc;
    }
    *out = routes;
    *n_out = n;
    return NONOPROXY_OK;
}

void
np_routes_free(struct np_route *routes, size_t n)
{
    size_t i;

    for (i = 0; i < n && routes != NULL; i++) {
        np_route_free(&routes[i]);
    }
    np_free(routes);
}
