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

void *lmql__malloc(size_t n);
void *lmql__calloc(size_t n, size_t size);
void *lmql__realloc(void *p, size_t n);
char *lmql__strdup(const char *s);
/* Failed allocations since the process started (any thread). */
unsigned long lmql__alloc_failures(void);

#endif
