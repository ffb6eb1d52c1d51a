/* Clocks and small string helpers (L0). */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t
np_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
np_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
np_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec < 0) {
        return 0;
    }
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
np_deadline(uint32_t ms)
{
    if (ms == 0) {
        return 0;
    }
    return np_now_ms() + ms;
}

char *
np_copy_printable(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = len;
    size_t i;

    if (cap == 0) {
        return dst;
    }
    if (n > cap - 1) {
        n = cap - 1;
    }
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = (char)((ch < 0x20 || ch == 0x7f) ? '?' : ch);
    }
    dst[n] = '\0';
    if (n < len && cap > 4) {
        dst[cap - 4] = '.';
        dst[cap - 3] = '.';
        dst[cap - 2] = '.';
    }
    return dst;
}

const char *
np_errstr(int err, char *buf)
{
    /* GNU strerror_r: returns either buf or a static string. */
    return strerror_r(err, buf, NP_ERRBUF);
}

uint16_t
np_parse_port(const char *s, size_t len)
{
    unsigned long v = 0;
    size_t i;

    if (len == 0 || len > 5) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return 0;
        }
        v = v * 10u + (unsigned long)(s[i] - '0');
    }
    return v > 65535u ? 0 : (uint16_t)v;
}

char
np_ascii_lower(char c)
{
    return (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
}

bool
np_ascii_ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t i;

    if (alen != blen) {
        return false;
    }
    for (i = 0; i < alen; i++) {
        if (np_ascii_lower(a[i]) != np_ascii_lower(b[i])) {
            return false;
        }
    }
    return true;
}

int
np_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

bool
np_ascii_is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

char
np_ascii_upper(char c)
{
    return (char)((c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c);
}

bool
np_uri_is_unreserved(char c)
{
    return np_ascii_is_alnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

int
np_regular_file_check(const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    int rc;

    if (fd < 0) {
        return errno != 0 ? errno : EIO;
    }
    rc = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? 0 : -1;
    (void)close(fd);
    return rc;
}
