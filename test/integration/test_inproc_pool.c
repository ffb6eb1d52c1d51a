/* In-process tests of the worker pool (issue 12): after a burst of 256 tunnels the pool
 * shrinks back to its floor of idle workers and the process's RSS comes back near its idle
 * value. The linger is shortened through lib/listener.h's test hook; every wait is a bounded
 * poll of /proc/self (threads, VmRSS), never a sleep taken as an assertion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "listener.h"
#include "loopsrv.h"

#define WAIT_MS   30000 /* outer bound of every wait: sanitizer builds are slow */
#define LINGER_MS 300   /* the shortened linger */
#define FLOOR     4     /* lib/listener.c NP_WORKER_FLOOR */
#define BURST     256   /* = max_connections */
#define RSS_SLACK 1024  /* kB: the "within 1 MiB of idle" */

#define SAN_RSS "the sanitizer's quarantine and shadow memory"
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NO_RSS_CHECK SAN_RSS
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define NO_RSS_CHECK SAN_RSS
#endif
#endif
#ifdef NO_RSS_CHECK
static const char *const no_rss_check = NO_RSS_CHECK;
#else
static const char *const no_rss_check = NULL;
#endif

static void
pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long
rss_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
        }
    }
    fclose(f);
    return kb;
}

/* Wait (bounded by ms) until the thread count is n; returns the last count. */
static int
await_threads(int n, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    int c = count_threads();

    while (c != n && now_ms() < end) {
        pause_ms(10);
        c = count_threads();
    }
    return c;
}

/* Wait (bounded by ms) until RSS is at most kb; returns the last RSS. */
static long
await_rss_at_most(long kb, int ms)
{
    uint64_t end = now_ms() + (uint64_t)ms;
    long r = rss_kb();

    while (r > kb && now_ms() < end) {
        pause_ms(50);
        r = rss_kb();
    }
    return r;
}

static bool
under_valgrind(void)
{
    const char *preload = getenv("LD_PRELOAD");
    return preload != NULL && strstr(preload, "vgpreload") != NULL;
}

/* Open n tunnels to the echo server, check each echoes, and close them all. */
static void
burst(struct nonoproxy_proxy *p, uint16_t echo, int *fds, int n)
{
    char b[4];
    int i;

    for (i = 0; i < n; i++) {
        fds[i] = open_tunnel(p, "127.0.0.1", echo, NULL);
        assert_true(fds[i] >= 0);
    }
    for (i = 0; i < n; i++) {
        assert_int_equal(send_str(fds[i], "ping"), 0);
        assert_int_equal(read(fds[i], b, sizeof(b)), (ssize_t)sizeof(b));
        assert_memory_equal(b, "ping", sizeof(b));
    }
}

/* 1. A burst of 256 tunnels grows the pool to 256 busy workers + the one in accept4(); once
 * they close, the idle workers above the floor exit after the linger, and the RSS comes back
 * within 1 MiB of what it was with the pool at its floor before the burst. */
static void
pool_shrinks_to_floor_after_burst(void **state)
{
    static int fds[BURST];
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;
    struct loopsrv *echo = loopsrv_start(LOOPSRV_ECHO);
    long idle_kb;
    long end_kb = -1;
    int pre;
    int i;

    (void)state;
    assert_non_null(echo);
    np_listener_set_linger_ms(LINGER_MS);
    pre = count_threads();
    nonoproxy_config_init(&cfg);
    cfg.max_connections = BURST;
    cfg.audit_capacity = 64; /* its pages are touched in the warm-up: no growth in the burst */
    assert_int_equal(nonoproxy_start(&cfg, &p, &diag), NONOPROXY_OK);
    nonoproxy_config_free(&cfg);
    /* The rejecter and one worker waiting in accept4(). */
    assert_int_equal(await_threads(pre + 2, WAIT_MS), pre + 2);

    /* Warm-up: the pool grows past its floor, then shrinks to it. */
    burst(p, loopsrv_port(echo), fds, 2 * FLOOR);
    for (i = 0; i < 2 * FLOOR; i++) {
        close(fds[i]);
    }
    assert_int_equal(await_threads(pre + 1 + FLOOR, WAIT_MS), pre + 1 + FLOOR);
    idle_kb = rss_kb();

    /* The burst: 256 busy workers and the one that would answer 503 beyond them. */
    burst(p, loopsrv_port(echo), fds, BURST);
    assert_int_equal(await_threads(pre + 1 + BURST + 1, WAIT_MS), pre + 1 + BURST + 1);
    print_message("pool: RSS idle %ld kB, with %d tunnels %ld kB\n", idle_kb, BURST, rss_kb());
    for (i = 0; i < BURST; i++) {
        close(fds[i]);
    }
    assert_int_equal(await_threads(pre + 1 + FLOOR, WAIT_MS), pre + 1 + FLOOR);
    if (no_rss_check != NULL || under_valgrind()) {
        print_message("pool: RSS not checked (%s)\n",
                      no_rss_check != NULL ? no_rss_check : "valgrind");
    } else {
        end_kb = await_rss_at_most(idle_kb + RSS_SLACK, 10000);
        print_message("pool: RSS back to %ld kB (idle %ld kB)\n", end_kb, idle_kb);
        assert_true(end_kb <= idle_kb + RSS_SLACK);
    }

    /* The shrunk pool still serves. */
    burst(p, loopsrv_port(echo), fds, 1);
    close(fds[0]);
    nonoproxy_free(p);
    assert_int_equal(await_threads(pre, WAIT_MS), pre);
    np_listener_set_linger_ms(0);
    loopsrv_stop(echo);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pool_shrinks_to_floor_after_burst),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
