/* CONNECT tunnels (SPEC §4), L3: authority → auth → host filter → connect → 200 → relay. */
#ifndef NP_TUNNEL_H
#define NP_TUNNEL_H

#include "session.h"

/* Serve the CONNECT request in se->req (se->in holds the head and any early bytes). Answers
 * every failure itself; records one decision event, and a close event for opened tunnels.
 * Does not close se->fd. */
void np_tunnel_serve(struct np_session *se);

#endif /* NP_TUNNEL_H */
