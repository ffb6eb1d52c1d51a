/* Reverse-proxy routes (SPEC §1, §1.1, §6, §7 env names), L1: pure functions. Validation and
 * freezing of a route's configuration, prefix matching and the traversal check, phantom
 * checks per inject mode, the upstream request-target and the upstream request head. No I/O:
 * the caller (reverse.c) owns sockets, credentials loading (credential.c) and TLS (tls.c). */
#ifndef NP_ROUTE_H
#define NP_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nonoproxy/config.h>

#include "common.h"
#include "http_request.h"

/* A route as frozen at start. Strings are np_malloc'd and owned by the route. */
struct np_route {
    char *prefix;             /* normalised: leading/trailing '/' stripped, [A-Za-z0-9._-]+ */
    char *host;               /* normalised upstream host (lower-case, IPv6 without brackets) */
    char *host_header;        /* Host value: host, [v6], plus ":port" when not the default */
    char *base_path;          /* upstream path without trailing '/', "" for none ("/v1") */
    char *credential_key;     /* NULL = route without credential */
    char *inject_header;      /* "Authorization" by default */
    char *credential_format;  /* exactly one "{}"; derived default applied */
    char *path_pattern;       /* URL_PATH only: exactly one "{}" */
    char *path_replacement;   /* URL_PATH only: exactly one "{}"; default = path_pattern */
    char *query_param_name;   /* QUERY_PARAM only */
    char *env_var;            /* explicit phantom variable name, or NULL */
    char *tls_ca;             /* extra PEM roots, or NULL */

    /* Set after credential loading (by the caller); the secret is wiped by np_route_free. */
    char *secret;             /* NULL = not loaded */
    size_t secret_len;
    char *inject_value;       /* HEADER/BASIC_AUTH: the precomputed header value (wiped) */
    size_t inject_value_len;

    enum nonoproxy_inject_mode mode;
    uint16_t port;            /* explicit or the scheme default */
    bool tls;                 /* https upstream (false only for http:// to loopback) */
};

/* Validate rc (SPEC §1.1) and fill out (zeroed first). On error returns -1 and why holds one
 * line naming the route by index and prefix and the field, e.g.
 * "routes[1] 'svc': upstream: http:// is only allowed to loopback hosts ('example.com')".
 * Checks: prefix (after stripping '/') non-empty and [A-Za-z0-9._-]+; upstream parses as
 * http(s)://host[:port][/path] with no userinfo, query or fragment; http only to loopback
 * literals or "localhost"; host not on the hard deny list (names and every IP spelling);
 * inject_header an HTTP token; credential_format with exactly one "{}"; URL_PATH needs
 * path_pattern (and path_replacement) with exactly one "{}"; QUERY_PARAM needs a
 * query_param_name of unreserved characters; env_var matches [A-Za-z_][A-Za-z0-9_]* and is not a
 * refused name (np_route_env_name_refused); credential_key syntax is checked elsewhere
 * (credential.c). Strings are copied; control characters anywhere are refused. */
int np_route_build(const struct nonoproxy_route_config *rc, size_t index, struct np_route *out,
                   char *why, size_t why_cap);

/* Compute r->inject_value from r->secret for HEADER (credential_format) and BASIC_AUTH
 * (Basic base64(secret)); nothing for the other modes or without a secret. Returns 0 or -1
 * (allocation, or a secret over NONOPROXY_SECRET_MAX or holding CR, LF or NUL). */
int np_route_prepare_injection(struct np_route *r);

/* Free the strings, wiping secret and inject_value. NULL-safe; leaves *r zeroed. */
void np_route_free(struct np_route *r);

/* Whether name (case-insensitive) may not be used as an environment variable set from or
 * for credentials: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, DYLD_*, BASH_ENV, ENV, IFS, CDPATH,
 * PROMPT_COMMAND, NODE_OPTIONS, NODE_PATH, PYTHONSTARTUP, PYTHONPATH, PERL5OPT, PERL5LIB,
 * RUBYOPT, RUBYLIB, JAVA_TOOL_OPTIONS, _JAVA_OPTIONS, DOTNET_STARTUP_HOOKS, GOFLAGS, PATH,
 * HOME, SHELL, and the proxy's own variables (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, lower-case
 * forms, NONO_PROXY_TOKEN, NODE_USE_ENV_PROXY). */
bool np_route_env_name_refused(const char *name, size_t len);

/* "<UPPER(prefix)>_BASE_URL" with every non-alphanumeric byte turned into '_'. Returns the
 * length written (NUL-terminated) or 0 when cap is too small. */
size_t np_route_base_url_name(const struct np_route *r, char *out, size_t cap);

/* The phantom variable's name: env_var, or UPPER(credential_key) with non-alphanumerics as
 * '_' when the key has no "://"; 0 (nothing written) when the route gets no phantom
 * variable (no credential, or a URI key without env_var). */
size_t np_route_phantom_name(const struct np_route *r, char *out, size_t cap);

enum np_route_match {
    NP_ROUTE_FOUND = 0,
    NP_ROUTE_NOT_FOUND, /* no route has this first segment (404) */
    NP_ROUTE_ESCAPES,   /* the path leaves the prefix after decoding (400) */
};

/* Match an origin-form target "/<segment>[/rest][?query]" against routes[0..n): the first
 * segment (up to '/', '?' or the end) must equal a prefix exactly ("/svcX" never matches
 * "svc"). On FOUND *index is the route and *rest, *rest_len the remainder, query included,
 * pointing into target: it starts with '/', or with '?' for a target "/svc?q" (rest "?q",
 * which every function here reads as "/?q"; "/?q" itself is not in target); a target of
 * exactly "/svc" yields "/" (a static string).
 * ESCAPES when, in the path part of rest (before '?'), a dot-segment "." or ".." (also spelt
 * with %2e/%2E) would climb above rest's root, taking '/', '\\', %2f and %5c (any case) all
 * as separators; also when the path holds %00 or a literal '\\'. */
enum np_route_match np_route_match(const struct np_route *routes, size_t n, const char *target,
                                   size_t target_len, size_t *index, const char **rest,
                                   size_t *rest_len);

/* Whether req carries the phantom (the session token) as r's mode requires (SPEC §6.3),
 * comparing in constant time. rest is as from np_route_match. Routes with a credential:
 * HEADER: the first inject_header value equals the token, "Bearer <token>" (scheme
 * case-insensitive, any whitespace) or credential_format applied to the token; BASIC_AUTH:
 * "Basic base64(<any user>:<token>)"; URL_PATH: the token where {} stands in path_pattern
 * (first match of the pattern's prefix in rest's path; the token runs to the pattern's suffix,
 * or to the next '/' or '?' when the suffix is empty); QUERY_PARAM: the percent-decoded
 * value of the first query_param_name parameter. Routes without credential: a valid
 * Proxy-Authorization (np_token_check_proxy_auth) or "Authorization: Bearer <token>". */
bool np_route_phantom_ok(const struct np_route *r, const struct np_http_req *req,
                         const char *rest, size_t rest_len, const char *token);

/* Upstream request-target: base_path + the normalised path of rest (dot-segments removed) +
 * query, with the phantom replaced per mode: URL_PATH puts path_replacement with the real
 * secret (raw) where path_pattern matched; QUERY_PARAM sets every query_param_name parameter
 * to the percent-encoded secret (adding it when absent), other parameters byte for byte.
 * Other modes: unchanged. Requires r->secret for URL_PATH/QUERY_PARAM credential routes.
 * Returns 0 and the length in *out_len, or -1 when out (cap) is too small, the pattern is
 * not found, or a URL_PATH secret holds a byte a request-target cannot (controls, space,
 * non-ASCII). The output may hold the secret: the caller wipes it. */
int np_route_upstream_target(const struct np_route *r, const char *rest, size_t rest_len,
                             char *out, size_t cap, size_t *out_len);

/* Write the upstream request head for req into out (cap):
 *   "<METHOD> <target> HTTP/1.1\r\nHost: <host_header>\r\n", then the client's headers in
 *   order and byte for byte, except: hop-by-hop ones (np_http_hop_by_hop, http_req.h), Host,
 *   Content-Length; on credential routes in HEADER/BASIC_AUTH mode every inject_header; any
 *   header whose value contains the token (so the phantom never goes upstream, whichever
 *   header carried it);
 *   then "<inject_header>: <inject_value>\r\n" (HEADER/BASIC_AUTH with a loaded secret), then
 *   the body framing ("Content-Length: N" for LENGTH, "Transfer-Encoding: chunked" for
 *   CHUNKED, nothing for NONE), then "\r\n".
 * Returns 0 with *out_len, or -1 when cap is too small. The output holds the secret. */
int np_route_build_head(const struct np_route *r, const struct np_http_req *req,
                        const char *target, size_t target_len, enum np_framing body,
                        uint64_t content_length, const char *token, char *out, size_t cap,
                        size_t *out_len);

#endif /* NP_ROUTE_H */
