/* The rate limit of a route (SPEC §13): see ratelimit.h. */
#include "ratelimit.h"

#define NS_PER_MINUTE 60000000000ull
#define NS_PER_SECOND 1000000000ull
#define NS_PER_MS     1000000ull

void
np_ratelimit_init(struct np_ratelimit *rl, uint32_t rpm, uint32_t burst, uint32_t max_delay_ms)
{
    uint64_t per = rpm > 0 ? NS_PER_MINUTE / rpm : 0;

    atomic_init(&rl->tat, 0);
    rl->interval_ns = per;
    rl->tolerance_ns = rl->interval_ns * (burst > 0 ? burst : NP_RATE_BURST_DEFAULT);
    rl->max_delay_ns = (uint64_t)max_delay_ms * NS_PER_MS;
}

enum np_rate_verdict
np_ratelimit_take(struct np_ratelimit *rl, uint64_t now_ns, uint64_t *wait_ns)
{
    uint64_t tat = atomic_load_explicit(&rl->tat, memory_order_relaxed);

    *wait_ns = 0;
    if (rl->interval_ns == 0) {
        return NP_RATE_GO; /* no rate limit */
    }
    for (;;) {
        uint64_t next = (tat > now_ns ? tat : now_ns) + rl->interval_ns;
        uint64_t wait = next - now_ns > rl->tolerance_ns ? next - now_ns - rl->tolerance_ns : 0;

        if (wait > rl->max_delay_ns) {
            *wait_ns = wait;
            return NP_RATE_REFUSE;
        }
        /* On failure tat is reloaded and the decision taken again with it. */
        if (atomic_compare_exchange_weak_explicit(&rl->tat, &tat, next, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *wait_ns = wait;
            return wait == 0 ? NP_RATE_GO : NP_RATE_WAIT;
        }
    }
}

unsigned long
np_ratelimit_retry_after(uint64_t wait_ns)
{
    uint64_t s = (wait_ns + NS_PER_SECOND - 1) / NS_PER_SECOND;

    return s > 0 ? (unsigned long)s : 1;
}
