/* Soak test (issue 11): an in-process proxy, a local echo server behind CONNECT tunnels and a
 * local plain-HTTP origin behind a route, driven by a few client threads through a bounded mix
 * of good and bad connections. After a warm-up that fills the worker pool and the pool's
 * shrinking back to its floor of idle workers, the proxy's descriptors, threads and RSS are
 * taken as the baseline; at the end (the pool shrunk again) they must be back.
 * Loopback only; every loop is bounded in count and time. See README.md. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nonoproxy/nonoproxy.h>

#include "harness.h"
#include "loopsrv.h"

#define CLIENTS      4  /* client threads */
#define POOL         32 /* max_connections: the warm-up makes the pool this big (+1) */
#define FLOOR        4  /* idle workers the pool keeps (lib/listener.c NP_WORKER_FLOOR) */
#define TUNNELS      10000
#define ROUTE_REQS   10000
#define BAD_EACH     1000 /* of each bad kind: 407 none, 407 wrong, 403, 400, abort, reset */
#define WARMUP_EACH  300  /* per kind in the warm-up */
#define RSS_LIMIT_KB 1024
#define SETTLE_MS                                                                                  \
    30000 /* bound on waiting for the proxy to finish its connections and                          \
             for its idle workers to exit (a 5 s linger) */
#define RUN_LIMIT_MS 110000

/* ASan keeps freed memory in quarantine (256 MiB by default), so RSS says nothing there. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_MEANINGFUL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_MEANINGFUL 0
#endif
#endif
#ifndef RSS_MEANINGFUL
#define RSS_MEANINGFUL 1
#endif

enum op {
    OP_TUNNEL,
    OP_ROUTE,
    OP_NOAUTH,
    OP_BADAUTH,
    OP_DENIED,
    OP_MALFORMED,
    OP_ABORT,
    OP_RESET,
    OP_N
};

static const char *const op_names[OP_N] = {
    "tunnel 200", "route 200",     "407 no auth",  "407 wrong auth",
    "403 denied", "400 malformed", "aborted head", "client reset",
};

struct soak {
    struct nonoproxy_proxy *p;
    uint16_t port;
    uint16_t echo_port;
    char token[128];
    unsigned per_kind[OP_N]; /* this phase: how many of each */
    atomic_uint next;        /* next op index of this phase */
    unsigned total;
    atomic_uint ok[OP_N];
    atomic_uint bad[OP_N];
    uint64_t deadline;
};

static long
rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

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

/* Op number i of a phase: the kinds interleaved in proportion to their counts. */
static enum op
op_of(const struct soak *s, unsigned i)
{
    unsigned k;
    unsigned acc = 0;
    unsigned cycle = 0;

    for (k = 0; k < OP_N; k++) {
        cycle += s->per_kind[k];
    }
    /* Spread: i-th op picks the kind by a fixed stride through [0, total). */
    i = (unsigned)(((unsigned long long)i * 7919u) % cycle);
    for (k = 0; k < OP_N; k++) {
        acc += s->per_kind[k];
        if (i < acc) {
            return (enum op)k;
        }
    }
    return OP_TUNNEL;
}

/* Read the 2-byte body (bounded by SO_RCVTIMEO); returns whether it is "ok". */
static int
read_body_ok(int fd)
{
    char buf[256];
    size_t len = 0;
    int i;

    for (i = 0; i < 64 && len < 2; i++) {
        ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (r <= 0) {
            break;
        }
        len += (size_t)r;
    }
    return len == 2 && memcmp(buf, "ok", 2) == 0;
}

static void
reset_close(int fd)
{
    struct linger lg = {1, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

static int
run_op(struct soak *s, enum op op)
{
    char req[512];
    char head[2048];
    int fd;
    int good = 0;

    fd = tcp_connect(s->port);
    if (fd < 0) {
        return 0;
    }
    switch (op) {
    case OP_TUNNEL:
    case OP_RESET:
        snprintf(req, sizeof(req),
                 "CONNECT 127.0.0.1:%u HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                 "Proxy-Authorization: Bearer %s\r\n\r\nping",
                 s->echo_port, s->echo_port, s->token);
        if (send_str(fd, req) == 0 && read_head(fd, head, sizeof(head)) == 200 &&
            recv(fd, head, 4, MSG_WAITALL) == 4 && memcmp(head, "ping", 4) == 0) {
            good = 1;
        }
        if (op == OP_RESET) {
            reset_close(fd);
            return good;
        }
        break;
    case OP_ROUTE:
        snprintf(req, sizeof(req),
                 "GET /svc/soak HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                 "Connection: close\r\n\r\n",
                 s->token);
        good =
            send_str(fd, req) == 0 && read_head(fd, head, sizeof(head)) == 200 && read_body_ok(fd);
        break;
    case OP_NOAUTH:
        snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%u HTTP/1.1\r\n\r\n", s->echo_port);
        good = send_str(fd, req) == 0 && read_head(fd, head, sizeof(head)) == 407;
        break;
    case OP_BADAUTH:
        snprintf(req, sizeof(req),
                 "CONNECT 127.0.0.1:%u HTTP/1.1\r\nProxy-Authorization: Bearer %064d\r\n\r\n",
                 s->echo_port, 0);
        good = send_str(fd, req) == 0 && read_head(fd, head, sizeof(head)) == 407;
        break;
    case OP_DENIED:
        snprintf(req, sizeof(req),
                 "CONNECT denied.example:443 HTTP/1.1\r\nProxy-Authorization: Bearer %s\r\n\r\n",
                 s->token);
        good = send_str(fd, req) == 0 && read_head(fd, head, sizeof(head)) == 403;
        break;
    case OP_MALFORMED:
        good = send_str(fd, "GET /a\001b HTTP/1.1\r\nHost: x\r\n\r\n") == 0 &&
               read_head(fd, head, sizeof(head)) == 400;
        break;
    case OP_ABORT:
        good = send_str(fd, "CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0") == 0;
        break;
    case OP_N:
        break;
    }
    close(fd);
    return good;
}

static void *
client_main(void *arg)
{
    struct soak *s = arg;

    for (;;) {
        unsigned i = atomic_fetch_add(&s->next, 1);
        enum op op;

        if (i >= s->total || now_ms() > s->deadline) {
            break;
        }
        op = op_of(s, i);
        if (run_op(s, op)) {
            atomic_fetch_add(&s->ok[op], 1);
        } else {
            atomic_fetch_add(&s->bad[op], 1);
        }
    }
    return NULL;
}

/* Run one phase with CLIENTS threads; returns 0 when every op had its expected outcome. */
static int
run_phase(struct soak *s, const unsigned *per_kind)
{
    pthread_t th[CLIENTS];
    unsigned k;
    int i;
    int started = 0;

    s->total = 0;
    for (k = 0; k < OP_N; k++) {
        s->per_kind[k] = per_kind[k];
        s->total += per_kind[k];
        atomic_store(&s->ok[k], 0);
        atomic_store(&s->bad[k], 0);
    }
    atomic_store(&s->next, 0);
    for (i = 0; i < CLIENTS; i++) {
        if (pthread_create(&th[i], NULL, client_main, s) == 0) {
            started++;
        }
    }
    for (i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
    }
    for (k = 0; k < OP_N; k++) {
        if (atomic_load(&s->ok[k]) != per_kind[k]) {
            return -1;
        }
    }
    return 0;
}

/* Open POOL tunnels at once so the pool spawns all its workers, then close them. */
static int
fill_pool(struct soak *s)
{
    int fds[POOL];
    int fds0 = count_fds();
    int i;
    int n = 0;
    int rc = 0;
    struct timespec ts = {0, 5 * 1000 * 1000};
    uint64_t end;

    for (i = 0; i < POOL; i++) {
        fds[i] = open_tunnel(s->p, "127.0.0.1", s->echo_port, NULL);
        if (fds[i] >= 0) {
            n++;
        }
    }
    if (n != POOL) {
        rc = -1;
    }
    for (i = 0; i < POOL; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    /* Until the proxy has closed them all, its POOL workers are still busy and a new
     * connection would get 503. */
    end = now_ms() + SETTLE_MS;
    while (count_fds() > fds0 && now_ms() < end) {
        nanosleep(&ts, NULL);
    }
    return rc;
}

/* Poll (bounded) until the fd and thread counts are back at the given values. */
static void
settle(int fds, int threads)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    uint64_t end = now_ms() + SETTLE_MS;

    while (now_ms() < end && (count_fds() > fds || count_threads() > threads)) {
        nanosleep(&ts, NULL);
    }
}

static int
report(const char *what, long base, long end, long limit, const char *unit)
{
    int pass = end - base <= limit;
    printf("soak: %-7s baseline %6ld%s end %6ld%s delta %+ld%s limit %ld%s %s\n", what, base, unit,
           end, unit, end - base, unit, limit, unit, pass ? "PASS" : "FAIL");
    return pass ? 0 : 1;
}

int
main(void)
{
    static struct soak s;
    struct nonoproxy_config cfg;
    struct nonoproxy_route_config r;
    struct nonoproxy_diag diag;
    struct loopsrv *echo = loopsrv_start(LOOPSRV_ECHO);
    struct loopsrv *origin = loopsrv_start(LOOPSRV_ORIGIN);
    char up[64];
    unsigned warm[OP_N];
    unsigned main_mix[OP_N];
    int pre_threads, base_fds, base_threads, end_fds, end_threads;
    long base_rss, end_rss;
    uint64_t t0 = now_ms();
    uint64_t t_main;
    int fail = 0;
    unsigned k;

    if (echo == NULL || origin == NULL) {
        fprintf(stderr, "soak: cannot start the local servers\n");
        return 1;
    }
    pre_threads = count_threads();
    nonoproxy_config_init(&cfg);
    cfg.max_connections = POOL;
    cfg.audit_capacity = 1024; /* filled during the warm-up, so its pages count in the baseline */
    snprintf(up, sizeof(up), "http://127.0.0.1:%u", loopsrv_port(origin));
    nonoproxy_route_config_init(&r, "svc", up);
    memset(&diag, 0, sizeof(diag));
    if (nonoproxy_config_allow_host(&cfg, "127.0.0.1", &diag) != NONOPROXY_OK ||
        nonoproxy_config_add_route(&cfg, &r) != NONOPROXY_OK ||
        nonoproxy_start(&cfg, &s.p, &diag) != NONOPROXY_OK) {
        fprintf(stderr, "soak: cannot start the proxy: %s\n", diag.message);
        return 1;
    }
    nonoproxy_config_free(&cfg);
    s.port = nonoproxy_port(s.p);
    s.echo_port = loopsrv_port(echo);
    snprintf(s.token, sizeof(s.token), "%s", proxy_token(s.p));
    s.deadline = t0 + RUN_LIMIT_MS;

    /* Warm-up: fill the pool to max_connections, then run every kind of connection so the
     * allocator, the audit ring and the buffers reach their steady state. */
    for (k = 0; k < OP_N; k++) {
        warm[k] = WARMUP_EACH;
        main_mix[k] = BAD_EACH;
    }
    main_mix[OP_TUNNEL] = TUNNELS;
    main_mix[OP_ROUTE] = ROUTE_REQS;
    if (fill_pool(&s) != 0 || run_phase(&s, warm) != 0) {
        fprintf(stderr, "soak: warm-up failed\n");
        for (k = 0; k < OP_N; k++) {
            fprintf(stderr, "soak: warm-up %-15s expected %4u ok %4u unexpected %u\n", op_names[k],
                    warm[k], atomic_load(&s.ok[k]), atomic_load(&s.bad[k]));
        }
        fail = 1;
    }
    /* The idle workers above the floor exit after their linger: wait for the warm-up's
     * connections to be gone (the fd count stops falling, the local servers hold none) and
     * for the pool to be back at its floor (the rejecter + FLOOR idle workers). */
    {
        struct timespec ts = {0, 10 * 1000 * 1000};
        uint64_t end = now_ms() + SETTLE_MS;
        int prev = -1;

        while (now_ms() < end) {
            int c = count_fds();
            if (c == prev && loopsrv_open(echo) == 0 && loopsrv_open(origin) == 0 &&
                count_threads() - pre_threads <= 1 + FLOOR) {
                break;
            }
            prev = c;
            nanosleep(&ts, NULL);
        }
    }
    base_fds = count_fds();
    base_threads = count_threads();
    base_rss = rss_kb();
    printf("soak: warm-up done in %llu ms\n", (unsigned long long)(now_ms() - t0));
    /* The proxy's threads: the rejecter + the floor of idle workers (waiting in accept4). */
    printf("soak: proxy threads at baseline %d (reject + %d idle workers expected) %s\n",
           base_threads - pre_threads, FLOOR,
           base_threads - pre_threads == 1 + FLOOR ? "PASS" : "FAIL");
    fail |= base_threads - pre_threads != 1 + FLOOR;

    t_main = now_ms();
    if (run_phase(&s, main_mix) != 0) {
        fail = 1;
    }
    printf("soak: main phase %u connections in %llu ms\n", s.total,
           (unsigned long long)(now_ms() - t_main));
    for (k = 0; k < OP_N; k++) {
        printf("soak: %-15s expected %5u ok %5u unexpected %u\n", op_names[k], main_mix[k],
               atomic_load(&s.ok[k]), atomic_load(&s.bad[k]));
    }
    settle(base_fds, base_threads);
    end_fds = count_fds();
    end_threads = count_threads();
    end_rss = rss_kb();
    fail |= report("fds", base_fds, end_fds, 0, "");
    fail |= report("threads", base_threads, end_threads, 0, "");
    if (RSS_MEANINGFUL) {
        fail |= report("rss", base_rss, end_rss, RSS_LIMIT_KB, "kB");
    } else {
        printf("soak: rss     baseline %6ldkB end %6ldkB (not checked: ASan quarantine)\n",
               base_rss, end_rss);
    }

    nonoproxy_shutdown(s.p);
    nonoproxy_free(s.p);
    loopsrv_stop(echo);
    loopsrv_stop(origin);
    printf("soak: %s in %llu ms\n", fail ? "FAIL" : "PASS", (unsigned long long)(now_ms() - t0));
    return fail ? 1 : 0;
}
