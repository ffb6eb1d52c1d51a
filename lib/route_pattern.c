/* The {} patterns of routes: see route_pattern.h. */
#include "route_pattern.h"

#include <string.h>

static const char placeholder[] = "{}";

/* First occurrence of needle[0..nlen) in hay[0..hlen), or NULL (nlen 0 matches at hay). */
static const char *
find_bytes(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    size_t i;

    if (nlen == 0) {
        return hay;
    }
    for (i = 0; nlen <= hlen && i <= hlen - nlen; i++) {
        if (hay[i] == needle[0] && memcmp(hay + i, needle, nlen) == 0) {
            return hay + i;
        }
    }
    return NULL;
}

size_t
np_route_pattern_count(const char *s)
{
    size_t n = 0;
    const char *p = strstr(s, placeholder);

    while (p != NULL) {
        n++;
        p = strstr(p + 2, placeholder);
    }
    return n;
}

void
np_route_pattern_split(const char *pat, size_t *pre_len, const char **suf, size_t *suf_len)
{
    const char *ph = strstr(pat, placeholder);

    *pre_len = (size_t)(ph - pat);
    *suf = ph + 2;
    *suf_len = strlen(*suf);
}

bool
np_route_pattern_find(const char *pattern, const char *path, size_t len,
                      struct np_route_pattern_match *m)
{
    size_t pre = 0;
    const char *suf = NULL;
    size_t suf_len = 0;
    const char *hit;

    np_route_pattern_split(pattern, &pre, &suf, &suf_len);
    hit = find_bytes(path, len, pattern, pre);
    if (hit == NULL) {
        return false;
    }
    m->m_start = (size_t)(hit - path);
    m->c_start = m->m_start + pre;
    if (suf_len > 0) {
        hit = find_bytes(path + m->c_start, len - m->c_start, suf, suf_len);
        if (hit == NULL) {
            return false;
        }
        m->c_end = (size_t)(hit - path);
        m->m_end = m->c_end + suf_len;
    } else {
        hit = memchr(path + m->c_start, '/', len - m->c_start);
        m->c_end = hit != NULL ? (size_t)(hit - path) : len;
        m->m_end = m->c_end;
    }
    return true;
}

bool
np_route_unsafe_in_target(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (ch <= 0x20 || ch >= 0x7f) {
            return true;
        }
    }
    return false;
}
