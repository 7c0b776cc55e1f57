/*
** diag.c -- diagnostic list and rendering.
*/
#include "diag.h"
#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lmql__diags_init(struct lmql_diags *d) {
  memset(d, 0, sizeof *d);
}

void lmql__diags_free(struct lmql_diags *d) {
  if (!d) return;
  for (int32_t i = 0; i < d->n; i++) free(d->items[i].msg);
  free(d->items);
  int32_t max = d->max;
  memset(d, 0, sizeof *d);
  d->max = max;
}

int lmql__diag_addv(struct lmql_diags *d, const char *file, const char *src,
                    size_t src_len, size_t offset, int32_t line, int32_t col,
                    const char *fmt, va_list ap) {
  int32_t max = d->max > 0 ? d->max : LMQL_DIAGS_DEFAULT_MAX;
  if (d->n >= max) { d->n_dropped++; return -1; }
  if (d->n == d->cap) {
    int32_t ncap = d->cap ? d->cap * 2 : 8;
    struct lmql_diag *ni = lmql__realloc(d->items, (size_t)ncap * sizeof *ni);
    if (!ni) { d->oom = 1; return -1; }
    d->items = ni;
    d->cap = ncap;
  }
  char small[256];
  if (!fmt) fmt = "?";
  va_list ap2;
  va_copy(ap2, ap);
  int need = vsnprintf(small, sizeof small, fmt, ap2);
  va_end(ap2);
  if (need < 0) need = 0;
  char *msg = lmql__malloc((size_t)need + 1);
  if (!msg) { d->oom = 1; return -1; }
  vsnprintf(msg, (size_t)need + 1, fmt, ap);
  struct lmql_diag *g = &d->items[d->n++];
  g->file = file ? file : "<input>";
  g->src = src;
  g->src_len = src_len;
  g->offset = offset;
  g->line = line;
  g->col = col;
  g->msg = msg;
  return 0;
}

void lmql__diags_sort(struct lmql_diags *d) {
  /* insertion sort: stable, and lists are short (bounded by max) */
  for (int32_t i = 1; i < d->n; i++) {
    struct lmql_diag g = d->items[i];
    int32_t j = i;
    while (j > 0 && d->items[j - 1].offset > g.offset) {
      d->items[j] = d->items[j - 1];
      j--;
    }
    d->items[j] = g;
  }
}

/* A tiny bounded appender so rendering can report the size it needed. */
struct out {
  char *buf;
  size_t cap, len;
};

static void out_bytes(struct out *o, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (o->len + 1 < o->cap) o->buf[o->len] = s[i];
    o->len++;
  }
}

static void out_str(struct out *o, const char *s) { out_bytes(o, s, strlen(s)); }

size_t lmql__diag_render(const struct lmql_diag *g, int with_excerpt,
                         char *buf, size_t cap) {
  struct out o = {buf, cap, 0};
  char head[64];
  out_str(&o, g->file);
  snprintf(head, sizeof head, ":%ld:%ld: error: ", (long)g->line, (long)g->col);
  out_str(&o, head);
  out_str(&o, g->msg);
  if (with_excerpt && g->src) {
    size_t off = g->offset > g->src_len ? g->src_len : g->offset;
    size_t ls = off, le = off;
    while (ls > 0 && g->src[ls - 1] != '\n') ls--;
    while (le < g->src_len && g->src[le] != '\n') le++;
    if (le > ls && g->src[le - 1] == '\r') le--;
    /* very long lines: show a window around the column */
    int cut_left = 0, cut_right = 0;
    if (off - ls > 80) {
      ls = off - 60;
      while (ls < off && ((unsigned char)g->src[ls] & 0xC0) == 0x80) ls++;
      cut_left = 1;
    }
    if (le > off && le - off > 80) {
      le = off + 60;
      while (le > off && ((unsigned char)g->src[le] & 0xC0) == 0x80) le--;
      cut_right = 1;
    }
    out_str(&o, "\n");
    if (cut_left) out_str(&o, "...");
    for (size_t i = ls; i < le; i++) {
      unsigned char c = (unsigned char)g->src[i];
      /* keep the excerpt printable: control bytes (incl. NUL) become '?' */
      char ch = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
      out_bytes(&o, &ch, 1);
    }
    if (cut_right) out_str(&o, "...");
    out_str(&o, "\n");
    if (cut_left) out_str(&o, "   ");
    for (size_t i = ls; i < off && i < le; i++) {
      unsigned char c = (unsigned char)g->src[i];
      if ((c & 0xC0) == 0x80) continue; /* UTF-8 continuation: same column */
      out_bytes(&o, c == '\t' ? "\t" : " ", 1);
    }
    out_str(&o, "^\n");
  }
  if (cap > 0) buf[o.len < cap ? o.len : cap - 1] = 0;
  return o.len;
}

char *lmql__diags_render_all(const struct lmql_diags *d) {
  size_t total = 0;
  for (int32_t i = 0; i < d->n; i++)
    total += lmql__diag_render(&d->items[i], 1, NULL, 0);
  char *s = lmql__malloc(total + 1);
  if (!s) return NULL;
  size_t pos = 0;
  for (int32_t i = 0; i < d->n; i++)
    pos += lmql__diag_render(&d->items[i], 1, s + pos, total + 1 - pos);
  s[pos] = 0;
  return s;
}
