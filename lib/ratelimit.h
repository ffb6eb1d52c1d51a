/* The rate limit of a route (SPEC §13), L1: a token bucket of capacity burst refilled
 * continuously at rpm/60 tokens per second, full at start, shared by every connection thread
 * without a lock.
 *
 * It is kept as one atomic 64-bit word, the bucket's "theoretical arrival time" (GCRA, the
 * cell-rate algorithm of ATM networks, which is this token bucket written in time): tat is the
 * time at which the bucket would be full again. With T = 60 s / rpm per token, at time t the
 * bucket holds (burst * T - max(tat - t, 0)) / T tokens. Taking a token adds T to max(tat, t),
 * allowed when the result is at most t + burst * T; otherwise the request would have to wait
 * until t' = new_tat - burst * T. A request that may wait (wait <= max_delay) reserves its
 * token by the same compare-and-swap and sleeps; the reservation is what makes later
 * requests wait longer, so sleepers never take more than the bucket gives.
 *
 * Times are nanoseconds on any monotonic clock the caller chooses: np_ratelimit_take takes
 * "now" as an argument, which is how the unit tests inject their clock.
 *
 * Limits (start errors beyond them): rpm <= NP_RATE_RPM_MAX (100000 a second), burst <=
 * NP_RATE_BURST_MAX, max delay <= NP_RATE_DELAY_MAX_MS (10 minutes). */
#ifndef NP_RATELIMIT_H
#define NP_RATELIMIT_H

#include <stdatomic.h>
#include <stdint.h>

#define NP_RATE_RPM_MAX       6000000u
#define NP_RATE_BURST_MAX     1000000u
#define NP_RATE_DELAY_MAX_MS  600000u
#define NP_RATE_BURST_DEFAULT 5u

struct np_ratelimit {
    _Atomic uint64_t tat;  /* ns: when the bucket is full again (0: full at any time) */
    uint64_t interval_ns;  /* T: one token; 0 = no rate limit */
    uint64_t tolerance_ns; /* burst * T */
    uint64_t max_delay_ns;
};

enum np_rate_verdict {
    NP_RATE_GO = 0, /* a token was taken: proceed now */
    NP_RATE_WAIT,   /* a token is reserved: proceed after *wait_ns */
    NP_RATE_REFUSE, /* no token within the max delay: 429, retry after *wait_ns */
};

/* Set rl up for rpm tokens a minute (0 = no limit: every take is GO; at most NP_RATE_RPM_MAX),
 * a bucket of burst (0 = 5), and max_delay_ms of waiting. Full at start. */
void np_ratelimit_init(struct np_ratelimit *rl, uint32_t rpm, uint32_t burst,
                       uint32_t max_delay_ms);

/* Take a token at time now_ns (see enum np_rate_verdict); *wait_ns is 0 for GO, the time to
 * sleep for WAIT, and the time until a token is free for REFUSE. [any thread] */
enum np_rate_verdict np_ratelimit_take(struct np_ratelimit *rl, uint64_t now_ns, uint64_t *wait_ns);

/* Retry-After for a wait: whole seconds rounded up, at least 1. */
unsigned long np_ratelimit_retry_after(uint64_t wait_ns);

#endif /* NP_RATELIMIT_H */
