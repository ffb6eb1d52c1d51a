/* CONNECT benchmark (issue #2, item 11): setup rate and bulk throughput through nonoproxy
 * (started in-process, audit on) and optionally through other proxies on loopback, each next to
 * the same traffic sent straight to the origin, in the same run. Modes are alternated round by
 * round and the median of the rounds is reported, with the ratio proxy / direct.
 *
 * Cases:
 *   setup1, setup16  connect + CONNECT + "GET /" + ~100-byte answer + close, 1 or 16 clients;
 *                    direct mode does the same without the CONNECT. Unit: connections/s.
 *   down1, down8     1 or 8 tunnels, origin → client as fast as possible. Unit: MiB/s.
 *   up1, up8         1 or 8 tunnels, client → origin, counted where the origin reads.
 *
 * A benchmark, not a test: it prints PASS/FAIL against the targets but exits 0 whatever the
 * numbers; it exits 1 only when it cannot run (origin or proxy does not start, a mode makes no
 * progress at all). Run it through test/bench/run.sh. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nonoproxy/nonoproxy.h>

#include "benchutil.h"
#include "origin.h"

#define MAX_MODES      5 /* direct, nonoproxy, up to three upstream proxies */
#define MAX_ROUNDS     9
#define MAX_CONC       256
#define ORIGIN_THREADS 64 /* > the most connections a bulk case holds at the origin at once */
#define MAX_PIDS       16
#define LAT_SAMPLES    65536 /* latency samples per measurement, shared out among the clients */
#define MAX_HOLD       1000
#define BULK_MAX_S     120 /* a bulk measurement gives up after this long */
#define CLIENT_STACK   ((size_t)256 * 1024)
#define READY_WAIT_MS  10000
#define DRAIN_BATCH    256
#define TARGET_SETUP   0.37
#define TARGET_BULK    0.45
#define MIB            (1024.0 * 1024.0)

/* Long options without a short form. */
enum {
    OPT_RESULTS = 256,
    OPT_NONOPROXY_ENV,
    OPT_PROXY_PID,
    OPT_BULK_MIB,
    OPT_SWEEP,
    OPT_HOLD,
    OPT_LINGER,
    OPT_SERVE,
};

enum case_kind {
    CASE_SETUP,
    CASE_DOWN,
    CASE_UP,
    CASE_BULK, /* a fixed number of bytes origin -> client, split over the tunnels */
};

struct bcase {
    const char *name;  /* --case value */
    const char *label; /* table row */
    enum case_kind kind;
    unsigned conc;
};

/* clang-format off */
static const struct bcase cases[] = {
    {"setup1", "setup, 1 client", CASE_SETUP, 1},
    {"setup16", "setup, 16 clients", CASE_SETUP, 16},
    {"down1", "download, 1 tunnel", CASE_DOWN, 1},
    {"down8", "download, 8 tunnels", CASE_DOWN, 8},
    {"up1", "upload, 1 tunnel", CASE_UP, 1},
    {"up8", "upload, 8 tunnels", CASE_UP, 8},
    {"bulk1", "bulk, 1 tunnel", CASE_BULK, 1},
    {"bulk8", "bulk, 8 tunnels", CASE_BULK, 8},
};
/* clang-format on */
#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* One way of reaching the origin: directly, or through a proxy with a prepared CONNECT. */
struct mode {
    char name[32];
    bool proxy;
    struct sockaddr_in addr; /* the proxy's address (unused for direct) */
    char connect_req[512];
    size_t connect_req_len;
    char auth[200];       /* the credentials line of connect_req, or "" */
    pid_t pids[MAX_PIDS]; /* the proxy's processes (CPU time, RSS); none for direct */
    size_t npids;
};

struct client {
    _Alignas(64) _Atomic uint64_t done; /* setup: cycles completed; down: bytes received */
    _Atomic uint64_t errors;            /* each client's counters on their own cache line */
    struct run *run;
    pthread_t thread;
    char *buf;   /* BENCH_IO_CHUNK bytes */
    float *lat;  /* setup: ms per cycle recorded in the window; bulk: [0] = ms to the last byte */
    float *clat; /* setup through a proxy: ms from sending CONNECT to reading the 200 */
    size_t nlat;
    size_t cap;
    bool started;
};

/* One measurement: one case in one mode. */
struct run {
    const struct mode *m;
    const struct bcase *c;
    struct origin *origin;
    struct sockaddr_in origin_addr;
    atomic_bool stop;
    atomic_bool recording; /* setup: record latencies (inside the window only) */
    atomic_bool go;        /* bulk: every stream is open, start reading */
    atomic_uint ready;
    unsigned conc;       /* clients of this measurement (the case's, or the sweep's) */
    uint64_t bulk_share; /* bulk: bytes each client reads */
    double go_t;         /* bulk: when go was set */
    uint64_t opened;     /* out: streams opened through the mode (setup: cycles completed) */
    struct client cl[MAX_CONC];
};

struct options {
    const char *results; /* --results FILE: machine-readable lines for report.py */
    bool nonoproxy_env;  /* nonoproxy is the parent nonoproxy-run: $HTTP_PROXY, $NONO_PROXY_TOKEN */
    unsigned bulk_mib;
    unsigned sweep_max; /* 0: no sweep; else setup at 1, 2, 4, ... sweep_max clients */
    unsigned hold;      /* 0: no RSS probe; else tunnels held open per proxy */
    unsigned linger_s;  /* RSS probe: seconds after closing them */
    unsigned serve_s;   /* --serve: run the origin only, for this long at most */
    unsigned window_ms;
    unsigned warmup_ms;
    unsigned rounds;
    bool verbose;
    bool want_case[NCASES];
    bool any_case;
};

/* What one measurement gives besides its rate. */
struct extra {
    double cpu; /* proxy CPU: µs per tunnel (setup) or s per GB (bulk); < 0 = not measured */
    double p50; /* setup: ms per cycle */
    double p99;
    double cp50; /* setup through a proxy: ms of the CONNECT phase */
};

struct results {
    double v[NCASES][MAX_MODES][MAX_ROUNDS];
    struct extra x[NCASES][MAX_MODES][MAX_ROUNDS];
    uint64_t errors[NCASES][MAX_MODES];
    bool no_progress;
    uint64_t audit_events;
    uint64_t audit_dropped;
    uint64_t opened[MAX_MODES]; /* tunnels opened per mode (direct: connections) */
};

/* Everything one invocation works with. */
struct bench {
    struct options o;
    struct mode modes[MAX_MODES]; /* [0] direct, [1] nonoproxy, then upstream proxies */
    unsigned nmodes;
    struct origin *origin;
    struct nonoproxy_proxy *np; /* NULL with --nonoproxy-env */
    long clk_tck;
    struct results res;
};

static const char get_request[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n";

/* Connect a new blocking socket to to. Returns the fd or -1. */
static int
client_connect(const struct sockaddr_in *to)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -1;
    }
    bench_sock_setup(fd);
    if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) != 0) {
        (void)close(fd);
        return -1;
    }
    return fd;
}

/* Read a proxy's answer to CONNECT up to the blank line. Returns 0 for a 2xx, else -1. The
 * origin never speaks first, so nothing of the tunnel can follow the head here. */
static int
read_connect_reply(int fd, char *buf, size_t cap)
{
    size_t have = 0;
    ssize_t r;

    while (have < 12 || memmem(buf, have, "\r\n\r\n", 4) == NULL) {
        if (have == cap) {
            return -1;
        }
        r = recv(fd, buf + have, cap - have, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return -1;
        }
        have += (size_t)r;
    }
    /* "HTTP/1.x 2.." */
    return (memcmp(buf, "HTTP/1.", 7) == 0 && buf[8] == ' ' && buf[9] == '2') ? 0 : -1;
}

/* Open a byte stream to the origin: a plain connection, or a tunnel through the mode's proxy.
 * *connect_ms (may be NULL) receives the ms from sending CONNECT to reading the 200 (0 for
 * direct). Returns the fd or -1. */
static int
open_stream(const struct run *r, char *buf, double *connect_ms)
{
    const struct mode *m = r->m;
    int fd = client_connect(m->proxy ? &m->addr : &r->origin_addr);
    double t0;

    if (connect_ms != NULL) {
        *connect_ms = 0.0;
    }
    if (fd < 0 || !m->proxy) {
        return fd;
    }
    t0 = bench_now_s();
    if (bench_send_all(fd, m->connect_req, m->connect_req_len) != 0 ||
        read_connect_reply(fd, buf, 4096) != 0) {
        (void)close(fd);
        return -1;
    }
    if (connect_ms != NULL) {
        *connect_ms = (bench_now_s() - t0) * 1e3;
    }
    return fd;
}

/* One setup cycle: open, "GET /", read the answer to end of stream, close. *connect_ms as for
 * open_stream. 0 or -1. */
static int
setup_cycle(const struct run *r, char *buf, double *connect_ms)
{
    int fd = open_stream(r, buf, connect_ms);
    size_t have = 0;
    ssize_t n;
    int rc = -1;

    if (fd < 0) {
        return -1;
    }
    if (bench_send_all(fd, get_request, sizeof(get_request) - 1) != 0) {
        goto out;
    }
    for (;;) {
        n = recv(fd, buf + have, BENCH_IO_CHUNK - have, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 || have == BENCH_IO_CHUNK) {
            goto out;
        }
        if (n == 0) {
            break;
        }
        have += (size_t)n;
    }
    if (have > 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0 &&
        memmem(buf, have, "\r\n\r\n", 4) != NULL) {
        rc = 0;
    }
out:
    (void)close(fd);
    return rc;
}

/* Setup clients loop on cycles until told to stop, recording each cycle's latency while the
 * window is open. */
static void
client_setup(struct client *c)
{
    struct run *r = c->run;
    struct timespec pause = {0, 1000000L};
    double t0;
    double cms;

    atomic_fetch_add(&r->ready, 1);
    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        t0 = bench_now_s();
        if (setup_cycle(r, c->buf, &cms) == 0) {
            bench_count(&c->done, 1);
            if (atomic_load_explicit(&r->recording, memory_order_relaxed) && c->nlat < c->cap) {
                c->lat[c->nlat] = (float)((bench_now_s() - t0) * 1e3);
                c->clat[c->nlat] = (float)cms;
                c->nlat++;
            }
        } else {
            bench_count(&c->errors, 1);
            nanosleep(&pause, NULL); /* e.g. EADDRNOTAVAIL: do not spin */
        }
    }
}

/* Bulk clients (down, up) open one stream, then read (down) or write (up) until told to stop;
 * fixed-size bulk clients read their share after go, then close and record the time. */
static void
client_bulk(struct client *c)
{
    struct run *r = c->run;
    enum case_kind kind = r->c->kind;
    int fd = open_stream(r, c->buf, NULL);
    uint64_t got = 0;
    ssize_t n;

    if (fd >= 0 && bench_send_all(fd, kind == CASE_UP ? "SNK\n" : "SRC\n", 4) != 0) {
        (void)close(fd);
        fd = -1;
    }
    if (fd < 0) {
        bench_count(&c->errors, 1);
    }
    atomic_fetch_add(&r->ready, 1);
    while (kind == CASE_BULK && !atomic_load(&r->go) && !atomic_load(&r->stop)) {
        bench_sleep_ms(1);
    }
    while (fd >= 0 && !atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        if (kind == CASE_BULK && got >= r->bulk_share) {
            c->lat[0] = (float)((bench_now_s() - r->go_t) * 1e3);
            c->nlat = 1;
            break;
        }
        if (kind == CASE_BULK && bench_now_s() - r->go_t > BULK_MAX_S) {
            bench_count(&c->errors, 1);
            break;
        }
        if (kind == CASE_UP) {
            n = send(fd, c->buf, BENCH_IO_CHUNK, MSG_NOSIGNAL);
        } else {
            uint64_t left = r->bulk_share - got;
            size_t want =
                kind == CASE_BULK && left < BENCH_IO_CHUNK ? (size_t)left : BENCH_IO_CHUNK;
            n = recv(fd, c->buf, want, 0);
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            bench_count(&c->errors, 1);
            break;
        }
        if (kind != CASE_UP) {
            bench_count(&c->done, (uint64_t)n);
            got += (uint64_t)n;
        }
    }
    if (fd >= 0) {
        (void)close(fd);
    }
}

static void *
client_main(void *arg)
{
    struct client *c = arg;

    (void)pthread_setname_np(pthread_self(), "bench-client"); /* tells perf samples apart */
    if (c->run->c->kind == CASE_SETUP) {
        client_setup(c);
    } else {
        client_bulk(c);
    }
    return NULL;
}

/* The progress counter of the run: cycles, bytes received by clients, or bytes received by
 * the origin. */
static uint64_t
sample(struct run *r)
{
    uint64_t sum = 0;
    unsigned i;

    if (r->c->kind == CASE_UP) {
        return origin_sink_bytes(r->origin);
    }
    for (i = 0; i < r->conc; i++) {
        sum += atomic_load_explicit(&r->cl[i].done, memory_order_relaxed);
    }
    return sum;
}

/* Start r's clients; returns the number started. */
static unsigned
start_clients(struct run *r)
{
    pthread_attr_t attr;
    unsigned i;

    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, CLIENT_STACK);
    for (i = 0; i < r->conc; i++) {
        struct client *c = &r->cl[i];
        c->run = r;
        atomic_init(&c->done, 0);
        atomic_init(&c->errors, 0);
        if (pthread_create(&c->thread, &attr, client_main, c) != 0) {
            break;
        }
        c->started = true;
    }
    pthread_attr_destroy(&attr);
    return i;
}

/* Wait until n clients said they are ready, bounded. */
static void
wait_ready(struct run *r, unsigned n)
{
    unsigned waited = 0;

    while (atomic_load(&r->ready) < n && waited < READY_WAIT_MS) {
        bench_sleep_ms(1);
        waited++;
    }
}

/* qsort order of floats. */
static int
cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a;
    float y = *(const float *)b;

    return (x > y) - (x < y);
}

/* The q-quantile (0..1) of v[0..n) (sorted in place); 0 when n is 0. */
static double
quantile(float *v, size_t n, double q)
{
    size_t i;

    if (n == 0) {
        return 0.0;
    }
    qsort(v, n, sizeof(float), cmp_float);
    i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i];
}

/* Gather every client's latency samples into one array and fill x's percentiles. */
static void
latency_stats(struct run *r, struct extra *x)
{
    size_t total = 0;
    size_t k = 0;
    float *all;
    float *call;
    unsigned i;

    for (i = 0; i < r->conc; i++) {
        total += r->cl[i].nlat;
    }
    all = calloc(total + 1, sizeof(float));
    call = calloc(total + 1, sizeof(float));
    if (all != NULL && call != NULL) {
        for (i = 0; i < r->conc; i++) {
            memcpy(all + k, r->cl[i].lat, r->cl[i].nlat * sizeof(float));
            memcpy(call + k, r->cl[i].clat, r->cl[i].nlat * sizeof(float));
            k += r->cl[i].nlat;
        }
        x->p50 = quantile(all, total, 0.50);
        x->p99 = quantile(all, total, 0.99);
        x->cp50 = quantile(call, total, 0.50);
    }
    free(all);
    free(call);
}

/* The window of a setup, down or up run: warm-up, then the counters over window_ms. */
static void
measure_window(struct run *r, const struct options *o, double *value, struct extra *x, long clk_tck)
{
    uint64_t s0;
    uint64_t s1;
    unsigned long long c0;
    unsigned long long c1;
    double t0;
    double t1;
    double per;

    bench_sleep_ms(o->warmup_ms);
    s0 = sample(r);
    c0 = bench_cpu_ticks(r->m->pids, r->m->npids);
    atomic_store(&r->recording, true);
    t0 = bench_now_s();
    bench_sleep_ms(o->window_ms);
    s1 = sample(r);
    c1 = bench_cpu_ticks(r->m->pids, r->m->npids);
    atomic_store(&r->recording, false);
    t1 = bench_now_s();
    *value = (double)(s1 - s0) / (t1 - t0);
    per = r->c->kind == CASE_SETUP ? 1.0 : 1e9; /* µs per tunnel, s per GB */
    if (r->m->npids > 0 && s1 > s0) {
        x->cpu = (double)(c1 - c0) / (double)clk_tck * (r->c->kind == CASE_SETUP ? 1e6 : 1.0) /
                 ((double)(s1 - s0) / per);
    }
    if (r->c->kind != CASE_SETUP) {
        *value /= MIB;
    }
}

/* The transfer of a fixed-size bulk run: go, wait for every client, MiB/s over the slowest. */
static void
measure_bulk(struct run *r, double *value, struct extra *x, long clk_tck)
{
    unsigned long long c0 = bench_cpu_ticks(r->m->pids, r->m->npids);
    unsigned long long c1;
    double total = (double)r->bulk_share * (double)r->conc;
    double secs = 0.0;
    unsigned i;

    r->go_t = bench_now_s();
    atomic_store(&r->go, true);
    for (i = 0; i < r->conc; i++) {
        pthread_join(r->cl[i].thread, NULL);
        r->cl[i].started = false;
        if (r->cl[i].nlat == 1 && (double)r->cl[i].lat[0] / 1e3 > secs) {
            secs = (double)r->cl[i].lat[0] / 1e3;
        }
    }
    c1 = bench_cpu_ticks(r->m->pids, r->m->npids);
    *value = secs > 0.0 ? total / MIB / secs : 0.0;
    if (r->m->npids > 0) {
        x->cpu = (double)(c1 - c0) / (double)clk_tck / (total / 1e9);
    }
}

/* Run one measurement of run r with options o. *value receives conn/s or MiB/s, *x the CPU time
 * and latencies, *errors the failed operations. Returns 0, or -1 when the clients could not be
 * started. */
static int
measure(struct run *r, const struct options *o, long clk_tck, double *value, struct extra *x,
        uint64_t *errors)
{
    unsigned started = start_clients(r);
    unsigned i;

    *value = 0.0;
    *errors = 0;
    x->cpu = -1.0;
    if (started == r->conc) {
        wait_ready(r, started);
        if (r->c->kind == CASE_BULK) {
            measure_bulk(r, value, x, clk_tck);
        } else {
            measure_window(r, o, value, x, clk_tck);
        }
    }
    atomic_store(&r->stop, true);
    for (i = 0; i < started; i++) {
        if (r->cl[i].started) {
            pthread_join(r->cl[i].thread, NULL);
        }
        *errors += atomic_load(&r->cl[i].errors);
        r->opened += r->c->kind == CASE_SETUP ? atomic_load(&r->cl[i].done) : 1;
    }
    if (r->c->kind == CASE_SETUP) {
        latency_stats(r, x);
    }
    return started == r->conc ? 0 : -1;
}

static void
run_free(struct run *r)
{
    unsigned i;

    for (i = 0; i < r->conc; i++) {
        free(r->cl[i].buf);
        free(r->cl[i].lat);
        free(r->cl[i].clat);
    }
    free(r);
}

/* Allocate the state of one measurement with conc clients, each with its buffer and latency
 * arrays. NULL on failure. */
static struct run *
run_new(const struct mode *m, const struct bcase *c, unsigned conc, struct origin *origin,
        uint64_t bulk_bytes)
{
    struct run *r = aligned_alloc(64, sizeof(struct run));
    size_t cap = LAT_SAMPLES / conc;
    unsigned i;

    if (r == NULL) {
        return NULL;
    }
    memset(r, 0, sizeof(*r));
    r->m = m;
    r->c = c;
    r->conc = conc;
    r->bulk_share = bulk_bytes / conc;
    r->origin = origin;
    r->origin_addr.sin_family = AF_INET;
    r->origin_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->origin_addr.sin_port = htons(origin_port(origin));
    atomic_init(&r->stop, false);
    atomic_init(&r->recording, false);
    atomic_init(&r->go, false);
    atomic_init(&r->ready, 0);
    for (i = 0; i < conc; i++) {
        r->cl[i].buf = malloc(BENCH_IO_CHUNK);
        r->cl[i].lat = calloc(cap, sizeof(float));
        r->cl[i].clat = calloc(cap, sizeof(float));
        r->cl[i].cap = cap;
        if (r->cl[i].buf == NULL || r->cl[i].lat == NULL || r->cl[i].clat == NULL) {
            r->conc = i + 1;
            run_free(r);
            return NULL;
        }
        memset(r->cl[i].buf, 'y', BENCH_IO_CHUNK);
    }
    return r;
}

/* Empty nonoproxy's audit ring (outside the measured window), counting what it held. */
static void
drain_audit(struct nonoproxy_proxy *p, struct results *res)
{
    static struct nonoproxy_audit_event ev[DRAIN_BATCH];
    uint64_t dropped = 0;
    size_t n;

    do {
        n = nonoproxy_drain_audit_events(p, ev, DRAIN_BATCH, &dropped);
        res->audit_events += n;
        res->audit_dropped += dropped;
    } while (n > 0);
}

/* ---- command line ------------------------------------------------------------------------ */

static void
usage(FILE *f)
{
    fprintf(f, "usage: bench_connect [--quick] [--window-ms N] [--warmup-ms N] [--rounds N]\n"
               "                     [--case NAME]... [--upstream-proxy NAME=IP:PORT]... [-v]\n"
               "  --quick            60 ms windows, 3 rounds (default: 300 ms, 5 rounds)\n"
               "  --case NAME        only this case (repeatable): setup1 setup16 down1 down8 "
               "up1 up8\n"
               "  --upstream-proxy   also measure through this proxy (CONNECT without auth)\n"
               "  --proxy-pid NAME=PID  read that proxy's CPU time and RSS (PID and children)\n"
               "  --nonoproxy-env    nonoproxy is the parent nonoproxy-run ($HTTP_PROXY,\n"
               "                     $NONO_PROXY_TOKEN), not started in-process\n"
               "  --bulk-mib N       bytes of bulk1 / bulk8 (default 1024 MiB)\n"
               "  --sweep N          also setup rate and p99 at 1, 2, 4, ... N clients\n"
               "  --hold N           RSS probe first: N idle tunnels per proxy, then closed\n"
               "  --linger-s N       RSS probe: read RSS N s after closing (default 10)\n"
               "  --results FILE     append machine-readable lines to FILE\n"
               "  --serve N          run the origin only (prints its port) for N s at most\n"
               "  -v                 print every measurement on stderr\n");
}

/* Fill m's CONNECT request for the origin, with auth_line (may be "") among the headers. */
static void
mode_set_connect(struct mode *m, uint16_t origin, const char *auth_line)
{
    int n = snprintf(m->connect_req, sizeof(m->connect_req),
                     "CONNECT 127.0.0.1:%u HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n%s\r\n",
                     (unsigned)origin, (unsigned)origin, auth_line);

    m->connect_req_len = (n > 0 && (size_t)n < sizeof(m->connect_req)) ? (size_t)n : 0;
    if (m->auth != auth_line) {
        (void)snprintf(m->auth, sizeof(m->auth), "%s", auth_line);
    }
}

/* Parse "NAME=IP:PORT" or "IP:PORT" into m. Returns 0 or -1. */
static int
parse_upstream(const char *arg, struct mode *m)
{
    const char *eq = strchr(arg, '=');
    const char *hp = eq != NULL ? eq + 1 : arg;
    const char *colon = strrchr(hp, ':');
    char ip[64];
    unsigned port;
    size_t nlen = eq != NULL ? (size_t)(eq - arg) : 8;

    memset(m, 0, sizeof(*m));
    if (colon == NULL || (size_t)(colon - hp) >= sizeof(ip) || nlen == 0 ||
        nlen >= sizeof(m->name) ||
        bench_parse_uint("bench_connect", colon + 1, 1, 65535, &port) != 0) {
        fprintf(stderr, "bench_connect: bad --upstream-proxy '%s' (NAME=IP:PORT)\n", arg);
        return -1;
    }
    memcpy(m->name, eq != NULL ? arg : "upstream", nlen);
    memcpy(ip, hp, (size_t)(colon - hp));
    ip[colon - hp] = '\0';
    m->proxy = true;
    m->addr.sin_family = AF_INET;
    m->addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &m->addr.sin_addr) != 1) {
        fprintf(stderr, "bench_connect: --upstream-proxy needs an IPv4 literal: '%s'\n", ip);
        return -1;
    }
    return 0;
}

/* Parse "NAME=PID" and record PID's process family as the CPU and RSS account of the upstream
 * mode NAME (given before). Returns 0 or -1. */
static int
parse_proxy_pid(const char *arg, struct mode *modes, unsigned nmodes)
{
    const char *eq = strchr(arg, '=');
    unsigned pid;
    unsigned mi;

    if (eq == NULL || bench_parse_uint("bench_connect", eq + 1, 1, 4194304, &pid) != 0) {
        fprintf(stderr, "bench_connect: bad --proxy-pid '%s' (NAME=PID)\n", arg);
        return -1;
    }
    for (mi = 2; mi < nmodes; mi++) {
        if (strlen(modes[mi].name) == (size_t)(eq - arg) &&
            memcmp(modes[mi].name, arg, (size_t)(eq - arg)) == 0) {
            modes[mi].npids = bench_family_of((pid_t)pid, modes[mi].pids, MAX_PIDS);
            return 0;
        }
    }
    fprintf(stderr, "bench_connect: --proxy-pid %s: no --upstream-proxy of that name before it\n",
            arg);
    return -1;
}

/* Select the case named name. Returns 0 or -1. */
static int
want_case(struct options *o, const char *name)
{
    size_t i;

    for (i = 0; i < NCASES; i++) {
        if (strcmp(name, cases[i].name) == 0) {
            o->want_case[i] = true;
            o->any_case = true;
            return 0;
        }
    }
    fprintf(stderr, "bench_connect: unknown case '%s'\n", name);
    return -1;
}

/* Apply the options of the issue #12 additions (ch >= OPT_RESULTS). 0 or -1. */
static int
apply_more(int ch, const char *arg, struct options *o, struct mode *modes, unsigned nmodes)
{
    switch (ch) {
    case OPT_RESULTS:
        o->results = arg;
        return 0;
    case OPT_NONOPROXY_ENV:
        o->nonoproxy_env = true;
        return 0;
    case OPT_PROXY_PID:
        return parse_proxy_pid(arg, modes, nmodes);
    case OPT_BULK_MIB:
        return bench_parse_uint("bench_connect", arg, 8, 16384, &o->bulk_mib);
    case OPT_SWEEP:
        return bench_parse_uint("bench_connect", arg, 1, MAX_CONC, &o->sweep_max);
    case OPT_HOLD:
        return bench_parse_uint("bench_connect", arg, 1, MAX_HOLD, &o->hold);
    case OPT_LINGER:
        return bench_parse_uint("bench_connect", arg, 0, 120, &o->linger_s);
    case OPT_SERVE:
        return bench_parse_uint("bench_connect", arg, 1, 3600, &o->serve_s);
    default:
        usage(stderr);
        return -1;
    }
}

/* Parse argv into o and the upstream modes (appended at modes[*nmodes]). 0, 1 (help) or -1. */
static int
parse_args(int argc, char **argv, struct options *o, struct mode *modes, unsigned *nmodes)
{
    static const struct option longopts[] = {
        {"quick", no_argument, NULL, 'q'},
        {"window-ms", required_argument, NULL, 'w'},
        {"warmup-ms", required_argument, NULL, 'W'},
        {"rounds", required_argument, NULL, 'r'},
        {"case", required_argument, NULL, 'c'},
        {"upstream-proxy", required_argument, NULL, 'u'},
        {"results", required_argument, NULL, OPT_RESULTS},
        {"nonoproxy-env", no_argument, NULL, OPT_NONOPROXY_ENV},
        {"proxy-pid", required_argument, NULL, OPT_PROXY_PID},
        {"bulk-mib", required_argument, NULL, OPT_BULK_MIB},
        {"sweep", required_argument, NULL, OPT_SWEEP},
        {"hold", required_argument, NULL, OPT_HOLD},
        {"linger-s", required_argument, NULL, OPT_LINGER},
        {"serve", required_argument, NULL, OPT_SERVE},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool warm_set = false;
    int ch;

    /* getopt_long is not thread-safe: this runs before any thread starts. */
    while ((ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) { /* NOLINT */
        switch (ch) {
        case 'q':
            o->window_ms = 60;
            o->rounds = 3;
            break;
        case 'w':
            if (bench_parse_uint("bench_connect", optarg, 10, 60000, &o->window_ms) != 0) {
                return -1;
            }
            break;
        case 'W':
            if (bench_parse_uint("bench_connect", optarg, 0, 60000, &o->warmup_ms) != 0) {
                return -1;
            }
            warm_set = true;
            break;
        case 'r':
            if (bench_parse_uint("bench_connect", optarg, 1, MAX_ROUNDS, &o->rounds) != 0) {
                return -1;
            }
            break;
        case 'c':
            if (want_case(o, optarg) != 0) {
                return -1;
            }
            break;
        case 'u':
            if (*nmodes == MAX_MODES || parse_upstream(optarg, &modes[*nmodes]) != 0) {
                return -1;
            }
            (*nmodes)++;
            break;
        case 'v':
            o->verbose = true;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            if (ch < OPT_RESULTS || apply_more(ch, optarg, o, modes, *nmodes) != 0) {
                if (ch < OPT_RESULTS) {
                    usage(stderr);
                }
                return -1;
            }
            break;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return -1;
    }
    if (!warm_set) {
        o->warmup_ms = o->window_ms / 5 < 20 ? 20 : o->window_ms / 5;
    }
    return 0;
}

/* ---- report ------------------------------------------------------------------------------ */

/* The median over the rounds of case ci in mode mi. */
static double
case_median(const struct bench *b, size_t ci, unsigned mi)
{
    return bench_median(b->res.v[ci][mi], b->o.rounds);
}

/* The ratio of mode mi to direct in case ci: the median over the rounds of the two values
 * measured back to back in the same round (load from elsewhere hits both alike). */
static double
case_ratio(const struct bench *b, size_t ci, unsigned mi)
{
    const struct results *res = &b->res;
    double r[MAX_ROUNDS];
    unsigned i;

    for (i = 0; i < b->o.rounds; i++) {
        r[i] = res->v[ci][0][i] > 0.0 ? res->v[ci][mi][i] / res->v[ci][0][i] : 0.0;
    }
    return bench_median(r, b->o.rounds);
}

static void
print_table(const struct bench *b)
{
    size_t ci;
    unsigned mi;

    printf("\n%-21s %-7s %11s", "case", "unit", "direct");
    for (mi = 1; mi < b->nmodes; mi++) {
        printf(" %11s %6s", b->modes[mi].name, "ratio");
    }
    printf("\n");
    for (ci = 0; ci < NCASES; ci++) {
        if (!b->o.want_case[ci]) {
            continue;
        }
        printf("%-21s %-7s %11.1f", cases[ci].label,
               cases[ci].kind == CASE_SETUP ? "conn/s" : "MiB/s", case_median(b, ci, 0));
        for (mi = 1; mi < b->nmodes; mi++) {
            printf(" %11.1f %6.3f", case_median(b, ci, mi), case_ratio(b, ci, mi));
        }
        printf("\n");
    }
}

/* One line per case for nonoproxy (mode 1) against its target, with the other proxies' ratio
 * for reference. */
static void
print_verdicts(const struct bench *b)
{
    size_t ci;
    unsigned mi;
    unsigned best;
    double target;
    double ratio;

    printf("\nnonoproxy ratio (proxy / direct, median of the per-round ratios) against the "
           "targets:\n");
    for (ci = 0; ci < NCASES; ci++) {
        if (!b->o.want_case[ci]) {
            continue;
        }
        target = cases[ci].kind == CASE_SETUP ? TARGET_SETUP : TARGET_BULK;
        ratio = case_ratio(b, ci, 1);
        printf("  %s  %-21s %.3f %s %.2f", ratio >= target ? "PASS" : "FAIL", cases[ci].label,
               ratio, ratio >= target ? ">=" : "< ", target);
        best = 2;
        for (mi = 2; mi < b->nmodes; mi++) {
            printf("   %s %.3f", b->modes[mi].name, case_ratio(b, ci, mi));
            best = case_ratio(b, ci, mi) > case_ratio(b, ci, best) ? mi : best;
        }
        if (b->nmodes > 2) {
            printf("   -> %s the best other (%s)",
                   ratio >= case_ratio(b, ci, best) ? "at or above" : "below", b->modes[best].name);
        }
        printf("\n");
    }
}

static void
print_errors(const struct bench *b)
{
    size_t ci;
    unsigned mi;

    for (ci = 0; ci < NCASES; ci++) {
        for (mi = 0; b->o.want_case[ci] && mi < b->nmodes; mi++) {
            if (b->res.errors[ci][mi] != 0) {
                printf("warning: %s via %s: %llu failed operations\n", cases[ci].label,
                       b->modes[mi].name, (unsigned long long)b->res.errors[ci][mi]);
            }
        }
    }
}

/* ---- main -------------------------------------------------------------------------------- */

/* Start nonoproxy in-process allowing 127.0.0.1, and prepare its mode. NULL on failure. */
static struct nonoproxy_proxy *
start_nonoproxy(struct mode *m, uint16_t origin)
{
    struct nonoproxy_config cfg;
    struct nonoproxy_proxy *p = NULL;
    struct nonoproxy_diag diag;
    const struct nonoproxy_env_var *vars;
    const char *token = NULL;
    char auth[160];
    size_t n = 0;
    size_t i;

    memset(&diag, 0, sizeof(diag));
    nonoproxy_config_init(&cfg); /* audit ring at its default capacity, audit on */
    cfg.max_connections = 0;
    if (nonoproxy_config_allow_host(&cfg, "127.0.0.1", &diag) != NONOPROXY_OK ||
        nonoproxy_start(&cfg, &p, &diag) != NONOPROXY_OK) {
        fprintf(stderr, "bench_connect: nonoproxy: %s\n", diag.message);
        nonoproxy_config_free(&cfg);
        return NULL;
    }
    nonoproxy_config_free(&cfg);
    if (nonoproxy_env_vars(p, &vars, &n) == NONOPROXY_OK) {
        for (i = 0; i < n; i++) {
            if (strcmp(vars[i].name, "NONO_PROXY_TOKEN") == 0) {
                token = vars[i].value;
            }
        }
    }
    if (token == NULL) {
        fprintf(stderr, "bench_connect: nonoproxy gave no NONO_PROXY_TOKEN\n");
        nonoproxy_free(p);
        return NULL;
    }
    memset(m, 0, sizeof(*m));
    (void)snprintf(m->name, sizeof(m->name), "nonoproxy");
    m->proxy = true;
    m->addr.sin_family = AF_INET;
    m->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    m->addr.sin_port = htons(nonoproxy_port(p));
    (void)snprintf(auth, sizeof(auth), "Proxy-Authorization: Bearer %s\r\n", token);
    mode_set_connect(m, origin, auth);
    return p;
}

/* Take nonoproxy's mode from the parent nonoproxy-run: its address from $HTTP_PROXY
 * (http://[USER:PASS@]127.0.0.1:PORT[/]), the token from $NONO_PROXY_TOKEN, the parent's CPU
 * time and RSS. Returns 0 or -1 (message printed). */
static int
nonoproxy_from_env(struct mode *m, uint16_t origin)
{
    const char *url = getenv("HTTP_PROXY");         /* NOLINT(concurrency-mt-unsafe): no threads */
    const char *token = getenv("NONO_PROXY_TOKEN"); /* NOLINT(concurrency-mt-unsafe) */
    const char *hp;
    const char *at;
    char spec[96];
    char auth[200];
    size_t len;

    if (url == NULL || token == NULL || strncmp(url, "http://", 7) != 0) {
        fprintf(stderr, "bench_connect: --nonoproxy-env: $HTTP_PROXY (http://...) and "
                        "$NONO_PROXY_TOKEN must be set (run under nonoproxy-run)\n");
        return -1;
    }
    hp = url + 7;
    at = strchr(hp, '@');
    hp = at != NULL ? at + 1 : hp;
    len = strcspn(hp, "/");
    if (len + 11 >= sizeof(spec)) {
        fprintf(stderr, "bench_connect: $HTTP_PROXY too long\n");
        return -1;
    }
    (void)snprintf(spec, sizeof(spec), "nonoproxy=%.*s", (int)len, hp);
    if (parse_upstream(spec, m) != 0) {
        return -1;
    }
    (void)snprintf(auth, sizeof(auth), "Proxy-Authorization: Bearer %s\r\n", token);
    mode_set_connect(m, origin, auth);
    m->npids = bench_family_of(getppid(), m->pids, 1); /* the parent only, not this process */
    return 0;
}

/* Measure case ci in mode mi once with options o and conc clients; *value receives conn/s or
 * MiB/s, *x the CPU time and latencies; the failed operations are added to the results.
 * Returns 0 or -1. */
static int
measure_once(struct bench *b, const struct options *o, size_t ci, unsigned mi, unsigned conc,
             double *value, struct extra *x)
{
    struct run *r =
        run_new(&b->modes[mi], &cases[ci], conc, b->origin, (uint64_t)o->bulk_mib * 1024U * 1024U);
    uint64_t errs = 0;
    int rc = -1;

    if (r != NULL) {
        rc = measure(r, o, b->clk_tck, value, x, &errs);
        b->res.opened[mi] += r->opened - (r->c->kind == CASE_SETUP ? 0 : errs);
        run_free(r);
    }
    if (rc != 0) {
        fprintf(stderr, "bench_connect: cannot start the clients\n");
    }
    b->res.errors[ci][mi] += errs;
    return rc;
}

/* Run the busiest setup case once through every proxy, unrecorded, so that worker pools
 * exist before the first measured round (the steady state of a long-running proxy). */
static int
warm_up(struct bench *b)
{
    struct options wo = b->o;
    struct extra x;
    double v;
    unsigned mi;

    wo.window_ms = 50;
    wo.warmup_ms = 0;
    for (mi = 1; mi < b->nmodes; mi++) {
        if (measure_once(b, &wo, 1, mi, cases[1].conc, &v, &x) != 0) {
            return -1;
        }
    }
    memset(b->res.errors, 0, sizeof(b->res.errors));
    memset(b->res.opened, 0, sizeof(b->res.opened));
    if (b->np != NULL) {
        drain_audit(b->np, &b->res);
    }
    b->res.audit_events = 0;
    b->res.audit_dropped = 0;
    return 0;
}

/* Measure case ci in every mode for round number round, the order of the modes rotated by
 * the round. Returns 0 or -1. */
static int
run_round(struct bench *b, size_t ci, unsigned round)
{
    unsigned j;
    unsigned mi;
    double *v;
    struct extra *x;

    for (j = 0; j < b->nmodes; j++) {
        mi = (j + round) % b->nmodes;
        v = &b->res.v[ci][mi][round];
        x = &b->res.x[ci][mi][round];
        if (measure_once(b, &b->o, ci, mi, cases[ci].conc, v, x) != 0) {
            return -1;
        }
        b->res.no_progress = b->res.no_progress || *v <= 0.0;
        if (mi == 1 && b->np != NULL) {
            drain_audit(b->np, &b->res);
        }
        if (b->o.verbose) {
            fprintf(stderr, "%-8s round %u %-10s %12.1f %s  cpu %.2f  p50 %.3f p99 %.3f ms\n",
                    cases[ci].name, round, b->modes[mi].name, *v,
                    cases[ci].kind == CASE_SETUP ? "conn/s" : "MiB/s", x->cpu, x->p50, x->p99);
        }
    }
    return 0;
}

/* Measure every selected case in every mode, round after round. Returns 0 or -1. */
static int
run_all(struct bench *b)
{
    size_t ci;
    unsigned round;

    for (ci = 0; ci < NCASES; ci++) {
        for (round = 0; b->o.want_case[ci] && round < b->o.rounds; round++) {
            if (run_round(b, ci, round) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* The median over the rounds of one field of the extras of case ci in mode mi. */
static double
extra_median(const struct bench *b, size_t ci, unsigned mi, size_t offset)
{
    double v[MAX_ROUNDS];
    unsigned i;

    for (i = 0; i < b->o.rounds; i++) {
        memcpy(&v[i], (const char *)&b->res.x[ci][mi][i] + offset, sizeof(double));
    }
    return bench_median(v, b->o.rounds);
}

/* One results line per selected case and mode (medians of the rounds). */
static void
write_results(const struct bench *b)
{
    size_t ci;
    unsigned mi;

    for (ci = 0; ci < NCASES; ci++) {
        for (mi = 0; b->o.want_case[ci] && mi < b->nmodes; mi++) {
            bench_result(b->o.results,
                         "%s %s value=%.4f ratio=%.4f cpu=%.4f p50=%.4f p99=%.4f cp50=%.4f "
                         "errors=%llu rounds=%u bulk_mib=%u",
                         cases[ci].name, b->modes[mi].name, case_median(b, ci, mi),
                         case_ratio(b, ci, mi),
                         extra_median(b, ci, mi, offsetof(struct extra, cpu)),
                         extra_median(b, ci, mi, offsetof(struct extra, p50)),
                         extra_median(b, ci, mi, offsetof(struct extra, p99)),
                         extra_median(b, ci, mi, offsetof(struct extra, cp50)),
                         (unsigned long long)b->res.errors[ci][mi], b->o.rounds, b->o.bulk_mib);
        }
    }
}

/* Setup rate and p99 latency at 1, 2, 4, ... sweep_max clients in every mode (one measurement
 * each, the modes rotated), one results line each. Returns 0 or -1. */
static int
run_sweep(struct bench *b)
{
    unsigned conc;
    unsigned step = 0;
    unsigned j;
    unsigned mi;
    uint64_t before;
    struct extra x;
    double v;

    printf("\nsetup rate and p99 latency by clients (one %u ms window each):\n", b->o.window_ms);
    for (conc = 1; conc <= b->o.sweep_max; conc *= 2, step++) {
        for (j = 0; j < b->nmodes; j++) {
            mi = (j + step) % b->nmodes;
            before = b->res.errors[1][mi];
            memset(&x, 0, sizeof(x));
            if (measure_once(b, &b->o, 1, mi, conc, &v, &x) != 0) {
                return -1;
            }
            if (b->np != NULL) {
                drain_audit(b->np, &b->res);
            }
            printf("  %3u clients  %-10s %9.1f conn/s  p99 %8.3f ms\n", conc, b->modes[mi].name, v,
                   x.p99);
            bench_result(b->o.results, "sweep %s conc=%u value=%.4f p99=%.4f errors=%llu",
                         b->modes[mi].name, conc, v, x.p99,
                         (unsigned long long)(b->res.errors[1][mi] - before));
        }
        fflush(stdout);
    }
    memset(b->res.errors[1], 0, sizeof(b->res.errors[1]));
    return 0;
}

/* A listening socket on 127.0.0.1:0 that is never accepted from (the kernel completes the
 * handshakes into its backlog): the far end of the RSS probe's idle tunnels. */
static int
hold_listen(uint16_t *port)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0) {
        return -1;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 4096) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        (void)close(fd);
        return -1;
    }
    *port = ntohs(sin.sin_port);
    return fd;
}

/* Accept and close whatever waits in the hold listener's backlog. */
static void
hold_drain(int lfd)
{
    int fd;

    while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
        (void)close(fd);
    }
}

/* Open n tunnels through mode m (to the hold listener) into fds; returns the number that
 * failed. */
static unsigned
hold_open(const struct mode *m, int *fds, unsigned n, char *buf)
{
    unsigned fails = 0;
    unsigned i;

    for (i = 0; i < n; i++) {
        fds[i] = client_connect(&m->addr);
        if (fds[i] >= 0 && (bench_send_all(fds[i], m->connect_req, m->connect_req_len) != 0 ||
                            read_connect_reply(fds[i], buf, 4096) != 0)) {
            (void)close(fds[i]);
            fds[i] = -1;
        }
        fails += fds[i] < 0 ? 1U : 0U;
    }
    return fails;
}

/* The RSS probe: for every proxy with a process, RSS idle, with o.hold idle tunnels open (1 s
 * after the last opened), and o.linger_s after they closed; one results line each. Runs before
 * any other measurement, so that "idle" is a fresh proxy. Returns 0 or -1. */
static int
run_hold(struct bench *b)
{
    unsigned long idle[MAX_MODES] = {0};
    unsigned long held[MAX_MODES] = {0};
    unsigned fails[MAX_MODES] = {0};
    double closed[MAX_MODES] = {0};
    struct mode hm;
    uint16_t port = 0;
    int lfd = hold_listen(&port);
    int *fds = calloc(b->o.hold, sizeof(int));
    char *buf = malloc(4096);
    unsigned mi;
    unsigned i;
    double wait;

    if (lfd < 0 || fds == NULL || buf == NULL) {
        fprintf(stderr, "bench_connect: RSS probe: no listener or memory\n");
        free(fds);
        free(buf);
        if (lfd >= 0) {
            (void)close(lfd);
        }
        return -1;
    }
    printf("\nRSS probe: %u idle tunnels per proxy, RSS %u s after they close:\n", b->o.hold,
           b->o.linger_s);
    for (mi = 1; mi < b->nmodes; mi++) {
        if (b->modes[mi].npids == 0) {
            continue;
        }
        hm = b->modes[mi];
        mode_set_connect(&hm, port, b->modes[mi].auth);
        bench_sleep_ms(500);
        idle[mi] = bench_rss_kib(hm.pids, hm.npids);
        fails[mi] = hold_open(&hm, fds, b->o.hold, buf);
        bench_sleep_ms(1000);
        held[mi] = bench_rss_kib(hm.pids, hm.npids);
        for (i = 0; i < b->o.hold; i++) {
            if (fds[i] >= 0) {
                (void)close(fds[i]);
            }
        }
        hold_drain(lfd);
        closed[mi] = bench_now_s();
    }
    for (mi = 1; mi < b->nmodes; mi++) {
        if (b->modes[mi].npids == 0) {
            continue;
        }
        wait = closed[mi] + (double)b->o.linger_s - bench_now_s();
        if (wait > 0.0) {
            bench_sleep_ms((unsigned)(wait * 1e3));
        }
        hold_drain(lfd);
        printf("  %-10s idle %7lu KiB  %u tunnels %7lu KiB (%.1f KiB each, %u failed)  "
               "after %7lu KiB\n",
               b->modes[mi].name, idle[mi], b->o.hold, held[mi],
               ((double)held[mi] - (double)idle[mi]) / (double)b->o.hold, fails[mi],
               bench_rss_kib(b->modes[mi].pids, b->modes[mi].npids));
        bench_result(b->o.results,
                     "rss %s idle_kib=%lu held_kib=%lu after_kib=%lu tunnels=%u errors=%u "
                     "linger_s=%u",
                     b->modes[mi].name, idle[mi], held[mi],
                     bench_rss_kib(b->modes[mi].pids, b->modes[mi].npids), b->o.hold, fails[mi],
                     b->o.linger_s);
    }
    fflush(stdout);
    (void)close(lfd);
    free(fds);
    free(buf);
    return 0;
}

static void
print_header(const struct bench *b)
{
    printf("nonoproxy %s CONNECT benchmark: %ld CPUs, %u ms window after %u ms warm-up, "
           "median of %u rounds, modes alternated\n",
           nonoproxy_version(), sysconf(_SC_NPROCESSORS_ONLN), b->o.window_ms, b->o.warmup_ms,
           b->o.rounds);
    printf("origin 127.0.0.1:%u, nonoproxy 127.0.0.1:%u (%s)\n", (unsigned)origin_port(b->origin),
           (unsigned)ntohs(b->modes[1].addr.sin_port),
           b->np != NULL ? "in-process, audit ring on, default capacity"
                         : "the parent nonoproxy-run");
    fflush(stdout);
}

/* --serve: the origin alone, its port on stdout, for at most serve_s seconds (or until a
 * signal ends the process). */
static int
serve_only(unsigned serve_s)
{
    struct origin *o = origin_start(ORIGIN_THREADS);
    unsigned i;

    if (o == NULL) {
        return 1;
    }
    printf("port %u\n", (unsigned)origin_port(o));
    fflush(stdout);
    for (i = 0; i < serve_s * 10U; i++) {
        bench_sleep_ms(100);
    }
    origin_stop(o);
    return 0;
}

/* Set up the origin and the modes: nonoproxy in-process or from the environment. 0 or -1. */
static int
setup(struct bench *b)
{
    unsigned mi;

    (void)snprintf(b->modes[0].name, sizeof(b->modes[0].name), "direct");
    b->origin = origin_start(ORIGIN_THREADS);
    if (b->origin == NULL) {
        return -1;
    }
    if (b->o.nonoproxy_env) {
        if (nonoproxy_from_env(&b->modes[1], origin_port(b->origin)) != 0) {
            return -1;
        }
    } else {
        b->np = start_nonoproxy(&b->modes[1], origin_port(b->origin));
        if (b->np == NULL) {
            return -1;
        }
    }
    for (mi = 2; mi < b->nmodes; mi++) {
        mode_set_connect(&b->modes[mi], origin_port(b->origin), "");
    }
    return 0;
}

int
main(int argc, char **argv)
{
    static struct bench b;
    size_t ci;
    int rc = 1;
    int pr;

    b.o.window_ms = 300;
    b.o.rounds = 5;
    b.o.bulk_mib = 1024;
    b.o.linger_s = 10;
    b.nmodes = 2; /* direct, nonoproxy; upstream proxies follow */
    b.clk_tck = sysconf(_SC_CLK_TCK);
    pr = parse_args(argc, argv, &b.o, b.modes, &b.nmodes);
    if (pr != 0) {
        return pr > 0 ? 0 : 2;
    }
    if (b.o.serve_s > 0) {
        return serve_only(b.o.serve_s);
    }
    for (ci = 0; ci < NCASES; ci++) {
        b.o.want_case[ci] = b.o.want_case[ci] || (!b.o.any_case && cases[ci].kind != CASE_BULK);
    }
    if (b.clk_tck <= 0 || setup(&b) != 0) {
        goto out;
    }
    print_header(&b);
    if ((b.o.hold > 0 && run_hold(&b) != 0) || warm_up(&b) != 0 || run_all(&b) != 0) {
        goto out;
    }
    print_table(&b);
    print_verdicts(&b);
    write_results(&b);
    if (b.np != NULL) {
        printf("\nnonoproxy audit: %llu events (%llu drained, %llu overwritten in the ring "
               "between drains) for %llu tunnels; origin errors: %llu\n",
               (unsigned long long)b.res.audit_events + b.res.audit_dropped,
               (unsigned long long)b.res.audit_events, (unsigned long long)b.res.audit_dropped,
               (unsigned long long)b.res.opened[1], (unsigned long long)origin_errors(b.origin));
    }
    print_errors(&b);
    if (b.o.sweep_max > 0 && run_sweep(&b) != 0) {
        goto out;
    }
    if (b.res.no_progress) {
        fprintf(stderr, "bench_connect: a measurement made no progress at all\n");
        goto out;
    }
    rc = 0;
out:
    nonoproxy_free(b.np);
    origin_stop(b.origin);
    return rc;
}
