/*
** arena.h -- bump allocator for the front end (AST nodes, tokens, strings).
**
** Ownership: everything allocated from an arena lives until
** lmql__arena_free(); there is no per-object free.  Allocation failure is
** sticky: once an allocation has failed, `oom` stays set and every later
** allocation returns NULL, so a caller may check once at the end (the
** parser instead turns the first NULL into a longjmp, see parse.c).
*/
#ifndef LMQL_ARENA_H
#define LMQL_ARENA_H

#include <stddef.h>

struct lmql_arena_chunk;

struct lmql_arena {
  struct lmql_arena_chunk *head;  /* newest chunk; older ones are linked */
  size_t used;                    /* bytes used in head */
  size_t cap;                     /* usable bytes in head */
  size_t total;                   /* bytes obtained from malloc, all chunks */
  size_t limit;                   /* 0 = unlimited; else fail beyond this */
  int oom;                        /* sticky allocation failure */
};

/* Prepare an empty arena (no memory is allocated until the first use). */
void lmql__arena_init(struct lmql_arena *a);

/* Return `size` zeroed bytes aligned for any scalar, or NULL when out of
** memory (or past a->limit). size 0 returns a valid unique pointer. */
void *lmql__arena_alloc(struct lmql_arena *a, size_t size);

/* Copy `len` bytes of s and add a NUL; NULL on failure. */
char *lmql__arena_strndup(struct lmql_arena *a, const char *s, size_t len);

/* Grow an arena array: returns a new block of new_cap*elem bytes holding the
** first old_n elements of old (the old block is abandoned, not freed). */
void *lmql__arena_grow(struct lmql_arena *a, void *old, size_t old_n,
                       size_t new_cap, size_t elem);

/* Release every chunk; the arena is empty and reusable afterwards.
** Freeing an initialised-but-unused arena is a no-op. */
void lmql__arena_free(struct lmql_arena *a);

#endif
