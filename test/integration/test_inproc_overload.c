/* In-process overload and fault tests (issue 11): the connection limit under 300 idle tunnels,
 * slowloris heads, upstreams that reset or stall mid-response, accept() starved of descriptors
 * (in a forked child), and audit draining + shutdown from other threads under load. Every wait
 * is a bounded poll; the deadlines are generous so that ASan and TSan builds pass too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "loopsrv.h"

#define WAIT_MS 30000 /* outer bound of every wait: sanitizer builds are slow */

/* Sanitizer builds run 2-10x slower: the few time limits that are contract numbers (shutdown
 * within 2 s) are scaled by this factor there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SAN_FACTOR 5
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SAN_FACTOR 5
#endif
#endif
#ifndef SAN_FACTOR
#define SAN_FACTOR 1
#endif

static void
pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static struct nonoproxy_proxy *
start_proxy(struct nonoproxy_config *cfg)
{
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;

    memset(&diag, 0, sizeof(diag));
    if (nonoproxy_start(cfg, &p, &diag) != NONOPROXY_OK) {
        fail_msg("nonoproxy_start: %s", diag.message);
    }
    nonoproxy_config_free(cfg);
    return p;
}

/* Wait until fd is readable (or hung up); returns whether it became so before ms. */
static int
wait_readable(int fd, int ms)
{
    struct pollfd pf = {fd, POLLIN, 0};
    return poll(&pf, 1, ms) > 0;
}

/* Send "ping" through a tunnel and expect it back. */
static int
tunnel_echoes(int fd)
{
    char b[4];
    return send_str(fd, "ping") == 0 && recv(fd, b, 4, MSG_WAITALL) == 4 &&
           memcmp(b, "ping", 4) == 0;
}

/* Read until EOF or an error; returns the time it took in ms (bounded by SO_RCVTIMEO). */
static uint64_t
drain_to_eof(int fd)
{
    char buf[1024];
    uint64_t t0 = now_ms();
    int i;

    for (i = 0; i < 10000; i++) {
        if (recv(fd, buf, sizeof(buf), 0) <= 0) {
            break;
        }
    }
    return now_ms() - t0;
}

/* Wait (bounded) until the server holds no connection. */
static void
wait_srv_idle(const struct loopsrv *s)
{
    uint64_t end = now_ms() + WAIT_MS;
    while (loopsrv_open(s) != 0 && now_ms() < end) {
        pause_ms(5);
    }
}

/* Wait (bounded) until the fd count is at most n; returns the last count. */
static int
wait_fds(int n)
{
    uint64_t end = now_ms() + WAIT_MS;
    int c = count_fds();
    while (c > n && now_ms() < end) {
        pause_ms(5);
        c = count_fds();
    }
    return c;
}

/* 1. 300 idle tunnels against max_connections 256: 44 are refused with 503 at once; closing
 * tunnels makes room again at once. */
static void
limit_refuses_extra_tunnels_then_resumes(void **state)
{
    struct loopsrv *echo = loopsrv_start(LOOPSRV_ECHO);
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p;
    static int tun[256];
    static int extra[44];
    char head[1024];
    uint64_t t0;
    uint64_t t_refuse;
    int i;
    int st;
    int fd;

    (void)state;
    assert_non_null(echo);
    nonoproxy_config_init(&cfg);
    cfg.max_connections = 256;
    p = start_proxy(&cfg);
    for (i = 0; i < 256; i++) {
        tun[i] = open_tunnel(p, "127.0.0.1", loopsrv_port(echo), &st);
        assert_int_equal(st, 200);
    }
    t0 = now_ms();
    for (i = 0; i < 44; i++) {
        extra[i] = tcp_connect(nonoproxy_port(p));
        assert_true(extra[i] >= 0);
        /* The 503 comes at accept, before the request is read. */
        assert_int_equal(read_head(extra[i], head, sizeof(head)), 503);
    }
    t_refuse = now_ms() - t0;
    print_message("overload: 44 refusals in %llu ms\n", (unsigned long long)t_refuse);
    assert_true(t_refuse < 10000);
    for (i = 0; i < 44; i++) {
        close(extra[i]);
    }
    /* The held tunnels still work. */
    assert_true(tunnel_echoes(tun[0]));
    assert_true(tunnel_echoes(tun[255]));
    /* Close 8 tunnels; a new one is served as soon as their workers are back. */
    for (i = 0; i < 8; i++) {
        close(tun[i]);
    }
    t0 = now_ms();
    fd = -1;
    while (fd < 0 && now_ms() - t0 < WAIT_MS) {
        fd = open_tunnel(p, "127.0.0.1", loopsrv_port(echo), &st);
        if (fd < 0) {
            assert_int_equal(st, 503);
            pause_ms(5);
        }
    }
    print_message("overload: new tunnel after closing 8 in %llu ms\n",
                  (unsigned long long)(now_ms() - t0));
    assert_true(fd >= 0);
    assert_true(tunnel_echoes(fd));
    close(fd);
    for (i = 8; i < 256; i++) {
        close(tun[i]);
    }
    nonoproxy_free(p);
    loopsrv_stop(echo);
}

#define SLOW         200
/* The head timeout of the slowloris test: sanitizer builds take seconds to start 200 worker
 * threads, and the good client queues behind them. */
#define SLOW_HEAD_MS (1500 * SAN_FACTOR)

/* 2. 200 slowloris heads are all cut at the head timeout (408 or close), while a good
 * client is served meanwhile. */
static void
slowloris_cut_at_head_timeout(void **state)
{
    struct loopsrv *echo = loopsrv_start(LOOPSRV_ECHO);
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p;
    static int fds[SLOW];
    static uint64_t cut[SLOW];
    char buf[512];
    uint64_t t0;
    uint64_t t_good;
    int left = SLOW;
    int n408 = 0;
    int waiting = 0;
    int i;
    int st;
    int fd;

    (void)state;
    assert_non_null(echo);
    nonoproxy_config_init(&cfg);
    cfg.max_connections = 512;
    cfg.header_timeout_ms = SLOW_HEAD_MS;
    p = start_proxy(&cfg);
    t0 = now_ms();
    for (i = 0; i < SLOW; i++) {
        fds[i] = tcp_connect(nonoproxy_port(p));
        assert_true(fds[i] >= 0);
        assert_int_equal(send_str(fds[i], "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n"), 0);
        cut[i] = 0;
    }
    /* A good client meanwhile: served at once, while the slow heads are still waiting. */
    t_good = now_ms();
    fd = open_tunnel(p, "127.0.0.1", loopsrv_port(echo), &st);
    assert_int_equal(st, 200);
    assert_true(tunnel_echoes(fd));
    close(fd);
    t_good = now_ms() - t_good;
    for (i = 0; i < SLOW; i++) {
        if (!wait_readable(fds[i], 0)) {
            waiting++;
        }
    }
    /* Wait for every slow head to be cut; every fourth one trickles a byte now and then. */
    while (left > 0 && now_ms() - t0 < WAIT_MS) {
        static struct pollfd pf[SLOW];
        int k;

        for (i = 0; i < SLOW; i++) {
            pf[i] = (struct pollfd){cut[i] == 0 ? fds[i] : -1, POLLIN, 0};
        }
        if (poll(pf, SLOW, 250) == 0) {
            for (i = 0; i < SLOW; i += 4) {
                if (cut[i] == 0) {
                    (void)send(fds[i], "X", 1, MSG_NOSIGNAL);
                }
            }
            continue;
        }
        for (i = 0; i < SLOW; i++) {
            if (pf[i].revents == 0) {
                continue;
            }
            cut[i] = now_ms() - t0;
            left--;
            k = read_head(fds[i], buf, sizeof(buf));
            if (k == 408) {
                n408++;
            } else {
                assert_int_equal(k, -1); /* closed (or reset) without an answer */
            }
            close(fds[i]);
        }
    }
    assert_int_equal(left, 0);
    for (i = 0; i < SLOW; i++) {
        assert_true(cut[i] >= SLOW_HEAD_MS - 100); /* not before the head timeout */
    }
    print_message("overload: good client served in %llu ms with %d slow heads waiting; %d slow "
                  "heads cut (%d with 408), last after %llu ms\n",
                  (unsigned long long)t_good, waiting, SLOW, n408,
                  (unsigned long long)(now_ms() - t0));
    assert_true(t_good < 10000); /* ~40-180 ms; TSan 1-3 s */
    assert_true(waiting > 0);
    assert_true(n408 > SLOW / 2);
    nonoproxy_free(p);
    loopsrv_stop(echo);
}

/* Send req, expect a 200 head, then the connection to end before the body is complete;
 * returns how long that took after the head, in ms. */
static uint64_t
cut_mid_response(uint16_t port, const char *req)
{
    char head[1024];
    int fd = tcp_connect(port);
    uint64_t ms;

    assert_true(fd >= 0);
    assert_int_equal(send_str(fd, req), 0);
    assert_int_equal(read_head(fd, head, sizeof(head)), 200);
    ms = drain_to_eof(fd);
    close(fd);
    return ms;
}

/* A good route request: 200 "ok", or 503 when the limit is (still) reached; -1 otherwise. */
static int
good_request(uint16_t port, const char *tok, int *fd_out)
{
    char req[512];
    char head[1024];
    int fd = tcp_connect(port);

    *fd_out = fd;
    if (fd < 0) {
        return -1;
    }
    snprintf(req, sizeof(req),
             "GET /ok/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
             "Connection: close\r\n\r\n",
             tok);
    if (send_str(fd, req) != 0) {
        return -1;
    }
    return read_head(fd, head, sizeof(head));
}

/* 3. An upstream that resets or stalls mid-response, on a route and on the forward path: the
 * client learns within the response timeout, and the worker is free again (max_connections 2:
 * two following requests at once are both served). */
static void
upstream_fault_mid_response_frees_worker(void **state)
{
    struct loopsrv *stall = loopsrv_start(LOOPSRV_STALL);
    struct loopsrv *reset = loopsrv_start(LOOPSRV_RESET);
    struct loopsrv *origin = loopsrv_start(LOOPSRV_ORIGIN);
    /* The forward path gets its own servers: a route's upstream is refused there. */
    struct loopsrv *fwd_stall = loopsrv_start(LOOPSRV_STALL);
    struct loopsrv *fwd_reset = loopsrv_start(LOOPSRV_RESET);
    struct nonoproxy_config cfg;
    struct nonoproxy_route_config r;
    struct nonoproxy_proxy *p;
    char up[3][64];
    char req[512];
    const char *tok;
    uint16_t port;
    uint64_t ms;
    uint64_t t0;
    int fds[2];
    int i;

    (void)state;
    assert_non_null(stall);
    assert_non_null(reset);
    assert_non_null(origin);
    assert_non_null(fwd_stall);
    assert_non_null(fwd_reset);
    nonoproxy_config_init(&cfg);
    cfg.max_connections = 2;
    cfg.response_timeout_ms = 1000;
    snprintf(up[0], sizeof(up[0]), "http://127.0.0.1:%u", loopsrv_port(stall));
    snprintf(up[1], sizeof(up[1]), "http://127.0.0.1:%u", loopsrv_port(reset));
    snprintf(up[2], sizeof(up[2]), "http://127.0.0.1:%u", loopsrv_port(origin));
    nonoproxy_route_config_init(&r, "stall", up[0]);
    assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    nonoproxy_route_config_init(&r, "reset", up[1]);
    assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    nonoproxy_route_config_init(&r, "ok", up[2]);
    assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    p = start_proxy(&cfg);
    port = nonoproxy_port(p);
    tok = proxy_token(p);

    for (i = 0; i < 4; i++) {
        const char *name = (i & 1) ? "reset" : "stall";
        uint16_t up_port = loopsrv_port((i & 1) ? fwd_reset : fwd_stall);

        if (i < 2) {
            snprintf(req, sizeof(req),
                     "GET /%s/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n",
                     name, tok);
        } else {
            snprintf(req, sizeof(req),
                     "GET http://127.0.0.1:%u/x HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                     "Proxy-Authorization: Bearer %s\r\n\r\n",
                     up_port, up_port, tok);
        }
        ms = cut_mid_response(port, req);
        print_message("overload: %s %s mid-response: client cut after %llu ms\n",
                      i < 2 ? "route" : "forward", name, (unsigned long long)ms);
        assert_true(ms < 9000); /* the client's own read timeout is 10 s */
        if ((i & 1) == 0) {
            assert_true(ms >= 900); /* the stall is cut by the response timeout */
        }
    }
    /* Both workers are free again: two requests at once are both served. */
    t0 = now_ms();
    for (;;) {
        int a = good_request(port, tok, &fds[0]);
        int b = good_request(port, tok, &fds[1]);

        close(fds[0]);
        close(fds[1]);
        if (a == 200 && b == 200) {
            break;
        }
        assert_true(a == 200 || a == 503);
        assert_true(b == 200 || b == 503);
        assert_true(now_ms() - t0 < 3000);
        pause_ms(10);
    }
    print_message("overload: two requests served %llu ms after the faults\n",
                  (unsigned long long)(now_ms() - t0));
    nonoproxy_free(p);
    loopsrv_stop(stall);
    loopsrv_stop(reset);
    loopsrv_stop(origin);
    loopsrv_stop(fwd_stall);
    loopsrv_stop(fwd_reset);
}

/* Child of accept_emfile_*: see there. Exits 0 on success, else a step number. */
static int
emfile_child(int to_parent, int from_parent)
{
    struct rlimit rl;
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;
    struct rusage ru0;
    struct rusage ru1;
    static int hog[256];
    int nhog = 0;
    uint16_t port;
    long cpu_us;
    char c;
    int i;

    rl.rlim_cur = 64;
    rl.rlim_max = 64;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 2;
    }
    nonoproxy_config_init(&cfg);
    cfg.max_connections = 8;
    if (nonoproxy_start(&cfg, &p, &diag) != NONOPROXY_OK) {
        return 3;
    }
    nonoproxy_config_free(&cfg);
    /* Use up every descriptor left. */
    while (nhog < 256) {
        int fd = dup(0);
        if (fd < 0) {
            break;
        }
        hog[nhog++] = fd;
    }
    if (errno != EMFILE) {
        return 4;
    }
    /* And below every descriptor in use: a descriptor that the sanitizer runtime opens and
     * closes meanwhile must not hand accept() a free slot. */
    rl.rlim_cur = 3;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 9;
    }
    port = nonoproxy_port(p);
    if (write(to_parent, &port, sizeof(port)) != (ssize_t)sizeof(port)) {
        return 5;
    }
    /* The parent's connections are now waiting in the backlog. */
    if (!wait_readable(from_parent, WAIT_MS) || read(from_parent, &c, 1) != 1) {
        return 6;
    }
    getrusage(RUSAGE_SELF, &ru0);
    pause_ms(2000); /* the measurement window: accept() fails with EMFILE all along */
    getrusage(RUSAGE_SELF, &ru1);
    cpu_us = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1000000L +
             (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) +
             (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1000000L +
             (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
    if (write(to_parent, &cpu_us, sizeof(cpu_us)) != (ssize_t)sizeof(cpu_us)) {
        return 7;
    }
    rl.rlim_cur = 64;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return 10;
    }
    for (i = 0; i < nhog; i++) {
        close(hog[i]);
    }
    /* Keep serving until the parent is done. */
    if (!wait_readable(from_parent, WAIT_MS) || read(from_parent, &c, 1) != 1) {
        return 8;
    }
    nonoproxy_free(p);
    return 0;
}

/* 4. accept() hitting EMFILE, in a forked child with a low RLIMIT_NOFILE: connections wait in
 * the backlog unanswered, the proxy does not spin while starved (~2 s), and it answers them,
 * and new ones, once descriptors are free again. */
static void
accept_emfile_waits_without_spinning(void **state)
{
    int c2p[2];
    int p2c[2];
    pid_t pid;
    uint16_t port;
    long cpu_us = -1;
    int cl[3];
    int primer;
    char head[1024];
    struct pollfd pf[3];
    const char *req = "GET /nope/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    int status = -1;
    uint64_t t0;
    int i;
    const char *preload = getenv("LD_PRELOAD");

    (void)state;
    if (preload != NULL && strstr(preload, "vgpreload") != NULL) {
        /* valgrind emulates the descriptor table and its limit (its own descriptors sit
         * above the client's): the starvation this test needs cannot be made there. */
        print_message("overload: skipped under valgrind (it emulates RLIMIT_NOFILE)\n");
        skip();
    }
    assert_int_equal(pipe(c2p), 0);
    assert_int_equal(pipe(p2c), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Only stdio (the lowest descriptors, which must be open: see emfile_child) and the
         * two pipe ends stay open in the child. */
        for (i = 0; i < 3; i++) {
            if (fcntl(i, F_GETFD) < 0 && open("/dev/null", O_RDWR) != i) {
                _exit(11);
            }
        }
        for (i = 3; i < 4096; i++) {
            if (i != c2p[1] && i != p2c[0]) {
                (void)close(i);
            }
        }
        _exit(emfile_child(c2p[1], p2c[0]));
    }
    close(c2p[1]);
    close(p2c[0]);
    assert_true(wait_readable(c2p[0], WAIT_MS));
    assert_int_equal(read(c2p[0], &port, sizeof(port)), (ssize_t)sizeof(port));
    /* Linux reserves the new descriptor when accept4() starts waiting, so a worker thread
     * that was already blocked before the child ran out can still take one connection. The
     * primer, first in the (FIFO) backlog, takes that slot and keeps it: it sends only part
     * of a head, so it is not answered before the default 30 s head timeout. */
    primer = tcp_connect(port);
    assert_true(primer >= 0);
    assert_int_equal(send_str(primer, "GET /nope/x HTTP/1.1\r\n"), 0);
    for (i = 0; i < 2; i++) {
        cl[i] = tcp_connect(port); /* completes in the backlog */
        assert_true(cl[i] >= 0);
        assert_int_equal(send_str(cl[i], req), 0);
    }
    assert_int_equal(write(p2c[1], "g", 1), 1);
    /* While the child is starved, nothing answers the waiting connections. */
    pf[0] = (struct pollfd){c2p[0], POLLIN, 0};
    pf[1] = (struct pollfd){cl[0], POLLIN, 0};
    pf[2] = (struct pollfd){cl[1], POLLIN, 0};
    assert_true(poll(pf, 3, WAIT_MS) > 0);
    assert_true(pf[0].revents != 0);
    assert_int_equal(read(c2p[0], &cpu_us, sizeof(cpu_us)), (ssize_t)sizeof(cpu_us));
    print_message("overload: CPU while starved of descriptors for 2 s: %ld us\n", cpu_us);
    assert_true(cpu_us >= 0 && cpu_us < 300000);
    /* Descriptors are free again: the waiting connections and a new one are answered. */
    t0 = now_ms();
    for (i = 0; i < 2; i++) {
        assert_int_equal(read_head(cl[i], head, sizeof(head)), 404);
        close(cl[i]);
    }
    print_message("overload: backlog answered %llu ms after descriptors were freed\n",
                  (unsigned long long)(now_ms() - t0));
    cl[2] = tcp_connect(port);
    assert_true(cl[2] >= 0);
    assert_int_equal(send_str(cl[2], req), 0);
    assert_int_equal(read_head(cl[2], head, sizeof(head)), 404);
    close(cl[2]);
    close(primer);
    assert_int_equal(write(p2c[1], "d", 1), 1);
    t0 = now_ms();
    while (waitpid(pid, &status, WNOHANG) == 0 && now_ms() - t0 < WAIT_MS) {
        pause_ms(10);
    }
    if (!WIFEXITED(status)) {
        kill(pid, SIGKILL);
        (void)waitpid(pid, &status, 0);
        fail_msg("the child did not exit");
    }
    assert_int_equal(WEXITSTATUS(status), 0);
    close(c2p[0]);
    close(p2c[1]);
}

#define HELD     256
#define HAMMERS  3
#define HAMMER_N 150

struct load {
    struct nonoproxy_proxy *p;
    uint16_t echo_port;
    uint16_t port;
    char tok[128];
    atomic_bool stop;
    atomic_uint served;
    atomic_uint drained;
    atomic_uint drains;
};

/* Open short tunnels and route requests until told to stop or done. */
static void *
hammer_main(void *arg)
{
    struct load *ld = arg;
    char req[512];
    char head[1024];
    int i;

    for (i = 0; i < HAMMER_N && !atomic_load(&ld->stop); i++) {
        int fd = tcp_connect(ld->port);
        if (fd < 0) {
            continue; /* the proxy is gone */
        }
        if (i & 1) {
            snprintf(req, sizeof(req),
                     "GET /ok/x HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                     "Connection: close\r\n\r\n",
                     ld->tok);
        } else {
            snprintf(req, sizeof(req),
                     "CONNECT 127.0.0.1:%u HTTP/1.1\r\nProxy-Authorization: Bearer %s\r\n\r\n",
                     ld->echo_port, ld->tok);
        }
        if (send_str(fd, req) == 0 && read_head(fd, head, sizeof(head)) == 200) {
            atomic_fetch_add(&ld->served, 1);
        }
        close(fd);
    }
    return NULL;
}

/* Drain the audit ring until told to stop (bounded). */
static void *
drainer_main(void *arg)
{
    struct load *ld = arg;
    static struct nonoproxy_audit_event ev[64];
    uint64_t end = now_ms() + WAIT_MS;

    while (!atomic_load(&ld->stop) && now_ms() < end) {
        uint64_t dropped;
        size_t n = nonoproxy_drain_audit_events(ld->p, ev, 64, &dropped);
        atomic_fetch_add(&ld->drained, (unsigned)n);
        atomic_fetch_add(&ld->drains, 1);
        if (n == 0) {
            pause_ms(1);
        }
    }
    return NULL;
}

struct shut {
    struct nonoproxy_proxy *p;
    uint64_t ms;
};

static void *
shutdown_main(void *arg)
{
    struct shut *s = arg;
    uint64_t t0 = now_ms();
    nonoproxy_shutdown(s->p);
    s->ms = now_ms() - t0;
    return NULL;
}

/* 5. Audit draining and shutdown from other threads while hundreds of connections are served:
 * shutdown with 256 open tunnels (and short connections arriving) returns within 2 s and leaves
 * no descriptor and no thread. Runs under TSan in CI. */
static void
drain_and_shutdown_from_other_threads(void **state)
{
    struct loopsrv *echo = loopsrv_start(LOOPSRV_ECHO);
    struct loopsrv *origin = loopsrv_start(LOOPSRV_ORIGIN);
    struct nonoproxy_config cfg;
    struct nonoproxy_route_config r;
    static struct load ld;
    struct shut sh;
    pthread_t hammers[HAMMERS];
    pthread_t drainer;
    pthread_t shutter;
    static int held[HELD];
    char up[64];
    int fds0;
    int threads0;
    int fds1;
    int threads1;
    int i;
    int st;
    char b;

    (void)state;
    assert_non_null(echo);
    assert_non_null(origin);
    fds0 = count_fds();
    threads0 = count_threads();
    nonoproxy_config_init(&cfg);
    cfg.max_connections = 512;
    snprintf(up, sizeof(up), "http://127.0.0.1:%u", loopsrv_port(origin));
    nonoproxy_route_config_init(&r, "ok", up);
    assert_int_equal(nonoproxy_config_add_route(&cfg, &r), NONOPROXY_OK);
    memset(&ld, 0, sizeof(ld));
    ld.p = start_proxy(&cfg);
    ld.port = nonoproxy_port(ld.p);
    ld.echo_port = loopsrv_port(echo);
    snprintf(ld.tok, sizeof(ld.tok), "%s", proxy_token(ld.p));
    assert_int_equal(pthread_create(&drainer, NULL, drainer_main, &ld), 0);
    for (i = 0; i < HELD; i++) {
        held[i] = open_tunnel(ld.p, "127.0.0.1", ld.echo_port, &st);
        assert_int_equal(st, 200);
    }
    for (i = 0; i < HAMMERS; i++) {
        assert_int_equal(pthread_create(&hammers[i], NULL, hammer_main, &ld), 0);
    }
    /* Let the short connections get going (bounded), then shut down from another thread. */
    {
        uint64_t end = now_ms() + WAIT_MS;
        while (atomic_load(&ld.served) < 50 && now_ms() < end) {
            pause_ms(2);
        }
    }
    assert_true(atomic_load(&ld.served) >= 50);
    sh.p = ld.p;
    sh.ms = 0;
    assert_int_equal(pthread_create(&shutter, NULL, shutdown_main, &sh), 0);
    pthread_join(shutter, NULL);
    print_message("overload: shutdown with %d tunnels held, %u short connections served, "
                  "%u events drained in %u drains: %llu ms\n",
                  HELD, atomic_load(&ld.served), atomic_load(&ld.drained), atomic_load(&ld.drains),
                  (unsigned long long)sh.ms);
    assert_true(sh.ms < 2000 * SAN_FACTOR);
    /* Every held tunnel was closed by the proxy. */
    for (i = 0; i < HELD; i++) {
        assert_true(wait_readable(held[i], WAIT_MS));
        assert_true(recv(held[i], &b, 1, 0) <= 0);
        close(held[i]);
    }
    atomic_store(&ld.stop, true);
    for (i = 0; i < HAMMERS; i++) {
        pthread_join(hammers[i], NULL);
    }
    pthread_join(drainer, NULL);
    nonoproxy_free(ld.p);
    wait_srv_idle(echo);
    wait_srv_idle(origin);
    fds1 = wait_fds(fds0);
    threads1 = wait_threads(threads0);
    print_message("overload: fds %d -> %d, threads %d -> %d\n", fds0, fds1, threads0, threads1);
    assert_int_equal(fds1, fds0);
    assert_int_equal(threads1, threads0);
    loopsrv_stop(echo);
    loopsrv_stop(origin);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(limit_refuses_extra_tunnels_then_resumes),
        cmocka_unit_test(slowloris_cut_at_head_timeout),
        cmocka_unit_test(upstream_fault_mid_response_frees_worker),
        cmocka_unit_test(accept_emfile_waits_without_spinning),
        cmocka_unit_test(drain_and_shutdown_from_other_threads),
    };
    struct rlimit rl;

    /* 300 tunnels take ~1200 descriptors (client, proxy, upstream and echo side each). */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
