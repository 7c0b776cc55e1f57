/*
** Role tags through a chat template.
**
** The prompt is an append-only text stream: what the model has seen is never
** rewritten. A chat template, though, renders a whole conversation at once.
** At each role tag the conversation so far is rendered with a marker for
** every message's content; the text between the previous message's marker
** and the new one's (the previous message's end, the new one's header) is
** what the tag adds to the prompt. The contents themselves are never passed
** through the template: they are the prompt's own text (holes, {expr}s)
** and were emitted already. This works for templates whose rendering of a
** conversation begins with the rendering of any shorter one (prefix-stable);
** others are refused, since their text would change what was already
** emitted (and evaluated by the model).
*/
#include "interp_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A message's content while rendering: text no template writes or changes
** (no whitespace to trim, no markup). */
#define MARK_FMT "[[lmql-message-%d]]"

/* Where each marker of n messages is in rendering r (at: its start, end:
** just after it); -1 unless each is there once, in order. */
static int find_marks(const struct lmql__buf *r, int n, size_t *at, size_t *end) {
    size_t from = 0;
    for (int i = 0; i < n; i++) {
        char mark[48];
        int k = snprintf(mark, sizeof mark, MARK_FMT, i);
        const char *p = strstr(r->data + from, mark);   /* r->data is NUL-terminated (lmql__chat_apply) */
        if (!p) return -1;
        at[i] = (size_t)(p - r->data);
        end[i] = at[i] + (size_t)k;
        if (strstr(r->data + end[i], mark)) return -1;   /* written twice */
        from = end[i];
    }
    return 0;
}

/* Render n messages with marker contents. Their roles are the NUL-terminated
** strings in `roles`, one after another, but for the last message's when
** `last` gives it. `probe` adds a user message after them. */
static int render(const char *tmpl, const char *roles, const char *last, int n, bool probe, struct lmql__buf *out,
                  struct lmql__err *err) {
    struct lmql__chat_msg *msgs = lmql__calloc((size_t)n + 1, sizeof *msgs);
    char (*marks)[48] = lmql__calloc((size_t)n + 1, sizeof *marks);
    int rc = msgs && marks ? 0 : lmql__errf(err, "out of memory");
    const char *r = roles;
    for (int i = 0; rc == 0 && i < n; i++) {
        snprintf(marks[i], sizeof marks[i], MARK_FMT, i);
        msgs[i].role = i == n - 1 && last ? last : r;
        msgs[i].content = marks[i];
        if (!(i == n - 1 && last)) r += strlen(r) + 1;
    }
    if (rc == 0 && probe) {
        snprintf(marks[n], sizeof marks[n], MARK_FMT, n);
        msgs[n] = (struct lmql__chat_msg){"user", marks[n]};
    }
    out->len = 0;
    if (rc == 0) rc = lmql__chat_apply(tmpl, msgs, n + probe, out, err);
    if (rc == 0 && !out->data && lmql__buf_add(out, "", 0)) rc = lmql__errf(err, "out of memory");
    free(msgs);
    free(marks);
    return rc;
}

/* The rendering of a conversation whose last message is still open. Some
** templates hold a message back until the next one (Gemma's writes the
** system text into the first user turn): then the rendering with a user
** message after it shows where its text goes. */
static int render_open(const char *tmpl, const char *roles, const char *last, int n, struct lmql__buf *out,
                       struct lmql__err *err) {
    if (render(tmpl, roles, last, n, false, out, err)) return -1;
    char mark[48];
    snprintf(mark, sizeof mark, MARK_FMT, n - 1);
    return strstr(out->data, mark) ? 0 : render(tmpl, roles, last, n, true, out, err);
}

int lmql__chat_turn(const char *tmpl, const struct lmql__buf *roles, int n_prev, const char *role, size_t rlen,
                    struct lmql__buf *frag, struct lmql__err *err) {
    char *name = lmql__malloc(rlen + 1);
    size_t *at = lmql__calloc((size_t)n_prev + 1, sizeof *at), *end = lmql__calloc((size_t)n_prev + 1, sizeof *end);
    struct lmql__buf now = {0}, before = {0};
    int rc = name && at && end ? 0 : lmql__errf(err, "out of memory");
    if (rc == 0) {
        memcpy(name, role, rlen);
        name[rlen] = 0;
        rc = render_open(tmpl, roles->data ? roles->data : "", name, n_prev + 1, &now, err);
    }
    if (rc == 0 && find_marks(&now, n_prev + 1, at, end))
        rc = lmql__errf(err, "the chat template does not write the {:%s} message where it stands, nor with a user "
                        "message after it; use chat_template=False for LMQL's ((role)): text", name);
    /* What the tag adds starts where the previous message's content ends;
    ** everything before must be what the shorter conversation rendered. */
    size_t from = n_prev ? end[n_prev - 1] : 0;
    if (rc == 0 && n_prev) rc = render_open(tmpl, roles->data, NULL, n_prev, &before, err);
    if (rc == 0 && n_prev && (before.len < from || memcmp(before.data, now.data, from)))
        rc = lmql__errf(err, "the chat template is not prefix-stable: a {:%s} message changes how the earlier "
                        "messages are rendered, which the model has already read; use chat_template=False for "
                        "LMQL's ((role)): text", name);
    if (rc == 0 && lmql__buf_add(frag, now.data + from, at[n_prev] - from)) rc = lmql__errf(err, "out of memory");
    lmql__buf_free(&now);
    lmql__buf_free(&before);
    free(name);
    free(at);
    free(end);
    return rc;
}
