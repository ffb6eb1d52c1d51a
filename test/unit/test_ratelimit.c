/* Unit tests for lib/ratelimit.h: the token bucket of a route's rate limit (SPEC §13), on an
 * injected clock (np_ratelimit_take takes the time), then on the real one from many threads
 * at once (run under TSan by ./project.sh tsan): no more tokens are handed out than the
 * bucket holds plus what it refilled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "common.h"
#include "ratelimit.h"

#define SEC ((uint64_t)1000000000)
#define MS  ((uint64_t)1000000)

/* Take at now and check the verdict and the wait. */
static void
take_expect(struct np_ratelimit *rl, uint64_t now, enum np_rate_verdict want, uint64_t want_wait)
{
    uint64_t wait = 12345;
    enum np_rate_verdict v = np_ratelimit_take(rl, now, &wait);

    if (v != want || wait != want_wait) {
        fail_msg("at %llu ns: verdict %d wait %llu, want %d wait %llu", (unsigned long long)now,
                 (int)v, (unsigned long long)wait, (int)want, (unsigned long long)want_wait);
    }
}

/* The burst goes at once, then 429 with the time to the next token (delay 0). */
static void
burst_then_refuse(void **state)
{
    struct np_ratelimit rl;
    int i;

    (void)state;
    np_ratelimit_init(&rl, 60, 3, 0); /* one token a second */
    for (i = 0; i < 3; i++) {
        take_expect(&rl, 1000 * SEC, NP_RATE_GO, 0);
    }
    take_expect(&rl, 1000 * SEC, NP_RATE_REFUSE, SEC);
    take_expect(&rl, 1000 * SEC + 400 * MS, NP_RATE_REFUSE, 600 * MS);
    /* A refusal reserves nothing: the token comes after one second all the same. */
    take_expect(&rl, 1001 * SEC, NP_RATE_GO, 0);
    take_expect(&rl, 1001 * SEC, NP_RATE_REFUSE, SEC);
}

/* burst 0 is the default 5. */
static void
burst_zero_is_five(void **state)
{
    struct np_ratelimit rl;
    int i;

    (void)state;
    np_ratelimit_init(&rl, 600, 0, 0);
    for (i = 0; i < 5; i++) {
        take_expect(&rl, 0, NP_RATE_GO, 0);
    }
    take_expect(&rl, 0, NP_RATE_REFUSE, 100 * MS);
}

/* Refill is continuous (rpm/60 a second) and never beyond the capacity. */
static void
refill_and_cap(void **state)
{
    struct np_ratelimit rl;
    int i;

    (void)state;
    np_ratelimit_init(&rl, 120, 2, 0); /* one token each 500 ms */
    take_expect(&rl, 0, NP_RATE_GO, 0);
    take_expect(&rl, 0, NP_RATE_GO, 0);
    take_expect(&rl, 0, NP_RATE_REFUSE, 500 * MS);
    take_expect(&rl, 250 * MS, NP_RATE_REFUSE, 250 * MS);
    take_expect(&rl, 500 * MS, NP_RATE_GO, 0); /* half a second: one token */
    take_expect(&rl, 500 * MS, NP_RATE_REFUSE, 500 * MS);
    /* An hour idle fills the bucket to its capacity, 2, not 7200. */
    for (i = 0; i < 2; i++) {
        take_expect(&rl, 3600 * SEC, NP_RATE_GO, 0);
    }
    take_expect(&rl, 3600 * SEC, NP_RATE_REFUSE, 500 * MS);
}

/* With a max delay a request reserves the next token and waits for it; later ones wait
 * longer; one whose wait would pass the max delay is refused and reserves nothing. */
static void
delays_within_budget(void **state)
{
    struct np_ratelimit rl;

    (void)state;
    np_ratelimit_init(&rl, 60, 1, 2500); /* 1 a second, wait up to 2.5 s */
    take_expect(&rl, 10 * SEC, NP_RATE_GO, 0);
    take_expect(&rl, 10 * SEC, NP_RATE_WAIT, SEC);
    take_expect(&rl, 10 * SEC, NP_RATE_WAIT, 2 * SEC);
    take_expect(&rl, 10 * SEC, NP_RATE_REFUSE, 3 * SEC);
    take_expect(&rl, 10 * SEC + 500 * MS, NP_RATE_WAIT, 2500 * MS); /* exactly the budget */
    take_expect(&rl, 10 * SEC + 500 * MS, NP_RATE_REFUSE, 3500 * MS);
    /* Once the reservations are served, the bucket refills as usual. */
    take_expect(&rl, 100 * SEC, NP_RATE_GO, 0);
}

/* rpm 0: no rate limit at all. */
static void
rpm_zero_is_off(void **state)
{
    struct np_ratelimit rl;
    int i;

    (void)state;
    np_ratelimit_init(&rl, 0, 0, 0);
    for (i = 0; i < 100000; i++) {
        take_expect(&rl, 0, NP_RATE_GO, 0);
    }
}

/* Retry-After: whole seconds, rounded up, at least 1. */
static void
retry_after_rounding(void **state)
{
    (void)state;
    assert_int_equal(np_ratelimit_retry_after(0), 1);
    assert_int_equal(np_ratelimit_retry_after(1), 1);
    assert_int_equal(np_ratelimit_retry_after(999 * MS), 1);
    assert_int_equal(np_ratelimit_retry_after(SEC), 1);
    assert_int_equal(np_ratelimit_retry_after(SEC + 1), 2);
    assert_int_equal(np_ratelimit_retry_after(59 * SEC + 1), 60);
    assert_int_equal(np_ratelimit_retry_after(60 * SEC), 60);
}

/* The extremes of the validated range: no overflow, sensible waits. */
static void
extremes(void **state)
{
    struct np_ratelimit rl;
    uint64_t wait;
    uint32_t i;

    (void)state;
    np_ratelimit_init(&rl, 1, NP_RATE_BURST_MAX, NP_RATE_DELAY_MAX_MS);
    for (i = 0; i < 1000; i++) {
        assert_int_equal(np_ratelimit_take(&rl, 5 * SEC, &wait), NP_RATE_GO);
    }
    np_ratelimit_init(&rl, 1, 1, 0);
    take_expect(&rl, 0, NP_RATE_GO, 0);
    take_expect(&rl, 0, NP_RATE_REFUSE, 60 * SEC);
    assert_int_equal(np_ratelimit_retry_after(60 * SEC), 60);
    np_ratelimit_init(&rl, NP_RATE_RPM_MAX, 1, 0); /* 10 µs a token */
    take_expect(&rl, 0, NP_RATE_GO, 0);
    take_expect(&rl, 0, NP_RATE_REFUSE, 10000);
    take_expect(&rl, 10000, NP_RATE_GO, 0);
}

/* ---- many threads on the real clock ------------------------------------------------------ */

#define THREADS 16
#define TRIES   2000

struct race {
    struct np_ratelimit rl;
    atomic_uint granted;
    atomic_uint waited_ns_over; /* WAIT verdicts beyond the max delay (must stay 0) */
    pthread_barrier_t start;
};

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

static void *
racer(void *arg)
{
    struct race *r = arg;
    int i;

    pthread_barrier_wait(&r->start);
    for (i = 0; i < TRIES; i++) {
        uint64_t wait = 0;
        enum np_rate_verdict v = np_ratelimit_take(&r->rl, mono_ns(), &wait);

        if (v != NP_RATE_REFUSE) {
            atomic_fetch_add(&r->granted, 1);
        }
        if (v == NP_RATE_WAIT && wait > r->rl.max_delay_ns) {
            atomic_fetch_add(&r->waited_ns_over, 1);
        }
    }
    return NULL;
}

static void
threads_never_exceed_the_bucket(void **state)
{
    static struct race r;
    pthread_t t[THREADS];
    uint64_t t0;
    uint64_t elapsed;
    unsigned limit;
    int i;

    (void)state;
    np_ratelimit_init(&r.rl, 600, 50, 100); /* 10 a second, 50 at once, 100 ms of delay */
    atomic_init(&r.granted, 0);
    atomic_init(&r.waited_ns_over, 0);
    assert_int_equal(pthread_barrier_init(&r.start, NULL, THREADS), 0);
    t0 = mono_ns();
    for (i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, racer, &r), 0);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    elapsed = mono_ns() - t0;
    pthread_barrier_destroy(&r.start);
    /* The burst, what refilled meanwhile, and the reservations of the 100 ms delay (one). */
    limit = 50 + (unsigned)(elapsed / (100 * MS)) + 1 + 1;
    assert_true(atomic_load(&r.granted) >= 50);
    assert_true(atomic_load(&r.granted) <= limit);
    assert_int_equal(atomic_load(&r.waited_ns_over), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_then_refuse), cmocka_unit_test(burst_zero_is_five),
        cmocka_unit_test(refill_and_cap),    cmocka_unit_test(delays_within_budget),
        cmocka_unit_test(rpm_zero_is_off),   cmocka_unit_test(retry_after_rounding),
        cmocka_unit_test(extremes),          cmocka_unit_test(threads_never_exceed_the_bucket),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
