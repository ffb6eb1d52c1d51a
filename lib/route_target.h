/* The upstream request-target of a route (SPEC §6.4), L1: base path, the normalised rest,
 * the query, with the phantom replaced by the real secret per mode. */
#ifndef NP_ROUTE_TARGET_H
#define NP_ROUTE_TARGET_H

#include <stddef.h>

#include "buf.h"
#include "http_request.h"
#include "route_build.h"
#include "upstream_head.h"

/* Upstream request-target: base_path + the normalised path of rest (dot-segments removed) +
 * query, with the phantom replaced per mode: URL_PATH puts path_replacement with the real
 * secret (raw) where path_pattern matched; QUERY_PARAM sets every query_param_name parameter
 * to the percent-encoded secret (adding it when absent), other parameters byte for byte.
 * Other modes: unchanged. Requires r->secret for URL_PATH/QUERY_PARAM credential routes.
 * Returns 0 (the target appended to out), or -1 when out is too small, the pattern is not
 * found, or a URL_PATH secret holds a byte a request-target cannot (controls, space,
 * non-ASCII), or -2 when out of memory; on failure what was appended is wiped. The output may
 * hold the secret: the caller wipes it. */
int np_route_upstream_target(const struct np_route *r, const char *rest, size_t rest_len,
                             struct np_buf *out);

/* Fill u for the upstream head of req on route r (target, framing and token given): Host is
 * the upstream's; on a credential route in HEADER or BASIC_AUTH mode every inject_header the
 * client sent is dropped and, with a loaded secret, the real one added. np_uphead_build
 * (upstream_head.h) writes it. */
void np_route_uphead(const struct np_route *r, const struct np_http_req *req,
                     struct np_slice target, const char *token, struct np_uphead *u);

#endif /* NP_ROUTE_TARGET_H */
