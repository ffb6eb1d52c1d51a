/* Accept loop and bounded worker pool (SPEC §10), L4. One accept thread hands each connection
 * to an idle worker or starts a new one, up to max_connections busy workers; beyond that the
 * connection gets 503 + Retry-After from a small rejecter thread (which drains the request so
 * the client reads the answer) and the accept loop never waits for a worker. */
#ifndef NP_LISTENER_H
#define NP_LISTENER_H

#include "session.h"

struct np_listener;

/* Start the accept and rejecter threads on the bound, listening fd (ownership moves to the
 * listener on success). ctx must outlive the listener. Returns 0 or -1 with errno. */
int np_listener_start(const struct np_ctx *ctx, int listen_fd, struct np_listener **out);

/* Stop accepting, interrupt every connection (ctx->stop_fd must already be signalled), join
 * every thread, close every descriptor, free. NULL-safe. */
void np_listener_stop(struct np_listener *l);

#endif /* NP_LISTENER_H */
