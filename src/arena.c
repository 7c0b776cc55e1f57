/*
** arena.c -- chunked bump allocator.  Chunks grow geometrically so that a
** large AST costs O(log n) mallocs; oversized requests get their own chunk.
*/
#include "arena.h"
#include "alloc.h"
#include "lmql_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct lmql_arena_chunk {
  struct lmql_arena_chunk *prev;
  /* max_align_t keeps the payload aligned for any type we store */
  max_align_t data[];
};

#define ARENA_ALIGN (sizeof(max_align_t))
#define ARENA_MIN_CHUNK 4096

void lmql__arena_init(struct lmql_arena *a) {
  memset(a, 0, sizeof *a);
}

static int new_chunk(struct lmql_arena *a, size_t need) {
  size_t cap = a->cap ? a->cap * 2 : ARENA_MIN_CHUNK;
  if (cap > (size_t)1 << 24) cap = (size_t)1 << 24; /* don't double forever */
  if (cap < need) cap = need;
  if (cap > SIZE_MAX - sizeof(struct lmql_arena_chunk)) return -1;
  if (a->limit && a->total + cap > a->limit) return -1;
  struct lmql_arena_chunk *c = lmql__malloc(sizeof *c + cap);
  if (!c) return -1;
  c->prev = a->head;
  a->head = c;
  a->used = 0;
  a->cap = cap;
  a->total += cap;
  return 0;
}

void *lmql__arena_alloc(struct lmql_arena *a, size_t size) {
  if (a->oom) return NULL;
  if (size > SIZE_MAX - ARENA_ALIGN) { a->oom = 1; return NULL; }
  size_t rounded = (size + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
  if (rounded == 0) rounded = ARENA_ALIGN;
  if (!a->head || a->cap - a->used < rounded) {
    if (new_chunk(a, rounded) != 0) { a->oom = 1; return NULL; }
  }
  char *p = (char *)a->head->data + a->used;
  a->used += rounded;
  memset(p, 0, rounded);
  return p;
}

char *lmql__arena_strndup(struct lmql_arena *a, const char *s, size_t len) {
  if (len == SIZE_MAX) { a->oom = 1; return NULL; }
  char *p = lmql__arena_alloc(a, len + 1);
  if (!p) return NULL;
  if (len) memcpy(p, s, len);
  p[len] = 0;
  return p;
}

void *lmql__arena_grow(struct lmql_arena *a, void *old, size_t old_n,
                       size_t new_cap, size_t elem) {
  LMQL_ASSERT(old_n <= new_cap && (old || old_n == 0));   /* grows, keeping the first old_n */
  if (elem && new_cap > SIZE_MAX / elem) { a->oom = 1; return NULL; }
  void *p = lmql__arena_alloc(a, new_cap * elem);
  if (p && old && old_n) memcpy(p, old, old_n * elem);
  return p;
}

void lmql__arena_free(struct lmql_arena *a) {
  struct lmql_arena_chunk *c = a->head;
  while (c) {
    struct lmql_arena_chunk *prev = c->prev;
    free(c);
    c = prev;
  }
  size_t limit = a->limit;
  memset(a, 0, sizeof *a);
  a->limit = limit;
}
