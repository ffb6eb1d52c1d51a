/* Unit tests for lib/upool.h: the lock-free keep-alive pool (affinity by hint, bound, stale
 * connections dropped, and 64 threads taking and returning connections at once: none lost,
 * none held by two threads; run it under TSan with ./project.sh tsan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "upool.h"

#define N_CONNS   32
#define N_THREADS 64
#define N_ROUNDS  400

/* A pooled connection over one end of a socketpair; the other end goes to *peer. */
static struct np_uconn *
pair_conn(int *peer)
{
    int sv[2];
    struct np_uconn *c;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    c = np_uconn_new(sv[0], NULL, -1);
    assert_non_null(c);
    *peer = sv[1];
    return c;
}

static void
take_gives_back_what_the_same_hint_put(void **state)
{
    struct np_upool *p = NULL;
    struct np_uconn *a;
    struct np_uconn *b;
    int pa;
    int pb;

    (void)state;
    assert_int_equal(np_upool_new(8, 0, &p), 0);
    assert_null(np_upool_take(p, 0x40));
    a = pair_conn(&pa);
    b = pair_conn(&pb);
    np_upool_put(p, a, 0x40);
    np_upool_put(p, b, 0x80);
    assert_ptr_equal(np_upool_take(p, 0x80), b);
    assert_ptr_equal(np_upool_take(p, 0x80), a); /* its own slot empty: any other one */
    assert_null(np_upool_take(p, 0x40));
    np_uconn_close(a);
    np_uconn_close(b);
    np_upool_free(p);
    (void)close(pa);
    (void)close(pb);
}

static void
full_pool_closes_what_is_returned(void **state)
{
    struct np_upool *p = NULL;
    struct np_uconn *c[3];
    int peer[3];
    char ch;
    size_t i;

    (void)state;
    assert_int_equal(np_upool_new(2, 0, &p), 0);
    for (i = 0; i < 3; i++) {
        c[i] = pair_conn(&peer[i]);
        np_upool_put(p, c[i], 0x40 * i);
    }
    /* The third found no slot and was closed: its peer reads the end of stream. */
    assert_int_equal(read(peer[2], &ch, 1), 0);
    np_uconn_close(np_upool_take(p, 0));
    np_upool_close_idle(p);
    assert_null(np_upool_take(p, 0));
    for (i = 0; i < 3; i++) {
        assert_int_equal(read(peer[i], &ch, 1), 0);
        (void)close(peer[i]);
    }
    np_upool_free(p);
}

static void
stale_connection_is_dropped(void **state)
{
    struct np_upool *p = NULL;
    struct np_uconn *c;
    int peer;

    (void)state;
    assert_int_equal(np_upool_new(4, 0, &p), 0);
    c = pair_conn(&peer);
    np_upool_put(p, c, 0);
    assert_int_equal(write(peer, "x", 1), 1); /* bytes nobody asked for */
    assert_null(np_upool_take(p, 0));
    c = pair_conn(&peer);
    np_upool_put(p, c, 0);
    (void)close(peer); /* the server closed it */
    assert_null(np_upool_take(p, 0));
    np_upool_free(p);
}

struct shared {
    struct np_upool *p;
    atomic_int owner[N_CONNS]; /* 0 = not held by a thread */
    struct np_uconn *conn[N_CONNS];
    atomic_long taken;
};

struct worker_arg {
    struct shared *sh;
    int id;            /* 1 .. N_THREADS */
    char session[256]; /* its address is the hint, as a worker's session is */
};

static void *
worker(void *arg)
{
    struct worker_arg *w = arg;
    struct shared *sh = w->sh;
    int r;

    for (r = 0; r < N_ROUNDS; r++) {
        struct np_uconn *c = np_upool_take(sh->p, (uintptr_t)w->session);
        size_t k;

        if (c == NULL) {
            continue;
        }
        for (k = 0; k < N_CONNS && sh->conn[k] != c; k++) {
        }
        if (k == N_CONNS || atomic_exchange(&sh->owner[k], w->id) != 0) {
            return (void *)1; /* unknown, or held by another thread already */
        }
        atomic_fetch_add(&sh->taken, 1);
        c->idle_since = (uint64_t)w->id; /* a write the next owner's take must see ordered */
        if (atomic_exchange(&sh->owner[k], 0) != w->id) {
            return (void *)1;
        }
        np_upool_put(sh->p, c, (uintptr_t)w->session);
    }
    return NULL;
}

static void
concurrent_take_put_loses_nothing(void **state)
{
    static struct shared sh;
    static struct worker_arg args[N_THREADS];
    pthread_t th[N_THREADS];
    int peer[N_CONNS];
    size_t n = 0;
    int i;

    (void)state;
    memset(&sh, 0, sizeof(sh));
    assert_int_equal(np_upool_new(64, 0, &sh.p), 0);
    for (i = 0; i < N_CONNS; i++) {
        sh.conn[i] = pair_conn(&peer[i]);
        np_upool_put(sh.p, sh.conn[i], (uintptr_t)i * 4096);
    }
    for (i = 0; i < N_THREADS; i++) {
        args[i].sh = &sh;
        args[i].id = i + 1;
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (i = 0; i < N_THREADS; i++) {
        void *res = NULL;

        assert_int_equal(pthread_join(th[i], &res), 0);
        assert_null(res);
    }
    assert_true(atomic_load(&sh.taken) > 0);
    /* Every connection is back, once. */
    while (np_upool_take(sh.p, 0) != NULL) {
        n++;
    }
    assert_int_equal(n, N_CONNS);
    for (i = 0; i < N_CONNS; i++) {
        np_uconn_close(sh.conn[i]);
        (void)close(peer[i]);
    }
    np_upool_free(sh.p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(take_gives_back_what_the_same_hint_put),
        cmocka_unit_test(full_pool_closes_what_is_returned),
        cmocka_unit_test(stale_connection_is_dropped),
        cmocka_unit_test(concurrent_take_put_loses_nothing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
