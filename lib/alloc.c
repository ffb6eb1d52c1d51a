/* Allocation wrappers and secret wiping (L0). */
#include "alloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Allocation-failure injection for tests (np_alloc_fail_at). The only process-wide state of the
 * library, and only written by test code: armed = 0 (the default) costs one relaxed load per
 * allocation. Armed, every allocation increments count and the one whose new count equals
 * fail_at (when non-zero) returns NULL. */
static atomic_uint hook_armed;
static atomic_ulong hook_count;
static atomic_ulong hook_fail_at;

static int
hook_fails(void)
{
    unsigned long n;
    unsigned long at;

    if (atomic_load_explicit(&hook_armed, memory_order_relaxed) == 0U) {
        return 0;
    }
    n = atomic_fetch_add_explicit(&hook_count, 1UL, memory_order_relaxed) + 1UL;
    at = atomic_load_explicit(&hook_fail_at, memory_order_relaxed);
    if (at != 0UL && n == at) {
        errno = ENOMEM; /* as malloc does */
        return 1;
    }
    return 0;
}

void
np_alloc_fail_at(unsigned long n)
{
    atomic_store_explicit(&hook_armed, 0U, memory_order_relaxed);
    atomic_store_explicit(&hook_fail_at, n, memory_order_relaxed);
    atomic_store_explicit(&hook_count, 0UL, memory_order_relaxed);
    atomic_store_explicit(&hook_armed, 1U, memory_order_relaxed);
}

unsigned long
np_alloc_count(void)
{
    return atomic_load_explicit(&hook_count, memory_order_relaxed);
}

void *
np_malloc(size_t n)
{
    if (hook_fails()) {
        return NULL;
    }
    return malloc(n == 0 ? 1 : n);
}

void *
np_calloc(size_t count, size_t n)
{
    if (hook_fails()) {
        return NULL;
    }
    return calloc(count == 0 ? 1 : count, n == 0 ? 1 : n);
}

void *
np_realloc(void *p, size_t n)
{
    if (hook_fails()) {
        return NULL;
    }
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
