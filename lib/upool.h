/* Keep-alive pool of upstream connections for one route (SPEC §6.5), L2. Bounded (at most
 * max_idle idle connections; more are closed when returned), idle-expired (a connection idle
 * longer than idle_ms is closed instead of reused) and checked on take: a connection whose
 * socket is readable while idle (the server closed it or sent something unasked) is dropped.
 * [any thread]: lock-free, an array of atomic slots (see upool.c); a caller's hint (its
 * worker's session address) picks the slot it tries first, so a worker usually gets back the
 * connection it returned, without touching what other workers use. */
#ifndef NP_UPOOL_H
#define NP_UPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "stream.h"
#include "tls.h"

/* One upstream connection. */
struct np_uconn {
    int fd;
    struct np_tls *tls;  /* NULL for plain http upstreams */
    struct np_stream st; /* over tls, or over fd */
    uint64_t idle_since; /* np_now_ms when returned to the pool */
};

struct np_upool;

/* Returns 0 or -1 (no memory). */
int np_upool_new(size_t max_idle, uint32_t idle_ms, struct np_upool **out);

/* Close every idle connection and free the pool. NULL-safe. */
void np_upool_free(struct np_upool *p);

/* Close every idle connection now (shutdown). [any thread] */
void np_upool_close_idle(struct np_upool *p);

/* A usable idle connection (the one in hint's slot when there is one), or NULL. Expired and
 * stale ones met on the way are closed. */
struct np_uconn *np_upool_take(struct np_upool *p, uintptr_t hint);

/* Return a connection that may be reused (its last response was read completely); closed
 * instead when every slot is taken. */
void np_upool_put(struct np_upool *p, struct np_uconn *c, uintptr_t hint);

/* Make a connection record for fd (and tls, may be NULL); fd and tls become owned by it.
 * Returns NULL when out of memory (fd and tls are then released). */
struct np_uconn *np_uconn_new(int fd, struct np_tls *tls, int stop_fd);

/* Release a connection: TLS close_notify (not waited for), close fd, free. NULL-safe. */
void np_uconn_close(struct np_uconn *c);

#endif /* NP_UPOOL_H */
