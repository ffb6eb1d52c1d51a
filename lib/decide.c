/* The embedder's decide callback (SPEC §13): see decide.h.
 *
 * One ask, by example (decide_timeout_ms 30000, callback C):
 *   thread A asks api.x:443        → no grant, nothing pending: A adds a pending entry with
 *                                    the deadline now+30 s, unlocks, calls C
 *   thread B asks api.x:443        → finds A's entry, waits on the condition variable
 *   C returns ALLOW_SESSION at 2 s → A locks, remembers the grant (and publishes its
 *                                    diagnostic), marks the entry done, wakes B: both allow
 *   thread D asks api.x:443 later  → the grant answers, C is not called
 * C returning after the deadline, or the proxy stopping, makes the answer a deny for A and B
 * and nothing is remembered. */
#include "decide.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "common.h"

/* One ask in progress for host:port; freed by the last thread that holds a reference. */
struct pending {
    struct pending *next;
    char host[NP_HOST_BUF];
    uint16_t port;
    uint64_t deadline; /* np_now_ms() clock; 0 = none */
    unsigned refs;
    bool done;
    enum np_decide_outcome result; /* when done */
};

struct grant {
    char *host;
    uint16_t port;
};

struct np_decider {
    nonoproxy_decide_fn *fn;
    void *userdata;
    uint32_t timeout_ms;
    nonoproxy_log_fn *log_cb;
    void *log_userdata;
    enum nonoproxy_log_level log_level;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC; broadcast when an ask ends and at stop */
    bool stopped;      /* under mu */
    size_t waiting;    /* threads in wait_for; under mu (test hook) */
    struct pending *pending;
    struct grant *grants; /* max_grants slots, n_grants used; under mu */
    size_t n_grants;
    size_t max_grants;

    struct nonoproxy_diagnostic *diags; /* diag_cap slots; never moves once asks may run */
    size_t diag_cap;
    atomic_size_t n_diags; /* published count: written with release after the entry */
};

static const char grant_code[] = "host_granted";

int
np_decider_new(const struct np_decider_config *c, struct np_decider **out)
{
    struct np_decider *d = NULL;
    pthread_condattr_t ca;
    int rc = -1;

    *out = NULL;
    if (c == NULL || c->fn == NULL || pthread_condattr_init(&ca) != 0) {
        return -1;
    }
    d = np_calloc(1, sizeof(*d));
    if (d == NULL) {
        goto out;
    }
    d->fn = c->fn;
    d->userdata = c->userdata;
    d->timeout_ms = c->timeout_ms;
    d->log_cb = c->log_cb;
    d->log_userdata = c->log_userdata;
    d->log_level = c->log_level;
    d->max_grants = c->max_grants != 0 ? c->max_grants : NP_DECIDE_MAX_GRANTS;
    atomic_init(&d->n_diags, 0);
    d->grants = np_calloc(d->max_grants, sizeof(*d->grants));
    d->diags = np_calloc(d->max_grants, sizeof(*d->diags));
    d->diag_cap = d->max_grants;
    if (d->grants == NULL || d->diags == NULL) {
        goto out;
    }
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&d->cv, &ca) != 0) {
        goto out;
    }
    if (pthread_mutex_init(&d->mu, NULL) != 0) {
        pthread_cond_destroy(&d->cv);
        goto out;
    }
    *out = d;
    d = NULL; /* ownership moved to the caller */
    rc = 0;
out:
    if (d != NULL) {
        np_free(d->grants);
        np_free(d->diags);
        np_free(d);
    }
    pthread_condattr_destroy(&ca);
    return rc;
}

void
np_decider_free(struct np_decider *d)
{
    size_t i;
    size_t n;

    if (d == NULL) {
        return;
    }
    n = atomic_load_explicit(&d->n_diags, memory_order_acquire);
    for (i = 0; i < n; i++) {
        if (d->diags[i].code == grant_code) {
            np_free((void *)(uintptr_t)d->diags[i].message);
        }
    }
    for (i = 0; i < d->n_grants; i++) {
        np_free(d->grants[i].host);
    }
    np_free(d->grants);
    np_free(d->diags);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    np_free(d);
}

int
np_decider_set_start_diags(struct np_decider *d, const struct nonoproxy_diagnostic *list, size_t n)
{
    struct nonoproxy_diagnostic *grown;

    if (n == 0) {
        return 0;
    }
    if (list == NULL || n > SIZE_MAX / sizeof(*grown) - d->max_grants ||
        atomic_load_explicit(&d->n_diags, memory_order_relaxed) != 0) {
        return -1;
    }
    grown = np_calloc(n + d->max_grants, sizeof(*grown));
    if (grown == NULL) {
        return -1;
    }
    memcpy(grown, list, n * sizeof(*grown));
    np_free(d->diags);
    d->diags = grown;
    d->diag_cap = n + d->max_grants;
    atomic_store_explicit(&d->n_diags, n, memory_order_release);
    return 0;
}

void
np_decider_diagnostics(const struct np_decider *d, const struct nonoproxy_diagnostic **list,
                       size_t *n)
{
    *list = d->diags;
    *n = atomic_load_explicit(&d->n_diags, memory_order_acquire);
}

void
np_decider_stop(struct np_decider *d)
{
    if (d == NULL) {
        return;
    }
    pthread_mutex_lock(&d->mu);
    d->stopped = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/* Give one line to the log callback at level (outside the lock). */
static void decider_log(const struct np_decider *d, enum nonoproxy_log_level level, const char *fmt,
                        ...) __attribute__((format(printf, 3, 4)));

static void
decider_log(const struct np_decider *d, enum nonoproxy_log_level level, const char *fmt, ...)
{
    char line[NP_REASON_MAX];
    va_list ap;

    if (d->log_cb == NULL || level > d->log_level) {
        return;
    }
    va_start(ap, fmt);
    (void)vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    d->log_cb(d->log_userdata, level, line);
}

/* Whether host:port has a remembered grant. Under d->mu. */
static bool
find_grant(const struct np_decider *d, const char *host, uint16_t port)
{
    size_t i;

    for (i = 0; i < d->n_grants; i++) {
        if (d->grants[i].port == port && strcmp(d->grants[i].host, host) == 0) {
            return true;
        }
    }
    return false;
}

/* The pending ask for host:port, or NULL. Under d->mu. */
static struct pending *
find_pending(const struct np_decider *d, const char *host, uint16_t port)
{
    struct pending *p;

    for (p = d->pending; p != NULL; p = p->next) {
        if (p->port == port && strcmp(p->host, host) == 0) {
            return p;
        }
    }
    return NULL;
}

/* Drop one reference to p (already unlinked when done); free it with the last. Under d->mu. */
static void
release(struct pending *p)
{
    if (--p->refs == 0) {
        np_free(p);
    }
}

static void
unlink_pending(struct np_decider *d, const struct pending *p)
{
    struct pending **pp;

    for (pp = &d->pending; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            return;
        }
    }
}

/* Wait for another thread's ask p to end: its answer, the deadline, or stop. Under d->mu. */
static enum np_decide_outcome
wait_for(struct np_decider *d, const struct pending *p)
{
    d->waiting++;
    while (!p->done && !d->stopped) {
        if (p->deadline == 0) {
            pthread_cond_wait(&d->cv, &d->mu);
        } else {
            struct timespec ts;

            if (np_now_ms() >= p->deadline) {
                break;
            }
            ts.tv_sec = (time_t)(p->deadline / 1000);
            ts.tv_nsec = (long)(p->deadline % 1000) * 1000000L;
            (void)pthread_cond_timedwait(&d->cv, &d->mu, &ts);
        }
    }
    d->waiting--;
    if (p->done) {
        return p->result;
    }
    return d->stopped ? NP_DECIDE_STOPPED : NP_DECIDE_LATE;
}

/* Remember host:port and publish its diagnostic. Returns false when the table is full or
 * memory is short (the grant then acts as once). Under d->mu. */
static bool
remember(struct np_decider *d, const char *host, uint16_t port)
{
    bool v6 = strchr(host, ':') != NULL;
    size_t n = atomic_load_explicit(&d->n_diags, memory_order_relaxed);
    char *copy;
    char *msg;
    int len;

    if (d->n_grants >= d->max_grants || n >= d->diag_cap) {
        return false;
    }
    copy = np_strdup(host);
    msg = np_malloc(NP_REASON_MAX);
    if (copy == NULL || msg == NULL) {
        np_free(copy);
        np_free(msg);
        return false;
    }
    len = snprintf(msg, NP_REASON_MAX,
                   "host %s%s%s:%u granted for the session by the decide callback", v6 ? "[" : "",
                   host, v6 ? "]" : "", (unsigned)port);
    if (len < 0) {
        msg[0] = '\0';
    }
    d->grants[d->n_grants].host = copy;
    d->grants[d->n_grants].port = port;
    d->n_grants++;
    d->diags[n].code = grant_code;
    d->diags[n].route = "";
    d->diags[n].message = msg;
    atomic_store_explicit(&d->n_diags, n + 1, memory_order_release);
    return true;
}

/* The outcome of the callback's answer to ask p. *full is set when a session grant could
 * not be remembered. Under d->mu. */
static enum np_decide_outcome
judge(struct np_decider *d, const struct pending *p, enum nonoproxy_decide_answer answer,
      bool *full)
{
    *full = false;
    if (d->stopped) {
        return NP_DECIDE_STOPPED;
    }
    if (p->deadline != 0 && np_now_ms() >= p->deadline) {
        return NP_DECIDE_LATE;
    }
    switch (answer) {
    case NONOPROXY_DECIDE_ALLOW_ONCE:
        return NP_DECIDE_ONCE;
    case NONOPROXY_DECIDE_ALLOW_SESSION:
        if (remember(d, p->host, p->port)) {
            return NP_DECIDE_SESSION;
        }
        *full = true;
        return NP_DECIDE_ONCE;
    case NONOPROXY_DECIDE_DENY:
        break;
    }
    return NP_DECIDE_DENY; /* DENY, or a value the enum does not know */
}

/* Ask the callback about q for pending entry p (registered, one reference held), then
 * publish the outcome to the waiters. Called without d->mu. */
static enum np_decide_outcome
call_and_publish(struct np_decider *d, struct pending *p, const struct nonoproxy_decide_query *q)
{
    struct nonoproxy_decide_query ask = *q;
    enum nonoproxy_decide_answer answer;
    enum np_decide_outcome res;
    bool full = false;

    ask.timeout_ms = d->timeout_ms;
    answer = d->fn(d->userdata, &ask);
    pthread_mutex_lock(&d->mu);
    res = judge(d, p, answer, &full);
    p->done = true;
    p->result = res;
    unlink_pending(d, p);
    pthread_cond_broadcast(&d->cv);
    release(p);
    pthread_mutex_unlock(&d->mu);
    if (full) {
        decider_log(d, NONOPROXY_LOG_WARN,
                    "decide: %zu session grants are remembered already (or out of memory); "
                    "%s port %u is allowed once",
                    d->max_grants, q->host, (unsigned)q->port);
    }
    return res;
}

size_t
np_decider_waiting(struct np_decider *d)
{
    size_t n;

    pthread_mutex_lock(&d->mu);
    n = d->waiting;
    pthread_mutex_unlock(&d->mu);
    return n;
}

bool
np_decider_granted(struct np_decider *d, const char *host, uint16_t port)
{
    bool found;

    if (d == NULL || host == NULL) {
        return false;
    }
    pthread_mutex_lock(&d->mu);
    found = find_grant(d, host, port);
    pthread_mutex_unlock(&d->mu);
    return found;
}

enum np_decide_outcome
np_decider_ask(struct np_decider *d, const struct nonoproxy_decide_query *q)
{
    enum np_decide_outcome res = NP_DECIDE_OUT_OF_MEMORY;
    struct pending *p;
    size_t len;

    if (d == NULL || q == NULL || q->host == NULL) {
        return NP_DECIDE_DENY;
    }
    len = strnlen(q->host, NP_HOST_BUF);
    if (len >= NP_HOST_BUF) {
        return NP_DECIDE_DENY;
    }
    pthread_mutex_lock(&d->mu);
    if (d->stopped) {
        res = NP_DECIDE_STOPPED;
    } else if (find_grant(d, q->host, q->port)) {
        res = NP_DECIDE_SESSION;
    } else if ((p = find_pending(d, q->host, q->port)) != NULL) {
        p->refs++;
        res = wait_for(d, p);
        release(p);
    } else if ((p = np_calloc(1, sizeof(*p))) != NULL) {
        memcpy(p->host, q->host, len + 1);
        p->port = q->port;
        p->deadline = np_deadline(d->timeout_ms);
        p->refs = 1;
        p->next = d->pending;
        d->pending = p;
        pthread_mutex_unlock(&d->mu);
        return call_and_publish(d, p, q);
    }
    pthread_mutex_unlock(&d->mu);
    return res;
}
