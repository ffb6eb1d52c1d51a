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
#define MAX_CONC       16
#define ORIGIN_THREADS 48 /* > the most connections a case can hold at the origin at once */
#define CLIENT_STACK   ((size_t)256 * 1024)
#define READY_WAIT_MS  10000
#define DRAIN_BATCH    256
#define TARGET_SETUP   0.37
#define TARGET_BULK    0.45
#define MIB            (1024.0 * 1024.0)

enum case_kind {
    CASE_SETUP,
    CASE_DOWN,
    CASE_UP,
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
};

struct client {
    _Alignas(64) _Atomic uint64_t done; /* setup: cycles completed; down: bytes received */
    _Atomic uint64_t errors;            /* each client's counters on their own cache line */
    struct run *run;
    pthread_t thread;
    char *buf; /* BENCH_IO_CHUNK bytes */
    bool started;
};

/* One measurement: one case in one mode. */
struct run {
    const struct mode *m;
    const struct bcase *c;
    struct origin *origin;
    struct sockaddr_in origin_addr;
    atomic_bool stop;
    atomic_uint ready;
    uint64_t opened; /* out: streams opened through the mode (setup: cycles completed) */
    struct client cl[MAX_CONC];
};

struct options {
    unsigned window_ms;
    unsigned warmup_ms;
    unsigned rounds;
    bool verbose;
    bool want_case[NCASES];
    bool any_case;
};

struct results {
    double v[NCASES][MAX_MODES][MAX_ROUNDS];
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
    struct nonoproxy_proxy *np;
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
 * Returns the fd or -1. */
static int
open_stream(const struct run *r, char *buf)
{
    const struct mode *m = r->m;
    int fd = client_connect(m->proxy ? &m->addr : &r->origin_addr);

    if (fd < 0 || !m->proxy) {
        return fd;
    }
    if (bench_send_all(fd, m->connect_req, m->connect_req_len) != 0 ||
        read_connect_reply(fd, buf, 4096) != 0) {
        (void)close(fd);
        return -1;
    }
    return fd;
}

/* One setup cycle: open, "GET /", read the answer to end of stream, close. 0 or -1. */
static int
setup_cycle(const struct run *r, char *buf)
{
    int fd = open_stream(r, buf);
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

/* Setup clients loop on cycles until told to stop. */
static void
client_setup(struct client *c)
{
    struct run *r = c->run;
    struct timespec pause = {0, 1000000L};

    atomic_fetch_add(&r->ready, 1);
    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        if (setup_cycle(r, c->buf) == 0) {
            bench_count(&c->done, 1);
        } else {
            bench_count(&c->errors, 1);
            nanosleep(&pause, NULL); /* e.g. EADDRNOTAVAIL: do not spin */
        }
    }
}

/* Bulk clients open one stream, then read (down) or write (up) until told to stop. */
static void
client_bulk(struct client *c)
{
    struct run *r = c->run;
    bool down = r->c->kind == CASE_DOWN;
    int fd = open_stream(r, c->buf);
    ssize_t n;

    if (fd >= 0 && bench_send_all(fd, down ? "SRC\n" : "SNK\n", 4) != 0) {
        (void)close(fd);
        fd = -1;
    }
    if (fd < 0) {
        bench_count(&c->errors, 1);
    }
    atomic_fetch_add(&r->ready, 1);
    while (fd >= 0 && !atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        if (down) {
            n = recv(fd, c->buf, BENCH_IO_CHUNK, 0);
        } else {
            n = send(fd, c->buf, BENCH_IO_CHUNK, MSG_NOSIGNAL);
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            bench_count(&c->errors, 1);
            break;
        }
        if (down) {
            bench_count(&c->done, (uint64_t)n);
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
    for (i = 0; i < r->c->conc; i++) {
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
    for (i = 0; i < r->c->conc; i++) {
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

/* Run one measurement of case c in mode m. *value receives conn/s or MiB/s, *errors the failed
 * operations. Returns 0, or -1 when the clients could not be started. */
static int
measure(struct run *r, const struct options *o, double *value, uint64_t *errors)
{
    unsigned started = start_clients(r);
    uint64_t s0;
    uint64_t s1;
    double t0;
    double t1;
    unsigned i;

    *value = 0.0;
    *errors = 0;
    if (started == r->c->conc) {
        wait_ready(r, started);
        bench_sleep_ms(o->warmup_ms);
        s0 = sample(r);
        t0 = bench_now_s();
        bench_sleep_ms(o->window_ms);
        s1 = sample(r);
        t1 = bench_now_s();
        *value = (double)(s1 - s0) / (t1 - t0);
        if (r->c->kind != CASE_SETUP) {
            *value /= MIB;
        }
    }
    atomic_store(&r->stop, true);
    for (i = 0; i < started; i++) {
        pthread_join(r->cl[i].thread, NULL);
        *errors += atomic_load(&r->cl[i].errors);
        r->opened += r->c->kind == CASE_SETUP ? atomic_load(&r->cl[i].done) : 1;
    }
    return started == r->c->conc ? 0 : -1;
}

/* Allocate the state of one measurement, with each client's buffer. NULL on failure. */
static struct run *
run_new(const struct mode *m, const struct bcase *c, struct origin *origin)
{
    struct run *r = aligned_alloc(64, sizeof(struct run));
    unsigned i;

    if (r == NULL) {
        return NULL;
    }
    memset(r, 0, sizeof(*r));
    r->m = m;
    r->c = c;
    r->origin = origin;
    r->origin_addr.sin_family = AF_INET;
    r->origin_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->origin_addr.sin_port = htons(origin_port(origin));
    atomic_init(&r->stop, false);
    atomic_init(&r->ready, 0);
    for (i = 0; i < c->conc; i++) {
        r->cl[i].buf = malloc(BENCH_IO_CHUNK);
        if (r->cl[i].buf == NULL) {
            break;
        }
        memset(r->cl[i].buf, 'y', BENCH_IO_CHUNK);
    }
    if (i < c->conc) {
        while (i > 0) {
            free(r->cl[--i].buf);
        }
        free(r);
        return NULL;
    }
    return r;
}

static void
run_free(struct run *r)
{
    unsigned i;

    for (i = 0; i < r->c->conc; i++) {
        free(r->cl[i].buf);
    }
    free(r);
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
            usage(stderr);
            return -1;
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

/* Measure case ci in mode mi once with options o; *value receives conn/s or MiB/s and the
 * failed operations are added to the results. Returns 0 or -1. */
static int
measure_once(struct bench *b, const struct options *o, size_t ci, unsigned mi, double *value)
{
    struct run *r = run_new(&b->modes[mi], &cases[ci], b->origin);
    uint64_t errs = 0;
    int rc = -1;

    if (r != NULL) {
        rc = measure(r, o, value, &errs);
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
    double v;
    unsigned mi;

    wo.window_ms = 50;
    wo.warmup_ms = 0;
    for (mi = 1; mi < b->nmodes; mi++) {
        if (measure_once(b, &wo, 1, mi, &v) != 0) {
            return -1;
        }
    }
    memset(b->res.errors, 0, sizeof(b->res.errors));
    memset(b->res.opened, 0, sizeof(b->res.opened));
    drain_audit(b->np, &b->res);
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

    for (j = 0; j < b->nmodes; j++) {
        mi = (j + round) % b->nmodes;
        v = &b->res.v[ci][mi][round];
        if (measure_once(b, &b->o, ci, mi, v) != 0) {
            return -1;
        }
        b->res.no_progress = b->res.no_progress || *v <= 0.0;
        if (mi == 1) {
            drain_audit(b->np, &b->res);
        }
        if (b->o.verbose) {
            fprintf(stderr, "%-8s round %u %-10s %12.1f %s\n", cases[ci].name, round,
                    b->modes[mi].name, *v, cases[ci].kind == CASE_SETUP ? "conn/s" : "MiB/s");
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

static void
print_header(const struct bench *b)
{
    printf("nonoproxy %s CONNECT benchmark: %ld CPUs, %u ms window after %u ms warm-up, "
           "median of %u rounds, modes alternated\n",
           nonoproxy_version(), sysconf(_SC_NPROCESSORS_ONLN), b->o.window_ms, b->o.warmup_ms,
           b->o.rounds);
    printf("origin 127.0.0.1:%u, nonoproxy 127.0.0.1:%u (audit ring on, default capacity)\n",
           (unsigned)origin_port(b->origin), (unsigned)nonoproxy_port(b->np));
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    static struct bench b;
    size_t ci;
    unsigned mi;
    int rc = 1;
    int pr;

    b.o.window_ms = 300;
    b.o.rounds = 5;
    b.nmodes = 2; /* direct, nonoproxy; upstream proxies follow */
    pr = parse_args(argc, argv, &b.o, b.modes, &b.nmodes);
    if (pr != 0) {
        return pr > 0 ? 0 : 2;
    }
    for (ci = 0; ci < NCASES; ci++) {
        b.o.want_case[ci] = b.o.want_case[ci] || !b.o.any_case;
    }
    (void)snprintf(b.modes[0].name, sizeof(b.modes[0].name), "direct");
    b.origin = origin_start(ORIGIN_THREADS);
    if (b.origin == NULL) {
        goto out;
    }
    b.np = start_nonoproxy(&b.modes[1], origin_port(b.origin));
    if (b.np == NULL) {
        goto out;
    }
    for (mi = 2; mi < b.nmodes; mi++) {
        mode_set_connect(&b.modes[mi], origin_port(b.origin), "");
    }
    print_header(&b);
    if (warm_up(&b) != 0 || run_all(&b) != 0) {
        goto out;
    }
    print_table(&b);
    print_verdicts(&b);
    printf("\nnonoproxy audit: %llu events (%llu drained, %llu overwritten in the ring between "
           "drains) for %llu tunnels; origin errors: %llu\n",
           (unsigned long long)b.res.audit_events + b.res.audit_dropped,
           (unsigned long long)b.res.audit_events, (unsigned long long)b.res.audit_dropped,
           (unsigned long long)b.res.opened[1], (unsigned long long)origin_errors(b.origin));
    print_errors(&b);
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
