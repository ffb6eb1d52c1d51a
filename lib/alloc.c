/* Allocation wrappers and secret wiping (L0). */
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

void *
np_malloc(size_t n)
{
    return malloc(n == 0 ? 1 : n);
}

void *
np_calloc(size_t count, size_t n)
{
    return calloc(count == 0 ? 1 : count, n == 0 ? 1 : n);
}

void *
np_realloc(void *p, size_t n)
{
    return realloc(p, n == 0 ? 1 : n);
}

void
np_free(void *p)
{
    free(p);
}

char *
np_strndup(const char *s, size_t n)
{
    char *d = np_malloc(n + 1);

    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *
np_strdup(const char *s)
{
    return np_strndup(s, strlen(s));
}

void
np_secure_zero(void *p, size_t n)
{
    if (p != NULL && n > 0) {
        explicit_bzero(p, n);
    }
}

void
np_free_secret(char *s)
{
    if (s != NULL) {
        np_secure_zero(s, strlen(s));
        free(s);
    }
}
