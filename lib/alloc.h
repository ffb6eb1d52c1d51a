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

/* Allocation-failure injection, for tests only. Resets the allocation count to 0 and counts
 * every np_malloc/np_calloc/np_realloc (np_strdup/np_strndup included) from now on, in every
 * thread; the n-th of them returns NULL (n = 0: none fails, counting only). One failure per
 * call: later allocations succeed. Off until first called. */
/* test hook */
void np_alloc_fail_at(unsigned long n);
/* Allocations counted since the last np_alloc_fail_at(). */
/* test hook */
unsigned long np_alloc_count(void);

#endif /* NP_ALLOC_H */
