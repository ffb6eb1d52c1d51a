/* The phantom check of routes (SPEC §6.3), L1: whether a request carries the phantom (the
 * session token) where the route's inject mode says, compared in constant time. */
#ifndef NP_ROUTE_PHANTOM_H
#define NP_ROUTE_PHANTOM_H

#include <stdbool.h>
#include <stddef.h>

#include "http_request.h"
#include "route_build.h"

/* Whether req carries the phantom (the session token) as r's mode requires (SPEC §6.3),
 * comparing in constant time. rest is as from np_route_match (route_path.h). Routes with a
 * credential: HEADER: the first inject_header value equals the token, "Bearer <token>" (scheme
 * case-insensitive, any whitespace) or credential_format applied to the token; BASIC_AUTH:
 * "Basic base64(<any user>:<token>)"; URL_PATH: the token where {} stands in path_pattern
 * (first match of the pattern's prefix in rest's path; the token runs to the pattern's suffix,
 * or to the next '/' or '?' when the suffix is empty); QUERY_PARAM: the percent-decoded
 * value of the first query_param_name parameter. Routes without credential: a valid
 * Proxy-Authorization (np_token_check_proxy_auth) or "Authorization: Bearer <token>". */
bool np_route_phantom_ok(const struct np_route *r, const struct np_http_req *req, const char *rest,
                         size_t rest_len, const char *token);

#endif /* NP_ROUTE_PHANTOM_H */
