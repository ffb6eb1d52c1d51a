/* Small helpers shared by the benchmark clients. */
#include "benchutil.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double
bench_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
bench_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* qsort order of doubles. */
static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

double
bench_median(const double *v, unsigned n)
{
    double s[BENCH_MAX_ROUNDS];

    if (n == 0 || n > BENCH_MAX_ROUNDS) {
        return 0.0;
    }
    memcpy(s, v, n * sizeof(double));
    qsort(s, n, sizeof(double), cmp_double);
    return (n % 2 == 1) ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2.0;
}

double
bench_median_any(double *v, size_t n)
{
    if (n == 0) {
        return 0.0;
    }
    qsort(v, n, sizeof(double), cmp_double);
    return (n % 2 == 1) ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

int
bench_parse_uint(const char *prog, const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end = NULL;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        (void)fprintf(stderr, "%s: bad number '%s' (%u..%u)\n", prog, s, lo, hi);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

void
bench_count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* ---- /proc: CPU time of other processes --------------------------------------------------- */

/* Read pid's parent and utime+stime (clock ticks) from /proc/<pid>/stat. 0 or -1. */
int
bench_proc_stat(pid_t pid, pid_t *ppid, unsigned long long *ticks)
{
    char path[64];
    char line[1024];
    unsigned long long ut = 0;
    unsigned long long st = 0;
    const char *p;
    FILE *f;
    size_t n;
    int field;
    int rc = -1;

    (void)snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    f = fopen(path, "re");
    if (f == NULL) {
        return -1;
    }
    n = fread(line, 1, sizeof(line) - 1, f);
    line[n] = '\0';
    /* "pid (comm) state ppid ..." - comm may hold spaces and parentheses: skip to the last ')'. */
    p = strrchr(line, ')');
    if (p == NULL) {
        goto out;
    }
    p++;
    /* Field 3 is the state; ppid is field 4, utime 14, stime 15. */
    for (field = 3; field <= 15 && *p != '\0'; field++) {
        char *end = NULL;
        unsigned long long v;

        while (*p == ' ') {
            p++;
        }
        v = strtoull(p, &end, 10);
        if (field == 4 && ppid != NULL) {
            *ppid = (pid_t)v;
        } else if (field == 14) {
            ut = v;
        } else if (field == 15) {
            st = v;
            rc = 0;
        }
        while (*p != ' ' && *p != '\0') {
            p++;
        }
    }
    *ticks = ut + st;
out:
    (void)fclose(f);
    return rc;
}

/* Fill pids with master and its direct children (an nginx master and its workers). Returns the
 * number found (0 when master does not exist). */
size_t
bench_family_of(pid_t master, pid_t *pids, size_t max)
{
    DIR *d;
    const struct dirent *e;
    unsigned long long ticks;
    pid_t ppid = 0;
    size_t n = 0;

    if (master <= 0 || bench_proc_stat(master, NULL, &ticks) != 0) {
        return 0;
    }
    pids[n++] = master;
    d = opendir("/proc");
    if (d == NULL) {
        return n;
    }
    while (n < max && (e = readdir(d)) != NULL) { /* NOLINT(concurrency-mt-unsafe): one thread */
        char *end = NULL;
        long v = strtol(e->d_name, &end, 10);

        if (end == e->d_name || *end != '\0' || v <= 0) {
            continue;
        }
        if (bench_proc_stat((pid_t)v, &ppid, &ticks) == 0 && ppid == master) {
            pids[n++] = (pid_t)v;
        }
    }
    (void)closedir(d);
    return n;
}

/* The summed CPU ticks of pids (processes that went away count 0). */
unsigned long long
bench_cpu_ticks(const pid_t *pids, size_t n)
{
    unsigned long long sum = 0;
    unsigned long long t;
    size_t i;

    for (i = 0; i < n; i++) {
        if (bench_proc_stat(pids[i], NULL, &t) == 0) {
            sum += t;
        }
    }
    return sum;
}

/* Read VmRSS (KiB) of pid from /proc/<pid>/status; 0 when it is gone. */
static unsigned long
rss_kib_of(pid_t pid)
{
    char path[64];
    char line[256];
    unsigned long kib = 0;
    FILE *f;

    (void)snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    f = fopen(path, "re");
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtoul(line + 6, NULL, 10);
            break;
        }
    }
    (void)fclose(f);
    return kib;
}

unsigned long
bench_rss_kib(const pid_t *pids, size_t n)
{
    unsigned long sum = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        sum += rss_kib_of(pids[i]);
    }
    return sum;
}

void
bench_result(const char *file, const char *fmt, ...)
{
    va_list ap;
    FILE *f;

    if (file == NULL) {
        return;
    }
    f = fopen(file, "ae");
    if (f == NULL) {
        (void)fprintf(stderr, "bench: cannot append to %s\n", file);
        return;
    }
    va_start(ap, fmt);
    (void)vfprintf(f, fmt, ap);
    va_end(ap);
    (void)fputc('\n', f);
    (void)fclose(f);
}
