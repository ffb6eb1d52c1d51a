/* Upstream keep-alive pool (L2).
 *
 * The idle connections sit in a fixed array of atomic slots, one pointer each: a put claims
 * an empty slot with a compare-and-swap, a take empties a full one with an exchange. No lock,
 * and no ABA hazard either: a slot is only ever swapped whole, and a connection is owned by
 * exactly one party at a time (the slot or the thread that took it). Each caller passes a
 * hint (the worker's session address): its scan starts at the slot the hint names, so a
 * worker usually takes back the connection it put, from a cache line other workers rarely
 * write, and falls back to the other slots when its own is empty or taken. */
#include "upool.h"

#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "alloc.h"
#include "common.h"

struct np_upool {
    size_t n_slots; /* max_idle */
    uint32_t idle_ms;
    _Atomic(struct np_uconn *) slot[]; /* NULL = empty */
};

int
np_upool_new(size_t max_idle, uint32_t idle_ms, struct np_upool **out)
{
    struct np_upool *p = np_calloc(1, sizeof(*p) + max_idle * sizeof(p->slot[0]));
    size_t i;

    if (p == NULL) {
        return -1;
    }
    p->n_slots = max_idle;
    p->idle_ms = idle_ms;
    for (i = 0; i < max_idle; i++) {
        atomic_init(&p->slot[i], NULL);
    }
    *out = p;
    return 0;
}

void
np_upool_close_idle(struct np_upool *p)
{
    size_t i;

    for (i = 0; i < p->n_slots; i++) {
        np_uconn_close(atomic_exchange(&p->slot[i], NULL));
    }
}

void
np_upool_free(struct np_upool *p)
{
    if (p == NULL) {
        return;
    }
    np_upool_close_idle(p);
    np_free(p);
}

/* Whether an idle connection's socket shows anything: EOF, an error, or bytes nobody asked
 * for. Any of these makes it unusable for the next request. */
static bool
uconn_stale(const struct np_uconn *c)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN, .revents = 0};

    if (c->tls != NULL && np_stream_pending(&c->st)) {
        return true;
    }
    return poll(&pfd, 1, 0) != 0;
}

/* The first slot a caller with this hint looks at. */
static size_t
upool_home(const struct np_upool *p, uintptr_t hint)
{
    /* Sessions are large structures: the low bits say nothing, the ones above spread. */
    return (size_t)((hint >> 6) ^ (hint >> 14)) % p->n_slots;
}

struct np_uconn *
np_upool_take(struct np_upool *p, uintptr_t hint)
{
    size_t home;
    size_t i;

    if (p->n_slots == 0) {
        return NULL;
    }
    home = upool_home(p, hint);
    for (i = 0; i < p->n_slots; i++) {
        _Atomic(struct np_uconn *) *s = &p->slot[(home + i) % p->n_slots];
        struct np_uconn *c;
        uint64_t now;

        if (atomic_load_explicit(s, memory_order_relaxed) == NULL ||
            (c = atomic_exchange_explicit(s, NULL, memory_order_acquire)) == NULL) {
            continue;
        }
        /* The clock after the exchange, which saw the put's idle_since; the comparison
         * first all the same, so that a clock read on another CPU cannot make it wrap. */
        now = np_now_ms();
        if ((p->idle_ms != 0 && now >= c->idle_since && now - c->idle_since >= p->idle_ms) ||
            uconn_stale(c)) {
            np_uconn_close(c);
            continue;
        }
        return c;
    }
    return NULL;
}

void
np_upool_put(struct np_upool *p, struct np_uconn *c, uintptr_t hint)
{
    size_t home;
    size_t i;

    if (p->n_slots == 0) {
        np_uconn_close(c);
        return;
    }
    c->idle_since = np_now_ms();
    home = upool_home(p, hint);
    for (i = 0; i < p->n_slots; i++) {
        _Atomic(struct np_uconn *) *s = &p->slot[(home + i) % p->n_slots];
        struct np_uconn *empty = NULL;

        if (atomic_load_explicit(s, memory_order_relaxed) == NULL &&
            atomic_compare_exchange_strong_explicit(s, &empty, c, memory_order_release,
                                                    memory_order_relaxed)) {
            return;
        }
    }
    np_uconn_close(c); /* every slot holds one: the pool is full */
}

struct np_uconn *
np_uconn_new(int fd, struct np_tls *tls, int stop_fd)
{
    struct np_uconn *c = np_calloc(1, sizeof(*c));

    if (c == NULL) {
        np_tls_free(tls);
        np_net_close(fd);
        return NULL;
    }
    c->fd = fd;
    c->tls = tls;
    if (tls != NULL) {
        np_tls_stream(tls, &c->st);
    } else {
        np_stream_init_plain(&c->st, fd, stop_fd);
    }
    return c;
}

void
np_uconn_close(struct np_uconn *c)
{
    if (c == NULL) {
        return;
    }
    np_tls_free(c->tls);
    np_net_close(c->fd);
    np_free(c);
}
