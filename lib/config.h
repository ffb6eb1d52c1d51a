/* The public configuration API (SPEC §1, §12), L1: what nonoproxy_config_* fill, kept in the
 * private lists of a struct nonoproxy_config (allowed hosts, routes, the external proxy and its
 * bypass list). Entries are validated as they are added; nonoproxy_start then freezes the
 * whole into struct np_settings (settings.h). */
#ifndef NP_CONFIG_H
#define NP_CONFIG_H

#include <stddef.h>

#include <nonoproxy/config.h>

/* The lists behind nonoproxy_config.lists: allocated by the first nonoproxy_config_* call
 * that adds to one, freed (and the external proxy's address wiped) by nonoproxy_config_free.
 * Every string is an owned copy; the allowlist and bypass entries are normalised. */
struct nonoproxy_config_lists {
    char **allowed_hosts;
    size_t n_allowed;
    struct nonoproxy_route_config *routes; /* deep copies */
    size_t n_routes;
    char *external_proxy; /* may hold a password */
    char **bypass_hosts;
    size_t n_bypass;
    char **denied_hosts; /* normalised like the allowlist (SPEC §13) */
    size_t n_denied;
};

/* The lists of cfg; an empty set (every count 0) when nothing was ever added. */
const struct nonoproxy_config_lists *np_config_lists(const struct nonoproxy_config *cfg);

#endif /* NP_CONFIG_H */
