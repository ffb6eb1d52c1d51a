/* Shared compile-time limits and small helpers (L0). */
#ifndef NP_COMMON_H
#define NP_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NP_UNUSED(x)    ((void)(x))

#define NP_MAX_HOST         253 /* longest DNS name */
#define NP_HOST_BUF         (NP_MAX_HOST + 3)
#define NP_MAX_REQUEST_LINE 8192                /* over ⇒ 414 (SPEC §1.2) */
#define NP_MAX_HEADER_BLOCK 65536               /* over ⇒ 431 */
#define NP_MAX_HEADERS      100                 /* header lines; over ⇒ 431 */
#define NP_MAX_ADDRS        16                  /* resolved addresses tried per destination */
#define NP_REASON_MAX       (NP_HOST_BUF + 160) /* a reason naming a host:port and a cause */

/* Stack of the library's threads. The deepest worker path measured (test_tls
 * worker_stack_fits_deepest_path: a route's TLS handshake with chain verification, a CONNECT
 * through getaddrinfo) uses 19.8 KiB, glibc's TLS and thread block at the top included; 128 KiB
 * leaves 6x that for what the test cannot reach (DNS through nss_dns or other NSS modules,
 * longer certificate chains). Frames are capped at 8 KiB (-Wframe-larger-than). Sanitizer
 * builds need more: TSan places its own thread-local state (~900 KiB) on a stack the caller
 * provides, and ASan's frames are larger. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define NP_SANITIZED_STACK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define NP_SANITIZED_STACK 1
#endif
#endif
#ifdef NP_SANITIZED_STACK
#define NP_THREAD_STACK ((size_t)2048 * 1024)
#else
#define NP_THREAD_STACK ((size_t)128 * 1024)
#endif

/* Whether path is a regular file that can be opened for reading now, found without blocking
 * (a FIFO with no writer would make fopen wait forever): 0, an errno value when it cannot be
 * opened, or -1 when it is not a regular file (a FIFO, a directory, a device). */
int np_regular_file_check(const char *path);

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t np_now_ms(void);
/* Nanoseconds of CLOCK_MONOTONIC (the rate limit's clock). */
uint64_t np_now_ns(void);
/* Milliseconds since the epoch, CLOCK_REALTIME, clamped at 0. */
uint64_t np_wall_ms(void);
/* Deadline now + ms, or 0 ("never") when ms is 0. */
uint64_t np_deadline(uint32_t ms);

/* Copy src[0..len) into dst (capacity cap, cap > 0) NUL-terminated, truncating with "..."
 * when it does not fit; control characters become '?'. Returns dst. */
char *np_copy_printable(char *dst, size_t cap, const char *src, size_t len);

/* ASCII case helpers (locale-independent; not for secrets: they stop at the first
 * difference). */
char np_ascii_lower(char c);
bool np_ascii_ieq(const char *a, size_t alen, const char *b, size_t blen);

/* ASCII letters and digits (locale-independent), upper case, and the unreserved characters of
 * RFC 3986 §2.3 (letters, digits, "-._~"). */
bool np_ascii_is_alnum(char c);
char np_ascii_upper(char c);
bool np_uri_is_unreserved(char c);

/* Value of the hex digit c, or -1. */
int np_hex_value(char c);

/* A decimal port 1..65535 from s[0..len) (1 to 5 digits, nothing else), or 0 when it is not
 * one. */
uint16_t np_parse_port(const char *s, size_t len);

/* Text of errno value err, thread-safe (strerror is not): NP_ERRBUF bytes at buf. */
#define NP_ERRBUF 96
const char *np_errstr(int err, char *buf);
#define NP_ERRSTR(err) np_errstr((err), (char[NP_ERRBUF]){0})

#endif /* NP_COMMON_H */
