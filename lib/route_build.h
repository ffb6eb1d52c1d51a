/* One reverse-proxy route as frozen at start (SPEC §1, §1.1), L1: validation of a route's
 * configuration, the injection value computed from its secret, and freeing. */
#ifndef NP_ROUTE_BUILD_H
#define NP_ROUTE_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nonoproxy/config.h>

#include "common.h"
#include "route_rules.h"

/* A route as frozen at start. Strings are np_malloc'd and owned by the route. */
struct np_route {
    char *prefix;            /* normalised: leading/trailing '/' stripped, [A-Za-z0-9._-]+ */
    char *host;              /* normalised upstream host (lower-case, IPv6 without brackets) */
    char *host_header;       /* Host value: host, [v6], plus ":port" when not the default */
    char *base_path;         /* upstream path without trailing '/', "" for none ("/v1") */
    char *credential_key;    /* NULL = route without credential */
    char *inject_header;     /* "Authorization" by default */
    char *credential_format; /* exactly one "{}"; derived default applied */
    char *path_pattern;      /* URL_PATH only: exactly one "{}" */
    char *path_replacement;  /* URL_PATH only: exactly one "{}"; default = path_pattern */
    char *query_param_name;  /* QUERY_PARAM only */
    char *env_var;           /* explicit phantom variable name, or NULL */
    char *tls_ca;            /* extra PEM roots, or NULL */
    char *tls_client_cert;   /* PEM client certificate (chain) for mutual TLS, or NULL */
    char *tls_client_key;    /* its PEM private key file (set exactly when tls_client_cert is) */

    /* Policy (SPEC §13). */
    struct np_route_rules rules; /* compiled endpoint rules; none = every endpoint */
    uint32_t rate_rpm;           /* tokens a minute; 0 = no rate limit */
    uint32_t rate_burst;         /* bucket capacity (the default 5 applied) */
    uint32_t rate_max_delay_ms;  /* how long a request may wait for a token */

    /* Set after credential loading (by the caller); the secret is wiped by np_route_free. */
    char *secret; /* NULL = not loaded */
    size_t secret_len;
    char *inject_value; /* HEADER/BASIC_AUTH: the precomputed header value (wiped) */
    size_t inject_value_len;

    enum nonoproxy_inject_mode mode;
    uint16_t port; /* explicit or the scheme default */
    bool tls;      /* https upstream (false only for http:// to loopback) */
};

/* Validate rc (SPEC §1.1) and fill out (zeroed first). On error returns -1 (-2 when out of
 * memory) and why holds one line naming the route by index and prefix and the field, e.g.
 * "routes[1] 'svc': upstream: http:// is only allowed to loopback hosts ('example.com')".
 * Checks: prefix (after stripping '/') non-empty and [A-Za-z0-9._-]+; upstream parses as
 * http(s)://host[:port][/path] with no userinfo, query or fragment; http only to loopback
 * literals or "localhost"; host not on the hard deny list (names and every IP spelling);
 * inject_header an HTTP token; credential_format with exactly one "{}"; URL_PATH needs
 * path_pattern (and path_replacement) with exactly one "{}"; QUERY_PARAM needs a
 * query_param_name of unreserved characters; env_var matches [A-Za-z_][A-Za-z0-9_]* and is not a
 * refused name (np_route_env_name_refused); credential_key syntax is checked elsewhere
 * (credential.c); endpoint_rules compile (route_rules.h); rate_limit_per_minute <=
 * NP_RATE_RPM_MAX, rate_limit_burst <= NP_RATE_BURST_MAX, rate_limit_max_delay_ms <=
 * NP_RATE_DELAY_MAX_MS (ratelimit.h), burst and max delay only with a rate; tls_client_cert
 * and tls_client_key both or neither, only on an https:// upstream (the files are read by
 * tls.c). Strings are copied; control characters anywhere are refused. */
int np_route_build(const struct nonoproxy_route_config *rc, size_t index, struct np_route *out,
                   char *why, size_t why_cap);

/* Compute r->inject_value from r->secret for HEADER (credential_format) and BASIC_AUTH
 * (Basic base64(secret)); nothing for the other modes or without a secret. Returns 0 or -1
 * (allocation, or a secret over NONOPROXY_SECRET_MAX or holding CR, LF or NUL). */
int np_route_prepare_injection(struct np_route *r);

/* Free the strings, wiping secret and inject_value. NULL-safe; leaves *r zeroed. */
void np_route_free(struct np_route *r);

/* "<UPPER(prefix)>_BASE_URL" with every non-alphanumeric byte turned into '_'. Returns the
 * length written (NUL-terminated) or 0 when cap is too small. */
size_t np_route_base_url_name(const struct np_route *r, char *out, size_t cap);

/* The phantom variable's name: env_var, or UPPER(credential_key) with non-alphanumerics as
 * '_' when the key has no "://"; 0 (nothing written) when the route gets no phantom
 * variable (no credential, or a URI key without env_var). */
size_t np_route_phantom_name(const struct np_route *r, char *out, size_t cap);

#endif /* NP_ROUTE_BUILD_H */
