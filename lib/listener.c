/* Accept loop, worker pool and rejecter (L4). */
#include "listener.h"

#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "alloc.h"
#include "conn.h"
#include "http_answer.h"

#define NP_REJECT_SLOTS 64   /* refused connections being drained at once */
#define NP_REJECT_MS    2000 /* how long a refused connection may take to go away */
#define NP_WORKER_FLOOR 4    /* idle workers kept however long they idle */
#define NP_LINGER_MS    5000 /* an idle worker above the floor exits after this long */

/* The linger of listeners started from now on (test hook; 0 = NP_LINGER_MS). */
static atomic_uint linger_ms_hook;

/* Stack measurement (test hook): new worker stacks are painted with STACK_PAINT before the
 * thread starts; when a worker is freed, the lowest byte that is no longer paint gives its
 * deepest use, and the largest seen is kept. */
#define STACK_PAINT 0xA5
static atomic_bool paint_hook;
static atomic_size_t stack_high_water;

/* A worker lives in the mapping that holds its stack (worker_map): the struct ends the
 * stack's last page, where the thread's own block keeps that page resident anyway, placed so
 * that se.req (the session's last member) starts the next page, one of its own. */
struct worker {
    struct np_listener *l;
    pthread_t thread;
    void *stack;          /* the mapping: guard page, stack and this struct, se.req's page,
                             the request buffer */
    size_t map_len;       /* its length */
    size_t stack_size;    /* the thread's stack: from stack + guard to below this struct */
    bool painted;         /* the stack was painted (paint_hook) */
    struct worker *next;  /* on l->workers or l->zombies, under l->mu */
    struct np_session se; /* buffers reused between connections; se.req last */
};

_Static_assert(offsetof(struct worker, se.req) % _Alignof(struct worker) == 0,
               "a worker placed so that se.req starts a page is aligned");
_Static_assert(offsetof(struct worker, se.req) <= 4096 &&
                   sizeof(struct worker) - offsetof(struct worker, se.req) <= 4096,
               "a worker fits the stack's last page and se.req's page");

struct reject_slot {
    int fd;
    uint64_t deadline;
};

/* Every worker blocks in accept4() on the shared listening socket itself: the kernel wakes
 * exactly one of them per connection, which serves it on the same thread (one wake-up from
 * SYN to the first read; no hand-off). The counters below keep max_connections: the worker
 * that takes the last idle slot spawns a successor first, so one thread always waits in
 * accept4(); at the limit that thread (the max_connections + 1st) refuses with 503. */
struct np_listener {
    const struct np_ctx *ctx;
    int listen_fd;
    pthread_t reject_thread;
    pthread_mutex_t mu;
    bool stopping;                          /* under mu */
    struct worker *workers;                 /* live workers, under mu */
    struct worker *zombies;                 /* exited, not joined yet, under mu */
    unsigned n_workers;                     /* live workers, under mu */
    unsigned busy;                          /* connections being served, under mu */
    unsigned exiting;                       /* exited workers still freeing memory, under mu */
    unsigned up;                            /* threads that reached their loop, under mu */
    pthread_cond_t up_cv;                   /* signalled as each does */
    int reject_wake;                        /* eventfd: a refused connection was queued */
    struct reject_slot rq[NP_REJECT_SLOTS]; /* under mu */
};

static void *worker_main(void *arg);

/* The guard below each worker stack: one page. */
static size_t
stack_guard(void)
{
    long page = sysconf(_SC_PAGESIZE);

    return page > 0 ? (size_t)page : 4096;
}

/* The worker's request buffer (NP_IN_CAP, whole pages), mapped right above its stack. */
static size_t
in_map_size(void)
{
    size_t page = stack_guard();

    return (NP_IN_CAP + page - 1) / page * page;
}

/* Record the deepest use of w's painted stack (the thread has been joined). */
static void
stack_measure(const struct worker *w)
{
    const unsigned char *low = (const unsigned char *)w->stack + stack_guard();
    size_t i = 0;
    size_t used;
    size_t seen = atomic_load(&stack_high_water);

    while (i < w->stack_size && low[i] == STACK_PAINT) {
        i++;
    }
    used = w->stack_size - i;
    while (used > seen && !atomic_compare_exchange_weak(&stack_high_water, &seen, used)) {
    }
}

/* Free a worker that never ran or has been joined: its buffers, and the mapping that holds
 * its stack, its request buffer (wiped first: it may still hold the last request's head) and
 * w itself. NULL-safe. */
static void
worker_free(struct worker *w)
{
    void *map;
    size_t len;

    if (w != NULL) {
        np_session_release(&w->se);
        if (w->painted) {
            stack_measure(w);
        }
        np_secure_zero(w->se.in, w->se.in_len);
        map = w->stack;
        len = w->map_len;
        (void)munmap(map, len); /* w is gone */
    }
}

/* Map a worker: its stack above one inaccessible guard page, the struct itself at the top of
 * the stack's NP_THREAD_STACK bytes (the stack proper ends below it), se.req on the next page
 * and the request buffer se.in after that, in whole pages, so that an idle tunnel can give the
 * buffer, its head and the stack's unused depth back (np_session_trim). The stack is ours, not
 * glibc's: glibc would keep up to 40 MiB of exited threads' stacks cached, each with its top
 * pages resident (16 KiB each), so RSS would not come back after a burst; ours is unmapped as
 * soon as the worker is joined. Sets attr. Returns the worker (zeroed but for the mapping's
 * fields) or NULL with errno. */
static struct worker *
worker_map(pthread_attr_t *attr)
{
    size_t page = stack_guard();
    size_t len = page + NP_THREAD_STACK + page + in_map_size();
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    char *req_page = map + page + NP_THREAD_STACK;
    struct worker *w;

    if (map == MAP_FAILED) {
        return NULL;
    }
    if (mprotect(map, page, PROT_NONE) != 0) {
        (void)munmap(map, len);
        return NULL; /* no guard, no thread */
    }
    w = (struct worker *)(req_page - offsetof(struct worker, se.req));
    w->stack = map;
    w->map_len = len;
    w->stack_size = (size_t)(((uintptr_t)w & ~(uintptr_t)63) - (uintptr_t)(map + page));
    w->se.fd = -1;
    w->se.req_map = page;
    w->se.in = req_page + page;
    w->se.in_map = in_map_size();
    if (atomic_load(&paint_hook)) {
        memset(map + page, STACK_PAINT, w->stack_size);
        w->painted = true;
    } else {
        w->se.stack_lo = map + page; /* painted stacks are not trimmed */
    }
    errno = pthread_attr_setstack(attr, map + page, w->stack_size);
    if (errno != 0) {
        (void)munmap(map, len);
        return NULL;
    }
    return w;
}

/* Create a worker, waiting in accept4() on its own small stack (worker_map). Called under
 * l->mu. Returns 0 or -1 with errno. */
static int
worker_spawn(struct np_listener *l)
{
    struct worker *w;
    pthread_attr_t attr;
    int rc;

    pthread_attr_init(&attr);
    w = worker_map(&attr); /* the relay buffers come when first needed */
    rc = w == NULL ? errno : 0;
    if (w != NULL) {
        w->l = l;
        rc = pthread_create(&w->thread, &attr, worker_main, w);
    }
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        worker_free(w);
        errno = rc;
        return -1;
    }
    w->next = l->workers;
    l->workers = w;
    l->n_workers++;
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

/* Serve fd, just accepted by w: count it, refuse it at the limit, and when w took the last
 * idle slot spawn the worker that waits in accept4() meanwhile. */
static void
serve(struct worker *w, int fd)
{
    struct np_listener *l = w->l;
    unsigned max = l->ctx->s->max_connections;
    char why[96];
    int e = 0;

    pthread_mutex_lock(&l->mu);
    if (l->stopping) {
        pthread_mutex_unlock(&l->mu);
        np_net_close(fd);
        return;
    }
    if (max > 0 && l->busy >= max) {
        pthread_mutex_unlock(&l->mu);
        (void)snprintf(why, sizeof(why), "connection limit reached (%u)", max);
        refuse(l, fd, why);
        return;
    }
    l->busy++;
    if (l->busy == l->n_workers && worker_spawn(l) != 0) {
        e = errno;
        l->busy--; /* w stays the one waiting in accept4() */
    }
    pthread_mutex_unlock(&l->mu);
    if (e != 0) {
        np_log(l->ctx->s, NONOPROXY_LOG_ERROR, "cannot start a worker thread: %s", NP_ERRSTR(e));
        refuse(l, fd, "no worker available");
        return;
    }
    np_conn_serve(&w->se, l->ctx, fd);
    pthread_mutex_lock(&l->mu);
    l->busy--;
    pthread_mutex_unlock(&l->mu);
}

/* Whether shutdown has begun (the stop descriptor is readable). */
static bool
stop_requested(const struct np_listener *l)
{
    struct pollfd p = {l->ctx->stop_fd, POLLIN, 0};
    return poll(&p, 1, 0) > 0;
}

/* Unlink w from l->workers (under l->mu). */
static void
unlink_worker(struct np_listener *l, const struct worker *w)
{
    struct worker **pp;

    for (pp = &l->workers; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            return;
        }
    }
}

/* After a linger without a connection: exit when above the floor and another worker still
 * waits in accept4(). An exiting worker moves itself to the zombies, frees its buffers, joins
 * the zombies before it, and the last one of a shrink returns the freed memory to the system
 * (malloc_trim). w is not touched once it is on the zombie list but by the thread joining it
 * after it returned. Returns whether w exits. */
static bool
retire(struct worker *w)
{
    struct np_listener *l = w->l;
    struct worker *old;
    struct worker *next;
    bool trim;

    pthread_mutex_lock(&l->mu);
    if (l->stopping || l->n_workers <= NP_WORKER_FLOOR || l->n_workers - l->busy < 2) {
        pthread_mutex_unlock(&l->mu);
        return false;
    }
    unlink_worker(l, w);
    l->n_workers--;
    l->exiting++;
    old = l->zombies;
    w->next = NULL;
    l->zombies = w;
    pthread_mutex_unlock(&l->mu);
    np_session_release(&w->se); /* w itself (and se.in) are freed by whoever joins it */
    for (; old != NULL; old = next) {
        next = old->next;
        pthread_join(old->thread, NULL);
        worker_free(old);
    }
    pthread_mutex_lock(&l->mu);
    trim = --l->exiting == 0;
    pthread_mutex_unlock(&l->mu);
#ifdef __GLIBC__
    if (trim) {
        (void)malloc_trim(0);
    }
#else
    NP_UNUSED(trim);
#endif
    return true;
}

/* Tell np_listener_start that one more thread runs its loop (its start-up, the sanitizers'
 * thread set-up included, is over). */
static void
thread_up(struct np_listener *l)
{
    pthread_mutex_lock(&l->mu);
    l->up++;
    pthread_cond_broadcast(&l->up_cv);
    pthread_mutex_unlock(&l->mu);
}

/* Accept and serve until np_listener_stop() shuts the listening socket down (which makes every
 * blocked accept4() return) or, above the floor, until a linger passes without a connection
 * (SO_RCVTIMEO of the listening socket bounds accept4()). Accepted sockets are O_NONBLOCK
 * (every read and write of the library on them is MSG_DONTWAIT after poll, and splice needs
 * it) and inherit TCP_NODELAY and that SO_RCVTIMEO from the listener (harmless: nothing
 * blocks on them). */
static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    struct np_listener *l = w->l;
    int fd;

    thread_up(l);
    for (;;) {
        fd = accept4(l->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            serve(w, fd);
            continue;
        }
        if (stop_requested(l)) {
            break; /* accept4 failed because the listener was shut down */
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (retire(w)) {
                break;
            }
        } else if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            np_log(l->ctx->s, NONOPROXY_LOG_WARN, "accept: %s", NP_ERRSTR(errno));
            (void)np_net_wait(l->ctx->stop_fd, POLLIN, -1, np_deadline(100));
        }
    }
    return NULL;
}

void
np_listener_paint_stacks(bool on)
{
    atomic_store(&paint_hook, on);
    atomic_store(&stack_high_water, 0);
}

size_t
np_listener_stack_high_water(void)
{
    return atomic_load(&stack_high_water);
}

void
np_listener_set_linger_ms(unsigned ms)
{
    atomic_store(&linger_ms_hook, ms);
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

    thread_up(l);
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

/* Bound accept4() on fd by the linger (SO_RCVTIMEO). Returns 0 or -1 with errno. */
static int
set_linger(int fd)
{
    unsigned ms = atomic_load(&linger_ms_hook);
    struct timeval tv;

    if (ms == 0) {
        ms = NP_LINGER_MS;
    }
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* Join and free every worker (live or exited); none is spawned once l->stopping is set. */
static void
join_workers(struct np_listener *l)
{
    struct worker *w;

    for (;;) {
        pthread_mutex_lock(&l->mu);
        w = l->workers != NULL ? l->workers : l->zombies;
        if (w == l->workers && w != NULL) {
            l->workers = w->next;
        } else if (w != NULL) {
            l->zombies = w->next;
        }
        pthread_mutex_unlock(&l->mu);
        if (w == NULL) {
            return;
        }
        pthread_join(w->thread, NULL);
        worker_free(w);
    }
}

/* Start the rejecter thread and the first worker; 0 or an errno value. */
static int
start_threads(struct np_listener *l)
{
    pthread_attr_t attr;
    uint64_t one = 1;
    int e;

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, NP_THREAD_STACK);
    e = pthread_create(&l->reject_thread, &attr, reject_main, l);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        return e;
    }
    pthread_mutex_lock(&l->mu);
    if (worker_spawn(l) != 0) {
        e = errno;
        l->stopping = true;
    }
    pthread_mutex_unlock(&l->mu);
    if (e != 0) {
        (void)write(l->reject_wake, &one, sizeof(one));
        pthread_join(l->reject_thread, NULL);
        return e;
    }
    /* Return once both threads run: no thread of the proxy is then in its start-up (where it
     * may hold allocator locks) when the embedder goes on, e.g. to fork(). */
    pthread_mutex_lock(&l->mu);
    while (l->up < 2) {
        pthread_cond_wait(&l->up_cv, &l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    return 0;
}

int
np_listener_start(const struct np_ctx *ctx, int listen_fd, struct np_listener **out)
{
    struct np_listener *l = np_calloc(1, sizeof(*l));
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
    if (l->reject_wake < 0 || set_linger(listen_fd) != 0 || pthread_mutex_init(&l->mu, NULL) != 0) {
        e = errno;
        np_net_close(l->reject_wake);
        np_free(l);
        errno = e;
        return -1;
    }
    e = pthread_cond_init(&l->up_cv, NULL);
    if (e == 0) {
        e = start_threads(l);
        if (e != 0) {
            pthread_cond_destroy(&l->up_cv);
        }
    }
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
    size_t i;

    if (l == NULL) {
        return;
    }
    pthread_mutex_lock(&l->mu);
    l->stopping = true; /* no worker spawns or retires from here on */
    pthread_mutex_unlock(&l->mu);
    (void)shutdown(l->listen_fd, SHUT_RDWR); /* wakes every blocked accept4() */
    join_workers(l);
    pthread_join(l->reject_thread, NULL);
    np_net_close(l->listen_fd);
    for (i = 0; i < NP_REJECT_SLOTS; i++) {
        np_net_close(l->rq[i].fd);
    }
    np_net_close(l->reject_wake);
    pthread_cond_destroy(&l->up_cv);
    pthread_mutex_destroy(&l->mu);
    np_free(l);
}
