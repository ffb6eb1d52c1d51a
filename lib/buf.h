/* The one capped writer (L0): every head, JSON line and reason the library builds is written
 * through it.
 *
 * The rule, the only one: a piece is stored whole or not at all. The first piece that does not
 * fit marks the buffer overflowed and nothing after it is stored, so the bytes stored are always
 * the full output cut at a piece boundary (a JSON escape or a UTF-8 sequence is never cut in
 * half). The caller checks np_buf_ok() once, at the end. `want` counts every byte asked for,
 * stored or not, like snprintf's return value. In string mode the stored bytes are always
 * followed by a NUL (the capacity keeps a byte for it). */
#ifndef NP_BUF_H
#define NP_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct np_buf {
    char *p;
    size_t cap;    /* bytes the content may take (in string mode one less than the memory) */
    size_t len;    /* bytes stored, <= cap */
    size_t want;   /* bytes asked for in all */
    bool overflow; /* a piece did not fit: nothing after it was stored */
    bool str;      /* keep p[len] == '\0' */
};

/* A buffer over p[0..cap) for bytes (no terminating NUL). */
void np_buf_init(struct np_buf *b, char *p, size_t cap);

/* A buffer over p[0..cap) for a string: p[len] is always '\0' (cap > 0; p[0] is set). */
void np_buf_init_str(struct np_buf *b, char *p, size_t cap);

/* Append s[0..n), whole or not at all. */
void np_buf_put(struct np_buf *b, const void *s, size_t n);

/* Append the NUL-terminated s. */
void np_buf_puts(struct np_buf *b, const char *s);

/* Append one byte. */
void np_buf_putc(struct np_buf *b, char c);

/* Append v in decimal. */
void np_buf_put_u64(struct np_buf *b, uint64_t v);

/* Longest piece np_buf_printf formats (a longer one overflows the buffer). */
#define NP_BUF_PRINTF_MAX 512

/* Append the formatted text as one piece. */
void np_buf_printf(struct np_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Forget what was stored after len (len <= b->len): a path normaliser popping a segment.
 * Nothing to forget after an overflow. */
void np_buf_cut(struct np_buf *b, size_t len);

/* Whether every piece was stored. */
bool np_buf_ok(const struct np_buf *b);

#endif /* NP_BUF_H */
