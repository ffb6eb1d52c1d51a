/* The one capped writer (L0): see buf.h for the rule. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void
np_buf_init(struct np_buf *b, char *p, size_t cap)
{
    memset(b, 0, sizeof(*b));
    b->p = p;
    b->cap = p != NULL ? cap : 0;
}

void
np_buf_init_str(struct np_buf *b, char *p, size_t cap)
{
    np_buf_init(b, p, cap > 0 ? cap - 1 : 0);
    b->str = true;
    if (p != NULL && cap > 0) {
        p[0] = '\0';
    } else {
        b->overflow = true; /* no room even for the NUL: nothing can be stored */
    }
}

/* Mark the buffer full after a piece of n bytes that did not fit. */
static void
refuse(struct np_buf *b, size_t n)
{
    b->overflow = true;
    b->want = n > SIZE_MAX - b->want ? SIZE_MAX : b->want + n;
}

void
np_buf_put(struct np_buf *b, const void *s, size_t n)
{
    if (b->overflow || n > b->cap - b->len) {
        refuse(b, n);
        return;
    }
    if (n > 0) {
        memcpy(b->p + b->len, s, n);
    }
    b->len += n;
    b->want += n;
    if (b->str) {
        b->p[b->len] = '\0';
    }
}

void
np_buf_puts(struct np_buf *b, const char *s)
{
    np_buf_put(b, s, strlen(s));
}

void
np_buf_putc(struct np_buf *b, char c)
{
    np_buf_put(b, &c, 1);
}

void
np_buf_put_u64(struct np_buf *b, uint64_t v)
{
    char digits[20];
    size_t i = sizeof(digits);

    do {
        digits[--i] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v > 0);
    np_buf_put(b, digits + i, sizeof(digits) - i);
}

void
np_buf_printf(struct np_buf *b, const char *fmt, ...)
{
    char tmp[NP_BUF_PRINTF_MAX];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        refuse(b, n < 0 ? 0 : (size_t)n);
        return;
    }
    np_buf_put(b, tmp, (size_t)n);
}

void
np_buf_cut(struct np_buf *b, size_t len)
{
    if (b->overflow || len > b->len) {
        return;
    }
    b->want -= b->len - len;
    b->len = len;
    if (b->str) {
        b->p[len] = '\0';
    }
}

bool
np_buf_ok(const struct np_buf *b)
{
    return !b->overflow;
}
