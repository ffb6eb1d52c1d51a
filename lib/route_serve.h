/* Reverse-proxy routes (SPEC §6), L3: one origin-form request from the client to a route's
 * upstream and its response back, both bodies streamed. */
#ifndef NP_ROUTE_SERVE_H
#define NP_ROUTE_SERVE_H

#include <stdbool.h>

#include "session.h"

/* Serve the origin-form request parsed in se->req (head in se->in[0..head_len), further bytes
 * up to in_len). Every outcome is answered and audited. Returns true when the client
 * connection may carry another request: se->in[0..in_len) then holds the bytes received
 * after this request (the start of a pipelined next head, possibly empty). */
bool np_reverse_serve(struct np_session *se);

#endif /* NP_ROUTE_SERVE_H */
