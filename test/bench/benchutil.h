/* Small helpers shared by the benchmark clients (bench_connect, bench_reverse). */
#ifndef NP_BENCH_UTIL_H
#define NP_BENCH_UTIL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The most rounds a median is taken over. */
#define BENCH_MAX_ROUNDS 64

/* Seconds of CLOCK_MONOTONIC. */
double bench_now_s(void);

/* Sleep ms milliseconds (EINTR resumed). */
void bench_sleep_ms(unsigned ms);

/* Median of v[0..n), 1 <= n <= BENCH_MAX_ROUNDS. */
double bench_median(const double *v, unsigned n);

/* Median of v[0..n) for any n (sorts v in place); 0 when n is 0. */
double bench_median_any(double *v, size_t n);

/* Parse a decimal lo..hi into *out; 0, or -1 after a line on stderr naming prog. */
int bench_parse_uint(const char *prog, const char *s, unsigned lo, unsigned hi, unsigned *out);

/* Relaxed atomic add (counters read only at the end of a window). */
void bench_count(_Atomic uint64_t *c, uint64_t n);

/* ---- /proc: CPU time and memory of other processes ---- */

/* Read pid's parent and utime+stime (clock ticks) from /proc/<pid>/stat. 0 or -1. */
int bench_proc_stat(pid_t pid, pid_t *ppid, unsigned long long *ticks);

/* Fill pids with master and its direct children (an nginx master and its workers). Returns the
 * number found (0 when master does not exist). */
size_t bench_family_of(pid_t master, pid_t *pids, size_t max);

/* The summed CPU ticks of pids (processes that went away count 0). */
unsigned long long bench_cpu_ticks(const pid_t *pids, size_t n);

/* The summed VmRSS of pids in KiB (processes that went away count 0). */
unsigned long bench_rss_kib(const pid_t *pids, size_t n);

/* Append one line (fmt, a newline added) to the results file that ./project.sh bench reads
 * (test/bench/report.py); nothing when file is NULL. */
void bench_result(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* NP_BENCH_UTIL_H */
