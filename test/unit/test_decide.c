/* Unit tests for lib/decide.c (SPEC §13): answers, remembered grants and their diagnostics,
 * the deadline, coalescing of concurrent asks, stop, and the cap on grants. Threads wait on
 * events (np_decider_waiting, a gate), never on fixed sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "decide.h"

/* What the scripted callback answers, and what it saw. */
struct script {
    enum nonoproxy_decide_answer answer;
    atomic_int calls;
    uint32_t seen_timeout;
    char seen_host[NP_HOST_BUF];
    uint16_t seen_port;
    enum nonoproxy_audit_mode seen_mode;
    char seen_method[16];
    bool late; /* spin until the deadline has passed before answering */
    bool gate; /* block until released */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool released;   /* under mu */
    int inside;      /* callbacks running; under mu */
    int peak;        /* the most that ran at once; under mu */
    int want_inside; /* with gate: wait until this many run at once before blocking */
    char log[256];
};

static enum nonoproxy_decide_answer
scripted(void *userdata, const struct nonoproxy_decide_query *q)
{
    struct script *s = userdata;

    atomic_fetch_add(&s->calls, 1);
    pthread_mutex_lock(&s->mu);
    s->seen_timeout = q->timeout_ms;
    (void)snprintf(s->seen_host, sizeof(s->seen_host), "%s", q->host);
    s->seen_port = q->port;
    s->seen_mode = q->mode;
    (void)snprintf(s->seen_method, sizeof(s->seen_method), "%s", q->method);
    s->inside++;
    s->peak = s->inside > s->peak ? s->inside : s->peak;
    pthread_cond_broadcast(&s->cv);
    while (s->gate && (!s->released || s->peak < s->want_inside)) {
        pthread_cond_wait(&s->cv, &s->mu);
    }
    s->inside--;
    pthread_mutex_unlock(&s->mu);
    if (s->late) {
        uint64_t until = np_now_ms() + q->timeout_ms + 2;
        while (np_now_ms() < until) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL); /* the event waited for is the deadline itself */
        }
    }
    return s->answer;
}

static void
script_init(struct script *s, enum nonoproxy_decide_answer answer)
{
    memset(s, 0, sizeof(*s));
    s->answer = answer;
    atomic_init(&s->calls, 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
}

static void
script_destroy(struct script *s)
{
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

static void
release_gate(struct script *s)
{
    pthread_mutex_lock(&s->mu);
    s->released = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Wait (bounded, 10 s) until n callbacks run at once. */
static void
wait_inside(struct script *s, int n)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&s->mu);
    while (s->inside < n) {
        assert_int_equal(pthread_cond_timedwait(&s->cv, &s->mu, &ts), 0);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Wait (bounded, 10 s) until n threads wait for another's ask. */
static void
wait_waiting(struct np_decider *d, size_t n)
{
    uint64_t until = np_now_ms() + 10000;

    while (np_decider_waiting(d) != n) {
        struct timespec ts = {0, 1000000};
        assert_true(np_now_ms() < until);
        nanosleep(&ts, NULL);
    }
}

static void
capture_log(void *userdata, enum nonoproxy_log_level level, const char *line)
{
    struct script *s = userdata;

    (void)level;
    (void)snprintf(s->log, sizeof(s->log), "%s", line);
}

static struct np_decider *
new_decider(struct script *s, uint32_t timeout_ms, size_t max_grants)
{
    struct np_decider_config c;
    struct np_decider *d = NULL;

    memset(&c, 0, sizeof(c));
    c.fn = scripted;
    c.userdata = s;
    c.timeout_ms = timeout_ms;
    c.max_grants = max_grants;
    c.log_cb = capture_log;
    c.log_userdata = s;
    c.log_level = NONOPROXY_LOG_DEBUG;
    assert_int_equal(np_decider_new(&c, &d), 0);
    return d;
}

static enum np_decide_outcome
ask(struct np_decider *d, const char *host, uint16_t port)
{
    struct nonoproxy_decide_query q;

    memset(&q, 0, sizeof(q));
    q.host = host;
    q.port = port;
    q.mode = NONOPROXY_MODE_FORWARD;
    q.method = "GET";
    q.timeout_ms = 12345; /* overwritten with the decider's deadline */
    return np_decider_ask(d, &q);
}

static void
test_once_is_not_remembered(void **state)
{
    struct script s;
    struct np_decider *d;
    const struct nonoproxy_diagnostic *list;
    size_t n;

    (void)state;
    script_init(&s, NONOPROXY_DECIDE_ALLOW_ONCE);
    d = new_decider(&s, 30000, 0);
    assert_int_equal(ask(d, "api.example.com", 443), NP_DECIDE_ONCE);
    assert_int_equal(s.seen_timeout, 30000);
    assert_string_equal(s.seen_host, "api.example.com");
    assert_int_equal(s.seen_port, 443);
    assert_int_equal(s.seen_mode, NONOPROXY_MODE_FORWARD);
    assert_string_equal(s.seen_method, "GET");
    assert_int_equal(ask(d, "api.example.com", 443), NP_DECIDE_ONCE);
    assert_int_equal(atomic_load(&s.calls), 2);
    assert_false(np_decider_granted(d, "api.example.com", 443));
    np_decider_diagnostics(d, &list, &n);
    assert_int_equal(n, 0);
    np_decider_free(d);
    script_destroy(&s);
}

static void
test_session_is_remembered_and_reported(void **state)
{
    static const struct nonoproxy_diagnostic start[] = {
        {"credential_not_found", "openai", "routes[0] 'openai': credential not found"},
    };
    struct script s;
    struct np_decider *d;
    const struct nonoproxy_diagnostic *list;
    const struct nonoproxy_diagnostic *first;
    size_t n;

    (void)state;
    script_init(&s, NONOPROXY_DECIDE_ALLOW_SESSION);
    d = new_decider(&s, 0, 0);
    assert_int_equal(np_decider_set_start_diags(d, start, 1), 0);
    np_decider_diagnostics(d, &list, &n);
    assert_int_equal(n, 1);
    first = list;
    assert_int_equal(ask(d, "api.example.com", 443), NP_DECIDE_SESSION);
    assert_int_equal(s.seen_timeout, 0); /* no deadline */
    assert_int_equal(ask(d, "api.example.com", 443), NP_DECIDE_SESSION);
    assert_int_equal(atomic_load(&s.calls), 1);
    assert_true(np_decider_granted(d, "api.example.com", 443));
    assert_false(np_decider_granted(d, "api.example.com", 80)); /* keyed by host and port */
    assert_int_equal(ask(d, "api.example.com", 80), NP_DECIDE_SESSION);
    assert_int_equal(ask(d, "2001:db8::1", 8443), NP_DECIDE_SESSION);
    assert_int_equal(atomic_load(&s.calls), 3);
    np_decider_diagnostics(d, &list, &n);
    assert_int_equal(n, 4);
    assert_ptr_equal(list, first); /* the array never moves */
    assert_string_equal(list[0].code, "credential_not_found");
    assert_string_equal(list[1].code, "host_granted");
    assert_string_equal(list[1].route, "");
    assert_string_equal(list[1].message,
                        "host api.example.com:443 granted for the session by the decide callback");
    assert_string_equal(list[3].message,
                        "host [2001:db8::1]:8443 granted for the session by the decide callback");
    np_decider_free(d);
    script_destroy(&s);
}

static void
test_deny_and_unknown_answers(void **state)
{
    struct script s;
    struct np_decider *d;

    (void)state;
    script_init(&s, NONOPROXY_DECIDE_DENY);
    d = new_decider(&s, 30000, 0);
    assert_int_equal(ask(d, "evil.example", 443), NP_DECIDE_DENY);
    s.answer = (enum nonoproxy_decide_answer)7;
    assert_int_equal(ask(d, "evil.example", 443), NP_DECIDE_DENY);
    assert_int_equal(atomic_load(&s.calls), 2);
    assert_int_equal(ask(d, NULL, 443), NP_DECIDE_DENY);
    assert_int_equal(atomic_load(&s.calls), 2);
    np_decider_free(d);
    script_destroy(&s);
}

static void
test_late_answer_is_deny_and_not_remembered(void **state)
{
    struct script s;
    struct np_decider *d;

    (void)state;
    script_init(&s, NONOPROXY_DECIDE_ALLOW_SESSION);
    s.late = true;
    d = new_decider(&s, 30, 0);
    assert_int_equal(ask(d, "slow.example", 443), NP_DECIDE_LATE);
    assert_int_equal(s.seen_timeout, 30);
    assert_false(np_decider_granted(d, "slow.example", 443));
    s.late = false;
    assert_int_equal(ask(d, "slow.example", 443), NP_DECIDE_SESSION);
    assert_int_equal(atomic_load(&s.calls), 2);
    np_decider_free(d);
    script_destroy(&s);
}

struct asker {
    struct np_decider *d;
    const char *host;
    enum np_decide_outcome got;
    pthread_t t;
};

static void *
asker_main(void *arg)
{
    struct asker *a = arg;

    a->got = ask(a->d, a->host, 443);
    return NULL;
}

#define N_ASKERS 8

static void
start_askers(struct asker *a, size_t n, struct np_decider *d, const char *host)
{
    size_t i;

    for (i = 0; i < n; i++) {
        a[i].d = d;
        a[i].host = host;
        a[i].got = (enum np_decide_outcome) - 1;
        assert_int_equal(pthread_create(&a[i].t, NULL, asker_main, &a[i]), 0);
    }
}

static void
join_askers(struct asker *a, size_t n, enum np_decide_outcome want)
{
    size_t i;

    for (i = 0; i < n; i++) {
        assert_int_equal(pthread_join(a[i].t, NULL), 0);
        assert_int_equal(a[i].got, want);
    }
}

/* N concurrent asks for one host:port: one call, every asker gets its answer (ONCE: coalescing
 * alone, no grant explains it). */
static void
test_concurrent_asks_are_coalesced(void **state)
{
    struct script s;
    struct np_decider *d;
    struct asker a[N_ASKERS];

    (void)state;
    script_init(&s, NONOPROXY_DECIDE_ALLOW_ONCE);
    s.gate = true;
    d = new_decider(&s, 30000, 0);
    start_askers(a, N_ASKERS, d, "shared.example");
    wait_inside(&s, 1);
    wait_waiting(d, N_ASKERS - 1);
    release_gate(&s);
    join_askers(a, N_ASKERS, NP_DECIDE_ONCE);
    assert_int_equal(atomic_load(&s.calls), 1);
    assert_int_equal(np_decider_waiting(d), 0);
    np_decider_free(d);
    script_destroy(&s);
}

/* Asks for different hosts are not serialised: two callbacks run at once. */
static void
test_different_hosts_are_asked_concurrently(void **state)
{
    struct script s;
    struct np_decider *d;
    struct asker a[2];

    (void)state;
    script_init(&s, NONOPROXY_DECIDE_DENY);
    s.gate = true;
    s.want_inside = 2; /* neither returns before both are inside */
    d = new_decider(&s, 30000, 0);
    start_askers(&a[0], 1, d, "one.example");
    start_askers(&a[1], 1, d, "two.example");
    wait_inside(&s, 2);
    release_gate(&s);
    join_askers(a, 2, NP_DECIDE_DENY);
    assert_int_equal(atomic_load(&s.calls), 2);
    np_decider_free(d);
    script_destroy(&s);
}

/* Waiters give up at the first ask's deadline while its callback still runs. */
static void
test_waiters_keep_the_deadline(void **state)
{
    struct script s;
    struct np_decider *d;
    struct asker first;
    struct asker rest[3];

    (void)state;
    script_init(&s, NONOPROXY_DECIDE_ALLOW_SESSION);
    s.gate = true;
    d = new_decider(&s, 50, 0);
    start_askers(&first, 1, d, "slow.example");
    wait_inside(&s, 1);
    start_askers(rest, 3, d, "slow.example");
    join_askers(rest, 3, NP_DECIDE_LATE); /* the callback is still blocked */
    release_gate(&s);
    join_askers(&first, 1, NP_DECIDE_LATE);
    assert_false(np_decider_granted(d, "slow.example", 443));
    assert_int_equal(atomic_load(&s.calls), 1);
    np_decider_free(d);
    script_destroy(&s);
}

/* Stop wakes the waiters at once; the running callback's answer no longer counts; later asks
 * are refused without a call. */
static void
test_stop_wakes_waiters(void **state)
{
    struct script s;
    struct np_decider *d;
    struct asker first;
    struct asker rest[4];
    const struct nonoproxy_diagnostic *list;
    size_t n;

    (void)state;
    script_init(&s, NONOPROXY_DECIDE_ALLOW_SESSION);
    s.gate = true;
    d = new_decider(&s, 0, 0); /* no deadline: only stop can end the wait */
    start_askers(&first, 1, d, "pending.example");
    wait_inside(&s, 1);
    start_askers(rest, 4, d, "pending.example");
    wait_waiting(d, 4);
    np_decider_stop(d);
    np_decider_stop(d); /* idempotent */
    join_askers(rest, 4, NP_DECIDE_STOPPED);
    release_gate(&s);
    join_askers(&first, 1, NP_DECIDE_STOPPED);
    assert_false(np_decider_granted(d, "pending.example", 443));
    assert_int_equal(ask(d, "other.example", 443), NP_DECIDE_STOPPED);
    assert_int_equal(atomic_load(&s.calls), 1);
    np_decider_diagnostics(d, &list, &n);
    assert_int_equal(n, 0);
    np_decider_free(d);
    script_destroy(&s);
}

static void
test_grants_are_capped(void **state)
{
    struct script s;
    struct np_decider *d;
    const struct nonoproxy_diagnostic *list;
    size_t n;

    (void)state;
    script_init(&s, NONOPROXY_DECIDE_ALLOW_SESSION);
    d = new_decider(&s, 30000, 2);
    assert_int_equal(ask(d, "a.example", 443), NP_DECIDE_SESSION);
    assert_int_equal(ask(d, "b.example", 443), NP_DECIDE_SESSION);
    assert_int_equal(ask(d, "c.example", 443), NP_DECIDE_ONCE);
    assert_non_null(strstr(s.log, "c.example port 443 is allowed once"));
    assert_false(np_decider_granted(d, "c.example", 443));
    assert_int_equal(ask(d, "c.example", 443), NP_DECIDE_ONCE);
    assert_int_equal(atomic_load(&s.calls), 4);
    np_decider_diagnostics(d, &list, &n);
    assert_int_equal(n, 2);
    np_decider_free(d);
    np_decider_free(NULL);
    script_destroy(&s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_once_is_not_remembered),
        cmocka_unit_test(test_session_is_remembered_and_reported),
        cmocka_unit_test(test_deny_and_unknown_answers),
        cmocka_unit_test(test_late_answer_is_deny_and_not_remembered),
        cmocka_unit_test(test_concurrent_asks_are_coalesced),
        cmocka_unit_test(test_different_hosts_are_asked_concurrently),
        cmocka_unit_test(test_waiters_keep_the_deadline),
        cmocka_unit_test(test_stop_wakes_waiters),
        cmocka_unit_test(test_grants_are_capped),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
