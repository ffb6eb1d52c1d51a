/* Small helpers shared by the benchmark clients (bench_connect, bench_reverse). */
#ifndef NP_BENCH_UTIL_H
#define NP_BENCH_UTIL_H

#include <stdatomic.h>
#include <stdint.h>

/* The most rounds a median is taken over. */
#define BENCH_MAX_ROUNDS 64

/* Seconds of CLOCK_MONOTONIC. */
double bench_now_s(void);

/* Sleep ms milliseconds (EINTR resumed). */
void bench_sleep_ms(unsigned ms);

/* Median of v[0..n), 1 <= n <= BENCH_MAX_ROUNDS. */
double bench_median(const double *v, unsigned n);

/* Parse a decimal lo..hi into *out; 0, or -1 after a line on stderr naming prog. */
int bench_parse_uint(const char *prog, const char *s, unsigned lo, unsigned hi, unsigned *out);

/* Relaxed atomic add (counters read only at the end of a window). */
void bench_count(_Atomic uint64_t *c, uint64_t n);

#endif /* NP_BENCH_UTIL_H */
