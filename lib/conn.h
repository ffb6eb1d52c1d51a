/* One client connection from accept to close (L4): read the head within the caps and the head
 * timeout, parse it, dispatch to the feature, answer every failure, record it. */
#ifndef NP_CONN_H
#define NP_CONN_H

#include "session.h"

/* Serve the connection se->fd until it ends, then close it. se's buffers must be allocated;
 * the other fields are set here. */
void np_conn_serve(struct np_session *se, const struct np_ctx *ctx, int fd);

#endif /* NP_CONN_H */
