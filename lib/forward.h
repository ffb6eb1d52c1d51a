/* Plain-HTTP forward proxy (SPEC §5, §8), L3: an absolute-form `GET http://host/path`
 * request, already proxy-authenticated, is filtered, rewritten to origin form and sent to the
 * origin — directly, or through a CONNECT tunnel of the external proxy — on a connection kept
 * alive for the next request of the same client to the same origin. */
#ifndef NP_FORWARD_H
#define NP_FORWARD_H

#include <stdbool.h>

#include "session.h"

/* Serve the absolute-form request in se->req (target starts with "http://", any case).
 * Every outcome is answered and audited. Returns true when the client connection may carry
 * another request (se->in then starts with the bytes after this one). */
bool np_forward_serve(struct np_session *se);

#endif /* NP_FORWARD_H */
