/* The validation of every route at start (SPEC §1, §1.1), L1: each route built and checked
 * (route_build.h), then against the others (duplicate prefixes, colliding child variable
 * names), its credential reference syntax (credential_ref.h) and its tls_ca file. */
#ifndef NP_ROUTE_CONFIG_H
#define NP_ROUTE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <nonoproxy/config.h>

#include "route_build.h"

/* What np_routes_validate reads. */
struct np_route_input {
    const struct nonoproxy_route_config *cfgs;
    size_t n;
    bool has_callback; /* a custom credential scheme passes: the embedder's callback answers */
};

/* Validate the route configurations in->cfgs[0..n) into *out (n frozen routes, np_malloc'd;
 * NULL when n is 0), their count in *n_out. On error *out is NULL and diag names the route and
 * the field. */
enum nonoproxy_err np_routes_validate(const struct np_route_input *in, struct np_route **out,
                                      size_t *n_out, struct nonoproxy_diag *diag);

/* Free routes[0..n) (wiping their secrets) and the array. NULL-safe. */
void np_routes_free(struct np_route *routes, size_t n);

#endif /* NP_ROUTE_CONFIG_H */
