/* Accept loop, worker pool and rejecter (L4). */
#include "listener.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "conn.h"
#include "http_answer.h"

#define NP_REJECT_SLOTS 64   /* refused connections being drained at once */
#define NP_REJECT_MS    2000 /* how long a refused connection may take to go away */

struct worker {
    struct np_listener *l;
    pthread_t thread;
    pthread_cond_t cv;
    int fd;              /* connection handed over, -1 = none */
    struct worker *next; /* all workers */
    struct worker *next_idle;
    struct np_session se; /* buffers reused between connections */
};

struct reject_slot {
    int fd;
    uint64_t deadline;
};

struct np_listener {
    const struct np_ctx *ctx;
    int listen_fd;
    pthread_t accept_thread;
    pthread_t reject_thread;
    pthread_mutex_t mu;
    bool stopping;                          /* under mu */
    struct worker *workers;                 /* under mu */
    struct worker *idle;                    /* under mu */
    unsigned busy;                          /* connections being served, under mu */
    int reject_wake;                        /* eventfd: a refused connection was queued */
    struct reject_slot rq[NP_REJECT_SLOTS]; /* under mu */
};

/* Serve connections handed to w until the listener stops. */
static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    struct np_listener *l = w->l;
    int fd;

    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (w->fd < 0 && !l->stopping) {
            pthread_cond_wait(&w->cv, &l->mu);
        }
        if (w->fd < 0) {
            break; /* stopping and nothing handed over */
        }
        fd = w->fd;
        w->fd = -1;
        pthread_mutex_unlock(&l->mu);
        np_conn_serve(&w->se, l->ctx, fd);
        pthread_mutex_lock(&l->mu);
        l->busy--;
        w->next_idle = l->idle;
        l->idle = w;
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void
worker_free(struct worker *w)
{
    if (w != NULL) {
        np_session_release(&w->se);
        pthread_cond_destroy(&w->cv);
        np_free(w);
    }
}

/* Create a worker already holding fd, with an explicit small stack. Called under l->mu. */
static int
worker_spawn(struct np_listener *l, int fd)
{
    struct worker *w = np_calloc(1, sizeof(*w));
    pthread_attr_t attr;
    int rc;

    if (w == NULL) {
        return -1;
    }
    w->l = l;
    w->fd = fd;
    w->se.fd = -1;
    w->se.in = np_malloc(NP_IN_CAP); /* the relay buffers come when first needed */
    if (w->se.in == NULL || pthread_cond_init(&w->cv, NULL) != 0) {
        np_free(w->se.in);
        np_free(w);
        return -1;
    }
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, NP_THREAD_STACK);
    rc = pthread_create(&w->thread, &attr, worker_main, w);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        worker_free(w);
        return -1;
    }
    w->next = l->workers;
    l->workers = w;
    return 0;
}

/* Answer a refused connection with 503 at once and queue it for draining; with no free
 * slot it is closed right away. The audit event says why. */
static void
refuse(struct np_listener *l, int fd, const char *why)
{
    char buf[512];
    size_t n = np_http_format_text_error(buf, sizeof(buf), 503, "Retry-After: 1\r\n", why);
    struct nonoproxy_audit_event ev;
    uint64_t one = 1;
    size_t i;

    np_audit_event_init(&ev, NONOPROXY_MODE_CONNECT, NONOPROXY_DECISION_DENY);
    ev.denial_category = NONOPROXY_DENIAL_CONNECTION_LIMIT;
    ev.status = 503;
    np_audit_set(ev.reason, sizeof(ev.reason), why, strlen(why));
    np_emit(l->ctx, &ev);
    (void)send(fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)shutdown(fd, SHUT_WR);
    pthread_mutex_lock(&l->mu);
    for (i = 0; i < NP_REJECT_SLOTS; i++) {
        if (l->rq[i].fd < 0) {
            l->rq[i].fd = fd;
            l->rq[i].deadline = np_now_ms() + NP_REJECT_MS;
            fd = -1;
            break;
        }
    }
    pthread_mutex_unlock(&l->mu);
    if (fd < 0) {
        (void)write(l->reject_wake, &one, sizeof(one));
    }
    np_net_close(fd);
}

/* Give fd to an idle worker, a new worker, or refuse it. */
static void
dispatch(struct np_listener *l, int fd)
{
    unsigned max = l->ctx->s->max_connections;
    char why[96];
    struct worker *w;

    pthread_mutex_lock(&l->mu);
    if (max > 0 && l->busy >= max) {
        pthread_mutex_unlock(&l->mu);
        (void)snprintf(why, sizeof(why), "connection limit reached (%u)", max);
        refuse(l, fd, why);
        return;
    }
    w = l->idle;
    if (w != NULL) {
        l->idle = w->next_idle;
        w->fd = fd;
        l->busy++;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&l->mu);
        return;
    }
    if (worker_spawn(l, fd) == 0) {
        l->busy++;
        pthread_mutex_unlock(&l->mu);
        return;
    }
    pthread_mutex_unlock(&l->mu);
    np_log(l->ctx->s, NONOPROXY_LOG_ERROR, "cannot start a worker thread: %s", NP_ERRSTR(errno));
    refuse(l, fd, "no worker available");
}

/* Whether shutdown has begun (the stop descriptor is readable). */
static bool
stop_requested(const struct np_listener *l)
{
    struct pollfd p = {l->ctx->stop_fd, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
}

/* Accept until np_listener_stop() shuts the listening socket down, which makes the blocking
 * accept4() return. Accepted sockets inherit TCP_NODELAY from the listener. */
static void *
accept_main(void *arg)
{
    struct np_listener *l = arg;
    int fd;

    for (;;) {
        fd = accept4(l->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            dispatch(l, fd);
            continue;
        }
        if (stop_requested(l)) {
            break; /* accept4 failed because the listener was shut down */
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            np_log(l->ctx->s, NONOPROXY_LOG_WARN, "accept: %s", NP_ERRSTR(errno));
            (void)np_net_wait(l->ctx->stop_fd, POLLIN, -1, np_deadline(100));
        }
    }
    return NULL;
}

/* The poll set of the reject thread: the stop descriptor, the wake descriptor, then each
 * refused connection whose time is not up (closing those whose time is). idx maps pf[2 + k]
 * to its slot. Sets *wait_ms to the time until the nearest deadline; returns the set's size. */
static nfds_t
reject_poll_set(struct np_listener *l, struct pollfd *pf, size_t *idx, int *wait_ms)
{
    uint64_t now = np_now_ms();
    uint64_t next = now + NP_REJECT_MS;
    nfds_t n = 2;
    size_t i;

    pf[0] = (struct pollfd){l->ctx->stop_fd, POLLIN, 0};
    pf[1] = (struct pollfd){l->reject_wake, POLLIN, 0};
    pthread_mutex_lock(&l->mu);
    for (i = 0; i < NP_REJECT_SLOTS; i++) {
        if (l->rq[i].fd < 0) {
            continue;
        }
        if (l->rq[i].deadline <= now) {
            np_net_close(l->rq[i].fd);
            l->rq[i].fd = -1;
            continue;
        }
        next = l->rq[i].deadline < next ? l->rq[i].deadline : next;
        idx[n - 2] = i;
        pf[n++] = (struct pollfd){l->rq[i].fd, POLLIN, 0};
    }
    pthread_mutex_unlock(&l->mu);
    *wait_ms = (int)(next - now);
    return n;
}

/* Consume a wake-up; returns whether it asks the thread to stop. */
static bool
reject_woken(struct np_listener *l)
{
    uint64_t v;
    bool stop;

    (void)read(l->reject_wake, &v, sizeof(v));
    pthread_mutex_lock(&l->mu);
    stop = l->stopping;
    pthread_mutex_unlock(&l->mu);
    return stop;
}

/* Discard what the readable refused connections sent; close those that ended. */
static void
reject_drain(struct np_listener *l, const struct pollfd *pf, const size_t *idx, nfds_t n)
{
    char sink[4096];
    nfds_t i;

    for (i = 2; i < n; i++) {
        ssize_t r;

        if (pf[i].revents == 0) {
            continue;
        }
        r = recv(pf[i].fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            pthread_mutex_lock(&l->mu);
            np_net_close(l->rq[idx[i - 2]].fd);
            l->rq[idx[i - 2]].fd = -1;
            pthread_mutex_unlock(&l->mu);
        }
    }
}

/* Drain refused connections until they close or their time is up. */
static void *
reject_main(void *arg)
{
    struct np_listener *l = arg;
    struct pollfd pf[NP_REJECT_SLOTS + 2];
    size_t idx[NP_REJECT_SLOTS];
    int wait_ms;
    nfds_t n;

    for (;;) {
        n = reject_poll_set(l, pf, idx, &wait_ms);
        if (poll(pf, n, wait_ms) < 0) {
            continue; /* EINTR; the set is rebuilt */
        }
        if (pf[0].revents != 0 || (pf[1].revents != 0 && reject_woken(l))) {
            break;
        }
        reject_drain(l, pf, idx, n);
    }
    return NULL;
}

int
np_listener_start(const struct np_ctx *ctx, int listen_fd, struct np_listener **out)
{
    struct np_listener *l = np_calloc(1, sizeof(*l));
    pthread_attr_t attr;
    uint64_t one = 1;
    size_t i;
    int e;

    if (l == NULL) {
        return -1;
    }
    l->ctx = ctx;
    l->listen_fd = listen_fd;
    for (i = 0; i < NP_REJECT_SLOTS; i++) {
        l->rq[i].fd = -1;
    }
    l->reject_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->reject_wake < 0 || pthread_mutex_init(&l->mu, NULL) != 0) {
        e = errno;
        np_net_close(l->reject_wake);
        np_free(l);
        errno = e;
        return -1;
    }
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, NP_THREAD_STACK);
    e = pthread_create(&l->reject_thread, &attr, reject_main, l);
    if (e == 0) {
        e = pthread_create(&l->accept_thread, &attr, accept_main, l);
        if (e != 0) {
            pthread_mutex_lock(&l->mu);
            l->stopping = true;
            pthread_mutex_unlock(&l->mu);
            (void)write(l->reject_wake, &one, sizeof(one));
            pthread_join(l->reject_thread, NULL);
        }
    }
    pthread_attr_destroy(&attr);
    if (e != 0) {
        np_net_close(l->reject_wake);
        pthread_mutex_destroy(&l->mu);
        np_free(l);
        errno = e;
        return -1;
    }
    *out = l;
    return 0;
}

void
np_listener_stop(struct np_listener *l)
{
    struct worker *w;
    struct worker *next;
    size_t i;

    if (l == NULL) {
        return;
    }
    (void)shutdown(l->listen_fd, SHUT_RDWR); /* wakes the blocked accept4() */
    pthread_join(l->accept_thread, NULL);
    pthread_join(l->reject_thread, NULL);
    np_net_close(l->listen_fd);
    pthread_mutex_lock(&l->mu);
    l->stopping = true;
    for (w = l->workers; w != NULL; w = w->next) {
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&l->mu);
    for (w = l->workers; w != NULL; w = next) {
        next = w->next;
        pthread_join(w->thread, NULL);
        worker_free(w);
    }
    for (i = 0; i < NP_REJECT_SLOTS; i++) {
        np_net_close(l->rq[i].fd);
    }
    np_net_close(l->reject_wake);
    pthread_mutex_destroy(&l->mu);
    np_free(l);
}
