/* Accept loop and bounded worker pool (SPEC §10), L4. The idle workers themselves block in
 * accept4() on the listening socket (the kernel wakes one per connection, which serves it):
 * at most max_connections serve at once, and one more waits in accept4(), so that beyond the
 * limit a connection gets 503 + Retry-After at once (a small rejecter thread then drains the
 * request so the client reads the answer); accepting never waits for a busy worker. Idle
 * workers above a floor of 4 exit after a linger of 5 s, and the last one of a shrink returns
 * the freed memory to the system. */
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

/* Set the linger of the listeners started from now on (0 = the default 5 s). Process-wide. */
/* test hook */
void np_listener_set_linger_ms(unsigned ms);

/* Paint the stacks of the workers spawned from now on (or stop), and reset the high-water
 * mark. Process-wide. */
/* test hook */
void np_listener_paint_stacks(bool on);

/* The deepest stack use, in bytes, of a painted worker freed since (its own frames, the TLS
 * and thread control block glibc puts at the top of the stack). */
/* test hook */
size_t np_listener_stack_high_water(void);

#endif /* NP_LISTENER_H */
