/* Allocation wrappers and secret wiping (L0). Every allocation in lib/ goes through here. */
#ifndef NP_ALLOC_H
#define NP_ALLOC_H

#include <stddef.h>

void *np_malloc(size_t n);
void *np_calloc(size_t count, size_t n);
void *np_realloc(void *p, size_t n);
void np_free(void *p);
char *np_strdup(const char *s);
char *np_strndup(const char *s, size_t n);

/* Overwrite n bytes at p with zeros in a way the compiler cannot elide. NULL-safe. */
void np_secure_zero(void *p, size_t n);
/* Wipe the whole NUL-terminated string s, then free it. NULL-safe. */
void np_free_secret(char *s);

#endif /* NP_ALLOC_H */
