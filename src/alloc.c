/*
** The library's allocator (see alloc.h).
*/
#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong g_failed;

static void *counted(void *p) {
    if (!p) atomic_fetch_add(&g_failed, 1);
    return p;
}

void *lmql__malloc(size_t n) { return counted(malloc(n ? n : 1)); }
void *lmql__calloc(size_t n, size_t size) { return counted(calloc(n && size ? n : 1, n && size ? size : 1)); }
void *lmql__realloc(void *p, size_t n) { return counted(realloc(p, n ? n : 1)); }
char *lmql__strdup(const char *s) { return counted(strdup(s)); }
unsigned long lmql__alloc_failures(void) { return atomic_load(&g_failed); }

int lmql__grow(void **ptr, int32_t n, int32_t *cap, size_t elem) {
    if (n < *cap) return 0;
    if (*cap > INT32_MAX / 2) return -1;
    int32_t nc = *cap ? *cap * 2 : 16;
    void *q = lmql__realloc(*ptr, (size_t)nc * elem);
    if (!q) return -1;
    *ptr = q;
    *cap = nc;
    return 0;
}
