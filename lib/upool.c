/* Upstream keep-alive pool (L2). */
#include "upool.h"

#include <poll.h>
#include <pthread.h>
#include <stdbool.h>

#include "alloc.h"
#include "common.h"

struct np_upool {
    pthread_mutex_t mu;
    struct np_uconn *idle; /* most recently returned first */
    size_t n_idle;
    size_t max_idle;
    uint32_t idle_ms;
};

int
np_upool_new(size_t max_idle, uint32_t idle_ms, struct np_upool **out)
{
    struct np_upool *p = np_calloc(1, sizeof(*p));

    if (p == NULL) {
        return -1;
    }
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        np_free(p);
        return -1;
    }
    p->max_idle = max_idle;
    p->idle_ms = idle_ms;
    *out = p;
    return 0;
}

void
np_upool_free(struct np_upool *p)
{
    struct np_uconn *c;

    if (p == NULL) {
        return;
    }
    while ((c = p->idle) != NULL) {
        p->idle = c->next;
        np_uconn_close(c);
    }
    pthread_mutex_destroy(&p->mu);
    np_free(p);
}

void
np_upool_close_idle(struct np_upool *p)
{
    struct np_uconn *c;

    pthread_mutex_lock(&p->mu);
    c = p->idle;
    p->idle = NULL;
    p->n_idle = 0;
    pthread_mutex_unlock(&p->mu);
    while (c != NULL) {
        struct np_uconn *next = c->next;
        np_uconn_close(c);
        c = next;
    }
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

struct np_uconn *
np_upool_take(struct np_upool *p)
{
    struct np_uconn *c;

    for (;;) {
        bool expired = false;
        pthread_mutex_lock(&p->mu);
        c = p->idle;
        if (c != NULL) {
            /* Read the clock under the lock: a connection returned by another thread just
             * before must not look older than now (the subtraction would wrap). */
            uint64_t now = np_now_ms();
            p->idle = c->next;
            p->n_idle--;
            c->next = NULL;
            expired = p->idle_ms != 0 && now >= c->idle_since && now - c->idle_since >= p->idle_ms;
        }
        pthread_mutex_unlock(&p->mu);
        if (c == NULL) {
            return NULL;
        }
        if (!expired && !uconn_stale(c)) {
            break;
        }
        np_uconn_close(c);
    }
    return c;
}

void
np_upool_put(struct np_upool *p, struct np_uconn *c)
{
    struct np_uconn *evict = NULL;

    c->idle_since = np_now_ms();
    pthread_mutex_lock(&p->mu);
    if (p->max_idle == 0) {
        evict = c;
    } else {
        c->next = p->idle;
        p->idle = c;
        p->n_idle++;
        if (p->n_idle > p->max_idle) {
            /* Drop the least recently used one: walk to the tail. */
            struct np_uconn **pp = &p->idle;
            while ((*pp)->next != NULL) {
                pp = &(*pp)->next;
            }
            evict = *pp;
            *pp = NULL;
            p->n_idle--;
        }
    }
    pthread_mutex_unlock(&p->mu);
    np_uconn_close(evict);
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
