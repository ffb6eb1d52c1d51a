/* The embedder's decide callback (SPEC §13), L1: one ask per host:port at a time, remembered
 * session grants, the deadline, and the diagnostics array that reports the grants.
 *
 * Threads: np_decider_ask runs on connection threads and calls the callback on the calling
 * thread, without holding the lock. Asks for a host:port that is already being asked about
 * wait (condition variable, timed to the first ask's deadline) for that answer instead of
 * asking again. np_decider_stop wakes every waiter (they deny) and makes every later answer a
 * deny; a callback that is running is not interrupted (it is told its deadline). The
 * diagnostics array never moves: entries are written before the count that publishes them
 * (release/acquire), so np_decider_diagnostics is safe from any thread. */
#ifndef NP_DECIDE_H
#define NP_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nonoproxy/config.h>
#include <nonoproxy/proxy.h>

/* Remembered grants per proxy; beyond this, ALLOW_SESSION acts as ALLOW_ONCE (and a log line
 * says so). */
#define NP_DECIDE_MAX_GRANTS 4096

struct np_decider;

enum np_decide_outcome {
    NP_DECIDE_DENY = 0, /* the callback said deny (or answered an unknown value) */
    NP_DECIDE_ONCE,     /* allow this request or tunnel */
    NP_DECIDE_SESSION,  /* granted for the session: now, or remembered from before */
    NP_DECIDE_LATE,     /* no answer within the deadline */
    NP_DECIDE_STOPPED,  /* the proxy is shutting down */
    NP_DECIDE_OUT_OF_MEMORY,
};

struct np_decider_config {
    nonoproxy_decide_fn *fn; /* never NULL */
    void *userdata;
    uint32_t timeout_ms; /* 0 = no deadline */
    size_t max_grants;   /* 0 = NP_DECIDE_MAX_GRANTS */
    nonoproxy_log_fn *log_cb;
    void *log_userdata;
    enum nonoproxy_log_level log_level;
};

/* Create a decider. Returns 0, or -1 when out of memory. */
int np_decider_new(const struct np_decider_config *c, struct np_decider **out);
void np_decider_free(struct np_decider *d); /* NULL-safe; no ask may be running */

/* Copy the start-time diagnostics list[0..n) (their strings are borrowed: they must outlive
 * d) to the front of the diagnostics array; call once, before any ask. Returns 0 or -1. */
int np_decider_set_start_diags(struct np_decider *d, const struct nonoproxy_diagnostic *list,
                               size_t n);

/* Ask about host:port (q->host normalised; q->timeout_ms is filled here): a remembered grant
 * answers at once, a pending ask for the same host:port is waited for, else the callback is
 * called on this thread. */
enum np_decide_outcome np_decider_ask(struct np_decider *d, const struct nonoproxy_decide_query *q);

/* Whether host:port has a remembered grant (without asking). */
bool np_decider_granted(struct np_decider *d, const char *host, uint16_t port);

/* Stop: wake every waiter (they get NP_DECIDE_STOPPED), and from now on every answer is
 * NP_DECIDE_STOPPED and nothing is remembered. Idempotent; any thread. */
void np_decider_stop(struct np_decider *d);

/* The start-time diagnostics, then one "host_granted" entry per grant in the order granted.
 * The array is owned by d and valid until np_decider_free; its first *n entries never
 * change. Any thread. */
void np_decider_diagnostics(const struct np_decider *d, const struct nonoproxy_diagnostic **list,
                            size_t *n);

/* The number of threads waiting for another thread's ask right now. */
/* test hook */
size_t np_decider_waiting(struct np_decider *d);

#endif /* NP_DECIDE_H */
