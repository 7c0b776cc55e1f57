/*
** The library's allocator. Every allocation of our code goes through it so
** that a failed one is never lost: it is counted, and a compile or a run
** during which one failed ends with LMQL_ERR_NOMEM whatever path it took
** (lmql.c compares the count), never with a result that silently lacks a
** part. Sizes of 0 allocate 1 byte: NULL always means failure.
*/
#ifndef LMQL_ALLOC_H
#define LMQL_ALLOC_H

#include <stddef.h>
#include <stdint.h>

void *lmql__malloc(size_t n);
void *lmql__calloc(size_t n, size_t size);
void *lmql__realloc(void *p, size_t n);
char *lmql__strdup(const char *s);
/* Make room for one more element of size elem in the array *ptr that holds
** n of *cap: doubles *cap (16 at first) when n == *cap. 0, or -1 when memory
** or the int32 count runs out (*ptr and *cap unchanged). */
int lmql__grow(void **ptr, int32_t n, int32_t *cap, size_t elem);
/* Failed allocations since the process started (any thread). */
unsigned long lmql__alloc_failures(void);

#endif
