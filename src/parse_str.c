/*
** parse_str.c -- string literals, f-strings and LMQL query strings.
**
** A literal is decoded once into text plus a per-byte map back to source
** offsets (lmql__str_decode).  Everything found inside the decoded text --
** {expr} interpolations, [holes], {:role} tags -- is lexed again from the
** decoded bytes with that map, so its positions point into the file even
** after escapes, prefixes and dedenting.
*/
#include "parse.h"

#include <string.h>

#define K(x) LMQL_TOK_##x

/* A decoded text with its source map (a view into a STR node or a buffer). */
struct text {
  const char *s;
  const size_t *map;
  size_t n;
};

static void put(struct lmql_parser *p, struct lmql_strbuf *b, char c, size_t off) {
  if (lmql__strbuf_put(p->a, b, c, off)) lmql__p_oom(p);
}

/* Skip a quoted string starting at t->s[i] (a quote); return the index
** just past it, or 0 when it does not end inside the text. */
static size_t skip_quoted(const struct text *t, size_t i) {
  char q = t->s[i];
  int triple = i + 2 < t->n && t->s[i + 1] == q && t->s[i + 2] == q;
  size_t k = i + (triple ? 3 : 1);
  while (k < t->n) {
    if (t->s[k] == '\\') { k += 2; continue; }
    if (t->s[k] == q) {
      if (!triple) return k + 1;
      if (k + 2 < t->n && t->s[k + 1] == q && t->s[k + 2] == q) return k + 3;
    }
    k++;
  }
  return 0;
}

/* Find the bracket that closes an opening one at t->s[open] (`close` at
** depth 0), skipping nested brackets and quoted strings.  For '{' also
** note the first top-level '!' (not '!=') or ':' in *split (the end of the
** expression), else *split = the close index.  Returns the index of the
** closer, or (size_t)-1 when there is none.  A hole ('[') ends at the
** first ']' that closes it among square brackets alone, as LMQL's reader
** has it: in [X: f(1,2,{'a':3}] the type is `f(1,2,{'a':3}`, whose own
** parse then reports the unclosed '('. */
static size_t find_close(const struct text *t, size_t open, char close, size_t *split) {
  int32_t depth = 0;
  bool square = close == ']';
  size_t sp = (size_t)-1;
  for (size_t i = open + 1; i < t->n;) {
    char c = t->s[i];
    if (c == '\'' || c == '"') {
      size_t e = skip_quoted(t, i);
      if (!e) return (size_t)-1;
      i = e;
      continue;
    }
    if (square ? c == '[' : c == '(' || c == '[' || c == '{') depth++;
    else if (square ? c == ']' : c == ')' || c == ']' || c == '}') {
      if (depth == 0 && c == close) {
        if (split) *split = sp == (size_t)-1 ? i : sp;
        return i;
      }
      if (depth > 0) depth--;
    } else if (split && depth == 0 && sp == (size_t)-1 &&
               ((c == '!' && (i + 1 >= t->n || t->s[i + 1] != '=')) || c == ':')) {
      sp = i;
    }
    i++;
  }
  return (size_t)-1;
}

/* Lex text[start, end) as a bracket-joined sub-stream. */
static void begin_sub(struct lmql_parser *p, struct lmql_p_saved *sv,
                      struct lmql_lex_input *in, const struct text *t,
                      size_t start, size_t end) {
  memset(in, 0, sizeof *in);
  in->buf = t->s;
  in->start = start;
  in->end = end;
  in->map = t->map;
  in->joined = 1;
  lmql__p_stream_begin(p, sv, in);
}

/* interp -> '{' expr_list ['!' ('r'|'s'|'a')] [':' SPEC] '}'
** open indexes the '{'; *next receives the index after the '}'. */
static struct lmql_node *interp(struct lmql_parser *p, const struct text *t,
                                size_t open, size_t *next) {
  size_t split;
  size_t close = find_close(t, open, '}', &split);
  if (close == (size_t)-1) {
    lmql__p_error_at(p, t->map[open], "unterminated '{' expression in string");
    *next = t->n;
    return NULL;
  }
  *next = close + 1;
  struct lmql_node *n = lmql__p_node(p, LMQL_NODE_INTERP, t->map[open]);
  size_t k = open + 1;
  while (k < split && (t->s[k] == ' ' || t->s[k] == '\t' || t->s[k] == '\n')) k++;
  if (k == split) {
    lmql__p_error_at(p, t->map[open], "empty expression in '{}' (write '{{' for a literal brace)");
    return n;
  }
  struct lmql_p_saved sv;
  struct lmql_lex_input in;
  begin_sub(p, &sv, &in, t, open + 1, split);
  n->u.interp.expr = lmql__p_expr_list(p);
  if (lmql__p_tok(p)->kind != K(EOF)) lmql__p_unexpected(p, "in '{...}' expression");
  lmql__p_stream_end(p, &sv);
  size_t i = split;
  if (i < close && t->s[i] == '!') {
    char c = i + 1 < close ? t->s[i + 1] : 0;
    if ((c == 'r' || c == 's' || c == 'a') && (i + 2 == close || t->s[i + 2] == ':')) {
      n->u.interp.conv = c;
      i += 2;
    } else {
      lmql__p_error_at(p, t->map[i], "invalid conversion character: expected 'r', 's' or 'a'");
      return n;
    }
  }
  if (i < close && t->s[i] == ':')
    n->u.interp.spec = lmql__p_strndup(p, t->s + i + 1, close - i - 1);
  return n;
}

/* Append text[from, to) to a pending literal. */
static void flush_text(struct lmql_parser *p, struct lmql_strbuf *pend,
                       struct lmql_vec *out, enum lmql_node_kind kind) {
  if (pend->len == 0) return;
  struct lmql_node *n = lmql__p_node(p, kind, pend->map[0]);
  if (kind == LMQL_NODE_STR) {
    n->u.str.text = pend->text;
    n->u.str.len = pend->len;
    n->u.str.map = pend->map;
    n->u.str.n_pieces = 1;
  } else {
    n->u.text.text = pend->text;
    n->u.text.len = pend->len;
  }
  lmql__p_push(p, out, n);
  memset(pend, 0, sizeof *pend);
}

/* fstring_body -> { CHAR | '{{' | '}}' | interp } */
static void fstring_parts(struct lmql_parser *p, const struct text *t,
                          struct lmql_strbuf *pend, struct lmql_vec *parts) {
  size_t i = 0;
  while (i < t->n) {
    char c = t->s[i];
    if (c == '{' && i + 1 < t->n && t->s[i + 1] == '{') {
      put(p, pend, '{', t->map[i]);
      i += 2;
    } else if (c == '{') {
      size_t next;
      struct lmql_node *e = interp(p, t, i, &next);
      flush_text(p, pend, parts, LMQL_NODE_STR);
      if (e) lmql__p_push(p, parts, e);
      i = next;
    } else if (c == '}' && i + 1 < t->n && t->s[i + 1] == '}') {
      put(p, pend, '}', t->map[i]);
      i += 2;
    } else if (c == '}') {
      lmql__p_error_at(p, t->map[i], "single '}' is not allowed in an f-string (write '}}')");
      i++;
    } else {
      put(p, pend, c, t->map[i]);
      i++;
    }
  }
}

/* strings -> STRING { STRING }   (adjacent literals concatenate; any f
** piece makes the whole an FSTRING of STR and INTERP parts) */
struct lmql_node *lmql__p_strings(struct lmql_parser *p) {
  struct lmql_token *first = lmql__p_tok(p);
  int32_t i0 = p->i, n_pieces = 0, any_f = 0;
  while (lmql__p_kind(p) == K(STRING)) {
    if (lmql__p_tok(p)->str_flags & LMQL_STR_F) any_f = 1;
    n_pieces++;
    lmql__p_next(p);
  }
  if (!any_f) {
    struct lmql_strbuf sb = {0};
    for (int32_t k = 0; k < n_pieces; k++)
      if (lmql__str_decode(p->a, &p->sm, p->d, p->in, &p->toks[i0 + k], p->dedent, &sb))
        lmql__p_oom(p);
    struct lmql_node *n = lmql__p_node_tok(p, LMQL_NODE_STR, first);
    n->u.str.text = sb.text;
    n->u.str.len = sb.len;
    n->u.str.map = sb.map;
    n->u.str.flags = first->str_flags;
    n->u.str.n_pieces = n_pieces;
    n->u.str.from_source = p->in->map == NULL;
    n->u.str.raw_start = first->body_start;
    n->u.str.raw_end = first->body_end;
    return n;
  }
  struct lmql_node *n = lmql__p_node_tok(p, LMQL_NODE_FSTRING, first);
  struct lmql_vec parts = {0};
  struct lmql_strbuf pend = {0};
  for (int32_t k = 0; k < n_pieces; k++) {
    const struct lmql_token *tk = &p->toks[i0 + k];
    struct lmql_strbuf sb = {0};
    if (lmql__str_decode(p->a, &p->sm, p->d, p->in, tk, p->dedent, &sb)) lmql__p_oom(p);
    if (!(tk->str_flags & LMQL_STR_F)) {
      for (size_t j = 0; j < sb.len; j++) put(p, &pend, sb.text[j], sb.map[j]);
      continue;
    }
    struct text t = {sb.text, sb.map, sb.len};
    fstring_parts(p, &t, &pend, &parts);
  }
  flush_text(p, &pend, &parts, LMQL_NODE_STR);
  n->u.parts = lmql__p_list(&parts);
  return n;
}

/* hole -> '[' { '@' primary } [DECODER ['(' args ')']] NAME_OR_CALL [':' expr] ']' */
static struct lmql_node *hole(struct lmql_parser *p, const struct text *t,
                              size_t open, size_t close) {
  struct lmql_node *n = lmql__p_node(p, LMQL_NODE_SEG_HOLE, t->map[open]);
  struct lmql_p_saved sv;
  struct lmql_lex_input in;
  begin_sub(p, &sv, &in, t, open + 1, close);
  struct lmql_vec decos = {0};
  while (lmql__p_accept(p, K(AT))) lmql__p_push(p, &decos, lmql__p_primary(p));
  n->u.hole.decorators = lmql__p_list(&decos);
  if (lmql__p_tok(p)->kind == K(EOF)) {
    lmql__p_error_at(p, t->map[open], "expected a variable name in placeholder");
    goto done;
  }
  struct lmql_node *v = lmql__p_primary(p);
  if (lmql__p_kind(p) == K(NAME)) {
    /* a decoder with arguments, [sample(n=2) X], is read as LMQL reads it (and refused when it runs) */
    if (v->kind == LMQL_NODE_CALL && v->u.call.func->kind == LMQL_NODE_NAME) v = v->u.call.func;
    if (v->kind == LMQL_NODE_NAME) n->u.hole.decoder = v->u.name;
    else lmql__p_error_at(p, v->pos.offset, "expected a decoder name before the variable");
    v = lmql__p_primary(p);
  }
  if (v->kind == LMQL_NODE_NAME) {
    n->u.hole.name = v->u.name;
    n->u.hole.name_pos = v->pos;
  } else if (v->kind == LMQL_NODE_CALL && v->u.call.args.n > 0 &&
             v->u.call.args.items[0]->kind == LMQL_NODE_NAME) {
    /* [f(X)] names the hole X and keeps the call */
    n->u.hole.name = v->u.call.args.items[0]->u.name;
    n->u.hole.name_pos = v->u.call.args.items[0]->pos;
    n->u.hole.call = v;
  } else if (v->kind != LMQL_NODE_ERROR) {
    lmql__p_error_at(p, v->pos.offset, "expected a variable name in placeholder");
    goto done;
  }
  if (lmql__p_accept(p, K(COLON))) {
    if (lmql__p_tok(p)->kind == K(EOF))
      lmql__p_error_at(p, lmql__p_tok(p)->off, "expected a type expression after ':' in placeholder");
    else
      n->u.hole.type = lmql__p_expr(p);
  }
  if (lmql__p_tok(p)->kind != K(EOF)) lmql__p_unexpected(p, "in placeholder");
done:
  lmql__p_stream_end(p, &sv);
  return n;
}

/* qstring -> { TEXT | '[[' | ']]' | '{{' | '}}' | hole | interp | '{:' ROLE '}' }
** (LANGUAGE.md §1.3; the escapes are applied to the text segments) */
void lmql__p_qstring(struct lmql_parser *p, struct lmql_node *str,
                     struct lmql_vec *segs) {
  struct text t = {str->u.str.text, str->u.str.map, str->u.str.len};
  struct lmql_strbuf pend = {0};
  size_t i = 0;
  while (i < t.n) {
    char c = t.s[i];
    char nx = i + 1 < t.n ? t.s[i + 1] : 0;
    if ((c == '[' || c == ']' || c == '{' || c == '}') && nx == c) {
      put(p, &pend, c, t.map[i]);
      i += 2;
    } else if (c == '[') {
      size_t close = find_close(&t, i, ']', NULL);
      if (close == (size_t)-1) {
        lmql__p_error_at(p, t.map[i], "unterminated placeholder");
        break;
      }
      flush_text(p, &pend, segs, LMQL_NODE_SEG_TEXT);
      lmql__p_push(p, segs, hole(p, &t, i, close));
      i = close + 1;
    } else if (c == '{' && nx == ':') {
      size_t close = i + 2;
      while (close < t.n && t.s[close] != '}') close++;
      if (close >= t.n) {
        lmql__p_error_at(p, t.map[i], "unterminated role tag");
        break;
      }
      flush_text(p, &pend, segs, LMQL_NODE_SEG_TEXT);
      struct lmql_node *r = lmql__p_node(p, LMQL_NODE_SEG_ROLE, t.map[i]);
      size_t b = i + 2, e = close;
      while (b < e && (t.s[b] == ' ' || t.s[b] == '\t')) b++;
      while (e > b && (t.s[e - 1] == ' ' || t.s[e - 1] == '\t')) e--;
      r->u.text.text = lmql__p_strndup(p, t.s + b, e - b);
      r->u.text.len = e - b;
      lmql__p_push(p, segs, r);
      i = close + 1;
    } else if (c == '{') {
      size_t next;
      struct lmql_node *e = interp(p, &t, i, &next);
      flush_text(p, &pend, segs, LMQL_NODE_SEG_TEXT);
      if (e) lmql__p_push(p, segs, e);
      i = next;
    } else if (c == '}') {
      lmql__p_error_at(p, t.map[i], "single '}' is not allowed in a query string (write '}}')");
      i++;
    } else {
      put(p, &pend, c, t.map[i]);
      i++;
    }
  }
  flush_text(p, &pend, segs, LMQL_NODE_SEG_TEXT);
}
